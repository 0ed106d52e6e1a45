"""docs/admin-api.md runs as written: its ``sh`` blocks, in order, in one shell, against a real
``tokenward serve`` (the first block, ``tokenward init``, before the server starts)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tokenward_server import TokenwardEnv, tokenward_server

DOC = Path(__file__).resolve().parents[3] / "docs" / "admin-api.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _bash(env: TokenwardEnv, script: str, **extra: str) -> subprocess.CompletedProcess[str]:
    variables = env.environ()
    variables["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{variables['PATH']}"
    variables.update(extra)
    return subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        env=variables,
        cwd=env.home,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_the_walkthrough_runs_as_written(tw_env: TokenwardEnv) -> None:
    first, *rest = BLOCK.findall(DOC.read_text())
    assert "tokenward init" in first
    init = _bash(tw_env, first)
    assert init.returncode == 0, init.stderr
    with tokenward_server(tw_env) as server:
        run = _bash(tw_env, "\n".join(rest), TW=server.url)
        assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{server.log()[-2000:]}"
    lines = run.stdout.splitlines()
    assert lines[0] == "tokenward-admin"  # the first `GET /clients`
    assert "countries:read" in lines  # the billing client's token scope
    # The walkthrough cleans up the files it wrote (admin.json held a secret).
    assert {p.name for p in tw_env.home.glob("*.json")} == {"secrets.json"}
