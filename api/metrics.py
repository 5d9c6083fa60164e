"""GET /metrics for Prometheus, and the middleware that counts and times every POST predict."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import deps
from api.security import reader
from core.modelops import ModelOps

PREDICT_PATH = "/predictions/predict"
VERSION_KEY = "model_version"  # request.state key: the version that served the prediction

router = APIRouter(dependencies=[Depends(reader)])


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(ops: Annotated[ModelOps, Depends(deps.ops)]) -> Response:
    """Prometheus text format: this process's prediction counters, the live model, training runs, alerts, drift."""
    body, content_type = ops.metrics()
    return Response(body, media_type=content_type)


class PredictionMetrics:
    """Times every POST predict from arrival to answer and counts it by model version and status (every status)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith(PREDICT_PATH):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception that escapes the handlers becomes the server's 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            version = scope.get("state", {}).get(VERSION_KEY)
            deps.ops(Request(scope)).observe_prediction(version, status, time.perf_counter() - started)
