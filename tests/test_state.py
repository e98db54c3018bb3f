"""The state store survives concurrent writers and killed ones."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import time
from decimal import Decimal

from omsbench.engine.state import StateStore, decode_key, encode_key


def _writer(path: str, project: str, n: int) -> None:
    store = StateStore(path)
    for i in range(n):
        store.add_metrics(project, "full", {"rows_copied": i})
        store.set_step(project, "full", "running", f"step {i}")


def test_two_processes_write_at_once(tmp_path):
    path = str(tmp_path / "state.db")
    StateStore(path)
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_writer, args=(path, f"p{k}", 300)) for k in range(2)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(120)
        assert w.exitcode == 0
    store = StateStore(path)
    for k in range(2):
        assert len(store.metrics(f"p{k}")) == 300
        step = store.step(f"p{k}", "full")
        # the writer ended while its step said "running": a reader is told it died, with its last message
        assert step["state"] == "died" and "running: step 299;" in step["message"]
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_killed_writer_leaves_a_sound_store(tmp_path):
    path = str(tmp_path / "state.db")
    StateStore(path)
    ctx = multiprocessing.get_context("spawn")
    writer = ctx.Process(target=_writer, args=(path, "victim", 100_000))
    writer.start()
    store = StateStore(path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(store.metrics("victim")) < 200:
        time.sleep(0.05)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)
    written = len(store.metrics("victim"))
    assert written >= 200
    store.add_metrics("victim", "full", {"after": 1})  # still writable
    assert len(store.metrics("victim")) == written + 1


def test_chunk_bounds_keep_their_types():
    bounds = (7, "k-ü", b"\x00\xff", Decimal("12.50"), None)
    assert decode_key(encode_key(bounds)) == bounds
