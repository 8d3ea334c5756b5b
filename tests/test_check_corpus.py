"""`svcgen check` tells the truth: the fixture corpus, planted secrets in every output format,
and the shapes of report a reader gets (svcgen's own repo, a folder of generated projects,
an empty folder, piped output)."""

from __future__ import annotations

import json
import os
import pty
import random
import re
import shutil
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from svcgen import console
from svcgen.cli import app
from typer.testing import CliRunner

from .check_corpus import Case, cases, run
from .conftest import ProjectFactory
from .support import REPO, matrix, tool

CORPUS = cases()
SVCGEN = Path(sys.executable).with_name("svcgen")


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.name)
def test_corpus_case_gets_the_expected_verdicts(case: Case, tmp_path: Path) -> None:
    outcome = run(case, tmp_path)
    assert outcome.wrong == [], f"{case.mistake}\n" + "\n".join(outcome.wrong)
    assert outcome.right == outcome.expected


def test_the_corpus_covers_every_mistake_class() -> None:
    assert len(CORPUS) >= 25
    mistakes = " ".join(c.mistake for c in CORPUS)
    for kind in ("false PASS", "false FAIL", "shape", "templates", "secrets"):
        assert kind in mistakes
    assert any(c.exit == 2 for c in CORPUS)
    assert any(len(c.services) >= 3 for c in CORPUS)
    verdicts = [s for c in CORPUS for checks in c.services.values() for s in checks.values()]
    assert {"PASS", "WARN", "FAIL"} <= set(verdicts)
    assert len(verdicts) >= 60


# --- secrets --------------------------------------------------------------------------------


def _planted() -> dict[str, str]:
    """One secret of each kind, made up at run time (none is ever committed)."""
    rnd = random.Random(20)
    alnum = string.ascii_letters + string.digits

    def chars(n: int, pool: str = alnum) -> str:
        return "".join(rnd.choice(pool) for _ in range(n))

    return {
        "AWS access key": "AKIA" + chars(16, string.ascii_uppercase + string.digits),
        "GitHub token": "ghp_" + chars(36),
        "Slack token": "xoxb-" + chars(24),
        "Stripe live key": "sk_live_" + chars(24),
        "Google API key": "AIza" + chars(35),
        "password literal": chars(10) + "#9",
        "URL password": chars(12) + "7",
        "private key body": chars(64),
    }


@pytest.fixture
def secrets_repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    secrets = _planted()
    root = tmp_path / "leaky"
    (root / "src").mkdir(parents=True)
    (root / "deploy").mkdir()
    (root / "requirements.txt").write_text("flask\n")
    (root / "src" / "keys.py").write_text(
        "".join(
            f'KEY_{i} = "{secrets[kind]}"\n'
            for i, kind in enumerate(
                ("AWS access key", "GitHub token", "Slack token", "Stripe live key")
            )
        )
        + f'GOOGLE = "{secrets["Google API key"]}"\n'
    )
    (root / "src" / "settings.py").write_text(f'DB_PASSWORD = "{secrets["password literal"]}"\n')
    (root / "src" / "db.py").write_text(
        f'URL = "postgres://app:{secrets["URL password"]}@db:5432/app"\n'
    )
    (root / "deploy" / "tls.pem").write_text(
        "-----BEGIN RSA PRIVATE KEY-----\n"
        f"{secrets['private key body']}\n-----END RSA PRIVATE KEY-----\n"
    )
    return root, secrets


def _assert_no_secret(output: str, secrets: dict[str, str]) -> None:
    for kind, value in secrets.items():
        assert value not in output, f"{kind} printed"
        assert value[4:] not in output, f"{kind}: more than its first 4 characters printed"


@pytest.mark.parametrize("output", ["table", "plain", "json", "sarif"])
def test_planted_secrets_are_never_printed(
    secrets_repo: tuple[Path, dict[str, str]], output: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, secrets = secrets_repo
    args = ["check", str(root)]
    if output in {"json", "sarif"}:
        args += ["--format", output]
    if output == "table":
        monkeypatch.setattr(console, "stdout_is_terminal", lambda: True)
    # wide enough that each table cell stays on one line (wrapping is tested below)
    result = CliRunner().invoke(app, args, env={"COLUMNS": "500"})
    assert result.exit_code == 1
    _assert_no_secret(result.stdout + result.stderr, secrets)
    text = result.stdout
    if output == "sarif":
        found = [
            r["message"]["text"]
            for r in json.loads(text)["runs"][0]["results"]
            if r["ruleId"] == "no-secrets"
        ]
        text = "\n".join(found)
        assert len(found) == 8, "one SARIF result per secret"
    # Every finding, redacted: kind, file and line, the first 4 characters, the length.
    for kind, file, value in (
        ("AWS access key", "src/keys.py:1", secrets["AWS access key"]),
        ("GitHub token", "src/keys.py:2", secrets["GitHub token"]),
        ("Slack token", "src/keys.py:3", secrets["Slack token"]),
        ("Stripe live key", "src/keys.py:4", secrets["Stripe live key"]),
        ("Google API key", "src/keys.py:5", secrets["Google API key"]),
        ("password literal", "src/settings.py:1", secrets["password literal"]),
        ("URL password", "src/db.py:1", secrets["URL password"]),
        ("private key", "deploy/tls.pem:1", "-----BEGIN RSA PRIVATE KEY-----"),
    ):
        redacted = f"{kind} at {file} ({value[:4]}…, {len(value)} chars)"
        assert redacted in text


def test_planted_secrets_through_the_installed_command_and_a_pipe(
    secrets_repo: tuple[Path, dict[str, str]],
) -> None:
    """The console script as CI runs it: stdout a pipe, stderr too."""
    root, secrets = secrets_repo
    for args in ([], ["--format", "json"], ["--format", "sarif"]):
        done = subprocess.run(
            [str(SVCGEN), "check", str(root), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert done.returncode == 1, done.stderr
        _assert_no_secret(done.stdout + done.stderr, secrets)


# --- SARIF, checked by the reference validator ----------------------------------------------


def test_sarif_is_valid_for_code_scanning(
    secrets_repo: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    root, _ = secrets_repo
    result = CliRunner().invoke(app, ["check", str(root), "--format", "sarif"])
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["version"] == "2.1.0"
    (sarif_run,) = report["runs"]
    rules = sarif_run["tool"]["driver"]["rules"]
    assert len({r["id"] for r in rules}) == len(rules) == 18
    for item in sarif_run["results"]:
        assert item["level"] in {"error", "warning"}
        assert rules[item["ruleIndex"]]["id"] == item["ruleId"]
        uri = item["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert not uri.startswith("/"), "relative to %SRCROOT%"
    path = tmp_path / "check.sarif"
    path.write_text(result.stdout)
    done = subprocess.run(
        [tool("sarif-multitool"), "validate", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # SARIF2017 (no region) is the validator's advice for results without a line: a missing
    # Dockerfile or chart has none. Anything else, and any error, is a defect.
    findings = re.findall(r": (error|warning) (SARIF\d+)", done.stdout)
    assert [f for f in findings if f != ("warning", "SARIF2017")] == []
    without_line = [
        r for r in sarif_run["results"] if "region" not in r["locations"][0]["physicalLocation"]
    ]
    assert len(findings) == len(without_line)
    assert "Analysis completed successfully" in done.stdout


# --- shapes of the report -------------------------------------------------------------------


def test_svcgens_own_repo_is_judged_as_its_rendered_template() -> None:
    result = CliRunner().invoke(app, ["check", str(REPO), "--format", "json"])
    report = json.loads(result.stdout)
    (service,) = report["services"]
    assert service["template"] == "Copier template rendered with its defaults (tasks not run)"
    not_passed = [c for c in service["checks"] if c["status"] != "PASS"]
    assert not_passed == []
    assert result.exit_code == 0
    for check in service["checks"]:
        # cited in the template's own files, never the generator or its tests and benchmarks
        assert not check["file"].startswith(("generator/", "tests/", "bench/")), check
        assert "{{" not in check["reason"], check
        if check["id"] not in {"no-secrets"}:
            assert check["file"].startswith("template/"), check
            assert (REPO / check["file"]).exists(), check


def test_a_folder_of_generated_projects_is_reported_per_project(
    project: ProjectFactory, tmp_path: Path
) -> None:
    folder = tmp_path / "fleet"
    folder.mkdir()
    names = []
    combos = matrix()  # the same answers as test_cli_check: generated once per session
    picked = [
        combos[0],
        next(c for c in combos if c["framework"] == "flask" and c["services"] == ["postgres"]),
    ]
    for answers in picked:
        generated = project(answers, install=False)
        shutil.copytree(generated.path, folder / generated.path.name, symlinks=True)
        names.append(generated.path.name)
    result = CliRunner().invoke(app, ["check", str(folder), "--format", "json"])
    report = json.loads(result.stdout)
    assert [s["repo"] for s in report["services"]] == sorted(names)
    for service in report["services"]:
        assert service["summary"] == {"PASS": 18, "WARN": 0, "FAIL": 0}, service
        assert all(
            c["file"].startswith(service["repo"] + "/")
            for c in service["checks"]
            if c["file"] != service["repo"]
        )
    assert result.exit_code == 0
    plain = CliRunner().invoke(app, ["check", str(folder)]).stdout
    assert "2 services: 36 passed, 0 warnings, 0 failed" in plain


def test_piped_output_is_never_cut(tmp_path: Path) -> None:
    """Through a pipe, every reason is whole, however long; on an 80-column terminal the
    table wraps long cells instead of cutting them."""
    root = tmp_path / "wide"
    (root / "k8s").mkdir(parents=True)
    (root / "requirements.txt").write_text("flask\n")
    (root / "Dockerfile").write_text("FROM python:latest\nFROM python:3.12\nUSER 1000\n")
    done = subprocess.run(
        [str(SVCGEN), "check", str(root)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "80"},
        timeout=120,
    )
    long_line = (
        "FAIL  Kubernetes: resource requests and limits: "
        "no Helm chart or Kubernetes manifests  (charts/)"
    )
    assert long_line in done.stdout.splitlines()
    assert "reads the environme…" not in done.stdout
    assert "…" not in done.stdout.replace("(", "").replace("…,", "")

    # A real terminal, 80 columns wide: the table folds cells, nothing is elided.
    main, child = pty.openpty()
    os.set_blocking(main, True)
    proc = subprocess.Popen(
        [str(SVCGEN), "check", str(root)],
        stdin=child,
        stdout=child,
        stderr=child,
        env={**os.environ, "COLUMNS": "80", "TERM": "dumb"},
        close_fds=True,
    )
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(main)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "┃" in screen or "│" in screen, "a table on a terminal"
    assert "…" not in screen
    flat = "".join(ch for ch in screen if ch not in "│┃ \r\n")
    assert "3passed,0warnings,15failed" in flat
