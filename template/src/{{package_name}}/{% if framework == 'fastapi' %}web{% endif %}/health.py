"""Probes (/health/live, /health/ready, /health/startup) and the service's index."""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response

from .. import __version__
from ..core import health
from .deps import ChecksDep, SettingsDep
from .routes import Routes

routes = Routes()


def _json(report: health.Report) -> Response:
    return Response(report.json, status_code=report.status_code, media_type="application/json")


@routes.get("/health/live", tags=["health"])
async def live() -> Response:
    return _json(health.liveness())


@routes.get("/health/ready", tags=["health"], responses={503: {"description": "Not ready"}})
async def ready(checks: ChecksDep) -> Response:
    return _json(await checks.readiness())


@routes.get("/health/startup", tags=["health"], responses={503: {"description": "Starting"}})
async def startup() -> Response:
    return _json(health.startup())


@routes.get("/", tags=["meta"])
async def index(settings: SettingsDep) -> dict[str, Any]:
    return {"service": settings.service_name, "version": __version__}
