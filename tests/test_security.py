"""TLS to the source and to OceanBase, verified against their CAs, carrying a whole migration and sync;
and a least-privileged source account."""

from __future__ import annotations

import secrets

import pytest
from conftest import make_project, one_table_migrated
from helpers import assert_same_tables
from test_sync import running

from omsbench.endpoints.connection import Endpoint, connect
from omsbench.endpoints.mysql import master_status
from omsbench.exceptions import ConnectError
from omsbench.lab import tls
from omsbench.lab.servers import SeekdbServer


@pytest.fixture
def tls_user(mariadb, unique, monkeypatch) -> Endpoint:
    """A source account that may only connect over TLS; its password in the environment."""
    user, password = unique("tls"), secrets.token_urlsafe(12)
    root = mariadb.root()
    with root.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY %s REQUIRE SSL", (password,))
        cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'127.0.0.1'")
    root.close()
    monkeypatch.setenv("OMS_TLS_PASSWORD", password)
    return Endpoint(url=f"mysql+pymysql://{user}@127.0.0.1:{mariadb.port}/", password_env="OMS_TLS_PASSWORD")


def test_tls_is_on_by_default_and_a_given_ca_is_enforced(tls_user, tmp_path):
    # without ssl options pymysql still encrypts when the server offers TLS, but trusts any certificate
    with connect(tls_user.dsn()) as session:
        assert session.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'")[0][1]
    tls.issue(tmp_path / "other", "127.0.0.1")
    foreign = tls_user.model_copy(update={"ssl": {"ca": str(tmp_path / "other" / "ca.pem")}})
    with pytest.raises(ConnectError, match="certificate verify failed"):
        connect(foreign.dsn())


def test_migration_and_sync_over_tls(workspace, mariadb, tls_user, target, src, dst, unique):
    secure = tls_user.model_copy(update={"ssl": {"ca": str(mariadb.tls_ca)}})
    with connect(secure.dsn()) as session:
        assert session.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'")[0][1]  # encrypted, server verified
    database = unique("tls")
    project = one_table_migrated(workspace, secure, target, src, database, ["copied"])
    with running(project):  # the binlog stream too goes over TLS
        src.execute(f"INSERT INTO `{database}`.t VALUES (2, 'replayed')")
        project.wait_for_sync()
    assert_same_tables(src, dst, [(database, "t", database, "t")])
    assert dst.query(f"SELECT v FROM `{database}`.t ORDER BY id") == [("copied",), ("replayed",)]


def test_a_least_privileged_source_account_is_told_what_is_missing_then_migrates_and_syncs(
    workspace, mariadb, target, src, dst, unique, monkeypatch
):
    database, user, password = unique("least"), unique("least"), secrets.token_urlsafe(12)
    src.execute(f"CREATE DATABASE `{database}`")
    src.execute(f"CREATE TABLE `{database}`.t (id INT PRIMARY KEY, v VARCHAR(20))")
    src.execute(f"INSERT INTO `{database}`.t VALUES (1, 'copied')")
    root = mariadb.root()
    with root.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY %s", (password,))
        cur.execute(f"GRANT SELECT ON `{database}`.* TO '{user}'@'127.0.0.1'")
        cur.execute(f"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{user}'@'127.0.0.1'")
    monkeypatch.setenv("OMS_LEAST_PASSWORD", password)
    account = Endpoint(url=f"mysql+pymysql://{user}@127.0.0.1:{mariadb.port}/", password_env="OMS_LEAST_PASSWORD")
    project = make_project(workspace, account, target, name=database, objects={"include": [f"{database}.*"]})
    findings = project.precheck()
    missing = findings[findings.status == "fail"]
    assert set(missing.check) == {"privilege CREATE", "privilege INSERT", "privilege DELETE"}, missing
    assert all("`omsbench`.*" in fix for fix in missing.fix)

    with root.cursor() as cur:  # what README's Privileges section lists for the source, and no more
        cur.execute(f"GRANT CREATE, INSERT, DELETE ON `omsbench`.* TO '{user}'@'127.0.0.1'")
    root.close()
    findings = project.precheck()
    assert not len(findings[findings.status == "fail"]), findings
    project.migrate_schema()
    project.full(progress=False)
    with running(project):
        src.execute(f"INSERT INTO `{database}`.t VALUES (2, 'replayed')")
        project.wait_for_sync()
    assert_same_tables(src, dst, [(database, "t", database, "t")])


def test_an_account_that_may_not_read_the_binlog_end_is_told_so_not_that_there_is_no_binlog(
    mariadb, unique, monkeypatch, tmp_path
):
    user, password = unique("nobinlog"), secrets.token_urlsafe(12)
    root = mariadb.root()
    with root.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY %s", (password,))
    root.close()
    monkeypatch.setenv("OMS_NOBINLOG_PASSWORD", password)
    account = Endpoint(url=f"mysql+pymysql://{user}@127.0.0.1:{mariadb.port}/", password_env="OMS_NOBINLOG_PASSWORD")
    with connect(account.dsn()) as session, pytest.raises(ConnectError, match="refuses to say where its binlog") as err:
        master_status(session)  # it answered None ("no binlog") before
    assert "BINLOG MONITOR" in err.value.fix
    with connect(Endpoint(url=f"seekdb://{tmp_path / 'sdb'}").dsn()) as seekdb:
        assert master_status(seekdb) is None  # no binlog service: that is "no binlog"


def test_migration_and_sync_into_oceanbase_over_tls(workspace, source, src, unique, tmp_path, request):
    oceanbase = SeekdbServer(tmp_path / "seekdb-tls", tls=True)
    request.addfinalizer(oceanbase.stop)
    oceanbase.start()
    secure = oceanbase.endpoint().model_copy(update={"ssl": {"ca": str(oceanbase.tls_ca)}})
    tls.issue(tmp_path / "other", "127.0.0.1")
    foreign = secure.model_copy(update={"ssl": {"ca": str(tmp_path / "other" / "ca.pem")}})
    with pytest.raises(ConnectError, match="certificate verify failed"):
        connect(foreign.dsn())
    database = unique("obtls")
    project = one_table_migrated(workspace, source, secure, src, database, ["copied"])
    with running(project):
        src.execute(f"INSERT INTO `{database}`.t VALUES (2, 'replayed')")
        project.wait_for_sync()
    with connect(secure.dsn()) as dst:
        assert_same_tables(src, dst, [(database, "t", database, "t")])


def test_passwords_in_account_statements_of_the_binlog_are_masked(workspace, source, target, src, unique):
    """CREATE USER ... IDENTIFIED BY travels in the source's binlog like any statement; the sync
    records every statement it reads, and must not record or log the password."""
    database = unique("acct")
    project = one_table_migrated(workspace, source, target, src, database, ["a"])
    password = f"Pw-{secrets.token_hex(8)}"
    user = f"{database}_app"
    with running(project):
        src.execute(f"CREATE USER '{user}'@'localhost' IDENTIFIED BY '{password}'")
        src.execute(f"ALTER USER '{user}'@'localhost' IDENTIFIED BY '{password}x'")
        src.execute(f"SET PASSWORD FOR '{user}'@'localhost' = PASSWORD('{password}y')")
        src.execute(f"DROP USER '{user}'@'localhost'")
        project.wait_for_sync()
    recorded = project.state.ddl(project.name)
    accounts = recorded[recorded.statement.str.contains(user)]
    # SET statements are not recorded at all; the others are, with the password masked
    assert len(accounts) == 3 and all("'***'" in s for s in accounts.statement[:2]), list(accounts.statement)
    leaked = [p for p in workspace.root.rglob("*") if p.is_file() and password.encode() in p.read_bytes()]
    assert not leaked
