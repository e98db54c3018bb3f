"""Processes omsbench starts and watches: pid files that survive pid reuse, liveness, start and stop.

The background sync is one (``runner``); the private servers of the lab are others. A pid file
names the process with its start time, so a reused pid is never signalled nor taken for ours.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from omsbench.exceptions import ServerError


@dataclass
class ServerStatus:
    name: str
    running: bool
    pid: int | None
    port: int | None
    url: str
    folder: str


class Daemon:
    """A detached process owned by omsbench: its pid file and log in ``folder``."""

    name = "process"

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @property
    def pid_file(self) -> Path:
        return self.folder / f"{self.name}.pid"

    @property
    def log(self) -> Path:
        return self.folder / f"{self.name}.log"

    def pid(self) -> int | None:
        return read_pid(self.pid_file)

    def running(self) -> bool:
        return self.pid() is not None and self._ping()

    def start(self) -> None:
        if not self.running():
            self.folder.mkdir(parents=True, exist_ok=True)
            self._prepare()
            with open(self.log, "ab") as log:
                proc = subprocess.Popen(
                    self._command(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            write_pid(self.pid_file, proc.pid)
            self._wait(proc)
            self._after_start()

    def _wait(self, proc: subprocess.Popen, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with code {proc.returncode} while starting", fix=f"read its log: {self.log}"
                )
            if self._ping():
                return
            time.sleep(0.2)
        raise ServerError(f"{self.name} did not answer within {timeout:.0f} s", fix=f"read its log: {self.log}")

    def stop(self, timeout: float = 60) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive(pid):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        _reap(pid)  # started by this process, it would stay a zombie
        self.pid_file.unlink(missing_ok=True)

    def _prepare(self) -> None:
        """What the first start needs (a data folder, an account)."""

    def _after_start(self) -> None:
        """What follows once the process answers."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ping(self) -> bool:
        raise NotImplementedError


def _reap(pid: int) -> None:
    """Collect our own child so that it does not linger as a zombie that still answers kill(0)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def write_pid(path: Path, pid: int) -> None:
    """The pid with the process's start time: after a reboot, or long after an unclean end, the
    same pid may belong to another program, which must be neither signalled nor taken for ours."""
    path.write_text(f"{pid} {_start_time(pid)}")


def read_pid(path: Path) -> int | None:
    """The pid a pid file names, if that very process still runs."""
    try:
        pid, started = path.read_text().split()
        pid = int(pid)
    except (OSError, ValueError):
        return None
    return pid if alive(pid) and started == _start_time(pid) else None


def _start_time(pid: int) -> str:
    """Clock ticks from boot to the process's start (field 22 of /proc/PID/stat)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def alive(pid: int) -> bool:
    """Running, not merely a zombie: the exited child of another process (a notebook kernel that
    started the sync, say) answers kill(0) until that process collects it, which may be never.

    It never collects the process itself: the state store asks about any pid, and collecting a
    child that a ``Popen`` of this process waits for would rob it of its exit code.
    """
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            return True
        # a leader thread that exited first shows "Z" while the others still shut the server down
        # (seen with seekdb under load): it lives on, and holds its files, until the last one ends
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return not Path("/proc").is_dir()  # no /proc: trust kill(0)
