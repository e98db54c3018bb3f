"""``omsbench bench full``: omsbench's full migration vs mysqldump|mysql vs mydumper|myloader.

All three load the same tables from the workspace's MariaDB (``shape``: sysbench's wide rows, or
the narrow rows and foreign keys of an HR sample, ``hrdb``), one after the other on
the same machine with the same thread count, each into a fresh embedded seekdb (the default
target) that all three reach through its unix socket; a fresh instance per tool, so that one
load's background compaction cannot slow the next. Each load is checked for its row count,
omsbench's also by checksums. The ingest ceiling is myloader's load alone: seekdb fed ready
INSERTs with nothing else running.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omsbench.endpoints import oceanbase
from omsbench.endpoints.connection import Endpoint, Session, connect
from omsbench.engine import spec as specs
from omsbench.engine.project import Project
from omsbench.engine.steps import State, Step
from omsbench.engine.workspace import Workspace
from omsbench.exceptions import OmsError
from omsbench.lab.bench import hrdb, sysbench
from omsbench.lab.bench.sysbench import run_tool
from omsbench.lab.servers import MariaDB, ensure_programs, find_program


@dataclass(frozen=True)
class Shape:
    database: str
    prepare: Callable[[MariaDB, int], None]
    count: Callable[[Session, str], int]
    """Rows of the shape's tables in a database of that name."""


def _sysbench_rows(session: Session, database: str) -> int:
    return sum(session.scalar(f"SELECT COUNT(*) FROM {database}.sbtest{i}") for i in range(1, sysbench.TABLES + 1))


SHAPES = {
    "wide": Shape(sysbench.DATABASE, sysbench.prepare, _sysbench_rows),
    "narrow": Shape(hrdb.DATABASE, hrdb.prepare, hrdb.count),
}


def run(
    workspace: Workspace, rows: int = 1_000_000, threads: int = 2, progress: bool = True, shape: str = "wide"
) -> dict:
    ensure_programs(
        {
            "sysbench": "sysbench",
            "mydumper": "mydumper",
            "myloader": "mydumper",
            "mysqldump": "mariadb-client",
            "mysql": "mariadb-client",
        }
    )
    source_server = MariaDB(workspace.folder("servers", "mariadb"))
    source_server.start()
    chosen = SHAPES[shape]
    chosen.prepare(source_server, rows)
    with connect(source_server.endpoint().dsn()) as session:
        rows = chosen.count(session, chosen.database)
    defaults = _defaults_file(source_server)
    loads = {
        "omsbench": lambda target: _omsbench(workspace, source_server, target, chosen, rows, threads, progress),
        "mysqldump": lambda target: _mysqldump(source_server, target, chosen, rows, defaults),
        "mydumper": lambda target: _mydumper(source_server, target, chosen, rows, threads, defaults),
    }
    results = {}
    try:
        for name, load in loads.items():
            results[name] = _on_fresh_seekdb(workspace, load)
    finally:
        os.unlink(defaults)
    rate = {name: r["rows_per_second"] for name, r in results.items()}
    ceiling = rows / results["mydumper"]["load_seconds"]
    return {
        "shape": shape,
        "rows": rows,
        "threads": threads,
        **{f"{name}_rows_per_second": round(value) for name, value in rate.items()},
        "ingest_ceiling_rows_per_second": round(ceiling),
        "ratio_vs_mydumper": round(rate["omsbench"] / rate["mydumper"], 3),
        "ratio_vs_mysqldump": round(rate["omsbench"] / rate["mysqldump"], 3),
        "ratio_vs_ingest_ceiling": round(rate["omsbench"] / ceiling, 3),
        "omsbench_peak_rss_mb": results["omsbench"]["peak_rss_mb"],
        "equal": results["omsbench"]["equal"],
        "details": results,
    }


def _on_fresh_seekdb(workspace: Workspace, load):
    folder = Path(tempfile.mkdtemp(prefix="seekdb-", dir=workspace.folder("bench")))
    target = Endpoint(url=f"seekdb://{folder}")
    try:
        target.dsn()  # open it before any clock starts: starting the target is no loader's work
        return load(target)
    finally:
        oceanbase.close_embedded(folder)
        shutil.rmtree(folder, ignore_errors=True)


def _defaults_file(server: MariaDB) -> str:
    """Client options for the baselines: the password stays out of argv and the process list."""
    fd, path = tempfile.mkstemp(prefix="omsbench-bench-", suffix=".cnf")
    with os.fdopen(fd, "w") as out:
        out.write(
            f"[client]\nuser={server.user}\npassword={server.password_file.read_text().strip()}\n"
            f"host=127.0.0.1\nport={server.port}\n"
        )
    return path


def _count(target: Endpoint, shape: Shape, database: str) -> int:
    with connect(target.dsn()) as session:
        return shape.count(session, database)


def _result(seconds: float, rows: int, loaded: int, **extra) -> dict:
    if loaded != rows:
        raise OmsError(f"benchmark load incomplete: {loaded} of {rows} rows", fix="read the tool's output above")
    return {"seconds": round(seconds, 2), "rows_per_second": rows / seconds, "rows_loaded": loaded, **extra}


def _omsbench(
    workspace: Workspace, source: MariaDB, target: Endpoint, shape: Shape, rows: int, threads: int, progress: bool
) -> dict:
    database = "bench_omsbench"
    spec = specs.ProjectSpec(
        name="bench-full",
        source=source.endpoint(),
        target=target,
        objects=specs.Objects(
            include=[f"{shape.database}.*"], rename=specs.Renames(databases={shape.database: database})
        ),
        options=specs.Options(parallelism=threads),
    )
    project = Project(spec, workspace)
    project.save()
    project.state.clear_chunks(spec.name)
    project.state.set_step(spec.name, Step.FULL, State.PENDING, "benchmark")
    started = time.monotonic()
    project.migrate_schema()
    schema_done = time.monotonic()
    copy = project.full(progress=progress)
    seconds = time.monotonic() - started
    equal = bool(project.check()["equal"].all())
    peak_kb = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    return _result(
        seconds,
        rows,
        _count(target, shape, database),
        equal=equal,
        peak_rss_mb=round(peak_kb / 1024, 1),
        schema_seconds=round(schema_done - started, 2),
        copy_seconds=round(copy.seconds, 2),
        post_load_seconds=round(seconds - (schema_done - started) - copy.seconds, 2),
    )


def _mysqldump(source: MariaDB, target: Endpoint, shape: Shape, rows: int, defaults: str) -> dict:
    database = "bench_mysqldump"
    with connect(target.dsn()) as session:
        session.execute(f"CREATE DATABASE {database}")
    started = time.monotonic()
    dump = subprocess.Popen(
        [
            find_program("mysqldump"),
            f"--defaults-file={defaults}",
            "--single-transaction",
            "--skip-lock-tables",
            shape.database,
        ],
        stdout=subprocess.PIPE,
    )
    load = subprocess.run(
        [find_program("mysql"), "--no-defaults", f"--socket={target.dsn().unix_socket}", "-uroot", database],
        stdin=dump.stdout,
        capture_output=True,
        text=True,
    )
    dump.stdout.close()
    if dump.wait() or load.returncode:
        raise OmsError(f"mysqldump | mysql failed: {load.stderr.strip()[-300:]}", fix="run it by hand to see why")
    return _result(time.monotonic() - started, rows, _count(target, shape, database))


def _mydumper(source: MariaDB, target: Endpoint, shape: Shape, rows: int, threads: int, defaults: str) -> dict:
    database = "bench_mydumper"
    folder = Path(tempfile.mkdtemp(prefix="omsbench-mydumper-"))
    try:
        started = time.monotonic()
        run_tool(
            [
                find_program("mydumper"),
                f"--defaults-file={defaults}",
                "-B",
                shape.database,
                "-t",
                str(threads),
                "-o",
                str(folder),
                "--trx-consistency-only",
            ]
        )
        dumped = time.monotonic()
        run_tool(
            [
                find_program("myloader"),
                "-S",
                target.dsn().unix_socket,
                "-u",
                "root",
                "-d",
                str(folder),
                "-t",
                str(threads),
                "-B",
                database,
                "-s",
                shape.database,
            ]
        )
        seconds = time.monotonic() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return _result(
        seconds,
        rows,
        _count(target, shape, database),
        dump_seconds=round(dumped - started, 2),
        load_seconds=round(seconds - (dumped - started), 2),
    )
