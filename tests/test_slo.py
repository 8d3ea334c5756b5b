"""The chart's service level objectives and Grafana dashboard, checked with the real tools.

The PrometheusRule's groups pass `promtool check rules`; `promtool test rules` feeds synthetic
series that must fire each alert (and only it) and must leave every alert quiet; a real
Prometheus (Debian's) scrapes the running generated service with the rendered rules loaded, and
every recording rule and every dashboard query returns series: none names a metric or label the
service does not export.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .chart_support import NAMESPACE, RELEASE, chart_tool
from .conftest import ProjectFactory
from .support import Project, combo_id, dies_with_test, matrix, service_env
from .test_backing_services import own_schema
from .test_service_runtime import free_port, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("slo")]

# The project test_service_runtime also runs (generated and installed once per session), and
# the Flask + PostgreSQL one test_resilience runs.
ANSWERS = {"framework": "fastapi"}
POSTGRES = next(a for a in matrix() if a["services"] == ["postgres"] and a["framework"] == "flask")
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
ALERTS = {
    ("availability", "Fast"): "critical",
    ("availability", "Slow"): "warning",
    ("latency", "Fast"): "critical",
    ("latency", "Slow"): "warning",
}


@dataclass
class Scraped:
    project: Project
    env: dict[str, str]  # what the service needs besides its ports


def render(project: Project, *sets: str) -> list[dict[str, Any]]:
    chart = project.path / "charts" / project.slug
    args = [chart_tool("helm3"), "template", RELEASE, str(chart), "--namespace", NAMESPACE]
    for item in ("slo.enabled=true", "dashboard.enabled=true", *sets):
        args += ["--set-json", item]  # JSON: a float stays a float
    return [doc for doc in yaml.safe_load_all(project.run(*args).stdout) if doc]


def job(project: Project) -> str:
    return f"{RELEASE}-{project.slug}"


def write_rules(docs: list[dict[str, Any]], dest: Path) -> dict[str, Any]:
    """The PrometheusRule's groups as a rules file; its alerting rules by name."""
    (rule,) = [doc for doc in docs if doc["kind"] == "PrometheusRule"]
    dest.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}), encoding="utf-8")
    return {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}


def recording_rules(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    (rule,) = [doc for doc in docs if doc["kind"] == "PrometheusRule"]
    return [(r["record"], r) for g in rule["spec"]["groups"] for r in g["rules"] if "record" in r]


def dashboard(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (config,) = [doc for doc in docs if doc["kind"] == "ConfigMap" and "dashboard" in str(doc)]
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = config["data"].values()
    return dict(json.loads(text))


def test_rules_pass_promtool_check(project: ProjectFactory, tmp_path: Path) -> None:
    generated = project(ANSWERS, install=False)
    docs = render(generated)
    rules = write_rules(docs, tmp_path / "rules.yaml")
    result = generated.run(chart_tool("promtool"), "check", "rules", str(tmp_path / "rules.yaml"))
    assert f"SUCCESS: {2 * len(WINDOWS) + len(ALERTS)} rules found" in result.stdout, result.stdout
    assert set(rules) == {f"{slo.title()}ErrorBudgetBurn{speed}" for slo, speed in ALERTS}
    records = recording_rules(docs)
    assert sorted((name, rule["labels"]["slo"]) for name, rule in records) == sorted(
        (f"slo:sli_error:ratio_rate{window}", slo)
        for window in WINDOWS
        for slo in ("availability", "latency")
    )
    for name, rule in rules.items():
        if "alert" in rule:
            assert rule["labels"]["severity"] in {"critical", "warning"}, name
            assert rule["annotations"]["summary"], name
            assert rule["annotations"]["description"], name

    # Objectives and the latency threshold come from the values; a threshold that is no
    # bucket bound of the histogram is refused by the schema.
    custom = render(generated, "slo.availability=0.995", "slo.latency.thresholdSeconds=1")
    text = json.dumps([d for d in custom if d["kind"] == "PrometheusRule"])
    assert "(1 - 0.995)" in text, text[:2000]
    assert 'le=\\"1.0\\"' in text, text[:2000]
    refused = generated.run(
        chart_tool("helm3"),
        "template",
        RELEASE,
        str(generated.path / "charts" / generated.slug),
        "--set",
        "slo.latency.thresholdSeconds=0.3",
        check=False,
    )
    assert refused.returncode != 0
    assert "thresholdSeconds" in refused.stderr, refused.stderr


def series(job_name: str, route: str, **extra: str) -> str:
    labels = {"job": job_name, "namespace": NAMESPACE, "method": "GET", "route": route, **extra}
    return ",".join(f'{k}="{v}"' for k, v in labels.items())


def scenario(
    job_name: str,
    rules: dict[str, Any],
    inputs: dict[str, str],
    firing: dict[tuple[str, str], str],
    at: str,
) -> dict[str, Any]:
    """A promtool test: `inputs` (series -> values, 1m apart) evaluated at `at`; the alerts in
    `firing` ((slo, speed) -> humanized value) fire, the others don't."""
    checks = []
    for (slo, speed), severity in ALERTS.items():
        name = f"{slo.title()}ErrorBudgetBurn{speed}"
        expected = []
        if (slo, speed) in firing:
            annotations = {
                key: value.replace("{{ $value | humanizePercentage }}", firing[slo, speed])
                for key, value in rules[name]["annotations"].items()
            }
            labels = {"severity": severity, "slo": slo, "job": job_name, "namespace": NAMESPACE}
            expected.append({"exp_labels": labels, "exp_annotations": annotations})
        checks.append({"eval_time": at, "alertname": name, "exp_alerts": expected})
    return {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in inputs.items()],
        "alert_rule_test": checks,
    }


def test_alerts_fire_and_stay_quiet_on_synthetic_series(
    project: ProjectFactory, tmp_path: Path
) -> None:
    generated = project(ANSWERS, install=False)
    rules = write_rules(render(generated), tmp_path / "rules.yaml")
    name = job(generated)
    api = "/api/items"

    def requests(route: str, status: int, per_minute: int) -> tuple[str, str]:
        return f"http_requests_total{{{series(name, route, status=str(status))}}}", (
            f"0+{per_minute}x40"
        )

    def latency(fast: int, total: int) -> dict[str, str]:
        return {
            f"http_request_duration_seconds_bucket{{{series(name, api, le='0.5')}}}": (
                f"0+{fast}x40"
            ),
            f"http_request_duration_seconds_count{{{series(name, api)}}}": f"0+{total}x40",
        }

    both = {("availability", "Fast"): "10%", ("availability", "Slow"): "10%"}
    tests = [
        # 10 % errors: pages (14.4x the 0.1 % budget) and tickets
        scenario(name, rules, dict([requests(api, 200, 90), requests(api, 500, 10)]), both, "30m"),
        # 0.5 % errors: above 3x the budget, below 6x: a ticket, no page
        scenario(
            name,
            rules,
            dict([requests(api, 200, 995), requests(api, 500, 5)]),
            {("availability", "Slow"): "0.5%"},
            "30m",
        ),
        # 0.05 % errors, and failing health checks (not users' requests): quiet
        scenario(
            name,
            rules,
            dict(
                [
                    requests(api, 200, 1999),
                    requests(api, 500, 1),
                    requests("/health/ready", 503, 60),
                ]
            ),
            {},
            "30m",
        ),
        # half the requests slower than the 0.5 s threshold: latency pages and tickets
        scenario(
            name,
            rules,
            {**dict([requests(api, 200, 100)]), **latency(50, 100)},
            {("latency", "Fast"): "50%", ("latency", "Slow"): "50%"},
            "30m",
        ),
        # 4 % slow: above 3x the 1 % budget, below 6x: a ticket
        scenario(
            name,
            rules,
            {**dict([requests(api, 200, 100)]), **latency(96, 100)},
            {("latency", "Slow"): "4%"},
            "30m",
        ),
        # 0.5 % slow: quiet
        scenario(
            name, rules, {**dict([requests(api, 200, 1000)]), **latency(995, 1000)}, {}, "30m"
        ),
    ]
    test_file = tmp_path / "slo-test.yaml"
    test_file.write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}),
        encoding="utf-8",
    )
    result = generated.run(chart_tool("promtool"), "test", "rules", str(test_file), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


@pytest.fixture(params=[ANSWERS, POSTGRES], ids=combo_id)
def scraped(project: ProjectFactory, request: pytest.FixtureRequest) -> Iterator[Scraped]:
    """A generated project to run and scrape: without services, and with PostgreSQL (its
    retries and breaker metrics feed the dashboard's dependency panels), on a schema of its own."""
    generated = project(request.param)
    if not generated.answers["services"]:
        yield Scraped(generated, {})
        return
    name = f"svcgen_slo_{uuid.uuid4().hex[:8]}"
    server = service_env(["postgres"], name)
    env = {**server, "DATABASE_URL": f"{server['DATABASE_URL']}?options=-csearch_path%3D{name}"}
    with own_schema(generated, name, server, env):
        yield Scraped(generated, env)


def test_prometheus_scrapes_the_service_and_every_query_returns_series(
    scraped: Scraped, tmp_path: Path
) -> None:
    generated = scraped.project
    docs = render(generated)
    write_rules(docs, tmp_path / "rules.yaml")
    records = recording_rules(docs)
    panels = dashboard(docs)["panels"]
    titles = " | ".join(panel["title"] for panel in panels)
    assert "Saturation" in titles
    postgres = "postgres" in generated.answers["services"]
    assert ("retries" in titles and "circuit breaker" in titles) == postgres, titles
    service = next(doc for doc in docs if doc["kind"] == "Service")
    config = next(doc for doc in docs if doc["kind"] == "ConfigMap" and "PORT" in doc["data"])
    port, prometheus_port = free_port(), free_port()
    metrics_port = config["data"].get("METRICS_PORT")
    env = {**scraped.env, "PORT": str(port)}
    if metrics_port:  # the chart serves /metrics on a port of its own: scrape that one
        metrics_port = str(free_port())
        env["METRICS_PORT"] = metrics_port
    target = f"127.0.0.1:{metrics_port or port}"
    scrape = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "rules.yaml")],
        "scrape_configs": [
            {
                # the labels a ServiceMonitor gives: job = the Service's name, its namespace
                "job_name": service["metadata"]["name"],
                "static_configs": [{"targets": [target], "labels": {"namespace": NAMESPACE}}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(scrape), encoding="utf-8")

    service_process = start_with(generated, env)
    prometheus = subprocess.Popen(
        [
            chart_tool("prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=dies_with_test,
    )
    api = f"http://127.0.0.1:{prometheus_port}/api/v1"
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/health/ready", service_process)
        for _ in range(20):  # traffic on a route the SLOs count
            assert httpx.get(f"{base}/").status_code in {200, 404}
            assert httpx.get(f"{base}/health/live").status_code == 200
            if postgres:  # and on one that uses the database
                assert httpx.get(f"{base}/api/items").status_code == 200

        queries = {
            f"{name}{{{selector(rule)}}}": f"{name}{{{selector(rule)}}}" for name, rule in records
        }
        for panel in panels:
            for target_ in panel["targets"]:
                key = f"panel {panel['title']!r} {target_['refId']}"
                queries[key] = target_["expr"].replace("$__rate_interval", "1m")
        missing = dict(queries)
        deadline = time.monotonic() + 60
        while missing and time.monotonic() < deadline:
            for key, query in list(missing.items()):
                answer = httpx.get(f"{api}/query", params={"query": query}, timeout=5).json()
                assert answer["status"] == "success", (key, answer)
                if answer["data"]["result"]:
                    del missing[key]
            if missing:
                httpx.get(f"{base}/health/live")
                time.sleep(1)
        assert not missing, f"queries without series: {json.dumps(missing, indent=1)}"
        targets = httpx.get(f"{api}/targets", timeout=5).json()["data"]["activeTargets"]
        assert [t["health"] for t in targets] == ["up"], targets
    finally:
        prometheus.send_signal(signal.SIGTERM)
        service_process.send_signal(signal.SIGTERM)
        for process in (prometheus, service_process):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def selector(rule: dict[str, Any]) -> str:
    """The recording rule's own static labels, to query each of its series."""
    return ",".join(f'{k}="{v}"' for k, v in rule.get("labels", {}).items())


def start_with(project: Project, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(project.python), "-m", project.package],
        cwd=project.path,
        env={**project.env, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=dies_with_test,
    )
