"""Reverse incremental sync: OceanBase's captured changes back to the original MySQL.

After switchover the application writes to OceanBase; the triggers of :mod:`capture` log
each change, and this loop applies whole transactions to MySQL with the same
:class:`~omsbench.engine.apply.Applier` as the forward sync. Its checkpoint row lists the
OceanBase transactions of the group and commits with them on MySQL, so after a crash the
already applied ones are purged from the change log rather than applied again. That same row
marks the transaction in MySQL's binlog, and the forward reader drops marked transactions: both
directions can run at once without a change going round in circles.
"""

from __future__ import annotations

import logging
import time

import pymysql

from omsbench.endpoints import catalog
from omsbench.endpoints.catalog import Catalog, Table
from omsbench.endpoints.connection import Session, connect
from omsbench.engine import capture
from omsbench.engine.apply import Applier
from omsbench.engine.cdc import REVERSE_MARK
from omsbench.engine.changes import Transaction
from omsbench.engine.mapping import Selection, TableMap
from omsbench.engine.schema import ensure_own_table
from omsbench.engine.sync import Sync
from omsbench.engine.tracker import Tracker
from omsbench.exceptions import DdlPaused, SyncError

log = logging.getLogger(__name__)
STEP = "reverse"
IDLE = 0.02
"""Seconds between polls of an empty change log: the floor of the reverse lag."""
CHECKPOINT_DDL = (
    f"CREATE TABLE IF NOT EXISTS `{REVERSE_MARK[0]}`.`{REVERSE_MARK[1]}` ("
    " project VARCHAR(64) NOT NULL PRIMARY KEY, last_seq BIGINT NOT NULL, transactions LONGTEXT NOT NULL,"
    " source_ts DOUBLE, applied_at DOUBLE)"
)
SCHEMA_POLL = 2.0
"""Seconds between looks at OceanBase's catalog for DDL on the captured tables."""
TRANSACTIONS_PER_READ = 2000
"""Transactions applied in one MySQL commit at most, when the change log holds a backlog."""
_NO_SUCH_TABLE = 1146


def reversed_tables(forward: list[TableMap], oceanbase: Catalog) -> Selection:
    """The forward table maps turned around: OceanBase tables as sources, MySQL names as targets."""
    selection = Selection()
    for tm in forward:
        table = oceanbase.tables.get((tm.schema, tm.name))
        if table is None:
            raise SyncError(
                f"table {tm.qualified} is not on OceanBase", fix="migrate it first, or leave it out with --without"
            )
        columns = {target: source for source, target in tm.columns.items()}
        selection.tables.append(TableMap(table, tm.source.schema, tm.source.name, columns))
        selection.schemas[tm.schema] = tm.source.schema
    return selection


def applied_transactions(mysql: Session, project: str) -> list[str]:
    """The OceanBase transactions of the last group applied to MySQL (purged on start, in case a crash came first)."""
    try:
        rows = mysql.query(
            f"SELECT transactions FROM `{REVERSE_MARK[0]}`.`{REVERSE_MARK[1]}` WHERE project = %s", (project,)
        )
    except pymysql.err.ProgrammingError as err:
        if err.args[0] != _NO_SUCH_TABLE:
            raise
        return []
    return rows[0][0].split(",") if rows and rows[0][0] else []


class ReverseApplier(Applier):
    """The forward applier, with a checkpoint that names the OceanBase transactions it holds."""

    def __init__(self, target: Session, project: str, tracker: Tracker) -> None:
        super().__init__(target, project, tracker)
        ensure_own_table(target, CHECKPOINT_DDL)

    def _checkpoint(self, group: list[Transaction]) -> None:
        self.target.execute(
            f"REPLACE INTO `{REVERSE_MARK[0]}`.`{REVERSE_MARK[1]}`"
            " (project, last_seq, transactions, source_ts, applied_at) VALUES (%s, %s, %s, %s, %s)",
            (self.project, group[-1].position.pos, ",".join(t.gtid for t in group), group[-1].commit_ts, time.time()),
        )


class ReverseSync(Sync):
    """The forward sync's control loop (retries, pause, stop, samples) around the capture reader."""

    step = STEP

    def __init__(self, spec, state, selection, without: list[str] | None = None) -> None:
        super().__init__(spec, state, selection)
        self.without = set(without or [])

    def _session(self) -> None:
        try:
            self._connected()
        except DdlPaused:
            # wait for a new resume: the one that led here must not retry at once, again and again
            self.state.request(self.project, self.step, "pause")
            self._want = (0.0, None)
            raise

    def _connected(self) -> None:
        with connect(self.spec.target.dsn()) as oceanbase, connect(self.spec.source.dsn(), autocommit=False) as mysql:
            self._keep_read_only(mysql)
            forward = [tm for tm in self.selection(mysql).tables if tm.source.qualified not in self.without]
            schemas = {tm.schema for tm in forward}
            selection = reversed_tables(forward, catalog.read(oceanbase, schemas))
            _require_same_columns(forward, selection)
            tracker = Tracker(selection)
            tracker.start(mysql)
            applier = ReverseApplier(mysql, self.project, tracker)
            capture.purge(oceanbase, self.project, applied_transactions(mysql, self.project))
            shapes = {(tm.source.schema, tm.source.name): tm.source for tm in selection.tables}
            self._set("running", "applying OceanBase's changes to MySQL")
            self._loop(oceanbase, applier, shapes, schemas)

    def _keep_read_only(self, mysql: Session) -> None:
        """A restarted MySQL comes back writable: put back the read-only the switchover set, so the
        application cannot write to the old primary while OceanBase is the primary."""
        record = (self.state.step(self.project, "switchover") or {}).get("detail") or {}
        if (
            record.get("direction") == "switchover"
            and record.get("read_only_set")
            and not mysql.scalar("SELECT @@GLOBAL.read_only")
        ):
            mysql.execute("SET GLOBAL read_only = ON")
            log.warning("MySQL came back writable (restarted?); read_only is set again for %s", self.project)

    def _follow_ddl(self, oceanbase: Session, shapes: dict, schemas: set) -> None:
        """After DDL on a captured table: capture its new columns at once, then pause until MySQL has them."""
        changed = recapture(oceanbase, self.project, shapes, schemas)
        if not changed:
            return
        names = ", ".join(f"{t.qualified} ({', '.join(_columns(t))})" for t in changed)
        raise DdlPaused(
            f"DDL on OceanBase changed {names}; the capture follows the new columns, MySQL does not yet",
            fix=f"apply the same change to the MySQL table(s), then `omsbench reverse resume {self.project}`",
            statement=names,
        )

    def _loop(self, oceanbase: Session, applier: Applier, shapes: dict, schemas: set) -> None:  # type: ignore[override]
        looked = time.monotonic()
        while not self._stop_requested():
            if self._paused():
                continue
            if time.monotonic() - looked > SCHEMA_POLL:
                self._follow_ddl(oceanbase, shapes, schemas)
                looked = time.monotonic()
            group = capture.read(oceanbase, self.project, shapes, TRANSACTIONS_PER_READ)
            if not group:
                self._maybe_sample()
                self.stopping.wait(IDLE)
                continue
            started = time.monotonic()
            committed = applier.apply(group)
            capture.purge(oceanbase, self.project, [t.gtid for t in group])
            self.position = group[-1].position
            self.meter.applied(sum(t.rows for t in group), len(group), time.monotonic() - started)
            self.meter.heartbeat(group[-1].commit_ts, group[-1].read_at, committed)
            self._maybe_sample()


def _columns(table: Table, names: dict[str, str] | None = None) -> list[str]:
    """Stored column names, in OceanBase's names when ``names`` maps MySQL's to them."""
    return sorted((names or {}).get(c.name, c.name) for c in table.columns if not c.generated)


def recapture(oceanbase: Session, project: str, shapes: dict[tuple[str, str], Table], schemas: set) -> list[Table]:
    """Tables whose columns changed on OceanBase since ``shapes``, now captured with their new columns."""
    now = catalog.read(oceanbase, schemas).tables
    changed = [now[key] for key, table in shapes.items() if key in now and _signature(now[key]) != _signature(table)]
    if changed:
        capture.install(oceanbase, project, changed)
    return changed


def _signature(table: Table) -> list[tuple]:
    return [(c.name, c.column_type, c.nullable) for c in table.columns]


def _require_same_columns(forward: list[TableMap], reverse: Selection) -> None:
    """Refuse to apply while a table has other columns on OceanBase than on MySQL (DDL not followed)."""
    on_mysql = {(tm.schema, tm.name): _columns(tm.source, tm.columns) for tm in forward}
    for tm in reverse.tables:
        ob = tm.source
        if _columns(ob) != on_mysql[(ob.schema, ob.name)]:
            raise DdlPaused(
                f"{ob.qualified} has columns {_columns(ob)} on OceanBase but {on_mysql[(ob.schema, ob.name)]}"
                f" on MySQL ({tm.schema}.{tm.name})",
                fix="apply OceanBase's change to MySQL, then `omsbench reverse resume`",
                statement=ob.qualified,
            )


def wait_caught_up(oceanbase: Session, project: str, timeout: float = 120) -> None:
    """Return once every change OceanBase had committed when this was called is applied to MySQL."""
    deadline = time.monotonic() + timeout
    while capture.pending(oceanbase, project):
        if time.monotonic() > deadline:
            raise SyncError(
                f"the reverse sync of {project} did not catch up within {timeout:.0f} s",
                fix=f"see `omsbench reverse status {project}`",
            )
        time.sleep(0.05)
