"""The token endpoint over HTTP, as request -> expected response tables (RFC 6749 §3.2, §4.4).

Each case is one row of checklist sections 1.1 and 1.2 (and catalogue 2.2) with the exact
status, ``error``, ``error_description`` and headers tokenward answers. They run in-process
against the real ASGI app (``create_app``) with the standard registry of harness.py; the same
requests against a real ``tokenward serve`` are in tests/e2e.

Covered here: TE-01 .. TE-24, CA-01 .. CA-05, CA-23 (disabled client; secret rotation is in
tests/server/test_rotation.py and tests/e2e/test_workers.py), AT-07 over HTTP, H1-H3, H6, H8,
H9, H10, H11. Elsewhere: TE-25 and the never-a-500 fuzz in test_fuzz.py, TE-26 in
test_throttle.py, TE-27 in tests/protocol/test_access_token.py, TE-28 / TE-29 in
test_settings.py, TE-30 and AT-* in test_access_tokens.py.

Decisions these tables pin down (checklist **[decide]** items): TE-01 405 with ``Allow: POST``;
TE-03 400 ``invalid_request`` (no 415); TE-10 401 ``invalid_client``; TE-11 401 with a Basic
challenge; TE-22/TE-24 a scope outside the client's grant is ``invalid_scope``, never narrowed;
TE-23 no ``scope`` means the client's default scopes, echoed in ``scope``; CA-02 body
credentials are accepted for clients registered for ``client_secret_post`` (the default
registration allows both secret methods).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest

from tests.server.harness import (
    ACTOR,
    API,
    API2,
    BASIC_ONLY,
    C1,
    C2,
    DEFAULTS,
    DISABLED,
    FORM,
    INVALID_CLIENT,
    MULTI,
    NO_API,
    NO_GRANT,
    ODD,
    PKJWT_ID,
    POST_ONLY,
    REALM_CHALLENGE,
    TTL,
    InProcess,
    asgi_call,
    basic,
    in_process,
    jwt_parts,
    make_settings,
)
from tokenward.protocol.client_auth import ASSERTION_TYPE
from tokenward.server.admin.schemas import ApiCreate, ClientCreate

pytestmark = pytest.mark.anyio

GC = "grant_type=client_credentials"
B_C1 = basic(C1.client_id, C1.secret)
JSON = "application/json"


@dataclass(frozen=True)
class Req:
    body: str | bytes = GC
    auth: str | None = None
    content_type: str | None = FORM
    method: str = "POST"
    query: str = ""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Ok:
    client_id: str
    scope: str | None
    aud: str = API
    expires_in: int = 900


@dataclass(frozen=True)
class Err:
    status: int
    error: str
    description: str
    challenge: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def bad_request(description: str) -> Err:
    return Err(400, "invalid_request", description)


def invalid_client(*, challenge: bool) -> Err:
    return Err(401, "invalid_client", INVALID_CLIENT["error_description"], challenge=challenge)


def invalid_scope(description: str) -> Err:
    return Err(400, "invalid_scope", description)


def post(client_id: str, secret: str, extra: str = "") -> str:
    return f"{GC}&client_id={quote_plus(client_id)}&client_secret={quote_plus(secret)}{extra}"


def js(doc: object) -> bytes:
    return json.dumps(doc).encode()


CT_ERROR = bad_request("Content-Type must be application/x-www-form-urlencoded")
NOT_GRANTED = invalid_scope("requested scope is not granted to this client")
MALFORMED_SCOPE = invalid_scope("scope is malformed")
MALFORMED_BASIC = bad_request("malformed Basic credentials")
POST_ONLY_ERR = Err(
    405,
    "invalid_request",
    "the token endpoint accepts POST only",
    headers={"allow": "POST"},
)

CASES: list[tuple[str, Req, Ok | Err]] = [
    # -- TE-01: POST only ----------------------------------------------------------------------
    (
        "TE-01 GET",
        Req(method="GET", query=GC, body=b"", auth=B_C1, content_type=None),
        POST_ONLY_ERR,
    ),
    ("TE-01 PUT", Req(method="PUT", auth=B_C1), POST_ONLY_ERR),
    ("TE-01 DELETE", Req(method="DELETE", auth=B_C1, body=b""), POST_ONLY_ERR),
    ("TE-01 OPTIONS", Req(method="OPTIONS", body=b"", content_type=None), POST_ONLY_ERR),
    (
        "TE-01/H9 method override ignored",
        Req(method="GET", body=b"", auth=B_C1, headers=(("x-http-method-override", "POST"),)),
        POST_ONLY_ERR,
    ),
    # -- TE-02 / H10: no credentials in the URI -----------------------------------------------
    (
        "TE-02 id and secret in query",
        Req(query="client_id=c1&client_secret=s1"),
        bad_request("credentials must not be sent in the URL"),
    ),
    (
        "TE-02 secret in query with Basic",
        Req(query="client_secret=s1", auth=B_C1),
        bad_request("credentials must not be sent in the URL"),
    ),
    (
        "TE-02 percent-encoded name in query",
        Req(query="client%5Fsecret=s1", auth=B_C1),
        bad_request("credentials must not be sent in the URL"),
    ),
    (
        "TE-02 assertion in query",
        Req(query="client_assertion=x.y.z", auth=B_C1),
        bad_request("credentials must not be sent in the URL"),
    ),
    ("TE-02 harmless query", Req(query="trace=1", auth=B_C1), Ok("c1", "read write")),
    # -- TE-03 / H8: content type -------------------------------------------------------------
    ("TE-03 text/plain", Req(content_type="text/plain", auth=B_C1), CT_ERROR),
    ("TE-03 no content type", Req(content_type=None, auth=B_C1), CT_ERROR),
    ("TE-03 multipart", Req(content_type="multipart/form-data; boundary=x", auth=B_C1), CT_ERROR),
    ("TE-03 xml", Req(content_type="application/xml", auth=B_C1), CT_ERROR),
    (
        "TE-03 latin-1 charset",
        Req(content_type=f"{FORM}; charset=ISO-8859-1", auth=B_C1),
        bad_request("only UTF-8 is accepted"),
    ),
    (
        "TE-03 utf-8 charset (seed 004)",
        Req(content_type=f"{FORM};charset=UTF-8", auth=B_C1),
        Ok("c1", "read write"),
    ),
    (
        "TE-03 quoted charset",
        Req(content_type=f'{FORM}; charset="utf-8"', auth=B_C1),
        Ok("c1", "read write"),
    ),
    (
        "TE-03 upper-case media type",
        Req(content_type=FORM.upper(), auth=B_C1),
        Ok("c1", "read write"),
    ),
    # -- TE-04 empty means omitted ----------------------------------------------------------------
    (
        "TE-04 empty grant_type",
        Req(body="grant_type=", auth=B_C1),
        bad_request("grant_type is required"),
    ),
    ("TE-04 empty scope", Req(body=f"{GC}&scope=", auth=B_C1), Ok("c1", "read write")),
    ("TE-04 empty resource", Req(body=f"{GC}&resource=", auth=B_C1), Ok("c1", "read write")),
    # -- TE-05 unknown parameters ignored ----------------------------------------------------
    ("TE-05 foo=bar", Req(body=f"{GC}&foo=bar", auth=B_C1), Ok("c1", "read write")),
    (
        "TE-05/H2 array syntax",
        Req(body=f"{GC}&scope[]=write&client_id[]=c2", auth=B_C1),
        Ok("c1", "read write"),
    ),
    # -- TE-06 / H1 repeated parameters ----------------------------------------------------------
    (
        "TE-06 grant_type twice",
        Req(body=f"{GC}&{GC}", auth=B_C1),
        bad_request("parameter grant_type repeated"),
    ),
    (
        "TE-06 scope twice",
        Req(body=f"{GC}&scope=read&scope=write", auth=B_C1),
        bad_request("parameter scope repeated"),
    ),
    (
        "TE-06 client_id twice",
        Req(body=f"{GC}&client_id=c1&client_id=c2&client_secret=s1"),
        bad_request("parameter client_id repeated"),
    ),
    (
        "H1 client_secret twice",
        Req(body=f"{GC}&client_id=c1&client_secret=x&client_secret=s1"),
        bad_request("parameter client_secret repeated"),
    ),
    # -- TE-07 / TE-08 grant_type ----------------------------------------------------------------
    (
        "TE-07 no grant_type",
        Req(body="scope=read", auth=B_C1),
        bad_request("grant_type is required"),
    ),
    (
        "TE-08 password grant",
        Req(body="grant_type=password&username=u&password=p", auth=B_C1),
        Err(400, "unsupported_grant_type", "only grant_type=client_credentials is supported"),
    ),
    (
        "TE-08 authorization_code",
        Req(body="grant_type=authorization_code&code=x", auth=B_C1),
        Err(400, "unsupported_grant_type", "only grant_type=client_credentials is supported"),
    ),
    (
        "TE-08 refresh_token",
        Req(body="grant_type=refresh_token&refresh_token=x", auth=B_C1),
        Err(400, "unsupported_grant_type", "only grant_type=client_credentials is supported"),
    ),
    # -- TE-09 unauthorized_client ---------------------------------------------------------------
    (
        "TE-09 grant not enabled",
        Req(auth=basic(NO_GRANT.client_id, NO_GRANT.secret)),
        Err(400, "unauthorized_client", "client is not allowed to use this grant type"),
    ),
    # -- TE-10 / TE-11 no client authentication ---------------------------------------------------
    ("TE-10 client_id only", Req(body=f"{GC}&client_id=c1"), invalid_client(challenge=True)),
    (
        "TE-10 key client with id only",
        Req(body=f"{GC}&client_id={PKJWT_ID}"),
        invalid_client(challenge=True),
    ),
    ("TE-11 no credentials", Req(), invalid_client(challenge=True)),
    ("TE-11 other scheme", Req(auth="Bearer abc"), invalid_client(challenge=True)),
    # -- TE-12 .. TE-14 failed authentication ----------------------------------------------------
    ("TE-12 Basic wrong secret", Req(auth=basic("c1", "wrong")), invalid_client(challenge=True)),
    ("TE-12 checklist literal", Req(auth="Basic YzE6d3Jvbmc="), invalid_client(challenge=True)),
    ("TE-13 body wrong secret", Req(body=post("c1", "wrong")), invalid_client(challenge=False)),
    ("TE-14 Basic unknown client", Req(auth=basic("nosuch", "s1")), invalid_client(challenge=True)),
    ("TE-14 body unknown client", Req(body=post("nosuch", "s1")), invalid_client(challenge=False)),
    (
        "TE-14 secret of another client",
        Req(auth=basic("c1", C2.secret)),
        invalid_client(challenge=True),
    ),
    # -- TE-15 / TE-16 one method, one client -----------------------------------------------------
    (
        "TE-15 Basic plus body secret",
        Req(body=f"{GC}&client_secret=s1", auth=B_C1),
        bad_request("use only one client authentication method"),
    ),
    (
        "TE-15 Basic plus assertion",
        Req(body=f"{GC}&client_assertion_type={ASSERTION_TYPE}&client_assertion=x.y.z", auth=B_C1),
        bad_request("use only one client authentication method"),
    ),
    (
        "TE-15 body secret plus assertion",
        Req(
            body=post("c1", "s1", f"&client_assertion_type={ASSERTION_TYPE}&client_assertion=x.y.z")
        ),
        bad_request("use only one client authentication method"),
    ),
    (
        "TE-15 two Authorization headers",
        Req(auth=B_C1, headers=(("authorization", B_C1),)),
        bad_request("only one Authorization header"),
    ),
    (
        "TE-16 body client_id differs",
        Req(body=f"{GC}&client_id=c2", auth=B_C1),
        bad_request("client_id does not match the credentials"),
    ),
    (
        "TE-16 body client_id agrees",
        Req(body=f"{GC}&client_id=c1", auth=B_C1),
        Ok("c1", "read write"),
    ),
    # -- TE-17 / H11 Basic encoding ----------------------------------------------------------------
    (
        "TE-17 encoded id and secret",
        Req(auth="Basic YSUzQWI6JTIwJTI1JTI2JTJC"),
        Ok(ODD.client_id, "read"),
    ),
    (
        "TE-17 helper encoding",
        Req(auth=basic(ODD.client_id, ODD.secret)),
        Ok(ODD.client_id, "read"),
    ),
    (
        "TE-17 same client in the body",
        Req(body=post(ODD.client_id, ODD.secret)),
        Ok(ODD.client_id, "read"),
    ),
    ("TE-17 no colon", Req(auth="Basic Zm9v"), MALFORMED_BASIC),
    ("TE-17 not base64", Req(auth="Basic !!!"), MALFORMED_BASIC),
    ("TE-17 scheme alone", Req(auth="Basic"), MALFORMED_BASIC),
    ("TE-17 lower-case scheme", Req(auth="basic YzE6czE="), Ok("c1", "read write")),
    (
        "H11 bad percent-encoding",
        Req(auth="Basic YyVaWjpzMQ=="),
        bad_request("malformed percent-encoding"),
    ),
    ("H11 non-UTF-8", Req(auth="Basic /zpzMQ=="), bad_request("request contains invalid UTF-8")),
    # -- TE-18 / H6 UTF-8 --------------------------------------------------------------------------
    (
        "TE-18 %FF%FE id",
        Req(body=f"{GC}&client_id=%FF%FE&client_secret=x"),
        bad_request("request contains invalid UTF-8"),
    ),
    (
        "H6 overlong",
        Req(body=f"{GC}&client_id=%C0%AF&client_secret=x"),
        bad_request("request contains invalid UTF-8"),
    ),
    (
        "H6 CRLF in id",
        Req(body=f"{GC}&client_id=c%0D%0A1&client_secret=x"),
        bad_request("client_id is malformed"),
    ),
    (
        "H6 NUL in id",
        Req(body=f"{GC}&client_id=c%001&client_secret=x"),
        bad_request("client_id is malformed"),
    ),
    (
        "H6 RLO in id",
        Req(body=f"{GC}&client_id=c%E2%80%AE1&client_secret=x"),
        bad_request("client_id is malformed"),
    ),
    # -- TE-22 .. TE-24 scope ---------------------------------------------------------------------
    ("TE-22 one unknown scope", Req(body=f"{GC}&scope=read+write+unknown", auth=B_C1), NOT_GRANTED),
    ("TE-23 no scope: all granted", Req(auth=B_C1), Ok("c1", "read write")),
    (
        "TE-23 configured default",
        Req(auth=basic(DEFAULTS.client_id, DEFAULTS.secret)),
        Ok(DEFAULTS.client_id, "read"),
    ),
    ("TE-24 newline", Req(body=f"{GC}&scope=read%0Awrite", auth=B_C1), MALFORMED_SCOPE),
    ("TE-24 quotes", Req(body=f"{GC}&scope=%22read%22", auth=B_C1), MALFORMED_SCOPE),
    ("TE-24 backslash", Req(body=f"{GC}&scope=re%5Cad", auth=B_C1), MALFORMED_SCOPE),
    ("TE-24 double space", Req(body=f"{GC}&scope=read%20%20write", auth=B_C1), MALFORMED_SCOPE),
    ("TE-24 case-sensitive", Req(body=f"{GC}&scope=READ", auth=B_C1), NOT_GRANTED),
    ("TE-24 other API's scope", Req(body=f"{GC}&scope=api2:read", auth=B_C1), NOT_GRANTED),
    ("TE-24 one scope", Req(body=f"{GC}&scope=write", auth=B_C1), Ok("c1", "write")),
    ("TE-24 star", Req(body=f"{GC}&scope=*", auth=B_C1), Ok("c1", "read write")),
    (
        "TE-24 star and more",
        Req(body=f"{GC}&scope=*+read", auth=B_C1),
        invalid_scope("'*' cannot be combined with other scopes"),
    ),
    (
        "no API granted",
        Req(auth=basic(NO_API.client_id, NO_API.secret)),
        invalid_scope("the client has access to no API"),
    ),
    # -- AT-07 resource / audience -----------------------------------------------------------------
    (
        "AT-07 unknown resource",
        Req(body=f"{GC}&resource=https://other.example", auth=B_C1),
        Err(400, "invalid_target", "the requested resource is not available to this client"),
    ),
    (
        "AT-07 two resources' scopes",
        Req(body=f"{GC}&scope=read+api2:read", auth=basic(MULTI.client_id, MULTI.secret)),
        invalid_scope("scopes belong to several APIs; pass resource to choose one"),
    ),
    (
        "AT-07 resource picks the audience",
        Req(body=f"{GC}&resource={API2}", auth=basic(MULTI.client_id, MULTI.secret)),
        Ok(MULTI.client_id, "api2:read", aud=API2, expires_in=600),
    ),
    (
        "AT-07 resource given explicitly",
        Req(body=f"{GC}&resource={API}", auth=B_C1),
        Ok("c1", "read write"),
    ),
    (
        "client lifetime (seed 003)",
        Req(auth=basic(TTL.client_id, TTL.secret)),
        Ok(TTL.client_id, "read", expires_in=299),
    ),
    # -- CA-01 .. CA-05 ----------------------------------------------------------------------------
    ("CA-01 Basic", Req(auth=B_C1), Ok("c1", "read write")),
    ("CA-01 checklist literal", Req(auth="Basic YzE6czE="), Ok("c1", "read write")),
    ("CA-02 body for a both-methods client", Req(body=post("c1", "s1")), Ok("c1", "read write")),
    (
        "CA-02 body for a post client",
        Req(body=post(POST_ONLY.client_id, POST_ONLY.secret)),
        Ok(POST_ONLY.client_id, "read"),
    ),
    (
        "CA-02 body for a Basic-only client",
        Req(body=post(BASIC_ONLY.client_id, BASIC_ONLY.secret)),
        invalid_client(challenge=False),
    ),
    (
        "CA-03 Basic for a post-only client",
        Req(auth=basic(POST_ONLY.client_id, POST_ONLY.secret)),
        invalid_client(challenge=True),
    ),
    (
        "CA-03 Basic for a private_key_jwt client",
        Req(auth=basic(PKJWT_ID, "looks-right")),
        invalid_client(challenge=True),
    ),
    (
        "CA-03 body for a private_key_jwt client",
        Req(body=post(PKJWT_ID, "looks-right")),
        invalid_client(challenge=False),
    ),
    (
        "CA-04 empty Basic secret",
        Req(auth="Basic YzE6"),
        bad_request("client_secret must be provided in the Authorization header"),
    ),
    (
        "CA-04 empty body secret",
        Req(body=f"{GC}&client_id=c1&client_secret="),
        invalid_client(challenge=True),
    ),
    (
        "CA-05 JSON body (seed 002)",
        Req(
            body=js(
                {
                    "grant_type": "client_credentials",
                    "client_id": "c1",
                    "client_secret": "s1",
                    "scope": "*",
                }
            ),
            content_type=JSON,
        ),
        Ok("c1", "read write"),
    ),
    (
        "CA-05 JSON with Basic",
        Req(
            body=js({"grant_type": "client_credentials", "scope": "read"}),
            content_type=JSON,
            auth=B_C1,
        ),
        Ok("c1", "read"),
    ),
    (
        "CA-05 duplicate JSON key",
        Req(
            body=b'{"grant_type":"client_credentials","client_id":"c1","client_secret":"x","client_secret":"s1"}',
            content_type=JSON,
        ),
        bad_request("parameter client_secret repeated"),
    ),
    (
        "CA-05 secret as a list",
        Req(
            body=js(
                {"grant_type": "client_credentials", "client_id": "c1", "client_secret": ["s1"]}
            ),
            content_type=JSON,
        ),
        bad_request("parameter client_secret must be a string"),
    ),
    (
        "CA-05 secret as a number",
        Req(
            body=js({"grant_type": "client_credentials", "client_id": "c1", "client_secret": 1}),
            content_type=JSON,
        ),
        bad_request("parameter client_secret must be a string"),
    ),
    (
        "CA-05 nested object",
        Req(
            body=js(
                {
                    "grant_type": "client_credentials",
                    "client_id": {"id": "c1"},
                    "client_secret": "s1",
                }
            ),
            content_type=JSON,
        ),
        bad_request("parameter client_id must be a string"),
    ),
    (
        "CA-05 JSON array",
        Req(body=b'["client_credentials"]', content_type=JSON, auth=B_C1),
        bad_request("JSON body must be an object"),
    ),
    (
        "CA-05 broken JSON",
        Req(body=b'{"grant_type":', content_type=JSON, auth=B_C1),
        bad_request("malformed JSON body"),
    ),
    (
        "CA-05 deep JSON",
        Req(body=b"[" * 5000, content_type=JSON, auth=B_C1),
        bad_request("malformed JSON body"),
    ),
    # -- CA-23 disabled client ---------------------------------------------------------------------
    (
        "CA-23 disabled client, Basic",
        Req(auth=basic(DISABLED.client_id, DISABLED.secret)),
        invalid_client(challenge=True),
    ),
    (
        "CA-23 disabled client, body",
        Req(body=post(DISABLED.client_id, DISABLED.secret)),
        invalid_client(challenge=False),
    ),
    # -- H3 size -----------------------------------------------------------------------------------
    (
        "H3 oversized body",
        Req(body=f"{GC}&pad=" + "a" * 20_000, auth=B_C1),
        Err(413, "invalid_request", "request body too large"),
    ),
    (
        "H3 many fields",
        Req(body=f"{GC}&" + "&".join(f"f{i}=v" for i in range(100)), auth=B_C1),
        bad_request("too many parameters"),
    ),
]


async def send(tw: InProcess, req: Req) -> httpx.Response:
    headers: list[tuple[str, str]] = []
    if req.content_type is not None:
        headers.append(("content-type", req.content_type))
    if req.auth is not None:
        headers.append(("authorization", req.auth))
    headers.extend(req.headers)
    url = "/token" + (f"?{req.query}" if req.query else "")
    body = req.body.encode() if isinstance(req.body, str) else req.body
    return await tw.http.request(req.method, url, content=body or None, headers=headers)


def assert_no_store(response: httpx.Response) -> None:
    """TE-21: every token-endpoint response, success or error, is not to be cached."""
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


def assert_ok(response: httpx.Response, expected: Ok) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    # TE-19: access_token, token_type, expires_in; TE-20: no refresh token; TE-22: scope.
    expected_keys = {"access_token", "token_type", "expires_in"} | (
        {"scope"} if expected.scope else set()
    )
    assert set(body) == expected_keys
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == expected.expires_in
    assert body.get("scope") == expected.scope
    header, claims = jwt_parts(body["access_token"])
    assert header["typ"] == "at+jwt"
    assert claims["client_id"] == claims["sub"] == expected.client_id
    assert claims["aud"] == expected.aud
    assert claims.get("scope") == expected.scope
    assert claims["exp"] - claims["iat"] == expected.expires_in


def assert_error(response: httpx.Response, expected: Err) -> None:
    assert response.status_code == expected.status, response.text
    assert response.json() == {"error": expected.error, "error_description": expected.description}
    assert response.headers.get("www-authenticate") == (
        REALM_CHALLENGE if expected.challenge else None
    )
    for name, value in expected.headers.items():
        assert response.headers[name] == value
    assert "access_token" not in response.text


@pytest.mark.parametrize(("req", "expected"), [pytest.param(r, e, id=i) for i, r, e in CASES])
async def test_token_endpoint(tw: InProcess, req: Req, expected: Ok | Err) -> None:
    response = await send(tw, req)
    assert_no_store(response)
    if isinstance(expected, Ok):
        assert_ok(response, expected)
    else:
        assert_error(response, expected)


# -- TE-13 / TE-14: one answer for every authentication failure --------------------------------


def fingerprint(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body; the request id is each request's own and is left out."""
    assert len(response.headers["x-request-id"]) == 16
    headers = [item for item in response.headers.multi_items() if item[0] != "x-request-id"]
    return response.status_code, sorted(headers), response.content


@pytest.mark.parametrize(
    "requests",
    [
        pytest.param(
            [
                Req(auth=basic("c1", "wrong")),
                Req(auth=basic("nosuch", "s1")),
                Req(auth=basic(DISABLED.client_id, DISABLED.secret)),
                Req(auth=basic(PKJWT_ID, "x")),
                Req(auth=basic(POST_ONLY.client_id, POST_ONLY.secret)),
                Req(auth="Basic YzE6d3Jvbmc="),
            ],
            id="Basic",
        ),
        pytest.param(
            [
                Req(body=post("c1", "wrong")),
                Req(body=post("nosuch", "s1")),
                Req(body=post(DISABLED.client_id, DISABLED.secret)),
                Req(body=post(BASIC_ONLY.client_id, BASIC_ONLY.secret)),
                Req(body=post(PKJWT_ID, "x")),
            ],
            id="body",
        ),
    ],
)
async def test_authentication_failures_are_indistinguishable(
    tw: InProcess, requests: list[Req]
) -> None:
    """No client enumeration: status, headers and body are byte-identical whatever the cause."""
    prints = {json.dumps(fingerprint(await send(tw, r)), default=repr) for r in requests}
    assert len(prints) == 1


# -- raw ASGI probes httpx cannot express -------------------------------------------------------


async def test_content_length_over_the_limit_is_refused_before_reading(tw: InProcess) -> None:
    response = await asgi_call(
        tw.app,
        headers=[(b"content-type", FORM.encode()), (b"content-length", b"1000000000")],
        body=b"grant_type=client_credentials",
    )
    assert response.status == 413
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "request body too large",
    }


async def test_a_chunked_body_over_the_limit_is_refused(tw: InProcess) -> None:
    body = b"grant_type=client_credentials&pad=" + b"a" * 40_000
    response = await asgi_call(
        tw.app, headers=[(b"content-type", FORM.encode())], body=body, chunk=1000
    )
    assert response.status == 413


async def test_a_body_in_pieces_is_reassembled(tw: InProcess) -> None:
    response = await asgi_call(
        tw.app,
        headers=[(b"content-type", FORM.encode()), (b"authorization", B_C1.encode())],
        body=b"grant_type=client_credentials&scope=read",
        chunk=3,
    )
    assert response.status == 200, response.body
    assert response.json()["scope"] == "read"


async def test_head_is_not_allowed(tw: InProcess) -> None:
    response = await asgi_call(tw.app, method="HEAD", headers=[(b"authorization", B_C1.encode())])
    assert response.status == 405
    assert response.header("allow") == "POST"


async def test_a_client_that_disconnects_gets_no_token(tw: InProcess) -> None:
    """The body never arrives: the request fails cleanly (no 500, no token)."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/token",
        "query_string": b"",
        "headers": [(b"content-type", FORM.encode()), (b"authorization", B_C1.encode())],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send_(message: dict[str, Any]) -> None:
        sent.append(message)

    await tw.app(scope, receive, send_)
    assert sent[0]["status"] == 400
    assert b"access_token" not in b"".join(m.get("body", b"") for m in sent)


async def test_json_body_is_refused_when_the_extension_is_off(tmp_path: Path) -> None:
    """TE-03: ``application/json`` only when the JSON extension (CA-05) is enabled."""
    async with in_process(make_settings(tmp_path, json_body=False)) as tw_off:
        await tw_off.admin.create_api(
            ApiCreate(identifier=API, name="Example", scopes=["read"]), actor=ACTOR
        )
        await tw_off.admin.create_client(
            ClientCreate(name="c1", client_id="c1", scopes=["read"], secret="s1"), actor=ACTOR
        )
        await tw_off.sync()
        body = js({"grant_type": "client_credentials", "client_id": "c1", "client_secret": "s1"})
        response = await send(tw_off, Req(body=body, content_type=JSON))
        assert_error(response, CT_ERROR)
        ok = await send(tw_off, Req(body=post("c1", "s1")))
        assert_ok(ok, Ok("c1", "read"))
