"""OceanBase / seekdb specifics: the embedded instance and the session settings it needs.

seekdb's embedded mode runs the server as a child of this Python process and answers on a
unix socket; one process may open a data directory once, so the instance is kept per
directory for the life of the process and other processes (pool workers, dask workers)
reach it through the socket path.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omsbench.actions import named
from omsbench.exceptions import ServerError

_instances: dict[str, object] = {}
_lock = threading.Lock()

# seekdb answers every session with a 10 s statement timeout and +08:00; a chunk read or a
# large batch needs far longer, so sessions raise the timeouts (microseconds) to a day.
SESSION_SETTINGS = {
    "ob_query_timeout": 86_400_000_000,
    "ob_trx_timeout": 86_400_000_000,
    "ob_trx_idle_timeout": 86_400_000_000,
}


def embedded_socket(db_dir: str | Path) -> str:
    """Open (once per process) the embedded seekdb in ``db_dir`` and return its unix socket."""
    key = str(Path(db_dir).resolve())
    with _lock:
        instance = _instances.get(key)
        if instance is None:
            instance = _open(key)
            _instances[key] = instance
    return instance.connection_options()["unix_socket"]


def _open(db_dir: str) -> object:
    try:
        import pylibseekdb
    except ImportError as err:  # pragma: no cover - a dependency of the package
        raise ServerError("pylibseekdb is not installed", fix="pip install pylibseekdb") from err
    Path(db_dir).mkdir(parents=True, exist_ok=True)
    try:
        instance = pylibseekdb.open(db_dir=db_dir)
    except Exception as err:
        raise ServerError(
            f"cannot open the embedded seekdb in {db_dir}: {err}",
            fix="another process may hold this directory open (an embedded seekdb serves one "
            f"process); stop it, or run seekdb as a TCP server ({named('servers start', None, '--target')})",
        ) from err
    _tune(instance)
    return instance


SAFE_PRIVATE_BUFFER = "0B"
PRIVATE_PARAMETERS = {
    "syslog_level": "WARN",
    "log_disk_size": "8G",
    "memory_budget": "4G",
    "_private_buffer_size": SAFE_PRIVATE_BUFFER,
}
"""The seekdb servers omsbench runs (embedded or TCP) are its own. At INFO seekdb logs hundreds
of MB a minute under load, it throttles writes once 60% of a 2 GB redo disk is used, and 1 GB
of memory forces early freezes: measured on a 1M-row load these settings make it markedly
faster. ``_private_buffer_size`` (default 16K) is the size at which an open transaction's redo
is logged before its commit; a transaction whose redo was logged and that a stop or a crash
interrupted keeps its locks after the restart (see ``orphans``). At 0B redo is logged at
commit only, and the same stop leaves nothing behind."""


PRIVATE_VARIABLES = {"max_allowed_packet": 1 << 30}
"""Sessions opened after these are set take rows of up to 1 GB (OceanBase's most) instead of 16 MB:
a larger statement ends the connection, and a binary value travels as hex, twice its size."""


def set_private_variables(conn) -> None:
    """``conn``: a pymysql connection to a seekdb omsbench runs, before omsbench's own sessions open."""
    with conn.cursor() as cur:
        for name, value in PRIVATE_VARIABLES.items():
            cur.execute(f"SET GLOBAL {name} = {value}")


def _tune(instance: object) -> None:
    import pymysql

    conn = pymysql.connect(**instance.connection_options(), autocommit=True)
    try:
        with conn.cursor() as cur:
            for name, value in PRIVATE_PARAMETERS.items():
                cur.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        set_private_variables(conn)
    finally:
        conn.close()


def close_embedded(db_dir: str | Path | None = None) -> None:
    """Stop the embedded instance of ``db_dir``, or every one this process opened."""
    with _lock:
        keys = list(_instances) if db_dir is None else [str(Path(db_dir).resolve())]
        for key in keys:
            instance = _instances.pop(key, None)
            if instance is not None:
                instance.close()


atexit.register(close_embedded)


def parameter(session, name: str) -> str | None:
    """A server parameter's value; None where the server does not list it (seekdb lists a hidden
    parameter only once it was set). ``session``: a Session or a bare pymysql connection."""
    with session.cursor() as cur:  # the columns differ between seekdb and OceanBase: find "value"
        cur.execute(f"SHOW PARAMETERS LIKE '{name}'")
        row = cur.fetchone()
        columns = [d[0].lower() for d in cur.description or ()]
    return str(row[columns.index("value")]) if row else None


def open_transactions(session) -> dict[int, int]:
    """Transactions open on the server now, by id, with their session id (0: no session owns it)."""
    rows = session.query("SELECT trans_id, session_id FROM oceanbase.__all_virtual_trans_stat")
    return {int(t): int(s) for t, s in rows}


def orphaned_transactions(session) -> list[int]:
    """Transactions holding locks without a session: left over from a restart (see ``orphans``)."""
    rows = session.query("SELECT DISTINCT TRANS_ID FROM oceanbase.V$OB_LOCKS WHERE SESSION_ID = 0")
    return sorted(int(r[0]) for r in rows)


def orphans(session, err: Exception) -> tuple[str, str] | None:
    """Why a write waited in vain (``err``: its lock wait timed out on OceanBase), with the fix, when
    the rows are held by transactions no session owns.

    seekdb does not roll back a transaction that a stop or a crash interrupted after its redo
    reached the disk: after the restart it keeps the transaction's locks, across further
    restarts (seen with seekdb 1.4, also in the full load). Retrying cannot help. Servers that
    omsbench runs log redo at commit only (``PRIVATE_PARAMETERS``), which avoids it.
    """
    if not err.args or err.args[0] != 1205 or "OceanBase" not in session.version:
        return None
    held = orphaned_transactions(session)
    if not held:
        return None
    return (
        f"OceanBase keeps the locks of transaction(s) {', '.join(map(str, held))} from before its restart;"
        " no session owns them and the server does not roll them back, so omsbench cannot write those rows",
        "this is a defect of the target server: restore the target from a backup or migrate into a new"
        f" one ({named('full', None, '--restart')} on a fresh server), and report it to the OceanBase/seekdb project;"
        f" on the new server, ALTER SYSTEM SET _private_buffer_size = '{SAFE_PRIVATE_BUFFER}' avoids it",
    )


@contextmanager
def naming_orphans(session, error: type[Exception]) -> Iterator[None]:
    """A lock wait that timed out on rows of transactions no session owns becomes ``error`` naming
    them and the fix: retrying it would wait in vain again, forever."""
    try:
        yield
    except Exception as err:
        found = orphans(session, err)
        if found:
            raise error(*found) from err
        raise
