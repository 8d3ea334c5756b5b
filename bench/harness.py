"""What every benchmark shares: result rows, generated projects, server processes.

Not a test helper: the benches print figures next to targets and never assert.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support import Project, generate  # noqa: E402

FRAMEWORKS = ("fastapi", "flask")
# Server on one core, load generator on the other (when there are two), so they don't
# fight over the same core; the machine's other load still lands on both (see the notes).
SERVER_CPU = "0"
LOAD_CPU = "1"


@dataclass(frozen=True)
class Row:
    """One figure with its target; `ok` is None for figures without a target."""

    section: str
    measure: str
    figure: str
    target: str = ""
    ok: bool | None = None

    @property
    def verdict(self) -> str:
        return {True: "meets", False: "MISSES", None: ""}[self.ok]


def print_rows(rows: Sequence[Row]) -> None:
    """Rows as aligned columns: measure, figure, target, verdict."""
    widths = [max((len(getattr(r, f)) for r in rows), default=0) for f in ("measure", "figure")]
    for r in rows:
        print(f"{r.measure:<{widths[0]}}  {r.figure:<{widths[1]}}  {r.target:<10} {r.verdict}")


def run_section(rows_of: Callable[[Path, dict[str, Project]], Sequence[Row]]) -> int:
    """Run one section on its own: default projects of each framework, then its rows."""
    with tempfile.TemporaryDirectory(prefix="svcgen-bench-") as tmp:
        work = Path(tmp)
        projects = {f: prepared_project(work, f) for f in FRAMEWORKS}
        print_rows(rows_of(work, projects))
    return 0


def pinned(cpu: str, argv: Sequence[str]) -> list[str]:
    """`argv` pinned to `cpu` with taskset, when there are two CPUs and taskset exists."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", cpu, *argv]
    return list(argv)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def prepared_project(
    work: Path, framework: str, src: Path = REPO, name: str = "service", **answers: object
) -> Project:
    """A project of `framework` (default answers, else `answers`), generated and installed
    as the image installs it: bytecode compiled. The image's Python cannot write bytecode, and
    with this machine's PYTHONDONTWRITEBYTECODE every start would compile every module."""
    project = generate(work / f"{framework}-{name}", {"framework": framework, **answers}, src=src)
    project.run("make", "install", env={"UV_COMPILE_BYTECODE": "1"})
    project.run(str(project.python), "-m", "compileall", "-q", "src")
    return project


def template_at(ref: str, work: Path) -> Path:
    """The template as it was at git `ref`, as a plain directory Copier renders as is."""
    dest = work / f"template-{ref}"
    dest.mkdir()
    parts = ["copier.yml", "template", "hooks"]
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-tree", "--name-only", ref, "catalog"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    parts += ["catalog"] if listed.strip() else []  # the service catalog, from its first version
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, *parts], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def status_of(port: int, path: str, timeout: float = 1.0) -> int | None:
    """HTTP status of GET `path` on loopback, None when nothing answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


class Server:
    """A server process in a session of its own, output to a file, stopped by its pid."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        port: int,
        log: Path,
    ) -> None:
        self.port = port
        self.log = log
        self._out: IO[bytes] = log.open("wb")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_for(self, path: str, timeout: float = 30.0, interval: float = 0.005) -> float:
        """Seconds from process start until GET `path` answers 200."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if status_of(self.port, path) == 200:
                return time.perf_counter() - self.started
            if self.proc.poll() is not None:
                break
            time.sleep(interval)
        self.stop()
        tail = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"server on :{self.port} never answered {path} 200\n{tail}")

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except OSError:
            return []

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait()
        self._out.close()
        return self.proc.returncode


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time the processes have used: unlike wall time, other load on the
    machine barely changes it."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / ticks


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in KiB; PSS shares pages shared with the forked workers."""
    rss = pss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key == "Rss":
            rss = int(rest.split()[0])
        elif key == "Pss":
            pss = int(rest.split()[0])
    return rss, pss


def service_argv(project: Project) -> list[str]:
    """The generated entry point, run as the container runs it (no `uv run` in front)."""
    return [str(project.python), "-m", project.package]


def service_env(project: Project, port: int, **extra: str) -> dict[str, str]:
    return {
        **project.env,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "WEB_CONCURRENCY": "1",
        "LOG_LEVEL": "INFO",
        **extra,
    }
