"""Who may act: roles, the principal behind a request, built-in accounts, API keys and signed sessions."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from core import constants as C
from core.db import ApiKey, Database, UserAccount, utcnow
from core.errors import Conflict, Forbidden, InvalidInput, NotFound

ROLES: tuple[str, ...] = ("viewer", "operator", "admin")
# The least role each action needs; everything not listed here is a read (viewer).
NEEDS: dict[str, str] = {
    "train": "operator",
    "restore": "operator",
    "backup": "operator",
    "acknowledge": "operator",
    "send test notifications": "operator",
    "silence alerts": "operator",
    "delete backups": "admin",
    "clean up backups": "admin",
    "approve candidates": "admin",
    "discard candidates": "admin",
    "manage holds": "admin",
    "restore an unrecorded set": "admin",
    "manage users": "admin",
    "manage API keys": "admin",
}
KEY_PREFIX = "dimo_"
SESSION_COOKIE = "dimo_session"
MIN_PASSWORD_LENGTH = 10
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-")


@dataclass(frozen=True)
class Principal:
    """Who is acting, as established by a login, an API key, the host's shell, or local mode."""

    name: str
    role: str
    via: str  # account | oidc | api_key | cli | host | local | rule

    def can(self, action: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(NEEDS.get(action, "viewer"))

    def require(self, action: str) -> Principal:
        """Forbidden unless this principal's role allows `action`."""
        if not self.can(action):
            needed = NEEDS.get(action, "viewer")
            raise Forbidden(f"{self.name} ({self.role}) may not {action}: that needs the {needed} role")
        return self

    @property
    def actor(self) -> str:
        """How History names it."""
        return self.name


def local_principal(name: str) -> Principal:
    """No authentication configured: the server listens on loopback only, and its one user may do everything."""
    return Principal(name, "admin", "local")


RULE_PREFIX = "rule:"


def rule_principal(rule: str) -> Principal:
    """An automatic rule acting on its own (no person behind it): named `rule:<rule>` in History, operator role."""
    return Principal(f"{RULE_PREFIX}{rule}", "operator", "rule")


def is_rule(actor: str | None) -> bool:
    """Whether History's actor name is an automatic rule rather than a person."""
    return bool(actor) and str(actor).startswith(RULE_PREFIX)


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return role


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 64 or not set(name) <= NAME_CHARS:
        raise InvalidInput("a name is 1 to 64 letters, digits, dots, dashes, underscores or @")
    return name


@dataclass(frozen=True)
class Account:
    """A built-in account, as listed (never its password)."""

    name: str
    role: str
    disabled: bool
    created_at: dt.datetime
    last_login_at: dt.datetime | None


@dataclass(frozen=True)
class KeyInfo:
    """An API key, as listed (its secret is shown once, when it is made, and only its hash is kept)."""

    name: str
    role: str
    prefix: str
    created_by: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _hasher():  # argon2 is imported where passwords are handled only
    from argon2 import PasswordHasher

    return PasswordHasher()


def _account(row: UserAccount) -> Account:
    return Account(row.name, row.role, row.disabled, row.created_at, row.last_login_at)


def _key(row: ApiKey) -> KeyInfo:
    return KeyInfo(row.name, row.role, row.prefix, row.created_by, row.created_at, row.last_used_at, row.revoked_at)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Identities:
    """Accounts (Argon2 hashes), API keys (SHA-256 of 256-bit secrets) and session tokens, in the database."""

    def __init__(self, db: Database, secret_dir: Path) -> None:
        self.db = db
        self.secret_dir = Path(secret_dir)

    # ------------------------------------------------------------ accounts
    def accounts(self) -> list[Account]:
        with self.db.session() as s:
            return [_account(r) for r in s.scalars(select(UserAccount).order_by(UserAccount.name))]

    def has_accounts(self) -> bool:
        with self.db.session() as s:
            return s.scalar(select(UserAccount.name).where(UserAccount.disabled.is_(False)).limit(1)) is not None

    def add_account(self, name: str, role: str, password: str) -> Account:
        name, role = check_name(name), check_role(role)
        digest = _hasher().hash(_check_password(password))
        with self.db.session() as s:
            if s.get(UserAccount, name) is not None:
                raise Conflict(f"an account named {name} exists already; change it with passwd or role")
            row = UserAccount(name=name, role=role, password_hash=digest, disabled=False, created_at=utcnow())
            row.password_changed_at = row.created_at
            s.add(row)
            s.flush()
            return _account(row)

    def set_password(self, name: str, password: str) -> None:
        digest = _hasher().hash(_check_password(password))
        with self.db.session() as s:
            row = self._row(s, name)
            row.password_hash, row.password_changed_at = digest, utcnow()  # sessions made before end here

    def set_role(self, name: str, role: str) -> Account:
        with self.db.session() as s:
            row = self._row(s, name)
            row.role = check_role(role)
            return _account(row)

    def set_disabled(self, name: str, disabled: bool) -> Account:
        with self.db.session() as s:
            row = self._row(s, name)
            row.disabled = disabled
            return _account(row)

    def login(self, name: str, password: str) -> Principal:
        """The account's principal, or Forbidden (the same answer for an unknown name and a wrong password)."""
        from argon2.exceptions import VerificationError

        refused = Forbidden("wrong name or password, or the account is disabled")
        with self.db.session() as s:
            row = s.get(UserAccount, (name or "").strip())
            if row is None:
                _hasher().hash("spend the same time as a real check")
                raise refused
            try:
                _hasher().verify(row.password_hash, password or "")
            except VerificationError:
                raise refused from None
            if row.disabled:
                raise refused
            row.last_login_at = utcnow()
            return Principal(row.name, row.role, "account")

    def account_principal(self, name: str) -> Principal | None:
        """The enabled account of this name (the host's shell user, for the CLI), or None."""
        with self.db.session() as s:
            row = s.get(UserAccount, name)
            return Principal(row.name, row.role, "cli") if row is not None and not row.disabled else None

    @staticmethod
    def _row(s, name: str) -> UserAccount:
        row = s.get(UserAccount, name)
        if row is None:
            raise NotFound(f"no account named {name!r}; list them with `manage_users.py list`")
        return row

    # ------------------------------------------------------------ sessions
    def _secret(self) -> bytes:
        """The key sessions are signed with: SESSION_SECRET, else made once beside the registry (shared by replicas)."""
        configured = os.environ.get("SESSION_SECRET")
        if configured:
            return configured.encode("utf-8")
        path = self.secret_dir / C.SESSION_SECRET_FILE
        try:
            return path.read_bytes().strip()
        except FileNotFoundError:
            pass
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes().strip()
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_hex(32).encode("ascii"))
            fh.flush()
            os.fsync(fh.fileno())
        return path.read_bytes().strip()

    def issue_session(self, principal: Principal, hours: float) -> str:
        """A signed session token for a logged-in account, valid `hours`."""
        now = utcnow()
        claims = {"sub": principal.name, "iat": round(now.timestamp(), 6), "exp": int(now.timestamp() + hours * 3600)}
        body = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).decode().rstrip("=")
        signature = hmac.new(self._secret(), body.encode(), hashlib.sha256).hexdigest()
        return f"{body}.{signature}"

    def session_principal(self, token: str | None) -> Principal | None:
        """The account behind a session token, or None: bad signature, expired, or ended by a password change."""
        if not token or token.count(".") != 1:
            return None
        body, signature = token.split(".")
        expected = hmac.new(self._secret(), body.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            return None
        try:
            claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        if not isinstance(claims, dict) or claims.get("exp", 0) < utcnow().timestamp():
            return None
        with self.db.session() as s:
            row = s.get(UserAccount, str(claims.get("sub")))
            if row is None or row.disabled:
                return None
            issued = claims.get("iat", 0)
            if not isinstance(issued, int | float) or (
                row.password_changed_at and issued < row.password_changed_at.timestamp()
            ):
                return None
            return Principal(row.name, row.role, "account")

    # ------------------------------------------------------------ API keys
    def keys(self) -> list[KeyInfo]:
        with self.db.session() as s:
            return [_key(r) for r in s.scalars(select(ApiKey).order_by(ApiKey.created_at))]

    def has_keys(self) -> bool:
        with self.db.session() as s:
            return s.scalar(select(ApiKey.name).where(ApiKey.revoked_at.is_(None)).limit(1)) is not None

    def create_key(self, name: str, role: str, created_by: str) -> tuple[KeyInfo, str]:
        """A new key; its secret is returned once and never stored (only its SHA-256)."""
        name, role = check_name(name), check_role(role)
        secret = secrets.token_urlsafe(32)
        prefix = secrets.token_hex(4)
        token = f"{KEY_PREFIX}{prefix}_{secret}"
        with self.db.session() as s:
            if s.scalar(select(ApiKey.name).where(ApiKey.name == name)) is not None:
                raise Conflict(f"an API key named {name} exists already; revoke it or pick another name")
            row = ApiKey(name=name, role=role, prefix=prefix, token_hash=_token_hash(token), created_by=created_by)
            row.created_at = utcnow()
            s.add(row)
            s.flush()
            return _key(row), token

    def revoke_key(self, name: str) -> KeyInfo:
        with self.db.session() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.name == name))
            if row is None:
                raise NotFound(f"no API key named {name!r}; list them with `manage_users.py keys`")
            row.revoked_at = row.revoked_at or utcnow()
            return _key(row)

    def key_principal(self, token: str) -> Principal | None:
        """The principal of a presented key (compared in constant time), or None; records when it was last used."""
        if not token.startswith(KEY_PREFIX) or token.count("_") < 2:
            return None
        prefix = token[len(KEY_PREFIX) :].split("_", 1)[0]
        with self.db.session() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
            if row is None or not hmac.compare_digest(row.token_hash, _token_hash(token)) or row.revoked_at:
                return None
            now = utcnow()
            if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
                row.last_used_at = now  # at most once a minute: no write per request
            return Principal(row.name, row.role, "api_key")


def _check_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH or "\x00" in password:
        raise InvalidInput(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    return password
