"""Discovery (RFC 8414), JWKS (RFC 7517), health and (when on) Prometheus metrics, as
Starlette routes.

Health (docs/operations.md): ``/livez`` answers 200 while the process serves; ``/readyz``
answers 200 when it can issue tokens (keys and registry loaded, an active key for the default
algorithm) and 503 with ``Retry-After`` otherwise, with database reachability in the body but
not in the status, since tokens keep being issued from the cache while the database is away.
``/healthz`` is ``/readyz`` under its older name. Until keys and registry are loaded,
discovery and the JWKS answer 503 too rather than an empty document a verifier would cache.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tokenward.jose.assertion import ASSERTION_SIGNING_ALGORITHMS
from tokenward.jose.keys import SIGNING_ALGORITHMS
from tokenward.protocol.errors import RETRY_AFTER_SECONDS, TemporarilyUnavailable
from tokenward.protocol.metadata import server_metadata, well_known_paths
from tokenward.server.keys import KeyRing
from tokenward.server.metrics import Metrics
from tokenward.server.registry_cache import RegistryCache
from tokenward.server.settings import Settings
from tokenward.server.stores import store_health

__all__ = ["ASSERTION_ALGORITHMS", "protocol_routes"]

#: Client-assertion algorithms (RFC 8414 token_endpoint_auth_signing_alg_values_supported):
#: the private_key_jwt ones and HS256 for client_secret_jwt. Never "none".
ASSERTION_ALGORITHMS = (*ASSERTION_SIGNING_ALGORITHMS, "HS256")
UNAVAILABLE_HEADERS = {"Cache-Control": "no-store", "Retry-After": str(RETRY_AFTER_SECONDS)}


def protocol_routes(
    settings: Settings,
    *,
    registry: RegistryCache,
    keyring: KeyRing,
    auth_methods: Iterable[str],
    metrics: Metrics | None = None,
) -> list[BaseRoute]:
    issuer_path = urlsplit(settings.issuer).path.rstrip("/")
    methods = sorted(auth_methods)

    def metadata(request: Request) -> Response:
        if not registry.loaded:
            return unavailable("registry not loaded")
        doc = server_metadata(
            issuer=settings.issuer,
            auth_methods=methods,
            assertion_algs=ASSERTION_ALGORITHMS,
            scopes=registry.registry.scope_api.keys(),
            signing_algs=SIGNING_ALGORITHMS,
            with_introspection=True,
            with_revocation=True,
        )
        return JSONResponse(doc, headers={"Cache-Control": "public, max-age=300"})

    def jwks(request: Request) -> Response:
        # An empty key set cached for max-age seconds would fail every verifier: 503 instead.
        if not registry.loaded:
            return unavailable("keys not loaded")
        return Response(
            keyring.jwks_json,
            media_type="application/jwk-set+json",
            headers={"Cache-Control": f"public, max-age={settings.jwks_max_age}"},
        )

    def readyz(request: Request) -> Response:
        ready = registry.can_sign(settings.signing_alg)
        body = readiness(ready, registry)
        if ready:
            return JSONResponse(body, headers={"Cache-Control": "no-store"})
        return JSONResponse(body, 503, headers=UNAVAILABLE_HEADERS)

    routes: list[BaseRoute] = [
        Route(path, metadata, methods=["GET"]) for path in well_known_paths(issuer_path)
    ]
    routes.append(Route(f"{issuer_path}/jwks.json", jwks, methods=["GET"]))
    routes.append(Route("/livez", livez, methods=["GET"]))
    routes.append(Route("/readyz", readyz, methods=["GET"]))
    routes.append(Route("/healthz", readyz, methods=["GET"]))  # /readyz under its older name
    if metrics is not None and settings.metrics_port is None:
        routes.append(Route("/metrics", _metrics_route(metrics), methods=["GET"]))
    return routes


def _metrics_route(metrics: Metrics) -> Callable[[Request], Awaitable[Response]]:
    async def exposition(request: Request) -> Response:
        return Response(
            await metrics.render(),
            media_type="text/plain; version=0.0.4; charset=utf-8",
            headers={"Cache-Control": "no-store"},
        )

    return exposition


def livez(request: Request) -> Response:
    """The process is serving: its event loop answers. Nothing else is checked."""
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


def readiness(ready: bool, registry: RegistryCache) -> dict[str, Any]:
    """``/readyz``: can this process issue tokens? The database is reported beside it, not
    part of it: tokens are issued from the cache while the database is away."""
    database: dict[str, Any] = {"reachable": store_health.reachable}
    if not store_health.reachable:
        database["unreachable_for_seconds"] = round(store_health.seconds_in_state(), 1)
    return {
        "status": "ready" if ready else "unavailable",
        "registry": {"loaded": registry.loaded, "version": registry.version},
        "keys": {"loaded": registry.loaded, "signing": registry.signing_algorithms()},
        "database": database,
    }


def unavailable(reason: str) -> Response:
    error = TemporarilyUnavailable(reason=reason)
    return JSONResponse(error.body(), error.status, headers=UNAVAILABLE_HEADERS)
