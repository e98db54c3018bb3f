"""Read a server's catalog from information_schema into plain objects.

The engine compares and translates catalogs, never DDL text: seekdb's SHOW CREATE TABLE adds
storage options and rewrites defaults, so text comparisons would report false changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import pymysql

from omsbench.endpoints.connection import Flavor, Session

SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys", "oceanbase", "omsbench"})
INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint"})
BINARY_TYPES = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"})
SPATIAL_TYPES = frozenset(
    {
        "geometry",
        "point",
        "linestring",
        "polygon",
        "multipoint",
        "multilinestring",
        "multipolygon",
        "geometrycollection",
        "geomcollection",
    }
)


@dataclass
class Column:
    name: str
    data_type: str
    column_type: str
    nullable: bool
    default: str | None
    """SQL text of the default (``'abc'``, ``0``, ``current_timestamp()``), None when there is none."""
    extra: str = ""
    generated: str | None = None
    stored: bool = False
    charset: str | None = None
    collation: str | None = None
    comment: str = ""

    @property
    def auto_increment(self) -> bool:
        return "auto_increment" in self.extra.lower()


@dataclass
class Index:
    name: str
    unique: bool
    columns: list[tuple[str, int | None]]
    """(column, prefix length) pairs in index order."""
    kind: str = "BTREE"
    comment: str = ""


@dataclass
class ForeignKey:
    name: str
    columns: list[str]
    ref_schema: str
    ref_table: str
    ref_columns: list[str]
    on_update: str = "RESTRICT"
    on_delete: str = "RESTRICT"


@dataclass
class Table:
    schema: str
    name: str
    columns: list[Column] = field(default_factory=list)
    primary_key: list[str] = field(default_factory=list)
    indexes: list[Index] = field(default_factory=list)
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    checks: list[tuple[str, str]] = field(default_factory=list)
    charset: str | None = None
    collation: str | None = None
    comment: str = ""
    engine: str | None = None
    auto_increment: int | None = None
    partitioning: str | None = None
    row_estimate: int = 0
    avg_row_length: int = 0

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def key(self) -> list[str]:
        """The columns that identify a row: the primary key, else a unique key over NOT NULL columns."""
        if self.primary_key:
            return list(self.primary_key)
        nullable = {c.name for c in self.columns if c.nullable}
        for index in self.indexes:
            names = [name for name, _ in index.columns]
            if index.unique and all(prefix is None for _, prefix in index.columns) and not nullable & set(names):
                return names
        return []

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def integer_key(self) -> bool:
        """A single integer key column, which lets ranges be computed by arithmetic."""
        return len(self.key) == 1 and self.leading_integer

    @property
    def leading_integer(self) -> bool:
        """The key starts with an integer column (``(emp_no, from_date)``), by which rows group cheaply."""
        return bool(self.key) and self.column(self.key[0]).data_type in INTEGER_TYPES

    @property
    def stored_columns(self) -> list[Column]:
        """Columns whose values are copied (generated columns are computed by the target)."""
        return [c for c in self.columns if c.generated is None]


@dataclass
class View:
    schema: str
    name: str
    definition: str


@dataclass
class Catalog:
    flavor: Flavor
    tables: dict[tuple[str, str], Table] = field(default_factory=dict)
    views: dict[tuple[str, str], View] = field(default_factory=dict)


def schemas(session: Session) -> list[str]:
    rows = session.query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
    return sorted(r[0] for r in rows if r[0].lower() not in SYSTEM_SCHEMAS and not r[0].startswith("__"))


def spatial_reference_ids(session: Session) -> set[int] | None:
    """The SRIDs the server can store (MySQL 8 and OceanBase keep a catalog of them, seekdb's
    holds 0 alone); None where any SRID is taken as a number (MariaDB and MySQL 5.7 have no such
    catalog: the view is missing)."""
    if session.flavor is Flavor.MARIADB:
        return None
    try:
        rows = session.query("SELECT SRS_ID FROM information_schema.ST_SPATIAL_REFERENCE_SYSTEMS")
    except pymysql.MySQLError:
        return None
    return {int(srid) for (srid,) in rows}


def read(session: Session, schema_names: Iterable[str] | None = None) -> Catalog:
    """Reflect tables and views of the given schemas (all user schemas by default); triggers, routines
    and events are read at cut-over (``engine/programs.py``)."""
    names = sorted(schema_names) if schema_names is not None else schemas(session)
    catalog = Catalog(flavor=session.flavor)
    if not names:
        return catalog
    marks = ",".join(["%s"] * len(names))
    _read_tables(session, catalog, names, marks)
    _read_columns(session, catalog, names, marks)
    _read_indexes(session, catalog, names, marks)
    _read_foreign_keys(session, catalog, names, marks)
    _read_checks(session, catalog, names, marks)
    _read_partitioning(session, catalog, names, marks)
    _read_views(session, catalog, names, marks)
    return catalog


def _read_tables(session: Session, catalog: Catalog, names: list[str], marks: str) -> None:
    rows = session.query(
        "SELECT t.TABLE_SCHEMA, t.TABLE_NAME, t.TABLE_TYPE, t.ENGINE, t.TABLE_COLLATION, t.TABLE_COMMENT,"
        " t.AUTO_INCREMENT, t.TABLE_ROWS, t.AVG_ROW_LENGTH, c.CHARACTER_SET_NAME FROM information_schema.TABLES t"
        " LEFT JOIN information_schema.COLLATIONS c ON c.COLLATION_NAME = t.TABLE_COLLATION"
        f" WHERE t.TABLE_SCHEMA IN ({marks})",
        names,
    )
    for schema, name, kind, engine, collation, comment, auto_inc, estimate, avg_len, charset in rows:
        if kind == "BASE TABLE":
            catalog.tables[(schema, name)] = Table(
                schema,
                name,
                charset=charset,
                collation=collation,
                comment=comment or "",
                engine=engine,
                auto_increment=auto_inc,
                row_estimate=estimate or 0,
                avg_row_length=avg_len or 0,
            )


def _read_columns(session: Session, catalog: Catalog, names: list[str], marks: str) -> None:
    rows = session.query(
        "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT,"
        " EXTRA, GENERATION_EXPRESSION, CHARACTER_SET_NAME, COLLATION_NAME, COLUMN_COMMENT, COLUMN_KEY"
        f" FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN ({marks})"
        " ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
        names,
    )
    for schema, name, col, dtype, ctype, nullable, default, extra, gen, charset, coll, comment, _ in rows:
        table = catalog.tables.get((schema, name))
        if table is None:
            continue
        extra = extra or ""
        generated = gen if gen and "GENERATED" in extra.upper() else None
        table.columns.append(
            Column(
                name=col,
                data_type=dtype.lower(),
                column_type=ctype,
                nullable=nullable == "YES",
                default=None if generated else _default_sql(catalog.flavor, dtype.lower(), default, extra),
                extra=extra,
                generated=generated,
                stored="STORED" in extra.upper() or "PERSISTENT" in extra.upper(),
                charset=charset,
                collation=coll,
                comment=comment or "",
            )
        )


_EXPRESSION_DEFAULT = re.compile(r"^(current_timestamp|now|localtimestamp|curdate|uuid)\b|\(", re.IGNORECASE)


def _default_sql(flavor: Flavor, data_type: str, default: str | None, extra: str) -> str | None:
    """MariaDB reports defaults as SQL text already; MySQL and OceanBase report the bare value."""
    if default is None:
        return None
    if flavor is Flavor.MARIADB:
        return None if default == "NULL" else default
    if "DEFAULT_GENERATED" in extra.upper() or _EXPRESSION_DEFAULT.match(default):
        return default
    if data_type == "bit":
        return default
    return "'" + default.replace("\\", "\\\\").replace("'", "''") + "'"


def _read_indexes(session: Session, catalog: Catalog, names: list[str], marks: str) -> None:
    rows = session.query(
        "SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, INDEX_TYPE, INDEX_COMMENT"
        f" FROM information_schema.STATISTICS WHERE TABLE_SCHEMA IN ({marks})"
        " ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
        names,
    )
    grouped: dict[tuple[str, str, str], Index] = {}
    for schema, name, index, non_unique, col, sub_part, kind, comment in rows:
        table = catalog.tables.get((schema, name))
        if table is None:
            continue
        if index == "PRIMARY":
            table.primary_key.append(col)
            continue
        key = (schema, name, index)
        if key not in grouped:
            grouped[key] = Index(index, not int(non_unique), [], kind or "BTREE", comment or "")
            table.indexes.append(grouped[key])
        grouped[key].columns.append((col, int(sub_part) if sub_part else None))


def _read_foreign_keys(session: Session, catalog: Catalog, names: list[str], marks: str) -> None:
    rules = {
        (s, n): (upd, dele)
        for s, n, upd, dele in session.query(
            "SELECT CONSTRAINT_SCHEMA, CONSTRAINT_NAME, UPDATE_RULE, DELETE_RULE"
            f" FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA IN ({marks})",
            names,
        )
    }
    rows = session.query(
        "SELECT TABLE_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA,"
        " REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE"
        f" WHERE TABLE_SCHEMA IN ({marks}) AND REFERENCED_TABLE_NAME IS NOT NULL"
        " ORDER BY TABLE_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION",
        names,
    )
    grouped: dict[tuple[str, str, str], ForeignKey] = {}
    for schema, name, constraint, col, ref_schema, ref_table, ref_col in rows:
        table = catalog.tables.get((schema, name))
        if table is None:
            continue
        key = (schema, name, constraint)
        if key not in grouped:
            upd, dele = rules.get((schema, constraint), ("RESTRICT", "RESTRICT"))
            grouped[key] = ForeignKey(constraint, [], ref_schema, ref_table, [], upd, dele)
            table.foreign_keys.append(grouped[key])
        grouped[key].columns.append(col)
        grouped[key].ref_columns.append(ref_col)


def _read_checks(session: Session, catalog: Catalog, names: list[str], marks: str) -> None:
    if catalog.flavor is Flavor.OCEANBASE:
        return
    try:
        rows = session.query(
            "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE"
            f" FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA IN ({marks})",
            names,
        )
    except Exception:  # MySQL before 8.0.16 has no CHECK_CONSTRAINTS view
        return
    for schema, name, constraint, clause in rows:
        table = catalog.tables.get((schema, name))
        if table is not None:
            table.checks.append((constraint, clause))


_PARTITION = re.compile(r"(/\*!\d+\s*)?(PARTITION BY .*?)(\*/)?\s*$", re.DOTALL | re.IGNORECASE)


def _read_partitioning(session: Session, catalog: Catalog, names: list[str], marks: str) -> None:
    rows = session.query(
        "SELECT DISTINCT TABLE_SCHEMA, TABLE_NAME FROM information_schema.PARTITIONS"
        f" WHERE TABLE_SCHEMA IN ({marks}) AND PARTITION_NAME IS NOT NULL",
        names,
    )
    for schema, name in rows:
        table = catalog.tables.get((schema, name))
        if table is None:
            continue
        ddl = session.query(f"SHOW CREATE TABLE {quote(schema)}.{quote(name)}")[0][1]
        match = _PARTITION.search(ddl)
        if match:
            table.partitioning = re.sub(r"\s*ENGINE\s*=\s*\w+", "", match.group(2)).strip()


def _read_views(session: Session, catalog: Catalog, names: list[str], marks: str) -> None:
    rows = session.query(
        "SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS"
        f" WHERE TABLE_SCHEMA IN ({marks})",
        names,
    )
    for schema, name, definition in rows:
        catalog.views[(schema, name)] = View(schema, name, definition)


def quote(identifier: str) -> str:
    """Quote an identifier for MySQL and OceanBase: backticks, with embedded backticks doubled."""
    return "`" + identifier.replace("`", "``") + "`"
