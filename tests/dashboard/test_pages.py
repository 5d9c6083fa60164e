"""Every dashboard page through AppTest on a real registry and SQLite file.

Actions go through the services the pages call. Without any login configured (local mode) the pages act as
`identity.local_name()` with every permission; with an account, a session logs in and acts with its role.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import constants as C
from core.config import Settings
from core.history import History
from core.identity import Principal, local_principal
from core.locking import training_lock
from core.modelops import reset_ops
from core.registry import Registry
from dashboard import bootstrap, identity
from dashboard import services as svc
from dashboard.pages import PAGE_NAMES, page_path
from tests.dashboard.env import dashboard_on
from tests.factories import promote

ROUTER = str(Path(__file__).resolve().parents[2] / "dashboard" / "router.py")
NOW = dt.datetime.now(dt.UTC)
UNREACHABLE_DB = "postgresql+psycopg://nobody:secret@127.0.0.1:1/nothing"
PASSWORD = "correct horse battery"
ALICE = local_principal("alice")  # local mode: alice may do everything
BOB_VIEWER = Principal("bob", "viewer", "account")
LOGIN_SCREEN = "Log in to see and operate the model registry."


@pytest.fixture(autouse=True)
def _dashboard_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The dashboard reads the test's database and models directory from the environment; no first-run set-up."""
    with dashboard_on(settings, monkeypatch, LOCK_TIMEOUT_SECONDS="1"):
        yield


def make_versions(registry: Registry, n: int) -> None:
    """n promoted versions, a day apart, accuracy rising by 0.02 each."""
    for i in range(n):
        promote(registry, seed=i, accuracy=round(0.76 + 0.02 * i, 4), trained_at=NOW - dt.timedelta(days=n - i))


def backup_of(registry: Registry, version: str):
    """The newest backup set holding this version (every promoted set is backed up when it is promoted)."""
    return next(s for s in registry.backups() if s.version == version)


def login(name: str, role: str) -> str:
    """An account with this role (made in local mode, by an admin) and a signed session token for it."""
    ops = svc.ops()
    ops.add_account(name, role, PASSWORD, actor=local_principal("setup"))
    _, token = ops.login(name, PASSWORD)
    return token


def page(name: str, *, token: str | None = None, row: int | None = None) -> AppTest:
    """Run one page through the real router: in local mode, or as the session of `token`; `row` selects a backup."""
    at = AppTest.from_file(ROUTER, default_timeout=30)
    if token:
        at.session_state[identity.SESSION_KEY] = token
    if row is not None:  # the page selects a set by its timestamp (the table widget's key changes with its rows)
        at.session_state["bk_selected"] = svc.ops().backups()[row].timestamp
    at.switch_page(page_path(name))
    return at.run()


def backups_table(at: AppTest) -> Any:
    """The Backups page's table (its widget key is made from the sets it lists)."""
    [table] = [d for d in at.dataframe if str(getattr(d, "key", "") or "").startswith("bk_rows_")]
    return table


def confirm(at: AppTest, opener: str, form: str, reason: str | None = None) -> AppTest:
    """Open a dialog with its button, type the reason, and submit the dialog's form.

    AppTest reruns the whole script, not the dialog alone: the button that opens the dialog is clicked again in
    the same run as the form's submit button, so the dialog runs and sees its form submitted.
    """
    at.button(key=opener).click().run()
    assert not at.exception, [e.value for e in at.exception]
    if reason is not None:
        at.text_input(key=form.replace("_form", "_reason")).input(reason)
    submit = next(b for b in at.button if (b.key or "").startswith(f"FormSubmitter:{form}-"))
    at.button(key=opener).click()
    submit.click()
    return at.run()


def infos(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in at.info)


def table(at: AppTest, column: str, nth: int = 0):
    """The nth rendered table with this column (read-only st.dataframe keeps no key in AppTest)."""
    return [d.value for d in at.dataframe if column in d.value.columns][nth]


def texts(at: AppTest) -> str:
    """Everything the page said, as one string to search."""
    parts = [
        e.value
        for kind in ("title", "subheader", "markdown", "caption", "info", "warning", "error", "success")
        for e in getattr(at, kind)
    ]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("n", [0, 1, 4])
@pytest.mark.parametrize("name", PAGE_NAMES)
def test_every_page_renders_without_exception(registry: Registry, name: str, n: int) -> None:
    make_versions(registry, n)
    at = page(name)
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value


def test_empty_registry_explains_and_links_to_retrain(registry: Registry) -> None:
    at = page("status")
    assert "No model has been trained yet" in texts(at)
    assert any("retrain" in str(link.proto.page) for link in at.get("page_link"))


def test_status_shows_metrics_thresholds_sample_warning_and_alerts(registry: Registry) -> None:
    promote(registry, seed=1, accuracy=0.65, data_source="sample", trained_at=NOW - dt.timedelta(days=30))
    at = page("status")
    said = texts(at)
    assert "SAMPLE data" in said
    assert "accuracy is 0.650, not above its threshold 0.7" in said
    assert "days old, past the 168 h retraining interval" in said
    acc = next(m for m in at.metric if m.label == "accuracy")
    assert acc.value == "0.650" and acc.proto.delta == "-0.050 vs 0.7"
    assert "**fail**: needs > 0.7" in said
    integrity = table(at, "sha256 on disk")
    assert set(integrity["file"]) == set(C.MODEL_FILES) and all(integrity["status"] == "ok")


def test_status_detects_a_change_made_by_hand(registry: Registry, settings: Settings) -> None:
    make_versions(registry, 2)
    backup = backup_of(registry, "1.0.0")
    for name in C.SET_FILES:  # the guide's manual `cp` restore
        (settings.models_dir / name).write_bytes(backup.files[name].read_bytes())
    at = page("status")
    assert "changed by hand on disk" in texts(at)
    # The way back is on Backups, one click away (not a shell command).
    links = [(link.proto.page, link.proto.label) for link in at.get("page_link")]
    assert ("backups", "Pick a complete set to restore on Backups") in links, links
    events = History(registry.db).events(kinds=["external_change"])
    assert len(events) == 1 and events[0].to_version == "1.0.0"


def test_status_shows_a_rejected_run_newer_than_the_model_with_each_check(registry: Registry) -> None:
    make_versions(registry, 1)
    history = History(registry.db)
    run_id = history.start_run(trigger="cron", actor="scheduler", params={"days_back": 90, "force": True})
    gate = {
        "valid": False,
        "reason": "recall 0.41 not above 0.5",
        "checks": [
            {"name": "accuracy", "passed": True, "value": 0.8, "threshold": 0.7},
            {"name": "recall", "passed": False, "value": 0.41, "threshold": 0.5, "message": "below threshold"},
        ],
    }
    history.finish_run(
        run_id,
        status="rejected",
        metrics={"accuracy": 0.8, "recall": 0.41},
        gate=gate,
        duration_seconds=2.0,
        message="rejected",
    )
    at = page("status")
    said = texts(at)
    assert "newer than the live model" in said and "recall 0.41 not above 0.5" in said
    checks = table(at, "check")
    assert list(checks["check"]) == ["accuracy", "recall"] and list(checks["passed"]) == ["pass", "FAIL"]


def test_compare_defaults_to_current_vs_previous_and_shows_the_differences(registry: Registry) -> None:
    promote(registry, seed=1, accuracy=0.80, precision=0.70, days_back=90)
    promote(registry, seed=2, accuracy=0.84, precision=0.63, days_back=180)
    at = page("compare")
    assert (at.selectbox(key="cmp_a").value, at.selectbox(key="cmp_b").value) == ("1.0.1", "1.0.0")
    tbl = table(at, "difference (A−B)").set_index("metric")
    assert tbl.loc["accuracy", "difference (A−B)"] == pytest.approx(0.04)
    assert tbl.loc["accuracy", "% change"] == pytest.approx(5.0)
    assert tbl.loc["accuracy", "A vs B"] == "▲ better"
    assert tbl.loc["precision", "difference (A−B)"] == pytest.approx(-0.07)
    assert tbl.loc["precision", "A vs B"] == "▼ worse"
    assert tbl.loc["recall", "A vs B"] == "= same"
    assert len(at.get("plotly_chart")) >= 4  # bars, two confusion matrices, importances
    at.toggle(key="cmp_only_diff").set_value(True).run()
    data = table(at, "key")
    assert "days_back" in set(data["key"]) and "unique_devices" not in set(data["key"])


def test_compare_lets_the_operator_swap_versions(registry: Registry) -> None:
    make_versions(registry, 3)
    at = page("compare")
    at.selectbox(key="cmp_b").set_value("1.0.0").run()
    tbl = table(at, "difference (A−B)").set_index("metric")
    assert tbl.loc["accuracy", "difference (A−B)"] == pytest.approx(0.04)


def test_compare_with_one_version_explains(registry: Registry) -> None:
    make_versions(registry, 1)
    assert "Compare needs two" in texts(page("compare"))


def test_trends_and_timeline_from_runs_and_events(registry: Registry) -> None:
    make_versions(registry, 3)
    registry.restore("1.0.0", actor="bob", reason="regression")
    history = History(registry.db)
    run_id = history.start_run(trigger="dashboard", actor="carol", params={})
    history.finish_run(
        run_id, status="rejected", metrics={"accuracy": 0.6}, model_metadata={"model_performance": {"accuracy": 0.6}}
    )
    at = page("trends")
    assert not at.exception
    assert "3 promotions · 1 rejected runs · 1 restores" in texts(at)
    assert len(at.get("plotly_chart")) == 4


def trend_chart(at: AppTest, key: str) -> dict[str, Any]:
    """The plotly specification a Trends chart was sent with."""
    return json.loads(next(c.proto.spec for c in at.get("plotly_chart") if c.proto.id.endswith(key) or key in c.id))


def plotted(values: Any) -> list[Any]:
    """An array of a plotly specification: a list, or numbers packed as {"dtype", "bdata"} (base64)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def test_trends_show_a_promote_and_a_restore_by_another_process_at_the_next_render(registry: Registry) -> None:
    """The registry here is another process's: the dashboard's own caches only see the files and the history."""
    make_versions(registry, 3)
    at = page("trends")
    assert "3 promotions · 0 rejected runs · 0 restores" in texts(at)
    promote(registry, seed=7, accuracy=0.9)
    at.run()
    assert "4 promotions · 0 rejected runs · 0 restores" in texts(at)
    line = trend_chart(at, "trend_metrics_chart")["data"][0]  # the first panel's line through the promotions
    assert len(line["x"]) == 4 and plotted(line["y"])[-1] == 0.9
    registry.restore(backup_of(registry, "1.0.1").timestamp, actor="bob", reason="regression", hold=False)
    at.run()
    assert "4 promotions · 0 rejected runs · 1 restores" in texts(at)
    timeline = trend_chart(at, "trend_timeline")["data"]
    restored = next(t for t in timeline if t["name"] == "restore")
    assert restored["y"] == ["v1.0.1"]


def test_history_filters_by_kind_and_actor(registry: Registry) -> None:
    make_versions(registry, 3)
    registry.restore("1.0.0", actor="bob", reason="regression in recall")
    at = page("history")
    assert len(table(at, "who")) == 4
    at.multiselect(key="hist_kinds").set_value(["restore"]).run()
    tbl = table(at, "who")
    assert list(tbl["who"]) == ["bob"] and list(tbl["reason"]) == ["regression in recall"]
    assert (tbl.iloc[0]["from"], tbl.iloc[0]["to"]) == ("1.0.2", "1.0.0")
    at.multiselect(key="hist_kinds").set_value([]).run()
    at.selectbox(key="hist_actor").set_value("tester").run()
    assert set(table(at, "who")["who"]) == {"tester"}


def test_local_mode_acts_as_the_local_name_with_every_permission(registry: Registry) -> None:
    make_versions(registry, 2)
    at = page("backups", row=1)
    sidebar = " ".join(str(e.value) for e in at.sidebar.caption)
    assert "Local mode" in sidebar and f"act as **{identity.local_name()}**" in sidebar
    for key in ("bk_backup_now", "bk_restore", "bk_delete"):
        assert not at.button(key=key).disabled, key
    assert "disabled" not in infos(at)
    at.button(key="bk_backup_now").click().run()
    assert not at.exception, [e.value for e in at.exception]
    event = History(registry.db).events(kinds=["backup"])[0]
    assert event.actor == identity.local_name() and len(registry.backups()) == 3


def test_with_an_account_and_no_session_every_page_shows_the_login_screen(
    registry: Registry, settings: Settings
) -> None:
    make_versions(registry, 3)
    login("alice", "admin")
    before = sorted(p.name for p in settings.models_dir.iterdir())
    for name in PAGE_NAMES:
        for token in (None, "eyJzdWIiOiJhbGljZSJ9.forged-signature"):
            at = page(name, token=token)
            assert not at.exception, (name, [e.value for e in at.exception])
            assert LOGIN_SCREEN in texts(at), name
            links = [m.value for m in at.markdown if "Log in with an account" in m.value]
            assert len(links) == 1 and 'href="/api/auth/login?next=/" target="_self"' in links[0], name
            # No table, no action, nothing about the registry: the page itself never ran.
            assert not at.dataframe and not at.button and not at.get("form") and not at.metric, name
            assert not at.sidebar.caption and not at.sidebar.markdown, name
    assert sorted(p.name for p in settings.models_dir.iterdir()) == before
    assert [e.kind for e in History(registry.db).events(kinds=["restore", "backup", "delete_backup", "cleanup"])] == []


def test_a_viewer_sees_backups_with_every_action_disabled_and_why(registry: Registry, settings: Settings) -> None:
    make_versions(registry, 3)
    at = page("backups", token=login("bob", "viewer"), row=2)
    assert not at.exception, [e.value for e in at.exception]
    assert "Signed in as **bob** · role **viewer**" in " ".join(str(e.value) for e in at.sidebar.caption)
    tbl = backups_table(at).value
    assert list(tbl["version"]) == ["1.0.2", "1.0.1", "1.0.0"] and all(tbl["integrity"] == "ok")
    assert (
        "Restore, delete, clean-up and backup are disabled: Your role (viewer) may not restore: "
        "that needs the operator role." in infos(at)
    )
    for key in ("bk_backup_now", "bk_restore", "bk_delete"):
        assert at.button(key=key).disabled, key
    assert at.get("download_button")  # reading is allowed
    at.number_input(key="bk_keep").set_value(1).run()
    assert at.button(key="bk_cleanup").disabled
    # The services refuse too (the same check as every interface), and nothing changes.
    before = sorted(p.name for p in settings.models_dir.iterdir())
    ts = backup_of(registry, "1.0.0").timestamp
    refused = svc.restore(ts, actor=BOB_VIEWER, reason="r")
    assert not refused.ok and "bob (viewer) may not restore: that needs the operator role" in refused.message
    assert not svc.backup_now(actor=BOB_VIEWER).ok
    assert not svc.delete_backup(ts, actor=BOB_VIEWER, reason="r").ok
    assert not svc.cleanup(1, actor=BOB_VIEWER, expected=svc.cleanup_plan(1).timestamps, reason="r").ok
    assert sorted(p.name for p in settings.models_dir.iterdir()) == before
    assert registry.current().version == "1.0.2" and History(registry.db).events(kinds=["restore"]) == []
    # Retrain: the form is shown, its start button disabled with the role named.
    at = page("retrain", token=login("carol", "viewer"))
    assert at.button[0].disabled and "Your role (viewer) may not train: that needs the operator role" in texts(at)


def test_an_operator_restores_through_the_dialog_but_may_not_delete_or_clean_up(registry: Registry) -> None:
    make_versions(registry, 3)
    token = login("alice", "operator")
    at = page("backups", token=token, row=2)
    assert "Signed in as **alice** · role **operator**" in " ".join(str(e.value) for e in at.sidebar.caption)
    assert not at.button(key="bk_restore").disabled and not at.button(key="bk_backup_now").disabled
    assert at.button(key="bk_delete").disabled
    assert (
        "Delete and clean-up are disabled: Your role (operator) may not delete backups: that needs the admin role."
        in infos(at)
    )
    at.number_input(key="bk_keep").set_value(1).run()
    assert at.button(key="bk_cleanup").disabled
    # Without a reason the dialog says so and stays open; nothing is restored.
    at = confirm(page("backups", token=token, row=2), "bk_restore", "bk_restore_form")
    assert "give a reason: it is recorded in History with the change" in [e.value for e in at.error]
    assert at.text_input(key="bk_restore_reason")  # still in the dialog
    assert registry.current().version == "1.0.2" and History(registry.db).events(kinds=["restore"]) == []
    at = confirm(page("backups", token=token, row=2), "bk_restore", "bk_restore_form", "1.0.2 misses gateways")
    assert not at.exception, [e.value for e in at.exception]
    assert registry.current().version == "1.0.0"
    assert any("Restored version 1.0.0" in str(e.value) for e in at.success)
    event = History(registry.db).events(kinds=["restore"])[0]
    assert (event.actor, event.reason, event.to_version) == ("alice", "1.0.2 misses gateways", "1.0.0")
    history = page("history", token=token)
    assert "alice" in set(table(history, "who")["who"])
    # Retrain: an operator may start training.
    assert not page("retrain", token=token).button[0].disabled


def test_an_admin_cleans_up_and_deletes_through_the_dialogs_with_a_reason(registry: Registry) -> None:
    make_versions(registry, 4)
    token = login("alice", "admin")
    at = page("backups", token=token)
    assert "disabled" not in infos(at)
    at.number_input(key="bk_keep").set_value(2).run()
    assert not at.button(key="bk_cleanup").disabled
    planned = svc.cleanup_plan(2).timestamps
    assert len(planned) == 2
    # Clean-up needs a reason: the dialog shows the error, nothing is removed.
    at = confirm(at, "bk_cleanup", "bk_cleanup_form")
    assert "give a reason: it is recorded in History with the change" in [e.value for e in at.error]
    assert len(registry.backups()) == 4
    at = confirm(at, "bk_cleanup", "bk_cleanup_form", "keep two")
    assert not at.exception, [e.value for e in at.exception]
    assert [s.version for s in registry.backups()] == ["1.0.3", "1.0.2"]
    event = History(registry.db).events(kinds=["cleanup"])[0]
    assert (event.actor, event.reason) == ("alice", "keep two")
    assert sorted(event.details["removed"]) == sorted(planned)
    # Delete needs a reason too.
    at = confirm(page("backups", token=token, row=1), "bk_delete", "bk_delete_form")
    assert "give a reason: it is recorded in History with the change" in [e.value for e in at.error]
    assert len(registry.backups()) == 2
    at = confirm(page("backups", token=token, row=1), "bk_delete", "bk_delete_form", "superseded")
    assert not at.exception and [s.version for s in registry.backups()] == ["1.0.3"]
    event = History(registry.db).events(kinds=["delete_backup"])[0]
    assert (event.actor, event.reason) == ("alice", "superseded")


def test_backups_page_disables_actions_while_the_registry_is_locked(registry: Registry) -> None:
    make_versions(registry, 2)
    with registry.lock.hold("promote", "scheduler"):
        at = page("backups")
    assert "registry is busy with another operation: promote by scheduler" in texts(at)
    assert at.button(key="bk_backup_now").disabled


def test_restore_through_services_is_audited_and_needs_a_principal_and_reason(registry: Registry) -> None:
    make_versions(registry, 2)
    ts = backup_of(registry, "1.0.0").timestamp
    live_backup = backup_of(registry, "1.0.1").timestamp
    before = [s.timestamp for s in registry.backups()]
    assert "identified principal" in svc.restore(ts, actor=None, reason="x").message
    assert "identified principal" in svc.restore(ts, actor="alice", reason="x").message  # a name is not enough
    assert "give a reason" in svc.restore(ts, actor=ALICE, reason="  ").message
    assert registry.current().version == "1.0.1" and History(registry.db).events(kinds=["restore"]) == []
    preview = svc.ops().restore_preview(ts).comparison
    assert (preview.b.version, preview.a.version) == ("1.0.1", "1.0.0")
    assert preview.metrics["accuracy"].difference == pytest.approx(-0.02)
    result = svc.restore(ts, actor=ALICE, reason="1.0.1 misses gateway failures")
    assert result.ok and registry.current().version == "1.0.0"
    # The replaced set's backup from its promotion is the undo backup: no new backup is made.
    assert result.value.undo_backup == live_backup and "backed up as " + live_backup in result.message
    assert [s.timestamp for s in registry.backups()] == before
    event = History(registry.db).events(kinds=["restore"])[0]
    assert (event.actor, event.from_version, event.to_version, event.reason) == (
        "alice",
        "1.0.1",
        "1.0.0",
        "1.0.1 misses gateway failures",
    )
    at = page("history")
    assert "alice" in set(table(at, "who")["who"])


def test_actions_are_refused_while_the_registry_is_locked(registry: Registry) -> None:
    make_versions(registry, 2)
    ts = backup_of(registry, "1.0.0").timestamp
    with registry.lock.hold("cleanup", "bob"):
        result = svc.restore(ts, actor=ALICE, reason="r")
    assert not result.ok and "cleanup by bob" in result.message
    assert registry.current().version == "1.0.1"


def test_delete_backup_now_and_download(registry: Registry) -> None:
    make_versions(registry, 2)
    assert [s.version for s in registry.backups()] == ["1.0.1", "1.0.0"]
    made = svc.backup_now(actor=ALICE)
    assert made.ok and len(registry.backups()) == 3 and registry.backups()[0].timestamp == made.value.timestamp
    name, data = svc.ops().archive(made.value.timestamp)
    assert name == f"model_backup_{made.value.timestamp}_v1.0.1.tar.gz"
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = {Path(m.name).name: tar.extractfile(m).read() for m in tar.getmembers()}
    assert set(members) == {f"{f}{C.BACKUP_MARKER}{made.value.timestamp}" for f in C.SET_FILES}
    assert json.loads(members[f"{C.METADATA_FILE}{C.BACKUP_MARKER}{made.value.timestamp}"])["version"] == "1.0.1"
    unexplained = svc.delete_backup(made.value.timestamp, actor=ALICE, reason=" ")
    assert not unexplained.ok and "give a reason" in unexplained.message and len(registry.backups()) == 3
    deleted = svc.delete_backup(made.value.timestamp, actor=ALICE, reason="duplicate")
    assert deleted.ok and [s.version for s in registry.backups()] == ["1.0.1", "1.0.0"]
    assert made.value.timestamp not in {s.timestamp for s in registry.backups()}
    events = History(registry.db).events()
    assert [e.kind for e in events][:2] == ["delete_backup", "backup"]
    assert (events[0].actor, events[0].reason) == ("alice", "duplicate")


def test_cleanup_removes_exactly_the_preview_and_refuses_a_stale_one(registry: Registry) -> None:
    make_versions(registry, 5)
    # Never the backup holding the live set (1.0.4), even when asked to keep none.
    assert [s.version for s in svc.cleanup_plan(0).sets] == ["1.0.3", "1.0.2", "1.0.1", "1.0.0"]
    plan = svc.cleanup_plan(2)
    assert [s.version for s in plan.sets] == ["1.0.2", "1.0.1", "1.0.0"]
    assert plan.timestamps == [s.timestamp for s in registry.backups()[2:]]
    unexplained = svc.cleanup(2, actor=ALICE, expected=plan.timestamps)
    assert not unexplained.ok and "give a reason" in unexplained.message and len(registry.backups()) == 5
    stale = svc.cleanup(2, actor=ALICE, expected=plan.timestamps[:1], reason="disk")
    assert not stale.ok and "changed since the preview" in stale.message
    operator = Principal("olga", "operator", "account")
    refused = svc.cleanup(2, actor=operator, expected=plan.timestamps, reason="disk")
    assert not refused.ok and "needs the admin role" in refused.message and len(registry.backups()) == 5
    done = svc.cleanup(2, actor=ALICE, expected=plan.timestamps, reason="disk")
    assert done.ok and [s.version for s in registry.backups()] == ["1.0.4", "1.0.3"]
    event = History(registry.db).events(kinds=["cleanup"])[0]
    assert event.actor == "alice" and sorted(event.details["removed"]) == sorted(plan.timestamps)


def test_start_training_validates_and_reports_who_holds_the_lock(registry: Registry, settings: Settings) -> None:
    assert "identified principal" in svc.start_training(days_back=30, force=True, actor=None).message
    refused = svc.start_training(days_back=30, force=True, actor=BOB_VIEWER)
    assert not refused.ok and "bob (viewer) may not train: that needs the operator role" in refused.message
    assert "between 1 and 3650" in svc.start_training(days_back=0, force=True, actor=ALICE).message
    assert "between 1 and 3650" in svc.start_training(days_back=4000, force=True, actor=ALICE).message
    with training_lock(settings.models_dir).hold("training (days_back=90)", "scheduler"):
        busy = svc.start_training(days_back=30, force=True, actor=ALICE)
        at = page("retrain")
    assert not busy.ok and "training (days_back=90) by scheduler" in busy.message
    assert "Training is already running" in texts(at) and not at.get("form")
    assert svc.ops().runs() == []


def test_start_training_runs_in_the_background_and_is_recorded(registry: Registry) -> None:
    started = svc.start_training(days_back=30, force=True, actor=ALICE)
    assert started.ok
    run = svc.ops().wait(started.value, timeout=60)
    assert run is not None and run.finished and run.actor == "alice" and run.trigger == "dashboard"
    assert run.status == "failed" and run.error  # an empty database cannot train: the run says why
    at = page("retrain")
    assert "FAILED" in list(table(at, "outcome")["outcome"])


def test_pages_that_read_the_models_directory_work_without_the_database(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_versions(registry, 3)
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE_DB)
    reset_ops()
    svc.reset()
    for name in PAGE_NAMES:
        at = page(name)
        assert not at.exception, (name, [e.value for e in at.exception])
        said = texts(at)
        if name in ("status", "backups", "compare"):
            assert "1.0.2" in said or name == "backups"
        if name in ("history", "retrain", "trends"):
            assert "needs the database" in said, name
    assert "v1.0.2" in texts(page("status")) or "Version 1.0.2" in texts(page("status"))
    assert list(backups_table(page("backups")).value["version"]) == ["1.0.2", "1.0.1", "1.0.0"]


def test_bootstrap_is_skipped_when_disabled_and_does_nothing_when_set_up(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = svc.ops()
    assert bootstrap.ensure_bootstrap(ops) is None
    make_versions(registry, 1)
    from core.db import Device, HealthMetric

    with registry.db.session() as s:
        s.add(Device(id="d1", name="d1", device_type="sensor", installed_at=NOW))
        s.flush()
        s.add(
            HealthMetric(device_id="d1", metric_name="battery_level", metric_value=80.0, metric_unit="%", timestamp=NOW)
        )
    monkeypatch.setenv("DASHBOARD_BOOTSTRAP", "1")
    state = bootstrap.ensure_bootstrap(ops)
    assert state is not None and bootstrap.ensure_bootstrap(ops) is state  # once per process
    for _ in range(100):
        if not state.active:
            break
        threading.Event().wait(0.05)
    assert (state.stage, state.message) == ("done", "nothing to set up")


def test_unreadable_metadata_is_shown_not_raised(registry: Registry, settings: Settings) -> None:
    make_versions(registry, 2)
    (settings.models_dir / C.METADATA_FILE).write_text("{not json")
    for name in PAGE_NAMES:
        at = page(name)
        assert not at.exception, (name, [e.value for e in at.exception])
    said = texts(page("status"))
    assert "cannot be read" in said and "not valid JSON" in said


def test_the_restore_dialog_says_when_the_set_holds_the_live_version(registry: Registry) -> None:
    make_versions(registry, 2)  # live 1.0.1; the newest backup holds 1.0.1 too
    at = page("backups", row=0)
    at.button(key="bk_restore").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "holds v1.0.1, the version that is already live: the figures below cannot differ" in infos(at)
    at = page("backups", row=1)  # the older set: a real change, no such note
    at.button(key="bk_restore").click().run()
    assert "already live" not in infos(at)
