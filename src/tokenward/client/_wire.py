"""The client's side of the wire: RFC 6749 §2.3.1, §4.4.2, §5.1, §5.2 and RFC 8414 §3.

Pure functions over plain values; the transports in `_transport.py` move the bytes.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit, urlunsplit

from tokenward.client._assertion import ASSERTION_TYPE, client_assertion
from tokenward.client._config import JWT_METHODS, CacheKey, ClientConfig
from tokenward.client.errors import (
    DiscoveryError,
    TokenEndpointUnavailable,
    TokenRequestError,
    TokenResponseError,
)


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    # Both may carry the client secret: kept out of repr.
    headers: Mapping[str, str] = field(repr=False)
    body: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes = field(repr=False)


@dataclass(frozen=True)
class TransportFailure:
    """No HTTP response at all (connection refused, timeout, TLS failure ...)."""

    reason: str


Reply = HttpResponse | TransportFailure


@dataclass(frozen=True)
class GrantedToken:
    """The useful members of a successful token response (RFC 6749 §5.1)."""

    access_token: str = field(repr=False)
    token_type: str
    expires_in: float | None
    scope: str | None


def is_transient(reply: Reply) -> bool:
    """Worth retrying: no answer, a 5xx, or 429 Too Many Requests."""
    return isinstance(reply, TransportFailure) or reply.status >= 500 or reply.status == 429


def retry_after(reply: Reply) -> float | None:
    """`Retry-After` in seconds (RFC 9110 §10.2.3); the HTTP-date form is ignored."""
    if isinstance(reply, TransportFailure):
        return None
    value = reply.headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() else None


# --- RFC 6749 §4.4.2 Access Token Request -----------------------------------------------------


def token_request(config: ClientConfig, endpoint: str, key: CacheKey) -> HttpRequest:
    """`grant_type=client_credentials`, with the client authenticated as configured (a JWT
    assertion is made afresh for every request)."""
    form = {"grant_type": "client_credentials"}
    if key.scopes:
        form["scope"] = " ".join(key.scopes)
    if key.resource is not None:
        form["resource"] = key.resource
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
    }
    secret = config.client_secret.reveal()
    if config.auth_method in JWT_METHODS:
        assert config.assertion_audience is not None, "ClientConfig.build checks the audience"
        assertion = client_assertion(
            client_id=config.client_id,
            audience=config.assertion_audience,
            key=config.client_key,
            secret=secret or None,
        )
        # RFC 7521 §4.2: client_assertion_type and client_assertion; client_id is optional.
        form |= {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    elif config.auth_method == "client_secret_basic":
        headers["Authorization"] = basic_authorization(config.client_id, secret)
    else:
        form |= {"client_id": config.client_id, "client_secret": secret}
    return HttpRequest("POST", endpoint, headers, urlencode(form).encode("ascii"))


def basic_authorization(client_id: str, client_secret: str) -> str:
    """RFC 6749 §2.3.1: "The client identifier is encoded using the
    "application/x-www-form-urlencoded" encoding algorithm per Appendix B, and the encoded
    value is used as the username; the client password is encoded using the same algorithm
    and used as the password." Only then comes base64 (RFC 7617)."""
    pair = f"{quote_plus(client_id, safe='')}:{quote_plus(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode("ascii")).decode("ascii")


# --- RFC 6749 §5.1 / §5.2 Access Token Response --------------------------------------------


def read_token_response(reply: Reply, *, secret: str) -> GrantedToken:
    """The token from a final reply, or the typed error it stands for."""
    if isinstance(reply, TransportFailure):
        raise TokenEndpointUnavailable(error=None, status=None, description=reply.reason)
    if reply.status == 200:
        return _granted(_json_object(reply.body))
    raise _token_error(reply, secret)


def _granted(body: dict[str, Any] | None) -> GrantedToken:
    if body is None:
        raise TokenResponseError("token response is not a JSON object")
    access_token, token_type = body.get("access_token"), body.get("token_type")
    if not (isinstance(access_token, str) and access_token):
        raise TokenResponseError("token response has no access_token")
    # §5.1: "The client MUST ignore unrecognized value names"; §7.1: "The client MUST NOT use
    # an access token if it does not understand the token type". The type is case-insensitive.
    if not (isinstance(token_type, str) and token_type.lower() == "bearer"):
        raise TokenResponseError(f"unsupported token_type {str(token_type)[:40]!r}")
    scope = body.get("scope")
    return GrantedToken(
        access_token=access_token,
        token_type="Bearer",
        expires_in=_expires_in(body.get("expires_in")),
        scope=scope if isinstance(scope, str) else None,
    )


def _expires_in(value: object) -> float | None:
    """§5.1: RECOMMENDED, so it may be absent (None: use the policy's default lifetime)."""
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():  # a common deviation: "3600"
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenResponseError("expires_in is not a number")
    if not (0 < value < math.inf):
        raise TokenResponseError("expires_in must be a positive number of seconds")
    return float(value)


def _token_error(reply: HttpResponse, secret: str) -> TokenRequestError:
    body = _json_object(reply.body) or {}
    kind = TokenEndpointUnavailable if is_transient(reply) else TokenRequestError
    return kind(
        error=_safe_text(body.get("error"), secret),
        status=reply.status,
        description=_safe_text(body.get("error_description"), secret),
        uri=_safe_text(body.get("error_uri"), secret),
    )


def _safe_text(value: object, secret: str) -> str | None:
    """A server-sent string, bounded, with the secret masked should the server echo it."""
    if not isinstance(value, str):
        return None
    text = value[:300]
    return text.replace(secret, "[secret]") if secret else text


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# --- RFC 8414 §3 Obtaining Authorization Server Metadata -------------------------------------


def metadata_urls(issuer: str) -> list[str]:
    """Where to look, in order. RFC 8414 §3.1: "any terminating "/" MUST be removed before
    inserting "/.well-known/" and the well-known URI suffix between the host component and the
    path component"; OpenID Connect Discovery §4 appends its suffix to the issuer instead."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    rfc8414 = urlunsplit(
        (parts.scheme, parts.netloc, "/.well-known/oauth-authorization-server" + path, "", "")
    )
    appended = issuer.rstrip("/") + "/.well-known/oauth-authorization-server"
    openid = issuer.rstrip("/") + "/.well-known/openid-configuration"
    return list(dict.fromkeys([rfc8414, appended, openid]))


def token_endpoint_from_metadata(reply: HttpResponse, issuer: str) -> str:
    """The `token_endpoint` of a metadata document that is really about `issuer`."""
    body = _json_object(reply.body)
    if body is None:
        raise DiscoveryError("authorization server metadata is not a JSON object")
    # RFC 8414 §3.3: "The "issuer" value returned MUST be identical to the authorization
    # server's issuer identifier value ... If these values are not identical, the data
    # contained in the response MUST NOT be used."
    if body.get("issuer") != issuer:
        raise DiscoveryError(f"metadata names another issuer than {issuer!r}; not used")
    endpoint = body.get("token_endpoint")
    if not (isinstance(endpoint, str) and urlsplit(endpoint).scheme in ("http", "https")):
        raise DiscoveryError("authorization server metadata has no usable token_endpoint")
    return endpoint
