"""`svcgen check` output: a table or plain lines for people, JSON and SARIF for machines.

JSON is versioned by its `schema` key (`svcgen-check/2`): one entry per service, each with
its verdicts; every verdict has a `file` (relative to the audited folder) and a `line`
(or null). SARIF 2.1.0 carries the WARN and FAIL verdicts for code-scanning tools. No
format ever prints a secret: the secrets check reports kind, place, 4 characters, length.
"""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import __version__
from . import Audit, ServiceAudit
from .repo import Result

SCHEMA = "svcgen-check/2"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
STATUS_STYLE = {"PASS": "green", "WARN": "yellow", "FAIL": "bold red"}


def split_location(file: str) -> tuple[str, int | None]:
    name, sep, line = file.rpartition(":")
    if sep and line.isdigit():
        return name, int(line)
    return file, None


def _pascal(title: str) -> str:
    """A rule's `name` for SARIF: readable, and unlike its id (SARIF1001)."""
    return "".join(word.capitalize() for word in re.findall(r"[A-Za-z0-9]+", title))


def _summary_line(counts: dict[str, int]) -> str:
    return f"{counts['PASS']} passed, {counts['WARN']} warnings, {counts['FAIL']} failed"


def _heading(service: ServiceAudit) -> str:
    where = f" ({service.path})" if service.path not in {".", ""} else ""
    template = f" [{service.template}]" if service.template else ""
    return f"{service.name}{where}{template}"


def as_json(report: Audit) -> dict[str, Any]:
    def verdict(result: Result) -> dict[str, Any]:
        file, line = split_location(result.file)
        details = []
        for where, text in result.details:
            path, number = split_location(where)
            details.append({"file": path, "line": number, "text": text})
        return {**result.as_dict(), "file": file, "line": line, "details": details}

    return {
        "schema": SCHEMA,
        "path": str(report.path),
        "passed": report.passed,
        "summary": report.summary(),
        "services": [
            {
                "name": s.name,
                "repo": s.repo,
                "path": s.path,
                "template": s.template,
                "passed": s.passed,
                "summary": s.summary(),
                "checks": [verdict(r) for r in s.results],
            }
            for s in report.services
        ],
    }


def as_sarif(report: Audit) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for service in report.services:
        for result in service.results:
            rules.setdefault(
                result.id,
                {
                    "id": result.id,
                    "name": _pascal(result.title),
                    "shortDescription": {"text": result.title},
                },
            )
            if result.status == "PASS":
                continue
            # One SARIF result per finding (each secret), else one for the verdict.
            for where, text in result.details or ((result.file, result.reason),):
                file, line = split_location(where)
                location: dict[str, Any] = {
                    "artifactLocation": {"uri": file.rstrip("/") or ".", "uriBaseId": "%SRCROOT%"}
                }
                if line:
                    location["region"] = {"startLine": line}
                results.append(
                    {
                        "ruleId": result.id,
                        "ruleIndex": list(rules).index(result.id),
                        "level": "error" if result.status == "FAIL" else "warning",
                        "message": {"text": f"{service.name}: {text}"},
                        "locations": [{"physicalLocation": location}],
                    }
                )
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "svcgen check",
                        "version": __version__,
                        "informationUri": "https://github.com/svcgen/svcgen",
                        "rules": list(rules.values()),
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"uri": report.path.as_uri() + "/"}},
                "results": results,
            }
        ],
    }


def print_table(report: Audit, out: Console) -> None:
    """For a terminal: one table per service; long cells wrap, never cut."""
    for service in report.services:
        table = Table(title=_heading(service), title_justify="left")
        table.add_column("status", no_wrap=True)
        table.add_column("check", overflow="fold")
        table.add_column("reason", overflow="fold")
        table.add_column("file", overflow="fold")
        for r in service.results:
            style = STATUS_STYLE[r.status]
            reason = "\n".join([r.reason, *(text for _, text in r.details[3:])])
            table.add_row(f"[{style}]{r.status}[/]", r.title, escape(reason), escape(r.file))
        out.print(table)
        out.print(_summary_line(service.summary()))
    if len(report.services) > 1:
        out.print(f"{len(report.services)} services: {_summary_line(report.summary())}")


def plain_lines(report: Audit) -> list[str]:
    """For pipes and logs: whole lines, never cut to a width."""
    lines = []
    for service in report.services:
        lines.append(f"== {_heading(service)}")
        for r in service.results:
            lines.append(f"{r.status:<4}  {r.title}: {r.reason}  ({r.file})")
            lines.extend(f"      {text}" for _, text in r.details[3:])  # beyond the reason's 3
        lines.append(_summary_line(service.summary()))
    if len(report.services) > 1:
        lines.append(f"{len(report.services)} services: {_summary_line(report.summary())}")
    return lines
