"""Row counts and checksums computed inside both databases.

Each column is rendered to a canonical text that MariaDB/MySQL and OceanBase produce
identically for the same value (text as utf8mb4 bytes prefixed by their length, binary as
hex, FLOAT widened to DOUBLE, geometry as SRID and WKB, NULL as the letter n, which no other form
starts with), each row is hashed with SHA-1, and a 64-bit slice of it is summed exactly as
DECIMAL: 64 bits instead of a 32-bit CRC, whose collisions hide real differences, and a sum
rather than an XOR, so that duplicate rows in a table without a key do not cancel out. SHA-1
rather than MD5 because both servers' crypto libraries compute it with the CPU's SHA
instructions: measured over 250k sysbench rows, the checksum query takes 0.19 s instead of
0.32 s on MariaDB and 0.24 s instead of 0.27 s on seekdb. The slice is taken once per row: a
second one would double the cost (MariaDB evaluates the hash anew for each use).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from pymysql.converters import escape_item
from tqdm.auto import tqdm

from omsbench.actions import named
from omsbench.endpoints import catalog
from omsbench.endpoints.catalog import BINARY_TYPES, SPATIAL_TYPES, Column, quote
from omsbench.endpoints.connection import Session, oversized, raise_packet
from omsbench.engine.chunking import Bound, key_range
from omsbench.engine.mapping import TableMap
from omsbench.exceptions import VerifyError

_TEXT = frozenset(
    {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json", "uuid", "inet6", "inet4"}
)


def canonical(column: Column, name: str) -> str:
    c = quote(name)
    kind = column.data_type
    if kind in BINARY_TYPES:
        expr = f"HEX({c})"
    elif kind in _TEXT:
        text = c if (column.charset or "utf8mb4").lower() == "utf8mb4" else f"CONVERT({c} USING utf8mb4)"
        expr = f"CONCAT(LENGTH({text}), ':', {text})"  # the length makes any '|' inside unambiguous
    elif kind in SPATIAL_TYPES:  # WKB alone holds no SRID: the same point in another system compared equal
        expr = f"CONCAT(ST_SRID({c}), ':', HEX(ST_AsBinary({c})))"
    elif kind == "float":
        expr = f"CAST({c} + 0e0 AS CHAR)"
    elif kind == "bit":
        expr = f"CAST({c} + 0 AS CHAR)"
    else:
        expr = f"CAST({c} AS CHAR)"
    return f"IFNULL({expr}, 'n')"


RULES = {
    "binary": "binary compared as hex",
    "text": "text compared as utf8mb4",
    "spatial": "geometry compared as SRID and WKB",
    "float": "FLOAT widened to DOUBLE",
    "bit": "BIT compared as a number",
    "other": "compared as text at time zone +00:00",
}


def rule(column: Column) -> str:
    """The normalisation applied to a column's values before comparing them, for diff reports."""
    kind = column.data_type
    if kind in BINARY_TYPES:
        return RULES["binary"]
    if kind in _TEXT:
        return RULES["text"]
    if kind in SPATIAL_TYPES:
        return RULES["spatial"]
    return RULES.get(kind, RULES["other"])


@dataclass(frozen=True)
class Side:
    """One side of a comparison: how the table, its columns and its key are named there."""

    name: str
    table: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    filter: str | None

    @classmethod
    def of(cls, tm: TableMap, name: str) -> Side:
        if name == "source":
            cols = tuple(c.name for c in tm.source.columns)
            return cls(
                name, f"{quote(tm.source.schema)}.{quote(tm.source.name)}", cols, tuple(tm.source.key), tm.filter
            )
        cols = tuple(tm.columns[c.name] for c in tm.source.columns)
        return cls(name, tm.quoted, cols, tuple(tm.columns[k] for k in tm.source.key), None)

    def where(self, lower: Bound = None, upper: Bound = None) -> str:
        return self._where(key_range(list(self.key), lower, upper))

    def where_keys(self, keys: list[tuple]) -> str:
        """Exactly these keys (rendered as literals), for checks of the rows a sync touched."""
        columns = "(" + ", ".join(quote(k) for k in self.key) + ")"
        rows = ", ".join("(" + ", ".join(escape_item(v, "utf8mb4") for v in key) + ")" for key in keys)
        return self._where(f"{columns} IN ({rows})")

    def where_buckets(self, tm: TableMap, buckets: int, numbers: list[int]) -> str:
        """The rows in these hash buckets of the key (see ``bucket_of``)."""
        return self._where(f"{bucket_of(self, tm, buckets)} IN ({', '.join(map(str, numbers))})")

    def _where(self, condition: str) -> str:
        parts = [p for p in (condition, f"({self.filter})" if self.filter else "") if p]
        return " WHERE " + " AND ".join(parts) if parts else ""

    def row_hash(self, tm: TableMap) -> str:
        pairs = zip(tm.source.columns, self.columns, strict=True)
        return "SHA1(CONCAT_WS('|', " + ", ".join(canonical(c, n) for c, n in pairs) + "))"


def _aggregate(here: Side, tm: TableMap) -> str:
    return f"COUNT(*), SUM(CAST(CONV(SUBSTRING({here.row_hash(tm)}, 1, 16), 16, 10) AS UNSIGNED))"


def checksum_sql(tm: TableMap, side: str, lower: Bound = None, upper: Bound = None) -> str:
    """Count and checksum of a side's rows, optionally within a key range."""
    here = Side.of(tm, side)
    return f"SELECT {_aggregate(here, tm)} FROM {here.table}{here.where(lower, upper)}"


def slices_sql(tm: TableMap, side: str, lower: int, upper: int, step: int) -> str:
    """Count and checksum of every ``step``-wide slice of the integer key range ``(lower, upper]``.

    Slice n holds the keys in ``(lower + n * step, lower + (n + 1) * step]``. One scan answers
    what would otherwise take a query per slice, so a range that differs is narrowed down
    without being read once for each piece it is cut into.
    """
    here = Side.of(tm, side)
    slice_of = f"({quote(here.key[0])} - ({lower + 1})) DIV {step}"
    return (
        f"SELECT {slice_of} AS omsbench_slice, {_aggregate(here, tm)} FROM {here.table}"
        f"{here.where((lower,), (upper,))} GROUP BY omsbench_slice"
    )


def bucket_of(here: Side, tm: TableMap, buckets: int) -> str:
    """The key's bucket, from the canonical text of its columns, which both sides render alike
    whatever their collations (the checksums rest on it)."""
    columns = {c.name: c for c in tm.source.columns}
    text = ", ".join(canonical(columns[k], name) for k, name in zip(tm.source.key, here.key, strict=True))
    return f"(CONV(SUBSTRING(SHA1(CONCAT_WS('|', {text})), 1, 8), 16, 10) % {buckets})"


def buckets_sql(tm: TableMap, side: str, buckets: int) -> str:
    """Count and checksum of the rows in each of ``buckets`` hash buckets of the key, in one scan."""
    here = Side.of(tm, side)
    return (
        f"SELECT {bucket_of(here, tm, buckets)} AS omsbench_bucket, {_aggregate(here, tm)} FROM {here.table}"
        f"{here.where()} GROUP BY omsbench_bucket"
    )


def as_hex(checksum: int) -> str:
    return f"{checksum:x}"


def key_span(session: Session, tm: TableMap, side: str) -> tuple:
    """Smallest and largest key of a single-column key on one side (None, None when empty)."""
    here = Side.of(tm, side)
    key = quote(here.key[0])
    return tuple(session.query(f"SELECT MIN({key}), MAX({key}) FROM {here.table}{here.where()}")[0])


@dataclass
class TableCheck:
    table: str
    target: str
    source_rows: int
    target_rows: int
    source_checksum: str
    target_checksum: str

    @property
    def equal(self) -> bool:
        return self.source_rows == self.target_rows and self.source_checksum == self.target_checksum


def rendered(session: Session, tm: TableMap, side: str, sql: str) -> list[tuple]:
    """Rows of a query that renders values as text. A value the server renders as NULL because it
    outgrows ``max_allowed_packet`` would drop out of the checksums unseen: it stops the check."""
    rows = session.query(sql)
    found = oversized(session) if session.warnings else None
    if found:
        raise VerifyError(
            f"the {side} cannot render a value of {tm.source.qualified if side == 'source' else tm.qualified} within"
            f" its max_allowed_packet of {session.packet >> 20} MB ({found}): it would be compared as NULL",
            fix=f"binary values are compared as hex, at twice their size: {raise_packet(side)}, then check again",
        )
    return rows


def digest(session: Session, tm: TableMap, side: str, lower: Bound = None, upper: Bound = None) -> tuple[int, int]:
    """Row count and checksum of the rows of one side, optionally within a key range."""
    count, checksum = rendered(session, tm, side, checksum_sql(tm, side, lower, upper))[0]
    return int(count), int(checksum or 0)


def digest_slices(
    session: Session, tm: TableMap, side: str, lower: int, upper: int, step: int
) -> dict[int, tuple[int, int]]:
    """Row count and checksum by slice number (slices without rows are absent)."""
    sql = slices_sql(tm, side, lower, upper, step)
    return {int(n): (int(c), int(s or 0)) for n, c, s in rendered(session, tm, side, sql)}


def digest_buckets(session: Session, tm: TableMap, side: str, buckets: int) -> dict[int, tuple[int, int]]:
    """Row count and checksum by bucket number (buckets without rows are absent)."""
    return {int(n): (int(c), int(s or 0)) for n, c, s in rendered(session, tm, side, buckets_sql(tm, side, buckets))}


def require_comparable(target: Session, tables: list[TableMap]) -> None:
    """Refuse to compare when a table or a column the source has is missing on the target.

    Rows cannot be summed or fetched on columns that are not there; a column added on the source
    while no sync ran (or a sync that never got its DDL) would otherwise end as a bare SQL error.
    """
    found = catalog.read(target, {tm.schema for tm in tables}).tables
    problems = []
    for tm in tables:
        table = found.get((tm.schema, tm.name))
        if table is None:
            problems.append(f"{tm.qualified}: the table is missing")
            continue
        present = {column.name.lower() for column in table.columns}
        missing = [c for c in tm.columns.values() if c.lower() not in present]
        if missing:
            problems.append(f"{tm.qualified}: column(s) {', '.join(missing)} missing")
    if problems:
        raise VerifyError(
            "the target lacks what the source's tables map to, so their rows cannot be compared: "
            + "; ".join(problems),
            fix=f"create them on the target ({named('schema')} creates missing tables; a column added on the"
            " source while no sync ran needs the same ALTER TABLE on the target), or leave those tables out"
            " of the project's objects",
        )


def check_table(source: Session, target: Session, tm: TableMap) -> TableCheck:
    (src_rows, src_sum), (dst_rows, dst_sum) = digest(source, tm, "source"), digest(target, tm, "target")
    return TableCheck(tm.source.qualified, tm.qualified, src_rows, dst_rows, as_hex(src_sum), as_hex(dst_sum))


def check(source: Session, target: Session, tables: list[TableMap], progress: bool = False) -> pd.DataFrame:
    """One row per table; ``progress`` draws a bar per table (a widget in a notebook): a million-row
    table takes seconds on each side, which a silent terminal does not explain."""
    rows = []
    for tm in tqdm(tables, desc="check", unit="table", disable=not progress):
        result = check_table(source, target, tm)
        rows.append({**result.__dict__, "equal": result.equal})
    return pd.DataFrame(
        rows, columns=["table", "target", "source_rows", "target_rows", "source_checksum", "target_checksum", "equal"]
    )
