"""The control panel, headless: its buttons are clicked and the engine's state is checked."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
from conftest import make_project, table_migrated
from helpers import assert_same_tables, make_writable

from omsbench.endpoints.connection import connect
from omsbench.engine import runner
from omsbench.engine.state import StateStore
from omsbench.engine.steps import State, Step
from omsbench.lab import sampledb
from omsbench.lab.workload import Workload
from omsbench.workbench import charts
from omsbench.workbench.panel import ControlPanel

ALL_TABLES = ["audit_log", "customers", "legacy_notes", "order_items", "orders", "products", "type_zoo"]


def test_buttons_drive_the_lifecycle_and_follow_the_state(workspace, source, seekdb_tcp, src, unique, request):
    database = unique("panel")
    sampledb.create(src, rows=1500, database=database)
    project = make_project(
        workspace,
        source,
        seekdb_tcp.endpoint(),
        name=database,
        objects={"include": [f"{database}.*"]},
        switchover={"without": [f"{database}.type_zoo"], "suspend_source_triggers": True},
    )
    request.addfinalizer(lambda: make_writable(source))  # last: a running reverse sync sets read-only again
    request.addfinalizer(project.stop_sync)
    request.addfinalizer(project.stop_reverse)
    panel = ControlPanel(project)
    assert panel.buttons["switchover"].disabled and panel.buttons["switchback"].disabled
    assert not panel.buttons["start"].disabled
    for action in ("pause", "resume", "stop"):
        assert panel.buttons[action].disabled, action
    assert not panel.buttons["verify"].disabled  # a target loaded by other means may be verified
    project.state.set_step(project.name, Step.FULL, State.STOPPED, "interrupted")  # a load cut short: Start resumes it
    panel.refresh()
    assert panel.buttons["verify"].disabled and "not finished (it is stopped)" in panel.buttons["verify"].tooltip
    assert "Verify: the full migration has not finished" in panel.reasons.value  # written out, not only on hover
    assert all(button.tooltip for button in panel.buttons.values())
    assert "Not started" in panel.headline.value and panel.next.description == "Next: Start"

    panel.next.click()  # the headline's next step: Start runs precheck, schema, full load, then the sync
    panel.wait(300)
    assert panel.last_error is None
    runner.wait_for(workspace, project.name, {"running"}, timeout=60)
    panel.refresh()
    bars = {row.children[0].tooltip: row.children[0].value for row in panel.progress.children}
    assert bars == {f"{database}.{t}": 100.0 for t in ALL_TABLES}
    assert panel.buttons["start"].disabled and not panel.buttons["pause"].disabled

    with connect(source.dsn()) as writer:
        Workload(writer, database, seed=11).run(150)
    project.wait_for_sync(timeout=120)
    panel.buttons["pause"].click()
    panel.wait(30)
    runner.wait_for(workspace, project.name, {"paused"}, timeout=30)
    panel.refresh()
    assert not panel.buttons["resume"].disabled and panel.buttons["pause"].disabled
    assert "paused" in panel.errors.value  # a paused sync is something to look at
    assert "behind bytes" in panel.sync.value  # asked of the servers: a paused sync has no lag samples
    assert "Sync paused since" in panel.headline.value and " bytes" in panel.headline.value  # and in the headline
    panel.buttons["resume"].click()
    panel.wait(30)
    runner.wait_for(workspace, project.name, {"running"}, timeout=30)

    project.wait_for_sync(timeout=120)
    panel.refresh()
    assert "Replicating" in panel.headline.value and panel.next.description == "Next: Verify"  # no verify yet
    panel.buttons["switchover"].click()  # armed: the checklist, and the readiness report of every object
    assert "✘ last verify equal and not stale" in panel.reasons.value and "refused unless forced" in panel.reasons.value
    assert "Cut-over readiness" in panel.readiness.value and "capture" in panel.readiness.value
    assert panel.force.layout.display == "" and not panel.force.value
    panel.buttons["switchover"].click()
    panel.wait(60)
    assert "refused: not yet" in panel.last_error and "last verify equal and not stale" in panel.last_error
    assert project.state.detail(project.name, "switchover") == {}  # nothing was switched
    assert panel.readiness.value == "" and panel.force.layout.display == "none"
    panel.buttons["verify"].click()
    panel.wait(120)
    assert project.state.step(project.name, "verify")["state"] == "done"
    panel.refresh()
    assert "<svg" in panel.lag.value  # lag and rates drawn from the sync's samples
    assert "equal" in panel.headline.value and panel.next.description == "Next: Switchover"

    src.execute(f"ALTER TABLE `{database}`.customers ADD COLUMN nickname VARCHAR(20)")  # the verify is stale now
    project.wait_for_sync(timeout=60)
    panel.refresh()
    assert "stale" in panel.headline.value and panel.next.description == "Next: Verify"
    panel.buttons["switchover"].click()  # the first click arms it and shows the checklist
    assert panel.buttons["switchover"].description == "Confirm switchover"
    assert "✔ sync running" in panel.reasons.value and "✘ last verify equal and not stale" in panel.reasons.value
    panel.force.value = True  # the DBA knows the DDL is harmless: forced past the checklist
    panel.buttons["switchover"].click()  # drains, verifies, captures on OceanBase, starts the reverse sync
    panel.wait(300)
    assert panel.last_error is None
    runner.wait_for(workspace, project.name, {"running"}, timeout=60, step="reverse")
    assert not panel.buttons["switchback"].disabled and panel.buttons["switchover"].disabled
    with connect(seekdb_tcp.endpoint().dsn()) as writer:
        Workload(writer, database, seed=12, spatial=False).run(100)
    project.wait_for_reverse(timeout=120)
    panel.buttons["switchback"].click()
    panel.wait(300)
    assert panel.last_error is None and project.reverse_status()["state"] == "stopped"
    runner.wait_for(workspace, project.name, {"running"}, timeout=60)

    panel.buttons["stop"].click()
    panel.buttons["stop"].click()  # confirmed
    panel.wait(90)
    assert project.sync_status()["state"] == "stopped"
    panel.refresh()
    assert not panel.buttons["start"].disabled
    with connect(seekdb_tcp.endpoint().dsn()) as dst:
        assert_same_tables(src, dst, [(database, t, database, t) for t in ALL_TABLES])

    panel.buttons["release"].click()  # it cannot be undone: the first click only asks to confirm
    assert panel.buttons["release"].description == "Confirm release" and not project.released
    panel.buttons["release"].click()  # the end: nothing may start again, checking stays possible
    panel.wait(60)
    assert panel.last_error is None and project.released
    panel.refresh()
    assert panel.buttons["start"].disabled and panel.buttons["start"].tooltip == "the project was released"
    assert panel.buttons["release"].disabled and not panel.buttons["verify"].disabled


def test_a_paused_ddl_is_decided_in_the_panel(workspace, source, seekdb_tcp, src, unique, request):
    """The decision card shows the statement the sync paused on; Replace with runs the SQL typed in
    it, Skip takes two clicks; both go through the engine, as the CLI's resolve does."""
    database = unique("decide")
    src.execute(f"CREATE DATABASE `{database}`")
    src.execute(f"CREATE TABLE `{database}`.t (id INT PRIMARY KEY)")
    project = make_project(
        workspace, source, seekdb_tcp.endpoint(), name=database, objects={"include": [f"{database}.*"]}
    )
    request.addfinalizer(project.stop_sync)
    project.migrate_schema()
    project.full(progress=False)
    project.start_sync()
    runner.wait_for(workspace, project.name, {"running"}, timeout=60)
    panel = ControlPanel(project)
    assert panel.decision.widget.layout.display == "none"
    src.execute(f"CREATE TABLE `{database}`.history (id INT PRIMARY KEY) ENGINE=Aria")  # OceanBase has no Aria
    runner.wait_for(workspace, project.name, {"paused"}, timeout=30)
    panel.refresh()
    card = panel.decision
    assert card.widget.layout.display == "" and "ENGINE=Aria" in card.text.value
    said = card.text.value  # what to do, in the panel's words: its buttons, not the CLI's commands
    assert "the Resume button" in said and "Skip on the decision card" in said and "Replace with on" in said
    assert "omsbench sync" not in said and "«" not in said
    assert card.buttons["replace"].disabled  # nothing typed yet
    card.sql.value = f"CREATE TABLE `{database}`.history (id INT PRIMARY KEY)"
    assert not card.buttons["replace"].disabled
    card.buttons["replace"].click()
    panel.wait(30)
    runner.wait_for(workspace, project.name, {"running"}, timeout=30)
    src.execute(f"INSERT INTO `{database}`.history VALUES (1)")
    project.wait_for_sync(timeout=60)

    src.execute(f"ALTER TABLE `{database}`.history PAGE_CHECKSUM=1")  # refused as well
    runner.wait_for(workspace, project.name, {"paused"}, timeout=30)
    panel.refresh()
    card.buttons["skip"].click()  # arms it only
    assert card.buttons["skip"].description == "Confirm skip" and project.sync_status()["state"] == "paused"
    card.buttons["skip"].click()
    panel.wait(30)
    project.wait_for_sync(timeout=60)  # past the skipped statement
    panel.refresh()
    assert card.widget.layout.display == "none" and panel.last_error is None
    with connect(seekdb_tcp.endpoint().dsn()) as dst:
        assert dst.query(f"SELECT id FROM `{database}`.history") == [(1,)]
    assert project.state.ddl(project.name).action.tolist()[-2:] == ["translated", "skipped"]


def test_verify_in_the_panel_shows_the_rows_and_the_fix_and_applies_it(workspace, source, target, src, dst, unique):
    database = unique("pverify")
    project = table_migrated(
        workspace,
        source,
        target,
        src,
        database,
        "id INT PRIMARY KEY, v VARCHAR(10)",
        "VALUES (1, 'a'), (2, 'b'), (3, 'c')",
    )
    dst.execute(f"UPDATE `{database}`.t SET v = 'x' WHERE id = 2")
    dst.execute(f"DELETE FROM `{database}`.t WHERE id = 3")
    panel = ControlPanel(project)
    panel.buttons["verify"].click()
    panel.wait(60)
    card = panel.verified
    assert panel.last_error is None and card.widget.layout.display == ""
    assert "2 difference(s)" in card.text.value and "id=2" in card.text.value and "id=3" in card.text.value
    assert "INSERT INTO" in card.text.value and "verify.html" in card.text.value  # the fix, and the report
    assert not card.apply.disabled and card.why.value == ""  # no sync runs that the fix could undo
    card.apply.click()  # arms it only
    assert card.apply.description == "Confirm apply fix"
    assert dst.scalar(f"SELECT v FROM `{database}`.t WHERE id = 2") == "x"
    card.apply.click()
    panel.wait(60)
    assert panel.last_error is None and "Verify: equal" in card.text.value and card.apply.layout.display == "none"
    assert dst.query(f"SELECT * FROM `{database}`.t ORDER BY id") == src.query(
        f"SELECT * FROM `{database}`.t ORDER BY id"
    )
    panel.stop()


def test_a_panel_shown_again_stops_the_refresh_timer_of_the_one_it_replaces(workspace, source, seekdb_tcp):
    project = make_project(workspace, source, seekdb_tcp.endpoint(), objects={"include": ["nothing.*"]})
    first = ControlPanel(project, interval=0.2)
    first.start()
    second = ControlPanel(project, interval=0.2)  # the cell run again
    second.start()
    first._timer.join(5)
    assert not first._timer.is_alive() and second._timer.is_alive()
    second.stop()


def test_a_failing_action_shows_the_error_and_what_to_do(workspace, source, seekdb_tcp, unique):
    project = make_project(workspace, source, seekdb_tcp.endpoint(), objects={"include": [f"{unique('none')}.*"]})
    panel = ControlPanel(project)
    panel.buttons["start"].click()
    panel.wait(60)
    assert "matches no table or view on the source" in panel.last_error
    assert "what to do" in panel.errors.value
    assert (project.state.step(project.name, "schema") or {}).get("state") is None
    assert project.sync_status()["state"] == "never started"  # nothing ran past the failed step
    assert not panel.buttons["start"].disabled  # the user can fix the spec and press Start again


def test_charts_of_a_long_sync_are_thinned_and_keep_their_spikes(tmp_path):
    """A sync samples every second: after half an hour the lag chart passed altair's 5,000 rows and failed."""
    state = StateStore(tmp_path / "state.db")
    for n in range(2500):
        stages = {f"{stage}_p{p}_ms": 1.0 for stage in ("lag", "read", "apply") for p in (50, 99)}
        state.add_metrics("p", "sync", {**stages, "lag_p99_ms": 5000.0 if n == 1234 else 2.0, "rows_per_s": n})
    for chart in charts.for_project(state, "p").values():
        assert charts.to_svg(chart).startswith("<svg")
    frame = charts.thinned(charts.lag_frame(state.metrics("p")), "stage", {"p50": "mean", "p99": "max"})
    assert frame.groupby("stage")["ts"].nunique().max() <= charts.MAX_POINTS
    assert frame[frame["stage"] == "lag"]["p99"].max() == 5000.0  # the spike survives the thinning
    # the panel reads a mark to know whether to draw again, and then only the recent samples
    mark, since = state.metrics_mark("p"), datetime.now(timezone.utc)
    assert state.metrics_mark("p") == mark
    state.add_metrics("p", "sync", {"rows_per_s": 7.0})
    assert state.metrics_mark("p") > mark
    assert state.metrics("p", since)["value"].tolist() == [7.0]


def test_charts_read_24_hour_utc_with_the_date_and_break_where_the_sync_was_away():
    """19:48 UTC was drawn as 07:48 with no date or zone, and a stopped sync as a straight line across:
    now its lines break there, under a grey band that says it was not running."""
    start = pd.Timestamp("2026-12-02 19:47:00", tz="UTC")
    times = [start + pd.Timedelta(seconds=s) for s in (*range(10), *range(300, 310))]  # away for ~5 minutes
    stages = [f"{stage}_p{p}_ms" for stage in ("lag", "read", "apply") for p in (50, 99)]
    metrics = pd.DataFrame(
        [(t, "sync", name, 3.0) for t in times for name in (*stages, "rows_per_s", "transactions_per_s")],
        columns=["ts", "stage", "name", "value"],
    )
    gapped = charts.with_gaps(charts.lag_frame(metrics), "stage")
    assert gapped.groupby("stage")["p50"].apply(lambda v: v.isna().sum()).tolist() == [1, 1, 1]  # one break each
    for chart in (charts.lag(metrics), charts.rates(metrics)):
        svg = charts.to_svg(chart)
        assert "time (UTC, 2026-12-02)" in svg and ">19:47:00<" in svg
        assert " AM<" not in svg and " PM<" not in svg and ">07:47" not in svg
        assert svg.count(">not running<") in (1, 2)  # the five minutes away shaded and named, in each panel
    steady = metrics[pd.to_datetime(metrics["ts"]) < start + pd.Timedelta(seconds=60)]
    assert ">not running<" not in charts.to_svg(charts.lag(steady))
    assert "transactions/s" in charts.to_svg(charts.rates(metrics))  # the legend's words, not raw metric names
