"""All of svcgen's benchmarks in one run: prints the figures beside their targets and
writes bench/results.md. `make bench` runs this; `--quick` for shorter load runs.

Sections: generation speed vs a trivial template (generation.py), copy to green test run
(green.py), start-up and memory (startup.py), generated service vs bare framework
(throughput.py) and in instructions per request (instructions.py), draining under load
(drain.py), the real image's size and build times (image.py). Figures, not tests: nothing
fails. `--only image` (repeatable; any of SECTIONS) measures those sections alone and keeps
the other rows of bench/results.md as they were.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import drain
import generation
import green
import image
import instructions
import startup
import throughput
from harness import FRAMEWORKS, LOAD_CPU, REPO, SERVER_CPU, Row, prepared_project, template_at
from svcgen.rehearse.engine import EngineError

from tests.support import Project

RESULTS = Path(__file__).with_name("results.md")
#: `--only` names -> the table sections they write.
SECTIONS = {
    "generation": ["generation"],
    "green": ["copy to green"],
    "startup": ["start-up", "memory"],
    "throughput": ["throughput"],
    "instructions": ["instructions"],
    "drain": ["draining"],
    "image": ["image"],
}
ORDER = [name for names in SECTIONS.values() for name in names]
# main just before the latest round of issue 22's work (per-request cost): measured beside
# the current template in the same run, so "before" and "after" share the machine's load.
BEFORE_REF = "e698a1c"
# main before issue 22's first rounds (the before of the rows up to 2026-12-03).
FIRST_BEFORE_REF = "3e19c7f"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
    ).stdout.strip()


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def generation_rows(runs: int) -> list[Row]:
    out = []
    for label, n_files, ours, base, ratio in generation.measure(runs):
        out.append(
            Row(
                "generation",
                f"copier copy, {label} answers ({n_files} files)",
                f"{ours:.2f} s vs floor {base:.2f} s = {ratio:.2f}x (median of {runs})",
                f"<= {generation.TARGET_RATIO}x, < 1 s",
                ratio <= generation.TARGET_RATIO and ours < 1.0,
            )
        )
    return out


def image_rows(projects: dict[str, Project]) -> list[Row]:
    """The image section, or one row saying why it could not run (no engine: `make engine`)."""
    try:
        return image.measure(projects)
    except (EngineError, RuntimeError) as error:
        return [Row("image", "image size and build times", f"not measured: {error}"[:200])]


def table(rows: list[Row]) -> str:
    width = [max(len(getattr(r, a)) for r in rows) for a in ("section", "measure", "figure")]
    lines = []
    for r in rows:
        lines.append(
            f"{r.section:<{width[0]}}  {r.measure:<{width[1]}}  {r.figure:<{width[2]}}  "
            f"{r.target:<16}  {r.verdict}".rstrip()
        )
    return "\n".join(lines)


def previous() -> tuple[list[str], list[Row]]:
    """The context lines and rows of the current results.md, to keep what is not re-measured."""
    if not RESULTS.is_file():
        return [], []
    context, rows = [], []
    verdicts = {"meets": True, "MISSES": False, "": None}
    for line in RESULTS.read_text(encoding="utf-8").split("## Notes")[0].splitlines():
        if line.startswith("- "):
            context.append(line[2:])
        cells = [
            cell.strip().replace("\\|", "|")
            for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))
        ]
        if line.startswith("| ") and len(cells) == 5 and cells[0] in ORDER:
            target = cells[3].replace("≤", "<=").replace("≥", ">=")
            rows.append(Row(cells[0], cells[1], cells[2], target, verdicts.get(cells[4])))
    return context, rows


def markdown(rows: list[Row], context: dict[str, str], notes: list[str]) -> str:
    out = [
        "# svcgen benchmark results",
        "",
        "Written by `make bench` (`bench/run.py`); figures, not tests. Re-run to refresh.",
        "",
        *(f"- {key}: {value}" if value else f"- {key}" for key, value in context.items()),
        "",
        "| section | measure | figure | target | verdict |",
        "|---|---|---|---|---|",
        *(
            "| "
            + " | ".join(
                cell.replace("|", "\\|").replace("<=", "≤").replace(">=", "≥")
                for cell in (r.section, r.measure, r.figure, r.target, r.verdict)
            )
            + " |"
            for r in rows
        ),
        "",
        "## Notes",
        "",
        *notes,
        "",
    ]
    return "\n".join(out)


NOTES = [
    "- **Method.** Closed loop: wrk (Debian's, `apt-get install wrk`), 1 thread, "
    f"{throughput.CONNECTIONS} keep-alive connections, on loopback, pinned to CPU "
    f"{LOAD_CPU}; each server (gunicorn, one uvicorn worker) pinned to CPU "
    f"{SERVER_CPU}. Bare = hello-world `/health/live` of the same framework under the "
    "generated server's settings: uvicorn worker with its access log off, keep-alive 5 s; "
    "Flask behind a2wsgi with the same 8 threads (until 2026-12 the bare Flask ran on "
    "gunicorn's gthread, which the generated server no longer uses). Generated = "
    "`python -m <package>` with the default answers (JSON access line per request to a "
    "file, request id, Prometheus metrics), on the same `/health/live`. Runs rotate bare / "
    "generated / access log off / before so drift hits all alike; figures are medians, "
    "ranges or per-round ratios in brackets. Closed-loop latency is at saturation, so its "
    "p50 is mostly queueing (connections / rps).",
    "- **Open loop.** bench/openloop.c (built with `cc`; Debian has no wrk2) sends request i "
    "at start + i / rate over the same keep-alive connections, whatever happened to the "
    "earlier ones, and counts each latency from when the request was due (coordinated "
    "omission corrected, as wrk2 does). The rate is half the bare app's closed-loop rps of "
    "the same run; each variant gets the same rate. Its CPU per request is measured too: "
    "at half load the server handles requests one or two at a time, so it costs more per "
    "request than at saturation, where the event loop batches them.",
    "- **Noise.** The machine has 2 CPUs shared with other engineers' test runs (see the load "
    "average above): single rounds swing by ±10-20 % and more; compare the ratios, not "
    "absolute rps, and prefer more rounds (`--rounds`). The load generators use well under a "
    "core at these rates. Under load the wall-clock ratio understates the generated app: "
    "every extra syscall (its access lines' write() per loop turn, its wake-ups of the loop "
    "from WSGI threads) is one more chance to lose the shared core.",
    "- **Access log off** is the generated app with LOG_LEVEL=WARNING, same rounds: the gap "
    "between it and the generated app is what one JSON access line per request costs "
    "(its parts queued, the JSON line joined and written with the loop turn's others).",
    "- **CPU figures** are the load-independent ones: the server's user + system CPU time "
    "(master + worker, /proc/<pid>/stat) during each run divided by the requests served; "
    "bare CPU / generated CPU is the rps ratio the two would reach with a core to themselves. "
    "Likewise start-up *CPU*: what start-up takes on an idle core (the wall time also counts "
    "waiting for the CPU). A loaded machine still inflates CPU time somewhat (two hyper-"
    "threads share a core's caches), so compare variants of the same run. Clock ticks are "
    "10 ms, over runs of seconds.",
    "- **Instructions** (bench/instructions.py) are the deterministic figure: each server runs "
    "under valgrind's callgrind, instrumentation off until it has started and served "
    f"{instructions.WARM_UP} warm-up requests; then its worker counts the instructions it "
    "executes while serving a fixed number of `/health/live` requests over "
    f"{instructions.CONNECTIONS} keep-alive connections (FastAPI "
    f"{instructions.REQUESTS['fastapi']:,}, Flask {instructions.REQUESTS['flask']:,}). The "
    "count repeats to within 0.5 % whatever else the machine runs; it leaves out the kernel's "
    "side of system calls and what cache misses cost, which the CPU figures include.",
    "- **Before / after.** `before` is main at "
    f"`{BEFORE_REF}` (before the last two rounds of issue 22's work), generated, installed and "
    "measured beside the current template in the same rounds. The last round (2026-12-04): "
    "FastAPI's routes are added to the app itself (web/routes.py) instead of an included "
    "router, which FastAPI 0.137+ resolves anew per request (~60k instructions of ~615k); "
    "request id, body limit and access record are one ASGI layer; the probes answer JSON "
    "encoded once instead of a JSONResponse (json.dumps with options builds an encoder per "
    "call); the timestamp's milliseconds are a table lookup; the HTTP metrics queue samples "
    "in deques instead of taking a lock; WSGI threads leave their batches for the loop's "
    "50 ms tick instead of waking it per turn; Flask reads the matched rule from Werkzeug's "
    "request instead of a before_request hook. The round before: access lines and "
    "request metrics are collected per request and written once per turn of the worker's "
    "event loop (core/turns.py; the loop is attached in the server's worker, everything "
    "pending is written when it stops, so a SIGTERM-drained worker loses no line): one "
    "write() for a turn's JSON lines, one update of the multiprocess metric files per label "
    "set instead of five locked mmap writes per request; the access line is joined from its "
    "parts at flush, without a LogRecord, when the JSON handler is its only destination. "
    f"Earlier rounds, against `{FIRST_BEFORE_REF}` (the rows up to 2026-12-03): uvicorn's "
    "per-connection header deadline is one timer per connection instead of a timer set and "
    "cancelled per request; requests "
    "without Content-Length or Transfer-Encoding skip the body buffer (no timeout scope, no "
    "replay wrapper); the JSON formatter joins the line from its parts instead of building "
    "and encoding a dict, and records skip the thread / process lookups no line carries; "
    "request ids come from `random.getrandbits(128)` (reseeded in each forked worker) "
    "instead of a getrandom() system call per request. With PostgreSQL, Flask's per-block "
    "database deadline shares one alarm thread per process instead of starting a timer "
    "thread per block (~80 us of CPU each, ~3 us now; not in these default-answer rows). "
    "Earlier rounds (issue 10): one access line per request, the encoder built once, metric "
    "children cached.",
    "- **Start-up** is process start (exec of `python -m <package>`) to the first "
    "`/health/ready` 200, polled every 5 ms, with the project installed as the image installs "
    "it: bytecode compiled (`UV_COMPILE_BYTECODE=1`, the project's own `src/` too). This "
    "machine sets PYTHONDONTWRITEBYTECODE, so without that every start compiled every module "
    "from source, which is what the rows up to 2026-11 measured (~2x the CPU). The CPU figure "
    "is the target's; `tracing on` is the same template with `tracing=true` (no exporter "
    "endpoint). **Memory** is RSS and PSS from /proc after 1 s idle (PSS splits pages the "
    "forked worker shares with the master; a pod's cgroup charges roughly the PSS sum), and "
    "the worker's again after the load runs. The chart's memory request is the idle master + "
    "worker RSS of the heavier framework plus 25 %, rounded up to 16 MiB.",
    "- **Draining.** The k8s-like run is the check: a prober polls readiness every 50 ms, the "
    f"endpoint is removed {drain.PROPAGATION:g} s after readiness fails (DRAIN_SECONDS="
    f"{drain.DRAIN_SECONDS:g}), then clients stop sending; all requests sent, in flight at "
    "SIGTERM or sent while draining, must succeed. The run without endpoint removal is "
    "information: once the listener closes, new connections are refused (the load "
    "balancer's job) and a request written on a keep-alive connection the server is "
    "closing can fail — why the readiness/preStop drain exists.",
    "- **Image.** The generated Dockerfile built unmodified with the engine of "
    "`scripts/install-engine.sh` (Podman 5, Buildah, runc; Docker image format). Cold = "
    "`--no-cache` (no layer reused; uv's cache mount may be warm, as on a CI builder that keeps "
    "it), warm = the same build again, then one edit under `src/`. Layers are the final image's "
    "(`history`), oldest first; the base image is this machine's stand-in for "
    "`python:X.Y-slim-bookworm` (Debian 12 minbase + its CPython), bigger than Docker Hub's.",
]


def before_projects(work: Path) -> dict[str, Project] | None:
    """The template at BEFORE_REF, generated for each framework (None outside a git clone)."""
    if not _git("rev-parse", "--verify", "--quiet", BEFORE_REF):
        return None
    old = template_at(BEFORE_REF, work)
    return {f: prepared_project(work, f, src=old, name="before") for f in FRAMEWORKS}


def others(work: Path, before: dict[str, Project] | None) -> dict[str, dict[str, Project]]:
    """Start-up's other variants: before, and the current template with tracing on."""
    tracing = {f: prepared_project(work, f, name="tracing", tracing=True) for f in FRAMEWORKS}
    return {**({"before": before} if before else {}), "tracing on": tracing}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s load runs, 2 rounds, 3 runs")
    parser.add_argument("--seconds", type=float, help="seconds per load run (default 5)")
    parser.add_argument("--rounds", type=int, help="load rounds per variant (default 4)")
    parser.add_argument("--no-before", action="store_true", help=f"skip the {BEFORE_REF} app")
    parser.add_argument("--no-write", action="store_true", help="do not write results.md")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(SECTIONS),
        help="measure only this section (repeatable); results.md keeps the others' rows",
    )
    args = parser.parse_args()
    if args.only:
        return only(args.only, args.no_write, args.no_before)
    seconds = args.seconds or (3.0 if args.quick else 5.0)
    rounds = args.rounds or (2 if args.quick else 4)
    runs = 3 if args.quick else 5

    started = time.perf_counter()
    load_before = loadavg()
    rows = generation_rows(runs)
    with tempfile.TemporaryDirectory(prefix="svcgen-bench-") as tmp:
        work = Path(tmp)
        projects = {f: prepared_project(work, f) for f in FRAMEWORKS}
        before = None if args.no_before else before_projects(work)
        rows += green.rows(green.measure(work, projects))
        rows += startup.rows(startup.measure(work, projects, runs, others(work, before)))
        rows += throughput.rows(throughput.measure(work, projects, seconds, rounds, before))
        rows += instructions.rows(instructions.measure(work, projects, before))
        rows += drain.rows(drain.measure(work, projects))
        rows += image_rows(projects)

    rows.sort(key=lambda r: ORDER.index(r.section))
    context = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git("rev-parse", "--short", "HEAD")
        + (" (with uncommitted changes)" if _git("status", "--porcelain", "template") else ""),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, Linux {platform.release()}",
        "load average (1/5/15 min)": f"{load_before} at start, {loadavg()} at end",
        "generated projects": "default answers (Python "
        + str(projects["fastapi"].answers["python_version"])
        + "), fastapi and flask",
        "load runs": f"{seconds:g} s x {rounds} rounds per variant",
        "bench wall time": f"{time.perf_counter() - started:.0f} s",
    }
    print(table(rows))
    print(f"\nload average {context['load average (1/5/15 min)']}")
    if not args.no_write:
        RESULTS.write_text(markdown(rows, context, NOTES), encoding="utf-8")
        print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


def only(sections: list[str], no_write: bool, no_before: bool = False) -> int:
    """Measure `sections` alone; the other rows (and their context) stay as results.md has them."""
    started = time.perf_counter()
    load_before = loadavg()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="svcgen-bench-") as tmp:
        work = Path(tmp)
        projects = {f: prepared_project(work, f) for f in FRAMEWORKS}
        wants_before = not no_before and {"startup", "throughput", "instructions"} & set(sections)
        before = before_projects(work) if wants_before else None
        for section in sections:
            if section == "generation":
                rows += generation_rows(5)
            elif section == "green":
                rows += green.rows(green.measure(work, projects))
            elif section == "startup":
                rows += startup.rows(startup.measure(work, projects, 5, others(work, before)))
            elif section == "throughput":
                rows += throughput.rows(throughput.measure(work, projects, 5.0, 4, before))
            elif section == "instructions":
                rows += instructions.rows(instructions.measure(work, projects, before))
            elif section == "drain":
                rows += drain.rows(drain.measure(work, projects))
            elif section == "image":
                rows += image_rows(projects)
    print(table(rows))
    if no_write:
        return 0
    names = {name for section in sections for name in SECTIONS[section]}
    context, kept = previous()
    rows = sorted([*(r for r in kept if r.section not in names), *rows],
                  key=lambda r: ORDER.index(r.section))  # fmt: skip
    commit = _git("rev-parse", "--short", "HEAD")
    note = (
        f"{', '.join(sorted(names))} re-measured alone (`--only {' --only '.join(sections)}`) on "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} at {commit}, load average "
        f"{load_before} at start, {loadavg()} at end, {time.perf_counter() - started:.0f} s; "
        "the lines above describe the run of the other rows"
    )
    header = {line: "" for line in context if " re-measured alone " not in line or not any(
        line.startswith(name) for name in names)}  # fmt: skip
    header[note] = ""
    RESULTS.write_text(markdown(rows, header, NOTES), encoding="utf-8")
    print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
