"""Who is operating this browser session: an identity provider's login, a built-in account, or local mode."""

from __future__ import annotations

import getpass
import html
from collections.abc import Mapping
from typing import Any

import streamlit as st

from core.identity import ROLES, SESSION_COOKIE, Principal, local_principal
from core.modelops import ModelOps

SESSION_KEY = "app_session_token"  # a signed session token, when not carried by the login cookie
WHO_KEY = "app_principal"  # who this run acts as (set by the router, read by the pages)


def _secrets() -> Mapping[str, Any]:
    try:
        return st.secrets
    except Exception:  # no secrets file at all
        return {}


def oidc_configured() -> bool:
    """Whether Streamlit's OIDC login is configured (an [auth] section in .streamlit/secrets.toml)."""
    try:
        return "auth" in _secrets()
    except Exception:
        return False


def local_name() -> str:
    try:
        return f"local:{getpass.getuser()}"
    except Exception:
        return "local:operator"


def oidc_role(user: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """The role for an identity provider's user: from a claim (roles_claim), else lists in secrets, else default.

    `[model_ops]` in secrets: `roles_claim = "groups"`, `admins = [...]`, `operators = [...]` (emails or
    subjects), `default_role = "viewer"`.
    """
    claim = config.get("roles_claim")
    if claim and claim in user:
        values = user[claim]
        values = [values] if isinstance(values, str) else list(values or [])
        granted = [r for r in ROLES if r in values]
        if granted:
            return max(granted, key=ROLES.index)
    ids = {str(user.get(k)) for k in ("email", "sub", "preferred_username") if user.get(k)}
    if ids & set(config.get("admins", [])):
        return "admin"
    if ids & set(config.get("operators", [])):
        return "operator"
    role = str(config.get("default_role", "viewer"))
    return role if role in ROLES else "viewer"


def principal(ops: ModelOps) -> Principal | None:
    """Who is acting in this session, or None when someone must log in first."""
    if not ops.authentication_configured(oidc=oidc_configured()):
        return local_principal(local_name())
    try:
        user = st.user
        if oidc_configured() and user.get("is_logged_in"):
            name = str(user.get("email") or user.get("name") or user.get("sub"))
            return Principal(name, oidc_role(user, _secrets().get("model_ops", {})), "oidc")
    except Exception:  # st.user is unavailable outside a session
        pass
    try:
        token = st.context.cookies.get(SESSION_COOKIE)
    except Exception:
        token = None
    if not isinstance(token, str) or not token:
        token = st.session_state.get(SESSION_KEY)
    return ops.session(token if isinstance(token, str) else None)


# A link styled as a secondary button that navigates in THIS tab. st.link_button always opens a new tab: logging
# out there would leave this tab's session signed in (its cookies were read when it connected) and able to act, and
# logging in there would leave this tab on the login screen.
_LINK_STYLE = (
    "display:inline-block;padding:0.25rem 0.75rem;border:1px solid rgba(49,51,63,0.2);border-radius:0.5rem;"
    "color:inherit;text-decoration:none;line-height:1.6;"
)


def same_tab_link(label: str, href: str, *, key: str) -> None:
    """A button-like link to a server route (login form, logout) that replaces this page rather than opening a tab."""
    with st.container(key=key):
        st.markdown(
            f'<a href="{html.escape(href)}" target="_self" style="{_LINK_STYLE}">{html.escape(label)}</a>',
            unsafe_allow_html=True,
        )


def login_screen(ops: ModelOps) -> None:
    """What a visitor sees before logging in: the identity provider's button and/or the account login."""
    st.title("Device Intelligence Model Ops")
    st.markdown("Log in to see and operate the model registry.")
    if oidc_configured():
        st.button("Log in with your identity provider", type="primary", on_click=st.login, icon=":material/login:")
    if ops.database_error or ops.identities is None:
        st.error(
            "The database is not answering, so accounts cannot be checked and nobody can log in with one right "
            "now. Nothing is lost; try again once the database is back (the Status page of the API, "
            "`/api/status`, says what is wrong)."
        )
        st.stop()
    try:
        accounts = ops.identities.has_accounts()
    except Exception:
        accounts = False
    if accounts:
        same_tab_link("Log in with an account", "/api/auth/login?next=/", key="app_login_account")
    if not accounts and not oidc_configured():
        st.warning(
            "Authentication is on (API keys or accounts have existed), but no enabled account can log in: an admin "
            "creates one on the server with `python scripts/manage_users.py add NAME --role admin`."
        )
    st.stop()


def who() -> Principal:
    """This run's principal (the router established it before any page runs)."""
    return st.session_state[WHO_KEY]


def logout_control(who: Principal) -> None:
    """Log out: the identity provider's session, or the account's cookie."""
    if who.via == "oidc":
        st.button("Log out", key="app_logout", on_click=st.logout, icon=":material/logout:")
    elif who.via == "account":
        same_tab_link("Log out", "/api/auth/logout", key="app_logout_account")
