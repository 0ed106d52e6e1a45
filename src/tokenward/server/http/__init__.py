"""HTTP adapters: the raw-ASGI token endpoint and the Starlette routes for the rest."""
