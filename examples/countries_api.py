"""A small API protected by tokenward: ``GET /countries`` and ``POST /shipments``.

Each route requires a scope: ``countries:read`` and ``shipments:write``. Every request must
carry an access token issued by ``TOKENWARD_ISSUER`` for ``API_AUDIENCE``; refusals are RFC 6750
answers (401 ``invalid_token``, 403 ``insufficient_scope``). ``/docs`` has an **Authorize**
button using the clientCredentials flow.

Configuration (environment):

* ``TOKENWARD_ISSUER``: the authorization server (default: the local ``tokenward serve``'s,
  on whatever port it serves, else ``http://127.0.0.1:8000``);
* ``API_AUDIENCE``: this API's identifier, the tokens' ``aud`` (default
  ``https://api.example.com``);
* ``INTROSPECTION_CLIENT_ID`` / ``INTROSPECTION_CLIENT_SECRET`` (optional): a client registered
  with ``--introspect $API_AUDIENCE``; with them, opaque tokens are checked by introspection.

Try it (verified by hand; the secret goes in the environment, not argv)::

    export TOKENWARD_ISSUER=http://127.0.0.1:8000
    tokenward serve --port 8000 &
    tokenward apis create --identifier https://api.example.com --name Countries \\
        --scope countries:read --scope shipments:write
    C=$(tokenward clients create --name shop --scope countries:read --json)
    export TOKENWARD_CLIENT_ID=$(echo "$C" | jq -r .client_id)
    export TOKENWARD_CLIENT_SECRET=$(echo "$C" | jq -r .client_secret)
    uvicorn examples.countries_api:app --port 8001 &
    TOKEN=$(tokenward token --scope countries:read)
    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8001/countries       # 200
    curl -X POST -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \\
        -d '{"country": "FR", "weight_kg": 2}' http://127.0.0.1:8001/shipments   # 403
    curl http://127.0.0.1:8001/countries                                         # 401
"""

import os
import uuid
from collections.abc import Mapping
from typing import Annotated

from fastapi import FastAPI, Security, status
from pydantic import BaseModel, Field

from tokenward.cli.token import local_issuer
from tokenward.resource import AccessToken, Introspection, TokenVerifier
from tokenward.resource.fastapi import BearerAuth, add_bearer_error_handler

DEFAULT_ISSUER = "http://127.0.0.1:8000"
DEFAULT_AUDIENCE = "https://api.example.com"

SCOPES = {
    "countries:read": "List the countries we ship to",
    "shipments:write": "Create shipments",
}


class Country(BaseModel):
    code: str
    name: str


class ShipmentRequest(BaseModel):
    country: str = Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2 code")
    weight_kg: float = Field(gt=0, le=1000)


class Shipment(BaseModel):
    id: str
    country: str
    weight_kg: float
    created_by: str


COUNTRIES = [
    Country(code="DE", name="Germany"),
    Country(code="FR", name="France"),
    Country(code="JP", name="Japan"),
    Country(code="US", name="United States"),
]


def create_app(environ: Mapping[str, str] | None = None) -> FastAPI:
    """Build the API from the environment (``os.environ`` by default).

    No ``from __future__ import annotations`` in this module: FastAPI reads the routes'
    annotations at runtime, and they refer to ``bearer``, a local of this function.
    """
    env = os.environ if environ is None else environ
    issuer = env.get("TOKENWARD_ISSUER") or (local_issuer() if environ is None else DEFAULT_ISSUER)
    audience = env.get("API_AUDIENCE", DEFAULT_AUDIENCE)
    introspection = None
    if env.get("INTROSPECTION_CLIENT_ID") and env.get("INTROSPECTION_CLIENT_SECRET"):
        introspection = Introspection(
            client_id=env["INTROSPECTION_CLIENT_ID"],
            client_secret=env["INTROSPECTION_CLIENT_SECRET"],
        )

    verifier = TokenVerifier(issuer, audience=audience, introspection=introspection)
    bearer = BearerAuth(verifier, token_url=f"{issuer.rstrip('/')}/token", scopes=SCOPES)

    app = FastAPI(title="Countries API", description="An example API protected by tokenward.")
    add_bearer_error_handler(app)

    @app.get("/countries")
    async def list_countries(
        token: Annotated[AccessToken, Security(bearer, scopes=["countries:read"])],
    ) -> list[Country]:
        return COUNTRIES

    @app.post("/shipments", status_code=status.HTTP_201_CREATED)
    async def create_shipment(
        shipment: ShipmentRequest,
        token: Annotated[AccessToken, Security(bearer, scopes=["shipments:write"])],
    ) -> Shipment:
        return Shipment(
            id=str(uuid.uuid4()),
            country=shipment.country.upper(),
            weight_kg=shipment.weight_kg,
            created_by=token.client_id,
        )

    return app


app = create_app()
