"""Row images of a binlog rows event, decoded from the event's bytes with readers planned per table map.

python-mysql-replication decodes every value through a chain of type tests and method calls,
which made row decoding a third of the sync's reader process (py-spy, sysbench backlog). For
tables whose columns are integers, floating point numbers or strings, one small reader per
column, chosen once per table map, does the same work directly on the event's bytes. Any other
column type (dates, decimals, JSON, BIT, ENUM, SET, geometry), a partial row image or an event
the library has already started to read falls back to the library, so the values are always
the library's.
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Callable

from pymysql.charset import charset_by_name
from pymysql.constants import FIELD_TYPE
from pymysqlreplication.constants import NONE_SOURCE
from pymysqlreplication.row_event import RowsEvent, UpdateRowsEvent

Reader = Callable[[bytes, int], tuple[object, int]]
Plan = list[tuple[str, Reader]]

_HEADER = 20
"""The OK byte and the 19-byte event header before an event's body in a dump packet."""

_FIXED = {
    FIELD_TYPE.TINY: ("<b", "<B"),
    FIELD_TYPE.SHORT: ("<h", "<H"),
    FIELD_TYPE.LONG: ("<i", "<I"),
    FIELD_TYPE.LONGLONG: ("<q", "<Q"),
    FIELD_TYPE.FLOAT: ("<f", "<f"),
    FIELD_TYPE.DOUBLE: ("<d", "<d"),
}
_STRINGS = {FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING, FIELD_TYPE.STRING}


def plan(columns: list) -> Plan | None:
    """Readers for a table map's columns (the library's, named), or None when one needs the library."""
    readers = []
    for column in columns:
        reader = _reader(column)
        if reader is None:
            return None
        readers.append((column.name, reader))
    return readers


def _reader(column) -> Reader | None:
    if column.type in _FIXED:
        fixed = struct.Struct(_FIXED[column.type][bool(column.unsigned)])
        unpack, size = fixed.unpack_from, fixed.size
        return lambda buf, pos: (unpack(buf, pos)[0], pos + size)
    if column.type == FIELD_TYPE.INT24:
        return _int24(bool(column.unsigned))
    if column.type == FIELD_TYPE.BLOB:
        return _string(column.length_size, _encoding(column.character_set_name))
    if column.type in _STRINGS:
        return _string(2 if column.max_length > 255 else 1, _encoding(column.character_set_name))
    return None


def _int24(unsigned: bool) -> Reader:
    def read(buf: bytes, pos: int) -> tuple[int, int]:
        return int.from_bytes(buf[pos : pos + 3], "little", signed=not unsigned), pos + 3

    return read


def _encoding(charset: str | None) -> str | None:
    """The codec the library decodes a character set with; None keeps bytes, as the library does
    for one Python lacks (``binary``)."""
    if charset is None:
        return "utf-8"  # the library's default for a column whose charset the table map omits
    known = charset_by_name(charset)
    try:
        return codecs.lookup(known.encoding if known else charset).name
    except LookupError:
        return None


def _string(width: int, encoding: str | None) -> Reader:
    def read(buf: bytes, pos: int) -> tuple[object, int]:
        start = pos + width
        end = start + int.from_bytes(buf[pos:start], "little")
        value = buf[start:end]
        if encoding:
            return value.decode(encoding), end
        return (value or ""), end  # as the library: decoding b"" never looks the codec up, so it gives ""

    return read


def rows(event: RowsEvent, readers: Plan) -> list[dict] | None:
    """The event's row images as the library would give them (``values``, or ``before_values`` and
    ``after_values``), or None when this event must be left to the library."""
    raw = event.packet.packet
    start = raw._position
    count = event.number_of_columns
    update = isinstance(event, UpdateRowsEvent)
    if (
        event.packet._BinLogPacketWrapper__data_buffer  # the library pushed bytes back: it is mid-read
        or start != _HEADER + event.packet.read_bytes
        or len(readers) != count
        or not _all_present(event.columns_present_bitmap, count)
        or (update and not _all_present(event.columns_present_bitmap2, count))
    ):
        return None
    buf, end = raw._data, _HEADER + event.event_size
    nulls = (count + 7) // 8
    out = []
    pos = start
    while pos < end:
        before, before_nulls, pos = _image(buf, pos, nulls, readers)
        if update:
            after, after_nulls, pos = _image(buf, pos, nulls, readers)
            out.append({"before_values": before, "before_none_sources": before_nulls, "after_values": after,
                        "after_none_sources": after_nulls})  # fmt: skip
        else:
            out.append({"values": before, "none_sources": before_nulls})
    if pos != end:
        raise ValueError(f"rows of {event.schema}.{event.table} ran {pos - end} bytes past the event's end")
    return out


def _all_present(bitmap: bytes, count: int) -> bool:
    full, rest = divmod(count, 8)
    return all(b == 0xFF for b in bitmap[:full]) and (not rest or bitmap[full] & ((1 << rest) - 1) == (1 << rest) - 1)


def _image(buf: bytes, pos: int, nulls: int, readers: Plan) -> tuple[dict, dict, int]:
    """One row image and, as the library says why a value is None, its NULL columns."""
    bitmap = buf[pos : pos + nulls]
    pos += nulls
    values, none_sources = {}, {}
    for i, (name, read) in enumerate(readers):
        if bitmap[i >> 3] & (1 << (i & 7)):
            values[name] = None
            none_sources[name] = NONE_SOURCE.NULL
        else:
            values[name], pos = read(buf, pos)
    return values, none_sources, pos
