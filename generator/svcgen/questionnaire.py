"""What svcgen must understand of copier.yml itself: its questions, asked before Copier runs.

Copier's public API (`run_copy`, `run_update`, `run_recopy`) renders a project from answers
and asks what is missing on its own prompt; it has no call that lists a question's choices,
types a `--data` value, checks a validator or counts what a wizard will ask. svcgen needs
those before rendering (the wizard, `svcgen options`, `--data` errors that exit 2 with the
rule), so this module reads each question (help, choices, multiselect, default, validator,
`when`, `ask`) from copier.yml at run time and renders it with a Jinja environment set up
the way Copier sets up its own (same extensions, same `_envops`). Everything else goes
through the API: new/render.py (`run_copy`) and update/run.py (`run_update`) hand Copier the
answers, and Copier validates and derives them again. tests/test_cli.py keeps the two in
step (every question, default and rule against Copier's own answers).

Where to add a question: copier.yml only; nothing here names one.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jinja2 import UndefinedError
from jinja2.sandbox import SandboxedEnvironment

#: The extensions Copier always loads (its own `YieldExtension` only matters in file names).
COPIER_EXTENSIONS = ("jinja2_ansible_filters.AnsibleCoreFiltersExtension",)

_TRUE = {"y", "yes", "t", "true", "on"}
_FALSE = {"n", "no", "f", "false", "off", "~", "null", "none", ""}


class InvalidAnswer(ValueError):
    """An answer broke a question's type, choices or validator; `rule` says how."""

    def __init__(self, name: str, rule: str) -> None:
        super().__init__(f"{name}: {rule}")
        self.name = name
        self.rule = rule


def to_bool(value: Any) -> bool:
    """Copier's reading of a boolean: numbers, YAML words (yes/no/on/off...)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    try:
        return bool(float(text))
    except ValueError:
        raise ValueError(f"{value!r} is not a boolean (yes/no, true/false)") from None


def _cast(type_name: str, value: Any) -> Any:
    if type_name == "str":
        if isinstance(value, list | dict) or value is None:
            raise ValueError(f"{value!r} is not a string")
        return str(value)
    if type_name == "int":
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not an integer")
        try:
            return int(str(value).strip())
        except ValueError:
            raise ValueError(f"{value!r} is not an integer") from None
    if type_name == "float":
        try:
            return float(str(value).strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
    if type_name == "bool":
        return to_bool(value)
    if type_name == "json":
        return json.loads(value) if isinstance(value, str) else value
    if type_name == "yaml":
        return yaml.safe_load(value) if isinstance(value, str) else value
    raise ValueError(f"unsupported question type {type_name!r}")


def jinja_env(settings: Mapping[str, Any]) -> SandboxedEnvironment:
    """A Jinja environment like Copier's: its default extensions plus the template's."""
    envops = dict(settings.get("_envops") or {})
    undefined = envops.pop("undefined", None)
    if undefined in {"jinja2.StrictUndefined", "jinja2.Undefined"}:
        import jinja2

        envops["undefined"] = getattr(jinja2, undefined.rsplit(".", 1)[1])
    extensions = [*COPIER_EXTENSIONS, *(settings.get("_jinja_extensions") or [])]
    return SandboxedEnvironment(extensions=extensions, **envops)


@dataclass(frozen=True)
class Choice:
    label: str
    value: Any


@dataclass
class Question:
    """One question of copier.yml; templated fields are rendered against earlier answers."""

    name: str
    type: str = "str"
    help: str = ""
    default: Any = None
    choices: Any = None
    multiselect: bool = False
    validator: str = ""
    when: Any = True
    ask: Any = True
    secret: bool = False

    @classmethod
    def from_config(cls, name: str, spec: Any) -> Question:
        if not isinstance(spec, Mapping):  # `name: default` shorthand
            spec = {"default": spec}
        type_name = spec.get("type")
        if not type_name:
            default = spec.get("default")
            type_name = (
                type(default).__name__
                if type(default).__name__ in {"str", "int", "float", "bool"}
                else "yaml"
            )
        return cls(
            name=name,
            type=str(type_name),
            help=str(spec.get("help") or ""),
            default=spec.get("default"),
            choices=spec.get("choices"),
            multiselect=bool(spec.get("multiselect", False)),
            validator=str(spec.get("validator") or ""),
            when=spec.get("when", True),
            ask=spec.get("ask", True),
            secret=bool(spec.get("secret", False)),
        )


@dataclass
class Questionnaire:
    """The questions of one template, in copier.yml's order, and how to answer them."""

    questions: list[Question]
    settings: Mapping[str, Any] = field(default_factory=dict)
    dest: Path = Path(".")
    operation: str = "copy"

    def __post_init__(self) -> None:
        self.env = jinja_env(self.settings)
        # Computed values that need no answers (e.g. the service catalog, which `services`
        # takes its choices from): every rendering sees them, as Copier's does.
        self.constants = {
            q.name: q.default
            for q in self.questions
            if q.when is False and not (isinstance(q.default, str) and "{" in q.default)
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dest: Path = Path(".")) -> Questionnaire:
        questions = [
            Question.from_config(name, spec)
            for name, spec in config.items()
            if not name.startswith("_")
        ]
        settings = {k: v for k, v in config.items() if k.startswith("_")}
        return cls(questions, settings, dest)

    def __getitem__(self, name: str) -> Question:
        for question in self.questions:
            if question.name == name:
                return question
        raise KeyError(name)

    # --- rendering ------------------------------------------------------------
    def context(self, answers: Mapping[str, Any]) -> dict[str, Any]:
        """What Copier offers templates while it asks: answers so far plus `_copier_*`."""
        return {
            **self.constants,
            **answers,
            "_copier_answers": dict(answers),
            "_copier_conf": {
                "answers_file": self.settings.get("_answers_file", ".copier-answers.yml"),
                "dst_path": str(self.dest),
                "sep": "/",
                "os": "linux" if sys.platform.startswith("linux") else sys.platform,
            },
            "_copier_operation": self.operation,
            "_copier_phase": "prompt",
            "_copier_python": sys.executable,
            "_folder_name": self.dest.name,
        }

    def render(self, value: Any, answers: Mapping[str, Any]) -> Any:
        """Render a templated string (anything else is returned as is)."""
        if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
            return value
        return self.env.from_string(value).render(self.context(answers))

    def is_asked_about(self, question: Question, answers: Mapping[str, Any]) -> bool:
        """`when` is true: the question exists for these answers (else it is computed)."""
        return to_bool(self.render(question.when, answers))

    def should_ask(self, question: Question, answers: Mapping[str, Any]) -> bool:
        """`ask` is true: prompt for it (else its default is taken silently)."""
        return to_bool(self.render(question.ask, answers))

    def choices(self, question: Question, answers: Mapping[str, Any]) -> list[Choice]:
        raw = self.render(question.choices, answers)
        if isinstance(raw, str):
            raw = yaml.safe_load(raw)
        if not raw:
            return []
        items = list(raw.items()) if isinstance(raw, Mapping) else [(c, c) for c in raw]
        result = []
        for label, value in items:
            if isinstance(value, Mapping):  # extended syntax {value: ..., validator: ...}
                value = value["value"]
            result.append(Choice(str(self.render(label, answers)), self.render(value, answers)))
        return result

    # --- answers ----------------------------------------------------------------
    def parse(self, question: Question, raw: Any, answers: Mapping[str, Any]) -> Any:
        """Turn a raw answer (a string from a flag or a prompt) into a typed value."""
        try:
            if question.multiselect:
                items = raw
                if isinstance(raw, str):
                    text = raw.strip()
                    loaded = yaml.safe_load(text) if text.startswith("[") else None
                    items = loaded if isinstance(loaded, list) else text.split(",")
                    items = [i.strip() if isinstance(i, str) else i for i in items]
                    items = [i for i in items if i != ""]
                if not isinstance(items, list | tuple):
                    raise ValueError(f"{raw!r} is not a list")
                values = [_cast(question.type, item) for item in items]
            else:
                values = [_cast(question.type, raw)]
        except (ValueError, TypeError, yaml.YAMLError) as error:
            raise InvalidAnswer(
                question.name, f"must be of type {question.type}: {error}"
            ) from None
        choices = self.choices(question, answers)
        if choices:
            allowed = [_cast(question.type, c.value) for c in choices]
            for value in values:
                if value not in allowed:
                    options = ", ".join(str(a) for a in allowed)
                    raise InvalidAnswer(
                        question.name, f"{value!r} is not one of the choices: {options}"
                    )
            if question.multiselect:  # keep copier.yml's order, drop duplicates
                return [a for a in allowed if a in values]
        return values if question.multiselect else values[0]

    def validate(self, question: Question, value: Any, answers: Mapping[str, Any]) -> None:
        """Raise InvalidAnswer with the validator's own message when it renders one."""
        if not question.validator:
            return
        try:
            message = str(self.render(question.validator, {**answers, question.name: value}))
        except (UndefinedError, TypeError, ValueError) as error:
            message = str(error)
        if message.strip():
            raise InvalidAnswer(question.name, " ".join(message.split()))

    def default(self, question: Question, answers: Mapping[str, Any]) -> Any:
        """The question's default rendered from earlier answers and typed (None if none)."""
        raw = question.default
        if isinstance(raw, list):
            raw = [self.render(item, answers) for item in raw]
        else:
            raw = self.render(raw, answers)
        if raw is None:
            return [] if question.multiselect else None
        return self.parse(question, raw, answers)

    def check(self, question: Question, raw: Any, answers: Mapping[str, Any]) -> Any:
        """Parse and validate one answer; the typed value or InvalidAnswer."""
        value = self.parse(question, raw, answers)
        self.validate(question, value, answers)
        return value

    def count_to_ask(self, given: Mapping[str, Any]) -> int:
        """How many questions a wizard will ask when `given` are already answered (by flags).

        Each question's `when`/`ask` is judged on the defaults of those before it, as an
        estimate of what the answers will be.
        """
        answers: dict[str, Any] = dict(given)
        count = 0
        for question in self.questions:
            try:
                asked = self.is_asked_about(question, answers) and self.should_ask(
                    question, answers
                )
                if question.name not in given:
                    answers[question.name] = self.default(question, answers)
            except Exception:  # a rule that needs answers not known yet: it will be asked
                asked = True
            count += asked and question.name not in given
        return count

    def resolve(
        self,
        given: Mapping[str, Any],
        prompt: Callable[[Question, Any, dict[str, Any]], Any] | None = None,
    ) -> dict[str, Any]:
        """Answer every question in order: given values, then prompts (or defaults).

        Returns the answers Copier should receive: computed (`when: false`) values are
        left for Copier to derive. Raises InvalidAnswer for a bad given or default value.
        """
        unknown = sorted(set(given) - {q.name for q in self.questions})
        if unknown:
            raise InvalidAnswer(
                unknown[0], "is not a question of this template (see `svcgen options`)"
            )
        answers: dict[str, Any] = {}
        computed: set[str] = set()
        for question in self.questions:
            if not self.is_asked_about(question, answers):
                computed.add(question.name)
                if question.default is not None:
                    answers[question.name] = self.default(question, answers)
                continue
            if question.name in given:
                answers[question.name] = self.check(question, given[question.name], answers)
                continue
            default = self.default(question, answers)
            if prompt is not None and self.should_ask(question, answers):
                answers[question.name] = prompt(question, default, answers)
                continue
            if default is None:
                raise InvalidAnswer(question.name, "has no default: give it with --data")
            self.validate(question, default, answers)
            answers[question.name] = default
        return {k: v for k, v in answers.items() if k not in computed}


def questionnaire(
    config: Mapping[str, Any], dest: Path = Path("."), operation: str = "copy"
) -> Questionnaire:
    result = Questionnaire.from_config(config, dest)
    result.operation = operation
    return result


def display(value: Any) -> str:
    """An answer as the summary shows it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "(none)"
    return str(value)


__all__ = [
    "Choice",
    "InvalidAnswer",
    "Question",
    "Questionnaire",
    "display",
    "questionnaire",
    "to_bool",
]
