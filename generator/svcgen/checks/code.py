"""Checks on application code: configuration, secrets, health endpoints, logs, shutdown."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import PurePosixPath

from .image import Dockerfile, find_dockerfile
from .repo import Hit, Repo, Result, is_test, searched, where

ENV_READ = (
    r"os\.environ|os\.getenv|\bBaseSettings\b|environ\.get|process\.env|os\.Getenv|"
    r"os\.LookupEnv|System\.getenv|\bENV\[|env::var|GetEnvironmentVariable|AutomaticEnv|"
    r"\benvconfig\b|\benviron\b"
)


def check_config(repo: Repo) -> Result:
    title = "Configuration from the environment"
    hit = repo.first(r"\bBaseSettings\b|pydantic_settings|environs|python-decouple", repo.code)
    hit = hit or repo.first(ENV_READ, repo.code)
    if hit is None:
        return Result(
            "config-env",
            title,
            "FAIL",
            "no code reads environment variables" + searched(repo),
            ".",
        )
    example = next((p for p in repo.files if p.name in {".env.example", ".env.sample"}), None)
    extra = f"; variables listed in {example}" if example else ""
    return Result(
        "config-env", title, "PASS", f"reads the environment ({hit.text}){extra}", where(hit)
    )


_SECRET_TOKENS = re.compile(
    r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"
    r"|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{36,}\b|\bxox[baprs]-[A-Za-z0-9-]{10,}"
    r"|\bsk_live_[0-9A-Za-z]{20,}|\bAIza[0-9A-Za-z_-]{35}\b"
)
_SECRET_ASSIGN = re.compile(
    r"""(?ix)
    \b[\w-]*?(?:password|passwd|pwd|secret|secret[_-]?key|api[_-]?key|access[_-]?token|auth[_-]?token|token)
    ["']?\s*(?::|=|:=)\s*
    (?:["']([^"'\s]{8,})["']|([^\s"'#{}\[\],]{12,})\s*$)
    """,
    re.MULTILINE,
)
#: user:password@ in a URL; a password equal to the user or under 6 characters is a local default.
_URL_CREDENTIALS = re.compile(
    r"\b[a-z][a-z0-9+.-]*://(?P<user>[^/\s:@'\"]+):(?!(?P=user)@)([^@\s'\"/]{6,})@"
)
#: Values that are obviously placeholders or local-development defaults, not secrets.
_PLACEHOLDERS = re.compile(
    r"(?i)^(?:postgres|guest|password|secret|admin|root|rabbitmq|redis|user|pass|test|dev|"
    r"local|development|none|null|true|false)$"
    r"|change[-_ ]?me|example|dummy|placeholder|x{4,}|\*{3,}|your[-_]|redacted|fake|sample|"
    r"not[-_]?a[-_]?secret|insecure|\$\{|\{\{|\$\(|<[a-z_-]+>|^\$[A-Z_]+$|^os\.|^settings\.|^env\."
)


def _looks_random(value: str) -> bool:
    """A password or key has digits or symbols (or is long); `secretKeyRef` is a word."""
    if re.match(r"^[\w.]+\(|^[A-Z_]+$", value):
        return False
    return bool(re.search(r"[0-9!@#$%^&*+=/?~]", value)) or len(value) >= 24


def _secret_candidates(repo: Repo) -> Iterator[Hit]:
    gitignore = repo.text(PurePosixPath(".gitignore"))
    ignored_env = bool(re.search(r"^/?\.env$", gitignore, re.MULTILINE))
    for path in repo.texts:
        if path.name == ".env" and ignored_env:
            continue  # the developer's own, never committed
        if path.name.endswith((".lock", "-lock.json")) or path.name == "go.sum":
            continue
        text = repo.text(path)
        for match in _SECRET_TOKENS.finditer(text):
            yield Hit(str(path), text.count("\n", 0, match.start()) + 1, match.group(0)[:30])
        if is_test(path):
            continue  # fixtures: only unmistakable keys and tokens count there
        for regex in (_SECRET_ASSIGN, _URL_CREDENTIALS):
            for match in regex.finditer(text):
                value = match.group(match.lastindex or 0)
                if not value or _PLACEHOLDERS.search(value):
                    continue
                if regex is _SECRET_ASSIGN and not _looks_random(value):
                    continue  # a word, a call or a constant's name, not a literal secret
                line = text.count("\n", 0, match.start()) + 1
                yield Hit(str(path), line, match.group(0).strip()[:60])


def check_secrets(repo: Repo) -> Result:
    title = "No hard-coded secrets"
    hits = list(_secret_candidates(repo))
    if hits:
        more = f" (+{len(hits) - 1} more)" if len(hits) > 1 else ""
        return Result(
            "no-secrets",
            title,
            "FAIL",
            f"looks like a secret: {hits[0].text!r}{more}",
            where(hits[0]),
        )
    return Result(
        "no-secrets",
        title,
        "PASS",
        f"no keys, tokens or literal passwords in {len(repo.texts)} files",
        ".",
    )


LIVE_PATHS = (
    r"""["'`](?:/[\w/-]*)?/(?:health/live(?:ness)?|healthz|livez|live|liveness|ping)["'`]"""
)
READY_PATHS = r"""["'`](?:/[\w/-]*)?/(?:health/ready(?:iness)?|readyz|ready|readiness)["'`]"""
GENERIC_HEALTH = r"""["'`](?:/[\w/-]*)?/health["'`]"""


def check_liveness(repo: Repo) -> Result:
    title = "Liveness endpoint"
    hit = repo.first(LIVE_PATHS, repo.code)
    if hit:
        return Result("health-live", title, "PASS", f"serves {hit.text}", where(hit))
    generic = repo.first(GENERIC_HEALTH, repo.code)
    if generic:
        return Result(
            "health-live",
            title,
            "WARN",
            f"only a generic {generic.text}: separate liveness from readiness",
            where(generic),
        )
    return Result(
        "health-live",
        title,
        "FAIL",
        "no liveness route (/health/live, /livez, /healthz)" + searched(repo),
        ".",
    )


def check_readiness(repo: Repo) -> Result:
    title = "Readiness endpoint"
    hit = repo.first(READY_PATHS, repo.code)
    if hit:
        return Result("health-ready", title, "PASS", f"serves {hit.text}", where(hit))
    return Result(
        "health-ready",
        title,
        "FAIL",
        "no readiness route (/health/ready, /readyz)" + searched(repo),
        ".",
    )


JSON_LOGS = (
    r"JsonFormatter|jsonlogger|json_log_formatter|JSONRenderer|ecs_logging|structlog\.processors\.JSON"
    r"|\bpino\b|format\.json\(\)|slog\.NewJSONHandler|zap\.NewProduction|zerolog|LogstashEncoder"
    r"|JsonLayout|JsonTemplateLayout"
)
STDOUT = r"sys\.stdout|process\.stdout|os\.Stdout|System\.out|\bstdout\b"
#: JSON loggers whose default destination is stdout.
STDOUT_BY_DEFAULT = r"\bpino\b|structlog"


def check_json_logs(repo: Repo) -> Result:
    title = "JSON logs to stdout"
    hit = repo.first(JSON_LOGS, repo.code)
    if hit is None:
        # A hand-written formatter: json.dumps inside a file that formats log records.
        for path in repo.code:
            text = repo.text(path)
            dumps = re.search(r"json\.dumps|JSON\.stringify", text)
            if dumps and re.search(r"logging\.Formatter|LogRecord|def format\(", text):
                line = text.count("\n", 0, dumps.start()) + 1
                hit = Hit(str(path), line, f"{dumps.group(0)} in a log formatter")
                break
    if hit is None:
        return Result(
            "json-logs",
            title,
            "FAIL",
            "no JSON log formatter" + searched(repo),
            ".",
        )
    stdout = repo.first(STDOUT, [PurePosixPath(hit.file)]) or repo.first(STDOUT, repo.code)
    if stdout is None and re.search(STDOUT_BY_DEFAULT, hit.text):
        stdout = Hit(hit.file, hit.line, "stdout (its default)")
    if stdout is None:
        return Result(
            "json-logs",
            title,
            "WARN",
            f"JSON logs ({hit.text}) but no sign they go to stdout",
            where(hit),
        )
    return Result("json-logs", title, "PASS", f"{hit.text}, written to {stdout.text}", where(hit))


SIGTERM_CODE = (
    r"signal\.signal\(\s*signal\.SIGTERM|signal\.SIGTERM|def handle_term|add_signal_handler"
    r"|graceful_timeout|timeout_graceful_shutdown"
)
SIGTERM = (
    r"SIGTERM|handle_term|graceful_timeout|process\.on\(\s*['\"]SIGTERM|syscall\.SIGTERM"
    r"|signal\.Notify|addShutdownHook"
)
SHUTDOWN_HOOKS = (
    r"lifespan|on_shutdown|atexit\.register|@app\.on_event\(\s*['\"]shutdown|server\.close\("
)


def check_shutdown(repo: Repo) -> Result:
    title = "Graceful shutdown on SIGTERM"
    hit = repo.first(SIGTERM_CODE, repo.code) or repo.first(SIGTERM, repo.code)
    found = find_dockerfile(repo)
    if found is not None:
        final = Dockerfile.parse(str(found), repo.text(found)).final_stage()
        starts = [i for i in final if i.keyword in {"CMD", "ENTRYPOINT"}]
        entry = next(
            (i for i in reversed(starts) if i.keyword == "ENTRYPOINT"),
            starts[-1] if starts else None,
        )
        if entry and not entry.args.startswith("["):
            return Result(
                "graceful-shutdown",
                title,
                "WARN",
                f"shell-form {entry.keyword}: /bin/sh is PID 1 and does not pass SIGTERM on",
                f"{found}:{entry.line}",
            )
    if hit:
        return Result(
            "graceful-shutdown", title, "PASS", f"handles termination ({hit.text})", where(hit)
        )
    hook = repo.first(SHUTDOWN_HOOKS, repo.code)
    if hook:
        return Result(
            "graceful-shutdown",
            title,
            "WARN",
            f"shutdown hook ({hook.text}) but no SIGTERM handling",
            where(hook),
        )
    return Result(
        "graceful-shutdown",
        title,
        "FAIL",
        "nothing handles SIGTERM" + searched(repo),
        ".",
    )
