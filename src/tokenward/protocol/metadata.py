"""Authorization server metadata (RFC 8414).

A client-credentials-only server has no authorization endpoint, so RFC 8414 §2's REQUIRED
``response_types_supported`` would have zero elements, which §3.2 says MUST be omitted.
tokenward omits it (decision documented in docs/discovery.md). ``grant_types_supported`` is
always present, because omitting it would mean ``["authorization_code", "implicit"]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["server_metadata", "well_known_paths"]


def well_known_paths(issuer_path: str) -> list[str]:
    """RFC 8414 §3: the well-known segment goes between host and the issuer's path."""
    suffix = issuer_path.rstrip("/")
    return [
        f"/.well-known/oauth-authorization-server{suffix}",
        f"/.well-known/openid-configuration{suffix}",
        f"{suffix}/.well-known/openid-configuration",
    ]


def server_metadata(
    *,
    issuer: str,
    auth_methods: Iterable[str],
    assertion_algs: Iterable[str],
    scopes: Iterable[str],
    signing_algs: Iterable[str],
    with_introspection: bool = True,
    with_revocation: bool = True,
) -> dict[str, Any]:
    base = issuer.rstrip("/")
    methods = sorted(auth_methods)
    doc: dict[str, Any] = {
        "issuer": issuer,
        "token_endpoint": f"{base}/token",
        "jwks_uri": f"{base}/jwks.json",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": methods,
        "scopes_supported": sorted(scopes),
        "response_modes_supported": None,
        "access_token_signing_alg_values_supported": sorted(signing_algs),
        "service_documentation": "https://pypi.org/project/tokenward/",
    }
    jwt_methods = {"private_key_jwt", "client_secret_jwt"} & set(methods)
    if jwt_methods:
        doc["token_endpoint_auth_signing_alg_values_supported"] = sorted(assertion_algs)
    if with_introspection:
        doc["introspection_endpoint"] = f"{base}/introspect"
        doc["introspection_endpoint_auth_methods_supported"] = methods
    if with_revocation:
        doc["revocation_endpoint"] = f"{base}/revoke"
        doc["revocation_endpoint_auth_methods_supported"] = methods
    # RFC 8414 §3.2: "Claims with zero elements MUST be omitted from the response."
    return {k: v for k, v in doc.items() if v not in (None, [], "")}
