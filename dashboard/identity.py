"""Who is operating this browser session: the logged-in user, else the name typed in the sidebar."""

from __future__ import annotations

import streamlit as st

OPERATOR_KEY = "app_operator"


def login_configured() -> bool:
    """Whether Streamlit's OIDC login is configured (an [auth] section in secrets)."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def logged_in() -> bool:
    try:
        return bool(st.user.get("is_logged_in"))
    except Exception:  # st.user is unavailable outside a session
        return False


def operator() -> str | None:
    """Who is acting: the logged-in user when login is configured, else the name entered in the sidebar."""
    if logged_in():
        name = st.user.get("name") or st.user.get("email")
        if name:
            return str(name)
    name = str(st.session_state.get(OPERATOR_KEY) or "").strip()
    return name or None
