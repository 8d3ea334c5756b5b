"""Where the Copier template lives and what its copier.yml says."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import yaml

#: The repository root holding copier.yml (svcgen is installed from it, editable).
TEMPLATE_ROOT = Path(__file__).resolve().parents[2]


def template_source() -> str:
    """The template to generate from: $SVCGEN_TEMPLATE (a path or git URL) or this repo."""
    return os.environ.get("SVCGEN_TEMPLATE", str(TEMPLATE_ROOT))


@cache
def copier_config(root: Path = TEMPLATE_ROOT) -> dict[str, Any]:
    """copier.yml as a mapping, settings (`_`-prefixed) included."""
    with (root / "copier.yml").open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    if not isinstance(data, dict):
        raise ValueError(f"{root / 'copier.yml'} is not a mapping")
    return data


def questions(root: Path = TEMPLATE_ROOT) -> dict[str, dict[str, Any]]:
    """The questions of copier.yml, in order, without the `_` settings."""
    return {k: v for k, v in copier_config(root).items() if not k.startswith("_")}
