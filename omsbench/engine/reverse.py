"""Reverse incremental sync: OceanBase's changes back to the original MySQL.

After switchover the application writes to OceanBase. Its changes are captured one of two ways,
chosen at the switchover's precheck (``switchover.reverse_capture``):

- **triggers** (work on every OceanBase, seekdb included): the triggers of :mod:`capture` log
  each change, and this loop applies whole transactions to MySQL with the same
  :class:`~omsbench.engine.apply.Applier` as the forward sync. Its checkpoint row lists the
  OceanBase transactions of the group and commits with them on MySQL, so after a crash the
  already applied ones are purged from the change log rather than applied again. That same row
  marks the transaction in MySQL's binlog, and the forward reader drops marked transactions.
- **binlog**, where the target writes a ROW binlog (an OceanBase binlog service, or a MySQL
  target): the forward sync's own reader, applier and DDL replay run the other way round, from
  the target's binlog position taken at switchover; the checkpoint goes to MySQL's
  ``sync_checkpoint``, which marks the transaction for the forward reader, and the forward
  applier's checkpoint marks its transactions for this reader.

Either way both directions can run at once without a change going round in circles.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Iterator

import pymysql

from omsbench.actions import named
from omsbench.changes import Transaction
from omsbench.endpoints import catalog, mysql
from omsbench.endpoints.catalog import Catalog, Table
from omsbench.endpoints.connection import Session, connect
from omsbench.endpoints.position import BinlogPosition
from omsbench.engine import capture, compared, own_tables
from omsbench.engine import sync as forward_sync
from omsbench.engine.apply import Applier, read_checkpoint
from omsbench.engine.ddl import DdlApplier
from omsbench.engine.mapping import Selection, TableMap
from omsbench.engine.spec import ProjectSpec
from omsbench.engine.steps import Step
from omsbench.engine.sync import Connected, StartAt, Sync
from omsbench.engine.tracker import Tracker
from omsbench.exceptions import DdlPaused, StateError, SyncError

log = logging.getLogger(__name__)
_NO_SUCH_TABLE = 1146


TRIGGERS, BINLOG = "triggers", "binlog"


def binlog_refusal(spec: ProjectSpec, oceanbase: Session, mysql_session: Session) -> str | None:
    """Why reverse sync cannot read the target's binlog (None when it can)."""
    end = mysql.master_status(oceanbase)
    if end is None:
        return "the target writes no binlog"
    found = mysql.variables(oceanbase, "binlog_format", "binlog_row_image", "server_id")
    for name, wanted in (("binlog_format", "ROW"), ("binlog_row_image", "FULL")):
        if (found[name] or "").upper() != wanted:
            return f"the target's {name} is {found[name]}, not {wanted}"
    if found["server_id"] == mysql.variables(mysql_session, "server_id")["server_id"]:
        return "source and target have the same server_id: their binlogs cannot be told apart"
    renames = spec.objects.rename
    if renames.databases or renames.tables or renames.columns:
        return "the project renames objects, and the target's DDL would reach MySQL under the target's names"
    return None


def capture_method(spec: ProjectSpec, oceanbase: Session, mysql_session: Session) -> tuple[str, str]:
    """How reverse sync will capture the target's changes, and why: the spec's choice where it is
    possible, the binlog when ``auto`` finds it usable, else triggers."""
    wanted = spec.switchover.reverse_capture
    if wanted == TRIGGERS:
        return TRIGGERS, "chosen in the spec"
    refusal = binlog_refusal(spec, oceanbase, mysql_session)
    if refusal is None:
        return BINLOG, "the target writes a ROW binlog with full row images"
    if wanted == BINLOG:
        raise StateError(
            f"reverse capture from the target's binlog is not possible: {refusal}",
            fix="set switchover.reverse_capture to auto or triggers, or give the target a ROW binlog"
            " (OceanBase: its binlog service)",
        )
    return TRIGGERS, refusal


def reversed_tables(forward: list[TableMap], oceanbase: Catalog) -> Selection:
    """The forward table maps turned around: OceanBase tables as sources, MySQL names as targets."""
    selection = Selection()
    for tm in forward:
        table = oceanbase.tables.get((tm.schema, tm.name))
        if table is None:
            raise SyncError(
                f"table {tm.qualified} is not on OceanBase",
                fix=f"migrate it first, or leave it out ({named('switchover', None, '--without', tm.qualified)})",
            )
        columns = {target: source for source, target in tm.columns.items()}
        selection.tables.append(TableMap(table, tm.source.schema, tm.source.name, columns))
        selection.schemas[tm.schema] = tm.source.schema
    return selection


def applied_transactions(mysql: Session, project: str) -> list[str]:
    """The OceanBase transactions of the last group applied to MySQL (purged on start, in case a crash came first)."""
    try:
        rows = mysql.query(
            f"SELECT transactions FROM `{own_tables.SCHEMA}`.`{own_tables.REVERSE_CHECKPOINT}` WHERE project = %s",
            (project,),
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
        own_tables.ensure(target, own_tables.REVERSE_CHECKPOINT)

    def _checkpoint(self, group: list[Transaction]) -> None:
        self.target.upsert(
            f"`{own_tables.SCHEMA}`.`{own_tables.REVERSE_CHECKPOINT}`",
            {"project": self.project},
            {
                "last_seq": group[-1].position.pos,
                "transactions": ",".join(t.gtid for t in group),
                "source_ts": group[-1].commit_ts,
                "applied_at": time.time(),
            },
        )


@contextlib.contextmanager
def oceanbase_to_mysql(sync: Sync) -> Iterator[Connected]:
    """The reverse sync's session: OceanBase's changes into MySQL, for the tables the switchover put
    under capture, read from the change log or from OceanBase's binlog as the switchover chose."""
    spec, project = sync.spec, sync.project
    with connect(spec.target.dsn()) as oceanbase, connect(spec.source.dsn(), autocommit=False) as mysql:
        record = sync.state.detail(project, Step.SWITCHOVER)
        _keep_read_only(mysql, record, project)
        without = set(record.get("without", []))
        forward = [tm for tm in sync.selection(mysql).tables if tm.source.qualified not in without]
        schemas = {tm.schema for tm in forward}
        selection = reversed_tables(forward, catalog.read(oceanbase, schemas))
        tracker = Tracker(selection)
        tracker.start(mysql)  # MySQL's tables have the shape of the rows at the checkpoint
        if record.get("capture") == BINLOG:  # the binlog carries OceanBase's DDL; no renames: checked at switchover
            mirrored = spec.model_copy(update={"source": spec.target, "target": spec.source})
            sync.start_at = StartAt(position=BinlogPosition(**record["reverse_start"]))  # where no checkpoint is yet
            start = sync.start_position(oceanbase, read_checkpoint(mysql, project))
            with sync.reading(spec.target, oceanbase, start, tracker, pieces=True) as reader:
                ddl = DdlApplier(mysql, mirrored, tracker, "reverse")
                yield Connected(reader, Applier(mysql, project, tracker), ddl, judge=mysql)
        else:
            _require_same_columns(forward, selection, project)
            applier = ReverseApplier(mysql, project, tracker)
            capture.purge(oceanbase, project, applied_transactions(mysql, project))
            by_compare = set(record.get("compared", []))
            comparison = _Comparison(
                sync, oceanbase, mysql, [tm for tm in selection.tables if tm.qualified in by_compare]
            )
            shapes = {
                (tm.source.schema, tm.source.name): tm.source
                for tm in selection.tables
                if tm.qualified not in by_compare  # no triggers there: a trigger would break its writes
            }
            sync.set_state("running", "applying OceanBase's changes to MySQL")
            follow = functools.partial(_follow_ddl, project)
            changes = capture.ChangeLog(oceanbase, project, shapes, schemas, follow, pieces=True)
            yield Connected(changes, applier, between=comparison.when_due)


def _keep_read_only(mysql: Session, record: dict, project: str) -> None:
    """A restarted MySQL comes back writable: put back the read-only the switchover set, so the
    application cannot write to the old primary while OceanBase is the primary."""
    if (
        record.get("direction") == "switchover"
        and record.get("read_only_set")
        and not mysql.scalar("SELECT @@GLOBAL.read_only")
    ):
        mysql.execute("SET GLOBAL read_only = ON")
        log.warning("MySQL came back writable (restarted?); read_only is set again for %s", project)


def _follow_ddl(project: str, oceanbase: Session, shapes: dict, schemas: set) -> None:
    """After DDL on a captured table: capture its new columns at once, then pause until MySQL has them."""
    changed = recapture(oceanbase, project, shapes, schemas)
    if not changed:
        return
    names = ", ".join(f"{t.qualified} ({', '.join(_columns(t))})" for t in changed)
    raise DdlPaused(
        f"DDL on OceanBase changed {names}; the capture follows the new columns, MySQL does not yet",
        fix=f"apply the same change to the MySQL table(s), then {named('reverse resume', project)}",
        statement=names,
    )


class _Comparison:
    """The tables carried back by comparison, not by triggers (``engine.compared``): a pass over
    them between two reads of the change log, every ``switchover.compare_every_s``, recorded."""

    def __init__(self, sync: Sync, oceanbase: Session, mysql: Session, tables: list[TableMap]) -> None:
        self.sync, self.oceanbase, self.mysql, self.tables = sync, oceanbase, mysql, tables  # MySQL's names
        self.due = 0.0

    def when_due(self) -> None:
        if not self.tables or time.monotonic() < self.due:
            return
        done = compared.compare_pass(self.oceanbase, self.mysql, self.tables, self.sync.project)
        self.sync.state.save_mark(self.sync.project, compared.MARK, done)
        if done["rows"]:
            self.sync.meter.applied(done["rows"], 1, done["took_s"])
        self.due = time.monotonic() + self.sync.spec.switchover.compare_every_s


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


def _require_same_columns(forward: list[TableMap], reverse: Selection, project: str) -> None:
    """Refuse to apply while a table has other columns on OceanBase than on MySQL (DDL not followed)."""
    on_mysql = {(tm.schema, tm.name): _columns(tm.source, tm.columns) for tm in forward}
    for tm in reverse.tables:
        ob = tm.source
        if _columns(ob) != on_mysql[(ob.schema, ob.name)]:
            raise DdlPaused(
                f"{ob.qualified} has columns {_columns(ob)} on OceanBase but {on_mysql[(ob.schema, ob.name)]}"
                f" on MySQL ({tm.schema}.{tm.name})",
                fix=f"apply OceanBase's change to MySQL, then {named('reverse resume', project)}",
                statement=ob.qualified,
            )


def wait_caught_up(
    oceanbase: Session, mysql_session: Session, project: str, method: str, timeout: float = 120, last_pass=None
) -> None:
    """Return once every change OceanBase had committed when this was called is applied to MySQL.

    ``last_pass``: for tables carried back by comparison, a call that gives the state store's mark
    of the last finished pass; then a pass that began after this call must have finished too."""
    if method == BINLOG:
        forward_sync.wait_caught_up(oceanbase, mysql_session, project, timeout)
        return
    since, deadline = time.time(), time.monotonic() + timeout
    while capture.pending(oceanbase, project) or (last_pass and not compared.caught_up(last_pass(), since)):
        if time.monotonic() > deadline:
            raise SyncError(
                f"the reverse sync of {project} did not catch up within {timeout:.0f} s",
                fix=f"see {named('reverse status', project)}",
            )
        time.sleep(0.05)
