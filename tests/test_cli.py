"""`svcgen new` and `svcgen options` without a terminal (typer's CliRunner)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from svcgen import __version__
from svcgen.cli import app
from svcgen.questionnaire import Questionnaire
from typer.testing import CliRunner, Result

from .support import CATALOG, REPO, copier_config, generate, questions

runner = CliRunner()
SVCGEN = Path(sys.executable).parent / "svcgen"


#: `new` renders this repo's working tree, as the copier.yml these tests read (without a
#: ref, Copier and svcgen take the newest release tag).
HEAD = ("--vcs-ref", "HEAD")


def svcgen(*args: str) -> Result:
    if args[:1] == ("new",) and "--template" not in args:
        args = ("new", *HEAD, *args[1:])
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def answers_of(dest: Path) -> dict[str, Any]:
    loaded = yaml.safe_load((dest / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def entries(folder: Path) -> list[str]:
    """Everything in `folder`, hidden staging folders included."""
    return sorted(p.name for p in folder.iterdir())


def test_version() -> None:
    result = svcgen("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"svcgen {__version__}, template ")


def test_no_arguments_shows_help() -> None:
    result = svcgen()
    assert "Usage" in result.output
    for command in ("new", "update", "check", "options"):
        assert command in result.output


def test_new_with_defaults(tmp_path: Path) -> None:
    dest = tmp_path / "a"
    result = svcgen("new", str(dest), "--defaults")
    assert result.exit_code == 0, result.output
    answers = answers_of(dest)
    assert answers["framework"] == "fastapi"
    assert answers["services"] == []
    assert answers["project_slug"] == "my-service"
    assert (dest / "src" / "my_service" / "app.py").is_file()
    assert (dest / ".git").is_dir(), "the post-copy task ran in the staging folder"
    assert "Next steps" in result.stdout
    assert "make install" in result.stdout
    assert entries(tmp_path) == ["a"], "no staging folder left next to the project"


def test_new_with_flags(tmp_path: Path) -> None:
    dest = tmp_path / "billing"
    result = svcgen(
        "new", str(dest),
        "--framework", "flask",
        "--service", "redis", "--service", "postgres",
        "--data", "project_name=Billing API",
        "--data", "port=9000",
        "--data", "metrics=false",
        "--yes",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    answers = answers_of(dest)
    assert answers["framework"] == "flask"
    assert answers["services"] == ["postgres", "redis"], "copier.yml's order, not the flags'"
    assert answers["project_name"] == "Billing API"
    assert answers["project_slug"] == "billing-api"
    assert answers["package_name"] == "billing_api"
    assert answers["port"] == 9000
    assert answers["metrics"] is False


def test_services_through_data_as_a_list(tmp_path: Path) -> None:
    dest = tmp_path / "p"
    result = svcgen("new", str(dest), "--data", "services=rabbitmq,redis", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "redis, rabbitmq" in result.stdout


@pytest.mark.parametrize(
    ("args", "rule"),
    [
        (["--data", "project_name=Bad Name!"], "project_name must start with a letter"),
        (["--data", "project_slug=Bad_Slug"], "project_slug must be a Kubernetes name"),
        (["--data", "package_name=logging"], "would shadow"),
        (["--data", "port=80"], "port must be between 1024 and 65535"),
        (["--data", "port=eighty"], "must be of type int"),
        (["--data", "metrics=perhaps"], "must be of type bool"),
        (["--framework", "django"], "'django' is not one of the choices: fastapi, flask"),
        (["--service", "mongodb"], "'mongodb' is not one of the choices"),
        (["--data", "colour=blue"], "colour: is not a question of this template"),
        (["--data", "no-equals-sign"], "--data expects KEY=VALUE"),
        (["--service", "redis", "--data", "services=postgres"], "not both"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_invalid_input_exits_2_with_the_rule_and_creates_nothing(
    tmp_path: Path, args: list[str], rule: str
) -> None:
    dest = tmp_path / "b"
    result = svcgen("new", str(dest), *args)
    assert result.exit_code == 2, result.output
    assert rule in result.stderr
    assert entries(tmp_path) == []


@pytest.mark.parametrize("item", ["no-equals-sign", "=value"])
def test_rehearse_env_reads_key_value_as_data_does(tmp_path: Path, item: str) -> None:
    """`rehearse --env` and `new --data` share one KEY=VALUE parser: the same message, exit 2,
    before anything runs."""
    result = svcgen("rehearse", "--env", item, str(tmp_path))
    assert result.exit_code == 2, result.output
    assert f"--env expects KEY=VALUE, got {item!r}" in result.stderr
    assert "svcgen rehearse" not in result.stdout, "nothing ran"


def new_without_stdin(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed `svcgen new` (the template at HEAD) with stdin closed, as in CI."""
    return subprocess.run(
        [str(SVCGEN), "new", *HEAD, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_bad_name_from_a_real_process_without_stdin(tmp_path: Path) -> None:
    """The issue's own check: exit 2, the rule, nothing created — and no waiting on stdin."""
    dest = tmp_path / "b"
    result = new_without_stdin(str(dest), "--data", "project_name=Bad Name!")
    assert result.returncode == 2
    assert "project_name must start with a letter" in result.stderr
    assert entries(tmp_path) == []


def test_no_terminal_means_defaults_not_waiting(tmp_path: Path) -> None:
    dest = tmp_path / "p"
    result = new_without_stdin(str(dest), "--framework", "flask")
    assert result.returncode == 0, result.stderr
    assert "stdin is not a terminal" in result.stderr
    assert answers_of(dest)["framework"] == "flask"


def test_non_empty_destination_is_refused_without_force(tmp_path: Path) -> None:
    dest = tmp_path / "existing"
    dest.mkdir()
    (dest / "NOTES.md").write_text("mine\n", encoding="utf-8")
    result = svcgen("new", str(dest), "--defaults")
    assert result.exit_code == 2
    assert "is not empty" in result.stderr
    assert "--force" in result.stderr
    assert entries(dest) == ["NOTES.md"]
    assert entries(tmp_path) == ["existing"]


def test_force_merges_into_a_non_empty_destination(tmp_path: Path) -> None:
    dest = tmp_path / "existing"
    dest.mkdir()
    (dest / "NOTES.md").write_text("mine\n", encoding="utf-8")
    (dest / "README.md").write_text("old readme\n", encoding="utf-8")
    result = svcgen("new", str(dest), "--defaults", "--force")
    assert result.exit_code == 0, result.output
    assert (dest / "NOTES.md").read_text(encoding="utf-8") == "mine\n"
    assert "old readme" not in (dest / "README.md").read_text(encoding="utf-8")
    assert (dest / ".copier-answers.yml").is_file()
    assert entries(tmp_path) == ["existing"]


def test_an_empty_destination_is_fine(tmp_path: Path) -> None:
    dest = tmp_path / "empty"
    dest.mkdir()
    result = svcgen("new", str(dest), "--defaults")
    assert result.exit_code == 0, result.output
    assert (dest / ".copier-answers.yml").is_file()


def test_dry_run_shows_answers_and_files_and_creates_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "preview"
    result = svcgen("new", str(dest), "--dry-run", "-s", "postgres", "-f", "flask")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Dry run" in out
    assert "framework" in out
    assert "flask" in out
    for expected in ("pyproject.toml", ".copier-answers.yml", "src/my_service/app.py"):
        assert f"  {expected}\n" in out
    assert ".git/" not in out
    assert "files to create" in out
    assert not dest.exists()
    assert entries(tmp_path) == []


def test_destination_defaults_to_the_slug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = svcgen("new", "--defaults", "--data", "project_name=Orders")
    assert result.exit_code == 0, result.output
    assert answers_of(tmp_path / "orders")["project_name"] == "Orders"


def test_a_failing_generation_leaves_nothing(tmp_path: Path) -> None:
    template = tmp_path / "template"
    (template / "files").mkdir(parents=True)
    (template / "copier.yml").write_text(
        '_subdirectory: files\n_tasks: ["false"]\nname:\n  type: str\n  default: x\n',
        encoding="utf-8",
    )
    (template / "files" / "hello.txt.jinja").write_text("{{ name }}\n", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    result = svcgen("new", str(out / "deep" / "p"), "--template", str(template), "--defaults")
    assert result.exit_code == 1, result.output
    assert "generation failed" in result.stderr
    assert entries(out) == [], "neither the project, its staging folder nor its parents remain"


def test_an_unwritable_destination_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder\n", encoding="utf-8")
    result = svcgen("new", str(tmp_path / "a-file" / "p"), "--defaults")
    assert result.exit_code == 1
    assert "cannot create" in result.stderr
    assert entries(tmp_path) == ["a-file"]


def choice_values(spec: dict[str, Any]) -> list[Any]:
    """A question's choices as copier.yml gives them; `services` renders the catalog's names."""
    choices = spec.get("choices") or []
    if isinstance(choices, str):
        assert "service_catalog" in choices, choices
        return list(CATALOG)
    return list(choices.values()) if isinstance(choices, dict) else list(choices)


def test_options_lists_every_question_and_choice() -> None:
    result = svcgen("options")
    assert result.exit_code == 0, result.output
    assert "my-service (derived)" in result.stdout
    for name, spec in questions().items():
        assert name in result.stdout
        for value in choice_values(spec):
            assert str(value) in result.stdout


def test_options_json_is_copier_yml() -> None:
    result = svcgen("options", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    config = questions()
    assert [row["name"] for row in rows] == list(config)
    by_name = {row["name"]: row for row in rows}
    assert by_name["project_slug"]["resolved_default"] == "my-service"
    assert by_name["project_slug"]["derived"] is True
    assert by_name["framework"]["resolved_default"] == "fastapi"
    for row in rows:
        spec = config[row["name"]]
        assert row["default"] == spec["default"]
        assert row["help"] == spec["help"]
        assert row["type"] == spec["type"]
        assert [c["value"] for c in row["choices"]] == choice_values(spec)


def test_the_wizard_asks_exactly_copier_ymls_questions() -> None:
    """Meta-test: the wizard has no question list of its own."""
    q = Questionnaire.from_config(copier_config())
    config = questions()
    asked = [question for question in q.questions if question.when is not False]
    assert [question.name for question in asked] == list(config)
    for question in asked:
        spec = config[question.name]
        assert question.help == spec["help"]
        assert question.type == spec["type"]
        assert question.default == spec["default"]
        assert question.multiselect == bool(spec.get("multiselect"))
        assert question.validator == str(spec.get("validator") or "")
    wizard_source = (REPO / "generator" / "svcgen" / "new" / "wizard.py").read_text(
        encoding="utf-8"
    )
    for name in config:
        assert f'"{name}"' not in wizard_source


@pytest.mark.parametrize(
    "data",
    [{}, {"project_name": "Billing API 2"}, {"project_slug": "pay", "framework": "flask"}],
    ids=["defaults", "derived-from-name", "derived-from-slug"],
)
def test_wizard_defaults_agree_with_copier(tmp_path: Path, data: dict[str, Any]) -> None:
    """Defaults rendered by the wizard are the ones Copier itself computes."""
    ours = Questionnaire.from_config(copier_config(), tmp_path / "p").resolve(data)
    copier_answers = generate(tmp_path / "p", data).answers
    assert ours == {k: v for k, v in copier_answers.items() if not k.startswith("_")}


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("svcgen new --framework f", ["fastapi", "flask"]),
        ("svcgen new -s r", ["redis", "rabbitmq"]),
    ],
)
def test_shell_completion_offers_copier_ymls_choices(words: str, expected: list[str]) -> None:
    result = subprocess.run(
        [str(SVCGEN)],
        env={
            **os.environ,
            "_SVCGEN_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - 1),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == expected
