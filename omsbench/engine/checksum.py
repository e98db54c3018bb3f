"""Row counts and checksums computed inside both databases.

Each column is rendered to a canonical text that MariaDB/MySQL and OceanBase produce
identically for the same value (text as utf8mb4 hex, binary as hex, FLOAT widened to DOUBLE,
geometry as WKB, NULL as its own marker), each row is hashed with MD5, and the two 64-bit
halves are summed exactly as DECIMAL: 128 bits instead of a 32-bit CRC, and a sum rather than
an XOR so that duplicate rows in a table without a key do not cancel out.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from omsbench.endpoints.catalog import BINARY_TYPES, SPATIAL_TYPES, Column, quote
from omsbench.endpoints.connection import Session
from omsbench.engine.mapping import TableMap

_TEXT = frozenset(
    {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json", "uuid", "inet6", "inet4"}
)


def canonical(column: Column, name: str) -> str:
    c = quote(name)
    kind = column.data_type
    if kind in BINARY_TYPES:
        expr = f"HEX({c})"
    elif kind in _TEXT:
        expr = f"HEX(CONVERT({c} USING utf8mb4))"
    elif kind in SPATIAL_TYPES:
        expr = f"HEX(ST_AsBinary({c}))"
    elif kind == "float":
        expr = f"CAST({c} + 0e0 AS CHAR)"
    elif kind == "bit":
        expr = f"CAST({c} + 0 AS CHAR)"
    else:
        expr = f"CAST({c} AS CHAR)"
    return f"IFNULL(CONCAT('v', {expr}), 'n')"


def checksum_sql(tm: TableMap, side: str) -> str:
    columns = tm.source.columns
    names = [c.name if side == "source" else tm.columns[c.name] for c in columns]
    row = "MD5(CONCAT_WS('|', " + ", ".join(canonical(c, n) for c, n in zip(columns, names, strict=True)) + "))"
    half = "SUM(CAST(CONV(SUBSTRING({row}, {start}, 16), 16, 10) AS UNSIGNED))"
    table = f"{quote(tm.source.schema)}.{quote(tm.source.name)}" if side == "source" else tm.quoted
    where = f" WHERE {tm.filter}" if tm.filter and side == "source" else ""
    return f"SELECT COUNT(*), {half.format(row=row, start=1)}, {half.format(row=row, start=17)} FROM {table}{where}"


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


def _digest(row: tuple) -> str:
    return f"{int(row[1] or 0):x}-{int(row[2] or 0):x}"


def check_table(source: Session, target: Session, tm: TableMap) -> TableCheck:
    src = source.query(checksum_sql(tm, "source"))[0]
    dst = target.query(checksum_sql(tm, "target"))[0]
    return TableCheck(tm.source.qualified, tm.qualified, int(src[0]), int(dst[0]), _digest(src), _digest(dst))


def check(source: Session, target: Session, tables: list[TableMap]) -> pd.DataFrame:
    rows = []
    for tm in tables:
        result = check_table(source, target, tm)
        rows.append({**result.__dict__, "equal": result.equal})
    return pd.DataFrame(
        rows, columns=["table", "target", "source_rows", "target_rows", "source_checksum", "target_checksum", "equal"]
    )
