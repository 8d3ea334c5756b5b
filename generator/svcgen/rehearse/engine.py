"""A real container engine (the Docker or the Podman CLI) building a generated service's image and
running a container of its chart the way the kubelet would: the pod's user, read-only root,
capabilities, no privilege escalation, a tmpfs for every emptyDir, the chart's command and
environment. Used by `svcgen rehearse --image` and the image tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .env import quantity
from .sandbox import REPO_TOOLS, Sandbox, SandboxError

__all__ = [
    "ENGINES",
    "ContainerSandbox",
    "Engine",
    "EngineError",
    "RunSpec",
    "find_engine",
    "run_spec",
]

#: Engine CLIs, in the order they are looked for.
ENGINES = ("podman", "docker")


class EngineError(RuntimeError):
    """No engine, or the engine refused (the message names the cause)."""


def find_engine(name: str | None = None) -> Engine:
    """`name` (podman, docker or a path), else $SVCGEN_ENGINE, else podman then docker: on PATH,
    then in this repo's .tools/bin (where scripts/install-engine.sh puts podman)."""
    wanted = name or os.environ.get("SVCGEN_ENGINE") or ""
    if wanted and ("/" in wanted):
        if not (Path(wanted).is_file() and os.access(wanted, os.X_OK)):
            raise EngineError(f"engine {wanted} is not an executable file")
        return Engine(wanted)
    for candidate in [wanted] if wanted else ENGINES:
        found = shutil.which(candidate) or shutil.which(candidate, path=str(REPO_TOOLS))
        if found:
            return Engine(found)
    looked = wanted or " or ".join(ENGINES)
    raise EngineError(f"no container engine: {looked} not found on PATH or in {REPO_TOOLS}")


@dataclass
class RunSpec:
    """How to start one container of a pod with an engine."""

    image: str
    name: str
    command: list[str] = field(default_factory=list)  # Kubernetes `command` (replaces ENTRYPOINT)
    args: list[str] = field(default_factory=list)  # Kubernetes `args` (replaces CMD)
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None  # "uid:gid"
    read_only: bool = False
    cap_drop_all: bool = False
    cap_add: list[str] = field(default_factory=list)
    no_new_privileges: bool = False
    tmpfs: dict[str, int] = field(default_factory=dict)  # mount path -> size in bytes (0: none)
    files: dict[str, str] = field(default_factory=dict)  # path in the container -> host file
    network: str = "host"
    hostname: str | None = None

    def describe(self) -> str:
        parts = [f"uid:gid {self.user}" if self.user else "the image's user"]
        parts.append("read-only root" if self.read_only else "writable root")
        parts.append("capabilities dropped" if self.cap_drop_all else "default capabilities")
        if self.cap_add:
            parts[-1] += " + " + ",".join(self.cap_add)
        if self.no_new_privileges:
            parts.append("no-new-privileges")
        parts += [f"tmpfs {path}" for path in sorted(self.tmpfs)]
        return ", ".join(parts)


def run_spec(
    image: str,
    name: str,
    pod_spec: Mapping[str, Any],
    container: Mapping[str, Any],
    env: Mapping[str, str],
) -> RunSpec:
    """The container's settings as the chart renders them (pod-level ones unless the container
    overrides them), for an engine. Raises EngineError for what a kubelet would refuse."""
    pod_context = pod_spec.get("securityContext") or {}
    context = container.get("securityContext") or {}

    def setting(key: str) -> Any:
        return context.get(key, pod_context.get(key))

    uid, gid = setting("runAsUser"), setting("runAsGroup")
    if setting("runAsNonRoot") and uid is not None and int(uid) == 0:
        raise EngineError("container has runAsNonRoot and runAsUser 0")
    if context.get("privileged"):
        raise EngineError("privileged containers are not run")
    caps = context.get("capabilities") or {}
    volumes = {str(v.get("name")): v for v in pod_spec.get("volumes") or []}
    tmpfs: dict[str, int] = {}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(str(mount.get("name")))
        if volume is None:
            raise EngineError(f"volumeMount {mount.get('name')!r} names no pod volume")
        if "emptyDir" in volume:
            limit = (volume.get("emptyDir") or {}).get("sizeLimit")
            tmpfs[str(mount["mountPath"])] = int(quantity(limit)) if limit else 0
    user = None
    if uid is not None:
        user = f"{int(uid)}:{int(gid) if gid is not None else 0}"
    return RunSpec(
        image=image,
        name=name,
        command=[str(c) for c in container.get("command") or []],
        args=[str(a) for a in container.get("args") or []],
        env=dict(env),
        user=user,
        read_only=bool(context.get("readOnlyRootFilesystem", False)),
        cap_drop_all="ALL" in [str(c).upper() for c in caps.get("drop") or []],
        cap_add=[str(c) for c in caps.get("add") or []],
        no_new_privileges=context.get("allowPrivilegeEscalation") is False,
        tmpfs=tmpfs,
    )


@dataclass
class Engine:
    """One engine CLI; every call is a subprocess with a timeout."""

    cli: str

    @property
    def kind(self) -> str:
        return "docker" if "docker" in Path(self.cli).name else "podman"

    def __call__(
        self, *args: str | Path, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.cli, *(str(a) for a in args)]
        env = {**os.environ, "PODMAN_IGNORE_CGROUPSV1_WARNING": "1"}
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, check=False, env=env
            )
        except subprocess.TimeoutExpired as error:
            raise EngineError(f"`{' '.join(argv[:4])} ...` took more than {timeout:g}s") from error
        except OSError as error:
            raise EngineError(f"cannot run {self.cli}: {error}") from error
        if check and done.returncode != 0:
            raise EngineError(
                f"`{self.kind} {' '.join(argv[1:3])}` exited {done.returncode}: "
                + (done.stderr.strip() or done.stdout.strip())[-2000:]
            )
        return done

    def build(
        self,
        context: Path,
        tag: str,
        *,
        build_args: Mapping[str, str] | None = None,
        pull: bool = True,
        network: str | None = None,
        layers: bool = True,
        timeout: float = 900,
    ) -> subprocess.CompletedProcess[str]:
        """Build the Dockerfile in `context`, unmodified. Podman writes the Docker image format:
        the OCI one has no HEALTHCHECK (podman drops it with only a warning). `layers=False`:
        podman keeps no image per instruction (no cache to reuse, nothing left but the image)."""
        argv: list[str] = ["build", "--tag", tag]
        if self.kind == "podman":
            argv += ["--format", "docker", f"--pull={'missing' if pull else 'never'}"]
            if not layers:
                argv += ["--layers=false"]
        elif not pull:
            argv += ["--pull=false"]
        if network:
            argv += ["--network", network]
        for key, value in (build_args or {}).items():
            argv += ["--build-arg", f"{key}={value}"]
        return self(*argv, context, timeout=timeout)

    def start(self, spec: RunSpec) -> str:
        """Start the container detached; its id."""
        argv: list[str] = ["run", "--detach", "--name", spec.name, "--network", spec.network]
        if spec.hostname and spec.network != "host":
            argv += ["--hostname", spec.hostname]
        if spec.user:
            argv += ["--user", spec.user]
        if spec.read_only:
            argv += ["--read-only"]
            if self.kind == "podman":
                # Without this podman adds a tmpfs on /tmp, /run and /var/tmp (a pod has none)
                # and leaves /dev/shm read-only (a pod's runtime gives a writable 64 MiB one).
                argv += ["--read-only-tmpfs=false", "--tmpfs", "/dev/shm:rw,size=67108864"]
        if spec.cap_drop_all:
            argv += ["--cap-drop", "ALL"]
        for cap in spec.cap_add:
            argv += ["--cap-add", cap]
        if spec.no_new_privileges:
            argv += ["--security-opt", "no-new-privileges"]
        for path, size in sorted(spec.tmpfs.items()):
            argv += ["--tmpfs", f"{path}:rw,mode=1777" + (f",size={size}" if size else "")]
        for target, host in sorted(spec.files.items()):
            argv += ["--volume", f"{host}:{target}:ro"]
        for key, value in spec.env.items():
            argv += ["--env", f"{key}={value}"]
        rest: list[str] = []
        if spec.command:
            argv += ["--entrypoint", spec.command[0]]
            rest = spec.command[1:] + spec.args
        else:
            rest = spec.args
        return self(*argv, spec.image, *rest).stdout.strip()

    def state(self, name: str) -> dict[str, Any]:
        """{"Running": bool, "ExitCode": int, "Pid": int, ...} from `inspect`."""
        done = self("inspect", "--format", "{{json .State}}", name)
        state: dict[str, Any] = json.loads(done.stdout)
        return state

    def running(self, name: str) -> bool:
        return bool(self.state(name).get("Running"))

    def exit_code(self, name: str) -> int:
        return int(self.state(name).get("ExitCode", -1))

    def signal(self, name: str, signal: str = "TERM") -> None:
        self("kill", "--signal", signal, name)

    def wait(self, name: str, timeout: float) -> int | None:
        """The exit code, or None if it still runs after `timeout` seconds."""
        try:
            done = self("wait", name, timeout=timeout, check=False)
        except EngineError:
            return None
        lines = done.stdout.strip().splitlines()
        return int(lines[-1]) if done.returncode == 0 and lines else self.exit_code(name)

    def stop(self, name: str, grace: float, timeout: float | None = None) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds (what the kubelet does)."""
        self("stop", "--time", str(int(grace)), name, timeout=timeout or grace + 30)

    def healthcheck(self, name: str) -> subprocess.CompletedProcess[str]:
        """The image's HEALTHCHECK run once, through the engine."""
        if self.kind == "podman":
            return self("healthcheck", "run", name, check=False)
        # Docker runs it on its own timer: ask for the verdict it reached.
        return self("inspect", "--format", "{{.State.Health.Status}}", name, check=False)

    def exec(
        self, name: str, argv: Sequence[str], timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        return self("exec", name, *argv, timeout=timeout, check=False)

    def logs(self, name: str) -> str:
        done = self("logs", name, check=False)
        return done.stdout + done.stderr

    def remove(self, name: str) -> None:
        self("rm", "--force", name, check=False, timeout=60)

    def remove_image(self, image: str) -> None:
        self("rmi", "--force", image, check=False, timeout=120)

    def image_config(self, image: str) -> dict[str, Any]:
        done = self("image", "inspect", image)
        found = json.loads(done.stdout)
        config: dict[str, Any] = found[0]
        return config


class ContainerSandbox(Sandbox):
    """A container of the real image, behind the interface `svcgen rehearse` drives a bubblewrap
    sandbox through: start, poll, wait, signal, exec, log, close. Its processes are this machine's
    (seen through /proc by their host pids), so what PID 1 catches and which ports it listens on
    are read as for the sandbox."""

    def __init__(self, engine: Engine, spec: RunSpec) -> None:  # no bwrap needed
        self.engine = engine
        self.run = spec
        self.pid = 0
        self._started = False
        self._code: int | None = None

    def start(self) -> None:
        try:
            self.engine.start(self.run)
        except EngineError as error:
            self._started = True  # created, maybe: removed on close
            raise SandboxError(str(error)) from None
        self._started = True
        self.pid = int(self.engine.state(self.run.name).get("Pid") or 0)

    def catches(self, signum: int, *, through_init: bool = False) -> bool:
        """As for the sandbox, when the container's PID 1 is a process of this machine. An
        engine in a VM (Docker Desktop, podman machine) shows no such pid here: then there
        is nothing to read, and waiting for it would only delay the rehearsal."""
        if not self.pid or not Path(f"/proc/{self.pid}").is_dir():
            return True
        return super().catches(signum, through_init=through_init)

    def poll(self) -> int | None:
        if self._code is None:
            state = self.engine.state(self.run.name)
            if not state.get("Running"):
                self._code = int(state.get("ExitCode", -1))
        return self._code

    def wait(self, timeout: float | None) -> int:
        code = self.engine.wait(self.run.name, timeout=timeout if timeout is not None else 1e6)
        if code is None:
            raise subprocess.TimeoutExpired(f"{self.engine.kind} wait", timeout or 0)
        self._code = code
        return code

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.poll() is None:
            with contextlib.suppress(EngineError):
                self.engine.signal(self.run.name, signal.Signals(signum).name.removeprefix("SIG"))

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def exec(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.engine.exec(self.run.name, argv, timeout=timeout)

    def log(self) -> str:
        return self.engine.logs(self.run.name) if self._started else ""

    def close(self) -> None:
        if self._started:
            self.engine.remove(self.run.name)
