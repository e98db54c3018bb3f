"""A killed full load resumes with no gap and no duplicate; chunks also run on a dask cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pymysql
import pytest
import yaml
from conftest import make_project
from helpers import exact_rows

from omsbench.endpoints.connection import connect


def _sbtest(src, db: str, rows: int) -> None:
    src.execute(f"DROP DATABASE IF EXISTS `{db}`")
    src.execute(f"CREATE DATABASE `{db}`")
    src.execute(
        f"CREATE TABLE `{db}`.sbtest (id INT PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL,"
        " KEY k_1 (k))"
    )
    src.execute(
        f"CREATE TABLE `{db}`.nokey (a INT, b VARCHAR(20))"  # copied as one all-or-nothing chunk
    )
    values = [(i, i * 7 % 1000, f"c-{i:0>100}", f"p-{i}") for i in range(1, rows + 1)]
    with src.conn.cursor() as cur:
        for start in range(0, rows, 5000):
            cur.executemany(f"INSERT INTO `{db}`.sbtest VALUES (%s, %s, %s, %s)", values[start : start + 5000])
        cur.executemany(f"INSERT INTO `{db}`.nokey VALUES (%s, %s)", [(i % 10, "dup") for i in range(300)])


def _omsbench(workspace, *args) -> list[str]:
    return [sys.executable, "-m", "omsbench.cli", "-w", str(workspace.root), *args]


@pytest.mark.parametrize(
    ("sig", "state"),
    [(signal.SIGKILL, "died"), (signal.SIGINT, "stopped")],  # a crash; Ctrl-C in the terminal
    ids=["kill-9", "ctrl-c"],
)
def test_a_full_load_stopped_mid_way_then_resumes(workspace, source, seekdb_tcp, src, unique, tmp_path, sig, state):
    db = unique("killme")
    _sbtest(src, db, 40_000)
    target = seekdb_tcp.endpoint()
    spec = tmp_path / "kill.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": db,  # its own checkpoint rows on the shared target
                "source": source.model_dump(exclude_none=True),
                "target": target.model_dump(exclude_none=True),
                "objects": {"include": [f"{db}.*"]},
                "options": {"chunk_size": 1000, "parallelism": 2, "rows_per_second": 8000, "batch_bytes": 65536},
            }
        )
    )
    subprocess.run(_omsbench(workspace, "schema", str(spec)), check=True, capture_output=True)
    run = subprocess.Popen(
        _omsbench(workspace, "full", str(spec)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # the pool's workers share the group: kill them all, as a crash would
    )
    with connect(target.dsn()) as dst:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _chunks_done(dst, db) < 8:
            time.sleep(0.2)
        os.killpg(run.pid, sig)
        _, err = run.communicate(timeout=120)
        done = _chunks_done(dst, db)
        assert 8 <= done < 41, f"the kill should land mid-load, {done} chunks were done"
        recorded = dst.scalar("SELECT SUM(row_count) FROM omsbench.full_chunks WHERE project = %s", (db,))
        present = dst.scalar(f"SELECT COUNT(*) FROM `{db}`.sbtest") + dst.scalar(f"SELECT COUNT(*) FROM `{db}`.nokey")
        assert present == recorded  # each chunk's rows committed with its checkpoint, never half of one
    status = subprocess.run(_omsbench(workspace, "status", str(spec)), capture_output=True, text=True)
    full_row = next(line for line in status.stdout.splitlines() if "│ full " in line)
    assert f"│ {state} " in full_row  # not "running"
    if sig == signal.SIGKILL:
        assert "it was killed or crashed" in full_row
    else:
        assert run.returncode == 130 and "run the same command again to resume" in err.decode(), err
        assert "interrupted by the user" in full_row and "KeyboardInterrupt" not in status.stdout

    if sig == signal.SIGKILL:  # the same spec from a workspace that did not plan the load
        elsewhere = [sys.executable, "-m", "omsbench.cli", "-w", str(tmp_path / "other"), "full", str(spec)]
        other = subprocess.run([*elsewhere, "--no-precheck"], capture_output=True, text=True)
        assert other.returncode == 2 and "this workspace did not plan" in other.stderr, other.stderr
        assert "--restart" in other.stderr
        with connect(target.dsn()) as dst:
            assert _chunks_done(dst, db) == done
    resumed = subprocess.run(_omsbench(workspace, "full", str(spec)), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed past {done}" in resumed.stdout
    with connect(target.dsn()) as dst:
        for table in ("sbtest", "nokey"):
            assert exact_rows(src, db, table) == exact_rows(dst, db, table)
        assert dst.scalar(f"SELECT COUNT(*) FROM `{db}`.sbtest") == 40_000
        assert dst.query(f"SHOW INDEX FROM `{db}`.sbtest WHERE Key_name = 'k_1'")
    checked = subprocess.run(_omsbench(workspace, "check", str(spec)), capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _chunks_done(dst, project: str) -> int:
    """0 until the load has created its checkpoint table (seekdb may list it a moment before it answers)."""
    try:
        return dst.scalar("SELECT COUNT(*) FROM omsbench.full_chunks WHERE project = %s", (project,))
    except pymysql.err.ProgrammingError as err:
        if err.args[0] != 1146:  # no such table yet
            raise
        return 0


def test_chunks_run_on_a_dask_cluster(workspace, source, target, src, dst, unique):
    from dask.distributed import Client, LocalCluster

    db = unique("dask")
    _sbtest(src, db, 6000)
    project = make_project(
        workspace, source, target, name="dask", objects={"include": [f"{db}.*"]}, options={"chunk_size": 500}
    )
    project.migrate_schema()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, Client(cluster) as client:
        result = project.full(executor=client.get_executor(), progress=False)
        workers = len(client.scheduler_info()["workers"])
    assert workers == 2
    again = project.full(progress=False)  # nothing left to copy: the hand-over position must not move
    assert again.chunks_copied == 0 and again.start_position == result.start_position
    # 12 full key ranges of sbtest, the open-ended range above the last key, the keyless table
    assert result.chunks_copied == 14
    for table in ("sbtest", "nokey"):
        assert exact_rows(src, db, table) == exact_rows(dst, db, table)
