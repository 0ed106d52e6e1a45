"""Discovery (RFC 8414), JWKS (RFC 7517), health and (when on) Prometheus metrics, as
Starlette routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tokenward.jose.assertion import ASSERTION_SIGNING_ALGORITHMS
from tokenward.jose.keys import SIGNING_ALGORITHMS
from tokenward.protocol.metadata import server_metadata, well_known_paths
from tokenward.server.keys import KeyRing
from tokenward.server.metrics import Metrics
from tokenward.server.registry_cache import RegistryCache
from tokenward.server.settings import Settings
from tokenward.server.stores import RegistryStore

__all__ = ["ASSERTION_ALGORITHMS", "protocol_routes"]

#: Client-assertion algorithms (RFC 8414 token_endpoint_auth_signing_alg_values_supported):
#: the private_key_jwt ones and HS256 for client_secret_jwt. Never "none".
ASSERTION_ALGORITHMS = (*ASSERTION_SIGNING_ALGORITHMS, "HS256")


def protocol_routes(
    settings: Settings,
    *,
    registry: RegistryCache,
    keyring: KeyRing,
    store: RegistryStore,
    auth_methods: Iterable[str],
    metrics: Metrics | None = None,
) -> list[BaseRoute]:
    issuer_path = urlsplit(settings.issuer).path.rstrip("/")
    methods = sorted(auth_methods)

    def metadata(request: Request) -> Response:
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
        return Response(
            keyring.jwks_json,
            media_type="application/jwk-set+json",
            headers={"Cache-Control": f"public, max-age={settings.jwks_max_age}"},
        )

    async def healthz(request: Request) -> Response:
        try:
            await store.version()
        except Exception:
            return JSONResponse({"status": "degraded", "database": "unreachable"}, 503)
        return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})

    routes: list[BaseRoute] = [
        Route(path, metadata, methods=["GET"]) for path in well_known_paths(issuer_path)
    ]
    routes.append(Route(f"{issuer_path}/jwks.json", jwks, methods=["GET"]))
    routes.append(Route("/healthz", healthz, methods=["GET"]))
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
