"""Liveness, readiness, Prometheus metrics, and the (key-protected) OpenAPI docs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from hashbank.service.app import Service, service_of
from hashbank.service.auth import require

router = APIRouter()
ServiceDep = Annotated[Service, Depends(service_of)]


@router.get("/healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    """Liveness: the process answers. No key needed."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"])
async def readyz(service: ServiceDep) -> JSONResponse:
    """Readiness: the index is loaded and keeps catching up with the change log (503 until then)."""
    status = service.follower.status()
    return JSONResponse(status, status_code=200 if status["ready"] else 503)


@router.get("/metrics", tags=["health"], dependencies=[require("metrics")], response_class=PlainTextResponse)
def metrics(service: ServiceDep) -> PlainTextResponse:
    """Prometheus text format, for this worker process."""
    return PlainTextResponse(service.metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/openapi.json", include_in_schema=False, dependencies=[require("docs")])
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", include_in_schema=False, dependencies=[require("docs")])
def docs() -> HTMLResponse:
    """Swagger UI; a browser asks for the key as the Basic-auth password and reuses it for the schema."""
    return get_swagger_ui_html(openapi_url="/openapi.json", title="hashbank API")
