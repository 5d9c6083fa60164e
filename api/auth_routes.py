"""Built-in account login for the dashboard: a form, a signed HttpOnly session cookie, and logout."""

from __future__ import annotations

import html
from typing import Annotated
from urllib.parse import urlparse

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from api import deps
from api.security import _hostname
from core.errors import Forbidden
from core.identity import SESSION_COOKIE

router = APIRouter(prefix="/auth", include_in_schema=False)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Log in - Device Intelligence Model Ops</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: sans-serif; background: #f3f5f8; color: #1f2937; display: flex; justify-content: center; }}
form {{ background: #fff; margin-top: 12vh; padding: 2rem 2.5rem; border-radius: 12px; width: 22rem;
        box-shadow: 0 2px 12px rgba(0,0,0,.08); }}
h1 {{ font-size: 1.3rem; margin: 0 0 1.2rem; }}
label {{ display: block; margin: .8rem 0 .3rem; font-size: .9rem; }}
input {{ width: 100%; box-sizing: border-box; padding: .55rem; border: 1px solid #cbd5e1; border-radius: 6px; }}
button {{ margin-top: 1.3rem; width: 100%; padding: .6rem; background: #2563eb; color: #fff; border: 0;
          border-radius: 6px; font-size: 1rem; cursor: pointer; }}
.error {{ color: #b91c1c; margin-top: .8rem; font-size: .9rem; }}
</style></head>
<body><form method="post" action="{action}">
<h1>Device Intelligence Model Ops</h1>
<label for="name">Name</label><input id="name" name="name" autocomplete="username" required value="{name}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<input type="hidden" name="next" value="{next}">
<button type="submit">Log in</button>
{error}
</form></body></html>"""


def _safe_next(target: str | None) -> str:
    """Only a path on this server (never another site) to go back to after logging in."""
    parsed = urlparse(target or "/")
    if parsed.scheme or parsed.netloc or not (parsed.path or "/").startswith("/") or "\\" in (target or ""):
        return "/"
    return target or "/"


def _page(request: Request, *, next_: str, name: str = "", error: str = "", status: int = 200) -> HTMLResponse:
    action = f"{request.scope.get('root_path', '')}/auth/login"
    shown = f'<p class="error">{html.escape(error)}</p>' if error else ""
    body = PAGE.format(action=action, name=html.escape(name), next=html.escape(next_), error=shown)
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


@router.get("/login")
async def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return _page(request, next_=_safe_next(next))


@router.post("/login", response_model=None)
async def login(
    request: Request,
    name: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form()] = "/",
) -> HTMLResponse | RedirectResponse:
    """Check the password (Argon2); on success set the signed session cookie and go back to the dashboard."""
    target = _safe_next(next)
    origin = request.headers.get("origin")
    if origin and origin != "null" and _hostname(origin) != _hostname(request.headers.get("host", "")):
        return _page(request, next_=target, name=name, error="log in from this server's own page", status=403)
    ops = deps.ops(request)
    try:
        principal, token = await run_in_threadpool(ops.login, name, password)
    except Forbidden as exc:
        return _page(request, next_=target, name=name, error=exc.message, status=401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(ops.settings.session_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.get("/logout")
async def logout() -> RedirectResponse:
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
