"""The freezing proxy the sick-database tests use: closing it must end the connections it holds.

Otherwise a database thread waiting on one (a ping sent while frozen) waits forever, and pytest's interpreter never
exits after the last test (CI saw that: all tests passed, then nothing, up to its time limit).
"""

from __future__ import annotations

import socket
import threading
import time

from tests.freezing_proxy import FreezingProxy


def test_closing_the_proxy_ends_a_connection_whose_reply_it_holds():
    upstream = socket.create_server(("127.0.0.1", 0))

    def answer_late() -> None:
        conn, _ = upstream.accept()
        conn.recv(4)
        time.sleep(0.2)  # the proxy is frozen by now: it takes the reply and holds it
        conn.sendall(b"pong")
        time.sleep(10)
        conn.close()

    threading.Thread(target=answer_late, daemon=True).start()
    proxy = FreezingProxy(upstream.getsockname()[:2])
    client = socket.create_connection(("127.0.0.1", proxy.port))
    client.settimeout(5)
    client.sendall(b"ping")
    time.sleep(0.1)  # forwarded; the proxy now waits on the client for more, and on the server for the reply
    proxy.freeze()
    threading.Timer(0.6, proxy.close).start()
    started = time.monotonic()
    try:
        ended = client.recv(16) == b""
    except ConnectionResetError:
        ended = True
    except TimeoutError:
        ended = False
    assert ended and time.monotonic() - started < 3, "the client still waits on a closed proxy"
    client.close()
    upstream.close()
