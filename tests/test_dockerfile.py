"""The one Dockerfile model (svcgen/dockerfile.py): what check reads and what rehearse runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from svcgen.dockerfile import Dockerfile, Image, effective_command, parse_dockerfile, substitute

DOCKERFILE = """\
# syntax=docker/dockerfile:1
ARG PY=3.12
FROM python:${PY}-slim AS builder
ENV UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
CMD ["never", "used"]

FROM python:${PY}-slim AS runtime
ARG VERSION=1.0
ENV PYTHONUNBUFFERED=1 \\
    VIRTUAL_ENV=/app/.venv \\
    PATH=/app/.venv/bin:$PATH \\
    APP_VERSION=${VERSION}
WORKDIR /app
COPY --from=builder /app/.venv /app/.venv
USER 10001:10002
ENTRYPOINT ["python", "-m", "svc"]
CMD ["serve"]
"""


def test_dockerfile_final_stage(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    image = parse_dockerfile(tmp_path / "Dockerfile")
    assert image.entrypoint == ["python", "-m", "svc"]
    assert image.cmd == ["serve"]
    assert image.env["PATH"].startswith("/app/.venv/bin:/usr/local/sbin:")
    assert image.env["APP_VERSION"] == "1.0"
    assert "UV_PROJECT_ENVIRONMENT" not in image.env  # builder stage only
    assert (image.workdir, image.uid, image.gid) == ("/app", 10001, 10002)
    assert image.copies == ["/app/.venv"]


def test_dockerfile_shell_form_and_entrypoint_resets_inherited_cmd(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        'FROM python:3.12 AS base\nCMD ["base"]\nFROM base\nENTRYPOINT exec gunicorn app\n'
    )
    image = parse_dockerfile(tmp_path / "Dockerfile")
    assert image.entrypoint == ["/bin/sh", "-c", "exec gunicorn app"]
    assert image.cmd == []


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        (None, None, ["python", "-m", "svc", "serve"]),
        (None, ["migrate"], ["python", "-m", "svc", "migrate"]),
        (["python", "-m", "svc.worker"], None, ["python", "-m", "svc.worker"]),
        (["sh", "-c"], ["echo hi"], ["sh", "-c", "echo hi"]),
    ],
)
def test_kubernetes_command_and_args_semantics(
    command: list[str] | None, args: list[str] | None, expected: list[str]
) -> None:
    image = Image(entrypoint=["python", "-m", "svc"], cmd=["serve"])
    assert effective_command(image, command, args) == expected


def test_final_stage_chain_and_substitution_modes() -> None:
    """check's view: the final stage with the stages it builds on; unknown variables kept."""
    dockerfile = Dockerfile.parse("Dockerfile", DOCKERFILE + "FROM runtime AS final\nUSER app\n")
    chain = dockerfile.final_stage()
    assert [i.keyword for i in chain if i.keyword in {"FROM", "USER"}] == ["FROM", "USER"] * 2
    assert chain[0].args == "python:${PY}-slim AS runtime"
    assert dockerfile.global_args() == {"PY": "3.12"}
    assert substitute("python:${PY}-${OS:-slim}", {"PY": "3.12"}) == "python:3.12-slim"
    assert substitute("python:${PY}-${OS:-slim}", {"PY": "3.12"}, keep_unknown=True) == (
        "python:3.12-${OS:-slim}"
    )
