"""Split a table into key-range chunks, and the predicates that select one chunk.

Boundaries come from the key index (``LIMIT 1 OFFSET n`` from the previous boundary), so the
same method serves integer, composite and string keys. Chunk ``i`` is the half-open range
``(boundary[i-1], boundary[i]]``; the first and last are open-ended, so rows inserted after
planning still fall into some chunk.
"""

from __future__ import annotations

import itertools

from pymysql.converters import escape_item

from omsbench.endpoints.catalog import quote
from omsbench.endpoints.connection import Session
from omsbench.engine.mapping import TableMap

Bound = tuple | None


def plan(session: Session, tm: TableMap, chunk_size: int) -> list[tuple[Bound, Bound]]:
    key = tm.source.key
    if not key:
        return [(None, None)]
    cols = ", ".join(quote(c) for c in key)
    table = f"{quote(tm.source.schema)}.{quote(tm.source.name)}"
    boundaries: list[tuple] = []
    while True:
        where = key_range(key, boundaries[-1] if boundaries else None, None)
        row = session.query(
            f"SELECT {cols} FROM {table}{' WHERE ' + where if where else ''} "
            f"ORDER BY {cols} LIMIT 1 OFFSET {chunk_size - 1}"
        )
        if not row:
            break
        boundaries.append(tuple(row[0]))
    edges: list[Bound] = [None, *boundaries, None]
    return list(itertools.pairwise(edges))


def _compare(key: list[str], values: tuple, strict: str, last: str) -> str:
    """Lexicographic ``key <op> values`` spelled out, which every optimizer turns into a range."""
    head, value = quote(key[0]), escape_item(values[0], "utf8mb4")
    if len(key) == 1:
        return f"{head} {last} {value}"
    return f"({head} {strict} {value} OR ({head} = {value} AND {_compare(key[1:], values[1:], strict, last)}))"


def key_range(key: list[str], lower: Bound, upper: Bound) -> str:
    """SQL condition for ``lower < key <= upper`` (either side may be open), values inlined.

    Values are escaped into the text rather than passed as parameters, so that a ``%`` in an
    identifier or a row filter is never taken for a placeholder.
    """
    parts = []
    if lower is not None:
        parts.append(_compare(key, tuple(lower), ">", ">"))
    if upper is not None:
        parts.append(_compare(key, tuple(upper), "<", "<="))
    return " AND ".join(parts)
