"""What the tests of the generated GitHub Actions share: reading workflows, the pin rule, and
running a job's `run:` steps here with its environment pointed at this machine's services.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .support import LOCAL_SERVICES, TOOLS_BIN, Project, combo_id, matrix, service_env

# One more combination, outside the matrix: a registry other than ghcr.io (login with secrets).
OTHER_REGISTRY: dict[str, Any] = {
    "framework": "fastapi",
    "services": ["redis"],
    "container_registry": "registry.example.com:5000/team",
}
CASES = [*matrix(), OTHER_REGISTRY]
WORKFLOWS = ("ci.yml", "release.yml", "template-update.yml")
# Actions a lint or test job may use: they only make sense on GitHub, so they are not run here.
GITHUB_ONLY_ACTIONS = {"actions/checkout", "astral-sh/setup-uv", "actions/upload-artifact"}
PINNED = re.compile(
    r"^\s*(?:-\s+)?uses:\s+([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # (v\d+)(\.\d+){1,2}\s*$"
)
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
SERVICE_OF_VARIABLE = {var: service for service, env in LOCAL_SERVICES.items() for var in env}


def case_id(answers: Mapping[str, Any]) -> str:
    suffix = "-other-registry" if "container_registry" in answers else ""
    return combo_id(answers) + suffix


def tool(name: str) -> str:
    """A verification tool from .tools/bin: missing is a failure, never a skip."""
    path = TOOLS_BIN / name
    missing = f"{name} is not installed in {TOOLS_BIN}: run `make tools` (scripts/install-tools.sh)"
    assert path.is_file(), missing
    assert os.access(path, os.X_OK), missing
    return str(path)


def load_yaml(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), f"{path} is not a YAML mapping"
    if True in loaded:  # YAML 1.1 reads the key `on` as True
        loaded["on"] = loaded.pop(True)
    return loaded


def resolve_pins(text: str) -> str:
    """`owner/repo@<sha> # v4.2.2` → `owner/repo@v4`: actionlint knows the inputs of popular
    actions by major tag only, so this copy gets its inputs checked too."""
    return "\n".join(
        re.sub(r"@[0-9a-f]{40} # (v\d+)[.\d]*", r"@\1", line) if PINNED.match(line) else line
        for line in text.splitlines()
    )


def render_expressions(value: str, context: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        expression = match.group(1)
        assert expression in context, f"no local value for the expression ${{{{ {expression} }}}}"
        return context[expression]

    return EXPRESSION.sub(replace, value)


LOCAL_CONTEXT = {"github.run_id": "local", "github.run_attempt": "1"}


def workflow_env(ci: dict[str, Any]) -> dict[str, str]:
    return {k: render_expressions(str(v), LOCAL_CONTEXT) for k, v in ci.get("env", {}).items()}


def local_test_job_env(ci: dict[str, Any], services: list[str], prefix: str) -> dict[str, str]:
    """The test job's environment as GitHub would set it, pointed at this machine instead.

    Service URLs must address the job's own service containers on localhost (their published
    port, their credentials); they are then swapped for this machine's servers.
    """
    job = ci["jobs"]["test"]
    env = workflow_env(ci)
    job_env = {k: str(v) for k, v in job.get("env", {}).items()}
    containers = job.get("services", {})
    urls = {k: v for k, v in job_env.items() if k in SERVICE_OF_VARIABLE}
    assert {SERVICE_OF_VARIABLE[k] for k in urls} == set(services), f"service URLs: {sorted(urls)}"
    for variable, url in urls.items():
        container = containers[SERVICE_OF_VARIABLE[variable]]
        parts = urlsplit(url)
        assert parts.hostname in {"localhost", "127.0.0.1"}, url
        published = {int(str(p).split(":")[0]) for p in container.get("ports", [])}
        assert parts.port in published, f"{url}: port not published by the container"
        container_env = container.get("env", {})
        expected_user = container_env.get("POSTGRES_USER") or container_env.get(
            "RABBITMQ_DEFAULT_USER"
        )
        expected_password = container_env.get("POSTGRES_PASSWORD") or container_env.get(
            "RABBITMQ_DEFAULT_PASS"
        )
        # A container that names no credentials takes the URL's as they are (Redis: none; an
        # S3 server: any key, since a request must still be signed).
        if expected_user is not None:
            assert (parts.username, parts.password) == (expected_user, expected_password), url
        if "POSTGRES_DB" in container_env:
            assert parts.path == "/" + container_env["POSTGRES_DB"], url
    assert job_env.get("CI") == "true"
    assert "TEST_RUN_PREFIX" in job_env
    rendered = {k: render_expressions(v, LOCAL_CONTEXT) for k, v in job_env.items()}
    env.update(rendered)
    env.update(service_env(services, prefix))  # this machine's servers, a unique prefix
    return env


def run_steps(
    generated: Project,
    ci: dict[str, Any],
    job_name: str,
    env: Mapping[str, str],
    github_only: set[str] = GITHUB_ONLY_ACTIONS,
) -> list[str]:
    """Run a job's `run:` steps in order, as GitHub's bash would; returns their outputs."""
    job = ci["jobs"][job_name]
    outputs = []
    for step in job["steps"]:
        if "uses" in step:
            action = step["uses"].split("@")[0]
            assert action in github_only, f"{job_name}: {action} hides commands from this test"
            continue
        assert set(step) <= {"name", "run", "env"}, f"{job_name}: step keys {sorted(step)}"
        step_env = {**env, **{k: str(v) for k, v in step.get("env", {}).items()}}
        started = time.monotonic()
        result = generated.run(
            "bash",
            "--noprofile",
            "--norc",
            "-eo",
            "pipefail",
            "-c",
            step["run"],
            env=step_env,
            timeout=900,
        )
        outputs.append(result.stdout + result.stderr)
        elapsed = time.monotonic() - started
        print(f"{job_name}: {step.get('name', step['run'])!r} passed in {elapsed:.1f} s")
    return outputs
