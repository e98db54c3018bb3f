"""Switchover, reverse sync back to MariaDB (from seekdb's trigger capture, or from a target's binlog), switch-back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from datetime import datetime

import pymysql
import pytest
from conftest import make_project, seq_table_migrated
from helpers import assert_same_tables, make_writable, wait_inside_a_transaction

from omsbench.changes import PIECE_ROWS
from omsbench.endpoints import catalog
from omsbench.endpoints.connection import connect
from omsbench.endpoints.mysql import master_status
from omsbench.engine import capture, lifecycle, release, reverse, runner, switchover
from omsbench.engine.project import Project
from omsbench.engine.spec import Switchover
from omsbench.exceptions import StateError
from omsbench.lab import sampledb
from omsbench.lab.workload import Workload

TABLES = ["customers", "products", "orders", "order_items", "audit_log", "legacy_notes"]


@pytest.fixture
def migrated(workspace, source, seekdb_tcp, src, unique, request):
    """A shop database migrated to the seekdb server with its forward sync running."""
    project, database = _shop_migrated(workspace, source, seekdb_tcp.endpoint(), src, unique("rev"), request)
    project.start_sync()
    return project, database


def _shop_migrated(workspace, source, target, src, database, request):
    sampledb.create(src, rows=1500, database=database)
    project = make_project(workspace, source, target, name=database, objects={"include": [f"{database}.*"]})
    project.migrate_schema()
    project.full(progress=False)
    request.addfinalizer(lambda: make_writable(source))  # last: a running reverse sync sets read-only again
    request.addfinalizer(project.stop_sync)
    request.addfinalizer(project.stop_reverse)
    return project, database


def _same(project, database, tables=TABLES):
    with connect(project.spec.source.dsn()) as src, connect(project.spec.target.dsn()) as dst:
        assert_same_tables(src, dst, [(database, t, database, t) for t in tables])


def _write(endpoint, database, seed, transactions, spatial=False):
    with connect(endpoint.dsn()) as session:
        Workload(session, database, seed=seed, spatial=spatial).run(transactions)


def test_switchover_reverse_sync_and_switch_back(migrated, source, seekdb_tcp):
    project, database = migrated
    _write(source, database, seed=1, transactions=150)
    without = [f"{database}.type_zoo"]  # by triggers only here; carried back by comparison in the test below
    with pytest.raises(StateError, match="orders_note"):  # it would rewrite the rows reverse sync applies
        switchover.switchover(project, without=without)
    with connect(source.dsn()) as mysql:  # created under another sql_mode, two in one slot: order matters
        mysql.execute(f"USE `{database}`")
        mysql.execute("SET SESSION sql_mode = 'TRADITIONAL'")
        for name in ("orders_touch_a", "orders_touch_b"):
            mysql.execute(f"CREATE TRIGGER {name} BEFORE UPDATE ON orders FOR EACH ROW SET @{name} = 'café'")
        triggers = _triggers(mysql, database)
    record = switchover.switchover(project, without=without, suspend_triggers=True)
    assert list(record["phases"]) == [
        "precheck",
        "stop_source_writes",
        "disable_source_events",
        "drain_and_verify",
        "stop_forward_sync",
        "narrow_columns",
        "suspend_source_triggers",
        "install_capture",
        "create_programs",
        "start_reverse_sync",
    ]
    assert project.sync_status()["state"] == "stopped" and project.reverse_status()["state"] in ("starting", "running")
    # run again (its output lost to a kill, say), a finished switchover only reports itself
    assert switchover.switchover(project, without=without, suspend_triggers=True)["phases"] == record["phases"]
    assert project.sync_status()["state"] == "stopped"
    with connect(source.dsn()) as mysql:
        assert mysql.scalar("SELECT @@read_only") == 1  # the old primary takes no stray writes
    # two writers on OceanBase contend for the same rows: MySQL must get their changes in commit order
    writers = [threading.Thread(target=_write, args=(seekdb_tcp.endpoint(), database, seed, 150)) for seed in (2, 8)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    project.wait_for_reverse(timeout=120)
    _same(project, database)
    with connect(seekdb_tcp.endpoint().dsn()) as ob:
        assert capture.pending(ob, project.name) == 0  # applied changes are purged

    back = switchover.switch_back(project, writes_stopped=True)
    assert "start_forward_sync" in back["phases"] and project.reverse_status()["state"] == "stopped"
    with connect(source.dsn()) as mysql:
        assert mysql.scalar("SELECT @@read_only") == 0
        assert _triggers(mysql, database) == triggers  # every column but CREATED: sql_mode and order included
    # and a finished switch-back run again only reports itself too (it said "not switched over")
    assert switchover.switch_back(project)["phases"] == back["phases"]
    _write(source, database, seed=3, transactions=150)
    project.wait_for_sync(timeout=120)
    _same(project, database)
    with connect(seekdb_tcp.endpoint().dsn()) as ob:
        assert ob.scalar("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s", (database,)) == 0


def test_a_table_triggers_cannot_capture_is_carried_back_by_comparison(migrated, source, seekdb_tcp):
    """type_zoo has a geometry column: seekdb refuses every write to it once it has a trigger. It
    is compared with MySQL instead and its differences applied, SRID included, beside the
    trigger-captured tables; the drain waits for a pass, and switch-back verifies it equal."""
    project, database = migrated
    zoo = f"{database}.type_zoo"
    ready = [f for f in lifecycle.readiness(project, force=True, suspend_triggers=True) if f.check == "capture"]
    assert [(f.object, f.status) for f in ready] == [(zoo, "warn")] and "by comparison every 5 s" in ready[0].detail
    record = switchover.switchover(project, suspend_triggers=True)
    assert record["compared"] == [zoo] and not record["without"]
    runner.wait_for(project.workspace, project.name, {"running"}, step="reverse")
    _write(seekdb_tcp.endpoint(), database, seed=5, transactions=150, spatial=True)  # writes type_zoo too
    with connect(seekdb_tcp.endpoint().dsn()) as ob:
        assert not ob.query(  # a trigger there would fail every write to it on seekdb
            "SELECT 1 FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s AND EVENT_OBJECT_TABLE = 'type_zoo'",
            (database,),
        )
        first = ob.scalar(f"SELECT MIN(id) FROM {zoo}")
        ob.execute(f"UPDATE {zoo} SET c_geometry = ST_GeomFromText('POINT(7 8)', 0) WHERE id = {first}")  # 0 only
    project.wait_for_reverse(timeout=120)
    _same(project, database)
    with connect(source.dsn()) as mysql:
        assert mysql.query(f"SELECT ST_AsText(c_geometry), ST_SRID(c_geometry) FROM {zoo} WHERE id = {first}") == [
            ("POINT(7 8)", 0)
        ]
    assert project.reverse_status()["last_compare_s_ago"] is not None
    switchover.switch_back(project, writes_stopped=True)  # drains, then verifies every table equal
    _write(source, database, seed=6, transactions=100, spatial=True)
    project.wait_for_sync(timeout=120)
    _same(project, database)


def _triggers(mysql, database) -> list[tuple]:
    rows = mysql.conn.cursor(pymysql.cursors.DictCursor)
    rows.execute(
        "SELECT * FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s ORDER BY TRIGGER_NAME", (database,)
    )
    return [tuple(sorted((k, v) for k, v in row.items() if k != "CREATED")) for row in rows.fetchall()]


def test_both_directions_at_once_do_not_loop(migrated, source, seekdb_tcp):
    project, database = migrated
    project.stop_sync()  # run it in this process instead, to count what it applies
    forward = project.sync()
    thread = runner.run_thread(forward, runner.SyncProcess(project.workspace, project.name))
    without = [f"{database}.type_zoo"]
    with connect(seekdb_tcp.endpoint().dsn()) as ob:
        capture.install(ob, project.name, switchover.capturable(project, without)[0])
    project.state.set_step(project.name, "switchover", "done", "bidirectional", {"without": without})
    project.start_reverse()
    results: dict = {}

    def write(endpoint, parity):
        try:
            results[parity] = _own_rows(endpoint, database, parity)
        except Exception as err:
            results[parity] = err

    writers = [
        threading.Thread(target=write, args=(source, 1)),
        threading.Thread(target=write, args=(seekdb_tcp.endpoint(), 0)),
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert all(isinstance(n, int) and n > 300 for n in results.values()), results
    for _ in range(3):
        project.wait_for_sync(timeout=120)
        project.wait_for_reverse(timeout=120)
    _same(project, database)
    with connect(seekdb_tcp.endpoint().dsn()) as ob:
        captured = ob.scalar("SELECT COALESCE(MAX(seq), 0) FROM omsbench.change_log")
        time.sleep(2)  # a loop would keep both sides busy echoing the last changes
        assert capture.pending(ob, project.name) == 0
        assert ob.scalar("SELECT COALESCE(MAX(seq), 0) FROM omsbench.change_log") == captured
    forward.stop()
    thread.join(60)
    # the 400 rows that came back from OceanBase are in MySQL's binlog too, marked, and skipped
    assert forward.meter.total_rows == results[1]


def _own_rows(endpoint, database, parity, transactions=120):
    """Inserts, updates and deletes of customers whose id has this parity, and audit rows: each side its own.

    Returns the rows changed, as the server counted them.
    """
    changed = 0
    with connect(endpoint.dsn()) as session:
        conn = session.conn
        for i in range(transactions):
            new = 1_000_000 + 2 * i + parity
            conn.begin()
            changed += session.execute(
                f"INSERT INTO `{database}`.customers (id, email, name, balance) VALUES (%s, %s, %s, %s)",
                (new, f"side{parity}-{i}@example.com", f"Side {parity} #{i}", i),
            )
            changed += session.execute(
                f"UPDATE `{database}`.customers SET balance = balance + 1 WHERE id = %s", (2 * (i % 100) + 1 + parity,)
            )
            changed += session.execute(
                f"INSERT INTO `{database}`.audit_log VALUES (NOW(), %s, 'bidi', %s)",
                (f"side{parity}", bytes([i % 256])),
            )
            if i % 3 == 0:
                changed += session.execute(f"DELETE FROM `{database}`.customers WHERE id = %s", (new,))
            conn.commit()
    return changed


def test_kill_9_of_the_reverse_sync_applies_every_change_once(migrated, source, seekdb_tcp):
    project, database = migrated
    switchover.switchover(project, without=[f"{database}.type_zoo"], suspend_triggers=True)
    writer = threading.Thread(target=_write, args=(seekdb_tcp.endpoint(), database, 6, 400))
    writer.start()
    for _ in range(3):
        time.sleep(1.0)
        process_pid = runner.ReverseProcess(project.workspace, project.name).pid()
        os.killpg(process_pid, signal.SIGKILL)
        time.sleep(0.3)
        assert project.reverse_status()["state"] == "died"
        project.start_reverse()
    writer.join()
    project.wait_for_reverse(timeout=120)
    _same(project, database)  # audit_log has no key and duplicate rows: a change applied twice would show


@pytest.mark.parametrize(
    "after",
    [
        "precheck",
        "stop_source_writes",
        "drain_and_verify",
        "suspend_source_triggers",
        "install_capture",
        "create_programs",
    ],
)
def test_switchover_resumes_after_a_kill_in_the_middle(migrated, source, seekdb_tcp, workspace, after):
    """kill -9 of `omsbench switchover` once a phase is recorded, then the same command again."""
    project, database = migrated
    command = [sys.executable, "-m", "omsbench", "-w", str(workspace.root), "switchover", project.name]
    command += ["--without", f"{database}.type_zoo", "--suspend-source-triggers", "--force"]  # no verify before
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        record = (project.state.step(project.name, "switchover") or {}).get("detail") or {}
        if after in record.get("phases", {}) or run.poll() is not None:
            break
        time.sleep(0.01)
    if run.poll() is None:
        os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    # the last phases take milliseconds: the kill may come after the run ended, never before the phase
    assert project.state.step(project.name, "switchover")["state"] in ("died", "done")  # never "running"
    if project.state.step(project.name, "switchover")["state"] == "died":
        with pytest.raises(StateError, match="middle of its switchover"):  # it would leave MySQL half moved
            release.release(project)
        assert "middle of its switchover" in lifecycle.allowed(project)["release"]  # the panel's words too
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "point the application at OceanBase" in again.stdout
    record = project.state.step(project.name, "switchover")["detail"]
    assert record["finished"] and len(record["phases"]) == 10
    _write(seekdb_tcp.endpoint(), database, seed=7, transactions=100)
    project.wait_for_reverse(timeout=120)
    _same(project, database)


def test_release_after_switchover_takes_omsbench_out_of_both_databases(migrated, source, seekdb_tcp, workspace):
    project, database = migrated
    switchover.switchover(project, without=[f"{database}.type_zoo"], suspend_triggers=True)
    project.stop_reverse()  # so changes wait in the change log when the release comes
    _write(seekdb_tcp.endpoint(), database, seed=4, transactions=30)
    with connect(seekdb_tcp.endpoint().dsn()) as ob, connect(source.dsn()) as mysql:
        assert capture.pending(ob, project.name) > 0
        assert release.remains(mysql, project.name)["rows"] > 0  # the heartbeat and the reverse checkpoint
        assert release.remains(ob, project.name)["triggers"] == 3 * len(TABLES)
    project.start_reverse()

    done = subprocess.run(
        [sys.executable, "-m", "omsbench", "-w", str(workspace.root), "release", project.name, "--yes"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "stays read-only" in done.stdout and "orders_note" in done.stdout  # what is left to the user
    assert project.reverse_status()["state"] == "stopped" and project.sync_status()["state"] == "stopped"
    with connect(seekdb_tcp.endpoint().dsn()) as ob, connect(source.dsn()) as mysql:
        left = ob.query("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s", (database,))
        assert left == [("orders_note",)]  # the application's, created at the cut-over: OceanBase is its primary
        assert release.remains(ob, project.name) == release.remains(mysql, project.name) == {"triggers": 0, "rows": 0}
        ob.execute(f"UPDATE `{database}`.customers SET name = 'after release' WHERE id = 1")  # nothing captures it
        assert capture.pending(ob, project.name) == 0
    record = project.state.detail(project.name, "release")
    assert len(record["sides"]["target"]["triggers_dropped"]) == 3 * len(TABLES)  # type_zoo had none
    assert release.release(project) == record  # run again, it only reports itself
    for step in (project.start_sync, project.start_reverse, project.migrate_schema, project.full):
        with pytest.raises(StateError, match="was released"):
            step()
    assert lifecycle.allowed(project)["start"] == "the project was released"
    assert lifecycle.allowed(project)["verify"] is None


def test_reverse_applies_transactions_in_commit_order(migrated, source, seekdb_tcp):
    """B starts first but waits for A's row lock, so it commits after A: MySQL must end with B's value."""
    project, database = migrated
    switchover.switchover(project, without=[f"{database}.type_zoo"], suspend_triggers=True)
    project.state.request(project.name, "reverse", "pause")  # both transactions land in one read
    runner.wait_for(project.workspace, project.name, {"paused"}, step="reverse")
    table = f"`{database}`.customers"
    with connect(seekdb_tcp.endpoint().dsn()) as a, connect(seekdb_tcp.endpoint().dsn()) as b:
        b.conn.begin()
        b.execute(f"UPDATE {table} SET name = 'b first' WHERE id = 6")
        a.conn.begin()
        a.execute(f"UPDATE {table} SET balance = 1 WHERE id = 5")
        waiting = threading.Thread(target=b.execute, args=(f"UPDATE {table} SET balance = 2 WHERE id = 5",))
        waiting.start()
        time.sleep(0.5)  # B now waits for A's lock on row 5
        a.conn.commit()
        waiting.join()
        b.conn.commit()
    project.state.request(project.name, "reverse", "resume")
    project.wait_for_reverse(timeout=60)
    with connect(source.dsn()) as mysql:
        assert mysql.scalar(f"SELECT balance FROM {table} WHERE id = 5") == 2
    _same(project, database)


def test_a_large_oceanbase_transaction_is_read_in_pieces_and_a_kill_inside_it_repeats_nothing(
    workspace, source, seekdb_tcp, src, unique, request
):
    """Its pieces wait in one open MySQL transaction until the last: kill -9 meanwhile keeps none of it."""
    database = unique("revbig")
    columns = "id INT PRIMARY KEY, v INT NOT NULL"
    project = seq_table_migrated(workspace, source, seekdb_tcp.endpoint(), src, database, columns, "seq, 0", 60000)
    request.addfinalizer(lambda: make_writable(source))
    request.addfinalizer(project.stop_reverse)
    project.start_sync()
    switchover.switchover(project)
    project.state.request(project.name, "reverse", "pause")
    runner.wait_for(project.workspace, project.name, {"paused"}, step="reverse")
    with connect(seekdb_tcp.endpoint().dsn()) as ob:
        ob.execute(f"UPDATE `{database}`.t SET v = v + 1")  # one transaction, 60,000 captured rows
        ob.execute(f"UPDATE `{database}`.t SET v = 7 WHERE id = 3")
        (trx, rows), later = capture.waiting(ob, project.name, 10)
        tables = catalog.read(ob, [database]).tables
        pieces = list(capture.read_pieces(ob, project.name, tables, trx, rows))
    assert rows == 60000 and later[1] == 1
    assert [p.more for p in pieces] == [True] * 5 + [False] and {p.rows for p in pieces} == {PIECE_ROWS}
    assert [c.key[0] for p in pieces for c in p.changes] == list(range(1, 60001))  # every row once, in order
    project.state.request(project.name, "reverse", "resume")
    with connect(source.dsn()) as mysql:
        wait_inside_a_transaction(mysql, PIECE_ROWS, f"SELECT SUM(v) FROM `{database}`.t")
        os.killpg(runner.ReverseProcess(project.workspace, project.name).pid(), signal.SIGKILL)
        time.sleep(0.3)
        assert mysql.scalar(f"SELECT SUM(v) FROM `{database}`.t") == 0  # none of it committed
        project.start_reverse()
        project.wait_for_reverse(timeout=120)
        assert mysql.scalar(f"SELECT SUM(v) FROM `{database}`.t") == 60000 + 6  # all of it, once
    _same(project, database, ["t"])


def test_changes_captured_before_the_triggers_know_a_new_column_carry_its_value(seekdb_tcp, unique):
    """seekdb lists a rebuilt trigger a moment before writes fire it: the old one captures without the column."""
    database = unique("revcol")
    with connect(seekdb_tcp.endpoint().dsn()) as ob:
        ob.execute(f"CREATE DATABASE `{database}`")
        ob.execute(f"CREATE TABLE `{database}`.t (id INT PRIMARY KEY, v VARCHAR(10))")
        ob.execute(f"CREATE TABLE `{database}`.bare (v VARCHAR(10))")
        capture.install(ob, database, list(catalog.read(ob, [database]).tables.values()))
        ob.execute(f"INSERT INTO `{database}`.t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        ob.execute(f"INSERT INTO `{database}`.bare VALUES ('x')")
        for name in ("t", "bare"):
            ob.execute(f"ALTER TABLE `{database}`.{name} ADD COLUMN extra INT NOT NULL DEFAULT 5")
        ob.execute(f"UPDATE `{database}`.t SET extra = 7 WHERE id = 1")  # the triggers still name id and v only
        ob.execute(f"INSERT INTO `{database}`.t VALUES (4, 'd', 8)")
        ob.execute(f"DELETE FROM `{database}`.t WHERE id = 3")
        ob.execute(f"INSERT INTO `{database}`.bare VALUES ('y', 9)")
        tables = catalog.read(ob, [database]).tables
        waiting = capture.waiting(ob, database, 100)
        changes = [c for txn in capture.read(ob, database, tables, [t for t, _ in waiting]) for c in txn.changes]
    on_t = [(c.op.value, c.key[0], (c.before or {}).get("extra"), (c.after or {}).get("extra")) for c in changes
            if c.table == "t"]  # fmt: skip
    assert on_t == [  # the row's value now, not NULL: every later change of the row follows in the log
        ("insert", 1, None, 7), ("insert", 2, None, 5), ("insert", 3, None, None),  # 3 is gone: its delete follows
        ("update", 1, 7, 7), ("insert", 4, None, 8), ("delete", 3, None, None),
    ]  # fmt: skip
    assert [c.after["extra"] for c in changes if c.table == "bare"] == [None, None]  # no key to look it up by
    assert all(set(c.after or c.before) == {"id", "v", "extra"} for c in changes if c.table == "t")


def test_ddl_on_oceanbase_after_switchover_pauses_until_mysql_follows(migrated, source, seekdb_tcp):
    project, database = migrated
    switchover.switchover(project, without=[f"{database}.type_zoo"], suspend_triggers=True)
    runner.wait_for(project.workspace, project.name, {"running"}, step="reverse")
    table = f"`{database}`.customers"
    with connect(seekdb_tcp.endpoint().dsn()) as ob:
        ob.execute(f"ALTER TABLE {table} ADD COLUMN nick VARCHAR(20) NULL")
        paused = runner.wait_for(project.workspace, project.name, {"paused"}, timeout=30, step="reverse")
        assert "customers" in paused["message"] and "MySQL does not yet" in paused["message"]
        ob.execute(f"UPDATE {table} SET nick = 'ace' WHERE id = 7")  # captured with the new column
        ob.execute(f"INSERT INTO {table} (id, email, name, nick) VALUES (99999, 'n@x', 'N', 'newbie')")
    project.state.request(project.name, "reverse", "resume")  # MySQL still lacks the column: pauses again
    deadline = time.monotonic() + 30
    while project.state.requested(project.name, "reverse")["want"] == "resume" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert project.state.requested(project.name, "reverse")["want"] == "run"  # the sync took the resume
    runner.wait_for(project.workspace, project.name, {"paused"}, timeout=30, step="reverse")
    with connect(source.dsn()) as mysql:
        mysql.execute(f"ALTER TABLE {table} ADD COLUMN nick VARCHAR(20) NULL")
    subprocess.run(
        [sys.executable, "-m", "omsbench", "-w", str(project.workspace.root), "reverse", "resume", project.name],
        check=True,
    )
    project.wait_for_reverse(timeout=60)
    with connect(source.dsn()) as mysql:
        assert mysql.scalar(f"SELECT nick FROM {table} WHERE id = 7") == "ace"
    _same(project, database)


def test_a_restarted_mysql_is_made_read_only_again_and_reverse_sync_goes_on(migrated, mariadb, seekdb_tcp):
    """MySQL forgets read_only when it restarts; the old primary must not take the application's writes."""
    project, database = migrated
    switchover.switchover(project, without=[f"{database}.type_zoo"], suspend_triggers=True)
    mariadb.stop()
    mariadb.start()
    _write(seekdb_tcp.endpoint(), database, seed=4, transactions=60)
    project.wait_for_reverse(timeout=120)  # the reverse sync reconnected by itself
    with connect(mariadb.endpoint().dsn()) as mysql:
        assert mysql.scalar("SELECT @@GLOBAL.read_only") == 1
    _same(project, database)


@pytest.fixture
def migrated_to_mysql(workspace, source, mysql_target, src, unique, request):
    """A shop database migrated to a second MariaDB, whose binlog reverse sync can read."""
    return _shop_migrated(workspace, source, mysql_target.endpoint(), src, unique("revbin"), request)


def test_reverse_sync_reads_the_targets_binlog_where_it_has_one(migrated_to_mysql, source, mysql_target):
    project, database = migrated_to_mysql
    found = project.precheck().set_index("check").loc["reverse capture"]
    assert found.status == "ok" and found.detail.startswith("binlog:")
    project.start_sync()
    _write(source, database, seed=1, transactions=100, spatial=True)
    record = switchover.switchover(project, suspend_triggers=True)  # type_zoo too: no trigger limits it
    assert record["capture"] == "binlog" and record["reverse_start"]["file"]
    target = mysql_target.endpoint()
    with connect(target.dsn()) as mysql_b:  # no capture trigger; the application's own, from the cut-over
        assert mysql_b.query(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s", (database,)
        ) == [("orders_note",)]
    _write(target, database, seed=2, transactions=150, spatial=True)
    with connect(target.dsn()) as mysql_b:  # DDL on the target is replayed on MySQL at its place
        mysql_b.execute(f"ALTER TABLE `{database}`.customers ADD COLUMN nick VARCHAR(20) NULL")
        mysql_b.execute(f"UPDATE `{database}`.customers SET nick = 'ace' WHERE id = 7")
    project.wait_for_reverse(timeout=120)
    _same(project, database, [*TABLES, "type_zoo"])
    with connect(source.dsn()) as mysql:
        assert mysql.scalar(f"SELECT nick FROM `{database}`.customers WHERE id = 7") == "ace"

    back = switchover.switch_back(project, writes_stopped=True)
    assert "start_forward_sync" in back["phases"]
    _write(source, database, seed=3, transactions=100, spatial=True)
    project.wait_for_sync(timeout=120)
    _same(project, database, [*TABLES, "type_zoo"])


def test_binlog_capture_in_both_directions_at_once_does_not_loop(migrated_to_mysql, source, mysql_target):
    """Each direction applies exactly the rows its own side's writer changed: nothing comes back."""
    project, database = migrated_to_mysql
    with connect(mysql_target.endpoint().dsn()) as mysql_b:
        start = asdict(master_status(mysql_b))
    detail = {"capture": reverse.BINLOG, "reverse_start": start}
    project.state.set_step(project.name, "switchover", "done", "bidirectional", detail)
    forward, backward = project.sync(), project.reverse()
    threads = [
        runner.run_thread(forward, runner.SyncProcess(project.workspace, project.name)),
        runner.run_thread(backward, runner.ReverseProcess(project.workspace, project.name)),
    ]
    results: dict = {}
    writers = [
        threading.Thread(target=lambda: results.update({1: _own_rows(source, database, 1)})),
        threading.Thread(target=lambda: results.update({0: _own_rows(mysql_target.endpoint(), database, 0)})),
    ]
    try:
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        assert all(n > 300 for n in results.values()), results
        for _ in range(3):
            project.wait_for_sync(timeout=60)
            project.wait_for_reverse(timeout=60)
        _same(project, database)
        time.sleep(2)  # a loop would keep both directions busy echoing the last changes
    finally:  # the threads run in this process: stop them here, not through the pid files
        forward.stop()
        backward.stop()
        for thread in threads:
            thread.join(60)
    assert forward.meter.total_rows == results[1] and backward.meter.total_rows == results[0]


def test_binlog_capture_asked_of_a_target_without_binlog_is_refused_before_anything_changes(migrated, source):
    project, database = migrated
    spec = project.spec.model_copy(update={"switchover": Switchover(reverse_capture="binlog")})
    asked = Project(spec, project.workspace)
    found = asked.precheck().set_index("check").loc["reverse capture"]
    assert found.status == "fail" and "writes no binlog" in found.detail
    with pytest.raises(StateError, match="not possible: the target writes no binlog"):
        switchover.switchover(asked, without=[f"{database}.type_zoo"], suspend_triggers=True)
    with connect(source.dsn()) as mysql:
        assert mysql.scalar("SELECT @@GLOBAL.read_only") == 0
    assert project.sync_status()["state"] == "running"


_APPLICATION = (
    "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40), created DATETIME NULL, price INT)",
    "CREATE TABLE search (item_id INT PRIMARY KEY, words VARCHAR(80))",
    "CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, item_id INT, what VARCHAR(10))",
    # a DEFINER the target lacks: created as it is, every write to items would fail there (1449)
    "CREATE DEFINER='ghost'@'%' TRIGGER items_stamp BEFORE INSERT ON items FOR EACH ROW"
    " SET NEW.created = '2026-01-01 00:00:00'",
    "CREATE TRIGGER items_search AFTER INSERT ON items FOR EACH ROW BEGIN"
    " INSERT INTO search VALUES (NEW.id, LOWER(NEW.name)); INSERT INTO audit (item_id, what) VALUES (NEW.id, 'insert');"
    " END",
    "CREATE TRIGGER items_rename AFTER UPDATE ON items FOR EACH ROW UPDATE search SET words = LOWER(NEW.name)"
    " WHERE item_id = NEW.id",
    "CREATE FUNCTION with_tax(p INT) RETURNS INT DETERMINISTIC RETURN p * 2",
    "CREATE PROCEDURE scratch() BEGIN CREATE TEMPORARY TABLE tmp (a INT); DROP TEMPORARY TABLE tmp; END",
    "CREATE EVENT cleanup ON SCHEDULE EVERY 1 DAY DO DELETE FROM audit WHERE id < 0",
    "INSERT INTO items (id, name, price) VALUES (1, 'Desk', 20), (2, 'Chair', 8)",
)


def _application(endpoint, database, item: int) -> None:
    """The application's writes: they fire every trigger and call the function."""
    with connect(endpoint.dsn()) as app:
        app.execute(f"USE `{database}`")
        app.execute(f"INSERT INTO items (id, name, price) VALUES ({item}, 'Big Lamp', with_tax(5))")
        app.execute(f"UPDATE items SET name = 'Small Lamp' WHERE id = {item}")


def test_the_applications_triggers_and_routines_run_on_oceanbase_from_the_cut_over(
    workspace, source, seekdb_tcp, src, unique, request
):
    database = unique("app")
    src.execute(f"CREATE DATABASE `{database}`")
    src.execute("CREATE USER IF NOT EXISTS 'ghost'@'%'")  # on MySQL only
    src.execute(f"GRANT ALL ON `{database}`.* TO 'ghost'@'%'")
    src.execute(f"USE `{database}`")
    for statement in _APPLICATION:
        src.execute(statement)
    target = seekdb_tcp.endpoint()
    project = make_project(workspace, source, target, name=database, objects={"include": [f"{database}.*"]})
    request.addfinalizer(lambda: make_writable(source))
    request.addfinalizer(project.stop_sync)
    request.addfinalizer(project.stop_reverse)
    fates = project.precheck().set_index("object").detail
    assert "created on the target at switchover" in fates[f"trigger {database}.items_search"]
    assert "ghost@%" in fates[f"trigger {database}.items_stamp"]
    assert "temporary table" in fates[f"procedure {database}.scratch"]
    assert "no event scheduler" in fates[f"event {database}.cleanup"]
    report = project.migrate_schema().set_index("source")
    assert "created on the target at switchover" in report.loc[f"{database}.with_tax", "detail"]
    project.full(progress=False)
    project.start_sync()
    _application(source, database, 3)  # MySQL's triggers at work; their rows arrive as rows
    with connect(source.dsn()) as mysql:
        before = _triggers(mysql, database)
    command = [sys.executable, "-m", "omsbench", "-w", str(workspace.root), "switchover", database, "--dry-run"]
    refused = subprocess.run(command, capture_output=True, text=True)
    assert refused.returncode == 1 and "--suspend-source-triggers" in refused.stdout, refused.stdout + refused.stderr
    assert "not yet: last verify equal and not stale" in refused.stdout  # the checklist, as the switchover's
    ready = subprocess.run([*command, "--suspend-source-triggers", "--force"], capture_output=True, text=True)
    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert "items_search" in ready.stdout and "temporary table" in ready.stdout  # every object's fate
    assert not project.state.step(project.name, "switchover")  # a dry run changes nothing
    with connect(source.dsn()) as mysql:
        assert mysql.scalar("SELECT @@GLOBAL.read_only") == 0

    record = switchover.switchover(project, suspend_triggers=True)
    outcomes = {item["name"]: item["outcome"] for item in record["programs"]}
    assert outcomes == {
        "items_stamp": "created", "items_search": "created", "items_rename": "created", "with_tax": "created",
        "scratch": "", "cleanup": "",
    }  # fmt: skip
    with connect(source.dsn()) as mysql:
        assert mysql.scalar("SELECT STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s", (database,)) in (
            "DISABLED",
            "SLAVESIDE_DISABLED",
        )
    runner.wait_for(project.workspace, project.name, {"running"}, step="reverse")
    _application(target, database, 4)  # on OceanBase now: its triggers write search and audit there
    project.wait_for_reverse(timeout=120)
    _same(project, database, ["items", "search", "audit"])
    with connect(source.dsn()) as mysql:
        assert mysql.query(f"SELECT created, price FROM `{database}`.items WHERE id = 4") == [
            (datetime(2026, 1, 1), 10)
        ]
        assert mysql.query(f"SELECT words FROM `{database}`.search WHERE item_id = 4") == [("small lamp",)]
        assert mysql.scalar(f"SELECT COUNT(*) FROM `{database}`.audit WHERE item_id = 4") == 1  # once

    switchover.switch_back(project, writes_stopped=True)
    with connect(source.dsn()) as mysql, connect(target.dsn()) as ob:
        assert _triggers(mysql, database) == before
        assert mysql.scalar("SELECT STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s", (database,)) == (
            "ENABLED"
        )
        assert not ob.query("SELECT 1 FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s", (database,))
        assert ob.scalar(f"SELECT `{database}`.with_tax(4)") == 8  # routines stay, harmless
    _application(source, database, 5)  # MySQL's triggers again; OceanBase only replays their rows
    project.wait_for_sync(timeout=120)
    _same(project, database, ["items", "search", "audit"])


@pytest.mark.parametrize("choice", ["widen", "guard", "pause"])
def test_a_four_byte_character_for_a_utf8mb3_column_under_each_choice(
    workspace, source, seekdb_tcp, src, unique, request, choice
):
    """seekdb has no utf8mb3: OceanBase takes an emoji MySQL's column cannot store. Widen converts
    MySQL's table at switchover, guard refuses it on OceanBase, pause stops the fallback on it."""
    database = unique("narrow")
    src.execute(f"CREATE DATABASE `{database}`")
    src.execute(f"CREATE TABLE `{database}`.people (id INT PRIMARY KEY, last_name VARCHAR(20) CHARACTER SET utf8mb3)")
    src.execute(f"INSERT INTO `{database}`.people VALUES (1, 'Smith')")
    target = seekdb_tcp.endpoint()
    project = make_project(
        workspace, source, target, name=database, objects={"include": [f"{database}.*"]},
        switchover={"narrow_columns": choice},
    )  # fmt: skip
    request.addfinalizer(lambda: make_writable(source))
    request.addfinalizer(project.stop_sync)
    request.addfinalizer(project.stop_reverse)
    said = project.precheck().set_index(["check", "object"]).loc[("fallback charset", f"{database}.people")]
    assert f"narrow_columns: {choice}" in said.detail
    project.migrate_schema()
    project.full(progress=False)
    project.start_sync()
    record = switchover.switchover(project)
    runner.wait_for(project.workspace, project.name, {"running"}, step="reverse")
    with connect(target.dsn()) as ob:
        if choice == "guard":
            with pytest.raises(pymysql.err.MySQLError) as refused:  # the application hears it at once
                ob.execute(f"INSERT INTO `{database}`.people VALUES (2, 'Smile 😀')")
            assert refused.value.args[0] == 3819
            ob.execute(f"INSERT INTO `{database}`.people VALUES (3, 'Smile é')")
        else:
            ob.execute(f"INSERT INTO `{database}`.people VALUES (2, 'Smile 😀')")
    if choice == "pause":
        paused = runner.wait_for(project.workspace, project.name, {"paused"}, timeout=60, step="reverse")
        assert "people" in paused["message"] and "utf8mb4" in paused["message"]
        with connect(source.dsn()) as mysql:  # the fix the message gives
            mysql.execute(f"ALTER TABLE `{database}`.people CONVERT TO CHARACTER SET utf8mb4")
        # the pause names the refused transaction, so the user may also decide on it: here, their own SQL
        where = project.resolve("reverse", sql=f"INSERT INTO `{database}`.people VALUES (2, 'Smile 😀')")
        assert where == paused["detail"]["at"] and where.startswith("change_log:")
    project.wait_for_reverse(timeout=120)
    _same(project, database, ["people"])
    with connect(source.dsn()) as mysql:
        charset = mysql.scalar(
            "SELECT CHARACTER_SET_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND COLUMN_NAME = %s",
            (database, "last_name"),
        )
    assert charset == ("utf8mb3" if choice == "guard" else "utf8mb4")
    assert bool(record.get("widened")) == (choice == "widen")
    switchover.switch_back(project, writes_stopped=True)
    with connect(target.dsn()) as ob:
        assert not ob.query(
            "SELECT 1 FROM information_schema.TABLE_CONSTRAINTS WHERE TABLE_SCHEMA = %s AND CONSTRAINT_TYPE = 'CHECK'",
            (database,),
        )


def test_guard_on_a_column_no_check_can_limit_is_refused_by_the_dry_run(workspace, source, seekdb_tcp, src, unique):
    """Only utf8mb3's limit is one a CHECK can state: a latin1 column under guard stops the
    switchover, and the dry run (and the panel's readiness report) says so before anything moves."""
    database = unique("unguard")
    src.execute(f"CREATE DATABASE `{database}`")
    src.execute(f"CREATE TABLE `{database}`.people (id INT PRIMARY KEY, name VARCHAR(20) CHARACTER SET latin1)")
    project = make_project(
        workspace, source, seekdb_tcp.endpoint(), name=database, objects={"include": [f"{database}.*"]},
        switchover={"narrow_columns": "guard"},
    )  # fmt: skip
    project.migrate_schema()
    found = [f for f in lifecycle.readiness(project, force=True) if f.check == "narrow columns"]
    assert [f.status for f in found] == ["fail"] and f"{database}.people.name (latin1)" in found[0].detail
    command = [sys.executable, "-m", "omsbench", "-w", str(workspace.root), "switchover", database, "--dry-run"]
    refused = subprocess.run(command, capture_output=True, text=True)
    assert refused.returncode == 1 and "no CHECK can state the limit" in refused.stdout, refused.stderr
    assert not project.state.step(project.name, "switchover")
