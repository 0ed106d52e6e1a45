"""A new user's first hour (issue 11): every trap reproduced through the real CLI and a real
``tokenward serve``, and the clear answer it now gets, with nothing lost.

* the CLI run from another directory uses the server's database and secrets (one home);
* another pepper or key-encryption key is refused before anything is written;
* a signing key the server cannot decrypt is reported by kid and the others keep serving;
* ``serve --port`` and ``make serve PORT=...`` put the port in the issuer;
* each configuration error is one line and exit status 2, for every command.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.live import free_port
from tests.support.logs import loggers_restored
from tests.support.tokenward_server import (
    LoggedProcess,
    ServerProcess,
    TokenwardEnv,
    tokenward_server,
)
from tokenward.cli import root
from tokenward.cli.token import DEFAULT_ISSUER, ISSUER_FILE, local_issuer
from tokenward.server.keys import new_key_row
from tokenward.server.secrets import KeyEncryptor
from tokenward.server.storage.sql.repository import Repository

ROOT = Path(__file__).resolve().parents[2]
API = "https://api.example.com"


@dataclass
class DefaultEnv(TokenwardEnv):
    """A user's environment: nothing set but ``XDG_DATA_HOME`` (so the default home is inside
    the test's directory) and, optionally, an absolute database URL."""

    absolute_url: bool = False

    def environ(self) -> dict[str, str]:
        env = super().environ()
        for name in ("TOKENWARD_HOME", "TOKENWARD_DATABASE_URL", "TOKENWARD_SECRETS_FILE"):
            env.pop(name)
        env["XDG_DATA_HOME"] = str(self.home / "xdg")
        if self.absolute_url:
            env["TOKENWARD_DATABASE_URL"] = f"sqlite:///{self.home / 'shared.db'}"
        return env


def _token(env: TokenwardEnv, client_id: str, secret: str) -> httpx.Response:
    return httpx.post(
        f"{env.issuer}/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        timeout=10,
    )


@pytest.mark.parametrize("absolute_url", [False, True], ids=["default-home", "absolute-url"])
def test_the_cli_uses_the_server_state_from_any_directory(
    tmp_path: Path, absolute_url: bool
) -> None:
    """Before: var/tokenward.db and var/secrets.json were relative to the working directory,
    so the CLI elsewhere made a second database, or a second pepper (invalid_client)."""
    env = DefaultEnv(home=tmp_path, absolute_url=absolute_url)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with tokenward_server(env) as server:
        env.cli("apis", "create", "--identifier", API, "--name", "A", "--scope", "r", cwd=elsewhere)
        created = env.cli_json("clients", "create", "--name", "c", "--scope", "r")
        response = _token(env, created["client_id"], created["client_secret"])
        assert response.status_code == 200, response.text
        home = tmp_path / "xdg" / "tokenward"
        assert f"  home:      {home}" in server.log()
    assert {"tokenward.db", "secrets.json"} <= {p.name for p in home.iterdir()} or absolute_url
    assert not list(elsewhere.iterdir())


def test_another_pepper_or_key_encryption_key_is_refused_before_writing(
    tw_env: TokenwardEnv, tw_server: ServerProcess
) -> None:
    """Before: clients created with another pepper got invalid_client, and a key rotated with
    another key-encryption key stopped the server from starting."""
    tw_env.cli("apis", "create", "--identifier", API, "--name", "A", "--scope", "r")
    keys_before = tw_env.cli_json("keys", "list")
    clients_before = tw_env.cli_json("clients", "list")  # the first admin client
    other = {"TOKENWARD_PEPPER": secrets.token_hex(32)}
    refused = tw_env.cli("clients", "create", "--name", "c", "--scope", "r", env=other, check=False)
    assert refused.returncode == 2
    (line,) = refused.stderr.splitlines()
    assert line.startswith("error: TOKENWARD_PEPPER does not match the one the database at ")
    assert other["TOKENWARD_PEPPER"] not in refused.stderr
    other = {"TOKENWARD_KEY_ENCRYPTION_KEY": secrets.token_hex(32)}
    refused = tw_env.cli("keys", "rotate", env=other, check=False)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: TOKENWARD_KEY_ENCRYPTION_KEY does not match")
    # Nothing was written; the right secrets still work.
    assert tw_env.cli_json("clients", "list") == clients_before
    assert tw_env.cli_json("keys", "list") == keys_before
    created = tw_env.cli_json("clients", "create", "--name", "c", "--scope", "r")
    assert _token(tw_env, created["client_id"], created["client_secret"]).status_code == 200


def test_a_key_the_server_cannot_decrypt_is_reported_and_the_others_serve(
    tw_env: TokenwardEnv,
) -> None:
    """A key sealed under another key-encryption key (as the old CLI could store) no longer
    stops the server: it is reported by kid, left out, and removable without SQL."""
    tw_env.cli("apis", "create", "--identifier", API, "--name", "A", "--scope", "r")
    (good,) = [k["kid"] for k in tw_env.cli_json("keys", "list")]
    bad = _foreign_key(tw_env)
    with tokenward_server(tw_env) as server:
        jwks = httpx.get(f"{tw_env.issuer}/jwks.json", timeout=10).json()
        assert [k["kid"] for k in jwks["keys"]] == [good]
        created = tw_env.cli_json("clients", "create", "--name", "c", "--scope", "r")
        assert _token(tw_env, created["client_id"], created["client_secret"]).status_code == 200
        assert f"signing key {bad} (ES256) is not used: it does not decrypt" in server.log()
        doctor = tw_env.cli("doctor", check=False)
        assert doctor.returncode == 1
        assert f"  FAIL  signing key {bad} is not used: it does not decrypt" in doctor.stdout
        assert tw_env.cli("keys", "delete", "--", bad).stdout == f"deleted key {bad}\n"
        assert tw_env.cli("doctor").stdout.endswith("all is well\n")


def _foreign_key(env: TokenwardEnv) -> str:
    """Store a ``next`` key sealed under another key-encryption key, as ``keys rotate`` run
    with another secrets file used to."""

    async def insert() -> str:
        repository = Repository.from_url(env.environ()["TOKENWARD_DATABASE_URL"])
        try:
            now = int(time.time())
            row = new_key_row(
                "ES256",
                generation=2,
                now=now,
                activates_at=now + 600,
                encryptor=KeyEncryptor(os.urandom(32)),
            )
            assert await repository.insert_key(row)
            return row.kid
        finally:
            await repository.close()

    return asyncio.run(insert())


def test_serve_port_is_the_issuer_port(tw_env: TokenwardEnv) -> None:
    """Before: ``serve --port 18000`` still said :8000 in discovery and every token."""
    env = TokenwardEnv(home=tw_env.home)
    del_issuer = {k: v for k, v in env.environ().items() if k != "TOKENWARD_ISSUER"}
    with _process(
        [sys.executable, "-m", "tokenward", "serve", "--port", str(env.port)], del_issuer, env
    ) as server:
        metadata = httpx.get(f"{server.url}/.well-known/oauth-authorization-server").json()
        assert metadata["issuer"] == f"http://127.0.0.1:{env.port}"
        assert metadata["token_endpoint"] == f"http://127.0.0.1:{env.port}/token"


def test_make_serve_with_a_port_works_end_to_end(tmp_path: Path) -> None:
    """Before: ``make serve PORT=18000`` served on 18000 while discovery and every token said
    :8000, and ``tokenward token`` in another shell got "connection refused". Now the README's
    next steps, in another shell with nothing but the home in common (no TOKENWARD_ISSUER),
    give a token whose iss is the server's URL, and ``tokenward doctor`` finds the server."""
    env = TokenwardEnv(home=tmp_path)
    shell = {k: v for k, v in env.environ().items() if k != "TOKENWARD_ISSUER"}
    argv = ["make", "--no-print-directory", "-C", str(ROOT), "serve", f"PORT={env.port}"]
    with _process(argv, {**shell, "TOKENWARD_SKIP_APT": "1"}, env) as server:
        metadata = httpx.get(f"{server.url}/.well-known/oauth-authorization-server").json()
        assert metadata["issuer"] == server.url
        assert metadata["token_endpoint"] == f"{server.url}/token"
        assert f"  discovery: {server.url}/.well-known/oauth-authorization-server" in server.log()
        _shell(shell, "apis", "create", "--identifier", API, "--name", "A", "--scope", "r")
        created = json.loads(
            _shell(shell, "clients", "create", "--name", "c", "--scope", "r", "--json")
        )
        secret = {"TOKENWARD_CLIENT_SECRET": created["client_secret"]}
        token = _shell({**shell, **secret}, "token", "--client-id", created["client_id"])
        claims = httpx.post(
            f"{server.url}/introspect",
            data={"token": token.strip()},
            auth=(created["client_id"], created["client_secret"]),
        ).json()
        assert claims["active"] is True
        assert claims["iss"] == server.url
        doctor = _shell(shell, "doctor")
        assert f"{server.url}  (served, {tmp_path / 'issuer'})" in doctor
        assert f"the issuer answers at {server.url}/.well-known/" in doctor


def _shell(environ: dict[str, str], *args: str) -> str:
    """``tokenward ARGS`` in another shell: another working directory, exactly ``environ``."""
    proc = subprocess.run(
        [sys.executable, "-m", "tokenward", *args],
        env=environ,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@contextlib.contextmanager
def _process(
    argv: list[str], environ: dict[str, str], env: TokenwardEnv
) -> Iterator[LoggedProcess]:
    process = LoggedProcess(
        argv,
        env=environ,
        cwd=env.home,
        log_path=env.home / "serve.log",
        url=f"http://127.0.0.1:{env.port}",
        ready_path="/healthz",
        name=" ".join(argv[:3]),
    )
    try:
        yield process
    finally:
        process.stop()


# -- configuration errors: one line, exit status 2, never a traceback -------------------------


def _one_line(result: subprocess.CompletedProcess[str], starts: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: " + starts), lines[0]


def _closed_port() -> int:
    return free_port()


CASES: list[tuple[str, dict[str, str], str]] = [
    (
        "invalid-value",
        {"TOKENWARD_TOKEN_TTL": "abc"},
        "invalid TOKENWARD_TOKEN_TTL=abc: input should be a valid integer",
    ),
    (
        "unsupported-scheme",
        {"TOKENWARD_DATABASE_URL": "mysql://u:pw@db.example/tw"},
        "invalid TOKENWARD_DATABASE_URL: unsupported database 'mysql'",
    ),
    (
        "missing-pepper-on-postgresql",
        {"TOKENWARD_DATABASE_URL": "postgresql://u:pw@127.0.0.1:1/tw"},
        "TOKENWARD_PEPPER and TOKENWARD_KEY_ENCRYPTION_KEY must be set",
    ),
    (
        "weak-pepper",
        {
            "TOKENWARD_ISSUER": "https://auth.example.com",
            "TOKENWARD_PEPPER": "x",
            "TOKENWARD_KEY_ENCRYPTION_KEY": secrets.token_hex(32),
        },
        "TOKENWARD_PEPPER is shorter than 32 bytes",
    ),
    (
        "pepper-and-pepper-file",
        {"TOKENWARD_PEPPER": "a" * 32, "TOKENWARD_PEPPER_FILE": "/etc/hostname"},
        "TOKENWARD_PEPPER and TOKENWARD_PEPPER_FILE are both set",
    ),
    (
        "unreadable-secret-file",
        {"TOKENWARD_KEY_ENCRYPTION_KEY_FILE": "/nonexistent/kek"},
        "TOKENWARD_KEY_ENCRYPTION_KEY_FILE: cannot read /nonexistent/kek",
    ),
]


@pytest.fixture
def cli_env(tw_env: TokenwardEnv, monkeypatch: pytest.MonkeyPatch) -> TokenwardEnv:
    """The test's environment in this process, for running the root command in-process
    (``tokenward.cli.root``, what the ``tokenward`` script calls): the same code path as a
    subprocess, without paying an interpreter start per command."""
    for name in list(os.environ):
        if name.startswith("TOKENWARD_"):
            monkeypatch.delenv(name)
    for name, value in tw_env.environ().items():
        if name.startswith("TOKENWARD_"):
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(tw_env.home)
    return tw_env


def _run(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    variables: dict[str, str],
) -> subprocess.CompletedProcess[str]:
    with monkeypatch.context() as scoped, loggers_restored():
        for name, value in variables.items():
            scoped.setenv(name, value)
        code = 0
        try:
            root.main(args=list(args), prog_name="tokenward", standalone_mode=True)
        except SystemExit as exc:
            code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out, err)


@pytest.mark.parametrize("command", [("serve", "--port", "1"), ("apis", "list")])
@pytest.mark.parametrize(("variables", "starts"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_configuration_error_is_one_line(
    cli_env: TokenwardEnv,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
    variables: dict[str, str],
    starts: str,
) -> None:
    _one_line(_run(capsys, monkeypatch, command, variables), starts)


def test_unreachable_postgresql_names_host_and_port(tw_env: TokenwardEnv) -> None:
    """A command stops with one line; ``serve`` says the same in one line and starts anyway,
    not ready (an outage must never keep an instance down: docs/operations.md)."""
    port = _closed_port()
    variables = {
        "TOKENWARD_DATABASE_URL": f"postgresql://tw:hunter2@127.0.0.1:{port}/tw",
        "TOKENWARD_PEPPER": secrets.token_hex(32),
        "TOKENWARD_KEY_ENCRYPTION_KEY": secrets.token_hex(32),
    }
    result = tw_env.cli("clients", "list", env=variables, check=False)
    _one_line(result, f"cannot connect to the database at 127.0.0.1:{port}/tw")
    assert "hunter2" not in result.stderr
    tw_env.extra.update(variables)
    server = ServerProcess(tw_env, ready_path="/livez")
    try:
        ready = httpx.get(f"{server.url}/readyz", timeout=5)
        assert ready.status_code == 503
        log = server.log()
        assert f"cannot connect to the database at 127.0.0.1:{port}/tw" in log
        assert "serving anyway, not ready until it is reachable" in log
        assert "hunter2" not in log
        assert "Traceback" not in log
    finally:
        server.stop()


def test_an_unmigrated_schema_asks_for_migrate(tw_env: TokenwardEnv) -> None:
    tw_env.cli("migrate")
    off = {"TOKENWARD_AUTO_MIGRATE": "false"}
    with_alembic = tw_env.home / "tw.db"
    with sqlite3.connect(with_alembic) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    result = tw_env.cli("serve", "--port", str(tw_env.port), env=off, check=False)
    _one_line(result, f"the database at {with_alembic} is not migrated")
    assert result.stderr.rstrip().endswith("run `tokenward migrate`")


COMMANDS = [
    ("serve",),
    ("migrate",),
    ("apis", "list"),
    ("clients", "create", "--name", "c"),
    ("keys", "rotate"),
    ("keys", "delete", "kid"),
    ("audit", "list"),
    ("doctor",),
    ("export",),
    ("apply", "tokenward.yaml"),
]


def test_every_command_reports_a_bad_setting_in_one_line(
    cli_env: TokenwardEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (cli_env.home / "tokenward.yaml").write_text("apis: []\n")
    for args in COMMANDS:
        result = _run(capsys, monkeypatch, args, {"TOKENWARD_MAX_TOKEN_TTL": "a day"})
        _one_line(result, "invalid TOKENWARD_MAX_TOKEN_TTL=a day")
    # The real script too (a subprocess), for the command that starts the server.
    result = cli_env.cli("serve", env={"TOKENWARD_MAX_TOKEN_TTL": "a day"}, check=False)
    _one_line(result, "invalid TOKENWARD_MAX_TOKEN_TTL=a day")


def test_a_misspelt_variable_is_named_with_the_closest_setting(
    cli_env: TokenwardEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(capsys, monkeypatch, ("apis", "list"), {"TOKENWARD_TOKN_TTL": "60"})
    assert result.stderr.splitlines()[0] == (
        "warning: unknown variable TOKENWARD_TOKN_TTL is ignored; did you mean TOKENWARD_TOKEN_TTL?"
    )


def test_secrets_from_files(tw_env: TokenwardEnv) -> None:
    """The server reads its secrets from files (Kubernetes, systemd credentials); the CLI
    given the same values in variables agrees with it."""
    pepper, kek = secrets.token_hex(32), secrets.token_hex(32)
    (tw_env.home / "pepper").write_text(pepper + "\n")
    (tw_env.home / "kek").write_text(kek + "\n")
    files = {
        "TOKENWARD_PEPPER_FILE": str(tw_env.home / "pepper"),
        "TOKENWARD_KEY_ENCRYPTION_KEY_FILE": str(tw_env.home / "kek"),
    }
    with tokenward_server(tw_env, extra=files):
        values = {
            "TOKENWARD_PEPPER_FILE": "",
            "TOKENWARD_KEY_ENCRYPTION_KEY_FILE": "",
            "TOKENWARD_PEPPER": pepper,
            "TOKENWARD_KEY_ENCRYPTION_KEY": kek,
        }
        tw_env.cli("apis", "create", "--identifier", API, "--name", "A", "--scope", "r", env=values)
        created = tw_env.cli_json("clients", "create", "--name", "c", "--scope", "r")
        assert _token(tw_env, created["client_id"], created["client_secret"]).status_code == 200
    assert not (tw_env.home / "secrets.json").exists()


def test_doctor(tw_env: TokenwardEnv) -> None:
    pepper = secrets.token_hex(32)
    extra = {"TOKENWARD_PEPPER": pepper, "TOKENWARD_KEY_ENCRYPTION_KEY": secrets.token_hex(32)}
    with tokenward_server(tw_env, extra=extra):
        well = tw_env.cli("doctor")
        assert well.stdout.endswith("all is well\n")
        discovery = f"{tw_env.issuer}/.well-known/oauth-authorization-server"
        assert f"  ok    the issuer answers at {discovery}\n" in well.stdout
        assert "  TOKENWARD_PEPPER" in well.stdout
        assert pepper not in well.stdout + well.stderr
        assert " ES256  active " in well.stdout
    down = tw_env.cli("doctor", check=False)
    assert down.returncode == 1
    assert f"  FAIL  the issuer does not answer at {discovery}: connection refused" in down.stdout


def test_postgresql_unmigrated_then_another_pepper(postgres_url: str, tmp_path: Path) -> None:
    """On PostgreSQL (no development secrets): an unmigrated schema asks for ``migrate``;
    once set up, another pepper is refused, naming the setting and the database's host."""
    extra = {
        "TOKENWARD_PEPPER": secrets.token_hex(32),
        "TOKENWARD_KEY_ENCRYPTION_KEY": secrets.token_hex(32),
        "TOKENWARD_AUTO_MIGRATE": "false",
    }
    env = TokenwardEnv(home=tmp_path, database_url=postgres_url, extra=extra)
    _one_line(env.cli("apis", "list", check=False), "the database at 127.0.0.1:")
    assert env.cli("migrate").stdout.startswith("schema upgraded to ")
    env.cli("apis", "create", "--identifier", API, "--name", "A", "--scope", "r")
    result = env.cli("apis", "list", env={"TOKENWARD_PEPPER": secrets.token_hex(32)}, check=False)
    _one_line(result, "TOKENWARD_PEPPER does not match the one the database at 127.0.0.1:")
    assert env.cli("apis", "list").stdout.startswith(API)


def test_a_port_in_use_and_a_newer_schema_are_one_line(
    cli_env: TokenwardEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run(capsys, monkeypatch, ("serve", "--port", str(port)), {})
        _one_line(result, f"port {port} on 127.0.0.1 is in use (--host, --port)")
    assert _run(capsys, monkeypatch, ("migrate",), {}).returncode == 0
    database = cli_env.home / "tw.db"
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    result = _run(capsys, monkeypatch, ("apis", "list"), {})
    _one_line(result, f"the database at {database} has schema revision 9999, newer than")


def test_the_issuer_recorded_in_the_home_and_what_wins_over_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tokenward token`` (and the example API) without ``TOKENWARD_ISSUER``: the issuer the
    home's server recorded, else the default port; the variable always wins."""
    monkeypatch.delenv("TOKENWARD_ISSUER", raising=False)
    monkeypatch.setenv("TOKENWARD_HOME", str(tmp_path))
    assert local_issuer() == DEFAULT_ISSUER
    (tmp_path / ISSUER_FILE).write_text("http://127.0.0.1:18000\n")
    assert local_issuer() == "http://127.0.0.1:18000"
    monkeypatch.setenv("TOKENWARD_ISSUER", "https://auth.example.com")
    assert local_issuer() == "https://auth.example.com"
