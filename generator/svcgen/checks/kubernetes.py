"""Checks on Kubernetes: Helm charts inspected without rendering, and plain manifests."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import yaml

from .repo import Hit, Repo, Result, Status, where


@dataclass
class Manifests:
    """Helm charts (templates + values.yaml, not rendered) and plain manifests."""

    files: list[PurePosixPath]
    values: list[PurePosixPath]
    charts: list[PurePosixPath]

    @property
    def all(self) -> list[PurePosixPath]:
        return self.files + self.values

    def describe(self) -> str:
        if self.charts:
            return ", ".join(str(c) for c in self.charts)
        return str(self.files[0].parent) if self.files else "."


def find_manifests(repo: Repo) -> Manifests:
    """Helm charts (a Chart.yaml, or values.yaml next to templates/) and any YAML file
    outside them with top-level `apiVersion:` and `kind:` (compose and CI files aside)."""
    folders = {p.parent for p in repo.files}
    charts = list(
        dict.fromkeys(
            p.parent
            for p in repo.files
            if p.name == "Chart.yaml"
            or (p.name == "values.yaml" and p.parent / "templates" in folders)
        )
    )
    manifests, values = [], []
    for path in repo.files:
        chart = next((c for c in charts if c in path.parents), None)
        if chart is not None:
            if path.parent == chart and path.name == "values.yaml":
                values.append(path)
            elif (chart / "templates") in path.parents and path.suffix in {".yaml", ".yml", ".tpl"}:
                manifests.append(path)
            continue
        if path.suffix not in {".yaml", ".yml"} or ".github" in path.parts:
            continue
        if "compose" in path.name or path.name.startswith("."):
            continue
        text = repo.text(path)
        if re.search(r"^apiVersion:", text, re.MULTILINE) and re.search(
            r"^kind:\s*\w+", text, re.MULTILINE
        ):
            manifests.append(path)
    return Manifests(manifests, values, charts)


def _yaml_docs(text: str) -> list[Any]:
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError:
        return []


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key), value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _has_kind(repo: Repo, manifests: Manifests, kind: str) -> Hit | None:
    return repo.first(rf"^\s*kind:\s*[\"']?{kind}\b", manifests.files)


def _condition(repo: Repo, hit: Hit) -> str:
    text = repo.text(PurePosixPath(hit.file))
    before = text.split("\n")[: hit.line]
    for line in before:
        found = re.search(r"\{\{-?\s*if\s+(.+?)\s*-?\}\}", line)
        if found:
            return found.group(1).strip()
    return ""


def _lookup(values: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(values, dict) or part not in values:
            return None
        values = values[part]
    return values


def _toggle(repo: Repo, manifests: Manifests, hit: Hit, condition: str) -> str:
    """How a `{{ if .Values.x.enabled }}` toggle is set: by default, and by the chart's
    own scenario files (chart-testing's ci/*-values.yaml, per-environment values-*.yaml)."""
    flag = re.fullmatch(r"\.Values\.([\w.]+)", condition)
    chart = next((c for c in manifests.charts if c in PurePosixPath(hit.file).parents), None)
    if flag is None or chart is None:
        return f"rendered when {condition}"
    name = flag.group(1)
    docs = _yaml_docs(repo.text(chart / "values.yaml"))
    state = "on" if docs and _lookup(docs[0], name) is True else "off"
    scenarios = [
        str(p.relative_to(chart))
        for p in repo.files
        if (p.parent == chart / "ci" or (p.parent == chart and p.name.startswith("values-")))
        and p.suffix in {".yaml", ".yml"}
        and any(_lookup(doc, name) is True for doc in _yaml_docs(repo.text(p)))
    ]
    elsewhere = f"; on in {', '.join(sorted(scenarios))}" if scenarios and state == "off" else ""
    return f"{name}: {state} by default{elsewhere}"


def check_kubernetes(repo: Repo) -> list[Result]:
    manifests = find_manifests(repo)
    titles = {
        "k8s-probes": "Kubernetes: liveness and readiness probes",
        "k8s-resources": "Kubernetes: resource requests and limits",
        "k8s-security": "Kubernetes: restricted securityContext",
        "k8s-hpa": "Kubernetes: HorizontalPodAutoscaler",
        "k8s-pdb": "Kubernetes: PodDisruptionBudget",
        "k8s-networkpolicy": "Kubernetes: NetworkPolicy",
    }
    if not manifests.files:
        return [
            Result(key, title, "FAIL", "no Helm chart or Kubernetes manifests", "charts/")
            for key, title in titles.items()
        ]
    location = manifests.describe()
    results: list[Result] = []

    def add(key: str, status: Status, reason: str, file: str = location) -> None:
        results.append(Result(key, titles[key], status, reason, file))

    probes = {
        name: repo.first(rf"^\s*{name}:", manifests.all)
        for name in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    missing = [name for name in ("livenessProbe", "readinessProbe") if probes[name] is None]
    if missing:
        add("k8s-probes", "FAIL", f"no {' and no '.join(missing)}")
    else:
        live = probes["livenessProbe"]
        assert live is not None
        extra = " and startup" if probes["startupProbe"] else ""
        add("k8s-probes", "PASS", f"liveness, readiness{extra} probes", live.file)

    # Resources: a `resources` mapping with requests and limits in values or manifests,
    # or both keys written in the templates.
    resource_file = None
    for path in manifests.all:
        for key, value in (kv for doc in _yaml_docs(repo.text(path)) for kv in _walk(doc)):
            if (
                key == "resources"
                and isinstance(value, dict)
                and value.get("requests")
                and value.get("limits")
            ):
                resource_file = str(path)
                break
        if resource_file:
            break
    if resource_file is None:
        requests = repo.first(r"^\s*requests:\s*$", manifests.files)
        limits = repo.first(r"^\s*limits:\s*$", manifests.files)
        if requests and limits:
            resource_file = requests.file
    if resource_file:
        add("k8s-resources", "PASS", "CPU/memory requests and limits set", resource_file)
    else:
        add(
            "k8s-resources",
            "FAIL",
            "no resource requests and limits (pods are best-effort, evicted first)",
        )

    required = {
        "runAsNonRoot: true": r"^\s*runAsNonRoot:\s*true\b",
        "allowPrivilegeEscalation: false": r"^\s*allowPrivilegeEscalation:\s*false\b",
        "capabilities drop ALL": (
            r"^\s*drop:\s*\[\s*[\"']?ALL[\"']?\s*\]|^\s*drop:\s*\n\s*-\s*[\"']?ALL\b"
        ),
        "seccompProfile RuntimeDefault": r"^\s*type:\s*[\"']?(?:RuntimeDefault|Localhost)\b",
    }
    absent = [
        label for label, pattern in required.items() if repo.first(pattern, manifests.all) is None
    ]
    risky = repo.first(r"^\s*(?:privileged|hostNetwork|hostPID|hostIPC):\s*true\b", manifests.all)
    if risky:
        add("k8s-security", "FAIL", f"{risky.text} breaks the restricted profile", where(risky))
    elif absent:
        add("k8s-security", "FAIL", f"not restricted: missing {', '.join(absent)}")
    else:
        hit = repo.first(required["runAsNonRoot: true"], manifests.all)
        assert hit is not None
        read_only = repo.first(r"^\s*readOnlyRootFilesystem:\s*true\b", manifests.all)
        if read_only is None:
            add("k8s-security", "WARN", "restricted, but the root filesystem is writable", hit.file)
        else:
            add(
                "k8s-security",
                "PASS",
                "restricted: non-root, no escalation, caps dropped, seccomp, read-only root",
                hit.file,
            )

    for key, kind in (
        ("k8s-hpa", "HorizontalPodAutoscaler"),
        ("k8s-pdb", "PodDisruptionBudget"),
        ("k8s-networkpolicy", "NetworkPolicy"),
    ):
        hit = _has_kind(repo, manifests, kind)
        if hit is None:
            add(key, "FAIL", f"no {kind}")
            continue
        condition = _condition(repo, hit)
        suffix = f" ({_toggle(repo, manifests, hit, condition)})" if condition else ""
        add(key, "PASS", f"{kind} defined{suffix}", hit.file)
    return results
