"""Plain row-by-row comparison, independent of omsbench's own checksums."""

from __future__ import annotations

from omsbench.endpoints.connection import Endpoint, Session, connect


def exact_rows(session: Session, schema: str, table: str, order: str | None = None) -> list[tuple]:
    """All rows, with FLOAT widened and geometry as WKB so text formatting cannot hide a difference."""
    columns = session.query(
        "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s"
        " ORDER BY ORDINAL_POSITION",
        (schema, table),
    )
    exprs = []
    for name, kind in columns:
        col = "`" + name.replace("`", "``") + "`"
        if kind.lower() == "float":
            exprs.append(f"{col} + 0e0")
        elif kind.lower() in ("geometry", "point", "polygon", "linestring"):
            exprs.append(f"ST_AsBinary({col})")
        else:
            exprs.append(col)
    qualified = f"`{schema.replace('`', '``')}`.`{table.replace('`', '``')}`"
    rows = session.query(f"SELECT {', '.join(exprs)} FROM {qualified}")
    return sorted(rows, key=repr) if order is None else rows


def assert_same_tables(src: Session, dst: Session, pairs: list[tuple[str, str, str, str]]) -> None:
    for s_schema, s_table, d_schema, d_table in pairs:
        left = exact_rows(src, s_schema, s_table)
        right = exact_rows(dst, d_schema, d_table)
        if left != right:
            only_source = [r for r in left if r not in right][:5]
            only_target = [r for r in right if r not in left][:5]
            raise AssertionError(
                f"{s_schema}.{s_table}: {len(left)} rows on the source, {len(right)} on the target;"
                f" only on the source: {only_source}; only on the target: {only_target}"
            )


def make_writable(endpoint: Endpoint) -> None:
    """Undo a switchover's read-only source, so a failed test does not break the ones after it."""
    with connect(endpoint.dsn()) as session:
        session.execute("SET GLOBAL read_only = OFF")
