"""Row filters during sync: a change passes through the filter of its table, judged by SQL itself.

The filter is the condition the full load used in its WHERE clause; evaluating it with a Python
imitation of SQL would disagree with the database on collations, dates and NULLs. So the row
images of a group are sent once per table as a derived table of typed literals and the server
evaluates the condition, exactly as the full load's SELECT did. An update that moves a row into
the filter becomes an insert, one that moves it out becomes a delete.
"""

from __future__ import annotations

from dataclasses import replace

from omsbench.endpoints.catalog import Column, quote
from omsbench.endpoints.connection import Session
from omsbench.engine.changes import Op, RowChange, Transaction
from omsbench.engine.tracker import Tracker

_BATCH = 500
_CASTS = {"date": "DATE", "datetime": "DATETIME(6)", "timestamp": "DATETIME(6)", "time": "TIME(6)"}


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
    """ids of the images that satisfy the table's filter, asked in batches of a few hundred rows."""
    tm = tracker.get(*key)
    literal = session.conn.escape
    passing = set()
    for start in range(0, len(rows), _BATCH):
        selects = [
            f"SELECT {i} AS `__omsbench_row`, "
            + ", ".join(f"{_typed(c, literal(rows[i].get(c.name)))} AS {quote(c.name)}" for c in tm.source.columns)
            for i in range(start, min(start + _BATCH, len(rows)))
        ]
        derived = f"({' UNION ALL '.join(selects)}) AS {quote(tm.source.name)}"
        passing |= {id(rows[i]) for (i,) in session.query(f"SELECT `__omsbench_row` FROM {derived} WHERE {tm.filter}")}
    return passing


def _typed(column: Column, value: str) -> str:
    cast = _CASTS.get(column.data_type)
    return f"CAST({value} AS {cast})" if cast and value != "NULL" else value
