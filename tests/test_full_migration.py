"""Schema + full load of the sample database: every type round-trips, keys of every kind, report."""

from __future__ import annotations

import pytest
from conftest import make_project
from helpers import assert_same_tables, exact_rows, packet_limit

from omsbench.actions import named
from omsbench.engine.steps import Step
from omsbench.exceptions import CopyError, VerifyError
from omsbench.lab import sampledb


@pytest.fixture
def shop(src, unique):
    name = unique("shop")
    sampledb.create(src, rows=3000, database=name)
    src.execute(f"INSERT INTO `{name}`.orders (id, customer_id) VALUES (0, 1)")  # 0 must stay 0
    return name


def test_sample_database_round_trips_exactly(workspace, source, target, src, dst, shop):
    project = make_project(workspace, source, target, objects={"include": [f"{shop}.*"]}, options={"chunk_size": 500})
    findings = project.require_precheck().set_index(["check", "object"])
    fallback = findings.loc[("fallback charset", f"{shop}.legacy_notes")]  # latin1 on MySQL: said before cut-over
    assert fallback.status == "warn" and "converts the MySQL table to utf8mb4" in fallback.detail
    assert ("fallback charset", f"{shop}.customers") not in findings.index  # utf8mb4 already
    report = project.migrate_schema()
    result = project.full(progress=False)

    tables = sorted(t for (s, t) in _tables(src, shop))
    assert sorted(k.split(".", 1)[1] for k in result.rows) == tables
    assert_same_tables(src, dst, [(shop, t, shop, t) for t in tables])
    assert project.check()["equal"].all()
    # type_zoo holds the extremes: 4-byte characters, zero-length binary, NULL in every column
    zoo = exact_rows(dst, shop, "type_zoo")
    assert any(r[0] == 3 and all(v is None for v in r[1:]) for r in zoo)
    assert any("😀𝄞" in (r[20] or "") for r in zoo)

    by_source = report.set_index("source")
    assert by_source.loc[f"{shop}.legacy_notes", "status"] == "changed"
    assert "latin1" in by_source.loc[f"{shop}.legacy_notes", "detail"]
    assert by_source.loc[f"{shop}.orders_note", "status"] == "skipped"
    assert by_source.loc[f"{shop}.customer_totals", "status"] == "migrated"
    assert "no primary or unique key" in by_source.loc[f"{shop}.audit_log", "detail"]
    # secondary indexes and foreign keys exist after the load
    fks = dst.query(
        "SELECT CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = %s", (shop,)
    )
    assert {r[0] for r in fks} == {"fk_orders_customer", "fk_items_order", "fk_items_product"}
    # made with their tables (order_items before its parent orders: checks off), not by an ALTER after the load
    made = project.state.detail(project.name, Step.POST_LOAD)["objects"]
    keys = [o["detail"] for o in made if o["object_type"] == "foreign key"]
    assert keys == ["created with the table"] * 3, report[report.source.str.contains("order_items")].detail.tolist()
    view_rows = dst.query(f"SELECT COUNT(*), SUM(orders) FROM `{shop}`.customer_totals")
    assert view_rows == src.query(f"SELECT COUNT(*), SUM(orders) FROM `{shop}`.customer_totals")
    # AUTO_INCREMENT carried: the next insert on the target does not collide
    next_id = src.scalar(
        "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_NAME='orders'", (shop,)
    )
    dst.execute(f"INSERT INTO `{shop}`.orders (customer_id) VALUES (1)")
    assert dst.scalar(f"SELECT MAX(id) FROM `{shop}`.orders") >= next_id


def _tables(session, schema):
    return session.query(
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES"
        " WHERE TABLE_SCHEMA=%s AND TABLE_TYPE='BASE TABLE'",
        (schema,),
    )


def test_existing_rows_on_target_are_refused_then_truncated(workspace, source, target, src, dst, shop):
    project = make_project(workspace, source, target, objects={"include": [f"{shop}.products"]})
    project.migrate_schema()
    dst.execute(f"INSERT INTO `{shop}`.products (sku, title, price) VALUES ('ZZZ', 'stray', 1)")
    findings = project.precheck()
    assert "fail" in set(findings[findings.check == "target rows"].status)
    with pytest.raises(CopyError, match="already holds rows"):
        project.full(progress=False)
    assert dst.scalar(f"SELECT COUNT(*) FROM `{shop}`.products") == 1  # untouched

    truncating = make_project(
        workspace, source, target, objects={"include": [f"{shop}.products"]}, options={"on_existing_rows": "truncate"}
    )
    truncating.full(progress=False)
    assert_same_tables(src, dst, [(shop, "products", shop, "products")])


def test_full_before_schema_names_the_missing_tables(workspace, source, target, shop):
    project = make_project(workspace, source, target, name="noschema", objects={"include": [f"{shop}.orders"]})
    with pytest.raises(CopyError, match=f"target table.s. missing: {shop}.orders") as err:
        project.full(progress=False)
    assert named("schema") in err.value.fix  # worded by each front end: `omsbench schema` in the CLI
    assert project.state.step("noschema", "full")["state"] == "failed"  # never left "running"


def test_a_value_the_source_cannot_render_stops_the_load_and_the_check_instead_of_passing_for_null(
    workspace, source, target, src, dst, unique
):
    """MariaDB renders a function result over max_allowed_packet as NULL with only a warning: a 700 KB
    BLOB is 1.4 MB as hex, over a 1 MB limit. Unnoticed, the load would write NULL and the check
    would compare NULL with NULL."""
    database = unique("render")
    src.execute(f"CREATE DATABASE `{database}`")
    src.execute(f"CREATE TABLE `{database}`.t (id INT PRIMARY KEY, b LONGBLOB)")
    big = "IF(seq = 50, REPEAT('B', 700000), 'small')"
    src.execute(f"INSERT INTO `{database}`.t SELECT seq, {big} FROM `{database}`.seq_1_to_100")
    project = make_project(workspace, source, target, name=database, objects={"include": [f"{database}.*"]})
    project.migrate_schema()
    with packet_limit(src, 1 << 20):
        with pytest.raises(CopyError, match="rendered a value as NULL") as failed:
            project.full(progress=False)
        assert "SET GLOBAL max_allowed_packet" in failed.value.fix
        assert dst.scalar(f"SELECT COUNT(*) FROM `{database}`.t") == 0  # nothing of the chunk was written
    project.full(progress=False)
    assert_same_tables(src, dst, [(database, "t", database, "t")])
    dst.execute(f"UPDATE `{database}`.t SET b = 'changed' WHERE id = 50")
    with packet_limit(src, 1 << 20), pytest.raises(VerifyError, match="cannot render a value"):
        project.verify()


def test_rows_grouped_by_a_leading_key_column_that_outgrow_the_packet_are_read_again_by_number(
    workspace, source, target, src, dst, unique
):
    """A composite key groups rows by its leading integer, cheaply; one value holding 5.4 MB of rows makes a
    group over the source's 4 MB packet, which MariaDB cuts: the chunk is read again in numbered groups."""
    database = unique("lead")
    src.execute(f"CREATE DATABASE `{database}`")
    src.execute(f"CREATE TABLE `{database}`.t (g INT, n INT, pad VARCHAR(1000), PRIMARY KEY (g, n))")
    src.execute(
        f"INSERT INTO `{database}`.t SELECT 1, seq, REPEAT(CHAR(65 + seq % 26), 900) FROM `{database}`.seq_1_to_6000"
    )
    src.execute(f"INSERT INTO `{database}`.t VALUES (2, 1, 'last')")
    project = make_project(workspace, source, target, name=database, objects={"include": [f"{database}.*"]})
    project.migrate_schema()
    with packet_limit(src, 4 << 20):
        assert project.full(progress=False).rows[f"{database}.t"] == 6001
    assert_same_tables(src, dst, [(database, "t", database, "t")])


def test_a_table_of_large_rows_is_cut_into_chunks_by_size(workspace, source, target, src, dst, unique):
    """Each chunk is one target transaction: 100 rows of 1 MB are not one 100 MB transaction."""
    database = unique("lobload")
    src.execute(f"CREATE DATABASE `{database}`")
    src.execute(f"CREATE TABLE `{database}`.t (id INT PRIMARY KEY, b LONGBLOB)")
    src.execute(
        f"INSERT INTO `{database}`.t SELECT seq, REPEAT(CHAR(65 + seq % 26), 1000000) FROM `{database}`.seq_1_to_100"
    )
    src.execute(f"ANALYZE TABLE `{database}`.t")
    project = make_project(workspace, source, target, name=database, objects={"include": [f"{database}.*"]})
    project.migrate_schema()
    project.full(progress=False)
    assert len(project.state.plan(project.name, f"{database}.t")) >= 2
    assert_same_tables(src, dst, [(database, "t", database, "t")])
