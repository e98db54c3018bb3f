"""The demo: private MariaDB -> embedded seekdb, a sample shop database, a verified report.

It uses nothing a user's own project does not: the same Project steps, the same report.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from omsbench.endpoints.connection import Endpoint, connect
from omsbench.engine import spec as specs
from omsbench.engine.project import Project
from omsbench.engine.steps import State, Step
from omsbench.engine.workspace import Workspace
from omsbench.lab import sampledb
from omsbench.lab.servers import MariaDB, SeekdbServer
from omsbench.workbench import report

PROJECT = "demo"


def target_endpoint(workspace: Workspace, kind: str) -> Endpoint:
    """The embedded seekdb of the workspace, or its seekdb TCP server (started if needed)."""
    if kind == "tcp":
        server = SeekdbServer(workspace.folder("servers", "seekdb"))
        server.start()
        return server.endpoint()
    return Endpoint(url=f"seekdb://{workspace.folder('seekdb')}")


def run(
    workspace: Workspace,
    rows: int = 100_000,
    target: str = "embedded",
    progress: bool = True,
    say: Callable[[str], None] = lambda _: None,
) -> dict:
    """Each stage is announced through ``say``: starting servers takes seconds a user should not spend wondering."""
    started = time.monotonic()
    say(f"starting the private MariaDB (the source) in {workspace.folder('servers', 'mariadb')} ...")
    source_server = MariaDB(workspace.folder("servers", "mariadb"))
    source_server.start()
    source = source_server.endpoint()
    say(f"MariaDB ready on port {source_server.port} after {time.monotonic() - started:.1f} s")
    say(f"creating the sample database `{sampledb.DATABASE}` with {rows:,} rows ...")
    with connect(source.dsn()) as session:
        sampledb.create(session, rows)
    say(f"opening the {target} OceanBase (seekdb) target ...")
    spec = specs.ProjectSpec(
        name=PROJECT,
        source=source,
        target=target_endpoint(workspace, target),
        objects=specs.Objects(include=[f"{sampledb.DATABASE}.*"]),
    )
    project = Project(spec, workspace)
    project.save()
    _reset_target(project)
    say("target ready; precheck ...")
    findings = project.require_precheck()
    say("schema migration ...")
    schema_report = project.migrate_schema()
    result = project.full(progress=progress)
    say("check: row counts and checksums computed inside both databases ...")
    checks = project.check(progress=progress)
    equal = bool(checks["equal"].all())
    summary = {
        "project": PROJECT,
        "source": source.url,
        "target": spec.target.url,
        "workspace": str(workspace.root),
        "rows_copied": sum(result.rows.values()),
        "seconds": round(result.seconds, 2),
        "rows_per_second": round(result.rows_per_second),
        "binlog_start": result.start_position,
        "equal": equal,
    }
    path = report.write(
        workspace.folder("reports", PROJECT) / "demo.html",
        "omsbench demo: MariaDB -> OceanBase (seekdb)",
        summary,
        {
            "Tables: row counts and checksums on both sides": checks,
            "Schema migration": schema_report,
            "Precheck": findings,
        },
        equal,
    )
    tables = {
        r.table: {"source_rows": int(r.source_rows), "target_rows": int(r.target_rows), "equal": bool(r.equal)}
        for r in checks.itertuples()
    }
    return {**summary, "tables": tables, "report": str(path)}


def _reset_target(project: Project) -> None:
    """The demo owns its target: each run starts from an empty one, so it can be run again."""
    with project.sessions() as (_, target):
        target.execute(f"DROP DATABASE IF EXISTS `{sampledb.DATABASE}`")
        target.execute("DROP DATABASE IF EXISTS `omsbench`")
    project.state.clear_chunks(PROJECT)
    project.state.set_step(PROJECT, Step.FULL, State.PENDING, "reset by the demo")
