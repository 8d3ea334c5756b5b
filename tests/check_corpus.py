"""The `svcgen check` corpus: small repositories, one per mistake class, with the verdicts
a reader finds by opening the files (tests/fixtures/check/<case>/expected.yaml).

Used by tests/test_check_corpus.py and bench/check_accuracy.py. A fixture folder named
`dot-git` becomes `.git` when a case is copied out (git cannot hold a nested `.git`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from svcgen.cli import app
from typer.testing import CliRunner

CORPUS = Path(__file__).parent / "fixtures" / "check"


@dataclass
class Case:
    name: str
    mistake: str
    exit: int
    services: dict[str, dict[str, str]]  # service path -> check id -> expected status

    @property
    def repo(self) -> Path:
        return CORPUS / self.name / "repo"


@dataclass
class Outcome:
    case: Case
    exit: int
    got: dict[str, dict[str, str]]  # service path -> check id -> status
    wrong: list[str] = field(default_factory=list)
    false_pass: list[str] = field(default_factory=list)
    right: int = 0

    @property
    def expected(self) -> int:
        return sum(len(checks) for checks in self.case.services.values())


def cases() -> list[Case]:
    found = []
    for folder in sorted(p for p in CORPUS.iterdir() if (p / "expected.yaml").is_file()):
        data = yaml.safe_load((folder / "expected.yaml").read_text(encoding="utf-8"))
        found.append(Case(folder.name, data["mistake"], data["exit"], data["services"] or {}))
    return found


def materialize(case: Case, dest: Path) -> Path:
    """A copy of the case's repository with `dot-git` markers turned into `.git`."""
    target = dest / case.name
    if case.repo.is_dir():
        shutil.copytree(case.repo, target)
    else:
        target.mkdir(parents=True)
    for marker in sorted(target.rglob("dot-git"), reverse=True):
        marker.rename(marker.with_name(".git"))
    return target


def run(case: Case, dest: Path) -> Outcome:
    """`svcgen check --format json` on the case; verdicts compared with the expected ones."""
    root = materialize(case, dest)
    result = CliRunner().invoke(app, ["check", str(root), "--format", "json"])
    got: dict[str, dict[str, str]] = {}
    if result.exit_code != 2:
        report: dict[str, Any] = json.loads(result.stdout)
        for service in report["services"]:
            got[service["path"]] = {c["id"]: c["status"] for c in service["checks"]}
    outcome = Outcome(case, result.exit_code, got)
    if result.exit_code != case.exit:
        outcome.wrong.append(f"exit {result.exit_code}, expected {case.exit}")
    extra = sorted(set(got) - set(case.services))
    if extra:
        outcome.wrong.append(f"unexpected services: {', '.join(extra)}")
    for path, checks in case.services.items():
        for check, expected in checks.items():
            status = got.get(path, {}).get(check, "missing")
            if status == expected:
                outcome.right += 1
                continue
            outcome.wrong.append(f"{path} {check}: {status}, expected {expected}")
            if status == "PASS":
                outcome.false_pass.append(f"{path} {check}")
    return outcome
