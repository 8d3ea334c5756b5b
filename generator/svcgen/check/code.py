"""Checks on application code: configuration, secrets, health endpoints, logs, shutdown."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from ..dockerfile import Dockerfile, Instruction
from .builds import production_dockerfiles
from .repo import Hit, Repo, Result, is_test, searched, where

ENV_READ = (
    r"os\.environ|os\.getenv|\bBaseSettings\b|environ\.get|process\.env|os\.Getenv|"
    r"os\.LookupEnv|System\.getenv|\bENV\[|env::var|GetEnvironmentVariable|AutomaticEnv|"
    r"\benvconfig\b|\benviron\b"
)


def check_config(repo: Repo) -> Result:
    title = "Configuration from the environment"
    hit = repo.first(
        r"\bBaseSettings\b|pydantic_settings|\benvirons\b|\bdecouple\b", repo.code, within="code"
    )
    hit = hit or repo.first(ENV_READ, repo.code, within="code")
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


_SECRET_TOKENS = {
    "private key": r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----",
    "AWS access key": r"\bAKIA[0-9A-Z]{16}\b",
    "GitHub token": r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",
    "Slack token": r"\bxox[baprs]-[A-Za-z0-9-]{10,}",
    "Stripe live key": r"\bsk_live_[0-9A-Za-z]{20,}",
    "Google API key": r"\bAIza[0-9A-Za-z_-]{35}\b",
}
_TOKENS = re.compile("|".join(f"(?P<t{i}>{p})" for i, p in enumerate(_SECRET_TOKENS.values())))
#: `name = value`: spaces and tabs only around `=`, so an empty `KEY=` never takes the next line.
_SECRET_ASSIGN = re.compile(
    r"""(?ix)
    (?P<name>password|passwd|pwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token|token)
    [\w-]*?["']?[ \t]*(?::|=|:=)[ \t]*
    (?:["']([^"'\s]{8,})["']|([^\s"'#{}\[\],]{12,})[ \t]*$)
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


@dataclass(frozen=True)
class Secret:
    """A secret found, described without its value: kind, place, 4 characters, length."""

    kind: str
    file: str
    line: int
    value: str

    def redacted(self) -> str:
        shown = f"{self.value[:4]}…, {len(self.value)} chars"
        return f"{self.kind} at {self.file}:{self.line} ({shown})"


def _looks_random(value: str) -> bool:
    """A password or key has digits or symbols (or is long); `secretKeyRef` is a word."""
    if re.match(r"^[\w.]+\(|^[A-Z_]+$", value):
        return False
    return bool(re.search(r"[0-9!@#$%^&*+=/?~]", value)) or len(value) >= 24


def find_secrets(repo: Repo) -> list[Secret]:
    gitignore = repo.text(PurePosixPath(".gitignore"))
    ignored_env = bool(re.search(r"^/?\.env$", gitignore, re.MULTILINE))
    kinds = list(_SECRET_TOKENS)
    found: list[Secret] = []
    for path in repo.texts:
        if path.name == ".env" and ignored_env:
            continue  # the developer's own, never committed
        if path.name.endswith((".lock", "-lock.json")) or path.name == "go.sum":
            continue
        text = repo.text(path)

        def line(offset: int, text: str = text) -> int:
            return text.count("\n", 0, offset) + 1

        for match in _TOKENS.finditer(text):
            kind = kinds[int((match.lastgroup or "t0")[1:])]
            found.append(Secret(kind, str(path), line(match.start()), match.group(0)))
        if is_test(path):
            continue  # fixtures: only unmistakable keys and tokens count there
        for match in _SECRET_ASSIGN.finditer(text):
            value = match.group(2) or match.group(3)
            if not value or _PLACEHOLDERS.search(value) or not _looks_random(value):
                continue  # a word, a call or a constant's name, not a literal secret
            kind = f"{match.group('name').lower()} literal"
            found.append(Secret(kind, str(path), line(match.start()), value))
        for match in _URL_CREDENTIALS.finditer(text):
            value = match.group(2)
            if _PLACEHOLDERS.search(value):
                continue
            found.append(Secret("URL password", str(path), line(match.start()), value))
    return found


def check_secrets(repo: Repo) -> Result:
    title = "No hard-coded secrets"
    hits = find_secrets(repo)
    if hits:
        shown = "; ".join(s.redacted() for s in hits[:3])
        more = f" (+{len(hits) - 3} more)" if len(hits) > 3 else ""
        first = hits[0]
        details = tuple((f"{s.file}:{s.line}", s.redacted()) for s in hits)
        return Result(
            "no-secrets", title, "FAIL", f"{shown}{more}", f"{first.file}:{first.line}", details
        )
    return Result(
        "no-secrets",
        title,
        "PASS",
        f"no keys, tokens or literal passwords in {len(repo.texts)} files",
        ".",
    )


_ROUTE_END = r"/?[\"'`]"
LIVE_PATHS = (
    r"""["'`](?:/[\w/.-]*)?/(?:_?health/live(?:ness)?|_?healthz|_?livez|live|liveness|ping"""
    r"""|_?health/alive|status/live)""" + _ROUTE_END
)
READY_PATHS = (
    r"""["'`](?:/[\w/.-]*)?/(?:_?health/ready(?:iness)?|_?readyz|ready|readiness|status/ready)"""
    + _ROUTE_END
)
GENERIC_HEALTH = (
    r"""["'`](?:/[\w/.-]*)?/(?:_?health|health[-_]?check|healthcheck|status|_?health/?status)"""
    + _ROUTE_END
)
#: The gRPC health protocol (grpc.health.v1): what Kubernetes' grpc probes call.
GRPC_HEALTH = (
    r"grpc\.health\.v1|health_pb2_grpc|HealthServicer|grpc_health|healthpb\.|"
    r"RegisterHealthServer|health\.NewServer\(|HealthStatusManager|io\.grpc\.protobuf\.services"
    r"|grpc\.health\.v1\.Health|@grpc/grpc-js-health|grpc-health-check|HealthCheckService"
)


def _route(repo: Repo, pattern: str) -> Hit | None:
    return repo.first(pattern, repo.code, within="code+text")


def _health(
    repo: Repo,
    key: str,
    title: str,
    paths: str,
    missing: str,
    *,
    grpc: str = "",
    generic: bool = False,
) -> Result:
    """PASS for a route on `paths` or a gRPC health service (`grpc` adds to its reason);
    with `generic`, WARN for a route that only says /health; else FAIL, `missing`."""
    hit = _route(repo, paths)
    if hit:
        return Result(key, title, "PASS", f"serves {hit.text}", where(hit))
    service = repo.first(GRPC_HEALTH, repo.code, within="code+text")
    if service:
        detail = f"gRPC health service ({service.text}){grpc}"
        return Result(key, title, "PASS", detail, where(service))
    found = _route(repo, GENERIC_HEALTH) if generic else None
    if found:
        detail = f"only a generic {found.text}: separate liveness from readiness"
        return Result(key, title, "WARN", detail, where(found))
    return Result(key, title, "FAIL", missing + searched(repo), ".")


def check_liveness(repo: Repo) -> Result:
    missing = "no liveness route (/health/live, /livez, /healthz)"
    return _health(repo, "health-live", "Liveness endpoint", LIVE_PATHS, missing, generic=True)


def check_readiness(repo: Repo) -> Result:
    missing = "no readiness route (/health/ready, /readyz)"
    grpc = " reports serving status"
    return _health(repo, "health-ready", "Readiness endpoint", READY_PATHS, missing, grpc=grpc)


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
    hit = repo.first(JSON_LOGS, repo.code, within="code+text")
    if hit is None:
        # A hand-written formatter: json.dumps inside a file that formats log records.
        for path in repo.code:
            text = repo.text(path)
            spans = repo.spans(path)
            dumps = next(
                (
                    m
                    for m in re.finditer(r"json\.dumps|JSON\.stringify", text)
                    if spans.in_code(m.start())
                ),
                None,
            )
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
    stdout = repo.first(STDOUT, [PurePosixPath(hit.file)], within="code+text") or repo.first(
        STDOUT, repo.code, within="code+text"
    )
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


#: Servers that stop accepting and finish in-flight requests on SIGTERM by themselves.
SERVERS = r"\b(gunicorn|uvicorn|hypercorn|granian|daphne)\b"


def _server(repo: Repo, dockerfile: str, starts: list[Instruction]) -> Hit | None:
    """The image starts such a server as PID 1: in an exec-form CMD/ENTRYPOINT, or through
    a script that `exec`s it."""
    known = {p.name: p for p in repo.all_files if p.suffix == ".sh"}
    for instruction in starts:
        if not instruction.args.startswith("["):
            continue  # shell form: reported on its own
        direct = re.search(SERVERS, instruction.args)
        if direct:
            return Hit(dockerfile, instruction.line, direct.group(1))
        for word in re.findall(r"[\w./-]+\.sh\b", instruction.args):
            script = known.get(PurePosixPath(word).name)
            text = repo.text(script) if script else ""
            found = re.search(rf"^\s*exec\s+(?:\S*/)?{SERVERS}", text, re.MULTILINE)
            if script and found:
                return Hit(str(script), text.count("\n", 0, found.start()) + 1, found.group(1))
    return None


def _procfile_server(repo: Repo) -> Hit | None:
    procfiles = [p for p in repo.files if p.name == "Procfile"]
    return next(
        (
            Hit(hit.file, hit.line, re.search(SERVERS, hit.text).group(1))  # type: ignore[union-attr]
            for hit in repo.grep(rf"^\w+:\s*(?:exec\s+)?{SERVERS}", procfiles)
        ),
        None,
    )


def check_shutdown(repo: Repo) -> Result:
    title = "Graceful shutdown on SIGTERM"
    hit = repo.first(SIGTERM_CODE, repo.code, within="code") or repo.first(
        SIGTERM, repo.code, within="code"
    )
    server: Hit | None = None
    for found in production_dockerfiles(repo)[:1]:
        final = Dockerfile.parse(str(found), repo.text(found)).final_stage()
        starts = [i for i in final if i.keyword in {"CMD", "ENTRYPOINT"}]
        server = _server(repo, str(found), starts)
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
    server = server or _procfile_server(repo)
    if server:
        reason = f"served by {server.text}, which finishes in-flight requests on SIGTERM"
        return Result("graceful-shutdown", title, "PASS", reason, where(server))
    hook = repo.first(SHUTDOWN_HOOKS, repo.code, within="code")
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
