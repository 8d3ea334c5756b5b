"""Checks on CI: a pipeline exists and runs the tests (directly, or through a script,
a make target or a package.json script it calls)."""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath

from .repo import Hit, Repo, Result, where

CI_FILES = (
    ".gitlab-ci.yml", ".circleci/config.yml", "Jenkinsfile", "azure-pipelines.yml",
    "bitbucket-pipelines.yml", ".drone.yml", ".travis.yml", "cloudbuild.yaml",
)  # fmt: skip
TEST_COMMANDS = (
    r"\bpytest\b|\bmake\s+(?:test|check)\b|\b(?:npm|yarn|pnpm|bun)\s+(?:run\s+)?test\b"
    r"|\bgo\s+test\b|\bcargo\s+(?:test|nextest)\b|\bmvn\b.*\b(?:test|verify)\b"
    r"|\bgradlew?\b.*\btest\b|\btox\b|\bnox\b|python\s+-m\s+unittest|\bhatch\s+test\b"
    r"|\bdotnet\s+test\b|\b(?:npx|bunx|pnpx|pnpm\s+exec|yarn)\s+(?:playwright\s+test|jest|vitest"
    r"|mocha|cypress\s+run)\b|\bplaywright\s+test\b|\bvitest\b|\bjest\b|\bphpunit\b|\brspec\b"
    r"|\brake\s+(?:test|spec)\b|\bdeno\s+test\b|\bctest\b|\bunittest\b"
)
#: What a workflow runs that may run the tests in turn.
_SCRIPT = re.compile(r"(?:^|[\s;&|(])(?:bash\s+|sh\s+|\./)?((?:[\w.-]+/)*[\w.-]+\.sh)\b")
_MAKE = re.compile(r"\bmake\s+(?:-C\s+(\S+)\s+)?([\w.-]+)")
_NPM_RUN = re.compile(r"\b(?:npm|yarn|pnpm|bun)\s+(?:run\s+)?([\w:.-]+)")


def ci_files(repo: Repo) -> list[PurePosixPath]:
    return [
        p
        for p in repo.files
        if (
            len(p.parts) == 3
            and p.parts[:2] == (".github", "workflows")
            and p.suffix in {".yml", ".yaml"}
        )
        or str(p) in CI_FILES
    ]


def _called(repo: Repo, workflow: PurePosixPath) -> list[tuple[PurePosixPath, str]]:
    """Scripts, make targets and package scripts a workflow calls: (file, text run)."""
    text = repo.text(workflow)
    known = set(repo.all_files)
    found: list[tuple[PurePosixPath, str]] = []
    for match in _SCRIPT.finditer(text):
        path = PurePosixPath(match.group(1).removeprefix("./"))
        if path in known:
            found.append((path, repo.text(path)))
    for match in _MAKE.finditer(text):
        makefile = PurePosixPath(match.group(1) or ".") / "Makefile"
        recipe = re.search(
            rf"^{re.escape(match.group(2))}\s*:[^\n]*\n((?:\t[^\n]*\n?)*)",
            repo.text(makefile),
            re.MULTILINE,
        )
        if recipe:
            found.append((makefile, recipe.group(0)))
    for match in _NPM_RUN.finditer(text):
        for path in (p for p in known if p.name == "package.json"):
            try:
                scripts = json.loads(repo.text(path) or "{}").get("scripts", {})
            except (json.JSONDecodeError, AttributeError):
                continue
            command = scripts.get(match.group(1)) if isinstance(scripts, dict) else None
            if isinstance(command, str):
                found.append((path, f'"{match.group(1)}": "{command}"'))
    return found


def check_ci(repo: Repo) -> Result:
    title = "CI runs the tests"
    files = ci_files(repo)
    if not files:
        return Result(
            "ci-tests",
            title,
            "FAIL",
            "no CI workflow (.github/workflows/, .gitlab-ci.yml, ...)",
            ".github/workflows/",
        )
    hit = repo.first(TEST_COMMANDS, files)
    if hit is not None:
        return Result("ci-tests", title, "PASS", f"runs `{hit.text}`", where(hit))
    for workflow in files:
        for path, text in _called(repo, workflow):
            found = re.search(TEST_COMMANDS, text)
            if found:
                line = repo.text(path).find(found.group(0))
                number = repo.text(path).count("\n", 0, max(line, 0)) + 1
                via = Hit(str(path), number, found.group(0))
                return Result(
                    "ci-tests",
                    title,
                    "PASS",
                    f"{workflow} runs {path}, which runs `{via.text}`",
                    where(via),
                )
    return Result(
        "ci-tests",
        title,
        "FAIL",
        f"{len(files)} workflow(s) but none runs tests",
        str(files[0]),
    )
