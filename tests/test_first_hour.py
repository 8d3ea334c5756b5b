"""The first hour of a new user: svcgen installed as a tool (the built wheel, in a clean virtual
environment, the repo on no path), a project generated offline, updated from the canonical
source later.

One wheel, one virtual environment and one generated project for the whole module (an xdist
group), so the module adds one build and one install to the suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from .support import REPO, UV_CACHE, uv

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("first-hour")]

CANONICAL = "https://github.com/svcgen/svcgen.git"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


@dataclass(frozen=True)
class Installed:
    """svcgen installed from its wheel into a virtual environment of its own."""

    venv: Path
    version: str

    @property
    def svcgen(self) -> str:
        return str(self.venv / "bin" / "svcgen")

    @property
    def template(self) -> Path:
        found = list(self.venv.glob("lib/python*/site-packages/svcgen/_template"))
        assert len(found) == 1, found
        return found[0]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A user's environment: no virtual environment, no PYTHONPATH, nothing of this repo."""
    drop = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "SVCGEN_TEMPLATE", "SVCGEN_SOURCE_URL"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("UV_")}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO))]
    env["PATH"] = os.pathsep.join(path)
    env.update(GIT_IDENTITY)
    env.update(extra or {})
    return env


def run(
    *args: str, cwd: Path, env: Mapping[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, (
        f"{' '.join(args)} exited {result.returncode}\n"
        f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
    )
    return result


def offline(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """`args` with no network: a fresh network namespace, else proxies that lead nowhere."""
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, check=False)
    if probe.returncode == 0:
        return ["unshare", "-rn", *args], {}
    dead = "http://127.0.0.1:9"
    return args, {"HTTPS_PROXY": dead, "HTTP_PROXY": dead, "ALL_PROXY": dead, "NO_PROXY": ""}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """sdist, then the wheel built from it (as `uv build` does), installed into a fresh venv."""
    base = tmp_path_factory.mktemp("wheel")
    env = {**clean_env(), "UV_CACHE_DIR": str(UV_CACHE), "UV_NO_PROGRESS": "1"}
    run(uv(), "build", "--quiet", "--out-dir", str(base / "dist"), str(REPO), cwd=base, env=env)
    wheels = list((base / "dist").glob("svcgen-*.whl"))
    assert len(wheels) == 1, wheels
    version = wheels[0].name.split("-")[1]
    venv = base / "venv"
    run(uv(), "venv", "--quiet", "--python", sys.executable, str(venv), cwd=base, env=env)
    run(
        uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
        str(wheels[0]), cwd=base, env=env,
    )  # fmt: skip
    return Installed(venv, version)


@pytest.fixture(scope="module")
def generated(installed: Installed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`svcgen new` from the installed wheel, offline, in a folder far from this repo."""
    home = tmp_path_factory.mktemp("user")
    args, extra = offline([installed.svcgen, "new", "billing", "--defaults", "-s", "postgres"])
    result = run(*args, cwd=home, env=clean_env(extra))
    warnings = [line for line in result.stderr.splitlines() if "uv.lock not created" in line]
    assert len(warnings) == 1, result.stderr  # offline: no lock, said in one line, with the fix
    assert "uv lock" in warnings[0]
    return home / "billing"


def test_the_installed_wheel_runs_from_its_own_template(installed: Installed) -> None:
    env = clean_env()
    where = run(
        str(installed.venv / "bin" / "python"), "-c", "import svcgen; print(svcgen.__file__)",
        cwd=installed.venv, env=env,
    )  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(installed.venv), "svcgen from the wheel"
    assert (installed.template / "copier.yml").read_bytes() == (REPO / "copier.yml").read_bytes()
    shipped = sorted(
        p.relative_to(installed.template / "template").as_posix()
        for p in (installed.template / "template").rglob("*")
        if p.is_file()
    )
    listing = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "template"]
    tracked = run(*listing, cwd=REPO, env=env).stdout.split("\0")
    assert shipped == sorted(t.removeprefix("template/") for t in tracked if t)
    version = run(installed.svcgen, "--version", cwd=installed.venv, env=env).stdout
    assert f"svcgen {installed.version}" in version
    assert f"template v{installed.version}" in version, version


def test_a_project_generated_offline_records_the_canonical_source(
    installed: Installed, generated: Path
) -> None:
    answers = yaml.safe_load((generated / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert answers["_src_path"] == CANONICAL, "the real repository, never a site-packages path"
    assert answers["_commit"] == f"v{installed.version}"
    assert answers["services"] == ["postgres"]
    assert (generated / ".git").is_dir(), "the template's post-generation hook ran"
    assert "site-packages" not in (generated / ".copier-answers.yml").read_text(encoding="utf-8")


def test_svcgen_update_works_from_a_mirror_of_the_canonical_source(
    installed: Installed, generated: Path, tmp_path: Path
) -> None:
    """The canonical URL is redirected (git's insteadOf) to a local mirror holding the wheel's
    template as v<version> and a newer v<version>.post1."""
    env = clean_env()
    mirror = tmp_path / "mirror"
    shutil.copytree(installed.template, mirror)
    run("git", "init", "--quiet", "--initial-branch=main", cwd=mirror, env=env)
    run("git", "add", "-A", cwd=mirror, env=env)
    run("git", "commit", "--quiet", "-m", "release", cwd=mirror, env=env)
    run("git", "tag", f"v{installed.version}", cwd=mirror, env=env)
    readme = mirror / "template" / "README.md.jinja"
    readme.write_text(readme.read_text(encoding="utf-8") + "\nArrived by update.\n", "utf-8")
    run("git", "commit", "--quiet", "-am", "next", cwd=mirror, env=env)
    run("git", "tag", f"v{installed.version}.post1", cwd=mirror, env=env)

    project = tmp_path / "project"
    shutil.copytree(generated, project)
    run("git", "add", "-A", cwd=project, env=env)
    run("git", "commit", "--quiet", "-m", "generated", cwd=project, env=env)
    redirect = {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.{mirror}.insteadOf",
        "GIT_CONFIG_VALUE_0": CANONICAL,
    }
    result = run(installed.svcgen, "update", ".", cwd=project, env=clean_env(redirect))
    assert f"v{installed.version} → v{installed.version}.post1" in result.stdout, result.stdout
    assert "Arrived by update." in (project / "README.md").read_text(encoding="utf-8")
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert answers["_src_path"] == CANONICAL
    assert answers["_commit"] == f"v{installed.version}.post1"
    changed = run("git", "status", "--porcelain", cwd=project, env=env).stdout.split("\n")
    assert sorted(line[3:] for line in changed if line) == [".copier-answers.yml", "README.md"]
