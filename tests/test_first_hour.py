"""The first hour of a new user: svcgen installed as a tool (the built wheel, in a clean virtual
environment, the repo on no path), a project generated offline, updated from the canonical
source later.

One wheel, one virtual environment and one generated project for the whole module (an xdist
group), so the module adds one build and one install to the suite.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from .ci_support import load_yaml, local_test_job_env, run_steps, workflow_env
from .first_hour_support import (
    USER_PATH,
    Installed,
    background,
    clean_env,
    free_port,
    http,
    offline,
    run,
    set_env_file,
    system_python_version,
    wait_for,
)
from .repos import GIT_IDENTITY
from .support import LOCAL_SERVICES, REPO, UV_CACHE, Project, project_env, uv

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("first-hour")]

CANONICAL = "https://github.com/svcgen/svcgen.git"


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


# --- the first hour: generate with every service, then the printed next steps -------------


@dataclass(frozen=True)
class Shop:
    path: Path  # the project the new user works in
    fresh: Path  # an untouched copy, for the CI jobs' steps
    steps: list[str]  # the next steps svcgen printed
    answers: dict[str, Any]


@pytest.fixture(scope="module")
def shop(installed: Installed, tmp_path_factory: pytest.TempPathFactory) -> Shop:
    """`svcgen new` (the installed wheel, online so it locks) with PostgreSQL, Redis, RabbitMQ."""
    home = tmp_path_factory.mktemp("newuser")
    version = system_python_version()
    result = run(
        installed.svcgen, "new", "shop", "--defaults",
        "-s", "postgres", "-s", "redis", "-s", "rabbitmq", "-d", f"python_version={version}",
        cwd=home, env=clean_env({"COLUMNS": "80"}),
    )  # fmt: skip
    assert "uv.lock not created" not in result.stderr, result.stderr
    fresh = tmp_path_factory.mktemp("fresh") / "shop"
    shutil.copytree(home / "shop", fresh)  # before anything runs in it
    printed = result.stdout.partition("Next steps")[2].partition("\n\n")[0]
    steps = [line.split("#")[0].strip() for line in printed.splitlines()[1:]]
    answers = yaml.safe_load((fresh / ".copier-answers.yml").read_text(encoding="utf-8"))
    return Shop(home / "shop", fresh, [s for s in steps if s], answers)


def test_the_ci_jobs_steps_pass_on_a_freshly_generated_repo(shop: Shop) -> None:
    """Committed and pushed as generated: the lint and test jobs' own steps, nothing before."""
    env = clean_env(GIT_IDENTITY)
    run("git", "add", "-A", cwd=shop.fresh, env=env)
    run("git", "commit", "--quiet", "-m", "Generated with svcgen", cwd=shop.fresh, env=env)
    tracked = run("git", "ls-files", cwd=shop.fresh, env=env).stdout.split()
    assert "uv.lock" in tracked, "the lock file exists from generation"
    ci = load_yaml(shop.fresh / ".github" / "workflows" / "ci.yml")
    project = Project(shop.fresh, shop.answers, project_env(str(shop.answers["python_version"])))
    run_steps(project, ci, "lint", workflow_env(ci))
    prefix = f"svcgen_fh_{uuid.uuid4().hex[:8]}"
    outputs = run_steps(
        project, ci, "test", local_test_job_env(ci, ["postgres", "redis", "rabbitmq"], prefix)
    )
    assert re.search(r"\d+ passed", outputs[-1]), outputs[-1][-3000:]
    assert " skipped" not in outputs[-1]
    status = run("git", "status", "--porcelain", "--", "uv.lock", cwd=shop.fresh, env=env)
    assert status.stdout == "", "uv sync --locked left the generated lock as it was"


def test_the_first_hour_of_a_new_user(shop: Shop, tmp_path: Path) -> None:
    """The next steps exactly as printed, on a PATH with only python3, make and git."""
    assert shutil.which("uv", path=USER_PATH) is None, "this machine has uv on the user's PATH"
    assert shutil.which("svcgen", path=USER_PATH) is None
    readme = (shop.path / "README.md").read_text(encoding="utf-8")
    quick_start = readme.partition("## Quick start")[2].partition("```sh\n")[2].partition("```")
    expected = [line.split("#")[0].strip() for line in quick_start[0].splitlines()]
    assert shop.steps == ["cd shop", *expected], "svcgen prints the README's quick start"
    assert shop.steps[1:] == ["make install", "make services", "make migrate", "make run",
                              "make worker", "make test", "make lint"]  # fmt: skip

    user = {k: v for k, v in clean_env().items() if k not in {"PYENV_ROOT", "PYENV_VERSION"}}
    user.update(PATH=USER_PATH, UV_CACHE_DIR=str(UV_CACHE), UV_PYTHON_DOWNLOADS="never")
    env_file = shop.path / ".env"

    def make(*targets: str) -> subprocess.CompletedProcess[str]:
        return run("make", *targets, cwd=shop.path, env=user, timeout=600)

    help_text = make("help").stdout
    assert "$" not in help_text, help_text
    installed = make("install")
    assert (shop.path / ".tools" / "bin" / "uv").is_file(), "uv fetched into the project"
    assert "created .env from .env.example" in installed.stdout
    env_file.write_text(env_file.read_text(encoding="utf-8") + "# mine\n", encoding="utf-8")
    assert "created .env" not in make("install").stdout, "an existing .env is never replaced"
    assert env_file.read_text(encoding="utf-8").endswith("# mine\n")

    # `make services` (compose) replaced by pointing .env at this machine's servers.
    database = f"svcgen_fh_{uuid.uuid4().hex[:8]}"
    admin = LOCAL_SERVICES["postgres"]["DATABASE_URL"]
    python = str(shop.path / ".venv" / "bin" / "python")
    create = (
        "import psycopg, sys; psycopg.connect(sys.argv[1], autocommit=True).execute(sys.argv[2])"
    )
    run(python, "-c", create, admin, f'CREATE DATABASE "{database}"', cwd=tmp_path, env=user)
    port = free_port()
    set_env_file(env_file, {
        "PORT": str(port),
        "DATABASE_URL": admin.rsplit("/", 1)[0] + "/" + database,
        "REDIS_URL": LOCAL_SERVICES["redis"]["REDIS_URL"],
        "CACHE_KEY_PREFIX": database,
        "AMQP_URL": LOCAL_SERVICES["rabbitmq"]["AMQP_URL"],
        "EVENTS_QUEUE": f"{database}.events",
        "TEST_RUN_PREFIX": database,
    })  # fmt: skip
    try:
        make("migrate")
        base = f"http://127.0.0.1:{port}"
        with (
            background(["make", "run"], shop.path, user, tmp_path / "run.log"),
            background(["make", "worker"], shop.path, user, tmp_path / "worker.log") as worker,
        ):
            wait_for(lambda: http("GET", f"{base}/health/ready")[0] == 200, "/health/ready 200")
            status, created = http("POST", f"{base}/api/items", {"name": "first hour"})
            assert status == 201, created
            status, read = http("GET", f"{base}/api/items/{created['id']}")
            assert (status, read["name"]) == (200, "first hour"), read
            logged = wait_for(
                lambda: [
                    line
                    for line in worker.read_text(encoding="utf-8").splitlines()
                    if str(created["id"]) in line and "item created" in line
                ],
                "the worker's log line",
            )
            assert json.loads(logged[0])["item_name"] == "first hour"
        tested = make("test")
        assert re.search(r"\d+ passed", tested.stdout), tested.stdout[-3000:]
        assert " skipped" not in tested.stdout, "make test reads .env: no integration test skips"
        # `make lint` is left out: the CI lint job's steps run the same ruff and mypy on the
        # same generated files (test_the_ci_jobs_steps_pass_on_a_freshly_generated_repo).
    finally:
        drop = f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'
        run(python, "-c", create, admin, drop, cwd=tmp_path, env=user)


def test_env_example_compose_and_chart_agree_on_names(shop: Shop) -> None:
    """Users, passwords, databases and ports of .env.example are compose's and the chart's."""
    from urllib.parse import urlsplit

    example = dict(
        line.split("=", 1)
        for line in (shop.fresh / ".env.example").read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.startswith("#")
    )
    compose = load_yaml(shop.fresh / "docker-compose.yml")["services"]
    chart = load_yaml(next((shop.fresh / "charts").glob("*/values.yaml")))["secrets"]

    def default(value: str) -> str:  # "${POSTGRES_USER:-app}" -> "app"
        match = re.fullmatch(r"\$\{\w+:-([^}]*)\}", value)
        return match.group(1) if match else value

    db = urlsplit(example["DATABASE_URL"])
    postgres = {k: default(v) for k, v in compose["postgres"]["environment"].items()}
    assert (db.username, db.password, db.path) == (
        postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], "/" + postgres["POSTGRES_DB"]
    )  # fmt: skip
    assert compose["postgres"]["ports"] == [f"127.0.0.1:{db.port}:5432"]
    in_cluster = urlsplit(chart["DATABASE_URL"])
    assert (in_cluster.username, in_cluster.path) == (db.username, db.path)

    amqp = urlsplit(example["AMQP_URL"])
    rabbit = {k: default(v) for k, v in compose["rabbitmq"]["environment"].items()}
    assert (amqp.username, amqp.password) == (
        rabbit["RABBITMQ_DEFAULT_USER"], rabbit["RABBITMQ_DEFAULT_PASS"]
    )  # fmt: skip
    assert urlsplit(chart["AMQP_URL"]).username == amqp.username
    assert urlsplit(example["REDIS_URL"]).port == 6379
    assert "127.0.0.1:6379:6379" in compose["redis"]["ports"]
    for name, url in compose["app"]["environment"].items():  # the app's in-compose URLs
        local = urlsplit(example[name])
        inside = urlsplit(re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", url))
        assert (inside.username, inside.password, inside.path) == (
            local.username, local.password, local.path
        ), name  # fmt: skip
