"""Probe and lifecycle handlers as the kubelet runs them: httpGet, tcpSocket, exec, sleep."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Attempt", "Handler", "ProbeSettings", "resolve_port"]

#: The pod's IP, as far as this machine is concerned.
POD_HOST = "127.0.0.1"


class Executor(Protocol):
    def exec(self, argv: list[str], *, timeout: float) -> Any: ...


@dataclass
class Attempt:
    """One probe or hook call."""

    ok: bool
    detail: str
    refused: bool = False


@dataclass
class ProbeSettings:
    """A probe's timing, with Kubernetes' defaults."""

    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    failure_threshold: int = 3

    @classmethod
    def of(cls, probe: Mapping[str, Any]) -> ProbeSettings:
        return cls(
            initial_delay=float(probe.get("initialDelaySeconds", 0)),
            period=float(probe.get("periodSeconds", 10)),
            timeout=float(probe.get("timeoutSeconds", 1)),
            failure_threshold=int(probe.get("failureThreshold", 3)),
        )

    def describe(self) -> str:
        return (
            f"period {self.period:g}s, timeout {self.timeout:g}s, "
            f"failureThreshold {self.failure_threshold}"
        )


class PortError(ValueError):
    """A probe names a port the container does not declare."""


def resolve_port(port: Any, named_ports: Mapping[str, int]) -> int:
    """A number, or the name of one of the container's ports (IANA_SVC_NAME)."""
    if isinstance(port, int):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    if text not in named_ports:
        declared = ", ".join(f"{k}={v}" for k, v in named_ports.items()) or "none"
        raise PortError(
            f"port {text!r} is not a named port of the container (declared: {declared})"
        )
    return named_ports[text]


class Handler:
    """A probe or a lifecycle handler (`exec`, `httpGet`, `tcpSocket`, `sleep`)."""

    def __init__(self, spec: Mapping[str, Any], named_ports: Mapping[str, int]) -> None:
        self.spec = spec
        self.kind = next(
            (k for k in ("exec", "httpGet", "tcpSocket", "grpc", "sleep") if k in spec), ""
        )
        self.port = 0
        if self.kind in {"httpGet", "tcpSocket", "grpc"}:
            self.port = resolve_port(spec[self.kind].get("port"), named_ports)
        self.port_label = str(spec.get(self.kind, {}).get("port", "")) if self.kind else ""

    def describe(self) -> str:
        body = self.spec.get(self.kind) or {}
        if self.kind == "httpGet":
            named = "" if self.port_label == str(self.port) else f"{self.port_label}="
            return f"GET :{named}{self.port}{body.get('path', '/')}"
        if self.kind == "tcpSocket":
            return f"TCP :{self.port}"
        if self.kind == "exec":
            return "exec " + " ".join(body.get("command") or [])
        if self.kind == "sleep":
            return f"sleep {body.get('seconds')}s"
        return self.kind or "no handler"

    def run(self, timeout: float, container: Executor) -> Attempt:
        body = self.spec.get(self.kind) or {}
        if self.kind == "httpGet":
            return _http_get(body, self.port, timeout)
        if self.kind == "tcpSocket":
            host = str(body.get("host") or POD_HOST)
            try:
                with socket.create_connection((host, self.port), timeout=timeout):
                    return Attempt(True, f"connected to {host}:{self.port}")
            except ConnectionRefusedError:
                return Attempt(False, f"connection refused on {host}:{self.port}", refused=True)
            except OSError as error:
                return Attempt(False, f"{host}:{self.port}: {error}")
        if self.kind == "exec":
            command = [str(part) for part in body.get("command") or []]
            if not command:
                return Attempt(False, "exec handler without a command")
            try:
                done = container.exec(command, timeout=timeout)
            except TimeoutError:
                return Attempt(False, f"{command} timed out after {timeout:g}s")
            except Exception as error:  # subprocess.TimeoutExpired and friends
                return Attempt(False, f"{command}: {error}")
            output = (done.stdout + done.stderr).strip().splitlines()
            last = f": {output[-1].strip()}" if output else ""
            if done.returncode == 0:
                return Attempt(True, f"exit 0{last}")
            return Attempt(False, f"{' '.join(command)} exited {done.returncode}{last}")
        if self.kind == "sleep":
            time.sleep(float(body.get("seconds", 0)))
            return Attempt(True, f"slept {body.get('seconds')}s")
        return Attempt(False, f"{self.kind or 'empty'} handler is not supported by the rehearsal")


def _http_get(body: Mapping[str, Any], port: int, timeout: float) -> Attempt:
    host = str(body.get("host") or POD_HOST)
    path = str(body.get("path") or "/")
    scheme = str(body.get("scheme") or "HTTP").upper()
    url = f"{scheme.lower()}://{host}:{port}{path}"
    headers = {"User-Agent": "kube-probe/1.33", "Accept": "*/*"}
    for header in body.get("httpHeaders") or []:
        headers[str(header.get("name"))] = str(header.get("value"))
    connection_class = (
        http.client.HTTPSConnection if scheme == "HTTPS" else http.client.HTTPConnection
    )
    connection = connection_class(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers)
        status = connection.getresponse().status
    except ConnectionRefusedError:
        return Attempt(False, f"GET {url}: connection refused", refused=True)
    except TimeoutError:
        return Attempt(False, f"GET {url}: no answer within {timeout:g}s")
    except OSError as error:
        return Attempt(False, f"GET {url}: {error}")
    except http.client.HTTPException as error:
        return Attempt(False, f"GET {url}: {type(error).__name__} {error}")
    finally:
        connection.close()
    # The kubelet counts 200-399 as success (a redirect elsewhere is not followed).
    return Attempt(200 <= status < 400, f"GET {url} -> {status}")
