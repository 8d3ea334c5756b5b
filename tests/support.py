"""Generate, install and run projects from the template: the machinery every test shares.

Projects are cached per combination of answers for the whole test session, across
pytest-xdist workers (a file lock guards each one), and every project shares one uv
cache, so a combination is generated and installed once however many tests use it.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import copier
import yaml
from filelock import FileLock
from svcgen.template import load_catalog, load_config

REPO = Path(__file__).resolve().parents[1]
UV_CACHE = REPO / ".cache" / "uv"
TOOLS_BIN = REPO / ".tools" / "bin"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
#: The folders a template repo consists of, beside copier.yml (the wheel's package data too).
TEMPLATE_FOLDERS = ("catalog", "template", "hooks")

#: The template's backing-service catalog (catalog/services.yml), as copier.yml includes it.
CATALOG = {entry["name"]: entry for entry in load_catalog(REPO)}
SERVICES = tuple(CATALOG)
#: PID 1 of the generated image, in front of every command (Dockerfile, chart, compose).
INIT = ["dumb-init", "--single-child", "--"]
FRAMEWORKS = ("fastapi", "flask")
#: prctl(2) option: the signal a process gets when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1
PYTHONS = ("3.11", "3.12", "3.13")


# This machine's backing services: the catalog's `this_machine` URLs or, where that is null, the
# variables of a server the tests start (tests/<name>_server.py's `local_env()`, which starts it
# on the first value read); generated integration tests read these.
def _local_env(name: str, entry: Mapping[str, Any]) -> Mapping[str, str]:
    url = entry["urls"]["this_machine"]
    if url is not None:
        return {entry["env"]: url}
    env: Mapping[str, str] = importlib.import_module(f"{__package__}.{name}_server").local_env()
    return env


LOCAL_SERVICES = {name: _local_env(name, entry) for name, entry in CATALOG.items()}


def copier_config() -> dict[str, Any]:
    """This repo's copier.yml as a mapping, settings (`_`-prefixed) included."""
    return load_config(str(REPO), "HEAD")


def questions() -> dict[str, Any]:
    """The questions of copier.yml, in order: not the `_` settings, not the computed values
    (`when: false`, e.g. the service catalog)."""
    return {
        k: v
        for k, v in copier_config().items()
        if not k.startswith("_") and v.get("when") is not False
    }


#: How many of the catalog's first services the matrix crosses in every subset; each later one
#: joins the full set and also appears alone (see `service_subsets`).
CROSSED_SERVICES = 3


def service_subsets() -> list[tuple[str, ...]]:
    """Every subset of the first CROSSED_SERVICES services, the full one with every later
    service in it (`matrix()` adds each later service alone).

    A covering design instead of every subset (which doubles with each service): each later
    service meets each framework, and each other service both present and absent, at the cost
    of one combination per framework.
    """
    crossed, joined = SERVICES[:CROSSED_SERVICES], SERVICES[CROSSED_SERVICES:]
    subsets = [c for n in range(len(crossed) + 1) for c in combinations(crossed, n)]
    if joined:
        subsets[-1] = SERVICES
    return subsets


def matrix() -> list[dict[str, Any]]:
    """Every framework x `service_subsets()` (16 combinations, 2 more per service past the
    third: 18 with four), then each service past the third alone with each framework.

    Python version, metrics and tracing rotate through the matrix so that each value
    meets each framework at least once.
    """
    pairs = [(f, s) for f in FRAMEWORKS for s in service_subsets()]
    pairs += [(f, (s,)) for s in SERVICES[CROSSED_SERVICES:] for f in FRAMEWORKS]
    combos = []
    for i, (framework, services) in enumerate(pairs):
        combos.append(
            {
                "framework": framework,
                "services": list(services),
                "python_version": PYTHONS[i % len(PYTHONS)],
                "metrics": i % 4 != 3,
                "tracing": i % 3 == 1,
            }
        )
    return combos


def combo_id(answers: Mapping[str, Any]) -> str:
    services = "+".join(answers.get("services", [])) or "none"
    parts = [answers.get("framework", "fastapi"), services]
    if "python_version" in answers:
        parts.append("py" + str(answers["python_version"]))
    if answers.get("metrics") is False:
        parts.append("nometrics")
    if answers.get("tracing"):
        parts.append("tracing")
    return "-".join(parts)


def interpreter(version: str) -> str:
    """Path of a Python `version` interpreter on this machine (pyenv's shims can't be trusted)."""
    candidates = []
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    versions = Path(pyenv_root) / "versions"
    if versions.is_dir():
        candidates += sorted(versions.glob(f"{version}.*/bin/python{version}"), reverse=True)
    candidates += [Path(f"/usr/bin/python{version}"), Path(f"/usr/local/bin/python{version}")]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise LookupError(f"no Python {version} interpreter found (looked in {versions} and /usr)")


def uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not found:
        raise LookupError("uv not found: install the dev extras (`make install`)")
    return found


def project_env(python_version: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for commands run inside a generated project."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT"}
        # The suite runs under `make test`: the project's make must run as from a shell
        # (no inherited flags, no "make[1]: Leaving directory" after its output).
        and k not in {"MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES"}
    }
    path = [str(Path(uv()).parent)]
    if TOOLS_BIN.is_dir():
        path.append(str(TOOLS_BIN))
    env.update(
        PATH=os.pathsep.join([*path, env.get("PATH", "")]),
        UV_CACHE_DIR=str(UV_CACHE),
        UV_PYTHON=interpreter(python_version),
        UV_PYTHON_DOWNLOADS="never",
        UV_NO_PROGRESS="1",
    )
    env.update(extra or {})
    return env


@dataclass
class Project:
    """A generated project on disk."""

    path: Path
    answers: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def package(self) -> str:
        return str(self.answers["package_name"])

    @property
    def slug(self) -> str:
        return str(self.answers["project_slug"])

    @property
    def python(self) -> Path:
        return self.path / ".venv" / "bin" / "python"

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        timeout: float = 600,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the project; on failure, raise with its output."""
        result = subprocess.run(
            args,
            cwd=self.path,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {result.returncode} in {self.path}\n"
                f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
            )
        return result


def generate(dest: Path, data: Mapping[str, Any], src: str | Path = REPO) -> Project:
    """Render the template (working tree included) into `dest` with `data`, no prompts."""
    copier.run_copy(
        str(src),
        str(dest),
        data=dict(data),
        # HEAD with uncommitted changes, even once this repo has release tags (without a
        # ref Copier renders the newest tag, and the tests would test the last release).
        vcs_ref="HEAD",
        defaults=True,
        unsafe=True,
        quiet=True,
    )
    answers = _read_answers(dest)
    return Project(dest, answers, project_env(str(answers["python_version"])))


def _read_answers(dest: Path) -> dict[str, Any]:

    loaded = yaml.safe_load((dest / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def cached_project(base: Path, data: Mapping[str, Any], *, install: bool) -> Project:
    """Generate (and install) a combination once per test session, shared by all workers."""
    key = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
    dest = base / f"{combo_id(data)}-{key}"
    with FileLock(str(dest) + ".lock"):
        if not (dest / ".copier-answers.yml").exists():
            if dest.exists():
                shutil.rmtree(dest)
            generate(dest, data)
        project = Project(dest, _read_answers(dest))
        project.env = project_env(str(project.answers["python_version"]))
        if install and not (dest / ".venv" / ".installed").exists():
            had_env = (dest / ".env").exists()
            project.run("make", "install")
            if not had_env:  # `make install` made it (tests/test_first_hour.py checks that); here
                (dest / ".env").unlink(missing_ok=True)  # tests set every variable themselves
            (dest / ".venv" / ".installed").touch()
    return project


def service_env(services: Sequence[str], prefix: str) -> dict[str, str]:
    """Variables pointing a project's integration tests at this machine's servers."""
    env: dict[str, str] = {"TEST_RUN_PREFIX": prefix}
    for service in services:
        env.update(LOCAL_SERVICES[service])
    return env


def dies_with_test() -> None:
    """`preexec_fn` for a server a test starts: the kernel kills it (SIGKILL) when the test
    process dies, even killed outright, so an interrupted run leaves no server holding a port
    (gunicorn's workers leave on their own when their master goes)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


def tool(name: str) -> str:
    """Path of a verification tool from .tools/bin (scripts/install-tools.sh) or, for Debian ones
    such as bwrap, from PATH. Missing: a failure in CI, a skip elsewhere."""
    local = TOOLS_BIN / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        import pytest

        message = f"{name} not found: run scripts/install-tools.sh"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found
