"""The schema of every synced table as of the stream's current position.

The binlog names no columns (MariaDB's default ``binlog_row_metadata`` is NO_LOG/MINIMAL and
decoding the FULL metadata costs a third of the reader's speed), so rows are mapped by position
onto a tracked schema. Reading the *source* catalog for it would be wrong whenever the stream
lags behind a DDL: the source already shows the future shape. The target, though, has had every
DDL applied at its point in the stream, so its catalog is the source's shape at the checkpoint.
The tracker takes the structure (column order, names, types, keys) from the target, maps names
back through the project's renames (foreign keys stay in target names: only the target acts on
them), and keeps the source's character sets, which the target may
have changed (latin1 -> utf8mb4) but the binlog bytes still use.
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace

from omsbench.endpoints import catalog
from omsbench.endpoints.catalog import BINARY_TYPES, SPATIAL_TYPES, Table
from omsbench.endpoints.connection import Session
from omsbench.engine.mapping import Selection, TableMap
from omsbench.exceptions import SyncError

_ATTEMPTS = 40


class Tracker:
    """Source (schema, table) -> TableMap whose ``source`` is the table's shape at the stream position."""

    def __init__(self, selection: Selection) -> None:
        self.selection = selection
        self.tables: dict[tuple[str, str], TableMap] = {}
        self.version = 0
        """Grows with every change of the tracked schemas, so users can cache what they derive."""

    def start(self, target: Session) -> None:
        found = catalog.read(target, set(self.selection.schemas.values()))
        for tm in self.selection.tables:
            on_target = found.tables.get((tm.schema, tm.name))
            if on_target is not None:
                self.tables[(tm.source.schema, tm.source.name)] = _follow(tm, on_target)
        self.version += 1

    def track_selection(self) -> None:
        """Take the selection's tables as they are, where no target catalog can say their shape
        (a message queue on one side): the selection was just read from the side that has one."""
        self.tables = {(tm.source.schema, tm.source.name): tm for tm in self.selection.tables}
        self.version += 1

    def get(self, schema: str, name: str) -> TableMap | None:
        return self.tables.get((schema, name))

    def source_table(self, schema: str, name: str) -> Table | None:
        """The source's shape of a followed table: what a binlog reader decodes its rows with."""
        tm = self.tables.get((schema, name))
        return tm.source if tm else None

    def refresh(self, target: Session, tm: TableMap) -> None:
        """Re-read one table after a DDL that keeps it (drops and renames use ``forget``).

        seekdb's catalog can miss a table for a moment after a DDL that rebuilds it (a column type
        change); forgetting the table then would drop its rows from the stream, so it is read again
        until it shows, and a table that never shows stops the sync.
        """
        for attempt in range(_ATTEMPTS):
            found = catalog.read(target, [tm.schema]).tables.get((tm.schema, tm.name))
            if found is not None and found.columns:
                self.tables[(tm.source.schema, tm.source.name)] = _follow(tm, found)
                self.version += 1
                return
            time.sleep(0.05 * (attempt + 1))
        raise SyncError(
            f"table {tm.qualified} is not in the target's catalog after a DDL on {tm.source.qualified}",
            fix="check the table on the target; resuming the sync reads it again",
        )

    def forget(self, schema: str, name: str) -> TableMap | None:
        self.version += 1
        return self.tables.pop((schema, name), None)


def _follow(tm: TableMap, on_target: Table) -> TableMap:
    """A TableMap with the target's structure under the source's names and character sets."""
    to_source = {target: source for source, target in tm.columns.items()}
    source_columns = {c.name: c for c in tm.source.columns}
    table = copy.deepcopy(on_target)
    table.schema, table.name = tm.source.schema, tm.source.name
    table.charset = tm.source.charset or on_target.charset
    for column in table.columns:
        column.name = to_source.get(column.name, column.name)
        before = source_columns.get(column.name)
        if column.data_type not in BINARY_TYPES | SPATIAL_TYPES and column.charset:
            column.charset = before.charset if before and before.charset else table.charset or column.charset
    table.primary_key = [to_source.get(c, c) for c in on_target.primary_key]
    for index in table.indexes:
        index.columns = [(to_source.get(c, c), prefix) for c, prefix in index.columns]
    columns = {c.name: tm.columns.get(c.name, c.name) for c in table.columns}
    return replace(tm, source=table, columns=columns)
