"""File names, formats, metric names and default thresholds in one place."""

from __future__ import annotations

import re

FAILURE_MODEL_FILE = "failure_prediction_model.pkl"
ANOMALY_MODEL_FILE = "anomaly_detection_model.pkl"
METADATA_FILE = "model_metadata.json"
MODEL_FILES: tuple[str, ...] = (FAILURE_MODEL_FILE, ANOMALY_MODEL_FILE)
SET_FILES: tuple[str, ...] = (FAILURE_MODEL_FILE, ANOMALY_MODEL_FILE, METADATA_FILE)

BACKUP_MARKER = ".backup_"
BACKUP_TS_FORMAT = "%Y%m%d_%H%M%S"
BACKUP_TS_RE = re.compile(r"^\d{8}_\d{6}$")
# Up to six digits a part: a version edited by hand into 99999999999999999999.0.0 is not one.
VERSION_RE = re.compile(r"^(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})$")

LOCK_FILE = ".registry.lock"
LOCK_INFO_FILE = ".registry.lock.json"
TRAINING_LOCK_FILE = ".training.lock"
TRAINING_LOCK_INFO_FILE = ".training.lock.json"
STATE_FILE = ".registry_state.json"
REGISTRY_ID_FILE = ".registry_id"
SESSION_SECRET_FILE = ".session_secret"
# Present once an account or API key has ever existed: authentication stays on even while the database
# cannot be asked, and revoking the last key never turns a public server back into local mode.
AUTHENTICATION_MARKER = ".authentication_on"
JOURNAL_FILE = ".registry_journal.json"
AUTO_ROLLBACK_FILE = ".auto_rollback_last.json"  # the last automatic-rollback decision (shown on Status)
TMP_PREFIX = ".tmp-"
# The backup index (core/backup_index.py): a cache beside the sets, in its own folder so that saving it leaves
# the models directory's mtime (every reader's change stamp) alone.
INDEX_DIR = ".registry_index"
BACKUP_INDEX_FILE = "backups.json"

METRIC_NAMES: tuple[str, ...] = (
    "response_time",
    "error_rate",
    "battery_level",
    "signal_strength",
    "usage_frequency",
    "temperature",
    "humidity",
    "uptime_hours",
    "restart_count",
    "connection_drops",
    "data_transfer_rate",
)

METRIC_UNITS: dict[str, str] = {
    "response_time": "ms",
    "error_rate": "ratio",
    "battery_level": "%",
    "signal_strength": "dBm",
    "usage_frequency": "events/h",
    "temperature": "C",
    "humidity": "%",
    "uptime_hours": "h",
    "restart_count": "count",
    "connection_drops": "count",
    "data_transfer_rate": "kbps",
}

# Plausible physical ranges: predict rejects values outside them.
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "response_time": (0.0, 60_000.0),
    "error_rate": (0.0, 1.0),
    "battery_level": (0.0, 100.0),
    "signal_strength": (-150.0, 0.0),
    "usage_frequency": (0.0, 10_000.0),
    "temperature": (-60.0, 150.0),
    "humidity": (0.0, 100.0),
    "uptime_hours": (0.0, 1_000_000.0),
    "restart_count": (0.0, 10_000.0),
    "connection_drops": (0.0, 10_000.0),
    "data_transfer_rate": (0.0, 10_000_000.0),
}

PERFORMANCE_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1_score", "roc_auc")
GATED_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1_score")

DEFAULT_THRESHOLDS: dict[str, float] = {
    "accuracy": 0.7,
    "precision": 0.5,
    "recall": 0.5,
    "f1_score": 0.6,
}
DEFAULT_MIN_SAMPLES = 100
DEFAULT_KEEP_BACKUPS = 10
DEFAULT_DAYS_BACK = 180
MAX_DAYS_BACK = 3650
DEFAULT_HORIZON_DAYS = 7
DEFAULT_RETRAIN_INTERVAL_HOURS = 24 * 7
MAX_INTERVAL_HOURS = 24 * 7  # the simulator's longest gap between two readings

CLASSIFIERS: tuple[str, ...] = ("random_forest", "hgb", "logistic")
DEFAULT_CLASSIFIER = "logistic"

EVENT_KINDS: tuple[str, ...] = (
    "promote",
    "restore",
    "delete_backup",
    "cleanup",
    "external_change",
    "backup",
    "access",
    "hold",
    "candidate",
    "reject",  # a training run the validation gate rejected (recorded with the run; notified by webhook)
    "notification_test",  # an operator sent a test notification to every webhook target
    "alert_fired",
    "alert_resolved",
    "alert_acknowledged",
    "alert_silenced",
    "alert_unsilenced",  # a silence ran out while the alert was still open
    "auto_rollback",
)
CANDIDATES_DIR = "candidates"

# POST predict: failure probability at or above these is high / medium risk, below medium is low.
RISK_HIGH_PROBABILITY = 0.7
RISK_MEDIUM_PROBABILITY = 0.3

# Drift: the recent window compared with the live version's training window, in days (DRIFT_WINDOW_DAYS).
DEFAULT_DRIFT_WINDOW_DAYS = 7
MAX_DRIFT_WINDOW_DAYS = 90
# PSI bands: stable below PSI_MODERATE, moderate up to PSI_SIGNIFICANT, significant above.
PSI_MODERATE, PSI_SIGNIFICANT = 0.1, 0.25
DRIFT_BANDS: tuple[str, ...] = ("stable", "moderate", "significant")
KS_ALPHA = 0.01
# With hundreds of thousands of readings any shift has a tiny p-value: KS calls drift only when the largest gap
# between the two cumulative distributions is at least this big too.
KS_MIN_STATISTIC = 0.1
DRIFT_SCORE_NAME = "failure_probability"  # the prediction score's name among the drifted variables
