"""Transport and issuer rules enforced at start-up (RFC 6749 §3.2, §10.9; RFC 8414 §2).

TE-28: "TLS MUST be required": an ``http://`` issuer refuses to start unless it is loopback
(development, with a warning) or ``allow_insecure_http`` is set. TE-29: the token endpoint URI
is derived from the issuer, which may have no fragment (nor query); such an issuer is rejected.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.server.harness import make_settings
from tests.support.tokenward_server import TokenwardEnv
from tokenward.server.app import create_app
from tokenward.server.settings import ConfigError, Settings, load_settings, unknown_variables


@pytest.mark.parametrize(
    "issuer",
    ["http://as.example", "http://10.0.0.5:8000", "http://as.example/tenant"],
)
def test_plain_http_issuer_refuses_to_start(tmp_path: Path, issuer: str) -> None:
    settings = make_settings(tmp_path, issuer=issuer)
    with pytest.raises(ValueError, match="only allowed on a loopback host"):
        settings.check_transport()
    with pytest.raises(ValueError, match="only allowed on a loopback host"):
        create_app(settings, configure_logs=False)


@pytest.mark.parametrize(
    ("issuer", "overrides"),
    [
        ("https://as.example", {}),
        ("http://127.0.0.1:8000", {}),
        ("http://localhost:8000", {}),
        ("http://[::1]:8000", {}),
        ("http://as.example", {"allow_insecure_http": True}),
    ],
)
def test_allowed_issuers(tmp_path: Path, issuer: str, overrides: dict[str, Any]) -> None:
    make_settings(tmp_path, issuer=issuer, **overrides).check_transport()


def test_loopback_http_warns_loudly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tokenward")
    create_app(make_settings(tmp_path, issuer="http://127.0.0.1:8000"), configure_logs=False)
    assert any("INSECURE ISSUER" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "issuer",
    [
        "https://as.example#x",
        "https://as.example/#x",
        "https://as.example/path#",
        "https://as.example?tenant=a",
        "ftp://as.example",
        "as.example",
        "https://",
    ],
)
def test_issuer_with_fragment_query_or_bad_scheme_is_rejected(tmp_path: Path, issuer: str) -> None:
    with pytest.raises(ValidationError):
        make_settings(tmp_path, issuer=issuer)


def test_issuer_trailing_slash_is_normalised(tmp_path: Path) -> None:
    assert make_settings(tmp_path, issuer="https://as.example/").issuer == "https://as.example"


def test_tokenward_serve_refuses_a_public_http_issuer(tmp_path: Path) -> None:
    """TE-28 through the real CLI: it exits before binding a port."""
    env = TokenwardEnv(home=tmp_path, extra={"TOKENWARD_ISSUER": "http://as.example"})
    proc = env.cli("serve", "--port", str(env.port), check=False)
    assert proc.returncode != 0
    assert "only allowed on a loopback host" in proc.stderr


def test_default_policy_values() -> None:
    """A rotated-in key is published longer than verifiers cache the JWKS before it signs;
    tokens are short-lived by default (AT-12: 15 minutes)."""
    fields = Settings.model_fields
    assert fields["key_publication_delay"].default >= fields["jwks_max_age"].default
    assert fields["token_ttl"].default <= 900
    assert fields["allow_insecure_http"].default is False


# -- one home, checked values (issue 11) ----------------------------------------------------


def _load(monkeypatch: pytest.MonkeyPatch, **variables: str) -> Settings:
    for name in list(os.environ):
        if name.startswith("TOKENWARD_"):
            monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return load_settings(_env_file=None)


def test_state_lives_in_one_absolute_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    default = _load(monkeypatch)
    home = tmp_path / "xdg" / "tokenward"
    assert default.home_dir == home
    assert default.database_url == f"sqlite:///{home}/tokenward.db"
    assert default.secrets_file == home / "secrets.json"
    # A relative home is made absolute; relative SQLite paths are inside the home.
    relative = _load(
        monkeypatch, TOKENWARD_HOME="state", TOKENWARD_DATABASE_URL="sqlite:///db/tw.db"
    )
    assert relative.sqlite_path == tmp_path / "state" / "db" / "tw.db"
    assert relative.secrets_file == tmp_path / "state" / "secrets.json"
    absolute = _load(monkeypatch, TOKENWARD_DATABASE_URL=f"sqlite:///{tmp_path}/x.db")
    assert absolute.sqlite_path == tmp_path / "x.db"


def test_secrets_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pepper").write_text("p" * 40 + "\n")
    (tmp_path / "old").write_text('{"p0": "' + "o" * 40 + '"}')
    settings = _load(
        monkeypatch,
        TOKENWARD_PEPPER_FILE=str(tmp_path / "pepper"),
        TOKENWARD_PREVIOUS_PEPPERS_FILE=str(tmp_path / "old"),
    )
    assert settings.pepper is not None
    assert settings.pepper.get_secret_value() == "p" * 40
    assert settings.previous_peppers["p0"].get_secret_value() == "o" * 40


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"TOKENWARD_TOKEN_TTL": "abc"},
            "invalid TOKENWARD_TOKEN_TTL=abc: input should be a valid integer, unable to parse "
            "string as an integer (allowed: an integer >= 30 and <= 86400)",
        ),
        (
            {"TOKENWARD_AUDIT_LOG": "maybe"},
            "invalid TOKENWARD_AUDIT_LOG=maybe: input should be a valid boolean, unable to "
            "interpret input (allowed: true or false)",
        ),
        (
            {"TOKENWARD_SIGNING_ALG": "HS256"},
            "invalid TOKENWARD_SIGNING_ALG=HS256: input should be 'ES256', 'RS256', 'PS256' or "
            "'EdDSA'",
        ),
        (
            {"TOKENWARD_DATABASE_URL": "mysql://u:hunter2@db/x"},
            "invalid TOKENWARD_DATABASE_URL: unsupported database 'mysql': use sqlite:///PATH "
            "or postgresql://USER:PASSWORD@HOST:PORT/NAME",
        ),
        (
            {"TOKENWARD_ISSUER": "https://as.example", "TOKENWARD_KEY_ENCRYPTION_KEY": "short"},
            "TOKENWARD_KEY_ENCRYPTION_KEY is shorter than 32 bytes, which is only allowed with "
            "a loopback issuer: generate one with `openssl rand -hex 32`",
        ),
        (
            {"TOKENWARD_PEPPER_FILE": "/nonexistent"},
            "TOKENWARD_PEPPER_FILE: cannot read /nonexistent: No such file or directory",
        ),
    ],
)
def test_a_bad_setting_is_one_line(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(monkeypatch, **variables)
    assert str(caught.value) == message


def test_a_short_secret_is_accepted_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _load(monkeypatch, TOKENWARD_PEPPER="dev", TOKENWARD_KEY_ENCRYPTION_KEY="dev")
    assert settings.is_loopback_issuer


def test_unknown_variables_are_named_with_the_closest_setting() -> None:
    assert unknown_variables(
        {
            "TOKENWARD_PEPER": "x",
            "TOKENWARD_ZZZZ": "1",
            "TOKENWARD_CLIENT_ID": "c",
            "TOKENWARD_PEPPER_FILE": "/f",
            "TOKENWARD_TEST_POSTGRES": "off",
            "PATH": "/bin",
        }
    ) == [
        "unknown variable TOKENWARD_PEPER is ignored; did you mean TOKENWARD_PEPPER?",
        "unknown variable TOKENWARD_ZZZZ is ignored",
    ]
