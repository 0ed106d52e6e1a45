"""Resource-server library: verify bearer access tokens and enforce scopes.

RFC 6750 (bearer usage), RFC 9068 §4 (JWT access tokens), RFC 7662 (introspection). The
framework adapters live in submodules so that importing this package needs neither Starlette,
FastAPI nor Flask: ``tokenward.resource.asgi``, ``tokenward.resource.fastapi`` and
``tokenward.resource.flask``. See docs/resource.md.
"""

from tokenward.resource.claims import DEFAULT_ALGORITHMS, AccessToken, VerificationPolicy
from tokenward.resource.errors import (
    BearerError,
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    MissingToken,
    VerifierUnavailable,
)
from tokenward.resource.jwks_cache import JwksCache, JwksCachePolicy
from tokenward.resource.verifier import Introspection, TokenVerifier

__all__ = [
    "DEFAULT_ALGORITHMS",
    "AccessToken",
    "BearerError",
    "InsufficientScope",
    "Introspection",
    "InvalidRequest",
    "InvalidToken",
    "JwksCache",
    "JwksCachePolicy",
    "MissingToken",
    "TokenVerifier",
    "VerificationPolicy",
    "VerifierUnavailable",
]
