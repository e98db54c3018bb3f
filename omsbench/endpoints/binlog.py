"""Read a MySQL / MariaDB binlog as a replica does, through python-mysql-replication.

This module only opens the stream at the right place and says clearly when that place is
gone; turning events into the change model is ``binlog_reader``'s.
"""

from __future__ import annotations

import functools
import logging
import zlib
from collections.abc import Callable

import pymysql
from pymysql.protocol import MysqlPacket
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import MariadbGtidEvent, QueryEvent, RotateEvent, XidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent

from omsbench.actions import named
from omsbench.endpoints import binlog_rows
from omsbench.endpoints.connection import Dsn, Flavor, Session
from omsbench.endpoints.position import BinlogPosition
from omsbench.exceptions import BinlogPurged

EVENTS = [
    MariadbGtidEvent,
    QueryEvent,
    XidEvent,
    RotateEvent,
    TableMapEvent,
    WriteRowsEvent,
    UpdateRowsEvent,
    DeleteRowsEvent,
]

# The library warns on every stream when binlog_row_metadata is not FULL. omsbench maps columns
# from the schema it tracks itself (engine/tracker.py), so the setting is not needed, and the
# warning would land in every notebook that runs a sync.
logging.getLogger("pymysqlreplication").setLevel(logging.ERROR)  # the library logs everything under this name


_DUMP_COMMANDS = {0x12, 0x1E}  # COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID
_FORMAT_DESCRIPTION = 15
_CRC32 = 1  # BINLOG_CHECKSUM_ALG_CRC32; 0 is OFF
_OFFERED = {binlog_rows.TABLE_MAP, *binlog_rows.KINDS}

Take = Callable[[bytes, bool], bool]
"""Offered each table map's and rows event's dump packet and whether it ends in a checksum; True
means taken, and the library never sees the event."""


class TappedConnection(pymysql.connections.Connection):
    """A replication connection that offers each table map and rows event to ``take`` before the
    library reads it.

    Building the library's event objects is most of what these events cost the reader; a packet
    ``take`` handles itself skips that. The library makes its connections with this class through
    its ``pymysql_wrapper`` hook; packets are offered only after the binlog dump command was sent,
    so the library's own queries are never touched. Whether events carry a CRC32 is read from
    each binlog file's format description, whose last five bytes are the checksum algorithm and a
    checksum (MySQL 5.6.1 and MariaDB 5.3 on, as the library assumes too). The two methods it
    overrides are pymysql's own; should a release rename them, nothing is offered and the library
    reads every event: slower, never wrong.
    """

    def __init__(self, *args, take: Take, **kwargs) -> None:
        self.take, self.dumping, self.checksum = take, False, False
        super().__init__(*args, **kwargs)

    def _write_bytes(self, data: bytes) -> None:
        if len(data) > 4 and data[4] in _DUMP_COMMANDS:
            self.dumping = True
        super()._write_bytes(data)

    def _read_packet(self, packet_type=MysqlPacket) -> MysqlPacket:
        while True:
            packet = super()._read_packet(packet_type)
            data = packet.get_all_data()
            if not self.dumping or data[0] != 0 or len(data) < 24:
                return packet
            if data[5] == _FORMAT_DESCRIPTION:  # ends in the checksum algorithm and a checksum
                self.checksum = data[-5] == _CRC32
            if data[5] not in _OFFERED or not self.take(data, self.checksum):
                return packet


def replica_id(project: str) -> int:
    """A server id that is stable per project and unlikely to clash with real replicas."""
    return 100_000 + zlib.crc32(project.encode()) % 1_000_000_000


def binary_logs(session: Session) -> list[str]:
    return [row[0] for row in session.query("SHOW BINARY LOGS")]


def require_available(session: Session, position: BinlogPosition) -> None:
    """Refuse to start from a binlog file the server has already purged: changes would be lost."""
    logs = binary_logs(session)
    if position.file not in logs:
        first = logs[0] if logs else "none"
        raise BinlogPurged(
            f"the source no longer has binlog {position.file} (oldest kept: {first}); "
            f"the changes since {position} are gone",
            fix=f"run a new full migration ({named('full', None, '--restart')}), and keep binlogs longer "
            "(expire_logs_days / binlog_expire_logs_seconds) than a sync may stay stopped",
        )


def earliest(session: Session) -> BinlogPosition:
    return BinlogPosition(binary_logs(session)[0], 4)


def open_stream(
    dsn: Dsn, flavor: Flavor, server_id: int, position: BinlogPosition, blocking: bool = True, take: Take | None = None
) -> BinLogStreamReader:
    """A stream from ``position``; blocking, it waits for new events (master heartbeats every second
    keep a quiet one alive), otherwise it ends at the binlog's current end.

    ``freeze_schema`` parses each table map once per table id instead of once per transaction
    (it was a third of the decoding time): a DDL makes the server assign the table a new id, so
    the rows after it still meet a fresh table map.

    A position without a file starts at its GTID (MariaDB's ``domain-server-seq`` list). The
    library's MariaDB mode always starts by GTID, so a file position uses the classic dump
    command, which MariaDB serves too (its GTID events still arrive).

    With ``take``, table maps and rows events go to it first (:class:`TappedConnection`).
    """
    settings = {"user": dsn.user, "password": dsn.password(), "charset": "utf8mb4", "ssl": dsn.ssl}
    if dsn.unix_socket:
        settings["unix_socket"] = dsn.unix_socket
    else:
        settings.update(host=dsn.host, port=dsn.port or 3306)
    return BinLogStreamReader(
        connection_settings=settings,
        server_id=server_id,
        log_file=position.file or None,
        log_pos=position.pos if position.file else None,
        auto_position=None if position.file else position.gtid,
        resume_stream=True,
        blocking=blocking,
        only_events=EVENTS,
        is_mariadb=flavor is Flavor.MARIADB and not position.file,
        slave_heartbeat=1,
        freeze_schema=True,
        enable_logging=False,
        pymysql_wrapper=functools.partial(TappedConnection, take=take) if take else None,
    )
