"""Hypothesis against the real token endpoint, in-process (RFC 6749 §5.2, checklist 3.7).

* Never a 500: for any method, headers and body the status is one of
  {200, 400, 401, 405, 413, 429} and the body is a JSON object.
* TE-25: for any rejected request - including client ids and secrets with ``"``, ``\\``,
  control and non-ASCII characters, in the body or in Basic - ``error`` and
  ``error_description`` stay within ``%x20-21 / %x23-5B / %x5D-7E`` and ``WWW-Authenticate``
  is the fixed challenge (H7: no reflected input in headers).
* H12: no error body echoes the secret that was sent.

The requests go straight into the ASGI callable (tests/server/harness.py ``asgi_call``), so
header bytes an HTTP client would refuse still reach the application.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.harness import (
    ALLOWED_STATUSES,
    C1,
    ERROR_CHARSET,
    FORM,
    REALM_CHALLENGE,
    InProcess,
    RawResponse,
    asgi_call,
)

pytestmark = pytest.mark.anyio

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
KNOWN_ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_scope",
    "invalid_target",
    "unauthorized_client",
    "unsupported_grant_type",
    "slow_down",
}

hostile_text = st.text(
    st.one_of(
        st.sampled_from(
            ['"', "\\", "\r", "\n", "\x00", "%", "+", "&", "=", ":", " ", "\u202e", "\u00e9"]
        ),
        st.characters(codec="utf-8"),
    ),
    max_size=30,
)
param_names = st.sampled_from(
    [
        "grant_type",
        "client_id",
        "client_secret",
        "scope",
        "resource",
        "client_assertion",
        "client_assertion_type",
        "foo",
        "scope[]",
    ]
)
param_values = st.one_of(
    st.sampled_from(["client_credentials", "password", "c1", "s1", "read", "*", "read write", ""]),
    hostile_text,
)
form_pairs = st.lists(st.tuples(param_names | hostile_text, param_values), max_size=8)
content_types = st.sampled_from(
    [
        FORM,
        f"{FORM};charset=UTF-8",
        f"{FORM}; charset=latin-1",
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "multipart/form-data; boundary=x",
        "",
        ";;;",
        "application/x-www-form-urlencoded; charset",
    ]
)
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | param_values,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=8,
)


def encode_pairs(pairs: list[tuple[str, str]]) -> bytes:
    return "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in pairs).encode()


@st.composite
def authorization(draw: st.DrawFn) -> bytes | None:
    kind = draw(st.sampled_from(["none", "basic", "raw-basic", "bytes", "scheme"]))
    if kind == "none":
        return None
    if kind == "basic":
        cid, secret = draw(hostile_text), draw(hostile_text)
        raw = f"{quote_plus(cid)}:{quote_plus(secret)}".encode()
        return b"Basic " + base64.b64encode(raw)
    if kind == "raw-basic":
        return b"Basic " + base64.b64encode(draw(st.binary(max_size=40)))
    if kind == "scheme":
        return draw(
            st.sampled_from([b"Basic", b"basic ", b"Bearer x", b"Digest a=b", b"Basic !!!"])
        )
    return draw(st.binary(max_size=60))


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["form", "json", "bytes"]))
    if kind == "form":
        return encode_pairs(draw(form_pairs))
    if kind == "json":
        doc = draw(st.dictionaries(param_names | hostile_text, json_values, max_size=6))
        return json.dumps(doc).encode()
    return draw(st.binary(max_size=200))


def check(response: RawResponse) -> dict[str, Any]:
    assert response.status in ALLOWED_STATUSES, (response.status, response.body)
    assert response.header("cache-control") == "no-store"
    body = response.json()
    assert isinstance(body, dict)
    if response.status != 200:
        assert body["error"] in KNOWN_ERRORS
        assert ERROR_CHARSET.fullmatch(body["error"])
        assert ERROR_CHARSET.fullmatch(body.get("error_description", ""))
        assert response.header("www-authenticate") in (None, REALM_CHALLENGE)
    return body


@FUZZ
@given(
    method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "PATCH"]),
    query=st.binary(max_size=40),
    content_type=content_types,
    auth=authorization(),
    body=bodies(),
    extra=st.lists(
        st.tuples(st.binary(min_size=1, max_size=20), st.binary(max_size=40)), max_size=3
    ),
)
async def test_any_request_gets_a_protocol_answer(
    tw: InProcess,
    method: str,
    query: bytes,
    content_type: str,
    auth: bytes | None,
    body: bytes,
    extra: list[tuple[bytes, bytes]],
) -> None:
    headers = [(b"content-type", content_type.encode()), *extra]
    if auth is not None:
        headers.append((b"authorization", auth))
    check(await asgi_call(tw.app, method=method, query=query, headers=headers, body=body))


@FUZZ
@given(client_id=hostile_text, secret=hostile_text, scope=hostile_text, via_basic=st.booleans())
async def test_rejections_stay_in_the_rfc_charset(
    tw: InProcess, client_id: str, secret: str, scope: str, via_basic: bool
) -> None:
    """TE-25 (and H7, H12) for hostile client ids, secrets and scopes."""
    params = [("grant_type", "client_credentials"), ("scope", scope)]
    headers = [(b"content-type", FORM.encode())]
    if via_basic:
        raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
        headers.append((b"authorization", b"Basic " + base64.b64encode(raw)))
    else:
        params += [("client_id", client_id), ("client_secret", secret)]
    response = await asgi_call(tw.app, headers=headers, body=encode_pairs(params))
    check(response)
    if (client_id, secret) != (C1.client_id, C1.secret):
        assert response.status != 200
    if response.status != 200 and len(secret) >= 6:
        # Only the values can echo input; the key names ("error_description") are fixed text
        # that a generated secret may happen to be part of.
        values = json.loads(response.body).values()
        assert all(secret not in str(value) for value in values)


@FUZZ
@given(doc=st.dictionaries(param_names | hostile_text, json_values, max_size=6))
async def test_any_json_body_gets_a_protocol_answer(tw: InProcess, doc: dict[str, Any]) -> None:
    headers = [(b"content-type", b"application/json")]
    check(await asgi_call(tw.app, headers=headers, body=json.dumps(doc).encode()))
