"""RocketMQ as a target, through the official rocketmq-python-client.

Against the in-repo TEST DOUBLE of a RocketMQ 5 proxy (``rocketmq_double.py``), or a real proxy
when ``ROCKETMQ_ENDPOINTS`` is set (its topics must exist: FIFO topics named after the projects).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, defaultdict

import pytest
from conftest import make_project
from helpers import kill_while_writing, launched, writer

from omsbench.endpoints.rocketmq import RocketMQEndpoint
from omsbench.engine import formats, lifecycle, runner

pytest.importorskip("rocketmq.v5", reason="RocketMQ is the optional extra omsbench[rocketmq]")
from rocketmq.grpc_protocol import definition_pb2 as pb
from rocketmq.v5.client import ClientConfiguration, Credentials
from rocketmq.v5.consumer import SimpleConsumer
from rocketmq.v5.model import FilterExpression
from rocketmq_double import RocketMQDouble


@pytest.fixture(scope="module")
def proxy():
    """(endpoints, double or None): the double when no real proxy is named."""
    if os.environ.get("ROCKETMQ_ENDPOINTS"):
        yield os.environ["ROCKETMQ_ENDPOINTS"], None
        return
    double = RocketMQDouble({})
    yield double.start(), double
    double.stop()


def _project(workspace, source, proxy, name, **options):
    endpoints, double = proxy
    if double is not None:
        double.topics[name] = pb.MessageType.FIFO
    target = RocketMQEndpoint(rocketmq=endpoints, **options)
    return make_project(workspace, source, target, name=name, objects={"include": [f"{name}.*"]})


def _received(endpoints: str, topic: str, wanted: int, timeout: float = 60) -> list:
    """The messages of ``topic`` through the official SimpleConsumer, each acknowledged, until ``wanted``
    distinct source positions arrived (repeats of an at-least-once sink do not count)."""
    consumer = SimpleConsumer(
        ClientConfiguration(endpoints, Credentials()), f"omsbench-test-{topic}", {topic: FilterExpression()}
    )
    consumer.startup()
    found, deadline = [], time.monotonic() + timeout
    try:
        while len({_where(m) for m in found}) < wanted and time.monotonic() < deadline:
            for message in consumer.receive(32, 15):
                found.append(message)
                consumer.ack(message)
    finally:
        consumer.shutdown()
    return found


def _where(message) -> tuple[str, str]:
    return message.properties[formats.POSITION_HEADER], message.properties[formats.INDEX_HEADER]


def test_changes_arrive_with_keys_tags_and_order_by_key(workspace, source, src, proxy, unique):
    name = unique("rmq")
    src.execute(f"CREATE DATABASE `{name}`")
    src.execute(f"CREATE TABLE `{name}`.c (id INT PRIMARY KEY, n INT NOT NULL)")
    src.execute(f"CREATE TABLE `{name}`.d (k VARCHAR(8) PRIMARY KEY, v VARCHAR(20))")
    project = _project(workspace, source, proxy, name)
    sync = project.sync()
    thread = runner.run_thread(sync, runner.SyncProcess(workspace, name))
    try:
        runner.wait_for(workspace, name, {"running"})
        src.execute(f"INSERT INTO `{name}`.c VALUES " + ", ".join(f"({i}, 0)" for i in range(10)))
        for n in range(1, 6):
            src.execute(f"UPDATE `{name}`.c SET n = {n}")
        src.execute(f"INSERT INTO `{name}`.d VALUES ('a', 'x')")
        src.execute(f"DELETE FROM `{name}`.d WHERE k = 'a'")
        src.execute(f"ALTER TABLE `{name}`.c ADD COLUMN note VARCHAR(5)")
        project.wait_for_sync(timeout=60)
    finally:
        sync.stop()
        thread.join(60)
    messages = _received(proxy[0], name, wanted=10 + 50 + 2 + 1)
    bodies = [json.loads(m.body) for m in messages]
    assert Counter(m.tag for m in messages) == {f"{name}.c": 60, f"{name}.d": 2, "ddl": 1}
    rows = [(m, b) for m, b in zip(messages, bodies, strict=True) if not b["isDdl"]]
    assert all(m.message_group == json.dumps(json.loads(next(iter(m.keys))), separators=(",", ":")) for m, _ in rows)
    history = defaultdict(list)
    for message, body in rows:
        history[(body["table"], next(iter(message.keys)))].append(
            (tuple(int(x) for x in message.properties[formats.POSITION_HEADER].rsplit(":", 1)[1:]), body)
        )
    for changes in history.values():  # each key's changes arrive in source order
        assert [p for p, _ in changes] == sorted(p for p, _ in changes)
    finals = {
        json.loads(k)["id"]: int(changes[-1][1]["data"][0]["n"]) for (t, k), changes in history.items() if t == "c"
    }
    assert finals == dict.fromkeys(range(10), 5)
    ddl = next(b for b in bodies if b["isDdl"])
    assert "ADD COLUMN note" in ddl["sql"]


def test_kill_9_of_the_sink_loses_nothing(workspace, source, src, proxy, unique, request):
    name = unique("rmqkill")
    src.execute(f"CREATE DATABASE `{name}`")
    src.execute(f"CREATE TABLE `{name}`.e (id INT PRIMARY KEY)")
    project = _project(workspace, source, proxy, name)
    process = launched(workspace, project, request)
    rows = (f"INSERT INTO `{name}`.e VALUES ({i})" for i in range(300))
    kill_while_writing(process, project, writer(source, rows), kills=2, every=1.0)
    project.wait_for_sync(timeout=120)
    process.stop()
    messages = _received(proxy[0], name, wanted=300)
    ids = Counter(json.loads(m.body)["data"][0]["id"] for m in messages)
    assert set(ids) == {str(i) for i in range(300)}  # at least once: none missing
    assert len({_where(m) for m in messages}) == 300  # a repeat carries its first copy's position: droppable


def test_a_topic_the_proxy_does_not_route_fails_the_precheck(workspace, source, src, proxy, unique):
    name = unique("rmqmissing")
    src.execute(f"CREATE DATABASE `{name}`")
    src.execute(f"CREATE TABLE `{name}`.t (id INT PRIMARY KEY)")
    target = RocketMQEndpoint(rocketmq=proxy[0], topic="omsbench-no-such-topic")
    project = make_project(workspace, source, target, name=name, objects={"include": [f"{name}.*"]})
    found = project.precheck().set_index(["check", "object"])
    assert found.loc[("connect", "target"), "status"] == "fail"
    assert "omsbench-no-such-topic" in found.loc[("connect", "target"), "detail"]
    with pytest.raises(Exception, match="precheck failed"):
        lifecycle.start(project)
