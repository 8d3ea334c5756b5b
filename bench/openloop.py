"""Fixed-rate (open-loop) load: bench/openloop.c, built with the machine's C compiler.

wrk is closed-loop: each connection sends its next request when the last answer arrives, so
a slow server is offered less load and its stalls hide (coordinated omission). Debian has no
wrk2, so this small generator sends request i at start + i / rate whatever happened before,
on the first idle keep-alive connection, and counts each latency from when the request was
due. Its figures are what a client at that rate sees; p99 includes any queueing.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness import LOAD_CPU, pinned

SOURCE = Path(__file__).with_name("openloop.c")


@dataclass
class OpenLoopResult:
    rate: float  # answers per second achieved
    p50_ms: float
    p99_ms: float
    done: int
    errors: int
    cpu_us_per_request: float = 0.0


def build(work: Path) -> Path:
    """The generator's binary in `work`, compiled from openloop.c."""
    binary = work / "openloop"
    if not binary.exists():
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            raise RuntimeError("no C compiler (cc) to build bench/openloop.c")
        subprocess.run([cc, "-O2", "-o", str(binary), str(SOURCE)], check=True)
    return binary


def run(
    binary: Path, port: int, path: str, rate: float, seconds: float, connections: int
) -> OpenLoopResult:
    """`rate` requests/s for `seconds` over `connections` keep-alive connections."""
    target = ["127.0.0.1", str(port), path]
    argv = pinned(LOAD_CPU, [str(binary), *target, f"{rate:.0f}", f"{seconds:g}", str(connections)])
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    values = dict(line.split("=", 1) for line in out.split())
    sent, done = int(values["sent"]), int(values["done"])
    return OpenLoopResult(
        rate=float(values["rate"]),
        p50_ms=float(values["p50_ms"]),
        p99_ms=float(values["p99_ms"]),
        done=done,
        errors=sent - done,  # failed or never answered
    )
