"""The real server for tests and benchmarks: free ports, start, poll, stop by PID.

The server is `streamlit run dashboard/server.py`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, never the same twice in this process (servers launched together must not collide)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """(status, body) of a GET; HTTP errors are answers too, connection errors raise OSError."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float = 10.0) -> bytes:
    """POST `body`; the response body (raises on an HTTP error status)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def server_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "dashboard/server.py",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
    ]


def launch(env: dict[str, str], log: IO[bytes], command: list[str]) -> subprocess.Popen:
    """Start the server with `env` on top of this process's environment, its output in `log`."""
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)


def wait_until(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float, pause: float = 0.3) -> bool:
    """Poll `ready()` until it is true, the process dies, or `timeout` seconds pass.

    Connection errors count as not ready.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if ready():
                return True
        except OSError:
            pass
        time.sleep(pause)
    return False


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """Terminate by PID, then kill if it does not exit in time."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
