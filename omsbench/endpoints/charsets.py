"""MySQL and MariaDB character sets decoded exactly as the server converts them to utf8mb4.

The full load reads text through a utf8mb4 connection, so the server converts it; the binlog
carries the stored bytes, which the sync must decode itself. Python's codecs are not the
server's: its cp1252 (pymysql's codec for latin1) refuses five bytes MySQL's latin1 stores, its
euc_jp and big5 map hundreds of characters to other code points, and it has no codec at all
for ucs2, swe7, dec8, hp8, armscii8, keybcs2 or geostd8. So the server's own conversion is
recorded in ``charsets.json`` (by ``python -m omsbench.lab.charsets``, from MariaDB): every byte
of each single-byte set, and for each multi-byte set every character on which the nearest
Python codec and the server differ. Each set is registered as the Python codec ``mysql_<name>``.
The test suite compares the file with the server's conversion of every byte value and every
two- and three-byte sequence, so a server with other tables is found, not silently trusted.
"""

from __future__ import annotations

import codecs
import json
from functools import cache
from pathlib import Path

UNICODE = {
    "utf8": "utf-8",
    "utf8mb3": "utf-8",
    "utf8mb4": "utf-8",
    "ucs2": "utf-16-be",
    "utf16": "utf-16-be",
    "utf16le": "utf-16-le",
    "utf32": "utf-32-be",
}
"""Sets that are a Unicode encoding, which Python's codec decodes as the server does."""

BASES = {
    "big5": "big5",
    "sjis": "shift_jis",
    "cp932": "cp932",
    "euckr": "cp949",  # MariaDB's and MySQL's euckr is Microsoft's extended cp949
    "gb2312": "gb2312",
    "gbk": "gbk",
    "ujis": "euc_jp",
    "eucjpms": "euc_jp",
}
"""Multi-byte sets: the Python codec nearest to the server's tables, corrected by the recorded differences."""

_LONG = {
    "sjis": (range(0x81, 0xA0), range(0xE0, 0xFD)),
    "cp932": (range(0x81, 0xA0), range(0xE0, 0xFD)),
    "ujis": (range(0x8E, 0x8F), range(0xA1, 0xFF)),
    "eucjpms": (range(0x8E, 0x8F), range(0xA1, 0xFF)),
}
_THREE = {"ujis": 0x8F, "eucjpms": 0x8F}
"""In EUC-JP, 0x8F starts a three-byte character (JIS X 0212)."""


def leads(charset: str) -> set[int]:
    """The bytes that start a two-byte character of a multi-byte set."""
    return {b for r in _LONG.get(charset, (range(0x81, 0xFF),)) for b in r}


def width(charset: str, lead: int) -> int:
    if lead == _THREE.get(charset):
        return 3
    return 2 if lead in leads(charset) else 1


@cache
def _recorded() -> dict:
    return json.loads((Path(__file__).with_name("charsets.json")).read_text(encoding="utf-8"))


def codec(charset: str | None) -> str | None:
    """The Python codec that decodes ``charset`` as the server does; None when omsbench has none."""
    name = (charset or "utf8mb4").lower()
    if name in UNICODE:
        return UNICODE[name]
    if name in _recorded()["single"] or name in _recorded()["multi"]:
        return f"mysql_{name}"
    return None


@cache
def _single(name: str) -> codecs.CodecInfo:
    table = _recorded()["single"][name]
    encoding: dict[int, int] = {}
    for byte, char in enumerate(table):
        encoding.setdefault(ord(char), byte)  # several bytes the server cannot map all read '?'

    def decode(data: bytes, errors: str = "strict") -> tuple[str, int]:
        return codecs.charmap_decode(data, errors, table)

    def encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
        return codecs.charmap_encode(text, errors, encoding)

    return codecs.CodecInfo(encode, decode, name=f"mysql_{name}")


@cache
def _multi(name: str) -> codecs.CodecInfo:
    base = BASES[name]
    overrides = {bytes.fromhex(seq): char for seq, char in _recorded()["multi"][name].items()}
    reverse = {char: seq for seq, char in overrides.items() if char not in ("?", "\ufffd")}

    def decode(data: bytes, errors: str = "strict") -> tuple[str, int]:
        data = bytes(data)
        if data.isascii():
            return data.decode("ascii"), len(data)
        out, pos = [], 0
        while pos < len(data):
            step = width(name, data[pos])
            piece = data[pos : pos + step]
            out.append(overrides.get(piece) or _or_unknown(piece, base))
            pos += step
        return "".join(out), len(data)

    def encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
        return b"".join(reverse.get(c) or c.encode(base, errors) for c in text), len(text)

    return codecs.CodecInfo(encode, decode, name=f"mysql_{name}")


def _or_unknown(piece: bytes, base: str) -> str:
    """A sequence the server reads as no character is '?', as in its conversion (one it refuses
    to store cannot be in its binlog)."""
    try:
        return piece.decode(base)
    except UnicodeDecodeError:
        return "?"


def _search(normalized: str) -> codecs.CodecInfo | None:
    if not normalized.startswith("mysql_"):
        return None
    name = normalized.removeprefix("mysql_")
    if name in _recorded()["single"]:
        return _single(name)
    if name in _recorded()["multi"]:
        return _multi(name)
    return None


codecs.register(_search)
