"""Bad input, generated: every bad spec, filter, command line or runbook parameter gives a clear
error (an omsbench error or click's usage error, never a traceback) and changes no database."""

from __future__ import annotations

import contextlib

import pytest
import sqlglot
from click.testing import CliRunner
from conftest import one_table_migrated
from helpers import exact_rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from omsbench.cli import main
from omsbench.endpoints.catalog import Column, Table
from omsbench.engine import spec as specs
from omsbench.engine.mapping import check_filter
from omsbench.exceptions import OmsError, SpecError
from omsbench.workbench import runbooks

VALID = {
    "name": "fuzz",
    "source": {"url": "mysql+pymysql://omsbench@127.0.0.1:3306/", "password_env": "PW"},
    "target": {"url": "seekdb:///tmp/x"},
    "objects": {"include": ["db.*"], "filters": {"db.t": "id > 3"}},
    "options": {"parallelism": 2, "chunk_size": 1000},
}
SLOW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
paths = st.sampled_from(
    [(), ("name",), ("source",), ("source", "url"), ("source", "password_env"), ("target",), ("target", "url"),
     ("objects",), ("objects", "include"), ("objects", "filters"), ("objects", "rename"), ("options",),
     ("options", "parallelism"), ("options", "chunk_size"), ("options", "executor"), ("switchover",)]
)  # fmt: skip


def _replaced(data: dict, path: tuple, value) -> object:
    if not path:
        return value
    out = dict(data)
    out[path[0]] = _replaced(data.get(path[0], {}) if isinstance(data.get(path[0]), dict) else {}, path[1:], value)
    return out


@settings(max_examples=300, deadline=None)
@given(paths, values, st.text(max_size=10))
def test_any_spec_is_valid_or_a_spec_error_naming_the_field(path, value, extra):
    data = _replaced(VALID, path, value)
    if isinstance(data, dict) and extra:
        data = {**data, extra: value}
    try:
        specs.parse(data)
    except SpecError as err:
        assert err.fix and "Traceback" not in str(err)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_any_yaml_text_is_a_spec_or_a_spec_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("spec") / "p.yaml"
    path.write_text(text)
    with contextlib.suppress(SpecError):
        specs.load(path)


TABLE = Table("db", "t", [Column("id", 1, "int", "int", False), Column("name", 2, "varchar", "varchar(20)", True)])
fragments = st.sampled_from(
    ["id", "name", "=", "1", "'x'", ";", "DROP TABLE t", "OR", "AND", "(", ")", "SELECT 1", "--", "/*", "*/", "`",
     "UNION SELECT", "SLEEP(1)", "IN", ",", "NOT", "NULL", "IS", "other", "db.t.id", "@@version", "INTO OUTFILE '/x'",
     ") OR (", "1) OR (1"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(fragments, min_size=1, max_size=8).map(" ".join) | st.text(max_size=40))
def test_a_row_filter_is_one_condition_on_its_table_or_refused(condition):
    try:
        accepted = check_filter(condition, TABLE, "objects.filters['db.t']")
    except SpecError as err:
        assert "objects.filters['db.t']" in str(err) and err.fix
        return
    # placed as a load places it, it cannot add a statement, drop the clauses after it or read elsewhere
    used = sqlglot.parse(f"SELECT id FROM t WHERE (id >= 1) AND ({accepted}) ORDER BY id LIMIT 5", read="mysql")
    assert len(used) == 1 and used[0].args.get("order") and used[0].args.get("limit"), accepted
    assert isinstance(used[0].args["where"].this, exp.And), accepted  # the load's own range still applies
    assert isinstance(used[0].args["where"].this.expression, exp.Paren), accepted
    assert len(list(used[0].find_all(exp.Select))) == 1 and len(list(used[0].find_all(exp.Table))) == 1, accepted


def _everything(session, databases: list[str]) -> dict:
    return {
        (db, t): exact_rows(session, db, t)
        for db in databases
        for (t,) in session.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (db,))
    }


@pytest.fixture
def migrated(workspace, source, target, src, unique):
    database = unique("fuzz")
    return one_table_migrated(workspace, source, target, src, database, ["a", "b"]), database


junk = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12)
bad = junk.map(lambda text: text + "§")  # never a valid position, GTID, time, number or table name
BAD = {
    ("full",): {"--parallelism": st.integers(max_value=0) | bad, "--executor": bad},
    ("verify",): {
        "--chunk-size": st.integers(max_value=9) | bad,
        "--threads": st.integers(min_value=33) | bad,
        "--sample": st.floats(min_value=1.01) | st.floats(max_value=0) | bad,
        "--online": st.integers(min_value=21) | bad,
        "--changed-since": bad,
    },
    ("sync", "start"): {"--position": bad, "--gtid": bad, "--timestamp": bad},
    ("sync", "resolve"): {"--replace-with": bad},
    ("reverse", "resolve"): {"--replace-with": bad},
    ("switchover",): {"--without": bad},
    ("bench", "chaos"): {"--points": st.integers(max_value=0) | bad, "--rows": st.integers(max_value=999)},
    ("run",): {"-p": bad},
    ("status",): {"--nonsense": bad},
}


@st.composite
def bad_command(draw, project: str):
    command = draw(st.sampled_from(sorted(BAD)))
    option = draw(st.sampled_from(sorted(BAD[command])))
    value = str(draw(BAD[command][option]))
    target = draw(st.sampled_from([project, project, ""]) | junk)
    extra = [value, value] if option == "-p" else [value]
    return [*command, target, option, *extra]


def test_bad_command_lines_give_a_clear_error_and_change_nothing(migrated, src, dst, workspace, request):
    project, database = migrated
    request.addfinalizer(project.stop_sync)  # should a bad value ever start one
    before = (_everything(src, [database, "omsbench"]), _everything(dst, [database, "omsbench"]))

    @SLOW
    @given(bad_command(project.name))
    def one(argv):
        result = CliRunner().invoke(main, ["--workspace", str(workspace.root), *argv])
        assert result.exit_code in (1, 2), (argv, result.output)
        assert isinstance(result.exception, SystemExit), (argv, result.output, result.exception)
        assert "Traceback" not in result.output

    one()
    # heartbeats aside, nothing was written on either side
    after = (_everything(src, [database, "omsbench"]), _everything(dst, [database, "omsbench"]))
    assert {k: v for k, v in after[0].items() if k[0] == database} == {
        k: v for k, v in before[0].items() if k[0] == database
    }
    assert {k: v for k, v in after[1].items() if k[0] == database} == {
        k: v for k, v in before[1].items() if k[0] == database
    }
    assert project.sync_status()["state"] in ("never started", "pending")


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=20), values, min_size=1, max_size=4))
def test_runbook_parameters_are_declared_ones_or_refused(parameters):
    notebook = runbooks.find("migrate")
    declared = set(runbooks.papermill.inspect_notebook(str(notebook)))
    try:
        runbooks.check_parameters(notebook, parameters)
    except OmsError as err:
        assert err.fix
        return
    assert set(parameters) <= declared
