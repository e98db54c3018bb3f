"""``omsbench bench chaos``: a whole migration put through faults, ending with proof that nothing was lost.

A private MariaDB and a seekdb server of their own (restarted by the run, so never the
workspace's other servers) hold the sample shop database: every type in ``type_zoo``, foreign
keys, and ``audit_log`` without a key, whose duplicate rows are compared as a multiset, so a
change applied twice shows as an extra row. A column and an index are added to a table while
the sync runs. The application's workload writes to MySQL during the full load and the sync,
to OceanBase after the switchover, and to MySQL again after the switch-back; omsbench reaches
both databases through a TCP proxy that can cut its connections.

At N moments spread over the phases (full load, incremental sync, switchover, reverse sync,
switch-back) one fault is injected: kill -9 of the omsbench process doing the phase, a restart
of either server, a cut of every connection to either database, or a target statement that
times out on a row lock. Then omsbench is treated as a user would: the status is read (that is
what "omsbench said"), the same command is run again where a process died or a one-shot command
failed, a paused sync is resumed. At the end both sides are compared by the verification engine,
then the project is released, after which neither side may hold a trigger or a row of it.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import pymysql

from omsbench.changes import PIECE_ROWS
from omsbench.endpoints.connection import LOCK_WAIT_S, Endpoint, connect
from omsbench.engine import release, runner
from omsbench.engine import spec as specs
from omsbench.engine.project import Project
from omsbench.engine.steps import State, Step
from omsbench.engine.workspace import Workspace
from omsbench.exceptions import OmsError
from omsbench.lab import sampledb
from omsbench.lab.bench.proxy import Proxy
from omsbench.lab.servers import MariaDB, SeekdbServer
from omsbench.lab.workload import RETRYABLE, Workload

DATABASE = "chaos"
PROJECT = "chaos"
PHASES = ("full", "sync", "switchover", "reverse", "switchback")
_COMMON = ("kill", "restart_source", "restart_target", "cut_source", "cut_target")
KINDS = {
    "full": _COMMON,
    "sync": (*_COMMON, "timeout"),
    "switchover": _COMMON,
    "reverse": (*_COMMON, "timeout"),
    "switchback": _COMMON,
}
"""A statement timeout needs a sync applying rows: the applier's checkpoint row is what gets locked."""
_ATTEMPTS = 6
SCHEMA_CHANGES = (
    f"ALTER TABLE `{DATABASE}`.customers ADD COLUMN chaos_tier TINYINT NULL",
    f"UPDATE `{DATABASE}`.customers SET chaos_tier = id % 3 WHERE id % 10 = 0",
    f"ALTER TABLE `{DATABASE}`.customers ADD INDEX idx_chaos_tier (chaos_tier)",
)
_HEALTHY_WITHIN = 120.0
_DDL_LOCK_WAIT_S = 2
_BUDGET_S = (300.0, 150.0)
"""The run's watchdog: this many seconds, plus this many per point. A run that gets no further
within it is aborted naming what it waited for, never left running."""


class Overrun(Exception):
    """The chaos run passed its time budget: it is aborted, saying where."""


@dataclass
class Fault:
    point: int
    phase: str
    kind: str = ""
    after_s: float = 0.0
    said: str = ""
    recovery: list[str] = field(default_factory=list)
    survived: bool = False


def plan(points: int, seed: int) -> list[Fault]:
    """Points spread evenly over the phases in their order; kind and moment drawn from the seed."""
    rng = random.Random(seed)
    faults = []
    for i in range(points):
        phase = PHASES[i * len(PHASES) // points]
        faults.append(Fault(i + 1, phase, rng.choice(KINDS[phase]), round(rng.uniform(0.3, 3.0), 2)))
    return faults


BATCH_EVERY_S = 10
BATCH_CHANGES = 3 * PIECE_ROWS // 2
"""Now and then the application runs a batch job: one transaction large enough that the syncs
take it in pieces, so that faults also meet a transaction half applied."""


class Application(threading.Thread):
    """The user's application: the shop workload against one database, reconnecting after faults."""

    def __init__(self, endpoint: Endpoint, seed: int, spatial: bool) -> None:
        super().__init__(daemon=True)
        self.endpoint, self.seed, self.spatial = endpoint, seed, spatial
        self.stopping = threading.Event()
        self.interruptions = 0
        self.batches = 0
        """Batch jobs committed."""

    def run(self) -> None:
        batch_due = time.monotonic() + BATCH_EVERY_S / 5  # the first soon, so that short runs have one too
        while not self.stopping.is_set():
            try:
                with connect(self.endpoint.dsn(), autocommit=False) as session:
                    workload = Workload(session, DATABASE, seed=self.seed + self.interruptions, spatial=self.spatial)
                    while not self.stopping.is_set():
                        workload.run(4)
                        if time.monotonic() > batch_due:
                            self.batches += workload.batch(BATCH_CHANGES)
                            batch_due = time.monotonic() + BATCH_EVERY_S
                        time.sleep(0.01)
            except (pymysql.err.MySQLError, OmsError, OSError):
                self.interruptions += 1  # a restarted server: the application reconnects, as a pool does
                self.stopping.wait(0.5)

    def stop(self) -> None:
        self.stopping.set()
        self.join(60)


class Watcher(threading.Thread):
    """Every state a step passes through while a fault plays out: what omsbench said about it."""

    def __init__(self, read: Callable[[], dict]) -> None:
        super().__init__(daemon=True)
        self.read, self.seen, self.stopping = read, [], threading.Event()
        self.start()

    def run(self) -> None:
        while not self.stopping.is_set():
            status = self.read()
            said = f"{status['state']}: {status['message']}"[:300]
            if not self.seen or not self.seen[-1].startswith(f"{status['state']}:"):
                self.seen.append(said)
            self.stopping.wait(0.2)

    def stop(self, step: str) -> str:
        self.stopping.set()
        self.join(10)
        return f"{step}: " + " -> ".join(self.seen)


class Chaos:
    def __init__(self, workspace: Workspace, seed: int, rows: int) -> None:
        self.workspace, self.seed, self.rows = workspace, seed, rows
        folder = workspace.folder("chaos")
        shutil.rmtree(folder, ignore_errors=True)
        self.mysql = MariaDB(workspace.folder("chaos", "mariadb"), server_id=71)
        self.oceanbase = SeekdbServer(workspace.folder("chaos", "seekdb"))
        self.folder, self.commands = folder, 0
        self.deadline = float("inf")
        """Set by ``run``: when the watchdog aborts the run."""
        self.app: Application | None = None
        self.batches = 0
        """Batch jobs the applications committed: large transactions the syncs carried through the faults."""

    # setup ------------------------------------------------------------------------------------
    def start(self) -> Project:
        self.mysql.start()
        self.oceanbase.start()
        with connect(self.mysql.endpoint().dsn()) as session:
            sampledb.create(session, self.rows, seed=self.seed, database=DATABASE)
        self.proxies = {"source": Proxy(self.mysql.port), "target": Proxy(self.oceanbase.port)}
        source = self.mysql.endpoint()
        spec = specs.ProjectSpec(
            name=PROJECT,
            source=source.model_copy(
                update={"url": f"mysql+pymysql://{MariaDB.user}@127.0.0.1:{self.proxies['source'].port}/"}
            ),
            target=Endpoint(url=f"mysql+pymysql://root@127.0.0.1:{self.proxies['target'].port}/"),
            objects=specs.Objects(include=[f"{DATABASE}.*"]),
            # type_zoo has geometry, which triggers cannot capture; the sample's trigger must not fire twice
            switchover=specs.Switchover(without=[f"{DATABASE}.type_zoo"], suspend_source_triggers=True),
            options=specs.Options(parallelism=2, chunk_size=400, rows_per_second=max(1000, self.rows // 4)),
        )
        self.project = Project(spec, self.workspace)
        self.project.save()
        self.project.state.clear_chunks(PROJECT)
        for step in ("full", "sync", "switchover", "reverse", "release"):  # a new run: the last one's project ended
            self.project.state.set_step(PROJECT, step, State.PENDING, "chaos run")
        self._must("schema", PROJECT)
        return self.project

    def close(self) -> None:
        if self.app:
            self.app.stop()
        for process in (runner.SyncProcess(self.workspace, PROJECT), runner.ReverseProcess(self.workspace, PROJECT)):
            process.stop(10)
        for proxy in getattr(self, "proxies", {}).values():
            proxy.close()

    def stop_servers(self) -> None:
        self.mysql.stop()
        self.oceanbase.stop()

    # the user's commands ------------------------------------------------------------------------
    def _omsbench(self, *args: str, wait: bool = True) -> subprocess.Popen:
        """Run an omsbench command as a user would; its output goes to a log of its own."""
        command = [sys.executable, "-m", "omsbench", "--workspace", str(self.workspace.root), *args]
        self.commands += 1
        log_path = self.folder / f"{self.commands:03d}-{'-'.join(args[:2])}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        process.log = log_path  # type: ignore[attr-defined]
        if wait:
            self._wait(process, args)
        return process

    def _wait(self, process: subprocess.Popen, args: tuple[str, ...]) -> int:
        """The command's exit code; Overrun (the command killed) when the run's budget ends first."""
        try:
            return process.wait(self._left(f"omsbench {' '.join(args)}"))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise Overrun(f"omsbench {' '.join(args)} still ran when the run's time budget ended; killed") from None

    def _left(self, doing: str) -> float:
        """Seconds left in the run's budget; Overrun, naming what it was doing, once there are none."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Overrun(f"the run's time budget ended while it was waiting for {doing}")
        return left

    def _must(self, *args: str) -> None:
        process = self._omsbench(*args)
        if process.returncode != 0:
            raise RuntimeError(f"omsbench {' '.join(args)} failed: {_told(process)}")

    # faults -----------------------------------------------------------------------------------
    def inject(self, fault: Fault, command: subprocess.Popen | None) -> None:
        """Inject one fault; ``command`` is the phase's one-shot command, if it still runs."""
        if fault.kind == "kill":
            pid = command.pid if command and command.poll() is None else self._background(fault.phase).pid()
            if pid:
                os.kill(pid, signal.SIGKILL)
            fault.recovery.append(f"killed pid {pid}" if pid else "nothing to kill: no omsbench process ran")
        elif fault.kind.startswith("restart_"):
            server = self.mysql if fault.kind == "restart_source" else self.oceanbase
            server.stop()
            server.start()
        elif fault.kind.startswith("cut_"):
            cut = self.proxies[fault.kind.removeprefix("cut_")].cut(refuse_for=1.0)
            fault.recovery.append(f"{cut} connection(s) cut, new ones refused for 1 s")
        else:
            held = self._hold_checkpoint(fault.phase)
            fault.recovery.append(f"{held} checkpoint row(s) locked for {LOCK_WAIT_S + 2} s")

    def _background(self, phase: str) -> runner.SyncProcess:
        """The long-running omsbench process of a phase: the forward sync until the switchover stops
        it, the reverse sync until the switch-back stops it."""
        reverse = (
            phase == "reverse"
            or (phase == "switchover" and self._passed("switchover", "stop_forward_sync"))
            or (phase == "switchback" and not self._passed("switch back", "stop_reverse_sync"))
        )
        return (
            runner.ReverseProcess(self.workspace, PROJECT) if reverse else runner.SyncProcess(self.workspace, PROJECT)
        )

    def _passed(self, direction: str, phase: str) -> bool:
        record = self.project.state.detail(PROJECT, Step.SWITCHOVER)
        return record.get("direction") == direction and phase in record.get("phases", {})

    def _hold_checkpoint(self, phase: str) -> int:
        """Lock the applier's checkpoint row past its lock wait: its next group times out and is retried."""
        if phase == "sync":
            endpoint, table = self.oceanbase.endpoint(), "sync_checkpoint"
        else:
            endpoint, table = self.mysql.endpoint(), "reverse_checkpoint"
        with connect(endpoint.dsn(), autocommit=False) as session:
            held = session.query(f"SELECT * FROM `omsbench`.`{table}` WHERE project = %s FOR UPDATE", (PROJECT,))
            time.sleep(LOCK_WAIT_S + 2)
            session.conn.rollback()
        return len(held)

    # what omsbench said, and what the user does about it ------------------------------------------
    def _status(self, step: str) -> dict:
        if step in ("sync", "reverse"):
            return self.project.reverse_status() if step == "reverse" else self.project.sync_status()
        return self.project.state.step(PROJECT, step) or {"state": "never started", "message": ""}

    def _keep_running(self, step: str, fault: Fault) -> None:
        """Start a background sync again if it died or failed, resume it if it paused; wait for it to run."""
        command = "reverse" if step == "reverse" else "sync"
        deadline = time.monotonic() + _HEALTHY_WITHIN
        while time.monotonic() < deadline:
            self._left(f"the {step} to run")
            status = self._status(step)
            state = status["state"]
            if state == "running":
                return
            if state in ("died", "failed", "stopped"):
                fault.recovery.append(f"omsbench {command} start (it was {state})")
                self._omsbench(command, "start", PROJECT)
            elif state == "paused":
                fault.recovery.append(f"omsbench {command} resume")
                self._omsbench(command, "resume", PROJECT)
            time.sleep(1.0)
        raise TimeoutError(
            f"the {step} was not running {_HEALTHY_WITHIN:.0f} s after the fault; it said: {status['message']}"
        )

    def _finish(self, command: subprocess.Popen, args: tuple[str, ...], fault: Fault) -> subprocess.Popen:
        """Run a one-shot command again until it succeeds, as a user would after reading its error."""
        for _ in range(_ATTEMPTS):
            if self._wait(command, args) == 0:
                return command
            told = _told(command)
            fault.recovery.append(f"omsbench {' '.join(args)} exited {command.returncode}: {told}")
            if "omsbench sync start" in told:  # its fix says: start the forward sync first
                self._keep_running("sync", fault)
            time.sleep(1.0)
            fault.recovery.append(f"omsbench {' '.join(args)} again")
            command = self._omsbench(*args, wait=False)
        raise RuntimeError(f"omsbench {' '.join(args)} failed {_ATTEMPTS} times")

    def _caught_up(self, fault: Fault) -> None:
        """The phase's background sync runs again and has everything the source has now."""
        step = self._background(fault.phase).step
        self._keep_running(step, fault)
        if step == "reverse":
            self.project.wait_for_reverse(timeout=_HEALTHY_WITHIN)
        else:
            self.project.wait_for_sync(timeout=_HEALTHY_WITHIN)

    def endure(self, fault: Fault, args: tuple[str, ...] = (), command: subprocess.Popen | None = None):
        """Inject ``fault``, record what omsbench said meanwhile, recover; return the phase's command."""
        time.sleep(fault.after_s)
        watched = args[0] if command is not None else self._background(fault.phase).step
        watcher = Watcher(lambda: self._status(watched))
        try:
            self.inject(fault, command)
            time.sleep(1.5)
            if command is not None:
                command = self._finish(command, args, fault)
            if fault.phase != "full":
                self._caught_up(fault)
            fault.survived = True
        except Overrun:
            raise
        except Exception as err:
            fault.recovery.append(f"not survived: {type(err).__name__}: {err}"[:400])
        finally:
            fault.said = watcher.stop(watched)
        return command

    # phases -----------------------------------------------------------------------------------
    def one_shot(self, args: tuple[str, ...], faults: list[Fault], again: bool) -> None:
        """A command that ends (full load, switchover), with the phase's faults injected while it runs.

        ``again``: the command may run again after it succeeded (a finished full load is skipped
        chunk by chunk), so each fault meets it running.
        """
        command = self._omsbench(*args, wait=False)
        for fault in faults:
            if again and command.poll() == 0:
                command = self._omsbench(*args, wait=False)
            command = self.endure(fault, args, command if command.poll() is None else None) or command
        self._finish(command, args, Fault(0, args[0]))

    def _change_schema(self) -> None:
        """DDL while the application writes: the sync replays it at its place, faults come after it
        (a new column with values, and an index on it).

        Done as online-schema-change tools do it: short lock waits, and again after a timeout. An
        application transaction whose foreign-key check locked ``customers`` and which then waits
        for the ALTER's metadata lock is a deadlock MariaDB does not detect; only the ALTER's lock
        wait ends it.
        """
        with connect(self.mysql.endpoint().dsn()) as session:
            session.execute(f"SET SESSION innodb_lock_wait_timeout = {_DDL_LOCK_WAIT_S}")
            for statement in SCHEMA_CHANGES:
                for attempt in range(_ATTEMPTS):
                    try:
                        session.execute(statement)
                        break
                    except pymysql.err.OperationalError as err:
                        if err.args[0] not in RETRYABLE or attempt == _ATTEMPTS - 1:
                            raise

    def run(self, faults: list[Fault]) -> None:
        self.deadline = time.monotonic() + _BUDGET_S[0] + _BUDGET_S[1] * len(faults)
        of = {phase: [f for f in faults if f.phase == phase] for phase in PHASES}
        self.app = Application(self.mysql.endpoint(), self.seed, spatial=True)
        self.app.start()
        self.one_shot(("full", PROJECT), of["full"], again=True)
        self._must("sync", "start", PROJECT)
        self._change_schema()
        for fault in of["sync"]:
            self.endure(fault)
        time.sleep(2)
        self._stop_app()
        # forced past the checklist (a verify just before): the run proves equality itself at its end
        self.one_shot(("switchover", PROJECT, "--force"), of["switchover"], again=False)
        self._keep_running("reverse", Fault(0, "reverse"))
        self.app = Application(self.oceanbase.endpoint(), self.seed + 1000, spatial=False)
        self.app.start()
        for fault in of["reverse"]:
            self.endure(fault)
        time.sleep(2)
        self._stop_app()
        self.one_shot(("switchback", PROJECT, "--writes-stopped"), of["switchback"], again=False)
        self._keep_running("sync", Fault(0, "switchback"))
        self.app = Application(self.mysql.endpoint(), self.seed + 2000, spatial=True)
        self.app.start()
        time.sleep(3)
        self._stop_app()
        self.project.wait_for_sync(timeout=min(300, self._left("the last sync to catch up")))

    def _stop_app(self) -> None:
        self.app.stop()
        self.batches += self.app.batches

    def release(self) -> dict:
        """The project's end, by the CLI as a user runs it; then what each side still holds of it (nothing)."""
        self._must("release", PROJECT, "--yes")
        left = {}
        for side, server in (("source", self.mysql), ("target", self.oceanbase)):
            with connect(server.endpoint().dsn()) as session:
                left[side] = release.remains(session, PROJECT)
        return left


def _told(process: subprocess.Popen) -> str:
    """The error and the fix a failed command printed (the CLI's two lines), for the JSON."""
    lines = process.log.read_text(errors="replace").splitlines()  # type: ignore[attr-defined]
    told = [line.strip() for line in lines if line.startswith(("error:", "  fix:"))]
    return " ".join(told)[:600] or (lines[-1][:300] if lines else "")


def _compare(project: Project) -> dict:
    """The verification engine's verdict; a table whose columns differ cannot be summed, which is a finding too."""
    try:
        checks = project.check()
    except Exception as err:
        return {"equal": False, "tables_checked": 0, "different": [], "check_error": f"{type(err).__name__}: {err}"}
    different = checks.loc[~checks["equal"], "table"].tolist()
    return {"equal": not different, "tables_checked": len(checks), "different": different, "check_error": None}


def passed(result: dict) -> bool:
    """Every fault survived, both sides equal, and the release left nothing of the project behind."""
    left = result["left_after_release"]
    return (
        result["equal"]
        and result["points_survived"] == result["points_planned"]
        and left is not None
        and not any(any(counts.values()) for counts in left.values())
    )


def run(workspace: Workspace, points: int = 8, seed: int = 1, rows: int = 20_000, keep: bool = False) -> dict:
    faults = plan(points, seed)
    chaos = Chaos(workspace, seed, rows)
    began = time.monotonic()
    aborted = None
    try:
        project = chaos.start()
        try:
            chaos.run(faults)
        except Exception as err:  # reported: the run cannot go on, and the JSON says where it stopped
            aborted = f"{type(err).__name__}: {err}"
        compared = _compare(project)
        released = None if aborted else chaos.release()
    finally:
        chaos.close()
        if not keep:
            chaos.stop_servers()
    return {
        "points_tried": sum(bool(f.said or f.recovery) for f in faults),
        "points_survived": sum(f.survived for f in faults),
        "points_planned": len(faults),
        "seed": seed,
        "aborted": aborted,
        **compared,
        "left_after_release": released,
        "batches": chaos.batches,
        "seconds": round(time.monotonic() - began, 1),
        "faults": [asdict(f) for f in faults],
        "source": chaos.mysql.endpoint().url if keep else None,
        "target": chaos.oceanbase.endpoint().url if keep else None,
        "commands": str(chaos.folder),
    }
