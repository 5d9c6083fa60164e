"""One log format for every process: a UTC timestamp, the level, the event; greppable as the guide does."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

# Loggers whose lines describe a training run: they also go to the training log file of a server process.
TRAINING_LOGGERS: tuple[str, ...] = ("core.training_run", "core.jobs")
_HANDLER_NAME = "model-ops"


class UTCFormatter(logging.Formatter):
    """`2026-11-28T02:00:00Z INFO message`: the schedule script's timestamp, then the level."""

    converter = time.gmtime
    default_time_format = "%Y-%m-%dT%H:%M:%SZ"
    default_msec_format = None  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")


def level_from_env() -> int:
    name = (os.environ.get("LOG_LEVEL") or "INFO").strip().upper()
    level = logging.getLevelName(name)
    return level if isinstance(level, int) else logging.INFO


def configure(level: int | None = None) -> None:
    """Log our lines (core, api, dashboard, scripts) to standard output at LOG_LEVEL; once per process."""
    root = logging.getLogger()
    if any(h.get_name() == _HANDLER_NAME for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(UTCFormatter())
    root.addHandler(handler)
    level = level_from_env() if level is None else level
    for name in ("core", "api", "dashboard", "scripts"):
        logging.getLogger(name).setLevel(level)


def add_training_log(path: Path | None) -> None:
    """Also append training-run lines to `path` (the schedule script's training.log), once per process."""
    if path is None:
        return
    path = Path(path)
    for name in TRAINING_LOGGERS:
        logger = logging.getLogger(name)
        if any(getattr(h, "baseFilename", None) == str(path.resolve()) for h in logger.handlers):
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(UTCFormatter())
        logger.addHandler(handler)
