"""The public API is exactly what docs/client.md promises, and needs no server code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import tokenward.client

DOCS = Path(__file__).parents[2] / "docs" / "client.md"


def _documented_names() -> set[str]:
    section = DOCS.read_text().split("## Public API", 1)[1]
    return set(re.findall(r"^- `(\w+)`$", section, flags=re.MULTILINE))


def test_exports_match_the_docs() -> None:
    assert set(tokenward.client.__all__) == _documented_names()
    for name in tokenward.client.__all__:
        assert getattr(tokenward.client, name) is not None


def test_importing_the_client_loads_no_server_and_no_sql() -> None:
    code = (
        "import sys, tokenward.client, tokenward.client.cli, tokenward.client.requests;"
        "print(sorted(m for m in sys.modules if m.startswith(('tokenward.server', 'sqlalchemy'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
