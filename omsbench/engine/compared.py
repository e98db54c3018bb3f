"""Reverse capture by comparison, for the tables triggers cannot capture on OceanBase.

seekdb refuses every write to a table with a spatial column once the table has a trigger, so
such tables get no capture triggers. Leaving them out of the fallback (as ``--without`` does)
would lose their changes on a switch-back; instead the reverse sync compares them with MySQL
every ``switchover.compare_every_s`` seconds with the verify engine (counts and checksums
computed inside both databases per key range, a differing range split until few rows remain)
and applies the rows that differ to MySQL, OceanBase's values winning, geometry with its SRID.

What it costs: the lag of these tables is up to the interval plus one comparison (reverse status
shows how long ago the last pass began), and their changes reach MySQL as the rows are at the
time of the pass, not transaction by transaction, so no transaction order holds between them
and the trigger-captured tables. Each pass applies its fixes in one MySQL transaction that also
writes the reverse sync's checkpoint row, so the forward reader drops it after a switch-back,
as it drops every reverse transaction.
"""

from __future__ import annotations

import time

from omsbench.endpoints.connection import Session
from omsbench.engine import own_tables, verify
from omsbench.engine.mapping import TableMap

MARK = "compared"
"""The state-store mark of the last finished pass: when it began (``started``), how long it took
and how many fix statements it applied (``rows``)."""

_TOUCH = (
    f"INSERT INTO `{own_tables.SCHEMA}`.`{own_tables.REVERSE_CHECKPOINT}` (project, last_seq, transactions, applied_at)"
    " VALUES (%s, 0, '', %s) ON DUPLICATE KEY UPDATE applied_at = VALUES(applied_at)"
)


def compare_pass(oceanbase: Session, mysql: Session, tables: list[TableMap], project: str) -> dict:
    """Compare each table with MySQL and apply what differs, in one MySQL transaction; what it did."""
    started = time.time()
    fixes: list[str] = []
    for tm in tables:
        fixes += verify.verify_table(oceanbase, mysql, tm).fixes
    if fixes:
        verify.apply_fixes(mysql, fixes, (_TOUCH, (project, started)))
    return {"started": started, "took_s": round(time.time() - started, 3), "rows": len(fixes)}


def caught_up(mark: dict | None, since: float) -> bool:
    """Whether a pass that began at or after ``since`` has finished (``mark``: the state store's)."""
    return bool(mark) and mark["started"] >= since
