"""Split a table into key-range chunks, and the predicates that select one chunk.

Boundaries come from the key index (``LIMIT 1 OFFSET n`` from the previous boundary), so the
same method serves integer, composite and string keys. Chunk ``i`` is the half-open range
``(boundary[i-1], boundary[i]]``; the first and last are open-ended, so rows inserted after
planning still fall into some chunk.
"""

from __future__ import annotations

import itertools

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
        where, params = key_range(key, boundaries[-1] if boundaries else None, None)
        row = session.query(
            f"SELECT {cols} FROM {table}{' WHERE ' + where if where else ''} "
            f"ORDER BY {cols} LIMIT 1 OFFSET {chunk_size - 1}",
            params,
        )
        if not row:
            break
        boundaries.append(tuple(row[0]))
    edges: list[Bound] = [None, *boundaries, None]
    return list(itertools.pairwise(edges))


def _compare(key: list[str], values: tuple, strict: str, last: str) -> tuple[str, list]:
    """Lexicographic ``key <op> values`` spelled out, which every optimizer turns into a range."""
    head, params = quote(key[0]), [values[0]]
    if len(key) == 1:
        return f"{head} {last} %s", params
    rest, rest_params = _compare(key[1:], values[1:], strict, last)
    return f"({head} {strict} %s OR ({head} = %s AND {rest}))", [values[0], values[0], *rest_params]


def key_range(key: list[str], lower: Bound, upper: Bound) -> tuple[str, list]:
    """SQL condition and parameters for ``lower < key <= upper`` (either side may be open)."""
    parts, params = [], []
    if lower is not None:
        sql, p = _compare(key, tuple(lower), ">", ">")
        parts.append(sql)
        params += p
    if upper is not None:
        sql, p = _compare(key, tuple(upper), "<", "<=")
        parts.append(sql)
        params += p
    return " AND ".join(parts), params
