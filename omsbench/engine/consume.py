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
person. The sync pauses until the target has the new shape (``omsbench sync resume``).
"""

from __future__ import annotations

import logging
import time

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.structs import OffsetAndMetadata

from omsbench.endpoints import kafka
from omsbench.endpoints.connection import Session, connect
from omsbench.endpoints.position import BinlogPosition
from omsbench.engine import formats, own_tables
from omsbench.engine.apply import Applier
from omsbench.engine.changes import Transaction
from omsbench.engine.sync import Sync
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
    """The sync applier whose checkpoint is the consumed offsets, one row per partition."""

    offsets: dict[TopicPartition, int]

    def __init__(self, target: Session, project: str, tracker: Tracker) -> None:
        own_tables.ensure(target, own_tables.KAFKA_OFFSETS)
        super().__init__(target, project, tracker)
        self.offsets = {}

    def _checkpoint(self, group: list[Transaction]) -> None:
        now = time.time()
        for tp, offset in self.offsets.items():
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


class KafkaSourceSync(Sync):
    """The sync loop (retries, pause, stop, samples) over a consumer group instead of the binlog."""

    def __init__(self, spec, state, selection) -> None:
        super().__init__(spec, state, selection)
        self.assigned: set[TopicPartition] = set()
        """Every partition the group has handed this member."""

    def _session(self) -> None:
        endpoint = self.spec.source
        with connect(self.spec.target.dsn(), autocommit=False) as target:
            tracker = Tracker(self.selection(target))
            tracker.track_selection()
            applier = OffsetsApplier(target, self.project, tracker)
            target.conn.commit()
            consumer = _consumer(endpoint, self.project)
            try:
                topics = self._wait_for_topics(consumer)
                if topics:
                    consumer.subscribe(
                        topics=sorted(topics), listener=_SeekToTarget(consumer, target, self.project, self.assigned)
                    )
                    self._set("running", f"consuming {len(topics)} topic(s) as group {consumer.config['group_id']}")
                    self._consume(consumer, applier, topics)
            finally:
                consumer.close(autocommit=False)

    def _wait_for_topics(self, consumer) -> set[str]:
        """The topics the spec names that exist; none yet (a producer that has not written) is waited for."""
        while not self._stop_requested():
            found = kafka.matching(self.spec.source.topics, consumer.topics())
            if found:
                return found
            self._set("running", f"waiting for topics {', '.join(self.spec.source.topics)} to exist")
            self.stopping.wait(TOPIC_POLL)
        return set()

    def _consume(self, consumer, applier: OffsetsApplier, topics: set[str]) -> None:
        """Apply polls until stopped, or until the matching topics change: the session then starts over
        with a new member, as a rejoin with a changed subscription is not dependable on every broker."""
        tables = {key: tm.source for key, tm in applier.tracker.tables.items()}
        looked = time.monotonic()
        while not self._stop_requested():
            if time.monotonic() - looked > TOPIC_POLL:
                if kafka.matching(self.spec.source.topics, consumer.topics()) != topics:
                    return
                looked = time.monotonic()
            if self._paused():
                continue
            batch = consumer.poll(timeout_ms=_POLL_MS, max_records=_MAX_RECORDS)
            if not batch:
                self._maybe_sample()
                continue
            started = time.monotonic()
            group = self._transactions(batch, tables)
            applier.offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
            committed = applier.apply(group)
            consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in applier.offsets.items()})
            self.meter.applied(sum(t.rows for t in group), len(group), time.monotonic() - started)
            newest = max(group, key=lambda t: t.commit_ts)
            self.meter.heartbeat(newest.commit_ts, newest.read_at, committed)
            self.position = newest.position
            self._maybe_sample()

    def _transactions(self, batch: dict, tables: dict) -> list[Transaction]:
        """Consecutive records of a partition with the same source position form one transaction."""
        read_at = time.time()
        group: list[Transaction] = []
        for tp, records in batch.items():
            last: Transaction | None = None
            for record in records:
                decoded = formats.decode(record.value, record.headers, tables)
                if decoded.ddl is not None:
                    self._ddl_seen(decoded, tp, record.offset)
                position = decoded.position or BinlogPosition(f"{tp.topic}/{tp.partition}", record.offset)
                if last is None or last.position != position:
                    last = Transaction(position, decoded.commit_ts, read_at)
                    group.append(last)
                if decoded.change is not None:
                    last.changes.append(decoded.change)
        group.sort(key=lambda t: (t.position.file, t.position.pos))  # stable: a partition's own order stays
        return group

    def _ddl_seen(self, decoded: formats.Decoded, tp: TopicPartition, offset: int) -> None:
        where = f"{tp.topic}/{tp.partition}@{offset}"
        done = self.state.ddl(self.project)
        if len(done) and (done.position == where).any():
            return  # the user resumed after making the target match
        self.state.record_ddl(self.project, where, decoded.ddl.statement, "paused", "DDL from Kafka is not applied", "")
        raise DdlPaused(
            f"a DDL arrived on {where}: {decoded.ddl.statement}",
            fix="apply the matching change to the target yourself, then `omsbench sync resume`",
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
