"""Probe and lifecycle handlers, run as the kubelet runs them (svcgen/probes.py)."""

from __future__ import annotations

import socket

import pytest
from svcgen.rehearse.probes import Handler, PortError


def test_probe_ports_resolve_by_name_and_unknown_names_fail() -> None:
    handler = Handler({"httpGet": {"path": "/health/live", "port": "http"}}, {"http": 8000})
    assert (handler.port, handler.describe()) == (8000, "GET :http=8000/health/live")
    with pytest.raises(PortError, match="'web' is not a named port of the container"):
        Handler({"tcpSocket": {"port": "web"}}, {"http": 8000})


def test_http_probe_counts_2xx_and_3xx_as_success_and_names_refusals() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        attempt = Handler({"httpGet": {"port": port}}, {}).run(1, container=None)  # type: ignore[arg-type]
    assert not attempt.ok
    assert attempt.refused
    assert f"127.0.0.1:{port}/: connection refused" in attempt.detail
