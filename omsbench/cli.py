"""The omsbench command line: each command is a few lines over the engine.

Exit codes: 0 ok, 1 differences or a failed check, 2 usage, configuration or connection error.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import sys
from pathlib import Path

import click
import pandas as pd
import pymysql

from omsbench.actions import as_command
from omsbench.endpoints.position import BinlogPosition
from omsbench.engine import lifecycle, runner
from omsbench.engine import precheck as prechecks
from omsbench.engine import spec as specs
from omsbench.engine.project import Project
from omsbench.engine.steps import Step
from omsbench.engine.sync import StartAt
from omsbench.engine.verify import CHUNK_ROWS as VERIFY_CHUNK_ROWS
from omsbench.engine.workspace import Workspace
from omsbench.exceptions import NotNow, OmsError, StateError
from omsbench.lab.servers import KafkaBroker, MariaDB, SeekdbServer


class _Group(click.Group):
    """Turn omsbench errors into a message and the exit code they carry, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except OmsError as err:
            _fail(err)
        except pymysql.err.MySQLError as err:
            _fail(_database_error(err))
        except KeyboardInterrupt:
            # 130 as for any program that SIGINT ends; click's "Aborted!" with exit 1 read as "differences"
            click.secho("\nstopped; run the same command again to resume", fg="yellow", err=True)
            sys.exit(130)


def _fail(err: OmsError) -> None:
    click.secho(f"error: {as_command(str(err))}", fg="red", err=True)
    sys.exit(err.exit_code)


_CONNECTION_LOST = {2006, 2013}


def _database_error(err: pymysql.err.MySQLError) -> OmsError:
    """A database error no step explained itself (a server gone mid-command): exit 2, as for a
    connection error, not 1, which says the databases differ."""
    lost = bool(err.args) and err.args[0] in _CONNECTION_LOST
    return OmsError(
        f"the database answered {type(err).__name__} {err}",
        fix="check that the server runs, then run the same command again"
        if lost
        else "read the database's message; run the same command again once its cause is fixed",
    )


def _command() -> str:
    """How the user's shell reaches this omsbench: a hint naming a command not on PATH (an
    inactive .venv) would fail when pasted."""
    installed = Path(sys.prefix, "bin", "omsbench")
    on_path = shutil.which("omsbench")
    return "omsbench" if on_path and Path(on_path).resolve() == installed.resolve() else str(installed)


def _fields(values: dict) -> None:
    """A record as aligned ``name: value`` lines, each value in words (see workbench.tables.cell)."""
    from omsbench.workbench import tables

    for key, value in values.items():
        click.echo(f"{key:>20}: {tables.cell(value)}")


def _show(frame: pd.DataFrame, title: str | None = None) -> None:
    from omsbench.workbench import tables

    tables.show(frame, title)


@click.group(cls=_Group)
@click.option(
    "--workspace",
    "-w",
    type=click.Path(file_okay=False),
    envvar="OMSBENCH_WORKSPACE",
    help="Folder for state, specs, servers and reports (default ./.omsbench).",
)
@click.pass_context
def main(ctx: click.Context, workspace: str | None) -> None:
    """omsbench: migrate a live MySQL database into OceanBase and prove nothing was lost."""
    ctx.obj = Workspace.at(workspace)


def _project(ctx: click.Context, ref: str) -> Project:
    return Project.load(ref, ctx.obj)


@main.command()
@click.argument("name")
@click.option("--source", required=True, help="mysql+pymysql://user@host:port/ (no password in the URL)")
@click.option("--source-password-env", help="Environment variable holding the source password.")
@click.option("--source-password-file", help="File holding the source password.")
@click.option("--target", required=True, help="mysql+pymysql://user@host:port/ or seekdb:///data/dir")
@click.option("--target-password-env", help="Environment variable holding the target password.")
@click.option("--target-password-file", help="File holding the target password.")
@click.option("--include", multiple=True, default=["*.*"], show_default=True, help="db.table pattern; repeatable.")
@click.option("--exclude", multiple=True, help="db.table pattern; repeatable.")
@click.option(
    "--notebook", type=click.Path(dir_okay=False), help="Also write a notebook with the control panel of NAME here."
)
@click.pass_context
def init(
    ctx,
    name,
    source,
    source_password_env,
    source_password_file,
    target,
    target_password_env,
    target_password_file,
    include,
    exclude,
    notebook,
) -> None:
    """Write a project spec NAME.yaml into the workspace (and, with --notebook, its control-panel notebook).

    Without a password option the account is used with no password."""
    spec = specs.parse(
        {
            "name": name,
            "source": {"url": source, "password_env": source_password_env, "password_file": source_password_file},
            "target": {"url": target, "password_env": target_password_env, "password_file": target_password_file},
            "objects": {"include": list(include), "exclude": list(exclude)},
        },
        origin="omsbench init",
    )
    path = Project(spec, ctx.obj).save()
    click.echo(f"wrote {path}; edit it, then run: omsbench precheck {name}")
    if notebook:
        from omsbench.workbench import runbooks

        written = runbooks.panel_notebook(name, ctx.obj, Path(notebook))
        click.echo(f"wrote {written}; open it in JupyterLab: jupyter lab {written}")


@main.command()
@click.argument("project")
@click.pass_context
def precheck(ctx, project) -> None:
    """Check that PROJECT (name or spec file) can run; exit 1 when a check fails."""
    findings = _project(ctx, project).precheck()
    _show(findings)
    sys.exit(1 if prechecks.failed(findings) else 0)


@main.command()
@click.argument("project")
@click.pass_context
def schema(ctx, project) -> None:
    """Translate and create the selected objects on the target; print the per-object report."""
    _show(_project(ctx, project).migrate_schema())


@main.command()
@click.argument("project")
@click.option("--restart", is_flag=True, help="Forget copied chunks and empty the target tables first.")
@click.option("--parallelism", type=click.IntRange(1, 64), help="Override options.parallelism.")
@click.option("--executor", type=click.Choice(["processes", "threads"]), help="Override options.executor.")
@click.option("--no-precheck", is_flag=True, help="Skip the precheck (not recommended).")
@click.pass_context
def full(ctx, project, restart, parallelism, executor, no_precheck) -> None:
    """Copy all rows (resumes where a killed run stopped), then the indexes and constraints made after the rows.

    Exit 1 when the target did not get an index, a constraint or a foreign key the spec does not accept missing.
    """
    from omsbench.workbench import tables

    proj = _project(ctx, project)
    overrides = {k: v for k, v in {"parallelism": parallelism, "executor": executor}.items() if v}
    if overrides:
        proj.spec = proj.spec.model_copy(update={"options": proj.spec.options.model_copy(update=overrides)})
    if not no_precheck and not restart:
        _require_sources(proj)
    result = proj.full(restart=restart)
    for warning in result.warnings:
        click.secho(f"warning: {as_command(warning)}", fg="yellow", err=True)
    _show(result.frame())
    click.echo(
        f"{sum(result.rows.values()):,} rows in {result.seconds:.1f} s ({result.rows_per_second:,.0f} rows/s); "
        f"chunks copied {result.chunks_copied}, resumed past {result.chunks_skipped}; "
        f"binlog start {tables.cell(result.start_position)}"
    )
    if result.missing:
        for line in result.missing:
            click.secho(f"not created on the target: {line}", fg="red", err=True)
        names = ", ".join(repr(line.partition(" (")[0]) for line in result.missing)
        click.echo(
            "  fix: create them by hand, or accept their absence in the spec's objects.accept_missing:"
            f" [{names}]; then run full again",
            err=True,
        )
        sys.exit(1)


def _require_sources(project: Project) -> None:
    recent = project.passed_precheck()
    if recent is not None:
        when = recent["reused_from"].iloc[0].strftime("%H:%M:%S UTC")
        click.echo(f"precheck: passed at {when}, same spec; not run again (omsbench precheck runs it anew)")
        return
    findings = project.precheck()
    blocking = findings[(findings.status == "fail") & (findings.check != "target rows")]
    if len(blocking):
        _show(blocking)
        raise OmsError("precheck failed", fix="fix the findings above, or pass --no-precheck")


@main.command()
@click.argument("project")
@click.pass_context
def check(ctx, project) -> None:
    """Row counts and checksums on both sides; exit 1 when any table differs."""
    result = _project(ctx, project).check(progress=True)
    _show(result)
    sys.exit(0 if result["equal"].all() else 1)


@main.command("verify")
@click.argument("project")
@click.option(
    "--apply-fix", is_flag=True, help="Run the fix SQL the last verify wrote, in one transaction, then verify again."
)
@click.option("--chunk-size", default=VERIFY_CHUNK_ROWS, show_default=True, type=click.IntRange(10))
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 32), help="Tables compared at once.")
@click.option(
    "--sample",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.0, 1.0, min_open=True),
    help="Share of each table's key ranges to compare, for a fast signal.",
)
@click.option(
    "--online",
    default=0,
    show_default=True,
    type=click.IntRange(0, 20),
    help="While a sync runs: re-check differing tables up to N times after it catches up (transient vs persistent).",
)
@click.option(
    "--changed-since",
    help="Compare only the rows written since FILE:POS or a UTC time (after the sync has them).",
)
@click.pass_context
def verify_cmd(ctx, project, apply_fix, chunk_size, threads, sample, online, changed_since) -> None:
    """Find every differing row; write an HTML report and the fix SQL. Exit 0 equal, 1 different.

    With --apply-fix: run the fix SQL the last verify wrote, exactly as written (refused while the
    sync applies changes, or when the file changed since), then verify again.
    """
    from omsbench.workbench import report

    proj = _project(ctx, project)
    try:
        lifecycle.require(proj, "verify")  # refused where the panel's Verify button is
    except NotNow as err:  # exit 1 would say the databases differ
        raise StateError(err.message, err.fix) from err
    if apply_fix:
        result = proj.apply_fix(chunk_size=chunk_size, threads=threads, sample=sample)
    elif changed_since:
        by_position = ":" in changed_since and changed_since.rpartition(":")[2].isdigit()
        since = _start_options(changed_since if by_position else None, None, None if by_position else changed_since)
        result = proj.verify_changes(since, threads=threads)
    else:
        result = proj.verify(chunk_size=chunk_size, threads=threads, sample=sample, online=online, progress=True)
    path = report.verification(proj, result)
    _show(result.summary)
    if not result.equal:
        _show(result.differences.head(50))
        fix = ctx.obj.state.detail(proj.name, Step.VERIFY)["fix"]
        click.echo(
            f"fix SQL ({fix['statements']} statements): {fix['path']}; review it, then apply it with --apply-fix"
        )
    click.echo(f"report: {path}")
    sys.exit(0 if result.equal else 1)


@main.command()
@click.argument("project", required=False)
@click.pass_context
def status(ctx, project) -> None:
    """Steps and full-load progress of PROJECT, or the list of projects."""
    if project is None:
        if not ctx.obj.exists:
            click.echo(f"no projects: nothing was recorded in the workspace {ctx.obj.root} yet")
            return
        _show(ctx.obj.state.projects())
        return
    loaded = _project(ctx, project)
    asked = lifecycle.asks_behind(loaded.sync_status()["state"])
    line = lifecycle.headline(loaded, behind=loaded.behind() if asked else None)  # asked of the servers
    click.secho(as_command(line.text), bold=True, fg="red" if line.attention else None)
    for name, frame in loaded.status().items():
        _show(frame.drop(columns=["detail", "project"], errors="ignore"), name)  # the message sums a report up


@main.command("run")
@click.argument("notebook")
@click.option(
    "-p",
    "--parameter",
    "parameters",
    nargs=2,
    multiple=True,
    metavar="NAME VALUE",
    help="Runbook parameter; repeatable.",
)
@click.pass_context
def run_cmd(ctx, notebook, parameters) -> None:
    """Execute runbook NOTEBOOK (a name from notebooks/ or a path) with papermill into a run folder.

    Exit 1 when the runbook failed or reported a failed check (passed or equal false).

    Values are read as YAML: 3 is a number, true a boolean, anything else text. The executed
    notebook and its offline HTML stay in the workspace's runs/ folder as the run's record.
    """
    import yaml

    from omsbench.workbench import runbooks

    def read(value: str):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value  # not YAML: the text itself

    done = runbooks.run(ctx.obj, notebook, {name: read(value) for name, value in parameters})
    click.echo(f"run {done.id} {done.state}\nnotebook: {done.notebook}\nhtml: {done.html}")
    _fields(done.outcome)
    failed = runbooks.failed_checks(done.outcome)
    if failed:
        click.secho(
            f"the runbook reported {', '.join(f'{k}: false' for k in failed)}; see {done.html}", fg="red", err=True
        )
        sys.exit(1)


@main.command()
@click.pass_context
def runs(ctx) -> None:
    """Every runbook run of this workspace with what it reported, oldest first."""
    from omsbench.workbench import runbooks

    _show(runbooks.history(ctx.obj))


@main.command()
@click.option("--rows", default=100_000, show_default=True, type=click.IntRange(100), help="Rows in the sample.")
@click.option(
    "--target",
    "target_kind",
    type=click.Choice(["embedded", "tcp"]),
    default="embedded",
    show_default=True,
    help="Embedded seekdb, or seekdb as a TCP server.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_context
def demo(ctx, rows, target_kind, as_json) -> None:
    """Start private servers, migrate a sample shop database, verify it and write a report."""
    from omsbench.lab import demo as demos

    say = (lambda _: None) if as_json else (lambda line: click.echo(line, err=True))
    summary = demos.run(ctx.obj, rows=rows, target=target_kind, progress=not as_json, say=say)
    if as_json:
        click.echo(json.dumps(summary, default=str))
    else:
        _show(pd.DataFrame([{"table": t, **v} for t, v in summary["tables"].items()]))
        verdict = "VERIFIED: source and target are equal" if summary["equal"] else "DIFFERENCES FOUND"
        click.echo(f"{verdict}\nreport: {summary['report']}\nstop the servers with: {_command()} servers stop")
    sys.exit(0 if summary["equal"] else 1)


@main.group()
def sync() -> None:
    """Incremental sync: replay the source binlog into the target (start, pause, resume, stop, status)."""


def _start_options(position: str | None, gtid: str | None, timestamp: str | None) -> StartAt | None:
    if position:
        file, _, pos = position.rpartition(":")
        if not file or not pos.isdigit():
            raise click.BadParameter(f"{position!r} is not FILE:POS", param_hint="--position")
        return StartAt(position=BinlogPosition(file, int(pos)))
    if gtid:
        if not _GTID.fullmatch(gtid.replace(" ", "")):
            raise click.BadParameter(
                f"{gtid!r} is not a GTID set (MariaDB: 0-1-100,1-2-7; MySQL: uuid:1-100)", param_hint="--gtid"
            )
        return StartAt(position=BinlogPosition("", 4, gtid))
    if timestamp:
        try:
            return StartAt(timestamp=pd.Timestamp(timestamp, tz="UTC").timestamp())
        except ValueError as err:
            raise click.BadParameter(f"{timestamp!r} is not a time: {err}", param_hint="--timestamp") from err
    return None


_GTID = re.compile(r"(\d+-\d+-\d+|[0-9a-fA-F-]{36}(:\d+(-\d+)?)+)(,(\d+-\d+-\d+|[0-9a-fA-F-]{36}(:\d+(-\d+)?)+))*")
"""A MariaDB GTID list (domain-server-sequence) or a MySQL GTID set (server uuid:intervals)."""


_START = [
    click.option("--position", help="Start at FILE:POS when the project has no checkpoint yet."),
    click.option("--gtid", help="Start at a GTID set (MariaDB: domain-server-seq,...) instead."),
    click.option("--timestamp", help="Start at the first transaction committed at or after this UTC time."),
]


def _with_start(command):
    for option in reversed(_START):
        command = option(command)
    return command


@sync.command("start")
@click.argument("project")
@_with_start
@click.pass_context
def sync_start(ctx, project, position, gtid, timestamp) -> None:
    """Run the sync of PROJECT as a background process (pid file and log in the workspace)."""
    loaded = _project(ctx, project)
    start = _start_options(position, gtid, timestamp)  # refused here, not in a process that dies later
    if start and start.position and start.position.file:
        loaded.require_binlog(start.position)
    pid = loaded.start_sync(start)
    log = runner.SyncProcess(ctx.obj, loaded.name).log
    click.echo(f"sync of {loaded.name} runs as pid {pid}; log: {log}")
    click.echo(f"watch it with: omsbench sync status {loaded.name}")


def _sync_commands(group: click.Group, step: Step) -> None:
    """The commands both syncs share (forward: ``sync``, back to MySQL after switchover:
    ``reverse``), defined once so that they cannot drift apart."""
    named = step.said

    for want, text in (
        ("pause", f"Stop applying changes; the {named}'s checkpoint stays where it is."),
        ("resume", f"Continue a paused {named} (a DDL, a refused change, a pause) from its checkpoint."),
    ):
        _request_command(group, step, want, text)

    @group.command("stop", help=f"Stop the background {named} at a transaction boundary and wait for it to exit.")
    @click.argument("project")
    @click.pass_context
    def stop(ctx, project) -> None:
        loaded = _project(ctx, project)
        if step == Step.SYNC:
            loaded.stop_sync()
        else:
            loaded.stop_reverse()
        click.echo(f"the {named} of {loaded.name} stopped")

    @group.command("resolve", help=f"Decide on the DDL or the refused change the {named} paused on, and let it go on.")
    @click.argument("project")
    @click.option("--skip", is_flag=True, help="Skip the DDL or the transaction the sync paused on.")
    @click.option("--replace-with", "replacement", help="Run this SQL instead of the DDL or the transaction.")
    @click.pass_context
    def resolve(ctx, project, skip, replacement) -> None:
        if skip == bool(replacement):
            raise click.UsageError("give exactly one of --skip or --replace-with")
        where = _project(ctx, project).resolve(step, skip, replacement)
        click.echo(f"what the {named} paused on at {where} will be {'skipped' if skip else 'replaced'}")

    @group.command("status")
    @click.argument("project")
    @click.option("--all", "show_all", is_flag=True, help="Also list the DDL that touched nothing of the project.")
    @click.pass_context
    def status(ctx, project, show_all) -> None:
        """State, position, rates and lag, and the DDL met; exit 1 while paused, failed or gone."""
        loaded = _project(ctx, project)
        found = loaded.status_of(step)
        _fields({**found, **loaded.behind()} if step == Step.SYNC else found)
        _show_ddl(ctx.obj.state.ddl(loaded.name), show_all)
        _exit_unless_healthy(found, str(step), loaded.name)


def _request_command(group: click.Group, step: Step, want: str, text: str) -> None:
    """``pause`` or ``resume``: a request the running sync takes up; the forward one asks lifecycle first."""

    @group.command(want, help=text)
    @click.argument("project")
    @click.pass_context
    def request(ctx, project) -> None:
        loaded = _project(ctx, project)
        if step == Step.SYNC:
            lifecycle.perform(loaded, want)  # refused as the panel's button is
        else:
            getattr(loaded, want)(step)
        click.echo(f"asked the {step.said} of {loaded.name} to {want}")


def _show_ddl(ddl: pd.DataFrame, show_all: bool) -> None:
    ignored = ddl.action == "ignored"
    if len(ddl[~ignored]) or show_all:
        _show((ddl if show_all else ddl[~ignored])[["at", "position", "action", "reason", "statement"]], "DDL")
    if ignored.any() and not show_all:
        click.echo(f"{ignored.sum()} DDL statement(s) outside the project were read and ignored: --all lists them")


_NEEDS_USER = {
    "paused": "resume it with `omsbench {command} resume {project}` once the cause is dealt with",
    "failed": "deal with the cause above, then `omsbench {command} start {project}`",
    "died": "`omsbench {command} start {project}` goes on from its checkpoint",
}
"""States a sync does not leave by itself, with what the user does about each."""


def _exit_unless_healthy(status: dict, command: str, project: str) -> None:
    """A status that needs the user ends in exit 1 with the fix, so a script or a monitor sees it."""
    fix = _NEEDS_USER.get(status["state"])
    if fix is None:
        return
    click.secho(f"the {command} of {project} is {status['state']}: {as_command(status['message'])}", fg="red", err=True)
    if "fix:" not in (status["message"] or ""):
        click.echo("  fix: " + fix.format(command=command, project=project), err=True)
    sys.exit(1)


@sync.command("report")
@click.argument("project")
@click.pass_context
def sync_report(ctx, project) -> None:
    """Write an offline HTML report of the sync: state, lag and rate charts, every DDL and its decision."""
    from omsbench.workbench import report

    click.echo(f"report: {report.sync(_project(ctx, project))}")


@main.command("switchover")
@click.argument("project")
@click.option("--without", multiple=True, help="Source table (db.table) to leave out of reverse sync; repeatable.")
@click.option(
    "--writes-stopped", is_flag=True, help="The application no longer writes to MySQL: do not set it read-only."
)
@click.option(
    "--suspend-source-triggers",
    "suspend_triggers",
    is_flag=True,
    help="Drop MySQL's triggers on the synced tables until switch-back (their definitions are kept).",
)
@click.option(
    "--dry-run", is_flag=True, help="Change nothing: say what the switchover would do and what would stop it."
)
@click.option(
    "--force", is_flag=True, help="Go on although the checklist fails (a stale or failed verify, a high lag)."
)
@click.pass_context
def switchover_cmd(ctx, project, without, writes_stopped, suspend_triggers, dry_run, force) -> None:
    """Move writes to OceanBase: stop MySQL writes, drain, verify, capture on OceanBase, start reverse sync.

    Refused until the sync runs with a lag under a second and the last verify is equal and not
    stale (the checklist), unless --force. Run it again after a failure or a crash: it goes on
    from the first phase not done. With --dry-run, exit 1 when something would stop it.
    """
    from omsbench.engine import switchover

    loaded = _project(ctx, project)
    options = {"without": list(without), "suspend_triggers": suspend_triggers or None}
    if dry_run:
        ready = prechecks.frame(lifecycle.readiness(loaded, force, **options))
        _show(ready)
        sys.exit(1 if prechecks.failed(ready) else 0)
    if not force:
        lifecycle.require_checklist(loaded)
    record = switchover.switchover(loaded, writes_stopped=writes_stopped or None, **options)
    _phases(record)
    for line in switchover.instructions(loaded, record):
        click.echo(as_command(line))


@main.command("switchback")
@click.argument("project")
@click.option("--writes-stopped", is_flag=True, help="Confirm the application no longer writes to OceanBase.")
@click.pass_context
def switchback_cmd(ctx, project, writes_stopped) -> None:
    """Return writes to MySQL: drain the reverse sync, verify, remove the capture, resume the forward sync."""
    from omsbench.engine import switchover

    loaded = _project(ctx, project)
    record = switchover.switch_back(loaded, writes_stopped)
    _phases(record)
    for line in switchover.instructions(loaded, record):
        click.echo(as_command(line))


@main.command("release")
@click.argument("project")
@click.option("--yes", is_flag=True, help="Release without asking.")
@click.pass_context
def release_cmd(ctx, project, yes) -> None:
    """End PROJECT: stop its syncs, drop its capture triggers and its rows in omsbench's own tables.

    The users' tables and data stay as they are. Run again, it only reports itself.
    """
    from omsbench.engine import release

    loaded = _project(ctx, project)
    if not yes and not _confirmed("Release ends the project: its syncs stop (the fallback to MySQL too). Go on?"):
        raise click.UsageError("not released: answer y, or pass --yes")
    record = release.release(loaded)
    _show(release.summary(record))
    for line in release.notes(loaded, record):
        click.echo(as_command(line))
    click.echo(f"project {loaded.name} released at {record['released_at']}")


def _confirmed(question: str) -> bool:
    """A yes from the terminal; no terminal (a script, a pipe) is a no."""
    try:
        return click.confirm(question, default=False)
    except click.Abort:
        return False


def _phases(record: dict) -> None:
    _show(pd.DataFrame([{"phase": k, "done_at": v} for k, v in record["phases"].items()]))


@main.group()
def reverse() -> None:
    """Reverse sync after switchover: OceanBase's changes back to MySQL (start, pause, resume, stop, status)."""


@reverse.command("start")
@click.argument("project")
@click.pass_context
def reverse_start(ctx, project) -> None:
    """Run the reverse sync of PROJECT as a background process."""
    loaded = _project(ctx, project)
    pid = loaded.start_reverse()
    click.echo(f"reverse sync of {loaded.name} runs as pid {pid}")


_sync_commands(sync, Step.SYNC)
_sync_commands(reverse, Step.REVERSE)


@main.group()
def servers() -> None:
    """The private MariaDB source, seekdb TCP target and Kafka broker of this workspace."""


def _servers(ctx: click.Context) -> list:
    workspace: Workspace = ctx.obj
    return [
        MariaDB(workspace.folder("servers", "mariadb")),
        SeekdbServer(workspace.folder("servers", "seekdb")),
        KafkaBroker(workspace.folder("servers", "kafka")),
    ]


@servers.command("start")
@click.option("--target", "with_target", is_flag=True, help="Also start seekdb as a TCP server.")
@click.option("--kafka", "with_kafka", is_flag=True, help="Also start a Kafka-protocol broker (Tansu, in memory).")
@click.pass_context
def servers_start(ctx, with_target, with_kafka) -> None:
    """Start (or reuse) the private servers."""
    mariadb, seekdb, broker = _servers(ctx)
    chosen = [mariadb] + [seekdb] * with_target + [broker] * with_kafka
    _show(pd.DataFrame([s.start().__dict__ for s in chosen]))


@servers.command("status")
@click.pass_context
def servers_status(ctx) -> None:
    """Show which private servers run, with their URLs."""
    _show(pd.DataFrame([s.status().__dict__ for s in _servers(ctx)]))


@servers.command("stop")
@click.pass_context
def servers_stop(ctx) -> None:
    """Stop the private servers."""
    for server in _servers(ctx):
        server.stop()
    _show(pd.DataFrame([s.status().__dict__ for s in _servers(ctx)]))


@main.group()
def bench() -> None:
    """Benchmarks, each run side by side with its baseline."""


def _bench_result(result: dict, as_json: bool) -> None:
    """Print a benchmark's JSON; exit 1 unless what it moved arrived equal: a fast wrong answer is no result."""
    click.echo(json.dumps(result, indent=None if as_json else 2, default=str))
    if result.get("equal") is not True:
        click.secho("the benchmark's data did not arrive equal (equal is not true): its rates mean nothing", err=True)
        sys.exit(1)


def _benchmark(name: str, summary: str, *options) -> None:
    """Register ``omsbench bench NAME``: runs omsbench.lab.bench.NAME and prints its JSON."""

    @click.option("--rows", default=1_000_000, show_default=True, type=click.IntRange(1000))
    @click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 16))
    @click.option("--json", "as_json", is_flag=True, help="One line of JSON.")
    @click.pass_context
    def command(ctx, rows, threads, as_json, **chosen) -> None:
        module = importlib.import_module(f"omsbench.lab.bench.{name}")
        _bench_result(module.run(ctx.obj, rows=rows, threads=threads, progress=not as_json, **chosen), as_json)

    for option in options:
        command = option(command)
    bench.command(name, help=summary)(command)


_benchmark(
    "full",
    "omsbench full load vs mysqldump|mysql vs mydumper|myloader, each into a fresh seekdb.",
    click.option(
        "--shape",
        type=click.Choice(["wide", "narrow"]),
        default="wide",
        show_default=True,
        help="wide: sysbench's 190-byte rows; narrow: an HR sample's (six tables, foreign keys, 2.8M of --rows"
        " in four-column rows; use --rows 3900000 for its real size).",
    ),
)
_benchmark("verify", "omsbench verify vs reladiff vs a pandas merge, on ten rows changed in a copied database.")


def _load_benchmark(name: str, summary: str, apply_workers: bool = False) -> None:
    """A benchmark that drives a sysbench write load for some seconds against a running sync."""

    @click.option("--seconds", default=15, show_default=True, type=click.IntRange(2), help="Length of each run.")
    @click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64), help="sysbench threads.")
    @click.option(
        "--rate",
        default=0,
        type=click.IntRange(0),
        help="Fixed transactions/s for the lag run (0: half of the slower of source and sync).",
    )
    @click.option("--json", "as_json", is_flag=True, help="One line of JSON.")
    @click.pass_context
    def command(ctx, seconds, threads, rate, as_json, **options) -> None:
        module = importlib.import_module(f"omsbench.lab.bench.{name}")
        result = module.run(ctx.obj, seconds=seconds, threads=threads, rate=rate, progress=not as_json, **options)
        _bench_result(result, as_json)

    if apply_workers:
        command = click.option(
            "--apply-workers", default=1, show_default=True, type=click.IntRange(1, 16), help="Sync apply_workers."
        )(command)
    bench.command(name, help=summary)(command)


@bench.command("chaos")
@click.option("--points", default=8, show_default=True, type=click.IntRange(1, 200), help="Faults to inject.")
@click.option("--seed", default=1, show_default=True, type=int, help="Chooses the faults and their moments.")
@click.option("--rows", default=20_000, show_default=True, type=click.IntRange(1000), help="Rows in the sample.")
@click.option("--keep-servers", is_flag=True, help="Leave the run's two servers up, to look at them afterwards.")
@click.option("--json", "as_json", is_flag=True, help="One line of JSON.")
@click.pass_context
def bench_chaos(ctx, points, seed, rows, keep_servers, as_json) -> None:
    """A migration through kill -9, server restarts, network cuts and timeouts, then its release;
    exit 1 unless nothing was lost and nothing of omsbench's was left."""
    from omsbench.lab.bench import chaos

    result = chaos.run(ctx.obj, points=points, seed=seed, rows=rows, keep=keep_servers)
    click.echo(json.dumps(result, indent=None if as_json else 2, default=str))
    sys.exit(0 if chaos.passed(result) else 1)


_load_benchmark(
    "cdc", "Sync throughput vs python-mysql-replication's raw decode rate, and lag at a fixed rate.", apply_workers=True
)
_load_benchmark(
    "reverse", "After switchover: capture overhead on OceanBase writes, reverse rows/s into MySQL, and reverse lag."
)
_load_benchmark("kafka", "Kafka sink events/s vs python-mysql-replication's raw decode rate, and commit-to-ack lag.")


if __name__ == "__main__":
    main()
