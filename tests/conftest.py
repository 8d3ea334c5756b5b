"""Fixtures over tests/support.py and tests/chart_support.py."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from .chart_support import Renders, render_chart
from .support import Project, cached_project, combo_id, matrix

ProjectFactory = Callable[..., Project]


@pytest.fixture(scope="session")
def projects_dir(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A folder shared by all xdist workers of this session."""
    base = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        base = base.parent
    path = base / "projects"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def project(projects_dir: Path) -> ProjectFactory:
    """`project(answers, install=True)`: a generated (and installed) project, cached."""

    def make(data: Mapping[str, Any], *, install: bool = True) -> Project:
        return cached_project(projects_dir, data, install=install)

    return make


@pytest.fixture(params=matrix(), ids=combo_id)
def renders(request: pytest.FixtureRequest, project: ProjectFactory) -> Renders:
    """Every combination's Helm chart, rendered once per values file (tests/chart_support.py)."""
    answers: dict[str, Any] = request.param
    return render_chart(project(answers, install=False))
