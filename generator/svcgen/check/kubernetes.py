"""Checks on Kubernetes: Helm charts inspected without rendering, and plain manifests."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Any

from .helm import ACTION, dead_ranges, switch, switched_off
from .repo import Hit, Repo, Result, Status, where, yaml_docs


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


_SEVERITY = {"PASS": 0, "WARN": 1, "FAIL": 2}
_WORKLOAD = re.compile(
    r"^\s*kind:\s*[\"']?(?:Deployment|StatefulSet|DaemonSet|Pod|Job|CronJob|ReplicaSet|Rollout)\b",
    re.MULTILINE,
)


def workload_sources(repo: Repo, manifests: Manifests) -> list[Manifests]:
    """Each way to deploy the workload: every chart, and every top folder of plain manifests
    that holds a workload (Deployment, StatefulSet, ...)."""
    sources = [
        Manifests(
            [p for p in manifests.files if chart in p.parents],
            [p for p in manifests.values if p.parent == chart],
            [chart],
        )
        for chart in manifests.charts
    ]
    groups: dict[str, list[PurePosixPath]] = {}
    for path in manifests.files:
        if not any(chart in path.parents for chart in manifests.charts):
            groups.setdefault(path.parts[0] if len(path.parts) > 1 else ".", []).append(path)
    for files in groups.values():
        if any(_WORKLOAD.search(repo.text(p)) for p in files):
            sources.append(Manifests(files, [], []))
    return sources


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
    """The innermost `{{ if ... }}` the hit's line sits in ("" when none)."""
    text = repo.text(PurePosixPath(hit.file))
    offset = sum(len(line) + 1 for line in text.split("\n")[: hit.line - 1])
    stack: list[str] = []
    for match in ACTION.finditer(text):
        if match.start() > offset:
            break
        word, rest = match.group(1), match.group(2).strip()
        if word in {"if", "with", "range", "define", "block"}:
            stack.append(rest if word == "if" else "")
        elif word == "else" and stack:
            stack[-1] = ""  # an else branch: rendered when the condition is false
        elif word == "end" and stack:
            stack.pop()
    return next((c for c in reversed(stack) if c), "")


def _toggle(repo: Repo, manifests: Manifests, hit: Hit, condition: str) -> tuple[str, bool]:
    """How a `{{ if .Values.x.enabled }}` toggle is set: by default, and by the chart's
    scenario files; and whether anything turns it on."""
    flag = re.fullmatch(r"\.Values\.([\w.]+)", condition)
    chart = next((c for c in manifests.charts if c in PurePosixPath(hit.file).parents), None)
    if flag is None or chart is None:
        return f"rendered when {condition}", True
    name = flag.group(1)
    default, scenarios = switch(repo, chart, name)
    state = "on" if default else "off"
    elsewhere = f"; on in {', '.join(scenarios)}" if scenarios and not default else ""
    return f"{name}: {state} by default{elsewhere}", default or bool(scenarios)


def live_hits(repo: Repo, manifests: Manifests, hits: Iterator[Hit]) -> Iterator[Hit]:
    """Hits that a default or scenario rendering of the chart would contain."""
    cache: dict[str, tuple[str, list[tuple[int, int]]]] = {}
    for hit in hits:
        path = PurePosixPath(hit.file)
        if path.name == "values.yaml" and path.parent in manifests.charts:
            if not switched_off(repo.text(path), hit.line):
                yield hit
            continue
        chart = next((c for c in manifests.charts if c / "templates" in path.parents), None)
        if chart is None:
            yield hit
            continue
        if hit.file not in cache:
            text = repo.text(path)
            cache[hit.file] = (text, dead_ranges(repo, chart, text))
        text, dead = cache[hit.file]
        starts = [0, *(i + 1 for i, c in enumerate(text) if c == "\n")]
        offset = starts[hit.line - 1] if hit.line - 1 < len(starts) else 0
        if not any(a <= offset < b for a, b in dead):
            yield hit


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

    def workload(m: Manifests) -> list[Result]:
        """Probes, resources and securityContext of one way to deploy (a chart, a folder
        of manifests): evidence never mixes between them."""
        results: list[Result] = []
        location = m.describe()

        def add(key: str, status: Status, reason: str, file: str = location) -> None:
            results.append(Result(key, titles[key], status, reason, file))

        def first(pattern: str, files: list[PurePosixPath]) -> Hit | None:
            """The first match a rendering would contain (not behind a switch left off)."""
            return next(live_hits(repo, m, repo.grep(pattern, files)), None)

        probes = {
            name: first(rf"^[^#\n]*\b{name}:", m.all)
            for name in ("livenessProbe", "readinessProbe", "startupProbe")
        }
        missing = [name for name in ("livenessProbe", "readinessProbe") if probes[name] is None]
        if missing:
            add("k8s-probes", "FAIL", f"no {' and no '.join(missing)}")
        else:
            live = probes["livenessProbe"]
            assert live is not None
            extra = " and startup" if probes["startupProbe"] else ""
            add("k8s-probes", "PASS", f"liveness, readiness{extra} probes", where(live))

        # Resources: a `resources` mapping with requests and limits in values or manifests,
        # or both keys written in the templates.
        resource_file = None
        for path in m.all:
            for key, value in (kv for doc in yaml_docs(repo.text(path)) for kv in _walk(doc)):
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
            requests = first(r"^[^#\n]*\brequests:[ \t]*(?:$|\{[ \t]*\w)", m.files)
            limits = first(r"^[^#\n]*\blimits:[ \t]*(?:$|\{[ \t]*\w)", m.files)
            if requests and limits:
                resource_file = where(requests)
        if resource_file:
            add("k8s-resources", "PASS", "CPU/memory requests and limits set", resource_file)
        else:
            add(
                "k8s-resources",
                "FAIL",
                "no resource requests and limits (pods are best-effort, evicted first)",
            )

        # Block or flow style (`{drop: ["ALL"]}`), never in a comment.
        required = {
            "runAsNonRoot: true": r"^[^#\n]*\brunAsNonRoot:\s*true\b",
            "allowPrivilegeEscalation: false": r"^[^#\n]*\ballowPrivilegeEscalation:\s*false\b",
            "capabilities drop ALL": (
                r"^[^#\n]*\bdrop:\s*\[\s*[\"']?ALL[\"']?\s*\]|^\s*drop:\s*\n\s*-\s*[\"']?ALL\b"
            ),
            "seccompProfile RuntimeDefault": (
                r"^\s*type:\s*[\"']?(?:RuntimeDefault|Localhost)\b"
                r"|^[^#\n]*\bseccompProfile:\s*\{\s*type:\s*[\"']?(?:RuntimeDefault|Localhost)\b"
            ),
        }
        absent = [label for label, pattern in required.items() if first(pattern, m.all) is None]
        risky = first(r"^[^#\n]*?\b(?:privileged|hostNetwork|hostPID|hostIPC):\s*true\b", m.all)
        if risky:
            add("k8s-security", "FAIL", f"{risky.text} breaks the restricted profile", where(risky))
        elif absent:
            add("k8s-security", "FAIL", f"not restricted: missing {', '.join(absent)}")
        else:
            hit = first(required["runAsNonRoot: true"], m.all)
            assert hit is not None
            read_only = first(r"^[^#\n]*\breadOnlyRootFilesystem:\s*true\b", m.all)
            if read_only is None:
                reason = "restricted, but the root filesystem is writable"
                add("k8s-security", "WARN", reason, where(hit))
            else:
                add(
                    "k8s-security",
                    "PASS",
                    "restricted: non-root, no escalation, caps dropped, seccomp, read-only root",
                    where(hit),
                )

        return results

    sources = workload_sources(repo, manifests) or [manifests]
    per_source = [workload(m) for m in sources]
    for key in ("k8s-probes", "k8s-resources", "k8s-security"):
        verdicts = [r for found in per_source for r in found if r.id == key]
        worst = max(verdicts, key=lambda r: _SEVERITY[r.status])
        if len(sources) > 1:
            names = ", ".join(m.describe() for m in sources)
            judged = "worst of" if worst.status != "PASS" else "all of"
            worst = replace(worst, reason=f"{worst.reason} ({judged} {len(sources)}: {names})")
        results.append(worst)

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
        if not condition:
            add(key, "PASS", f"{kind} defined", where(hit))
            continue
        state, on = _toggle(repo, manifests, hit, condition)
        if on:
            add(key, "PASS", f"{kind} defined ({state})", where(hit))
        else:
            add(key, "WARN", f"{kind} defined but nothing turns it on ({state})", where(hit))
    return results
