"""sysbench's own tables as benchmark data, built once in the private MariaDB and reused."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from omsbench.endpoints.connection import connect
from omsbench.exceptions import OmsError
from omsbench.lab.servers import MariaDB, find_program

DATABASE = "sbbench"
TABLES = 4
_TPS = re.compile(r"transactions:\s+(\d+)\s+\(([\d.]+) per sec")


def prepare(server: MariaDB, rows: int, database: str = DATABASE) -> None:
    """``rows`` rows over four sbtest tables (id, k, c, pad, index k_1); rebuilt only when the size changed."""
    per_table = rows // TABLES
    with connect(server.endpoint().dsn()) as session:
        found = session.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (database,))
        if len(found) == TABLES and all(
            session.scalar(f"SELECT COUNT(*) FROM {database}.sbtest{i}") == per_table for i in range(1, TABLES + 1)
        ):
            return
        session.execute(f"DROP DATABASE IF EXISTS {database}")
        session.execute(f"CREATE DATABASE {database}")
    run_tool(command(server, "oltp_common", database, f"--table-size={per_table}", "--threads=2", "prepare"))


def command(server: MariaDB, test: str, database: str, *options: str) -> list[str]:
    """A sysbench command line against the private server's socket and the sbtest tables."""
    return [
        find_program("sysbench"),
        test,
        "--db-driver=mysql",
        f"--mysql-socket={server.socket}",
        "--mysql-user=root",
        f"--mysql-db={database}",
        f"--tables={TABLES}",
        *options,
    ]


def run_tool(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise OmsError(
            f"`{Path(cmd[0]).name}` failed: {(done.stderr or done.stdout).strip()[-400:]}",
            fix="run the command by hand to see why",
        )
    return done.stdout


def half_rate(*transactions_per_second: float) -> int:
    """The default rate of a lag run: half of what the slowest of source and sync carries (transactions/s).

    The source's own rate counts too: a rate it cannot write alone is no fixed rate. sysbench then
    writes flat out behind its schedule, and the lag measured is that of a saturated machine.
    """
    return max(1, int(min(transactions_per_second) / 2))


def fixed_rate(asked: int, reached: float) -> dict:
    """A lag run's rate as asked and as sysbench reached it: they part where the machine cannot hold it."""
    return {"fixed_rate_transactions_per_s": asked, "fixed_rate_reached_transactions_per_s": round(reached)}


def transactions_per_second(output: str) -> float:
    """The rate a ``sysbench ... run`` printed."""
    return float(_TPS.search(output).group(2))


def transactions(output: str) -> int:
    """How many transactions a ``sysbench ... run`` printed it committed."""
    return int(_TPS.search(output).group(1))
