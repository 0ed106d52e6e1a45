"""The client credentials grant (RFC 6749 §4.4) with resource indicators (RFC 8707).

Given an authenticated client and the request parameters, decide the audience, the scopes
and the lifetime of the token, or raise the RFC 6749 §5.2 error that explains why not.

Rules (documented in docs/token-endpoint.md):

* ``scope`` omitted or empty: the client's default scopes (RFC 6749 §3.3 "pre-defined
  default value"), which are every granted scope unless configured otherwise.
* ``scope=*``: every scope granted to the client (for the chosen API when ``resource`` is
  given).
* Any scope not granted to the client: ``invalid_scope``; never silently narrowed.
* ``resource`` picks the API. Without it the API is implied by the scopes; scopes of several
  APIs: ``invalid_scope`` ("MUST NOT issue ambiguous tokens", RFC 9068 §3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tokenward.protocol.errors import (
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from tokenward.protocol.model import Api, Client, Registry, TokenFormat
from tokenward.protocol.scopes import ALL_SCOPES, parse_scope

__all__ = ["GRANT_TYPE", "Grant", "TokenPolicy", "check_grant_type", "resolve_grant"]

GRANT_TYPE = "client_credentials"


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """Server-wide defaults; an API and then a client may override lifetime and format."""

    default_ttl: int = 900
    max_ttl: int = 86400
    default_format: TokenFormat = "jwt"


@dataclass(frozen=True, slots=True)
class Grant:
    """What the token will carry."""

    audience: str
    scopes: frozenset[str]
    ttl: int
    signing_alg: str
    token_format: TokenFormat


def check_grant_type(params: Mapping[str, str], client: Client | None = None) -> None:
    """RFC 6749 §4.4.2: ``grant_type`` REQUIRED, value MUST be ``client_credentials``."""
    grant_type = params.get("grant_type")
    if grant_type is None:
        raise InvalidRequest("grant_type is required", reason="no grant_type")
    if grant_type != GRANT_TYPE:
        raise UnsupportedGrantType(reason=f"grant_type {grant_type[:40]!r}")
    if client is not None and GRANT_TYPE not in client.grant_types:
        raise UnauthorizedClient(reason="client_credentials not enabled for client")


def resolve_grant(
    client: Client, params: Mapping[str, str], registry: Registry, policy: TokenPolicy
) -> Grant:
    requested = parse_scope(params.get("scope"))
    resource = params.get("resource")
    api = _api_for_resource(client, resource, registry) if resource is not None else None
    scopes = _scopes(client, requested, api)
    if api is None:
        api = _implied_api(client, scopes, registry)
    elif not scopes <= api.scopes:
        raise InvalidScope(
            "requested scope does not belong to the requested resource", reason="scope/resource"
        )
    return Grant(
        audience=api.identifier,
        scopes=scopes,
        ttl=_ttl(client, api, policy),
        signing_alg=api.signing_alg,
        token_format=client.token_format or api.token_format,
    )


def _api_for_resource(client: Client, resource: str, registry: Registry) -> Api:
    # RFC 8707 §2: "invalid_target: The requested resource is invalid, missing, unknown, or
    # malformed."
    api = registry.apis.get(resource)
    if api is None or resource not in registry.client_apis(client):
        raise InvalidTarget(reason="resource unknown or not granted")
    return api


def _scopes(client: Client, requested: frozenset[str] | None, api: Api | None) -> frozenset[str]:
    if requested is None:
        chosen = client.effective_default_scopes()
        return chosen & api.scopes if api is not None else chosen
    if ALL_SCOPES in requested:
        if len(requested) > 1:
            raise InvalidScope("'*' cannot be combined with other scopes", reason="star plus")
        return client.scopes & api.scopes if api is not None else client.scopes
    missing = requested - client.scopes
    if missing:
        raise InvalidScope("requested scope is not granted to this client", reason="not granted")
    return requested


def _implied_api(client: Client, scopes: frozenset[str], registry: Registry) -> Api:
    if scopes:
        identifiers = {registry.scope_api.get(s) for s in scopes}
    else:
        identifiers = set(registry.client_apis(client))
    if None in identifiers:
        raise InvalidScope("requested scope is not defined", reason="scope without api")
    if len(identifiers) > 1:
        raise InvalidScope(
            "scopes belong to several APIs; pass resource to choose one",
            reason="ambiguous audience",
        )
    if not identifiers:
        raise InvalidScope("the client has access to no API", reason="no api")
    return registry.apis[str(identifiers.pop())]


def _ttl(client: Client, api: Api, policy: TokenPolicy) -> int:
    ttl = client.token_ttl or api.token_ttl or policy.default_ttl
    return min(ttl, policy.max_ttl)
