"""Checks on CI: a pipeline exists and runs the tests."""

from __future__ import annotations

from .repo import Repo, Result, where

CI_FILES = (
    ".gitlab-ci.yml", ".circleci/config.yml", "Jenkinsfile", "azure-pipelines.yml",
    "bitbucket-pipelines.yml", ".drone.yml", ".travis.yml",
)  # fmt: skip
TEST_COMMANDS = (
    r"\bpytest\b|\bmake\s+(?:test|check)\b|\b(?:npm|yarn|pnpm)\s+(?:run\s+)?test\b|\bgo\s+test\b"
    r"|\bcargo\s+test\b|\bmvn\b.*\b(?:test|verify)\b|\bgradlew?\b.*\btest\b|\btox\b|\bnox\b"
    r"|python\s+-m\s+unittest|\bhatch\s+test\b|\bdotnet\s+test\b"
)


def check_ci(repo: Repo) -> Result:
    title = "CI runs the tests"
    files = [
        p
        for p in repo.files
        if (
            len(p.parts) == 3
            and p.parts[:2] == (".github", "workflows")
            and p.suffix in {".yml", ".yaml"}
        )
        or str(p) in CI_FILES
    ]
    if not files:
        return Result(
            "ci-tests",
            title,
            "FAIL",
            "no CI workflow (.github/workflows/, .gitlab-ci.yml, ...)",
            ".github/workflows/",
        )
    hit = repo.first(TEST_COMMANDS, files)
    if hit is None:
        return Result(
            "ci-tests",
            title,
            "FAIL",
            f"{len(files)} workflow(s) but none runs tests",
            str(files[0]),
        )
    return Result("ci-tests", title, "PASS", f"runs `{hit.text}`", where(hit))
