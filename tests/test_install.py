"""A plain ``pip install tokenward`` (no extras), in a fresh virtualenv built from the wheel:
``tokenward --help``, ``--version`` and ``tokenward token`` work without any server code, and a
server command says in one line which extra it needs."""

from __future__ import annotations

import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.tokenward_server import ServerProcess, TokenwardEnv
from tokenward import __version__

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plain_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("plain")
    wheels = where / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("tokenward-*.whl")
    env_dir = where / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        check=True,
        timeout=600,
    )
    return env_dir / "bin"


def run(
    bin_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "tokenward"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_the_server_extra_is_not_installed(plain_venv: Path) -> None:
    modules = "('sqlalchemy', 'starlette', 'typer', 'pydantic')"
    probe = f"import importlib.util as u; print([u.find_spec(m) is None for m in {modules}])"
    out = subprocess.run(
        [str(plain_venv / "python"), "-c", probe], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[True, True, True, True]"


def test_help_and_version_without_the_server_extra(plain_venv: Path) -> None:
    helped = run(plain_venv, "--help")
    assert helped.returncode == 0, helped.stderr
    for command in ("serve", "apis", "clients", "keys", "token"):
        assert f"  {command}" in helped.stdout
    version = run(plain_venv, "--version")
    assert version.returncode == 0
    assert __version__ in version.stdout


def test_a_server_command_names_the_extra_it_needs(plain_venv: Path) -> None:
    result = run(plain_venv, "clients", "list")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: `tokenward clients` needs the server extra: pip install 'tokenward[server]'"
    )


@pytest.fixture
def server(tw_env: TokenwardEnv) -> Iterator[ServerProcess]:
    server = ServerProcess(tw_env)
    try:
        yield server
    finally:
        server.stop()


def test_token_with_the_plain_install(
    plain_venv: Path, tw_env: TokenwardEnv, server: ServerProcess
) -> None:
    tw_env.cli(
        "apis", "create", "--identifier", "https://api.example", "--name", "A", "--scope", "read"
    )
    client = tw_env.cli_json("clients", "create", "--name", "c", "--scope", "read")
    env = {
        "PATH": "/usr/bin:/bin",
        "TOKENWARD_ISSUER": tw_env.issuer,
        "TOKENWARD_CLIENT_ID": client["client_id"],
        "TOKENWARD_CLIENT_SECRET": client["client_secret"],
    }
    result = run(plain_venv, "token", "--scope", "read", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(".") == 2  # a compact JWS
    refused = run(plain_venv, "token", "--scope", "write", env=env)
    assert refused.returncode == 1
    assert "invalid_scope" in refused.stderr
