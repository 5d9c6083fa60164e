"""create_api(): the FastAPI application dashboard/server.py mounts at /api, with its routes and error bodies."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.auth_routes import router as auth_router
from api.metrics import PredictionMetrics
from api.metrics import router as metrics_router
from api.nodelay import TcpNoDelay
from api.rendered import RenderedCache
from api.routes import router
from api.security import predict_requires_key_from
from core.config import Settings
from core.errors import HTTP_STATUS, RegistryError

log = logging.getLogger(__name__)
# Swagger UI's files, from a package that ships them (FastAPI's default page loads them from a CDN).
SWAGGER_STATIC = Path(fastapi_offline.__file__).parent / "static"

HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    503: "unavailable",
}


def _error(status: int, detail: str, code: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code, **extra}, status_code=status, headers=headers)


async def registry_error(request: Request, exc: RegistryError) -> JSONResponse:
    """The one mapping from core error codes to HTTP statuses."""
    status = HTTP_STATUS.get(exc.code, 500)
    log.warning("api: %s %s -> %d %s: %s", request.method, request.url.path, status, exc.code, exc.message)
    return _error(status, exc.message, exc.code)


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """401/403/404/405 and friends in the same {detail, code} shape."""
    return _error(
        exc.status_code, str(exc.detail), HTTP_CODES.get(exc.status_code, "error"), getattr(exc, "headers", None)
    )


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each bad field in one readable line, plus the structured list."""
    errors = [
        {"field": _field(tuple(e.get("loc", ()))), "message": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
    return _error(422, detail, "invalid_input", errors=errors)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: log the traceback, answer JSON without internals."""
    log.exception("unhandled error in %s %s", request.method, request.url.path)
    return _error(500, f"internal error ({type(exc).__name__}); see the server log", "error")


def create_api(
    settings: Settings | None = None, *, predict_requires_key: bool | None = None, reads_need_key: bool = False
) -> FastAPI:
    """The API for these settings (from the environment by default); paths are relative to its /api mount."""
    settings = settings or Settings.from_env()
    app = FastAPI(
        title="Device Intelligence Model Ops API",
        version="1.0",
        description=(
            "Model status, comparison, health, versions, backups, restore, training jobs and predictions. "
            "Write endpoints need `Authorization: Bearer <API_KEY>` when API_KEY is set."
        ),
        docs_url=None,  # served below from local files: the docs work without internet
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.mount("/static", StaticFiles(directory=SWAGGER_STATIC), name="static")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url=f"{root}/static/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/static/swagger-ui.css",
            swagger_favicon_url=f"{root}/static/favicon.png",
        )

    app.state.settings = settings
    app.state.predict_requires_key = (
        predict_requires_key_from() if predict_requires_key is None else predict_requires_key
    )
    app.state.rendered = RenderedCache()
    app.state.reads_need_key = reads_need_key  # the server is reachable beyond loopback
    app.include_router(router)
    app.include_router(auth_router)
    app.include_router(metrics_router)
    app.add_middleware(PredictionMetrics)
    app.add_middleware(TcpNoDelay)
    app.add_exception_handler(RegistryError, registry_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected_error)
    return app
