"""The planned row readers decode every binlog rows event exactly as python-mysql-replication does."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

import pytest
from pymysqlreplication.row_event import RowsEvent, TableMapEvent

from omsbench.endpoints import binlog_rows, catalog
from omsbench.endpoints.binlog import open_stream
from omsbench.endpoints.binlog_reader import Decoder
from omsbench.endpoints.mysql import master_status
from omsbench.exceptions import SyncError

COLUMNS = (
    "id INT PRIMARY KEY, ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED,"
    " mi MEDIUMINT, mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED,"
    " f FLOAT, d DOUBLE, c CHAR(10), cl CHAR(10) CHARACTER SET latin1, v VARCHAR(20), vl VARCHAR(300),"
    " b BINARY(4), vb VARBINARY(300), tt TINYTEXT, t TEXT, mt MEDIUMTEXT, lt LONGTEXT, bl BLOB, bool_ BOOLEAN"
)
ROWS = [
    "(1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, -1.5, -2.25e-300,"
    " 'a  ', 'é', '', REPEAT('ü', 150), X'00FF0001', X'', '', '', '', '', X'00', 0)",
    "(2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807,"
    " 18446744073709551615, 3.4e38, 1.7976931348623157e308, 'ok', 'ÿ', '😀 ok', 'x', 'abcd',"
    " REPEAT(X'FE', 300), '😀', REPEAT('t', 70000 DIV 2), REPEAT('m', 70000), REPEAT('l', 100000), X'FF00', 1)",
    "(3" + ", NULL" * 24 + ")",
]


class Logged(NamedTuple):
    """A rows event as the library gives it, its dump packet, whether that ends in a checksum, and
    its rows by the planned readers (None when not planned) and by the library."""

    event: RowsEvent
    packet: bytes
    checksum: bool
    fast: tuple | None
    library: tuple


def _logged(source, src, database: str, columns: str, statements: list[str]) -> tuple[Decoder, list[Logged]]:
    """Create ``t`` with ``columns``, run ``statements`` on it; its decoder and the rows events they wrote."""
    src.execute(f"CREATE DATABASE `{database}`")
    src.execute(f"CREATE TABLE `{database}`.t ({columns})")
    start = master_status(src)
    for statement in statements:
        src.execute(statement.format(t=f"`{database}`.t"))
    decoder = Decoder(catalog.read(src, [database]).tables[(database, "t")])
    offered = []  # every rows event's packet, also handed on to the library
    stream = open_stream(
        source.dsn(), src.flavor, 4711, start, blocking=False, take=lambda *packet: offered.append(packet) and False
    )
    decoded = []
    try:
        for event in stream:  # rows decode lazily: read them while the stream is open
            if getattr(event, "schema", None) != database:
                continue
            if isinstance(event, TableMapEvent):
                decoder.patch(event)
            elif isinstance(event, RowsEvent):
                packet, checksum = offered[-1]
                assert binlog_rows.table_id(packet) == event.table_id
                fast = binlog_rows.images(packet, checksum, decoder.readers) if decoder.readers else None
                decoded.append(Logged(event, packet, checksum, fast, (type(event), decoder.images(event))))
    finally:
        stream.close()
    return decoder, decoded


WORKLOAD = [
    f"INSERT INTO {{t}} VALUES {', '.join(ROWS)}",
    "UPDATE {t} SET id = id + 10, v = CONCAT(IFNULL(v, 'n'), '!'), i = NULL WHERE id < 3",
    "UPDATE {t} SET ti = 5, c = 'new' WHERE id = 3",
    "DELETE FROM {t}",
]


def test_planned_readers_match_the_library_on_every_column_and_event_kind(source, src, unique):
    decoder, events = _logged(source, src, unique("rows"), COLUMNS, WORKLOAD)
    assert decoder.readers is not None, "every column type above has a planned reader"
    for e in events:
        assert e.checksum, "the private MariaDB writes CRC32 checksums"
        assert e.fast == e.library
    assert {type(e.event).__name__ for e in events} == {"WriteRowsEvent", "UpdateRowsEvent", "DeleteRowsEvent"}
    assert sum(len(e.fast[1]) for e in events) == 3 + 2 + 1 + 3


def test_events_without_checksums_are_read_to_their_end(source, src, unique):
    src.execute("SET GLOBAL binlog_checksum = NONE")  # the server starts a new binlog file without them
    try:
        _, events = _logged(source, src, unique("rows"), COLUMNS, WORKLOAD)
    finally:
        src.execute("SET GLOBAL binlog_checksum = CRC32")
    assert events and not any(e.checksum for e in events)
    assert [e.fast for e in events] == [e.library for e in events]


def test_a_table_with_other_types_is_left_to_the_library(source, src, unique):
    decoder, events = _logged(
        source,
        src,
        unique("rows"),
        "id INT PRIMARY KEY, at DATETIME(6), amount DECIMAL(10, 2)",
        ["INSERT INTO {t} VALUES (1, '2026-11-29 01:02:03.456789', 12.5)"],
    )
    assert decoder.readers is None
    (logged,) = events
    assert logged.fast is None
    assert logged.library[1][0]["amount"] == Decimal("12.50")


def test_a_partial_row_image_stops_the_reader_instead_of_nulling_columns(source, src, unique):
    with pytest.raises(SyncError, match="binlog_row_image is not FULL"):
        _logged(
            source,
            src,
            unique("rows"),
            "id INT PRIMARY KEY, a INT, b VARCHAR(10)",
            [
                "INSERT INTO {t} VALUES (1, 2, 'x')",
                "SET SESSION binlog_row_image = MINIMAL",
                "UPDATE {t} SET a = 3 WHERE id = 1",
                "SET SESSION binlog_row_image = FULL",
            ],
        )


def test_version_2_rows_events_skip_their_extra_data(source, src, unique):
    """MySQL 5.6+ writes version 2 rows events (MariaDB writes version 1): the same rows after a
    block of extra data, here a partition id, whose length counts its own two bytes."""
    decoder, events = _logged(source, src, unique("rows"), COLUMNS, WORKLOAD[:2])
    extra = (5).to_bytes(2, "little") + b"\x01" + (7).to_bytes(2, "little")
    for e in events:
        v2 = e.packet[:5] + bytes([e.packet[5] + 7]) + e.packet[6:28] + extra + e.packet[28:]
        assert binlog_rows.images(v2, e.checksum, decoder.readers) == e.fast
    assert {type(e.event).__name__ for e in events} == {"WriteRowsEvent", "UpdateRowsEvent"}


def test_the_library_does_not_warn_about_row_metadata_omsbench_does_not_need(source, src, unique, caplog):
    caplog.set_level("WARNING")
    _logged(source, src, unique("rows"), "id INT PRIMARY KEY", ["INSERT INTO {t} VALUES (1)"])
    assert not [r for r in caplog.records if "BINLOG_ROW_METADATA" in r.getMessage()]
