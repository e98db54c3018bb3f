"""One real browser: JupyterLab on 127.0.0.1, Chromium driven by Playwright, the panel clicked.

The screenshot lands in test-artifacts/ so a person can look at what a DBA would see.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import make_project

from omsbench.endpoints.connection import connect
from omsbench.engine import sampledb
from omsbench.engine.servers import free_port
from omsbench.engine.workload import Workload
from omsbench.workbench import runbooks

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


def test_panel_in_jupyterlab_runs_the_migration_and_draws_the_lag(jupyterlab, panel_project, source, tmp_path):
    url, token = jupyterlab
    project = panel_project
    with chromium_page("panel", height=2000) as page:
        page.goto(f"{url}/lab/tree/panel.ipynb?token={token}")
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
        page.locator(".jp-Cell").first.click()  # the notebook has focus: the Run menu acts on it
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_text("Run All Cells", exact=True).click()
        start = page.locator("button.jupyter-button", has_text="Start")
        start.wait_for(timeout=90_000)
        start.click()
        page.wait_for_function(ALL_TABLES_COPIED % 7, timeout=300_000)
        with connect(source.dsn()) as writer:  # some traffic, so the lag chart has samples to draw
            Workload(writer, project.name, seed=31).run(200)
        page.get_by_text("lag p99 ms").first.wait_for(timeout=120_000)  # heartbeats measured the lag
        page.wait_for_timeout(2500)  # the next refresh draws the chart from those samples
        page.locator(".widget-html svg").first.wait_for(timeout=120_000)
        news = page.get_by_role("button", name="No", exact=True)  # JupyterLab asks about its news once
        if news.is_visible():
            news.click()
        assert page.locator("button.jupyter-button", has_text="Pause").is_enabled()
    assert project.sync_status()["state"] == "running"
    assert project.state.step(project.name, "full")["state"] == "done"


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
