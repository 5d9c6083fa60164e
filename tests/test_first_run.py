"""The README's run command on a fresh machine: the server seeds the fleet and trains the first model by itself."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.server import free_port, http_get, launch, server_command, stop, wait_until


def test_fresh_server_seeds_and_trains_the_first_model(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("DASHBOARD_BOOTSTRAP", raising=False)
    port = free_port()
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}", "MODELS_DIR": str(tmp_path / "models")}
    status: dict = {}

    def trained() -> bool:
        code, body = http_get(f"http://127.0.0.1:{port}/api/predictions/models/status")
        status.update(json.loads(body) if code == 200 else {})
        return bool(status.get("is_trained"))

    with open(tmp_path / "server.log", "wb") as log:
        proc = launch(env, log, server_command(port))
        try:
            assert wait_until(proc, trained, timeout=240, pause=1.0), (tmp_path / "server.log").read_text()[-2000:]
            # ... and loads it for predictions at once, not on the first request.
            warmed = "warm-up: live set 1.0.0 loaded"
            assert wait_until(proc, lambda: warmed in (tmp_path / "server.log").read_text(), timeout=30, pause=0.5)
        finally:
            stop(proc)
    meta = status["model_metadata"]
    assert meta["version"] == "1.0.0" and meta["trigger"] == "bootstrap" and meta["data_source"] == "database"
    assert meta["training_data_stats"]["unique_devices"] == 150
    assert "DASHBOARD_BOOTSTRAP" not in os.environ
