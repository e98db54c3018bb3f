"""Kafka as the source: Canal or Debezium JSON topics applied to OceanBase or MySQL, exactly once.

A consumer group reads the topics; each poll's records become changes applied by the same
applier as incremental sync, and the next offset of every partition is written in the same
target transaction (``omsbench.kafka_offsets``). The target's offsets are the truth: when the
group hands a partition to a consumer, it seeks there, so a crash between the target commit
and the Kafka offset commit repeats nothing. Offsets are committed to Kafka too, after the
target transaction, so the usual lag tools see the group's progress. More consumers in the
group share the partitions: each row's changes stay in order in its key's partition, and within
one poll the records of all partitions are applied in source order. Across partitions and polls
only per-key order holds, so tables whose foreign keys cascade (the binlog never shows the child
rows a cascade removes) need one topic with one partition, which keeps the source's order whole.

DDL events are recorded, not applied: a schema change from a stream of unknown origin needs a
person. The sync pauses until the target has the new shape and the user resumes it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.structs import OffsetAndMetadata

from omsbench.actions import named
from omsbench.changes import Transaction
from omsbench.endpoints import kafka
from omsbench.endpoints.connection import Session, connect
from omsbench.endpoints.position import BinlogPosition
from omsbench.engine import formats, own_tables
from omsbench.engine.apply import Applier
from omsbench.engine.sync import Connected, SourceChanged, Sync
from omsbench.engine.tracker import Tracker
from omsbench.exceptions import DdlPaused, SyncError

log = logging.getLogger(__name__)
_POLL_MS = 200
TOPIC_POLL = 3.0
"""Seconds between looks for topics that appeared (a new table, a producer's first message)."""
_MAX_RECORDS = 5000


def stored_offsets(target: Session, project: str) -> dict[TopicPartition, int]:
    rows = target.query(
        "SELECT topic, part, next_offset FROM `omsbench`.`kafka_offsets` WHERE project = %s", (project,)
    )
    return {TopicPartition(topic, int(part)): int(offset) for topic, part, offset in rows}


class OffsetsApplier(Applier):
    """The sync applier whose checkpoint is the consumed offsets, one row per partition: ``offsets``
    gives, for the transactions of a group, the next offset of each partition they came from."""

    def __init__(
        self, target: Session, project: str, tracker: Tracker, offsets: Callable[[list[Transaction]], dict]
    ) -> None:
        own_tables.ensure(target, own_tables.KAFKA_OFFSETS)
        super().__init__(target, project, tracker)
        self.offsets = offsets

    def _checkpoint(self, group: list[Transaction]) -> None:
        now = time.time()
        for tp, offset in self.offsets(group).items():
            self.target.upsert(
                "`omsbench`.`kafka_offsets`",
                {"project": self.project, "topic": tp.topic, "part": tp.partition},
                {"next_offset": offset, "source_ts": group[-1].commit_ts, "applied_at": now},
            )


class _SeekToTarget(ConsumerRebalanceListener):
    """Partitions handed to this consumer continue where the target's offsets say."""

    def __init__(self, consumer, target: Session, project: str, assigned: set) -> None:
        self.consumer, self.target, self.project, self.assigned = consumer, target, project, assigned

    def on_partitions_revoked(self, revoked) -> None:
        """Nothing to flush: each poll is applied and committed before the next."""

    def on_partitions_assigned(self, assigned) -> None:
        self.assigned |= set(assigned)
        self.target.conn.commit()  # a fresh read: another member may have moved the offsets
        stored = stored_offsets(self.target, self.project)
        for tp in assigned:
            if tp in stored:
                self.consumer.seek(tp, stored[tp])


@contextlib.contextmanager
def topics_to_database(sync: Sync) -> Iterator[Connected]:
    """A consumer group's topics into the target database."""
    with connect(sync.spec.target.dsn(), autocommit=False) as target:
        tracker = Tracker(sync.selection(target))
        tracker.track_selection()
        topics = Topics(sync, _consumer(sync.spec.source, sync.project), tracker)
        try:
            applier = OffsetsApplier(target, sync.project, tracker, topics.offsets)
            target.conn.commit()
            topics.subscribe(target)
            yield Connected(topics, applier)
        finally:
            topics.close()


class Topics:
    """Kafka topics as the source of a sync (``sync.ChangeSource``): a poll's records are one group.

    When the topics that match the spec change (a new table, a producer's first message), the
    session starts over with a new member, as a rejoin with a changed subscription is not
    dependable on every broker.
    """

    def __init__(self, sync: Sync, consumer, tracker: Tracker) -> None:
        self.sync, self.consumer = sync, consumer
        self.tables = {key: tm.source for key, tm in tracker.tables.items()}
        self.topics: set[str] = set()
        self.assigned: set[TopicPartition] = set()
        """Every partition the group has handed this member."""
        self._looked = time.monotonic()
        self._ends: dict[int, tuple[TopicPartition, int]] = {}
        """Per transaction of the last poll (by id): its partition and the offset after its last record."""

    def subscribe(self, target: Session) -> None:
        """Join the group for the topics the spec names, once some exist; each partition handed to
        this member continues at the offset the target holds."""
        spec = self.sync.spec.source
        while not self.sync.stop_requested():
            self.topics = kafka.matching(spec.topics, self.consumer.topics())
            if self.topics:
                listener = _SeekToTarget(self.consumer, target, self.sync.project, self.assigned)
                self.consumer.subscribe(topics=sorted(self.topics), listener=listener)
                self.sync.set_state(
                    "running", f"consuming {len(self.topics)} topic(s) as group {self.consumer.config['group_id']}"
                )
                return
            self.sync.set_state("running", f"waiting for topics {', '.join(spec.topics)} to exist")
            self.sync.stopping.wait(TOPIC_POLL)

    def next(self, rows: int) -> list[Transaction]:
        """A poll's transactions (up to ``_MAX_RECORDS`` records, whatever ``rows``); the newest
        carries the lag sample."""
        if time.monotonic() - self._looked > TOPIC_POLL:
            if kafka.matching(self.sync.spec.source.topics, self.consumer.topics()) != self.topics:
                raise SourceChanged
            self._looked = time.monotonic()
        batch = self.consumer.poll(timeout_ms=_POLL_MS, max_records=_MAX_RECORDS)
        if not batch:
            return []
        group = self._transactions(batch)
        newest = max(group, key=lambda t: t.commit_ts)
        newest.heartbeat = newest.commit_ts
        return group

    def offsets(self, group: list[Transaction]) -> dict[TopicPartition, int]:
        """The next offset of every partition ``group`` came from: a poll's transactions keep their
        partition's order, so a group cut from a poll ends at its last transaction of each partition."""
        found: dict[TopicPartition, int] = {}
        for txn in group:
            tp, end = self._ends[id(txn)]
            found[tp] = max(end, found.get(tp, 0))
        return found

    def applied(self, group: list[Transaction]) -> None:
        """Committed to Kafka too, after the target: the usual lag tools see the group's progress."""
        self.consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in self.offsets(group).items()})

    def close(self) -> None:
        self.consumer.close(autocommit=False)

    def _transactions(self, batch: dict) -> list[Transaction]:
        """Consecutive records of a partition with the same source position form one transaction."""
        read_at = time.time()
        group: list[Transaction] = []
        self._ends = {}
        for tp, records in batch.items():
            last: Transaction | None = None
            for record in records:
                decoded = formats.decode(record.value, record.headers, self.tables)
                if decoded.ddl is not None:
                    self._ddl_seen(decoded, tp, record.offset)
                position = decoded.position or BinlogPosition(f"{tp.topic}/{tp.partition}", record.offset)
                if last is None or last.position != position:
                    last = Transaction(position, decoded.commit_ts, read_at)
                    group.append(last)
                if decoded.change is not None:
                    last.changes.append(decoded.change)
                self._ends[id(last)] = (tp, record.offset + 1)
        group.sort(key=lambda t: (t.position.file, t.position.pos))  # stable: a partition's own order stays
        return group

    def _ddl_seen(self, decoded: formats.Decoded, tp: TopicPartition, offset: int) -> None:
        where, state, project = f"{tp.topic}/{tp.partition}@{offset}", self.sync.state, self.sync.project
        done = state.ddl(project)
        if len(done) and (done.position == where).any():
            return  # the user resumed after making the target match
        state.record_ddl(project, where, decoded.ddl.statement, "paused", "DDL from Kafka is not applied", "")
        raise DdlPaused(
            f"a DDL arrived on {where}: {decoded.ddl.statement}",
            fix=f"apply the matching change to the target yourself, then {named('sync resume', project)}",
            statement=decoded.ddl.statement,
            position=where,
        )


def _consumer(endpoint, project: str):
    if not endpoint.topics:
        raise SyncError(
            f"the Kafka source of project {project} names no topics",
            fix="list them in source.topics (a name, or re:<regular expression>)",
        )
    return kafka.consumer(
        endpoint,
        group_id=endpoint.group or f"omsbench-{project}",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1500,
        max_poll_interval_ms=300_000,
    )
