"""Logging in through the browser: built-in accounts (form, wrong password, expiry, log out), a viewer trying each
write, and the OIDC flow against a real identity provider process on loopback (oidc-provider-mock)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from core.identity import SESSION_COOKIE, Principal
from tests.e2e import harness as H

pytestmark = pytest.mark.e2e

PASSWORDS = {"olga": "olga-e2e-password", "vera": "vera-e2e-password"}
LEAD = {"sub": "ops-lead", "email": "lead@example.com", "groups": ["operator"]}


def prepare_server(server: H.Server) -> None:
    """An operator and a viewer account (the first account turns logins on for good)."""
    server.world.add_account("olga", "operator", PASSWORDS["olga"])
    server.world.add_account("vera", "viewer", PASSWORDS["vera"])


def prepare_oidc(server: H.Server) -> None:
    """No accounts: Streamlit's st.login against a provider process; roles from the `groups` claim, else viewer."""
    provider = H.OidcProvider(server.world.root, users=[LEAD])
    server.companions.append(provider)
    server.secrets = H.oidc_secrets(server, provider, {"roles_claim": "groups", "default_role": "viewer"})


E2E_SERVERS = {"oidc_server": prepare_oidc}


@pytest.fixture(scope="module")
def oidc_server(module_server: Any) -> H.Server:
    return module_server("oidc_server")


def main(page: Any) -> Any:
    return page.locator('[data-testid="stMain"]')


def test_wrong_password_then_login_then_logout(server: H.Server, page: Any) -> None:
    H.open_app(page, server.base)
    H.login_screen(page).wait_for(timeout=H.TIMEOUT_MS)
    expect(H.sidebar(page).locator('[data-testid="stSidebarNav"]')).to_have_count(0)  # no page before a login
    with page.expect_navigation():
        page.get_by_role("link", name="Log in with an account").click()

    H.submit_login_form(page, "olga", "not-her-password")
    expect(page.locator(".error")).to_contain_text("wrong name or password")
    expect(page.locator("#name")).to_have_value("olga")  # the form again, the password never echoed
    assert "not-her-password" not in page.content()

    H.submit_login_form(page, "olga", PASSWORDS["olga"])
    H.wait_idle(page)
    expect(H.sidebar(page)).to_contain_text("Signed in as olga · role operator")
    cookie = next(c for c in page.context.cookies() if c["name"] == SESSION_COOKIE)
    assert cookie["httpOnly"] and PASSWORDS["olga"] not in cookie["value"]

    # A new tab (a new Streamlit session) is signed in too: the cookie, not the tab, carries the login.
    other = page.context.new_page()
    H.open_app(other, server.base)
    expect(H.sidebar(other)).to_contain_text("Signed in as olga")
    other.close()

    with page.expect_navigation():
        H.sidebar(page).get_by_role("link", name="Log out").click()
    H.wait_idle(page)
    H.login_screen(page).wait_for(timeout=H.TIMEOUT_MS)
    assert not [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    H.open_app(page, server.base)
    H.login_screen(page).wait_for(timeout=H.TIMEOUT_MS)


def test_an_expired_or_forged_session_shows_the_login_screen(server: H.Server, page: Any) -> None:
    olga = Principal("olga", "operator", "account")
    with server.world.ops() as ops:
        valid = ops.identities.issue_session(olga, 1)
        expired = ops.identities.issue_session(olga, -1)  # its expiry an hour ago
    forged = valid[:-1] + ("0" if valid[-1] != "0" else "1")
    for token, signed_in in ((expired, False), (forged, False), (valid, True)):
        page.context.clear_cookies()
        page.context.add_cookies([{"name": SESSION_COOKIE, "value": token, "url": server.base}])
        H.open_app(page, server.base)
        if signed_in:  # the control: the same cookie path does sign in with a good token
            expect(H.sidebar(page)).to_contain_text("Signed in as olga")
        else:
            H.login_screen(page).wait_for(timeout=H.TIMEOUT_MS)
            expect(page.get_by_role("link", name="Log in with an account")).to_be_visible()


def test_a_viewer_sees_every_write_disabled_with_the_reason(server: H.Server, page: Any) -> None:
    with server.world.registry() as registry:
        before = (registry.current().version, len(registry.backups()))
    H.login(page, server.base, "vera", PASSWORDS["vera"])
    expect(H.sidebar(page)).to_contain_text("Signed in as vera · role viewer")
    nav = page.locator('[data-testid="stSidebarNav"]')
    expect(nav).not_to_contain_text("Users and keys")  # admins only

    H.open_page(page, "Retrain")
    expect(page.get_by_role("button", name="Start training")).to_be_disabled()
    expect(main(page)).to_contain_text("Your role (viewer) may not train: that needs the operator role.")

    H.open_page(page, "Backups")
    expect(main(page)).to_contain_text("Restore, delete, clean-up and backup are disabled: Your role (viewer)")
    expect(page.get_by_role("button", name="Back up now")).to_be_disabled()
    page.locator('[data-testid="stDataFrame"], [data-testid="stTable"]').first.wait_for(timeout=H.TIMEOUT_MS)
    for key in ("bk_restore", "bk_delete"):
        buttons = page.locator(f".st-key-{key} button")
        if buttons.count():  # shown once a backup is selected; disabled whenever shown
            expect(buttons.first).to_be_disabled()

    H.open_page(page, "Candidates")
    expect(page.locator(".st-key-cd_hold button, .st-key-cd_release button").first).to_be_disabled()
    expect(main(page)).to_contain_text("Your role (viewer) may not manage holds: that needs the admin role.")

    # The API behind the same server refuses the write from this browser too.
    response = page.request.post(f"{server.base}/api/predictions/models/hold", data={"reason": "viewer tries"})
    assert response.status in (401, 403), response.status
    with server.world.registry() as registry:
        assert (registry.current().version, len(registry.backups())) == before


def test_oidc_login_maps_roles_from_a_claim(oidc_server: H.Server, page: Any) -> None:
    H.open_app(page, oidc_server.base)
    H.login_screen(page).wait_for(timeout=H.TIMEOUT_MS)
    expect(page.get_by_role("link", name="Log in with an account")).to_have_count(0)  # no accounts here

    # The provider's authorization page; the predefined user carries groups=["operator"].
    with page.expect_navigation(url=re.compile(r"http://127\.0\.0\.1:\d+/oauth2/authorize.*")):
        page.get_by_role("button", name="Log in with your identity provider").click()
    with page.expect_navigation(url=re.compile(re.escape(oidc_server.base) + r"/.*")):
        page.get_by_role("button", name=LEAD["sub"]).click()
    H.wait_idle(page)
    expect(H.sidebar(page)).to_contain_text(f"Signed in as {LEAD['email']} · role operator", timeout=H.TIMEOUT_MS)
    H.open_page(page, "Retrain")
    expect(page.get_by_role("button", name="Start training")).to_be_enabled()

    # Log out ends the provider's session too (its end-session page), then comes back to the login screen.
    with page.expect_navigation(url=re.compile(r"http://127\.0\.0\.1:\d+/oauth2/end_session.*")):
        H.sidebar(page).get_by_role("button", name="Log out").click()
    with page.expect_navigation(url=re.compile(re.escape(oidc_server.base) + r"/.*")):
        page.get_by_role("button", name="End session").click()
    H.wait_idle(page)
    H.login_screen(page).wait_for(timeout=H.TIMEOUT_MS)

    # Someone the mapping does not name gets the default role: viewer.
    with page.expect_navigation(url=re.compile(r"http://127\.0\.0\.1:\d+/oauth2/authorize.*")):
        page.get_by_role("button", name="Log in with your identity provider").click()
    page.locator('input[name="sub"]').first.fill("guest")
    with page.expect_navigation(url=re.compile(re.escape(oidc_server.base) + r"/.*")):
        page.get_by_role("button", name="Authorize").click()
    H.wait_idle(page)
    expect(H.sidebar(page)).to_contain_text("role viewer", timeout=H.TIMEOUT_MS)
    H.open_page(page, "Retrain")
    expect(page.get_by_role("button", name="Start training")).to_be_disabled()
