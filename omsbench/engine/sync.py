"""Incremental sync: the binlog replayed into the target, whole transactions in commit order, exactly once.

Three parts work together. The reader decodes the binlog in its own process into a bounded
queue (see ``pipeline``); the heartbeat thread writes the source's heartbeat row; the caller's
thread applies. When the queue holds several transactions they are
merged into one target commit (never splitting one), which is how a sync that fell behind
catches up. Every state change goes to the state store, and the loop obeys pause, resume, stop
and DDL resolutions that any other process writes there.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import pymysql

from omsbench.actions import named
from omsbench.changes import Ddl, Transaction
from omsbench.endpoints import oceanbase
from omsbench.endpoints.binlog import binary_logs, earliest, replica_id, require_available
from omsbench.endpoints.connection import Endpoint, Flavor, Session, connect, explain, packet_too_large, raise_packet
from omsbench.endpoints.mysql import master_status
from omsbench.endpoints.position import BinlogPosition
from omsbench.engine import filters, full, heartbeat
from omsbench.engine.apply import Applier, ParallelApplier, read_checkpoint
from omsbench.engine.ddl import DdlApplier, Decision
from omsbench.engine.mapping import Selection
from omsbench.engine.metrics import Meter
from omsbench.engine.pipeline import POLL, ReaderArgs, ReaderProcess
from omsbench.engine.spec import ProjectSpec
from omsbench.engine.state import StateStore
from omsbench.engine.steps import Step
from omsbench.engine.tracker import Tracker
from omsbench.exceptions import (
    ChangePaused,
    ConnectError,
    DdlBlocked,
    DdlPaused,
    OmsError,
    PasswordUnavailable,
    SyncError,
)

log = logging.getLogger(__name__)
TRANSIENT = (pymysql.err.OperationalError, pymysql.err.InterfaceError, ConnectError, OSError, EOFError)
RETRIES_BEFORE_PAUSE = 8
BLOCKED_WAIT_S = 120.0
"""How long a replayed DDL stopped at its bound waits for the transactions it waited on to end
before the sync pauses on it: one that seekdb kept from before a restart ended 40 s after the
DDL was stopped, in a chaos run."""
_INCURABLE = {1044, 1045, 1049, 1142, 1143, 1227, 1370, 1698}
"""Access denied, unknown database, a missing privilege: the same again gets the same answer."""


def _tables(group: list[Transaction]) -> list[str]:
    return sorted({f"{c.schema}.{c.table}" for txn in group for c in txn.changes})


def _refused_value(err: pymysql.err.DataError, tables: list[str], step: str, project: str) -> ChangePaused:
    """A value the receiving side cannot store (a 4-byte character in a utf8mb3 column, a string
    longer than its column): no retry stores it, and dying on it would end the sync, or the
    fallback, over one value. The group is rolled back; the sync waits where it is."""
    code, text = (*err.args, "", "")[:2]
    return ChangePaused(
        f"the receiving database refused a value in a change to {', '.join(tables) or 'a table'} ({code}: {text});"
        " nothing of its transaction was applied",
        fix="widen the column there to take such values (for a utf8mb3 column: ALTER TABLE ... MODIFY it as"
        f" utf8mb4), then {named(f'{step} resume', project)}: the change is applied again; or skip the"
        f" transaction ({named(f'{step} resolve', project, '--skip')}) or run your SQL instead of it"
        f" ({named(f'{step} resolve', project, '--replace-with')})",
    )


def incurable(err: BaseException) -> bool:
    """An error that no retry cures: refused credentials or privileges, or a password that cannot be read."""
    if isinstance(err, PasswordUnavailable):
        return True
    cause = err.__cause__ if isinstance(err, ConnectError) else err
    return isinstance(cause, pymysql.err.MySQLError) and bool(cause.args) and cause.args[0] in _INCURABLE


@dataclass(frozen=True)
class StartAt:
    """Where a sync with no checkpoint begins, when the full load's hand-over point is not wanted."""

    position: BinlogPosition | None = None
    timestamp: float | None = None


def key(position: BinlogPosition) -> tuple[str, int]:
    return (position.file, position.pos)


def label(position: BinlogPosition) -> str:
    return f"{position.file}:{position.pos}"


class ChangeSource(Protocol):
    """Where a sync's transactions come from: the binlog (``pipeline.ReaderProcess``), OceanBase's
    change log (``capture.ChangeLog``) or Kafka topics (``consume.Topics``)."""

    def next(self, rows: int) -> list[Transaction]:
        """What waits, as one group: whole transactions of about ``rows`` rows (at least one; with
        ``rows`` 0 exactly one), or a DDL alone, or one piece of a large transaction; empty when
        nothing arrived within a poll. A transaction that carries a lag sample has ``heartbeat`` set."""

    def applied(self, group: list[Transaction]) -> None:
        """The sink committed ``group`` (its rows, or only its checkpoint): the change log purges
        it, Kafka commits its offsets, the binlog reader takes the tables as a DDL left them."""


class Sink(Protocol):
    """Where a sync's transactions go: a database (``apply.Applier``) or a queue (``publish.QueueSink``).
    Each commits a group's checkpoint with its changes."""

    tracker: Tracker

    def apply(self, group: list[Transaction]) -> float:
        """Commit whole transactions and the checkpoint after them; return the commit time."""

    def checkpoint_only(self, txn: Transaction, sql: str | None = None) -> None:
        """Move the checkpoint past a transaction whose changes are not sent (a DDL, a skip), or are
        replaced by the user's ``sql``, in the same commit."""


class PieceSink(Sink, Protocol):
    """A sink that keeps a large transaction open across pieces: ``apply_piece`` until ``finish``."""

    def apply_piece(self, changes: list) -> None: ...

    def finish(self, group: list[Transaction]) -> float: ...

    def rollback(self) -> None: ...


class DdlHandler(Protocol):
    def apply(self, ddl: Ddl, position: str, replacement: str | None = None) -> Decision: ...


class SourceChanged(Exception):
    """The source asks for a new session (Kafka: the topics that match the spec changed)."""


@dataclass
class Connected:
    """One session of a sync: a source paired with a sink, as ``Project.sync()`` chose them."""

    source: ChangeSource
    sink: Sink
    ddl: DdlHandler | None = None
    """What a DDL from the source goes to (the binlog's; the other sources follow DDL themselves)."""
    judge: Session | None = None
    """The session that evaluates row filters; None where the source's rows are not filtered."""
    floors: dict = field(default_factory=dict)
    """Per keyless table, the binlog position its full-load copy already holds (``_keyless_floors``)."""
    between: Callable[[], None] | None = None
    """Work of the pairing's between two reads (the reverse sync's comparison pass)."""


Pairing = Callable[["Sync"], contextlib.AbstractContextManager[Connected]]
"""Opens one session of a sync: connects, and pairs a source with a sink."""


class Sync:
    """The one sync loop: retries, pause, resume, stop, user decisions and samples, over whatever
    source and sink ``pairing`` connects (forward, reverse, to a queue, from a queue)."""

    def __init__(
        self,
        spec: ProjectSpec,
        state: StateStore,
        selection: Callable[[Session], Selection],
        pairing: Pairing,
        step: Step = Step.SYNC,
        start: StartAt | None = None,
    ) -> None:
        self.spec, self.state, self.selection, self.pairing, self.start_at = spec, state, selection, pairing, start
        self.project = spec.name
        self.step = step
        """The state-store step this loop reports to and takes requests from."""
        self.meter = Meter(state, self.project, self.step)
        self.stopping = threading.Event()
        self.position: BinlogPosition | None = None
        self.source: ChangeSource | None = None
        """The session's source (a consumer group member's partitions are seen there)."""
        self.applying: list[Transaction] = []
        """The group being applied: a refused value is named by its tables (worked out only then)."""
        self._said: tuple[str, str] | None = None
        self._since: tuple[str, float] = ("", 0.0)
        """The state last set and when it began: a headline says "paused since 19:42 UTC"."""
        self.paused_at = ""
        """The transaction a refused change paused on: a resolution of it is looked for only then."""
        self._want: tuple[float, dict | None] = (0.0, None)
        self._waited_at = ""
        """The DDL last waited for (its position): it is waited for once, then the sync pauses on it."""

    # the outer loop: retries, pauses, stop -------------------------------------------------------
    def run(self) -> None:
        """Run until stopped; transient faults are retried with backoff, then the sync pauses."""
        failures = 0
        while not self.stop_requested():
            try:
                with self.pairing(self) as connected:
                    self.source = connected.source
                    self._loop(connected)
                failures = 0
            except SourceChanged:
                continue
            except DdlPaused as err:
                if isinstance(err, DdlBlocked) and self._ended(err):
                    continue
                self.set_state("paused", str(err), statement=err.statement, at=err.position)
                self._wait_for_user(at=err.position)
            except ChangePaused as err:
                self.paused_at = err.position
                self.set_state("paused", str(err), at=err.position or None)
                self._wait_for_user(at=err.position)
            except pymysql.err.DataError as err:  # in a piece of a large transaction: resume once widened
                self.set_state("paused", str(_refused_value(err, _tables(self.applying), self.step, self.project)))
                self._wait_for_user()
            except TRANSIENT as err:
                if incurable(err):
                    failed = SyncError(f"{err}; retrying cannot cure this", fix=getattr(err, "fix", None))
                    self.set_state("failed", str(failed))
                    raise failed from err
                if packet_too_large(err):
                    self.set_state(
                        "paused",
                        f"the target refused a change larger than its max_allowed_packet; {raise_packet('target')},"
                        f" then {named(f'{self.step} resume', self.project)}",
                    )
                    self._wait_for_user()
                    continue
                failures += 1
                if failures > RETRIES_BEFORE_PAUSE:
                    again = named(f"{self.step} resume", self.project)
                    self.set_state("paused", f"gave up after {failures - 1} retries: {err}; {again} retries")
                    self._wait_for_user()
                    failures = 0
                    continue
                delay = min(30.0, 0.5 * 2**failures)
                self.set_state("retrying", f"{explain(err)}; retry {failures} in {delay:.0f}s")
                self.stopping.wait(delay)
            except OmsError as err:
                self.set_state("failed", str(err))
                raise
            except BaseException as err:
                log.exception("sync of %s failed", self.project)
                self.set_state("failed", f"{type(err).__name__}: {err}")
                raise
        self.set_state("stopped", "stopped on request")

    def _ended(self, blocked: DdlBlocked) -> bool:
        """Whether the transactions a replayed DDL waited for ended within BLOCKED_WAIT_S, so that it
        runs again; each DDL is waited for once."""
        if self._waited_at == blocked.position:
            return False
        self._waited_at = blocked.position
        names = ", ".join(map(str, blocked.transactions))
        self.set_state(
            "retrying",
            f"DDL at {blocked.position} waited for transaction(s) {names} on the target; it runs again once they"
            f" end (up to {BLOCKED_WAIT_S:.0f} s), else the sync pauses: {blocked.statement}",
        )
        deadline = time.monotonic() + BLOCKED_WAIT_S
        try:
            with connect(self.spec.target.dsn()) as target:
                while time.monotonic() < deadline and self.requested() not in ("stop", "pause"):
                    if not set(blocked.transactions) & set(oceanbase.open_transactions(target)):
                        return True
                    self.stopping.wait(1.0)
        except TRANSIENT:
            return True  # the target is away: the session's retries take it from here
        return self.stop_requested()  # a stop ends the loop; a pause or the deadline pauses on the DDL

    def stop(self) -> None:
        self.stopping.set()

    def requested(self) -> str | None:
        """The user's last request, read from the state store at most every poll interval."""
        want = self._request()
        return want["want"] if want else None

    def _request(self) -> dict | None:
        read_at, want = self._want
        if time.monotonic() - read_at >= POLL:
            want = self.state.requested(self.project, self.step)
            self._want = (time.monotonic(), want)
        return want

    def _settle(self, request: dict) -> None:
        """The request was acted on: it must not answer the next pause too."""
        self.state.settle(self.project, self.step, request)
        self._want = (0.0, None)

    def stop_requested(self) -> bool:
        """Whether to end: ``stop()`` was called or a stop request is on file (a pairing that waits,
        for topics to appear, asks it too)."""
        if self.requested() == "stop":
            self.stopping.set()
        return self.stopping.is_set()

    def _wait_for_user(self, at: str | None = None) -> None:
        """Block until a resume, the resolution of the DDL ``at``, or a stop arrives.

        A resume is taken here; a resolution stays on file until the DDL it names is replayed."""
        while not self.stop_requested():
            want = self._request() or {}
            if want.get("want") == "resume":
                self.set_state("starting", "resumed; connecting")  # before the resume is settled: no one sees "paused"
                self._settle(want)
                return
            if want.get("want") == "resolve" and at and (want.get("payload") or {}).get("position") == at:
                return
            self.stopping.wait(POLL)

    def set_state(self, state: str, message: str, **detail) -> None:
        """Record where the sync stands for every front end (and the log, once per change of words);
        a pairing says here what its session runs."""
        position = label(self.position) if self.position else None
        if (state, message) != self._said and message != "replaying":
            log.info("%s %s: %s", self.step, state, message)
            self._said = (state, message)
        if state != self._since[0]:
            self._since = (state, time.time())
        detail = {"position": position, "since": self._since[1], **detail}
        self.state.set_step(self.project, self.step, state, message, detail)

    # where a binlog is read from ----------------------------------------------------------------
    def start_position(
        self, source: Session, found: tuple | None, handover: Callable[[], BinlogPosition] | None = None
    ) -> tuple[BinlogPosition, float | None]:
        """The first position and the skip-before time: the checkpoint ``found``, a user's start, or
        the hand-over (the full load's snapshot end, unless ``handover`` says otherwise)."""
        if found:
            position = found[0]
        elif self.start_at and (self.start_at.position or self.start_at.timestamp):
            position = self.start_at.position or earliest(source)
        else:
            position = (handover or self._handover)()
        if position.file and position.gtid and source.flavor is Flavor.MARIADB:
            position = _by_gtid_if_file_is_gone(source, position)
        if position.file:
            require_available(source, position)
        self.position = position
        skip_before = self.start_at.timestamp if self.start_at and not found else None
        return position, skip_before

    def _handover(self) -> BinlogPosition:
        """Where the full load's snapshot ends: the sync's first position."""
        position = full.handover(self.state, self.project)
        if position is None:
            raise SyncError(
                f"project {self.project} has no place to start the sync from",
                fix=f"run the full migration first ({named('full', self.project)}), or start the sync at a binlog"
                f" position or a time ({named('sync start', self.project, '--position FILE:POS')})",
            )
        return position

    @contextlib.contextmanager
    def reading(self, endpoint: Endpoint, session: Session, start: tuple, tracker: Tracker, pieces: bool):
        """The binlog of ``endpoint`` read from ``start`` in a process of its own, while the heartbeat
        is written there; ``pieces``: the sink takes a large transaction piece by piece."""
        position, skip_before = start
        args = ReaderArgs(
            endpoint.dsn(), session.flavor, replica_id(self.project), self.project, position, skip_before, pieces
        )
        heartbeat.install(session)
        beat = heartbeat.Heartbeat(endpoint.dsn(), self.project, self.spec.options.heartbeat_ms / 1000)
        reader = ReaderProcess(args, tracker)
        beat.start()
        self.set_state("running", f"replaying from {label(position)}")
        try:
            yield reader
        finally:
            beat.stop()
            reader.stop()

    # the loop of one session --------------------------------------------------------------------
    def _loop(self, c: Connected) -> None:
        while not self.stop_requested():
            if self._paused():
                continue
            if c.between:
                c.between()
            group = c.source.next(self.spec.options.group_rows)
            if not group:
                self._maybe_sample()
            elif group[0].ddl is not None:
                self._ddl(group[0], c)
            elif group[0].more:
                self._apply_pieces(group[0], c)
            else:
                self._apply(group, c, c.sink.apply)

    def _apply(self, group: list[Transaction], c: Connected, apply) -> None:
        """``apply`` the group (filtered) and count it; the sink commits it with the checkpoint."""
        if self.paused_at and self._resolved(group, c, apply):
            return
        started = time.monotonic()
        self.applying = group
        _prepare(group, c)
        committed = self._commit(group, c, apply)
        self.position = group[-1].position
        self.meter.applied(sum(t.rows for t in group), len(group), time.monotonic() - started)
        for t in group:
            if t.heartbeat is not None:
                self.meter.heartbeat(t.heartbeat, t.read_at, committed)
        self._maybe_sample()

    def _commit(self, group: list[Transaction], c: Connected, apply) -> float:
        """Apply the group; a change the sink refuses is narrowed down to its transaction (those
        before it commit one by one), and the sync pauses on that transaction, by its position."""
        try:
            committed = apply(group)
        except (pymysql.err.DataError, ChangePaused) as err:
            if len(group) == 1:
                why = (
                    err
                    if isinstance(err, ChangePaused)
                    else _refused_value(err, _tables(group), self.step, self.project)
                )
                raise ChangePaused(why.message, why.fix, label(group[0].position)) from err
        else:
            c.source.applied(group)
            return committed
        for txn in group:
            self.applying = [txn]
            committed = self._commit([txn], c, apply)
            self.position = txn.position
        return committed

    def _checkpoint_only(self, txn: Transaction, c: Connected, sql: str | None = None) -> None:
        """Past a transaction nothing of which is sent: a DDL, a skip, or the user's ``sql`` in its place."""
        c.sink.checkpoint_only(txn, sql)
        c.source.applied([txn])
        self.position = txn.position

    def _resolved(self, group: list[Transaction], c: Connected, apply) -> bool:
        """Where the group holds the transaction the sync paused on and the user decided on it:
        apply what comes before it, skip it or run the user's SQL instead, then the rest."""
        at = next((i for i, txn in enumerate(group) if label(txn.position) == self.paused_at), None)
        if at is None:
            return False
        resolution = self._resolution(self.paused_at)
        self.paused_at = ""  # decided on now, or resumed without a decision: applied again as it is
        if resolution is None:
            return False
        if at:
            self._apply(group[:at], c, apply)
        txn, payload = group[at], resolution.get("payload") or {}
        self._checkpoint_only(txn, c, payload.get("sql"))
        done = "replaced" if payload.get("sql") else "skipped"
        self.state.record_ddl(  # beside the DDL decisions: a verify before it is stale, and says so
            self.project,
            label(txn.position),
            f"{self.step}: the transaction of {txn.rows} row(s) in {', '.join(_tables([txn]))} the target refused",
            done,
            "decided by the user",
            payload.get("sql") or "",
        )
        self._settle(resolution)
        self.set_state("running", f"the change at {label(txn.position)} was {done}")
        if group[at + 1 :]:
            self._apply(group[at + 1 :], c, apply)
        return True

    def _apply_pieces(self, piece: Transaction, c: Connected) -> None:
        """A large transaction, piece by piece into one target transaction that commits with its last piece.

        A stop before the last piece rolls the pieces back: the checkpoint stays before the transaction.
        """
        sink: PieceSink = c.sink
        try:
            while piece is not None and piece.more:
                started = time.monotonic()
                self.applying = [piece]
                _prepare([piece], c)
                sink.apply_piece(piece.changes)
                self.meter.applied(piece.rows, 0, time.monotonic() - started, commits=0)
                self._maybe_sample()
                piece = self._next(c.source)
        except BaseException:
            sink.rollback()
            raise
        if piece is None or piece.drop_pieces:
            sink.rollback()
            if piece is not None:  # one this project applied itself: only the checkpoint moves
                self._checkpoint_only(piece, c)
            return
        self._apply([piece], c, sink.finish)

    def _next(self, source: ChangeSource) -> Transaction | None:
        """The next piece, waiting for it; None once a stop is requested."""
        while not self.stop_requested():
            piece = source.next(0)
            if piece:
                return piece[0]
        return None

    def _ddl(self, txn: Transaction, c: Connected) -> None:
        where = label(txn.position)
        done = self.state.ddl(self.project)
        if len(done) and (done.position == where).any():
            self._checkpoint_only(txn, c)  # applied before a restart; the tracker read the result already
            return
        resolution = self._resolution(where)
        payload = (resolution or {}).get("payload") or {}
        if payload.get("skip"):
            decision_args = (txn.ddl.statement, "skipped", "skipped by the user", "")
        else:
            decision = c.ddl.apply(txn.ddl, where, payload.get("sql"))
            decision_args = (decision.statement, decision.action, decision.reason, decision.target_sql)
            self.state.note_replayed_tables(self.project, decision.tables if decision.created else [], decision.renamed)
        self.state.record_ddl(self.project, where, *decision_args)
        self._checkpoint_only(txn, c)
        if resolution:
            self._settle(resolution)
            self.set_state("running", f"DDL at {where} resolved")

    def _resolution(self, where: str) -> dict | None:
        """The user's decision on the DDL ``where`` (the whole request, payload under "payload")."""
        want = self.state.requested(self.project, self.step)
        if want and want["want"] == "resolve" and (want["payload"] or {}).get("position") == where:
            return want
        return None

    def _paused(self) -> bool:
        if self.requested() != "pause":
            return False
        self.set_state("paused", "paused on request; the checkpoint is kept")
        while not self.stop_requested() and self.requested() == "pause":
            self.stopping.wait(POLL)
        if not self.stopping.is_set():
            want = self._request() or {}
            self.set_state("running", "resumed")  # before the resume is settled: no one sees "paused" without it
            if want.get("want") == "resume":
                self._settle(want)
        return True

    def _maybe_sample(self) -> None:
        if self.meter.due():
            values = self.meter.sample()
            self.set_state("running", "replaying", **{k: round(v, 2) for k, v in values.items()})


@contextlib.contextmanager
def binlog_to_database(sync: Sync) -> Iterator[Connected]:
    """The forward sync: the source's binlog into the target database."""
    spec = sync.spec
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(connect(spec.source.dsn()))
        target, *others = (
            stack.enter_context(connect(spec.target.dsn(), autocommit=False)) for _ in range(spec.options.apply_workers)
        )
        tracker = Tracker(sync.selection(source))
        tracker.start(target)
        applier = Applier(target, sync.project, tracker)
        if others:
            workers = (Applier(session, sync.project, tracker, n) for n, session in enumerate(others, 1))
            applier = ParallelApplier([applier, *workers])
            stack.callback(applier.close)
        ddl = DdlApplier(target, spec, tracker)
        start = sync.start_position(source, read_checkpoint(target, sync.project))
        full.ensure_checkpoint_table(target)
        loaded = full.done_chunks(target, sync.project)
        _require_loaded_tables(loaded, tracker)
        reader = stack.enter_context(sync.reading(spec.source, source, start, tracker, pieces=True))
        yield Connected(reader, applier, ddl, judge=source, floors=_keyless_floors(loaded, tracker))


def _prepare(group: list[Transaction], c: Connected) -> None:
    """Drop what the full load's copy of a keyless table holds already, and the rows the filters exclude."""
    floors = c.floors
    if floors:
        for t in group:
            t.changes = [ch for ch in t.changes if key(t.position) > floors.get((ch.schema, ch.table), ("", 0))]
    if c.judge is not None:
        filters.apply(c.judge, c.sink.tracker, group)


def _keyless_floors(loaded: dict[tuple[str, int], dict], tracker: Tracker) -> dict[tuple[str, str], tuple[str, int]]:
    """Keyless tables were copied in one snapshot: changes before it are already in the copy.

    Keyed tables need no floor: replaying a change the copy already holds sets the same row again.
    """
    floors = {}
    for (table, _), done in loaded.items():
        schema, name = table.split(".", 1)
        tm = tracker.get(schema, name)
        snap = done["snapshot"]
        if tm is not None and not tm.source.key and snap:
            floors[(schema, name)] = max(floors.get((schema, name), ("", 0)), (snap["file"], int(snap["pos"])))
    return floors


def _require_loaded_tables(loaded: dict[tuple[str, int], dict], tracker: Tracker) -> None:
    """A table the full load copied and the source still has must be on the target: else its
    changes would be dropped without a word."""
    tables = {table for table, _ in loaded}
    missing = sorted(
        tm.source.qualified
        for tm in tracker.selection.tables
        if tm.source.qualified in tables and tracker.get(tm.source.schema, tm.source.name) is None
    )
    if missing:
        raise SyncError(
            f"table(s) {', '.join(missing)} were migrated but are not on the target any more",
            fix=f"recreate them ({named('schema')}, then {named('full', None, '--restart')}), or exclude them in"
            " objects.exclude",
        )


def _by_gtid_if_file_is_gone(source: Session, position: BinlogPosition) -> BinlogPosition:
    """A binlog file the source lacks may live on under another name (a failover): try the GTID.

    The server refuses a GTID it no longer has, which the reader reports as a purged binlog.
    """
    if position.file in binary_logs(source):
        return position
    log.warning("binlog %s is not on the source; continuing by GTID %s", position.file, position.gtid)
    return BinlogPosition("", 4, position.gtid)


def reached(position: BinlogPosition, goal: BinlogPosition) -> bool:
    """Positions compare only within one series of binlog files (``binlog.000007`` < ``binlog.000010``)."""
    same_series = position.file.rpartition(".")[0] == goal.file.rpartition(".")[0]
    return same_series and key(position) >= key(goal)


def behind(source: Session, target: Session, project: str, start: BinlogPosition | None = None) -> dict:
    """How far the target's checkpoint is behind the source's binlog end now, in bytes and seconds
    (the age of the last applied source commit while bytes remain): read from the servers, so it
    holds in every state, paused, stopped or failed alike, where the sync's own lag samples stop.
    Before its first checkpoint a sync stands at ``start`` (the full load's hand-over point)."""
    end, found = master_status(source), read_checkpoint(target, project) or (start and (start, None))
    if end is None or not found:
        return {}
    applied, source_ts = found
    if applied.file == end.file:
        gap = end.pos - applied.pos
    else:
        sizes = {name: int(size) for name, size, *_ in source.query("SHOW BINARY LOGS")}
        between = sum(size for name, size in sizes.items() if applied.file < name < end.file)
        gap = sizes.get(applied.file, applied.pos) - applied.pos + between + end.pos
    gap = max(0, gap)
    seconds = (round(max(0.0, time.time() - source_ts), 3) if source_ts else None) if gap else 0.0
    return {"behind_bytes": gap, "behind_s": seconds}


def wait_caught_up(
    source: Session,
    target: Session,
    project: str,
    timeout: float = 120,
    stalled: Callable[[], str | None] | None = None,
) -> BinlogPosition:
    """Block until the target's checkpoint reaches where the source's binlog ends now.

    Heartbeats keep the checkpoint moving even when the last transactions touch no synced table.
    ``stalled`` says why waiting is pointless (the sync failed, died or waits for the user).
    """
    goal = master_status(source)
    if goal is None:
        raise SyncError(
            f"the source of {project} writes no binlog, so there is no end for the sync to reach",
            fix="turn on log_bin (with binlog_format=ROW) on the source; the precheck lists what is missing",
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = read_checkpoint(target, project)
        if found and reached(found[0], goal):
            return found[0]
        give_up(stalled, project, goal)
        time.sleep(0.05)
    raise SyncError(
        f"the sync of {project} did not reach {label(goal)} within {timeout:.0f} s",
        fix=f"see {named('sync status', project)}: it may be paused, failing or far behind",
    )


def give_up(stalled: Callable[[], str | None] | None, project: str, goal: BinlogPosition) -> None:
    why = stalled() if stalled else None
    if why:
        raise SyncError(
            f"the sync of {project} will not reach {label(goal)}: {why}",
            fix=f"see {named('sync status', project)}; resume or restart it, then wait again",
        )
