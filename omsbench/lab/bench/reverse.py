"""``omsbench bench reverse``: after switchover, sysbench writes to OceanBase and reverse sync carries it to MySQL.

1. Capture overhead: ``sysbench oltp_write_only`` against the seekdb server for S seconds before
   the switchover (no triggers), and again with the capture triggers installed. The ratio of the
   two rates is what the triggers cost the application (``capture_overhead_ratio``, 1.0 = free);
   on one machine it includes the reverse sync's own CPU (it runs meanwhile), so the backlog run
   below, with the sync paused, gives ``capture_overhead_ratio_sync_paused`` too. Rates on seekdb
   vary by a factor of three between runs (its background work), so its CPU per transaction is
   taken from /proc as well: ``capture_cpu_ratio`` is without / with, 1.0 = free.
2. Throughput: with the reverse sync paused, sysbench writes a backlog; then the sync applies it
   to MySQL as fast as it can (``applied_rows_per_s``).
3. Lag: sysbench at a fixed rate (by default half the throughput of the slower of the captured
   application and the reverse sync) with the reverse sync
   running; lag percentiles by stage are taken from every applied group (capture time on
   OceanBase to commit on MySQL).
Finally both sides are compared with checksums computed inside each.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from omsbench.endpoints.connection import Dsn, connect
from omsbench.engine import capture, runner, switchover
from omsbench.engine import spec as specs
from omsbench.engine.project import Project
from omsbench.engine.steps import State, Step
from omsbench.engine.workspace import Workspace
from omsbench.lab.bench import sysbench
from omsbench.lab.servers import MariaDB, SeekdbServer, ensure_programs, find_program

DATABASE = "sbreverse"
ROWS = 20_000


def run(workspace: Workspace, seconds: int = 15, threads: int = 4, rate: int = 0, progress: bool = True) -> dict:
    ensure_programs({"sysbench": "sysbench"})
    mysql = MariaDB(workspace.folder("servers", "mariadb"))
    mysql.start()
    sysbench.prepare(mysql, ROWS, DATABASE)
    oceanbase = SeekdbServer(workspace.folder("servers", "seekdb"))
    oceanbase.start()
    project = _migrated(workspace, mysql, oceanbase, progress)
    ob = oceanbase.endpoint().dsn()
    cpu = _CpuMeter(oceanbase.pid())
    without_capture = _sysbench(ob, seconds, threads, database=_uncaptured_copy(ob), cpu=cpu)
    cpu_without = cpu.per_transaction
    project.start_sync()
    try:
        runner.wait_for(workspace, project.name, {"running"})
        switchover.switchover(project, writes_stopped=True)
        project.stop_reverse()  # run it in this process instead, to read its meter
        reverse = project.reverse()
        thread = runner.run_thread(reverse, runner.ReverseProcess(workspace, project.name))
        try:
            runner.wait_for(workspace, project.name, {"running"}, step=Step.REVERSE)
            with_capture = _sysbench(ob, seconds, threads)
            project.wait_for_reverse(timeout=600)
            throughput = _throughput(project, reverse, ob, seconds, threads, cpu)
            cpu_with = throughput.pop("seekdb_cpu_ms_per_txn")
            applied_transactions = throughput["applied_rows_per_s"] / throughput["rows_per_transaction"]
            rate = rate or sysbench.half_rate(applied_transactions, with_capture)
            latency = _latency(project, reverse, ob, seconds, threads, rate)
        finally:
            reverse.stop()
            thread.join(60)
        equal = bool(project.check()["equal"].all())
    finally:
        _undo(project, ob)
    return {
        "seconds": seconds,
        "sysbench_threads": threads,
        "ob_transactions_per_s_without_capture": round(without_capture),
        "ob_transactions_per_s_with_capture": round(with_capture),
        "capture_overhead_ratio": round(with_capture / without_capture, 3),
        "capture_overhead_ratio_sync_paused": round(throughput["backlog_transactions_per_s"] / without_capture, 3),
        "seekdb_cpu_ms_per_txn_without_capture": round(cpu_without, 3),
        "seekdb_cpu_ms_per_txn_with_capture": cpu_with,
        "capture_cpu_ratio": round(cpu_without / cpu_with, 3),
        **throughput,
        **latency,
        "equal": equal,
    }


def _migrated(workspace: Workspace, mysql: MariaDB, oceanbase: SeekdbServer, progress: bool) -> Project:
    spec = specs.ProjectSpec(
        name="bench-reverse",
        source=mysql.endpoint(),
        target=oceanbase.endpoint(),
        objects=specs.Objects(include=[f"{DATABASE}.*"]),
    )
    project = Project(spec, workspace)
    project.save()
    with connect(oceanbase.endpoint().dsn()) as target:
        target.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
        target.execute("DROP DATABASE IF EXISTS `omsbench`")
    project.state.clear_chunks(spec.name)
    for step in ("full", "switchover"):  # with an empty record: a finished switchover's would be kept, and skipped
        project.state.set_step(spec.name, step, State.PENDING, "benchmark", {})
    project.migrate_schema()
    project.full(progress=progress)
    return project


def _uncaptured_copy(ob: Dsn) -> str:
    """The same tables in another database on the same seekdb, never captured: the baseline's."""
    copy = f"{DATABASE}_baseline"
    with connect(ob) as session:
        session.execute(f"DROP DATABASE IF EXISTS `{copy}`")
        session.execute(f"CREATE DATABASE `{copy}`")
        for i in range(1, sysbench.TABLES + 1):
            session.execute(f"CREATE TABLE `{copy}`.sbtest{i} LIKE `{DATABASE}`.sbtest{i}")
            session.execute(f"INSERT INTO `{copy}`.sbtest{i} SELECT * FROM `{DATABASE}`.sbtest{i}")
    return copy


class _CpuMeter:
    """The seekdb server's CPU time (user + system, from /proc) per transaction of the last run."""

    def __init__(self, pid: int | None) -> None:
        self.pid, self.per_transaction = pid, 0.0

    def seconds(self) -> float:
        if self.pid is None:
            return 0.0
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _sysbench(
    dsn: Dsn, seconds: int, threads: int, *options: str, database: str = DATABASE, cpu: _CpuMeter | None = None
) -> float:
    """oltp_write_only against the seekdb server over TCP; the transactions per second sysbench reports."""
    command = [
        find_program("sysbench"),
        "oltp_write_only",
        "--db-driver=mysql",
        f"--mysql-host={dsn.host}",
        f"--mysql-port={dsn.port}",
        f"--mysql-user={dsn.user}",
        f"--mysql-db={database}",
        f"--tables={sysbench.TABLES}",
        f"--table-size={ROWS // sysbench.TABLES}",
        f"--threads={threads}",
        f"--time={seconds}",
        "--report-interval=0",
        *options,
        "run",
    ]
    began = cpu.seconds() if cpu else 0.0
    output = sysbench.run_tool(command)
    if cpu:
        cpu.per_transaction = 1000 * (cpu.seconds() - began) / max(sysbench.transactions(output), 1)
    return sysbench.transactions_per_second(output)


def _throughput(project: Project, reverse, ob: Dsn, seconds: int, threads: int, cpu: _CpuMeter) -> dict:
    project.state.request(project.name, Step.REVERSE, "pause")
    runner.wait_for(project.workspace, project.name, {"paused"}, step=Step.REVERSE)
    tps = _sysbench(ob, seconds, threads, cpu=cpu)
    with connect(ob) as session:
        backlog = capture.pending(session, project.name)
    applied_before = reverse.meter.total_rows
    began = time.monotonic()
    project.state.request(project.name, Step.REVERSE, "resume")
    project.wait_for_reverse(timeout=600)
    took = time.monotonic() - began
    applied = reverse.meter.total_rows - applied_before
    return {
        "backlog_transactions_per_s": round(tps),
        "seekdb_cpu_ms_per_txn": round(cpu.per_transaction, 3),
        "backlog_rows": backlog,
        "rows_per_transaction": round(backlog / max(tps * seconds, 1), 2),
        "applied_rows_per_s": round(applied / took),
    }


def _latency(project: Project, reverse, ob: Dsn, seconds: int, threads: int, rate: int) -> dict:
    mark = len(reverse.meter.history)
    reached = _sysbench(ob, seconds, threads, f"--rate={rate}")
    project.wait_for_reverse(timeout=600)
    lags = np.array(reverse.meter.history[mark:])
    result: dict = {**sysbench.fixed_rate(rate, reached), "groups": len(lags)}
    for i, stage in enumerate(("lag", "read", "apply")):
        for p in (50, 99):
            result[f"{stage}_p{p}_ms"] = round(float(np.percentile(lags[:, i], p)), 2) if len(lags) else None
    return result


def _undo(project: Project, ob: Dsn) -> None:
    """Leave the servers as a next run expects them: no capture, MySQL writable, nothing running."""
    project.stop_sync()
    with connect(ob) as session:
        capture.remove(session, project.name)
    with connect(project.spec.source.dsn()) as session:
        session.execute("SET GLOBAL read_only = OFF")
