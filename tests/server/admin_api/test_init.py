"""``tokenward init`` and the first start of ``tokenward serve``: the admin API's audience and
its first client, whose secret is shown once and never written to the server's log."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from tests.server.admin_api.support import ADMIN, READ
from tests.server.harness import make_settings
from tests.support.inprocess import in_process
from tests.support.tokenward_server import TokenwardEnv, tokenward_server
from tokenward.server.cli.serve import _first_start
from tokenward.server.composition import load_server_secrets, prepare_database


def _works(env: TokenwardEnv, url: str, client_id: str, secret: str) -> None:
    token = httpx.post(
        f"{url}/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    ).json()["access_token"]
    response = httpx.get(f"{url}/admin/api/clients", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert client_id in {c["client_id"] for c in response.json()}


def test_init_creates_once_then_says_what_exists(tw_env: TokenwardEnv) -> None:
    first = tw_env.cli("init").stdout.splitlines()
    assert first[0] == f"admin API:     {tw_env.issuer}/admin/api"
    assert first[1] == "client_id:     tokenward-admin"
    secret = first[2].removeprefix("client_secret: ")
    assert len(secret) >= 43
    assert first[3] == "(the secret is shown once; store it now)"

    again = tw_env.cli("init")
    assert again.stdout.splitlines() == [
        f"admin API {tw_env.issuer}/admin/api exists (scopes {ADMIN}, {READ})",
        "admin clients: tokenward-admin",
        "nothing created; `tokenward clients secrets add CLIENT_ID` gives a client a new secret",
    ]
    assert secret not in again.stdout + again.stderr
    events = tw_env.cli_json("audit", "list")
    assert [(e["event"], e["actor"]) for e in events] == [
        ("client.created", "cli"),
        ("api.created", "cli"),
    ]
    with tokenward_server(tw_env) as server:
        _works(tw_env, server.url, "tokenward-admin", secret)
        assert "first admin client" not in server.log()  # init made it: serve creates none


def test_first_start_without_a_terminal_writes_a_private_file(tw_env: TokenwardEnv) -> None:
    path = tw_env.home / "admin-client.json"
    with tokenward_server(tw_env) as server:
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        written = json.loads(path.read_text())
        assert written["client_id"] == "tokenward-admin"
        assert written["audience"] == f"{tw_env.issuer}/admin/api"
        assert written["token_endpoint"] == f"{tw_env.issuer}/token"
        _works(tw_env, server.url, written["client_id"], written["client_secret"])
        log = server.log()
        assert f"so it is in {path} (mode 0600)" in log
        assert written["client_secret"] not in log
    path.unlink()
    with tokenward_server(tw_env) as again:  # a restart creates nothing
        assert "first admin client" not in again.log()
    assert not path.exists()


@contextlib.contextmanager
def _serve_on_a_terminal(env: TokenwardEnv) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    controller, terminal = pty.openpty()
    argv = [sys.executable, "-m", "tokenward", "serve", "--port", str(env.port)]
    proc = subprocess.Popen(
        argv, env=env.environ(), cwd=env.home, stdout=terminal, stderr=terminal,
        start_new_session=True,
    )  # fmt: skip
    os.close(terminal)
    try:
        yield proc, controller
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
        os.close(controller)


def _read_until(controller: int, marker: bytes, seconds: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + seconds
    while marker not in seen:
        assert time.monotonic() < deadline, seen.decode(errors="replace")
        if select.select([controller], [], [], 0.2)[0]:
            seen += os.read(controller, 65536)
    return seen


def test_first_start_on_a_terminal_prints_the_secret_there(tw_env: TokenwardEnv) -> None:
    with _serve_on_a_terminal(tw_env) as (_, controller):
        shown = _read_until(controller, b"(the secret is shown once").decode()
        lines = shown.replace("\r", "").splitlines()
        secret = next(line for line in lines if line.startswith("client_secret: "))
        secret = secret.removeprefix("client_secret: ").strip()
    assert not (tw_env.home / "admin-client.json").exists()
    with tokenward_server(tw_env) as server:
        _works(tw_env, server.url, "tokenward-admin", secret)


@pytest.mark.anyio
async def test_the_admin_api_can_be_turned_off(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, admin_api=False)
    prepare_database(settings)
    # tokenward serve's first start (it runs its own event loop) creates nothing.
    first_start = functools.partial(_first_start, settings, load_server_secrets(settings))
    assert await anyio.to_thread.run_sync(first_start) is None
    async with in_process(settings, loops=False) as tw:
        assert (await tw.http.get("/admin/api/openapi.json")).status_code == 404
        assert await tw.admin.list_apis() == []
        assert await tw.admin.list_clients() == []


def test_init_after_the_admin_clients_are_gone_creates_another(tw_env: TokenwardEnv) -> None:
    first = json.loads(tw_env.cli("init", "--json").stdout)["created"]["secret"]["client_secret"]
    tw_env.cli("clients", "delete", "tokenward-admin")
    setup = json.loads(tw_env.cli("init", "--json").stdout)
    assert setup["created"]["client"]["client_id"] == "tokenward-admin"
    assert setup["created"]["secret"]["client_secret"] != first
    assert setup["admin_clients"] == ["tokenward-admin"]


def test_an_instance_with_another_issuer_on_the_same_database_is_one_line(
    tw_env: TokenwardEnv,
) -> None:
    """Instances of one deployment share the issuer; one that does not is told so, exit 2."""
    tw_env.cli("init")
    other = tw_env.cli("init", check=False, env={"TOKENWARD_ISSUER": "http://127.0.0.1:1"})
    assert other.returncode == 2
    assert "Traceback" not in other.stderr
    assert other.stderr.strip().splitlines()[-1:] == [
        "error: TOKENWARD_ISSUER: the admin API scopes on this database belong to another "
        "issuer's admin API, not http://127.0.0.1:1/admin/api; every instance on one database "
        "must have the same issuer"
    ]
