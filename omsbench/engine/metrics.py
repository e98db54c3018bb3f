"""Lag by stage and rates of a running sync, sampled into the state store every second.

Stages, from one heartbeat: read = decoded by the reader - written on the source; apply =
committed on the target - decoded; lag = committed - written (end to end).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from omsbench.engine.state import StateStore

STAGE = "sync"


@dataclass
class Meter:
    state: StateStore
    project: str
    stage: str = STAGE
    """The step the samples belong to: ``sync`` (forward) or ``reverse``."""
    every: float = 1.0
    rows: int = 0
    transactions: int = 0
    lags: list[tuple[float, float, float]] = field(default_factory=list)
    """(lag, read, apply) in ms of every heartbeat since the last sample."""
    history: list[tuple[float, float, float]] = field(default_factory=list)
    """Every heartbeat of this run, for benchmarks."""
    groups: int = 0
    total_rows: int = 0
    apply_seconds: float = 0.0
    """Time the applying thread spent applying; the rest it waited for the reader."""
    _since: float = field(default_factory=time.monotonic)

    def applied(self, rows: int, transactions: int, seconds: float, commits: int = 1) -> None:
        self.rows += rows
        self.total_rows += rows
        self.groups += commits
        self.transactions += transactions
        self.apply_seconds += seconds

    def heartbeat(self, written: float, read_at: float, committed: float) -> None:
        sample = ((committed - written) * 1000, (read_at - written) * 1000, (committed - read_at) * 1000)
        self.lags.append(sample)
        self.history.append(sample)

    def due(self) -> bool:
        return time.monotonic() - self._since >= self.every

    def sample(self) -> dict[str, float]:
        """Write one sample (rates since the last one, lag percentiles) and start a new window."""
        seconds = max(time.monotonic() - self._since, 1e-6)
        values = {
            "rows_per_s": self.rows / seconds,
            "transactions_per_s": self.transactions / seconds,
            "transactions_per_commit": self.transactions / max(self.groups, 1),
        }
        if self.lags:
            lags = np.array(self.lags)
            for i, name in enumerate(("lag", "read", "apply")):
                values[f"{name}_p50_ms"] = float(np.percentile(lags[:, i], 50))
                values[f"{name}_p99_ms"] = float(np.percentile(lags[:, i], 99))
        self.state.add_metrics(self.project, self.stage, values)
        self.rows = self.transactions = self.groups = 0
        self.lags = []
        self._since = time.monotonic()
        return values
