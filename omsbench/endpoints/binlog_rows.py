"""Row images of a binlog rows event, decoded from the event's bytes with readers planned per table map.

python-mysql-replication builds an event object for every rows event and decodes every value
through a chain of type tests and method calls: together four fifths of the sync's reader
process (py-spy, sysbench backlog). For tables whose columns are integers, floating point
numbers or strings, one small reader per column, chosen once per table map, decodes the rows
straight from the packet, which the replication connection hands over before the library
sees it (``endpoints/binlog.py``). Any other column type (dates, decimals, JSON, BIT, ENUM,
SET, geometry) or a partial row image is left to the library, so the values are always the
library's.
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Callable

from pymysql.charset import charset_by_name
from pymysql.constants import FIELD_TYPE
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

Reader = Callable[[bytes, int], tuple[object, int]]
Plan = list[tuple[str, Reader]]

_HEADER = 20
"""The OK byte and the 19-byte event header before an event's body in a dump packet."""
_FLAGS = _HEADER + 6
"""A rows event's body starts with the 6-byte table id, then 2 bytes of flags."""

KINDS = {
    23: WriteRowsEvent, 24: UpdateRowsEvent, 25: DeleteRowsEvent,  # version 1: MariaDB, MySQL 5.5
    30: WriteRowsEvent, 31: UpdateRowsEvent, 32: DeleteRowsEvent,  # version 2: MySQL 5.6 and later
}  # fmt: skip
"""Rows event type codes, as the library's classes name their kind of change."""
TABLE_MAP = 19

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


def table_id(packet: bytes) -> int:
    return int.from_bytes(packet[_HEADER:_FLAGS], "little")


def next_position(packet: bytes) -> int:
    """Where the event after this one starts in the binlog file (the header's log_pos)."""
    return int.from_bytes(packet[14:18], "little")


def images(packet: bytes, checksum: bool, readers: Plan) -> tuple[type, list] | None:
    """The kind of a rows event's change (the library's event class) and its row images: value
    dicts, or (before, after) pairs for updates; None when the event must be left to the library.

    ``packet`` is the whole dump packet, ``checksum`` says whether the event ends in a CRC32.
    """
    kind = KINDS[packet[5]]
    pos = _FLAGS + 2
    if packet[5] >= 30:  # version 2: extra data, its length counting its own two bytes
        pos = _FLAGS + 2 + int.from_bytes(packet[pos : pos + 2], "little")
    count, pos = _length_coded(packet, pos)
    width = (count + 7) // 8
    update = kind is UpdateRowsEvent
    images = 2 if update else 1
    if len(readers) != count or not all(
        full_image(packet[at : at + width], count) for at in range(pos, pos + images * width, width)
    ):
        return None
    pos += images * width
    end = len(packet) - (4 if checksum else 0)
    out = []
    while pos < end:
        before, pos = _image(packet, pos, width, readers)
        if update:
            after, pos = _image(packet, pos, width, readers)
            out.append((before, after))
        else:
            out.append(before)
    if pos != end:
        raise ValueError(f"rows of table id {table_id(packet)} ran {pos - end} bytes past the event's end")
    return kind, out


def full_image(columns_present: bytes, count: int) -> bool:
    """Whether a rows event's columns-present bitmap names all ``count`` columns."""
    every = (1 << count) - 1
    return int.from_bytes(columns_present, "little") & every == every


def _length_coded(buf: bytes, pos: int) -> tuple[int, int]:
    first = buf[pos]
    if first < 251:
        return first, pos + 1
    size = {252: 2, 253: 3, 254: 8}[first]
    return int.from_bytes(buf[pos + 1 : pos + 1 + size], "little"), pos + 1 + size


def _image(buf: bytes, pos: int, nulls: int, readers: Plan) -> tuple[dict, int]:
    bitmap = buf[pos : pos + nulls]
    pos += nulls
    values = {}
    for i, (name, read) in enumerate(readers):
        if bitmap[i >> 3] & (1 << (i & 7)):
            values[name] = None
        else:
            values[name], pos = read(buf, pos)
    return values, pos
