"""``omsbench bench cdc``: incremental sync throughput against python-mysql-replication's own decode rate, and lag.

1. Throughput: with no sync running, ``sysbench oltp_write_only`` writes for S seconds; then a
   sync starts and applies that backlog as fast as it can. Beside it, the plain library decodes the same
   binlog range with nothing else to do: the ceiling of any Python reader. ``applied_vs_decode``
   is the ratio of the two, ``applied_vs_source`` compares with the rate the source wrote.
2. Latency: sysbench at a fixed rate (by default half the throughput of the slower of source and
   sync) for S seconds with the sync running; lag percentiles come from the heartbeats, by stage,
   then the time the sync needs to catch up once the load stops. The rate sysbench reached is
   recorded beside the one asked for.
Finally the tables are checked with checksums inside both databases.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from omsbench.endpoints import oceanbase
from omsbench.endpoints.connection import Endpoint, connect
from omsbench.endpoints.mysql import master_status
from omsbench.endpoints.position import BinlogPosition
from omsbench.engine import runner
from omsbench.engine import spec as specs
from omsbench.engine.project import Project
from omsbench.engine.steps import State, Step
from omsbench.engine.workspace import Workspace
from omsbench.lab.bench import sysbench
from omsbench.lab.servers import MariaDB, ensure_programs

DATABASE = "sbcdc"
ROWS = 40_000


def run(
    workspace: Workspace,
    seconds: int = 20,
    threads: int = 4,
    rate: int = 0,
    progress: bool = True,
    apply_workers: int = 1,
) -> dict:
    ensure_programs({"sysbench": "sysbench"})
    server = MariaDB(workspace.folder("servers", "mariadb"))
    server.start()
    sysbench.prepare(server, ROWS, DATABASE)
    folder = Path(tempfile.mkdtemp(prefix="seekdb-cdc-", dir=workspace.folder("bench")))
    try:
        project = _migrated(workspace, server, Endpoint(url=f"seekdb://{folder}"), progress, apply_workers)
        with _syncing(project):  # to the end of the binlog as it stands after the load
            project.wait_for_sync()
        backlog = _backlog(server, seconds, threads)
        began = time.monotonic()  # the sync's start (connecting, its reader process) counts too
        with _syncing(project) as sync:
            project.wait_for_sync(timeout=600)
            throughput = _throughput(backlog, sync, time.monotonic() - began, seconds)
            rate = rate or default_rate(throughput)
            latency = _latency(project, sync, server, seconds, threads, rate)
        equal = bool(project.check()["equal"].all())
    finally:
        oceanbase.close_embedded(folder)
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "seconds": seconds, "sysbench_threads": threads, "apply_workers": apply_workers, **throughput, **latency,
        "equal": equal,
    }  # fmt: skip


def default_rate(throughput: dict, sink: str = "applied_rows_per_s") -> int:
    """Half of what source and sink carry together: the source's own rate, or the sink's
    ``throughput[sink]`` (rows/s) if that is lower, in sysbench transactions per second."""
    rows_per_transaction = throughput["backlog_rows"] / max(throughput["source_transactions"], 1)
    return sysbench.half_rate(throughput["source_transactions_per_s"], throughput[sink] / rows_per_transaction)


def _migrated(workspace: Workspace, server: MariaDB, target: Endpoint, progress: bool, apply_workers: int) -> Project:
    spec = specs.ProjectSpec(
        name="bench-cdc",
        source=server.endpoint(),
        target=target,
        objects=specs.Objects(include=[f"{DATABASE}.*"]),
        # a heartbeat every 20 ms: the lag percentiles come from them, and 50 samples in 10 s made p99 mean little
        options=specs.Options(apply_workers=apply_workers, heartbeat_ms=20),
    )
    project = Project(spec, workspace)
    project.save()
    project.state.clear_chunks(spec.name)
    project.state.set_step(spec.name, Step.FULL, State.PENDING, "benchmark")
    project.migrate_schema()
    project.full(progress=progress)
    return project


def write_only(server: MariaDB, seconds: int, threads: int, *options: str) -> float:
    """Run oltp_write_only; return the transactions per second sysbench reports."""
    out = sysbench.run_tool(
        sysbench.command(
            server,
            "oltp_write_only",
            DATABASE,
            f"--table-size={ROWS // sysbench.TABLES}",
            f"--threads={threads}",
            f"--time={seconds}",
            "--report-interval=0",
            *options,
            "run",
        )
    )
    return sysbench.transactions_per_second(out)


@contextmanager
def _syncing(project: Project):
    """The project's sync in a thread of this process while the body runs (the sync is its value)."""
    sync = project.sync()
    thread = runner.run_thread(sync, runner.SyncProcess(project.workspace, project.name))
    try:
        runner.wait_for(project.workspace, project.name, {"running"})
        yield sync
    finally:
        sync.stop()
        thread.join(60)


def _backlog(server: MariaDB, seconds: int, threads: int) -> tuple[float, int, float]:
    """sysbench's transactions/s, and the rows and seconds the plain library takes to decode them.

    Written while no sync runs at all: a paused sync's reader went on decoding up to a tenth of the
    backlog before the clock started."""
    with connect(server.endpoint().dsn()) as source:
        start = master_status(source)
        tps = write_only(server, seconds, threads)
        end = master_status(source)
    return (tps, *library_decode(server, start, end))


def _throughput(backlog: tuple[float, int, float], sync, took: float, seconds: int) -> dict:
    tps, decoded_rows, decode_seconds = backlog
    applied = sync.meter.total_rows
    applied_rate, decode_rate = applied / took, decoded_rows / decode_seconds
    return {
        "source_transactions_per_s": round(tps),
        "source_transactions": round(tps * seconds),
        "source_rows_per_s": round(decoded_rows / seconds),
        "backlog_rows": decoded_rows,
        "applied_rows": applied,
        "applied_rows_per_s": round(applied_rate),
        "decode_rows_per_s": round(decode_rate),
        "applied_vs_decode": round(applied_rate / decode_rate, 3),
        "applied_vs_source": round(applied_rate * seconds / decoded_rows, 3),
        "apply_busy_share": round(sync.meter.apply_seconds / took, 3),
    }


def library_decode(server: MariaDB, start: BinlogPosition, end: BinlogPosition) -> tuple[int, float]:
    """The plain library over the same range, at its fastest settings: every row decoded, nothing else."""
    dsn = server.endpoint().dsn()
    stream = BinLogStreamReader(
        connection_settings={"host": dsn.host, "port": dsn.port, "user": dsn.user, "password": dsn.password()},
        server_id=4242,
        log_file=start.file,
        log_pos=start.pos,
        resume_stream=True,
        blocking=False,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
        only_schemas=[DATABASE],
        use_column_name_cache=True,
        freeze_schema=True,
        enable_logging=False,
    )
    rows, began = 0, time.monotonic()
    try:
        for event in stream:
            rows += len(event.rows)
            if (stream.log_file, stream.log_pos) >= (end.file, end.pos):
                break
    finally:
        stream.close()
    return rows, time.monotonic() - began


def _latency(project: Project, sync, server: MariaDB, seconds: int, threads: int, rate: int) -> dict:
    project.wait_for_sync()
    mark = len(sync.meter.history)
    reached = write_only(server, seconds, threads, f"--rate={rate}")
    began = time.monotonic()
    project.wait_for_sync()
    catch_up = time.monotonic() - began
    lags = np.array(sync.meter.history[mark:])
    result = {**sysbench.fixed_rate(rate, reached), "heartbeats": len(lags), "catch_up_seconds": round(catch_up, 3)}
    for i, stage in enumerate(("lag", "read", "apply")):
        for p in (50, 95, 99):
            result[f"{stage}_p{p}_ms"] = round(float(np.percentile(lags[:, i], p)), 2) if len(lags) else None
    return result
