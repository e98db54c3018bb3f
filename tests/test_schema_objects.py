"""Schema migration of the objects that need translating, and what the report says about each."""

from __future__ import annotations

import pytest
import yaml
from conftest import make_project
from helpers import exact_rows

from omsbench.endpoints.catalog import Column, Table
from omsbench.endpoints.connection import connect
from omsbench.engine import precheck, programs
from omsbench.engine.mapping import Selection, TableMap


@pytest.fixture
def objects_db(src, unique):
    db = unique("objs")
    src.execute(f"CREATE DATABASE `{db}`")
    src.execute(f"USE `{db}`")
    src.execute(
        "CREATE TABLE events (id INT NOT NULL, yr SMALLINT NOT NULL, what VARCHAR(20), PRIMARY KEY (id, yr))"
        " PARTITION BY RANGE (yr) (PARTITION p2022 VALUES LESS THAN (2023), PARTITION p2023 VALUES LESS THAN (2024),"
        " PARTITION pmax VALUES LESS THAN MAXVALUE)"
    )
    src.execute(
        "CREATE TABLE people (id INT PRIMARY KEY COMMENT 'the key', first VARCHAR(20) NOT NULL DEFAULT 'x',"
        " last VARCHAR(20), full_name VARCHAR(41) AS (CONCAT(first, ' ', last)) VIRTUAL, token UUID,"
        " ip INET6 DEFAULT '::1') COMMENT='who is who'"
    )
    src.execute("CREATE TABLE legacy (id INT PRIMARY KEY, v INT) ENGINE=MyISAM")
    src.execute("CREATE PROCEDURE bump() UPDATE legacy SET v = v + 1")
    src.execute("CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN 2 * x")
    src.execute("CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DO DELETE FROM legacy WHERE v > 100")
    src.execute("INSERT INTO events VALUES (1, 2022, 'a'), (2, 2023, 'b'), (3, 2030, NULL)")
    src.execute(
        "INSERT INTO people (id, first, last, token, ip) VALUES (1, 'Ada', 'Lovelace',"
        " '123e4567-e89b-12d3-a456-426655440000', '2001:db8::ff00:42:8329'), (2, 'Alan', NULL, NULL, NULL)"
    )
    src.execute("INSERT INTO legacy VALUES (1, 10), (2, 20)")
    return db


def test_report_says_what_changed_and_what_was_skipped(workspace, source, target, src, dst, objects_db):
    db = objects_db
    project = make_project(workspace, source, target, objects={"include": [f"{db}.*"]})
    findings = project.precheck()
    types = findings[findings.check == "type"].set_index("object")
    assert types.loc[f"{db}.people.token", "status"] == "warn"
    assert "char(36)" in types.loc[f"{db}.people.token", "detail"]

    report = project.migrate_schema().set_index("source")
    for routine in ("bump", "twice", "nightly"):
        assert report.loc[f"{db}.{routine}", "status"] == "skipped"
        assert report.loc[f"{db}.{routine}", "detail"]
    assert report.loc[f"{db}.people", "status"] == "changed"
    assert "uuid -> char(36)" in report.loc[f"{db}.people", "detail"]
    assert "MyISAM" in report.loc[f"{db}.legacy", "detail"]
    assert (project.workspace.root / "reports" / project.name / "schema.json").exists()

    partitions = dst.query(
        "SELECT PARTITION_NAME FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'events'"
        " ORDER BY PARTITION_ORDINAL_POSITION",
        (db,),
    )
    assert [p[0] for p in partitions] == ["p2022", "p2023", "pmax"]
    generated = dst.scalar(
        "SELECT GENERATION_EXPRESSION FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s"
        " AND TABLE_NAME = 'people' AND COLUMN_NAME = 'full_name'",
        (db,),
    )
    assert "concat" in generated.lower()
    comments = dst.query(
        "SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'people'", (db,)
    )
    assert comments == [("who is who",)]

    project.full(progress=False)
    for table in ("events", "people", "legacy"):
        assert exact_rows(src, db, table) == exact_rows(dst, db, table)
    assert project.check()["equal"].all()
    dst.execute(f"INSERT INTO `{db}`.people (id, last) VALUES (3, 'Turing')")  # defaults carried
    assert dst.query(f"SELECT full_name, ip FROM `{db}`.people WHERE id = 3") == [("x Turing", "::1")]


def test_a_type_that_cannot_be_carried_fails_the_precheck():
    # MariaDB 11.7's VECTOR, for instance: OceanBase's MySQL mode has no such column type.
    table = Table(
        "ai",
        "docs",
        columns=[Column("id", "int", "int(11)", False, None), Column("emb", "vector", "vector(3)", True, None)],
        primary_key=["id"],
    )
    selection = Selection(tables=[TableMap(table, "ai", "docs", {"id": "id", "emb": "emb"})])
    found = precheck.frame(precheck.column_types(selection))
    assert list(found.status) == ["fail"]
    assert "vector(3) cannot be carried" in found.detail[0]


def test_an_object_the_target_did_not_get_fails_the_load_unless_the_spec_accepts_it(
    workspace, source, seekdb_tcp, src, unique, tmp_path
):
    """No silent skips: the load names what the target lacks and exits 1; a SPATIAL index is created."""
    from test_cli import omsbench

    db = unique("missing")
    src.execute(f"CREATE DATABASE `{db}`")
    src.execute(f"USE `{db}`")
    src.execute("CREATE TABLE places (id INT PRIMARY KEY, spot GEOMETRY NOT NULL, SPATIAL INDEX idx_spot (spot))")
    src.execute("INSERT INTO places VALUES (1, ST_GeomFromText('POINT(1 1)'))")
    src.execute("CREATE TABLE parent (id INT PRIMARY KEY)")
    src.execute(
        "CREATE TABLE child (id INT PRIMARY KEY, p INT, CONSTRAINT fk_p FOREIGN KEY (p) REFERENCES parent (id))"
    )
    src.execute("INSERT INTO parent VALUES (1)")
    src.execute("INSERT INTO child VALUES (1, 1)")
    target = seekdb_tcp.endpoint()
    spec = {
        "name": db,
        "source": source.model_dump(exclude_none=True),
        "target": target.model_dump(exclude_none=True),
        "objects": {"include": [f"{db}.*"]},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert omsbench(workspace.root, "schema", str(path)).returncode == 0
    loaded = omsbench(workspace.root, "full", str(path))
    assert loaded.returncode == 0, loaded.stderr
    with connect(target.dsn()) as dst:
        assert dst.query(
            f"SHOW INDEX FROM `{db}`.places WHERE Key_name = 'idx_spot'"
        )  # MariaDB's 32-byte prefix dropped
        dst.execute(f"ALTER TABLE `{db}`.child DROP FOREIGN KEY fk_p")
        dst.execute("SET SESSION foreign_key_checks = 0")
        dst.execute(f"INSERT INTO `{db}`.child VALUES (2, 99)")  # the target's own orphan: the key cannot come back
    refused = omsbench(workspace.root, "full", str(path))
    assert refused.returncode == 1 and f"not created on the target: foreign key {db}.child.fk_p" in refused.stderr
    assert "accept_missing" in refused.stderr
    status = omsbench(workspace.root, "status", db)
    assert "post_load" in status.stdout and "failed" in status.stdout and "fk_p" in status.stdout
    spec["objects"]["accept_missing"] = [f"foreign key {db}.child.fk_p"]
    path.write_text(yaml.safe_dump(spec))
    accepted = omsbench(workspace.root, "full", str(path))
    assert accepted.returncode == 0, accepted.stderr


def test_foreign_keys_come_with_their_tables_parents_first_and_a_cycle_of_them_after_the_load(
    workspace, source, target, src, dst, unique
):
    """Tables are created parents first, each with its foreign keys (a child named before its
    parent, on a string key with a collation: seekdb refused that with the parent not made yet);
    two tables that reference each other get theirs after the load. All hold, rows equal."""
    db = unique("fkorder")
    src.execute(f"CREATE DATABASE `{db}` DEFAULT CHARSET utf8mb4 COLLATE utf8mb4_general_ci")
    src.execute(f"USE `{db}`")
    src.execute("CREATE TABLE b_sku (sku VARCHAR(32) PRIMARY KEY)")
    src.execute("CREATE TABLE a_item (id INT PRIMARY KEY, sku VARCHAR(32) NOT NULL,"
                " CONSTRAINT fk_item_sku FOREIGN KEY (sku) REFERENCES b_sku (sku))")  # fmt: skip
    src.execute("CREATE TABLE c_one (id INT PRIMARY KEY, other INT NULL)")
    src.execute("CREATE TABLE c_two (id INT PRIMARY KEY, one INT NULL,"
                " CONSTRAINT fk_two_one FOREIGN KEY (one) REFERENCES c_one (id))")  # fmt: skip
    src.execute("ALTER TABLE c_one ADD CONSTRAINT fk_one_two FOREIGN KEY (other) REFERENCES c_two (id)")
    src.execute("INSERT INTO b_sku VALUES ('x'), ('y')")
    src.execute("INSERT INTO a_item VALUES (1, 'x'), (2, 'y')")
    src.execute("INSERT INTO c_one VALUES (1, NULL)")
    src.execute("INSERT INTO c_two VALUES (1, 1)")
    src.execute("UPDATE c_one SET other = 1")
    project = make_project(workspace, source, target, name=db, objects={"include": [f"{db}.*"]})
    report = project.migrate_schema().set_index("source")
    assert "cycle" in report.loc[f"{db}.c_one", "detail"] and "cycle" in report.loc[f"{db}.c_two", "detail"]
    assert report.loc[f"{db}.a_item", "status"] == "migrated", report.loc[f"{db}.a_item", "detail"]
    project.full(progress=False)
    made = {o["source"]: o["detail"] for o in project.state.detail(project.name, "post_load")["objects"]}
    assert made[f"{db}.a_item (fk_item_sku)"] == "created with the table"
    assert made[f"{db}.c_one (fk_one_two)"] == made[f"{db}.c_two (fk_two_one)"] == "created after the full load"
    keys = dst.query(
        "SELECT CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = %s", (db,)
    )
    assert {k[0] for k in keys} == {"fk_item_sku", "fk_two_one", "fk_one_two"}
    assert project.check()["equal"].all()


def test_plain_indexes_of_a_large_table_are_built_after_the_load_and_the_rest_come_with_their_tables(
    workspace, source, target, src, dst, unique
):
    """Above options.index_after_rows a table is created without its plain indexes, which the post-load
    step builds; unique keys, indexes a foreign key needs, and smaller tables keep theirs in CREATE TABLE."""
    db = unique("idxlater")
    src.execute(f"CREATE DATABASE `{db}`")
    src.execute(f"USE `{db}`")
    src.execute("CREATE TABLE big (id INT PRIMARY KEY, k INT, code INT, KEY k_idx (k), UNIQUE KEY u_code (code))")
    src.execute("CREATE TABLE small (id INT PRIMARY KEY, k INT, KEY s_idx (k))")
    src.execute("CREATE TABLE child (id INT PRIMARY KEY, big_id INT, KEY by_big (big_id),"
                " CONSTRAINT fk_big FOREIGN KEY (big_id) REFERENCES big (id))")  # fmt: skip
    src.execute("INSERT INTO big SELECT seq, seq % 7, seq FROM seq_1_to_2000")
    src.execute("INSERT INTO small VALUES (1, 1), (2, 2)")
    src.execute("INSERT INTO child SELECT seq, seq FROM seq_1_to_2000")
    src.execute("ANALYZE TABLE big, small, child")
    options = {"index_after_rows": 500}
    project = make_project(workspace, source, target, name=db, objects={"include": [f"{db}.*"]}, options=options)

    def indexes() -> set[tuple[str, str]]:
        rows = dst.query("SELECT DISTINCT TABLE_NAME, INDEX_NAME FROM information_schema.STATISTICS"
                         " WHERE TABLE_SCHEMA = %s AND INDEX_NAME <> 'PRIMARY'", (db,))  # fmt: skip
        return {tuple(r) for r in rows}

    project.migrate_schema()
    assert ("big", "k_idx") not in indexes()
    assert {("big", "u_code"), ("small", "s_idx"), ("child", "by_big")} <= indexes()
    project.full(progress=False)
    made = {o["source"]: o["detail"] for o in project.state.detail(project.name, "post_load")["objects"]}
    assert made[f"{db}.big (k_idx)"] == "created after the full load"
    assert made[f"{db}.small (s_idx)"] == "created with the table"
    assert {("big", "k_idx"), ("big", "u_code"), ("small", "s_idx"), ("child", "by_big")} <= indexes()
    assert project.check()["equal"].all()


def test_keys_a_coarser_target_collation_would_merge_fail_the_precheck_until_a_collation_is_chosen(
    workspace, source, target, src, dst, unique
):
    """'ß' and 's' are two keys under MariaDB's uca1400_ai_ci and one under the general_ci it maps to."""
    db = unique("collide")
    src.execute(f"CREATE DATABASE `{db}`")
    src.execute(f"CREATE TABLE `{db}`.k (name VARCHAR(10) COLLATE utf8mb4_uca1400_ai_ci PRIMARY KEY, n INT)")
    src.execute(f"INSERT INTO `{db}`.k VALUES ('ß', 1), ('s', 2), ('x', 3)")
    objects = {"include": [f"{db}.*"]}
    findings = make_project(workspace, source, target, name=db, objects=objects).precheck().set_index("check")
    found = findings.loc["key collation"]
    assert found.status == "fail" and "1 key(s) distinct on the source" in found.detail
    assert "objects.collations" in found.fix
    chosen = {**objects, "collations": {"utf8mb4_uca1400_ai_ci": "utf8mb4_bin"}}
    project = make_project(workspace, source, target, name=db, objects=chosen)
    assert project.precheck().set_index("check").loc["key collation", "status"] == "ok"
    project.migrate_schema()
    project.full(progress=False)
    assert sorted(dst.query(f"SELECT name, n FROM `{db}`.k")) == sorted(src.query(f"SELECT name, n FROM `{db}`.k"))


def test_geometry_in_a_reference_system_the_target_lacks_fails_the_precheck_naming_it(
    workspace, source, target, src, dst, unique
):
    """seekdb knows SRID 0 alone: a point in 4326 would stop the load at its chunk, so the precheck says so
    first; geometry in SRID 0 passes and arrives with it."""
    db = unique("srid")
    src.execute(f"CREATE DATABASE `{db}`")
    for table, srid in (("plain", 0), ("wgs", 4326)):
        src.execute(f"CREATE TABLE `{db}`.{table} (id INT PRIMARY KEY, spot GEOMETRY)")
        src.execute(f"INSERT INTO `{db}`.{table} VALUES (1, ST_GeomFromText('POINT(1 2)', {srid})), (2, NULL)")
    project = make_project(workspace, source, target, name=db, objects={"include": [f"{db}.*"]})
    found = project.precheck().set_index("object").query("check == 'spatial reference'")
    assert found.loc[f"{db}.plain", "status"] == "ok"
    assert found.loc[f"{db}.wgs", "status"] == "fail"
    assert (
        "SRID 4326 in `spot`" in found.loc[f"{db}.wgs", "detail"] and "only SRID 0" in found.loc[f"{db}.wgs", "detail"]
    )
    assert "objects.exclude" in found.loc[f"{db}.wgs", "fix"]
    project = make_project(
        workspace, source, target, name=db, objects={"include": [f"{db}.*"], "exclude": [f"{db}.wgs"]}
    )
    assert not precheck.failed(project.precheck())
    project.migrate_schema()
    project.full(progress=False)
    query = f"SELECT id, ST_SRID(spot), ST_AsText(spot) FROM `{db}`.plain ORDER BY id"
    assert dst.query(query) == src.query(query)


def test_a_trigger_naming_a_renamed_database_is_created_naming_the_targets(workspace, source, target, src, dst, unique):
    """The body's ``db.search`` becomes ``db_ob.search``; a string that reads the same stays as it is."""
    db, renamed = unique("progs"), unique("progs_ob")
    src.execute(f"CREATE DATABASE `{db}`")
    src.execute(f"CREATE TABLE `{db}`.items (id INT PRIMARY KEY, name VARCHAR(20))")
    src.execute(f"CREATE TABLE `{db}`.search (item_id INT PRIMARY KEY, words VARCHAR(60))")
    src.execute(
        f"CREATE TRIGGER `{db}`.items_search AFTER INSERT ON `{db}`.items FOR EACH ROW"
        f" INSERT INTO {db}.search VALUES (NEW.id, CONCAT('{db}.search: ', NEW.name))"
    )
    src.execute(f"CREATE FUNCTION `{db}`.doubled(p INT) RETURNS INT DETERMINISTIC RETURN p * 2")
    project = make_project(
        workspace, source, target, objects={"include": [f"{db}.*"], "rename": {"databases": {db: renamed}}}
    )
    project.migrate_schema()
    with project.sessions() as (mysql, ob):
        planned = programs.fates(mysql, ob, project.selection(mysql), {})
        (trigger,) = [p for p in planned if p.name == "items_search"]
        assert f"{db} → {renamed}" in trigger.why
        programs.create(ob, planned)
    assert trigger.outcome == "created"
    dst.execute(f"INSERT INTO `{renamed}`.items VALUES (1, 'lamp')")
    assert dst.query(f"SELECT item_id, words FROM `{renamed}`.search") == [(1, f"{db}.search: lamp")]
    # switch-back drops the triggers it made, and the routines only when switchover.target_routines is drop
    made = programs.records(planned)
    listed = "SELECT COUNT(*) FROM information_schema.{} WHERE {}_SCHEMA = %s"
    programs.drop_created(dst, made)
    assert dst.scalar(listed.format("TRIGGERS", "TRIGGER"), (renamed,)) == 0
    assert dst.scalar(f"SELECT `{renamed}`.doubled(4)") == 8
    programs.drop_created(dst, made, (programs.TRIGGER, programs.PROCEDURE, programs.FUNCTION))
    assert dst.scalar(listed.format("ROUTINES", "ROUTINE"), (renamed,)) == 0
