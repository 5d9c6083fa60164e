"""`manage_models.py alerts`, `alerts ack` and `alerts silence` as operators run them: real processes and files."""

from __future__ import annotations

import json

from tests.factories import promote
from tests.test_manage_cli import run


def test_alerts_lists_acknowledges_and_silences(settings, registry) -> None:
    promote(registry, seed=1, accuracy=0.65)
    listed = run(settings, "alerts")
    assert listed.returncode == 1, listed.stderr  # something is firing
    assert "FIRING" in listed.stdout and "metric_below_threshold:accuracy" in listed.stdout
    body = json.loads(run(settings, "alerts", "--json").stdout)
    firing = [a for a in body["alerts"] if a["state"] == "firing"]
    assert body["firing"] == len(firing) >= 1 and body["evaluation"]["fired"] == []  # fired once, by the first run
    first, *rest = firing

    missing = run(settings, "alerts", "ack", str(first["id"]))
    assert missing.returncode == 2 and "give a reason" in missing.stderr
    acked = run(settings, "alerts", "ack", str(first["id"]), "--reason", "on it")
    assert acked.returncode == 0 and f"acknowledged alert {first['id']}" in acked.stdout, acked.stderr
    for other in rest:
        done = run(settings, "alerts", "silence", str(other["id"]), "--minutes", "60", "--reason", "known")
        assert done.returncode == 0, done.stderr
    bad = run(settings, "alerts", "silence", str(first["id"]), "--minutes", "0", "--reason", "x")
    assert bad.returncode == 2 and "--minutes" in bad.stderr
    quiet = run(settings, "alerts", "--json")
    assert quiet.returncode == 0, quiet.stdout
    states = {a["id"]: a["state"] for a in json.loads(quiet.stdout)["alerts"]}
    assert states[first["id"]] == "acknowledged" and all(states[o["id"]] == "silenced" for o in rest)
    gone = run(settings, "alerts", "ack", "424242", "--reason", "x")
    assert gone.returncode == 1 and "no alert 424242" in gone.stderr
