"""Probes (/health/live, /health/ready, /health/startup) and the service's index."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from .. import __version__
from ..core import health
from .deps import ChecksDep, SettingsDep

router = APIRouter()


def _json(report: health.Report) -> JSONResponse:
    return JSONResponse(report.body, status_code=report.status_code)


@router.get("/health/live", tags=["health"])
async def live() -> JSONResponse:
    return _json(health.liveness())


@router.get("/health/ready", tags=["health"], responses={503: {"description": "Not ready"}})
async def ready(checks: ChecksDep) -> JSONResponse:
    return _json(await checks.readiness())


@router.get("/health/startup", tags=["health"], responses={503: {"description": "Starting"}})
async def startup() -> JSONResponse:
    return _json(health.startup())


@router.get("/", tags=["meta"])
async def index(settings: SettingsDep) -> dict[str, Any]:
    return {"service": settings.service_name, "version": __version__}
