"""Make the source server render each row as an INSERT tuple, ``(1,'a',X'00',NULL)``.

Formatting values in the server's C code and moving the finished text as bytes avoids
decoding every value in Python and encoding it again: the copy loop only joins bytes. Each
expression is exact for its type: FLOAT is widened to DOUBLE (the default text form keeps six
digits), binary values travel as hex, BIT as a bit literal, geometry as WKB with its SRID, and
text in other character sets is converted to utf8mb4 first.
"""

from __future__ import annotations

from omsbench.endpoints.catalog import BINARY_TYPES, SPATIAL_TYPES, Column, quote

_NUMERIC = frozenset(
    {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric", "double", "real"}
)


def value_literal(column: Column) -> str:
    c = quote(column.name)
    kind = column.data_type
    if kind in BINARY_TYPES:
        expr = f"CONCAT('X''', HEX({c}), '''')"
    elif kind == "bit":
        expr = f"CONCAT('b''', BIN({c}), '''')"
    elif kind in SPATIAL_TYPES:
        expr = f"CONCAT('ST_GeomFromWKB(X''', HEX(ST_AsBinary({c})), ''',', ST_SRID({c}), ')')"
    elif kind == "float":
        expr = f"({c} + 0e0)"
    elif kind in _NUMERIC:
        expr = c
    elif column.charset and column.charset.lower() not in ("utf8mb4", "binary"):
        # converted before it is quoted: a byte that is no quote in its own set can become one
        # (armscii8's 0xFF is U+0027)
        return f"QUOTE(CONVERT({c} USING utf8mb4))"
    else:
        return f"QUOTE({c})"  # QUOTE renders NULL as the bare word NULL itself
    return f"IFNULL({expr}, 'NULL')"


def row_literal(columns: list[Column]) -> str:
    """One SELECT expression giving the row as a binary string ``(v1,v2,...)``."""
    parts = ", ',', ".join(value_literal(c) for c in columns)
    return f"CAST(CONCAT('(', {parts}, ')') AS BINARY)"
