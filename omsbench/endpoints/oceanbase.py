"""OceanBase / seekdb specifics: the embedded instance and the session settings it needs.

seekdb's embedded mode runs the server as a child of this Python process and answers on a
unix socket; one process may open a data directory once, so the instance is kept per
directory for the life of the process and other processes (pool workers, dask workers)
reach it through the socket path.
"""

from __future__ import annotations

import atexit
import threading
from pathlib import Path

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
        return pylibseekdb.open(db_dir=db_dir)
    except Exception as err:
        raise ServerError(
            f"cannot open the embedded seekdb in {db_dir}: {err}",
            fix="another process may hold this directory open (an embedded seekdb serves one "
            "process); stop it, or run seekdb as a TCP server with `omsbench servers start --target tcp`",
        ) from err


def close_embedded() -> None:
    """Stop every embedded instance this process opened (seekdb flushes its redo on close)."""
    with _lock:
        for instance in _instances.values():
            instance.close()
        _instances.clear()


atexit.register(close_embedded)
