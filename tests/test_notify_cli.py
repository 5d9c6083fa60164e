"""manage_models.py notify as cron and operators run it: real processes, a real receiver, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from tests.factories import promote
from tests.test_manage_cli import ROOT, run
from tests.webhook_receiver import Receiver, closed_port, verify

SECRET = "cli-test-secret-0a6e"


def hooks(url: str, **extra: str) -> dict[str, str]:
    return {"WEBHOOK_URLS": f"ops={url}", "WEBHOOK_SECRET": SECRET, **extra}


def test_once_sends_what_is_new_once_and_says_so(settings, registry):
    with Receiver() as receiver:
        env = hooks(receiver.url())
        first = run(settings, "notify", "--once", env=env)
        assert first.returncode == 0 and "0 new deliveries" in first.stdout, first.stdout + first.stderr
        promote(registry, seed=1)
        promote(registry, seed=2)
        assert run(settings, "restore", "1.0.0", "--reason", "bad recall", env=env).returncode == 0

        sent = run(settings, "notify", "--once", env=env)
        again = run(settings, "--json", "notify", "--once", env=env)

        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "-> ops: delivered after attempt 1 (HTTP 200)" in sent.stdout
        assert "3 new deliveries; attempts: 3 delivered, 0 pending, 0 failed" in sent.stdout
        assert json.loads(again.stdout) == {"enqueued": 0, "attempts": []}
        assert receiver.kinds() == ["promote", "promote", "restore"]
        assert all(verify(SECRET, r.headers, r.body) for r in receiver.requests)
        assert SECRET not in sent.stdout + sent.stderr


def test_test_and_once_exit_1_when_a_delivery_failed_for_good(settings):
    env = hooks(f"http://127.0.0.1:{closed_port()}/hook", WEBHOOK_MAX_ATTEMPTS="1")
    tested = run(settings, "notify", "--test", env=env)
    assert tested.returncode == 1 and "-> ops: failed after attempt 1 (unreachable:" in tested.stdout, tested.stdout
    without = run(settings, "notify", "--test", env={})
    assert without.returncode == 1 and "set WEBHOOK_URLS" in without.stdout
    assert run(settings, "notify", "--once", env={}).returncode == 0


def test_without_once_it_runs_a_dispatcher_until_stopped(settings, registry):
    with Receiver() as receiver:
        env = {k: v for k, v in os.environ.items() if k != "MODEL_OPS_API_KEY"} | hooks(receiver.url())
        cmd = [sys.executable, str(ROOT / "scripts" / "manage_models.py"), "--database-url", settings.database_url]
        cmd += ["--models-dir", str(settings.models_dir), "notify"]
        daemon = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(daemon.stdout), daemon=True)
        reader.start()
        try:
            time.sleep(3)  # its first pass sets the cursor
            promote(registry, seed=1)
            # The receiver answers before the daemon logs the delivery: wait for the line, not for the request.
            end = time.monotonic() + 20
            while not any("delivered, HTTP 200" in line for line in lines) and time.monotonic() < end:
                time.sleep(0.1)
            assert receiver.kinds() == ["promote"]
        finally:
            daemon.terminate()
            daemon.wait(timeout=10)
            reader.join(timeout=10)
        out = "".join(lines)
        assert "notify: dispatcher started for ops (127.0.0.1:" in out
        assert "(promote) -> ops" in out and "delivered, HTTP 200" in out
