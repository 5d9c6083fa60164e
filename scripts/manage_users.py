#!/usr/bin/env python3
"""Dashboard accounts and API keys: add, passwd, role, disable, enable, list, key-create, key-revoke, keys.

Passwords are read from the terminal (twice) or, with --password-stdin, from one line of standard input;
they are stored as Argon2 hashes and never shown. A key's secret is printed once, when it is made.
Runs as an admin: the account named like the shell's user, MODEL_OPS_API_KEY, or local mode (no logins yet,
which is how the first admin is made).
"""

from __future__ import annotations

import argparse
import getpass
import sys

from core import serialize as S
from core.identity import ROLES
from core.modelops import ModelOps
from scripts import common as cli


def build_parser() -> argparse.ArgumentParser:
    common = cli.common_options()
    p = argparse.ArgumentParser(
        description=__doc__, parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, parents=[common])

    add = command("add", "add an account")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="viewer")
    add.add_argument("--password-stdin", action="store_true", help="read the password from one line of stdin")
    passwd = command("passwd", "set an account's password (its sessions end)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true")
    role = command("role", "change an account's role")
    role.add_argument("name")
    role.add_argument("role", choices=ROLES)
    for verb in ("disable", "enable"):
        command(verb, f"{verb} an account").add_argument("name")
    command("list", "accounts, their roles and last logins")
    create = command("key-create", "create a named API key (its secret is printed once)")
    create.add_argument("name")
    create.add_argument("--role", choices=ROLES, default="operator")
    command("key-revoke", "revoke an API key").add_argument("name")
    command("keys", "API keys, their roles and when they were last used")
    return p


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise cli.InvalidInput("the two passwords differ")
    return first


def main(args: argparse.Namespace) -> int:
    ops: ModelOps = cli.ops_from(args)
    who = cli.principal(args, ops)
    cmd = args.command
    if cmd == "add":
        made = ops.add_account(args.name, args.role, _password(args), actor=who)
        cli.emit(args, {"name": made.name, "role": made.role}, f"added {made.name} ({made.role})")
    elif cmd == "passwd":
        ops.change_account(args.name, password=_password(args), actor=who)
        cli.emit(args, {"name": args.name}, f"password of {args.name} changed; its sessions have ended")
    elif cmd == "role":
        ops.change_account(args.name, role=args.role, actor=who)
        cli.emit(args, {"name": args.name, "role": args.role}, f"{args.name} is now {args.role}")
    elif cmd in ("disable", "enable"):
        ops.change_account(args.name, disabled=cmd == "disable", actor=who)
        cli.emit(args, {"name": args.name, "disabled": cmd == "disable"}, f"{args.name} {cmd}d")
    elif cmd == "list":
        accounts = ops.accounts(actor=who)
        rows = [
            f"{a.name:<24} {a.role:<9} {'DISABLED' if a.disabled else 'enabled':<9} "
            f"last login {S.iso(a.last_login_at) or 'never'}"
            for a in accounts
        ]
        payload = [{"name": a.name, "role": a.role, "disabled": a.disabled} for a in accounts]
        cli.emit(args, payload, "\n".join(rows) or "no accounts: the dashboard runs in local mode")
    elif cmd == "key-create":
        info, token = ops.create_api_key(args.name, args.role, actor=who)
        text = f"API key {info.name} ({info.role}); send it as `Authorization: Bearer <key>`. Shown once:\n{token}"
        cli.emit(args, {"name": info.name, "role": info.role, "key": token}, text)
    elif cmd == "key-revoke":
        info = ops.revoke_api_key(args.name, actor=who)
        cli.emit(args, {"name": info.name, "revoked_at": S.iso(info.revoked_at)}, f"revoked {info.name}")
    elif cmd == "keys":
        keys = ops.api_keys(actor=who)
        rows = [
            f"{k.name:<24} {k.role:<9} {'active' if k.active else 'REVOKED':<8} {k.prefix}  "
            f"made by {k.created_by}, last used {S.iso(k.last_used_at) or 'never'}"
            for k in keys
        ]
        payload = [{"name": k.name, "role": k.role, "active": k.active, "prefix": k.prefix} for k in keys]
        cli.emit(args, payload, "\n".join(rows) or "no API keys")
    return cli.EXIT_OK


def run() -> int:
    return cli.run_cli(main, build_parser())


if __name__ == "__main__":
    sys.exit(run())
