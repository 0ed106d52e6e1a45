"""Transport and issuer rules enforced at start-up (RFC 6749 §3.2, §10.9; RFC 8414 §2).

TE-28: "TLS MUST be required": an ``http://`` issuer refuses to start unless it is loopback
(development, with a warning) or ``allow_insecure_http`` is set. TE-29: the token endpoint URI
is derived from the issuer, which may have no fragment (nor query); such an issuer is rejected.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.server.harness import make_settings
from tests.support.tokenward_server import TokenwardEnv
from tokenward.server.app import create_app
from tokenward.server.settings import Settings


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
