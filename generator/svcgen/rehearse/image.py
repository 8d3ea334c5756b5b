"""`svcgen rehearse --image`: each pod runs from the project's built image with a container
engine (the Docker or the Podman CLI) instead of the `.venv` stand-in under bubblewrap.

The container gets what the rendered chart gives it (engine.run_spec: user, read-only root,
capabilities, no-new-privileges, a tmpfs per emptyDir, command and args) plus the chart's
ConfigMap/Secret volumes as read-only files, and the host's network, so the rehearsal probes,
execs and signals it as it does the stand-in. Images are run as the chart names them
(`image.repository:image.tag`) and never pulled: `--build` builds the Dockerfile under that name.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..dockerfile import Image, effective_command
from .engine import ContainerSandbox, Engine, EngineError, RunSpec, find_engine, run_spec

if TYPE_CHECKING:
    from .report import Report

__all__ = ["ImageRun", "pod_images"]


def pod_images(pod_specs: Iterable[Mapping[str, Any]]) -> list[str]:
    """The images the pods' containers (init ones included) name, in order, once each."""
    found: list[str] = []
    for spec in pod_specs:
        for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            image = str(container.get("image") or "")
            if image and image not in found:
                found.append(image)
    return found


class ImageRun:
    """The engine, the images it runs, and one container per rehearsed container."""

    def __init__(self, root: Path, engine: str | None = None, build: bool = False) -> None:
        self.root = root
        self.engine: Engine = find_engine(engine)
        self.build = build
        self.configs: dict[str, Image] = {}  # what each image runs, and as whom
        self._run = uuid.uuid4().hex[:6]

    def prepare(self, images: list[str], report: Report) -> bool:
        """Build the Dockerfile under the images' names (--build); each image must exist."""
        kind = self.engine.kind
        if not images:
            report.add(False, "image", "find", "the chart's containers name no image")
            return False
        if self.build:
            began = time.monotonic()
            try:
                self.engine.build(self.root, images[0])
                for other in images[1:]:
                    self.engine("tag", images[0], other)
            except EngineError as error:
                report.add(False, "image", "build", str(error))
                return False
            report.add(
                True,
                "image",
                "build",
                f"{kind} build {self.root / 'Dockerfile'} as {', '.join(images)} "
                f"in {time.monotonic() - began:.1f}s",
            )
        ok = True
        for image in images:
            try:
                config = self.engine.image_config(image)
            except EngineError:
                report.add(
                    False,
                    f"image/{image}",
                    "find",
                    f"not in {kind}'s local images (never pulled): build it first with --build, "
                    "or point the chart at a local image (--set image.repository=... "
                    "--set image.tag=...)",
                )
                ok = False
                continue
            settings = config.get("Config") or {}
            found = self.configs[image] = Image(
                entrypoint=[str(part) for part in settings.get("Entrypoint") or []],
                cmd=[str(part) for part in settings.get("Cmd") or []],
                user=str(settings.get("User") or "") or None,
            )
            report.add(
                True,
                f"image/{image}",
                "find",
                f"{int(config.get('Size') or 0) / 1e6:.0f} MB ({kind}), USER "
                f"{found.user or 'root'}, runs {' '.join(self.command(image)) or 'nothing'}",
            )
        return ok

    def run_spec(
        self,
        pod_name: str,
        pod_spec: Mapping[str, Any],
        container: Mapping[str, Any],
        env: Mapping[str, str],
    ) -> RunSpec:
        """The engine's settings for `container` (command and args already expanded). Raises
        EngineError for what the kubelet would refuse."""
        image = str(container.get("image") or "")
        if not image:
            raise EngineError("the container names no image")
        raw = f"svcgen-rehearse-{pod_name}-{container.get('name', 'c')}-{self._run}"
        name = re.sub(r"[^a-zA-Z0-9_.-]+", "-", raw)
        spec = run_spec(image, name, pod_spec, container, env)
        context = {
            **(pod_spec.get("securityContext") or {}),
            **(container.get("securityContext") or {}),
        }
        user = (self.configs[image].user or "") if image in self.configs else ""
        user = user.partition(":")[0]
        if spec.user is None and context.get("runAsNonRoot"):
            if user in {"", "0", "root"}:
                raise EngineError("container has runAsNonRoot and image will run as root")
            if not user.isdigit():
                raise EngineError(
                    f"image has non-numeric user ({user}), cannot verify user is non-root"
                )
        return spec

    def command(self, image: str, spec: RunSpec | None = None) -> list[str]:
        """What the container runs: the chart's command and args over ENTRYPOINT and CMD."""
        found = self.configs.get(image) or Image()
        return effective_command(found, spec.command if spec else [], spec.args if spec else [])

    def sandbox(self, spec: RunSpec) -> ContainerSandbox:
        return ContainerSandbox(self.engine, spec)
