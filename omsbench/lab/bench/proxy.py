"""A TCP forwarder on 127.0.0.1 whose connections can be cut: the network faults of a chaos run.

omsbench's connections to a database go through it in that run, so a cut resets every open
connection at once (the binlog stream, the applier, the heartbeat) the way a broken link or a
restarted firewall does, and for a while after it new connections are refused.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class Proxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._refuse_until = 0.0
        self._closed = False
        threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True).start()

    def cut(self, refuse_for: float = 0.0) -> int:
        """Reset every open connection and refuse new ones for ``refuse_for`` seconds; return how many."""
        with self._lock:
            self._refuse_until = time.monotonic() + refuse_for
            sockets, self._open = self._open, set()
        for sock in sockets:
            _drop(sock)
        return len(sockets) // 2

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if time.monotonic() < self._refuse_until:
                _drop(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _drop(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._open.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        """Copy one direction until either side ends; then end both, as a real link failure would."""
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._open.difference_update((src, dst))
        _drop(src)
        _drop(dst)


def _drop(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
