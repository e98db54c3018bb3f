"""Binlog -> change model: whole source transactions, with rows named by the tables the caller tracks.

python-mysql-replication decodes row events; without FULL row metadata it knows neither column
names, signedness, ENUM/SET labels nor character sets. Before each table's rows are decoded
this module fills those in from the table's catalog entry, then fixes the few values the library
decodes wrongly or loosely (negative fractional TIME, BIT as text, YEAR 0, empty SET) so each
image carries exactly what the source row holds. The engine hands it which tables to follow
(``tables``) and which tables are its own bookkeeping (``Marks``), and receives transactions of
the change model (``omsbench.changes``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import pymysql
from pymysqlreplication.constants.NONE_SOURCE import EMPTY_SET
from pymysqlreplication.event import MariadbGtidEvent, QueryEvent, RotateEvent, XidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent

from omsbench.actions import named
from omsbench.changes import PIECE_ROWS, Ddl, Op, RowChange, Transaction
from omsbench.endpoints import binlog_rows, charsets
from omsbench.endpoints.binlog import open_stream
from omsbench.endpoints.catalog import BINARY_TYPES, SPATIAL_TYPES, Table
from omsbench.endpoints.connection import Dsn, Flavor, mask_statement
from omsbench.endpoints.position import BinlogPosition
from omsbench.exceptions import BinlogPurged, SyncError


@dataclass(frozen=True)
class Marks:
    """omsbench's own tables, as the reader meets them in the stream (``engine.own_tables`` names them)."""

    heartbeat: tuple[str, str]
    """A row per project rewritten on the source: its replay measures the lag."""
    echo: tuple[str, str]
    """Written inside every transaction the reverse sync applies: the reader drops those
    transactions' changes, so they never go back to OceanBase."""
    applied: frozenset[tuple[str, str]]
    """Every binlog applier writes its checkpoint row, or a parallel apply's other sessions their
    mark row, inside each transaction it applies. A reader drops the transactions that wrote its
    own project's row: when both servers have a binlog and a sync runs each way, neither direction
    replays what the other applied."""


_HEARTBEAT = Table("", "heartbeat", columns=[], primary_key=["project"])
_ECHO = Table("", "echo")
_APPLIED = Table("", "applied")
"""Stand-ins a decoder of one of omsbench's own tables is known by."""
_CANNOT_SERVE = 1236  # the server cannot send the binlog from there: purged, or an unknown GTID
_NOT_DDL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|XA |SAVEPOINT|FLUSH|SET |#)", re.IGNORECASE)
_LABEL = re.compile(r"'((?:[^']|'')*)'")


def labels(column_type: str) -> list[str]:
    """ENUM/SET labels in definition order, from information_schema's COLUMN_TYPE."""
    return [m.replace("''", "'") for m in _LABEL.findall(column_type)]


def _fix_time(value: timedelta) -> timedelta:
    """The library adds the fraction of a negative TIME the wrong way round: -1.25 arrives as -0.75."""
    if value < timedelta(0) and value.microseconds:
        return value + timedelta(microseconds=1_000_000 - 2 * value.microseconds)
    return value


def _converter(column) -> Callable | None:
    kind = column.data_type
    if kind == "bit":
        return lambda v: int(v, 2)
    if kind == "time":
        return _fix_time
    if kind == "year":
        return lambda v: 0 if v == 1900 else v
    if kind == "set":
        order = labels(column.column_type)
        return lambda v: ",".join(label for label in order if label in v)
    return None


class Decoder:
    """Per table: the library's column metadata and the value fixes, prepared once per schema."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.names = [c.name for c in table.columns]
        self.fixes = [(c.name, f) for c in table.columns if (f := _converter(c))]
        self.sets = [c.name for c in table.columns if c.data_type == "set"]
        self.key = table.key
        self.readers: binlog_rows.Plan | None = None
        self.where = (table.schema, table.name)
        """The table's names as the binlog's table map gives them."""

    def patch(self, event: TableMapEvent) -> None:
        if len(event.columns) != len(self.table.columns):
            raise SyncError(
                f"binlog rows of {self.table.qualified} have {len(event.columns)} columns, the tracked schema"
                f" has {len(self.table.columns)}: a DDL on this table was not seen by the sync",
                fix="run a new full migration of this table, or restore the missing DDL on the target",
            )
        for col, meta in zip(event.columns, self.table.columns, strict=True):
            col.name = meta.name
            col.unsigned = "unsigned" in meta.column_type
            binary = meta.data_type in BINARY_TYPES | SPATIAL_TYPES or not meta.charset or meta.charset == "binary"
            col.character_set_name = "binary" if binary and meta.data_type != "json" else self._codec(meta)
            if meta.data_type == "enum":
                col.enum_values = ["", *labels(meta.column_type)]
            elif meta.data_type == "set":
                col.set_values = labels(meta.column_type)
        self.readers = binlog_rows.plan(event.columns)
        self.where = (event.schema, event.table)

    def _codec(self, column) -> str:
        codec = charsets.codec(column.charset)
        if codec is None:
            raise SyncError(
                f"column {column.name} of {self.table.qualified} is in character set {column.charset}, which"
                " omsbench cannot decode as the server does",
                fix=f"convert the column to utf8mb4 on the source, or leave {self.table.qualified} out of the project",
            )
        return codec

    def images(self, event) -> list:
        """The library's rows of ``event`` as :func:`binlog_rows.images` gives them: value dicts, or
        (before, after) pairs for updates, with the values it decodes loosely fixed."""
        update = isinstance(event, UpdateRowsEvent)
        bitmaps = [event.columns_present_bitmap, *([event.columns_present_bitmap2] if update else [])]
        if not all(binlog_rows.full_image(b, event.number_of_columns) for b in bitmaps):
            raise SyncError(
                f"a change to {self.table.qualified} was logged without its full row (binlog_row_image is not"
                " FULL in the session that made it): applying it would overwrite the missing columns",
                fix="set binlog_row_image=FULL for every session on the source (globally, and where applications"
                " set it themselves), then run a new full migration of this table",
            )
        if update:
            image = self.image
            return [
                (image(r["before_values"], r["before_none_sources"]), image(r["after_values"], r["after_none_sources"]))
                for r in event.rows
            ]
        return [self.image(r["values"], r["none_sources"]) for r in event.rows]

    def image(self, values: dict, none_sources: dict) -> dict:
        for name, fix in self.fixes:
            if values[name] is not None:
                values[name] = fix(values[name])
        for name in self.sets:  # the library gives None for an empty SET and says why aside
            if values[name] is None and none_sources.get(name) == EMPTY_SET:
                values[name] = ""
        return values

    def key_of(self, image: dict) -> tuple | None:
        return tuple(image[c] for c in self.key) if self.key else None


class BinlogReader:
    """Iterate whole transactions from ``start``; rows of tables ``tables`` does not give are dropped.

    With ``pieces``, a transaction that grows past ``PIECE_ROWS`` rows goes out in pieces as it is
    read (``Transaction.more``), so that memory does not grow with a batch job's million-row
    UPDATE; the applier keeps one target transaction open until the last piece.
    """

    def __init__(
        self,
        dsn: Dsn,
        flavor: Flavor,
        server_id: int,
        tables: Callable[[str, str], Table | None],
        marks: Marks,
        project: str,
        start: BinlogPosition,
        skip_before: float | None = None,
        blocking: bool = True,
        pieces: Callable[[Transaction], None] | None = None,
    ) -> None:
        self.dsn, self.flavor, self.server_id = dsn, flavor, server_id
        self.tables, self.marks, self.project, self.start = tables, marks, project, start
        self.skip_before, self.blocking = skip_before, blocking
        self.pieces = pieces if skip_before is None else None  # a piece must never belong to a skipped transaction
        self.gtids = _gtid_state(start.gtid)
        """MariaDB's GTID position, domain -> last GTID: what a checkpoint needs to resume by GTID."""
        self.stream = None
        self._changes: list[RowChange] = []
        self._gtid: str | None = None
        self._echo = False
        """The open transaction wrote this project's mark: one it applied itself, not to replay."""
        self._pieced = False
        """Pieces of the open transaction went out already."""
        self._decoders: dict[int, Decoder | None] = {}

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None

    def transactions(self) -> Iterator[Transaction]:
        try:
            yield from self._transactions()
        except pymysql.err.OperationalError as err:
            if err.args[0] != _CANNOT_SERVE:
                raise
            raise BinlogPurged(
                f"the source cannot send the binlog from {self.start}: {err.args[-1]}",
                fix=f"run a new full migration ({named('full', self.project, '--restart')}), and keep binlogs"
                " longer than a sync"
                " may stay stopped",
            ) from err

    def _transactions(self) -> Iterator[Transaction]:
        self.stream = stream = open_stream(
            self.dsn, self.flavor, self.server_id, self.start, self.blocking, take=self._take
        )
        heartbeat, file = None, None
        for event in stream:
            if isinstance(event, RotateEvent):
                # Table ids live as long as a server run. A new file may follow a restart that gave
                # old ids to other tables, and a shut-down server ends its file without the rotate
                # that makes the library forget them: decoding with the old map fails or, worse, fits.
                # A rotate to the same file is the library reconnecting inside it, maybe inside a
                # transaction whose table maps came before: those still hold.
                if event.next_binlog != file:
                    self._decoders.clear()
                    stream.table_map.clear()
                file = event.next_binlog
                continue
            if isinstance(event, MariadbGtidEvent):
                heartbeat = None
                self._begin(event.gtid)
                self.gtids[event.domain_id] = event.gtid
            elif isinstance(event, TableMapEvent):
                self._decoders[event.table_id] = self._decoder(event)
            elif isinstance(event, WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent):
                decoder = self._decoders.get(event.table_id)
                if decoder is None:
                    continue
                if decoder.table is _HEARTBEAT:
                    heartbeat = self._heartbeat(event) or heartbeat
                elif decoder.table is _ECHO:
                    self._echo = True
                elif decoder.table is _APPLIED:
                    self._echo = self._echo or self._ours(event) is not None
                else:
                    self._add(_changes(type(event), decoder.images(event), decoder))
            elif isinstance(event, XidEvent) or (isinstance(event, QueryEvent) and _is_commit(event.query)):
                yield from self._emit(event, stream, [] if self._echo else self._changes, None, heartbeat)
                heartbeat = None
                self._begin(None)
            elif isinstance(event, QueryEvent) and not _NOT_DDL.match(event.query):
                schema = event.schema.decode() if isinstance(event.schema, bytes) else event.schema
                statement = mask_statement(event.query)
                yield from self._emit(event, stream, [], Ddl(schema or None, statement), None)
                heartbeat = None
                self._begin(None)

    def _begin(self, gtid: str | None) -> None:
        self._gtid, self._echo, self._pieced = gtid, False, False
        self._changes = []

    def _add(self, changes: list[RowChange]) -> None:
        """Collect a rows event's changes; hand a large transaction's rows on as a piece."""
        self._changes += changes
        if self.pieces is not None and len(self._changes) >= PIECE_ROWS and not self._echo:
            inside = BinlogPosition(self.stream.log_file, self.stream.log_pos, None)
            self.pieces(Transaction(inside, 0.0, time.time(), self._gtid, self._changes, more=True))
            self._changes, self._pieced = [], True

    def _take(self, packet: bytes, checksum: bool) -> bool:
        """Decode a rows event from its packet when the table's readers are planned; drop one of a
        table the sync does not follow, and a table map already seen (the library ignores those too:
        ``freeze_schema``). Everything else goes on to the library."""
        table_id = binlog_rows.table_id(packet)
        if table_id not in self._decoders:
            return False
        decoder = self._decoders[table_id]
        if packet[5] != binlog_rows.TABLE_MAP and decoder is not None and not self._decode(packet, checksum, decoder):
            return False
        self.stream.log_pos = binlog_rows.next_position(packet)  # where the library resumes after a reconnect
        return True

    def _decode(self, packet: bytes, checksum: bool, decoder: Decoder) -> bool:
        decoded = decoder.readers and binlog_rows.images(packet, checksum, decoder.readers)
        if decoded:
            self._add(_changes(*decoded, decoder))
        return bool(decoded)

    def _emit(self, event, stream, changes, ddl, heartbeat) -> Iterator[Transaction]:
        if self.skip_before is not None and event.timestamp < int(self.skip_before):
            return  # binlog timestamps are whole seconds: start with the second the user named
        gtid = self._gtid
        state = ",".join(self.gtids[d] for d in sorted(self.gtids)) or gtid
        self.start = BinlogPosition(stream.log_file, stream.log_pos, state)
        if changes or ddl or heartbeat is not None or self._pieced:  # the last piece ends what the others began
            yield Transaction(
                self.start, float(event.timestamp), time.time(), gtid, changes, ddl, heartbeat,
                drop_pieces=self._pieced and self._echo,
            )  # fmt: skip

    def _decoder(self, event: TableMapEvent) -> Decoder | None:
        """A decoder for a followed table, or one of omsbench's own; None for any other."""
        where = (event.schema, event.table)
        if where == self.marks.heartbeat:
            _name_first_columns(event, ("project", "ts"))
            return Decoder(_HEARTBEAT)
        if where == self.marks.echo:
            return Decoder(_ECHO)
        if where in self.marks.applied:
            _name_first_columns(event, ("project",))
            return Decoder(_APPLIED)
        table = self.tables(*where)
        if table is None:
            return None
        decoder = Decoder(table)
        decoder.patch(event)
        return decoder

    def _heartbeat(self, event) -> float | None:
        values = self._ours(event)
        return float(values["ts"]) if values else None

    def _ours(self, event) -> dict | None:
        """The first row image of ``event`` that belongs to this project (omsbench's own tables)."""
        for row in event.rows:
            values = row.get("after_values") or row.get("values")
            if values and values.get("project") == self.project:
                return values
        return None


def _name_first_columns(event: TableMapEvent, names: tuple[str, ...]) -> None:
    """omsbench's own tables are decoded without a tracked schema: name the columns it reads."""
    for col, name in zip(event.columns, names, strict=False):
        col.name, col.character_set_name = name, "utf8mb4"


def _gtid_state(text: str | None) -> dict[int, str]:
    """``0-1-5,1-1-9`` -> {0: '0-1-5', 1: '1-1-9'} (MariaDB GTIDs are domain-server-sequence)."""
    return {int(g.split("-")[0]): g.strip() for g in (text or "").split(",") if g.strip().count("-") == 2}


def _is_commit(query: str) -> bool:
    return query.strip().upper() == "COMMIT"


def _changes(kind: type, images: list, decoder: Decoder) -> list[RowChange]:
    schema, name, key_of = *decoder.where, decoder.key_of
    if kind is WriteRowsEvent:
        return [RowChange(schema, name, Op.INSERT, None, after, key_of(after)) for after in images]
    if kind is DeleteRowsEvent:
        return [RowChange(schema, name, Op.DELETE, before, None, key_of(before)) for before in images]
    return [RowChange(schema, name, Op.UPDATE, before, after, key_of(after)) for before, after in images]
