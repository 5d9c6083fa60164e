"""A world where every metric family has data, and helpers to read a scrape: shared by the metrics tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from core.identity import local_principal
from core.modelops import ModelOps
from tests.drift_world import DriftWorld, build_drift_world

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def build_metrics_world(root: Path) -> DriftWorld:
    """The drift world (a fleet whose firmware changed, a promoted model), with the fleet scored 30 to 9 days ago:
    those predictions' 7-day horizons have passed, so the live version has realised figures."""
    world = build_drift_world(root)
    ops = ModelOps(world.settings)
    try:
        today = world.midnight.date()
        ops.score_fleet(
            actor=local_principal("test"), start=today - dt.timedelta(days=30), end=today - dt.timedelta(days=9)
        )
    finally:
        ops.dispose()
    return world


def parse(body: bytes | str) -> Samples:
    """Every sample of a Prometheus text exposition, keyed by (sample name, labels); raises on bad syntax."""
    text = body.decode() if isinstance(body, bytes) else body
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def labelled(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every series of one sample name: labels -> value."""
    return {labels: v for (n, labels), v in samples.items() if n == name}
