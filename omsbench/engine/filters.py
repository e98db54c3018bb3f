"""Row filters during sync: a change passes through the filter of its table, judged by the source.

The filter is the condition the full load used in its WHERE clause, and verify uses it too; a
Python imitation of SQL would disagree with the database on collations, dates and NULLs, and so
would literals sent to any server (they take the connection's collation, and an ENUM compared
with a number is its index only in an ENUM column). So the row images of a group are written,
once per table, into a temporary table of the source with the table's column types (as the
tracked schema has them at the change), and the source evaluates the condition over it (the
table named as the filter names it), exactly as the full load's SELECT did. (With ROW binlogs a
temporary table is not logged.) An update that moves a row into the filter becomes an insert,
one that moves it out becomes a delete.
"""

from __future__ import annotations

from dataclasses import replace

from omsbench.changes import Op, RowChange, Transaction
from omsbench.endpoints.catalog import Column, quote
from omsbench.endpoints.connection import Session
from omsbench.engine.tracker import Tracker

_BATCH = 500


def apply(session: Session, tracker: Tracker, group: list[Transaction]) -> None:
    """Rewrite the changes of filtered tables in place: drop, keep, or turn into insert/delete."""
    images: dict[tuple[str, str], list[dict]] = {}
    for txn in group:
        for change in txn.changes:
            tm = tracker.get(change.schema, change.table)
            if tm is not None and tm.filter:
                images.setdefault((change.schema, change.table), []).extend(
                    image for image in (change.before, change.after) if image is not None
                )
    if not images:
        return
    passing = {key: _evaluate(session, tracker, key, rows) for key, rows in images.items()}
    for txn in group:
        txn.changes = [
            c for change in txn.changes if (c := _judge(change, passing.get((change.schema, change.table)))) is not None
        ]


def _judge(change: RowChange, passing: set[int] | None) -> RowChange | None:
    if passing is None:
        return change
    before = change.before is not None and id(change.before) in passing
    after = change.after is not None and id(change.after) in passing
    if change.op is Op.UPDATE and before != after:
        if after:
            return replace(change, op=Op.INSERT, before=None)
        return replace(change, op=Op.DELETE, after=None)
    return change if (before or after) else None


def _evaluate(session: Session, tracker: Tracker, key: tuple[str, str], rows: list[dict]) -> set[int]:
    """ids of the images that satisfy the table's filter, written in batches of a few hundred rows."""
    tm = tracker.get(*key)
    table = tm.source
    scratch = "`omsbench`.`filter_rows`"  # beside the heartbeat: one grant (CREATE TEMPORARY TABLES) covers it
    names = [c.name for c in table.columns]
    session.execute(f"DROP TEMPORARY TABLE IF EXISTS {scratch}")
    columns = ", ".join(f"{quote(c.name)} {c.column_type}{_text(c)}" for c in table.columns)
    session.execute(f"CREATE TEMPORARY TABLE {scratch} (`__omsbench_row` INT, {columns})")
    try:
        literal = session.conn.escape
        for start in range(0, len(rows), _BATCH):
            values = (
                f"({i}, {', '.join(literal(rows[i].get(name)) for name in names)})"
                for i in range(start, min(start + _BATCH, len(rows)))
            )
            session.execute(f"INSERT INTO {scratch} VALUES {', '.join(values)}")
        found = session.query(f"SELECT `__omsbench_row` FROM {scratch} AS {quote(table.name)} WHERE {tm.filter}")
    finally:
        session.execute(f"DROP TEMPORARY TABLE IF EXISTS {scratch}")
    return {id(rows[i]) for (i,) in found}


def _text(column: Column) -> str:
    """A text column's character set and collation, as the table had them when the change was made
    (the source's table may have changed since: the sync reads behind it)."""
    return f" CHARACTER SET {column.charset} COLLATE {column.collation}" if column.collation else ""
