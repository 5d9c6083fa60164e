"""/auth/login and /auth/logout over real HTTP (the API is mounted at /api, so the dashboard's /api/auth/login).

A right password sets an HttpOnly `dimo_session` cookie and redirects; a wrong one shows the same error for every
cause and sets nothing. The cookie is what the dashboard reads (ModelOps.session); the API itself only takes
Bearer keys, so a logged-in browser cannot be made to write through it. API keys over HTTP: revoked keys are
refused, uses are recorded, and API_KEY acts as an operator.
"""

from __future__ import annotations

import dataclasses
import re
import time

import pytest

from api.factory import create_api
from core.config import Settings
from core.identity import SESSION_COOKIE, Principal, local_principal
from core.modelops import get_ops
from tests.api.conftest import AUTH, KEY_NAME, REASON, P, TestClient, error_of, make_key

PASSWORD = "correct horse battery"
SETUP = local_principal("setup")
REFUSED = "wrong name or password, or the account is disabled"
LOGIN = "/auth/login"
LOGOUT = "/auth/logout"


@pytest.fixture(autouse=True)
def _no_session_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SESSION_SECRET", raising=False)


@pytest.fixture
def alice(settings: Settings) -> Principal:
    """An operator account (one Argon2 hash)."""
    get_ops(settings).add_account("alice", "operator", PASSWORD, actor=SETUP)
    return Principal("alice", "operator", "account")


def log_in(client: TestClient, name: str = "alice", password: str = PASSWORD, next_: str = "/", **headers: str):
    return client.post(
        LOGIN, data={"name": name, "password": password, "next": next_}, headers=headers, follow_redirects=False
    )


def set_cookie(response) -> str | None:
    """The response's Set-Cookie for the session cookie, or None."""
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{SESSION_COOKIE}=")]
    assert len(found) <= 1
    return found[0] if found else None


def attributes(header: str) -> dict[str, str]:
    parts = [p.strip() for p in header.split(";")]
    return {k.lower(): v for k, _, v in (p.partition("=") for p in parts[1:])}


def error_text(response) -> str:
    found = re.search(r'<p class="error">(.*?)</p>', response.text)
    assert found, response.text
    return found.group(1)


def test_the_login_form_is_served_without_caching(client: TestClient) -> None:
    r = client.get(LOGIN, params={"next": "/?page=versions"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-store"
    assert 'action="/auth/login"' in r.text and 'type="password"' in r.text
    assert 'name="next" value="/?page=versions"' in r.text
    assert set_cookie(r) is None and 'class="error"' not in r.text


def test_the_right_password_sets_an_httponly_session_cookie_and_redirects(
    client: TestClient, settings: Settings, alice: Principal
) -> None:
    r = log_in(client, next_="/?page=versions")
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/?page=versions"
    header = set_cookie(r)
    assert header is not None
    token = header.split(";")[0].split("=", 1)[1]
    attrs = attributes(header)
    assert "httponly" in attrs
    assert attrs["samesite"].lower() == "lax" and attrs["path"] == "/"
    assert attrs["max-age"] == str(int(settings.session_hours * 3600))
    assert "secure" not in attrs  # plain HTTP here; see the https test
    assert PASSWORD not in header and PASSWORD not in r.text
    # What the dashboard does with the cookie: ModelOps.session gives the account's principal.
    assert client.cookies.get(SESSION_COOKIE) == token
    assert get_ops(settings).session(token) == alice
    assert get_ops(settings).accounts(actor=SETUP)[0].last_login_at is not None


def test_over_https_the_cookie_is_secure(settings: Settings, alice: Principal) -> None:
    with TestClient(create_api(settings), base_url="https://localhost") as secure:
        r = log_in(secure)
    assert r.status_code == 303
    assert "secure" in attributes(set_cookie(r))


@pytest.mark.parametrize(
    "name, password",
    [("alice", "wrong password!"), ("nobody", PASSWORD), ("ALICE", PASSWORD), ("alice", "")],
    ids=["wrong password", "unknown name", "other case", "empty password"],
)
def test_a_refused_login_shows_the_same_error_and_sets_no_cookie(
    client: TestClient, settings: Settings, alice: Principal, name: str, password: str
) -> None:
    r = log_in(client, name, password, next_="/?page=versions")
    if password == "":  # the form requires it: refused before any check
        error_of(r, 422, "invalid_input")
    else:
        assert r.status_code == 401 and r.headers["content-type"].startswith("text/html")
        assert error_text(r) == REFUSED  # the same for every cause: names cannot be enumerated
        assert f'value="{name}"' in r.text and 'name="next" value="/?page=versions"' in r.text
        assert r.headers["cache-control"] == "no-store"
    assert set_cookie(r) is None and SESSION_COOKIE not in client.cookies
    assert get_ops(settings).accounts(actor=SETUP)[0].last_login_at is None


def test_a_disabled_account_is_refused_with_the_same_error_and_its_cookie_stops_working(
    client: TestClient, settings: Settings, alice: Principal
) -> None:
    ops = get_ops(settings)
    assert log_in(client).status_code == 303
    cookie = client.cookies[SESSION_COOKIE]
    assert ops.session(cookie) == alice
    ops.change_account("alice", disabled=True, actor=SETUP)
    assert ops.session(cookie) is None
    client.cookies.clear()
    r = log_in(client)
    assert r.status_code == 401 and error_text(r) == REFUSED and set_cookie(r) is None


def test_a_role_change_applies_to_the_next_request_of_an_existing_cookie(
    client: TestClient, settings: Settings, alice: Principal
) -> None:
    ops = get_ops(settings)
    log_in(client)
    cookie = client.cookies[SESSION_COOKIE]
    assert not ops.session(cookie).can("approve candidates")
    ops.change_account("alice", role="admin", actor=SETUP)
    assert ops.session(cookie) == Principal("alice", "admin", "account")
    ops.change_account("alice", role="viewer", actor=SETUP)
    assert not ops.session(cookie).can("restore")


def test_the_name_is_shown_back_escaped(client: TestClient, alice: Principal) -> None:
    r = log_in(client, '<script>alert("x")</script>', PASSWORD)
    assert r.status_code == 401
    assert "<script>" not in r.text and "&lt;script&gt;" in r.text


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/steal", "//evil.example/", "/\\evil.example", "javascript:alert(1)", "evil", "/\t/evil"],
)
def test_after_login_only_a_path_on_this_server_is_followed(client: TestClient, alice: Principal, target) -> None:
    r = log_in(client, next_=target)
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_a_cross_site_login_is_refused(client: TestClient, settings: Settings, alice: Principal) -> None:
    r = log_in(client, Origin="http://evil.example")
    assert r.status_code == 403 and "own page" in error_text(r)
    assert set_cookie(r) is None and SESSION_COOKIE not in client.cookies
    assert get_ops(settings).accounts(actor=SETUP)[0].last_login_at is None
    assert log_in(client, Origin="http://localhost").status_code == 303  # the server's own page


def test_an_oversized_password_is_refused_before_hashing(client: TestClient, alice: Principal) -> None:
    error_of(log_in(client, "alice", "x" * 1025), 422, "invalid_input")
    error_of(log_in(client, "a" * 65, PASSWORD), 422, "invalid_input")
    assert SESSION_COOKIE not in client.cookies


def test_logout_clears_the_cookie(client: TestClient, alice: Principal) -> None:
    log_in(client)
    assert SESSION_COOKIE in client.cookies
    r = client.get(LOGOUT, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    header = set_cookie(r)
    assert header is not None and attributes(header)["max-age"] == "0" and attributes(header)["path"] == "/"
    assert SESSION_COOKIE not in client.cookies


def test_the_session_cookie_is_not_an_api_credential(client: TestClient, settings: Settings) -> None:
    get_ops(settings).add_account("root-admin", "admin", PASSWORD, actor=SETUP)
    assert log_in(client, "root-admin").status_code == 303
    assert SESSION_COOKIE in client.cookies
    # A page the admin's browser visits cannot write through the API with the cookie: writes need a Bearer key.
    error_of(client.post(f"{P}/models/hold", json={"reason": REASON}), 401, "unauthorized")
    error_of(client.post(f"{P}/train", json={"force_retrain": True}), 401, "unauthorized")


def test_login_while_the_database_is_unreachable_is_503_and_sets_no_cookie(settings: Settings) -> None:
    down = dataclasses.replace(
        settings, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none", db_timeout_seconds=1.0
    )
    with TestClient(create_api(down), base_url="http://localhost") as c:
        r = log_in(c)
    error_of(r, 503, "unavailable")
    assert set_cookie(r) is None


def test_a_session_issued_by_login_expires(settings: Settings) -> None:
    short = dataclasses.replace(settings, session_hours=2.5 / 3600)
    get_ops(short).add_account("alice", "operator", PASSWORD, actor=SETUP)
    with TestClient(create_api(short), base_url="http://localhost") as c:
        r = log_in(c)
        assert attributes(set_cookie(r))["max-age"] == "2"
        cookie = c.cookies[SESSION_COOKIE]
    assert get_ops(short).session(cookie) is not None
    time.sleep(2.6)
    assert get_ops(short).session(cookie) is None


# ---------------------------------------------------------------- API keys over HTTP


def test_a_revoked_key_is_403_and_a_used_key_records_its_last_use(settings: Settings) -> None:
    reader = make_key(settings, "dash-reader", "viewer")
    old = make_key(settings, "old-bot", "admin")
    get_ops(settings).revoke_api_key("old-bot", actor=SETUP)
    with TestClient(create_api(settings, reads_need_key=True), base_url="http://localhost") as exposed:
        assert exposed.get(f"{P}/models/status", headers=reader).status_code == 200
        detail = error_of(exposed.get(f"{P}/models/status", headers=old), 403, "forbidden")
        assert "revoked" in detail
        error_of(exposed.post(f"{P}/models/hold", json={"reason": REASON}, headers=old), 403, "forbidden")
    used = {k.name: k for k in get_ops(settings).api_keys(actor=SETUP)}
    assert used["dash-reader"].last_used_at is not None
    assert used["old-bot"].last_used_at is None  # a refused key is not a use


def test_the_api_key_setting_acts_as_an_operator_over_http(keyed_client: TestClient, two_versions: str) -> None:
    r = keyed_client.post(f"{P}/models/restore", json={"version": "1.0.0"}, headers=AUTH)
    assert "give a reason" in error_of(r, 422, "invalid_input")
    r = keyed_client.post(f"{P}/models/restore", json={"version": "1.0.0", "reason": REASON}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["actor"] == KEY_NAME
    for path in (f"{P}/models/candidates/any/approve", f"{P}/models/hold", f"{P}/models/candidates/any/discard"):
        detail = error_of(keyed_client.post(path, json={"reason": REASON}, headers=AUTH), 403, "forbidden")
        assert f"{KEY_NAME} (operator) may not" in detail and "admin role" in detail


def test_api_key_from_the_environment_is_an_operator(settings: Settings, two_versions: str) -> None:
    from_env = Settings.from_env(
        {"API_KEY": "env-key-5150", "API_KEY_NAME": "deploy"},
        database_url=settings.database_url,
        models_dir=settings.models_dir,
    )
    with TestClient(create_api(from_env), base_url="http://localhost") as c:
        error_of(c.post(f"{P}/models/restore", json={"version": "1.0.0", "reason": REASON}), 401)
        bearer = {"Authorization": "Bearer env-key-5150"}
        r = c.post(f"{P}/models/restore", json={"version": "1.0.0", "reason": REASON}, headers=bearer)
        assert r.status_code == 200 and r.json()["actor"] == "deploy"
        error_of(c.post(f"{P}/models/hold", json={"reason": REASON}, headers=bearer), 403, "forbidden")
