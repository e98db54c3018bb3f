"""Kafka as a target and as a source, against a real Kafka-protocol broker (Tansu, or KAFKA_BOOTSTRAP).

The formats are checked against the fields of the tools' published examples: Canal's flat
message (canal-admin docs, "FlatMessage") and the Debezium MySQL connector's change event
(Debezium documentation, "MySQL connector: change events").
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter, defaultdict
from decimal import Decimal

import pytest
from conftest import make_project
from helpers import assert_same_tables, kill_while_writing, launched, writer

from omsbench.actions import named
from omsbench.endpoints import kafka
from omsbench.endpoints.connection import connect
from omsbench.endpoints.kafka import KafkaEndpoint
from omsbench.endpoints.position import BinlogPosition
from omsbench.engine import consume, formats, lifecycle, publish, release, runner
from omsbench.engine.steps import Step
from omsbench.engine.sync import StartAt
from omsbench.exceptions import ConnectError, PrecheckFailed, StateError
from omsbench.lab import sampledb
from omsbench.lab.servers import KafkaBroker
from omsbench.lab.workload import Workload
from omsbench.workbench.panel import ControlPanel

CANAL_EXAMPLE = {  # a flat message as Canal's Kafka producer writes it
    "data": [{"id": "1", "name": "a"}], "database": "test", "es": 1589373515000, "id": 3, "isDdl": False,
    "mysqlType": {"id": "int(11)", "name": "varchar(20)"}, "old": None, "pkNames": ["id"], "sql": "",
    "sqlType": {"id": 4, "name": 12}, "table": "t", "ts": 1589373515477, "type": "INSERT",
}  # fmt: skip
DEBEZIUM_EXAMPLE = {  # the payload of a Debezium MySQL connector create event
    "before": None, "after": {"id": 1004}, "op": "c", "ts_ms": 1465581029523, "transaction": None,
    "source": {"version": "2.5.0.Final", "connector": "mysql", "name": "mysql-server-1", "ts_ms": 1465581029100,
               "snapshot": "false", "db": "inventory", "sequence": None, "table": "customers", "server_id": 223344,
               "gtid": None, "file": "mysql-bin.000003", "pos": 484, "row": 0, "thread": None, "query": None},
}  # fmt: skip


@pytest.fixture(scope="session")
def broker(servers_root) -> KafkaEndpoint:
    if os.environ.get("KAFKA_BOOTSTRAP"):
        yield KafkaEndpoint(kafka=os.environ["KAFKA_BOOTSTRAP"])
        return
    server = KafkaBroker(servers_root / "kafka")
    server.start()
    yield server.endpoint()
    server.stop()


def _publisher(workspace, source, broker, database, **target):
    endpoint = {**broker.model_dump(exclude_none=True), **target}
    return make_project(workspace, source, KafkaEndpoint(**endpoint), name=database,
                        objects={"include": [f"{database}.*"]})  # fmt: skip


def _records(broker, prefix: str) -> dict[str, list]:
    """Every committed record of the project's topics, by topic."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=broker.servers)
    topics = [t for t in admin.list_topics() if t == prefix or t.startswith(prefix + ".")]
    admin.close()
    return {topic: kafka.read_all(broker, topic) for topic in topics}


def _published_until(broker, prefix: str, done, timeout: float = 60) -> dict[str, list]:
    deadline = time.monotonic() + timeout
    while True:
        found = _records(broker, prefix)
        if done(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _values(records) -> list[dict]:
    return [json.loads(r.value) for r in records]


def _positions(records) -> list[tuple[bytes, bytes]]:
    return [(dict(r.headers)[formats.POSITION_HEADER], dict(r.headers)[formats.INDEX_HEADER]) for r in records]


def _running(project, start=None):
    sync = project.sync(start)
    thread = runner.run_thread(sync, runner.SyncProcess(project.workspace, project.name))
    runner.wait_for(project.workspace, project.name, {"running"})
    return sync, thread


@pytest.mark.parametrize("fmt", ["canal", "debezium", "debezium-schema"])
def test_each_operation_and_type_gives_the_published_fields(workspace, source, src, broker, unique, fmt):
    database = unique("kfmt")
    sampledb.create(src, rows=300, database=database)
    project = _publisher(workspace, source, broker, database, format=fmt)
    sync, thread = _running(project)
    try:
        src.execute(f"INSERT INTO `{database}`.type_zoo SELECT id + 5000, c_tinyint, c_utinyint, c_smallint,"
                    " c_usmallint, c_mediumint, c_int, c_uint, c_bigint, c_ubigint, c_bit, c_decimal, c_float,"
                    " c_double, c_date, c_time, c_datetime, c_timestamp, c_year, c_char, c_varchar, c_text, c_binary,"
                    f" c_varbinary, c_blob, c_json, c_enum, c_set, c_geometry FROM `{database}`.type_zoo")  # fmt: skip
        src.execute(f"UPDATE `{database}`.type_zoo SET c_varchar = 'changed' WHERE id = 5001")
        src.execute(f"DELETE FROM `{database}`.type_zoo WHERE id = 5002")
        src.execute(f"ALTER TABLE `{database}`.products ADD COLUMN note VARCHAR(10)")
        zoo = f"{database}.{database}.type_zoo"
        found = _published_until(
            broker, database, lambda f: len(f.get(zoo, [])) >= 2 * 3 + 2 and len(f.get(database, [])) >= 1
        )
    finally:
        sync.stop()
        thread.join(60)
    rows = {r[0]: r for r in src.query(f"SELECT id FROM `{database}`.type_zoo")}
    values = _values(found[zoo])
    payloads = [v["payload"] if fmt == "debezium-schema" else v for v in values]
    if fmt == "canal":
        assert all(set(v) == set(CANAL_EXAMPLE) for v in payloads)
        kinds = Counter(v["type"] for v in payloads)
        update = next(v for v in payloads if v["type"] == "UPDATE")
        assert set(update["old"][0]) == {"c_varchar"}  # only the changed column, as Canal writes it
        assert all(isinstance(x, str | None) for v in payloads for x in v["data"][0].values())
        assert update["sqlType"]["c_decimal"] == 3 and update["mysqlType"]["c_decimal"] == "decimal(30,10)"
        ddl = _values(found[database])[-1]
        assert ddl["isDdl"] is True and ddl["type"] == "ALTER" and "ADD COLUMN note" in ddl["sql"]
    else:
        assert all(set(v) == set(DEBEZIUM_EXAMPLE) for v in payloads)
        assert all(set(v["source"]) == set(DEBEZIUM_EXAMPLE["source"]) for v in payloads)
        kinds = Counter({"c": "INSERT", "u": "UPDATE", "d": "DELETE"}[v["op"]] for v in payloads)
        if fmt == "debezium-schema":
            envelope = values[0]["schema"]
            assert [f["field"] for f in envelope["fields"]] == [
                "before",
                "after",
                "source",
                "op",
                "ts_ms",
                "transaction",
            ]
        ddl = _values(found[database])[-1]
        assert "ADD COLUMN note" in ddl["ddl"] and set(ddl) >= {"source", "databaseName", "ddl", "tableChanges"}
    assert kinds["INSERT"] >= 3 and kinds["UPDATE"] == 1 and kinds["DELETE"] == 1
    # every value decodes back to what the source holds: Canal's text as the server prints it, Debezium's typed
    tables = {(tm.source.schema, tm.source.name): tm.source for tm in project.selection(src).tables}
    zoo_table = tables[(database, "type_zoo")]
    checked = 0
    for record in found[zoo]:
        decoded = formats.decode(record.value, record.headers, tables)
        image = decoded.change.after
        if decoded.change.op.value != "insert" or image["id"] not in rows or image["id"] == 5001:  # 5001 changed later
            continue
        columns = [c for c in zoo_table.columns if c.data_type != "geometry"]
        stored = src.query(
            f"SELECT {', '.join(_as_decoded(c, fmt) for c in columns)} FROM `{database}`.type_zoo WHERE id = %s",
            (image["id"],),
        )[0]
        for column, expected in zip(columns, stored, strict=True):
            got = image[column.name]
            if fmt == "canal" and isinstance(got, int | float | Decimal) and not isinstance(got, bool):
                expected = type(got)(expected) if expected is not None else None
            assert got == expected, (column.name, got, expected)
        checked += 1
    assert checked >= 3


def _as_decoded(column, fmt: str) -> str:
    """The source value in the form the decoded message holds it."""
    name = f"`{column.name}`"
    if column.data_type == "bit":
        return f"{name} + 0"
    if column.data_type == "float":
        return f"{name} + 0e0"  # the binlog's exact single-precision value; the text protocol rounds to 6 digits
    if fmt == "canal" and column.data_type not in ("binary", "varbinary", "blob", "float", "double"):
        return f"CAST({name} AS CHAR)"
    return name


def test_one_rows_changes_stay_in_order_in_one_partition(workspace, source, src, broker, unique):
    database = unique("kord")
    src.execute(f"CREATE DATABASE `{database}`")
    src.execute(f"CREATE TABLE `{database}`.c (id INT PRIMARY KEY, n INT NOT NULL)")
    project = _publisher(workspace, source, broker, database, format="json", partitions=4)
    sync, thread = _running(project)
    try:
        src.execute(f"INSERT INTO `{database}`.c VALUES " + ", ".join(f"({i}, 0)" for i in range(20)))
        for n in range(1, 16):
            src.execute(f"UPDATE `{database}`.c SET n = {n} WHERE id % 3 = {n % 3} OR n < {n - 3}")
        src.execute(f"UPDATE `{database}`.c SET id = id + 100 WHERE id = 1")  # a key change: delete + insert
        topic = f"{database}.{database}.c"
        expected = src.scalar(f"SELECT COUNT(*) FROM `{database}`.c")
        found = _published_until(
            broker, database, lambda f: sum(v["op"] == "insert" for v in _values(f.get(topic, []))) >= expected + 1
        )
    finally:
        sync.stop()
        thread.join(60)
    records = found[topic]
    partitions: dict[int, set[int]] = defaultdict(set)
    history: dict[int, list[tuple]] = defaultdict(list)
    for record in records:
        value = json.loads(record.value)
        row = value["after"] or value["before"]
        partitions[int(row["id"])].add(record.partition)
        position = value["position"]
        history[int(row["id"])].append(((position["file"], position["pos"], position["index"]), value))
    assert len({p for ps in partitions.values() for p in ps}) > 1  # the keys are spread
    assert all(len(ps) == 1 for ps in partitions.values())  # but each key lives in one partition
    for key, changes in history.items():
        assert [p for p, _ in changes] == sorted(p for p, _ in changes), key  # in source order
    final = {
        int(v["after"]["id"]): int(v["after"]["n"]) for changes in history.values() for _, v in changes if v["after"]
    }
    deleted = {int(v["before"]["id"]) for changes in history.values() for _, v in changes if v["op"] == "delete"}
    on_source = dict(src.query(f"SELECT id, n FROM `{database}`.c"))
    assert {k: n for k, n in final.items() if k not in deleted} == on_source
    assert 1 in deleted and 101 in on_source


def test_a_change_larger_than_the_record_limit_fails_the_sink_naming_it_until_the_limit_is_raised(
    workspace, source, src, broker, unique
):
    database = unique("kbig")
    src.execute(f"CREATE DATABASE `{database}`")
    src.execute(f"CREATE TABLE `{database}`.t (id INT PRIMARY KEY, b LONGBLOB)")
    project = _publisher(workspace, source, broker, database, format="json")
    sync, thread = _running(project)
    try:
        src.execute(f"INSERT INTO `{database}`.t VALUES (1, REPEAT('b', 1500000)), (2, 'small')")
        thread.join(60)
    finally:
        sync.stop()
    status = project.sync_status()
    assert status["state"] == "failed" and "max_message_bytes" in status["message"], status
    assert f"{database}.{database}.t is a record of 1.4 MB" in status["message"]
    raised = _publisher(workspace, source, broker, database, format="json", max_message_bytes=4 << 20)
    sync, thread = _running(raised)  # continues from the checkpoint
    try:
        raised.wait_for_sync()
    finally:
        sync.stop()
        thread.join(60)
    rows = [json.loads(r.value)["after"] for r in kafka.read_all(broker, f"{database}.{database}.t")]
    assert sorted((int(row["id"]), len(row["b"])) for row in rows) == [(1, 1500000), (2, 5)]


def _aborts_hidden(broker: KafkaEndpoint) -> bool:
    """Whether the broker hides aborted transactions from read_committed consumers (Tansu does not)."""
    topic = f"omsbench-probe-{time.time_ns()}"
    kafka.ensure_topics(broker, {topic})
    producer = kafka.producer(broker, topic)
    producer.begin_transaction()
    producer.send(topic, b"aborted")
    producer.flush()
    producer.abort_transaction()
    producer.close()
    return not kafka.read_all(broker, topic)


@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_kill_9_of_the_sink_then_restart(workspace, source, src, broker, unique, request, delivery):
    database = unique("kkill")
    src.execute(f"CREATE DATABASE `{database}`")
    src.execute(f"CREATE TABLE `{database}`.e (id INT PRIMARY KEY, v VARCHAR(20))")
    project = _publisher(workspace, source, broker, database, format="canal", delivery=delivery)
    process = launched(workspace, project, request)
    rows = (f"INSERT INTO `{database}`.e VALUES ({i}, 'v{i}')" for i in range(600))
    kill_while_writing(process, project, writer(source, rows, 0.004), every=0.8)
    topic = f"{database}.{database}.e"
    found = _published_until(
        broker, database, lambda f: {int(v["data"][0]["id"]) for v in _values(f.get(topic, []))} >= set(range(600))
    )
    process.stop()
    records = found[topic]
    ids = Counter(int(v["data"][0]["id"]) for v in _values(records))
    assert set(ids) == set(range(600))  # none missing
    positions = _positions(records)
    assert len(set(positions)) == 600  # repeats, if any, carry their first position: consumers can drop them
    if delivery == "exactly-once" and _aborts_hidden(broker):
        assert max(ids.values()) == 1  # every change read exactly once by a read_committed consumer


def test_a_sink_that_died_before_its_first_mark_starts_again_where_it_first_began(
    workspace, source, src, broker, unique
):
    """Without a full load the first start takes the binlog's end; a start after a sink died before
    it published anything must begin there too, not at the end of the moment (found on a slow
    machine, where the kill test killed every process before its first mark and lost all rows)."""
    database = unique("kfirst")
    src.execute(f"CREATE DATABASE `{database}`")
    src.execute(f"CREATE TABLE `{database}`.e (id INT PRIMARY KEY)")
    project = _publisher(workspace, source, broker, database, format="canal")
    with connect(source.dsn()) as session:
        sync = project.sync()
        sync.start_position(
            session, None, lambda: publish.first_position(sync, session)
        )  # a start's first step; it died
    for i in range(20):
        src.execute(f"INSERT INTO `{database}`.e VALUES ({i})")
    sync, thread = _running(project)
    try:
        topic = f"{database}.{database}.e"
        found = _published_until(broker, database, lambda f: len(f.get(topic, [])) >= 20)
    finally:
        sync.stop()
        thread.join(60)
    assert sorted(int(v["data"][0]["id"]) for v in _values(found.get(topic, []))) == list(range(20))


def _load_and_publish(workspace, source, target, database, broker, **options):
    """MySQL -> seekdb (schema + full load), then MySQL -> Kafka from the load's hand-over point."""
    loader = make_project(workspace, source, target, name=f"{database}-load", objects={"include": [f"{database}.*"]})
    loader.migrate_schema()
    loader.full(progress=False)
    handover = BinlogPosition(**workspace.state.step(loader.name, Step.FULL)["detail"]["start_position"])
    return _running(_publisher(workspace, source, broker, database, **options), StartAt(position=handover))


@pytest.fixture
def kafka_to_oceanbase(workspace, source, target, src, broker, unique):
    database = unique("kin")
    sampledb.create(src, rows=600, database=database)
    # one topic, one partition: the sample's foreign keys cascade, which needs the source's order whole
    sync, thread = _load_and_publish(
        workspace, source, target, database, broker, format="debezium", topic="{prefix}.all", partitions=1
    )
    yield database
    sync.stop()
    thread.join(60)


def _consumer_project(workspace, broker, target, database, name):
    endpoint = KafkaEndpoint(kafka=broker.kafka, topics=[f"re:{database}\\..*"])
    return make_project(workspace, endpoint, target, name=name, objects={"include": [f"{database}.*"]})


def _equal_within(src, dst, database, timeout=120) -> None:
    tables = [r[0] for r in src.query(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'",
        (database,))]  # fmt: skip
    pairs = [(database, t, database, t) for t in tables]
    deadline = time.monotonic() + timeout
    while True:
        try:
            assert_same_tables(src, dst, pairs)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_kafka_to_oceanbase_ends_with_identical_tables(workspace, source, src, dst, target, broker, kafka_to_oceanbase):
    database = kafka_to_oceanbase
    consumer = _consumer_project(workspace, broker, target, database, f"{database}-in")
    sync, thread = _running(consumer)
    try:
        with connect(source.dsn()) as writer:
            Workload(writer, database, seed=21).run(300)
        _equal_within(src, dst, database)
        status = consumer.sync_status()
        assert status["state"] == "running"
    finally:
        sync.stop()
        thread.join(60)
    stored = consume.stored_offsets(dst, consumer.name)
    assert stored and all(offset > 0 for offset in stored.values())


def test_a_consumer_group_of_two_shares_the_partitions(workspace, source, src, dst, target, broker, unique):
    database = unique("kgroup")
    src.execute(f"CREATE DATABASE `{database}`")
    src.execute(f"CREATE TABLE `{database}`.c (id INT PRIMARY KEY, n INT NOT NULL, note VARCHAR(20))")
    src.execute(f"CREATE TABLE `{database}`.d (k VARCHAR(10) PRIMARY KEY, v DECIMAL(12,2))")
    sync, thread = _load_and_publish(workspace, source, target, database, broker, format="canal", partitions=4)
    consumer = _consumer_project(workspace, broker, target, database, f"{database}-in")
    members = [consumer.sync(), consumer.sync()]  # two members of one group, as two processes would be
    threads = [threading.Thread(target=m.run, daemon=True) for m in members]
    for member in threads:
        member.start()
    try:
        rng = random.Random(5)
        for i in range(400):
            key = rng.randrange(60)
            src.execute(f"REPLACE INTO `{database}`.c VALUES ({key}, {i}, 'n{i}')")
            src.execute(f"REPLACE INTO `{database}`.d VALUES ('k{key % 25}', {i}.5)")
            if i % 7 == 0:
                src.execute(f"DELETE FROM `{database}`.c WHERE id = {rng.randrange(60)}")
        _equal_within(src, dst, database)
        assigned = [m.source.assigned for m in members]
    finally:
        for member in members:
            member.stop()
        for member in threads:
            member.join(60)
        sync.stop()
        thread.join(60)
    assert all(assigned) and not (assigned[0] & assigned[1])  # each member had its own share


def test_an_unreachable_broker_is_named_with_what_to_do():
    closed = KafkaEndpoint(kafka="127.0.0.1:1")
    with pytest.raises(ConnectError, match=r"cannot reach the Kafka cluster at 127\.0\.0\.1:1") as raised:
        kafka.ensure_topics(closed, {"x"})
    assert named("servers start", None, "--kafka") in raised.value.fix


def test_precheck_and_steps_of_a_kafka_project(workspace, source, src, broker, unique):
    database = unique("kpre")
    src.execute(f"CREATE DATABASE `{database}`")
    src.execute(f"CREATE TABLE `{database}`.t (id INT PRIMARY KEY)")
    project = _publisher(workspace, source, broker, database)
    found = project.precheck().set_index(["check", "object"])
    assert found.loc[("connect", "target"), "status"] == "ok"
    assert found.loc[("transactions", "target"), "status"] == "ok"
    assert found.loc[("binlog_format", "source"), "status"] == "ok"
    assert lifecycle.allowed(project)["verify"] == "Kafka is on one side of this project"
    with pytest.raises(StateError, match="needs a database on both sides"):
        project.migrate_schema()
    src.execute(f"INSERT INTO `{database}`.t VALUES (1), (2)")
    pid = lifecycle.start(project)
    try:
        assert pid
        src.execute(f"INSERT INTO `{database}`.t VALUES (3)")
        project.wait_for_sync(timeout=60)
        ids = [json.loads(r.value)["data"][0]["id"] for r in _records(broker, database)[f"{database}.{database}.t"]]
        assert ids == ["3"]  # without a full load the stream starts where the binlog stood at the first start
    finally:
        project.stop_sync()
    closed = make_project(workspace, source, KafkaEndpoint(kafka="127.0.0.1:1"), name=f"{database}x",
                          objects={"include": [f"{database}.*"]})  # fmt: skip
    found = closed.precheck().set_index(["check", "object"])
    assert found.loc[("connect", "target"), "status"] == "fail"
    with pytest.raises(PrecheckFailed):
        lifecycle.start(closed)


def test_oceanbase_changes_reach_kafka_through_the_capture(workspace, seekdb_tcp, broker, unique, request):
    """OceanBase has no binlog: its capture triggers feed the sink; a kill -9 repeats nothing."""
    database = unique("kob")
    ob_endpoint = seekdb_tcp.endpoint()
    with connect(ob_endpoint.dsn()) as ob:
        ob.execute(f"CREATE DATABASE `{database}`")
        ob.execute(f"CREATE TABLE `{database}`.a (id INT PRIMARY KEY, v VARCHAR(20), d DECIMAL(10,2), b VARBINARY(8))")
    project = make_project(workspace, ob_endpoint, KafkaEndpoint(kafka=broker.kafka, format="debezium"),
                           name=database, objects={"include": [f"{database}.*"]})  # fmt: skip
    process = launched(workspace, project, request)

    def write():
        with connect(ob_endpoint.dsn()) as writer:
            for i in range(300):
                writer.execute(f"INSERT INTO `{database}`.a VALUES ({i}, 'v{i}', {i}.25, X'00ff')")
                if i % 3 == 0:
                    writer.execute(f"UPDATE `{database}`.a SET v = 'u{i}' WHERE id = {i}")
                time.sleep(0.005)
        with connect(ob_endpoint.dsn()) as writer:
            writer.execute(f"ALTER TABLE `{database}`.a ADD COLUMN extra INT")
            # at once: the triggers capturing it still lack the new column
            writer.execute(f"INSERT INTO `{database}`.a VALUES (1000, 'late', 1.5, X'01', 7)")

    kill_while_writing(process, project, write, kills=2, every=1.0)
    topic = f"{database}.{database}.a"
    found = _published_until(
        broker, database, lambda f: any(v["after"] and v["after"]["id"] == 1000 for v in _values(f.get(topic, [])))
    )
    process.stop()
    values = _values(found[topic])
    inserts = Counter(v["after"]["id"] for v in values if v["op"] == "c")
    updates = Counter(v["after"]["id"] for v in values if v["op"] == "u")
    assert set(inserts) == {*range(300), 1000} and max(inserts.values()) == 1  # each insert once, none missing
    assert set(updates) == set(range(0, 300, 3)) and max(updates.values()) == 1
    late = next(v["after"] for v in values if v["after"] and v["after"]["id"] == 1000)
    assert late["extra"] == 7 and late["v"] == "late"  # the column added on OceanBase is carried
    with connect(ob_endpoint.dsn()) as ob:
        tables = {(tm.source.schema, tm.source.name): tm.source for tm in project.selection(ob).tables}
    first = next(
        r for r in found[topic] if json.loads(r.value)["op"] == "c" and json.loads(r.value)["after"]["id"] == 1
    )
    decoded = formats.decode(first.value, first.headers, tables).change.after
    assert (decoded["v"], decoded["d"], decoded["b"]) == ("v1", Decimal("1.25"), b"\x00\xff")
    # the project's end takes the capture off OceanBase, its source here; Kafka keeps nothing of it
    record = release.release(project)
    assert record["sides"]["source"]["triggers_dropped"] and "target" not in record["sides"]
    with connect(ob_endpoint.dsn()) as ob:
        assert release.remains(ob, project.name) == {"triggers": 0, "rows": 0}


def test_a_row_written_right_after_a_column_is_added_on_oceanbase_is_published_with_it(
    workspace, seekdb_tcp, broker, unique, request
):
    """The capture looks at the columns after it lists changes and before it reads them, so no change made
    after a DDL is read in the table's old shape (its triggers may not yet name the new column)."""
    database = unique("kcol")
    ob_endpoint = seekdb_tcp.endpoint()
    topic = f"{database}.{database}.a"
    with connect(ob_endpoint.dsn()) as ob:
        ob.execute(f"CREATE DATABASE `{database}`")
        ob.execute(f"CREATE TABLE `{database}`.a (id INT PRIMARY KEY, v VARCHAR(20))")
        project = make_project(workspace, ob_endpoint, KafkaEndpoint(kafka=broker.kafka, format="debezium"),
                               name=database, objects={"include": [f"{database}.*"]})  # fmt: skip
        launched(workspace, project, request)
        ob.execute(f"INSERT INTO `{database}`.a VALUES (1, 'a')")
        _published_until(broker, database, lambda f: len(f.get(topic, [])) == 1)  # the sink is idle now
        ob.execute(f"ALTER TABLE `{database}`.a ADD COLUMN extra INT")
        ob.execute(f"INSERT INTO `{database}`.a VALUES (2, 'b', 7)")
        ob.execute(f"UPDATE `{database}`.a SET extra = 8 WHERE id = 1")
    found = _published_until(broker, database, lambda f: len(f.get(topic, [])) >= 3)
    published = [(v["op"], v["after"]["id"], v["after"].get("extra", "absent")) for v in _values(found[topic])]
    assert sorted(published) == [("c", 1, "absent"), ("c", 2, 7), ("u", 1, 8)]  # partitions keep no order across keys


def test_the_panel_runs_and_draws_a_kafka_project(workspace, source, src, broker, unique, request):
    database = unique("kpanel")
    src.execute(f"CREATE DATABASE `{database}`")
    src.execute(f"CREATE TABLE `{database}`.t (id INT PRIMARY KEY, v INT)")
    project = _publisher(workspace, source, broker, database)
    request.addfinalizer(project.stop_sync)
    panel = ControlPanel(project)
    assert panel.buttons["verify"].disabled and "Kafka" in panel.buttons["verify"].tooltip
    panel.buttons["start"].click()  # precheck, then the sync to Kafka as a background process
    panel.wait(120)
    assert panel.last_error is None
    runner.wait_for(workspace, project.name, {"running"}, timeout=60)
    rows = (f"INSERT INTO `{database}`.t VALUES ({i}, {i})" for i in range(200))
    writer(source, rows, 0.01)()
    project.wait_for_sync(timeout=60)
    time.sleep(1.5)  # a metrics sample is written every second
    panel.refresh()
    assert "<svg" in panel.lag.value  # rates and lag drawn like for any target
    assert panel.buttons["start"].disabled and not panel.buttons["pause"].disabled
