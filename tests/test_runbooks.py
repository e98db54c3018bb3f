"""Every runbook runs unattended under papermill against real servers; their outcomes are checked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml
from helpers import assert_same_tables, make_writable

from omsbench.endpoints.connection import connect
from omsbench.engine.project import Project
from omsbench.engine.workspace import Workspace
from omsbench.lab import sampledb
from omsbench.lab.workload import Workload
from omsbench.workbench import runbooks

TABLES = ["audit_log", "customers", "legacy_notes", "order_items", "orders", "products", "type_zoo"]
_REMOTE = re.compile(r"<(script|link)[^>]*(src|href)=\"?(https?:)?//", re.IGNORECASE)


def _spec(tmp_path, name, source, target, database, **options) -> str:
    path = tmp_path / f"{name}.yaml"
    data = {
        "name": name,
        "source": source.model_dump(exclude_none=True),
        "target": target.model_dump(exclude_none=True),
        "objects": {"include": [f"{database}.*"]},
        "options": {"parallelism": 2, **options},
    }
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _same(source, target, database, tables=TABLES):
    with connect(source.dsn()) as src, connect(target.dsn()) as dst:
        assert_same_tables(src, dst, [(database, t, database, t) for t in tables])


def _offline(html_path) -> str:
    text = html_path.read_text()
    assert not _REMOTE.search(text), _REMOTE.search(text).group(0)
    return text


def test_migrate_monitor_verify_runbooks_leave_records(workspace, source, seekdb_tcp, src, unique, request):
    database = unique("runbook")
    sampledb.create(src, rows=1500, database=database)
    target = seekdb_tcp.endpoint()  # the kernel is another process: it reaches seekdb over TCP
    spec = _spec(workspace.root, database, source, target, database)
    migrated = runbooks.run(workspace, "migrate", {"spec": spec, "start_sync": True})
    request.addfinalizer(
        lambda: subprocess.run([sys.executable, "-m", "omsbench", "-w", str(workspace.root), "sync", "stop", database])
    )
    assert migrated.outcome["equal"] is True and migrated.outcome["sync_pid"]
    assert migrated.outcome["rows"] == sum(int(src.scalar(f"SELECT COUNT(*) FROM `{database}`.`{t}`")) for t in TABLES)
    with connect(source.dsn()) as writer:
        Workload(writer, database, seed=21).run(200)

    verified = runbooks.run(workspace, "verify", {"spec": spec, "online": 5})
    assert verified.outcome["equal"] is True
    monitored = runbooks.run(workspace, "monitor", {"spec": spec})
    assert monitored.outcome["sync_state"] == "running" and monitored.outcome["samples"] > 0
    _same(source, target, database)

    for run in (migrated, verified, monitored):
        text = _offline(run.html)
        assert "<svg" in text or "data:image/svg+xml" in text  # charts drawn inline, no script needed
        assert run.notebook.parent.parent == workspace.root / "runs"
    password = Path(source.password_file).read_text().strip()
    assert all(password not in run.notebook.read_text() for run in (migrated, verified, monitored))
    history = runbooks.history(workspace)
    assert history["notebook"].tolist() == ["migrate", "verify", "monitor"]
    assert history["state"].tolist() == ["done"] * 3 and history["equal"].tolist()[:2] == [True, True]
    assert history["parameters"][0] == {"spec": spec, "start_sync": True, "workspace": str(workspace.root)}
    compared = _offline(runbooks.run(workspace, "history").html)
    assert "data:image/svg+xml" in compared and all(f">{n}<" in compared for n in ("migrate", "verify", "monitor"))


def test_rehearsal_kills_the_load_and_the_sync_and_proves_nothing_was_lost(workspace, source, seekdb_tcp, src, unique):
    database = unique("rehearse")
    sampledb.create(src, rows=3000, database=database)
    spec = _spec(
        workspace.root, database, source, seekdb_tcp.endpoint(), database, chunk_size=200, rows_per_second=4000
    )
    done = runbooks.run(
        workspace, "rehearsal", {"spec": spec, "workload": database, "sync_kills": 2, "transactions": 300}
    )
    faults = done.outcome["faults_detail"]
    assert done.outcome["equal"] is True and [f["phase"] for f in faults] == ["full", "sync", "sync"]
    assert faults[0]["what"].startswith("kill -9") and faults[0]["status_after"] != "done"
    assert all(f["status_after"] == "died" for f in faults[1:])  # a killed sync never reads as running
    _same(source, seekdb_tcp.endpoint(), database)


def test_demo_runbook_does_the_whole_path_on_the_embedded_defaults(tmp_path):
    done = runbooks.run(Workspace.at(tmp_path / "demo"), "demo", {"rows": 2000, "transactions": 150})
    assert done.outcome["equal"] is True and done.outcome["differences"] == 0 and done.outcome["rows"] > 0
    text = _offline(done.html)
    assert "VERIFIED: source and target are equal" in text
    subprocess.run([sys.executable, "-m", "omsbench", "-w", str(tmp_path / "demo"), "servers", "stop"], check=True)


def test_run_refuses_secrets_unknown_parameters_and_notebooks(workspace):
    with pytest.raises(runbooks.RunbookError, match="look like secrets"):
        runbooks.run(workspace, "precheck", {"spec": "x.yaml", "source_password": "hunter2"})
    with pytest.raises(runbooks.RunbookError, match="has no parameter"):
        runbooks.run(workspace, "precheck", {"spec": "x.yaml", "chunk": 3})
    with pytest.raises(runbooks.RunbookError, match="no notebook 'nope'"):
        runbooks.run(workspace, "nope", {})
    assert not (workspace.root / "runs").exists() and workspace.state.runs().empty


def test_cli_run_records_a_failed_run_with_its_html(workspace, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "omsbench", "-w", str(workspace.root), "run", "precheck", "-p", "spec", "missing.yaml"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "runbook precheck failed" in result.stderr
    runs = workspace.state.runs()
    assert runs["state"].tolist() == ["failed"] and "missing.yaml" in runs["error"][0]
    page = _offline(next((workspace.root / "runs").glob("*-precheck/precheck.html")))
    summary = page.index('<section class="omsbench-summary failed">')  # the result first, then the cells
    assert summary < page.index('class="jp-Cell') and "precheck: failed" in page[summary:]
    assert "missing.yaml" in page[summary : page.index("</section>")]
    assert "An Exception was encountered" not in page  # papermill's banner, which named only a cell number


def test_cli_run_exits_1_when_the_runbook_reports_a_failed_check(workspace, tmp_path, source):
    spec = tmp_path / "creds.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "creds",
                "source": {"url": source.url, "password_env": "OMS_TEST_PW"},
                "target": {"url": f"seekdb://{tmp_path / 'sdb'}"},
            }
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "omsbench", "-w", str(workspace.root), "run", "precheck", "-p", "spec", str(spec)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMS_TEST_PW": "wrong-password-123"},
    )
    assert result.returncode == 1 and "passed: false" in result.stderr, result.stdout + result.stderr
    assert workspace.state.runs()["state"].tolist() == ["checks failed"]
    page = _offline(next((workspace.root / "runs").glob("*-precheck/precheck.html")))
    summary = page[page.index("omsbench-summary") : page.index("</section>")]
    assert "precheck: checks failed" in summary and "<td>passed</td><td>no</td>" in summary
    assert not re.search(r'(&quot;|&#34;|")passed\1: false', page)  # not again as the raw JSON the notebook keeps
    assert "Not started" in summary  # the project's headline


def test_init_notebook_opens_the_panel_of_the_project(workspace, source, seekdb_tcp, tmp_path):
    path = tmp_path / "panel.ipynb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "omsbench",
            "-w",
            str(workspace.root),
            "init",
            "shopmove",
            "--source",
            source.url,
            "--source-password-env",
            "X",
            "--target",
            seekdb_tcp.endpoint().url,
            "--notebook",
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    executed = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(path), str(executed), progress_bar=False)
    outputs = [o for cell in nbformat.read(executed, as_version=4).cells for o in cell.get("outputs", [])]
    views = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == 1  # the panel, shown by the notebook's last line
    assert "shopmove" in path.read_text()


def test_switchover_runbook_there_and_back(workspace, source, seekdb_tcp, src, unique, request):
    database = unique("switchbook")
    sampledb.create(src, rows=1500, database=database)
    spec = _spec(workspace.root, database, source, seekdb_tcp.endpoint(), database)
    project = Project.load(spec, workspace)
    project.migrate_schema()
    project.full(progress=False)
    project.start_sync()
    for stop in (lambda: make_writable(source), project.stop_sync, project.stop_reverse):
        request.addfinalizer(stop)  # run in reverse: a reverse sync still running would set read-only again
    with pytest.raises(runbooks.RunbookError, match=r"refused: not yet.*last verify equal"):  # the checklist refuses it
        runbooks.run(workspace, "switchover", {"spec": spec, "without": [f"{database}.type_zoo"]})
    assert not project.state.detail(project.name, "switchover")
    project.verify()  # the verify is fresh now; the lag may still pass a second on a loaded machine: forced
    there = runbooks.run(
        workspace,
        "switchover",
        {"spec": spec, "without": [f"{database}.type_zoo"], "suspend_source_triggers": True, "force": True},
    )
    assert there.outcome["reverse"] in ("starting", "running") and there.outcome["forward"] == "stopped"
    assert there.outcome["triggers_suspended"] == [f"{database}.orders_note"]
    assert "point the application at OceanBase" in _offline(there.html)
    with connect(seekdb_tcp.endpoint().dsn()) as writer:
        Workload(writer, database, seed=9, spatial=False).run(100)
    project.wait_for_reverse(timeout=120)
    back = runbooks.run(workspace, "switchover", {"spec": spec, "direction": "switch back"})
    assert back.outcome["forward"] in ("starting", "running") and back.outcome["reverse"] == "stopped"
    _same(source, seekdb_tcp.endpoint(), database, [t for t in TABLES if t != "type_zoo"])

    end = runbooks.run(workspace, "release", {"spec": spec})  # the record of what left the databases
    assert end.outcome["forward"] == "stopped" and project.released
    assert end.outcome["rows_deleted"]["source"] > 0 and end.outcome["rows_deleted"]["target"] > 0
    # what is left to do by hand: the servers' omsbench database serves other tests' projects, or none
    assert re.search(r"`omsbench` (holds nothing more|still holds rows of other projects)", _offline(end.html))
