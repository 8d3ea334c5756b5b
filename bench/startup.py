"""Start-up and memory: process start to /health/ready 200, then idle RSS of master and worker.

The service is started as its container starts it (`python -m <package>`, one worker);
CPU is the figure that counts: user + system time of master and worker until the first 200,
what start-up takes on an idle core; the wall time also counts waiting for a busy CPU.
Run alone: `.venv/bin/python bench/startup.py`.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness import (
    FRAMEWORKS,
    SERVER_CPU,
    Row,
    Server,
    cpu_seconds,
    free_port,
    memory_kib,
    pinned,
    run_section,
    service_argv,
    service_env,
)

from tests.support import Project

TARGET_SECONDS = 1.0
TARGET_WORKER_MIB = 80.0
HEADROOM = 1.25  # the chart's memory request: master + worker at idle, plus a quarter


@dataclass
class Startup:
    framework: str
    ready_seconds: list[float]
    cpu_seconds: list[float]
    master_rss_kib: int
    worker_rss_kib: int
    pss_kib: int
    worker_pss_kib: int = 0
    label: str = "after"  # or "before" (the template at run.BEFORE_REF), "tracing on"

    @property
    def total_rss_mib(self) -> float:
        return (self.master_rss_kib + self.worker_rss_kib) / 1024


def start_once(project: Project, work: Path, log: str) -> tuple[float, float, Server]:
    port = free_port()
    server = Server(
        pinned(SERVER_CPU, service_argv(project)),
        cwd=project.path,
        env=service_env(project, port),
        port=port,
        log=work / log,
    )
    ready = server.wait_for("/health/ready")
    return ready, cpu_seconds([server.pid, *server.children()]), server


def measure_one(project: Project, work: Path, runs: int, label: str = "after") -> Startup:
    framework = str(project.answers["framework"])
    times, cpu = [], []
    master = worker = pss = worker_pss = 0
    for i in range(runs):
        log = f"startup-{framework}-{label.replace(' ', '-')}-{i}.log"
        seconds, cpu_used, server = start_once(project, work, log)
        times.append(seconds)
        cpu.append(cpu_used)
        if i == runs - 1:
            time.sleep(1.0)  # idle: let start-up garbage settle
            master, master_pss = memory_kib(server.pid)
            workers = server.children()
            worker, worker_pss = memory_kib(workers[0]) if workers else (0, 0)
            pss = master_pss + worker_pss
        server.stop()
    return Startup(framework, times, cpu, master, worker, pss, worker_pss, label)


def measure(
    work: Path,
    projects: dict[str, Project],
    runs: int = 5,
    others: dict[str, dict[str, Project]] | None = None,
) -> list[Startup]:
    """Each framework's project, then the `others` by label ("before", "tracing on"), their
    starts interleaved so drift in the machine's load hits all alike."""
    variants = [("after", projects), *(others or {}).items()]
    out = []
    for f in FRAMEWORKS:
        chosen = [(label, p[f]) for label, p in variants if f in p]
        runs_of: dict[str, list[Startup]] = {label: [] for label, _ in chosen}
        for _ in range(runs):  # one start of each variant per turn
            for label, project in chosen:
                runs_of[label].append(measure_one(project, work, 1, label))
        for results in runs_of.values():
            last = results[-1]
            last.ready_seconds = [t for r in results for t in r.ready_seconds]
            last.cpu_seconds = [c for r in results for c in r.cpu_seconds]
            out.append(last)
    return out


def memory_request_mib(results: list[Startup]) -> int:
    """Idle master + worker RSS of the heavier framework, plus headroom, up to 16 MiB."""
    need = max(r.total_rss_mib for r in results) * HEADROOM
    return int(math.ceil(need / 16) * 16)


def _range(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def rows(results: list[Startup]) -> list[Row]:
    out = []
    for r in results:
        cpu = statistics.median(r.cpu_seconds)
        variant = "" if r.label == "after" else f", {r.label}"
        out.append(
            Row(
                "start-up",
                f"{r.framework}{variant}: start to /health/ready 200, CPU (wall)",
                f"CPU {_range(r.cpu_seconds)}; wall {_range(r.ready_seconds)}; "
                f"n={len(r.cpu_seconds)}",
                f"< {TARGET_SECONDS:g} s CPU" if r.label == "after" else "",
                cpu < TARGET_SECONDS if r.label == "after" else None,
            )
        )
        if r.label == "tracing on":
            continue
        out += [
            Row(
                "memory",
                f"{r.framework}{variant}: idle worker RSS / PSS",
                f"{r.worker_rss_kib / 1024:.1f} / {r.worker_pss_kib / 1024:.1f} MiB",
                f"< {TARGET_WORKER_MIB:g} MiB" if r.label == "after" else "",
                0 < r.worker_rss_kib / 1024 < TARGET_WORKER_MIB if r.label == "after" else None,
            ),
            Row(
                "memory",
                f"{r.framework}{variant}: idle RSS master + worker",
                f"{r.master_rss_kib / 1024:.1f} + {r.worker_rss_kib / 1024:.1f} = "
                f"{r.total_rss_mib:.1f} MiB (PSS {r.pss_kib / 1024:.1f})",
            ),
        ]
    out.append(
        Row(
            "memory",
            "chart default resources.requests.memory",
            f"{memory_request_mib([r for r in results if r.label == 'after'])}Mi "
            f"(idle master + worker x {HEADROOM:g})",
        )
    )
    return out


def main() -> int:
    return run_section(lambda work, projects: rows(measure(work, projects)))


if __name__ == "__main__":
    sys.exit(main())
