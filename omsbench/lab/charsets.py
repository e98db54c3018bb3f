"""Records how a server converts every character of its character sets to utf8mb4.

``python -m omsbench.lab.charsets`` starts the private MariaDB and writes
``omsbench/endpoints/charsets.json``, which ``endpoints/charsets.py`` decodes the binlog's text
with; the test suite calls :func:`conversions` and compares. A sequence is asked as
``CONVERT(CONVERT(X'..' USING set) USING utf8mb4)``: the bytes as the set's text, then as the
full load reads them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

from omsbench.endpoints import charsets
from omsbench.endpoints.connection import Session

_PER_QUERY = 250
_TRAILS = range(0x21, 0xFF)


def single_byte_sets(session: Session) -> list[str]:
    return [
        name
        for name, _, _, width in session.query("SHOW CHARACTER SET")
        if width == 1 and name not in ("binary", *charsets.UNICODE)
    ]


def converted(session: Session, charset: str, sequences: list[bytes]) -> dict[bytes, str | None]:
    """What the server reads each sequence as: one character, or None when it is not one."""
    out: dict[bytes, str | None] = {}
    for at in range(0, len(sequences), _PER_QUERY):
        part = sequences[at : at + _PER_QUERY]
        text = (f"CONVERT(X'{s.hex()}' USING {charset})" for s in part)
        row = session.query("SELECT " + ",".join(f"CONVERT({t} USING utf8mb4)" for t in text))[0]
        out.update((s, v if len(v) == 1 else None) for s, v in zip(part, row, strict=True))
    return out


def candidates(charset: str) -> Iterable[bytes]:
    """Every byte, every two-byte sequence with a lead byte of the set and, for EUC-JP, every
    three-byte one."""
    yield from (bytes([b]) for b in range(256))
    for lead in sorted(charsets.leads(charset)):
        yield from (bytes([lead, t]) for t in _TRAILS)
    if charsets.width(charset, 0x8F) == 3:
        yield from (bytes([0x8F, a, b]) for a in range(0xA1, 0xFF) for b in range(0xA1, 0xFF))


def _python(sequence: bytes, codec: str) -> str | None:
    try:
        return sequence.decode(codec)
    except UnicodeDecodeError:
        return None


def differences(session: Session, charset: str) -> dict[str, str]:
    """The characters of a multi-byte set that its base Python codec does not decode as the server.

    Sequences neither reads as a character are left out: the decoder reads those as the server's '?'.
    """
    server = converted(session, charset, list(candidates(charset)))
    base = charsets.BASES[charset]
    return {
        s.hex(): v
        for s, v in server.items()
        if v is not None and _python(s, base) != v and not (v == "?" and _python(s, base) is None)
    }


def conversions(session: Session) -> dict:
    singles = single_byte_sets(session)
    return {
        "single": {cs: "".join(converted(session, cs, [bytes([b]) for b in range(256)]).values()) for cs in singles},
        "multi": {cs: differences(session, cs) for cs in charsets.BASES},
    }


def main() -> None:
    from omsbench.endpoints.connection import connect
    from omsbench.lab.servers import MariaDB

    server = MariaDB(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".omsbench/servers/mariadb"))
    server.start()
    with connect(server.endpoint().dsn()) as session:
        recorded = conversions(session)
    target = Path(charsets.__file__).with_name("charsets.json")
    target.write_text(json.dumps(recorded, ensure_ascii=False, indent=0, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
