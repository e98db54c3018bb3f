"""Switchover and switch-back: move the application's writes to OceanBase and keep a way back.

Each workflow is a list of phases. A finished phase is recorded in the state store with its
time before the next one starts, and every phase can run twice without harm, so running the
same command again after a crash goes on from the first phase not recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone

import pymysql

from omsbench.actions import named
from omsbench.endpoints import catalog
from omsbench.endpoints import mysql as mysql_endpoint
from omsbench.endpoints.catalog import quote
from omsbench.endpoints.connection import Session, connect
from omsbench.engine import capture, narrow, own_tables, precheck, programs
from omsbench.engine import reverse as reverse_sync
from omsbench.engine.apply import write_checkpoint
from omsbench.engine.project import Project
from omsbench.engine.steps import ACTIVE, WORKING, State, Step
from omsbench.exceptions import StateError

_READ_ONLY = 1290


def _run(project: Project, direction: str, phases: list[tuple[str, Callable[[dict], None]]], detail: dict) -> dict:
    """Run the phases not yet recorded for ``direction``; return the record.

    Run again once finished, it changes nothing and returns the record: a user whose command was
    killed while it printed, or who is unsure it ran, must not start a second switchover.
    """
    record = project.state.detail(project.name, Step.SWITCHOVER)
    if record.get("direction") == direction and record.get("finished"):
        return record
    if record.get("direction") != direction:
        record = {"direction": direction, "phases": {}}
    record.update(detail)  # a run again after a refusal takes the options given now
    for name, phase in phases:
        if name in record["phases"]:
            continue
        project.state.set_step(project.name, Step.SWITCHOVER, State.RUNNING, f"{direction}: {name}", record)
        try:
            phase(record)
        except Exception as err:
            project.state.set_step(project.name, Step.SWITCHOVER, State.FAILED, f"{direction}: {name}: {err}", record)
            raise
        record["phases"][name] = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    record["finished"] = True
    project.state.set_step(project.name, Step.SWITCHOVER, State.DONE, f"{direction} done", record)
    return record


def capturable(project: Project, without: list[str]) -> tuple[list, list[str]]:
    """The OceanBase tables reverse sync will capture by triggers, and the source tables (db.table)
    it will carry back by comparison instead, since triggers cannot capture them (``engine.compared``)."""
    with project.sessions() as (source, target):
        selected = project.selection(source).tables
        unknown = sorted(set(without) - {tm.source.qualified for tm in selected})
        if unknown:
            raise StateError(
                f"--without names table(s) the project does not migrate: {', '.join(map(repr, unknown))}",
                fix="name source tables as db.table; the project migrates: "
                + ", ".join(tm.source.qualified for tm in selected[:10]),
            )
        tables = [tm for tm in selected if tm.source.qualified not in without]
        found = catalog.read(target, {tm.schema for tm in tables})
    ob_tables = {
        tm.source.qualified: found.tables[(tm.schema, tm.name)] for tm in tables if (tm.schema, tm.name) in found.tables
    }
    names = {table.qualified: source for source, table in ob_tables.items()}
    refused = capture.uncapturable(list(ob_tables.values()))
    return [t for t in ob_tables.values() if t.qualified not in refused], sorted(names[t] for t in refused)


_TRIGGER_COLUMNS = "TRIGGER_SCHEMA, TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_ORDER"


def source_triggers(project: Project, without: list[str]) -> list[dict]:
    """The MySQL triggers on tables reverse sync writes to, each as SHOW CREATE TRIGGER gives it.

    They would fire on every row reverse sync applies and could rewrite it; while the
    application writes to OceanBase, their work is already in the rows that come back. Each keeps
    what recreating it exactly needs besides its text: the sql_mode, client character set and
    connection collation it was created under, and its place among the table's triggers.
    """
    with connect(project.spec.source.dsn()) as mysql:
        tables = {
            (tm.source.schema, tm.source.name)
            for tm in project.selection(mysql).tables
            if tm.source.qualified not in without
        }
        found = []
        rows = mysql.query(f"SELECT {_TRIGGER_COLUMNS} FROM information_schema.TRIGGERS ORDER BY {_TRIGGER_COLUMNS}")
        for schema, name, table, order in rows:
            if (schema, table) in tables:
                shown = mysql.query(f"SHOW CREATE TRIGGER {quote(schema)}.{quote(name)}")[0]
                found.append(
                    {"schema": schema, "name": name, "statement": shown[2], "sql_mode": shown[1],
                     "charset": shown[3], "collation": shown[4], "order": int(order)}
                )  # fmt: skip
    return found


def trigger(item: dict | list) -> dict:
    """A suspended trigger as recorded; records of earlier versions hold (schema, name, statement) only."""
    if isinstance(item, dict):
        return item
    schema, name, statement = item
    return {"schema": schema, "name": name, "statement": statement}


def create_trigger(mysql: Session, item: dict) -> None:
    """Create a suspended trigger again as it was: under its own sql_mode and client character set."""
    programs.run_created(
        mysql, item["schema"], item["statement"], item.get("sql_mode"), item.get("charset"), item.get("collation")
    )


def _set_read_only(session: Session, on: bool) -> None:
    session.execute(f"SET GLOBAL read_only = {'ON' if on else 'OFF'}")


def switchover(
    project: Project,
    without: list[str] | None = None,
    writes_stopped: bool | None = None,
    suspend_triggers: bool | None = None,
) -> dict:
    """Stop writes on MySQL, drain and verify, stop the forward sync, capture on OceanBase, reverse sync.

    ``writes_stopped`` means the user confirms the application no longer writes to MySQL; else
    omsbench sets MySQL read-only (omsbench's own user must be able to write through it, which
    the phase checks) and leaves it so, guarding the old primary against stray writes.
    ``suspend_triggers`` drops the MySQL triggers on the synced tables for the fallback window;
    their definitions are kept in the record and switch-back creates them again. Each option
    not given comes from the spec's ``switchover`` section.
    """
    settings = project.spec.switchover
    without = sorted(set(settings.without) | set(without or []))
    writes_stopped = settings.writes_stopped if writes_stopped is None else writes_stopped
    suspend_triggers = settings.suspend_source_triggers if suspend_triggers is None else suspend_triggers

    def ready(record: dict) -> None:
        """Refuses what the readiness report (``--dry-run``, the panel) lists as failing, in its words."""
        refused = [f for f in readiness(project, without, suspend_triggers, record) if f.status == precheck.FAIL]
        if refused:
            raise StateError(
                "switchover refused: " + "; ".join(f"{f.check} ({f.object}): {f.detail}" for f in refused),
                fix="; ".join(f.fix for f in refused if f.fix) or None,
            )

    def suspend_source_triggers(record: dict) -> None:
        if "triggers" not in record:  # kept in the state store before any is dropped
            record["triggers"] = source_triggers(project, without)
            project.state.set_step(
                project.name, Step.SWITCHOVER, State.RUNNING, "switchover: suspend_source_triggers", record
            )
        with connect(project.spec.source.dsn()) as mysql:
            for schema, name in ((t["schema"], t["name"]) for t in map(trigger, record["triggers"])):
                mysql.execute(f"DROP TRIGGER IF EXISTS {quote(schema)}.{quote(name)}")

    def stop_source_writes(record: dict) -> None:
        if writes_stopped:
            return
        with connect(project.spec.source.dsn()) as mysql:
            _set_read_only(mysql, True)
            try:
                own_tables.ensure(mysql, own_tables.REVERSE_CHECKPOINT)
                mysql.execute("DELETE FROM `omsbench`.`reverse_checkpoint` WHERE project = %s", (project.name,))
            except pymysql.err.OperationalError as err:
                if err.args[0] != _READ_ONLY:
                    raise
                _set_read_only(mysql, False)
                raise StateError(
                    "omsbench's MySQL user cannot write while MySQL is read-only, so reverse sync could not apply",
                    fix="grant it READ_ONLY ADMIN (MariaDB) or SUPER, or stop the application's writes yourself and"
                    f" say so ({named('switchover', project.name, '--writes-stopped')})",
                ) from err
        record["read_only_set"] = True

    def verify(record: dict) -> None:
        project.wait_for_sync(timeout=600)
        checks = project.check()
        if not checks["equal"].all():
            bad = ", ".join(checks.loc[~checks["equal"], "table"])
            raise StateError(
                f"source and target differ after the forward sync drained: {bad}",
                fix=f"find the rows with {named('verify', project.name)}, fix them, then run switchover again",
            )

    def install_capture(record: dict) -> None:
        if record.get("capture", reverse_sync.TRIGGERS) == reverse_sync.TRIGGERS:
            tables, record["compared"] = capturable(project, without)
            with connect(project.spec.target.dsn()) as oceanbase:
                capture.install(oceanbase, project.name, tables)
            return
        # The forward sync has stopped and MySQL takes no writes: the target's binlog ends where
        # the application's first write on it will begin. A checkpoint of an earlier switchover goes.
        with project.sessions() as (mysql, oceanbase):
            own_tables.ensure(mysql, own_tables.SYNC_CHECKPOINT)
            mysql.execute("DELETE FROM `omsbench`.`sync_checkpoint` WHERE project = %s", (project.name,))
            record["reverse_start"] = asdict(mysql_endpoint.master_status(oceanbase))

    def disable_source_events(record: dict) -> None:
        with project.sessions() as (mysql, oceanbase):
            if "programs" not in record:  # planned once, before an event is touched, as the triggers are
                planned = programs.fates(mysql, oceanbase, project.selection(mysql), project.spec.switchover.definers)
                record["programs"] = programs.records(planned)
                project.state.set_step(
                    project.name, Step.SWITCHOVER, State.RUNNING, "switchover: disable_source_events", record
                )
            programs.set_events(mysql, record["programs"], enabled=False)

    def narrow_columns(record: dict) -> None:
        choice = project.spec.switchover.narrow_columns
        with project.sessions() as (mysql, oceanbase):
            found = narrow.columns(project.selection(mysql), oceanbase)
            if choice == "widen":
                record["widened"] = narrow.widen(mysql, found)
            elif choice == "guard":
                record["guards"] = narrow.guard(oceanbase, found)

    def create_programs(record: dict) -> None:
        with connect(project.spec.target.dsn()) as oceanbase:
            made = programs.create(oceanbase, [programs.Program(**item) for item in record["programs"]])
        record["programs"] = programs.records(made)
        accepted = set(project.spec.objects.accept_missing)
        failed = [p for p in made if p.outcome.startswith("failed") and p.label not in accepted]
        if failed:
            raise StateError(
                "the application's objects could not be created on OceanBase: "
                + "; ".join(f"{p.label}: {p.outcome}" for p in failed),
                fix="fix the cause and run switchover again (what was made is kept), or list them in"
                " objects.accept_missing to switch over without them",
            )

    phases = [
        ("precheck", ready),
        ("stop_source_writes", stop_source_writes),
        ("disable_source_events", disable_source_events),
        ("drain_and_verify", verify),
        ("stop_forward_sync", lambda record: project.stop_sync()),
        ("narrow_columns", narrow_columns),
        ("suspend_source_triggers", suspend_source_triggers),
        ("install_capture", install_capture),
        ("create_programs", create_programs),
        ("start_reverse_sync", lambda record: _ensure_running(project.start_reverse, project.reverse_status)),
    ]
    return _run(project, "switchover", phases, {"without": without})


_CHOOSE_ANOTHER = "choose widen (or pause) in switchover.narrow_columns"


def _unguardable(project: Project) -> str | None:
    """Why the spec's choice ``guard`` cannot cover the project's narrow columns, if it cannot."""
    if project.spec.switchover.narrow_columns != "guard":
        return None
    with project.sessions() as (mysql, oceanbase):
        beyond = narrow.unguardable(narrow.columns(project.selection(mysql), oceanbase))
    return (
        f"switchover.narrow_columns is guard, but no CHECK can state the limit of {', '.join(beyond)}"
        if beyond
        else None
    )


def readiness(
    project: Project, without: list[str] | None = None, suspend_triggers: bool | None = None, chosen: dict | None = None
) -> list:
    """What a switchover with these options would do and what would stop it, changing nothing:
    the forward sync's state, the capture and the tables it cannot take, MySQL's triggers, the
    fate of every trigger, routine and event, and the columns MySQL keeps narrower. ``chosen``
    receives the reverse capture's method and why, which the switchover records."""
    chosen = {} if chosen is None else chosen
    settings = project.spec.switchover
    without = sorted(set(settings.without) | set(without or []))
    suspend = settings.suspend_source_triggers if suspend_triggers is None else suspend_triggers
    state = project.sync_status()["state"]
    found = [
        precheck.Finding(
            "forward sync",
            project.name,
            precheck.OK if state in WORKING else precheck.FAIL,
            state,
            "" if state in WORKING else f"start it: {named('sync start', project.name)}",
        )
    ]
    with project.sessions() as (mysql, oceanbase):
        selection = project.selection(mysql)
        found.append(precheck.reverse_capture(project.spec, mysql, oceanbase, chosen))  # a FAIL where none is chosen
        found += precheck.cut_over(mysql, oceanbase, selection, project.spec)
        found += precheck.fallback_charsets(selection, oceanbase, settings.narrow_columns)
    try:
        compared = capturable(project, without)[1] if chosen.get("capture") == reverse_sync.TRIGGERS else []
    except StateError as err:
        compared = []
        found.append(precheck.Finding("capture", project.name, precheck.FAIL, err.message, err.fix or ""))
    found += [_compared_finding(name, settings.compare_every_s) for name in compared]
    refused = _unguardable(project)
    if refused:
        found.append(precheck.Finding("narrow columns", project.name, precheck.FAIL, refused, _CHOOSE_ANOTHER))
    triggers = source_triggers(project, without)
    if triggers:
        found.append(
            precheck.Finding(
                "source triggers",
                ", ".join(f"{t['schema']}.{t['name']}" for t in triggers),
                precheck.OK if suspend else precheck.FAIL,
                "suspended on MySQL until switch-back"
                if suspend
                else "they would fire on the rows reverse sync applies",
                ""
                if suspend
                else f"suspend them ({named('switchover', project.name, '--suspend-source-triggers')},"
                " or set switchover.suspend_source_triggers)",
            )
        )
    return found


def _compared_finding(table: str, every: float) -> precheck.Finding:
    return precheck.Finding(
        "capture",
        table,
        precheck.WARN,
        f"triggers cannot capture it on seekdb (a spatial column): carried back to MySQL by comparison every"
        f" {every:g} s instead; its lag is up to that plus one comparison, and its rows arrive as they are"
        " at each pass, in no transaction order with the other tables",
        f"leave it out ({named('switchover', None, '--without', table)}, or switchover.without) if the fallback"
        " need not carry it",
    )


def switch_back(project: Project, writes_stopped: bool = False) -> dict:
    """Drain the reverse sync, verify, remove the capture and resume the forward sync from its checkpoint.

    The forward checkpoint is where the forward sync stopped at switchover; the binlog written since
    holds only reverse sync's own transactions, which the forward reader drops.
    """
    previous = project.state.detail(project.name, Step.SWITCHOVER)
    if previous.get("direction") == "switch back" and previous.get("finished"):
        return previous  # run again (its output lost to a kill, say): it only reports itself, as switchover does
    switched = previous.get("direction") == "switchover" and previous.get("finished")
    resuming = previous.get("direction") == "switch back"
    if not (switched or resuming):
        raise StateError(f"project {project.name} has not switched over", fix="there is nothing to switch back")
    if not writes_stopped:
        raise StateError(
            "switching back needs the application's writes to OceanBase stopped",
            fix=f"stop the application, then say so ({named('switchback', project.name, '--writes-stopped')})",
        )

    def drain_and_verify(record: dict) -> None:
        project.wait_for_reverse(timeout=600)
        checks = project.check()
        if not checks["equal"].all():
            raise StateError(
                "source and target differ after the reverse sync drained",
                fix=f"see {named('verify', project.name)}",
            )

    def remove_capture(record: dict) -> None:
        if record.get("capture") == reverse_sync.BINLOG:
            return
        with connect(project.spec.target.dsn()) as oceanbase:
            capture.remove(oceanbase, project.name)

    def restore_source_triggers(record: dict) -> None:
        with connect(project.spec.source.dsn()) as mysql:
            present = {
                tuple(r) for r in mysql.query("SELECT TRIGGER_SCHEMA, TRIGGER_NAME FROM information_schema.TRIGGERS")
            }
            for item in map(trigger, record.get("triggers", [])):  # in their order: ACTION_ORDER comes back
                if (item["schema"], item["name"]) not in present:
                    create_trigger(mysql, item)

    def skip_reverse_writes(record: dict) -> None:
        """Start the forward sync at MySQL's binlog end, past what reverse sync wrote there.

        Since the switchover MySQL took only reverse sync's writes (it was read-only, or the user
        stopped the application's writes to it), and the drain found both sides equal. Replaying
        them would only be skipped as echoes, and rows logged before a DDL that OceanBase
        already has would no longer fit the target's tables.
        """
        with project.sessions() as (mysql, target):
            write_checkpoint(target, project.name, mysql_endpoint.master_status(mysql), None)

    def open_source(record: dict) -> None:
        if record.get("read_only_set"):
            with connect(project.spec.source.dsn()) as mysql:
                _set_read_only(mysql, False)

    def drop_target_triggers(record: dict) -> None:
        with connect(project.spec.target.dsn()) as oceanbase:
            routines = (
                (programs.PROCEDURE, programs.FUNCTION) if project.spec.switchover.target_routines == "drop" else ()
            )
            programs.drop_created(oceanbase, record.get("programs", []), (programs.TRIGGER, *routines))
            narrow.unguard(oceanbase, record.get("guards", []))

    def enable_source_events(record: dict) -> None:
        with connect(project.spec.source.dsn()) as mysql:
            programs.set_events(mysql, record.get("programs", []), enabled=True)

    phases = [
        ("drain_and_verify", drain_and_verify),
        ("stop_reverse_sync", lambda record: project.stop_reverse()),
        ("remove_capture", remove_capture),
        ("drop_target_triggers", drop_target_triggers),
        ("restore_source_triggers", restore_source_triggers),
        ("skip_reverse_writes", skip_reverse_writes),
        ("open_source", open_source),
        ("enable_source_events", enable_source_events),
        ("start_forward_sync", lambda record: _ensure_running(project.start_sync, project.sync_status)),
    ]
    carried = {
        k: previous.get(k)
        for k in ("without", "read_only_set", "triggers", "capture", "programs", "guards", "widened")
        if k in previous
    }
    return _run(project, "switch back", phases, carried)


def _ensure_running(start: Callable[[], int], status: Callable[[], dict]) -> None:
    if status()["state"] not in ACTIVE:
        start()


def instructions(project: Project, record: dict) -> list[str]:
    """What the user changes in the application after a switchover or switch-back."""
    spec = project.spec
    if record["direction"] == "switchover":
        lines = [f"point the application at OceanBase: {spec.target.url}"]
        lines += [f"  database {src} is {dst} there" for src, dst in spec.objects.rename.databases.items()]
        lines.append(
            f"MySQL ({spec.source.url}) receives every change back"
            + (" and stays read-only for the application" if record.get("read_only_set") else "")
        )
        if record.get("without"):
            lines.append(f"not carried back to MySQL: {', '.join(record['without'])}")
        return lines
    return [f"point the application back at MySQL: {spec.source.url}; OceanBase follows it again"]
