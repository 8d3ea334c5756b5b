"""`svcgen rehearse --image` without an engine: what it asks the Docker or the Podman CLI to do.

A stand-in CLI (a script named docker or podman) records its arguments; the real runs are in
test_image.py (Podman; no Docker daemon runs on these machines, so the Docker path is checked
here, by its argv, only).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from svcgen.rehearse.engine import EngineError, find_engine
from svcgen.rehearse.image import ImageRun, pod_images
from svcgen.rehearse.report import Report

IMAGE = "ghcr.io/acme/svc:1.2.3"
CONFIG = {
    "Size": 205_000_000,
    "Config": {
        "User": "10001:10001",
        "Entrypoint": ["dumb-init", "--single-child", "--", "python", "-m", "svc"],
        "Cmd": ["serve"],
    },
}
POD = {
    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001},
    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    "terminationGracePeriodSeconds": 30,
}
CONTAINER = {
    "name": "web",
    "image": IMAGE,
    "args": ["serve", "--port", "8000"],
    "securityContext": {
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    },
    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
}


def fake_cli(folder: Path, name: str, images: dict[str, Any]) -> tuple[Path, Path]:
    """An executable `name` that logs each argv (JSON lines) and answers like the engine."""
    log = folder / f"{name}.argv"
    cli = folder / name
    cli.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"images = {json.dumps(images)!r}\n"
        "args = sys.argv[1:]\n"
        "if args[:2] == ['image', 'inspect']:\n"
        "    found = json.loads(images).get(args[-1])\n"
        "    if found is None:\n"
        "        sys.exit('Error: ' + args[-1] + ': image not known')\n"
        "    print(json.dumps([found]))\n"
        "elif args[:1] == ['run']:\n"
        "    print('0123456789ab')\n"
        "elif args[:1] == ['inspect']:\n"
        "    print(json.dumps({'Running': True, 'Pid': 0}))\n"
    )
    cli.chmod(0o755)
    return cli, log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.parametrize("kind", ["docker", "podman"])
def test_build_then_run_as_the_chart_says(tmp_path: Path, kind: str) -> None:
    cli, log = fake_cli(tmp_path, kind, {IMAGE: CONFIG})
    images = ImageRun(tmp_path, str(cli), build=True)
    report = Report()
    assert images.prepare(pod_images([POD | {"containers": [CONTAINER]}]), report), report.text()
    assert "PASS  image/ghcr.io/acme/svc:1.2.3" in report.text()
    assert "205 MB" in report.text()
    assert "USER 10001:10001, runs dumb-init --single-child -- python -m svc serve" in (
        report.text()
    )
    spec = images.run_spec("svc", POD, CONTAINER, {"PORT": "8000"})
    assert images.command(IMAGE, spec) == [
        *["dumb-init", "--single-child", "--", "python", "-m", "svc"],
        *["serve", "--port", "8000"],
    ]
    sandbox = images.sandbox(spec)
    sandbox.start()
    assert sandbox.catches(signal.SIGTERM)  # pid 0: the engine's processes are not seen here
    build, inspect, run = calls(log)[:3]
    podman_only = ["--format", "docker", "--pull=missing"] if kind == "podman" else []
    assert build == ["build", "--tag", IMAGE, *podman_only, str(tmp_path)]
    assert inspect == ["image", "inspect", IMAGE]
    expected = [
        "run", "--detach", "--name", spec.name, "--network", "host",
        "--user", "10001:10001", "--read-only",
        *(["--read-only-tmpfs=false", "--tmpfs", "/dev/shm:rw,size=67108864"]
          if kind == "podman" else []),
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--tmpfs", "/tmp:rw,mode=1777,size=67108864",
        "--env", "PORT=8000",
        IMAGE, "serve", "--port", "8000",
    ]  # fmt: skip
    assert run == expected


def test_missing_image_names_the_fix(tmp_path: Path) -> None:
    cli, log = fake_cli(tmp_path, "docker", {})
    report = Report()
    assert not ImageRun(tmp_path, str(cli)).prepare([IMAGE], report)
    assert [call[0] for call in calls(log)] == ["image"]  # no build, no pull
    assert "not in docker's local images (never pulled): build it first with --build" in (
        report.text()
    )


@pytest.mark.parametrize(
    ("user", "message"),
    [
        ("", "container has runAsNonRoot and image will run as root"),
        ("app", "image has non-numeric user (app), cannot verify user is non-root"),
    ],
)
def test_run_as_non_root_checks_the_image_user(tmp_path: Path, user: str, message: str) -> None:
    config = {"Config": {**CONFIG["Config"], "User": user}}  # type: ignore[dict-item]
    cli, _ = fake_cli(tmp_path, "docker", {IMAGE: config})
    images = ImageRun(tmp_path, str(cli))
    assert images.prepare([IMAGE], Report())
    pod = {"securityContext": {"runAsNonRoot": True}}
    with pytest.raises(EngineError, match=re.escape(message)):
        images.run_spec("svc", pod, {"name": "web", "image": IMAGE}, {})


def test_no_engine_is_a_usage_error(tmp_path: Path) -> None:
    """`--image` with no engine: exit 2 naming the way out, nothing run."""
    with pytest.raises(EngineError, match="no container engine"):
        find_engine("no-such-engine")
    svcgen = Path(sys.executable).with_name("svcgen")
    done = subprocess.run(
        [str(svcgen), "rehearse", str(tmp_path), "--image", "--engine", "no-such-engine"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "300"},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no container engine: no-such-engine not found" in done.stderr
    assert "rehearse without --image" in done.stderr
    assert "rehearsal" not in done.stdout
