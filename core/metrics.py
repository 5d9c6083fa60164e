"""Metrics for Prometheus: this process's prediction counters, and families built from ModelOps at scrape time."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.alerting import AlertRecord
from core.alerts import Alert
from core.errors import IntegrityError, RegistryError

if TYPE_CHECKING:
    from core.drift import DriftReport
    from core.modelops import ModelOps
    from core.realised import VersionFigures

log = logging.getLogger(__name__)
T = TypeVar("T")

# The text format every Prometheus version reads (the library's newer default, version=1.0.0, adds nothing we use).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# A `_created` series per counter doubles what Prometheus stores and no panel reads it.
disable_created_metrics()
NO_VERSION = "none"  # the model_version label of a request served while no model is live
# Predictions take milliseconds (p50 ~10 ms through HTTP); the upper buckets catch a stalled database.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
RUN_OUTCOMES: tuple[str, ...] = ("promoted", "candidate", "rejected", "failed", "skipped")
ALERT_LEVELS: tuple[str, ...] = ("amber", "red")


class ServingMetrics:
    """Prediction requests, errors and latency answered by this process's API (each process counts its own)."""

    def __init__(self) -> None:
        self.requests = Counter(
            "model_ops_prediction_requests",
            "POST predict requests answered by this process, by the model version that served them",
            ["model_version"],
            registry=None,
        )
        self.errors = Counter(
            "model_ops_prediction_errors",
            "POST predict requests answered with an HTTP error status, by model version and status",
            ["model_version", "status"],
            registry=None,
        )
        self.latency = Histogram(
            "model_ops_prediction_latency_seconds",
            "Time from a POST predict request arriving to its answer being sent, every status",
            ["model_version"],
            buckets=LATENCY_BUCKETS,
            registry=None,
        )

    def observe(self, model_version: str, status: int, seconds: float) -> None:
        self.requests.labels(model_version).inc()
        if status >= 400:
            self.errors.labels(model_version, str(status)).inc()
        self.latency.labels(model_version).observe(seconds)

    def collectors(self) -> tuple[Collector, ...]:
        return (self.requests, self.errors, self.latency)


SERVING = ServingMetrics()
# The server process's own CPU, memory, file descriptors and garbage collection.
PROCESS: tuple[Collector, ...] = (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR)


def firing_alerts(ops: ModelOps) -> Sequence[Alert | AlertRecord]:
    """The alert engine's episodes firing now (neither acknowledged nor silenced), as the server's background
    evaluator left them; without the database the engine cannot be read, so status() says why instead."""
    try:
        return ops.alerts().firing
    except RegistryError:
        return ops.status().alerts


@dataclass(frozen=True)
class SlowFigures:
    """Drift and the live version's realised performance: too slow for a scrape, so computed in the background."""

    live_version: str  # the live version they were computed for
    drift: DriftReport | None
    realised: VersionFigures | None
    computed_at: float  # time.time() when the refresh finished
    seconds: float


class SlowRefresher:
    """Keeps the last SlowFigures and recomputes them in a background thread at most every `interval` seconds."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._figures: SlowFigures | None = None
        self._thread: threading.Thread | None = None

    def get(self, ops: ModelOps) -> SlowFigures | None:
        """The last figures for the live version (None before the first refresh finished, or after the live version
        changed); starts a refresh when they are older than the interval or were computed for another version."""
        live = live_version_label(ops)
        with self._lock:
            figures = self._figures
            if figures is not None and figures.live_version != live:
                figures = None  # a promotion or restore: the old version's drift is not the live model's
            stale = figures is None or time.time() - figures.computed_at >= self.interval
            if stale and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(
                    target=self._background, args=(ops,), name="metrics-refresh", daemon=True
                )
                self._thread.start()
        return figures

    def wait(self, timeout: float) -> SlowFigures | None:
        """Wait for a refresh in flight (tests, the check script); the figures then."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self._figures

    def _background(self, ops: ModelOps) -> None:
        try:
            self.refresh(ops)
        except Exception as exc:  # e.g. the ModelOps was disposed meanwhile: the next scrape tries again
            log.warning("metrics: refresh failed: %s: %s", type(exc).__name__, exc)

    def refresh(self, ops: ModelOps) -> SlowFigures:
        """Compute drift and realised performance now, in this thread."""
        started = time.monotonic()
        live = live_version_label(ops)
        drift = _try("drift", ops.drift)
        report = _try("realised performance", ops.realised_performance) if live != NO_VERSION else None
        figures = SlowFigures(
            live, drift, report.version(live) if report else None, time.time(), time.monotonic() - started
        )
        with self._lock:
            self._figures = figures
        log.info("metrics: drift and realised performance refreshed in %.1f s", figures.seconds)
        return figures


def _try(what: str, compute: Callable[[], T]) -> T | None:
    """compute(), or None (logged) when the figures cannot be had now: no model, no telemetry, no database."""
    try:
        return compute()
    except RegistryError as exc:
        log.info("metrics: %s unavailable: %s", what, exc.message)
        return None


def live_version_label(ops: ModelOps) -> str:
    """The live version as a label value, NO_VERSION when there is none or its metadata cannot be read."""
    try:
        live = ops.current()
    except IntegrityError:
        return NO_VERSION
    return live.version if live is not None else NO_VERSION


def _gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


class ModelOpsCollector(Collector):
    """Families read from ModelOps on every scrape: the live model, training runs, alerts, and the slow figures."""

    def __init__(self, ops: ModelOps, slow: SlowRefresher) -> None:
        self.ops = ops
        self.slow = slow

    def collect(self) -> Iterator[Metric]:
        up = _gauge("model_ops_database_up", "1 when the database answers, 0 while it is unreachable")
        up.add_metric([], 0.0 if self.ops.database_error else 1.0)
        yield up
        for section in (self._live, self._runs, self._alerts, self._slow):
            try:
                yield from section()
            except RegistryError as exc:  # the database or a file is unavailable: the other sections still answer
                log.warning("metrics: %s skipped: %s", section.__name__.strip("_"), exc.message)

    def _live(self) -> list[Metric]:
        live = self.ops.current()
        if live is None:
            return []
        info = _gauge("model_ops_live_model_info", "The live model version (value 1)", ["model_version", "data_source"])
        info.add_metric([live.version, live.data_source], 1.0)
        holdout = _gauge(
            "model_ops_holdout_metric", "The live version's metrics on its holdout", ["model_version", "metric"]
        )
        for metric, value in sorted(live.performance.items()):
            if isinstance(value, int | float) and math.isfinite(value):
                holdout.add_metric([live.version, metric], float(value))
        return [info, holdout]

    def _runs(self) -> list[Metric]:
        summary = self.ops.run_summary()
        runs = CounterMetricFamily(
            "model_ops_training_runs",
            "Training runs that ended, by outcome, from the database (runs made by every process count)",
            labels=["outcome"],
        )
        for outcome in sorted(set(RUN_OUTCOMES) | set(summary.counts) - {"running"}):
            runs.add_metric([outcome], float(summary.counts.get(outcome, 0)))
        running = _gauge("model_ops_training_runs_running", "Training runs in flight")
        running.add_metric([], float(summary.counts.get("running", 0)))
        found: list[Metric] = [runs, running]
        if summary.last_success_at is not None:
            at = summary.last_success_at.timestamp()
            last = _gauge(
                "model_ops_last_successful_training_timestamp_seconds",
                "When the newest run that passed the gate (promoted or kept as a candidate) finished, Unix time",
            )
            last.add_metric([], at)
            since = _gauge("model_ops_seconds_since_last_successful_training", "Seconds since that run finished")
            since.add_metric([], max(0.0, time.time() - at))
            found += [last, since]
        return found

    def _alerts(self) -> list[Metric]:
        alerts = firing_alerts(self.ops)
        by_level = _gauge("model_ops_alerts_firing", "Alerts firing now, by level", ["level"])
        for level in ALERT_LEVELS:
            by_level.add_metric([level], float(sum(a.level == level for a in alerts)))
        by_kind = _gauge("model_ops_alerts_firing_by_kind", "Alerts firing now, by level and kind", ["level", "kind"])
        for (level, kind), count in sorted(_count(alerts).items()):
            by_kind.add_metric([level, kind], float(count))
        return [by_level, by_kind]

    def _slow(self) -> list[Metric]:
        figures = self.slow.get(self.ops)
        if figures is None:
            return []
        found: list[Metric] = []
        if figures.drift is not None:
            found += _drift_families(figures.drift)
        if figures.realised is not None:
            found += _realised_families(figures.realised)
        refreshed = _gauge(
            "model_ops_slow_figures_timestamp_seconds", "When drift and realised performance were last computed"
        )
        refreshed.add_metric([], figures.computed_at)
        return [*found, refreshed]


def _count(alerts: Iterable[Alert | AlertRecord]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for alert in alerts:
        counts[(alert.level, alert.kind)] = counts.get((alert.level, alert.kind), 0) + 1
    return counts


def _drift_families(report: DriftReport) -> list[Metric]:
    labels = ["model_version", "metric"]
    psi = _gauge("model_ops_drift_psi", "PSI of each raw metric: recent window vs the training window", labels)
    ks = _gauge("model_ops_drift_ks_statistic", "Two-sample KS statistic of each raw metric", labels)
    significant = _gauge("model_ops_drift_significant", "1 when a metric's PSI is in the significant band", labels)
    for score in report.metrics:
        psi.add_metric([report.version, score.name], score.psi)
        ks.add_metric([report.version, score.name], score.ks_statistic)
        significant.add_metric([report.version, score.name], float(score.band == "significant"))
    found: list[Metric] = [psi, ks, significant]
    if report.score is not None:
        score_psi = _gauge("model_ops_drift_score_psi", "PSI of the model's failure probability", ["model_version"])
        score_psi.add_metric([report.version], report.score.psi)
        found.append(score_psi)
    window = _gauge("model_ops_drift_window_days", "Length of the recent window drift is measured on")
    window.add_metric([], float(report.window_days))
    return [*found, window]


def _realised_families(figures: VersionFigures) -> list[Metric]:
    total, version = figures.total, figures.model_version
    realised = _gauge(
        "model_ops_realised_metric",
        "The live version's realised metrics: logged predictions joined with recorded failures once the horizon "
        "passed (only once there are enough outcomes to mean something)",
        ["model_version", "metric"],
    )
    if total.enough:
        for metric in ("precision", "recall", "f1_score", "roc_auc"):
            value = total.get(metric)
            if value is not None and math.isfinite(value):
                realised.add_metric([version, metric], float(value))
    outcomes = _gauge(
        "model_ops_realised_outcomes", "Logged device-days of the live version with a known outcome", ["model_version"]
    )
    outcomes.add_metric([version], float(total.outcomes))
    awaiting = _gauge(
        "model_ops_realised_awaiting",
        "Logged device-days of the live version whose horizon has not passed yet",
        ["model_version"],
    )
    awaiting.add_metric([version], float(figures.awaiting))
    return [realised, outcomes, awaiting]


def build_registry(ops: ModelOps, slow: SlowRefresher) -> CollectorRegistry:
    """What a scrape of this process shows: the serving counters, the ModelOps families and the process itself."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in (*SERVING.collectors(), *PROCESS, ModelOpsCollector(ops, slow)):
        registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of `registry`."""
    return generate_latest(registry)
