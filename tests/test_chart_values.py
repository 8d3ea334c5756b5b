"""The values of the generated Helm chart: values.yaml against values.schema.json, and the
options one combination is enough for (existingSecret, the grace-period guard, HTTPRoute or
Ingress, ExternalSecret). Renders: tests/chart_support.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from .chart_support import (
    NAMESPACE,
    RELEASE,
    VALUES,
    Renders,
    chart_tool,
    crd_validate,
    fullname,
    merge,
    pod_specs,
    render_chart,
)
from .conftest import ProjectFactory
from .support import SERVICES, matrix

pytestmark = pytest.mark.e2e

COMBOS = matrix()


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
    answers = next(a for a in COMBOS if set(a["services"]) == set(SERVICES))  # every secret
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
