"""The binlog reader in a process of its own, feeding the applier through a bounded queue.

Decoding the binlog in Python costs about two thirds of the sync's CPU (measured with py-spy
while applying a sysbench backlog); in a thread it holds the GIL the applier needs. In its own
process it decodes while the applier builds statements and waits on the target. Transactions
cross the queue pickled. After handing over a DDL the reader waits for the applier to send the
tracked tables as they are after that DDL: the rows that follow must decode with them.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass

from omsbench.changes import PIECE_ROWS, Transaction
from omsbench.endpoints.binlog_reader import BinlogReader
from omsbench.endpoints.connection import Dsn, Flavor
from omsbench.endpoints.position import BinlogPosition
from omsbench.engine import own_tables
from omsbench.engine.mapping import Selection
from omsbench.engine.tracker import Tracker

POLL = 0.2
_MAX_BATCH = 2000
"""Transactions a batch holds at most, and rows (``PIECE_ROWS``): so that a reader ahead of the
applier holds at most ``_QUEUED_BATCHES + 1`` batches, whatever the size of the transactions."""
_QUEUED_BATCHES = 8
_spawn = multiprocessing.get_context("spawn")  # the parent may hold an embedded seekdb a fork must not copy


@dataclass(frozen=True)
class ReaderArgs:
    dsn: Dsn
    flavor: Flavor
    server_id: int
    project: str
    start: BinlogPosition
    skip_before: float | None
    pieces: bool = True
    """Send a large transaction in pieces as it is read (a sink that can apply it so)."""


class ReaderProcess:
    def __init__(self, args: ReaderArgs, tracker: Tracker) -> None:
        self.out = _spawn.Queue(maxsize=_QUEUED_BATCHES)
        self.ready: deque = deque()
        self.tracker = tracker
        """The sink's tracker: a DDL changes its tables, which the reader then decodes with."""
        self.schemas = _spawn.Queue()
        self.process = _spawn.Process(
            target=_main, args=(args, tracker.tables, self.out, self.schemas), name="omsbench-binlog", daemon=True
        )
        self.process.start()

    def next(self, rows: int) -> list[Transaction]:
        """Whole transactions that are already waiting, up to ``rows`` rows, stopping before a DDL or
        a piece, which come alone; waits up to the poll interval for the first."""
        first = self._take()
        if first is None or first.ddl is not None or first.more:
            return [first] if first else []
        group, count = [first], first.rows
        while count < rows and (self.ready or self._more_arrived()):
            txn = self.ready[0]
            if not isinstance(txn, Transaction) or txn.ddl is not None or txn.more:
                break  # it comes alone, or raises, on the next call
            group.append(self.ready.popleft())
            count += txn.rows
        return group

    def applied(self, group: list[Transaction]) -> None:
        """After a DDL, the reader decodes the rows that follow with the tables as it left them."""
        if group[-1].ddl is not None:
            self.schemas.put(self.tracker.tables)

    def _take(self) -> Transaction | None:
        """The next transaction, or None when none arrives within the poll interval; reader errors re-raise here."""
        if not self.ready and not self._more_arrived(wait=True):
            if not self.process.is_alive() and self.out.empty():
                raise RuntimeError(f"the binlog reader process exited with code {self.process.exitcode}") from None
            return None
        item = self.ready.popleft()
        if isinstance(item, BaseException):
            raise item
        return item

    def _more_arrived(self, wait: bool = False) -> bool:
        """Whether a batch arrived (waiting up to the poll interval for one with ``wait``)."""
        try:
            self.ready.extend(self.out.get(timeout=POLL) if wait else self.out.get_nowait())
        except queue.Empty:
            return False
        return True

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(10)
        self.out.cancel_join_thread()
        self.schemas.cancel_join_thread()


def _main(args: ReaderArgs, tables: dict, out, schemas) -> None:
    threading.Thread(target=_exit_with_parent, name="omsbench-binlog-orphan-guard", daemon=True).start()
    tracker = Tracker(Selection())
    tracker.tables = tables
    sender = _Sender(out)
    reader = BinlogReader(
        args.dsn, args.flavor, args.server_id, tracker.source_table, own_tables.MARKS, args.project, args.start,
        args.skip_before,
        pieces=sender.add if args.pieces else None,
    )  # fmt: skip
    try:
        for txn in reader.transactions():
            sender.add(txn)
            if txn.ddl is not None:
                tracker.tables = schemas.get()
                tracker.version += 1
    except BaseException as err:  # the applier decides what it means: retry, pause or fail
        sender.add(err)
        sender.drain()
    finally:
        reader.close()


def _exit_with_parent() -> None:
    """A sync killed with kill -9 cannot stop its reader: the reader ends itself, instead of living
    on with a replication connection and a queue nobody reads."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)


class _Sender(threading.Thread):
    """Ships the decoded transactions in batches, so the queue costs per batch, not per transaction."""

    def __init__(self, out) -> None:
        super().__init__(name="omsbench-binlog-sender", daemon=True)
        self.out, self.batch, self.rows, self.wake = out, [], 0, threading.Event()
        self.start()

    def add(self, item: object) -> None:
        while len(self.batch) >= _MAX_BATCH or self.rows >= PIECE_ROWS:  # the applier is paused or slower
            time.sleep(POLL / 10)
        self.batch.append(item)
        self.rows += item.rows if isinstance(item, Transaction) else 0
        self.wake.set()

    def run(self) -> None:
        while True:
            self.wake.wait()
            self.wake.clear()
            self._send()

    def _send(self) -> None:
        batch, self.batch, self.rows = self.batch, [], 0
        if batch:
            self.out.put(batch)

    def drain(self) -> None:
        """Send what is left before the process ends (the thread may not get another turn)."""
        self._send()
        self.out.close()
        self.out.join_thread()
