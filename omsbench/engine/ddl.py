"""DDL in the binlog: decide, translate and apply each statement at its point in the stream.

Only table DDL on the project's tables acts on the target (CREATE/DROP/RENAME/TRUNCATE TABLE,
ALTER TABLE, CREATE/DROP INDEX); everything else is recorded as ignored with the reason. A
statement runs on the target as written unless the project renames one of its tables, in which
case sqlglot rewrites the table names. A statement that cannot be rewritten, or that the target
refuses, pauses the sync with the statement shown; the user skips it or gives a replacement.
After the statement the tracker re-reads the table, so rows that follow decode with the new
columns (a column added mid-stream keeps its values).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace

import pymysql
import sqlglot
from sqlglot import exp

from omsbench.actions import named
from omsbench.changes import Ddl
from omsbench.endpoints.catalog import Table, quote
from omsbench.endpoints.connection import Session
from omsbench.engine import bounded_ddl
from omsbench.engine.mapping import TableMap, chooses, new_table_map
from omsbench.engine.spec import ProjectSpec
from omsbench.engine.tracker import Tracker
from omsbench.exceptions import DdlBlocked, DdlPaused, StatementStopped

logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its "falling back to Command" warnings are expected here

_TABLE_STATEMENT = re.compile(
    r"^\s*(ALTER|CREATE|DROP|TRUNCATE)\s+(?:ONLINE\s+|IGNORE\s+|TEMPORARY\s+)*TABLE\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?"
    r"((?:`(?:[^`]|``)+`|[\w$]+)(?:\.(?:`(?:[^`]|``)+`|[\w$]+))?)",
    re.IGNORECASE,
)
_RENAME = re.compile(r"^\s*RENAME\s+TABLES?\s+(.+)$", re.IGNORECASE | re.DOTALL)
_PAIR = re.compile(r"\s*(\S+)\s+TO\s+(\S+)\s*", re.IGNORECASE)
# the target already holds the effect: the statement ran before a crash cut the checkpoint
_ALREADY_DONE = {1050, 1060, 1061, 1091, 1051, 1146, 1826}


@dataclass
class Decision:
    statement: str
    action: str
    """applied | translated | skipped | ignored."""
    reason: str = ""
    target_sql: str = ""
    tables: list[str] = field(default_factory=list)
    created: bool = False
    """The statement created ``tables`` on the target: their rows come from the sync, not a full load."""
    renamed: list[tuple[str, str]] = field(default_factory=list)
    """(old, new) source names of the tables the statement renamed."""


@dataclass
class _Plan:
    kind: str
    names: list[tuple[str, str]]
    renames: list[tuple[tuple[str, str], tuple[str, str]]] = field(default_factory=list)
    tree: exp.Expression | None = None


def _parse(ddl: Ddl) -> _Plan | None:
    default = ddl.schema or ""
    match = _RENAME.match(ddl.statement)
    if match:
        pairs = [_PAIR.fullmatch(p) for p in match.group(1).split(",")]
        if not all(pairs):
            return None
        renames = [(_name(p.group(1), default), _name(p.group(2), default)) for p in pairs]
        return _Plan("rename", [old for old, _ in renames], renames)
    try:
        tree = sqlglot.parse_one(ddl.statement, read="mysql")
    except sqlglot.errors.ParseError:
        tree = None
    kind = _kind(tree) if tree is not None else None
    if kind is None:
        return _unparsed(ddl, tree)
    tables = list(tree.find_all(exp.Table))
    if kind == "drop_index":
        tables = tables[-1:]
    names = [(t.db or default, t.name) for t in tables]
    renames = []
    if kind == "alter" and any(isinstance(a, exp.AlterRename) for a in tree.args.get("actions") or []):
        renames = [(names[0], (names[1][0] if tables[1].db else names[0][0], names[1][1]))]
        names = names[:1]
    return _Plan(kind, names if kind not in ("create", "alter", "truncate") else names[:1], renames, tree)


def tables_touched(ddl: Ddl) -> list[tuple[str, str]] | None:
    """The (schema, table) names a DDL statement changes, new names of renames included; None when
    the statement cannot be parsed, [] when it is no table DDL."""
    plan = _parse(ddl)
    if plan is None:
        return None
    return plan.names + [new for _, new in plan.renames]


def _unparsed(ddl: Ddl, tree: exp.Expression | None) -> _Plan | None:
    """Table DDL that sqlglot keeps as text: the table name still says whether it is ours."""
    match = _TABLE_STATEMENT.match(ddl.statement)
    if match:
        return _Plan(match.group(1).lower(), [_name(match.group(2), ddl.schema or "")])
    return None if tree is None else _Plan("other", [], tree=tree)


def _kind(tree: exp.Expression) -> str | None:
    kind = str(tree.args.get("kind") or "").upper()
    if isinstance(tree, exp.Create) and kind in ("TABLE", "INDEX"):
        return "create" if kind == "TABLE" else "index"
    if isinstance(tree, exp.Drop) and kind in ("TABLE", "INDEX"):
        return "drop" if kind == "TABLE" else "drop_index"
    if isinstance(tree, exp.Alter) and kind == "TABLE":
        return "alter"
    if isinstance(tree, exp.TruncateTable):
        return "truncate"
    return None


def _name(text: str, default: str) -> tuple[str, str]:
    parts = [p.strip("`") for p in re.findall(r"`(?:[^`]|``)+`|[^.]+", text)]
    return (parts[0], parts[1]) if len(parts) == 2 else (default, parts[0])


class DdlApplier:
    def __init__(self, target: Session, spec: ProjectSpec, tracker: Tracker, command: str = "sync") -> None:
        self.target, self.spec, self.tracker = target, spec, tracker
        self.command = command
        """The CLI group that controls this sync, for the commands a pause message offers."""

    def apply(self, ddl: Ddl, position: str, replacement: str | None = None) -> Decision:
        plan = _parse(ddl)
        if plan is None:
            if self._mentions_project(ddl):
                self._pause(ddl, position, "the statement could not be parsed to find its tables")
            return Decision(ddl.statement, "ignored", "not table DDL of this project")
        if plan.kind == "other":
            return Decision(ddl.statement, "ignored", "not table DDL (only table DDL is replayed)")
        ours = [n for n in plan.names if self._ours(*n, creating=plan.kind == "create")]
        if not ours:
            return Decision(ddl.statement, "ignored", "touches no table of this project")
        sql, translated = (replacement, True) if replacement else self._translate(ddl, plan, position)
        reason = "replaced by the user" if replacement else "table names follow the project's renames"
        refused = self._run(ddl, sql, position)
        if refused:
            parts = [] if replacement else _split(sql)
            if len(parts) < 2 or any(self._run(ddl, part, position) for part in parts):
                self._pause(ddl, position, f"the target refused it: {refused}", sql)
            sql, translated = ";\n".join(parts), True
            reason = f"split into {len(parts)} statements: the target refused them together ({refused})"
        self._follow(plan)
        names = [f"{s}.{t}" for s, t in ours]
        created = plan.kind == "create"
        renamed = [(f"{a}.{b}", f"{c}.{d}") for (a, b), (c, d) in plan.renames]
        if translated:
            return Decision(ddl.statement, "translated", reason, sql, names, created, renamed)
        return Decision(ddl.statement, "applied", "", sql, names, created, renamed)

    def _ours(self, schema: str, name: str, creating: bool) -> bool:
        if self.tracker.get(schema, name) is not None:
            return True
        return creating and chooses(self.spec, schema, name)

    def _mentions_project(self, ddl: Ddl) -> bool:
        text = ddl.statement.lower()
        return any(tm.source.name.lower() in text for tm in self.tracker.tables.values())

    def _translate(self, ddl: Ddl, plan: _Plan, position: str) -> tuple[str, bool]:
        mapping = {}
        for schema, name in plan.names + [new for _, new in plan.renames]:
            tm = self.tracker.get(schema, name) or new_table_map(self.spec, Table(schema, name))
            if (tm.schema, tm.name) != (schema, name):
                mapping[(schema, name)] = (tm.schema, tm.name)
        renamed_columns = self._renamed_columns(plan)
        if renamed_columns:
            self._pause(ddl, position, f"it touches column(s) {', '.join(renamed_columns)} that the project renames")
        if plan.kind == "rename":
            pairs = [(mapping.get(old, old), mapping.get(new, new)) for old, new in plan.renames]
            return "RENAME TABLE " + ", ".join(f"{_q(o)} TO {_q(n)}" for o, n in pairs), bool(mapping)
        if not mapping:
            return ddl.statement, False
        if plan.tree is None or isinstance(plan.tree, exp.Command):
            self._pause(ddl, position, "the statement renames tables but could not be rewritten")
        tree = plan.tree.copy()
        for table in tree.find_all(exp.Table):
            found = mapping.get((table.db or ddl.schema or "", table.name))
            if found:
                table.set("db", exp.to_identifier(found[0], quoted=True))
                table.set("this", exp.to_identifier(found[1], quoted=True))
        return tree.sql(dialect="mysql"), True

    def _renamed_columns(self, plan: _Plan) -> list[str]:
        if plan.tree is None:
            return []
        renamed: set[str] = set()
        for schema, name in plan.names:
            tm = self.tracker.get(schema, name)
            if tm:
                renamed |= {s for s, t in tm.columns.items() if s != t}
        used = {c.name for c in plan.tree.find_all(exp.Column, exp.ColumnDef)}
        return sorted(renamed & used)

    def _run(self, ddl: Ddl, sql: str, position: str) -> str | None:
        """Run one statement in the statement's database; return the target's refusal, if any.

        A statement stopped at its bound raises DdlBlocked: the transactions it waited for may end.
        """
        schema = self.spec.objects.rename.databases.get(ddl.schema or "", ddl.schema)
        try:
            if schema and _schema_exists(self.target, schema):
                self.target.execute(f"USE {quote(schema)}")
            bounded_ddl.run(self.target, self.spec.target.dsn(), sql, self.spec.options.ddl_timeout_s)
        except StatementStopped as err:
            why = f"{err.message}; once they end, a resume runs it again"
            self._pause(ddl, position, why, sql, blocked_by=err.transactions)
        except pymysql.err.MySQLError as err:
            if err.args and err.args[0] in _ALREADY_DONE:
                return None
            return str(err.args[-1])
        return None

    def _follow(self, plan: _Plan) -> None:
        """Bring the tracker to the table shapes after the statement."""
        for old, new in plan.renames:
            tm = self.tracker.forget(*old)
            if tm is not None and chooses(self.spec, *new):  # else the table left the project
                moved = new_table_map(self.spec, Table(*new))
                source = replace(tm.source, schema=new[0], name=new[1])
                self.tracker.refresh(self.target, TableMap(source, moved.schema, moved.name, dict(tm.columns)))
        if plan.renames:
            return
        for schema, name in plan.names:
            if plan.kind == "drop":
                self.tracker.forget(schema, name)
                continue
            tm = self.tracker.get(schema, name)
            if tm is None and plan.kind == "create" and chooses(self.spec, schema, name):
                tm = new_table_map(self.spec, Table(schema, name))
            if tm is not None:
                self.tracker.refresh(self.target, tm)

    def _pause(
        self, ddl: Ddl, position: str, why: str, sql: str | None = None, blocked_by: tuple[int, ...] = ()
    ) -> None:
        shown = f"\n  translated: {sql}" if sql and sql != ddl.statement else ""
        message = f"sync paused at {position}: DDL cannot be applied ({why}):\n  {ddl.statement}{shown}"
        fix = (
            f"run it again once the cause is fixed: {named(f'{self.command} resume', self.spec.name)}; skip it"
            f" with {named(f'{self.command} resolve', self.spec.name, '--skip')}; or give the statement to run"
            f" instead with {named(f'{self.command} resolve', self.spec.name, '--replace-with', 'SQL')}"
        )
        if blocked_by:
            raise DdlBlocked(message, fix, ddl.statement, position, blocked_by)
        raise DdlPaused(message, fix, statement=ddl.statement, position=position)


def _split(sql: str) -> list[str]:
    """One ALTER TABLE per action, for targets that refuse some actions together (OceanBase does)."""
    try:
        tree = sqlglot.parse_one(sql, read="mysql")
    except sqlglot.errors.ParseError:
        return []
    actions = tree.args.get("actions") or [] if isinstance(tree, exp.Alter) else []
    parts = []
    for action in actions:
        single = tree.copy()
        single.set("actions", [action.copy()])
        parts.append(single.sql(dialect="mysql"))
    return parts


def _q(name: tuple[str, str]) -> str:
    return f"{quote(name[0])}.{quote(name[1])}"


def _schema_exists(target: Session, schema: str) -> bool:
    return bool(target.scalar("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (schema,)))
