"""``omsbench bench kafka``: the Kafka sink's events/s against the raw binlog decode rate, and its lag.

1. Throughput: with the sink paused, ``sysbench oltp_write_only`` writes for S seconds; the sink
   then publishes that backlog (Canal JSON, exactly-once transactions) as fast as it can. Beside
   it, python-mysql-replication decodes the same binlog range with nothing else to do.
   ``published_vs_decode`` is the ratio of the two rates.
2. Lag: sysbench at a fixed rate (half the measured throughput by default) with the sink running;
   the heartbeats give the lag from the source commit to the broker's acknowledgement of the
   Kafka transaction that carried it.
3. Equality: every record is read back from the broker and decoded; the last image of each key must
   equal the source's row.
4. Raw produce, the physical reference: the records read back (the very messages the sink
   rendered) sent again by one kafka-python producer with the sink's settings, no transactions and
   nothing else to do, to topics of their own. ``published_vs_produce`` compares the sink to it.
The broker is the workspace's private one (Tansu, in memory) unless ``KAFKA_BOOTSTRAP`` names a cluster.
"""

from __future__ import annotations

import os
import time

import numpy as np

from omsbench.endpoints import catalog, kafka
from omsbench.endpoints.connection import connect
from omsbench.endpoints.kafka import KafkaEndpoint
from omsbench.endpoints.mysql import master_status
from omsbench.engine import formats, runner
from omsbench.engine import spec as specs
from omsbench.engine.project import Project
from omsbench.engine.steps import Step
from omsbench.engine.sync import reached
from omsbench.engine.workspace import Workspace
from omsbench.lab.bench import cdc, sysbench
from omsbench.lab.servers import KafkaBroker, MariaDB, ensure_programs


def run(workspace: Workspace, seconds: int = 15, threads: int = 4, rate: int = 0, progress: bool = True) -> dict:
    ensure_programs({"sysbench": "sysbench"})
    server = MariaDB(workspace.folder("servers", "mariadb"))
    server.start()
    sysbench.prepare(server, cdc.ROWS, cdc.DATABASE)
    broker = _broker(workspace)
    spec = specs.ProjectSpec(
        name=f"bench-kafka-{int(time.time())}",
        source=server.endpoint(),
        target=broker.model_copy(update={"format": "canal"}),
        objects=specs.Objects(include=[f"{cdc.DATABASE}.*"]),
    )
    project = Project(spec, workspace)
    project.save()
    sync = project.sync()
    thread = runner.run_thread(sync, runner.SyncProcess(workspace, project.name))
    try:
        runner.wait_for(workspace, project.name, {"running"})
        throughput = _throughput(project, sync, server, seconds, threads)
        rate = rate or cdc.default_rate(throughput, "published_events_per_s")
        latency = _latency(sync, server, seconds, threads, rate)
    finally:
        sync.stop()
        thread.join(60)
    check, records = _read_back(project, server, broker)
    raw = _produce(broker, records)
    raw["published_vs_produce"] = round(throughput["published_events_per_s"] / raw["produce_events_per_s"], 3)
    return {
        "seconds": seconds, "sysbench_threads": threads, "broker": broker.kafka,
        **throughput, **raw, **latency, **check,
    }  # fmt: skip


def _produce(broker: KafkaEndpoint, records: list) -> dict:
    """How fast one plain producer with the sink's settings sends the same records (see 4. above)."""
    topics = {record.topic: f"{record.topic}.raw-{int(time.time())}" for record in records}
    kafka.ensure_topics(broker, set(topics.values()))
    producer = kafka.producer(broker)
    try:
        began = time.monotonic()
        for r in records:
            producer.send(topics[r.topic], r.value, r.key, r.headers, partition=r.partition)
        producer.flush()
        took = time.monotonic() - began
    finally:
        producer.close()
    return {"produce_events": len(records), "produce_events_per_s": round(len(records) / took)}


def _read_back(project: Project, server: MariaDB, broker: KafkaEndpoint) -> tuple[dict, list]:
    """What the sink published, read back from the broker and decoded: the last image of every key
    it carried must be the source's row now. A lost, reordered or garbled change shows as a key
    whose row differs (or exists on one side only)."""
    with connect(server.endpoint().dsn()) as source:
        tables = catalog.read(source, [cdc.DATABASE]).tables
        different, records, keys = [], [], 0
        for (schema, name), table in tables.items():
            last: dict[tuple, dict | None] = {}
            for record in kafka.read_all(broker, broker.topic_for(project.name, schema, name)):
                change = formats.decode(record.value, record.headers, tables).change
                last[change.key] = change.after
                records.append(record)
            keys += len(last)
            now = _rows(source, table, list(last))
            different += [f"{name}{key}" for key, row in last.items() if now.get(key) != row]
    found = {"published_records": len(records), "keys_checked": keys, "different_keys": different[:10]}
    return {**found, "equal": not different}, records


def _rows(source, table, keys: list[tuple]) -> dict[tuple, dict]:
    """The source's rows of ``keys``, by key, as the change model holds them."""
    columns = [c.name for c in table.columns]
    found: dict[tuple, dict] = {}
    for start in range(0, len(keys), 1000):
        batch = keys[start : start + 1000]
        where = " OR ".join(["(" + " AND ".join(f"`{k}` = %s" for k in table.key) + ")"] * len(batch))
        query = f"SELECT {', '.join(f'`{c}`' for c in columns)} FROM `{table.schema}`.`{table.name}` WHERE {where}"
        for row in source.query(query, [v for key in batch for v in key]):
            image = dict(zip(columns, row, strict=True))
            found[tuple(image[k] for k in table.key)] = image
    return found


def _broker(workspace: Workspace) -> KafkaEndpoint:
    if os.environ.get("KAFKA_BOOTSTRAP"):
        return KafkaEndpoint(kafka=os.environ["KAFKA_BOOTSTRAP"])
    server = KafkaBroker(workspace.folder("servers", "kafka"))
    server.start()
    return server.endpoint()


def _published(sync, server: MariaDB, timeout: float = 600) -> None:
    """Wait until the sink's checkpoint reaches where the source's binlog ends now."""
    with connect(server.endpoint().dsn()) as source:
        goal = master_status(source)
    deadline = time.monotonic() + timeout
    while not (sync.position and reached(sync.position, goal)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the Kafka sink did not reach {goal} within {timeout:.0f} s")
        time.sleep(0.02)


def _throughput(project: Project, sync, server: MariaDB, seconds: int, threads: int) -> dict:
    _published(sync, server)
    project.state.request(project.name, Step.SYNC, "pause")
    runner.wait_for(project.workspace, project.name, {"paused"})
    with connect(server.endpoint().dsn()) as source:
        start = master_status(source)
        tps = cdc.write_only(server, seconds, threads)
        end = master_status(source)
    decoded_rows, decode_seconds = cdc.library_decode(server, start, end)
    before = sync.meter.total_rows
    began = time.monotonic()
    project.state.request(project.name, Step.SYNC, "resume")
    _published(sync, server)
    took = time.monotonic() - began
    published = sync.meter.total_rows - before
    decode_rate = decoded_rows / decode_seconds
    return {
        "source_transactions_per_s": round(tps),
        "source_transactions": round(tps * seconds),
        "backlog_rows": decoded_rows,
        "published_events": published,
        "published_events_per_s": round(published / took),
        "decode_rows_per_s": round(decode_rate),
        "published_vs_decode": round(published / took / decode_rate, 3),
    }


def _latency(sync, server: MariaDB, seconds: int, threads: int, rate: int) -> dict:
    _published(sync, server)
    mark = len(sync.meter.history)
    reached = cdc.write_only(server, seconds, threads, f"--rate={rate}")
    _published(sync, server)
    lags = np.array([sample[0] for sample in sync.meter.history[mark:]])
    result = {**sysbench.fixed_rate(rate, reached), "heartbeats": len(lags)}
    for p in (50, 99):
        result[f"lag_p{p}_ms"] = round(float(np.percentile(lags, p)), 2) if len(lags) else None
    return result
