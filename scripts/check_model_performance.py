#!/usr/bin/env python3
"""Cron's alert check: asks the server's alert engine what is firing (not acknowledged, not silenced).

Exit 0: nothing firing; 1: something is firing (one "ALERT: ..." line each); 2: the server cannot be reached or
does not answer with alerts. --json prints the firing, acknowledged and silenced alerts as JSON instead.
MODEL_API_URL (or --url) names the server (default http://localhost:8028); MODEL_OPS_API_KEY, when set, is sent
as the bearer token (a server reachable beyond loopback wants a key for reads too).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

EXIT_OK, EXIT_FIRING, EXIT_UNREACHABLE = 0, 1, 2
DEFAULT_URL = "http://localhost:8028"


def fetch_alerts(base: str, *, key: str | None, timeout: float) -> dict[str, Any]:
    """GET /api/predictions/alerts; ConnectionError with one readable line when it fails."""
    url = f"{base.rstrip('/')}/api/predictions/alerts"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise ConnectionError(f"{url} answered {exc.code}: {exc.read()[:300].decode(errors='replace')}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectionError(f"cannot reach {url} ({reason}); is the service running?") from None
    except ValueError:
        raise ConnectionError(f"{url} did not answer with JSON; is MODEL_API_URL the model service?") from None
    if not isinstance(body, dict) or not isinstance(body.get("alerts"), list):
        raise ConnectionError(f"{url} did not answer with alerts; is MODEL_API_URL the model service?")
    return body


def line(alert: dict[str, Any]) -> str:
    since = str(alert.get("fired_at") or "")[:16]
    where = f"{alert['level']}, firing since {since} UTC, alert {alert['id']}"
    return f"ALERT: {alert['rule']} ({where}): {alert['message']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("MODEL_API_URL") or DEFAULT_URL, help="the model service")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the server")
    args = parser.parse_args(argv)
    try:
        body = fetch_alerts(args.url, key=os.environ.get("MODEL_OPS_API_KEY"), timeout=args.timeout)
    except ConnectionError as exc:
        if args.json:
            print(json.dumps({"ok": False, "reachable": False, "error": str(exc)}))
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    by_state: dict[str, list[dict[str, Any]]] = {"firing": [], "acknowledged": [], "silenced": []}
    for alert in body["alerts"]:
        by_state.setdefault(str(alert.get("state")), []).append(alert)
    firing = by_state["firing"]
    if args.json:
        print(json.dumps({"ok": not firing, "reachable": True, **by_state, "evaluated_at": body.get("evaluated_at")}))
    elif firing:
        print("\n".join(line(a) for a in firing))
    else:
        print(
            f"OK: no alert firing ({len(by_state['acknowledged'])} acknowledged, {len(by_state['silenced'])} silenced)"
        )
    return EXIT_FIRING if firing else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
