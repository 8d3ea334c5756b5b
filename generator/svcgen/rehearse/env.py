"""A container's environment, built from its manifest the way the kubelet builds it.

`envFrom` sources first (in order, later ones win), then `env` entries in order: plain values
with `$(VAR)` expansion over what is defined so far, `valueFrom` ConfigMap and Secret keys (a
missing object or key is an error unless `optional`), `fieldRef` and `resourceFieldRef`.
Secret `data` is base64-decoded and `stringData` wins over it, as the API server merges them.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["ConfigObjects", "EnvError", "EnvResult", "PodFacts", "build_env", "expand", "quantity"]


class EnvError(ValueError):
    """The kubelet would refuse to start the container (CreateContainerConfigError)."""


@dataclass
class ConfigObjects:
    """ConfigMaps and Secrets of the rendered release, by name, values decoded."""

    namespace: str = "default"
    configmaps: dict[str, dict[str, str]] = field(default_factory=dict)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_manifests(cls, docs: Iterable[Mapping[str, Any]], namespace: str) -> ConfigObjects:
        found = cls(namespace=namespace)
        for doc in docs:
            kind = doc.get("kind")
            name = str((doc.get("metadata") or {}).get("name", ""))
            if kind == "ConfigMap":
                data = {k: str(v) for k, v in (doc.get("data") or {}).items()}
                for key, value in (doc.get("binaryData") or {}).items():
                    data[key] = _b64(str(value), f"ConfigMap {name} binaryData.{key}")
                found.configmaps[name] = data
            elif kind == "Secret":
                data = {
                    k: _b64(str(v), f"Secret {name} data.{k}")
                    for k, v in (doc.get("data") or {}).items()
                }
                data.update({k: str(v) for k, v in (doc.get("stringData") or {}).items()})
                found.secrets[name] = data
        return found


def _b64(value: str, where: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        raise EnvError(f"{where} is not valid base64") from None


@dataclass
class PodFacts:
    """What the downward API exposes, with this machine standing in for the node."""

    name: str
    namespace: str = "default"
    uid: str = "00000000-0000-0000-0000-000000000000"
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    node_name: str = "rehearsal"
    service_account: str = "default"
    pod_ip: str = "127.0.0.1"
    host_ip: str = "127.0.0.1"

    def field(self, path: str) -> str:
        simple = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": self.node_name,
            "spec.serviceAccountName": self.service_account,
            "status.podIP": self.pod_ip,
            "status.podIPs": self.pod_ip,
            "status.hostIP": self.host_ip,
            "status.hostIPs": self.host_ip,
        }
        if path in simple:
            return simple[path]
        match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
        if match:
            source = self.labels if match.group(1) == "labels" else self.annotations
            return source.get(match.group(2), "")
        raise EnvError(f"fieldRef {path!r} is not supported by the downward API")


def expand(value: str, defined: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: unknown references stay as written, `$$` escapes."""
    out: list[str] = []
    i = 0
    while i < len(value):
        char = value[i]
        if char != "$" or i + 1 >= len(value):
            out.append(char)
            i += 1
            continue
        following = value[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            end = value.find(")", i + 2)
            if end < 0:
                out.append(value[i:])
                break
            name = value[i + 2 : end]
            out.append(defined.get(name, f"$({name})"))
            i = end + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


_SUFFIXES: dict[str, Decimal | int] = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}


def quantity(text: str | int | float) -> Decimal:
    """A Kubernetes resource quantity (`250m`, `512Mi`, `1`) as a number."""
    match = re.fullmatch(r"([0-9.eE+-]+?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?", str(text).strip())
    if not match:
        raise EnvError(f"invalid resource quantity {text!r}")
    try:
        return Decimal(match.group(1)) * Decimal(_SUFFIXES[match.group(2) or ""])
    except InvalidOperation:
        raise EnvError(f"invalid resource quantity {text!r}") from None


def _node_allocatable(resource: str) -> Decimal:
    if resource == "cpu":
        return Decimal(os.cpu_count() or 1)
    if resource == "memory":
        try:
            with open("/proc/meminfo", encoding="ascii") as meminfo:
                for line in meminfo:
                    if line.startswith("MemTotal:"):
                        return Decimal(int(line.split()[1]) * 1024)
        except OSError:
            pass
    return Decimal(0)


def _resource_field(container: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
    resource = str(ref.get("resource", ""))
    kind, _, name = resource.partition(".")
    if kind not in {"limits", "requests"} or not name:
        raise EnvError(f"resourceFieldRef {resource!r} is not supported")
    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    if kind == "limits":
        raw = limits.get(name)
        amount = quantity(raw) if raw is not None else _node_allocatable(name)
    else:
        raw = requests.get(name, limits.get(name))
        amount = quantity(raw) if raw is not None else Decimal(0)
    divisor = quantity(ref.get("divisor", "1") or "1")
    return str(math.ceil(amount / divisor))


@dataclass
class EnvResult:
    """The environment and where each variable came from (for the report)."""

    values: dict[str, str] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)


def build_env(container: Mapping[str, Any], objects: ConfigObjects, pod: PodFacts) -> EnvResult:
    """The variables Kubernetes sets for `container` (image ENV not included)."""
    result = EnvResult()
    namespace = objects.namespace
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        if "configMapRef" in source:
            ref, store, kind = source["configMapRef"], objects.configmaps, "ConfigMap"
        elif "secretRef" in source:
            ref, store, kind = source["secretRef"], objects.secrets, "Secret"
        else:
            raise EnvError(f"envFrom entry {dict(source)} has neither configMapRef nor secretRef")
        name = str(ref.get("name", ""))
        if name not in store:
            if ref.get("optional"):
                continue
            raise EnvError(f'{kind.lower()} "{name}" not found (envFrom in {namespace})')
        for key, value in store[name].items():
            if "=" in key or not key:
                continue  # the kubelet skips keys that aren't valid variable names
            result.values[prefix + key] = value
            result.origins[prefix + key] = f"{kind} {name} (envFrom)"
    for entry in container.get("env") or []:
        name = str(entry.get("name", ""))
        if "valueFrom" not in entry:
            result.values[name] = expand(str(entry.get("value", "")), result.values)
            result.origins[name] = "value"
            continue
        value_from = entry["valueFrom"] or {}
        if "configMapKeyRef" in value_from or "secretKeyRef" in value_from:
            is_secret = "secretKeyRef" in value_from
            ref = value_from["secretKeyRef" if is_secret else "configMapKeyRef"]
            store = objects.secrets if is_secret else objects.configmaps
            kind = "Secret" if is_secret else "ConfigMap"
            object_name, key = str(ref.get("name", "")), str(ref.get("key", ""))
            if object_name not in store:
                if ref.get("optional"):
                    continue
                raise EnvError(
                    f'{name}: {kind.lower()} "{object_name}" not found '
                    f"({'secretKeyRef' if is_secret else 'configMapKeyRef'})"
                )
            if key not in store[object_name]:
                if ref.get("optional"):
                    continue
                raise EnvError(
                    f"{name}: couldn't find key {key} in {kind} {namespace}/{object_name} "
                    f"(it has: {', '.join(sorted(store[object_name])) or 'no keys'})"
                )
            result.values[name] = store[object_name][key]
            result.origins[name] = f"{kind} {object_name} key {key}"
        elif "fieldRef" in value_from:
            result.values[name] = pod.field(str(value_from["fieldRef"].get("fieldPath", "")))
            result.origins[name] = "fieldRef"
        elif "resourceFieldRef" in value_from:
            result.values[name] = _resource_field(container, value_from["resourceFieldRef"])
            result.origins[name] = "resourceFieldRef"
        else:
            raise EnvError(f"{name}: unsupported valueFrom {sorted(value_from)}")
    return result
