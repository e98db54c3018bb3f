"""The change model: what every reader produces and every sink consumes.

The binlog reader, the OceanBase capture of reverse sync and a Kafka consumer all turn what
they read into :class:`Transaction` values; the database applier and the queue sinks take
them. Row images are dicts keyed by *source* column names, with Python values as pymysql
sends them (int, Decimal, str, bytes, date/datetime/timedelta, float, None), so any sink can
encode them without knowing where they came from.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass, field
from enum import Enum

from omsbench.endpoints.position import BinlogPosition


def _by_fields(self) -> tuple:
    """Pickle as a call of the constructor with the fields in order.

    Transactions cross from the binlog reader's process to the applier pickled; the dataclass
    default (a state list set back field by field) took 2.5 times as long to pickle (measured on
    sysbench rows), time the reader, the sync's bottleneck, spent on every row.
    """
    return type(self), _fields(type(self))(self)


@functools.cache
def _fields(cls: type) -> operator.attrgetter:
    return operator.attrgetter(*cls.__slots__)


class Op(str, Enum):
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(slots=True)
class RowChange:
    schema: str
    table: str
    op: Op
    before: dict | None
    """The full row before an update or delete (None for an insert)."""
    after: dict | None
    """The full row after an insert or update (None for a delete)."""
    key: tuple | None
    """Primary-key values of the row (after image for inserts and updates), None for keyless tables."""

    __reduce__ = _by_fields


@dataclass(slots=True)
class Ddl:
    schema: str | None
    """The session's current database when the statement ran: unqualified names refer to it."""
    statement: str


PIECE_ROWS = 10_000
"""Rows of a large transaction a reader holds before it hands them on as a piece (``Transaction.more``)."""


@dataclass(slots=True)
class Transaction:
    """One source transaction, whole: the applier never splits it across target commits. A large
    one arrives in pieces (``more``), which the applier keeps in one open target transaction.

    ``position`` is where the stream continues after this transaction, the value a checkpoint
    stores. ``commit_ts`` is the source's commit time in seconds; ``read_at`` the reader's clock
    when the transaction was decoded, the boundary between the read and apply lag stages.
    """

    position: BinlogPosition
    commit_ts: float
    read_at: float
    gtid: str | None = None
    changes: list[RowChange] = field(default_factory=list)
    ddl: Ddl | None = None
    heartbeat: float | None = None
    """Set when the transaction carries a heartbeat: the reader-host time it was written."""
    more: bool = False
    """A piece of a large transaction: more of it follows, and its last piece (``more`` False)
    ends it. ``position`` lies inside the transaction; only the last piece's may be checkpointed."""
    drop_pieces: bool = False
    """On a last piece: the transaction turned out to be one this project applied itself (see
    ``binlog_reader.Marks.applied``); the pieces before it must be rolled back, not committed."""

    __reduce__ = _by_fields

    @property
    def rows(self) -> int:
        return len(self.changes)
