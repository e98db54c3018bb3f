"""One real browser: JupyterLab on 127.0.0.1, Chromium driven by Playwright, the panel clicked.

The screenshot lands in test-artifacts/ so a person can look at what a DBA would see.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from conftest import make_project

from omsbench.endpoints.connection import connect
from omsbench.engine.verify import EXTRA, MISSING
from omsbench.engine.workspace import Workspace
from omsbench.lab import sampledb
from omsbench.lab.servers import free_port
from omsbench.lab.workload import Workload
from omsbench.workbench import charts, report, runbooks

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
ALL_TABLES_COPIED = """() => {
  const labels = [...document.querySelectorAll('.omsbench-progress')];
  return labels.length === %d && labels.every(label => label.textContent.startsWith('100%%'));
}"""

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


@pytest.fixture
def jupyterlab(tmp_path):
    """JupyterLab serving tmp_path on a free loopback port with a token; yields its base URL and token."""
    port, token = free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1"]
    command += [f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}"]
    with open(tmp_path / "jupyterlab.log", "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    _wait_for_http(f"{url}/api/status?token={token}", server, tmp_path / "jupyterlab.log")
    yield url, token
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(tmp_path / "jupyterlab.log", ARTIFACTS / "jupyterlab.log")  # what the kernel said, for a failure
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(30)


def _wait_for_http(url: str, server: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    server.kill()
    pytest.fail(f"{url} did not answer: {log.read_text()[-2000:]}")


@contextmanager
def chromium_page(name: str, height: int):
    """A headless Chromium page; on leaving it saves test-artifacts/NAME.png, or NAME-failed.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": height})
        try:
            yield page
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / f"{name}-failed.png"), full_page=True)
            raise
        finally:
            browser.close()


@pytest.fixture
def panel_project(workspace, source, seekdb_tcp, src, unique, tmp_path, request):
    """A shop database, its project on the seekdb server, and tmp_path/panel.ipynb showing its panel."""
    database = unique("browser")
    sampledb.create(src, rows=3000, database=database)
    project = make_project(
        workspace, source, seekdb_tcp.endpoint(), name=database, objects={"include": [f"{database}.*"]}
    )
    request.addfinalizer(project.stop_sync)
    runbooks.panel_notebook(project.name, workspace, tmp_path / "panel.ipynb")
    return project


_OVERFLOW = """() => {
  const panel = document.querySelector('.omsbench-panel').getBoundingClientRect();
  return [...document.querySelectorAll('.omsbench-panel *')]
    .filter(e => { const r = e.getBoundingClientRect(); return r.width && r.right > panel.right + 1; })
    .map(e => `${e.tagName}.${e.getAttribute('class')} ${(e.textContent || '').slice(0, 40)} right ${
      e.getBoundingClientRect().right} > ${panel.right}`);
}"""


def _button(page, label: str):
    """The panel's button whose whole label is ``label`` ("Start", not "Next: Start")."""
    return page.locator("button.jupyter-button").filter(has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))


def _headline(page) -> str:
    return page.locator(".omsbench-headline").inner_text()


def test_panel_in_jupyterlab_from_start_to_a_verified_fix(jupyterlab, panel_project, source, seekdb_tcp, tmp_path):
    """The issue's scenario in a real browser: start, a refused DDL skipped from its card, a
    switchover refused by the checklist, planted differences seen, fixed and verified equal."""
    url, token = jupyterlab
    project, database = panel_project, panel_project.name
    with chromium_page("panel", height=2400) as page:
        page.goto(f"{url}/lab/tree/panel.ipynb?token={token}")
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
        page.locator(".jp-Cell").first.click()  # the notebook has focus: the Run menu acts on it
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_text("Run All Cells", exact=True).click()
        _button(page, "Start").wait_for(timeout=90_000)
        assert "Not started" in _headline(page)
        _button(page, "Start").click()
        page.wait_for_function(ALL_TABLES_COPIED % 7, timeout=300_000)
        with connect(source.dsn()) as writer:  # some traffic, so the lag chart has samples to draw
            Workload(writer, database, seed=31).run(200)
        page.get_by_text("lag p99 ms").first.wait_for(timeout=120_000)  # heartbeats measured the lag
        page.locator(".widget-html svg").first.wait_for(timeout=120_000)
        news = page.get_by_role("button", name="No", exact=True)  # JupyterLab asks about its news once
        if news.is_visible():
            news.click()
        page.locator(".omsbench-headline", has_text="Replicating").wait_for(timeout=60_000)
        assert page.locator(".widget-html svg text", has_text="UTC").count() >= 1  # 24-hour UTC axes
        assert page.evaluate(_OVERFLOW) == []

        with connect(source.dsn()) as mysql:  # OceanBase has no Aria: the sync pauses on it
            mysql.execute(f"CREATE TABLE `{database}`.history (id INT PRIMARY KEY) ENGINE=Aria")
        page.get_by_text("waits for a decision").wait_for(timeout=60_000)
        assert "Sync paused" in _headline(page)
        page.locator("textarea").fill(f"CREATE TABLE `{database}`.history (id INT PRIMARY KEY)")
        _button(page, "Replace with").click()
        page.get_by_text("waits for a decision").wait_for(state="hidden", timeout=60_000)
        with connect(source.dsn()) as mysql:  # refused as well: skipped, it changes no row
            mysql.execute(f"ALTER TABLE `{database}`.history PAGE_CHECKSUM=1")
        page.get_by_text("waits for a decision").wait_for(timeout=60_000)
        _button(page, "Skip").click()
        _button(page, "Confirm skip").click()
        page.get_by_text("waits for a decision").wait_for(state="hidden", timeout=60_000)
        page.locator(".omsbench-headline", has_text="Replicating").wait_for(timeout=60_000)

        _button(page, "Switchover").click()  # no verify yet: the checklist says so and it is refused
        page.get_by_text("✘ last verify equal and not stale").wait_for(timeout=30_000)
        page.get_by_text("Cut-over readiness").wait_for(timeout=30_000)
        _button(page, "Confirm switchover").click()
        refusal = page.get_by_text("refused: not yet")  # the lag may be over a second too, on a busy machine
        refusal.wait_for(timeout=60_000)
        assert "last verify equal and not stale" in refusal.inner_text()
        assert project.state.detail(project.name, "switchover") == {}

        project.wait_for_sync(timeout=120)
        with connect(seekdb_tcp.endpoint().dsn()) as ob:  # differences planted on the target only
            ob.execute(f"UPDATE `{database}`.customers SET name = 'planted' ORDER BY id LIMIT 2")
        _button(page, "Verify").click()
        page.get_by_text("Verify: 2 difference(s)").wait_for(timeout=120_000)
        page.get_by_text("UPDATE").first.wait_for(timeout=10_000)  # the fix's preview
        page.get_by_text("pause the sync first").wait_for(timeout=10_000)  # the engine refuses a fix meanwhile
        assert _button(page, "Apply fix").is_disabled()
        _button(page, "Pause").click()
        page.get_by_text("pause the sync first").wait_for(state="hidden", timeout=60_000)
        _button(page, "Apply fix").click()
        _button(page, "Confirm apply fix").click()
        page.get_by_text("Verify: equal").wait_for(timeout=120_000)
        _button(page, "Resume").click()
        page.get_by_text("Needs attention", exact=True).wait_for(state="hidden", timeout=60_000)  # the pause is over
        page.locator(".omsbench-headline", has_text="equal").wait_for(timeout=60_000)
        _button(page, "Next: Switchover").wait_for(timeout=30_000)
        assert page.evaluate(_OVERFLOW) == []
    assert project.sync_status()["state"] == "running"
    assert project.state.ddl(project.name).action.tolist()[-2:] == ["translated", "skipped"]


@pytest.fixture
def voila(tmp_path):
    """Voila serving tmp_path on a free loopback port; yields the URL that renders tmp_path/panel.ipynb."""
    port = free_port()
    command = [sys.executable, "-m", "voila", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1"]
    command.append(str(tmp_path))
    with open(tmp_path / "voila.log", "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    _wait_for_http(url, server, tmp_path / "voila.log")
    yield f"{url}voila/render/panel.ipynb"
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(30)


def test_panel_in_voila_runs_a_precheck(voila, panel_project):
    with chromium_page("panel-voila", height=1200) as page:
        page.goto(voila, timeout=120_000)
        page.locator("button.jupyter-button", has_text="Precheck").click(timeout=120_000)
        page.locator(".omsbench-steps", has_text="done").wait_for(timeout=120_000)  # the timer refreshed it
    assert panel_project.state.step(panel_project.name, "precheck")["state"] == "done"


_LAYOUT = """() => {
  const page = document.documentElement;
  const clipped = [];
  for (const svg of document.querySelectorAll('.chart svg')) {
    const frame = svg.getBoundingClientRect();
    for (const text of svg.querySelectorAll('text')) {
      const box = text.getBoundingClientRect();
      if (box.width && (box.left < frame.left - 1 || box.right > frame.right + 1 || box.top < frame.top - 1
          || box.bottom > frame.bottom + 1)) clipped.push(text.textContent);
    }
  }
  return {overflow: page.scrollWidth - page.clientWidth, clipped};
}"""


def _sync_samples() -> pd.DataFrame:
    start = pd.Timestamp("2026-12-02 19:47:00", tz="UTC")
    rows = []
    for second in (*range(120), *range(400, 520)):  # stopped for about five minutes between
        at = start + pd.Timedelta(seconds=second)
        rows += [(at, "sync", f"{s}_p{p}_ms", 4.0 * (1 + p / 50)) for s in ("lag", "read", "apply") for p in (50, 99)]
        rows += [(at, "sync", "rows_per_s", 4100.0), (at, "sync", "transactions_per_s", 910.0)]
    return pd.DataFrame(rows, columns=["ts", "stage", "name", "value"])


@pytest.mark.parametrize("kind", ["verify", "sync", "demo", "runbook"])
def test_a_report_fits_the_page_and_no_chart_text_is_clipped(tmp_path, kind):
    """Reports are read in a browser: no sideways scrolling, legends and axis labels whole."""
    long_value = "x" * 400  # a long value used to push the table past the page's edge
    if kind == "runbook":  # a runbook's export: the history runbook draws a chart of earlier runs
        workspace = Workspace.at(tmp_path / "ws")
        for lag in (12.0, 48.0):
            run = workspace.state.start_run("monitor", str(tmp_path), {})
            workspace.state.end_run(run, "done", None, {"lag_p99_ms": lag, "differences": 0})
        path = runbooks.run(workspace, "history").html
    elif kind == "demo":
        tables = pd.DataFrame({"table": [f"shop.{long_value[:60]}"], "source_rows": [94000], "equal": [True]})
        path = report.write(tmp_path / "demo.html", "omsbench demo", {"rows": 94000}, {"Tables": tables}, True)
    if kind in ("runbook", "demo"):
        _fits(kind, path)
        return
    if kind == "verify":
        summary = pd.DataFrame(
            {"table": ["shop.customers_with_a_rather_long_name", "shop.orders"], MISSING: [3, 0], EXTRA: [0, 1],
             "different rows": [2, 0]}
        )  # fmt: skip
        sections = {
            "Tables": summary,
            "Differences": pd.DataFrame({"table": ["shop.orders"], "key": ["id=1"], "source_value": [long_value]}),
            "Fixes": pd.DataFrame(columns=["statement"]),
        }
        drawn = {"Differences per table": charts.differences(summary)}
    else:
        sections = {"DDL": pd.DataFrame(columns=["at", "statement"])}
        drawn = {"Lag": charts.lag(_sync_samples()), "Rates": charts.rates(_sync_samples())}
    path = report.write(tmp_path / f"{kind}.html", f"omsbench {kind}", {"project": "shop"}, sections, False, drawn)
    _fits(kind, path, "No fixes." if kind == "verify" else "No DDL.")


def _fits(kind: str, path: Path, empty: str | None = None) -> None:
    with chromium_page(f"report-{kind}", 900) as page:
        page.goto(path.as_uri())
        layout = page.evaluate(_LAYOUT)
        assert layout["overflow"] <= 0, f"the page scrolls sideways by {layout['overflow']} px"
        assert not layout["clipped"], f"clipped chart text: {layout['clipped']}"
        assert empty is None or page.get_by_text(empty).is_visible()
