"""Simulated device fleets: realistic telemetry, degradation before failures, repairs and drift."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals
from sqlalchemy import Connection, delete, func, insert, select

from core.constants import MAX_INTERVAL_HOURS, METRIC_NAMES, METRIC_RANGES, METRIC_UNITS
from core.daily_aggregates import RefreshSummary, forget_devices, refresh_daily_aggregates
from core.db import Database, Device, DeviceFailure, HealthMetric, allow_bulk_statements
from core.errors import Conflict, InvalidInput

NS_PER_SECOND = 1_000_000_000
NS_PER_HOUR = 3600 * NS_PER_SECOND
NS_PER_DAY = 24 * NS_PER_HOUR
INSERT_BATCH = 100_000
# Fleets larger than this are simulated, and written, this many devices at a time (each part with its own random
# stream, seeded from the fleet's seed and the part's number), so memory stays flat: 10,000 devices x 180 days is
# 79M readings, ~15 GB as one frame. A fleet of at most this many devices is one part, drawn exactly as before.
SIM_PART_DEVICES = 500
# Rows per COPY buffer on PostgreSQL.
COPY_ROWS = 1_000_000
# SQLAlchemy's SQLite DATETIME storage format: range filters compare these strings.
SQLITE_TS_FORMAT_LEN = 26
OLD_FIRMWARE = "1.9.4"
NEW_FIRMWARE = "2.0.1"


@dataclass(frozen=True)
class DeviceType:
    """Baselines of one device type: metric means, noise, seasonality and failure hazard."""

    name: str
    share: float
    hazard_per_day: float
    battery_powered: bool
    response_time: float
    error_rate: float
    signal_strength: float
    usage_frequency: float
    temperature: float
    temp_amplitude: float
    humidity: float
    data_transfer_rate: float
    restarts_per_hour: float
    drops_per_hour: float


DEVICE_TYPES: tuple[DeviceType, ...] = (
    DeviceType("sensor", 0.30, 0.011, True, 120.0, 0.010, -68.0, 12.0, 22.0, 2.0, 45.0, 6.0, 0.002, 0.04),
    DeviceType("camera", 0.20, 0.013, False, 240.0, 0.015, -58.0, 40.0, 28.0, 6.0, 55.0, 2400.0, 0.003, 0.06),
    DeviceType("gateway", 0.10, 0.009, False, 60.0, 0.005, -52.0, 220.0, 38.0, 3.0, 40.0, 900.0, 0.001, 0.02),
    DeviceType("thermostat", 0.20, 0.010, True, 150.0, 0.008, -64.0, 6.0, 21.0, 1.5, 42.0, 2.0, 0.002, 0.03),
    DeviceType("lock", 0.20, 0.014, True, 180.0, 0.012, -72.0, 3.0, 18.0, 4.0, 50.0, 1.0, 0.002, 0.08),
)

# Degradation at full intensity: (kind of effect, size). "abs" adds, "rel" scales the baseline, "rate" adds events/hour.
DEGRADATION: dict[str, tuple[str, float]] = {
    "response_time": ("rel", 1.8),
    "error_rate": ("abs", 0.15),
    "battery_level": ("abs", -45.0),
    "signal_strength": ("abs", -25.0),
    "usage_frequency": ("rel", -0.6),
    "temperature": ("abs", 15.0),
    "humidity": ("abs", 20.0),
    "data_transfer_rate": ("rel", -0.7),
    "restart_count": ("rate", 0.12),
    "connection_drops": ("rate", 1.2),
}

# Failure kinds and the metrics each one mostly shows before it happens.
FAILURE_KINDS: dict[str, tuple[str, ...]] = {
    "hardware": ("response_time", "error_rate", "restart_count"),
    "power": ("battery_level", "restart_count", "response_time"),
    "network": ("signal_strength", "connection_drops", "data_transfer_rate"),
    "overheat": ("temperature", "response_time", "humidity"),
    "firmware_crash": ("restart_count", "error_rate", "usage_frequency"),
}
SUDDEN_FAILURE_SHARE = 0.1
FALSE_ALARMS_PER_DEVICE_PER_120_DAYS = 0.25
RAMP_DAYS = (7.0, 14.0)
SUDDEN_RAMP_DAYS = (0.1, 1.0)
RAMP_EXPONENT = (0.5, 1.2)
FAILURE_SEVERITY = (0.8, 1.6)
ALARM_SEVERITY = (0.5, 1.3)
ALARM_RAMP_DAYS = (2.0, 10.0)
METRIC_SHARE = (0.4, 1.0)
EXTRA_METRIC_PROBABILITY = 0.25
MIN_DAYS_BETWEEN_FAILURES = 5.0
# The new firmware also retries, caches and restarts quietly: it hides this share of these metrics' degradation
# before a failure, so a model trained on the old firmware misses failures after the update. (It moves no
# baseline: the baseline shifts of the drift are in _metric_grid.) Never a metric drawn by Poisson before the
# last draw: that would change the random stream, and so the data before the update too.
FIRMWARE_MASKED_DEGRADATION: dict[str, float] = {
    "response_time": 0.9,
    "error_rate": 0.9,
    "signal_strength": 0.9,
    "temperature": 0.9,
    "data_transfer_rate": 0.9,
    "connection_drops": 0.9,  # drawn last: a Poisson draw's rate changes how many random numbers it consumes
}


@dataclass(frozen=True)
class SimulationSummary:
    """What a simulation wrote."""

    devices: int
    metric_rows: int
    failures: int
    start: dt.datetime
    end: dt.datetime
    seconds: float


@dataclass(frozen=True)
class _Episode:
    """One degradation episode on one device: a failure at `peak` or a recovery after it."""

    device: int
    peak_ns: int
    ramp_ns: int
    recover_ns: int
    exponent: float
    effects: dict[str, float]


def _validate(devices: int, days: int, interval_hours: float) -> None:
    """Refuse parameters that cannot describe a fleet."""
    if isinstance(devices, bool) or not isinstance(devices, (int, np.integer)) or devices < 1:
        raise InvalidInput(f"devices must be an integer of at least 1, got {devices!r}")
    if isinstance(days, bool) or not isinstance(days, (int, np.integer)) or days < 1:
        raise InvalidInput(f"days must be an integer of at least 1, got {days!r}")
    if not isinstance(interval_hours, (int, float, np.number)) or not 0 < float(interval_hours) <= MAX_INTERVAL_HOURS:
        raise InvalidInput(f"interval_hours must be > 0 and <= {MAX_INTERVAL_HOURS}, got {interval_hours!r}")


def _utc(value: dt.datetime | None) -> dt.datetime:
    """An aware UTC datetime (naive values are taken as UTC); now when None."""
    if value is None:
        return dt.datetime.now(dt.UTC)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _ns(value: dt.datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime."""
    return int(pd.Timestamp(value).value)


def _days_ns(days: float | np.ndarray) -> int | np.ndarray:
    """A duration in days as whole-second nanoseconds."""
    seconds = np.floor(np.asarray(days, dtype=float) * 86400).astype(np.int64) * NS_PER_SECOND
    return int(seconds) if seconds.ndim == 0 else seconds


def _device_id(index: int) -> str:
    """The id of the simulated device at a 0-based position in its fleet."""
    return f"sim-{index + 1:04d}"


def _fleet(rng: np.random.Generator, devices: int, start_ns: int, first: int = 0) -> pd.DataFrame:
    """Device identities (numbered from `first`), types and per-device baselines."""
    shares = np.array([t.share for t in DEVICE_TYPES])
    type_idx = rng.choice(len(DEVICE_TYPES), size=devices, p=shares / shares.sum())
    age_days = rng.uniform(30, 1500, size=devices)
    installed = pd.to_datetime(start_ns - _days_ns(age_days), utc=True)
    names = [DEVICE_TYPES[t].name for t in type_idx]
    return pd.DataFrame(
        {
            "id": [_device_id(first + i) for i in range(devices)],
            "name": [f"{n.title()} {first + i + 1:04d}" for i, n in enumerate(names)],
            "device_type": names,
            "installed_at": installed,
            "type_idx": type_idx,
            "age_days": age_days,
            # Some devices are simply more fragile than others of their type.
            "frailty": rng.lognormal(0.0, 0.5, size=devices),
        }
    )


def _failure_times(
    rng: np.random.Generator, fleet: pd.DataFrame, start_ns: int, end_ns: int
) -> list[tuple[int, int, int]]:
    """(device, failed_at_ns, repaired_at_ns) from a renewal process with a type- and age-dependent hazard."""
    events: list[tuple[int, int, int]] = []
    for d, row in enumerate(fleet.itertuples(index=False)):
        hazard = DEVICE_TYPES[row.type_idx].hazard_per_day * row.frailty * (1.0 + 0.4 * row.age_days / 365.0)
        t = start_ns - _days_ns(rng.uniform(0, 10))
        while True:
            t += _days_ns(rng.exponential(1.0 / hazard) + MIN_DAYS_BETWEEN_FAILURES)
            if t > end_ns:
                break
            repaired = t + _days_ns(rng.uniform(0.25, 2.0))
            events.append((d, t, repaired))
            t = repaired
    return events


def _effects(rng: np.random.Generator, kind: str, battery_powered: bool, scale: float) -> dict[str, float]:
    """Which metrics an episode moves and how far, varying from device to device."""
    primary = FAILURE_KINDS[kind]
    # Lists, not sets: set order varies between processes and would change which draw goes where.
    extra = [m for m in DEGRADATION if m not in primary and rng.random() < EXTRA_METRIC_PROBABILITY]
    candidates = [m for m in (*primary, *extra) if battery_powered or m != "battery_level"]
    # Not every candidate shows: some failures announce themselves through one channel only.
    shown = [m for m in candidates if rng.random() < 0.8] or candidates[:1]
    return {m: scale * rng.uniform(*METRIC_SHARE) for m in shown}


def _episodes(
    rng: np.random.Generator,
    fleet: pd.DataFrame,
    failures: list[tuple[int, int, int]],
    start_ns: int,
    end_ns: int,
) -> tuple[list[_Episode], list[str]]:
    """Degradation episodes before failures (with their kinds) and false alarms that recover."""
    kinds = list(FAILURE_KINDS)
    episodes: list[_Episode] = []
    failure_kinds: list[str] = []
    for device, failed_ns, _ in failures:
        kind = kinds[rng.integers(len(kinds))]
        failure_kinds.append(kind)
        battery = DEVICE_TYPES[fleet.type_idx.iat[device]].battery_powered
        sudden = rng.random() < SUDDEN_FAILURE_SHARE
        ramp_days = rng.uniform(*SUDDEN_RAMP_DAYS) if sudden else rng.uniform(*RAMP_DAYS)
        episodes.append(
            _Episode(
                device,
                failed_ns,
                _days_ns(ramp_days),
                0,
                rng.uniform(*RAMP_EXPONENT),
                _effects(rng, kind, battery, rng.uniform(*FAILURE_SEVERITY)),
            )
        )
    span_days = (end_ns - start_ns) / NS_PER_DAY
    alarms = rng.poisson(FALSE_ALARMS_PER_DEVICE_PER_120_DAYS * span_days / 120.0, size=len(fleet))
    for device in np.repeat(np.arange(len(fleet)), alarms):
        kind = kinds[rng.integers(len(kinds))]
        battery = DEVICE_TYPES[fleet.type_idx.iat[device]].battery_powered
        peak = start_ns + _days_ns(rng.uniform(0, span_days))
        episodes.append(
            _Episode(
                int(device),
                peak,
                _days_ns(rng.uniform(*ALARM_RAMP_DAYS)),
                _days_ns(rng.uniform(0.5, 3.0)),
                rng.uniform(*RAMP_EXPONENT),
                _effects(rng, kind, battery, rng.uniform(*ALARM_SEVERITY)),
            )
        )
    return episodes, failure_kinds


def _intensity(times: np.ndarray, ep: _Episode) -> np.ndarray:
    """0..1 degradation of one episode over a device's timestamps: ramp up to the peak, then repair or recovery."""
    rise = np.clip((times - (ep.peak_ns - ep.ramp_ns)) / ep.ramp_ns, 0.0, 1.0) ** ep.exponent
    rise = np.where(times <= ep.peak_ns, rise, 0.0)
    if ep.recover_ns > 0:
        fall = np.clip(1.0 - (times - ep.peak_ns) / ep.recover_ns, 0.0, 1.0)
        rise = np.where(times > ep.peak_ns, fall, rise)
    return rise


def _degradation(times: np.ndarray, episodes: list[_Episode]) -> dict[str, np.ndarray]:
    """Per-metric degradation intensity on the (device, time) grid, summed over episodes."""
    grid = {m: np.zeros(times.shape) for m in DEGRADATION}
    for ep in episodes:
        level = _intensity(times[ep.device], ep)
        for metric, size in ep.effects.items():
            grid[metric][ep.device] += size * level
    return grid


def _mask_degradation(deg: dict[str, np.ndarray], drift: np.ndarray) -> dict[str, np.ndarray]:
    """Degradation as the new firmware reports it: part of it hidden where the device runs that firmware."""
    return {m: v * (1.0 - FIRMWARE_MASKED_DEGRADATION.get(m, 0.0) * drift) for m, v in deg.items()}


def _poisson_counts(rng: np.random.Generator, rate_per_hour: np.ndarray, interval_hours: float) -> np.ndarray:
    """Event counts per reporting interval."""
    return rng.poisson(np.clip(rate_per_hour, 0.0, None) * interval_hours).astype(float)


def _uptime(restarts: np.ndarray, offline: np.ndarray, times: np.ndarray, offset_hours: np.ndarray) -> np.ndarray:
    """Hours since the last restart or repair: a sawtooth reset by events, vectorised with a running maximum."""
    reset = (restarts > 0) | np.roll(offline, 1, axis=1)
    reset[:, 0] = False
    cols = np.arange(times.shape[1])
    last = np.maximum.accumulate(np.where(reset, cols, 0), axis=1)
    since = (times - np.take_along_axis(times, last, axis=1)) / NS_PER_HOUR
    return np.where(last == 0, since + offset_hours[:, None], since)


class _Draws:
    """Random draws on the (device, time) grid for one fleet, in a fixed order."""

    def __init__(self, rng: np.random.Generator, fleet: pd.DataFrame, times: np.ndarray) -> None:
        self.rng = rng
        self.types = [DEVICE_TYPES[i] for i in fleet.type_idx]
        self.n = len(fleet)
        self.shape = times.shape

    def base(self, attr: str, spread: float) -> np.ndarray:
        """Each device's baseline: its type's value with a lognormal device-to-device spread, as a column."""
        values = np.array([getattr(t, attr) for t in self.types])
        return (values * self.rng.lognormal(0.0, spread, size=self.n))[:, None]

    def per_type(self, attr: str) -> np.ndarray:
        """A type attribute per device, as a column."""
        return np.array([getattr(t, attr) for t in self.types])[:, None]

    def noise(self, scale: float) -> np.ndarray:
        """Additive Gaussian noise."""
        return self.rng.normal(0.0, scale, size=self.shape)

    def jitter(self, sigma: float) -> np.ndarray:
        """Multiplicative noise around 1."""
        return self.rng.lognormal(0.0, sigma, size=self.shape)


def _effect(deg: dict[str, np.ndarray], metric: str) -> np.ndarray:
    """Degradation of one metric at its full size."""
    return deg[metric] * DEGRADATION[metric][1]


def _load_metrics(draw: _Draws, daily: np.ndarray, deg: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Usage, response time, error rate and throughput: busier by day, worse when degrading."""
    usage_base = draw.base("usage_frequency", 0.25) * (1.0 + 0.5 * daily)
    usage = usage_base * (1.0 + _effect(deg, "usage_frequency")) * draw.jitter(0.12)
    response = (
        draw.base("response_time", 0.15) * (1.0 + 0.08 * daily + _effect(deg, "response_time")) * draw.jitter(0.1)
    )
    error = draw.base("error_rate", 0.3) * draw.jitter(0.3) + _effect(deg, "error_rate")
    transfer = draw.base("data_transfer_rate", 0.3) * (usage / usage_base) * (1.0 + _effect(deg, "data_transfer_rate"))
    return {"usage_frequency": usage, "response_time": response, "error_rate": error, "data_transfer_rate": transfer}


def _environment_metrics(draw: _Draws, daily: np.ndarray, deg: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Signal, temperature and humidity: the daily cycle moves temperature up and humidity down."""
    signal = draw.base("signal_strength", 0.06) + draw.noise(3.0) + _effect(deg, "signal_strength")
    amplitude = draw.per_type("temp_amplitude")
    temperature = draw.base("temperature", 0.08) + amplitude * daily + draw.noise(0.8) + _effect(deg, "temperature")
    humidity = draw.base("humidity", 0.1) - 1.5 * amplitude * daily + draw.noise(2.5) + _effect(deg, "humidity")
    return {"signal_strength": signal, "temperature": temperature, "humidity": humidity}


def _battery(draw: _Draws, times: np.ndarray, deg: dict[str, np.ndarray]) -> np.ndarray:
    """Batteries run down from 100 to 20 % and are swapped; mains devices read 100.

    The battery level is a sawtooth with a per-device phase.
    """
    drain_per_hour = draw.rng.uniform(0.02, 0.08, size=draw.n)[:, None]
    charge = 100.0 - ((times / NS_PER_HOUR) * drain_per_hour + draw.rng.uniform(0, 80, size=draw.n)[:, None]) % 80.0
    return np.where(draw.per_type("battery_powered"), charge + draw.noise(0.5) + _effect(deg, "battery_level"), 100.0)


def _metric_grid(
    rng: np.random.Generator,
    fleet: pd.DataFrame,
    times: np.ndarray,
    interval_hours: float,
    deg: dict[str, np.ndarray],
    offline: np.ndarray,
    drift: np.ndarray,
) -> dict[str, np.ndarray]:
    """All 11 metrics on the (device, time) grid: baselines, daily seasonality, noise, degradation, drift."""
    draw = _Draws(rng, fleet, times)
    local_hour = (times / NS_PER_HOUR + rng.uniform(-3, 3, size=draw.n)[:, None]) % 24.0
    daily = np.sin(2 * np.pi * (local_hour - 9.0) / 24.0)
    grid = _load_metrics(draw, daily, deg) | _environment_metrics(draw, daily, deg)
    restarts_base = draw.base("restarts_per_hour", 0.3)
    restarts_rate = restarts_base + _effect(deg, "restart_count")
    grid["restart_count"] = _poisson_counts(rng, restarts_rate, interval_hours)
    grid["battery_level"] = _battery(draw, times, deg)
    # Firmware drift: faster responses, more throughput, warmer chips, fewer errors and drops. Sized to stand out of
    # the fleet's device-to-device spread (PSI > 0.25 on the raw readings, see core/drift.py); smaller shifts
    # (x0.8, x1.2, +2, x0.7, x0.6) measured PSI 0.10-0.20 on temperature, throughput and drops.
    grid["response_time"] = grid["response_time"] * (1.0 - 0.3 * drift)
    grid["data_transfer_rate"] = grid["data_transfer_rate"] * (1.0 + 0.6 * drift)
    grid["temperature"] = grid["temperature"] + 4.0 * drift
    grid["error_rate"] = grid["error_rate"] * (1.0 - 0.4 * drift)
    # Hours since the restart before the first reading: the steady state of the device's restart process
    # (exponential, by inverse CDF so the random stream is unchanged), so uptime neither grows nor shrinks across
    # the simulated months. A uniform 0-2000 h start made it drift with time (PSI 0.9 over 45 days).
    since_restart = -np.log1p(-rng.uniform(0, 1, size=draw.n)) / restarts_base[:, 0]
    grid["uptime_hours"] = _uptime(grid["restart_count"], offline, times, since_restart)
    # Last draw: how many numbers a Poisson draw consumes depends on its rate, which the drift changes.
    drops_rate = draw.base("drops_per_hour", 0.3) * (1.0 - 0.9 * drift) + _effect(deg, "connection_drops")
    grid["connection_drops"] = _poisson_counts(rng, drops_rate, interval_hours)
    return grid


def _offline(times: np.ndarray, failures: list[tuple[int, int, int]]) -> np.ndarray:
    """True where a device is failed and waiting for repair (it reports nothing then)."""
    mask = np.zeros(times.shape, dtype=bool)
    for device, failed_ns, repaired_ns in failures:
        mask[device] |= (times[device] >= failed_ns) & (times[device] < repaired_ns)
    return mask


def _drift(rng: np.random.Generator, times: np.ndarray, drift_from: dt.date | None) -> tuple[np.ndarray, np.ndarray]:
    """1.0 where a device runs the new firmware, with each device's update time.

    The new firmware is rolled out over 3 days from drift_from.
    """
    # Drawn with or without drift, so the same seed gives the same data before drift_from.
    rollout = _days_ns(rng.uniform(0, 3, size=times.shape[0]))
    if drift_from is None:
        return np.zeros(times.shape), np.full(times.shape[0], np.iinfo(np.int64).max)
    updated = _ns(dt.datetime.combine(drift_from, dt.time(), tzinfo=dt.UTC)) + rollout
    return (times >= updated[:, None]).astype(float), updated


def _long_frame(fleet: pd.DataFrame, times: np.ndarray, valid: np.ndarray, grid: dict[str, np.ndarray]) -> pd.DataFrame:
    """The grid as long-format rows ordered by device, timestamp, metric."""
    dev_idx, time_idx = np.nonzero(valid)
    values = np.stack([grid[m][dev_idx, time_idx] for m in METRIC_NAMES], axis=1)
    lows = np.array([METRIC_RANGES[m][0] for m in METRIC_NAMES])
    highs = np.array([METRIC_RANGES[m][1] for m in METRIC_NAMES])
    values = np.round(np.clip(values, lows, highs), 4)
    n_metrics = len(METRIC_NAMES)
    metric_codes = np.tile(np.arange(n_metrics), len(dev_idx))
    units = sorted(set(METRIC_UNITS.values()))
    unit_codes = np.array([units.index(METRIC_UNITS[m]) for m in METRIC_NAMES])[metric_codes]
    return pd.DataFrame(
        {
            "device_id": pd.Categorical.from_codes(np.repeat(dev_idx, n_metrics), categories=fleet["id"].tolist()),
            "metric_name": pd.Categorical.from_codes(metric_codes, categories=list(METRIC_NAMES)),
            "metric_value": values.reshape(-1),
            "metric_unit": pd.Categorical.from_codes(unit_codes, categories=units),
            "timestamp": pd.to_datetime(np.repeat(times[dev_idx, time_idx], n_metrics), utc=True),
        }
    )


@dataclass(frozen=True)
class _Part:
    """One part of a fleet: devices [first, first + devices) drawn from their own random stream."""

    first: int
    devices: int
    seed: int | list[int]


def _parts(devices: int, seed: int) -> list[_Part]:
    """A fleet's parts: one (seeded as given) up to SIM_PART_DEVICES devices, else one per SIM_PART_DEVICES."""
    if devices <= SIM_PART_DEVICES:
        return [_Part(0, devices, seed)]
    return [
        _Part(first, min(SIM_PART_DEVICES, devices - first), [seed, number])
        for number, first in enumerate(range(0, devices, SIM_PART_DEVICES))
    ]


def _simulate_part(
    part: _Part, start_ns: int, end_ns: int, step_ns: int, interval_hours: float, drift_from: dt.date | None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One part of a fleet in memory: (metrics_long, failures, devices)."""
    rng = np.random.default_rng(part.seed)
    fleet = _fleet(rng, part.devices, start_ns, part.first)

    # Devices report on the same cadence but not in lock-step.
    offsets = np.floor(rng.uniform(0, 1, size=len(fleet)) * step_ns / NS_PER_SECOND).astype(np.int64) * NS_PER_SECOND
    times = (
        start_ns + offsets[:, None] + step_ns * np.arange((end_ns - start_ns) // step_ns + 1, dtype=np.int64)[None, :]
    )
    failures = _failure_times(rng, fleet, start_ns, end_ns)
    episodes, kinds = _episodes(rng, fleet, failures, start_ns, end_ns)
    offline = _offline(times, failures)
    drift, updated = _drift(rng, times, drift_from)
    degradation = _mask_degradation(_degradation(times, episodes), drift)
    grid = _metric_grid(rng, fleet, times, interval_hours, degradation, offline, drift)

    metrics = _long_frame(fleet, times, (times <= end_ns) & ~offline, grid)
    failures_df = pd.DataFrame(
        {
            "device_id": [fleet["id"].iat[d] for d, _, _ in failures],
            "failed_at": pd.to_datetime(np.array([f for _, f, _ in failures], dtype=np.int64), utc=True),
            "kind": kinds,
        }
    )
    devices_df = fleet[["id", "name", "device_type", "installed_at"]].assign(
        firmware=np.where(updated <= end_ns, NEW_FIRMWARE, OLD_FIRMWARE), simulated=True
    )
    return metrics, failures_df, devices_df


def iter_fleet_parts(
    *,
    devices: int = 150,
    days: int = 120,
    interval_hours: float = 6.0,
    seed: int = 42,
    drift_from: dt.date | None = None,
    end: dt.datetime | None = None,
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """A simulated fleet covering [end - days, end], part by part: (metrics_long, failures, devices) each."""
    _validate(devices, days, interval_hours)
    # Whole seconds everywhere, so values survive a round trip through any database unchanged.
    end_ns = _ns(_utc(end).replace(microsecond=0))
    start_ns = end_ns - int(days) * NS_PER_DAY
    step_ns = max(1, round(float(interval_hours) * 3600)) * NS_PER_SECOND
    for part in _parts(int(devices), seed):
        yield _simulate_part(part, start_ns, end_ns, step_ns, float(interval_hours), drift_from)


def simulate_frames(
    *,
    devices: int = 150,
    days: int = 120,
    interval_hours: float = 6.0,
    seed: int = 42,
    drift_from: dt.date | None = None,
    end: dt.datetime | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A simulated fleet in memory: (metrics_long, failures, devices) covering [end - days, end]."""
    parts = list(
        iter_fleet_parts(
            devices=devices, days=days, interval_hours=interval_hours, seed=seed, drift_from=drift_from, end=end
        )
    )
    if len(parts) == 1:
        return parts[0]
    metrics = pd.concat([m for m, _, _ in parts], ignore_index=True)
    # Each part's device column has its own categories; the fleet's is their union.
    metrics["device_id"] = union_categoricals([m["device_id"] for m, _, _ in parts])
    failures = pd.concat([f for _, f, _ in parts], ignore_index=True)
    return metrics, failures, pd.concat([d for _, _, d in parts], ignore_index=True)


def _timestamp_text(ts: pd.Series) -> list[str]:
    """Naive UTC 'YYYY-MM-DD HH:MM:SS.ffffff' text, as SQLAlchemy stores it in SQLite.

    Each distinct value is formatted once.
    """
    ns = ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    unique, inverse = np.unique(ns, return_inverse=True)
    text = np.datetime_as_string(unique, unit="us").astype(f"S{SQLITE_TS_FORMAT_LEN}")
    text.view(np.uint8).reshape(-1, SQLITE_TS_FORMAT_LEN)[:, 10] = ord(" ")
    # Index an object array of the distinct strings: rows share those str objects instead of copying them.
    return np.array(text.astype(f"U{SQLITE_TS_FORMAT_LEN}").tolist(), dtype=object)[inverse].tolist()


def _naive_utc(ts: pd.Series) -> list[dt.datetime]:
    """Timestamps as naive UTC datetimes for the generic insert path."""
    return list(ts.dt.tz_convert("UTC").dt.tz_localize(None).dt.to_pydatetime())


def _insert_metrics_sqlite(conn: Connection, metrics: pd.DataFrame) -> None:
    """Bulk insert through the driver's executemany, skipping per-value Python type processing.

    The rows stream from the columns: no list of row tuples is built.
    """
    table = HealthMetric.__table__
    sql = (
        f"INSERT INTO {table.name} (device_id, metric_name, metric_value, metric_unit, timestamp) "
        "VALUES (?, ?, ?, ?, ?)"
    )
    rows = zip(
        metrics["device_id"].astype(object).tolist(),
        metrics["metric_name"].astype(object).tolist(),
        metrics["metric_value"].tolist(),
        metrics["metric_unit"].astype(object).tolist(),
        _timestamp_text(metrics["timestamp"]),
        strict=True,
    )
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.executemany(sql, rows)
    finally:
        cursor.close()


def _insert_metrics_postgresql(conn: Connection, metrics: pd.DataFrame) -> None:
    """Bulk load through COPY from CSV buffers written by pandas, COPY_ROWS rows at a time."""
    table = HealthMetric.__table__
    columns = "device_id, metric_name, metric_value, metric_unit, timestamp"
    with (
        conn.connection.dbapi_connection.cursor() as cursor,
        cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN WITH (FORMAT csv)") as copy,
    ):
        for lo in range(0, len(metrics), COPY_ROWS):
            piece = metrics.iloc[lo : lo + COPY_ROWS]
            frame = piece[["device_id", "metric_name", "metric_value", "metric_unit"]].assign(
                timestamp=_timestamp_text(piece["timestamp"])
            )
            copy.write(frame.to_csv(index=False, header=False))


def _insert_metrics_generic(conn: Connection, metrics: pd.DataFrame) -> None:
    """Bulk insert with SQLAlchemy Core in large batches (backends other than SQLite and PostgreSQL)."""
    table = HealthMetric.__table__
    frame = metrics.astype({"device_id": object, "metric_name": object, "metric_unit": object})
    frame = frame.assign(timestamp=_naive_utc(metrics["timestamp"]))
    records = frame.to_dict("records")
    for i in range(0, len(records), INSERT_BATCH):
        conn.execute(insert(table), records[i : i + INSERT_BATCH])


def _insert_metrics(conn: Connection, dialect: str, metrics: pd.DataFrame) -> None:
    """The metric rows by the fastest bulk path of the backend."""
    if dialect == "sqlite":
        _insert_metrics_sqlite(conn, metrics)
    elif dialect == "postgresql":
        _insert_metrics_postgresql(conn, metrics)
    else:
        _insert_metrics_generic(conn, metrics)


@contextmanager
def _bulk_load(db: Database) -> Iterator[Connection]:
    """One transaction for a bulk load; on an empty metrics table the indexes are rebuilt once instead of per row."""
    metrics_table = HealthMetric.__table__
    with db.engine.begin() as conn:
        allow_bulk_statements(conn)  # one COPY of a million readings, an index built over a fleet's readings
        empty = conn.execute(select(metrics_table.c.id).limit(1)).first() is None
        cache_size = conn.exec_driver_sql("PRAGMA cache_size").scalar() if db.dialect == "sqlite" else None
        if cache_size is not None:
            # A larger page cache keeps index pages in memory during the bulk load.
            conn.exec_driver_sql("PRAGMA cache_size=-262144")
        if empty:
            for index in metrics_table.indexes:
                index.drop(conn)
        yield conn
        if empty:
            for index in metrics_table.indexes:
                index.create(conn)
        if cache_size is not None:
            conn.exec_driver_sql(f"PRAGMA cache_size={int(cache_size)}")


def _write_part(
    conn: Connection, dialect: str, metrics: pd.DataFrame, failures: pd.DataFrame, devices: pd.DataFrame
) -> None:
    """One part's devices, failures and readings (devices first: the readings refer to them)."""
    device_rows = devices.assign(installed_at=_naive_utc(devices["installed_at"])).to_dict("records")
    conn.execute(insert(Device.__table__), device_rows)
    if len(failures):
        rows = failures.assign(failed_at=_naive_utc(failures["failed_at"])).to_dict("records")
        conn.execute(insert(DeviceFailure.__table__), rows)
    _insert_metrics(conn, dialect, metrics)


def append_readings(db: Database, metrics: pd.DataFrame) -> RefreshSummary:
    """Write readings (long format, as simulate_frames makes them) and fold the days they touch into the aggregates."""
    with db.engine.begin() as conn:
        _insert_metrics(conn, db.dialect, metrics)
    return refresh_daily_aggregates(db)


def simulate_fleet(
    db: Database,
    *,
    devices: int = 150,
    days: int = 120,
    interval_hours: float = 6.0,
    seed: int = 42,
    drift_from: dt.date | None = None,
    end: dt.datetime | None = None,
) -> SimulationSummary:
    """Simulate a fleet and bulk-write its devices, metrics and failures into the database, in one transaction.

    A large fleet is simulated and written part by part (SIM_PART_DEVICES devices each), so memory stays flat.
    """
    started = time.perf_counter()
    _validate(devices, days, interval_hours)
    end_at = _utc(end).replace(microsecond=0)
    clashes = _existing_device_ids(db, [_device_id(i) for i in range(int(devices))])
    if clashes:
        raise Conflict(
            f"{len(clashes)} simulated devices already exist (e.g. {clashes[0]}); "
            "delete simulated telemetry first (--replace)"
        )
    parts = iter_fleet_parts(
        devices=devices, days=days, interval_hours=interval_hours, seed=seed, drift_from=drift_from, end=end_at
    )
    metric_rows = failures = 0
    with _bulk_load(db) as conn:
        for metrics, part_failures, part_devices in parts:
            _write_part(conn, db.dialect, metrics, part_failures, part_devices)
            metric_rows, failures = metric_rows + len(metrics), failures + len(part_failures)
            del metrics
    # Seeding is an ingest path: fold the new days in now, so the first retrain reads device-days at once.
    refresh_daily_aggregates(db)
    return SimulationSummary(
        devices=int(devices),
        metric_rows=metric_rows,
        failures=failures,
        start=end_at - dt.timedelta(days=int(days)),
        end=end_at,
        seconds=time.perf_counter() - started,
    )


def _existing_device_ids(db: Database, ids: list[str]) -> list[str]:
    """Which of these device ids are already in the database (asked 10,000 at a time: bound-parameter limits)."""
    found: list[str] = []
    with db.engine.connect() as conn:
        for lo in range(0, len(ids), 10_000):
            batch = ids[lo : lo + 10_000]
            found += conn.execute(select(Device.id).where(Device.id.in_(batch))).scalars().all()
    return sorted(found)


@dataclass(frozen=True)
class TelemetryCounts:
    """How much telemetry the database holds, split into simulated and real devices."""

    simulated_devices: int
    real_devices: int
    simulated_metric_rows: int
    real_metric_rows: int
    failures: int

    @property
    def has_telemetry(self) -> bool:
        """Any metric rows or failures at all."""
        return self.simulated_metric_rows + self.real_metric_rows + self.failures > 0

    @property
    def has_real_telemetry(self) -> bool:
        """Metric rows that the simulator did not write."""
        return self.real_metric_rows > 0


def telemetry_counts(db: Database) -> TelemetryCounts:
    """Count devices and metric rows, simulated and real."""
    with db.engine.connect() as conn:
        devices = dict(conn.execute(select(Device.simulated, func.count()).group_by(Device.simulated)).all())
        rows = dict(
            conn.execute(
                select(Device.simulated, func.count())
                .select_from(HealthMetric)
                .join(Device, Device.id == HealthMetric.device_id, isouter=True)
                .group_by(Device.simulated)
            ).all()
        )
        failures = conn.execute(select(func.count()).select_from(DeviceFailure)).scalar_one()
    return TelemetryCounts(
        simulated_devices=int(devices.get(True, 0)),
        real_devices=int(devices.get(False, 0)),
        simulated_metric_rows=int(rows.get(True, 0)),
        real_metric_rows=int(sum(v for k, v in rows.items() if k is not True)),
        failures=int(failures),
    )


def delete_simulated(db: Database) -> int:
    """Delete simulated devices with their metrics and failures; returns the number of metric rows removed."""
    simulated = select(Device.id).where(Device.simulated.is_(True))
    with db.engine.begin() as conn:
        allow_bulk_statements(conn)
        removed = conn.execute(delete(HealthMetric).where(HealthMetric.device_id.in_(simulated))).rowcount
        forget_devices(conn, simulated)
        conn.execute(delete(DeviceFailure).where(DeviceFailure.device_id.in_(simulated)))
        conn.execute(delete(Device).where(Device.simulated.is_(True)))
    return int(removed or 0)
