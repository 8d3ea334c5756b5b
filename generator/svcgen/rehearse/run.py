"""One rehearsal, the entry point (`run_rehearsal`): render the chart with Helm, fill the Secrets
it does not render from --env, run the pre-install hook Jobs to completion, then each
Deployment's pod (pod.py) through its life (lifecycle.py), side by side. Every step is a line
of the report (report.py); any FAIL fails the rehearsal.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from ..dockerfile import DockerfileError, parse_dockerfile
from .engine import EngineError
from .env import ConfigObjects, EnvError
from .image import ImageRun, pod_images
from .lifecycle import Lifecycle
from .pod import DEFAULT_JOB_DEADLINE, Pod, PodContext
from .report import RehearsalError, Report
from .sandbox import SandboxError, find_tool
from .standin import ImageStandIn


@dataclass
class Options:
    """What `svcgen rehearse` was asked to do."""

    path: Path
    values: list[Path] = field(default_factory=list)
    sets: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    probe_seconds: float = 3.0
    release: str | None = None
    namespace: str = "default"
    helm: str | None = None
    #: Run the built image with a container engine instead of the .venv stand-in.
    image: bool = False
    #: podman, docker or a path (default: $SVCGEN_ENGINE, else podman, else docker).
    engine: str | None = None
    #: Build the Dockerfile first (implies `image`).
    build: bool = False


def find_chart(root: Path) -> Path:
    charts = sorted(
        {
            p.parent
            for pattern in ("charts/*/Chart.yaml", "deploy/helm/*/Chart.yaml")
            for p in root.glob(pattern)
        }
    )
    if len(charts) != 1:
        found = ", ".join(str(c.relative_to(root)) for c in charts) or "none"
        raise RehearsalError(f"expected one Helm chart in charts/ or deploy/helm/, found {found}")
    return charts[0]


def render(options: Options, chart: Path, release: str) -> list[dict[str, Any]]:
    helm = options.helm or find_tool("helm", "SVCGEN_HELM")
    command = [helm, "template", release, str(chart), "--namespace", options.namespace]
    for values in options.values:
        command += ["--values", str(values)]
    for assignment in options.sets:
        command += ["--set", assignment]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RehearsalError(f"helm template failed: {done.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if isinstance(doc, dict)]


class Rehearsal:
    """One rehearsal: render the chart, run its hook Jobs, then its Deployments' pods."""

    def __init__(self, options: Options, report: Report) -> None:
        self.options = options
        self.report = report
        self.root = options.path.resolve()
        self.objects = ConfigObjects(namespace=options.namespace)
        self._volume_dir = tempfile.TemporaryDirectory(prefix="svcgen-rehearse-volumes-")
        image = parse_dockerfile(self.root / "Dockerfile")
        self.stand_in = ImageStandIn(self.root, image)
        self.images: ImageRun | None = None
        if options.image or options.build:
            self.images = ImageRun(self.root, options.engine, options.build)

    def close(self) -> None:
        self._volume_dir.cleanup()

    def run(self) -> None:
        report, options = self.report, self.options
        if self.images is None and not (self.root / ".venv" / "bin" / "python").exists():
            raise RehearsalError(f"{self.root}/.venv is missing: run `make install` first")
        chart = find_chart(self.root)
        release = options.release or chart.name
        docs = render(options, chart, release)
        self.objects = ConfigObjects.from_manifests(docs, options.namespace)
        self.supply_outside_secrets(docs)
        self.context = context = PodContext(
            report=report,
            stand_in=self.stand_in,
            objects=self.objects,
            namespace=options.namespace,
            overrides=options.env,
            scratch=Path(self._volume_dir.name),
            images=self.images,
        )
        kinds: dict[str, int] = {}
        for doc in docs:
            kinds[str(doc.get("kind"))] = kinds.get(str(doc.get("kind")), 0) + 1
        values = ", ".join(str(v) for v in options.values) or "default values"
        if options.sets:
            values += ", --set " + " ".join(options.sets)
        counts = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        report.add(True, f"chart/{chart.name}", "render", f"helm template ({values}): {counts}")
        hooks, deployments = self._workloads(docs)
        if self.images is not None:
            specs = _pod_specs([*hooks, *deployments])
            if not self.images.prepare(pod_images(specs), report):
                return
        elif self.stand_in.mapping:
            report.info(
                "image",
                "stand-in",
                "; ".join(f"{k} -> {v}" for k, v in self.stand_in.mapping.items())
                + f" (Dockerfile USER {self.stand_in.image.user or 'root'})",
            )
        for job in hooks:
            if not self.run_job(job):
                subject = f"{job['kind']}/{job['metadata']['name']}"
                report.add(False, subject, "hook", "pre-install hook failed: Helm stops here")
                return
        if not deployments:
            report.info("release", "deployments", "none")
            return
        lifecycle = Lifecycle(context, options.probe_seconds)
        pods = [Pod(context, "Deployment", d) for d in deployments]
        threads = [
            threading.Thread(target=lifecycle.run_deployment, args=(pod, d), daemon=True)
            for pod, d in zip(pods, deployments, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for key in sorted(set(options.env) - context.overridden):
            report.info("--env", "unused", f"{key}: no container sets it, so it was not applied")

    def supply_outside_secrets(self, docs: list[dict[str, Any]]) -> None:
        """Secrets the pods read but the chart does not render (`existingSecret`, or the target of
        an ExternalSecret that an operator would fill from its store): each key the pods read
        takes the value given for that variable with --env or --env-file."""
        made_by = {
            str(((doc.get("spec") or {}).get("target") or {}).get("name") or ""): str(
                doc["metadata"]["name"]
            )
            for doc in docs
            if doc.get("kind") == "ExternalSecret"
        }
        rendered = set(self.objects.secrets)
        supplied: dict[str, list[str]] = {}
        missing: dict[str, list[str]] = {}
        for spec in _pod_specs(docs):
            for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
                for entry in container.get("env") or []:
                    ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
                    if not ref:
                        continue
                    secret, key, variable = str(ref.get("name")), str(ref.get("key")), entry["name"]
                    if secret in rendered:
                        continue
                    given = self.options.env.get(variable)
                    if given is not None:
                        self.objects.secrets.setdefault(secret, {})[key] = given
                        supplied.setdefault(secret, []).append(key)
                    else:
                        missing.setdefault(secret, []).append(variable)
        for secret in sorted(set(supplied) | set(missing)):
            origin = (
                f"made by ExternalSecret {made_by[secret]}" if secret in made_by else "not rendered"
            )
            keys = sorted(set(supplied.get(secret, [])))
            detail = f"Secret {secret} ({origin}): keys {', '.join(keys) or 'none'} from --env"
            if secret in missing:
                wanted = ", ".join(sorted(set(missing[secret])))
                detail += f"; give {wanted} with --env NAME=VALUE or --env-file"
            self.report.info("secrets", "outside", detail)

    def _workloads(
        self, docs: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Pre-install hook Jobs (in Helm's order) and Deployments; the rest is noted."""
        hooks, deployments = [], []
        for doc in docs:
            kind, name = str(doc.get("kind")), str(doc["metadata"]["name"])
            annotations = doc["metadata"].get("annotations") or {}
            phases = {p.strip() for p in str(annotations.get("helm.sh/hook", "")).split(",")}
            phases.discard("")
            if phases:
                if kind in {"Job", "Pod"} and "pre-install" in phases:
                    hooks.append(doc)
                elif kind in {"Job", "Pod"} and "test" not in phases:
                    self.report.info(f"{kind}/{name}", "hook", f"{','.join(phases)}: not rehearsed")
            elif kind == "Deployment":
                deployments.append(doc)
            elif kind in {"StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}:
                self.report.info(f"{kind}/{name}", "workload", "not rehearsed")

        def weight(doc: Mapping[str, Any]) -> tuple[int, str]:
            annotations = doc["metadata"].get("annotations") or {}
            return int(str(annotations.get("helm.sh/hook-weight", "0"))), doc["metadata"]["name"]

        return sorted(hooks, key=weight), deployments

    def run_job(self, manifest: Mapping[str, Any]) -> bool:
        pod = Pod(self.context, str(manifest["kind"]), manifest)
        if manifest["kind"] == "Pod":
            pod.spec = dict(manifest.get("spec") or {})
        job_spec = manifest.get("spec") or {}
        deadline = time.monotonic() + float(
            job_spec.get("activeDeadlineSeconds", DEFAULT_JOB_DEADLINE)
        )
        if not pod.run_inits():
            return False
        containers = pod.containers()
        if containers is None:
            return False
        results = [pod.run_to_completion(c, deadline, "job") for c in containers]
        return all(results)


def run_rehearsal(options: Options, out: TextIO | None = None) -> Report:
    """Rehearse the project at `options.path`; the report says what passed and what failed."""
    report = Report(out)
    started = time.monotonic()
    try:
        rehearsal = Rehearsal(options, report)
    except (DockerfileError, OSError) as error:
        report.add(False, "project", "read", str(error))
        return report
    except EngineError as error:
        report.add(False, "engine", "find", str(error))
        return report
    try:
        rehearsal.run()
    except (RehearsalError, SandboxError, DockerfileError, EnvError, EngineError) as error:
        report.add(False, "rehearsal", "setup", str(error))
    finally:
        rehearsal.close()
    verdict = "PASS" if report.ok else f"FAIL ({len(report.failures)} failed)"
    if out is not None:
        print(f"rehearsal {verdict} in {time.monotonic() - started:.1f}s", file=out, flush=True)
    return report


def _pod_specs(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for doc in docs:
        spec = doc.get("spec") or {}
        if doc.get("kind") == "Pod":
            yield spec
        elif doc.get("kind") == "CronJob":
            yield ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get(
                "spec"
            ) or {}
        elif "template" in spec:
            yield (spec.get("template") or {}).get("spec") or {}
