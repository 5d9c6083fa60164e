"""Request and response bodies; requests forbid unknown fields so a typo is a 422, not a silent default."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

from core import constants as C


class Strict(BaseModel):
    """Base for request bodies: unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid")


class TrainRequest(Strict):
    """POST train: the guide's body; a missing body means these defaults."""

    force_retrain: StrictBool = False
    # The range is checked once, by core.training_run.TrainingRequest; here it only documents the schema.
    days_back: StrictInt = Field(
        C.DEFAULT_DAYS_BACK,
        description=f"days of telemetry to train on, 1 to {C.MAX_DAYS_BACK}",
        json_schema_extra={"minimum": 1, "maximum": C.MAX_DAYS_BACK},
    )
    trigger: Literal["api", "schedule"] = Field(
        "api", description="schedule: a run the schedule started (the compose trainer); judged on the Schedule page"
    )


class RestoreRequest(Strict):
    """POST models/restore: exactly one of backup_timestamp or version."""

    backup_timestamp: StrictStr | None = Field(
        None, max_length=32, description="YYYYMMDD_HHMMSS suffix of a backup set"
    )
    version: StrictStr | None = Field(None, max_length=32, description="MAJOR.MINOR.PATCH held by a backup set")
    reason: StrictStr | None = Field(None, max_length=1000, description="why (required; recorded in the audit trail)")
    during_training: StrictBool = Field(
        False,
        description="restore even though a training run is in flight (it is then kept as a candidate, not promoted)",
    )

    @model_validator(mode="after")
    def _exactly_one_target(self) -> RestoreRequest:
        if (self.backup_timestamp is None) == (self.version is None):
            raise ValueError("give exactly one of backup_timestamp or version")
        return self

    @property
    def target(self) -> str:
        return self.backup_timestamp if self.backup_timestamp is not None else str(self.version)


class ReasonRequest(Strict):
    """A hold, its release, or a candidate's approval or discarding: why, recorded in the audit trail."""

    reason: StrictStr | None = Field(None, max_length=1000, description="why (recorded in the audit trail)")


class SilenceRequest(Strict):
    """POST alerts/{id}/silence: for how long, and why (recorded in the audit trail)."""

    minutes: StrictInt = Field(..., ge=1, le=30 * 24 * 60, description="how long the alert stays silenced")
    reason: StrictStr | None = Field(None, max_length=1000, description="why (required; recorded in the audit trail)")


class PredictRequest(Strict):
    """POST predict: one reading of a device, any of the 11 metrics (the rest: its latest stored readings)."""

    device_id: StrictStr = Field(..., min_length=1, max_length=64)
    metrics: dict[str, Any] = Field(
        ...,
        description=f"any of: {', '.join(C.METRIC_NAMES)}; a metric left out takes the device's latest reading "
        "(listed in filled_metrics), and is a 422 only when the device has none",
    )


class ErrorBody(BaseModel):
    """Every error response."""

    detail: str
    code: str


class StatusResponse(BaseModel):
    """GET models/status, compatible with the old service and the guide's jq paths."""

    is_trained: bool
    model_performance: dict[str, Any] | None
    feature_columns: list[str] | None
    feature_count: int = Field(0, description="how many features the live model reads")
    model_metadata: dict[str, Any] | None = Field(
        None, description="the live metadata file without feature_columns (listed once, above)"
    )
    last_updated: str | None = Field(None, description="when the current model files last changed (ISO 8601 UTC)")
    level: Literal["green", "amber", "red"] = Field("green", description="green: nothing to do; red: act now")
    problems: list[str] = Field(default_factory=list, description="every alert, most severe first")
    alerts: list[dict[str, Any]] = Field(default_factory=list, description="the same, with level and kind")


class TrainStarted(BaseModel):
    """POST train accepted: the job runs in the background; poll GET train/{job_id}."""

    message: str
    status: Literal["started"]
    job_id: str
    force_retrain: bool
    days_back: int
    started_at: str
    status_url: str


class RestoreResponse(BaseModel):
    """POST models/restore done."""

    message: str
    version: str
    from_version: str | None
    backup_timestamp: str | None
    undo_backup_timestamp: str | None = Field(None, description="the backup of the set this restore replaced")
    held: bool = Field(True, description="the restored version is held until an admin releases the hold")
    audit_pending: str | None = Field(None, description="set when the restore was applied but its audit event waits")
    actor: str


class PredictResponse(BaseModel):
    """POST predict result."""

    device_id: str
    failure_probability: float
    risk_level: Literal["low", "medium", "high"]
    anomaly_score: float = Field(..., description="higher is more unusual; above 0 the anomaly model flags the reading")
    is_anomaly: bool
    model_version: str
    predicted_at: str
    history_points: int = Field(..., description="stored readings of this device used for the trailing-window features")
    failure_probability_percent: float = Field(..., description="the same probability on the original 0-100 scale")
    recommendations: list[str] = Field(..., description="maintenance advice from the risk level and the metrics")
    filled_metrics: dict[str, Any] = Field(default_factory=dict, description="metrics not sent: value and when read")
