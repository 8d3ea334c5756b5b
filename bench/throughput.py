"""Generated service vs the bare framework: requests/s, CPU and latency on /health/live.

Both apps run under the server the generated one uses (gunicorn, one uvicorn worker with
its access log off; Flask behind a2wsgi with the generated server's thread count), pinned
to one CPU; the load generator runs on the other. Closed loop (wrk, at saturation) first,
then open loop (bench/openloop.c) at half the bare app's saturation rate. Runs rotate
between the variants so drift in the machine's other load hits all alike; figures are medians.
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

import openloop
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
    template_at,
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
from typing import Any, ClassVar

from a2wsgi import WSGIMiddleware
from flask import Flask
from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {**UvicornWorker.CONFIG_KWARGS, "access_log": False}


flask_app = Flask(__name__)


@flask_app.get("/health/live")
def live() -> dict[str, str]:
    return {"status": "pass"}


app = WSGIMiddleware(flask_app, workers=8)  # the generated server's WSGI_THREADS
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
    return [*common, "--worker-class", f"bare_{framework}.Worker", f"bare_{framework}:app"]


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
    # Open loop at half the bare saturation rate, by variant ("bare", "generated", "before").
    open_rate: float = 0.0
    open: dict[str, list[openloop.OpenLoopResult]] = field(default_factory=dict)
    # Worker (RSS, PSS) in KiB after the load, by variant ("generated", "before").
    after_load_kib: dict[str, tuple[int, int]] = field(default_factory=dict)

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
    project: Project,
    work: Path,
    seconds: float,
    rounds: int,
    before: Project | None = None,
    open_seconds: float | None = None,
) -> Comparison:
    """Bare vs generated (vs the generated app before this round of work), rotating order:
    closed loop at saturation, then open loop at half the bare saturation rate."""
    framework = str(project.answers["framework"])
    (work / f"bare_{framework}.py").write_text(
        BARE_FASTAPI if framework == "fastapi" else BARE_FLASK, encoding="utf-8"
    )
    bare_port = free_port()
    result = Comparison(framework)
    # (label, server, closed-loop results)
    servers = [
        (
            "bare",
            Server(
                pinned(SERVER_CPU, bare_argv(project, framework, bare_port)),
                cwd=work,
                env=project.env,
                port=bare_port,
                log=work / f"bare-{framework}.log",
            ),
            result.bare,
        ),
        ("generated", _generated_server(project, work, "generated"), result.generated),
        # The same app with its access line off: what the per-request log line costs.
        ("quiet", _generated_server(project, work, "quiet", LOG_LEVEL="WARNING"), result.quiet),
    ]
    if before is not None:
        servers.append(("before", _generated_server(before, work, "before"), result.before))
    try:
        for _, server, _ in servers:
            server.wait_for(PATH)
            wrk(server.port, 1)  # warm-up: imports, first-request caches
        for i in range(rounds):
            shift = i % len(servers)
            for _, server, results in servers[shift:] + servers[:shift]:
                pids = [server.pid, *server.children()]
                cpu = cpu_seconds(pids)
                run = wrk(server.port, seconds)
                run.cpu_us_per_request = (cpu_seconds(pids) - cpu) / run.requests * 1e6
                results.append(run)
        result.open_rate = result.median(result.bare, "rps") / 2
        binary = openloop.build(work)
        open_servers = [s for s in servers if s[0] != "quiet"]
        for i in range(max(2, rounds // 2)):
            shift = i % len(open_servers)
            for label, server, _ in open_servers[shift:] + open_servers[:shift]:
                pids = [server.pid, *server.children()]
                cpu = cpu_seconds(pids)
                length = open_seconds or seconds
                run_open = openloop.run(
                    binary, server.port, PATH, result.open_rate, length, CONNECTIONS
                )
                run_open.cpu_us_per_request = (
                    (cpu_seconds(pids) - cpu) / max(run_open.done, 1) * 1e6
                )
                result.open.setdefault(label, []).append(run_open)
        for label, server, _ in servers:
            workers = server.children()
            if workers and label in ("generated", "before"):
                result.after_load_kib[label] = memory_kib(workers[0])
    finally:
        for _, server, _ in servers:
            server.stop()
    return result


def _latency(results: list[WrkResult]) -> str:
    med = Comparison.median
    return (
        f"{med(results, 'rps'):,.0f}/s, {med(results, 'p50_ms'):.1f} / "
        f"{med(results, 'p99_ms'):.1f} ms"
    )


def _spread(values: list[float], unit: str = "") -> str:
    """Median with the range of the runs: `133 us (120-150)`."""
    return f"{statistics.median(values):.0f}{unit} ({min(values):.0f}-{max(values):.0f})"


def _open(results: list[openloop.OpenLoopResult]) -> str:
    p50 = statistics.median(r.p50_ms for r in results)
    p99 = statistics.median(r.p99_ms for r in results)
    worst = max(r.p99_ms for r in results)
    cpu = statistics.median(r.cpu_us_per_request for r in results)
    return f"{p50:.1f} / {p99:.1f} ms (worst p99 {worst:.1f}), {cpu:.0f} us CPU"


def rows(comparisons: list[Comparison]) -> list[Row]:
    out = []
    section = "throughput"
    med = Comparison.median
    for c in comparisons:
        cpu = {
            label: [r.cpu_us_per_request for r in results]
            for label, results in (
                ("bare", c.bare),
                ("generated", c.generated),
                ("before", c.before),
            )
            if results
        }
        before_cpu = (
            f"; before {_spread(cpu['before'], ' us')} = ~{c.cpu_ratio(c.before):.0%}"
            if c.before
            else ""
        )
        out += [
            Row(section, f"{c.framework}: bare rps, p50 / p99 (closed loop)", _latency(c.bare)),
            Row(
                section,
                f"{c.framework}: generated rps, p50 / p99 (closed loop)",
                _latency(c.generated) + (f"; before {_latency(c.before)}" if c.before else ""),
            ),
            Row(
                section,
                f"{c.framework}: server CPU per request, generated / bare",
                f"bare {_spread(cpu['bare'], ' us')}, generated "
                f"{_spread(cpu['generated'], ' us')}: ~{c.cpu_ratio(c.generated):.0%}" + before_cpu,
                f">= {TARGET:.0%}",
                c.cpu_ratio(c.generated) >= TARGET,
            ),
            Row(
                section,
                f"{c.framework}: generated / bare rps (closed loop)",
                f"{c.ratio(c.generated):.0%} (rounds: "
                f"{', '.join(f'{r:.0%}' for r in c.pair_ratios(c.generated))})"
                + (f"; before {c.ratio(c.before):.0%}" if c.before else ""),
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
        for label in ("bare", "generated", "before"):
            if c.open.get(label):
                out.append(
                    Row(
                        section,
                        f"{c.framework}: {label} at {c.open_rate:,.0f}/s (open loop), p50 / p99",
                        _open(c.open[label]),
                    )
                )
        runs = c.bare + c.generated + c.before + c.quiet
        errors = sum(r.errors for r in runs) + sum(r.errors for v in c.open.values() for r in v)
        if errors:
            out.append(Row(section, f"{c.framework}: load errors", str(errors), "0", False))
        for label, (rss, pss) in c.after_load_kib.items():
            out.append(
                Row(
                    "memory",
                    f"{c.framework}: {label} worker after load, RSS / PSS",
                    f"{rss / 1024:.1f} / {pss / 1024:.1f} MiB",
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
    parser.add_argument("--before", metavar="REF", help="also serve the template at git REF")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="svcgen-bench-") as tmp:
        work = Path(tmp)
        frameworks = args.framework or list(FRAMEWORKS)
        projects = {f: prepared_project(work, f) for f in frameworks}
        before = {}
        if args.before:
            old = template_at(args.before, work)
            before = {f: prepared_project(work, f, src=old, name="before") for f in frameworks}
        comparisons = [
            compare(projects[f], work, args.seconds, args.rounds, before.get(f)) for f in frameworks
        ]
    print_rows(rows(comparisons))
    return 0


if __name__ == "__main__":
    sys.exit(main())
