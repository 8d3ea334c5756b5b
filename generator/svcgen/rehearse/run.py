"""`svcgen rehearse`: run a generated service's Helm chart locally, the way a kubelet would.

Render the chart with Helm; run the pre-install hook Jobs to completion; then start every
Deployment's pod (one replica) with the project's `.venv` standing in for the image, each
container under its securityContext in bubblewrap -- or, with `--image`, from the real image
with Docker or Podman (rehearse_image.py); probe it (startup, then liveness and readiness); stop
it as the kubelet does (preStop, SIGTERM, grace period). One report line per step, PASS or FAIL
with the reason; any FAIL makes the rehearsal fail.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import typer
import yaml

from ..dockerfile import DockerfileError, Image, effective_command, parse_dockerfile
from .engine import ContainerSandbox, EngineError, RunSpec, find_engine
from .env import ConfigObjects, EnvError, PodFacts, build_env, expand, quantity
from .image import ImageRun, pod_images
from .probes import Attempt, Handler, PortError, ProbeSettings
from .sandbox import Sandbox, SandboxError, SandboxSpec, find_tool

__all__ = ["Options", "Report", "Step", "rehearse", "run_rehearsal"]

#: How long a hook Job may run when it sets no activeDeadlineSeconds.
DEFAULT_JOB_DEADLINE = 300.0
#: How long a started container may take to catch SIGTERM before it is stopped. Its PID 1
#: ignores a SIGTERM that arrives earlier (as in any container), so stopping it sooner would
#: only measure how fast it boots; one that never catches it fails at termination.
SETTLE_SECONDS = 20.0
#: How long to wait for another process on this machine to free the pod's ports.
PORT_WAIT_SECONDS = 120.0


# --- report ------------------------------------------------------------------------------------


@dataclass
class Step:
    """One line of the report: `ok` None is information, not a check."""

    ok: bool | None
    subject: str
    action: str
    detail: str

    def line(self) -> str:
        mark = {True: "PASS", False: "FAIL", None: "    "}[self.ok]
        return f"{mark}  {self.subject:<28} {self.action:<10} {self.detail}"


class Report:
    """Steps in order, printed as they happen (pods run in parallel: lines are whole)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out
        self.steps: list[Step] = []
        self._lock = threading.Lock()

    def add(self, ok: bool | None, subject: str, action: str, detail: str) -> Step:
        step = Step(ok, subject, action, detail)
        with self._lock:
            self.steps.append(step)
            if self.out is not None:
                print(step.line(), file=self.out, flush=True)
        return step

    def info(self, subject: str, action: str, detail: str) -> None:
        self.add(None, subject, action, detail)

    def log(self, subject: str, text: str) -> None:
        """A container's last output lines, indented under its failure."""
        for line in text.strip().splitlines()[-12:]:
            self.info(subject, "log", line)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok is not False for step in self.steps)

    @property
    def failures(self) -> list[Step]:
        return [step for step in self.steps if step.ok is False]

    def text(self) -> str:
        return "\n".join(step.line() for step in self.steps)


# --- options and the project -------------------------------------------------------------------


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


class RehearsalError(RuntimeError):
    """The rehearsal cannot go on (reported as a FAIL line)."""


def mask(value: str) -> str:
    """A URL's password hidden, for printing overrides."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    return value


class ImageStandIn:
    """The project's `.venv` and sources standing in for the image built by its Dockerfile."""

    def __init__(self, root: Path, image: Image) -> None:
        self.root = root
        self.image = image
        self.venv = root / ".venv"
        image_venv = image.env.get("VIRTUAL_ENV") or image.env.get("UV_PROJECT_ENVIRONMENT")
        self.mapping: dict[str, str] = {}
        if image_venv:
            self.mapping[image_venv.rstrip("/")] = str(self.venv)
        if image.workdir not in {"/", "/tmp"}:
            self.mapping[image.workdir.rstrip("/")] = str(root)

    def map_path(self, value: str) -> str:
        for prefix in sorted(self.mapping, key=len, reverse=True):
            if value == prefix or value.startswith(prefix + "/"):
                return self.mapping[prefix] + value[len(prefix) :]
        return value

    def provide(self, path: str, scratch: Path) -> None:
        """A mount point the image would have (the kubelet creates it) but this host lacks:
        mapped to a directory under `scratch`, since a read-only root cannot create it."""
        if self.map_path(path) == path and not Path(path).is_dir():
            host = scratch / "mounts" / path.lstrip("/")
            host.mkdir(parents=True, exist_ok=True)
            self.mapping[path.rstrip("/")] = str(host)

    def map_value(self, value: str) -> str:
        """Each `:`-separated absolute path of a variable mapped (PATH, PYTHONPATH, ...)."""
        if "://" in value:
            return value
        return ":".join(
            self.map_path(part) if part.startswith("/") else part for part in value.split(":")
        )

    def map_argv(self, argv: Sequence[str], path_var: str) -> list[str]:
        mapped = [self.map_path(arg) if arg.startswith("/") else arg for arg in argv]
        if mapped and mapped[0].startswith("/") and not Path(mapped[0]).exists():
            name = Path(mapped[0]).name
            if re.fullmatch(r"python[0-9.]*", name):
                mapped[0] = str(self.venv / "bin" / "python")  # the image's interpreter
        return mapped

    def workdir_view(self) -> tuple[str | None, list[str]]:
        """The workdir as the image has it: only what the final stage copies there."""
        workdir = self.image.workdir.rstrip("/")
        if workdir not in self.mapping:
            return None, []
        inside = [
            self.map_path(dest)
            for dest in self.image.copies
            if dest == workdir or dest.startswith(workdir + "/")
        ]
        if str(self.root) in inside:
            return None, []  # the whole build context is copied: show the project as it is
        paths = [p for p in inside if Path(p).exists()]
        if (self.root / "src").is_dir():
            paths.append(str(self.root / "src"))  # the installed package's stand-in
        return str(self.root), sorted(set(paths))

    def keep_paths(self) -> list[str]:
        """Real locations the venv needs (a symlinked venv, editable sources in .pth files)."""
        keep = {str(self.venv.resolve())}
        for pth in self.venv.glob("lib/python*/site-packages/*.pth"):
            for line in pth.read_text(encoding="utf-8", errors="replace").splitlines():
                line = line.strip()
                if line.startswith("/") and Path(line).is_dir():
                    keep.add(str(Path(line).resolve()))
        return sorted(keep)


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


# --- one container -----------------------------------------------------------------------------


@dataclass
class Container:
    """A container of a pod, ready to run."""

    subject: str
    manifest: dict[str, Any]
    spec: SandboxSpec | RunSpec  # RunSpec: the real image, with an engine
    named_ports: dict[str, int]
    sandbox: Sandbox | None = None

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", "?"))

    def handler(self, spec: Mapping[str, Any]) -> Handler:
        return Handler(spec, self.named_ports)

    def exec(self, argv: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        assert self.sandbox is not None
        return self.sandbox.exec(argv, timeout=timeout)


class Pod:
    """One pod (a Deployment's single replica, or a Job's) and its containers."""

    def __init__(
        self,
        rehearsal: Rehearsal,
        kind: str,
        manifest: Mapping[str, Any],
    ) -> None:
        self.rehearsal = rehearsal
        self.kind = kind
        self.name = str(manifest["metadata"]["name"])
        self.subject = f"{kind}/{self.name}"
        template = (manifest.get("spec") or {}).get("template") or {}
        self.meta = template.get("metadata") or {}
        self.spec: dict[str, Any] = template.get("spec") or {}
        self.grace = float(self.spec.get("terminationGracePeriodSeconds", 30))
        self.facts = PodFacts(
            name=f"{self.name}-rehearsal",
            namespace=rehearsal.options.namespace,
            labels={str(k): str(v) for k, v in (self.meta.get("labels") or {}).items()},
            annotations={str(k): str(v) for k, v in (self.meta.get("annotations") or {}).items()},
            service_account=str(self.spec.get("serviceAccountName") or "default"),
        )

    def prepare(self, container: Mapping[str, Any], init: bool = False) -> Container | None:
        """Environment, command and sandbox of `container`; None (with a FAIL) if impossible."""
        report, stand_in = self.rehearsal.report, self.rehearsal.stand_in
        subject = f"{self.subject}:{container.get('name')}{' (init)' if init else ''}"
        try:
            built = build_env(container, self.rehearsal.objects, self.facts)
        except EnvError as error:
            report.add(False, subject, "env", f"CreateContainerConfigError: {error}")
            return None
        for key, value in self.rehearsal.options.env.items():
            if key in built.values:
                report.info(
                    subject,
                    "override",
                    f"{key}={mask(value)} (chart: {mask(built.values[key])})",
                )
                built.values[key] = value
                self.rehearsal.overridden.add(key)
        sources = sorted(set(built.origins.values()))
        report.add(
            True,
            subject,
            "env",
            f"{len(built.values)} variables from {', '.join(sources) or 'none'}",
        )
        kube_env = built.values
        if self.rehearsal.images is not None:
            return self._image_container(container, subject, kube_env)
        volumes = {str(v.get("name")): v for v in self.spec.get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            if "emptyDir" in volumes.get(str(mount.get("name")), {}):
                stand_in.provide(str(mount.get("mountPath", "")), self.rehearsal.scratch)
        env = {k: stand_in.map_value(v) for k, v in stand_in.image.env.items()}
        env.setdefault("HOME", "/")
        env["HOSTNAME"] = self.facts.name
        env.update({k: stand_in.map_value(v) for k, v in kube_env.items()})
        command = [expand(str(c), kube_env) for c in container.get("command") or []]
        args = [expand(str(a), kube_env) for a in container.get("args") or []]
        argv = stand_in.map_argv(effective_command(stand_in.image, command, args), env["PATH"])
        if not argv:
            report.add(False, subject, "command", "no command: no ENTRYPOINT/CMD and no command")
            return None
        if "/" not in argv[0] and not shutil.which(argv[0], path=env["PATH"]):
            report.add(
                False,
                subject,
                "command",
                f'exec: "{argv[0]}": executable file not found in $PATH ({env["PATH"]})',
            )
            return None
        try:
            spec = self._sandbox_spec(container, argv, env, subject)
        except RehearsalError as error:
            report.add(False, subject, "security", str(error))
            return None
        return Container(subject, dict(container), spec, named_ports(container))

    def _image_container(
        self, container: Mapping[str, Any], subject: str, kube_env: dict[str, str]
    ) -> Container | None:
        """The container run from its image: the engine applies the image's ENV, ENTRYPOINT
        and CMD; the chart's settings come from engine.run_spec."""
        images, report = self.rehearsal.images, self.rehearsal.report
        assert images is not None
        expanded = dict(container)
        for key in ("command", "args"):
            if container.get(key):
                expanded[key] = [expand(str(part), kube_env) for part in container[key]]
        env = {"HOSTNAME": self.facts.name, **kube_env}
        volumes = {str(v.get("name")): v for v in self.spec.get("volumes") or []}
        try:
            spec = images.run_spec(self.name, self.spec, expanded, env)
            for mount in container.get("volumeMounts") or []:
                volume = volumes.get(str(mount.get("name"))) or {}
                target = str(mount.get("mountPath", ""))
                if "configMap" in volume or "secret" in volume:
                    spec.files.update(self.rehearsal.volume_files(volume, target))
                elif "emptyDir" not in volume:
                    detail = f"{mount.get('name')} at {target}: not rehearsed"
                    report.info(subject, "volume", detail)
        except (EngineError, RehearsalError) as error:
            report.add(False, subject, "security", str(error))
            return None
        report.info(
            subject,
            "container",
            f"{spec.image}: {spec.describe()}; runs {' '.join(images.command(spec.image, spec))}",
        )
        return Container(subject, dict(container), spec, named_ports(container))

    def _sandbox_spec(
        self, container: Mapping[str, Any], argv: list[str], env: dict[str, str], subject: str
    ) -> SandboxSpec:
        stand_in, report = self.rehearsal.stand_in, self.rehearsal.report
        pod_context = self.spec.get("securityContext") or {}
        context = container.get("securityContext") or {}

        def setting(key: str, default: Any) -> Any:
            return context.get(key, pod_context.get(key, default))

        image = stand_in.image
        uid = setting("runAsUser", image.uid)
        gid = setting("runAsGroup", image.gid if image.gid is not None else 0)
        if uid is None:
            if image.user and setting("runAsNonRoot", False):
                raise RehearsalError(
                    f"image has non-numeric user ({image.user}), cannot verify user is non-root"
                )
            uid = 0
        if setting("runAsNonRoot", False) and int(uid) == 0:
            raise RehearsalError("container has runAsNonRoot and image will run as root")
        if context.get("privileged"):
            raise RehearsalError("privileged containers are not rehearsed")
        read_only = bool(context.get("readOnlyRootFilesystem", False))
        caps = context.get("capabilities") or {}
        drop_all = "ALL" in [str(c).upper() for c in caps.get("drop") or []]
        add = [str(c) for c in caps.get("add") or []]
        tmpfs: dict[str, int] = {}
        files: dict[str, str] = {}
        volumes = {str(v.get("name")): v for v in self.spec.get("volumes") or []}
        described = []
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(str(mount.get("name")))
            target = stand_in.map_path(str(mount.get("mountPath", "")))
            if volume is None:
                raise RehearsalError(f"volumeMount {mount.get('name')!r} names no pod volume")
            if "emptyDir" in volume:
                limit = (volume.get("emptyDir") or {}).get("sizeLimit")
                tmpfs[target] = int(quantity(limit)) if limit else 0
                described.append(f"emptyDir {target}" + (f" ({limit})" if limit else ""))
            elif "configMap" in volume or "secret" in volume:
                files.update(self.rehearsal.volume_files(volume, target))
                described.append(f"{'configMap' if 'configMap' in volume else 'secret'} {target}")
            else:
                report.info(subject, "volume", f"{mount.get('name')} at {target}: not rehearsed")
        workdir, image_paths = stand_in.workdir_view()
        cwd = stand_in.map_path(str(container.get("workingDir") or image.workdir))
        report.info(
            subject,
            "sandbox",
            f"uid {uid} gid {gid}, {'read-only' if read_only else 'writable'} root, "
            f"{'capabilities dropped' if drop_all else 'default capabilities'}"
            f"{' + ' + ','.join(add) if add else ''}; {'; '.join(described) or 'no volumes'}; "
            f"runs {' '.join(argv)}",
        )
        return SandboxSpec(
            argv=argv,
            env=env,
            cwd=cwd,
            uid=int(uid),
            gid=int(gid),
            hostname=self.facts.name[:63],
            read_only_root=read_only,
            drop_all_caps=True,  # a non-root uid has no capabilities either way
            add_caps=add,
            tmpfs=tmpfs,
            workdir=workdir,
            image_paths=image_paths,
            keep=stand_in.keep_paths(),
            files=files,
        )

    def containers(self, init: bool = False) -> list[Container] | None:
        key = "initContainers" if init else "containers"
        prepared = [self.prepare(c, init) for c in self.spec.get(key) or []]
        if any(c is None for c in prepared):
            return None
        return [c for c in prepared if c is not None]

    def run_to_completion(self, container: Container, deadline: float, action: str) -> bool:
        """Run an init or Job container; it must exit 0 before `deadline`."""
        report = self.rehearsal.report
        sandbox = self.rehearsal.sandbox(container)
        started = time.monotonic()
        try:
            sandbox.start()
            try:
                code = sandbox.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                report.add(False, container.subject, action, "did not finish before its deadline")
                report.log(container.subject, sandbox.log())
                return False
            took = time.monotonic() - started
            if code != 0:
                report.add(
                    False,
                    container.subject,
                    action,
                    f"exited {code} after {took:.1f}s{last_error(sandbox.log())}",
                )
                report.log(container.subject, sandbox.log())
                return False
            report.add(True, container.subject, action, f"completed (exit 0) in {took:.1f}s")
            return True
        except SandboxError as error:
            report.add(False, container.subject, action, str(error))
            return False
        finally:
            sandbox.close()

    def run_inits(self) -> bool:
        inits = self.containers(init=True)
        if inits is None:
            return False
        return all(
            self.run_to_completion(c, time.monotonic() + DEFAULT_JOB_DEADLINE, "init")
            for c in inits
        )


def named_ports(container: Mapping[str, Any]) -> dict[str, int]:
    return {
        str(p["name"]): int(p["containerPort"])
        for p in container.get("ports") or []
        if p.get("name") and p.get("containerPort")
    }


def last_error(log: str) -> str:
    """The last line that looks like an error, to name the cause in one line."""
    lines = [line.strip() for line in log.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if re.search(
            r"error|exception|denied|read-only|not found|no such|invalid|failed", line, re.I
        ):
            return f": {line[:300]}"
    return f": {lines[-1][:300]}" if lines else ""


# --- the rehearsal -----------------------------------------------------------------------------


class Rehearsal:
    def __init__(self, options: Options, report: Report) -> None:
        self.options = options
        self.report = report
        self.root = options.path.resolve()
        self.objects = ConfigObjects(namespace=options.namespace)
        self.overridden: set[str] = set()
        self._volume_dir = tempfile.TemporaryDirectory(prefix="svcgen-rehearse-volumes-")
        image = parse_dockerfile(self.root / "Dockerfile")
        self.stand_in = ImageStandIn(self.root, image)
        self.images: ImageRun | None = None
        if options.image or options.build:
            self.images = ImageRun(self.root, options.engine, options.build)

    @property
    def scratch(self) -> Path:
        return Path(self._volume_dir.name)

    def close(self) -> None:
        self._volume_dir.cleanup()

    def sandbox(self, container: Container) -> Sandbox:
        """Where the container runs: the engine (its image) or bubblewrap (the stand-in)."""
        if isinstance(container.spec, RunSpec):
            assert self.images is not None
            return self.images.sandbox(container.spec)
        return Sandbox(container.spec)

    def volume_files(self, volume: Mapping[str, Any], target: str) -> dict[str, str]:
        """ConfigMap/Secret volume contents written to files, to mount read-only."""
        is_secret = "secret" in volume
        ref = volume["secret" if is_secret else "configMap"] or {}
        name = str(ref.get("secretName" if is_secret else "name", ""))
        store = self.objects.secrets if is_secret else self.objects.configmaps
        if name not in store:
            if ref.get("optional"):
                return {}
            raise RehearsalError(
                f"{'secret' if is_secret else 'configmap'} {name!r} not found (volume)"
            )
        items = ref.get("items") or [{"key": k, "path": k} for k in store[name]]
        files = {}
        for item in items:
            key = str(item["key"])
            if key not in store[name]:
                raise RehearsalError(f"volume: couldn't find key {key} in {name}")
            host = Path(self._volume_dir.name) / name / str(item.get("path", key))
            host.parent.mkdir(parents=True, exist_ok=True)
            host.write_text(store[name][key], encoding="utf-8")
            files[f"{target.rstrip('/')}/{item.get('path', key)}"] = str(host)
        return files

    def run(self) -> None:
        report, options = self.report, self.options
        if self.images is None and not (self.root / ".venv" / "bin" / "python").exists():
            raise RehearsalError(f"{self.root}/.venv is missing: run `make install` first")
        chart = find_chart(self.root)
        release = options.release or chart.name
        docs = render(options, chart, release)
        self.objects = ConfigObjects.from_manifests(docs, options.namespace)
        self.supply_outside_secrets(docs)
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
        pods = [Pod(self, "Deployment", d) for d in deployments]
        threads = [
            threading.Thread(target=self.run_deployment, args=(pod, d), daemon=True)
            for pod, d in zip(pods, deployments, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for key in sorted(set(options.env) - self.overridden):
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
        pod = Pod(self, str(manifest["kind"]), manifest)
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

    def run_deployment(self, pod: Pod, manifest: Mapping[str, Any]) -> None:
        report = self.report
        replicas = (manifest.get("spec") or {}).get("replicas", 1)
        if replicas != 1:
            report.info(pod.subject, "replicas", f"{replicas} in the chart; rehearsing one pod")
        if not pod.run_inits():
            return
        containers = pod.containers()
        if containers is None:
            return
        ports = sorted(
            {p for c in containers for p in c.named_ports.values()}
            | {
                int(p["containerPort"])
                for c in containers
                for p in c.manifest.get("ports") or []
                if p.get("containerPort")
            }
        )
        with port_locks(ports):
            began = time.monotonic()
            busy = [p for p in ports if not port_free(p)]
            while busy and time.monotonic() - began < PORT_WAIT_SECONDS:
                time.sleep(0.5)
                busy = [p for p in ports if not port_free(p)]
            if time.monotonic() - began >= 1:
                report.info(
                    pod.subject, "ports", f"waited {time.monotonic() - began:.0f}s for {ports}"
                )
            if busy:
                report.add(
                    False,
                    pod.subject,
                    "ports",
                    f"port(s) {busy} still in use on this machine after "
                    f"{PORT_WAIT_SECONDS:g}s: another process would answer the probes",
                )
                return
            try:
                self._run_pod(pod, containers)
            finally:
                for container in containers:
                    if container.sandbox is not None:
                        container.sandbox.close()

    def _run_pod(self, pod: Pod, containers: list[Container]) -> None:
        report = self.report
        for container in containers:
            container.sandbox = self.sandbox(container)
            try:
                container.sandbox.start()
            except SandboxError as error:
                report.add(False, container.subject, "start", str(error))
                return
            sandbox = container.sandbox
            named = (
                f"; {sandbox.engine.kind} container {sandbox.run.name}"
                if isinstance(sandbox, ContainerSandbox)
                else ""
            )
            report.add(
                True,
                container.subject,
                "start",
                f"running as PID 1 (host pid {sandbox.pid}{named})",
            )
        results = [True] * len(containers)

        def watch(index: int, container: Container) -> None:
            results[index] = self.probe(container)

        threads = [
            threading.Thread(target=watch, args=(i, c), daemon=True)
            for i, c in enumerate(containers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.terminate(pod, containers)

    # --- probes --------------------------------------------------------------------------------

    def probe(self, container: Container) -> bool:
        """Startup probe, then liveness and readiness for the probe window."""
        report, sandbox = self.report, container.sandbox
        assert sandbox is not None
        manifest = container.manifest
        handlers: dict[str, tuple[Handler, ProbeSettings]] = {}
        for kind in ("startup", "liveness", "readiness"):
            spec = manifest.get(f"{kind}Probe")
            if not spec:
                continue
            try:
                handlers[kind] = (container.handler(spec), ProbeSettings.of(spec))
            except PortError as error:
                report.add(False, container.subject, kind, str(error))
                return False
        started = time.monotonic()
        if "startup" in handlers:
            handler, settings = handlers["startup"]
            if not self._startup(container, handler, settings, started):
                return False
        elif not self._still_running(container, "start"):
            return False
        window = self.options.probe_seconds
        results: dict[str, bool] = {}

        def loop(kind: str, handler: Handler, settings: ProbeSettings) -> None:
            results[kind] = self._steady(container, kind, handler, settings, window)

        threads = [
            threading.Thread(target=loop, args=(k, *handlers[k]), daemon=True)
            for k in ("liveness", "readiness")
            if k in handlers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if not threads:
            time.sleep(window)
            report.info(container.subject, "probes", "no liveness or readiness probe")
        self._settle(container)
        return all(results.values()) and self._still_running(container, "run")

    def _settle(self, container: Container) -> None:
        """Wait (a while) until PID 1 catches SIGTERM, e.g. a worker without probes booting."""
        sandbox = container.sandbox
        assert sandbox is not None
        began = time.monotonic()
        while (
            not sandbox.catches(signal.SIGTERM, through_init=True)
            and sandbox.poll() is None
            and time.monotonic() - began < SETTLE_SECONDS
        ):
            time.sleep(0.1)
        waited = time.monotonic() - began
        if waited >= 0.5:
            caught = sandbox.catches(signal.SIGTERM, through_init=True)
            self.report.info(
                container.subject,
                "settle",
                f"waited {waited:.1f}s for PID 1 to catch SIGTERM"
                + ("" if caught else "; it still does not"),
            )

    def _still_running(self, container: Container, action: str) -> bool:
        assert container.sandbox is not None
        code = container.sandbox.poll()
        if code is None:
            return True
        self.report.add(
            False,
            container.subject,
            action,
            f"container exited {code}{last_error(container.sandbox.log())}",
        )
        self.report.log(container.subject, container.sandbox.log())
        return False

    def _startup(
        self, container: Container, handler: Handler, settings: ProbeSettings, started: float
    ) -> bool:
        report, sandbox = self.report, container.sandbox
        assert sandbox is not None
        time.sleep(settings.initial_delay)
        failures = attempts = 0
        last = Attempt(False, "never ran")
        while True:
            tick = time.monotonic()
            if sandbox.poll() is not None:
                report.add(
                    False,
                    container.subject,
                    "startup",
                    f"container exited {sandbox.poll()} before the startup probe succeeded"
                    + last_error(sandbox.log()),
                )
                report.log(container.subject, sandbox.log())
                return False
            last = handler.run(settings.timeout, container)
            attempts += 1
            if last.ok:
                report.add(
                    True,
                    container.subject,
                    "startup",
                    f"{handler.describe()}: {last.detail} after "
                    f"{time.monotonic() - started:.1f}s ({attempts} attempt"
                    f"{'s' * (attempts > 1)}; {settings.describe()})",
                )
                return True
            failures += 1
            if failures >= settings.failure_threshold:
                break
            time.sleep(max(0.0, settings.period - (time.monotonic() - tick)))
        reason = last.detail
        if last.refused:
            listening = sorted(sandbox.listening_ports())
            reason += (
                f"; the container listens on {', '.join(map(str, listening))}, "
                f"not on {handler.port}"
                if listening
                else "; the container listens on no TCP port"
            )
        report.add(
            False,
            container.subject,
            "startup",
            f"{handler.describe()} failed {failures} times in "
            f"{time.monotonic() - started:.0f}s (failureThreshold {settings.failure_threshold} "
            f"x periodSeconds {settings.period:g}): {reason}",
        )
        report.log(container.subject, sandbox.log())
        return False

    def _steady(
        self,
        container: Container,
        kind: str,
        handler: Handler,
        settings: ProbeSettings,
        window: float,
    ) -> bool:
        """Probe every period for `window` seconds (at least once); every attempt must pass."""
        assert container.sandbox is not None
        time.sleep(settings.initial_delay)
        end = time.monotonic() + window
        attempts: list[Attempt] = []
        while True:
            tick = time.monotonic()
            if container.sandbox.poll() is not None:
                break
            attempts.append(handler.run(settings.timeout, container))
            if time.monotonic() + max(0.0, settings.period - (time.monotonic() - tick)) >= end:
                break
            time.sleep(max(0.0, settings.period - (time.monotonic() - tick)))
        if container.sandbox.poll() is None:
            time.sleep(max(0.0, end - time.monotonic()))
        passed = [a for a in attempts if a.ok]
        failed = [a for a in attempts if not a.ok]
        summary = (
            f"{handler.describe()}: {len(passed)}/{len(attempts)} ok over {window:g}s "
            f"({settings.describe()})"
        )
        if failed or not attempts:
            detail = failed[-1].detail if failed else "never ran (container exited)"
            self.report.add(False, container.subject, kind, f"{summary}; {detail}")
            return False
        self.report.add(True, container.subject, kind, f"{summary}; {attempts[-1].detail}")
        return True

    # --- termination ---------------------------------------------------------------------------

    def _readiness_while_draining(self, container: Container) -> None:
        """The kubelet keeps probing readiness while a pod terminates: say what it sees."""
        spec = container.manifest.get("readinessProbe")
        if not spec:
            return
        time.sleep(0.3)
        handler = container.handler(spec)
        attempt = handler.run(ProbeSettings.of(spec).timeout, container)
        state = "still ready" if attempt.ok else "not ready (out of rotation)"
        self.report.info(container.subject, "draining", f"after SIGTERM: {attempt.detail}: {state}")

    def terminate(self, pod: Pod, containers: list[Container]) -> None:
        """preStop, then SIGTERM; every container must exit (0) within the grace period."""

        def stop(container: Container) -> None:
            report, sandbox = self.report, container.sandbox
            assert sandbox is not None
            began = time.monotonic()
            deadline = began + pod.grace
            pre_stop = ((container.manifest.get("lifecycle") or {}).get("preStop")) or None
            if pre_stop and sandbox.poll() is None:
                handler = container.handler(pre_stop)
                result = handler.run(max(deadline - time.monotonic(), 0.1), container)
                took = time.monotonic() - began
                if result.ok:
                    report.add(
                        True,
                        container.subject,
                        "preStop",
                        f"{handler.describe()}: {result.detail} ({took:.1f}s)",
                    )
                else:
                    report.add(
                        False,
                        container.subject,
                        "preStop",
                        f"{handler.describe()} failed (FailedPreStopHook): {result.detail}",
                    )
            if sandbox.poll() is not None:
                report.add(
                    False,
                    container.subject,
                    "SIGTERM",
                    f"container had already exited ({sandbox.poll()}){last_error(sandbox.log())}",
                )
                return
            term_at = time.monotonic()
            catching = sandbox.catches(signal.SIGTERM)
            sandbox.signal(signal.SIGTERM)
            self._readiness_while_draining(container)
            # The kubelet grants 2 s more when preStop used up the grace period.
            wait = max(deadline - time.monotonic(), 2.0 if time.monotonic() >= deadline else 0.0)
            try:
                code = sandbox.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                sandbox.kill()
                report.add(
                    False,
                    container.subject,
                    "SIGTERM",
                    f"still running {time.monotonic() - term_at:.1f}s after SIGTERM: killed "
                    f"at the end of terminationGracePeriodSeconds {pod.grace:g}"
                    + (
                        ""
                        if catching
                        else " (PID 1 had no SIGTERM handler: a container's PID 1 ignores "
                        "signals it does not catch; exec the server, or catch SIGTERM sooner)"
                    ),
                )
                report.log(container.subject, sandbox.log())
                return
            total = time.monotonic() - began
            detail = (
                f"exited {code} {time.monotonic() - term_at:.1f}s after SIGTERM; "
                f"{total:.1f}s of terminationGracePeriodSeconds {pod.grace:g}"
            )
            if code != 0:
                report.add(False, container.subject, "SIGTERM", detail + last_error(sandbox.log()))
                report.log(container.subject, sandbox.log())
            else:
                report.add(True, container.subject, "SIGTERM", detail)

        threads = [threading.Thread(target=stop, args=(c,), daemon=True) for c in containers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


# --- ports ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def port_locks(ports: Sequence[int]) -> Iterator[None]:
    """Rehearsals on this machine take turns per port (pods share the host's network)."""
    folder = Path(tempfile.gettempdir()) / "svcgen-rehearse-ports"
    folder.mkdir(exist_ok=True)
    handles = []
    try:
        for port in sorted(set(ports)):
            handle = (folder / f"{port}.lock").open("w")
            handles.append(handle)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        for handle in reversed(handles):
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


# --- entry points ------------------------------------------------------------------------------


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


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (dotenv style: `#` comments, blank lines, `export `, quoted values)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise typer.BadParameter(f"cannot read {path}: {error}") from error
    found: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise typer.BadParameter(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        found[key] = value
    return found


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"expected KEY=VALUE, got {text!r}")
    return key, value


def rehearse(
    path: Annotated[
        Path, typer.Argument(help="The generated project (its .venv installed)")
    ] = Path(),
    values: Annotated[
        list[Path] | None,
        typer.Option("--values", "-f", metavar="FILE", help="Helm values file (repeatable)"),
    ] = None,
    sets: Annotated[
        list[str] | None, typer.Option("--set", metavar="KEY=VALUE", help="Helm --set (repeatable)")
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            "-e",
            metavar="KEY=VALUE",
            help="Replace a container variable, e.g. an in-cluster DATABASE_URL (repeatable)",
        ),
    ] = None,
    env_files: Annotated[
        list[Path] | None,
        typer.Option(
            "--env-file",
            metavar="FILE",
            help="KEY=VALUE lines, as --env (repeatable; --env wins): e.g. the values of an "
            "external or existing Secret the chart does not render",
        ),
    ] = None,
    probe_seconds: Annotated[
        float,
        typer.Option(metavar="SECONDS", help="Seconds of liveness and readiness probing"),
    ] = 3.0,
    release: Annotated[
        str | None, typer.Option(metavar="NAME", help="Helm release name (default: the chart's)")
    ] = None,
    namespace: Annotated[
        str, typer.Option(metavar="NAME", help="Namespace to render into")
    ] = "default",
    image: Annotated[
        bool,
        typer.Option(
            "--image",
            help="Run the built image with Docker or Podman (default: the project's .venv "
            "standing in for it, under bubblewrap)",
        ),
    ] = False,
    engine: Annotated[
        str | None,
        typer.Option(
            metavar="CLI",
            help="podman, docker or a path (implies --image; default: $SVCGEN_ENGINE, else "
            "podman, else docker)",
        ),
    ] = None,
    build: Annotated[
        bool,
        typer.Option(
            "--build",
            help="Build the Dockerfile first, as the image the chart names (implies --image)",
        ),
    ] = False,
) -> None:
    """Run the chart's pods locally as a kubelet would: hooks, probes, termination."""
    options = Options(
        path=path,
        values=list(values or []),
        sets=list(sets or []),
        env={
            **{k: v for file in env_files or [] for k, v in read_env_file(file).items()},
            **dict(_key_value(item) for item in env or []),
        },
        probe_seconds=probe_seconds,
        release=release,
        namespace=namespace,
        image=image or build or engine is not None,
        engine=engine,
        build=build,
    )
    if options.image:
        try:
            find_engine(engine)
        except EngineError as error:
            raise typer.BadParameter(
                f"{error}; install Docker or Podman, name one with --engine, or rehearse "
                "without --image (the project's .venv stands in for the image)",
                param_hint="--engine",
            ) from None
    print(f"svcgen rehearse {path.resolve()}", flush=True)
    report = run_rehearsal(options, sys.stdout)
    if not report.ok:
        raise typer.Exit(1)
