"""RocketMQ 5 as an endpoint: the proxy's address, topic and tag naming, and a producer.

Through the official ``rocketmq-python-client`` (gRPC). RocketMQ topics are created by the
cluster's administrators (FIFO topics for ordered messages), so omsbench only names them: one
topic per project by default, a tag per table, the primary key as the message key and, with
``fifo``, as the message group, so one row's changes are delivered in order.
"""

from __future__ import annotations

import os

from pydantic import Field, field_validator

from omsbench.endpoints.queue import QueueEndpoint
from omsbench.exceptions import ConnectError


class RocketMQEndpoint(QueueEndpoint):
    rocketmq: str = Field(description="proxy endpoints, host:port[;host:port]")
    topic: str = "{prefix}"
    tag: str = "{database}.{table}"
    fifo: bool = True
    """Send each row's changes as FIFO messages grouped by primary key (the topic must be a FIFO topic)."""
    namespace: str = ""
    access_key_env: str | None = None
    secret_key_env: str | None = None
    """Environment variables holding the ACL credentials, never the credentials themselves."""

    @field_validator("rocketmq")
    @classmethod
    def _check_endpoints(cls, endpoints: str) -> str:
        for endpoint in endpoints.split(";"):
            host, _, port = endpoint.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{endpoint!r} is not host:port; write e.g. 127.0.0.1:8081 (several: a;b)")
        return endpoints

    @property
    def url(self) -> str:
        return f"rocketmq://{self.rocketmq}"

    def tag_for(self, database: str | None, table: str | None) -> str:
        return self.tag.format(database=database or "", table=table or "")

    def credentials(self) -> tuple[str, str]:
        found = []
        for name in (self.access_key_env, self.secret_key_env):
            if name and name not in os.environ:
                raise ConnectError(
                    f"the environment variable {name} holding a RocketMQ credential is not set",
                    fix=f"export {name}=... before running omsbench",
                )
            found.append(os.environ.get(name, "") if name else "")
        return found[0], found[1]


def _client():
    """The client is an optional extra: it brings gRPC, protobuf and OpenTelemetry with it."""
    try:
        from rocketmq.v5 import client, model, producer
    except ImportError as err:
        raise ConnectError(
            "RocketMQ needs the rocketmq-python-client package", fix="pip install 'omsbench[rocketmq]'"
        ) from err
    return client, model, producer


def producer(endpoint: RocketMQEndpoint, topics: list[str]):
    """A started producer; the client checks each topic's route, so a missing topic fails here."""
    client, _, producers = _client()
    access, secret = endpoint.credentials()
    config = client.ClientConfiguration(endpoint.rocketmq, client.Credentials(access, secret), endpoint.namespace)
    made = producers.Producer(config, topics)
    try:
        made.startup()
    except Exception as err:  # the client raises plain Exceptions for every startup failure
        raise ConnectError(
            f"cannot start a RocketMQ producer at {endpoint.rocketmq} for topics {topics}: {err}",
            fix="check the proxy address and that the topics exist (FIFO topics when fifo is on)",
        ) from err
    return made


def message(topic: str, body: bytes, tag: str, key: str, group: str | None, properties: dict[str, str]):
    made = _client()[1].Message()
    made.topic, made.body, made.tag = topic, body, tag
    made.keys = key
    if group:
        made.message_group = group
    for name, value in properties.items():
        made.add_property(name, value)
    return made


def missing_routes(endpoint: RocketMQEndpoint, topics: list[str], timeout: float = 5) -> dict[str, str]:
    """Topics the proxy does not route, with its reason. Asked directly: the client only logs it."""
    _client()
    import grpc
    from rocketmq.grpc_protocol import definition_pb2, service_pb2, service_pb2_grpc

    address = endpoint.rocketmq.split(";")[0].strip()
    missing = {}
    with grpc.insecure_channel(address) as channel:
        stub = service_pb2_grpc.MessagingServiceStub(channel)
        for topic in topics:
            request = service_pb2.QueryRouteRequest(
                topic=definition_pb2.Resource(name=topic, resource_namespace=endpoint.namespace)
            )
            try:
                status = stub.QueryRoute(request, timeout=timeout).status
            except grpc.RpcError as err:
                raise ConnectError(
                    f"cannot reach the RocketMQ proxy at {address}: {err.code().name}",
                    fix="start the proxy or fix target.rocketmq",
                ) from err
            if status.code != definition_pb2.Code.OK:
                missing[topic] = status.message or definition_pb2.Code.Name(status.code)
    return missing
