"""Checks on the container image: the Dockerfile (parsed, stages and all) and .dockerignore."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import PurePosixPath

from ..dockerfile import Dockerfile, from_clause, substitute
from .builds import dockerfiles
from .repo import Repo, Result, Status

TITLES = {
    "docker-multistage": "Image: multi-stage build",
    "docker-nonroot": "Image: runs as non-root",
    "docker-healthcheck": "Image: HEALTHCHECK",
    "docker-pinned": "Image: pinned base images",
    "docker-ignore": "Image: .dockerignore",
}
_SEVERITY = {"PASS": 0, "WARN": 1, "FAIL": 2}


def check_dockerfile(repo: Repo) -> list[Result]:
    """Every production Dockerfile is checked; each check reports the worst of them."""
    found, others = dockerfiles(repo)
    if not found:
        reason = "no Dockerfile"
        if others:
            shown = ", ".join(str(p) for p in others[:3])
            reason = f"no production Dockerfile ({shown}: test, development or template only)"
        return [
            Result(key, title, "FAIL", reason, str(others[0]) if others else "Dockerfile")
            for key, title in TITLES.items()
        ]
    per_file = [_check_one(repo, path) for path in found]
    merged = []
    for key in TITLES:
        verdicts = [r for results in per_file for r in results if r.id == key]
        worst = max(verdicts, key=lambda r: _SEVERITY[r.status])
        if len(found) > 1 and worst.status == "PASS":
            worst = replace(worst, reason=f"{worst.reason} (all {len(found)} Dockerfiles)")
        merged.append(worst)
    return merged


def _check_one(repo: Repo, found: PurePosixPath) -> list[Result]:
    titles = TITLES
    file = str(found)
    dockerfile = Dockerfile.parse(file, repo.text(found))
    stages = dockerfile.stages
    args = dockerfile.global_args()
    results = []

    def result(key: str, status: Status, reason: str, line: int | None = None) -> None:
        where = f"{file}:{line}" if line else file
        results.append(Result(key, titles[key], status, reason, where))

    froms = [s[0] for s in stages]
    if len(stages) >= 2:
        result(
            "docker-multistage",
            "PASS",
            f"{len(stages)} stages; the last one is the runtime",
            froms[-1].line,
        )
    else:
        result(
            "docker-multistage",
            "FAIL",
            "single stage: build tools and caches ship in the image",
            froms[0].line if froms else None,
        )

    final = dockerfile.final_stage()
    users = [i for i in final if i.keyword == "USER"]
    if not users:
        result("docker-nonroot", "FAIL", "no USER in the final stage: the container runs as root")
    else:
        stage_args = {**args}
        for instruction in final:
            if instruction.keyword == "ARG":
                name, _, value = instruction.args.partition("=")
                stage_args.setdefault(name.strip(), value.strip().strip("\"'"))
        user = substitute(users[-1].args, stage_args, keep_unknown=True).split(":")[0].strip()
        if user in {"root", "0"}:
            result(
                "docker-nonroot", "FAIL", f"USER {user}: the container runs as root", users[-1].line
            )
        elif user.isdigit():
            result(
                "docker-nonroot",
                "PASS",
                f"USER {users[-1].args} (numeric, non-root)",
                users[-1].line,
            )
        else:
            result(
                "docker-nonroot",
                "WARN",
                f"USER {user}: a name, not a UID; Kubernetes runAsNonRoot can only verify numbers",
                users[-1].line,
            )

    checks = [i for i in final if i.keyword == "HEALTHCHECK"]
    if checks and not checks[-1].args.upper().startswith("NONE"):
        result("docker-healthcheck", "PASS", "HEALTHCHECK in the final stage", checks[-1].line)
    else:
        result(
            "docker-healthcheck",
            "FAIL",
            "no HEALTHCHECK in the final stage",
            final[0].line if final else None,
        )

    stage_names: set[str] = set()
    unpinned, unresolved, pinned = [], [], []
    for instruction in froms:
        written, stage = from_clause(instruction)
        if not written:
            continue
        image = substitute(written, args, keep_unknown=True)
        if stage:
            stage_names.add(stage)
        if image.lower() in stage_names or image == "scratch":
            continue
        if "$" in image:
            unresolved.append(image)
            continue
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        # a tag with no version number in it (latest, slim, alpine) moves: not pinned
        if "@sha256:" not in image and not re.search(r"\d", tag):
            unpinned.append(image)
        else:
            pinned.append(image)
    if unpinned:
        result(
            "docker-pinned", "FAIL", f"unpinned base image: {', '.join(unpinned)}", froms[0].line
        )
    elif unresolved:
        result(
            "docker-pinned",
            "WARN",
            f"base image from a build argument: {', '.join(unresolved)}",
            froms[0].line,
        )
    elif froms:
        result(
            "docker-pinned", "PASS", "pinned: " + ", ".join(dict.fromkeys(pinned)), froms[0].line
        )
    else:
        result("docker-pinned", "FAIL", "no FROM instruction")

    ignore = next(
        (
            p
            for p in (found.parent / ".dockerignore", PurePosixPath(".dockerignore"))
            if p in set(repo.files)
        ),
        None,
    )
    if ignore is None:
        results.append(
            Result(
                "docker-ignore",
                titles["docker-ignore"],
                "FAIL",
                "no .dockerignore: .git, .venv and .env go into the build context",
                str(found.parent / ".dockerignore"),
            )
        )
    else:
        patterns = {
            line.strip().strip("/").removeprefix("**/") for line in repo.text(ignore).splitlines()
        }
        missing = [p for p in (".git", ".env") if p not in patterns and "*" not in patterns]
        status: Status = "WARN" if missing else "PASS"
        reason = (
            f"does not exclude {', '.join(missing)}"
            if missing
            else f"{len(patterns - {''})} patterns, .git and .env excluded"
        )
        results.append(
            Result("docker-ignore", titles["docker-ignore"], status, reason, str(ignore))
        )
    return results
