"""How numbers, sizes and times read on the pages."""

from __future__ import annotations

import datetime as dt
from typing import Any


def human_age(delta: dt.timedelta | None) -> str:
    """A duration as '42 s', '5 min', '3.2 h' or '4.1 d'."""
    if delta is None:
        return "unknown"
    seconds = max(delta.total_seconds(), 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def human_bytes(n: int | None) -> str:
    """Bytes as B, KiB, MiB or GiB."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def fmt_time(value: dt.datetime | None) -> str:
    """A UTC time as 'YYYY-MM-DD HH:MM UTC'."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "unknown"


def flat_pairs(pairs: dict[str, tuple[Any, Any]]) -> dict[str, tuple[Any, Any]]:
    """Side-by-side values with mappings spread over one row per key ("date_range · start"), so the part that
    differs is a short cell of its own instead of the end of a long one."""
    flat: dict[str, tuple[Any, Any]] = {}
    for key, (x, y) in pairs.items():
        if isinstance(x, dict) or isinstance(y, dict):
            xs, ys = (x if isinstance(x, dict) else {}), (y if isinstance(y, dict) else {})
            for sub in dict.fromkeys([*xs, *ys]):
                flat[f"{key} · {sub}"] = (xs.get(sub), ys.get(sub))
        else:
            flat[key] = (x, y)
    return flat


# MetricChange.verdict as the pages show it.
VERDICT_LABEL = {"better": "▲ better", "worse": "▼ worse", "same": "= same", "n/a": "– n/a"}
