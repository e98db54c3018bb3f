"""Awkward identifiers, composite and string keys, renames and row filters, and the errors for bad ones."""

from __future__ import annotations

import pytest
from conftest import make_project
from helpers import exact_rows

from omsbench.exceptions import SpecError

WEIRD_DB = "select db`x"
WEIRD_TABLE = "order ✓ `items`"


@pytest.fixture
def weird(src, unique):
    db = f"{WEIRD_DB}{unique('')}"
    q = "`" + db.replace("`", "``") + "`"
    src.execute(f"DROP DATABASE IF EXISTS {q}")
    src.execute(f"CREATE DATABASE {q}")
    table = "`" + WEIRD_TABLE.replace("`", "``") + "`"
    src.execute(
        f"CREATE TABLE {q}.{table} (`group` VARCHAR(20) NOT NULL, `größe nr` INT NOT NULL, `from` TEXT,"
        " PRIMARY KEY (`group`, `größe nr`))"
    )
    rows = [(f"g{i % 7}é", i, None if i % 5 == 0 else f"v{i}") for i in range(1, 1201)]
    src.conn.cursor().executemany(f"INSERT INTO {q}.{table} VALUES (%s, %s, %s)", rows)
    src.execute(f"CREATE TABLE {q}.`select` (`key` VARCHAR(40) PRIMARY KEY, `order` INT)")
    src.conn.cursor().executemany(
        f"INSERT INTO {q}.`select` VALUES (%s, %s)", [(f"k-{i:05d}-ü", i) for i in range(700)]
    )
    return db


def _pattern(db: str, table: str = "*") -> str:
    return "`" + db.replace("`", "``") + "`." + table


def test_reserved_words_spaces_backticks_unicode_and_composite_string_keys(workspace, source, target, src, dst, weird):
    project = make_project(
        workspace, source, target, objects={"include": [_pattern(weird)]}, options={"chunk_size": 100}
    )
    project.migrate_schema()
    result = project.full(progress=False)
    assert result.chunks_copied > 10  # both tables really were split into key ranges
    for table in (WEIRD_TABLE, "select"):
        assert exact_rows(src, weird, table) == exact_rows(dst, weird, table)
    assert project.check()["equal"].all()


def test_renames_and_row_filter(workspace, source, target, src, dst, weird, unique):
    new_db = unique("renamed_")
    key = f"{_pattern(weird)[:-2]}.`select`"
    project = make_project(
        workspace,
        source,
        target,
        name="renames",
        objects={
            "include": [_pattern(weird, "select")],
            "rename": {
                "databases": {weird: new_db},
                "tables": {key: "chosen"},
                "columns": {_pattern(weird)[:-2] + ".`select`.order": "rank"},
            },
            "filters": {key: "`order` % 2 = 0 AND `key` LIKE 'k-%'"},
        },
    )
    project.migrate_schema()
    project.full(progress=False)
    columns = [r[0] for r in dst.query(f"SHOW COLUMNS FROM `{new_db}`.chosen")]
    assert columns == ["key", "rank"]
    expected = src.query(f"SELECT `key`, `order` FROM `{weird.replace('`', '``')}`.`select` WHERE `order` % 2 = 0")
    assert sorted(dst.query(f"SELECT `key`, `rank` FROM `{new_db}`.chosen")) == sorted(expected)
    assert len(expected) == 350
    assert project.check()["equal"].all()


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        ({"include": ["nosuchdb.*"]}, "matches no table"),
        ({"include": ["{db}.*"], "filters": {"{db}.missing": "1=1"}}, "not a selected source table"),
        ({"include": ["{db}.*"], "filters": {"{db}.`select`": "1=1; DROP TABLE x"}}, "one condition"),
        ({"include": ["{db}.*"], "filters": {"{db}.`select`": "`order` IN (SELECT 1)"}}, "one condition"),
        ({"include": ["{db}.*"], "filters": {"{db}.`select`": "1) OR (1"}}, "one condition"),  # escapes its ()
        ({"include": ["{db}.*"], "filters": {"{db}.`select`": "nope > 1"}}, "unknown column"),
        ({"include": ["{db}.*"], "rename": {"tables": {"{db}.`select`": WEIRD_TABLE}}}, "would both become"),
        ({"include": ["{db}.*"], "rename": {"columns": {"{db}.`select`.order": "key"}}}, "same name"),
        ({"include": ["{db}.*"], "rename": {"columns": {"{db}.`select`.nope": "x"}}}, "has no column"),
        ({"include": ["{db}"]}, "not a db.table pattern"),
    ],
)
def test_bad_objects_are_refused_before_the_target_is_touched(workspace, source, target, dst, weird, objects, message):
    db = _pattern(weird)[:-2]
    filled = _fill(objects, db)
    project = make_project(workspace, source, target, name="bad", objects=filled)
    with pytest.raises(SpecError, match=message):
        project.migrate_schema()
    assert not dst.query("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (weird,))


def _fill(value, db):
    if isinstance(value, dict):
        return {_fill(k, db): _fill(v, db) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, db) for v in value]
    return value.replace("{db}", db) if isinstance(value, str) else value
