"""The client credentials grant decisions (RFC 6749 §4.4, §3.3; RFC 8707; RFC 9068 §3).

Sans-IO, as request parameters -> Grant or the RFC 6749 §5.2 error. Checklist IDs: TE-07,
TE-08, TE-09 (grant_type), TE-22, TE-23, TE-24 (scope policy: never narrowed, default when
omitted), AT-07 (default audience, invalid_target, ambiguous scopes), AT-12 (lifetime caps).
The same decisions over HTTP are in tests/server/test_token_endpoint.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tokenward.protocol.client_credentials import (
    Grant,
    TokenPolicy,
    check_grant_type,
    resolve_grant,
)
from tokenward.protocol.errors import (
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    OAuthError,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from tokenward.protocol.model import Api, Client, Registry

API = "https://api.example"
API2 = "https://api2.example"
POLICY = TokenPolicy(default_ttl=900, max_ttl=3600)

REGISTRY_APIS = [
    Api(API, "Example", frozenset({"read", "write"})),
    Api(API2, "Second", frozenset({"api2:read"}), token_ttl=600, signing_alg="RS256"),
]
CLIENTS = {
    "c1": Client("c1", "one", scopes=frozenset({"read", "write"})),
    "c-default": Client(
        "c-default",
        "defaults",
        scopes=frozenset({"read", "write"}),
        default_scopes=frozenset({"read"}),
    ),
    "c-multi": Client("c-multi", "multi", scopes=frozenset({"read", "api2:read"})),
    "c-api-only": Client("c-api-only", "api grant", apis=frozenset({API2})),
    "c-none": Client("c-none", "nothing"),
    "c-ttl": Client("c-ttl", "ttl", scopes=frozenset({"read"}), token_ttl=299),
    "c-long": Client("c-long", "long", scopes=frozenset({"read"}), token_ttl=86400),
    "c-rs": Client("c-rs", "rs", scopes=frozenset({"api2:read"})),
    # A scope granted to the client that no API defines (the API dropped it).
    "c-orphan": Client("c-orphan", "orphan", scopes=frozenset({"read", "gone"})),
}
REGISTRY = Registry.build(REGISTRY_APIS, list(CLIENTS.values()))


@dataclass(frozen=True)
class Granted:
    audience: str
    scopes: frozenset[str]
    ttl: int
    alg: str = "ES256"


GRANT_CASES: list[tuple[str, str, dict[str, str], Granted | tuple[type[OAuthError], str]]] = [
    ("TE-23 no scope: all granted", "c1", {}, Granted(API, frozenset({"read", "write"}), 900)),
    ("TE-23 configured default", "c-default", {}, Granted(API, frozenset({"read"}), 900)),
    ("AT-06 one scope", "c1", {"scope": "read"}, Granted(API, frozenset({"read"}), 900)),
    (
        "star: every granted scope",
        "c1",
        {"scope": "*"},
        Granted(API, frozenset({"read", "write"}), 900),
    ),
    (
        "TE-22 never narrowed",
        "c1",
        {"scope": "read write unknown"},
        (InvalidScope, "requested scope is not granted to this client"),
    ),
    (
        "TE-24 case-sensitive",
        "c1",
        {"scope": "READ"},
        (InvalidScope, "requested scope is not granted to this client"),
    ),
    (
        "TE-24 outside allow-list",
        "c-default",
        {"scope": "api2:read"},
        (InvalidScope, "requested scope is not granted to this client"),
    ),
    ("TE-24 malformed", "c1", {"scope": 're"ad'}, (InvalidScope, "scope is malformed")),
    (
        "star combined",
        "c1",
        {"scope": "* read"},
        (InvalidScope, "'*' cannot be combined with other scopes"),
    ),
    (
        "AT-07 ambiguous scopes",
        "c-multi",
        {"scope": "read api2:read"},
        (InvalidScope, "scopes belong to several APIs; pass resource to choose one"),
    ),
    (
        "AT-07 ambiguous default",
        "c-multi",
        {},
        (InvalidScope, "scopes belong to several APIs; pass resource to choose one"),
    ),
    (
        "AT-07 resource picks",
        "c-multi",
        {"resource": API2},
        Granted(API2, frozenset({"api2:read"}), 600, "RS256"),
    ),
    (
        "AT-07 resource plus star",
        "c-multi",
        {"resource": API, "scope": "*"},
        Granted(API, frozenset({"read"}), 900),
    ),
    (
        "AT-07 scope of another resource",
        "c-multi",
        {"resource": API, "scope": "api2:read"},
        (InvalidScope, "requested scope does not belong to the requested resource"),
    ),
    (
        "AT-07 unknown resource",
        "c1",
        {"resource": "https://other.example"},
        (InvalidTarget, "the requested resource is not available to this client"),
    ),
    (
        "AT-07 resource not granted",
        "c1",
        {"resource": API2},
        (InvalidTarget, "the requested resource is not available to this client"),
    ),
    ("API granted without scopes", "c-api-only", {}, Granted(API2, frozenset(), 600, "RS256")),
    ("no API at all", "c-none", {}, (InvalidScope, "the client has access to no API")),
    (
        "client lifetime (seed 003)",
        "c-ttl",
        {"scope": "read"},
        Granted(API, frozenset({"read"}), 299),
    ),
    ("AT-12 lifetime capped", "c-long", {}, Granted(API, frozenset({"read"}), 3600)),
    ("AT-01 RS256 API", "c-rs", {}, Granted(API2, frozenset({"api2:read"}), 600, "RS256")),
    (
        "a granted scope no API defines",
        "c-orphan",
        {"scope": "gone"},
        (InvalidScope, "requested scope is not defined"),
    ),
    (
        "a defined scope with an orphan one",
        "c-orphan",
        {"scope": "read gone"},
        (InvalidScope, "requested scope is not defined"),
    ),
]


@pytest.mark.parametrize(
    ("client_id", "params", "expected"),
    [pytest.param(c, p, e, id=name) for name, c, p, e in GRANT_CASES],
)
def test_resolve_grant(
    client_id: str, params: dict[str, str], expected: Granted | tuple[type[OAuthError], str]
) -> None:
    client = CLIENTS[client_id]
    if isinstance(expected, Granted):
        grant = resolve_grant(client, params, REGISTRY, POLICY)
        assert grant == Grant(expected.audience, expected.scopes, expected.ttl, expected.alg, "jwt")
    else:
        cls, description = expected
        with pytest.raises(cls) as info:
            resolve_grant(client, params, REGISTRY, POLICY)
        assert info.value.body() == {"error": cls.error, "error_description": description}
        assert info.value.status == 400


GRANT_TYPE_CASES: list[tuple[str, dict[str, str], Client | None, OAuthError | None]] = [
    ("TE-07 missing", {}, None, InvalidRequest("grant_type is required")),
    ("TE-08 password", {"grant_type": "password"}, None, UnsupportedGrantType()),
    ("TE-08 case", {"grant_type": "Client_Credentials"}, None, UnsupportedGrantType()),
    ("ok", {"grant_type": "client_credentials"}, CLIENTS["c1"], None),
    (
        "TE-09 not allowed",
        {"grant_type": "client_credentials"},
        Client("c9", "no grant", grant_types=frozenset()),
        UnauthorizedClient(),
    ),
]


@pytest.mark.parametrize(
    ("params", "client", "expected"),
    [pytest.param(p, c, e, id=name) for name, p, c, e in GRANT_TYPE_CASES],
)
def test_check_grant_type(
    params: dict[str, str], client: Client | None, expected: OAuthError | None
) -> None:
    if expected is None:
        check_grant_type(params, client)
        return
    with pytest.raises(OAuthError) as info:
        check_grant_type(params, client)
    assert type(info.value) is type(expected)
    assert info.value.body() == expected.body()
    assert info.value.status == 400
