"""The generated service run the way its image runs it (uid 10001, read-only root, tmpfs /tmp)
under bubblewrap, since no container engine runs here: each framework without services and with
all of them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .container_support import UID, exec_form, healthcheck_probe, stages
from .support import INIT, LOCAL_SERVICES, SERVICES, Project, combo_id, matrix, tool

ProjectFactory = Callable[..., Project]
pytestmark = pytest.mark.e2e

COMBOS = matrix()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def sandbox(project: Project, command: list[str], env: dict[str, str]) -> list[str]:
    """bwrap as the image runs: uid/gid 10001, no capabilities, read-only /, tmpfs /tmp, only the
    image's environment. /app can't be created on a read-only /, so the venv stays where it is."""
    argv = [
        tool("bwrap"), "--unshare-user", "--uid", str(UID), "--gid", str(UID),
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session",
        "--cap-drop", "ALL", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
        "--perms", "1777", "--tmpfs", "/tmp",
        # the tmpfs hides a project generated under /tmp: bind it back, read-only
        "--ro-bind", str(project.path), str(project.path),
        "--chdir", "/", "--clearenv",
    ]  # fmt: skip
    for key, value in env.items():
        argv += ["--setenv", key, value]
    return [*argv, "--", *command]


def descendants(pid: int) -> Iterator[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            yield child
            todo.append(child)


def is_server(pid: int, package: str) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"python" in Path(argv[0].decode()).name.encode() and package.encode() in argv


# Each framework without services (readiness too) and with all of them (liveness: it checks no
# dependency, so the URLs need only be valid).
RUNTIME_COMBOS = [a for a in COMBOS if len(a["services"]) in (0, len(SERVICES))]


@pytest.mark.parametrize("answers", RUNTIME_COMBOS, ids=[combo_id(a) for a in RUNTIME_COMBOS])
def test_service_runs_like_its_image(project: ProjectFactory, answers: dict[str, Any]) -> None:
    p = project(answers)
    runtime = stages(p.path / "Dockerfile")[-1]
    venv_bin = str(p.path / ".venv" / "bin")
    env = {k: v.replace("/app/.venv", str(p.path / ".venv")) for k, v in runtime.env().items()}
    env["PATH"] = env["PATH"].replace("$PATH", "/usr/local/bin:/usr/bin:/bin")
    assert env["PATH"].startswith(venv_bin + ":")
    port = free_port()
    for service in p.answers["services"]:
        env.update(LOCAL_SERVICES[service])
    env.update(
        PORT=str(port), HOME="/nonexistent", LANG="C.UTF-8", DRAIN_SECONDS="0", SHUTDOWN_TIMEOUT="5"
    )
    if p.answers["metrics"]:  # a free one, as for PORT: another server here may hold the default
        env["METRICS_PORT"] = str(free_port())
    command = exec_form(runtime.last("ENTRYPOINT")) + exec_form(runtime.last("CMD"))
    assert command[: len(INIT) + 1] == [*INIT, "python"]
    # what PATH resolves `dumb-init` and `python` to inside the image
    command[0] = f"{venv_bin}/dumb-init"
    command[len(INIT)] = f"{venv_bin}/python"

    proc = subprocess.Popen(
        sandbox(p, command, env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        live = ready = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                live = httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2)
                if not p.answers["services"]:
                    ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert live is not None, f"no answer on :{port}; exit {proc.poll()}"
        assert live.status_code == 200
        if not p.answers["services"]:
            assert ready is not None
            assert ready.status_code == 200, ready.text
        # the image's HEALTHCHECK, run in a sandbox of its own, passes
        probe = healthcheck_probe(runtime)
        probe[0] = f"{venv_bin}/python"
        check = subprocess.run(sandbox(p, probe, env), capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        # the server runs as uid 10001 in its user namespace
        server = [pid for pid in descendants(proc.pid) if is_server(pid, p.package)]
        assert server, "server process not found"
        uid_map = Path(f"/proc/{server[0]}/uid_map").read_text().split()
        assert uid_map[0] == str(UID)
        # a clean stop on SIGTERM, with nothing in the way on a read-only root
        os.kill(server[0], signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output
    # and the same HEALTHCHECK fails once nothing answers
    down = subprocess.run(sandbox(p, probe, env), capture_output=True, text=True, timeout=30)
    assert down.returncode == 1
    assert "Read-only file system" not in output
    assert "Permission denied" not in output
    for line in output.splitlines():
        assert json.loads(line)["level"] != "ERROR", line
