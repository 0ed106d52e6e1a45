"""Helpers for end-to-end tests against a real ``tokenward serve``: discovery, JWT verification
like a resource server does it, and requests that each open a fresh TCP connection (so that
with ``--workers 2`` successive requests are spread over the worker processes)."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jws
from joserfc.jwk import KeySet

from tests.server.harness import b64decode

ES256 = ["ES256"]


@dataclass(frozen=True)
class Discovered:
    metadata: dict[str, Any]
    keys: KeySet


def discover(base_url: str, well_known: str = "oauth-authorization-server") -> Discovered:
    """RFC 8414 §3: metadata at the well-known URI, then the JWKS at ``jwks_uri``."""
    meta = httpx.get(f"{base_url}/.well-known/{well_known}", timeout=10)
    assert meta.status_code == 200, meta.text
    doc: dict[str, Any] = meta.json()
    jwks = httpx.get(doc["jwks_uri"], timeout=10)
    assert jwks.status_code == 200
    return Discovered(doc, KeySet.import_key_set(jwks.json()))


def verify_access_token(token: str, found: Discovered) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify the signature against the discovered JWKS; return (header, claims)."""
    header = json.loads(b64decode(token.split(".")[0]))
    algs = found.metadata["access_token_signing_alg_values_supported"]
    signature = jws.deserialize_compact(token, found.keys, algorithms=algs)
    claims: dict[str, Any] = json.loads(signature.payload)
    assert header["typ"] == "at+jwt"
    assert header["kid"] in {k.kid for k in found.keys}
    assert claims["iss"] == found.metadata["issuer"]
    now = time.time()
    assert claims["iat"] <= now + 5 < claims["exp"] + 5
    return header, claims


# No keep-alive: every request opens its own TCP connection, which the kernel hands to
# whichever worker accepts it. One client, so its setup cost is paid once.
_FRESH = httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0))


def fresh_post(url: str, **kwargs: Any) -> httpx.Response:
    """POST on a new connection."""
    return _FRESH.post(url, **kwargs)


def until(check: Callable[[], bool], *, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll until ``check`` holds; a deadline, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


def audit_events(log: str) -> list[dict[str, Any]]:
    """The token-endpoint audit events of a server log (JSON lines of ``tokenward.audit``)."""
    events = []
    for line in log.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("logger") == "tokenward.audit" and "audit" in record:
            events.append(record["audit"])
    return events


def read_response(sock: socket.socket) -> bytes:
    """One HTTP/1.1 answer read from a raw socket: its head and its Content-Length body (what
    has arrived if the server closes first)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    found = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
    length = int(found[1]) if found else 0
    while len(body) < length and (chunk := sock.recv(65536)):
        body += chunk
    return head + b"\r\n\r\n" + body
