"""Docs are part of the build: the configuration reference matches the settings object, and
every setting is documented."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from tokenward.server.settings import Settings, render_reference

ROOT = Path(__file__).resolve().parent.parent


def test_configuration_reference_is_current() -> None:
    written = (ROOT / "docs" / "configuration.md").read_text()
    assert written == render_reference(), "run `make docs` to regenerate docs/configuration.md"


def test_every_setting_has_a_description() -> None:
    missing = [name for name, f in Settings.model_fields.items() if not f.description]
    assert missing == []


def test_readme_commands_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("serve", "test"):
        assert f"make {target}" in readme
        assert f"\n{target}:" in makefile
    assert "exec make test" in (ROOT / ".ci" / "run").read_text()


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].strip()


def test_every_declared_dependency_is_used() -> None:
    """A dependency of the package or of an extra (not the dev tools) is imported, or named as
    a SQLAlchemy driver (``+aiosqlite:``), somewhere under src/; a mention in a docstring does
    not count."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra, requirements in project["optional-dependencies"].items():
        if extra not in ("dev", "all"):
            declared += requirements
    source = "\n".join(p.read_text() for p in (ROOT / "src").rglob("*.py"))
    unused = []
    for requirement in declared:
        name = _requirement_name(requirement)
        module = {
            "pydantic-settings": "pydantic_settings",
            "prometheus-client": "prometheus_client",
            "argon2-cffi": "argon2",
            "pyyaml": "yaml",
        }.get(name, name.replace("-", "_"))
        used = rf"^\s*(import|from)\s+{re.escape(module)}\b|\+{re.escape(module)}:"
        if name == "tokenward" or re.search(used, source, re.MULTILINE):
            continue
        unused.append(name)
    assert unused == []
