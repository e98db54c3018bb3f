"""Plain row-by-row comparison, independent of omsbench's own checksums, and kill -9 while writing."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from omsbench.endpoints.connection import Endpoint, Session, connect
from omsbench.engine import runner
from omsbench.engine.process import alive


def exact_rows(session: Session, schema: str, table: str, order: str | None = None) -> list[tuple]:
    """All rows, with FLOAT widened and geometry as WKB so text formatting cannot hide a difference."""
    columns = session.query(
        "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s"
        " ORDER BY ORDINAL_POSITION",
        (schema, table),
    )
    exprs = []
    for name, kind in columns:
        col = "`" + name.replace("`", "``") + "`"
        if kind.lower() == "float":
            exprs.append(f"{col} + 0e0")
        elif kind.lower() in ("geometry", "point", "polygon", "linestring"):
            exprs.append(f"ST_AsBinary({col})")
        else:
            exprs.append(col)
    qualified = f"`{schema.replace('`', '``')}`.`{table.replace('`', '``')}`"
    rows = session.query(f"SELECT {', '.join(exprs)} FROM {qualified}")
    return sorted(rows, key=repr) if order is None else rows


def assert_same_tables(src: Session, dst: Session, pairs: list[tuple[str, str, str, str]]) -> None:
    for s_schema, s_table, d_schema, d_table in pairs:
        left = exact_rows(src, s_schema, s_table)
        right = exact_rows(dst, d_schema, d_table)
        if left != right:
            only_source = [r for r in left if r not in right][:5]
            only_target = [r for r in right if r not in left][:5]
            raise AssertionError(
                f"{s_schema}.{s_table}: {len(left)} rows on the source, {len(right)} on the target;"
                f" only on the source: {only_source}; only on the target: {only_target}"
            )


@contextmanager
def packet_limit(session: Session, size: int) -> Iterator[int]:
    """The server's max_allowed_packet at ``size`` for sessions opened inside; yields the limit it had."""
    limit = session.scalar("SELECT @@global.max_allowed_packet")
    session.execute(f"SET GLOBAL max_allowed_packet = {size}")
    try:
        yield limit
    finally:
        session.execute(f"SET GLOBAL max_allowed_packet = {limit}")


def wait_inside_a_transaction(mysql: Session, rows: int, applied: str) -> None:
    """Return once a transaction on ``mysql`` has written ``rows`` rows; the ``applied`` query stays 0 until then."""
    deadline = time.monotonic() + 120
    while not (mysql.scalar("SELECT MAX(trx_rows_modified) FROM information_schema.INNODB_TRX") or 0) >= rows:
        assert time.monotonic() < deadline and not mysql.scalar(applied)
        time.sleep(0.15)  # InnoDB refreshes INNODB_TRX only when it was not read for 0.1 s


def make_writable(endpoint: Endpoint) -> None:
    """Undo a switchover's read-only source, so a failed test does not break the ones after it."""
    with connect(endpoint.dsn()) as session:
        session.execute("SET GLOBAL read_only = OFF")


def kill_while_writing(process, project, write: Callable[[], None], kills: int = 3, every: float = 1.0) -> None:
    """Run ``write`` in a thread; meanwhile kill -9 the sync process ``kills`` times, starting it again
    each time as a user would. After each kill the status must say the process died, not "running"."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            write()
        except BaseException as err:  # surfaced below: a writer error must fail the test
            failures.append(err)

    writer = threading.Thread(target=run, daemon=True)
    writer.start()
    for _ in range(kills):
        time.sleep(every)
        pid = process.pid()
        children = _children(pid)
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
        assert project.sync_status()["state"] == "died"
        _wait_gone(children)  # its binlog reader must not live on as an orphan
        process.launch()
    writer.join(300)
    assert not writer.is_alive() and not failures, failures


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(line) for line in found.stdout.split()]


def _wait_gone(pids: list[int], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        living = [pid for pid in pids if alive(pid)]
        if not living:
            return
        assert time.monotonic() < deadline, f"processes {living} outlived the killed sync"
        time.sleep(0.1)


def launched(workspace, project, request):
    """The project's sync as a background process, as `omsbench sync start` runs it; stopped after the test."""
    process = runner.SyncProcess(workspace, project.name)
    process.launch()
    request.addfinalizer(process.stop)
    return process


def writer(endpoint: Endpoint, statements: Iterable[str], pause: float = 0.005) -> Callable[[], None]:
    """A write function for ``kill_while_writing``: each statement in its own transaction, a pause between."""

    def write() -> None:
        with connect(endpoint.dsn()) as session:
            for statement in statements:
                session.execute(statement)
                time.sleep(pause)

    return write
