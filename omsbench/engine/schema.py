"""Schema migration: translate the selected source objects to OceanBase (MySQL mode) and create them.

Tables are built from the reflected catalog, not from SHOW CREATE TABLE text, so nothing can
hide in a version comment (seekdb silently ignores ``/*!...*/``). B-tree indexes are created
with the table, but for the plain ones of a table of ``options.index_after_rows`` rows or more,
which seekdb builds after the load faster than it maintains them during it (measured at 10M
rows); foreign keys come with their table too, as myloader does: tables are created parents first
and loaded with ``foreign_key_checks`` off (they fill in parallel), so no ALTER TABLE reads the
loaded rows afterwards; the check step then proves the rows equal to the source's, whose keys
held. Keys in a cycle or refused in CREATE TABLE, and CHECK constraints and FULLTEXT/SPATIAL
indexes (which may be refused and must not fail the table), come after the full load. Every object ends up in
the report as migrated, changed (how) or skipped (why).
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import pandas as pd
import pymysql
import sqlglot
from sqlglot import exp

from omsbench.endpoints.catalog import BINARY_TYPES, SPATIAL_TYPES, Column, quote
from omsbench.endpoints.connection import Dsn, Session, connect
from omsbench.engine import bounded_ddl, programs
from omsbench.engine.mapping import Selection, TableMap, ViewMap

# MariaDB types that OceanBase lacks, with the type that keeps their text form.
TYPE_REPLACEMENTS = {"uuid": "char(36)", "inet6": "varchar(39)", "inet4": "varchar(15)"}
# Types that move as they are (the full load renders each exactly, see literals.py).
CARRIED_TYPES = (
    frozenset(
        {
            "tinyint",
            "smallint",
            "mediumint",
            "int",
            "integer",
            "bigint",
            "decimal",
            "numeric",
            "float",
            "double",
            "real",
            "bit",
            "date",
            "time",
            "datetime",
            "timestamp",
            "year",
            "char",
            "varchar",
            "tinytext",
            "text",
            "mediumtext",
            "longtext",
            "json",
            "enum",
            "set",
        }
    )
    | BINARY_TYPES
    | SPATIAL_TYPES
)
_TRANSACTIONAL_ENGINES = {None, "innodb", "xtradb"}
# Duplicate key name, duplicate key (a foreign key), duplicate foreign key / check constraint name.
_ALREADY_THERE = {1061, 1022, 1826, 3822, 1060}
"""Duplicate key name, key, foreign key, check; and 1060, "Duplicate column name", which is what
seekdb answers for a SPATIAL index that exists (docs/seekdb.md)."""


@dataclass
class ObjectOutcome:
    """What became of one object on the target: one line of the schema report (a precheck.Finding
    says whether a check passed, before anything is made)."""

    object_type: str
    source: str
    target: str
    status: str  # migrated | changed | skipped | failed
    detail: str = ""


@dataclass
class TablePlan:
    table: TableMap
    create: str
    post_load: list[tuple[str, str, str]] = field(default_factory=list)
    """(object type, name, statement) run after the full load; foreign keys only where missing."""
    notes: list[str] = field(default_factory=list)
    without_foreign_keys: str = ""
    """``create`` without its foreign keys, for a target that refuses them there."""
    parents: set[str] = field(default_factory=set)
    """The tables (qualified target names) its foreign keys reference, itself aside."""
    btree: set[str] = field(default_factory=set)
    """Its plain B-tree indexes, in ``post_load`` too: created there if the table was made without them."""


class Collations:
    """The target's collations, to map source character sets it lacks (seekdb: utf8mb4 and binary)."""

    def __init__(self, session: Session, chosen: dict[str, str] | None = None) -> None:
        self.chosen = {k.lower(): v.lower() for k, v in (chosen or {}).items()}
        """The spec's choices (``objects.collations``), which win over the mapping below."""
        self.known = {
            name.lower(): charset.lower()
            for name, charset in session.query(
                # MariaDB 10.10+ lists its UCA 14.0 collations once for all character sets (NULL here)
                "SELECT COLLATION_NAME, CHARACTER_SET_NAME FROM information_schema.COLLATIONS"
                " WHERE CHARACTER_SET_NAME IS NOT NULL"
            )
        }

    def map(self, charset: str | None, collation: str | None) -> tuple[str | None, str | None]:
        if collation is None:
            return charset, None
        collation = collation.lower()
        if collation in self.chosen:
            choice = self.chosen[collation]
            return self.known.get(choice, "utf8mb4"), choice
        if collation in self.known:
            return self.known[collation], collation
        converted = re.sub(r"^utf8(mb3)?_", "utf8mb4_", collation)
        if converted in self.known:
            return "utf8mb4", converted
        fallback = "utf8mb4_bin" if collation.endswith(("_bin", "_cs")) else "utf8mb4_general_ci"
        return "utf8mb4", fallback


def _rename_identifiers(text: str, renames: dict[str, str]) -> str:
    for old, new in renames.items():
        if old != new:
            text = text.replace(quote(old), quote(new))
    return text


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def column_sql(column: Column, name: str, collations: Collations, renames: dict[str, str], notes: list[str]) -> str:
    type_sql = column.column_type
    base = column.data_type
    if base in TYPE_REPLACEMENTS:
        type_sql = TYPE_REPLACEMENTS[base]
        notes.append(f"column {column.name}: {base} -> {type_sql} (OceanBase has no {base} type; text form kept)")
    elif base == "year":
        type_sql = "year"
    parts = [quote(name), type_sql]
    if column.collation and base not in BINARY_TYPES:
        charset, collation = collations.map(column.charset, column.collation)
        if collation != column.collation.lower():
            notes.append(
                f"column {column.name}: {column.charset}/{column.collation} -> {charset}/{collation}"
                " (not available on the target)"
            )
        parts.append(f"CHARACTER SET {charset} COLLATE {collation}")
    if column.generated is not None:
        expression = _rename_identifiers(column.generated, renames)
        parts.append(f"GENERATED ALWAYS AS ({expression}) {'STORED' if column.stored else 'VIRTUAL'}")
    if not column.nullable:
        parts.append("NOT NULL")
    elif column.generated is None:  # MariaDB takes no NULL attribute on a generated column
        parts.append("NULL")
    if column.default is not None:
        parts.append(f"DEFAULT {column.default}")
    if column.auto_increment:
        parts.append("AUTO_INCREMENT")
    on_update = re.search(r"on update (\S+)", column.extra, re.IGNORECASE)
    if on_update:
        parts.append(f"ON UPDATE {on_update.group(1)}")
    if column.comment:
        parts.append(f"COMMENT {_literal(column.comment)}")
    return " ".join(parts)


def translate_table(
    tm: TableMap, collations: Collations, selection: Selection, index_after_rows: int | None = None
) -> TablePlan:
    """The table's CREATE and what follows the load. Its plain B-tree indexes come after the load
    when the source estimates ``index_after_rows`` rows or more: seekdb builds one faster than it
    maintains it during a load of millions of rows (docs/full-load.md). The post-load step lists
    them all and creates those the table lacks, so an estimate that changed in between loses none."""
    table, renames, notes = tm.source, tm.columns, []
    lines = [column_sql(c, renames[c.name], collations, renames, notes) for c in table.columns]
    if table.primary_key:
        lines.append(f"PRIMARY KEY ({', '.join(quote(renames[c]) for c in table.primary_key)})")
    post: list[tuple[str, str, str]] = []
    btree: set[str] = set()
    later = index_after_rows is not None and table.row_estimate >= index_after_rows
    for index in table.indexes:
        kind = index.kind.upper()
        # MariaDB lists a SPATIAL index's column with a 32-byte prefix (SUB_PART 32) that CREATE never
        # takes; seekdb refused the index for it ("Not supported feature or function")
        prefixed = kind not in ("FULLTEXT", "SPATIAL")
        cols = ", ".join(quote(renames[c]) + (f"({n})" if n and prefixed else "") for c, n in index.columns)
        if kind in ("FULLTEXT", "SPATIAL"):  # may be refused: created after the load, alone
            post.append(("index", index.name, f"CREATE {kind} INDEX {quote(index.name)} ON {tm.quoted} ({cols})"))
            continue
        if index.unique or _serves_foreign_key(index, table):  # a key the load relies on, or one the FK would make
            lines.append(f"{'UNIQUE ' if index.unique else ''}KEY {quote(index.name)} ({cols})")
            continue
        if not later:
            lines.append(f"KEY {quote(index.name)} ({cols})")
        post.append(("index", index.name, f"CREATE INDEX {quote(index.name)} ON {tm.quoted} ({cols})"))
        btree.add(index.name)
    for name, clause in table.checks:
        post.append(
            (
                "check",
                name,
                f"ALTER TABLE {tm.quoted} ADD CONSTRAINT {quote(name)} CHECK ({_rename_identifiers(clause, renames)})",
            )
        )
    keys, parents = [], set()
    for fk in table.foreign_keys:
        parent = selection.table(fk.ref_schema, fk.ref_table)
        if parent is None:
            notes.append(f"foreign key {fk.name}: not created, {fk.ref_schema}.{fk.ref_table} is not migrated")
            continue
        cols = ", ".join(quote(renames[c]) for c in fk.columns)
        ref_cols = ", ".join(quote(parent.columns[c]) for c in fk.ref_columns)
        clause = (
            f"CONSTRAINT {quote(fk.name)} FOREIGN KEY ({cols}) REFERENCES {parent.quoted} ({ref_cols})"
            f" ON DELETE {fk.on_delete} ON UPDATE {fk.on_update}"
        )
        keys.append(clause)
        post.append(("foreign key", fk.name, f"ALTER TABLE {tm.quoted} ADD {clause}"))
        if parent.qualified != tm.qualified:
            parents.add(parent.qualified)
    options = []
    charset, collation = collations.map(table.charset, table.collation)
    if collation:
        if collation != (table.collation or "").lower():
            notes.append(f"table default {table.charset}/{table.collation} -> {charset}/{collation}")
        options.append(f"DEFAULT CHARSET={charset} COLLATE={collation}")
    if (table.engine or "").lower() not in _TRANSACTIONAL_ENGINES:
        notes.append(f"engine {table.engine} -> OceanBase's transactional storage (writes become transactional)")
    if table.comment:
        options.append(f"COMMENT={_literal(table.comment)}")
    if not table.key:
        notes.append("no primary or unique key: copied as one chunk; rows are matched by all columns")
    partitioning = "\n" + _rename_identifiers(table.partitioning, renames) if table.partitioning else ""

    def create(lines: list[str]) -> str:
        return f"CREATE TABLE {tm.quoted} (\n  " + ",\n  ".join(lines) + "\n) " + " ".join(options) + partitioning

    return TablePlan(tm, create(lines + keys), post, notes, create(lines), parents, btree)


def _serves_foreign_key(index, table) -> bool:
    """The index starts with a foreign key's columns: without it CREATE TABLE would make one of its own."""
    names = [c for c, _ in index.columns]
    return any(names[: len(fk.columns)] == fk.columns for fk in table.foreign_keys)


def translate_view(view: ViewMap, selection: Selection) -> str:
    """Re-qualify the view's tables with their target names (sqlglot), without DEFINER or SQL SECURITY."""
    tree = sqlglot.parse_one(view.source.definition, read="mysql")
    targets = {(t.source.schema, t.source.name): t for t in selection.tables}
    targets.update({(v.source.schema, v.source.name): v for v in selection.views})

    def requalify(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and (node.db, node.name) in targets:
            target = targets[(node.db, node.name)]
            node.set("db", exp.to_identifier(target.schema, quoted=True))
            node.set("this", exp.to_identifier(target.name, quoted=True))
        elif isinstance(node, exp.Column) and node.args.get("db") and (node.text("db"), node.table) in targets:
            target = targets[(node.text("db"), node.table)]
            node.set("db", exp.to_identifier(target.schema, quoted=True))
            node.set("table", exp.to_identifier(target.name, quoted=True))
            if isinstance(target, TableMap):
                node.set("this", exp.to_identifier(target.columns.get(node.name, node.name), quoted=True))
        return node

    select_sql = tree.transform(requalify).sql(dialect="mysql")
    return f"CREATE VIEW {quote(view.schema)}.{quote(view.name)} AS {select_sql}"


def exists(session: Session, schema: str, name: str) -> bool:
    """Check the catalog, retrying briefly: seekdb's information_schema can fail right after DDL (1210)."""
    for attempt in range(20):
        try:
            return bool(
                session.scalar(
                    "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                    (schema, name),
                )
            )
        except pymysql.err.MySQLError:
            time.sleep(0.1 * (attempt + 1))
    return False


def _error(err: Exception) -> str:
    return err.args[-1] if isinstance(err, pymysql.err.MySQLError) and err.args else str(err)


def _create_table(session: Session, plan: TablePlan) -> ObjectOutcome:
    tm = plan.table
    source = tm.source.qualified
    if exists(session, tm.schema, tm.name):
        return ObjectOutcome("table", source, tm.qualified, "migrated", "already exists on the target; kept as it is")
    try:
        _create(session, plan)
    except pymysql.err.MySQLError as err:
        if not tm.source.partitioning:
            return ObjectOutcome("table", source, tm.qualified, "failed", f"target refused it: {_error(err)}")
        bare = plan.without_foreign_keys
        session.execute(bare[: bare.rindex("\n")])  # foreign keys, if any, follow after the load
        plan.notes.append(f"partitioning dropped, the target refused it: {_error(err)}")
    if not exists(session, tm.schema, tm.name):
        return ObjectOutcome(
            "table", source, tm.qualified, "failed", "the target answered OK but the table does not exist"
        )
    status = "changed" if plan.notes else "migrated"
    return ObjectOutcome("table", source, tm.qualified, status, "; ".join(plan.notes))


def _create(session: Session, plan: TablePlan) -> None:
    """CREATE TABLE with its foreign keys, or without them where the target refuses them there:
    they are added after the load then (``create_post_load`` adds the missing ones)."""
    if plan.create == plan.without_foreign_keys:
        session.execute(plan.create)
        return
    try:
        session.execute(plan.create)
    except pymysql.err.MySQLError as err:
        session.execute(plan.without_foreign_keys)
        plan.notes.append(f"foreign keys added after the load: the target refused them with the table ({_error(err)})")


def create_schemas(session: Session, selection: Selection) -> list[ObjectOutcome]:
    findings = []
    for source, target in sorted(selection.schemas.items()):
        session.execute(f"CREATE DATABASE IF NOT EXISTS {quote(target)} DEFAULT CHARACTER SET utf8mb4")
        findings.append(
            ObjectOutcome(
                "database",
                source,
                target,
                "migrated" if source == target else "changed",
                "" if source == target else f"renamed {source} -> {target}",
            )
        )
    return findings


def plan_tables(
    target: Session, selection: Selection, chosen: dict[str, str] | None = None, index_after_rows: int | None = None
) -> list[TablePlan]:
    collations = Collations(target, chosen)
    return [translate_table(tm, collations, selection, index_after_rows) for tm in selection.tables]


def create_tables(target: Session, plans: list[TablePlan]) -> list[ObjectOutcome]:
    """Parents before their children, so that each table is created with its foreign keys.

    seekdb's stand-in for a parent not created yet (foreign_key_checks off) is refused with 1210
    "Invalid argument" in some tables and taken in others (docs/seekdb.md); tables in a cycle of
    foreign keys are created without theirs, which are added after the load.
    """
    ordered, cyclic = _parents_first(plans)
    for plan in cyclic:
        plan.create = plan.without_foreign_keys
        if plan.parents:
            plan.notes.append("foreign keys added after the load: the tables reference each other in a cycle")
    made = {id(plan): _create_table(target, plan) for plan in ordered + cyclic}
    return [made[id(plan)] for plan in plans]


def _parents_first(plans: list[TablePlan]) -> tuple[list[TablePlan], list[TablePlan]]:
    """The plans in an order that puts every parent before its children (Kahn's algorithm), and
    those left in, or below, a cycle."""
    by_name = {plan.table.qualified: plan for plan in plans}
    waiting = {name: plan.parents & by_name.keys() for name, plan in by_name.items()}
    children: dict[str, list[str]] = {}
    for name, parents in waiting.items():
        for parent in parents:
            children.setdefault(parent, []).append(name)
    ready = [name for name, parents in waiting.items() if not parents]
    ordered = []
    while ready:
        name = ready.pop()
        ordered.append(by_name[name])
        for child in children.get(name, []):
            waiting[child].discard(name)
            if not waiting[child]:
                ready.append(child)
    done = {id(plan) for plan in ordered}
    return ordered, [plan for plan in plans if id(plan) not in done]


def create_views(target: Session, selection: Selection) -> list[ObjectOutcome]:
    """Create views in dependency order: retry the failed ones while any succeeds."""
    pending = {(v.schema, v.name): v for v in selection.views}
    errors: dict[tuple[str, str], str] = {}
    findings = []
    while pending:
        progressed = False
        for key, view in list(pending.items()):
            detail = "already exists on the target; kept as it is"
            if not exists(target, view.schema, view.name):
                try:
                    target.execute(translate_view(view, selection))
                except (pymysql.err.MySQLError, sqlglot.errors.SqlglotError) as err:
                    errors[key] = _error(err)
                    continue
                detail = "definer and SQL SECURITY dropped (the target user owns it)"
            source = f"{view.source.schema}.{view.source.name}"
            findings.append(ObjectOutcome("view", source, f"{view.schema}.{view.name}", "migrated", detail))
            del pending[key]
            progressed = True
        if not progressed:
            break
    findings += [
        ObjectOutcome(
            "view",
            f"{v.source.schema}.{v.source.name}",
            f"{v.schema}.{v.name}",
            "failed",
            f"target refused it: {errors[k]}",
        )
        for k, v in pending.items()
    ]
    return findings


def create_post_load(dsn: Dsn, plans: list[TablePlan], limit_s: float, parallelism: int = 1) -> list[ObjectOutcome]:
    """Indexes, CHECK constraints and foreign keys, once the rows are in; each bounded (``bounded_ddl``).

    Indexes and constraints of different tables are built side by side in ``parallelism``
    sessions (two builds on two tables kept both cores of the target busy, measured), a table's
    own one after another; foreign keys follow, one at a time, once every table's indexes are
    there, so no ALTER of a parent meets a build on it."""

    def made(plan: TablePlan, foreign_keys: bool) -> list[ObjectOutcome]:
        if not any((kind == "foreign key") == foreign_keys for kind, _, _ in plan.post_load):
            return []  # nothing of this pass: no session to open, no catalog to read
        with connect(dsn) as session:
            return _post_load_table(session, dsn, plan, limit_s, foreign_keys)

    with ThreadPoolExecutor(max(1, parallelism), thread_name_prefix="omsbench-post-load") as pool:
        outcomes = list(pool.map(lambda plan: made(plan, foreign_keys=False), plans))
    outcomes = [first + made(plan, foreign_keys=True) for plan, first in zip(plans, outcomes, strict=True)]
    return [outcome for table in outcomes for outcome in table]


def _post_load_table(
    session: Session, dsn: Dsn, plan: TablePlan, limit_s: float, foreign_keys: bool
) -> list[ObjectOutcome]:
    """The plan's foreign keys (``foreign_keys``), or the rest of its post-load objects."""
    found = _made_with_table(session, plan)
    outcomes = []
    for kind, name, statement in plan.post_load:
        if (kind == "foreign key") != foreign_keys:
            continue
        source, where = f"{plan.table.source.qualified} ({name})", f"{plan.table.qualified} ({name})"
        if (kind, name) in found:
            outcomes.append(ObjectOutcome(kind, source, where, "migrated", "created with the table"))
            continue
        try:
            bounded_ddl.run(session, dsn, statement, limit_s)
        except pymysql.err.MySQLError as err:
            if err.args and err.args[0] in _ALREADY_THERE:
                outcomes.append(ObjectOutcome(kind, source, where, "migrated", "already exists on the target"))
            else:
                outcomes.append(ObjectOutcome(kind, source, where, "skipped", f"target refused it: {_error(err)}"))
            continue
        outcomes.append(ObjectOutcome(kind, source, where, "migrated", "created after the full load"))
    return outcomes


def _made_with_table(session: Session, plan: TablePlan) -> set[tuple[str, str]]:
    """The foreign keys and plain indexes of the plan that the table already has: made by CREATE TABLE."""
    where = (plan.table.schema, plan.table.name)
    keys = session.query(
        "SELECT CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS"
        " WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s",
        where,
    )
    indexes = session.query(
        "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        where,
    )
    return {("foreign key", name) for (name,) in keys} | {("index", n) for (n,) in indexes if n in plan.btree}


_AUTO_INCREMENT = "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s"


def sync_auto_increment(source: Session, target: Session, plans: list[TablePlan]) -> None:
    """Carry each table's next AUTO_INCREMENT value, read again after the load.

    The ALTER (a DDL, slow on seekdb) runs only where the target's counter is still behind.
    """
    for plan in plans:
        table = plan.table.source
        if not any(c.auto_increment for c in table.columns):
            continue
        wanted = source.scalar(_AUTO_INCREMENT, (table.schema, table.name))
        if wanted and int(target.scalar(_AUTO_INCREMENT, (plan.table.schema, plan.table.name)) or 0) < int(wanted):
            target.execute(f"ALTER TABLE {plan.table.quoted} AUTO_INCREMENT = {int(wanted)}")


def cut_over(planned: list[programs.Program]) -> list[ObjectOutcome]:
    """The application's triggers, routines and events are not created now (a trigger would fire
    again for rows the sync replays): the report says what switchover will do with each."""
    return [
        ObjectOutcome(
            p.kind.lower(), f"{p.schema}.{p.name}", f"{p.target_schema}.{p.name}", "skipped", programs.described(p)
        )
        for p in planned
    ]


def report(findings: list[ObjectOutcome]) -> pd.DataFrame:
    return pd.DataFrame([asdict(f) for f in findings], columns=["object_type", "source", "target", "status", "detail"])
