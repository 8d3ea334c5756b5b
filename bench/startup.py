"""Start-up and memory: process start to /health/ready 200, then idle RSS of master and worker.

The service is started as its container starts it (`python -m <package>`, one worker);
the bare hello-world app under the same gunicorn is measured alongside for scale.
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


def measure_one(project: Project, work: Path, runs: int) -> Startup:
    framework = str(project.answers["framework"])
    times, cpu = [], []
    master = worker = pss = 0
    for i in range(runs):
        seconds, cpu_used, server = start_once(project, work, f"startup-{framework}-{i}.log")
        times.append(seconds)
        cpu.append(cpu_used)
        if i == runs - 1:
            time.sleep(1.0)  # idle: let start-up garbage settle
            master, master_pss = memory_kib(server.pid)
            workers = server.children()
            worker, worker_pss = memory_kib(workers[0]) if workers else (0, 0)
            pss = master_pss + worker_pss
        server.stop()
    return Startup(framework, times, cpu, master, worker, pss)


def measure(work: Path, projects: dict[str, Project], runs: int = 5) -> list[Startup]:
    return [measure_one(projects[f], work, runs) for f in FRAMEWORKS]


def memory_request_mib(results: list[Startup]) -> int:
    """Idle master + worker RSS of the heavier framework, plus headroom, up to 16 MiB."""
    need = max(r.total_rss_mib for r in results) * HEADROOM
    return int(math.ceil(need / 16) * 16)


def rows(results: list[Startup]) -> list[Row]:
    out = []
    for r in results:
        median = statistics.median(r.ready_seconds)
        out += [
            Row(
                "start-up",
                f"{r.framework}: start to /health/ready 200",
                f"{median:.2f} s median (max {max(r.ready_seconds):.2f}, "
                f"n={len(r.ready_seconds)}); "
                f"CPU used {statistics.median(r.cpu_seconds):.2f} s",
                f"< {TARGET_SECONDS:g} s",
                median < TARGET_SECONDS,
            ),
            Row(
                "memory",
                f"{r.framework}: idle RSS worker",
                f"{r.worker_rss_kib / 1024:.1f} MiB",
                f"< {TARGET_WORKER_MIB:g} MiB",
                0 < r.worker_rss_kib / 1024 < TARGET_WORKER_MIB,
            ),
            Row(
                "memory",
                f"{r.framework}: idle RSS master + worker",
                f"{r.master_rss_kib / 1024:.1f} + {r.worker_rss_kib / 1024:.1f} = "
                f"{r.total_rss_mib:.1f} MiB (PSS {r.pss_kib / 1024:.1f})",
            ),
        ]
    out.append(
        Row(
            "memory",
            "chart default resources.requests.memory",
            f"{memory_request_mib(results)}Mi (idle master + worker x {HEADROOM:g})",
        )
    )
    return out


def main() -> int:
    return run_section(lambda work, projects: rows(measure(work, projects)))


if __name__ == "__main__":
    sys.exit(main())
