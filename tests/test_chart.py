"""The generated Helm chart, checked by real tools for every combination of answers.

For each combination, with the chart's default values and with each environment's values file
(`values-dev.yaml`, `values-staging.yaml`, `values-prod.yaml`): `helm lint --strict` on Helm v3
and v4, kubernetes-validate (strict) for Kubernetes 1.29 and 1.33, the custom resources
(HTTPRoute, ExternalSecret, ServiceMonitor) against their CRD schemas with unknown fields failing
(crd-validate), checkov (kubernetes and helm frameworks), the Pod Security "restricted" fields of
every pod spec, and the merged values against values.schema.json. Every chart is rendered once per
combination and values file (tests/chart_support.py) and the renders are reused.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from .chart_support import (
    CUSTOM_KINDS,
    NAMESPACE,
    RELEASE,
    VALUES,
    Renders,
    chart_tool,
    checkov_scan_dir,
    fullname,
    merge,
    pod_specs,
    render_chart,
)
from .conftest import ProjectFactory
from .support import CATALOG, INIT, combo_id, matrix

pytestmark = pytest.mark.e2e

COMBOS = matrix()
KUBERNETES_VERSIONS = ("1.29", "1.33")
# Checks a pod of this chart may skip, each with a one-line reason in the template.
ALLOWED_SKIPS = {
    "CKV_K8S_8",  # liveness probe: worker, migration Job and test pod serve no HTTP
    "CKV_K8S_9",  # readiness probe: same
    "CKV_K8S_35",  # secrets as env: the twelve-factor service reads its URLs from the environment
    "CKV_K8S_43",  # image digest: none exists at generation time (pinned via image.digest)
}
UID = 10001


@pytest.fixture(params=COMBOS, ids=combo_id)
def renders(request: pytest.FixtureRequest, project: ProjectFactory) -> Renders:
    answers: dict[str, Any] = request.param
    return render_chart(project(answers, install=False))


# --- helm lint ---------------------------------------------------------------------------


@pytest.mark.parametrize("helm", ["helm3", "helm4"])
def test_helm_lint_strict_is_clean(renders: Renders, helm: str) -> None:
    binary = chart_tool(helm)
    for name, values in VALUES.items():
        args = [binary, "lint", "--strict", str(renders.chart)]
        if values:
            args += ["--values", str(renders.chart / values)]
        result = renders.project.run(*args, check=False)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{helm} lint ({name}) failed:\n{output}"
        assert "1 chart(s) linted, 0 chart(s) failed" in output, output
        findings = re.findall(r"^\[(INFO|WARNING|ERROR)\].*$", output, re.M)
        assert not findings, f"{helm} lint ({name}) reported:\n{output}"


# --- Kubernetes schemas ------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_manifests_validate_against_kubernetes_schemas(
    renders: Renders, version: str
) -> None:
    validate = chart_tool("kubernetes-validate")
    files = [str(renders.files[name]) for name in VALUES]
    result = renders.project.run(validate, "--strict", "-k", version, *files, check=False)
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 0, "\n".join(lines)

    passed = Counter(
        Path(m[1]).stem
        for m in (re.match(r"INFO (\S+) passed for resource \S+ against version", x) for x in lines)
        if m
    )
    warnings = [line for line in lines if not line.startswith("INFO ")]
    # kubernetes-validate only WARNs (exit 0) on kinds it has no schema for: the custom
    # resources, checked by test_custom_resources_validate_against_their_crd_schemas.
    expected_warnings = sorted(
        f"WARN {renders.files[name]} Couldn't find schema for kind {doc['kind']} with api "
        f"version {doc['apiVersion']} for kubernetes version {version}"
        for name in VALUES
        for doc in renders.docs[name]
        if doc["kind"] in CUSTOM_KINDS
    )
    assert sorted(warnings) == expected_warnings
    for name in VALUES:
        builtin = [doc for doc in renders.docs[name] if doc["kind"] not in CUSTOM_KINDS]
        assert passed[name] == len(builtin), f"{name}: not every resource was validated"


def test_expected_objects_are_rendered(renders: Renders) -> None:
    services = renders.answers["services"]
    full = fullname(renders)
    for name in VALUES:
        expected = {
            ("ServiceAccount", full),
            ("ConfigMap", full),
            ("Service", full),
            ("Deployment", full),
            ("PodDisruptionBudget", full),
            ("NetworkPolicy", full),
            ("Pod", f"{full}-test-ready"),
        }
        # staging and prod read the secrets from an external store (ExternalSecret)
        secret_kind = "ExternalSecret" if name in {"staging", "prod"} else "Secret"
        if services:
            expected.add((secret_kind, full))
        if "postgres" in services:
            expected |= {("Job", f"{full}-migrations"), (secret_kind, f"{full}-migrations")}
        if "rabbitmq" in services:
            expected.add(("Deployment", f"{full}-worker"))
        if name == "dev":  # one replica: no budget
            expected.remove(("PodDisruptionBudget", full))
        if name == "staging":
            expected.add(("HTTPRoute", full))
        if name == "prod":
            expected |= {("Ingress", full), ("HorizontalPodAutoscaler", full)}
            if renders.answers["metrics"]:
                expected |= {
                    ("ServiceMonitor", full),
                    ("PrometheusRule", full),
                    ("ConfigMap", f"{full}-dashboard"),
                }
        found = [(doc["kind"], doc["metadata"]["name"]) for doc in renders.docs[name]]
        assert sorted(found) == sorted(expected), name
        for doc in renders.docs[name]:
            assert doc["metadata"]["namespace"] == NAMESPACE
            labels = doc["metadata"]["labels"]
            assert labels["app.kubernetes.io/name"] == renders.answers["project_slug"]
            assert labels["app.kubernetes.io/instance"] == RELEASE
            assert labels["app.kubernetes.io/managed-by"] == "Helm"
            assert "app.kubernetes.io/version" in labels
            assert "helm.sh/chart" in labels


def test_service_monitor_scrapes_the_metrics_port(renders: Renders) -> None:
    monitors = [doc for doc in renders.docs["prod"] if doc["kind"] == "ServiceMonitor"]
    if not renders.answers["metrics"]:
        assert monitors == []
        assert "serviceMonitor" not in renders.values
        return
    (monitor,) = monitors
    (service,) = [doc for doc in renders.docs["prod"] if doc["kind"] == "Service"]
    assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    spec = monitor["spec"]
    assert set(spec) == {"selector", "namespaceSelector", "endpoints"}
    assert spec["selector"]["matchLabels"] == service["spec"]["selector"]
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    for key in ("interval", "scrapeTimeout"):
        assert re.fullmatch(r"[0-9]+(ms|s|m|h)", endpoint[key]), endpoint
    assert monitor["metadata"]["labels"]["release"] == "prometheus"


def test_metrics_port_and_shared_directory_are_wired(renders: Renders) -> None:
    """The master's metrics port is exposed end to end; the workers' metrics files live on an
    emptyDir in memory (the root file system stays read-only)."""
    for name in VALUES:
        docs = renders.docs[name]
        full = fullname(renders)
        (config,) = [d for d in docs if (d["kind"], d["metadata"]["name"]) == ("ConfigMap", full)]
        (service,) = [doc for doc in docs if doc["kind"] == "Service"]
        name_of_web = fullname(renders)
        (web,) = [
            d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name_of_web
        ]
        (container,) = web["spec"]["template"]["spec"]["containers"]
        ports = {port["name"]: port for port in container["ports"]}
        if not renders.answers["metrics"]:
            assert "metrics" not in ports
            assert "METRICS_PORT" not in config["data"]
            assert "metricsPort" not in renders.values
            continue
        port = renders.values["metricsPort"]
        assert ports["metrics"]["containerPort"] == port
        assert config["data"]["METRICS_PORT"] == str(port)
        assert {"name": "metrics", "port": port, "targetPort": "metrics", "protocol": "TCP"} in (
            service["spec"]["ports"]
        )
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["metrics"] == config["data"]["METRICS_DIR"]
        volumes = {v["name"]: v for v in web["spec"]["template"]["spec"]["volumes"]}
        assert volumes["metrics"]["emptyDir"]["medium"] == "Memory"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        policies = [doc for doc in docs if doc["kind"] == "NetworkPolicy"]
        for policy in policies:
            allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
            assert "metrics" in allowed


# --- custom resources against their CRD schemas ------------------------------------------


def crd_validate(renders: Renders, docs: dict[str, list[dict[str, Any]]]) -> Any:
    """Run crd-validate (scripts/tools/crd-validate.mjs) over each label's `docs`."""
    files = []
    for label, manifests in docs.items():
        instance = renders.workdir / f"crd-{label}.json"
        instance.write_text(json.dumps(manifests), encoding="utf-8")
        files.append(str(instance))
    return renders.project.run(chart_tool("crd-validate"), *files, check=False)


def test_custom_resources_validate_against_their_crd_schemas(renders: Renders) -> None:
    result = crd_validate(renders, renders.docs)
    assert result.returncode == 0, result.stdout + result.stderr
    custom = [doc for name in VALUES for doc in renders.docs[name] if doc["kind"] in CUSTOM_KINDS]
    assert sorted(result.stdout.splitlines()) == sorted(
        f"ok {doc['kind']}/{doc['metadata']['name']}" for doc in custom
    ), result.stdout


def test_routes_lead_only_to_the_http_port(renders: Renders) -> None:
    """The Ingress (prod) and the HTTPRoute (staging) reach the Service's `http` port only:
    never an internal one such as the metrics port."""
    routed = set()
    for name in VALUES:
        docs = renders.docs[name]
        (service,) = [d for d in docs if d["kind"] == "Service"]
        http = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "http")
        target = service["metadata"]["name"]
        for doc in docs:
            if doc["kind"] == "Ingress":
                backends = [
                    path["backend"]["service"]
                    for rule in doc["spec"]["rules"]
                    for path in rule["http"]["paths"]
                ]
                assert backends, name
                assert all(b == {"name": target, "port": {"name": "http"}} for b in backends)
                routed.add((name, "Ingress"))
            elif doc["kind"] == "HTTPRoute":
                refs = [ref for rule in doc["spec"]["rules"] for ref in rule["backendRefs"]]
                assert refs, name
                assert all(ref == {"name": target, "port": http} for ref in refs), refs
                routed.add((name, "HTTPRoute"))
    assert routed == {("staging", "HTTPRoute"), ("prod", "Ingress")}


# --- checkov -----------------------------------------------------------------------------


def test_checkov_reports_no_failed_check(renders: Renders) -> None:
    checkov = chart_tool("checkov")
    helm = chart_tool("helm")
    scan = checkov_scan_dir(renders)
    env = {
        # checkov's helm framework runs `helm template` from PATH and passes (exit 0, "no
        # runners") when there is none: put .tools/bin first and check it scanned below.
        "PATH": os.pathsep.join([str(Path(helm).parent), os.environ.get("PATH", "")]),
        "HELM_NAMESPACE": NAMESPACE,
    }
    result = renders.project.run(
        checkov,
        "--skip-download",
        "--framework",
        "kubernetes",
        "helm",
        "--directory",
        str(scan),
        "--output",
        "json",
        env=env,
        check=False,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    by_type = {report["check_type"]: report for report in reports}
    assert set(by_type) == {"kubernetes", "helm"}, f"frameworks that ran: {sorted(by_type)}"

    for framework, report in by_type.items():
        summary = report["summary"]
        failed = report["results"]["failed_checks"]
        assert summary["failed"] == 0, [
            (f["check_id"], f["check_name"], f["resource"], f["file_path"]) for f in failed
        ]
        assert summary["parsing_errors"] == 0, framework
        assert summary["passed"] > 100, f"{framework} checked almost nothing: {summary}"
        for skipped in report["results"]["skipped_checks"]:
            assert skipped["check_id"] in ALLOWED_SKIPS, skipped["check_id"]
            reason = skipped["check_result"].get("suppress_comment") or ""
            assert len(reason) > 20, skipped

    # Both renders and both copies of the chart were scanned, each with its workloads.
    scanned: dict[str, set[str]] = {"kubernetes": set(), "helm": set()}
    for framework, report in by_type.items():
        for key in ("passed_checks", "skipped_checks"):
            for check in report["results"][key]:
                scanned[framework].add(check["file_path"] + " " + check["resource"].split(".")[0])
    for name in VALUES:
        assert f"/rendered/{name}.yaml Deployment" in scanned["kubernetes"], name
        assert f"/{name}/{renders.slug}/templates/deployment.yaml Deployment" in scanned["helm"]
        assert f"/{name}/{renders.slug}/templates/tests/test-ready.yaml Pod" in scanned["helm"]


# --- Pod Security "restricted" ---------------------------------------------------------


def test_every_pod_spec_meets_the_restricted_profile(renders: Renders) -> None:
    for name in VALUES:
        specs = pod_specs(renders.docs[name])
        kinds = Counter(kind for kind, _, _ in specs)
        services = renders.answers["services"]
        assert kinds == Counter(
            Deployment=1 + ("rabbitmq" in services), Job="postgres" in services, Pod=1
        ), name
        for kind, object_name, spec in specs:
            where = f"{name}: {kind} {object_name}"
            assert_restricted(spec, where)
            assert spec["automountServiceAccountToken"] is False, where
            tmp_volumes = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
            for container in spec["containers"]:
                mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
                assert mounts.get("/tmp") in tmp_volumes, f"{where}: no emptyDir on /tmp"
                resources = container["resources"]
                for part in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(resources[part]), f"{where}: {part}"


def assert_restricted(spec: dict[str, Any], where: str) -> None:
    """The fields Pod Security "restricted" (and our image's uid/gid) require of a pod spec."""
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True, where
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        assert pod[key] == UID, f"{where}: {key}"
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
    for host in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"):
        assert host not in spec or (spec[host] is (host == "hostUsers")), f"{where}: {host}"
    allowed_volumes = {"configMap", "downwardAPI", "emptyDir", "projected", "secret"}
    for volume in spec.get("volumes", []):
        assert set(volume) - {"name"} <= allowed_volumes, f"{where}: volume {volume}"
    containers = spec["containers"] + spec.get("initContainers", [])
    assert containers, where
    for container in containers:
        at = f"{where} container {container['name']}"
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False, at
        assert ctx["readOnlyRootFilesystem"] is True, at
        assert ctx["runAsNonRoot"] is True, at
        assert ctx["runAsUser"] == UID, at
        assert ctx.get("privileged", False) is False, at
        assert ctx["capabilities"] == {"drop": ["ALL"]}, at
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, at
        assert all("hostPort" not in port for port in container.get("ports", [])), at


def test_app_pods_probe_drain_and_stop_in_time(renders: Renders) -> None:
    """Probes on the health endpoints via the named port, a preStop pause that runs on any
    Kubernetes version, and a grace period covering pause + drain + graceful shutdown."""
    port = renders.answers["port"]
    for name in VALUES:
        docs = renders.docs[name]
        config = settings_config_map(renders, docs)
        app = next(
            doc
            for doc in docs
            if doc["kind"] == "Deployment" and doc["metadata"]["name"] == fullname(renders)
        )
        assert "version" not in json.dumps(app["spec"]["selector"])
        assert "helm.sh/chart" not in app["spec"]["selector"]["matchLabels"]
        annotations = app["spec"]["template"]["metadata"]["annotations"]
        assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/config"])
        assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/secret"])
        spec = app["spec"]["template"]["spec"]
        assert spec["topologySpreadConstraints"], name
        (container,) = spec["containers"]
        expected = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        if renders.answers["metrics"]:
            metrics_port = renders.values["metricsPort"]
            expected.append({"name": "metrics", "containerPort": metrics_port, "protocol": "TCP"})
        assert container["ports"] == expected
        assert config["PORT"] == str(port)
        for probe, path in [
            ("startupProbe", "/health/startup"),
            ("livenessProbe", "/health/live"),
            ("readinessProbe", "/health/ready"),
        ]:
            assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe
        assert container["readinessProbe"]["timeoutSeconds"] > float(config["HEALTH_CHECK_TIMEOUT"])
        command = container["lifecycle"]["preStop"]["exec"]["command"]
        assert command == ["sleep", command[1]], command
        needed = int(command[1]) + float(config["DRAIN_SECONDS"]) + int(config["SHUTDOWN_TIMEOUT"])
        assert spec["terminationGracePeriodSeconds"] >= needed + 1
        assert "command" not in container, "the image's entry point runs the app"
        assert "args" not in container, "the image's entry point runs the app"


# --- ConfigMap, Secret and the app's settings --------------------------------------------

URLS = {name: entry["env"] for name, entry in CATALOG.items()}
RESILIENCE_KNOBS = (
    "RETRY_ATTEMPTS",
    "RETRY_BACKOFF_BASE",
    "RETRY_BACKOFF_CAP",
    "BREAKER_FAILURE_THRESHOLD",
    "BREAKER_RESET_TIMEOUT",
)
OUTBOX_KNOBS = (
    "OUTBOX_RELAY_INTERVAL",
    "OUTBOX_RELAY_BATCH",
    "PROCESSED_EVENTS_RETENTION_HOURS",
)


def test_config_and_secret_carry_the_settings_the_app_reads(renders: Renders) -> None:
    settings = (renders.project.path / "src" / renders.package / "core" / "settings.py").read_text()
    wanted_secrets = {URLS[s] for s in renders.answers["services"]}
    for name in VALUES:
        docs = renders.docs[name]
        config = settings_config_map(renders, docs)
        services = renders.answers["services"]
        assert set(config) == {
            "SERVICE_NAME",
            "ENVIRONMENT",
            "HOST",
            "PORT",
            "WEB_CONCURRENCY",
            "LOG_LEVEL",
            "DRAIN_SECONDS",
            "SHUTDOWN_TIMEOUT",
            "HEALTH_CHECK_TIMEOUT",
            "MAX_BODY_BYTES",
            "REQUEST_READ_TIMEOUT",
            *(RESILIENCE_KNOBS if services else ()),
            *(OUTBOX_KNOBS if {"postgres", "rabbitmq"} <= set(services) else ()),
            *(c["env"] for s in services for c in CATALOG[s]["chart_config"]),
            *(["METRICS_PORT", "METRICS_DIR"] if renders.answers["metrics"] else []),
            *(["DOCS_ENABLED"] if renders.answers["framework"] == "fastapi" else []),
        }
        if renders.answers["framework"] == "fastapi":
            # The docs are served on the internal metrics port only: off unless asked for,
            # and always off without that port.
            wanted = renders.answers["metrics"] and name == "dev"
            assert config["DOCS_ENABLED"] == str(wanted).lower(), name
        for key in config:
            assert re.search(rf"^\s+{key.lower()}: ", settings, re.M), f"Settings lacks {key}"
        assert config["MAX_BODY_BYTES"].isdigit()  # an integer, not YAML's float 1.048576e+06
        secrets = secret_keys(docs, hook=False)
        assert set(secrets) <= {fullname(renders)}, secrets
        assert set(secrets.get(fullname(renders), set())) == wanted_secrets
        for kind, object_name, spec in pod_specs(docs):
            if kind == "Pod":
                continue
            (container,) = spec["containers"]
            refs = {
                e["name"]: e["valueFrom"]["secretKeyRef"]
                for e in container.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})
            }
            assert set(refs) == wanted_secrets, object_name
            assert all(ref["key"] == env for env, ref in refs.items())
            if kind == "Job":  # the pre-install hook reads its own hook Secret, same keys
                ((hook_secret, hook_keys),) = secret_keys(docs, hook=True).items()
                assert hook_keys == wanted_secrets
                assert {ref["name"] for ref in refs.values()} == {hook_secret}
                continue
            assert container["envFrom"] == [{"configMapRef": {"name": fullname(renders)}}]


def settings_config_map(renders: Renders, docs: list[dict[str, Any]]) -> dict[str, str]:
    """The data of the ConfigMap holding the service's settings (not the dashboard's)."""
    name = fullname(renders)
    return dict(
        next(d for d in docs if (d["kind"], d["metadata"]["name"]) == ("ConfigMap", name))["data"]
    )


def secret_keys(docs: list[dict[str, Any]], *, hook: bool) -> dict[str, set[str]]:
    """Name -> keys of the Secrets the release makes: its own Secret objects, or the target
    Secrets of its ExternalSecrets (hook: only the Helm hook ones, else only the others)."""
    found: dict[str, set[str]] = {}
    for doc in docs:
        if hook != ("helm.sh/hook" in doc["metadata"].get("annotations", {})):
            continue
        if doc["kind"] == "Secret":
            found[doc["metadata"]["name"]] = set(doc["data"])
        elif doc["kind"] == "ExternalSecret":
            found[doc["spec"]["target"]["name"]] = {d["secretKey"] for d in doc["spec"]["data"]}
    return found


def test_worker_and_migration_run_the_package_entry_points(renders: Renders) -> None:
    services, package = renders.answers["services"], renders.package
    for name in VALUES:
        specs = {(kind, n): spec for kind, n, spec in pod_specs(renders.docs[name])}
        full = fullname(renders)
        if "rabbitmq" in services:
            (worker,) = specs["Deployment", f"{full}-worker"]["containers"]
            assert worker["command"] == [*INIT, "python", "-m", f"{package}.worker"]
        if "postgres" in services:
            job_spec = specs["Job", f"{full}-migrations"]
            (migrate,) = job_spec["containers"]
            assert migrate["command"] == [*INIT, "python", "-m", package, "migrate"]
            assert job_spec["restartPolicy"] == "Never"
            job = next(doc for doc in renders.docs[name] if doc["kind"] == "Job")
            hooks = job["metadata"]["annotations"]
            assert hooks["helm.sh/hook"] == "pre-install,pre-upgrade"
            secret = next(
                doc
                for doc in renders.docs[name]
                if doc["metadata"]["name"] == f"{full}-migrations"
                and doc["kind"] in {"Secret", "ExternalSecret"}
            )
            secret_hooks = secret["metadata"]["annotations"]
            assert int(secret_hooks["helm.sh/hook-weight"]) < int(hooks["helm.sh/hook-weight"])
        (test_pod,) = specs["Pod", f"{full}-test-ready"]["containers"]
        assert test_pod["command"][0] == "python"
        assert "/health/ready" in test_pod["command"][-1]


def test_network_policy_allows_the_app_port_dns_and_the_chosen_services(
    renders: Renders,
) -> None:
    ports = {name: entry["port"] for name, entry in CATALOG.items()}
    for name in VALUES:
        (policy,) = [doc for doc in renders.docs[name] if doc["kind"] == "NetworkPolicy"]
        spec = policy["spec"]
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        ingress, *scrape = spec["ingress"]
        assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
        if renders.answers["metrics"]:  # only Prometheus's namespace reaches the metrics port
            namespace = renders.values["networkPolicy"]["prometheusNamespace"]
            assert scrape == [
                {
                    "ports": [{"port": "metrics", "protocol": "TCP"}],
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": namespace}
                            }
                        }
                    ],
                }
            ]
            assert namespace == "monitoring"
            peers = str(ingress.get("from"))
            assert namespace not in peers, "the monitoring namespace reaches only `metrics`"
        else:
            assert scrape == []
        egress_ports = [p["port"] for rule in spec["egress"] for p in rule.get("ports", [])]
        assert egress_ports.count(53) == 2  # UDP and TCP
        assert sorted(p for p in egress_ports if isinstance(p, int) and p != 53) == sorted(
            ports[s] for s in renders.answers["services"]
        )
        # every pod of the release is selected (app, worker, hook Job, test pod)
        selector = spec["podSelector"]["matchLabels"]
        for kind, object_name, _spec in pod_specs(renders.docs[name]):
            labels = pod_labels(renders.docs[name], kind, object_name)
            assert selector.items() <= labels.items(), object_name
        # the helm test pod may call the app, however narrow ingressFrom is
        test_pod = pod_labels(renders.docs[name], "Pod", f"{fullname(renders)}-test-ready")
        peers = ingress.get("from")
        assert peers is None or any(
            set(peer) == {"podSelector"}
            and peer["podSelector"]["matchLabels"].items() <= test_pod.items()
            for peer in peers
        ), peers
        if name in {"staging", "prod"}:
            assert peers, f"{name} values limit who may call the app"


def pod_labels(docs: list[dict[str, Any]], kind: str, object_name: str) -> dict[str, str]:
    doc = next(d for d in docs if (d["kind"], d["metadata"]["name"]) == (kind, object_name))
    if kind == "Pod":
        return dict(doc["metadata"]["labels"])
    return dict(doc["spec"]["template"]["metadata"]["labels"])


# --- values.yaml and values.schema.json ------------------------------------------------


def test_values_and_schema_do_not_drift(renders: Renders) -> None:
    """Every closed object of the schema has exactly the keys values.yaml has, all required;
    every value is documented with a helm-docs `# --` comment; the values validate."""
    schema = json.loads((renders.chart / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    problems: list[str] = []
    compare(renders.values, schema, schema, "", problems)
    assert not problems, "\n".join(problems)
    assert not undocumented_keys((renders.chart / "values.yaml").read_text())
    # Helm validates the merged values; so does this, for the defaults and each environment.
    check = chart_tool("check-jsonschema")
    schema_file = str(renders.chart / "values.schema.json")
    instances = []
    for name, values in VALUES.items():
        merged = renders.values
        if values:
            merged = merge(merged, yaml.safe_load((renders.chart / values).read_text()))
        instance = renders.workdir / f"{name}-values.json"
        instance.write_text(json.dumps(merged))
        instances.append(str(instance))
    renders.project.run(check, "--schemafile", schema_file, *instances)


def compare(
    value: Any, node: dict[str, Any], root: dict[str, Any], path: str, problems: list[str]
) -> None:
    node = resolve(node, root)
    if not isinstance(value, dict) or node.get("additionalProperties") is not False:
        return
    properties = node.get("properties", {})
    keys, known = set(value), set(properties)
    if keys - known:
        problems.append(f"{path or '.'}: in values.yaml, not in the schema: {sorted(keys - known)}")
    if known - keys:
        problems.append(f"{path or '.'}: in the schema, not in values.yaml: {sorted(known - keys)}")
    if set(node.get("required", [])) != keys:
        problems.append(f"{path or '.'}: required {node.get('required')} != keys {sorted(keys)}")
    for key in keys & known:
        compare(value[key], properties[key], root, f"{path}.{key}", problems)


def resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def undocumented_keys(text: str) -> list[str]:
    """Leaf keys of values.yaml without a `# --` comment above them (keys inside a documented
    parent or inside a list are part of that documented value)."""
    missing: list[str] = []
    documented = False  # the comment block just above holds a `# --` line
    ancestors: list[tuple[int, bool]] = []  # (indent, exempt) of the enclosing keys
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            documented = False
            continue
        if stripped.startswith("#"):
            documented = documented or stripped.startswith("# --")
            continue
        indent = len(line) - len(line.lstrip(" "))
        while ancestors and ancestors[-1][0] >= indent:
            ancestors.pop()
        exempt = any(exempt for _, exempt in ancestors)
        match = re.match(r"( *)([A-Za-z_][\w-]*):(.*)$", line)
        if stripped.startswith("-"):
            ancestors.append((indent, True))
        elif match:
            if not exempt and not documented and match[3].strip():
                missing.append(match[2])
            ancestors.append((indent, exempt or documented))
        documented = False
    return missing


def test_schema_rejects_unknown_and_wrong_values(renders: Renders) -> None:
    helm = chart_tool("helm3")
    for bad in ("unknownKey=1", "image.unknown=x", "config.logLevel=LOUD", "containerPort=80"):
        result = renders.project.run(
            helm, "template", RELEASE, str(renders.chart), "--set", bad, check=False
        )
        assert result.returncode != 0, f"--set {bad} was accepted"
        assert "schema" in result.stderr.lower(), result.stderr


# --- options one combination is enough for ---------------------------------------------


def test_existing_secret_and_grace_period_guard(project: ProjectFactory) -> None:
    answers = next(a for a in COMBOS if set(a["services"]) == {"postgres", "redis", "rabbitmq"})
    renders = render_chart(project(answers, install=False))
    helm = chart_tool("helm3")
    full = fullname(renders)
    out = renders.project.run(
        helm,
        "template",
        RELEASE,
        str(renders.chart),
        "--namespace",
        NAMESPACE,
        "--set",
        "existingSecret=managed-elsewhere",
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert not [d for d in docs if d["kind"] == "Secret"], "existingSecret: the chart makes none"
    for kind, object_name, spec in pod_specs(docs):
        for env in spec["containers"][0].get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == "managed-elsewhere", (kind, object_name)
    assert full

    result = renders.project.run(
        helm,
        "template",
        RELEASE,
        str(renders.chart),
        "--set",
        "terminationGracePeriodSeconds=10",
        check=False,
    )
    assert result.returncode != 0
    assert "terminationGracePeriodSeconds (10) must cover" in result.stderr


def test_routes_and_external_secrets_options(project: ProjectFactory) -> None:
    """HTTPRoute or Ingress (never both), ExternalSecret (never with existingSecret), their
    rendering, and misspelt fields refused by the CRD schemas."""
    answers = next(a for a in COMBOS if set(a["services"]) == {"postgres", "redis"})
    renders = render_chart(project(answers, install=False))
    helm = chart_tool("helm3")
    full = fullname(renders)

    def template(*sets: str, check: bool = True) -> Any:
        args = [helm, "template", RELEASE, str(renders.chart), "--namespace", NAMESPACE]
        for item in sets:
            args += ["--set", item]
        return renders.project.run(*args, check=check)

    external = ("externalSecret.enabled=true", "externalSecret.secretStoreRef.name=s")
    refused = {
        ("ingress.enabled=true", "httpRoute.enabled=true"): "not both",
        (*external, "existingSecret=a"): ("not both"),
        ("externalSecret.enabled=true",): "needs externalSecret.secretStoreRef.name",
        ("httpRoute.paths[0].type=Prefix",): "schema",
        ("externalSecret.secretStoreRef.kind=Store",): "schema",
        ("externalSecret.refreshInterval=hourly",): "schema",
    }
    for sets, message in refused.items():
        result = template(*sets, check=False)
        assert result.returncode != 0, sets
        assert message in result.stderr, result.stderr

    out = template(
        "httpRoute.enabled=true",
        "httpRoute.hostnames={a.example.com,b.example.com}",
        "externalSecret.enabled=true",
        "externalSecret.secretStoreRef.name=vault",
        "externalSecret.remoteKeys.REDIS_URL=cache/url",
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert not [d for d in docs if d["kind"] == "Secret"], "the ExternalSecret makes the Secrets"
    (route,) = [d for d in docs if d["kind"] == "HTTPRoute"]
    (service,) = [d for d in docs if d["kind"] == "Service"]
    assert route["spec"]["hostnames"] == ["a.example.com", "b.example.com"]
    (rule,) = route["spec"]["rules"]
    http_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "http")
    assert rule["backendRefs"] == [{"name": full, "port": http_port}]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    externals = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ExternalSecret"}
    assert set(externals) == {full, f"{full}-migrations"}
    for name, external in externals.items():
        spec = external["spec"]
        assert spec["secretStoreRef"] == {"name": "vault", "kind": "ClusterSecretStore"}
        assert spec["target"] == {"name": name, "creationPolicy": "Owner"}
        remote = {d["secretKey"]: d["remoteRef"]["key"] for d in spec["data"]}
        assert remote == {"DATABASE_URL": "database-url", "REDIS_URL": "cache/url"}
    hooks = externals[f"{full}-migrations"]["metadata"]["annotations"]
    assert hooks["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "helm.sh/hook" not in externals[full]["metadata"].get("annotations", {})
    for kind, object_name, spec in pod_specs(docs):
        refs = [
            e["valueFrom"]["secretKeyRef"]
            for e in spec["containers"][0].get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        ]
        assert kind == "Pod" or refs, (kind, object_name)
        assert all(ref["name"] in externals for ref in refs), (kind, object_name)
    assert crd_validate(renders, {"options": docs}).returncode == 0

    # A misspelt field (or a value outside an enum) fails the CRD schema check.
    broken: list[tuple[str, Any]] = [
        ("HTTPRoute", lambda d: d["spec"]["parentRefs"][0].update(sectionNmae="https")),
        ("HTTPRoute", lambda d: d["spec"]["rules"][0].update(backendRef=[])),
        ("HTTPRoute", lambda d: d["spec"]["rules"][0]["matches"][0]["path"].update(type="Prefix")),
        ("ExternalSecret", lambda d: d["spec"]["secretStoreRef"].update(knd="SecretStore")),
        ("ExternalSecret", lambda d: d["spec"]["data"][0]["remoteRef"].update(propery="x")),
        ("ExternalSecret", lambda d: d["spec"]["target"].update(creationPolicy="Always")),
    ]
    for index, (kind, spoil) in enumerate(broken):
        doc = json.loads(json.dumps(next(d for d in docs if d["kind"] == kind)))
        spoil(doc)
        result = crd_validate(renders, {f"broken-{index}": [doc]})
        assert result.returncode == 1, (kind, index, result.stdout)
        assert result.stdout.startswith(f"FAIL {kind}/"), result.stdout
