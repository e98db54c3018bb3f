"""Where a sync runs: a background process (CLI) or a thread (notebook), never two at once.

Either way one pid file in the workspace says who runs the project's sync, so a second start is
refused while the first lives, and a killed runner leaves only a stale file that the next start
takes over. Pause, resume and stop travel through the state store, so they work the same for a
process and a thread.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from omsbench.actions import named
from omsbench.engine.process import Daemon, ServerStatus, write_pid
from omsbench.engine.steps import State, Step
from omsbench.engine.sync import StartAt, Sync
from omsbench.engine.workspace import Workspace
from omsbench.exceptions import OmsError, SyncError


class SyncProcess(Daemon):
    """The sync of PROJECT as a detached ``python -m omsbench.engine.runner``, its pid file and log in the workspace."""

    name = "sync"
    step = Step.SYNC
    command = "sync"

    def __init__(self, workspace: Workspace, project: str, start: StartAt | None = None) -> None:
        super().__init__(workspace.folder("run", project))
        self.workspace, self.project, self.start_at = workspace, project, start

    def launch(self) -> int:
        refuse_second(self)
        self.workspace.state.set_step(self.project, self.step, State.STARTING, f"starting the {self.name} process")
        self.start()
        return self.pid() or 0

    def _command(self) -> list[str]:
        start = json.dumps(asdict(self.start_at)) if self.start_at else ""
        return [sys.executable, "-m", __name__, str(self.workspace.root), self.step, self.project, start]

    def _ping(self) -> bool:
        step = self.workspace.state.step(self.project, self.step) or {}
        return step.get("state") in ("running", "retrying", "paused") and self.pid() is not None

    def runs_here(self) -> bool:
        """A thread of this very process runs it (a notebook's, see run_thread): never signal it,
        the signal would end the kernel with it."""
        return self.pid() == os.getpid()

    def stop(self, timeout: float = 60) -> None:
        self.workspace.state.request(self.project, self.step, "stop")
        if self.runs_here():
            _wait_released(self, timeout)  # the thread ends on the request
            return
        super().stop(timeout)

    def status(self) -> ServerStatus:
        return ServerStatus(self.name, self.running(), self.pid(), None, "", str(self.folder))


class ReverseProcess(SyncProcess):
    """The reverse sync: OceanBase's changes back to MySQL after switchover."""

    name = "reverse"
    step = "reverse"
    command = "reverse"


def refuse_second(process: SyncProcess) -> None:
    pid = process.pid()
    if pid is not None:
        raise SyncError(
            f"the {process.step} of project {process.project} already runs (pid {pid})",
            fix=f"see {named(f'{process.command} status', process.project)}, or stop it first with"
            f" {named(f'{process.command} stop', process.project)}",
        )


def claim(process: SyncProcess) -> None:
    """Write our own pid, refusing when another live runner holds the project."""
    pid = process.pid()
    if pid is not None and pid != os.getpid():
        refuse_second(process)
    process.pid_file.parent.mkdir(parents=True, exist_ok=True)
    write_pid(process.pid_file, os.getpid())


def release(process: SyncProcess) -> None:
    if process.runs_here():
        process.pid_file.unlink(missing_ok=True)


def _wait_released(process: SyncProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while process.runs_here():
        if time.monotonic() > deadline:
            raise SyncError(
                f"the {process.step} thread of {process.project} did not stop within {timeout:.0f} s",
                fix=f"see its state ({named('status', process.project)}); it stops at the end of the group it applies",
            )
        time.sleep(0.05)


def run_foreground(sync: Sync, process: SyncProcess) -> None:
    """The body of a background sync (``main``): SIGTERM and SIGINT stop it at a group boundary.

    Its standard error is the process's log file: every state change is written there with its time."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    claim(process)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sync.stop())
    process.workspace.state.request(sync.project, sync.step, "run")
    try:
        sync.run()
    finally:
        release(process)


def run_thread(sync: Sync, process: SyncProcess) -> threading.Thread:
    """Start the sync in a daemon thread of this process (a notebook kernel); ``sync.stop()`` ends it."""
    claim(process)
    process.workspace.state.request(sync.project, sync.step, "run")

    def body() -> None:
        try:
            sync.run()
        except OmsError:
            pass  # run() recorded it as the step's failed state with its fix: where the notebook reads it
        finally:
            release(process)

    thread = threading.Thread(target=body, name=f"omsbench-sync-{sync.project}", daemon=True)
    thread.start()
    return thread


def wait_for(workspace: Workspace, project: str, states: set[str], timeout: float = 60, step: str = Step.SYNC) -> dict:
    """Poll the state store until the sync (or the reverse sync: ``step``) reaches one of ``states``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = workspace.state.step(project, step) or {}
        if found.get("state") in states:
            return found
        time.sleep(0.1)
    raise SyncError(
        f"the {Step(step).said} of {project} did not reach {sorted(states)} within {timeout:.0f} s",
        fix=f"see {named(f'{step} status', project)} and the log in {Path(workspace.root, 'run', project)}",
    )


def main(argv: list[str]) -> None:
    """``python -m omsbench.engine.runner WORKSPACE STEP PROJECT [START]``: what a background sync runs.

    ``SyncProcess`` starts it detached, after the front end has checked the project; ``START`` is
    the JSON of a ``StartAt``. It runs the forward sync (step ``sync``) or the reverse one until stopped.
    """
    from omsbench.endpoints.position import BinlogPosition
    from omsbench.engine.project import Project

    root, step, name, *rest = argv
    workspace = Workspace.at(root)
    project = Project.load(name, workspace)
    if step == "reverse":
        run_foreground(project.reverse(), ReverseProcess(workspace, name))
        return
    given = json.loads(rest[0]) if rest and rest[0] else None
    start = None
    if given:
        position = BinlogPosition(**given["position"]) if given.get("position") else None
        start = StartAt(position=position, timestamp=given.get("timestamp"))
    run_foreground(project.sync(start), SyncProcess(workspace, name))


if __name__ == "__main__":
    main(sys.argv[1:])
