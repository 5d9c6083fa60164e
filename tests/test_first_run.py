"""The README's run command on a fresh machine: the server seeds the fleet and trains the first model by itself."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.test_guide_scripts import free_port, get

ROOT = Path(__file__).resolve().parent.parent


def test_fresh_server_seeds_and_trains_the_first_model(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}", "MODELS_DIR": str(tmp_path / "models")}
    env.pop("DASHBOARD_BOOTSTRAP", None)
    log = open(tmp_path / "server.log", "wb")
    cmd = [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port), "--server.headless", "true"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        status: dict = {}
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                code, body = get(f"{base}/api/predictions/models/status")
            except OSError:
                code, body = 0, b""
            if code == 200:
                status = json.loads(body)
                if status["is_trained"]:
                    break
            time.sleep(1.0)
        assert status.get("is_trained"), (tmp_path / "server.log").read_text()[-2000:]
        meta = status["model_metadata"]
        assert meta["version"] == "1.0.0" and meta["trigger"] == "bootstrap" and meta["data_source"] == "database"
        assert meta["training_data_stats"]["unique_devices"] == 150
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
