"""A TEST DOUBLE of a RocketMQ 5 proxy: a small gRPC server built from the official client's own stubs.

No RocketMQ broker could be installed here. This server answers the calls that
``rocketmq-python-client`` makes for a producer and a simple consumer (route, settings over
telemetry, heartbeat, send, receive, ack, change invisible duration, termination) and keeps
the messages in memory, one list per queue. It checks what a proxy checks for these paths (the
topic exists, a FIFO message goes to a FIFO topic), leases each received message until it is
acknowledged or its invisible duration ends, and nothing more: no persistence, no dead letters.
When ``ROCKETMQ_ENDPOINTS`` is set, the tests use that real proxy instead.
"""

from __future__ import annotations

import itertools
import threading
import time
from concurrent import futures

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from rocketmq.grpc_protocol import definition_pb2 as d
from rocketmq.grpc_protocol import service_pb2 as s
from rocketmq.grpc_protocol import service_pb2_grpc

QUEUES = 4


def _ok() -> d.Status:
    return d.Status(code=d.Code.OK, message="OK")


class RocketMQDouble(service_pb2_grpc.MessagingServiceServicer):
    def __init__(self, topics: dict[str, int]) -> None:
        """``topics``: name -> message type (``d.MessageType.NORMAL`` or ``d.MessageType.FIFO``)."""
        self.topics = dict(topics)
        self.queues: dict[tuple[str, int], list[d.Message]] = {}
        self.leases: dict[tuple[str, str, int], dict[int, float]] = {}
        """Per consumer group and queue: message index -> until when it is invisible (inf once acked)."""
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.server: grpc.Server | None = None
        self.port = 0

    # lifecycle ------------------------------------------------------------------------------------------------
    def start(self) -> str:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        service_pb2_grpc.add_MessagingServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.server:
            self.server.stop(0)

    def messages(self, topic: str) -> list[d.Message]:
        """Everything sent to ``topic``, queue by queue, each queue in send order."""
        with self.lock:
            return [m for (t, _), found in sorted(self.queues.items()) if t == topic for m in found]

    # the calls the client makes -------------------------------------------------------------------------------
    def QueryRoute(self, request, context):
        topic = request.topic.name
        if topic not in self.topics:
            return s.QueryRouteResponse(status=d.Status(code=d.Code.TOPIC_NOT_FOUND, message=f"no topic {topic}"))
        broker = d.Broker(
            name="double",
            id=0,
            endpoints=d.Endpoints(scheme=d.AddressScheme.IPv4, addresses=[d.Address(host="127.0.0.1", port=self.port)]),
        )
        queues = [
            d.MessageQueue(
                topic=d.Resource(name=topic),
                id=i,
                permission=d.Permission.READ_WRITE,
                broker=broker,
                accept_message_types=[self.topics[topic]],
            )
            for i in range(QUEUES)
        ]
        return s.QueryRouteResponse(status=_ok(), message_queues=queues)

    def Heartbeat(self, request, context):
        return s.HeartbeatResponse(status=_ok())

    def Telemetry(self, request_iterator, context):
        for command in request_iterator:
            if command.HasField("settings"):
                settings = d.Settings()
                settings.CopyFrom(command.settings)
                settings.publishing.max_body_size = 4 << 20
                settings.publishing.validate_message_type = True
                yield s.TelemetryCommand(status=_ok(), settings=settings)

    def SendMessage(self, request, context):
        entries = []
        with self.lock:
            for message in request.messages:
                topic = message.topic.name
                fifo = bool(message.system_properties.message_group)
                if topic not in self.topics or fifo != (self.topics[topic] == d.MessageType.FIFO):
                    conflict = d.Status(
                        code=d.Code.MESSAGE_PROPERTY_CONFLICT_WITH_TYPE, message="type differs from topic"
                    )
                    entries.append(s.SendResultEntry(status=conflict))
                    continue
                queue = message.system_properties.queue_id
                stored = d.Message()
                stored.CopyFrom(message)
                stamp = Timestamp()
                stamp.GetCurrentTime()
                stored.system_properties.store_timestamp.CopyFrom(stamp)
                self.queues.setdefault((topic, queue), []).append(stored)
                entries.append(s.SendResultEntry(status=_ok(), message_id=message.system_properties.message_id,
                                                 offset=len(self.queues[(topic, queue)]) - 1))  # fmt: skip
        return s.SendMessageResponse(status=_ok(), entries=entries)

    def ReceiveMessage(self, request, context):
        """Messages neither acknowledged nor leased, each leased for the request's invisible duration:
        a message its consumer never acknowledges is delivered again, as a proxy does."""
        topic, queue, group = request.message_queue.topic.name, request.message_queue.id, request.group.name
        deadline = time.monotonic() + 0.3  # a short long-poll: the client asks queue after queue
        invisible = request.invisible_duration.seconds or 30
        while True:
            batch = self._lease(group, topic, queue, request.batch_size or 32, invisible)
            if batch or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if not batch:
            yield s.ReceiveMessageResponse(status=d.Status(code=d.Code.MESSAGE_NOT_FOUND, message="no new message"))
            return
        yield s.ReceiveMessageResponse(status=_ok())
        for index, message in batch:
            delivered = d.Message()
            delivered.CopyFrom(message)
            delivered.system_properties.receipt_handle = f"{group}|{topic}|{queue}|{index}|{next(self.ids)}"
            delivered.system_properties.delivery_attempt = 1
            yield s.ReceiveMessageResponse(message=delivered)

    def _lease(self, group: str, topic: str, queue: int, size: int, seconds: float) -> list[tuple[int, d.Message]]:
        now = time.monotonic()
        with self.lock:
            leases = self.leases.setdefault((group, topic, queue), {})
            found = [(i, m) for i, m in enumerate(self.queues.get((topic, queue), [])) if leases.get(i, 0) < now]
            for i, _ in found[:size]:
                leases[i] = now + seconds
            return found[:size]

    def AckMessage(self, request, context):
        with self.lock:
            for entry in request.entries:
                group, topic, queue, index, _ = entry.receipt_handle.split("|")
                self.leases[(group, topic, int(queue))][int(index)] = float("inf")
        entries = [
            s.AckMessageResultEntry(message_id=e.message_id, receipt_handle=e.receipt_handle, status=_ok())
            for e in request.entries
        ]
        return s.AckMessageResponse(status=_ok(), entries=entries)

    def ChangeInvisibleDuration(self, request, context):
        return s.ChangeInvisibleDurationResponse(status=_ok(), receipt_handle=request.receipt_handle)

    def NotifyClientTermination(self, request, context):
        return s.NotifyClientTerminationResponse(status=_ok())
