"""A TCP proxy in front of a real server that can freeze: connections stay open, nothing gets through.

That is what a database that "accepts connections but never answers" looks like to a client, and no
client-side timeout in the driver can tell it from a slow query.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class FreezingProxy:
    """127.0.0.1:<port> forwarding to `upstream`; `freeze()` stops every byte until `thaw()`."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._frozen = threading.Event()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        self._frozen.set()

    def thaw(self) -> None:
        self._frozen.clear()

    def close(self) -> None:
        """Stop forwarding and end every connection: shut down first, so threads blocked in accept or recv wake up
        and the clients see the connection end (a close alone from another thread does neither, and a client
        waiting on it, such as a database thread at interpreter exit, would wait forever)."""
        self._closed.set()
        for s in [self.listener, *self._sockets]:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        while not self._closed.is_set():
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            while self._frozen.is_set() and not self._closed.is_set():
                time.sleep(0.05)  # hold the bytes: the other side waits for an answer that does not come
            try:
                target.sendall(data)
            except OSError:
                return
