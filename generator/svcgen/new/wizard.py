"""The interactive wizard: one questionary prompt per copier.yml question, in order.

Nothing here knows a question by name: message, choices, defaults and rules all come
from the Questionnaire, so a question added to copier.yml is asked the next run.
"""

from __future__ import annotations

import shutil
import textwrap
from typing import Any

import questionary
from prompt_toolkit.styles import Style

from ..questionnaire import InvalidAnswer, Question, Questionnaire

STYLE = Style([("qmark", "fg:ansicyan bold"), ("question", "bold"), ("answer", "fg:ansigreen")])


class Wizard:
    """Asks a Questionnaire's questions in a terminal; Ctrl-C raises KeyboardInterrupt."""

    def __init__(self, questionnaire: Questionnaire) -> None:
        self.questionnaire = questionnaire

    def message(self, question: Question, answers: dict[str, Any]) -> str:
        text = str(self.questionnaire.render(question.help, answers)).strip()
        return f"{question.name}: {text}" if text else question.name

    def __call__(self, question: Question, default: Any, answers: dict[str, Any]) -> Any:
        """Ask `question`; an answer that breaks a rule prints the rule whole and asks again
        (the answer typed is the new default, to edit). Inline validation would show the rule
        in prompt_toolkit's one-line toolbar, cut at the terminal's width."""
        q = self.questionnaire
        message = self.message(question, answers)
        choices = q.choices(question, answers)
        if choices and question.multiselect:
            selected = default or []
            raw: Any = questionary.checkbox(
                message,
                choices=[
                    questionary.Choice(c.label, value=c.value, checked=c.value in selected)
                    for c in choices
                ],
                style=STYLE,
            ).unsafe_ask()
            labels = [c.label for c in choices if c.value in (raw or [])]
            questionary.print(f"  {question.name}: {', '.join(labels) or 'none'}", style="bold")
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
            raw = ask(message, default=text, style=STYLE).unsafe_ask()
        try:
            return q.check(question, raw, answers)
        except InvalidAnswer as error:
            width = max(40, shutil.get_terminal_size().columns - 1)
            rule = textwrap.fill(error.rule, width, initial_indent="  ", subsequent_indent="  ")
            questionary.print(rule, style="fg:ansired")
            retry = default if question.secret or question.type == "bool" else raw
            return self(question, retry, answers)

    def confirm(self, message: str) -> bool:
        return bool(questionary.confirm(message, default=True, style=STYLE).unsafe_ask())
