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
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            time.sleep(0.3)
    else:
        server.kill()
        pytest.fail(f"JupyterLab did not start: {(tmp_path / 'jupyterlab.log').read_text()[-2000:]}")
    yield url, token
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(30)


def test_panel_in_jupyterlab_runs_the_migration_and_draws_the_lag(
    jupyterlab, workspace, source, seekdb_tcp, src, unique, tmp_path, request
):
    url, token = jupyterlab
    database = unique("browser")
    sampledb.create(src, rows=3000, database=database)
    project = make_project(
        workspace, source, seekdb_tcp.endpoint(), name=database, objects={"include": [f"{database}.*"]}
    )
    request.addfinalizer(project.stop_sync)
    runbooks.panel_notebook(project.name, workspace, tmp_path / "panel.ipynb")
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 2000})
        try:
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
                Workload(writer, database, seed=31).run(200)
            page.locator(".widget-html svg").first.wait_for(timeout=120_000)
            news = page.get_by_role("button", name="No", exact=True)  # JupyterLab asks about its news once
            if news.is_visible():
                news.click()
            assert page.locator("button.jupyter-button", has_text="Pause").is_enabled()
            page.screenshot(path=str(ARTIFACTS / "panel.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "panel-failed.png"), full_page=True)
            shutil.copy(tmp_path / "jupyterlab.log", ARTIFACTS / "jupyterlab.log")
            raise
        finally:
            browser.close()
    assert project.sync_status()["state"] == "running"
    assert project.state.step(project.name, "full")["state"] == "done"
