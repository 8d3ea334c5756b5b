"""The backing-service catalog (catalog/services.yml + catalog/<name>.jinja): complete entries,
consistent values, the one list the wizard and Copier offer; and StrictUndefined."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import copier
import jinja2
import pytest
from jinja2 import nodes
from svcgen.questionnaire import Questionnaire

from .support import CATALOG, REPO, TEMPLATE_FOLDERS, copier_config

MACROS = {"settings", "env", "fixture", "readme", "diagram"}
SRC = REPO / "template" / "src" / "{{package_name}}"
CORE = SRC / "core"


def shape(value: Any) -> Any:
    """The keys of a mapping, recursively (values of other types are not compared)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    return None


def test_every_entry_has_every_key_and_the_header_documents_them() -> None:
    """StrictUndefined makes a missing key a render error: all entries share one shape."""
    first, *others = CATALOG.values()
    for entry in others:
        assert shape(entry) == shape(first), entry["name"]
    header = (REPO / "catalog" / "services.yml").read_text(encoding="utf-8")
    for key in first:
        assert re.search(rf"^# {key}\b", header, re.MULTILINE), f"{key} is not documented"


@pytest.mark.parametrize("name", list(CATALOG))
def test_each_entry_has_its_macros(name: str) -> None:
    source = (REPO / "catalog" / f"{name}.jinja").read_text(encoding="utf-8")
    tree = jinja2.Environment().parse(source)
    assert {macro.name for macro in tree.find_all(nodes.Macro)} == MACROS
    assert f"def {CATALOG[name]['fixture']}(" in source, "fixture() defines the named fixture"


@pytest.mark.parametrize("name", list(CATALOG))
def test_each_entry_is_consistent(name: str) -> None:
    entry = CATALOG[name]
    urls = {k: v for k, v in entry["urls"].items() if k != "this_machine" or v is not None}
    for url in [urls[k] for k in urls if k != "examples"] + urls["examples"]:
        assert urlsplit(url).scheme in entry["schemes"], url
    assert urlsplit(urls["chart"]).port in {None, entry["port"]}, "the chart's egress port"
    assert urlsplit(urls["offline"]).port == 9, "a valid URL where nothing listens"
    assert re.fullmatch(r"[A-Z][A-Z0-9_]*_URL", entry["env"])
    assert entry["web_unless"] is None or entry["web_unless"] in CATALOG
    assert (entry["web_unless"] is None) == (entry["web_unless_reason"] is None)
    module = entry["client"]["module"]
    assert any(p.name.endswith(f"{module}.py{{% endif %}}.jinja") for p in CORE.iterdir()), (
        f"no client module core/{module}.py"
    )
    assert set(entry["libraries"]) == {"shared", "fastapi", "flask", "dev"}
    assert set(entry["untyped"]) == {"fastapi", "flask"}


@pytest.mark.parametrize("framework", ["fastapi", "flask"])
def test_each_entrys_routes_are_a_web_module_of_each_adapter(framework: str) -> None:
    """`routes.module` is web/<module>.py, rendered exactly when the service and every one it
    `needs` are chosen; app.py includes it through the catalog."""
    web = SRC / f"{{% if framework == '{framework}' %}}web{{% endif %}}"
    app = (SRC / f"{{% if framework == '{framework}' %}}app.py{{% endif %}}.jinja").read_text()
    assert "s.routes.module" in app
    for name, entry in CATALOG.items():
        module, needs = entry["routes"]["module"], entry["routes"]["needs"]
        assert set(needs) <= set(CATALOG) - {name}, name
        if module is None:
            assert needs == [], name
            continue
        condition = " and ".join(f"'{s}' in services" for s in [name, *needs])
        path = web / f"{{% if {condition} %}}{module}.py{{% endif %}}.jinja"
        assert path.is_file(), path


def test_names_and_variables_are_unique() -> None:
    assert len({e["env"] for e in CATALOG.values()}) == len(CATALOG)
    assert len({e["label"] for e in CATALOG.values()}) == len(CATALOG)


def test_the_wizard_offers_the_catalog_in_its_order() -> None:
    q = Questionnaire.from_config(copier_config())
    choices = q.choices(q["services"], {})
    assert [(c.label, c.value) for c in choices] == [(e["label"], n) for n, e in CATALOG.items()]


def test_a_misspelt_variable_fails_the_render(tmp_path: Path) -> None:
    """StrictUndefined: a typo is an error naming it, not silently empty text."""
    template = tmp_path / "template-repo"
    template.mkdir()
    shutil.copy2(REPO / "copier.yml", template / "copier.yml")
    for folder in TEMPLATE_FOLDERS:
        shutil.copytree(REPO / folder, template / folder)
    (template / "template" / "typo.txt.jinja").write_text("{{ projet_name }}\n", encoding="utf-8")
    with pytest.raises(Exception, match="projet_name"):
        copier.run_copy(
            str(template), str(tmp_path / "p"), defaults=True, skip_tasks=True, quiet=True
        )


def test_the_readme_names_every_service() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `services` |"))
    assert re.findall(r"`([a-z0-9]+)`", row.split("|")[4]) == list(CATALOG)
    for entry in CATALOG.values():
        assert f"`{entry['env']}`" in readme
