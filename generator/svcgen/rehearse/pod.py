"""One pod of the chart (a Deployment's single replica, or a hook Job's) and its containers:
environment, command and sandbox of each, and running the ones that must complete."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..dockerfile import effective_command
from .engine import EngineError, RunSpec
from .env import ConfigObjects, EnvError, PodFacts, build_env, expand, quantity
from .image import ImageRun
from .probes import Handler
from .report import RehearsalError, Report, last_error, mask
from .sandbox import Sandbox, SandboxError, SandboxSpec
from .standin import ImageStandIn

#: How long a hook Job may run when it sets no activeDeadlineSeconds.
DEFAULT_JOB_DEADLINE = 300.0


@dataclass
class PodContext:
    """What a pod takes from its rehearsal, and no more: where to report, what stands in for
    the image (or the engine that runs it), the release's ConfigMaps and Secrets, the --env
    overrides (noting those a container used) and a scratch folder for volume files."""

    report: Report
    stand_in: ImageStandIn
    objects: ConfigObjects
    namespace: str
    overrides: Mapping[str, str]
    scratch: Path
    images: ImageRun | None = None
    overridden: set[str] = field(default_factory=set)

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
            host = self.scratch / name / str(item.get("path", key))
            host.parent.mkdir(parents=True, exist_ok=True)
            host.write_text(store[name][key], encoding="utf-8")
            files[f"{target.rstrip('/')}/{item.get('path', key)}"] = str(host)
        return files


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
        context: PodContext,
        kind: str,
        manifest: Mapping[str, Any],
    ) -> None:
        self.context = context
        self.kind = kind
        self.name = str(manifest["metadata"]["name"])
        self.subject = f"{kind}/{self.name}"
        template = (manifest.get("spec") or {}).get("template") or {}
        self.meta = template.get("metadata") or {}
        self.spec: dict[str, Any] = template.get("spec") or {}
        self.grace = float(self.spec.get("terminationGracePeriodSeconds", 30))
        self.facts = PodFacts(
            name=f"{self.name}-rehearsal",
            namespace=context.namespace,
            labels={str(k): str(v) for k, v in (self.meta.get("labels") or {}).items()},
            annotations={str(k): str(v) for k, v in (self.meta.get("annotations") or {}).items()},
            service_account=str(self.spec.get("serviceAccountName") or "default"),
        )

    def prepare(self, container: Mapping[str, Any], init: bool = False) -> Container | None:
        """Environment, command and sandbox of `container`; None (with a FAIL) if impossible."""
        report, stand_in = self.context.report, self.context.stand_in
        subject = f"{self.subject}:{container.get('name')}{' (init)' if init else ''}"
        try:
            built = build_env(container, self.context.objects, self.facts)
        except EnvError as error:
            report.add(False, subject, "env", f"CreateContainerConfigError: {error}")
            return None
        for key, value in self.context.overrides.items():
            if key in built.values:
                report.info(
                    subject,
                    "override",
                    f"{key}={mask(value)} (chart: {mask(built.values[key])})",
                )
                built.values[key] = value
                self.context.overridden.add(key)
        sources = sorted(set(built.origins.values()))
        report.add(
            True,
            subject,
            "env",
            f"{len(built.values)} variables from {', '.join(sources) or 'none'}",
        )
        kube_env = built.values
        if self.context.images is not None:
            return self._image_container(container, subject, kube_env)
        volumes = {str(v.get("name")): v for v in self.spec.get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            if "emptyDir" in volumes.get(str(mount.get("name")), {}):
                stand_in.provide(str(mount.get("mountPath", "")), self.context.scratch)
        env = {k: stand_in.map_value(v) for k, v in stand_in.image.env.items()}
        env.setdefault("HOME", "/")
        env["HOSTNAME"] = self.facts.name
        env.update({k: stand_in.map_value(v) for k, v in kube_env.items()})
        command = [expand(str(c), kube_env) for c in container.get("command") or []]
        args = [expand(str(a), kube_env) for a in container.get("args") or []]
        argv = stand_in.map_argv(effective_command(stand_in.image, command, args))
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
        images, report = self.context.images, self.context.report
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
                    spec.files.update(self.context.volume_files(volume, target))
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
        stand_in, report = self.context.stand_in, self.context.report
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
                files.update(self.context.volume_files(volume, target))
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
        report = self.context.report
        sandbox = self.context.sandbox(container)
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
