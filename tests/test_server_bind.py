"""The real server refuses to listen beyond loopback without an API key, wherever it is started from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "dashboard" / "server.py"


@pytest.mark.parametrize("address", [None, "", "0.0.0.0"])
def test_started_elsewhere_or_on_all_interfaces_without_a_key_it_refuses(tmp_path, address):
    env = {k: v for k, v in os.environ.items() if k not in ("API_KEY", "STREAMLIT_SERVER_ADDRESS")}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}", MODELS_DIR=str(tmp_path / "models"))
    env["DASHBOARD_BOOTSTRAP"] = "0"
    cmd = [sys.executable, "-m", "streamlit", "run", str(SERVER), "--server.headless", "true", "--server.port", "0"]
    if address is not None:
        cmd += ["--server.address", address]
    # From another directory the repository's .streamlit/config.toml (address 127.0.0.1) is not read.
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "refusing to serve on" in out.stderr + out.stdout and "API_KEY" in out.stderr + out.stdout
