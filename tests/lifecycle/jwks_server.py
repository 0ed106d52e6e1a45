"""A client's ``jwks_uri`` host, with the misbehaviours the fetcher must survive."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class JwksServer:
    document: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    mode: str = "ok"  # ok | redirect | big | big-chunked | slow | status | not-json
    hits: list[str] = field(default_factory=list)
    url: str = ""

    @property
    def jwks_uri(self) -> str:
        return f"{self.url}/jwks"

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/jwks", self._jwks),
                Route("/moved", self._jwks),
                Route("/attacker-keys", self._jwks),
            ]
        )

    async def _jwks(self, request: Request) -> Response:
        self.hits.append(request.url.path)
        mode = self.mode
        if mode == "redirect" and request.url.path == "/jwks":
            return RedirectResponse(f"{self.url}/moved", status_code=302)
        if mode == "big":
            padding = "x" * (70 * 1024)
            return JSONResponse({**self.document, "padding": padding})
        if mode == "big-chunked":
            return StreamingResponse(self._chunks(), media_type="application/json")
        if mode == "slow":
            await asyncio.sleep(3)
        if mode == "status":
            return JSONResponse({"error": "nope"}, status_code=500)
        if mode == "not-json":
            return Response(b"<html>", media_type="text/html")
        return Response(json.dumps(self.document), media_type="application/jwk-set+json")

    async def _chunks(self) -> AsyncIterator[bytes]:
        yield b'{"keys": [], "padding": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}'
