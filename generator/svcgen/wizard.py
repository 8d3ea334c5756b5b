"""The interactive wizard: one questionary prompt per copier.yml question, in order.

Nothing here knows a question by name: message, choices, defaults and rules all come
from the Questionnaire, so a question added to copier.yml is asked the next run.
"""

from __future__ import annotations

from typing import Any

import questionary
from prompt_toolkit.styles import Style

from .questionnaire import InvalidAnswer, Question, Questionnaire

STYLE = Style([("qmark", "fg:ansicyan bold"), ("question", "bold"), ("answer", "fg:ansigreen")])


class Wizard:
    """Asks a Questionnaire's questions in a terminal; Ctrl-C raises KeyboardInterrupt."""

    def __init__(self, questionnaire: Questionnaire) -> None:
        self.questionnaire = questionnaire

    def message(self, question: Question, answers: dict[str, Any]) -> str:
        text = str(self.questionnaire.render(question.help, answers)).strip()
        return f"{question.name}: {text}" if text else question.name

    def __call__(self, question: Question, default: Any, answers: dict[str, Any]) -> Any:
        q = self.questionnaire
        message = self.message(question, answers)
        choices = q.choices(question, answers)

        def validate(raw: Any) -> bool | str:
            try:
                q.check(question, raw, answers)
            except InvalidAnswer as error:
                return error.rule
            return True

        if choices and question.multiselect:
            selected = default or []
            raw: Any = questionary.checkbox(
                message,
                choices=[
                    questionary.Choice(c.label, value=c.value, checked=c.value in selected)
                    for c in choices
                ],
                validate=validate,
                style=STYLE,
            ).unsafe_ask()
        elif choices:
            start = next((c.value for c in choices if c.value == default), choices[0].value)
            raw = questionary.select(
                message,
                choices=[questionary.Choice(c.label, value=c.value) for c in choices],
                default=start,
                style=STYLE,
            ).unsafe_ask()
        elif question.type == "bool":
            raw = questionary.confirm(message, default=bool(default), style=STYLE).unsafe_ask()
        else:
            text = "" if default is None else str(default)
            ask = questionary.password if question.secret else questionary.text
            raw = ask(message, default=text, validate=validate, style=STYLE).unsafe_ask()
        try:
            return q.check(question, raw, answers)
        except InvalidAnswer as error:  # a rule a select or confirm can't show inline
            questionary.print(f"  {error.rule}", style="fg:ansired")
            return self(question, default, answers)

    def confirm(self, message: str) -> bool:
        return bool(questionary.confirm(message, default=True, style=STYLE).unsafe_ask())
