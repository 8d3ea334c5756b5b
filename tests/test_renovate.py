"""The generated renovate.json, checked by Renovate itself (npm renovate 44, Node.js 24).

- renovate-config-validator --strict accepts it (and rejects a canary: proof it read the file);
- a real Renovate run (`--platform=local --dry-run=lookup`) on a generated repo whose template
  (a `file://...git` URL) released a newer tag proposes exactly that update, through the copier
  manager only (renovate.json enables no other);
- and, as the README warns, it proposes nothing when `_src_path` is a plain local path.

check-jsonschema's `vendor.renovate` schema runs on every combination in test_ci_workflows.py.
The file is static (no `.jinja`), so every combination gets the same bytes.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import ProjectFactory
from .repos import Repo, TemplateRepo, copier, isolated_git_env
from .support import REPO, matrix, tool

CANARY = '{"enabledManagers": ["copierr"], "ignoreScripts": "no"}\n'


def validate(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("renovate-config-validator"), "--strict"],
        cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "LOG_LEVEL": "info", "LOG_FORMAT": "json"},
    )  # fmt: skip


def test_every_combination_ships_the_same_static_renovate_json(project: ProjectFactory) -> None:
    assert not (REPO / "template" / "renovate.json.jinja").exists()
    expected = (REPO / "template" / "renovate.json").read_bytes()
    for answers in matrix()[:2]:  # one per framework; the file has no answers in it
        assert (project(answers, install=False).path / "renovate.json").read_bytes() == expected


def test_renovate_config_validator_accepts_the_config_and_rejects_a_canary(
    tmp_path: Path,
) -> None:
    config = json.loads((REPO / "template" / "renovate.json").read_text(encoding="utf-8"))
    assert config["enabledManagers"] == ["copier"]
    assert config["ignoreScripts"] is False  # else Renovate never passes --trust
    good, bad = tmp_path / "good", tmp_path / "canary"
    for folder, text in ((good, (REPO / "template" / "renovate.json").read_text()), (bad, CANARY)):
        folder.mkdir()
        (folder / "renovate.json").write_text(text, encoding="utf-8")
    accepted = validate(good)
    assert accepted.returncode == 0, accepted.stdout[-3000:] + accepted.stderr[-3000:]
    assert "Config validated successfully against 1 file(s)" in accepted.stdout
    rejected = validate(bad)
    assert rejected.returncode == 1, rejected.stdout[-3000:]
    assert 'not supported: \\"copierr\\"' in rejected.stdout


def records(log: Path) -> list[dict[str, Any]]:
    """Renovate's JSON log lines."""
    found = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            found.append(record)
    return found


def lookup(repo: Path, log: Path) -> dict[str, Any]:
    """Renovate's dry-run lookup on `repo`: the package files with updates, by manager."""
    result = subprocess.run(
        [tool("renovate"), "--platform=local", "--dry-run=lookup"],
        cwd=repo, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "LOG_LEVEL": "debug", "LOG_FORMAT": "json",
             "RENOVATE_BASE_DIR": str(log.parent / "renovate-base")},
    )  # fmt: skip
    log.write_text(result.stdout + result.stderr, encoding="utf-8")
    assert result.returncode == 0, f"renovate exited {result.returncode}, log: {log}"
    for record in records(log):
        if record.get("msg") == "packageFiles with updates":
            config: dict[str, Any] = record["config"]
            return config
    raise AssertionError(f"no 'packageFiles with updates' in Renovate's log: {log}")


@pytest.mark.e2e
def test_real_renovate_proposes_the_newer_template_release(tmp_path: Path) -> None:
    env = isolated_git_env(tmp_path)
    template = TemplateRepo.create(tmp_path / "svcgen.git", env)  # released v1.0.0
    source = template.path.as_uri()
    copier("copy", "--trust", "--defaults", source, "svc", cwd=tmp_path, env=env)
    project = Repo(tmp_path / "svc", env)
    project.commit("generated")
    template.append(template.source("Makefile"), "\n# v2\n")
    template.release("v2.0.0")

    found = lookup(project.path, tmp_path / "renovate-url.log")
    assert set(found) == {"copier"}, f"managers other than copier ran: {sorted(found)}"
    (answers_file,) = found["copier"]
    assert answers_file["packageFile"] == ".copier-answers.yml"
    (dep,) = answers_file["deps"]
    assert (dep["depName"], dep["currentValue"]) == (source, "v1.0.0")
    assert [u["newValue"] for u in dep["updates"]] == ["v2.0.0"]

    # A local path (what generating from a checkout records): nothing proposed, silently.
    answers = project.read(".copier-answers.yml")
    project.write(".copier-answers.yml", answers.replace(source, str(template.path)))
    project.commit("template recorded as a local path")
    log = tmp_path / "renovate-path.log"
    found = lookup(project.path, log)
    assert found == {}, "Renovate now handles local paths: update the README and this test"
    rejected = [
        record["err"]["issues"]["_src_path"]
        for record in records(log)
        if record.get("msg") == "Parsing Copier answers YAML failed"
    ]
    assert rejected, f"Renovate skipped the answers file for another reason, log: {log}"
    assert "Invalid URL" in rejected[0]  # at debug level: a default run says nothing
