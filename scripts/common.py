"""Shared CLI plumbing: common options, the application layer for them, one-line errors and exit codes."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from core.config import Settings
from core.errors import Forbidden, InvalidInput, RegistryError
from core.identity import Principal, local_principal
from core.modelops import ModelOps, get_ops

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def common_options() -> argparse.ArgumentParser:
    """Options every command takes, before or after its subcommand (a parent parser)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        "--database-url",
        default=argparse.SUPPRESS,
        help="SQLAlchemy URL (default: $DATABASE_URL or sqlite:///data/device_intelligence.db)",
    )
    parser.add_argument(
        "--models-dir", default=argparse.SUPPRESS, help="model directory (default: $MODELS_DIR or models/)"
    )
    parser.add_argument(
        "--verbose", "-v", action="store_true", default=argparse.SUPPRESS, help="log progress, show tracebacks"
    )
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    return parser


def default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "cli"


def option(args: argparse.Namespace, name: str, default: Any = None) -> Any:
    return getattr(args, name, default)


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with --database-url / --models-dir on top."""
    return Settings.from_env(database_url=option(args, "database_url"), models_dir=option(args, "models_dir"))


def ops_from(args: argparse.Namespace) -> ModelOps:
    """The application layer for these settings; says so once when the database is unreachable."""
    ops = get_ops(settings_from(args))
    if ops.database_error:
        print(f"warning: the database is unreachable ({ops.database_error})", file=sys.stderr)
    return ops


KEY_ENV = "MODEL_OPS_API_KEY"


def principal(args: argparse.Namespace, ops: ModelOps, *, training: bool = False) -> Principal:
    """Who this command acts as: MODEL_OPS_API_KEY's key; else the account named like the shell's user
    (peer authentication: the host's shell is trusted as that user; for `training`, a user without an account
    trains as host:<user>, an operator); in local mode (no logins configured), --actor or the shell's user."""
    token = os.environ.get(KEY_ENV)
    if token:
        found = ops.key_principal(token.strip())
        if found is None:
            raise Forbidden(f"{KEY_ENV} is not a valid API key (or it was revoked)")
        return found
    shell_user = default_actor()
    actor = option(args, "actor") or shell_user
    if not ops.authentication_configured():
        return local_principal(actor)
    if actor != shell_user:
        raise Forbidden(
            f"--actor names who acts only in local mode; with logins configured this command acts as your "
            f"account ({shell_user}) or as {KEY_ENV}"
        )
    return ops.training_principal(shell_user) if training else ops.shell_principal(shell_user)


def emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    """JSON with --json, else the text."""
    print(json.dumps(payload, indent=2, default=str) if option(args, "json") else text)


def run_cli(
    main: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser, argv: list[str] | None = None
) -> int:
    """Parse, run, and turn errors into one readable line and an exit code (traceback with --verbose)."""
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if option(args, "verbose") else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    try:
        return main(args)
    except InvalidInput as exc:
        _fail(args, exc)
        return EXIT_USAGE
    except RegistryError as exc:
        _fail(args, exc)
        return EXIT_FAILED
    except BrokenPipeError:
        # `... | head` closed the pipe: stop quietly, as other Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        _fail(args, exc, hint=" (run with --verbose for the traceback)")
        return EXIT_FAILED


def _fail(args: argparse.Namespace, exc: BaseException, hint: str = "") -> None:
    verbose = option(args, "verbose", False)
    if verbose:
        traceback.print_exc()
    message = exc.message if isinstance(exc, RegistryError) else f"{type(exc).__name__}: {exc}"
    print(f"error: {message}{'' if verbose else hint}", file=sys.stderr)


def iso_date(text: str) -> dt.date:
    """An argparse type: a YYYY-MM-DD date (a bad one is a usage error, exit 2)."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD") from None
