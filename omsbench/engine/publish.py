"""Incremental sync into Kafka: the binlog's changes published as Canal or Debezium messages, exactly once.

The sink takes the place of the database applier in the sync loop. In exactly-once delivery a
group's messages and the sink's checkpoint (the position after the group, a record keyed by the
project in the offsets topic) are written in one Kafka transaction, as Kafka Connect's
exactly-once sources do: after a kill -9 the restarted producer fences the old one, the broker
aborts what it left open, and the sink continues from the last committed checkpoint, so a
``read_committed`` consumer sees every change once. At-least-once delivery (for brokers without
transactions) waits for every message's acknowledgement before it writes the checkpoint: a crash
in between repeats messages, and their position headers let consumers drop the repeats.

Without a target database there is no target catalog to track the schema by: the tracked tables
are read from the source's catalog at start and again after each DDL.
"""

from __future__ import annotations

import json
import logging
import time

from kafka.errors import KafkaError, ProducerFencedError

from omsbench.endpoints import kafka
from omsbench.endpoints.connection import Session, connect
from omsbench.endpoints.kafka import KafkaEndpoint
from omsbench.endpoints.mysql import BinlogPosition, master_status
from omsbench.engine import formats
from omsbench.engine.changes import Ddl, Transaction
from omsbench.engine.ddl import Decision
from omsbench.engine.mapping import Selection
from omsbench.engine.sync import Sync, label
from omsbench.engine.tracker import Tracker
from omsbench.exceptions import SyncError

log = logging.getLogger(__name__)


class KafkaSink:
    """Publishes groups of whole source transactions; the sync loop's applier for a Kafka target."""

    def __init__(self, endpoint: KafkaEndpoint, project: str, tracker: Tracker) -> None:
        self.endpoint, self.project, self.tracker = endpoint, project, tracker
        self.transactional = endpoint.delivery == "exactly-once"
        kafka.ensure_topics(endpoint, {endpoint.offsets_topic}, compacted=True)
        self.producer = kafka.producer(endpoint, f"omsbench-{project}" if self.transactional else None)
        self._topics: set[str] = {endpoint.offsets_topic}
        self._tables: tuple[int, dict] = (-1, {})

    def checkpoint(self) -> tuple[BinlogPosition, float | None] | None:
        """The last committed checkpoint. Read after the producer fenced any earlier one, so nothing moves it."""
        last = None
        for record in kafka.read_all(self.endpoint, self.endpoint.offsets_topic):
            if record.key == self.project.encode():
                last = json.loads(record.value)
        if last is None:
            return None
        return BinlogPosition(last["file"], int(last["pos"]), last.get("gtid")), last.get("source_ts")

    def apply(self, group: list[Transaction]) -> float:
        """Publish whole transactions and the checkpoint after them; return the time the broker took them."""
        tables = self._tracked()
        batch = [m for txn in group for m in formats.messages(txn, tables, self.endpoint, self.project)]
        self._publish(batch, group[-1])
        return time.time()

    def checkpoint_only(self, txn: Transaction) -> None:
        """A DDL: its event and the checkpoint after it, together."""
        self._publish(list(formats.messages(txn, self._tracked(), self.endpoint, self.project)), txn)

    def close(self) -> None:
        self.producer.close(timeout=5)

    def _tracked(self) -> dict:
        version, tables = self._tables
        if version != self.tracker.version:
            tables = {key: tm.source for key, tm in self.tracker.tables.items()}
            self._tables = (self.tracker.version, tables)
        return tables

    def _publish(self, batch: list[formats.Message], last: Transaction) -> None:
        self._ensure_topics({m.topic for m in batch})
        mark = {
            "file": last.position.file, "pos": last.position.pos, "gtid": last.gtid or last.position.gtid,
            "source_ts": last.commit_ts, "published_at": time.time(),
        }  # fmt: skip
        try:
            if self.transactional:
                self.producer.begin_transaction()
            sent = [self.producer.send(m.topic, key=m.key, value=m.value, headers=m.headers) for m in batch]
            if not self.transactional:
                self._acknowledged(sent)  # the checkpoint may only follow changes the broker has
            checkpoint = self.producer.send(
                self.endpoint.offsets_topic, key=self.project.encode(), value=json.dumps(mark).encode()
            )
            if self.transactional:
                self.producer.commit_transaction()
            else:
                self._acknowledged([checkpoint])
        except ProducerFencedError as err:
            raise SyncError(
                f"another sink of project {self.project} took over the transactional id omsbench-{self.project}",
                fix="run one sync per project; stop the other one (`omsbench sync stop`)",
            ) from err
        except KafkaError:
            if self.transactional:
                self._abort()
            raise

    def _acknowledged(self, futures: list) -> None:
        self.producer.flush()
        for future in futures:
            future.get(timeout=30)

    def _abort(self) -> None:
        try:
            self.producer.abort_transaction()
        except KafkaError:
            log.warning("aborting the Kafka transaction failed; the broker aborts it when the sink restarts")

    def _ensure_topics(self, topics: set[str]) -> None:
        missing = topics - self._topics
        if missing:
            kafka.ensure_topics(self.endpoint, missing)
            self._topics |= missing


class SourceSchema:
    """The sync loop's DDL handler for a queue: the DDL is published as is, the tracked tables re-read."""

    def __init__(self, source: Session, selection, tracker: Tracker) -> None:
        self.source, self.selection, self.tracker = source, selection, tracker
        self.read()

    def read(self) -> None:
        chosen: Selection = self.selection(self.source)
        self.tracker.selection = chosen
        self.tracker.tables = {(tm.source.schema, tm.source.name): tm for tm in chosen.tables}
        self.tracker.version += 1

    def apply(self, ddl: Ddl, position: str, replacement: str | None = None) -> Decision:
        self.read()
        return Decision(ddl.statement, "published", "sent to the DDL topic as is; the tracked tables were read again")


class QueueSync(Sync):
    """The forward sync (retries, pause, stop, DDL, samples) with a Kafka topic set as its target."""

    def _session(self) -> None:
        with connect(self.spec.source.dsn()) as source:
            tracker = Tracker(Selection())
            schema = SourceSchema(source, self.selection, tracker)
            sink = KafkaSink(self.spec.target, self.project, tracker)
            try:
                start = self._start(source, sink.checkpoint())
                self._replay(source, source, start, sink, schema, {})
            finally:
                sink.close()

    def _handover(self, source: Session) -> BinlogPosition:
        """After a full load, where its snapshot ends; without one, the source's binlog as it is now."""
        try:
            return super()._handover(source)
        except SyncError:
            position = master_status(source)
            log.info("no full load to hand over from: publishing the changes after %s", label(position))
            return position
