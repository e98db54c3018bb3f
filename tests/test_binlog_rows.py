"""The planned row readers decode every binlog rows event exactly as python-mysql-replication does."""

from __future__ import annotations

from decimal import Decimal

from pymysqlreplication.row_event import RowsEvent, TableMapEvent

from omsbench.endpoints import binlog_rows, catalog
from omsbench.endpoints.binlog import open_stream
from omsbench.endpoints.mysql import master_status
from omsbench.engine.cdc import Decoder

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


def test_planned_readers_match_the_library_on_every_column_and_event_kind(source, src, unique):
    database = unique("rows")
    src.execute(f"CREATE DATABASE `{database}`")
    src.execute(f"CREATE TABLE `{database}`.t ({COLUMNS})")
    start = master_status(src)
    src.execute(f"INSERT INTO `{database}`.t VALUES {', '.join(ROWS)}")
    src.execute(f"UPDATE `{database}`.t SET id = id + 10, v = CONCAT(IFNULL(v, 'n'), '!'), i = NULL WHERE id < 3")
    src.execute(f"UPDATE `{database}`.t SET ti = 5, c = 'new' WHERE id = 3")
    src.execute(f"DELETE FROM `{database}`.t")
    decoder = Decoder(catalog.read(src, [database]).tables[(database, "t")])

    stream = open_stream(source.dsn(), src.flavor, 4711, start, blocking=False)
    kinds, compared = set(), 0
    try:
        for event in stream:
            if getattr(event, "schema", None) != database:
                continue
            if isinstance(event, TableMapEvent):
                decoder.patch(event)
                assert decoder.readers is not None, "every column type above has a planned reader"
            elif isinstance(event, RowsEvent):
                fast = binlog_rows.rows(event, decoder.readers)
                assert fast is not None
                slow = event.rows
                assert fast == slow
                kinds.add(type(event).__name__)
                compared += len(fast)
    finally:
        stream.close()
    assert kinds == {"WriteRowsEvent", "UpdateRowsEvent", "DeleteRowsEvent"}
    assert compared == 3 + 2 + 1 + 3


def test_a_table_with_other_types_is_left_to_the_library(source, src, unique):
    database = unique("rows")
    src.execute(f"CREATE DATABASE `{database}`")
    src.execute(f"CREATE TABLE `{database}`.t (id INT PRIMARY KEY, at DATETIME(6), amount DECIMAL(10, 2))")
    start = master_status(src)
    src.execute(f"INSERT INTO `{database}`.t VALUES (1, '2026-11-29 01:02:03.456789', 12.5)")
    decoder = Decoder(catalog.read(src, [database]).tables[(database, "t")])
    stream = open_stream(source.dsn(), src.flavor, 4712, start, blocking=False)
    try:
        events = [e for e in stream if getattr(e, "schema", None) == database]
    finally:
        stream.close()
    decoder.patch(next(e for e in events if isinstance(e, TableMapEvent)))
    assert decoder.readers is None
    rows = decoder.rows(next(e for e in events if isinstance(e, RowsEvent)))
    assert rows[0]["values"]["amount"] == Decimal("12.50")
