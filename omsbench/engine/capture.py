"""Change capture on OceanBase by triggers: what reverse sync reads, since seekdb has no binlog.

Row triggers (AFTER INSERT/UPDATE/DELETE) on each migrated table write the change into
``omsbench.change_log`` in the same transaction as the change, so a change is captured exactly
when it commits, tagged with ``ob_transaction_id()`` so the reader can apply whole
transactions. Sessions carrying :data:`~omsbench.engine.apply.APPLIER_MARK` (omsbench's own
forward applier) are skipped, so nothing omsbench writes comes back.

Row images are JSON objects whose values keep their exact text: binary as hex, TIMESTAMP as
epoch seconds (the writer's time zone does not matter), DECIMAL, date and time types as their
SQL text. seekdb fails every write to a table with a spatial column once it has any trigger, so
such tables get no triggers (:func:`uncapturable` names them): the reverse sync compares them instead
(``engine.compared``).
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from omsbench.changes import PIECE_ROWS, Op, RowChange, Transaction
from omsbench.endpoints import oceanbase
from omsbench.endpoints.catalog import BINARY_TYPES, SPATIAL_TYPES, Column, Table, quote
from omsbench.endpoints.connection import Session
from omsbench.endpoints.position import BinlogPosition
from omsbench.engine import own_tables
from omsbench.engine.apply import APPLIER_MARK, KEYS_PER_STATEMENT, in_list
from omsbench.exceptions import StateError, SyncError

POSITION_FILE = "change_log"
"""Reverse positions are ``change_log:<last seq>``: there is no binlog file on this side."""
_OPS = {"I": (Op.INSERT, None, "NEW"), "U": (Op.UPDATE, "OLD", "NEW"), "D": (Op.DELETE, "OLD", None)}
_EVENTS = {"I": "INSERT", "U": "UPDATE", "D": "DELETE"}
_MARK_VARIABLE = APPLIER_MARK.split()[1]  # @omsbench_applier
log = logging.getLogger(__name__)


def uncapturable(tables: list[Table]) -> dict[str, str]:
    """Tables that triggers cannot capture, with why."""
    found = {}
    for table in tables:
        spatial = [c.name for c in table.columns if c.data_type in SPATIAL_TYPES]
        if spatial:
            found[table.qualified] = (
                f"spatial column(s) {', '.join(spatial)}: seekdb refuses every write to a table with a spatial"
                " column once it has a trigger"
            )
    return found


def _prefix(project: str, schema: str, table: str) -> str:
    return f"omsbench_{zlib.crc32(f'{project}{chr(0)}{schema}{chr(0)}{table}'.encode()):08x}_"


def trigger_name(project: str, table: Table, op: str, version: int) -> str:
    return f"{_prefix(project, table.schema, table.name)}{op.lower()}_v{version}"


def _value(column: Column, row: str) -> str:
    ref = f"{row}.{quote(column.name)}"
    kind = column.data_type
    if kind in BINARY_TYPES:
        return f"HEX({ref})"
    if kind == "timestamp":
        return f"CAST(UNIX_TIMESTAMP({ref}) AS CHAR)"
    if kind == "bit":
        return f"{ref} + 0"
    if kind in ("decimal", "date", "datetime", "time", "year", "enum", "set", "json"):
        return f"CAST({ref} AS CHAR)"
    return ref  # integers, floats (as doubles) and strings keep their JSON form


def _image(table: Table, row: str | None) -> str:
    if row is None:
        return "NULL"
    pairs = ", ".join(f"'{c.name}', {_value(c, row)}" for c in table.columns if not c.generated)
    return f"JSON_OBJECT({pairs})"


def trigger_sql(project: str, table: Table, op: str, version: int) -> str:
    _, before, after = _OPS[op]
    values = ", ".join(
        [
            f"'{project}'",
            "ob_transaction_id()",
            f"'{table.schema}'",
            f"'{table.name}'",
            f"'{op}'",
            _image(table, before),
            _image(table, after),
            "UNIX_TIMESTAMP(NOW(6))",
            str(version),
        ]
    )
    return (
        f"CREATE TRIGGER {quote(trigger_name(project, table, op, version))} AFTER {_EVENTS[op]} ON"
        f" {quote(table.schema)}.{quote(table.name)} FOR EACH ROW BEGIN IF {_MARK_VARIABLE} IS NULL THEN"
        " INSERT INTO `omsbench`.`change_log`"
        " (project, trx, schema_name, table_name, op, before_image, after_image, at, version)"
        f" VALUES ({values}); END IF; END"
    )


def _versions(session: Session, project: str, table: Table) -> list[tuple[str, int]]:
    """The capture triggers a table has now: (name, version)."""
    rows = session.query(
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s AND EVENT_OBJECT_TABLE = %s",
        (table.schema, table.name),
    )
    prefix = _prefix(project, table.schema, table.name)
    return [(r[0], int(r[0].rsplit("_v", 1)[1])) for r in rows if r[0].startswith(prefix) and "_v" in r[0]]


def install(session: Session, project: str, tables: list[Table]) -> list[str]:
    """Give every table capture triggers for its current columns; return their names.

    Triggers cannot be replaced atomically on seekdb, so a new version is created beside the
    old one before the old one is dropped. A transaction in between is captured by both; the
    reader keeps only the newest version's rows of each transaction, so nothing is lost or doubled.
    """
    own_tables.ensure(session, own_tables.CHANGE_LOG)
    names = []
    for table in tables:
        session.execute(f"USE {quote(table.schema)}")  # seekdb creates triggers in the current database only
        old = _versions(session, project, table)
        version = max((v for _, v in old), default=0) + 1
        for op in _OPS:
            session.execute(trigger_sql(project, table, op, version))
            names.append(f"{table.schema}.{trigger_name(project, table, op, version)}")
        for name, _ in old:
            session.execute(f"DROP TRIGGER IF EXISTS {quote(table.schema)}.{quote(name)}")
    return names


def installed(session: Session, project: str) -> list[tuple[str, str]]:
    """(schema, name) of the project's capture triggers on any table.

    Found by name rather than from the tables the project captures now: a table left out since,
    or renamed, keeps its triggers until they are dropped.
    """
    return [
        (schema, name)
        for schema, name, table in session.query(
            "SELECT TRIGGER_SCHEMA, TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS"
        )
        if name.startswith(_prefix(project, schema, table))
    ]


def remove(session: Session, project: str) -> list[str]:
    """Drop every capture trigger of the project; return their names."""
    found = installed(session, project)
    for schema, name in found:
        session.execute(f"DROP TRIGGER IF EXISTS {quote(schema)}.{quote(name)}")
    return [f"{schema}.{name}" for schema, name in found]


def columns_fingerprint(session: Session, schemas: set[str]) -> tuple:
    """What changes when a table in ``schemas`` gains, loses or changes a column: a cheap query
    (a fraction of a catalog read), so the capture can look before every read."""
    marks = ", ".join(["%s"] * len(schemas))
    return tuple(
        session.query(
            "SELECT COUNT(*), SUM(CRC32(CONCAT_WS('.', TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE)))"
            f" FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN ({marks})",
            tuple(schemas),
        )[0]
    )


def pending(session: Session, project: str) -> int:
    """Changes captured and not yet purged: 0 means the reverse sync has applied everything."""
    return int(session.scalar("SELECT COUNT(*) FROM `omsbench`.`change_log` WHERE project = %s", (project,)))


def waiting(session: Session, project: str, limit: int) -> list[tuple[int, int]]:
    """Up to ``limit`` committed transactions, in commit order: (id, rows captured).

    A transaction's rows become visible together when it commits, so asking for all rows of the
    transactions seen is asking for whole ones. Their order is that of their last captured row:
    a transaction that waited for another's row lock wrote that row, and so its last row, after
    the other had committed, which is the order the applier must keep.
    """
    return [
        (int(trx), int(rows))
        for trx, rows in session.query(
            "SELECT trx, COUNT(*) FROM `omsbench`.`change_log` WHERE project = %s GROUP BY trx ORDER BY MAX(seq)"
            " LIMIT %s",
            (project, limit),
        )
    ]


def read(session: Session, project: str, tables: dict[tuple[str, str], Table], ids: list[int]) -> list[Transaction]:
    """The transactions ``waiting`` listed, whole, in commit order."""
    marks = ", ".join(["%s"] * len(ids))
    rows = session.query(
        "SELECT seq, trx, schema_name, table_name, op, before_image, after_image, at, version"
        f" FROM `omsbench`.`change_log` WHERE project = %s AND trx IN ({marks}) ORDER BY seq",
        (project, *ids),
    )
    transactions = _transactions(rows, tables)
    _complete(session, transactions, tables)
    return sorted(transactions, key=lambda txn: txn.position.pos)


def read_pieces(
    session: Session, project: str, tables: dict[tuple[str, str], Table], trx: int, rows: int
) -> Iterator[Transaction]:
    """One large transaction of ``rows`` rows in pieces of ``PIECE_ROWS``, in capture order; the last
    has ``more`` False. Only the pieces being applied are held, not the whole transaction."""
    newest = {
        (trx, schema, name): version
        for schema, name, version in session.query(
            "SELECT schema_name, table_name, MAX(version) FROM `omsbench`.`change_log`"
            " WHERE project = %s AND trx = %s GROUP BY schema_name, table_name",
            (project, trx),
        )
    }
    after, read_rows = 0, 0
    while read_rows < rows:
        page = session.query(
            "SELECT seq, trx, schema_name, table_name, op, before_image, after_image, at, version"
            " FROM `omsbench`.`change_log` WHERE project = %s AND trx = %s AND seq > %s ORDER BY seq LIMIT %s",
            (project, trx, after, PIECE_ROWS),
        )
        if not page:
            raise StateError(f"change log rows of OceanBase transaction {trx} went missing while read")
        read_rows, after = read_rows + len(page), page[-1][0]
        (piece,) = _transactions(page, tables, newest)
        _complete(session, [piece], tables)
        piece.more = read_rows < rows
        yield piece


def purge(session: Session, project: str, transactions: list[str]) -> None:
    """Delete the changes of applied transactions (by id); MySQL already holds them with its checkpoint."""
    ids = [int(trx) for trx in transactions]
    for start in range(0, len(ids), 1000):
        marks = ", ".join(["%s"] * len(ids[start : start + 1000]))
        with oceanbase.naming_orphans(session, SyncError):
            session.execute(
                f"DELETE FROM `omsbench`.`change_log` WHERE project = %s AND trx IN ({marks})",
                (project, *ids[start : start + 1000]),
            )


IDLE = 0.02
"""Seconds between polls of an empty change log: the floor of the capture's lag."""
SCHEMA_POLL = 2.0
"""Seconds between looks at OceanBase's catalog for DDL on the captured tables while none change."""
TRANSACTIONS_PER_READ = 2000
"""Transactions applied in one commit at most, when the change log holds a backlog."""


class ChangeLog:
    """The change log as the source of a sync (``sync.ChangeSource``): the reverse sync's (into
    MySQL) and OceanBase to a queue's, each with its own way of following DDL (``follow_ddl``,
    called with the session, the captured tables' shapes and their schemas).

    Before a read it looks at the captured tables' columns (``columns_fingerprint``), after it
    listed what waits: a change made after a DDL is then read knowing the columns the DDL gave.
    ``pieces``: the sink takes a transaction of more than ``PIECE_ROWS`` rows piece by piece.
    """

    def __init__(
        self,
        session: Session,
        project: str,
        shapes: dict[tuple[str, str], Table],
        schemas: set[str],
        follow_ddl: Callable[[Session, dict, set], None],
        pieces: bool,
    ) -> None:
        self.session, self.project, self.shapes, self.schemas = session, project, shapes, schemas
        self.follow_ddl, self.pieces = follow_ddl, pieces
        self._looked, self._columns = 0.0, None
        self._reading: Iterator[Transaction] | None = None
        """The pieces of the large transaction being read."""

    def next(self, rows: int) -> list[Transaction]:
        """Whole transactions up to ``rows`` rows (and ``PIECE_ROWS``: a read holds them all), or
        the next piece of a large one; the last of a group carries its commit time as the lag sample."""
        if self._reading is None:
            listed = self._waiting()
            if not listed:
                time.sleep(IDLE)
                return []
            trx, count = listed[0]
            if not (self.pieces and count > PIECE_ROWS):
                group = self._read(listed, min(rows, PIECE_ROWS))
                group[-1].heartbeat = group[-1].commit_ts
                return group
            self._reading = read_pieces(self.session, self.project, self.shapes, trx, count)
        piece = next(self._reading)
        if not piece.more:
            self._reading = None
            piece.heartbeat = piece.commit_ts
        return [piece]

    def applied(self, group: list[Transaction]) -> None:
        purge(self.session, self.project, [t.gtid for t in group])

    def _waiting(self) -> list[tuple[int, int]]:
        listed = waiting(self.session, self.project, TRANSACTIONS_PER_READ)
        if listed or time.monotonic() - self._looked > SCHEMA_POLL:
            now = columns_fingerprint(self.session, self.schemas)
            if now != self._columns:
                self.follow_ddl(self.session, self.shapes, self.schemas)
            self._looked, self._columns = time.monotonic(), now
        return listed

    def _read(self, listed: list[tuple[int, int]], rows: int) -> list[Transaction]:
        """The first listed transactions that hold ``rows`` rows together (at least one), whole."""
        ids, total = [], 0
        for trx, count in listed:
            if ids and total + count > rows:
                break
            ids.append(trx)
            total += count
        return read(self.session, self.project, self.shapes, ids)


def _transactions(
    rows: list[tuple], tables: dict[tuple[str, str], Table], newest: dict[tuple, int] | None = None
) -> list[Transaction]:
    """Rows of several transactions, interleaved by seq, grouped by transaction; each ends at its last row.

    A transaction that ran while a table's triggers were being replaced was captured by both
    versions: only the newest version's rows of that table count (``newest``: (trx, schema,
    table) -> version, when ``rows`` are not all of the transaction's).
    """
    if newest is None:
        newest = {}
        for _, trx, schema, name, *_rest, version in rows:
            newest[(trx, schema, name)] = max(version, newest.get((trx, schema, name), 0))
    by_trx: dict[int, Transaction] = {}
    read_at = datetime.now(timezone.utc).timestamp()
    for seq, trx, schema, name, op, before, after, at, version in rows:
        txn = by_trx.get(trx)
        if txn is None:
            txn = by_trx[trx] = Transaction(BinlogPosition(POSITION_FILE, seq), float(at), read_at, str(trx))
        txn.position = BinlogPosition(POSITION_FILE, max(seq, txn.position.pos))
        txn.commit_ts = max(txn.commit_ts, float(at))
        table = tables.get((schema, name))
        if table is None or version != newest[(trx, schema, name)]:
            continue  # a table left out of reverse sync, or a copy from triggers being replaced
        kind, _, _ = _OPS[op]
        before_row, after_row = _decode(before, table), _decode(after, table)
        key = tuple((after_row or before_row)[c] for c in table.key) if table.key else None
        txn.changes.append(RowChange(schema, name, kind, before_row, after_row, key))
    return list(by_trx.values())


def _decode(image: str | None, table: Table) -> dict | None:
    """The row's values; a column the table gained after this change was captured is missing."""
    if image is None:
        return None
    values = json.loads(image, parse_float=Decimal)
    return {c.name: _typed(values[c.name], c.data_type) for c in table.columns if not c.generated and c.name in values}


def _complete(session: Session, transactions: list[Transaction], tables: dict[tuple[str, str], Table]) -> None:
    """Give the changes captured without some of their table's columns the row's current values of them.

    Triggers name their columns, so a column added on OceanBase is captured only by triggers
    built after the DDL, and seekdb lists a new trigger a moment before writes fire it. A change
    made in between lacks the column; the value the row holds now is the one to send, since every
    later change of the row follows in the change log (a row gone since takes NULL: its delete
    follows). A keyless row cannot be looked up and takes NULL, with a warning.
    """
    short: dict[tuple[str, str], list[RowChange]] = defaultdict(list)
    widths = {name: len(table.stored_columns) for name, table in tables.items()}
    for txn in transactions:
        for change in txn.changes:
            width = widths[(change.schema, change.table)]
            if any(image is not None and len(image) < width for image in (change.before, change.after)):
                short[(change.schema, change.table)].append(change)
    for name, changes in short.items():
        table = tables[name]
        if not table.key:
            log.warning("%d change(s) of keyless %s lack new columns, set to NULL", len(changes), table.qualified)
        now = _current(session, table, {c.key for c in changes}) if table.key else {}
        names = [c.name for c in table.stored_columns]
        for change in changes:
            values = now.get(change.key) or {}
            for image in (i for i in (change.before, change.after) if i is not None):
                for column in names:
                    image.setdefault(column, values.get(column))


def _current(session: Session, table: Table, keys: set[tuple]) -> dict[tuple, dict]:
    """The rows of ``keys`` as they are now, decoded like a captured image, by key."""
    keys, found = list(keys), {}
    for start in range(0, len(keys), KEYS_PER_STATEMENT):
        for (image,) in session.query(
            f"SELECT {_image(table, 't')} FROM {quote(table.schema)}.{quote(table.name)} t"
            f" WHERE {in_list(session, table.key, keys[start : start + KEYS_PER_STATEMENT])}"
        ):
            values = _decode(image, table)
            found[tuple(values[c] for c in table.key)] = values
    return found


def _typed(value, kind: str):
    if value is None:
        return None
    if kind in BINARY_TYPES:
        return bytes.fromhex(value)
    if kind == "timestamp":
        seconds = Decimal(value)
        whole = int(seconds)
        return datetime(1970, 1, 1) + timedelta(seconds=whole, microseconds=int((seconds - whole) * 1_000_000))
    if kind in ("float", "double"):
        return float(value)
    return value
