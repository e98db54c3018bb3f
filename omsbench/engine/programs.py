"""The application's triggers, procedures, functions and events, on OceanBase from the cut-over.

An application that relies on a trigger (one that keeps a search table in step, one that stamps
a date) or CALLs a procedure breaks the moment its writes move, unless these are there. They are
read from MySQL's catalog (SHOW CREATE, never dump text with version comments) with what
recreating them exactly needs (sql_mode, client character set, connection collation, a trigger's
place among its table's), planned for the target, and created there during switchover: after
the drain and the forward sync's stop, so they never fire for rows the forward sync replays, and
before the reverse sync starts. Their side effects are ordinary row changes on OceanBase, which
reach MySQL through the reverse sync while MySQL's own triggers are suspended. seekdb answers
OK to statements it ignores, so each is looked up once created. At switch-back the triggers are
dropped again (they would fire on the rows the forward sync replays); procedures and functions
stay, harmless. Events cannot be created on OceanBase (it has no event scheduler): MySQL's are
disabled from switchover to switch-back, so that they do not write to the side the application
has left.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from omsbench.endpoints import charsets
from omsbench.endpoints.catalog import SPATIAL_TYPES, quote
from omsbench.endpoints.connection import SQL_MODE, Session
from omsbench.engine.mapping import Selection

TRIGGER, PROCEDURE, FUNCTION, EVENT = "TRIGGER", "PROCEDURE", "FUNCTION", "EVENT"
CREATE, SKIP = "create", "skip"
_DEFINER = re.compile(r"\bDEFINER\s*=\s*(?:`[^`]*`|'[^']*'|[^\s@]+)@(?:`[^`]*`|'[^']*'|[^\s]+)\s+", re.IGNORECASE)
_TEMPORARY = re.compile(r"\bTEMPORARY\s+TABLE\b", re.IGNORECASE)


@dataclass
class Program:
    kind: str
    schema: str
    name: str
    statement: str | None
    """The CREATE statement as SHOW CREATE gives it; None when omsbench's user may not read the body."""
    sql_mode: str
    charset: str
    collation: str
    definer: str
    """``user@host``, as information_schema spells it."""
    table: str | None = None
    order: int = 0
    target_schema: str = ""
    fate: str = CREATE
    why: str = ""
    """What the cut-over does with it beyond creating it as it is, or why it is not created."""
    outcome: str = ""
    """After switchover: created, existed, or failed with the target's answer."""
    enabled: bool = False
    """An event that MySQL runs: disabled there from switchover to switch-back."""

    @property
    def label(self) -> str:
        """As ``objects.accept_missing`` names it: ``trigger shop.t_ai``."""
        return f"{self.kind.lower()} {self.schema}.{self.name}"


def read(mysql: Session, selection: Selection) -> list[Program]:
    """The source's triggers on the migrated tables, and routines and events in the migrated databases."""
    return _triggers(mysql, selection) + _in_schemas(mysql, selection)


def _shown(mysql: Session, kind: str, schema: str, name: str) -> tuple:
    """SHOW CREATE's sql_mode, statement, client character set and connection collation."""
    _, sql_mode, statement, charset, collation, *_ = mysql.query(f"SHOW CREATE {kind} {quote(schema)}.{quote(name)}")[0]
    return statement, sql_mode, charset, collation


def _triggers(mysql: Session, selection: Selection) -> list[Program]:
    tables = {(tm.source.schema, tm.source.name): tm for tm in selection.tables}
    rows = mysql.query(
        "SELECT TRIGGER_SCHEMA, TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_ORDER, DEFINER"
        " FROM information_schema.TRIGGERS ORDER BY TRIGGER_SCHEMA, EVENT_OBJECT_TABLE, ACTION_ORDER"
    )
    return [
        Program(
            TRIGGER,
            schema,
            name,
            *_shown(mysql, TRIGGER, schema, name),
            _user(definer),
            table,
            int(order),
            tables[(schema, table)].schema,
        )
        for schema, name, table, order, definer in rows
        if (schema, table) in tables
    ]


def _in_schemas(mysql: Session, selection: Selection) -> list[Program]:
    """Routines and events of the migrated databases (information_schema lists both by schema)."""
    renamed = {tm.source.schema: tm.schema for tm in selection.tables}
    rows = mysql.query(
        "SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE, DEFINER, NULL FROM information_schema.ROUTINES"
        " UNION ALL SELECT EVENT_SCHEMA, EVENT_NAME, 'EVENT', DEFINER, STATUS FROM information_schema.EVENTS"
        " ORDER BY 1, 2"
    )
    return [
        _program(mysql, kind, schema, name, _user(definer), status, renamed[schema])
        for schema, name, kind, definer, status in rows
        if schema in renamed
    ]


def _program(
    mysql: Session, kind: str, schema: str, name: str, definer: str, status: str | None, there: str
) -> Program:
    if kind == EVENT:  # no body to create: OceanBase has no events
        return Program(EVENT, schema, name, None, "", "", "", definer, target_schema=there, enabled=status == "ENABLED")
    return Program(kind, schema, name, *_shown(mysql, kind, schema, name), definer, target_schema=there)


def _user(definer: str) -> str:
    """``user@host`` from either spelling information_schema uses (``app@%``, ``'app'@'%'``)."""
    return definer.replace("'", "").replace("`", "")


def target_users(target: Session) -> set[str]:
    return {f"{user}@{host}" for user, host in target.query("SELECT user, host FROM mysql.user")}


def plan(programs: list[Program], selection: Selection, users: set[str], definers: dict[str, str]) -> list[Program]:
    """Each program's fate at cut-over, and the statement that creates it on the target."""
    spatial = {
        (tm.source.schema, tm.source.name)
        for tm in selection.tables
        if any(c.data_type in SPATIAL_TYPES for c in tm.source.columns)
    }
    renamed = {tm.source.schema: tm.schema for tm in selection.tables if tm.source.schema != tm.schema}
    known = {(tm.source.schema, tm.source.name) for tm in selection.tables} | {(p.schema, p.name) for p in programs}
    for program in programs:
        program.fate, program.why = _fate(program, spatial, users, definers)
        if program.fate == CREATE and renamed:
            program.statement, moved = renamed_in(program.statement, renamed, known)
            if moved:
                note = "names of renamed databases rewritten in its body: " + ", ".join(moved)
                program.why = f"{program.why}; {note}" if program.why else note
    return programs


_NAME = r"(`(?:[^`]|``)+`|\b\w+\b)"
_QUALIFIED = re.compile(rf"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"|{_NAME}(\s*\.\s*){_NAME}")


def _bare(name: str) -> str:
    return name[1:-1].replace("``", "`") if name.startswith("`") else name


def renamed_in(statement: str, renamed: dict[str, str], known: set[tuple[str, str]]) -> tuple[str, list[str]]:
    """``statement`` with each ``db.name`` whose database is renamed on the target written with the
    target's name, and the renames made. Only names of migrated tables and programs (``known``)
    count: ``shop.id`` may be a column of a table called shop. String literals stay as they are.

    A body that names ``shop.orders`` would otherwise use a database of the old name on the
    target, which does not exist there, or is another one."""
    moved: set[str] = set()

    def swap(match: re.Match) -> str:
        qualifier, dot, name = match.group(1, 2, 3)
        if qualifier is None or _bare(qualifier) not in renamed or (_bare(qualifier), _bare(name)) not in known:
            return match.group(0)  # a string literal, or not a renamed database's object
        moved.add(f"{_bare(qualifier)} → {renamed[_bare(qualifier)]}")
        return quote(renamed[_bare(qualifier)]) + dot + name

    return _QUALIFIED.sub(swap, statement), sorted(moved)


def _fate(program: Program, spatial: set, users: set[str], definers: dict[str, str]) -> tuple[str, str]:
    if program.kind == EVENT:
        disabled = "disabled on MySQL from switchover to switch-back" if program.enabled else "stays disabled on MySQL"
        return SKIP, f"OceanBase has no event scheduler: not created there; {disabled}; run its work yourself meanwhile"
    if program.statement is None:
        return (
            SKIP,
            "omsbench's MySQL user may not read its body: grant it SHOW CREATE ROUTINE (or SELECT on mysql.proc)",
        )
    if program.kind == TRIGGER and (program.schema, program.table) in spatial:
        return SKIP, (
            "seekdb refuses every write to a table with a spatial column once it has a trigger"
            " (docs/seekdb.md): not created; the application's writes to the table would all fail"
        )
    if _TEMPORARY.search(program.statement):
        return SKIP, "it uses a temporary table, which seekdb refuses when it runs (error 1235): not created"
    mapped = definers.get(program.definer) or (program.definer if program.definer in users else None)
    if mapped is None:
        program.statement = _DEFINER.sub("", program.statement, count=1)
        return CREATE, (
            f"DEFINER {program.definer} is no user of the target (every write it fires for would fail with"
            " error 1449): created with omsbench's user as definer; map it with switchover.definers"
        )
    if mapped != program.definer:
        user, host = mapped.rsplit("@", 1)
        program.statement = _DEFINER.sub(f"DEFINER={quote(user)}@{quote(host)} ", program.statement, count=1)
        return CREATE, f"DEFINER {program.definer} mapped to {mapped}"
    return CREATE, ""


def run_created(session: Session, schema: str, statement: str, sql_mode: str | None, charset: str | None,
                collation: str | None) -> None:  # fmt: skip
    """Run a CREATE of a trigger or routine under its own sql_mode and client character set (a body
    is parsed under both), not this session's."""
    session.execute(f"USE {quote(schema)}")
    charset = charset or "utf8mb4"
    if sql_mode is not None:
        session.execute("SET SESSION sql_mode = %s", (sql_mode,))
    session.execute(f"SET character_set_client = {charset}, collation_connection = {collation or 'utf8mb4_general_ci'}")
    try:
        session.execute(statement.encode(charsets.codec(charset) or "utf-8"))
    finally:
        session.execute(f"SET NAMES utf8mb4, SESSION sql_mode = '{SQL_MODE}'")


def exists(session: Session, program: Program) -> bool:
    if program.kind == TRIGGER:
        sql = "SELECT 1 FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s AND TRIGGER_NAME = %s"
        return bool(session.query(sql, (program.target_schema, program.name)))
    sql = (
        "SELECT 1 FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s AND ROUTINE_NAME = %s"
        " AND ROUTINE_TYPE = %s"
    )
    return bool(session.query(sql, (program.target_schema, program.name, program.kind)))


def create(target: Session, programs: list[Program]) -> list[Program]:
    """Create the planned programs on the target, triggers in their order; each looked up afterwards."""
    for program in programs:
        if program.fate != CREATE:
            continue
        if exists(target, program):  # created by an earlier run of the same switchover
            program.outcome = "existed"
            continue
        try:
            run_created(target, program.target_schema, program.statement, program.sql_mode, program.charset,
                        program.collation)  # fmt: skip
        except Exception as err:  # the target's refusal is the outcome the report shows
            program.outcome = f"failed: {err.args[-1] if err.args else err}"
            continue
        program.outcome = (
            "created" if exists(target, program) else "failed: the target answered OK but has no such object"
        )
    return programs


def drop_created(target: Session, records: list[dict], kinds: tuple[str, ...] = (TRIGGER,)) -> None:
    """Drop the programs of ``kinds`` the switchover created on the target: at switch-back its
    triggers always (they would fire on the rows the forward sync replays), its procedures and
    functions when the spec says so (``switchover.target_routines``)."""
    for item in records:
        if item["kind"] in kinds and item.get("outcome") in ("created", "existed"):
            target.execute(f"DROP {item['kind']} IF EXISTS {quote(item['target_schema'])}.{quote(item['name'])}")


def set_events(mysql: Session, records: list[dict], enabled: bool) -> None:
    """Disable MySQL's enabled events of the migrated databases (or enable them again)."""
    for item in records:
        if item["kind"] == EVENT and item.get("enabled"):
            mysql.execute(
                f"ALTER EVENT {quote(item['schema'])}.{quote(item['name'])} {'ENABLE' if enabled else 'DISABLE'}"
            )


def fates(mysql: Session, target: Session, selection: Selection, definers: dict[str, str]) -> list[Program]:
    """The source's programs planned for the target, as the precheck and the schema report tell them."""
    return plan(read(mysql, selection), selection, target_users(target), definers)


def described(program: Program) -> str:
    """What the cut-over does with it, in a line."""
    if program.fate == SKIP:
        return f"not created on the target at switchover: {program.why}"
    done = "created on the target at switchover (after the drain, before writes move)"
    return f"{done}; {program.why}" if program.why else done


def records(programs: list[Program]) -> list[dict]:
    return [asdict(p) for p in programs]
