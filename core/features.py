"""Telemetry loading, per-(device, day) trailing-window features and failure labels."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from numbers import Real

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from sqlalchemy import Connection, select

from core.constants import DEFAULT_HORIZON_DAYS, METRIC_NAMES, METRIC_RANGES
from core.db import Database, DeviceFailure, HealthMetric
from core.errors import InvalidInput

DEFAULT_WINDOW_DAYS = 7
SQL_CHUNK_ROWS = 200_000
# Features are computed for this many devices at a time, to bound the temporaries of a large fleet.
FEATURE_DEVICE_CHUNK = 128
NS_PER_DAY = 86_400_000_000_000
# A labelled feature matrix larger than this in float64 is made in float32 instead (7 significant digits; every copy
# the fit makes is half the size): 10,000 devices x 180 days is 1.7M samples, 0.9 GB in float64, and the 2 GB
# retrain budget does not fit the scaler's and the solver's float64 copies. Smaller sets (150 devices: 3 MB;
# 1,500 devices: 95 MB) stay float64, the same numbers as before.
FLOAT32_FEATURES_BYTES = 256 * 1024 * 1024
# Per metric: today's mean, then mean / std / min / max over the trailing window, then today minus the window mean.
FEATURE_STATS: tuple[str, ...] = ("day_mean", "win_mean", "win_std", "win_min", "win_max", "day_delta")
FEATURE_COLUMNS: tuple[str, ...] = tuple(f"{m}_{s}" for m in METRIC_NAMES for s in FEATURE_STATS)
# A variance this small relative to the mean is rounding noise of a constant series.
_VAR_EPS = 1e-10
_METRIC_INDEX = {name: i for i, name in enumerate(METRIC_NAMES)}
_N_METRICS = len(METRIC_NAMES)


@dataclass(frozen=True)
class Telemetry:
    """Metrics (long format) and failures loaded for a time range."""

    metrics_long: pd.DataFrame
    failures: pd.DataFrame
    start: dt.datetime
    end: dt.datetime
    horizon_days: int = DEFAULT_HORIZON_DAYS

    @property
    def days_back(self) -> int:
        """Whole days between start and end."""
        return round((self.end - self.start) / dt.timedelta(days=1))


@dataclass(frozen=True)
class FeatureSet:
    """Model inputs X (FEATURE_COLUMNS), labels y, and each row's day and device, sorted by day."""

    X: pd.DataFrame
    y: pd.Series
    day: pd.Series
    device_id: pd.Series
    horizon_days: int = DEFAULT_HORIZON_DAYS
    window_days: int = DEFAULT_WINDOW_DAYS

    def __len__(self) -> int:
        """Number of samples."""
        return len(self.X)


def _utc(value: dt.datetime | None) -> dt.datetime:
    """An aware UTC datetime (naive taken as UTC); now when None."""
    if value is None:
        return dt.datetime.now(dt.UTC)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _utc_ns(values: pd.Series | pd.Index) -> np.ndarray:
    """Timestamps (aware, naive-as-UTC or ISO strings) as int64 nanoseconds since the epoch."""
    dtype = values.dtype
    # Datetimes convert without parsing (aware ones to UTC instants): this path matters for single-row prediction.
    is_datetime = isinstance(dtype, pd.DatetimeTZDtype) or (isinstance(dtype, np.dtype) and dtype.kind == "M")
    stamps = values if is_datetime else pd.to_datetime(values, utc=True, format="ISO8601")
    return np.asarray(stamps.to_numpy(dtype="datetime64[ns]")).view(np.int64)


def _metric_codes(names: pd.Series) -> np.ndarray:
    """Index into METRIC_NAMES for each name, -1 for unknown names, by mapping the few distinct names only."""
    if isinstance(names.dtype, pd.CategoricalDtype):
        codes, uniques = names.array.codes, names.array.categories
    else:
        codes, uniques = pd.factorize(names)
    lookup = np.array([_METRIC_INDEX.get(str(u), -1) for u in uniques] + [-1], dtype=np.intp)
    return lookup[codes]


def _check_window(horizon_days: int, window_days: int) -> None:
    """Refuse horizons and windows that are not positive whole days."""
    for name, value in (("horizon_days", horizon_days), ("window_days", window_days)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InvalidInput(f"{name} must be a positive integer, got {value!r}")


def load_telemetry(
    db: Database, *, days_back: int, end: dt.datetime | None = None, horizon_days: int = DEFAULT_HORIZON_DAYS
) -> Telemetry:
    """Metrics in [end - days_back, end] and failures up to end, read in chunks."""
    end_at = _utc(end)
    start_at = end_at - dt.timedelta(days=int(days_back))
    failures_stmt = select(DeviceFailure.device_id, DeviceFailure.failed_at, DeviceFailure.kind).where(
        DeviceFailure.failed_at <= end_at
    )
    with db.engine.connect() as conn:
        chunks = [_compact(chunk) for chunk in _metric_chunks(conn, db.dialect, start_at, end_at)]
        failures = pd.read_sql(failures_stmt, conn)
    metrics_long = pd.concat(chunks, ignore_index=True) if chunks else _empty_metrics()
    metrics_long = metrics_long.astype({"device_id": "category", "metric_name": "category"})
    failures["failed_at"] = pd.to_datetime(failures["failed_at"], utc=True, format="ISO8601")
    return Telemetry(metrics_long, failures, start_at, end_at, horizon_days)


def _sqlite_text(moment: dt.datetime) -> str:
    """A UTC datetime as SQLAlchemy stores it in SQLite, so text comparison orders like time."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _metric_chunks(conn: Connection, dialect: str, start: dt.datetime, end: dt.datetime) -> Iterator[pd.DataFrame]:
    """Metric rows with start <= timestamp <= end, SQL_CHUNK_ROWS at a time (the range uses the timestamp index)."""
    table = HealthMetric.__table__
    if dialect == "sqlite":
        # Straight from the driver's cursor: building a SQLAlchemy Row per reading doubles the load time.
        sql = (
            f"SELECT device_id, metric_name, metric_value, timestamp FROM {table.name} "
            "WHERE timestamp >= ? AND timestamp <= ?"
        )
        params = (_sqlite_text(start), _sqlite_text(end))
        return pd.read_sql(sql, conn.connection.dbapi_connection, params=params, chunksize=SQL_CHUNK_ROWS)
    c = table.c
    stmt = select(c.device_id, c.metric_name, c.metric_value, c.timestamp).where(
        c.timestamp >= start, c.timestamp <= end
    )
    return pd.read_sql(stmt, conn, chunksize=SQL_CHUNK_ROWS)


def _compact(chunk: pd.DataFrame) -> pd.DataFrame:
    """One SQL chunk with categorical names and UTC timestamps, to keep memory low."""
    return chunk.assign(
        device_id=chunk["device_id"].astype("category"),
        metric_name=chunk["metric_name"].astype("category"),
        metric_value=chunk["metric_value"].astype(float),
        timestamp=pd.to_datetime(chunk["timestamp"], utc=True, format="ISO8601"),
    )


def _empty_metrics() -> pd.DataFrame:
    """A metrics frame with no rows and the usual columns."""
    return pd.DataFrame(
        {
            "device_id": pd.Series(dtype="category"),
            "metric_name": pd.Series(dtype="category"),
            "metric_value": pd.Series(dtype=float),
            "timestamp": pd.Series(dtype="datetime64[ns, UTC]"),
        }
    )


@dataclass(frozen=True)
class DayGrid:
    """Dense (device, day, metric) aggregates of the readings: from raw readings here, or from core.daily_aggregates."""

    devices: pd.Index
    day0: int
    data_end_ns: int
    count: np.ndarray
    total: np.ndarray
    squares: np.ndarray
    low: np.ndarray
    high: np.ndarray


def _grid(metrics_long: pd.DataFrame) -> DayGrid | None:
    """Aggregate readings per (device, calendar day UTC, metric) with bincount and ufunc.at; None without readings."""
    metric_codes = _metric_codes(metrics_long["metric_name"])
    values = metrics_long["metric_value"].to_numpy(dtype=float, na_value=np.nan)
    # Unknown metrics and missing values are not readings.
    known = (metric_codes >= 0) & np.isfinite(values)
    if not known.any():
        return None
    metric_codes, values = metric_codes[known], values[known]
    ts = _utc_ns(metrics_long["timestamp"])[known]
    day_abs = ts // NS_PER_DAY
    day0 = int(day_abs.min())
    n_days = int(day_abs.max()) - day0 + 1
    dev_codes, devices = pd.factorize(metrics_long["device_id"].astype(str).to_numpy()[known], sort=True)
    shape = (len(devices), n_days, _N_METRICS)
    flat = np.ravel_multi_index((dev_codes, day_abs - day0, metric_codes), shape)
    size = int(np.prod(shape))
    low = np.full(size, np.inf)
    high = np.full(size, -np.inf)
    np.minimum.at(low, flat, values)
    np.maximum.at(high, flat, values)
    return DayGrid(
        devices=pd.Index(devices),
        day0=day0,
        data_end_ns=int(ts.max()),
        count=np.bincount(flat, minlength=size).reshape(shape),
        total=np.bincount(flat, weights=values, minlength=size).reshape(shape),
        squares=np.bincount(flat, weights=values * values, minlength=size).reshape(shape),
        low=low.reshape(shape),
        high=high.reshape(shape),
    )


def _trailing(values: np.ndarray, window: int, fill: float, reduce: str) -> np.ndarray:
    """Reduce each day with its window - 1 predecessors along the day axis (axis 1)."""
    padded = np.pad(values, ((0, 0), (window - 1, 0), (0, 0)), constant_values=fill)
    view = sliding_window_view(padded, window, axis=1)
    return getattr(view, reduce)(axis=-1)


def _stats(
    day_count: np.ndarray,
    day_total: np.ndarray,
    win_count: np.ndarray,
    win_total: np.ndarray,
    win_squares: np.ndarray,
    win_low: np.ndarray,
    win_high: np.ndarray,
) -> np.ndarray:
    """The FEATURE_STATS from sums and extremes; shared by the batch and the single-row path so both agree."""
    with np.errstate(invalid="ignore", divide="ignore"):
        day_mean = day_total / day_count
        win_mean = win_total / win_count
        var = win_squares / win_count - win_mean * win_mean
    var = np.where(var <= _VAR_EPS * (win_mean * win_mean + 1.0), 0.0, var)
    return np.stack([day_mean, win_mean, np.sqrt(var), win_low, win_high, day_mean - win_mean], axis=-1)


def _grid_features(grid: DayGrid, window_days: int) -> np.ndarray:
    """Features for every (device, day) of the grid: shape (devices, days, len(FEATURE_COLUMNS))."""
    stats = _stats(
        grid.count,
        grid.total,
        _trailing(grid.count, window_days, 0, "sum"),
        _trailing(grid.total, window_days, 0.0, "sum"),
        _trailing(grid.squares, window_days, 0.0, "sum"),
        _trailing(grid.low, window_days, np.inf, "min"),
        _trailing(grid.high, window_days, -np.inf, "max"),
    )
    return stats.reshape(stats.shape[0], stats.shape[1], -1)


def feature_dtype(rows: int) -> type[np.floating]:
    """float64, or float32 for a matrix of this many rows larger than FLOAT32_FEATURES_BYTES in float64."""
    return np.float32 if rows * len(FEATURE_COLUMNS) * 8 > FLOAT32_FEATURES_BYTES else np.float64


def _features_at(
    grid: DayGrid, window_days: int, dev_idx: np.ndarray, day_idx: np.ndarray, dtype: type = np.float64
) -> np.ndarray:
    """Features of the given (device, day) cells, computed FEATURE_DEVICE_CHUNK devices at a time.

    Devices are independent along the day axis, so chunks give the same numbers with a fraction of the temporaries;
    each chunk is computed in float64 and stored as `dtype`.
    """
    out = np.empty((len(dev_idx), len(FEATURE_COLUMNS)), dtype=dtype)
    for lo in range(0, len(grid.devices), FEATURE_DEVICE_CHUNK):
        hi = lo + FEATURE_DEVICE_CHUNK
        rows = np.flatnonzero((dev_idx >= lo) & (dev_idx < hi))
        if len(rows) == 0:
            continue
        part = replace(
            grid,
            devices=grid.devices[lo:hi],
            count=grid.count[lo:hi],
            total=grid.total[lo:hi],
            squares=grid.squares[lo:hi],
            low=grid.low[lo:hi],
            high=grid.high[lo:hi],
        )
        out[rows] = _grid_features(part, window_days)[dev_idx[rows] - lo, day_idx[rows]]
    return out


def _failure_grid(failures: pd.DataFrame, grid: DayGrid, n_days: int) -> np.ndarray:
    """Failure counts per (device, day) over the grid's days plus the horizon beyond them."""
    counts = np.zeros((len(grid.devices), n_days), dtype=np.int64)
    if failures is None or len(failures) == 0:
        return counts
    dev = grid.devices.get_indexer(failures["device_id"].astype(str))
    day = _utc_ns(failures["failed_at"]) // NS_PER_DAY - grid.day0
    ok = (dev >= 0) & (day >= 0) & (day < n_days)
    np.add.at(counts, (dev[ok], day[ok]), 1)
    return counts


def _empty_featureset(horizon_days: int, window_days: int) -> FeatureSet:
    """A FeatureSet with no rows."""
    return FeatureSet(
        X=pd.DataFrame(columns=list(FEATURE_COLUMNS), dtype=float),
        y=pd.Series(dtype=np.int64, name="label"),
        day=pd.Series(dtype="datetime64[ns, UTC]", name="day"),
        device_id=pd.Series(dtype=object, name="device_id"),
        horizon_days=horizon_days,
        window_days=window_days,
    )


def build_features(
    metrics_long: pd.DataFrame,
    failures: pd.DataFrame,
    *,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    window_days: int = DEFAULT_WINDOW_DAYS,
) -> FeatureSet:
    """Labelled features per (device, day) from raw readings (see grid_features for the rules)."""
    _check_window(horizon_days, window_days)
    grid = _grid(metrics_long) if metrics_long is not None and len(metrics_long) else None
    return grid_features(grid, failures, horizon_days=horizon_days, window_days=window_days)


def grid_features(
    grid: DayGrid | None,
    failures: pd.DataFrame,
    *,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    window_days: int = DEFAULT_WINDOW_DAYS,
) -> FeatureSet:
    """Labelled features per (device, day): y = 1 when a recorded failure falls on one of the next horizon_days days.

    Kept rows: the device reported all 11 metrics that day, did not fail that day, and the whole
    horizon lies within the data (otherwise the label is unknown).
    """
    _check_window(horizon_days, window_days)
    if grid is None:
        return _empty_featureset(horizon_days, window_days)
    n_dev, n_days, _ = grid.count.shape
    fails = _failure_grid(failures, grid, n_days + horizon_days + 1)
    # Failures on days d+1 .. d+h, by differences of a running sum.
    running = np.concatenate([np.zeros((n_dev, 1), dtype=np.int64), np.cumsum(fails, axis=1)], axis=1)
    days = np.arange(n_days)
    label = (running[:, days + horizon_days + 1] - running[:, days + 1]) > 0
    horizon_known = (grid.day0 + days + 1 + horizon_days) * NS_PER_DAY <= grid.data_end_ns
    keep = (grid.count > 0).all(axis=2) & (fails[:, :n_days] == 0) & horizon_known[None, :]
    day_idx, dev_idx = np.nonzero(keep.T)
    if len(day_idx) == 0:
        return _empty_featureset(horizon_days, window_days)
    features = _features_at(grid, window_days, dev_idx, day_idx, feature_dtype(len(day_idx)))
    return FeatureSet(
        X=pd.DataFrame(features, columns=list(FEATURE_COLUMNS), copy=False),  # fresh array: no copy needed
        y=pd.Series(label[dev_idx, day_idx].astype(np.int64), name="label"),
        day=pd.Series(pd.to_datetime((grid.day0 + day_idx) * NS_PER_DAY, utc=True), name="day"),
        device_id=pd.Series(grid.devices.to_numpy()[dev_idx], name="device_id", dtype=object),
        horizon_days=horizon_days,
        window_days=window_days,
    )


def daily_features(metrics_long: pd.DataFrame, *, window_days: int = DEFAULT_WINDOW_DAYS) -> pd.DataFrame:
    """Unlabelled features for every (device, day) with all 11 metrics, including the latest days."""
    _check_window(1, window_days)
    grid = _grid(metrics_long) if metrics_long is not None and len(metrics_long) else None
    return grid_daily_features(grid, window_days=window_days)


def grid_daily_features(grid: DayGrid | None, *, window_days: int = DEFAULT_WINDOW_DAYS) -> pd.DataFrame:
    """Unlabelled features for every (device, day) of the grid with all 11 metrics."""
    _check_window(1, window_days)
    if grid is None:
        return pd.DataFrame(columns=["device_id", "day", *FEATURE_COLUMNS])
    day_idx, dev_idx = np.nonzero((grid.count > 0).all(axis=2).T)
    features = pd.DataFrame(
        _features_at(grid, window_days, dev_idx, day_idx), columns=list(FEATURE_COLUMNS), copy=False
    )
    keys = pd.DataFrame(
        {
            "device_id": grid.devices.to_numpy()[dev_idx].astype(object),
            "day": pd.to_datetime((grid.day0 + day_idx) * NS_PER_DAY, utc=True),
        }
    )
    return pd.concat([keys, features], axis=1)


def _reading_vector(reading: Mapping[str, float]) -> np.ndarray:
    """The reading's 11 values in METRIC_NAMES order."""
    return np.array([float(reading[name]) for name in METRIC_NAMES])


def _window_readings(
    history_long: pd.DataFrame, at_ns: int, start_ns: int, today_ns: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """History readings in [start, at] as (metric index, value, is-today) arrays."""
    ts = _utc_ns(history_long["timestamp"])
    codes = _metric_codes(history_long["metric_name"])
    values = history_long["metric_value"].to_numpy(dtype=float, na_value=np.nan)
    keep = (ts >= start_ns) & (ts <= at_ns) & (codes >= 0) & np.isfinite(values)
    return codes[keep], values[keep], ts[keep] >= today_ns


def single_row_features(
    history_long: pd.DataFrame | None,
    reading: Mapping[str, float],
    at: dt.datetime,
    *,
    window_days: int = DEFAULT_WINDOW_DAYS,
) -> np.ndarray:
    """Features (1, len(FEATURE_COLUMNS)) for one device with `reading` appended at `at` to its history.

    Matches build_features for the same readings; history after `at` or before the window is ignored.
    """
    values = _reading_vector(reading)
    at_ns = int(pd.Timestamp(_utc(at)).value)
    today_ns = at_ns - at_ns % NS_PER_DAY
    count = np.ones(_N_METRICS)
    total, squares, low, high = values.copy(), values * values, values.copy(), values.copy()
    day_count, day_total = np.ones(_N_METRICS), values.copy()
    if history_long is not None and len(history_long):
        idx, v, today = _window_readings(history_long, at_ns, today_ns - (window_days - 1) * NS_PER_DAY, today_ns)
        count += np.bincount(idx, minlength=_N_METRICS)
        total += np.bincount(idx, weights=v, minlength=_N_METRICS)
        squares += np.bincount(idx, weights=v * v, minlength=_N_METRICS)
        np.minimum.at(low, idx, v)
        np.maximum.at(high, idx, v)
        day_count += np.bincount(idx[today], minlength=_N_METRICS)
        day_total += np.bincount(idx[today], weights=v[today], minlength=_N_METRICS)
    return _stats(day_count, day_total, count, total, squares, low, high).reshape(1, -1)


def validate_reading(metrics: Mapping[str, object], *, partial: bool = False) -> dict[str, float]:
    """The metric values as floats: all 11, or (`partial`) those given.

    Raises InvalidInput naming every missing, unknown, non-numeric or out-of-range one.
    """
    if not isinstance(metrics, Mapping):
        raise InvalidInput(f"metrics must be an object of metric name -> number, got {type(metrics).__name__}")
    problems: list[str] = []
    missing = [] if partial else [m for m in METRIC_NAMES if m not in metrics]
    unknown = sorted(str(k) for k in metrics if k not in _METRIC_INDEX)
    if missing:
        problems.append(f"missing: {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown: {', '.join(unknown)}")
    clean: dict[str, float] = {}
    for name in METRIC_NAMES:
        if name not in metrics:
            continue
        value = metrics[name]
        if isinstance(value, bool) or not isinstance(value, Real):
            problems.append(f"{name} is not a number ({value!r})")
            continue
        try:
            number = float(value)
        except OverflowError:  # an integer beyond float range
            problems.append(f"{name} is far outside any plausible range")
            continue
        low, high = METRIC_RANGES[name]
        if math.isnan(number) or math.isinf(number):
            problems.append(f"{name} is {number}")
        elif not low <= number <= high:
            problems.append(f"{name}={number:g} is outside [{low:g}, {high:g}]")
        else:
            clean[name] = number
    if problems:
        raise InvalidInput("invalid metrics: " + "; ".join(problems))
    return clean
