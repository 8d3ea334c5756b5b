"""A started pod's life as the kubelet leads it: its ports, startup, liveness and readiness
probes for the probe window, then termination (preStop, SIGTERM, the grace period)."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from typing import Any

from .engine import ContainerSandbox
from .pod import Container, Pod, PodContext
from .ports import PORT_WAIT_SECONDS, port_free, port_locks
from .probes import Attempt, Handler, PortError, ProbeSettings
from .report import last_error
from .sandbox import SandboxError

#: How long a started container may take to catch SIGTERM before it is stopped. Its PID 1
#: ignores a SIGTERM that arrives earlier (as in any container), so stopping it sooner would
#: only measure how fast it boots; one that never catches it fails at termination.
SETTLE_SECONDS = 20.0


class Lifecycle:
    """Runs pods of one rehearsal; `probe_seconds` is the liveness and readiness window."""

    def __init__(self, context: PodContext, probe_seconds: float) -> None:
        self.context = context
        self.report = context.report
        self.probe_seconds = probe_seconds

    def run_deployment(self, pod: Pod, manifest: Mapping[str, Any]) -> None:
        report = self.report
        replicas = (manifest.get("spec") or {}).get("replicas", 1)
        if replicas != 1:
            report.info(pod.subject, "replicas", f"{replicas} in the chart; rehearsing one pod")
        if not pod.run_inits():
            return
        containers = pod.containers()
        if containers is None:
            return
        ports = sorted(
            {p for c in containers for p in c.named_ports.values()}
            | {
                int(p["containerPort"])
                for c in containers
                for p in c.manifest.get("ports") or []
                if p.get("containerPort")
            }
        )
        with port_locks(ports):
            began = time.monotonic()
            busy = [p for p in ports if not port_free(p)]
            while busy and time.monotonic() - began < PORT_WAIT_SECONDS:
                time.sleep(0.5)
                busy = [p for p in ports if not port_free(p)]
            if time.monotonic() - began >= 1:
                report.info(
                    pod.subject, "ports", f"waited {time.monotonic() - began:.0f}s for {ports}"
                )
            if busy:
                report.add(
                    False,
                    pod.subject,
                    "ports",
                    f"port(s) {busy} still in use on this machine after "
                    f"{PORT_WAIT_SECONDS:g}s: another process would answer the probes",
                )
                return
            try:
                self._run_pod(pod, containers)
            finally:
                for container in containers:
                    if container.sandbox is not None:
                        container.sandbox.close()

    def _run_pod(self, pod: Pod, containers: list[Container]) -> None:
        report = self.report
        for container in containers:
            container.sandbox = self.context.sandbox(container)
            try:
                container.sandbox.start()
            except SandboxError as error:
                report.add(False, container.subject, "start", str(error))
                return
            sandbox = container.sandbox
            named = (
                f"; {sandbox.engine.kind} container {sandbox.run.name}"
                if isinstance(sandbox, ContainerSandbox)
                else ""
            )
            report.add(
                True,
                container.subject,
                "start",
                f"running as PID 1 (host pid {sandbox.pid}{named})",
            )
        results = [True] * len(containers)

        def watch(index: int, container: Container) -> None:
            results[index] = self.probe(container)

        threads = [
            threading.Thread(target=watch, args=(i, c), daemon=True)
            for i, c in enumerate(containers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.terminate(pod, containers)

    # --- probes --------------------------------------------------------------------------------

    def probe(self, container: Container) -> bool:
        """Startup probe, then liveness and readiness for the probe window."""
        report, sandbox = self.report, container.sandbox
        assert sandbox is not None
        manifest = container.manifest
        handlers: dict[str, tuple[Handler, ProbeSettings]] = {}
        for kind in ("startup", "liveness", "readiness"):
            spec = manifest.get(f"{kind}Probe")
            if not spec:
                continue
            try:
                handlers[kind] = (container.handler(spec), ProbeSettings.of(spec))
            except PortError as error:
                report.add(False, container.subject, kind, str(error))
                return False
        started = time.monotonic()
        if "startup" in handlers:
            handler, settings = handlers["startup"]
            if not self._startup(container, handler, settings, started):
                return False
        elif not self._still_running(container, "start"):
            return False
        window = self.probe_seconds
        results: dict[str, bool] = {}

        def loop(kind: str, handler: Handler, settings: ProbeSettings) -> None:
            results[kind] = self._steady(container, kind, handler, settings, window)

        threads = [
            threading.Thread(target=loop, args=(k, *handlers[k]), daemon=True)
            for k in ("liveness", "readiness")
            if k in handlers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if not threads:
            time.sleep(window)
            report.info(container.subject, "probes", "no liveness or readiness probe")
        self._settle(container)
        return all(results.values()) and self._still_running(container, "run")

    def _settle(self, container: Container) -> None:
        """Wait (a while) until PID 1 catches SIGTERM, e.g. a worker without probes booting."""
        sandbox = container.sandbox
        assert sandbox is not None
        began = time.monotonic()
        while (
            not sandbox.catches(signal.SIGTERM, through_init=True)
            and sandbox.poll() is None
            and time.monotonic() - began < SETTLE_SECONDS
        ):
            time.sleep(0.1)
        waited = time.monotonic() - began
        if waited >= 0.5:
            caught = sandbox.catches(signal.SIGTERM, through_init=True)
            self.report.info(
                container.subject,
                "settle",
                f"waited {waited:.1f}s for PID 1 to catch SIGTERM"
                + ("" if caught else "; it still does not"),
            )

    def _still_running(self, container: Container, action: str) -> bool:
        assert container.sandbox is not None
        code = container.sandbox.poll()
        if code is None:
            return True
        self.report.add(
            False,
            container.subject,
            action,
            f"container exited {code}{last_error(container.sandbox.log())}",
        )
        self.report.log(container.subject, container.sandbox.log())
        return False

    def _startup(
        self, container: Container, handler: Handler, settings: ProbeSettings, started: float
    ) -> bool:
        report, sandbox = self.report, container.sandbox
        assert sandbox is not None
        time.sleep(settings.initial_delay)
        failures = attempts = 0
        last = Attempt(False, "never ran")
        while True:
            tick = time.monotonic()
            if sandbox.poll() is not None:
                report.add(
                    False,
                    container.subject,
                    "startup",
                    f"container exited {sandbox.poll()} before the startup probe succeeded"
                    + last_error(sandbox.log()),
                )
                report.log(container.subject, sandbox.log())
                return False
            last = handler.run(settings.timeout, container)
            attempts += 1
            if last.ok:
                report.add(
                    True,
                    container.subject,
                    "startup",
                    f"{handler.describe()}: {last.detail} after "
                    f"{time.monotonic() - started:.1f}s ({attempts} attempt"
                    f"{'s' * (attempts > 1)}; {settings.describe()})",
                )
                return True
            failures += 1
            if failures >= settings.failure_threshold:
                break
            time.sleep(max(0.0, settings.period - (time.monotonic() - tick)))
        reason = last.detail
        if last.refused:
            listening = sorted(sandbox.listening_ports())
            reason += (
                f"; the container listens on {', '.join(map(str, listening))}, "
                f"not on {handler.port}"
                if listening
                else "; the container listens on no TCP port"
            )
        report.add(
            False,
            container.subject,
            "startup",
            f"{handler.describe()} failed {failures} times in "
            f"{time.monotonic() - started:.0f}s (failureThreshold {settings.failure_threshold} "
            f"x periodSeconds {settings.period:g}): {reason}",
        )
        report.log(container.subject, sandbox.log())
        return False

    def _steady(
        self,
        container: Container,
        kind: str,
        handler: Handler,
        settings: ProbeSettings,
        window: float,
    ) -> bool:
        """Probe every period for `window` seconds (at least once); every attempt must pass."""
        assert container.sandbox is not None
        time.sleep(settings.initial_delay)
        end = time.monotonic() + window
        attempts: list[Attempt] = []
        while True:
            tick = time.monotonic()
            if container.sandbox.poll() is not None:
                break
            attempts.append(handler.run(settings.timeout, container))
            if time.monotonic() + max(0.0, settings.period - (time.monotonic() - tick)) >= end:
                break
            time.sleep(max(0.0, settings.period - (time.monotonic() - tick)))
        if container.sandbox.poll() is None:
            time.sleep(max(0.0, end - time.monotonic()))
        passed = [a for a in attempts if a.ok]
        failed = [a for a in attempts if not a.ok]
        summary = (
            f"{handler.describe()}: {len(passed)}/{len(attempts)} ok over {window:g}s "
            f"({settings.describe()})"
        )
        if failed or not attempts:
            detail = failed[-1].detail if failed else "never ran (container exited)"
            self.report.add(False, container.subject, kind, f"{summary}; {detail}")
            return False
        self.report.add(True, container.subject, kind, f"{summary}; {attempts[-1].detail}")
        return True

    # --- termination ---------------------------------------------------------------------------

    def _readiness_while_draining(self, container: Container) -> None:
        """The kubelet keeps probing readiness while a pod terminates: say what it sees."""
        spec = container.manifest.get("readinessProbe")
        if not spec:
            return
        time.sleep(0.3)
        handler = container.handler(spec)
        attempt = handler.run(ProbeSettings.of(spec).timeout, container)
        state = "still ready" if attempt.ok else "not ready (out of rotation)"
        self.report.info(container.subject, "draining", f"after SIGTERM: {attempt.detail}: {state}")

    def terminate(self, pod: Pod, containers: list[Container]) -> None:
        """preStop, then SIGTERM; every container must exit (0) within the grace period."""

        def stop(container: Container) -> None:
            report, sandbox = self.report, container.sandbox
            assert sandbox is not None
            began = time.monotonic()
            deadline = began + pod.grace
            pre_stop = ((container.manifest.get("lifecycle") or {}).get("preStop")) or None
            if pre_stop and sandbox.poll() is None:
                handler = container.handler(pre_stop)
                result = handler.run(max(deadline - time.monotonic(), 0.1), container)
                took = time.monotonic() - began
                if result.ok:
                    report.add(
                        True,
                        container.subject,
                        "preStop",
                        f"{handler.describe()}: {result.detail} ({took:.1f}s)",
                    )
                else:
                    report.add(
                        False,
                        container.subject,
                        "preStop",
                        f"{handler.describe()} failed (FailedPreStopHook): {result.detail}",
                    )
            if sandbox.poll() is not None:
                report.add(
                    False,
                    container.subject,
                    "SIGTERM",
                    f"container had already exited ({sandbox.poll()}){last_error(sandbox.log())}",
                )
                return
            term_at = time.monotonic()
            catching = sandbox.catches(signal.SIGTERM)
            sandbox.signal(signal.SIGTERM)
            self._readiness_while_draining(container)
            # The kubelet grants 2 s more when preStop used up the grace period.
            wait = max(deadline - time.monotonic(), 2.0 if time.monotonic() >= deadline else 0.0)
            try:
                code = sandbox.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                sandbox.kill()
                report.add(
                    False,
                    container.subject,
                    "SIGTERM",
                    f"still running {time.monotonic() - term_at:.1f}s after SIGTERM: killed "
                    f"at the end of terminationGracePeriodSeconds {pod.grace:g}"
                    + (
                        ""
                        if catching
                        else " (PID 1 had no SIGTERM handler: a container's PID 1 ignores "
                        "signals it does not catch; exec the server, or catch SIGTERM sooner)"
                    ),
                )
                report.log(container.subject, sandbox.log())
                return
            total = time.monotonic() - began
            detail = (
                f"exited {code} {time.monotonic() - term_at:.1f}s after SIGTERM; "
                f"{total:.1f}s of terminationGracePeriodSeconds {pod.grace:g}"
            )
            if code != 0:
                report.add(False, container.subject, "SIGTERM", detail + last_error(sandbox.log()))
                report.log(container.subject, sandbox.log())
            else:
                report.add(True, container.subject, "SIGTERM", detail)

        threads = [threading.Thread(target=stop, args=(c,), daemon=True) for c in containers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
