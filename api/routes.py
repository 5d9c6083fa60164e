"""The /predictions endpoints: each parses, authorises, calls one verb of the application layer and serialises."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api import deps
from api.schemas import (
    ErrorBody,
    PredictRequest,
    PredictResponse,
    ReasonRequest,
    RestoreRequest,
    RestoreResponse,
    SilenceRequest,
    StatusResponse,
    TrainRequest,
    TrainStarted,
)
from api.security import authenticate, json_write, reader, writer
from core import constants as C
from core import serialize as S
from core.errors import IntegrityError, NotFound
from core.identity import Principal
from core.modelops import ModelOps
from core.storage import set_signature
from core.training_run import TrainingRequest

router = APIRouter(prefix="/predictions", responses={500: {"model": ErrorBody}}, dependencies=[Depends(reader)])


class JSONBytes(Response):
    """An already rendered JSON body."""

    media_type = "application/json"


Ops = Annotated[ModelOps, Depends(deps.ops)]
Writer = Annotated[Principal, Depends(writer)]
AUTH = {401: {"model": ErrorBody}, 403: {"model": ErrorBody}}
DB = {503: {"model": ErrorBody, "description": "the database is unreachable"}}


# The reads served from the rendered cache: path under the API's mount -> cache key (api.rendered.RenderedReads).
RENDERED_PATHS: dict[str, str] = {
    "/predictions/models/status": "status",
    "/predictions/models/version": "version",
    "/predictions/health": "health",
}


async def _rendered(request: Request, key: str, serialise: Any) -> Response:
    """The status-like bodies the guide's scripts poll: served from the rendered cache while the files are unchanged."""
    state = request.app.state
    signature = set_signature(state.settings.models_dir)
    body = state.rendered.get(key, signature)
    if body is None:
        build = lambda: serialise(deps.ops(request).status())  # noqa: E731
        body = await run_in_threadpool(state.rendered.render, key, signature, build)
    return JSONBytes(body)


@router.get("/models/status", response_model=StatusResponse)
async def models_status(request: Request) -> Response:
    """Whether a model is trained, its metrics and full metadata (the guide's jq paths), and every problem."""
    return await _rendered(request, "status", S.status_dict)


@router.get("/models/version")
async def models_version(request: Request) -> Response:
    """The live version, when it was trained and promoted, by whom, and how it became live."""
    return await _rendered(request, "version", S.version_dict)


@router.get("/health")
async def predictions_health(request: Request) -> Response:
    """The original service's health check: service, status (operational, degraded or error), models trained."""
    return await _rendered(request, "health", S.predictions_health_dict)


@router.get("/models/compare", responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}})
def models_compare(
    ops: Ops,
    a: Annotated[str | None, Query(max_length=32, description="version (default: the live model)")] = None,
    b: Annotated[str | None, Query(max_length=32, description="version (default: the newest other backup)")] = None,
    same_data: Annotated[bool, Query(description="score both versions on one labelled window (see same_data)")] = False,
    window_start: Annotated[dt.date | None, Query(description="same_data: first day (YYYY-MM-DD)")] = None,
    window_end: Annotated[dt.date | None, Query(description="same_data: last day (default: newest labelled)")] = None,
    days: Annotated[int | None, Query(ge=1, le=365, description="same_data: window length in days")] = None,
) -> dict[str, Any]:
    """Metric, data and parameter changes between two versions; `holdout_notice` says when their stored figures
    come from different windows. With `same_data=true` both are also scored on one labelled window (`same_data`)."""
    try:
        if same_data or window_start or window_end or days:
            return compare_same_data_body(ops, a, b, window_start, window_end, days)
        comparison = ops.compare(a, b)
        return {**S.comparison_dict(comparison), "holdout_notice": ops.holdout_notice(comparison)}
    except NotFound as exc:
        if a is not None or b is not None:
            raise  # a version asked for by name must exist
        try:
            current = ops.current()
        except IntegrityError:
            current = None
        return S.comparison_unavailable_dict(current, exc.message)


@router.get("/models/health")
def models_health(ops: Ops) -> dict[str, Any]:
    """Files present, loadable, checksums and sizes, the database, and the problems; 200 even when unhealthy."""
    return S.health_dict(ops.status(), ops.training_holder())


@router.get("/models/versions")
def models_versions(ops: Ops) -> dict[str, Any]:
    """Every version ever promoted, newest first, with the backups that still hold it."""
    entries = ops.versions()
    return {
        "versions": [S.version_entry_dict(e) for e in entries],
        "current_version": next((e.version for e in entries if e.is_current), None),
        "history_available": ops.database_error is None,
    }


@router.get("/models/backups")
def models_backups(ops: Ops) -> dict[str, Any]:
    """Every backup set, newest first, with integrity and disk usage."""
    sets = ops.backups()
    return {
        "backups": [S.backup_dict(s) for s in sets],
        "count": len(sets),
        "keep_backups": ops.settings.keep_backups,
        "disk_usage": S.disk_usage_dict(ops.disk_usage()),
    }


@router.get("/models/events", responses={**DB, 422: {"model": ErrorBody}})
def models_events(
    ops: Ops,
    kind: Annotated[str | None, Query(description=f"one of {', '.join(C.EVENT_KINDS)}")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The registry's audit trail (promote, restore, delete, clean-up, external change), newest first."""
    found = ops.events(kinds=[kind] if kind else (), limit=limit)
    return {"events": [S.event_dict(e) for e in found], "count": len(found)}


@router.post(
    "/train", status_code=202, response_model=TrainStarted, responses={**AUTH, **DB, 409: {"model": ErrorBody}}
)
def train(
    request: Request, ops: Ops, actor: Writer, body: Annotated[TrainRequest | None, Body()] = None
) -> dict[str, Any]:
    """Start training in the background (a missing body means the defaults); poll GET train/{job_id}."""
    body = body or TrainRequest()
    wanted = TrainingRequest.parse(days_back=body.days_back, force=body.force_retrain, settings=ops.settings)
    job = ops.start_training(wanted, actor=actor, trigger=body.trigger)
    return S.train_started_dict(job, str(request.url_for("train_status", job_id=job.run_id).path))


@router.get("/models/schedule")
def models_schedule(ops: Ops) -> dict[str, Any]:
    """TRAINING_SCHEDULE: the next runs, the last scheduled run and its outcome, whether a due run was missed
    or failed (`missed`, `failed`), `seconds_until_next` (what the compose trainer sleeps) and the deploy lines."""
    report = ops.schedule()
    return {**report.to_dict(), "recipes": ops.schedule_recipes() if report.expression else None}


@router.get("/train/{job_id}", name="train_status", responses={**DB, 404: {"model": ErrorBody}})
def train_status(ops: Ops, job_id: str) -> dict[str, Any]:
    """A training job's stage, progress, outcome, version, gate checks, log and error."""
    return S.run_dict(ops.run(job_id))


@router.post(
    "/models/restore",
    response_model=RestoreResponse,
    responses={**AUTH, **DB, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
def restore(ops: Ops, actor: Writer, body: RestoreRequest) -> dict[str, Any]:
    """Make a backup set current, by timestamp or version; the replaced set is backed up first."""
    restored = ops.restore(body.target, actor=actor, reason=body.reason, during_training=body.during_training)
    return S.restore_dict(restored, actor.name)


WRITE = {**AUTH, **DB, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}}


@router.get("/models/hold", responses=DB)
def models_hold(ops: Ops) -> dict[str, Any]:
    """The hold on the live version (placed by a restore or an admin), or null."""
    hold = ops.hold()
    return {"hold": S.hold_dict(hold) if hold else None}


@router.post("/models/hold", responses=WRITE)
def place_hold(ops: Ops, actor: Writer, body: ReasonRequest) -> dict[str, Any]:
    """Hold the live version (admin): gate-passing runs wait as candidates until the hold is released."""
    return {"hold": S.hold_dict(ops.place_hold(actor=actor, reason=body.reason))}


@router.post("/models/hold/release", responses=WRITE)
def release_hold(ops: Ops, actor: Writer, body: ReasonRequest) -> dict[str, Any]:
    """Release the hold (admin): the next gate-passing run goes live again."""
    return {"released": S.hold_dict(ops.release_hold(actor=actor, reason=body.reason))}


@router.get("/models/candidates")
def models_candidates(ops: Ops) -> dict[str, Any]:
    """Gate-passing runs kept aside by a hold or PROMOTION=manual, newest first, with their gate checks."""
    found = ops.candidates()
    shadows = {f.candidate_id: f.to_dict() for f in ops.shadow_performance()} if found and ops.db is not None else {}
    return {
        "candidates": [{**S.candidate_dict(c), "shadow": shadows.get(c.id)} for c in found],
        "count": len(found),
    }


@router.get("/models/candidates/{candidate_id}", responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}})
def models_candidate(ops: Ops, candidate_id: str) -> dict[str, Any]:
    """One candidate, and how it compares with the live version."""
    chosen = ops.candidate(candidate_id)
    try:
        comparison: dict[str, Any] | None = S.comparison_dict(ops.compare_candidate(candidate_id))
    except NotFound:
        comparison = None
    return {"candidate": S.candidate_dict(chosen), "compared_with_live": comparison}


@router.post("/models/candidates/{candidate_id}/approve", responses=WRITE)
def approve_candidate(ops: Ops, actor: Writer, candidate_id: str, body: ReasonRequest) -> dict[str, Any]:
    """Promote a candidate (admin); it goes live even over a hold, which is released."""
    promoted = ops.approve_candidate(candidate_id, actor=actor, reason=body.reason)
    return {"promoted": promoted.version, "candidate_id": candidate_id, "actor": actor.name}


@router.post("/models/candidates/{candidate_id}/discard", responses=WRITE)
def discard_candidate(ops: Ops, actor: Writer, candidate_id: str, body: ReasonRequest) -> dict[str, Any]:
    """Remove a candidate without promoting it (admin)."""
    ops.discard_candidate(candidate_id, actor=actor, reason=body.reason)
    return {"discarded": candidate_id, "actor": actor.name}


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses={**AUTH, **DB, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
)
async def predict(request: Request, _json: Annotated[None, Depends(json_write)], body: PredictRequest) -> Response:
    """Failure probability, risk level and anomaly score for one reading, with the device's recent history."""
    # One database-thread hand-off for the blocking part (the caller's key, the history, the models); parsing and
    # answering stay on the event loop.
    write = request.app.state.predict_requires_key
    authorise = functools.partial(authenticate, request, write=write)
    prediction = await deps.ops(request).predict_async(body.device_id, body.metrics, authorise=authorise)
    request.state.model_version = prediction.model_version  # the version label of its metrics (api/metrics.py)
    return JSONResponse(S.prediction_dict(prediction))


@router.get("/models/drift", responses={**DB, 404: {"model": ErrorBody}, 422: {"model": ErrorBody}})
def models_drift(
    ops: Ops,
    window_days: Annotated[
        int | None,
        Query(ge=1, le=C.MAX_DRIFT_WINDOW_DAYS, description="recent window in days (default: DRIFT_WINDOW_DAYS, 7)"),
    ] = None,
    histograms: Annotated[bool, Query(description="include both windows' distributions on shared bins")] = False,
) -> dict[str, Any]:
    """PSI and KS per metric, feature and prediction score: the last days against the live version's training window."""
    return S.drift_dict(ops.drift(window_days), histograms=histograms)


def compare_same_data_body(
    ops: ModelOps, a: str | None, b: str | None, start: dt.date | None, end: dt.date | None, days: int | None
) -> dict[str, Any]:
    """GET models/compare?same_data=true: the stored comparison, plus both versions scored on one window."""
    scored = ops.compare_same_data(a, b, window_start=start, window_end=end, days=days)
    return {**S.comparison_dict(scored.stored), "holdout_notice": scored.notice, "same_data": scored.to_dict()}


@router.get("/models/performance", responses={**DB, 422: {"model": ErrorBody}})
def models_performance(
    ops: Ops,
    since: Annotated[dt.date | None, Query(description="first prediction day (YYYY-MM-DD, UTC)")] = None,
    until: Annotated[dt.date | None, Query(description="last prediction day (YYYY-MM-DD, UTC)")] = None,
) -> dict[str, Any]:
    """Realised precision, recall, F1 and AUC per version and per week, with the counts behind each figure:
    logged predictions joined with recorded failures once the horizon has passed (shadow candidates too)."""
    return ops.realised_performance(since=since, until=until).to_dict()


@router.get("/notifications", responses={**DB, 422: {"model": ErrorBody}})
def notifications(
    ops: Ops, limit: Annotated[int, Query(ge=1, le=1000, description="deliveries, newest first")] = 200
) -> dict[str, Any]:
    """Webhook targets (names and hosts; whether a secret is set, never the secret) and the delivery log."""
    found = ops.notification_log(limit=limit)
    return {
        **ops.notification_setup().to_dict(),
        "deliveries": [d.to_dict() for d in found],
        "count": len(found),
    }


@router.post("/notifications/test", responses=WRITE)
def notifications_test(ops: Ops, actor: Writer) -> dict[str, Any]:
    """Send a signed test message to every webhook target now (operator); each result is in the delivery log."""
    attempts = ops.send_test_notification(actor=actor)
    return {
        "attempts": [a.to_dict() for a in attempts],
        "delivered": sum(1 for a in attempts if a.status == "delivered"),
        "actor": actor.name,
    }


@router.get("/alerts", responses=DB)
def alerts(ops: Ops) -> dict[str, Any]:
    """Open alerts (firing, acknowledged or silenced) and recently resolved ones; `firing` counts what pages someone.

    The server evaluates every rule in the background; a read evaluates first only when that is older than
    ALERT_EVALUATE_SECONDS or the model files or history changed since."""
    return ops.alerts(include_resolved=True, refresh=True).to_dict()


@router.post("/alerts/{alert_id}/acknowledge", responses=WRITE)
def acknowledge_alert(ops: Ops, actor: Writer, alert_id: int, body: ReasonRequest) -> dict[str, Any]:
    """Someone is on it (operator, reason required): the alert stops counting as firing until it resolves."""
    done = ops.acknowledge_alert(alert_id, actor=actor, reason=body.reason)
    return {"alert": done.to_dict(dt.datetime.now(dt.UTC)), "actor": actor.name}


@router.post("/alerts/{alert_id}/silence", responses=WRITE)
def silence_alert(ops: Ops, actor: Writer, alert_id: int, body: SilenceRequest) -> dict[str, Any]:
    """Silence the alert for `minutes` (operator, reason required); it still resolves when its condition clears."""
    now = dt.datetime.now(dt.UTC)
    until = now + dt.timedelta(minutes=body.minutes)
    done = ops.silence_alert(alert_id, until=until, actor=actor, reason=body.reason, now=now)
    return {"alert": done.to_dict(now), "actor": actor.name}
