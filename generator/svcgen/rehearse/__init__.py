"""`svcgen rehearse`: run a generated service's Helm chart locally, the way a kubelet would.

Render the chart with Helm; run the pre-install hook Jobs to completion; then start every
Deployment's pod (one replica) with the project's `.venv` standing in for the image, each
container under its securityContext in bubblewrap -- or, with `--image`, from the real image
with Docker or Podman (image.py); probe it (startup, then liveness and readiness); stop
it as the kubelet does (preStop, SIGTERM, grace period). One report line per step, PASS or FAIL
with the reason; any FAIL makes the rehearsal fail.

The parts: command.py (typer glue) · run.py (render, hook Jobs, Deployments) · pod.py (a pod's
containers: environment, command, sandbox) · lifecycle.py (ports, probes, termination) ·
report.py · standin.py (the .venv for the image) · image.py (the real image, --image) ·
env.py (the kubelet's environment) · probes.py (probe and hook handlers) · sandbox.py
(bubblewrap) · engine.py (Docker or Podman).
"""
