"""The pods of the generated Helm chart, for every combination and values file.

The Pod Security "restricted" fields of every pod spec, the app's probes, preStop pause and grace
period, the settings its ConfigMap and Secrets carry, and the commands of the worker, the
migration Job and the helm test pod. Renders: tests/chart_support.py.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest

from .chart_support import VALUES, Renders, fullname, pod_specs
from .support import CATALOG, INIT

pytestmark = pytest.mark.e2e

UID = 10001


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
