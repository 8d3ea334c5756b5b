"""Probes (/health/live, /health/ready, /health/startup) and the service's index."""

from __future__ import annotations

import asyncio
from typing import Any

from flask import Blueprint, Response

from .. import __version__
from ..core import health
from . import deps

blueprint = Blueprint("health", __name__)


def _json(report: health.Report) -> Response:
    return Response(report.json, status=report.status_code, mimetype="application/json")


@blueprint.get("/health/live")
def live() -> Response:
    return _json(health.liveness())


@blueprint.get("/health/ready")
def ready() -> Response:
    return _json(asyncio.run(deps.checks().readiness()))


@blueprint.get("/health/startup")
def startup() -> Response:
    return _json(health.startup())


@blueprint.get("/")
def index() -> dict[str, Any]:
    return {"service": deps.settings().service_name, "version": __version__}
