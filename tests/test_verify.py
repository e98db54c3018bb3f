"""Verification finds exactly the rows that differ, by kind and column, and its fix SQL repairs them."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import make_project, seq_table_migrated, table_migrated

from omsbench.engine import checksum, verify
from omsbench.engine.verify import DIFFERENT, EXTRA, MISSING
from omsbench.exceptions import VerifyError
from omsbench.lab import sampledb

# One change per column of type_zoo, each in its own row (ids 4..), applied on the target only.
CHANGES = {
    "c_tinyint": "IF(c_tinyint = 0, 1, c_tinyint DIV 2)",
    "c_utinyint": "IF(c_utinyint = 0, 1, c_utinyint DIV 2)",
    "c_smallint": "IF(c_smallint = 0, 1, c_smallint DIV 2)",
    "c_usmallint": "IF(c_usmallint = 0, 1, c_usmallint DIV 2)",
    "c_mediumint": "IF(c_mediumint = 0, 1, c_mediumint DIV 2)",
    "c_int": "IF(c_int = 0, 1, c_int DIV 2)",
    "c_uint": "IF(c_uint = 0, 1, c_uint DIV 2)",
    "c_bigint": "IF(c_bigint = 0, 1, c_bigint DIV 2)",
    "c_ubigint": "IF(c_ubigint = 0, 1, c_ubigint DIV 2)",
    "c_bit": "c_bit ^ 1",
    "c_decimal": "c_decimal + 0.0000000001",
    "c_float": "c_float + 1",
    "c_double": "c_double * 1.000001",
    "c_date": "c_date + INTERVAL 1 DAY",
    "c_time": "ADDTIME(c_time, '00:00:01')",
    "c_datetime": "c_datetime + INTERVAL 1 MICROSECOND",
    "c_timestamp": "c_timestamp + INTERVAL 1 SECOND",
    "c_year": "IF(c_year = 2155, 2154, c_year + 1)",
    "c_char": "IF(c_char = 'q', 'r', 'q')",
    "c_varchar": "CONCAT(c_varchar, ' ')",  # a trailing space is a real difference in VARCHAR
    "c_text": "CONCAT(c_text, '!')",
    "c_binary": "IF(c_binary = X'DEADBEEF', X'FEEDBEEF', X'DEADBEEF')",
    "c_varbinary": "CONCAT(c_varbinary, X'00')",  # so is a trailing zero byte
    "c_blob": "CONCAT(IFNULL(c_blob, ''), X'FF')",
    "c_json": "'{\"changed\": true}'",
    "c_enum": "IF(c_enum = 'x', 'y', 'x')",
    "c_set": "IF(c_set = 'a', 'b', 'a')",
    "c_geometry": "ST_GeomFromText('POINT(1000 1000)')",
}


@pytest.fixture
def migrated(workspace, source, target, src, unique):
    db = unique("verify")
    sampledb.create(src, rows=4000, database=db)
    project = make_project(workspace, source, target, name=db, objects={"include": [f"{db}.*"]})
    project.migrate_schema()
    project.full(progress=False)
    assert project.verify().equal
    return project, db


def test_every_type_changed_once_is_found_and_fixed(migrated, dst):
    project, db = migrated
    for row, (column, expression) in enumerate(CHANGES.items(), start=4):
        dst.execute(f"UPDATE `{db}`.type_zoo SET {column} = {expression} WHERE id = {row}")
    dst.execute(f"UPDATE `{db}`.type_zoo SET c_varchar = '' WHERE id = 3")  # NULL on the source
    result = project.verify(chunk_size=10)
    found = {(d.key, d.column) for d in result.differences.itertuples()}
    expected = {(f"id={row}", column) for row, column in enumerate(CHANGES, start=4)} | {("id=3", "c_varchar")}
    assert found == expected
    assert set(result.differences.kind) == {DIFFERENT}
    assert result.differences.set_index("column").loc["c_float", "rule"] == "FLOAT widened to DOUBLE"

    fixed = project.verify(apply_fix=True)
    assert fixed.equal and fixed.differences.empty


def test_a_geometry_that_differs_only_in_its_srid_is_found(migrated, src):
    """WKB holds no SRID: the same coordinates in another reference system compared equal. (seekdb
    knows no reference system but 0, "Spatial reference system is empty": the source's row changes.)"""
    project, db = migrated
    row = src.scalar(f"SELECT MIN(id) FROM `{db}`.type_zoo WHERE c_geometry IS NOT NULL")
    src.execute(
        f"UPDATE `{db}`.type_zoo SET c_geometry = ST_GeomFromWKB(ST_AsBinary(c_geometry), 4326) WHERE id = {row}"
    )
    result = project.verify()
    assert [(d.key, d.column) for d in result.differences.itertuples()] == [(f"id={row}", "c_geometry")]
    assert result.differences.rule.tolist() == ["geometry compared as SRID and WKB"]


def test_missing_extra_and_different_rows_in_first_middle_and_last_chunks(migrated, dst):
    project, db = migrated
    q = f"`{db}`"
    dst.execute("SET SESSION foreign_key_checks = 0")
    dst.execute(f"DELETE FROM {q}.orders WHERE id IN (1, 500, 1000)")  # first, middle, last chunk
    dst.execute(f"INSERT INTO {q}.orders (id, customer_id, status) VALUES (0, 1, 'new'), (999999, 2, 'paid')")
    dst.execute(f"UPDATE {q}.orders SET total = total + 1 WHERE id IN (2, 501, 999)")
    dst.execute(f"UPDATE {q}.order_items SET qty = qty + 1 WHERE order_id = 7 AND line_no = 1")  # composite key
    dst.execute(f"DELETE FROM {q}.products WHERE sku = 'SKU-000040'")  # string key
    dst.execute(f"DELETE FROM {q}.audit_log LIMIT 1")  # no key: one duplicate-prone row goes
    dst.execute(f"INSERT INTO {q}.audit_log VALUES ('2020-01-01 00:00:00', 'intruder', 'pay', NULL)")
    result = project.verify(chunk_size=97)
    diffs = result.differences
    orders = diffs[diffs.table == f"{db}.orders"]
    assert set(orders[orders.kind == MISSING].key) == {"id=1", "id=500", "id=1000"}
    assert set(orders[orders.kind == EXTRA].key) == {"id=0", "id=999999"}
    assert set(orders[orders.kind == DIFFERENT].key) == {"id=2", "id=501", "id=999"}
    items = diffs[diffs.table == f"{db}.order_items"]
    assert set(items.key) == {"order_id=7, line_no=1"} and set(items.column) == {"qty", "line_total"}
    assert list(diffs[diffs.table == f"{db}.products"].key) == ["sku='SKU-000040'"]
    audit = diffs[diffs.table == f"{db}.audit_log"]
    assert sorted(audit.kind) == [EXTRA, MISSING]
    summary = result.summary.set_index("table")
    assert summary.loc[f"{db}.orders", MISSING] == 3 and summary.loc[f"{db}.customers", "equal"]

    assert project.verify(apply_fix=True).equal


def test_verify_command_exit_codes_report_and_fix(workspace, source, seekdb_tcp, src, unique):
    db = unique("verifycli")
    sampledb.create(src, rows=1000, database=db)
    project = make_project(workspace, source, seekdb_tcp.endpoint(), name=db, objects={"include": [f"{db}.*"]})
    project.migrate_schema()
    project.full(progress=False)
    with project.sessions() as (_, target):
        target.execute(f"UPDATE `{db}`.customers SET name = 'Mallory' WHERE id = 5")
    command = [sys.executable, "-m", "omsbench.cli", "-w", str(workspace.root), "verify", db]

    different = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert different.returncode == 1, different.stderr
    assert "Mallory" in different.stdout
    reports = workspace.root / "reports" / db
    assert "UPDATE" in (reports / "fix.sql").read_text()
    html = (reports / "verify.html").read_text()
    assert "DIFFERENCES FOUND" in html and "Mallory" in html and "<script" not in html
    assert "<svg" in html and 'src="http' not in html and 'href="http' not in html  # the chart is inline

    reviewed = (reports / "fix.sql").read_text()
    (reports / "fix.sql").write_text(reviewed + f"DELETE FROM `{db}`.customers;\n")  # not what verify wrote
    tampered = subprocess.run([*command, "--apply-fix"], capture_output=True, text=True, timeout=300)
    assert tampered.returncode == 2 and "is not the fix verify wrote" in tampered.stderr, tampered.stderr
    with project.sessions() as (_, target):  # nothing of it ran
        assert target.scalar(f"SELECT name FROM `{db}`.customers WHERE id = 5") == "Mallory"
    (reports / "fix.sql").write_text(reviewed)
    fixed = subprocess.run([*command, "--apply-fix"], capture_output=True, text=True, timeout=300)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "applied the 1 statement(s)" in project.state.step(db, "fix")["message"]
    assert subprocess.run(command, capture_output=True, timeout=300).returncode == 0

    missing = subprocess.run([*command[:-2], "verify", "no-such-project"], capture_output=True, text=True)
    assert missing.returncode == 2 and "no project named" in missing.stderr
    project.state.set_step(
        db, "full", "running", "copying"
    )  # a load under way compares nothing: refused, as in the panel
    loading = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert loading.returncode == 2 and "the full migration has not finished (it is running)" in loading.stderr
    project.state.set_step(db, "full", "done", "loaded")

    with project.sessions() as (_, target):  # the target drifted from the source's schema
        target.execute(f"ALTER TABLE `{db}`.customers DROP COLUMN name")
        target.execute(f"DROP TABLE `{db}`.legacy_notes")
    drifted = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert drifted.returncode == 2, drifted.stdout + drifted.stderr
    assert f"{db}.customers: column(s) name missing" in drifted.stderr
    assert f"{db}.legacy_notes: the table is missing" in drifted.stderr
    with pytest.raises(VerifyError, match="name missing"):
        project.check()


def test_a_sample_compares_a_share_of_the_ranges_and_finds_only_real_differences(migrated, dst):
    project, db = migrated
    planted = {f"id={i}" for i in range(5, 1000, 50)}  # every range of ~100 keys holds two
    dst.execute(f"UPDATE `{db}`.orders SET total = total + 1 WHERE id % 50 = 5")
    full = project.verify(chunk_size=100)
    found = set(full.differences[full.differences.table == f"{db}.orders"].key)
    assert found == planted
    sampled = project.verify(chunk_size=100, sample=0.5, seed=3)
    orders = sampled.summary.set_index("table").loc[f"{db}.orders"]
    assert orders["sampled"] == 0.5
    assert orders["ranges compared"] < full.summary.set_index("table").loc[f"{db}.orders", "ranges compared"]
    assert set(sampled.differences.key) <= found and len(sampled.differences) > 0


def test_a_differing_range_is_narrowed_by_slices_down_to_its_rows(migrated, dst):
    """Leaves of 8 rows make every differing range descend through slice digests, twice or more."""
    project, db = migrated
    q = f"`{db}`"
    dst.execute("SET SESSION foreign_key_checks = 0")
    dst.execute(f"DELETE FROM {q}.orders WHERE id IN (1, 333)")
    dst.execute(f"UPDATE {q}.orders SET total = total + 1 WHERE id IN (2, 334, 1000)")
    dst.execute(f"INSERT INTO {q}.orders (id, customer_id, status) VALUES (1001, 1, 'new'), (750000, 2, 'paid')")
    with project.sessions() as (source, target):
        (orders,) = [tm for tm in project.selection(source).tables if tm.source.name == "orders"]
        verdict = verify.verify_table(source, target, orders, chunk_size=400, leaf_rows=8)
        slices = checksum.digest_slices(source, orders, "source", 0, 1000, 7)
        by_range = {n: checksum.digest(source, orders, "source", (n * 7,), (min(n * 7 + 7, 1000),)) for n in slices}
    assert slices == by_range and sum(count for count, _ in slices.values()) == 1000
    found = {(d.kind, d.key) for d in verdict.differences}
    assert found == {
        (MISSING, "id=1"),
        (MISSING, "id=333"),
        (DIFFERENT, "id=2"),
        (DIFFERENT, "id=334"),
        (DIFFERENT, "id=1000"),
        (EXTRA, "id=1001"),
        (EXTRA, "id=750000"),
    }
    assert verdict.ranges_compared > 16  # the slices were digested, not the whole ranges' rows fetched
    assert project.verify(apply_fix=True).equal


def test_string_keys_the_two_collations_order_differently_are_compared_by_key_not_by_range(
    workspace, source, target, src, dst, unique
):
    """latin1_swedish_ci sorts ä after z, the target's utf8mb4_general_ci with a: ranges cut by one
    order hold other rows in the other, and used to report rows missing in one range and extra in
    another. Such keys are compared in hash buckets of their text."""
    database = unique("vcoll")
    keys = [f"{prefix}{n}" for n, prefix in enumerate("aäåbozö" * 6)]
    project = table_migrated(
        workspace, source, target, src, database,
        "k VARCHAR(10) CHARACTER SET latin1 COLLATE latin1_swedish_ci PRIMARY KEY, v INT",
        "VALUES " + ", ".join(f"('{k}', {i})" for i, k in enumerate(keys)),
    )  # fmt: skip
    assert (
        dst.scalar(
            "SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND COLUMN_NAME = 'k'",
            (database,),
        )
        == "utf8mb4_general_ci"
    )
    dst.execute(f"DELETE FROM `{database}`.t WHERE k IN ('ä1', 'z33')")
    dst.execute(f"UPDATE `{database}`.t SET v = -1 WHERE k IN ('ö6', 'a35')")
    dst.execute(f"INSERT INTO `{database}`.t VALUES ('å99', 7)")
    with project.sessions() as (source_session, target_session):
        (tm,) = project.selection(source_session).tables
        verdict = verify.verify_table(source_session, target_session, tm, chunk_size=3, leaf_rows=2)
    found = {(d.kind, d.key) for d in verdict.differences}
    assert found == {
        (MISSING, "k='ä1'"),
        (MISSING, "k='z33'"),
        (DIFFERENT, "k='ö6'"),
        (DIFFERENT, "k='a35'"),
        (EXTRA, "k='å99'"),
    }
    assert project.verify(apply_fix=True).equal


def test_a_keyless_row_gone_between_count_and_fetch_is_reported_without_values(migrated, dst, monkeypatch):
    """An online check reads tables that are being written: the row a hash stood for can be gone."""
    project, db = migrated
    dst.execute(f"INSERT INTO `{db}`.audit_log VALUES ('2026-01-01 00:00:00', 'ghost', 'extra', NULL)")
    fetch = verify._fetch_by_hash

    def fetch_after_it_went(session, tm, side, digest_hex):
        dst.execute(f"DELETE FROM `{db}`.audit_log WHERE actor = 'ghost'")
        return fetch(session, tm, side, digest_hex)

    monkeypatch.setattr(verify, "_fetch_by_hash", fetch_after_it_went)
    result = project.verify()
    found = result.differences[result.differences.table == f"{db}.audit_log"]
    assert found[["kind", "target_value"]].values.tolist() == [[EXTRA, None]]
    monkeypatch.undo()
    assert project.verify().equal


def test_large_rows_are_compared_a_few_at_a_time_and_every_difference_is_found(
    workspace, source, target, src, dst, unique
):
    """Rows of 1 MB: leaves of about 8 MB of rows instead of 1,000 rows (which held 3.7 GB)."""
    database = unique("lobs")
    project = seq_table_migrated(
        workspace, source, target, src, database, "id INT PRIMARY KEY, b LONGBLOB",
        "seq, REPEAT(CHAR(65 + seq % 26), 1000000)", 60,
    )  # fmt: skip
    src.execute(f"ANALYZE TABLE `{database}`.t")
    assert verify._leaf(project.selection(src).tables[0]) < 16
    dst.execute(f"UPDATE `{database}`.t SET b = 'changed' WHERE id IN (1, 30)")
    dst.execute(f"DELETE FROM `{database}`.t WHERE id = 60")
    dst.execute(f"INSERT INTO `{database}`.t VALUES (61, 'extra')")
    result = project.verify()
    found = {(d.key, d.kind) for d in result.differences.itertuples()}
    assert found == {("id=1", DIFFERENT), ("id=30", DIFFERENT), ("id=60", MISSING), ("id=61", EXTRA)}
    assert project.verify(apply_fix=True).equal
