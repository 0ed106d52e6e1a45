"""Docs are part of the build: the configuration reference matches the settings object, and
every setting is documented."""

from __future__ import annotations

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
