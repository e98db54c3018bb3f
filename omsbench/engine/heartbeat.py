"""A heartbeat row on the source, updated every few hundred milliseconds.

Each update is an ordinary binlog transaction carrying the writer's clock, so when the sync
commits it on the target the difference is the end-to-end lag, measured on one clock (the
omsbench host's) however far apart the two databases' clocks are.
"""

from __future__ import annotations

import threading
import time

from omsbench.endpoints.connection import Dsn, Session, connect
from omsbench.engine import own_tables, schema


def install(source: Session) -> None:
    """Create the heartbeat table once (each CREATE ... IF NOT EXISTS would still reach the binlog)."""
    if not schema.exists(source, own_tables.SCHEMA, own_tables.HEARTBEAT):
        own_tables.ensure(source, own_tables.HEARTBEAT)


class Heartbeat(threading.Thread):
    def __init__(self, dsn: Dsn, project: str, every: float) -> None:
        super().__init__(name=f"omsbench-heartbeat-{project}", daemon=True)
        self.dsn, self.project, self.every = dsn, project, every
        self.stopping = threading.Event()
        self.error: Exception | None = None

    def run(self) -> None:
        session = None
        while not self.stopping.is_set():
            try:
                session = session or connect(self.dsn)
                session.upsert("`omsbench`.`heartbeat`", {"project": self.project}, {"ts": time.time()})
                self.error = None
            except Exception as err:  # the source is away: the sync itself reports and retries that
                self.error, session = err, None
            self.stopping.wait(self.every)
        if session is not None:
            session.close()

    def stop(self) -> None:
        self.stopping.set()
