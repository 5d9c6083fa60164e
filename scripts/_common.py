"""Shared CLI plumbing: repo on sys.path, common options, one-line errors and exit codes."""
from __future__ import annotations

import argparse
import getpass
import logging
import sys
import traceback
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.config import Settings  # noqa: E402
from core.db import Database  # noqa: E402
from core.errors import DataError, InvalidInput, RegistryError  # noqa: E402

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: $DATABASE_URL or sqlite:///data/device_intelligence.db)")
    parser.add_argument("--models-dir", help="model directory (default: $MODELS_DIR or models/)")
    parser.add_argument("--verbose", "-v", action="store_true", help="log progress and show tracebacks on errors")


def default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "cli"


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.from_env(database_url=args.database_url, models_dir=args.models_dir)


def open_database(settings: Settings, *, required: bool) -> Database | None:
    """The database, or None (with a warning) when it is unreachable and the command can do without it."""
    try:
        return Database(settings.database_url)
    except DataError as exc:
        if required:
            raise
        print(f"warning: history unavailable ({exc.message}); showing what the models directory holds", file=sys.stderr)
        return None


def run_cli(main: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse, run, and turn errors into one readable line and an exit code (traceback with --verbose)."""
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
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
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        _fail(args, exc, hint=" (run with --verbose for the traceback)")
        return EXIT_FAILED


def _fail(args: argparse.Namespace, exc: BaseException, hint: str = "") -> None:
    if getattr(args, "verbose", False):
        traceback.print_exc()
    message = exc.message if isinstance(exc, RegistryError) else f"{type(exc).__name__}: {exc}"
    print(f"error: {message}{'' if getattr(args, 'verbose', False) else hint}", file=sys.stderr)
