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

import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

from kafka.errors import KafkaError, MessageSizeTooLargeError, ProducerFencedError

from omsbench.actions import named
from omsbench.changes import Ddl, Transaction
from omsbench.endpoints import kafka, rocketmq
from omsbench.endpoints.catalog import SYSTEM_SCHEMAS
from omsbench.endpoints.connection import Session, connect
from omsbench.endpoints.kafka import KafkaEndpoint
from omsbench.endpoints.mysql import master_status
from omsbench.endpoints.position import BinlogPosition
from omsbench.endpoints.queue import QueueEndpoint
from omsbench.endpoints.rocketmq import RocketMQEndpoint
from omsbench.engine import capture, formats, full
from omsbench.engine.ddl import Decision, tables_touched
from omsbench.engine.mapping import chooses
from omsbench.engine.reverse import recapture
from omsbench.engine.sync import Connected, Sync, give_up, label, reached
from omsbench.engine.tracker import Tracker
from omsbench.exceptions import SyncError

log = logging.getLogger(__name__)
_MARK = "rocketmq"
_FIRST = "first-start"
"""Where a queue sync without a full load first began: the state-store mark its later starts go back to."""


def read_mark(endpoint: KafkaEndpoint, project: str) -> dict | None:
    """The project's last committed record in the offsets topic."""
    last = None
    for record in kafka.read_all(endpoint, endpoint.offsets_topic):
        if record.key == project.encode():
            last = json.loads(record.value)
    return last


def committed_mark(spec, state) -> dict | None:
    """The project's last committed mark, wherever its target keeps it."""
    if isinstance(spec.target, RocketMQEndpoint):
        return state.mark(spec.name, _MARK)
    return read_mark(spec.target, spec.name)


def wait_caught_up(source: Session, spec, state, timeout: float = 120, stalled=None) -> BinlogPosition:
    """Block until the sink's committed mark reaches where the source's binlog ends now."""
    goal = master_status(source)
    project = spec.name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = committed_mark(spec, state)
        if found and reached(BinlogPosition(found["file"], int(found["pos"])), goal):
            return BinlogPosition(found["file"], int(found["pos"]), found.get("gtid"))
        give_up(stalled, project, goal)
        time.sleep(0.1)
    raise SyncError(
        f"the Kafka sink of {project} did not reach {label(goal)} within {timeout:.0f} s",
        fix=f"see {named('sync status', project)}: it may be paused, failing or far behind",
    )


class QueueSink:
    """Publishes groups of whole source transactions; the sync loop's applier for a message-queue target.

    Subclasses send a batch of messages and the mark after it (where the stream continues) as
    their broker allows: in one Kafka transaction, or acknowledged messages first.
    """

    def __init__(self, endpoint: QueueEndpoint, project: str, tracker: Tracker, name_transactions: bool) -> None:
        self.endpoint, self.project, self.tracker = endpoint, project, tracker
        self.name_transactions = name_transactions
        """Also list the group's transaction ids in the mark (OceanBase's capture purges by them)."""
        self.publishes: Callable[[Ddl], bool] = lambda ddl: True
        """Which DDL events to send; the sync sets it to what concerns the project."""
        self._tables: tuple[int, dict] = (-1, {})

    def mark(self) -> dict | None:
        """The last committed mark: position, commit time and, with name_transactions, the transactions."""
        raise NotImplementedError

    def checkpoint(self) -> tuple[BinlogPosition, float | None] | None:
        last = self.mark()
        if last is None:
            return None
        return BinlogPosition(last["file"], int(last["pos"]), last.get("gtid")), last.get("source_ts")

    def apply(self, group: list[Transaction]) -> float:
        """Publish whole transactions and the mark after them; return the time the broker took them."""
        tables = self._tracked()
        batch = [m for txn in group for m in formats.messages(txn, tables, self.endpoint, self.project)]
        self._publish(batch, self._mark(group))
        return time.time()

    def checkpoint_only(self, txn: Transaction, sql: str | None = None) -> None:
        """A DDL: its event, when it concerns the project, and the mark after it. A queue has no
        statement to run in a change's place (``sql``): that decision is refused, not dropped."""
        if sql:
            raise SyncError(
                f"project {self.project} publishes to a queue, which cannot run SQL in place of a change",
                fix=f"skip the change instead ({named('sync resolve', self.project, '--skip')})",
            )
        publish = txn.ddl is not None and self.publishes(txn.ddl)
        batch = list(formats.messages(txn, self._tracked(), self.endpoint, self.project)) if publish else []
        self._publish(batch, self._mark([txn]))

    def close(self) -> None:
        raise NotImplementedError

    def _publish(self, batch: list[formats.Message], mark: dict) -> None:
        raise NotImplementedError

    def _mark(self, group: list[Transaction]) -> dict:
        last = group[-1]
        mark = {
            "file": last.position.file, "pos": last.position.pos, "gtid": last.gtid or last.position.gtid,
            "source_ts": last.commit_ts, "published_at": time.time(),
        }  # fmt: skip
        if self.name_transactions:
            mark["transactions"] = [t.gtid for t in group]
        return mark

    def _tracked(self) -> dict:
        version, tables = self._tables
        if version != self.tracker.version:
            tables = {key: tm.source for key, tm in self.tracker.tables.items()}
            self._tables = (self.tracker.version, tables)
        return tables


class KafkaSink(QueueSink):
    """Messages and the mark (a record keyed by the project in the offsets topic) in one Kafka transaction."""

    def __init__(self, endpoint: KafkaEndpoint, project: str, tracker: Tracker, name_transactions: bool = False):
        super().__init__(endpoint, project, tracker, name_transactions)
        self.transactional = endpoint.delivery == "exactly-once"
        kafka.ensure_topics(endpoint, {endpoint.offsets_topic}, compacted=True)
        self.producer = kafka.producer(endpoint, f"omsbench-{project}" if self.transactional else None)
        self._topics: set[str] = {endpoint.offsets_topic}

    def mark(self) -> dict | None:
        """Read after the producer fenced any earlier one, so nothing moves it meanwhile."""
        return read_mark(self.endpoint, self.project)

    def close(self) -> None:
        self.producer.close(timeout=5)

    def _publish(self, batch: list[formats.Message], mark: dict) -> None:
        self._ensure_topics({m.topic for m in batch})
        try:
            if self.transactional:
                self.producer.begin_transaction()
            sent = [self.producer.send(m.topic, key=m.key, value=m.value, headers=m.headers) for m in batch]
            if not self.transactional:
                self._acknowledged(sent)  # the mark may only follow changes the broker has
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
                fix=f"run one sync per project; stop the other one ({named('sync stop', self.project)})",
            ) from err
        except MessageSizeTooLargeError as err:
            if self.transactional:
                self._abort()
            raise self._too_large(batch) from err
        except KafkaError:
            if self.transactional:
                self._abort()
            raise

    def _too_large(self, batch: list[formats.Message]) -> SyncError:
        """The client or the broker refused a record: name it, since kafka-python's text blames the user's settings."""
        biggest = max(batch, key=lambda m: len(m.value))
        return SyncError(
            f"a change for topic {biggest.topic} is a record of {len(biggest.value) / (1 << 20):.1f} MB: over what"
            f" the sink may send (target.max_message_bytes, {self.endpoint.max_message_bytes / (1 << 20):.1f} MB)"
            " or what the broker or topic accepts (message.max.bytes, max.message.bytes)",
            fix="raise target.max_message_bytes in the spec, and the broker's and the topic's limits where they are"
            f" lower, then {named('sync start', self.project)}: it continues from its checkpoint",
        )

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


class RocketMQSink(QueueSink):
    """At least once: every message of a group is acknowledged by the proxy before the mark, kept in the
    state store, moves past the group. A crash in between sends the group again; the messages' position
    properties let consumers drop the repeats. Messages of one key are sent in order, one after another,
    as FIFO ordering requires."""

    def __init__(self, endpoint: RocketMQEndpoint, project: str, tracker: Tracker, state, name_transactions=False):
        super().__init__(endpoint, project, tracker, name_transactions)
        self.state = state
        topics = {endpoint.topic_for(project, s, t) for s, t in tracker.tables} | {
            endpoint.ddl_topic_for(project, s, None) for s, _ in tracker.tables
        }
        self.producer = rocketmq.producer(endpoint, sorted(topics))

    def mark(self) -> dict | None:
        return self.state.mark(self.project, _MARK)

    def close(self) -> None:
        self.producer.shutdown()

    def _publish(self, batch: list[formats.Message], mark: dict) -> None:
        endpoint: RocketMQEndpoint = self.endpoint
        for m in batch:
            key = m.key.decode()
            group = (key if m.table else m.database or "ddl") if endpoint.fifo else None
            properties = {name: value.decode() for name, value in m.headers}
            tag = endpoint.tag_for(m.database, m.table) if m.table else "ddl"
            self.producer.send(rocketmq.message(m.topic, m.value, tag, key, group, properties))
        self.state.save_mark(self.project, _MARK, mark)


def sink(spec, state, tracker: Tracker, name_transactions: bool = False) -> QueueSink:
    """The sink for the project's message-queue target."""
    if isinstance(spec.target, RocketMQEndpoint):
        return RocketMQSink(spec.target, spec.name, tracker, state, name_transactions)
    return KafkaSink(spec.target, spec.name, tracker, name_transactions)


class SourceSchema:
    """The sync loop's DDL handler for a queue: the DDL is published as is, its tables re-read.

    A queue has no catalog that shows the schema at the stream's position, and the source's
    catalog shows the schema of now. So only the tables a DDL names are read again (when the
    sync lags behind several DDL on one table, it may see a later shape early), and the tracked
    tables are saved in the state store at the start position and after each DDL: a restart
    takes the ones saved at or before its checkpoint, so rows written before a DDL decode with
    the columns they had.
    """

    def __init__(self, source: Session, spec, selection, tracker: Tracker, state) -> None:
        self.source, self.spec, self.selection, self.tracker, self.state = source, spec, selection, tracker, state

    def start_at(self, position: BinlogPosition) -> None:
        saved = self.state.schema_at(self.spec.name, position.file, position.pos)
        if saved is not None:
            self.tracker.tables = saved
            self.tracker.version += 1
        self._save(position)

    def concerns(self, ddl: Ddl) -> bool:
        """Whether a DDL is about the project's tables; omsbench's own and other databases' DDL is not published."""
        touched = tables_touched(ddl)
        if touched is None:  # unparsed: publish it when it names a tracked table, to be safe
            return any(tm.source.name.lower() in ddl.statement.lower() for tm in self.tracker.tables.values())
        return any(
            schema.lower() not in SYSTEM_SCHEMAS and chooses(self.spec, schema, name) for schema, name in touched
        )

    def apply(self, ddl: Ddl, position: str, replacement: str | None = None) -> Decision:
        if not self.concerns(ddl):
            return Decision(ddl.statement, "ignored", "touches no table of this project; not published")
        touched = tables_touched(ddl) or list(self.tracker.tables)
        now = {(tm.source.schema, tm.source.name): tm for tm in self.selection(self.source).tables}
        for name in touched:
            if name in now:
                self.tracker.tables[name] = now[name]
            else:
                self.tracker.tables.pop(name, None)
        self.tracker.version += 1
        file, _, pos = position.rpartition(":")
        self._save(BinlogPosition(file, int(pos)))
        return Decision(ddl.statement, "published", "sent to the DDL topic as is; its tables were read again")

    def _save(self, position: BinlogPosition) -> None:
        self.state.save_schema(self.spec.name, position.file, position.pos, self.tracker.tables)


@contextlib.contextmanager
def oceanbase_to_queue(sync: Sync) -> Iterator[Connected]:
    """OceanBase (no binlog) to a queue: the capture triggers' change log, published in commit order.

    The checkpoint names the OceanBase transactions of the last group; after a crash they are
    purged from the change log instead of being published again. Triggers are installed when the
    sync starts, so changes from then on are published. A DDL that changes a table's columns is
    followed: its triggers are rebuilt and later rows carry the new columns.
    """
    with connect(sync.spec.source.dsn()) as oceanbase:
        selection = sync.selection(oceanbase)
        tables = [tm.source for tm in selection.tables]
        refused = capture.uncapturable(tables)
        if refused:
            raise SyncError(
                "OceanBase cannot capture " + "; ".join(f"{t}: {why}" for t, why in refused.items()),
                fix="exclude these tables in objects.exclude",
            )
        capture.install(oceanbase, sync.project, tables)
        tracker = Tracker(selection)
        tracker.track_selection()

        def follow_ddl(session: Session, shapes: dict, schemas: set) -> None:
            """A queue has no columns to agree with: follow the new shape and go on."""
            for table in recapture(session, sync.project, shapes, schemas):
                shapes[(table.schema, table.name)] = table
                tm = tracker.tables[(table.schema, table.name)]
                tracker.tables[(table.schema, table.name)] = replace(tm, source=table)
                tracker.version += 1

        published_to = sink(sync.spec, sync.state, tracker, name_transactions=True)
        try:
            published = (published_to.mark() or {}).get("transactions", [])
            capture.purge(oceanbase, sync.project, published)  # committed to the queue before a crash
            shapes, schemas = {(t.schema, t.name): t for t in tables}, {t.schema for t in tables}
            sync.set_state("running", "publishing OceanBase's captured changes")
            changes = capture.ChangeLog(oceanbase, sync.project, shapes, schemas, follow_ddl, pieces=False)
            yield Connected(changes, published_to)
        finally:
            published_to.close()


@contextlib.contextmanager
def binlog_to_queue(sync: Sync) -> Iterator[Connected]:
    """The forward sync with a topic set as its target: whole transactions (a queue takes no pieces)."""
    with connect(sync.spec.source.dsn()) as source:
        tracker = Tracker(sync.selection(source))
        tracker.track_selection()
        schema = SourceSchema(source, sync.spec, sync.selection, tracker, sync.state)
        publisher = sink(sync.spec, sync.state, tracker)
        publisher.publishes = schema.concerns
        try:
            start = sync.start_position(source, publisher.checkpoint(), functools.partial(first_position, sync, source))
            schema.start_at(start[0])
            with sync.reading(sync.spec.source, source, start, tracker, pieces=False) as reader:
                yield Connected(reader, publisher, schema, judge=source)
        finally:
            publisher.close()


def first_position(sync: Sync, source: Session) -> BinlogPosition:
    """After a full load, where its snapshot ends; without one, where the binlog ended when this
    project's sync first started.

    That place is kept in the state store before anything is read: a sync that dies before its
    first mark (a kill -9, a crash while it starts) starts there again. Taking the binlog's end
    of the moment at every start would skip, without a word, what was written in between.
    """
    handed_over = full.handover(sync.state, sync.project)
    if handed_over is not None:
        return handed_over
    first = sync.state.mark(sync.project, _FIRST)
    if first is None:
        first = master_status(source).as_dict()
        sync.state.save_mark(sync.project, _FIRST, first)
    position = BinlogPosition(**first)
    log.info("no full load to hand over from: publishing the changes after %s", label(position))
    return position
