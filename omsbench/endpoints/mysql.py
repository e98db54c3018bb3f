"""MySQL / MariaDB as a source: binlog settings, positions, consistent snapshots, privileges."""

from __future__ import annotations

import re

import pymysql

from omsbench.endpoints.connection import Flavor, Session
from omsbench.endpoints.position import BinlogPosition
from omsbench.exceptions import ConnectError


def variables(session: Session, *names: str) -> dict[str, str | None]:
    found = {k.lower(): v for k, v in session.query("SHOW GLOBAL VARIABLES")}
    return {name: found.get(name) for name in names}


def master_status(session: Session) -> BinlogPosition | None:
    """The current end of the binlog with its GTID state, or None when the server writes no binlog.

    Only "no binlog" is None: log_bin off (no row), or OceanBase without its binlog service (the
    statement is unknown there). Any other error (a missing privilege, a lost connection) is raised,
    naming what to grant: read as "no binlog" it would send the sync nowhere.
    """
    try:
        rows = session.query(_status_statement(session))
    except pymysql.err.MySQLError as err:
        if session.flavor is Flavor.OCEANBASE and err.args and err.args[0] in _UNKNOWN_STATEMENT:
            return None
        if err.args and err.args[0] in _DENIED:
            raise ConnectError(
                f"{session.flavor.value} at {session.version} refuses to say where its binlog ends: {err.args[-1]}",
                fix="GRANT REPLICATION CLIENT ON *.* (MariaDB: BINLOG MONITOR) TO the migration user",
            ) from err
        raise
    if not rows:
        return None
    file, pos = rows[0][0], int(rows[0][1])
    if session.flavor is Flavor.MARIADB:
        return _mariadb_end(session, file, pos)
    executed = rows[0][4] if session.flavor is Flavor.MYSQL and len(rows[0]) > 4 else None
    return BinlogPosition(file, pos, executed or None)


_UNKNOWN_STATEMENT = {1064, 1235}
"""A syntax error, or "not supported": what a server without a binlog answers."""
_DENIED = {1045, 1142, 1227}


def _status_statement(session: Session) -> str:
    """MySQL 8.2 added SHOW BINARY LOG STATUS and 8.4 removed SHOW MASTER STATUS (from MySQL's
    manual; no MySQL server runs here, so this branch is untested). MariaDB and OceanBase keep the old one."""
    if session.flavor is Flavor.MYSQL and _version(session.version) >= (8, 2):
        return "SHOW BINARY LOG STATUS"
    return "SHOW MASTER STATUS"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _mariadb_end(session: Session, file: str, pos: int, attempts: int = 5) -> BinlogPosition:
    """The end of a MariaDB binlog and its GTID, read without scanning the binlog.

    ``@@gtid_binlog_pos`` read between two identical readings of the end belongs to that end: a
    commit in between moves the end, and the end cannot move while a commit is half written (both
    readings wait for the binlog's lock). BINLOG_GTID_POS would read the whole file instead,
    about a second on a 1 GB binlog; it stays the answer for a server too busy to stand still.
    """
    for _ in range(attempts):
        gtid = session.scalar("SELECT @@GLOBAL.gtid_binlog_pos")
        again = session.query("SHOW MASTER STATUS")[0]
        if (again[0], int(again[1])) == (file, pos):
            return BinlogPosition(file, pos, gtid or None)
        file, pos = again[0], int(again[1])
    return BinlogPosition(file, pos, session.scalar("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos)) or None)


def start_snapshot(session: Session) -> BinlogPosition | None:
    """Open a consistent read-only snapshot on ``session`` and return the binlog position it sees.

    MariaDB reports the exact position of a consistent snapshot without any lock
    (``binlog_snapshot_file/position``); MySQL needs a short global read lock around the start.
    Each chunk takes its own snapshot, so a resumed load needs no snapshot that survived a crash:
    incremental sync can skip, per chunk, the changes that chunk already holds. Those skips compare
    file and position only, so a MariaDB snapshot carries no GTID: BINLOG_GTID_POS reads the binlog
    file from its start, about a second per call on a 1 GB file (measured), which per chunk made the
    source's CPU, not the copy, the bottleneck of a load. The load's hand-over position
    (``master_status``, once) has its GTID.
    """
    if session.flavor is Flavor.MARIADB:
        session.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        status = dict(session.query("SHOW STATUS LIKE 'binlog_snapshot_%%'"))
        file, pos = status.get("Binlog_snapshot_file"), status.get("Binlog_snapshot_position")
        if not file:
            return None
        return BinlogPosition(file, int(pos))
    if session.flavor is Flavor.MYSQL:
        session.execute("FLUSH TABLES WITH READ LOCK")
        try:
            session.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            return master_status(session)
        finally:
            session.execute("UNLOCK TABLES")
    session.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
    return None


_GRANT = re.compile(r"^GRANT (.+?) ON (\S+) TO", re.IGNORECASE)


def grants(session: Session) -> dict[str, set[str]]:
    """Privileges of the current user by scope (``*.*``, ```db`.*``), parsed from SHOW GRANTS."""
    scopes: dict[str, set[str]] = {}
    for (line,) in session.query("SHOW GRANTS"):
        match = _GRANT.match(line)
        if not match:
            continue
        privileges = {p.strip().upper() for p in re.sub(r"\(.*?\)", "", match.group(1)).split(",")}
        scope = match.group(2).replace("`", "").replace('"', "")
        scopes.setdefault(scope, set()).update(privileges)
    return scopes


def has_privilege(scopes: dict[str, set[str]], privilege: str, schema: str | None = None) -> bool:
    wanted = {privilege.upper(), "ALL PRIVILEGES", "ALL"}
    candidates = ["*.*"] + ([f"{schema}.*"] if schema else [])
    return any(wanted & scopes.get(scope, set()) for scope in candidates)
