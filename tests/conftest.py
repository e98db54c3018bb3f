"""Fixtures: one private MariaDB, one embedded seekdb and one seekdb TCP server per test session.

Every test talks to these real servers over real connections; nothing is mocked.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from omsbench.endpoints.connection import Endpoint, Session, connect
from omsbench.engine import spec as specs
from omsbench.engine.project import Project
from omsbench.engine.workspace import Workspace
from omsbench.lab.servers import MariaDB, SeekdbServer

_names = itertools.count(1)


@pytest.fixture(scope="session")
def servers_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("servers")


def _serving(server):
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mariadb(servers_root):
    yield from _serving(MariaDB(servers_root / "mariadb", server_id=7))


@pytest.fixture(scope="session")
def mysql_target(servers_root):
    """A second MariaDB: a target that writes a binlog, as an OceanBase binlog service would."""
    yield from _serving(MariaDB(servers_root / "mariadb-target", server_id=8))


@pytest.fixture(scope="session")
def source(mariadb) -> Endpoint:
    return mariadb.endpoint()


@pytest.fixture(scope="session")
def target(servers_root) -> Endpoint:
    """The embedded seekdb, opened once by the test process."""
    return Endpoint(url=f"seekdb://{servers_root / 'seekdb-embedded'}")


@pytest.fixture(scope="session")
def seekdb_tcp(servers_root):
    yield from _serving(SeekdbServer(servers_root / "seekdb-tcp"))


@pytest.fixture
def src(source) -> Session:
    with connect(source.dsn()) as session:
        yield session


@pytest.fixture
def dst(target) -> Session:
    with connect(target.dsn()) as session:
        yield session


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    """A workspace folder that exists, as after a first command (tests put spec files into it)."""
    (tmp_path / "ws").mkdir()
    return Workspace.at(tmp_path / "ws")


@pytest.fixture
def unique():
    """A fresh name per call, so tests never share databases."""
    return lambda prefix="t": f"{prefix}{next(_names)}"


def make_project(workspace: Workspace, source: Endpoint, target: Endpoint, **sections) -> Project:
    data = {
        "name": sections.pop("name", None) or f"p{next(_names)}",  # checkpoints on a shared target are per name
        "source": source.model_dump(exclude_none=True),
        "target": target.model_dump(exclude_none=True),
        **sections,
    }
    data.setdefault("options", {}).setdefault("parallelism", 2)
    data["options"].setdefault("executor", "threads")
    project = Project(specs.parse(data), workspace)
    project.save()
    return project


def one_table_migrated(workspace: Workspace, source: Endpoint, target: Endpoint, src: Session, database: str,
                       values: list[str]) -> Project:  # fmt: skip
    """A database with one table ``t (id, v)`` holding ``values``, its schema and rows migrated."""
    src.execute(f"CREATE DATABASE `{database}`")
    src.execute(f"CREATE TABLE `{database}`.t (id INT PRIMARY KEY, v VARCHAR(20))")
    rows = ", ".join(f"({i}, {src.conn.escape(v)})" for i, v in enumerate(values, 1))
    src.execute(f"INSERT INTO `{database}`.t VALUES {rows}")
    project = make_project(workspace, source, target, name=database, objects={"include": [f"{database}.*"]})
    project.migrate_schema()
    project.full(progress=False)
    return project


def rows_of(session: Session, table: str, order: str) -> list[tuple]:
    return session.query(f"SELECT * FROM {table} ORDER BY {order}")


def table_migrated(workspace: Workspace, source: Endpoint, target: Endpoint, src: Session, database: str,
                   columns: str, rows: str) -> Project:  # fmt: skip
    """``database``.t (``columns``) holding ``rows`` (what follows INSERT INTO t), its schema and rows migrated."""
    src.execute(f"CREATE DATABASE `{database}`")
    src.execute(f"CREATE TABLE `{database}`.t ({columns})")
    src.execute(f"INSERT INTO `{database}`.t {rows}")
    project = make_project(workspace, source, target, name=database, objects={"include": [f"{database}.*"]})
    project.migrate_schema()
    project.full(progress=False)
    return project


def seq_table_migrated(workspace: Workspace, source: Endpoint, target: Endpoint, src: Session, database: str,
                       columns: str, values: str, rows: int) -> Project:  # fmt: skip
    """``database``.t (``columns``) holding ``rows`` rows of ``values`` (SQL over ``seq``, 1 to ``rows``), migrated."""
    select = f"SELECT {values} FROM `{database}`.seq_1_to_{rows}"
    return table_migrated(workspace, source, target, src, database, columns, select)
