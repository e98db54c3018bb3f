"""Kafka as an endpoint: where the broker is, how its topics are named, producers and consumers.

``KafkaEndpoint`` is configuration, written in a project spec as the target (the change stream
published to topics) or as the source (topics applied to a database). The message formats
themselves live in ``engine.formats``: this module only moves bytes.
"""

from __future__ import annotations

import contextlib
import re
import time
from typing import Literal

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError
from pydantic import Field, field_validator

from omsbench.actions import named
from omsbench.endpoints.queue import QueueEndpoint
from omsbench.exceptions import ConnectError

_READ_IDLE = 1.0
"""Seconds without a new record after which a topic counts as read to its end. End offsets are not
asked for: some Kafka-protocol brokers report them wrong, and what counts is what a consumer gets."""


class KafkaEndpoint(QueueEndpoint):
    """A Kafka cluster and how changes are laid out on it (see ``QueueEndpoint`` for the topic patterns)."""

    kafka: str = Field(description="bootstrap servers, host:port[,host:port]")
    partitions: int = Field(3, ge=1, le=10_000)
    replication_factor: int = Field(1, ge=1, le=16)
    delivery: Literal["exactly-once", "at-least-once"] = "exactly-once"
    """exactly-once: the changes and the sink's checkpoint commit in one Kafka transaction."""
    max_message_bytes: int = Field(1 << 20, ge=1 << 10, le=1 << 30)
    """The largest record the sink sends (the producer's ``max_request_size``); topics omsbench
    creates get it as ``max.message.bytes``. The broker's ``message.max.bytes`` must allow it too."""
    offsets_topic: str = "omsbench-offsets"
    topics: list[str] = Field(default_factory=list)
    """As a source: the topics (or regular expressions, ``re:...``) the consumer group reads."""
    group: str | None = None
    """As a source: the consumer group id; the project name when not given."""

    @field_validator("kafka")
    @classmethod
    def _check_servers(cls, servers: str) -> str:
        for server in servers.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port; write e.g. 127.0.0.1:9092 (several: a,b)")
        return servers

    @property
    def servers(self) -> list[str]:
        return [s.strip() for s in self.kafka.split(",")]

    @property
    def url(self) -> str:
        return f"kafka://{self.kafka}"


def _unreachable(endpoint: KafkaEndpoint, err: Exception) -> ConnectError:
    return ConnectError(
        f"cannot reach the Kafka cluster at {endpoint.kafka}: {err}",
        fix=f"start the broker (for the private one: {named('servers start', None, '--kafka')}) or fix target.kafka",
    )


def producer(endpoint: KafkaEndpoint, transactional_id: str | None = None) -> KafkaProducer:
    """An idempotent producer; with a transactional id, one whose open transaction a restart aborts."""
    try:
        made = KafkaProducer(
            bootstrap_servers=endpoint.servers,
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            batch_size=256 << 10,
            transactional_id=transactional_id,
            max_in_flight_requests_per_connection=5,
            max_request_size=endpoint.max_message_bytes,
        )
    except KafkaTimeoutError as err:
        raise _unreachable(endpoint, err) from err
    if transactional_id:
        made.init_transactions()  # fences an earlier producer with this id and aborts what it left open
    return made


def consumer(endpoint: KafkaEndpoint, **settings) -> KafkaConsumer:
    """A consumer that sees only committed transactions and commits offsets itself."""
    try:
        return KafkaConsumer(
            bootstrap_servers=endpoint.servers,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **settings,
        )
    except KafkaTimeoutError as err:
        raise _unreachable(endpoint, err) from err


def ensure_topics(endpoint: KafkaEndpoint, names: set[str], compacted: bool = False) -> None:
    """Create the topics that do not exist yet, with the endpoint's partitions and replication."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=endpoint.servers)
    except KafkaTimeoutError as err:
        raise _unreachable(endpoint, err) from err
    try:
        missing = names - set(admin.list_topics())
        configs = {"max.message.bytes": str(endpoint.max_message_bytes)}
        if compacted:
            configs["cleanup.policy"] = "compact"
        partitions = 1 if compacted else endpoint.partitions
        for name in sorted(missing):
            with contextlib.suppress(TopicAlreadyExistsError):  # another sink created it meanwhile
                admin.create_topics([NewTopic(name, partitions, endpoint.replication_factor, topic_configs=configs)])
    except KafkaError as err:
        raise ConnectError(
            f"cannot create topics {sorted(names)} on {endpoint.kafka}: {err}",
            fix="create them by hand or give the user the right to create topics",
        ) from err
    finally:
        admin.close()


def read_all(endpoint: KafkaEndpoint, topic: str, idle: float = _READ_IDLE) -> list:
    """Every committed record of a topic written before this call, from the beginning.

    A partition is read when it shows a record written after the call began (a busy topic never
    goes quiet) or when it stays quiet for ``idle`` seconds.
    """
    began = int(time.time() * 1000)
    reader = consumer(endpoint)
    try:
        partitions = {TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or set()}
        reader.assign(sorted(partitions))
        reader.seek_to_beginning()
        records, reached, quiet_since = [], set(), time.monotonic()
        while reached != partitions and time.monotonic() - quiet_since < idle:
            batch = reader.poll(timeout_ms=200)
            for part, found in batch.items():
                records.extend(r for r in found if r.timestamp < began)
                if found[-1].timestamp >= began:
                    reached.add(part)
                    reader.pause(part)
            if batch:
                quiet_since = time.monotonic()
        return records
    finally:
        reader.close()


def topics(endpoint: KafkaEndpoint) -> set[str]:
    """The names of the cluster's topics."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=endpoint.servers)
    except KafkaTimeoutError as err:
        raise _unreachable(endpoint, err) from err
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def matching(wanted: list[str], existing: set[str]) -> set[str]:
    """Topics named in ``wanted`` (a name, or ``re:`` and a regular expression matching whole names)."""
    patterns = [re.compile(w[3:]) for w in wanted if w.startswith("re:")]
    return {t for t in existing if t in wanted or any(p.fullmatch(t) for p in patterns)}
