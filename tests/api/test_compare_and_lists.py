"""GET models/compare (the guide's shape), models/versions, models/backups and models/events."""

from __future__ import annotations

from tests.api.conftest import P, error_of
from tests.factories import promote


def test_compare_without_model_says_why(client):
    r = client.get(f"{P}/models/compare")
    assert r.status_code == 200
    body = r.json()
    assert body["comparison_available"] is False and "trained" in body["message"]


def test_compare_without_backup_says_why(client, api_registry):
    promote(api_registry)
    body = client.get(f"{P}/models/compare").json()
    assert body["comparison_available"] is False
    assert body["current_version"] == "1.0.0"
    assert "backup" in body["message"]


def test_compare_current_against_newest_backup_of_another_version(client, api_registry):
    promote(api_registry, seed=1, accuracy=0.80, f1_score=0.70, sample_count=1000)
    promote(api_registry, seed=2, accuracy=0.84, f1_score=0.65, sample_count=1500, data_source="sample")
    newest, older = api_registry.backups()
    assert (newest.version, older.version) == ("1.0.1", "1.0.0")  # the newest backup holds the live set itself
    r = client.get(f"{P}/models/compare")
    assert r.status_code == 200
    body = r.json()
    assert body["comparison_available"] is True
    assert body["current_version"] == "1.0.1"
    assert body["backup_timestamp"] == older.timestamp
    assert body["version_change"] == {"from": "1.0.0", "to": "1.0.1"}
    acc = body["performance"]["changes"]["accuracy"]
    assert abs(acc["difference"] - 0.04) < 1e-9 and acc["improved"] is True and acc["verdict"] == "better"
    assert abs(acc["percent_change"] - 5.0) < 1e-6
    assert body["performance"]["changes"]["f1_score"]["improved"] is False
    assert body["performance"]["current"]["accuracy"] == 0.84 and body["performance"]["previous"]["accuracy"] == 0.80
    assert body["training_data"]["current"]["sample_count"] == 1500
    assert body["training_data"]["previous"]["sample_count"] == 1000
    assert body["data_source"] == {"current": "sample", "previous": "database"}


def test_compare_named_versions(client, api_registry):
    promote(api_registry, seed=1, accuracy=0.80)
    promote(api_registry, seed=2, accuracy=0.84)
    promote(api_registry, seed=3, accuracy=0.86)
    body = client.get(f"{P}/models/compare", params={"a": "1.0.0", "b": "1.0.2"}).json()
    assert body["version_change"] == {"from": "1.0.2", "to": "1.0.0"}
    assert body["performance"]["changes"]["accuracy"]["improved"] is False


def test_compare_unknown_or_malformed_version(client, api_registry):
    promote(api_registry)
    error_of(client.get(f"{P}/models/compare", params={"a": "9.9.9"}), 404, "not_found")
    error_of(client.get(f"{P}/models/compare", params={"a": "../1"}), 422, "invalid_input")


def test_versions_lists_every_promotion_newest_first(client, api_registry):
    for seed in (1, 2, 3):
        promote(api_registry, seed=seed)
    body = client.get(f"{P}/models/versions").json()
    assert [v["version"] for v in body["versions"]] == ["1.0.2", "1.0.1", "1.0.0"]
    assert body["current_version"] == "1.0.2" and body["history_available"] is True
    # Each promoted set got its own backup when it was promoted, so every version (the live one too) is held.
    held = {b.version: b.timestamp for b in api_registry.backups()}
    assert [v["backup_timestamps"] for v in body["versions"]] == [[held[v]] for v in ("1.0.2", "1.0.1", "1.0.0")]
    assert [v["restorable"] for v in body["versions"]] == [False, True, True]  # the live one is already live
    assert [v["is_current"] for v in body["versions"]] == [True, False, False]


def test_backups_with_disk_usage(client, api_registry):
    assert client.get(f"{P}/models/backups").json()["count"] == 0
    promote(api_registry, seed=1)
    promote(api_registry, seed=2)
    body = client.get(f"{P}/models/backups").json()
    assert body["count"] == 2
    assert [b["version"] for b in body["backups"]] == ["1.0.1", "1.0.0"]  # newest first; the newest is the live set
    for b in body["backups"]:
        assert b["complete"] and b["restorable"] and b["integrity"] == "ok" and b["size_bytes"] > 0
    usage = body["disk_usage"]
    assert usage["backup_bytes"] == sum(b["size_bytes"] for b in body["backups"])
    # The live set and its backup are the same files.
    assert usage["current_bytes"] == body["backups"][0]["size_bytes"]
    assert usage["total_bytes"] == usage["current_bytes"] + usage["backup_bytes"]


def test_events_filter_by_kind(client, api_registry):
    promote(api_registry, seed=1)
    promote(api_registry, seed=2)
    api_registry.backup_now(actor="tester")
    everything = client.get(f"{P}/models/events").json()
    assert {e["kind"] for e in everything["events"]} == {"promote", "backup"}
    promotes = client.get(f"{P}/models/events", params={"kind": "promote"}).json()["events"]
    assert [e["to_version"] for e in promotes] == ["1.0.1", "1.0.0"]
    assert client.get(f"{P}/models/events", params={"limit": 1}).json()["count"] == 1


def test_events_bad_filters(client):
    error_of(client.get(f"{P}/models/events", params={"kind": "bogus"}), 422, "invalid_input")
    error_of(client.get(f"{P}/models/events", params={"limit": 0}), 422, "invalid_input")
