"""scripts/manage_users.py as an admin runs it: through main() in-process, and as real processes with real stdin.

The command acts as the account named like the shell's user (LOGNAME here), MODEL_OPS_API_KEY's key, or local
mode before any account exists (how the first admin is made). Every change is an access event naming who made it;
passwords are read from stdin or the prompt and never shown; a key's secret is printed once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from core.config import Settings
from core.errors import Forbidden
from core.identity import Principal
from core.modelops import ModelOps, reset_ops
from scripts import common as cli
from scripts import manage_users as users
from tests.conftest import fresh_postgres

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "ci-admin"
PASSWORD = "correct horse battery"
NEW_PASSWORD = "tr0ub4dor & 3 staple"
KEY = re.compile(r"dimo_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")
ENV_OUT = ("MODEL_OPS_API_KEY", "API_KEY", "API_KEY_NAME", "SESSION_SECRET", "DATABASE_URL", "MODELS_DIR")


@pytest.fixture(autouse=True)
def _shell(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """The shell user is ADMIN; no key or database in the environment; a fresh application layer per test.

    (tmp_path first: pytest names its temporary root after the real user.)"""
    for name in ENV_OUT:
        monkeypatch.delenv(name, raising=False)
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(name, ADMIN)
    reset_ops()
    yield
    reset_ops()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        fresh_postgres(url).dispose()
        return dataclasses.replace(settings, database_url=url)
    return settings


@pytest.fixture
def looker(settings: Settings) -> Iterator[ModelOps]:
    """A separate application layer to look at what the commands did."""
    ops = ModelOps(settings)
    yield ops
    ops.dispose()


def manage(settings: Settings, *args: str, stdin: str = "") -> tuple[int, str, str]:
    """Run manage_users through its main(), as `python scripts/manage_users.py` does: (exit code, out, err)."""
    argv = ["--database-url", settings.database_url, "--models-dir", str(settings.models_dir), *args]
    streams = sys.stdin, sys.stdout, sys.stderr
    out, err = io.StringIO(), io.StringIO()
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(stdin), out, err
    try:
        code = cli.run_cli(users.main, users.build_parser(), argv)
    except SystemExit as usage:  # argparse
        code = usage.code
    finally:
        sys.stdin, sys.stdout, sys.stderr = streams
        reset_ops()
    return code, out.getvalue(), err.getvalue()


def run(settings: Settings, *args: str, stdin: str = "", env: dict[str, str] | None = None):
    """The script as a real process."""
    cmd = [sys.executable, str(ROOT / "scripts" / "manage_users.py"), "--database-url", settings.database_url]
    cmd += ["--models-dir", str(settings.models_dir), *args]
    environ = {k: v for k, v in os.environ.items() if k not in ENV_OUT} | (env or {})
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120, cwd=ROOT, env=environ)


def access(settings: Settings) -> list[tuple[str, str]]:
    """(actor, reason) of every access event, oldest first."""
    ops = ModelOps(settings)
    try:
        return [(e.actor, e.reason or "") for e in reversed(ops.events(kinds=["access"]))]
    finally:
        ops.dispose()


def first_admin(settings: Settings) -> None:
    code, out, err = manage(settings, "add", ADMIN, "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, err
    assert out.strip() == f"added {ADMIN} (admin)"


@pytest.fixture
def admin(settings: Settings) -> str:
    """ADMIN made in local mode: from now on commands act as that account."""
    first_admin(settings)
    return ADMIN


# ---------------------------------------------------------------- as real processes


def test_the_first_admin_is_made_in_local_mode_with_the_password_from_stdin(settings: Settings) -> None:
    made = run(settings, "add", ADMIN, "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == f"added {ADMIN} (admin)" and PASSWORD not in made.stdout + made.stderr
    ops = ModelOps(settings)
    try:
        with ops.db.engine.connect() as conn:
            row = dict(conn.execute(text("SELECT * FROM user_accounts")).one()._mapping)
        assert row["password_hash"].startswith("$argon2id$")
        assert not any(PASSWORD in str(v) for v in row.values())
        assert ops.login(ADMIN, PASSWORD)[0] == Principal(ADMIN, "admin", "account")
        assert ops.authentication_configured()
    finally:
        ops.dispose()
    # Now logins exist: a shell user without an account is refused, not served in local mode.
    stranger = run(settings, "list", env={"LOGNAME": "stranger", "USER": "stranger"})
    assert stranger.returncode == 1
    assert stranger.stderr.strip().startswith("error: there is no enabled account named 'stranger'")
    assert "Traceback" not in stranger.stderr
    assert access(settings) == [(ADMIN, f"account {ADMIN} added with role admin")]


def test_an_operator_key_is_refused_as_a_real_process(settings: Settings, admin: str, looker: ModelOps) -> None:
    _, operator = looker.create_api_key("release-bot", "operator", actor=Principal(ADMIN, "admin", "account"))
    before = access(settings)
    out = run(settings, "add", "eve", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n",
              env={"MODEL_OPS_API_KEY": operator})  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.strip() == "error: release-bot (operator) may not manage users: that needs the admin role"
    assert [a.name for a in looker.accounts(actor=Principal(ADMIN, "admin", "account"))] == [ADMIN]
    assert access(settings) == before


# ---------------------------------------------------------------- through main()


def test_the_whole_life_of_an_account_and_a_key(any_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    s = any_settings
    first_admin(s)
    prompts: list[str] = []

    def typed(prompt: str = "") -> str:
        prompts.append(prompt)
        return PASSWORD

    monkeypatch.setattr("getpass.getpass", typed)
    code, out, err = manage(s, "add", "bob")  # no --password-stdin: asked twice at the prompt
    assert (code, out.strip()) == (0, "added bob (viewer)"), err
    assert prompts == ["password: ", "again: "]

    code, out, _ = manage(s, "list")
    assert code == 0
    lines = dict(line.split(None, 1) for line in out.strip().splitlines())
    assert lines[ADMIN].split()[:2] == ["admin", "enabled"] and lines["bob"].split()[:2] == ["viewer", "enabled"]
    assert "last login never" in lines["bob"]
    assert "$argon2" not in out and PASSWORD not in out
    code, out, _ = manage(s, "--json", "list")
    assert json.loads(out) == [
        {"name": "bob", "role": "viewer", "disabled": False},
        {"name": ADMIN, "role": "admin", "disabled": False},
    ]

    code, out, _ = manage(s, "passwd", "bob", "--password-stdin", stdin=NEW_PASSWORD + "\n")
    assert (code, out.strip()) == (0, "password of bob changed; its sessions have ended")
    code, out, _ = manage(s, "role", "bob", "operator")
    assert (code, out.strip()) == (0, "bob is now operator")
    code, out, _ = manage(s, "disable", "bob")
    assert (code, out.strip()) == (0, "bob disabled")
    ops = ModelOps(s)
    try:
        with pytest.raises(Forbidden):
            ops.login("bob", NEW_PASSWORD)
        assert ops.identities.account_principal("bob") is None
    finally:
        ops.dispose()
    assert "DISABLED" in next(line for line in manage(s, "list")[1].splitlines() if line.startswith("bob"))
    code, out, _ = manage(s, "enable", "bob")
    assert (code, out.strip()) == (0, "bob enabled")

    code, out, _ = manage(s, "key-create", "ci", "--role", "operator")
    assert code == 0
    tokens = KEY.findall(out)
    assert len(tokens) == 1 and out.count(tokens[0]) == 1  # printed once
    token = tokens[0]
    prefix, secret = token.split("_", 2)[1:]
    for listing in (manage(s, "keys")[1], manage(s, "--json", "keys")[1]):
        assert prefix in listing and secret not in listing and token not in listing
    assert json.loads(manage(s, "--json", "keys")[1]) == [
        {"name": "ci", "role": "operator", "active": True, "prefix": prefix}
    ]
    ops = ModelOps(s)
    try:
        assert ops.key_principal(token) == Principal("ci", "operator", "api_key")
        assert ops.login("bob", NEW_PASSWORD)[0] == Principal("bob", "operator", "account")
        with pytest.raises(Forbidden):
            ops.login("bob", PASSWORD)
        with ops.db.engine.connect() as conn:
            stored = conn.execute(text("SELECT token_hash FROM api_keys")).scalar_one()
        assert stored == hashlib.sha256(token.encode()).hexdigest()
    finally:
        ops.dispose()
    code, out, _ = manage(s, "key-revoke", "ci")
    assert (code, out.strip()) == (0, "revoked ci")
    assert "REVOKED" in manage(s, "keys")[1]
    ops = ModelOps(s)
    try:
        assert ops.key_principal(token) is None
    finally:
        ops.dispose()

    assert access(s) == [
        (ADMIN, f"account {ADMIN} added with role admin"),
        (ADMIN, "account bob added with role viewer"),
        (ADMIN, "password of bob changed (its sessions end)"),
        (ADMIN, "role of bob set to operator"),
        (ADMIN, "account bob disabled"),
        (ADMIN, "account bob enabled"),
        (ADMIN, "API key ci created with role operator"),
        (ADMIN, "API key ci revoked"),
    ]


def test_a_mistyped_second_password_changes_nothing(
    settings: Settings, admin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter([PASSWORD, PASSWORD + "!"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    before = access(settings)
    code, _, err = manage(settings, "add", "bob")
    assert code == 2 and err.strip() == "error: the two passwords differ"
    assert json.loads(manage(settings, "--json", "list")[1]) == [{"name": ADMIN, "role": "admin", "disabled": False}]
    assert access(settings) == before


@pytest.mark.parametrize("password", ["short", "", "nine-char"])
def test_a_too_short_password_is_refused(settings: Settings, admin: str, password: str) -> None:
    before = access(settings)
    code, _, err = manage(settings, "add", "bob", "--password-stdin", stdin=password + "\n")
    assert code == 2 and err.strip() == "error: a password has at least 10 characters"
    code, _, err = manage(settings, "passwd", ADMIN, "--password-stdin", stdin=password + "\n")
    assert code == 2 and "at least 10 characters" in err
    assert json.loads(manage(settings, "--json", "list")[1]) == [{"name": ADMIN, "role": "admin", "disabled": False}]
    assert access(settings) == before


def test_unknown_names_and_roles_are_clear_errors(settings: Settings, admin: str) -> None:
    code, _, err = manage(settings, "role", "nobody", "operator")
    assert code == 1 and "no account named 'nobody'" in err
    code, _, err = manage(settings, "key-revoke", "nothing")
    assert code == 1 and "no API key named 'nothing'" in err
    code, _, err = manage(settings, "role", ADMIN, "root")
    assert code == 2 and "invalid choice: 'root'" in err


COMMANDS = [
    ("add", "eve", "--role", "admin", "--password-stdin"),
    ("passwd", ADMIN, "--password-stdin"),
    ("role", ADMIN, "viewer"),
    ("disable", ADMIN),
    ("enable", ADMIN),
    ("list",),
    ("key-create", "mine", "--role", "admin"),
    ("key-revoke", "release-bot"),
    ("keys",),
]


@pytest.fixture
def operator_key(settings: Settings, admin: str, looker: ModelOps) -> str:
    _, token = looker.create_api_key("release-bot", "operator", actor=Principal(ADMIN, "admin", "account"))
    return token


def state(settings: Settings) -> tuple:
    ops = ModelOps(settings)
    try:
        who = Principal("inspector", "admin", "local")
        return (
            [dataclasses.astuple(a) for a in ops.accounts(actor=who)],
            [dataclasses.replace(k, last_used_at=None) for k in ops.api_keys(actor=who)],  # the refused use is one
            access(settings),
        )
    finally:
        ops.dispose()


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_an_operator_key_may_not_manage_users_or_keys(
    settings: Settings, operator_key: str, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    monkeypatch.setenv("MODEL_OPS_API_KEY", operator_key)
    before = state(settings)
    code, out, err = manage(settings, *command, stdin=NEW_PASSWORD + "\n")
    what = "API keys" if command[0] in ("key-create", "key-revoke", "keys") else "users"
    assert code == 1 and out == ""
    assert err.strip() == f"error: release-bot (operator) may not manage {what}: that needs the admin role"
    assert state(settings) == before


def test_the_api_key_setting_is_an_operator_and_may_not_manage_users(
    settings: Settings, admin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_KEY", "legacy-key-5150")
    monkeypatch.setenv("API_KEY_NAME", "deploy")
    monkeypatch.setenv("MODEL_OPS_API_KEY", "legacy-key-5150")
    code, _, err = manage(settings, "list")
    assert code == 1 and "deploy (operator) may not manage users: that needs the admin role" in err


@pytest.mark.parametrize(
    "token, message",
    [("dimo_00000000_" + "A" * 43, "not a valid API key"), ("nonsense", "not a valid API key")],
)
def test_an_invalid_or_revoked_key_in_the_environment_is_refused(
    settings: Settings, operator_key: str, monkeypatch: pytest.MonkeyPatch, token: str, message: str
) -> None:
    monkeypatch.setenv("MODEL_OPS_API_KEY", token)
    code, _, err = manage(settings, "list")
    assert code == 1 and message in err


def test_a_revoked_admin_key_in_the_environment_is_refused(
    settings: Settings, admin: str, looker: ModelOps, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = Principal(ADMIN, "admin", "account")
    _, token = looker.create_api_key("admin-bot", "admin", actor=me)
    monkeypatch.setenv("MODEL_OPS_API_KEY", token)
    assert manage(settings, "list")[0] == 0  # an admin key manages users
    looker.revoke_api_key("admin-bot", actor=me)
    code, _, err = manage(settings, "list")
    assert code == 1 and "MODEL_OPS_API_KEY is not a valid API key (or it was revoked)" in err


@pytest.mark.parametrize("change", [("role", ADMIN, "operator"), ("disable", ADMIN)], ids=["demoted", "disabled"])
def test_a_shell_account_that_is_no_longer_an_enabled_admin_is_refused(
    settings: Settings, admin: str, change: tuple[str, ...]
) -> None:
    assert manage(settings, *change)[0] == 0  # the admin changes itself
    code, _, err = manage(settings, "list")
    assert code == 1
    expected = "may not manage users" if change[0] == "role" else f"no enabled account named '{ADMIN}'"
    assert expected in err
