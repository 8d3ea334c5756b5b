"""A new user's machine for test_first_hour.py: svcgen installed from its wheel, a clean
environment with nothing of this repo, commands run offline or in the background (stopped with
their whole process group).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .repos import GIT_IDENTITY
from .support import REPO

#: What a new machine has: the system's python3, make and git (no uv, no svcgen, no pyenv).
USER_PATH = "/usr/bin:/bin"


@dataclass(frozen=True)
class Installed:
    """svcgen installed from its wheel into a virtual environment of its own."""

    venv: Path
    version: str

    @property
    def svcgen(self) -> str:
        return str(self.venv / "bin" / "svcgen")

    @property
    def template(self) -> Path:
        found = list(self.venv.glob("lib/python*/site-packages/svcgen/_template"))
        assert len(found) == 1, found
        return found[0]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A user's environment: no virtual environment, no PYTHONPATH, nothing of this repo."""
    drop = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "SVCGEN_TEMPLATE", "SVCGEN_SOURCE_URL"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("UV_")}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO))]
    env["PATH"] = os.pathsep.join(path)
    env.update(GIT_IDENTITY)
    env.update(extra or {})
    return env


def run(
    *args: str, cwd: Path, env: Mapping[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, (
        f"{' '.join(args)} exited {result.returncode}\n"
        f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
    )
    return result


def offline(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """`args` with no network: a fresh network namespace, else proxies that lead nowhere."""
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, check=False)
    if probe.returncode == 0:
        return ["unshare", "-rn", *args], {}
    dead = "http://127.0.0.1:9"
    return args, {"HTTPS_PROXY": dead, "HTTP_PROXY": dead, "ALL_PROXY": dead, "NO_PROXY": ""}


def system_python_version() -> str:
    found = shutil.which("python3", path=USER_PATH)
    assert found, f"no python3 on {USER_PATH}"
    version = run(found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])", cwd=REPO,
                  env=clean_env())  # fmt: skip
    return version.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def wait_for(check: Any, what: str, limit: float = 90) -> Any:
    """Poll `check` until it returns something truthy (a wait, not a timed assertion)."""
    deadline = time.monotonic() + limit
    while True:
        try:
            found = check()
        except OSError:
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.5)


@contextmanager
def background(args: list[str], cwd: Path, env: Mapping[str, str], log: Path) -> Iterator[Path]:
    with log.open("w") as out:
        process = subprocess.Popen(
            args, cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def set_env_file(path: Path, values: Mapping[str, str]) -> None:
    lines = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.partition("=")[0] not in values
    ]
    path.write_text("\n".join([*lines, *(f"{k}={v}" for k, v in values.items())]) + "\n")
