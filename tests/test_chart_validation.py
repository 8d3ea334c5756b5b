"""The generated Helm chart, checked by real tools for every combination of answers.

For each combination, with the chart's default values and with each environment's values file
(`values-dev.yaml`, `values-staging.yaml`, `values-prod.yaml`): `helm lint --strict` on Helm v3
and v4, kubernetes-validate (strict) for Kubernetes 1.29 and 1.33, the custom resources
(HTTPRoute, ExternalSecret, ServiceMonitor) against their CRD schemas with unknown fields failing
(crd-validate), and checkov (kubernetes and helm frameworks). Every chart is rendered once per
combination and values file (tests/chart_support.py) and the renders are reused; the objects, the
pods and the values are checked in test_chart_objects.py, test_chart_pods.py and
test_chart_values.py.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest

from .chart_support import (
    CUSTOM_KINDS,
    NAMESPACE,
    VALUES,
    Renders,
    chart_tool,
    checkov_scan_dir,
    crd_validate,
)

pytestmark = pytest.mark.e2e

KUBERNETES_VERSIONS = ("1.29", "1.33")
# Checks a pod of this chart may skip, each with a one-line reason in the template.
ALLOWED_SKIPS = {
    "CKV_K8S_8",  # liveness probe: worker, migration Job and test pod serve no HTTP
    "CKV_K8S_9",  # readiness probe: same
    "CKV_K8S_35",  # secrets as env: the twelve-factor service reads its URLs from the environment
    "CKV_K8S_43",  # image digest: none exists at generation time (pinned via image.digest)
}


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


# --- custom resources against their CRD schemas ------------------------------------------


def test_custom_resources_validate_against_their_crd_schemas(renders: Renders) -> None:
    result = crd_validate(renders, renders.docs)
    assert result.returncode == 0, result.stdout + result.stderr
    custom = [doc for name in VALUES for doc in renders.docs[name] if doc["kind"] in CUSTOM_KINDS]
    assert sorted(result.stdout.splitlines()) == sorted(
        f"ok {doc['kind']}/{doc['metadata']['name']}" for doc in custom
    ), result.stdout


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
