"""The environment of a container, built as the kubelet builds it (svcgen/kubeenv.py)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from svcgen.rehearse.env import ConfigObjects, EnvError, PodFacts, build_env, expand

OBJECTS = [
    {"kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"PORT": "8000", "HOST": "0.0.0.0"}},
    {
        "kind": "Secret",
        "metadata": {"name": "sec"},
        "data": {"TOKEN": base64.b64encode(b"s3cret").decode(), "OLD": "b2xk"},
        "stringData": {"OLD": "new"},
    },
]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    objects = ConfigObjects.from_manifests(OBJECTS, "apps")
    return build_env(container, objects, PodFacts(name="web-0", namespace="apps")).values


def test_env_from_values_refs_and_expansion() -> None:
    env = env_of(
        {
            "envFrom": [
                {"configMapRef": {"name": "cfg"}},
                {"secretRef": {"name": "sec"}, "prefix": "S_"},
            ],
            "env": [
                {"name": "PORT", "value": "9000"},  # env wins over envFrom
                {"name": "URL", "value": "http://$(HOST):$(PORT)/$(NOPE)$$(HOST)"},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "TOKEN"}}},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {
                    "name": "GONE",
                    "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "X", "optional": True}},
                },
            ],
        }
    )
    assert env["PORT"] == "9000"
    assert env["URL"] == "http://0.0.0.0:9000/$(NOPE)$(HOST)"
    assert env["TOKEN"] == "s3cret"  # base64-decoded
    assert env["S_OLD"] == "new"  # stringData wins over data
    assert (env["POD"], env["NS"]) == ("web-0", "apps")
    assert "GONE" not in env


def test_resource_field_ref_rounds_up() -> None:
    env = env_of(
        {
            "resources": {"limits": {"cpu": "1500m", "memory": "512Mi"}},
            "env": [
                {"name": "CPUS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                {
                    "name": "MEM_MI",
                    "valueFrom": {
                        "resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}
                    },
                },
            ],
        }
    )
    assert (env["CPUS"], env["MEM_MI"]) == ("2", "512")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"name": "T", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
            "couldn't find key token in Secret apps/sec",
        ),
        (
            {"name": "T", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "T"}}},
            'secret "nope" not found',
        ),
        (
            {"name": "P", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "port"}}},
            "couldn't find key port in ConfigMap apps/cfg",
        ),
    ],
)
def test_missing_keys_are_errors_as_in_kubernetes(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(EnvError, match=message):
        env_of({"env": [entry]})


def test_missing_envfrom_source_is_an_error_unless_optional() -> None:
    with pytest.raises(EnvError, match='configmap "other" not found'):
        env_of({"envFrom": [{"configMapRef": {"name": "other"}}]})
    assert env_of({"envFrom": [{"configMapRef": {"name": "other", "optional": True}}]}) == {}


def test_expand_leaves_unknown_and_unterminated_references() -> None:
    assert expand("$(A)-$(B)-$$-$(A", {"A": "a"}) == "a-$(B)-$-$(A"
