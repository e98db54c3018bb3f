"""How to reach a server, and a session on it that behaves the same on every engine.

An ``Endpoint`` is configuration: a URL and *where* the password comes from (an environment
variable or a file), never the password itself, so it can be written to specs, state and
reports. ``Dsn`` is the resolved, picklable form handed to worker processes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import pymysql
from pydantic import BaseModel, ConfigDict, field_validator
from pymysql.constants import CLIENT
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from omsbench.actions import named
from omsbench.endpoints import oceanbase
from omsbench.exceptions import ConnectError, PasswordUnavailable, SpecError

EMBEDDED_SCHEME = "seekdb"
# Strict, but zero dates allowed (MySQL sources hold them and they must arrive unchanged), and
# 0 in an AUTO_INCREMENT column stays 0 instead of drawing the next value.
SQL_MODE = "STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO"


class Flavor(str, Enum):
    MYSQL = "mysql"
    MARIADB = "mariadb"
    OCEANBASE = "oceanbase"

    @classmethod
    def of(cls, version: str) -> Flavor:
        if "OceanBase" in version:
            return cls.OCEANBASE
        if "MariaDB" in version:
            return cls.MARIADB
        return cls.MYSQL


class Endpoint(BaseModel):
    """A server reached by URL: ``mysql+pymysql://user@host:port/db`` or ``seekdb:///data/dir``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    password_env: str | None = None
    password_file: str | None = None
    ssl: dict[str, Any] | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parsed = _parse(url)
        if parsed.password:
            raise ValueError(
                "the URL holds a password; remove it and name an environment variable in "
                "password_env (or a file in password_file) so it never lands in specs or logs"
            )
        if parsed.get_backend_name() not in ("mysql", "mariadb", EMBEDDED_SCHEME):
            raise ValueError(f"unsupported scheme {parsed.drivername!r}; use mysql+pymysql:// or seekdb:///dir")
        return url

    @property
    def embedded(self) -> bool:
        return _parse(self.url).get_backend_name() == EMBEDDED_SCHEME

    @property
    def database(self) -> str | None:
        return None if self.embedded else _parse(self.url).database

    def __str__(self) -> str:
        return self.url

    def dsn(self) -> Dsn:
        """Resolve to connection parameters; opens the embedded seekdb when the URL names one."""
        url = _parse(self.url)
        if self.embedded:
            db_dir = url.database or url.host
            if not db_dir:
                raise SpecError(f"{self.url}: the seekdb URL names no data directory", fix="use seekdb:///abs/dir")
            return Dsn(unix_socket=oceanbase.embedded_socket("/" + db_dir.lstrip("/")), user=url.username or "root")
        return Dsn(
            host=url.host or "127.0.0.1",
            port=url.port or 3306,
            user=url.username or "root",
            password_env=self.password_env,
            password_file=self.password_file,
            ssl=self.ssl,
        )


_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def mask(text: str) -> str:
    """Hide any password written into a URL, for messages that echo user input."""
    return _URL_PASSWORD.sub(r"\1***@", text)


_ACCOUNT_STATEMENT = re.compile(
    r"^\s*(/\*.*?\*/\s*)*(CREATE\s+(OR\s+REPLACE\s+)?USER|ALTER\s+USER|GRANT|SET\s+PASSWORD)\b", re.I | re.S
)
_LITERAL = r"""('(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")"""
_SECRET = re.compile(
    rf"(\b(?:BY|AS|USING)\s+(?:PASSWORD\s+)?|\bPASSWORD\s*\(\s*|\bPASSWORD\b[^=]*=\s*(?:PASSWORD\s*\(\s*)?){_LITERAL}",
    re.I,
)


def mask_statement(statement: str) -> str:
    """Hide the passwords an account statement read from a binlog carries (CREATE/ALTER USER,
    GRANT ... IDENTIFIED BY, SET PASSWORD), before it is recorded, logged or published."""
    if not _ACCOUNT_STATEMENT.match(statement):
        return statement
    return _SECRET.sub(r"\1'***'", statement)


def _parse(url: str):
    try:
        return make_url(url)
    except ArgumentError as err:
        raise ValueError(f"not a database URL: {url!r} (expected mysql+pymysql://user@host:port/db)") from err


@dataclass(frozen=True)
class Dsn:
    """Picklable connection parameters. The password is read where the connection is made."""

    host: str | None = None
    port: int | None = None
    unix_socket: str | None = None
    user: str = "root"
    password_env: str | None = None
    password_file: str | None = None
    ssl: dict[str, Any] | None = field(default=None, hash=False)

    @property
    def where(self) -> str:
        return f"{self.user}@{self.unix_socket or f'{self.host}:{self.port}'}"

    def password(self) -> str:
        if self.password_file:
            try:
                return Path(self.password_file).expanduser().read_text().strip()
            except OSError as err:
                raise PasswordUnavailable(
                    f"cannot read the password file {self.password_file}: {err.strerror}",
                    fix="create it (mode 600) or point password_file at the right file",
                ) from err
        if self.password_env:
            if self.password_env not in os.environ:
                raise PasswordUnavailable(
                    f"the environment variable {self.password_env} holding the password for {self.where} is not set",
                    fix=f"export {self.password_env}=... before running omsbench",
                )
            return os.environ[self.password_env]
        return ""


@dataclass
class Session:
    """An open connection with the server's flavor and version known."""

    conn: pymysql.connections.Connection
    flavor: Flavor
    version: str
    packet: int = 16 << 20
    """The largest statement the server takes (``max_allowed_packet``): a larger one ends the connection."""
    warnings: int = 0
    """How many warnings the last ``query`` raised: most queries raise none, and need no SHOW WARNINGS."""

    def cursor(self, unbuffered: bool = False):
        return self.conn.cursor(pymysql.cursors.SSCursor if unbuffered else None)

    def query(self, sql: str, args: Any = None) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            self.warnings = cur.warning_count
            return list(cur.fetchall())

    def scalar(self, sql: str, args: Any = None) -> Any:
        rows = self.query(sql, args)
        return rows[0][0] if rows else None

    def execute(self, sql: str | bytes, args: Any = None) -> int:
        if isinstance(sql, bytes):
            return self.conn.query(sql)
        with self.conn.cursor() as cur:
            return cur.execute(sql, args)

    def upsert(self, table: str, key: dict[str, Any], values: dict[str, Any]) -> None:
        """Write one bookkeeping row (a checkpoint, a heartbeat) by its key: UPDATE it, and only
        when no row matched, insert it.

        On seekdb, REPLACE and INSERT ... ON DUPLICATE KEY UPDATE of one row written at every
        commit slow down from 0.15 ms to about 10 ms each after some 1,500 writes (measured: once
        the memtable has frozen, every insert-like write of that key checks all the versions the
        undo retention keeps), while UPDATE stays flat. ``table`` is quoted by the caller.
        """
        sets = ", ".join(f"`{c}` = %s" for c in values)
        where = " AND ".join(f"`{c}` = %s" for c in key)
        if self.execute(f"UPDATE {table} SET {sets} WHERE {where}", (*values.values(), *key.values())):
            return
        columns = ", ".join(f"`{c}`" for c in (*key, *values))
        marks = ", ".join(["%s"] * (len(key) + len(values)))
        updates = ", ".join(f"`{c}` = VALUES(`{c}`)" for c in values)  # no row matched, or it held these values
        self.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks}) ON DUPLICATE KEY UPDATE {updates}",
            (*key.values(), *values.values()),
        )

    def close(self) -> None:
        if self.conn.open:
            self.conn.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


LOCK_WAIT_S = 10
"""How long any statement of omsbench waits for a row lock (MySQL's default is 50 s, OceanBase's
the statement's whole timeout). Only omsbench writes the target during a load or a sync, so a
long wait means something holds the row; on seekdb that can be a transaction a restart orphaned,
which never ends (docs/seekdb.md): waiting for it would be waiting forever."""


def raise_packet(server: str) -> str:
    """What to do when a statement or a value outgrows a server's ``max_allowed_packet``."""
    return (
        f"raise it on the {server}: SET GLOBAL max_allowed_packet = 1073741824 (OceanBase and MySQL allow up to"
        " 1 GB; sessions opened afterwards take it)"
    )


_CUT = {1301, 1260}  # a function result over max_allowed_packet as NULL; a GROUP_CONCAT cut short


def oversized(session: Session) -> str | None:
    """Why the session's last query rendered a value as NULL or cut it, if it did: MySQL and MariaDB
    return NULL, with only a warning, for a function result larger than ``max_allowed_packet`` (a
    10 MB BLOB as hex under the default 16 MB), which would pass for a NULL in the data."""
    return next((message for _, code, message in session.query("SHOW WARNINGS") if code in _CUT), None)


def packet_too_large(err: BaseException) -> bool:
    """The server refused a statement larger than its ``max_allowed_packet``: sending it again cannot help."""
    return isinstance(err, pymysql.err.OperationalError) and bool(err.args) and err.args[0] == 1153


def explain(err: BaseException) -> str:
    """An error in words: pymysql reports a connection the server dropped mid-read as ``(0, '')``."""
    if isinstance(err, pymysql.err.MySQLError) and err.args in ((0, ""), (0,)):
        return f"{type(err).__name__}: the server closed the connection (restarted, or the network cut it)"
    return f"{type(err).__name__}: {err}"


_ERROR_FIXES = {
    1045: "check the user name and the password in the environment variable or file the spec names",
    1049: "create the database or fix the database name in the URL",
    2003: f"start the server (for the private servers: {named('servers start')}) or fix host and port",
    2002: "start the server or fix the socket path",
}


def connect(dsn: Dsn, *, autocommit: bool = True, database: str | None = None) -> Session:
    """Open a session with UTC time zone, utf8mb4 and a predictable SQL mode on any engine."""
    try:
        conn = pymysql.connect(
            host=dsn.host,
            port=dsn.port or 3306,
            unix_socket=dsn.unix_socket,
            user=dsn.user,
            password=dsn.password(),
            database=database,
            charset="utf8mb4",
            autocommit=autocommit,
            ssl=dsn.ssl,
            connect_timeout=10,
            local_infile=False,
            # an UPDATE reports the rows it matched, not only those whose values changed: the
            # applier and the bookkeeping writes ask "did it find the row", not "did it change it"
            client_flag=CLIENT.FOUND_ROWS,
        )
    except pymysql.err.MySQLError as err:
        code = err.args[0] if err.args else None
        raise ConnectError(
            f"cannot connect to {dsn.where}: {err.args[-1] if err.args else err}",
            fix=_ERROR_FIXES.get(code, "check that the server runs and the spec's URL is right"),
        ) from err
    with conn.cursor() as cur:  # seekdb's handshake says only 5.7.25; VERSION() names OceanBase
        cur.execute("SELECT VERSION(), @@max_allowed_packet")
        version, packet = cur.fetchone()
    session = Session(conn, Flavor.of(version), version, int(packet))
    settings = {"time_zone": "'+00:00'", "sql_mode": f"'{SQL_MODE}'", "group_concat_max_len": 1 << 30}
    if session.flavor is Flavor.OCEANBASE:
        settings.update(oceanbase.SESSION_SETTINGS, ob_trx_lock_timeout=LOCK_WAIT_S * 10**6)
    else:
        settings.update(net_read_timeout=3600, net_write_timeout=3600, innodb_lock_wait_timeout=LOCK_WAIT_S)
    session.execute("SET " + ", ".join(f"SESSION {k} = {v}" for k, v in settings.items()))
    return session
