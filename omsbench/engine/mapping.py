"""Which source objects move, and under which names: the spec resolved against a source catalog.

This is where a spec that names a table the source lacks, or maps two objects onto one
name, is refused, before anything touches the target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import sqlglot
from sqlglot import exp

from omsbench.endpoints.catalog import Catalog, Table, View, quote
from omsbench.engine.spec import ProjectSpec, split_name
from omsbench.exceptions import SpecError


@dataclass
class TableMap:
    source: Table
    schema: str
    name: str
    columns: dict[str, str]
    """Source column name -> target column name, for every column."""
    filter: str | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def quoted(self) -> str:
        return f"{quote(self.schema)}.{quote(self.name)}"


@dataclass
class ViewMap:
    source: View
    schema: str
    name: str


@dataclass
class Selection:
    tables: list[TableMap] = field(default_factory=list)
    views: list[ViewMap] = field(default_factory=list)
    schemas: dict[str, str] = field(default_factory=dict)
    """Source schema -> target schema, for every schema that holds a selected object."""

    def table(self, schema: str, name: str) -> TableMap | None:
        return next((t for t in self.tables if (t.source.schema, t.source.name) == (schema, name)), None)


def _pattern(text: str, where: str) -> tuple[str, str]:
    parts = split_name(text)
    if len(parts) != 2 or not all(parts):
        raise SpecError(
            f"{where}: {text!r} is not a db.table pattern", fix="write it as db.table, e.g. shop.* or `my.db`.t1"
        )
    return parts[0], parts[1]


def _matches(patterns: list[tuple[str, str]], schema: str, name: str) -> bool:
    return any(fnmatchcase(schema, s) and fnmatchcase(name, n) for s, n in patterns)


def chooses(spec: ProjectSpec, schema: str, name: str) -> bool:
    """Whether the spec's include/exclude patterns take a table, such as one created during sync."""
    objects = spec.objects
    include = [_pattern(p, "objects.include") for p in objects.include]
    exclude = [_pattern(p, "objects.exclude") for p in objects.exclude]
    return _matches(include, schema, name) and not _matches(exclude, schema, name)


def new_table_map(spec: ProjectSpec, table: Table) -> TableMap:
    """The target names of a table the source gained after the selection was made."""
    renames = spec.objects.rename
    new_names = {tuple(split_name(key)): new for key, new in renames.tables.items()}
    return TableMap(
        table,
        renames.databases.get(table.schema, table.schema),
        new_names.get((table.schema, table.name), table.name),
        {c.name: c.name for c in table.columns},
    )


def select(spec: ProjectSpec, catalog: Catalog) -> Selection:
    """Resolve include/exclude, renames and filters; raise SpecError naming any bad entry."""
    objects = spec.objects
    include = [_pattern(p, f"objects.include[{i}]") for i, p in enumerate(objects.include)]
    exclude = [_pattern(p, f"objects.exclude[{i}]") for i, p in enumerate(objects.exclude)]
    for i, (s, n) in enumerate(include):
        if not any(fnmatchcase(ts, s) and fnmatchcase(tn, n) for ts, tn in [*catalog.tables, *catalog.views]):
            known = ", ".join(f"{a}.{b}" for a, b in sorted(catalog.tables)[:20]) or "none"
            raise SpecError(
                f"objects.include[{i}]: {objects.include[i]!r} matches no table or view on the source",
                fix=f"fix the pattern; source tables: {known}",
            )

    def chosen(schema: str, name: str) -> bool:
        return _matches(include, schema, name) and not _matches(exclude, schema, name)

    selection = Selection()
    renames = objects.rename
    new_names = {tuple(split_name(key)): new for key, new in renames.tables.items()}
    for schema, name in sorted(catalog.tables):
        if chosen(schema, name):
            tm = new_table_map(spec, catalog.tables[(schema, name)])
            selection.schemas[schema] = tm.schema
            selection.tables.append(tm)
    for (schema, name), view in sorted(catalog.views.items()):
        if chosen(schema, name):
            selection.schemas[schema] = renames.databases.get(schema, schema)
            selection.views.append(ViewMap(view, selection.schemas[schema], new_names.get((schema, name), name)))
    _apply_renames(spec, selection)
    _apply_filters(spec, selection)
    _check_collisions(selection)
    return selection


def _selected_table(selection: Selection, key: str, where: str) -> TableMap:
    parts = split_name(key)
    found = selection.table(parts[0], parts[1]) if len(parts) == 2 else None
    if found is None:
        raise SpecError(
            f"{where}: {key!r} is not a selected source table",
            fix="name a table as db.table that objects.include selects",
        )
    return found


def _apply_renames(spec: ProjectSpec, selection: Selection) -> None:
    renames = spec.objects.rename
    for source in renames.databases:
        if source not in selection.schemas:
            raise SpecError(
                f"objects.rename.databases: {source!r} holds no selected object",
                fix="name a source database that objects.include selects",
            )
    for key in renames.tables:
        parts = split_name(key)
        if len(parts) != 2 or (parts[0], parts[1]) not in {(v.source.schema, v.source.name) for v in selection.views}:
            _selected_table(selection, key, "objects.rename.tables")
    for key, new in renames.columns.items():
        parts = split_name(key)
        if len(parts) != 3:
            raise SpecError(f"objects.rename.columns: {key!r} is not db.table.column", fix="write db.table.column")
        table = _selected_table(selection, f"{quote(parts[0])}.{quote(parts[1])}", "objects.rename.columns")
        if parts[2] not in table.columns:
            raise SpecError(
                f"objects.rename.columns: table {parts[0]}.{parts[1]} has no column {parts[2]!r}",
                fix=f"columns are: {', '.join(table.columns)}",
            )
        table.columns[parts[2]] = new


def _apply_filters(spec: ProjectSpec, selection: Selection) -> None:
    for key, condition in spec.objects.filters.items():
        table = _selected_table(selection, key, "objects.filters")
        table.filter = check_filter(condition, table.source, f"objects.filters[{key!r}]")


def check_filter(condition: str, table: Table, where: str) -> str:
    """Accept only a single condition over the table's own columns: never a second statement.

    It is judged as the loads use it, in parentheses after their own conditions, so a filter
    cannot close them, add clauses (ORDER BY, LIMIT, INTO, FOR UPDATE) or comment out the rest.
    """
    not_one = SpecError(
        f"{where}: a row filter must be one condition on its table, without subqueries, clauses, comments or ';'",
        fix="reduce the filter to a condition on the table's own columns",
    )
    try:
        tokens = sqlglot.tokenize(condition, read="mysql")
        statements = sqlglot.parse(f"SELECT 1 FROM {quote(table.name)} WHERE ({condition})", read="mysql")
    except sqlglot.errors.SqlglotError as err:
        if _parses(f"SELECT 1 FROM {quote(table.name)} WHERE {condition}"):
            raise not_one from err  # it is valid SQL only with more than a condition
        detail = err.errors[0]["description"] if isinstance(err, sqlglot.errors.ParseError) else str(err)
        raise SpecError(
            f"{where}: {condition!r} is not a valid condition: {detail}",
            fix="write a SQL condition such as: created_at >= '2024-01-01'",
        ) from err
    select = statements[0] if len(statements) == 1 else None
    if (
        any(token.comments for token in tokens)
        or not isinstance(select, exp.Select)
        or not isinstance(select.args["where"].this, exp.Paren)  # "1) OR (1" escapes its parentheses
        or any(v for k, v in select.args.items() if k not in ("expressions", "from", "from_", "where"))
        or len(list(select.find_all(exp.Select))) != 1
    ):
        raise not_one
    names = {c.name for c in table.columns}
    unknown = sorted({col.name for col in select.find_all(exp.Column)} - names)
    if unknown:
        raise SpecError(
            f"{where}: the filter names unknown column(s) {', '.join(unknown)}",
            fix=f"columns of {table.qualified}: {', '.join(sorted(names))}",
        )
    return condition


def _parses(sql: str) -> bool:
    try:
        sqlglot.parse(sql, read="mysql")
    except sqlglot.errors.SqlglotError:
        return False
    return True


def _check_collisions(selection: Selection) -> None:
    seen: dict[tuple[str, str], str] = {}
    for obj in [*selection.tables, *selection.views]:
        target = (obj.schema.lower(), obj.name.lower())
        source = f"{obj.source.schema}.{obj.source.name}"
        if target in seen:
            raise SpecError(
                f"objects.rename: {seen[target]} and {source} would both become {obj.schema}.{obj.name}",
                fix="give one of them another name in objects.rename",
            )
        seen[target] = source
    for table in selection.tables:
        targets = [c.lower() for c in table.columns.values()]
        if len(set(targets)) != len(targets):
            raise SpecError(
                f"objects.rename.columns: two columns of {table.source.qualified} get the same name",
                fix="give each renamed column a name the table does not already use",
            )
