"""copier.yml itself: questions, defaults, validators, and what a generated tree contains."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from .support import REPO, copier_config, generate, questions

REQUIRED_KEYS = [
    "project_name",
    "project_slug",
    "package_name",
    "description",
    "python_version",
    "framework",
    "services",
    "port",
    "metrics",
    "tracing",
]


def test_settings_block() -> None:
    config = copier_config()
    assert config["_subdirectory"] == "template"
    assert config["_min_copier_version"]
    assert config["_answers_file"] == ".copier-answers.yml"
    assert (REPO / "template" / "{{_copier_conf.answers_file}}.jinja").is_file()


def test_answer_keys_other_tools_rely_on_exist() -> None:
    assert set(REQUIRED_KEYS) <= set(questions())


@pytest.mark.parametrize("name", list(questions()))
def test_every_question_has_type_help_and_default(name: str) -> None:
    question = questions()[name]
    assert question.get("type") in {"str", "int", "bool", "float", "yaml", "json"}
    assert str(question.get("help", "")).strip()
    assert "default" in question


def test_documented_defaults(tmp_path: Path) -> None:
    answers = generate(tmp_path / "p", {}).answers
    assert answers["framework"] == "fastapi"
    assert answers["python_version"] == "3.12"
    assert answers["services"] == []
    assert answers["metrics"] is True
    assert answers["tracing"] is False
    assert answers["project_slug"] == "my-service"
    assert answers["package_name"] == "my_service"


def test_derived_values_follow_the_name(tmp_path: Path) -> None:
    answers = generate(tmp_path / "p", {"project_name": "Billing API 2"}).answers
    assert answers["project_slug"] == "billing-api-2"
    assert answers["package_name"] == "billing_api_2"
    assert answers["image_name"] == "billing-api-2"


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        ({"project_name": "Bad Name!"}, "project_name must start with a letter"),
        ({"project_name": "9lives"}, "project_name must start with a letter"),
        ({"project_slug": "Bad_Slug"}, "project_slug must be a Kubernetes name"),
        ({"project_slug": "x" * 64}, "project_slug must be a Kubernetes name"),
        ({"package_name": "my-pkg"}, "package_name must be a valid"),
        ({"package_name": "logging"}, "would shadow"),
        ({"author_email": "nobody"}, "author_email must look like"),
        ({"description": 'The "best" service'}, "description must not contain double quotes"),
        ({"author_name": "Ada \\ Co"}, "author_name must be one line without double quotes"),
        ({"port": 80}, "port must be between 1024 and 65535"),
        ({"container_registry": "GHCR.io/Acme"}, "container_registry must look like"),
        ({"framework": "django"}, "django"),
        ({"python_version": "3.9"}, "3.9"),
    ],
)
def test_bad_answers_are_refused_with_the_rule(
    tmp_path: Path, data: dict[str, Any], rule: str
) -> None:
    dest = tmp_path / "p"
    with pytest.raises(ValueError, match=rule):
        generate(dest, data)
    assert not dest.exists() or not any(dest.iterdir())


def test_nothing_of_this_repo_leaks_into_a_project(tmp_path: Path) -> None:
    dest = tmp_path / "p"
    generate(dest, {"services": ["postgres", "redis", "rabbitmq"], "tracing": True})
    names = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if ".git" not in p.parts}
    for leaked in ["copier.yml", "catalog", "generator", "hooks", "template", "bench", ".ci"]:
        assert leaked not in names
    assert not any("svcgen" in n or n.startswith("tests/test_copier") for n in names)
    assert not any(n.endswith(".jinja") for n in names)
    # The project is a new git repository (for `copier update`), with no history of ours.
    log = subprocess.run(["git", "log"], cwd=dest, capture_output=True, text=True, check=False)
    assert log.returncode != 0
    assert "does not have any commits" in log.stderr
