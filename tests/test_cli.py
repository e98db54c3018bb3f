"""The command line as a user meets it: exit codes, clear errors, the demo end to end, no leaked secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pymysql
import pytest
import yaml
from click.testing import CliRunner

from omsbench.cli import main
from omsbench.engine.project import Project
from omsbench.engine.workspace import Workspace


def omsbench(workspace: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "omsbench.cli", "-w", str(workspace), *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,  # a command that asks finds no one to answer, as in a script
        text=True,
        env=env,
        timeout=600,
    )


def _spec(tmp_path: Path, data: dict) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "source": {"url": "mysql+pymysql://u@h:1/"}}, "target: required field is missing"),
        (
            {"name": "x", "source": {"url": "mysql+pymysql://u@h/"}, "target": {"url": "seekdb:///d"}, "colour": 1},
            "colour: unknown key; allowed keys here: name, source, target, objects, options",
        ),
        (
            {
                "name": "x",
                "source": {"url": "mysql+pymysql://u@h/"},
                "target": {"url": "seekdb:///d"},
                "options": {"parallelism": "many"},
            },
            "options.parallelism",
        ),
        (
            {"name": "x", "source": {"url": "mysql+pymysql://u:secret@h/"}, "target": {"url": "seekdb:///d"}},
            "the URL holds a password",
        ),
        ({"name": "bad name!", "source": {"url": "mysql+pymysql://u@h/"}, "target": {"url": "x"}}, "name"),
        (
            {
                "name": "x",
                "source": {"url": "mysql+pymysql://u@h/"},
                "target": {"kafka": "127.0.0.1:9092"},
                "options": {"apply_workers": 2},
            },
            "apply_workers applies to a sync between two databases",
        ),
        (
            {
                "name": "x",
                "source": {"url": "postgresql://u@h/"},
                "target": {"url": "seekdb:///d"},
            },
            "unsupported scheme",
        ),
    ],
)
def test_malformed_spec_names_the_field(tmp_path, data, message):
    done = omsbench(tmp_path / "ws", "precheck", _spec(tmp_path, data))
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert "secret" not in done.stderr + done.stdout
    assert not (tmp_path / "ws").exists()  # a refused command leaves nothing behind


def test_not_yaml_and_missing_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed")
    done = omsbench(tmp_path / "ws", "precheck", str(path))
    assert done.returncode == 2 and "not valid YAML" in done.stderr
    done = omsbench(tmp_path / "ws", "precheck", "nosuch-project")
    assert done.returncode == 2 and "no project named 'nosuch-project'" in done.stderr
    assert "--workspace" in done.stderr and "OMSBENCH_WORKSPACE" in done.stderr and str(tmp_path / "ws") in done.stderr
    assert not (tmp_path / "ws").exists()  # a refused command leaves nothing behind
    listed = omsbench(tmp_path / "ws", "status")
    assert listed.returncode == 0 and "no projects" in listed.stdout and not (tmp_path / "ws").exists()


def test_wrong_password_and_unset_variable(tmp_path, source, target):
    data = {
        "name": "creds",
        "source": {"url": source.url, "password_env": "OMS_TEST_PW"},
        "target": {"url": f"seekdb://{tmp_path / 'sdb'}"},
    }
    spec = _spec(tmp_path, data)
    env = {k: v for k, v in os.environ.items() if k != "OMS_TEST_PW"}
    done = omsbench(tmp_path / "ws", "schema", spec, env=env)
    assert done.returncode == 2 and "OMS_TEST_PW" in done.stderr and "is not set" in done.stderr
    done = omsbench(tmp_path / "ws", "schema", spec, env={**env, "OMS_TEST_PW": "wrong-password-123"})
    assert done.returncode == 2 and "Access denied" in done.stderr and "check the user name" in done.stderr
    assert "wrong-password-123" not in done.stderr + done.stdout
    findings = omsbench(tmp_path / "ws", "precheck", spec, env={**env, "OMS_TEST_PW": "wrong-password-123"})
    assert findings.returncode == 1 and "fail" in findings.stdout


def test_demo_end_to_end(tmp_path):
    workspace = tmp_path / "demo-ws"
    done = omsbench(workspace, "demo", "--rows", "3000", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["equal"] is True
    assert summary["workspace"] == str(workspace.resolve())
    assert summary["source"].startswith("mysql+pymysql://omsbench@127.0.0.1:")
    assert summary["target"].startswith("seekdb:///")
    assert len(summary["tables"]) == 7
    assert all(t["source_rows"] == t["target_rows"] > 0 for t in summary["tables"].values())
    assert sum(t["source_rows"] for t in summary["tables"].values()) == 3000  # the rows it was asked for
    html = Path(summary["report"]).read_text()
    assert "VERIFIED" in html and "<script" not in html and "http://" not in html and "https://" not in html
    assert Path(summary["report"]).with_suffix(".json").exists()

    status = omsbench(workspace, "servers", "status")
    assert "mariadb" in status.stdout and "yes" in status.stdout
    again = omsbench(workspace, "demo", "--rows", "3000")  # for a person: what starts, and when it is ready
    assert again.returncode == 0 and "VERIFIED" in again.stdout, again.stderr
    assert "starting the private MariaDB" in again.stderr and "MariaDB ready on port" in again.stderr
    assert "rows=3,000" in again.stderr and "servers stop" in again.stdout
    project = omsbench(workspace, "status", "demo")
    assert "full" in project.stdout and "done" in project.stdout
    assert project.stdout.startswith("Loaded, sync not started; next: start")  # the headline, as the panel shows it
    assert "start_position" not in project.stdout  # a step's message, not its whole detail record

    password = (workspace / "servers" / "mariadb" / "password").read_text().strip()
    for path in workspace.rglob("*"):
        if path.is_file() and "data" not in path.relative_to(workspace).parts and path.name != "password":
            assert password.encode() not in path.read_bytes(), f"the password leaked into {path}"

    unasked = omsbench(workspace, "release", "demo")  # release asks first; no answer is a no
    assert unasked.returncode == 2 and "not released" in unasked.stderr
    released = omsbench(workspace, "release", "demo", "--yes")
    assert released.returncode == 0 and "project demo released" in released.stdout, released.stderr
    refused = omsbench(workspace, "sync", "start", "demo")
    assert refused.returncode == 2 and "was released" in refused.stderr

    stopped = omsbench(workspace, "servers", "stop")
    assert stopped.returncode == 0 and "yes" not in stopped.stdout


def test_init_writes_a_spec_and_refuses_a_password_in_the_url(tmp_path):
    done = omsbench(
        tmp_path / "ws",
        "init",
        "p1",
        "--source",
        "mysql+pymysql://u@h:3306/",
        "--target",
        "seekdb:///tmp/x",
        "--include",
        "shop.*",
    )
    assert done.returncode == 0, done.stderr
    assert "include:\n  - shop.*" in (tmp_path / "ws" / "projects" / "p1.yaml").read_text()
    done = omsbench(
        tmp_path / "ws", "init", "p3", "--source", "mysql+pymysql://u@h/", "--source-password-file", "~/pw", "--target",
        "seekdb:///tmp/x",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "password_file: ~/pw" in (tmp_path / "ws" / "projects" / "p3.yaml").read_text()
    done = omsbench(tmp_path / "ws", "init", "p2", "--source", "mysql://u:hunter2@h/", "--target", "seekdb:///x")
    assert done.returncode == 2 and "the URL holds a password" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        (pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"), "check that the server"),
        (pymysql.err.ProgrammingError(1146, "Table 'x.y' doesn't exist"), "read the database's message"),
    ],
)
def test_a_database_error_inside_a_command_is_a_message_and_exit_2(tmp_path, monkeypatch, error, fix):
    """Exit 1 would say the databases differ; a server gone mid-command is an error like a refused connection."""

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(Project, "verify", fail)
    spec = _spec(
        tmp_path,
        {"name": "gone", "source": {"url": "mysql+pymysql://u@127.0.0.1:1/"}, "target": {"url": "seekdb:///nowhere"}},
    )
    done = CliRunner().invoke(main, ["-w", str(tmp_path / "ws"), "verify", spec])
    assert done.exit_code == 2, done.output
    assert f"error: the database answered {type(error).__name__} ({error.args[0]}" in done.output
    assert f"fix: {fix}" in done.output and "Traceback" not in done.output


def test_full_reuses_a_precheck_of_the_same_spec_that_just_passed_and_says_so(tmp_path, source, target, src, unique):
    database = unique("reuse")
    src.execute(f"CREATE DATABASE `{database}`")
    src.execute(f"CREATE TABLE `{database}`.t (id INT PRIMARY KEY)")
    src.execute(f"INSERT INTO `{database}`.t VALUES (1), (2)")
    data = {"name": database, "source": source.model_dump(exclude_none=True),
            "target": target.model_dump(exclude_none=True), "objects": {"include": [f"{database}.*"]}}  # fmt: skip
    spec = _spec(tmp_path, data)
    workspace = tmp_path / "ws"
    assert omsbench(workspace, "precheck", spec).returncode == 0
    assert omsbench(workspace, "schema", spec).returncode == 0
    loaded = omsbench(workspace, "full", spec, "--parallelism", "1")  # options are not what a precheck judges
    assert loaded.returncode == 0, loaded.stderr
    assert "precheck: passed at" in loaded.stdout and "not run again" in loaded.stdout
    Path(spec).write_text(yaml.safe_dump({**data, "objects": {"include": [f"{database}.*"], "exclude": ["x.y"]}}))
    again = omsbench(workspace, "full", spec)  # another spec: the precheck runs anew
    assert again.returncode == 0, again.stderr
    assert "not run again" not in again.stdout
    assert Project.load(spec, Workspace.at(workspace)).passed_precheck() is not None  # and is recorded for next time
