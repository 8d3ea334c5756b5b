"""The project's `.venv` and sources standing in for the image its Dockerfile builds."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ..dockerfile import Image


class ImageStandIn:
    """The project's `.venv` and sources standing in for the image built by its Dockerfile."""

    def __init__(self, root: Path, image: Image) -> None:
        self.root = root
        self.image = image
        self.venv = root / ".venv"
        image_venv = image.env.get("VIRTUAL_ENV") or image.env.get("UV_PROJECT_ENVIRONMENT")
        self.mapping: dict[str, str] = {}
        if image_venv:
            self.mapping[image_venv.rstrip("/")] = str(self.venv)
        if image.workdir not in {"/", "/tmp"}:
            self.mapping[image.workdir.rstrip("/")] = str(root)

    def map_path(self, value: str) -> str:
        for prefix in sorted(self.mapping, key=len, reverse=True):
            if value == prefix or value.startswith(prefix + "/"):
                return self.mapping[prefix] + value[len(prefix) :]
        return value

    def provide(self, path: str, scratch: Path) -> None:
        """A mount point the image would have (the kubelet creates it) but this host lacks:
        mapped to a directory under `scratch`, since a read-only root cannot create it."""
        if self.map_path(path) == path and not Path(path).is_dir():
            host = scratch / "mounts" / path.lstrip("/")
            host.mkdir(parents=True, exist_ok=True)
            self.mapping[path.rstrip("/")] = str(host)

    def map_value(self, value: str) -> str:
        """Each `:`-separated absolute path of a variable mapped (PATH, PYTHONPATH, ...)."""
        if "://" in value:
            return value
        return ":".join(
            self.map_path(part) if part.startswith("/") else part for part in value.split(":")
        )

    def map_argv(self, argv: Sequence[str]) -> list[str]:
        mapped = [self.map_path(arg) if arg.startswith("/") else arg for arg in argv]
        if mapped and mapped[0].startswith("/") and not Path(mapped[0]).exists():
            name = Path(mapped[0]).name
            if re.fullmatch(r"python[0-9.]*", name):
                mapped[0] = str(self.venv / "bin" / "python")  # the image's interpreter
        return mapped

    def workdir_view(self) -> tuple[str | None, list[str]]:
        """The workdir as the image has it: only what the final stage copies there."""
        workdir = self.image.workdir.rstrip("/")
        if workdir not in self.mapping:
            return None, []
        inside = [
            self.map_path(dest)
            for dest in self.image.copies
            if dest == workdir or dest.startswith(workdir + "/")
        ]
        if str(self.root) in inside:
            return None, []  # the whole build context is copied: show the project as it is
        paths = [p for p in inside if Path(p).exists()]
        if (self.root / "src").is_dir():
            paths.append(str(self.root / "src"))  # the installed package's stand-in
        return str(self.root), sorted(set(paths))

    def keep_paths(self) -> list[str]:
        """Real locations the venv needs (a symlinked venv, editable sources in .pth files)."""
        keep = {str(self.venv.resolve())}
        for pth in self.venv.glob("lib/python*/site-packages/*.pth"):
            for line in pth.read_text(encoding="utf-8", errors="replace").splitlines():
                line = line.strip()
                if line.startswith("/") and Path(line).is_dir():
                    keep.add(str(Path(line).resolve()))
        return sorted(keep)
