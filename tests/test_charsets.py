"""Every character set MariaDB offers, through the full load and the sync, as the server converts it.

The full load reads text through a utf8mb4 connection (the server converts); the sync decodes
the binlog's bytes itself. Both must give the target the same characters for every byte value
of each single-byte set and every character of the multi-byte ones.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import make_project
from helpers import assert_same_tables
from test_sync import running

from omsbench.endpoints import charsets
from omsbench.endpoints.connection import connect
from omsbench.lab.charsets import candidates, conversions, converted

_WIDE_SAMPLE = [*range(256), 0x20AC, 0x3042, 0xFFFD, 0x1F600]


def test_the_recorded_conversions_are_the_servers_for_every_byte_and_sequence(src):
    recorded = json.loads(Path(charsets.__file__).with_name("charsets.json").read_text(encoding="utf-8"))
    assert conversions(src) == recorded


def _sets(src) -> list[tuple[str, int]]:
    return [(name, width) for name, _, _, width in src.query("SHOW CHARACTER SET") if name != "binary"]


def _values(src, charset: str, width: int) -> list[bytes]:
    """Every byte value; for a multi-byte set also every character the server reads (one in seven,
    and every one Python's nearest codec reads otherwise); for a Unicode set, code points."""
    if charset in ("ucs2", "utf16", "utf16le", "utf32"):
        return [chr(c).encode(charsets.UNICODE[charset]) for c in _WIDE_SAMPLE if charset != "ucs2" or c <= 0xFFFF]
    values = [bytes([b]) for b in range(256)]
    if width > 1 and charset in charsets.BASES:
        read = [s for s, char in converted(src, charset, list(candidates(charset))).items() if char and len(s) > 1]
        differing = json.loads(Path(charsets.__file__).with_name("charsets.json").read_text(encoding="utf-8"))
        values += read[::7] + [bytes.fromhex(s) for s in differing["multi"][charset] if len(s) > 2]
    return values


def _fill(src, database: str, charset: str, values: list[bytes], first: int) -> None:
    rows = ", ".join(f"({first + i}, X'{v.hex()}', X'{v.hex()}')" for i, v in enumerate(values))
    for table in (f"f_{charset}", f"l_{charset}"):
        src.execute(f"INSERT INTO `{database}`.`{table}` (id, v, w) VALUES {rows}")


def test_every_byte_value_of_every_character_set_arrives_as_the_server_reads_it(
    workspace, source, target, src, dst, unique
):
    database = unique("charsets")
    src.execute(f"CREATE DATABASE `{database}`")
    src.execute("SET SESSION sql_mode = ''")  # bytes a set cannot store are kept as the server's '?'
    sets = {charset: _values(src, charset, width) for charset, width in _sets(src)}
    for charset in sets:
        text = f"CHARACTER SET {charset}"
        # f_: integers and text only, decoded by omsbench's own row reader; l_: a DATE column hands
        # the rows to python-mysql-replication
        src.execute(f"CREATE TABLE `{database}`.`f_{charset}` (id INT PRIMARY KEY, v VARCHAR(4) {text}, w TEXT {text})")
        src.execute(
            f"CREATE TABLE `{database}`.`l_{charset}` (id INT PRIMARY KEY, v VARCHAR(4) {text}, w TEXT {text},"
            " d DATE DEFAULT '2026-01-02')"
        )
    for charset, values in sets.items():
        _fill(src, database, charset, values, first=1)
    project = make_project(workspace, source, target, name=database, objects={"include": [f"{database}.*"]})
    project.migrate_schema()
    project.full(progress=False)
    with running(project), connect(source.dsn()) as writer:
        writer.execute("SET SESSION sql_mode = ''")
        for charset, values in sets.items():
            _fill(writer, database, charset, values, first=100_000)
            writer.execute(f"UPDATE `{database}`.`f_{charset}` SET w = v WHERE id < 100")
        project.wait_for_sync()
    assert project.sync_status()["state"] == "stopped"
    tables = [t for charset in sets for t in (f"f_{charset}", f"l_{charset}")]
    assert_same_tables(src, dst, [(database, t, database, t) for t in tables])
    assert dst.scalar(f"SELECT COUNT(*) FROM `{database}`.`f_latin1` WHERE id >= 100000") == 256
