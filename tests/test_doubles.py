"""DOUBLE values arrive bit for bit, and both servers render them alike (what the checksum compares).

The full load writes each value as the source server's text, the checksum compares each server's
text, and the sync writes the value the binlog holds: a value whose text loses a bit, or that the
two servers print differently, would be a silent difference or a false one.
"""

from __future__ import annotations

import struct

import pytest
from conftest import make_project
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_sync import running

EDGES = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 2.225073858507201e-308, 1e308, -1e308,
         1.7976931348623157e308, 0.1, 1 / 3, 2.0**53 + 2, 123456789.12345679, 9.007199254740993e15]  # fmt: skip
DOUBLES = st.floats(allow_nan=False, allow_infinity=False, width=64)


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


@pytest.fixture(scope="module")
def doubles_project(tmp_path_factory, source, target):
    from omsbench.endpoints.connection import connect
    from omsbench.engine.workspace import Workspace

    database = "doubles_prop"
    with connect(source.dsn()) as src:
        src.execute(f"DROP DATABASE IF EXISTS `{database}`")
        src.execute(f"CREATE DATABASE `{database}`")
        src.execute(f"CREATE TABLE `{database}`.d (id INT PRIMARY KEY, v DOUBLE)")
    root = tmp_path_factory.mktemp("ws")
    project = make_project(Workspace.at(root), source, target, name=database, objects={"include": [f"{database}.*"]})
    project.migrate_schema()
    return project, database


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(DOUBLES, min_size=1, max_size=200))
@example(values=EDGES)
def test_doubles_round_trip_bit_for_bit_through_the_load_and_the_sync(doubles_project, src, dst, values):
    project, database = doubles_project
    table = f"`{database}`.d"
    src.execute(f"DELETE FROM {table}")
    with src.conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)", list(enumerate(values)))
    project.full(progress=False, restart=True)  # the load (the target emptied first): the source's text of each value
    with running(project):  # the sync: the binlog's value of each
        with src.conn.cursor() as cur:
            cur.executemany(
                f"REPLACE INTO {table} VALUES (%s, %s)", [(len(values) + i, v) for i, v in enumerate(values)]
            )
        project.wait_for_sync()
    stored = dict(src.query(f"SELECT id, v FROM {table}"))
    arrived = dict(dst.query(f"SELECT id, v FROM {table}"))
    assert {k: _bits(v) for k, v in arrived.items()} == {k: _bits(v) for k, v in stored.items()}
    # what the source holds is what counts: MariaDB itself stores -0.0 as +0.0 (its text is "0")
    assert {k: _bits(v or 0.0) for k, v in stored.items() if k < len(values)} == {
        k: _bits(v or 0.0) for k, v in enumerate(values)
    }  # every other value as given: no bit lost on the way into the source either
    text = "SELECT id, CAST(v AS CHAR) FROM " + table
    assert dict(dst.query(text)) == dict(src.query(text))  # the checksum's canonical text agrees
    assert project.check()["equal"].all()
