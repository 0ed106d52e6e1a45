"""Bounded HTTP for the verifier: discovery, JWKS and introspection, sync and async.

Every request has a timeout, follows no redirects, refuses compressed bodies (no decompression
bombs) and reads at most ``max_bytes``. Any failure is a :class:`FetchError` with a short reason.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlsplit

import httpx

__all__ = [
    "FetchError",
    "HttpLimits",
    "Response",
    "ServerMetadata",
    "aget_json",
    "apost_form",
    "arequest",
    "basic_auth",
    "discovery_urls",
    "get_json",
    "max_age",
    "parse_metadata",
    "post_form",
    "request",
]


class FetchError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpLimits:
    timeout: float = 5.0  # seconds, for each of connect, write, read and pool
    max_bytes: int = 256 * 1024


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    document: Any  # the parsed JSON body (None when the status is not 200)
    headers: httpx.Headers


_HEADERS = {"accept": "application/json", "accept-encoding": "identity"}


def _check_head(response: httpx.Response, limits: HttpLimits) -> None:
    # Compressed bodies are refused, so the (decoded) bytes read below are the raw bytes and
    # max_bytes bounds the memory used.
    if response.headers.get("content-encoding", "identity").lower() != "identity":
        raise FetchError("compressed response refused")
    length = response.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limits.max_bytes):
        raise FetchError("response too large")


def _parse(response: httpx.Response, body: bytes) -> Response:
    if response.status_code != 200:
        return Response(response.status_code, None, response.headers)
    try:
        return Response(200, json.loads(body), response.headers)
    except (ValueError, RecursionError) as exc:
        raise FetchError("response is not JSON") from exc


def _read(chunks: Iterator[bytes], limits: HttpLimits) -> bytes:
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > limits.max_bytes:
            raise FetchError("response too large")
    return bytes(body)


async def _aread(chunks: AsyncIterator[bytes], limits: HttpLimits) -> bytes:
    # Stopping early leaves httpx's internal async generators to the garbage collector (trio
    # reports that as a ResourceWarning); leaving the `stream` block still closes the response.
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limits.max_bytes:
            raise FetchError("response too large")
    return bytes(body)


def request(
    client: httpx.Client | None, method: str, url: str, limits: HttpLimits, **kwargs: Any
) -> Response:
    own = client is None
    client = client or httpx.Client(follow_redirects=False)
    try:
        with client.stream(method, url, timeout=limits.timeout, **kwargs) as response:
            _check_head(response, limits)
            return _parse(response, _read(response.iter_bytes(), limits))
    except (httpx.HTTPError, httpx.StreamError) as exc:
        raise FetchError(f"{type(exc).__name__} from {method} {url}") from exc
    finally:
        if own:
            client.close()


async def arequest(
    client: httpx.AsyncClient | None, method: str, url: str, limits: HttpLimits, **kwargs: Any
) -> Response:
    own = client is None
    client = client or httpx.AsyncClient(follow_redirects=False)
    try:
        async with client.stream(method, url, timeout=limits.timeout, **kwargs) as response:
            _check_head(response, limits)
            return _parse(response, await _aread(response.aiter_bytes(), limits))
    except (httpx.HTTPError, httpx.StreamError) as exc:
        raise FetchError(f"{type(exc).__name__} from {method} {url}") from exc
    finally:
        if own:
            await client.aclose()


def get_json(client: httpx.Client | None, url: str, limits: HttpLimits) -> Response:
    return request(client, "GET", url, limits, headers=_HEADERS)


async def aget_json(client: httpx.AsyncClient | None, url: str, limits: HttpLimits) -> Response:
    return await arequest(client, "GET", url, limits, headers=_HEADERS)


def _form_kwargs(form: Mapping[str, str], authorization: str) -> dict[str, Any]:
    return {"data": dict(form), "headers": {**_HEADERS, "authorization": authorization}}


def post_form(
    client: httpx.Client | None,
    url: str,
    form: Mapping[str, str],
    authorization: str,
    limits: HttpLimits,
) -> Response:
    return request(client, "POST", url, limits, **_form_kwargs(form, authorization))


async def apost_form(
    client: httpx.AsyncClient | None,
    url: str,
    form: Mapping[str, str],
    authorization: str,
    limits: HttpLimits,
) -> Response:
    return await arequest(client, "POST", url, limits, **_form_kwargs(form, authorization))


def basic_auth(client_id: str, client_secret: str) -> str:
    """RFC 6749 §2.3.1: id and secret are form-urlencoded, then joined and base64-encoded."""
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,9})\"?\s*(?:,|$)", re.IGNORECASE)


def max_age(headers: httpx.Headers) -> float | None:
    """``Cache-Control: max-age`` in seconds (RFC 9111 §5.2.2.1); 0 for no-store/no-cache."""
    value = ",".join(headers.get_list("cache-control"))
    if re.search(r"(?:^|,)\s*no-(?:store|cache)\b", value, re.IGNORECASE):
        return 0.0
    match = _MAX_AGE.search(value)
    return float(match.group(1)) if match else None


# -- RFC 8414 discovery ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerMetadata:
    issuer: str
    jwks_uri: str | None
    introspection_endpoint: str | None


def discovery_urls(issuer: str) -> list[str]:
    """Where to look for the issuer's metadata, in order.

    RFC 8414 §3.1 inserts the well-known segment between the host and the issuer's path; many
    servers instead append it to the issuer (the OpenID Connect Discovery §4 form), so both
    are tried, RFC 8414 first.
    """
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    base = issuer.rstrip("/")
    candidates = [
        f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{path}",
        f"{base}/.well-known/oauth-authorization-server",
        f"{base}/.well-known/openid-configuration",
    ]
    return list(dict.fromkeys(candidates))


def _endpoint(document: Mapping[str, Any], name: str, issuer: str) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise FetchError(f"metadata {name} is not a string")
    # RFC 8414 §2: jwks_uri "MUST use the https scheme". A plain-http issuer (development,
    # loopback tests) may use http endpoints; an https issuer never.
    scheme = urlsplit(value).scheme
    if scheme != "https" and not (scheme == "http" and issuer.startswith("http://")):
        raise FetchError(f"metadata {name} is not an https URL")
    return value


def parse_metadata(document: Any, issuer: str) -> ServerMetadata:
    if not isinstance(document, dict):
        raise FetchError("metadata is not a JSON object")
    # RFC 8414 §3.3: "The issuer value returned MUST be identical to the authorization
    # server's issuer identifier value into which the well-known URI string was inserted".
    if document.get("issuer") != issuer:
        raise FetchError("metadata issuer does not match")
    return ServerMetadata(
        issuer,
        _endpoint(document, "jwks_uri", issuer),
        _endpoint(document, "introspection_endpoint", issuer),
    )
