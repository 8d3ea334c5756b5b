"""One JSON shape for every error answer, whatever the framework: `{"detail": ...}`.

`detail` is a sentence, or for a body that fails validation (422) the list of problems.
FastAPI answers this shape by default; the Flask adapter answers it too, 404 and 405 included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

# What each error status means for this API (the OpenAPI document shows these).
DESCRIPTIONS = {
    400: "The body is not JSON",
    404: "Not found",
    405: "Method not allowed",
    413: "The body is larger than MAX_BODY_BYTES",
    500: "Internal server error",
    503: "A backing service is unavailable or not ready; `detail` names it and why",
}


class ErrorBody(BaseModel):
    """Body of every error answer."""

    detail: str | list[dict[str, Any]]


def error_body(detail: str | Sequence[Any]) -> dict[str, Any]:
    return {"detail": detail}


def too_large(max_bytes: int) -> str:
    return f"the body is larger than {max_bytes} bytes"


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses (FastAPI's `responses=` argument)."""
    return {code: {"model": ErrorBody, "description": DESCRIPTIONS[code]} for code in statuses}
