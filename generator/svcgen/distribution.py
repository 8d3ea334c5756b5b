"""svcgen as an installed tool: the template it carries and where that template really lives.

A wheel or sdist carries copier.yml, catalog/, template/ and hooks/ as package data
(`svcgen/_template`, see pyproject.toml), so `svcgen new` works offline wherever svcgen is
installed. Copier would record that folder (a site-packages path) as the project's template;
`record_source` replaces it with the canonical git URL and the matching release tag, so
`copier update` and `svcgen update` later work from the real repository.
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

import yaml

from . import __version__

#: The template inside an installed wheel (absent in a source checkout).
PACKAGED = Path(__file__).resolve().parent / "_template"
#: Where the template's repository lives when the package metadata says nothing.
DEFAULT_SOURCE = "https://github.com/svcgen/svcgen.git"
SOURCE_ENV = "SVCGEN_SOURCE_URL"


def packaged_template() -> Path | None:
    """The template shipped inside the installed package, if this is an installed package."""
    return PACKAGED if (PACKAGED / "copier.yml").is_file() else None


def canonical_source() -> str:
    """The template's git URL: $SVCGEN_SOURCE_URL, else `[project.urls] Source`."""
    override = os.environ.get(SOURCE_ENV, "").strip()
    if override:
        return override
    try:
        urls = metadata.metadata("svcgen").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        urls = []
    for entry in map(str, urls):
        label, _, url = entry.partition(",")
        if label.strip().lower() == "source" and url.strip():
            return url.strip()
    return DEFAULT_SOURCE


def template_version() -> str:
    """The release tag of the template this svcgen carries (`v` + the package version)."""
    return f"v{__version__}"


def describe() -> str:
    """What `svcgen --version` says about the template."""
    if packaged_template() is not None:
        return f"template {template_version()} (packaged; source {canonical_source()})"
    return f"template from the checkout {PACKAGED.parents[2]}"


def record_source(project: Path, answers_file: str = ".copier-answers.yml") -> None:
    """Point a project rendered from the packaged template at the canonical repository.

    Rewrites the `_src_path` and `_commit` lines only, in the place and format Copier's
    `to_nice_yaml` gives them (sorted keys: both come first), so the file stays byte-equal
    to what a later `copier update` renders for the same answers.
    """
    file = project / answers_file
    lines = file.read_text(encoding="utf-8").splitlines(keepends=True)
    header = [line for line in lines if line.startswith("#")]
    body = [line for line in lines if not line.startswith(("#", "_commit:", "_src_path:"))]
    recorded = yaml.safe_dump(
        {"_commit": template_version(), "_src_path": canonical_source()},
        default_flow_style=False,
        sort_keys=True,
    )
    file.write_text("".join([*header, recorded, *body]), encoding="utf-8")
