"""docs/operations.md as a user reads it: its shell snippets run as written against a real
``tokenward serve``, and print what the page shows (the same JSON shapes)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.tokenward_server import ServerProcess

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.DOTALL)


def shape(value: Any) -> Any:
    """The keys of a JSON document, recursively; values reduced to their type."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    return type(value).__name__


def test_the_shell_snippets_run_and_print_what_the_page_shows(tw_server: ServerProcess) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (scripts/bootstrap.sh installs it)")
    (snippet,) = blocks("sh")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", snippet],
        env={**os.environ, "TW": tw_server.url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = [json.loads(line) for line in done.stdout.replace("}{", "}\n{").splitlines()]
    shown = [json.loads(line) for line in blocks("json")[0].splitlines()]
    assert [shape(doc) for doc in printed] == [shape(doc) for doc in shown]
