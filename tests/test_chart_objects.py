"""The objects the generated Helm chart renders and how they are wired, for every combination.

For the chart's default values and each environment's values file: which objects are rendered
with which labels, the ServiceMonitor and the metrics port, the routes (Ingress, HTTPRoute) to the
`http` port only, and the NetworkPolicy. Renders: tests/chart_support.py.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from .chart_support import NAMESPACE, RELEASE, VALUES, Renders, fullname, pod_specs
from .support import CATALOG

pytestmark = pytest.mark.e2e


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
