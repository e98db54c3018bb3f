"""A DDL statement on the target that cannot wait forever, and says what it waited for.

On OceanBase an ALTER TABLE (a foreign key, an index) waits for every transaction open on its
table. A transaction that a server restart orphaned (no session, never ending: see
docs/seekdb.md) made a post-load ``ADD CONSTRAINT`` wait 24 minutes and more, ACTIVE, with nothing
said. While the statement runs, a second session watches the server's open transactions: once the
statement has run ``GRACE_S``, a transaction that was already open when it began, is still open,
and has no session is such an orphan, and the statement is stopped at once; any statement still
running after ``limit_s`` is stopped too. Either way the error names the transactions it waited
for. seekdb finishes an interrupted DDL in the background once those transactions end (measured),
so running the same command again later finds the object made.
"""

from __future__ import annotations

import threading
import time

import pymysql

from omsbench.endpoints import oceanbase
from omsbench.endpoints.connection import Dsn, Flavor, Session, connect
from omsbench.exceptions import StatementStopped

GRACE_S = 30.0
"""How long a statement runs before open transactions are held against it: internal ones end sooner."""
POLL_S = 2.0


def run(session: Session, dsn: Dsn, statement: str, limit_s: float) -> None:
    """Run ``statement`` on ``session`` (reached at ``dsn``); StatementStopped when it was stopped."""
    if session.flavor is not Flavor.OCEANBASE:
        # MySQL and MariaDB end a DDL's metadata-lock wait with error 1205 after lock_wait_timeout
        session.execute(f"SET SESSION lock_wait_timeout = {max(1, int(limit_s))}")
        session.execute(statement)
        return
    me = int(session.scalar("SELECT CONNECTION_ID()"))
    done, verdict = threading.Event(), []  # verdict: why it was stopped, and the transactions it waited for
    watcher = threading.Thread(
        target=_watch, args=(dsn, me, limit_s, done, verdict), name="omsbench-ddl-watch", daemon=True
    )
    watcher.start()
    try:
        session.execute(statement)
    except pymysql.err.MySQLError as err:
        if verdict:
            why, transactions = verdict[0]
            raise StatementStopped(
                f"{_short(statement)} was stopped: {why}",
                fix="end those transactions (one the target kept from before a restart may end late, or never:"
                " docs/seekdb.md), then"
                " run the same command again: the target may finish the statement meanwhile, and an object that"
                " exists counts as made",
                transactions=transactions,
            ) from err
        raise
    finally:
        done.set()
        watcher.join(POLL_S * 3)


def _watch(dsn: Dsn, me: int, limit_s: float, done: threading.Event, verdict: list) -> None:
    with connect(dsn) as watcher:
        before = oceanbase.open_transactions(watcher)
        started = time.monotonic()
        while not done.wait(POLL_S):
            elapsed = time.monotonic() - started
            if elapsed < GRACE_S and elapsed < limit_s:
                continue
            now = oceanbase.open_transactions(watcher)
            waited = {t: s for t, s in before.items() if now.get(t) == s and s != me}
            orphans = sorted(t for t, s in waited.items() if s == 0)
            if orphans or elapsed >= limit_s:
                verdict.append((_why(orphans, waited, elapsed), tuple(orphans or sorted(waited))))
                watcher.execute(f"KILL QUERY {me}")
                return


def _why(orphans: list[int], waited: dict[int, int], elapsed: float) -> str:
    if orphans:
        return (
            f"after {elapsed:.0f} s it still waits for transaction(s) {', '.join(map(str, orphans))}, which no"
            " session owns: the target kept them from before a restart (seekdb ends some late, most never)"
        )
    others = ", ".join(f"{t} (session {s})" for t, s in sorted(waited.items())) or "none seen"
    return f"it ran past its bound of {elapsed:.0f} s; transactions open since it began: {others}"


def _short(statement: str) -> str:
    return statement if len(statement) <= 120 else statement[:117] + "..."
