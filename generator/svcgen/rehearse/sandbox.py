"""A container stand-in: one process under bubblewrap with a pod's securityContext and volumes.

The process is PID 1 of its own PID namespace (as in a container) and runs with the numeric
uid/gid, no capabilities (or only those added back), a read-only root filesystem when asked,
a fresh tmpfs for each emptyDir and for /dev/shm, and the host's network (so probes reach
it and it reaches this machine's backing services). `exec` runs a command inside the same
namespaces (nsenter), as `kubectl exec`, exec probes and exec hooks do.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Sandbox", "SandboxError", "SandboxSpec", "find_tool"]

#: Where `scripts/install-tools.sh` puts the tools when svcgen runs from its repository.
REPO_TOOLS = Path(__file__).resolve().parents[3] / ".tools" / "bin"


class SandboxError(RuntimeError):
    """The sandbox could not be set up (missing tool, mount point, ...)."""


def find_tool(name: str, env_var: str | None = None) -> str:
    """`$env_var`, then PATH, then this repository's .tools/bin."""
    if env_var and os.environ.get(env_var):
        return os.environ[env_var]
    found = shutil.which(name) or shutil.which(name, path=str(REPO_TOOLS))
    if not found:
        hint = f" (or set {env_var})" if env_var else ""
        raise SandboxError(f"{name} not found on PATH or in {REPO_TOOLS}{hint}")
    return found


@dataclass
class SandboxSpec:
    """Everything bubblewrap needs to stand in for one container."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    uid: int
    gid: int
    hostname: str = "rehearsal"
    read_only_root: bool = True
    drop_all_caps: bool = True
    add_caps: list[str] = field(default_factory=list)
    #: emptyDir mount paths: a fresh tmpfs each, with its size limit in bytes (0: none)
    tmpfs: dict[str, int] = field(default_factory=dict)
    #: the image's working directory on this machine: a tmpfs showing only `image_paths`
    #: (read-only with a read-only root; writes land in the tmpfs otherwise)
    workdir: str | None = None
    #: host paths inside `workdir` that the image holds (its venv, the package sources)
    image_paths: list[str] = field(default_factory=list)
    #: host paths that must stay visible even under an emptyDir (e.g. a venv's interpreter)
    keep: list[str] = field(default_factory=list)
    #: read-only files mounted at a path (ConfigMap/Secret volumes): {container path: host path}
    files: dict[str, str] = field(default_factory=dict)


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def bwrap_argv(spec: SandboxSpec, bwrap: str, info_fd: int) -> list[str]:
    """The bubblewrap command line for `spec` (the command itself last)."""
    argv = [
        bwrap,
        "--unshare-user",
        "--uid",
        str(spec.uid),
        "--gid",
        str(spec.gid),
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--hostname",
        spec.hostname,
        "--as-pid-1",
        "--die-with-parent",
        "--new-session",
        "--info-fd",
        str(info_fd),
    ]
    if spec.drop_all_caps:
        argv += ["--cap-drop", "ALL"]
    for cap in spec.add_caps:
        name = cap.upper()
        argv += ["--cap-add", name if name.startswith("CAP_") else f"CAP_{name}"]
    argv += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    argv += ["--perms", "1777", "--tmpfs", "/dev/shm"]
    # Mounts from the shallowest path down, so a tmpfs never hides a deeper bind.
    mounts: list[tuple[str, list[str]]] = []
    covering = [*spec.tmpfs, *([spec.workdir] if spec.workdir else [])]
    for path, size in spec.tmpfs.items():
        created = any(_under(path, other) and path != other for other in covering)
        if not created and not Path(path).is_dir():
            raise SandboxError(
                f"emptyDir mountPath {path} does not exist here, and a read-only root "
                "cannot create it"
            )
        sized = ["--size", str(size)] if size else []
        mounts.append((path, ["--perms", "0777", *sized, "--tmpfs", path]))
    if spec.workdir:
        mounts.append((spec.workdir, ["--perms", "0755", "--tmpfs", spec.workdir]))
    for path in [*spec.image_paths, *spec.keep]:
        if any(_under(path, other) for other in covering):
            mounts.append((path, ["--ro-bind", path, path]))
    for target, source in spec.files.items():
        mounts.append((target, ["--ro-bind", source, target]))
    for _, options in sorted(mounts, key=lambda item: item[0].rstrip("/").count("/")):
        argv += options
    if spec.workdir and spec.read_only_root:
        argv += ["--remount-ro", spec.workdir]
    argv += ["--chdir", spec.cwd, "--", *spec.argv]
    return argv


class Sandbox:
    """A running sandboxed process, its output collected in a log file."""

    def __init__(self, spec: SandboxSpec, *, bwrap: str | None = None) -> None:
        self.spec = spec
        self.bwrap = bwrap or find_tool("bwrap", "SVCGEN_BWRAP")
        self.nsenter = find_tool("nsenter")
        self._log = tempfile.TemporaryFile(prefix="svcgen-rehearse-")  # noqa: SIM115
        self.process: subprocess.Popen[bytes] | None = None
        self.pid = 0  # the container's PID 1, as seen from here

    def start(self) -> None:
        read_end, write_end = os.pipe()
        try:
            self.process = subprocess.Popen(
                bwrap_argv(self.spec, self.bwrap, write_end),
                env=self.spec.env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                pass_fds=(write_end,),
            )
        finally:
            os.close(write_end)
        with os.fdopen(read_end, "rb") as info:
            raw = info.read()
        try:
            self.pid = int(json.loads(raw)["child-pid"])
        except (ValueError, KeyError):
            self.process.wait(timeout=10)
            raise SandboxError(
                f"bubblewrap failed to start the container: {self.log_tail(5) or raw!r}"
            ) from None

    def poll(self) -> int | None:
        assert self.process is not None
        return self.process.poll()

    def wait(self, timeout: float | None) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.pid and self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def catches(self, signum: int, *, through_init: bool = False) -> bool:
        """Whether PID 1 has a handler for `signum` (PID 1 of a namespace ignores the others).

        `through_init`: also every only child below it, since an init such as dumb-init
        forwards the signal to its child, which dies of it until it catches it too."""
        pid = self.pid
        while True:
            if not self._catches(pid, signum):
                return False
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                return True
            if not through_init or len(children) != 1:
                return True
            pid = int(children[0])

    @staticmethod
    def _catches(pid: int | None, signum: int) -> bool:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False
        for line in status.splitlines():
            if line.startswith("SigCgt:"):
                return bool((int(line.split()[1], 16) >> (signum - 1)) & 1)
        return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGKILL)
            self.process.kill()
            self.process.wait(timeout=10)

    def exec(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside the running container (same mounts, PID namespace, user)."""
        command = [
            self.nsenter,
            "--target",
            str(self.pid),
            "--user",
            "--mount",
            "--pid",
            "--ipc",
            "--uts",
            "--setuid",
            str(self.spec.uid),
            "--setgid",
            str(self.spec.gid),
            f"--wd={self.spec.cwd}",
            "--",
            *argv,
        ]
        return subprocess.run(
            command,
            env=dict(env if env is not None else self.spec.env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def log(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", errors="replace")

    def log_tail(self, lines: int = 10) -> str:
        return "\n".join(self.log().strip().splitlines()[-lines:])

    def close(self) -> None:
        self.kill()
        self._log.close()

    def processes(self) -> list[int]:
        """The container's PID 1 and all its descendants (host PIDs)."""
        found: list[int] = []
        todo = [self.pid] if self.pid else []
        while todo:
            pid = todo.pop()
            found.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*"):
                try:
                    children = (task / "children").read_text().split()
                except OSError:
                    continue
                todo.extend(int(child) for child in children)
        return found

    def listening_ports(self) -> set[int]:
        """TCP ports the container's processes listen on."""
        inodes: set[str] = set()
        for pid in self.processes():
            try:
                fds = list(Path(f"/proc/{pid}/fd").iterdir())
            except OSError:
                continue
            for fd in fds:
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        ports: set[int] = set()
        for table in ("tcp", "tcp6"):
            try:
                rows = Path(f"/proc/{self.pid}/net/{table}").read_text().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                columns = row.split()
                if len(columns) > 9 and columns[3] == "0A" and columns[9] in inodes:
                    ports.add(int(columns[1].rsplit(":", 1)[1], 16))
        return ports
