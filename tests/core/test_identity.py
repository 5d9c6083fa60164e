"""Identity in core: Argon2 accounts, signed sessions, hashed API keys, the authentication marker, API_KEY.

Real SQL on SQLite and PostgreSQL, real Argon2, real clocks (no mocks of what is under test). Argon2 is slow
on purpose (~0.1 s a hash), so each test makes as few accounts as it can.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from core import constants as C
from core.config import Settings
from core.db import Database, UserAccount, utcnow
from core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from core.identity import KEY_PREFIX, MIN_PASSWORD_LENGTH, Identities, Principal, local_principal
from core.modelops import ModelOps
from tests.conftest import fresh_postgres
from tests.factories import promote

PASSWORD = "correct horse battery"
NEW_PASSWORD = "tr0ub4dor & 3 staple"
SETUP = local_principal("setup")
UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:1/none"
KEY_FORMAT = re.compile(r"^dimo_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")


@pytest.fixture(autouse=True)
def _no_session_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sessions are signed with the secret file beside the registry unless a test sets SESSION_SECRET."""
    monkeypatch.delenv("SESSION_SECRET", raising=False)


def _identities(db: Database, tmp_path: Path) -> Identities:
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    return Identities(db, secret_dir)


@pytest.fixture
def ident(any_db: Database, tmp_path: Path) -> Identities:
    """Identities on SQLite and on PostgreSQL: for what is about the rows stored."""
    return _identities(any_db, tmp_path)


@pytest.fixture
def lite(db: Database, tmp_path: Path) -> Identities:
    """Identities on SQLite only: for what does not depend on the database."""
    return _identities(db, tmp_path)


@pytest.fixture(scope="module")
def password_hash() -> str:
    """One Argon2 hash of PASSWORD, made once (accounts for the session tests, which are not about hashing)."""
    from argon2 import PasswordHasher

    return PasswordHasher().hash(PASSWORD)


def put_account(identities: Identities, name: str, role: str, digest: str) -> Principal:
    """An account row as add_account writes it, without spending another Argon2 hash."""
    with identities.db.session() as s:
        now = utcnow()
        s.add(UserAccount(name=name, role=role, password_hash=digest, disabled=False, created_at=now))
        s.flush()
        s.get(UserAccount, name).password_changed_at = now - dt.timedelta(seconds=2)
    return Principal(name, role, "account")


@pytest.fixture(params=["sqlite", "postgresql"])
def ops_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """Settings whose database is a fresh SQLite file or the emptied PostgreSQL test database."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        fresh_postgres(url).dispose()
        return dataclasses.replace(settings, database_url=url)
    return settings


@pytest.fixture
def any_ops(ops_settings: Settings) -> Iterator[ModelOps]:
    """The application layer on SQLite and on PostgreSQL."""
    made = ModelOps(ops_settings)
    yield made
    made.dispose()


@pytest.fixture
def ops(settings: Settings) -> Iterator[ModelOps]:
    """The application layer on SQLite."""
    made = ModelOps(settings)
    yield made
    made.dispose()


def claims(token: str) -> dict:
    body = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def forge(payload: bytes, secret: str) -> str:
    """A token in the session format, signed with `secret` (for inputs only a holder of the secret could make)."""
    body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    return f"{body}.{hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()}"


def rows(db: Database, table: str) -> list[dict]:
    with db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(f"SELECT * FROM {table}"))]


def access_events(ops: ModelOps) -> list[tuple[str, str]]:
    """(actor, reason) of every access event, oldest first."""
    return [(e.actor, e.reason or "") for e in reversed(ops.events(kinds=["access"]))]


# ---------------------------------------------------------------- passwords


def test_a_password_is_stored_only_as_a_salted_argon2_hash(ident: Identities, any_db: Database) -> None:
    from argon2 import PasswordHasher

    ident.add_account("alice", "operator", PASSWORD)
    ident.add_account("bob", "viewer", PASSWORD)
    stored = {r["name"]: r for r in rows(any_db, "user_accounts")}
    for row in stored.values():
        assert row["password_hash"].startswith("$argon2id$")
        assert PasswordHasher().verify(row["password_hash"], PASSWORD)
        assert not any(PASSWORD in str(value) for value in row.values()), "the clear text is in the row"
    assert stored["alice"]["password_hash"] != stored["bob"]["password_hash"], "the same password, unsalted"
    listed = ident.accounts()
    assert [a.name for a in listed] == ["alice", "bob"]
    assert "$argon2" not in repr(listed) and PASSWORD not in repr(listed)


@pytest.mark.parametrize(
    "password", ["", "short", "x" * (MIN_PASSWORD_LENGTH - 1), "nine-char", "has\x00a NUL in it", None]
)
def test_a_too_short_or_unusable_password_is_refused(lite: Identities, db: Database, password) -> None:
    with pytest.raises(InvalidInput, match=f"at least {MIN_PASSWORD_LENGTH} characters"):
        lite.add_account("alice", "admin", password)
    assert rows(db, "user_accounts") == []


def test_a_password_of_exactly_the_minimum_length_is_accepted_and_a_short_change_is_refused(
    lite: Identities,
) -> None:
    exact = "x" * MIN_PASSWORD_LENGTH
    lite.add_account("alice", "viewer", exact)
    with pytest.raises(InvalidInput):
        lite.set_password("alice", "too short")
    assert lite.login("alice", exact) == Principal("alice", "viewer", "account")  # unchanged


@pytest.mark.parametrize("name", ["", "   ", "has space", "semi;colon", "x" * 65, "new\nline"])
def test_a_bad_account_name_is_refused(lite: Identities, name: str) -> None:
    with pytest.raises(InvalidInput, match="a name is 1 to 64"):
        lite.add_account(name, "viewer", PASSWORD)


def test_a_bad_role_is_refused(lite: Identities) -> None:
    with pytest.raises(InvalidInput, match="role must be one of viewer, operator, admin"):
        lite.add_account("alice", "root", PASSWORD)


def test_an_existing_name_is_a_conflict_and_keeps_its_password(lite: Identities) -> None:
    lite.add_account("alice", "viewer", PASSWORD)
    with pytest.raises(Conflict):
        lite.add_account("alice", "admin", NEW_PASSWORD)
    assert lite.login("alice", PASSWORD).role == "viewer"


def test_a_wrong_password_an_unknown_name_and_a_disabled_account_get_the_same_answer(
    lite: Identities,
) -> None:
    lite.add_account("alice", "admin", PASSWORD)
    lite.add_account("carol", "admin", PASSWORD)
    lite.set_disabled("carol", True)
    answers = []
    for name, password in (("alice", "wrong password!"), ("nobody", PASSWORD), ("carol", PASSWORD), ("", "")):
        with pytest.raises(Forbidden) as refused:
            lite.login(name, password)
        answers.append(refused.value.message)
    assert len(set(answers)) == 1, answers  # nothing tells which names exist
    assert answers[0] == "wrong name or password, or the account is disabled"
    assert {a.name: a.last_login_at for a in lite.accounts()} == {"alice": None, "carol": None}
    assert lite.login(" alice ", PASSWORD) == Principal("alice", "admin", "account")
    assert next(a for a in lite.accounts() if a.name == "alice").last_login_at is not None


def test_a_disabled_account_cannot_log_in_and_its_sessions_stop(ident: Identities) -> None:
    ident.add_account("alice", "operator", PASSWORD)
    token = ident.issue_session(ident.login("alice", PASSWORD), 8)
    assert ident.session_principal(token) == Principal("alice", "operator", "account")
    ident.set_disabled("alice", True)
    assert ident.session_principal(token) is None
    assert ident.account_principal("alice") is None  # nor may the shell user of that name act
    with pytest.raises(Forbidden):
        ident.login("alice", PASSWORD)
    assert not ident.has_accounts()
    ident.set_disabled("alice", False)
    assert ident.login("alice", PASSWORD).name == "alice"


def test_a_password_change_ends_earlier_sessions(lite: Identities) -> None:
    lite.add_account("alice", "operator", PASSWORD)
    token = lite.issue_session(lite.login("alice", PASSWORD), 8)
    assert lite.session_principal(token) is not None
    # Session times have a one-second resolution: change the password in a later second than the login.
    time.sleep(max(0.0, claims(token)["iat"] + 1 - time.time()) + 0.02)
    lite.set_password("alice", NEW_PASSWORD)
    assert lite.session_principal(token) is None
    with pytest.raises(Forbidden):
        lite.login("alice", PASSWORD)
    fresh = lite.issue_session(lite.login("alice", NEW_PASSWORD), 8)
    assert lite.session_principal(fresh) == Principal("alice", "operator", "account")  # same second as the change


def test_a_password_change_ends_a_session_issued_earlier_in_the_same_second(
    lite: Identities, password_hash: str
) -> None:
    who = put_account(lite, "alice", "operator", password_hash)
    for _attempt in range(3):
        time.sleep(1 - time.time() % 1 + 0.01)  # just after a second starts: the session and the change share it
        token = lite.issue_session(who, 8)
        lite.set_password("alice", NEW_PASSWORD)  # after the session: it must end
        with lite.db.session() as s:
            changed = s.get(UserAccount, "alice").password_changed_at
        if int(changed.timestamp()) == int(claims(token)["iat"]):
            break
    else:
        pytest.skip("every password change crossed into the next second (a loaded machine); this needs one second")
    assert lite.session_principal(token) is None


def test_a_role_change_takes_effect_on_the_next_request(ident: Identities) -> None:
    ident.add_account("alice", "viewer", PASSWORD)
    token = ident.issue_session(ident.login("alice", PASSWORD), 8)
    assert not ident.session_principal(token).can("restore")
    ident.set_role("alice", "admin")
    now = ident.session_principal(token)
    assert now.role == "admin" and now.can("manage users")
    assert ident.account_principal("alice") == Principal("alice", "admin", "cli")
    ident.set_role("alice", "viewer")
    with pytest.raises(Forbidden, match=r"alice \(viewer\) may not restore: that needs the operator role"):
        ident.session_principal(token).require("restore")
    with pytest.raises(InvalidInput):
        ident.set_role("alice", "superuser")
    with pytest.raises(NotFound):
        ident.set_role("nobody", "admin")


# ---------------------------------------------------------------- sessions


@pytest.fixture
def alice(lite: Identities, password_hash: str) -> Principal:
    put_account(lite, "mallory", "viewer", password_hash)
    return put_account(lite, "alice", "operator", password_hash)


def test_a_valid_session_gives_its_principal(lite: Identities, alice: Principal) -> None:
    token = lite.issue_session(alice, 8)
    assert lite.session_principal(token) == Principal("alice", "operator", "account")
    found = claims(token)
    assert found["sub"] == "alice" and found["exp"] - int(found["iat"]) == 8 * 3600
    assert PASSWORD not in token


def _swap(token: str, **changes) -> str:
    """The token's claims changed, keeping its signature."""
    body = base64.urlsafe_b64encode(json.dumps({**claims(token), **changes}).encode()).decode().rstrip("=")
    return f"{body}.{token.split('.')[1]}"


TAMPERS = {
    "signature flipped": lambda t: t[:-1] + ("0" if t[-1] != "0" else "1"),
    "signature upper-case": lambda t: t.split(".")[0] + "." + t.split(".")[1].upper(),
    "signature dropped": lambda t: t.split(".")[0] + ".",
    "body only": lambda t: t.split(".")[0],
    "another account": lambda t: _swap(t, sub="mallory"),
    "longer expiry": lambda t: _swap(t, exp=claims(t)["exp"] + 10 * 24 * 3600),
    "extra dot": lambda t: t + ".x",
    "empty": lambda t: "",
    "dots only": lambda t: ".",
}


@pytest.mark.parametrize("tamper", list(TAMPERS), ids=list(TAMPERS))
def test_a_tampered_session_is_refused(lite: Identities, alice: Principal, tamper: str) -> None:
    token = lite.issue_session(alice, 8)
    bad = TAMPERS[tamper](token)
    assert bad != token
    assert lite.session_principal(bad) is None


def test_no_session_token_is_no_principal(lite: Identities) -> None:
    assert lite.session_principal(None) is None


def test_a_session_with_a_non_ascii_signature_is_refused_not_an_error(lite: Identities, alice: Principal) -> None:
    body = lite.issue_session(alice, 8).split(".")[0]
    assert lite.session_principal(f"{body}.é") is None


def test_an_expired_session_is_refused(lite: Identities, alice: Principal) -> None:
    token = lite.issue_session(alice, -1 / 60)  # expired a minute ago
    assert claims(token)["exp"] < time.time()
    assert lite.session_principal(token) is None


def test_a_session_expires_for_real_after_session_hours(settings: Settings, monkeypatch) -> None:
    ops = ModelOps(dataclasses.replace(settings, session_hours=2.5 / 3600))  # a login lasts 2.5 s
    try:
        ops.add_account("alice", "operator", PASSWORD, actor=SETUP)
        who, token = ops.login("alice", PASSWORD)
        assert ops.session(token) == who
        time.sleep(max(0.0, claims(token)["exp"] - time.time()) + 0.05)
        assert ops.session(token) is None
        assert ops.login("alice", PASSWORD)[0] == who  # the account itself is fine
    finally:
        ops.dispose()


def test_a_session_signed_with_another_secret_is_refused(
    lite: Identities, alice: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSION_SECRET", "first secret, shared by the replicas")
    token = lite.issue_session(alice, 8)
    assert lite.session_principal(token) == alice
    monkeypatch.setenv("SESSION_SECRET", "another deployment's secret")
    assert lite.session_principal(token) is None
    monkeypatch.setenv("SESSION_SECRET", "first secret, shared by the replicas")
    assert lite.session_principal(token) == alice
    assert not (lite.secret_dir / C.SESSION_SECRET_FILE).exists()  # SESSION_SECRET wins over the file


FORGED = {
    "not base64 json": b"\xff\xfe not json",
    "a list": b'["alice"]',
    "no expiry": b'{"sub": "alice", "iat": 0}',
    "unknown account": json.dumps({"sub": "nobody", "iat": 0, "exp": 4_000_000_000}).encode(),
}


@pytest.mark.parametrize("payload", list(FORGED.values()), ids=list(FORGED))
def test_a_correctly_signed_but_unusable_session_is_refused(
    lite: Identities, alice: Principal, monkeypatch: pytest.MonkeyPatch, payload: bytes
) -> None:
    monkeypatch.setenv("SESSION_SECRET", "known to this test")
    good = json.dumps({"sub": "alice", "iat": int(time.time()), "exp": 4_000_000_000}).encode()
    assert lite.session_principal(forge(good, "known to this test")) == alice  # the format is right
    assert lite.session_principal(forge(payload, "known to this test")) is None


def test_the_secret_file_is_private_and_shared_by_replicas(
    lite: Identities, alice: Principal, db: Database, tmp_path: Path
) -> None:
    token = lite.issue_session(alice, 8)
    path = lite.secret_dir / C.SESSION_SECRET_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert re.fullmatch(rb"[0-9a-f]{64}", path.read_bytes().strip())
    assert Identities(db, lite.secret_dir).session_principal(token) == alice  # another replica
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert Identities(db, elsewhere).session_principal(token) is None  # another installation


def test_sessions_and_keys_are_compared_in_constant_time(
    lite: Identities, alice: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    original, seen = hmac.compare_digest, []

    def spy(a, b):
        seen.append((a, b))
        return original(a, b)

    info, key = lite.create_key("ci", "operator", created_by="setup")
    token = lite.issue_session(alice, 8)
    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert lite.session_principal(token[:-1] + ("0" if token[-1] != "0" else "1")) is None
    assert seen and seen[-1][0] == token.split(".")[1].encode(), "the signature check does not use compare_digest"
    wrong = f"{KEY_PREFIX}{info.prefix}_{'A' * 43}"
    assert lite.key_principal(wrong) is None
    stored = next(r for r in rows(lite.db, "api_keys") if r["name"] == "ci")["token_hash"]
    assert seen[-1] == (stored, hashlib.sha256(wrong.encode()).hexdigest()), "the key check does not use it"


# ---------------------------------------------------------------- API keys


def test_only_the_sha256_of_a_key_is_stored_and_its_secret_is_returned_once(
    ident: Identities, any_db: Database
) -> None:
    info, token = ident.create_key("release-bot", "operator", created_by="alice")
    prefix, secret = KEY_FORMAT.fullmatch(token).groups()
    assert (info.name, info.role, info.prefix, info.created_by, info.active) == (
        "release-bot",
        "operator",
        prefix,
        "alice",
        True,
    )
    (row,) = rows(any_db, "api_keys")
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert row["prefix"] == prefix
    assert not any(secret in str(value) for value in row.values()), "the secret is in the row"
    listed = ident.keys()
    assert len(listed) == 1 and secret not in repr(listed) and secret not in repr(info)
    assert not any(secret in str(v) for v in dataclasses.asdict(listed[0]).values())
    with pytest.raises(Conflict):
        ident.create_key("release-bot", "admin", created_by="alice")  # no second copy under the same name
    _, other = ident.create_key("other-bot", "operator", created_by="alice")
    assert other != token and KEY_FORMAT.fullmatch(other)


def test_a_key_gives_its_principal_and_records_when_it_was_last_used(ident: Identities) -> None:
    info, token = ident.create_key("release-bot", "operator", created_by="alice")
    assert info.last_used_at is None
    before = time.time()
    assert ident.key_principal(token) == Principal("release-bot", "operator", "api_key")
    (used,) = ident.keys()
    assert used.last_used_at is not None and before - 1 <= used.last_used_at.timestamp() <= time.time() + 1


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # right prefix, wrong secret
        lambda t: t.replace("dimo_", "dimo_0", 1),  # unknown prefix
        lambda t: t[len("dimo_") :],  # without the marker
        lambda t: "dimo_" + t.split("_", 2)[1],  # the prefix alone
        lambda t: t + " ",
        lambda t: "",
    ],
    ids=["wrong secret", "unknown prefix", "no marker", "prefix only", "trailing space", "empty"],
)
def test_a_wrong_key_is_refused(lite: Identities, mangle) -> None:
    _, token = lite.create_key("release-bot", "admin", created_by="alice")
    assert lite.key_principal(mangle(token)) is None
    assert lite.keys()[0].last_used_at is None  # a refused key is not a use


def test_a_revoked_key_is_refused(ident: Identities) -> None:
    _, token = ident.create_key("old-bot", "admin", created_by="alice")
    assert ident.key_principal(token) is not None
    first = ident.revoke_key("old-bot")
    assert first.revoked_at is not None and not first.active
    assert ident.key_principal(token) is None
    assert ident.revoke_key("old-bot").revoked_at == first.revoked_at  # revoking again keeps the first time
    assert not ident.has_keys()
    with pytest.raises(NotFound):
        ident.revoke_key("never-made")


# ---------------------------------------------------------------- the application layer: marker, audit, API_KEY


def test_authentication_stays_on_once_an_account_has_existed(any_ops: ModelOps, ops_settings: Settings) -> None:
    marker = ops_settings.models_dir / C.AUTHENTICATION_MARKER
    assert any_ops.authentication_configured() is False and not marker.exists()
    assert any_ops.shell_principal("root") == local_principal("root")  # local mode
    any_ops.add_account("alice", "admin", PASSWORD, actor=SETUP)
    assert any_ops.authentication_configured() is True and marker.exists()
    alice = Principal("alice", "admin", "account")
    any_ops.create_api_key("ci", "operator", actor=alice)
    any_ops.change_account("alice", disabled=True, actor=alice)
    any_ops.revoke_api_key("ci", actor=SETUP)
    assert not any_ops.identities.has_accounts() and not any_ops.identities.has_keys()
    assert any_ops.authentication_configured() is True  # never back to local mode
    with pytest.raises(Forbidden, match="no enabled account named 'root'"):
        any_ops.shell_principal("root")
    again = ModelOps(ops_settings)  # another process, later
    try:
        assert again.authentication_configured() is True
    finally:
        again.dispose()


def test_a_key_alone_turns_authentication_on(ops: ModelOps, settings: Settings) -> None:
    ops.create_api_key("ci", "viewer", actor=SETUP)
    assert ops.authentication_configured() is True
    assert (settings.models_dir / C.AUTHENTICATION_MARKER).exists()


@pytest.mark.parametrize("marked", [True, False], ids=["with marker", "without marker"])
def test_an_unreachable_database_keeps_authentication_on_only_with_the_marker(settings: Settings, marked: bool) -> None:
    if marked:
        (settings.models_dir / C.AUTHENTICATION_MARKER).write_text("on\n")
    down = ModelOps(dataclasses.replace(settings, database_url=UNREACHABLE, db_timeout_seconds=1.0))
    try:
        assert down.db is None and down.identities is None
        assert down.authentication_configured() is marked
        assert down.session("anything.at-all") is None
        if marked:
            with pytest.raises(Unavailable):
                down.shell_principal("root")  # refused until the database is back, not local mode
        else:
            assert down.shell_principal("root") == local_principal("root")
    finally:
        down.dispose()


def test_the_marker_is_written_even_for_an_account_made_outside_the_application_layer(
    ops: ModelOps, settings: Settings
) -> None:
    ops.identities.add_account("alice", "admin", PASSWORD)
    assert ops.authentication_configured() is True
    assert (settings.models_dir / C.AUTHENTICATION_MARKER).exists()


def test_login_gives_a_session_the_dashboard_accepts(ops: ModelOps) -> None:
    ops.add_account("alice", "operator", PASSWORD, actor=SETUP)
    who, token = ops.login("alice", PASSWORD)
    assert who == Principal("alice", "operator", "account") and ops.session(token) == who
    assert ops.session(None) is None and ops.session("") is None
    with pytest.raises(Forbidden):
        ops.login("alice", NEW_PASSWORD)


def test_every_identity_change_is_an_access_event_naming_who_made_it(any_ops: ModelOps) -> None:
    any_ops.add_account("root-admin", "admin", PASSWORD, actor=SETUP)
    admin = Principal("root-admin", "admin", "account")
    any_ops.add_account("bob", "viewer", PASSWORD, actor=admin)
    any_ops.change_account("bob", password=NEW_PASSWORD, actor=admin)
    any_ops.change_account("bob", role="operator", actor=admin)
    any_ops.change_account("bob", disabled=True, actor=admin)
    any_ops.change_account("bob", disabled=False, actor=admin)
    _, key = any_ops.create_api_key("ci", "operator", actor=admin)
    any_ops.revoke_api_key("ci", actor=admin)
    assert access_events(any_ops) == [
        ("setup", "account root-admin added with role admin"),
        ("root-admin", "account bob added with role viewer"),
        ("root-admin", "password of bob changed (its sessions end)"),
        ("root-admin", "role of bob set to operator"),
        ("root-admin", "account bob disabled"),
        ("root-admin", "account bob enabled"),
        ("root-admin", "API key ci created with role operator"),
        ("root-admin", "API key ci revoked"),
    ]
    for event in any_ops.events(kinds=["access"]):
        assert PASSWORD not in json.dumps(event.details) + (event.reason or "")
        assert NEW_PASSWORD not in json.dumps(event.details) + (event.reason or "")
        assert key.split("_", 2)[2] not in json.dumps(event.details) + (event.reason or "")
    assert any_ops.events(kinds=["access"])[0].details == {"key": "ci"}


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_an_admin_manages_accounts_and_keys(ops: ModelOps, role: str) -> None:
    ops.add_account("bob", "viewer", PASSWORD, actor=SETUP)
    before = access_events(ops)
    who = Principal("carol", role, "account")
    attempts = [
        lambda: ops.add_account("eve", "admin", PASSWORD, actor=who),
        lambda: ops.change_account("bob", role="admin", actor=who),
        lambda: ops.change_account("bob", password=NEW_PASSWORD, actor=who),
        lambda: ops.change_account("bob", disabled=True, actor=who),
        lambda: ops.accounts(actor=who),
        lambda: ops.api_keys(actor=who),
        lambda: ops.create_api_key("eve-key", "admin", actor=who),
        lambda: ops.revoke_api_key("any", actor=who),
    ]
    for attempt in attempts:
        with pytest.raises(Forbidden, match=rf"carol \({role}\) may not manage (users|API keys)"):
            attempt()
    assert [a.name for a in ops.accounts(actor=SETUP)] == ["bob"]
    assert ops.api_keys(actor=SETUP) == []
    assert ops.login("bob", PASSWORD)[0].role == "viewer"
    assert access_events(ops) == before


def test_the_api_key_setting_acts_as_an_operator(settings: Settings) -> None:
    keyed = ModelOps(dataclasses.replace(settings, api_key="legacy-key-1234", api_key_name="ci"))
    try:
        promote(keyed.registry, seed=1, accuracy=0.80)
        promote(keyed.registry, seed=2, accuracy=0.84)
        assert keyed.authentication_configured() is True  # no account, no named key: API_KEY alone
        who = keyed.key_principal("legacy-key-1234")
        assert who == Principal("ci", "operator", "api_key")
        for near in ("legacy-key-123", "legacy-key-12345", "LEGACY-KEY-1234"):
            assert keyed.key_principal(near) is None
        with pytest.raises(InvalidInput, match="give a reason"):
            keyed.restore("1.0.0", actor=who, reason=None)
        assert keyed.restore("1.0.0", actor=who, reason="regression").restored.version == "1.0.0"
        event = keyed.events(kinds=["restore"])[0]
        assert (event.actor, event.reason) == ("ci", "regression")
        oldest = keyed.backups()[-1].timestamp
        refusals = [
            (lambda: keyed.delete_backup(oldest, actor=who, reason="r"), "delete backups"),
            (lambda: keyed.cleanup(1, actor=who, reason="r"), "clean up backups"),
            (lambda: keyed.approve_candidate("any", actor=who, reason="r"), "approve candidates"),
            (lambda: keyed.place_hold(actor=who, reason="r"), "manage holds"),
            (lambda: keyed.create_api_key("mine", "admin", actor=who), "manage API keys"),
            (lambda: keyed.add_account("mine", "admin", PASSWORD, actor=who), "manage users"),
        ]
        backups_before = [b.timestamp for b in keyed.backups()]
        for attempt, action in refusals:
            with pytest.raises(Forbidden, match=rf"ci \(operator\) may not {action}: that needs the admin role"):
                attempt()
        assert [b.timestamp for b in keyed.backups()] == backups_before
        assert keyed.current().version == "1.0.0"
    finally:
        keyed.dispose()
