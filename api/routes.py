"""The /predictions endpoints: parse, authorise, call core, shape the answer."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api import deps, views
from api.schemas import (
    ErrorBody,
    PredictRequest,
    PredictResponse,
    RestoreRequest,
    RestoreResponse,
    StatusResponse,
    TrainRequest,
    TrainStarted,
)
from api.security import predictor_caller, writer
from core import backups as B
from core import constants as C
from core.config import Settings
from core.context import get_context
from core.errors import InvalidInput
from core.versions import Version

router = APIRouter(prefix="/predictions", responses={500: {"model": ErrorBody}})


class JSONBytes(Response):
    """An already rendered JSON body."""

    media_type = "application/json"


Ctx = Annotated[deps.AppContext, Depends(deps.context)]
Writer = Annotated[str, Depends(writer)]
AUTH = {401: {"model": ErrorBody}, 403: {"model": ErrorBody}}
DB = {503: {"model": ErrorBody, "description": "the database is unreachable"}}


# The two most-polled reads: answered from the models directory alone (no database, no worker thread),
# rendered once per state of its files; three stat calls never block the event loop for long.
@router.get("/models/status", response_model=StatusResponse)
async def models_status(request: Request) -> Response:
    """Whether a model is trained, its metrics, features and full metadata (the guide's jq paths)."""
    state = request.app.state
    return JSONBytes(state.rendered.body("status", state.files, views.status))


@router.get("/models/version")
async def models_version(request: Request) -> Response:
    """The current version, when it was trained and promoted, and by whom."""
    state = request.app.state
    return JSONBytes(state.rendered.body("version", state.files, views.version))


@router.get("/models/compare", responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}})
def models_compare(
    ctx: Ctx,
    a: Annotated[str | None, Query(max_length=32, description="version (default: the current model)")] = None,
    b: Annotated[str | None, Query(max_length=32, description="version (default: the newest backup)")] = None,
) -> dict[str, Any]:
    """Metric, data and parameter changes between two versions."""
    return views.compare(ctx.registry, a, b)


@router.get("/models/health")
def models_health(ctx: Ctx) -> dict[str, Any]:
    """Files present, loadable, checksums and sizes; 200 with healthy false when something is broken."""
    return views.health(ctx)


@router.get("/models/versions")
def models_versions(ctx: Ctx) -> dict[str, Any]:
    """Every version ever promoted, newest first, with the backups that still hold it."""
    return views.versions(ctx)


@router.get("/models/backups")
def models_backups(ctx: Ctx) -> dict[str, Any]:
    """Every backup set, newest first, with integrity and disk usage."""
    return views.backups(ctx)


@router.get("/models/events", responses={**DB, 422: {"model": ErrorBody}})
def models_events(
    ctx: Ctx,
    kind: Annotated[str | None, Query(description=f"one of {', '.join(C.EVENT_KINDS)}")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The registry's audit trail (promote, restore, delete, clean-up, external change), newest first."""
    if kind is not None and kind not in C.EVENT_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(C.EVENT_KINDS)}; got {kind!r}")
    history = deps.require_history(ctx)
    with deps.database_call():
        return views.events(history.events(limit=limit, kinds=[kind] if kind else None))


@router.post("/train", status_code=202, response_model=TrainStarted, responses={**AUTH, **DB, 409: {"model": ErrorBody}})
def train(request: Request, ctx: Ctx, actor: Writer, body: Annotated[TrainRequest | None, Body()] = None) -> dict[str, Any]:
    """Start training in the background (a missing body means the defaults); poll GET train/{job_id}."""
    body = body or TrainRequest()
    jobs = deps.require_jobs(ctx)
    with deps.database_call():
        job = jobs.start(days_back=body.days_back, force=body.force_retrain, actor=actor, trigger="api")
    return views.train_started(job, str(request.url_for("train_status", job_id=job.run_id).path))


@router.get("/train/{job_id}", name="train_status", responses={**DB, 404: {"model": ErrorBody}})
def train_status(ctx: Ctx, job_id: str) -> dict[str, Any]:
    """A training job's stage, progress, outcome, version, gate checks, log and error."""
    jobs = deps.require_jobs(ctx)
    with deps.database_call():
        return views.run(jobs.get(job_id), job_id)


@router.post(
    "/models/restore",
    response_model=RestoreResponse,
    responses={**AUTH, **DB, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
def restore(ctx: Ctx, actor: Writer, body: RestoreRequest) -> dict[str, Any]:
    """Make a backup set current, by timestamp or version; the replaced set is backed up first."""
    if body.backup_timestamp is not None:
        B.validate_timestamp(body.backup_timestamp)
    else:
        Version.parse(body.version)
    history = deps.require_history(ctx)  # a restore without its audit row is not allowed
    with deps.database_call():
        return views.restore(ctx.registry, history, body.target, actor=actor, reason=body.reason)


@router.post("/predict", response_model=PredictResponse, responses={**AUTH, **DB, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}})
async def predict(request: Request, _caller: Annotated[str, Depends(predictor_caller)], body: PredictRequest) -> Response:
    """Failure probability, risk level and anomaly score for one reading, with the device's recent history."""
    # One worker-thread hop for the blocking part (database, models); parsing and answering stay on the event loop.
    return JSONResponse(await run_in_threadpool(_predict, deps.settings_of(request), body))


def _predict(settings: Settings, body: PredictRequest) -> dict[str, Any]:
    predictor = deps.predictor(get_context(settings))
    with deps.database_call():
        return views.prediction(predictor.predict(body.device_id, body.metrics))
