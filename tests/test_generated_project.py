"""End to end: every combination generates a project whose own lint and tests pass."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from .conftest import ProjectFactory
from .support import combo_id, matrix, service_env

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("answers", matrix(), ids=combo_id)
def test_make_lint_and_test_pass(project: ProjectFactory, answers: dict[str, Any]) -> None:
    generated = project(answers)
    generated.run("make", "lint")
    prefix = f"svcgen_{uuid.uuid4().hex[:8]}"
    result = generated.run("make", "test", env=service_env(answers["services"], prefix))
    assert " passed" in result.stdout
    assert " skipped" not in result.stdout, "generated tests must not skip here"
