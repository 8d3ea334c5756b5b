"""Render a generated project's Helm chart once per values file and share the renders.

Renders live next to the project (`<project>.chart/`), guarded by a file lock, so each
combination is rendered once per session however many tests and xdist workers read it.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from filelock import FileLock

from .support import TOOLS_BIN, Project

RELEASE = "svc"
NAMESPACE = "apps"
# values files the chart is checked with: name -> path inside the chart (None: defaults only)
VALUES: dict[str, str | None] = {
    "default": None,
    "dev": "values-dev.yaml",
    "staging": "values-staging.yaml",
    "prod": "values-prod.yaml",
}
# Custom resources the chart may render (checked by crd-validate, not kubernetes-validate).
CUSTOM_KINDS = {"ServiceMonitor", "HTTPRoute", "ExternalSecret", "PrometheusRule"}
POD_OWNERS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")


def chart_tool(name: str) -> str:
    """A tool from .tools/bin (scripts/install-tools.sh): missing fails the test, never skips."""
    path = TOOLS_BIN / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"{path} is missing: run scripts/install-tools.sh")
    return str(path)


@dataclass(frozen=True)
class Renders:
    project: Project
    chart: Path
    files: dict[str, Path]  # values name -> rendered manifests
    docs: dict[str, list[dict[str, Any]]]  # values name -> parsed manifests
    values: dict[str, Any]  # the chart's values.yaml
    workdir: Path  # where the renders (and checkov's scan folder) live

    @property
    def answers(self) -> dict[str, Any]:
        return self.project.answers

    @property
    def slug(self) -> str:
        return self.project.slug

    @property
    def package(self) -> str:
        return self.project.package


_RENDERS: dict[Path, Renders] = {}


def render_chart(project: Project) -> Renders:
    if project.path not in _RENDERS:
        _RENDERS[project.path] = _render(project)
    return _RENDERS[project.path]


def _render(project: Project) -> Renders:
    chart = project.path / "charts" / project.slug
    assert chart.is_dir(), f"no chart at {chart}"
    out = project.path.parent / f"{project.path.name}.chart"
    with FileLock(str(out) + ".lock"):
        if not (out / ".done").exists():
            shutil.rmtree(out, ignore_errors=True)
            (out / "rendered").mkdir(parents=True)
            helm = chart_tool("helm3")
            for name, values in VALUES.items():
                args = [helm, "template", RELEASE, str(chart), "--namespace", NAMESPACE]
                if values:
                    args += ["--values", str(chart / values)]
                rendered = project.run(*args).stdout
                (out / "rendered" / f"{name}.yaml").write_text(rendered, encoding="utf-8")
            (out / ".done").touch()
    files = {name: out / "rendered" / f"{name}.yaml" for name in VALUES}
    docs = {
        name: [doc for doc in yaml.safe_load_all(file.read_text(encoding="utf-8")) if doc]
        for name, file in files.items()
    }
    values = yaml.safe_load((chart / "values.yaml").read_text(encoding="utf-8"))
    return Renders(project, chart, files, docs, values, out)


def checkov_scan_dir(renders: Renders) -> Path:
    """One folder for one checkov run over every values file and both frameworks:
    rendered/<values>.yaml for the kubernetes framework, <values>/<chart>/ for the helm one
    (each environment's copy has values.yaml = the defaults merged with its values file, as
    `helm template -f` merges them, because checkov's helm framework takes no per-chart values)."""
    scan = renders.workdir / "checkov"
    with FileLock(str(scan) + ".lock"):
        if not (scan / ".done").exists():
            shutil.rmtree(scan, ignore_errors=True)
            shutil.copytree(renders.files["default"].parent, scan / "rendered")
            for name, values in VALUES.items():
                copy_dir = scan / name / renders.slug
                shutil.copytree(renders.chart, copy_dir)
                if values:
                    override = yaml.safe_load((renders.chart / values).read_text(encoding="utf-8"))
                    merged = merge(renders.values, override)
                    (copy_dir / "values.yaml").write_text(yaml.safe_dump(merged), encoding="utf-8")
                for environment in copy_dir.glob("values-*.yaml"):
                    environment.unlink()
            (scan / ".done").touch()
    return scan


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of a values file over the defaults: maps merge, the rest replaces."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def fullname(renders: Renders) -> str:
    """The chart's `fullname` helper for release RELEASE."""
    name = renders.slug
    full = RELEASE if name in RELEASE else f"{RELEASE}-{name}"
    return full[:63].rstrip("-")


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, name, pod spec) of every object that makes pods."""
    specs = []
    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind == "Pod":
            specs.append((kind, name, doc["spec"]))
        elif kind in POD_OWNERS:
            specs.append((kind, name, doc["spec"]["template"]["spec"]))
        elif kind == "CronJob":
            specs.append((kind, name, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
    return specs


def crd_validate(renders: Renders, docs: dict[str, list[dict[str, Any]]]) -> Any:
    """Run crd-validate (scripts/tools/crd-validate.mjs) over each label's `docs`."""
    files = []
    for label, manifests in docs.items():
        instance = renders.workdir / f"crd-{label}.json"
        instance.write_text(json.dumps(manifests), encoding="utf-8")
        files.append(str(instance))
    return renders.project.run(chart_tool("crd-validate"), *files, check=False)
