"""Generated service vs the bare framework in instructions per request: the deterministic figure.

Each server of throughput.py runs under valgrind's callgrind with instrumentation off until
it has started and served a warm-up; then its worker counts the instructions it executes
(user space: the kernel's share of a system call is not counted) while it serves
REQUESTS requests over CONNECTIONS keep-alive connections. The same binary, inputs and
environment give the same count whatever else the machine is doing, so the ratio holds on
a loaded machine where CPU seconds swing by 10-20 %.
Run alone: `.venv/bin/python bench/instructions.py [--framework flask]`.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import throughput
from harness import (
    FRAMEWORKS,
    Row,
    Server,
    free_port,
    prepared_project,
    print_rows,
    service_argv,
    service_env,
)

from tests.support import Project

WARM_UP = 400
REQUESTS = {"fastapi": 2000, "flask": 1000}
CONNECTIONS = 16


@dataclass
class Counts:
    framework: str
    # Instructions per request, by variant ("bare", "generated", "before").
    per_request: dict[str, float] = field(default_factory=dict)


def _load(port: int, requests: int) -> None:
    """`requests` GETs of throughput.PATH over CONNECTIONS keep-alive connections at once."""

    def one(count: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            for _ in range(count):
                conn.request("GET", throughput.PATH)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"{throughput.PATH} answered {response.status}")
        finally:
            conn.close()

    threads = [
        threading.Thread(target=one, args=(requests // CONNECTIONS,)) for _ in range(CONNECTIONS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _total(dump: Path) -> int:
    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    return 0


Launch = Callable[[int], tuple[list[str], Path, dict[str, str]]]


def count(launch: Launch, *, work: Path, label: str, requests: int) -> float:
    """Instructions per request that the worker of the server `launch(port)` gives (argv,
    cwd, environment) executes under callgrind."""
    out = work / f"callgrind-{label}"
    out.mkdir()
    valgrind = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--trace-children=yes",
        f"--callgrind-out-file={out}/%p",
    ]
    port = free_port()
    argv, cwd, env = launch(port)
    # valgrind names its control pipe after $HOST, which the generated app reads as its
    # interface: callgrind_control has to see the same value to find the worker.
    control_env = {**os.environ, "HOST": env.get("HOST", "")} if "HOST" in env else None
    log = work / f"callgrind-{label}.log"
    server = Server([*valgrind, *argv], cwd=cwd, env=env, port=port, log=log)
    try:
        server.wait_for(throughput.PATH, timeout=600, interval=0.5)
        _load(port, WARM_UP)
        worker = str(server.children()[0])
        for command in ("--instr=on", None, "--dump"):
            if command is None:
                _load(port, requests)
                continue
            subprocess.run(
                ["callgrind_control", command, worker],
                env=control_env,
                check=True,
                capture_output=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            total = sum(_total(f) for f in out.glob(f"{worker}*"))
            if total:
                return total / requests
            time.sleep(0.5)
        raise RuntimeError(f"callgrind wrote no counts for the worker of {label} ({log})")
    finally:
        server.stop(timeout=120)


def measure(
    work: Path, projects: dict[str, Project], before: dict[str, Project] | None = None
) -> list[Counts]:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise RuntimeError("valgrind is not installed (apt-get install valgrind)")
    results = []
    for framework, project in projects.items():
        (work / f"bare_{framework}.py").write_text(
            throughput.BARE_FASTAPI if framework == "fastapi" else throughput.BARE_FLASK,
            encoding="utf-8",
        )

        def bare(port: int, project: Project = project, framework: str = framework) -> Any:
            return throughput.bare_argv(project, framework, port), work, dict(project.env)

        def generated(port: int, project: Project) -> Any:
            return service_argv(project), project.path, service_env(project, port)

        launches: dict[str, Launch] = {
            "bare": bare,
            "generated": partial(generated, project=project),
        }
        if before and framework in before:
            launches["before"] = partial(generated, project=before[framework])
        counts = Counts(framework)
        for label, launch in launches.items():
            counts.per_request[label] = count(
                launch, work=work, label=f"{label}-{framework}", requests=REQUESTS[framework]
            )
        results.append(counts)
    return results


def rows(results: list[Counts]) -> list[Row]:
    out = []
    for c in results:
        bare = c.per_request["bare"]
        ratio = {label: bare / n for label, n in c.per_request.items()}
        figure = ", ".join(f"{label} {n / 1000:,.0f}k" for label, n in c.per_request.items())
        shares = [
            f"{label} ~{ratio[label]:.1%}" for label in ("generated", "before") if label in ratio
        ]
        out.append(
            Row(
                "instructions",
                f"{c.framework}: instructions per request (callgrind), generated / bare",
                f"{figure}: {', '.join(shares)}",
                f">= {throughput.TARGET:.0%}",
                ratio["generated"] >= throughput.TARGET,
            )
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=FRAMEWORKS, action="append")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="svcgen-bench-") as tmp:
        work = Path(tmp)
        projects = {f: prepared_project(work, f) for f in args.framework or FRAMEWORKS}
        print_rows(rows(measure(work, projects)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
