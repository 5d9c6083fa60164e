"""Notifications by webhook: real receivers on loopback, real SQLite and PostgreSQL, real promotions and restores."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from core.config import Settings
from core.db import Database
from core.errors import Forbidden, InvalidInput
from core.history import History
from core.identity import Principal, local_principal
from core.modelops import ModelOps
from core.notify import SIGNATURE_HEADER, Dispatcher
from tests.factories import promote
from tests.webhook_receiver import Receiver, closed_port, verify

SECRET = "s3cret-for-tests-only-7f2a"
OPERATOR = Principal("olivia", "operator", "api_key")
VIEWER = Principal("victor", "viewer", "api_key")


@pytest.fixture
def make_ops(settings: Settings):
    made: list[ModelOps] = []

    def make(url: str | None = None, **changes: object) -> ModelOps:
        changes.setdefault("webhook_secret", SECRET)
        ops = ModelOps(dataclasses.replace(settings, database_url=url or settings.database_url, **changes))
        made.append(ops)
        return ops

    yield make
    for ops in made:
        ops.dispose()


def until(check, timeout: float = 15.0) -> None:
    """Wait for `check()` to hold (retries are due after their backoff, in real time)."""
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_promote_and_restore_are_delivered_once_per_target_signed_and_recent(make_ops) -> None:
    with Receiver() as a, Receiver() as b:
        ops = make_ops(webhook_urls=(("ops-a", a.url()), ("ops-b", b.url("/b"))))
        ops.dispatch_notifications()  # configured on an empty history: the cursors start here
        promote(ops.registry, seed=1, accuracy=0.80, actor="tess")
        promote(ops.registry, seed=2, accuracy=0.84, actor="tess")
        ops.restore("1.0.0", actor=OPERATOR, reason="v1.0.1 misses failures")

        first = ops.dispatch_notifications()
        again = ops.dispatch_notifications()

        assert (first.enqueued, first.count("delivered"), again.enqueued, again.attempts) == (6, 6, 0, ())
        for receiver in (a, b):
            assert receiver.kinds() == ["promote", "promote", "restore"]
            for r in receiver.requests:
                assert verify(SECRET, r.headers, r.body), r.headers
                assert not verify("another secret", r.headers, r.body)
            restore = receiver.requests[-1].json
            assert restore["text"] == "[Model Ops] Model v1.0.0 restored by olivia (was v1.0.1): v1.0.1 misses failures"
            assert (restore["actor"], restore["from_version"], restore["to_version"]) == ("olivia", "1.0.1", "1.0.0")
            promoted = receiver.requests[0].json
            assert promoted["details"]["model_performance"]["accuracy"] == 0.80
            assert "metadata" not in promoted["details"]  # the full metadata stays in History
        assert b.requests[0].path == "/b"
        log = ops.notification_log()
        assert len(log) == 6 and {d.status for d in log} == {"delivered"} and {d.attempts for d in log} == {1}
        assert [d.kind for d in log[:2]] == ["restore", "restore"]  # newest first


def test_history_from_before_webhooks_were_configured_is_not_replayed(make_ops) -> None:
    with Receiver() as receiver:
        before = make_ops()
        promote(before.registry, seed=1)
        ops = make_ops(webhook_urls=(("ops", receiver.url()),))
        assert ops.dispatch_notifications().enqueued == 0
        promote(ops.registry, seed=2)
        ops.dispatch_notifications()
        assert receiver.kinds() == ["promote"] and receiver.requests[0].json["to_version"] == "1.0.1"


def test_a_rejected_run_is_recorded_as_a_reject_event_and_notified(make_ops) -> None:
    with Receiver() as receiver:
        ops = make_ops(webhook_urls=(("ops", receiver.url()),))
        ops.dispatch_notifications()
        history = History(ops.db)
        run_id = history.start_run(trigger="schedule", actor="cron", params={})
        gate = {
            "valid": False,
            "reason": "recall 0.41 is not above the threshold 0.5",
            "checks": [{"name": "recall", "passed": False}, {"name": "accuracy", "passed": True}],
        }
        history.finish_run(run_id, status="rejected", gate=gate, metrics={"recall": 0.41, "roc_auc": 0.7})
        history.finish_run(history.start_run(trigger="schedule", actor="cron", params={}), status="failed")

        ops.dispatch_notifications()

        assert [e.kind for e in ops.events()] == ["reject"]  # a failed run is not a rejection
        sent = receiver.requests[0].json
        assert sent["kind"] == "reject" and sent["actor"] == "cron"
        assert sent["reason"] == gate["reason"]
        assert sent["details"] == {
            "run_id": run_id,
            "trigger": "schedule",
            "failed_checks": ["recall"],
            "metrics": {"recall": 0.41},
        }
        assert sent["text"].startswith(f"[Model Ops] Training run {run_id[:8]} by cron rejected by the validation gate")


def test_kinds_are_configurable_and_unknown_kinds_are_formatted_generically(make_ops) -> None:
    with Receiver() as receiver:
        kinds = ("alert_fired", "backup", "auto_rollback")
        ops = make_ops(webhook_urls=(("ops", receiver.url()),), webhook_events=kinds)
        ops.dispatch_notifications()
        history = History(ops.db)
        details = {"rule": "stale_model", "level": "warning", "message": "the model is 9 days old", "alert_id": 4}
        history.record_event("alert_fired", actor="rule:alerts", details=details)
        history.record_event("backup", actor="ada", from_version="1.0.0", to_version="1.0.0", reason="before a test")
        dry = {"mode": "dry-run", "dry_run": True}
        history.record_event(
            "auto_rollback", actor="rule:auto-rollback", from_version="1.0.1", to_version="1.0.0", details=dry
        )
        promote(ops.registry, seed=1)  # not a configured kind
        ops.dispatch_notifications()
        texts = [r.json["text"] for r in receiver.requests]
        assert texts == [
            "[Model Ops] Alert fired: [warning] the model is 9 days old",
            "[Model Ops] Backup by ada (v1.0.0 -> v1.0.0): before a test",
            "[Model Ops] Automatic rollback (dry run: nothing changed) v1.0.1 -> v1.0.0 by rule:auto-rollback",
        ]
        assert receiver.requests[0].json["details"] == details


def test_a_failing_receiver_is_retried_with_backoff_and_the_failure_is_in_the_log(make_ops) -> None:
    with Receiver(statuses=[500, 503]) as receiver:
        ops = make_ops(webhook_urls=(("flaky", receiver.url()),), webhook_max_attempts=5)
        ops.dispatch_notifications()
        promote(ops.registry, seed=1)

        first = ops.dispatch_notifications()
        assert [(a.status, a.http_status, a.attempt) for a in first.attempts] == [("pending", 500, 1)]
        assert ops.dispatch_notifications().attempts == ()  # not due yet: the backoff holds it back
        pending = ops.notification_log()[0]
        assert (pending.status, pending.attempts, pending.http_status) == ("pending", 1, 500)
        assert pending.last_error.startswith("HTTP 500")

        until(lambda: ops.dispatch_notifications() and ops.notification_log()[0].status == "delivered")

        done = ops.notification_log()[0]
        assert (done.status, done.attempts, done.http_status) == ("delivered", 3, 200)
        assert done.last_error.startswith("HTTP 503")  # the last failure stays visible after success
        gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
        assert len(receiver.requests) == 3 and gaps[0] >= 0.95 and gaps[1] >= 1.95, gaps
        assert len({r.body for r in receiver.requests}) == 1  # the same message each time


def test_an_unreachable_receiver_ends_failed_after_max_attempts_with_the_error(make_ops, caplog) -> None:
    ops = make_ops(webhook_urls=(("gone", f"http://127.0.0.1:{closed_port()}/hook"),), webhook_max_attempts=3)
    ops.dispatch_notifications()
    promote(ops.registry, seed=1)
    with caplog.at_level(logging.INFO, logger="core.notify"):
        until(lambda: ops.dispatch_notifications() is not None and ops.notification_log()[0].status == "failed")
    failed = ops.notification_log()[0]
    assert (failed.attempts, failed.http_status) == (3, None)
    assert "refused" in failed.last_error.lower()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("notify: event")]
    assert len(lines) == 3 and "attempt 3 of 3" in lines[-1] and "failed, no attempts left" in lines[-1]
    ops.dispatch_notifications()
    assert ops.notification_log()[0].attempts == 3  # never tried again


def test_send_test_reaches_every_target_now_and_is_logged(make_ops) -> None:
    with Receiver() as up:
        down = f"http://127.0.0.1:{closed_port()}/x"
        ops = make_ops(webhook_urls=(("up", up.url()), ("down", down)), webhook_max_attempts=1)
        with pytest.raises(Forbidden):
            ops.send_test_notification(actor=VIEWER)

        results = ops.send_test_notification(actor=OPERATOR)

        assert [(r.target, r.status) for r in results] == [("up", "delivered"), ("down", "failed")]
        sent = up.requests[0]
        assert verify(SECRET, sent.headers, sent.body) and sent.json["kind"] == "notification_test"
        assert sent.json["text"] == "[Model Ops] Test notification from Device Intelligence Model Ops, sent by olivia"
        assert {(d.target, d.status) for d in ops.notification_log()} == {("up", "delivered"), ("down", "failed")}
        assert ops.dispatch_notifications().attempts == ()  # nothing sent twice
        assert len(up.requests) == 1
    assert [e.kind for e in ops.events()] == ["notification_test"] and ops.events()[0].actor == "olivia"


def test_send_test_without_a_webhook_says_how_to_configure_one(make_ops) -> None:
    with pytest.raises(InvalidInput, match="WEBHOOK_URLS"):
        make_ops().send_test_notification(actor=local_principal("ada"))


def test_the_secret_and_the_url_path_are_never_shown(make_ops, caplog) -> None:
    with Receiver() as receiver, caplog.at_level(logging.DEBUG):
        ops = make_ops(webhook_urls=(("ops", receiver.url("/hook/T0KEN-in-path")),))
        ops.send_test_notification(actor=OPERATOR)
        promote(ops.registry, seed=1)
        ops.dispatch_notifications()
        shown = json.dumps(
            [ops.notification_setup().to_dict(), [d.to_dict() for d in ops.notification_log()]], default=str
        )
        shown += repr(ops.settings) + caplog.text + json.dumps([r.json for r in receiver.requests])
        assert SECRET not in shown
        assert "T0KEN" not in shown
        target = {"name": "ops", "host": f"127.0.0.1:{receiver.port}", "signing": "shared secret"}
        assert ops.notification_setup().to_dict()["targets"] == [target]
        assert ops.notification_setup().secret_set is True


def test_a_target_with_its_own_secret_is_signed_with_it_and_the_others_with_the_shared_one(make_ops) -> None:
    own = "pager-only-secret-91c"
    with Receiver() as a, Receiver() as b, Receiver() as c:
        env = {
            "WEBHOOK_URLS": f"ops={a.url()},pager-duty={b.url()}",
            "WEBHOOK_SECRET": SECRET,
            "WEBHOOK_SECRET_PAGER_DUTY": own,
        }
        configured = Settings.from_env(env)
        assert configured.webhook_secret_for("pager-duty") == own and configured.webhook_secret_for("ops") == SECRET
        assert own not in repr(configured) and SECRET not in repr(configured)
        ops = make_ops(webhook_urls=configured.webhook_urls, webhook_secrets=configured.webhook_secrets)
        ops.send_test_notification(actor=OPERATOR)
        (to_ops,), (to_pager,) = a.requests, b.requests
        assert verify(SECRET, to_ops.headers, to_ops.body) and not verify(own, to_ops.headers, to_ops.body)
        assert verify(own, to_pager.headers, to_pager.body) and not verify(SECRET, to_pager.headers, to_pager.body)
        signing = [t["signing"] for t in ops.notification_setup().to_dict()["targets"]]
        assert signing == ["shared secret", "own secret"]
        # Without the shared secret, a target without its own goes unsigned, and says so.
        alone = make_ops(
            webhook_urls=(("c", c.url()), ("pager-duty", b.url())),
            webhook_secret=None,
            webhook_secrets=configured.webhook_secrets,
        )
        alone.send_test_notification(actor=OPERATOR)
        assert SIGNATURE_HEADER.lower() in {k.lower() for k in a.requests[0].headers}
        assert SIGNATURE_HEADER.lower() not in {k.lower() for k in c.requests[0].headers}
        assert [t["signing"] for t in alone.notification_setup().to_dict()["targets"]] == ["unsigned", "own secret"]


def test_a_per_target_secret_that_names_no_target_is_refused() -> None:
    env = {"WEBHOOK_URLS": "ops=https://hooks.example.com/x", "WEBHOOK_SECRET_OSP": "typo"}
    with pytest.raises(
        InvalidInput, match="WEBHOOK_SECRET_OSP names no webhook target; per-target secrets here: WEBHOOK_SECRET_OPS"
    ):
        Settings.from_env(env)
    assert Settings.from_env({**env, "WEBHOOK_SECRET_OSP": ""}).webhook_secrets == ()  # set empty: not set


@pytest.mark.parametrize("any_db", ["sqlite", "postgresql"], indirect=True)
def test_two_dispatchers_at_once_deliver_each_event_once_per_target(make_ops, any_db: Database) -> None:
    with Receiver(delay=0.02) as a, Receiver(delay=0.02) as b:
        targets = (("a", a.url()), ("b", b.url()))
        first, second = make_ops(any_db.url, webhook_urls=targets), make_ops(any_db.url, webhook_urls=targets)
        first.dispatch_notifications()
        for seed in range(6):
            promote(first.registry, seed=seed)
        start = threading.Barrier(4)

        def run(ops: ModelOps) -> None:
            start.wait()
            for _ in range(4):
                ops.dispatch_notifications()

        threads = [threading.Thread(target=run, args=(o,)) for o in (first, second, first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)

        for receiver in (a, b):
            sent = Counter(r.json["event_id"] for r in receiver.requests)
            assert len(sent) == 6 and set(sent.values()) == {1}, sent
        assert len(first.notification_log()) == 12


def test_the_background_dispatcher_delivers_soon_after_an_in_process_change(make_ops) -> None:
    with Receiver() as receiver:
        ops = make_ops(webhook_urls=(("ops", receiver.url()),))
        ops.dispatch_notifications()
        dispatcher = Dispatcher(ops.settings, interval=30)  # the wake-up, not the poll, must deliver it
        dispatcher.start()
        try:
            until(lambda: dispatcher._db is not None)
            started = time.monotonic()
            promote(ops.registry, seed=1)
            until(lambda: len(receiver.requests) == 1, timeout=10)
            assert time.monotonic() - started < 5
        finally:
            dispatcher.stop()


def test_webhook_settings_are_validated_with_a_clear_message() -> None:
    ok = Settings.from_env({"WEBHOOK_URLS": "ops=https://hooks.example.com/a?x=1, https://chat.example.com/b"})
    assert ok.webhook_urls == (
        ("ops", "https://hooks.example.com/a?x=1"),
        ("chat.example.com", "https://chat.example.com/b"),
    )
    assert ok.webhook_events == ("alert_fired", "alert_resolved", "promote", "reject", "restore", "auto_rollback")
    same_host = Settings.from_env({"WEBHOOK_URLS": "https://h.example/a,https://h.example/b"})
    assert [n for n, _ in same_host.webhook_urls] == ["h.example", "h.example-2"]
    for env, message in [
        ({"WEBHOOK_URLS": "ops=ftp://x/secret-path"}, "not an http"),
        ({"WEBHOOK_URLS": "a b=https://x.example"}, "target name"),
        ({"WEBHOOK_URLS": "a=https://x.example,a=https://y.example"}, "two targets"),
        ({"WEBHOOK_EVENTS": "promote,Bad-Kind"}, "WEBHOOK_EVENTS"),
        ({"WEBHOOK_TIMEOUT_SECONDS": "0"}, "WEBHOOK_TIMEOUT_SECONDS"),
        ({"WEBHOOK_MAX_ATTEMPTS": "0"}, "WEBHOOK_MAX_ATTEMPTS"),
    ]:
        with pytest.raises(InvalidInput, match=message) as caught:
            Settings.from_env(env)
        assert "secret-path" not in caught.value.message
    assert "hidden" not in repr(Settings.from_env({"WEBHOOK_SECRET": "hidden"}))


def test_a_caught_up_cursor_moves_past_settled_events_and_nothing_is_missed(make_ops) -> None:
    from sqlalchemy import select

    from core.db import NotificationCursor
    from core.notify import SETTLE

    with Receiver() as receiver:
        ops = make_ops(webhook_urls=(("ops", receiver.url()),))
        ops.dispatch_notifications()
        history, old = History(ops.db), dt.datetime.now(dt.UTC) - SETTLE * 2
        settled = [history.record_event("promote", actor="x", to_version=f"1.0.{i}", at=old).id for i in range(3)]
        ops.dispatch_notifications()
        recent = history.record_event("restore", actor="y", to_version="1.0.0")
        ops.dispatch_notifications()
        with ops.db.session() as s:
            cursor = s.scalar(select(NotificationCursor.after_event_id))
        assert cursor == settled[-1]  # the recent event keeps the cursor below it until it settles
        assert [r.json["event_id"] for r in receiver.requests] == [*settled, recent.id]


def test_the_readme_receiver_check_accepts_our_messages_and_refuses_changed_or_old_ones(make_ops) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    code = readme.split("A receiver checks:\n\n```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) <= 10
    scope: dict[str, object] = {}
    exec(code, scope)  # the README's own example, as a receiver would paste it
    verified = scope["verified"]
    with Receiver() as receiver:
        make_ops(webhook_urls=(("ops", receiver.url()),)).send_test_notification(actor=OPERATOR)
    sent = receiver.requests[0]
    assert verified(SECRET, sent.headers, sent.body)
    assert not verified("wrong", sent.headers, sent.body)
    assert not verified(SECRET, sent.headers, sent.body.replace(b"olivia", b"mallory"))
    old = {**sent.headers, "X-Model-Ops-Timestamp": str(int(sent.headers["X-Model-Ops-Timestamp"]) - 600)}
    assert not verified(SECRET, old, sent.body)


def test_a_claim_left_by_a_dead_dispatcher_is_taken_over_after_its_lease_only(make_ops) -> None:
    from sqlalchemy import update

    from core.db import NotificationDelivery

    with Receiver() as receiver:
        ops = make_ops(webhook_urls=(("ops", receiver.url()),))
        ops.dispatch_notifications()
        promote(ops.registry, seed=1)
        assert ops._notifier().enqueue() == 1
        now = dt.datetime.now(dt.UTC)
        d = NotificationDelivery
        with ops.db.session() as s:  # a dispatcher claimed it, then died before it could send or record anything
            s.execute(update(d).values(status="sending", claim="dead", claimed_until=now + dt.timedelta(seconds=30)))
        assert ops.dispatch_notifications().attempts == () and receiver.requests == []  # its lease still runs
        with ops.db.session() as s:
            s.execute(update(d).values(claimed_until=now - dt.timedelta(seconds=1)))
        taken = ops.dispatch_notifications().attempts
        assert [(a.status, a.attempt) for a in taken] == [("delivered", 1)] and receiver.kinds() == ["promote"]


def test_a_redirect_is_a_failure_not_followed(make_ops) -> None:
    with Receiver(statuses=[302]) as receiver:
        ops = make_ops(webhook_urls=(("ops", receiver.url()),), webhook_max_attempts=1)
        [attempt] = ops.send_test_notification(actor=OPERATOR)
        assert (attempt.status, attempt.http_status) == ("failed", 302)
        assert attempt.error.startswith("HTTP 302") and [r.path for r in receiver.requests] == ["/hook"]


def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt_not_a_hang(make_ops) -> None:
    with Receiver(delay=2.0) as receiver:
        ops = make_ops(webhook_urls=(("slow", receiver.url()),), webhook_timeout_seconds=0.5, webhook_max_attempts=1)
        started = time.monotonic()
        [attempt] = ops.send_test_notification(actor=OPERATOR)
        assert time.monotonic() - started < 1.5
        assert attempt.status == "failed" and "timed out" in attempt.error


def test_a_dispatcher_without_its_database_says_so_once_not_every_pass(settings, caplog) -> None:
    down = dataclasses.replace(
        settings,
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/nothing",
        webhook_urls=(("ops", "http://127.0.0.1:9/x"),),
        db_timeout_seconds=1.0,
    )
    dispatcher = Dispatcher(down, interval=0.05)
    with caplog.at_level(logging.INFO, logger="core.notify"):
        dispatcher.start()
        time.sleep(1.5)
        dispatcher.stop()
    waits = [r for r in caplog.records if "waits for the database" in r.getMessage()]
    assert len(waits) == 1 and "connection refused" in waits[0].getMessage()
