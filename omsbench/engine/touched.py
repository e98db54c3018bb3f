"""The rows a sync touched since a point, read back from the binlog: what a changed-rows check compares.

Checking only these keys after a period of sync is much cheaper than a full check and catches
what the sync could have got wrong. The binlog is read with the sync's own reader (tracked
schema, filters aside) up to where it ends now, under a replica id of its own so that it does
not disconnect the running sync.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone

from omsbench.endpoints.binlog import earliest, replica_id, require_available
from omsbench.endpoints.binlog_reader import BinlogReader
from omsbench.endpoints.connection import Session
from omsbench.engine import own_tables
from omsbench.engine.mapping import Selection
from omsbench.engine.spec import ProjectSpec
from omsbench.engine.sync import StartAt
from omsbench.engine.tracker import Tracker

LAST_EVENTS = 3


def keys(
    spec: ProjectSpec, source: Session, target: Session, selection: Selection, since: StartAt
) -> dict[tuple[str, str], dict[tuple, list[str]]]:
    """Source (schema, table) -> key -> the last change events that wrote it since ``since``.

    Both keys of a key change count; tables without a key map to an empty dict.
    """
    tracker = Tracker(selection)
    tracker.start(target)
    start = since.position or earliest(source)
    if start.file:
        require_available(source, start)
    reader = BinlogReader(
        spec.source.dsn(),
        source.flavor,
        replica_id(f"{spec.name}:changed-rows"),
        tracker.source_table,
        own_tables.MARKS,
        spec.name,
        start,
        since.timestamp,
        blocking=False,
    )
    keys: dict[tuple[str, str], dict[tuple, list[str]]] = defaultdict(dict)
    try:
        for txn in reader.transactions():
            when = datetime.fromtimestamp(txn.commit_ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            for change in txn.changes:
                tm = tracker.get(change.schema, change.table)
                touched = keys[(change.schema, change.table)]
                label = f"{change.op.value} at {txn.position.file}:{txn.position.pos} ({when} UTC)"
                for image in (change.before, change.after) if tm is not None and tm.source.key else ():
                    if image is not None:
                        history = touched.setdefault(tuple(image[c] for c in tm.source.key), [])
                        history[:] = [*history[-(LAST_EVENTS - 1) :], label]
    finally:
        reader.close()
    return dict(keys)
