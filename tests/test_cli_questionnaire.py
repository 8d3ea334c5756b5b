"""The questionnaire behind the wizard: Copier's semantics for when/ask/choices/validators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from svcgen.cli import app
from svcgen.questionnaire import InvalidAnswer, Question, Questionnaire
from typer.testing import CliRunner

CONFIG = yaml.safe_load(
    """
_envops: {keep_trailing_newline: true}
name:
  type: str
  help: "Name"
  default: Demo
  validator: "{% if not (name | regex_search('^[A-Z]')) %}name must be capitalised{% endif %}"
slug:
  type: str
  help: "Slug of {{ name }}"
  default: "{{ name | lower | regex_replace('[^a-z0-9]+', '-') }}"
  ask: "{{ 'slug' not in _copier_answers }}"
shout:
  type: str
  default: "{{ name | upper }}"
  when: false
kind:
  type: str
  help: Kind
  choices: "{{ ['web', 'worker'] if name != 'Batch' else ['worker'] }}"
  default: "{{ 'worker' if name == 'Batch' else 'web' }}"
extras:
  type: str
  help: Extras
  multiselect: true
  choices: {Cache: redis, Queue: rabbitmq}
  default: "[rabbitmq]"
greeting:
  type: str
  help: Greeting
  default: "hello {{ shout }}"
replicas:
  type: int
  help: Replicas
  default: 2
  validator: "{% if replicas < 1 %}replicas must be at least 1{% endif %}"
public:
  type: bool
  help: Public
  default: "{{ kind == 'web' }}"
"""
)


def questionnaire() -> Questionnaire:
    return Questionnaire.from_config(CONFIG)


def test_defaults_are_rendered_from_earlier_answers() -> None:
    answers = questionnaire().resolve({"name": "Batch Jobs"})
    assert answers == {
        "name": "Batch Jobs",
        "slug": "batch-jobs",
        "kind": "web",
        "extras": ["rabbitmq"],
        "greeting": "hello BATCH JOBS",  # from the computed `shout`
        "replicas": 2,
        "public": True,
    }


def test_computed_questions_are_never_asked_nor_sent_to_copier() -> None:
    asked: list[str] = []

    def prompt(question: Question, default: Any, answers: dict[str, Any]) -> Any:
        asked.append(question.name)
        return default

    answers = questionnaire().resolve({}, prompt)
    assert "shout" not in asked
    assert "shout" not in answers
    assert asked == ["name", "slug", "kind", "extras", "greeting", "replicas", "public"]


def test_prompts_get_the_rendered_default_and_later_questions_follow_the_answer() -> None:
    seen: dict[str, Any] = {}

    def prompt(question: Question, default: Any, answers: dict[str, Any]) -> Any:
        seen[question.name] = default
        return "Batch" if question.name == "name" else default

    answers = questionnaire().resolve({}, prompt)
    assert seen["name"] == "Demo"
    assert seen["slug"] == "batch"
    assert seen["kind"] == "worker"
    assert answers["public"] is False


def test_templated_choices_follow_earlier_answers() -> None:
    q = questionnaire()
    assert [c.value for c in q.choices(q["kind"], {"name": "Batch"})] == ["worker"]
    with pytest.raises(InvalidAnswer, match="'web' is not one of the choices: worker"):
        q.resolve({"name": "Batch", "kind": "web"})


def test_label_value_choices_and_multiselect_parsing() -> None:
    q = questionnaire()
    assert [(c.label, c.value) for c in q.choices(q["extras"], {})] == [
        ("Cache", "redis"),
        ("Queue", "rabbitmq"),
    ]
    assert q.parse(q["extras"], "rabbitmq, redis", {}) == ["redis", "rabbitmq"]
    assert q.parse(q["extras"], "[redis]", {}) == ["redis"]
    assert q.parse(q["extras"], "", {}) == []


@pytest.mark.parametrize(
    ("given", "rule"),
    [
        ({"name": "lower"}, "name must be capitalised"),
        ({"replicas": "0"}, "replicas must be at least 1"),
        ({"replicas": "two"}, "must be of type int"),
        ({"public": "maybe"}, "must be of type bool"),
        ({"extras": "memcached"}, "'memcached' is not one of the choices"),
    ],
)
def test_invalid_answers_name_the_rule(given: dict[str, str], rule: str) -> None:
    with pytest.raises(InvalidAnswer, match=rule):
        questionnaire().resolve(given)


def test_ask_false_takes_the_default_silently() -> None:
    config = {**CONFIG, "slug": {**CONFIG["slug"], "ask": False}}
    asked: list[str] = []

    def prompt(question: Question, default: Any, answers: dict[str, Any]) -> Any:
        asked.append(question.name)
        return default

    answers = Questionnaire.from_config(config).resolve({}, prompt)
    assert "slug" not in asked
    assert answers["slug"] == "demo"


def test_values_from_flags_are_typed() -> None:
    answers = questionnaire().resolve({"replicas": "3", "public": "no"})
    assert answers["replicas"] == 3
    assert answers["public"] is False


def test_secret_answers_are_masked_in_the_summary(tmp_path: Path) -> None:
    template = tmp_path / "t"
    (template / "files").mkdir(parents=True)
    (template / "copier.yml").write_text(
        "_subdirectory: files\n"
        "token: {type: str, help: Token, secret: true, default: s3cr3t-t0ken}\n",
        encoding="utf-8",
    )
    (template / "files" / "x.txt").write_text("x\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["new", str(tmp_path / "p"), "--template", str(template), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "token" in result.stdout
    assert "********" in result.stdout
    assert "s3cr3t-t0ken" not in result.stdout
