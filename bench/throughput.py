"""Generated service vs the bare framework: requests/s and latency on /health/live.

Both apps run under the same server the generated one uses (gunicorn, one worker:
uvicorn worker with its access log off for FastAPI, gthread with 8 threads for Flask),
pinned to one CPU; wrk runs on the other. Runs alternate bare / generated (ABBA) so
drift in the machine's other load hits both alike; the figures are medians.
Run alone: `.venv/bin/python bench/throughput.py [--seconds 5 --rounds 2]`.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from harness import (
    FRAMEWORKS,
    LOAD_CPU,
    SERVER_CPU,
    Row,
    Server,
    cpu_seconds,
    free_port,
    memory_kib,
    pinned,
    prepared_project,
    print_rows,
    service_argv,
    service_env,
)

from tests.support import Project

TARGET = 0.90
CONNECTIONS = 32
PATH = "/health/live"

BARE_FASTAPI = """\
from typing import Any, ClassVar

from fastapi import FastAPI
from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {**UvicornWorker.CONFIG_KWARGS, "access_log": False}


app = FastAPI()


@app.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "pass"}
"""

BARE_FLASK = """\
from flask import Flask

app = Flask(__name__)


@app.get("/health/live")
def live() -> dict[str, str]:
    return {"status": "pass"}
"""


def bare_argv(project: Project, framework: str, port: int) -> list[str]:
    """gunicorn with the generated server's settings, serving the hello-world app."""
    common = [
        str(project.python),
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--keep-alive",
        "5",
        "--worker-tmp-dir",
        "/dev/shm",
    ]
    if framework == "fastapi":
        return [*common, "--worker-class", "bare_fastapi.Worker", "bare_fastapi:app"]
    return [*common, "--worker-class", "gthread", "--threads", "8", "bare_flask:app"]


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_us_per_request: float = 0.0


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        raise ValueError(f"wrk output has no {pattern!r}:\n{text}")
    return match[1]


def parse_wrk(out: str) -> WrkResult:
    errors = 0
    socket_errors = r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
    if socket := re.search(socket_errors, out):
        errors += sum(int(g) for g in socket.groups())
    if non2xx := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(non2xx[1])
    return WrkResult(
        rps=float(_find(r"Requests/sec:\s+([\d.]+)", out)),
        p50_ms=_ms(_find(r"^\s+50%\s+(\S+)", out)),
        p99_ms=_ms(_find(r"^\s+99%\s+(\S+)", out)),
        requests=int(_find(r"(\d+) requests in", out)),
        errors=errors,
    )


def wrk(port: int, seconds: float) -> WrkResult:
    argv = pinned(
        LOAD_CPU,
        [
            "wrk",
            "-t1",
            f"-c{CONNECTIONS}",
            f"-d{seconds:g}s",
            "--latency",
            f"http://127.0.0.1:{port}{PATH}",
        ],
    )
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def ensure_wrk() -> str | None:
    """Path of wrk, installing Debian's package when it is missing (needs root)."""
    if found := shutil.which("wrk"):
        return found
    if shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "wrk"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    return shutil.which("wrk")


@dataclass
class Comparison:
    framework: str
    bare: list[WrkResult] = field(default_factory=list)
    generated: list[WrkResult] = field(default_factory=list)
    before: list[WrkResult] = field(default_factory=list)
    quiet: list[WrkResult] = field(default_factory=list)
    worker_rss_after_load_kib: int = 0

    @staticmethod
    def median(results: list[WrkResult], attr: str) -> float:
        return statistics.median(float(getattr(r, attr)) for r in results)

    def ratio(self, results: list[WrkResult]) -> float:
        return self.median(results, "rps") / self.median(self.bare, "rps")

    def cpu_ratio(self, results: list[WrkResult]) -> float:
        """Bare CPU per request over ours: the rps ratio when the server has a core to itself."""
        return self.median(self.bare, "cpu_us_per_request") / self.median(
            results, "cpu_us_per_request"
        )

    def pair_ratios(self, results: list[WrkResult]) -> list[float]:
        return [g.rps / b.rps for g, b in zip(results, self.bare, strict=True)]


def _generated_server(project: Project, work: Path, label: str, **env: str) -> Server:
    port = free_port()
    return Server(
        pinned(SERVER_CPU, service_argv(project)),
        cwd=project.path,
        env=service_env(project, port, **env),
        port=port,
        log=work / f"{label}-{project.answers['framework']}.log",
    )


def compare(
    project: Project, work: Path, seconds: float, rounds: int, before: Project | None = None
) -> Comparison:
    """Bare vs generated (vs the generated app before the hot-path work), rotating order."""
    framework = str(project.answers["framework"])
    (work / f"bare_{framework}.py").write_text(
        BARE_FASTAPI if framework == "fastapi" else BARE_FLASK, encoding="utf-8"
    )
    bare_port = free_port()
    result = Comparison(framework)
    servers = [
        (
            Server(
                pinned(SERVER_CPU, bare_argv(project, framework, bare_port)),
                cwd=work,
                env=project.env,
                port=bare_port,
                log=work / f"bare-{framework}.log",
            ),
            PATH,
            result.bare,
        ),
        (_generated_server(project, work, "generated"), "/health/ready", result.generated),
        # The same app with its access line off: what the per-request log line costs.
        (
            _generated_server(project, work, "quiet", LOG_LEVEL="WARNING"),
            "/health/ready",
            result.quiet,
        ),
    ]
    if before is not None:
        servers.append((_generated_server(before, work, "before"), "/health/ready", result.before))
    try:
        for server, ready, _ in servers:
            server.wait_for(ready)
            wrk(server.port, 1)  # warm-up: imports, first-request caches
        for i in range(rounds):
            shift = i % len(servers)
            for server, _, results in servers[shift:] + servers[:shift]:
                pids = [server.pid, *server.children()]
                cpu = cpu_seconds(pids)
                run = wrk(server.port, seconds)
                run.cpu_us_per_request = (cpu_seconds(pids) - cpu) / run.requests * 1e6
                results.append(run)
        workers = servers[1][0].children()
        if workers:
            result.worker_rss_after_load_kib = memory_kib(workers[0])[0]
    finally:
        for server, _, _ in servers:
            server.stop()
    return result


def _latency(results: list[WrkResult]) -> str:
    med = Comparison.median
    return (
        f"{med(results, 'rps'):,.0f}/s, {med(results, 'p50_ms'):.1f} / "
        f"{med(results, 'p99_ms'):.1f} ms"
    )


def rows(comparisons: list[Comparison]) -> list[Row]:
    out = []
    section = "throughput"
    med = Comparison.median
    for c in comparisons:
        out += [
            Row(section, f"{c.framework}: bare rps, p50 / p99", _latency(c.bare)),
            Row(section, f"{c.framework}: generated rps, p50 / p99", _latency(c.generated)),
            Row(
                section,
                f"{c.framework}: server CPU per request",
                f"bare {med(c.bare, 'cpu_us_per_request'):.0f} us, generated "
                f"{med(c.generated, 'cpu_us_per_request'):.0f} us: rps ratio on an idle core "
                f"~{c.cpu_ratio(c.generated):.0%}",
                f">= {TARGET:.0%}",
                c.cpu_ratio(c.generated) >= TARGET,
            ),
            Row(
                section,
                f"{c.framework}: generated / bare rps",
                f"{c.ratio(c.generated):.0%} (rounds: "
                f"{', '.join(f'{r:.0%}' for r in c.pair_ratios(c.generated))})",
                f">= {TARGET:.0%}",
                c.ratio(c.generated) >= TARGET,
            ),
        ]
        if c.quiet:
            out.append(
                Row(
                    section,
                    f"{c.framework}: generated, access log off / bare",
                    f"{c.ratio(c.quiet):.0%}, CPU ~{c.cpu_ratio(c.quiet):.0%} "
                    f"({med(c.quiet, 'cpu_us_per_request'):.0f} us/request; LOG_LEVEL=WARNING)",
                )
            )
        if c.before:
            out.append(
                Row(
                    section,
                    f"{c.framework}: before hot-path work / bare",
                    f"{c.ratio(c.before):.0%}, CPU ~{c.cpu_ratio(c.before):.0%} (rounds: "
                    f"{', '.join(f'{r:.0%}' for r in c.pair_ratios(c.before))}); "
                    f"{_latency(c.before)}",
                )
            )
        errors = sum(r.errors for r in c.bare + c.generated + c.before + c.quiet)
        if errors:
            out.append(Row(section, f"{c.framework}: wrk errors", str(errors), "0", False))
        if c.worker_rss_after_load_kib:
            out.append(
                Row(
                    "memory",
                    f"{c.framework}: worker RSS after load",
                    f"{c.worker_rss_after_load_kib / 1024:.1f} MiB",
                )
            )
    return out


def measure(
    work: Path,
    projects: dict[str, Project],
    seconds: float,
    rounds: int,
    before: dict[str, Project] | None = None,
) -> list[Comparison]:
    if ensure_wrk() is None:
        raise RuntimeError("wrk is not installed and could not be installed (apt-get install wrk)")
    return [compare(projects[f], work, seconds, rounds, (before or {}).get(f)) for f in FRAMEWORKS]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--framework", choices=FRAMEWORKS, action="append")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="svcgen-bench-") as tmp:
        work = Path(tmp)
        frameworks = args.framework or list(FRAMEWORKS)
        projects = {f: prepared_project(work, f) for f in frameworks}
        comparisons = [compare(projects[f], work, args.seconds, args.rounds) for f in frameworks]
    print_rows(rows(comparisons))
    return 0


if __name__ == "__main__":
    sys.exit(main())
