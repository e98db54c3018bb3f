"""A rehearsal crashes the pipeline on purpose, as production would, before the real migration.

The full load and the sync are killed with SIGKILL (no clean-up runs, as in a power cut) and
started again the way a user would. The rehearsal runbook then proves with counts and
checksums that nothing was lost or applied twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from omsbench.engine.project import Project
from omsbench.engine.runner import SyncProcess
from omsbench.engine.steps import Step
from omsbench.exceptions import StateError


@dataclass(frozen=True)
class Fault:
    phase: str
    what: str
    progress: str
    status_after: str


def require_shared_target(project: Project) -> None:
    """The killed processes and this one must all reach the target: an embedded seekdb opens in one only."""
    if project.spec.target.url.startswith("seekdb://"):
        raise StateError(
            f"project {project.name} uses an embedded seekdb, which only one process can open",
            fix="run seekdb as a server (`omsbench servers start --target`) and point the project's target at it",
        )


def _command(project: Project, *args: str) -> list[str]:
    return [sys.executable, "-m", "omsbench", "--workspace", str(project.workspace.root), *args]


def _chunks_done(project: Project) -> tuple[int, int]:
    progress = project.state.chunk_progress(project.name)
    return int(progress["chunks_done"].fillna(0).sum()), int(progress["chunks"].sum())


def kill_full_load(project: Project, after_chunks: int, timeout: float = 600) -> Fault:
    """Start ``omsbench full`` in its own process group, SIGKILL the group once chunks are copied.

    The group holds the load's worker processes too, so all die at once, as in a crash.
    """
    require_shared_target(project)
    load = subprocess.Popen(
        _command(project, "full", project.name, "--no-precheck"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while load.poll() is None and time.monotonic() < deadline and _chunks_done(project)[0] < after_chunks:
        time.sleep(0.1)
    finished = load.poll() is not None
    if not finished:
        os.killpg(load.pid, signal.SIGKILL)
    load.wait()
    done, total = _chunks_done(project)
    state = (project.state.step(project.name, Step.FULL) or {}).get("state", "pending")
    what = "the load finished before the kill" if finished else "kill -9 of the full load and its workers"
    return Fault("full", what, f"{done} of {total} chunks copied", state)


def kill_sync(project: Project) -> Fault:
    """SIGKILL the background sync process (and its binlog reader), then start it again."""
    process = SyncProcess(project.workspace, project.name)
    pid = process.pid()
    if pid is None:
        raise StateError(f"the sync of {project.name} is not running", fix="start it first (`omsbench sync start`)")
    if process.runs_here():
        raise StateError(
            f"the sync of {project.name} runs as a thread of this process: a kill -9 would end this process too",
            fix="stop it and run it as a background process (`omsbench sync start`) for the rehearsal",
        )
    position = project.sync_status().get("position", "")
    os.killpg(pid, signal.SIGKILL)
    while process.pid() is not None:  # the pid file stays behind; pid() turns None once the process is gone
        time.sleep(0.05)
    status = project.sync_status()["state"]
    project.start_sync()
    return Fault("sync", "kill -9 of the sync process and its reader", f"checkpoint near {position}", status)
