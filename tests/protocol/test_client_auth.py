"""Client authentication, sans-IO (RFC 6749 §2.3, §2.3.1, §5.2; RFC 7521 §4.2).

Checklist IDs: TE-10, TE-11, TE-12, TE-13, TE-14 (one ``invalid_client`` for every cause, with
``WWW-Authenticate`` only when Basic was used or nothing was sent), TE-15 (one method per
request), TE-16 (body client_id agrees with Basic), TE-17 (Basic scheme shapes), CA-01, CA-02,
CA-03 (method binding), CA-04 (empty secret), CA-23 (expired secret). Over HTTP, with exact
bodies and headers: tests/server/test_token_endpoint.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from tokenward.protocol.client_auth import (
    ASSERTION_TYPE,
    PresentedCredentials,
    check_client_state,
    check_secret,
    extract_credentials,
)
from tokenward.protocol.errors import InvalidClient, InvalidRequest, OAuthError
from tokenward.protocol.model import Client, ClientSecret

REALM = "tokenward"
BASIC_C1 = b"Basic YzE6czE="

Expected = PresentedCredentials | tuple[type[OAuthError], str, bool]

EXTRACT_CASES: list[tuple[str, bytes | None, dict[str, str], Expected]] = [
    (
        "CA-01 basic",
        BASIC_C1,
        {},
        PresentedCredentials("client_secret_basic", "c1", "s1", used_basic=True),
    ),
    (
        "TE-16 basic with the same body id",
        BASIC_C1,
        {"client_id": "c1"},
        PresentedCredentials("client_secret_basic", "c1", "s1", used_basic=True),
    ),
    (
        "CA-02 body",
        None,
        {"client_id": "c1", "client_secret": "s1"},
        PresentedCredentials("client_secret_post", "c1", "s1"),
    ),
    (
        "assertion",
        None,
        {"client_assertion_type": ASSERTION_TYPE, "client_assertion": "a.b.c", "client_id": "c1"},
        PresentedCredentials("jwt_assertion", "c1", assertion="a.b.c"),
    ),
    ("TE-11 nothing", None, {}, (InvalidClient, "client authentication failed", True)),
    (
        "TE-10 client_id only",
        None,
        {"client_id": "c1"},
        (InvalidClient, "client authentication failed", True),
    ),
    ("other scheme", b"Bearer abc", {}, (InvalidClient, "client authentication failed", True)),
    (
        "TE-15 basic plus body secret",
        BASIC_C1,
        {"client_secret": "s1"},
        (InvalidRequest, "use only one client authentication method", False),
    ),
    (
        "TE-15 basic plus assertion",
        BASIC_C1,
        {"client_assertion_type": ASSERTION_TYPE, "client_assertion": "x"},
        (InvalidRequest, "use only one client authentication method", False),
    ),
    (
        "TE-15 secret plus assertion",
        None,
        {
            "client_id": "c1",
            "client_secret": "s1",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": "x",
        },
        (InvalidRequest, "use only one client authentication method", False),
    ),
    (
        "TE-16 body id differs",
        BASIC_C1,
        {"client_id": "c2"},
        (InvalidRequest, "client_id does not match the credentials", False),
    ),
    (
        "secret without id",
        None,
        {"client_secret": "s1"},
        (InvalidRequest, "client_id is required with client_secret", False),
    ),
    ("TE-17 Basic alone", b"Basic", {}, (InvalidRequest, "malformed Basic credentials", False)),
    (
        "TE-17 Basic and a space",
        b"Basic ",
        {},
        (InvalidRequest, "malformed Basic credentials", False),
    ),
    ("TE-17 no colon", b"Basic Zm9v", {}, (InvalidRequest, "malformed Basic credentials", False)),
    ("TE-17 not base64", b"Basic !!!", {}, (InvalidRequest, "malformed Basic credentials", False)),
    (
        "CA-04 empty secret",
        b"Basic " + base64.b64encode(b"c1:"),
        {},
        (InvalidRequest, "client_secret must be provided in the Authorization header", False),
    ),
    (
        "control character in id",
        b"Basic " + base64.b64encode(b"c%0D%0ASet-Cookie:s1"),
        {},
        (InvalidRequest, "client_id is malformed", False),
    ),
    (
        "oversized id",
        None,
        {"client_id": "c" * 256, "client_secret": "s"},
        (InvalidRequest, "client_id is malformed", False),
    ),
    (
        "CA-06 wrong assertion type",
        None,
        {"client_assertion_type": "urn:other", "client_assertion": "x"},
        (InvalidRequest, "unsupported client_assertion_type", False),
    ),
    (
        "CA-06 no assertion",
        None,
        {"client_assertion_type": ASSERTION_TYPE},
        (InvalidRequest, "client_assertion is required", False),
    ),
]


@pytest.mark.parametrize(
    ("authorization", "params", "expected"),
    [pytest.param(a, p, e, id=name) for name, a, p, e in EXTRACT_CASES],
)
def test_extract_credentials(
    authorization: bytes | None, params: dict[str, str], expected: Expected
) -> None:
    if isinstance(expected, PresentedCredentials):
        assert extract_credentials(authorization, params, realm=REALM) == expected
        return
    cls, description, challenge = expected
    with pytest.raises(cls) as info:
        extract_credentials(authorization, params, realm=REALM)
    error = info.value
    assert error.body() == {"error": cls.error, "error_description": description}
    assert error.status == (401 if cls is InvalidClient else 400)
    assert error.headers() == ({"WWW-Authenticate": 'Basic realm="tokenward"'} if challenge else {})


# -- step two: the registered client ---------------------------------------------------------

PEPPER = b"pepper"


def digest(secret: str, stored: str) -> str | None:
    if not stored.startswith("hmac-sha256$p1$"):
        return None
    return "hmac-sha256$p1$" + hmac.new(PEPPER, secret.encode(), hashlib.sha256).hexdigest()


def record(secret_id: str, secret: str, *, expires_at: int | None = None) -> ClientSecret:
    stored = digest(secret, "hmac-sha256$p1$")
    assert stored is not None
    return ClientSecret(secret_id, stored, expires_at=expires_at)


NOW = 1_800_000_000
C1 = Client("c1", "one", secrets=(record("old", "s1", expires_at=NOW + 10), record("new", "s1b")))
BASIC = PresentedCredentials("client_secret_basic", "c1", "s1", used_basic=True)
POST = PresentedCredentials("client_secret_post", "c1", "s1")


@pytest.mark.parametrize(
    ("client", "creds", "reason"),
    [
        pytest.param(None, BASIC, "unknown client", id="TE-14 unknown"),
        pytest.param(
            Client("c1", "x", enabled=False), BASIC, "client disabled", id="CA-23 disabled"
        ),
        pytest.param(
            Client("c1", "x", auth_methods=frozenset({"private_key_jwt"})),
            BASIC,
            "method client_secret_basic not allowed",
            id="CA-03 private_key_jwt client",
        ),
        pytest.param(
            Client("c1", "x", auth_methods=frozenset({"client_secret_basic"})),
            POST,
            "method client_secret_post not allowed",
            id="CA-02 basic-only client",
        ),
        pytest.param(
            Client("c1", "x", auth_methods=frozenset({"client_secret_post"})),
            BASIC,
            "method client_secret_basic not allowed",
            id="CA-03 post-only client",
        ),
    ],
)
def test_client_state_failures_are_one_invalid_client(
    client: Client | None, creds: PresentedCredentials, reason: str
) -> None:
    with pytest.raises(InvalidClient) as info:
        check_client_state(client, creds, REALM)
    assert info.value.reason == reason
    assert info.value.body() == {
        "error": "invalid_client",
        "error_description": "client authentication failed",
    }
    challenge = {"WWW-Authenticate": 'Basic realm="tokenward"'} if creds.used_basic else {}
    assert info.value.headers() == challenge


@pytest.mark.parametrize(
    ("client", "creds"),
    [
        pytest.param(Client("c1", "x"), BASIC, id="CA-01 basic client"),
        pytest.param(Client("c1", "x"), POST, id="CA-02 post client"),
        pytest.param(
            Client("c1", "x", auth_methods=frozenset({"private_key_jwt"})),
            PresentedCredentials("jwt_assertion", "c1", assertion="a.b.c"),
            id="an assertion: the method is decided once its alg is known",
        ),
    ],
)
def test_client_state_passes(client: Client, creds: PresentedCredentials) -> None:
    assert check_client_state(client, creds, REALM) is client


@pytest.mark.parametrize(
    ("secret", "now", "matched"),
    [
        pytest.param("s1", NOW, "old", id="CA-23 old secret during overlap"),
        pytest.param("s1b", NOW, "new", id="CA-23 new secret"),
        pytest.param("s1", NOW + 10, None, id="CA-23 old secret after overlap"),
        pytest.param("s1b", NOW + 10**6, "new", id="no expiry"),
        pytest.param("wrong", NOW, None, id="TE-13 wrong secret"),
        pytest.param("S1", NOW, None, id="case matters"),
        pytest.param("s1 ", NOW, None, id="no trimming"),
    ],
)
def test_check_secret(secret: str, now: int, matched: str | None) -> None:
    creds = PresentedCredentials("client_secret_basic", "c1", secret, used_basic=True)
    if matched is not None:
        assert check_secret(C1, creds, digest=digest, now=now, realm=REALM) == matched
        return
    with pytest.raises(InvalidClient) as info:
        check_secret(C1, creds, digest=digest, now=now, realm=REALM)
    assert info.value.headers() == {"WWW-Authenticate": 'Basic realm="tokenward"'}


def test_unknown_digest_format_never_matches() -> None:
    client = Client("c1", "x", secrets=(ClientSecret("legacy", "bcrypt$whatever"),))
    with pytest.raises(InvalidClient):
        check_secret(client, POST, digest=digest, now=NOW, realm=REALM)


def test_reprs_hide_secrets() -> None:
    assert "s1" not in repr(BASIC)
    assert "a.b.c" not in repr(PresentedCredentials("jwt_assertion", "c1", assertion="a.b.c"))
