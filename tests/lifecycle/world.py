"""The clients most lifecycle tests need: a token owner, a bystander, two resource servers."""

from __future__ import annotations

from dataclasses import dataclass

from tests.lifecycle.harness import API, OPAQUE_API, OTHER_API, Harness, Registered


@dataclass
class World:
    h: Harness
    owner: Registered
    other: Registered
    rs: Registered  # may introspect API and OPAQUE_API
    rs_other: Registered  # may introspect OTHER_API only

    async def token(self, fmt: str) -> str:
        return await self.h.issue(self.owner, scope="read" if fmt == "jwt" else "o:read")

    def audience(self, fmt: str) -> str:
        return API if fmt == "jwt" else OPAQUE_API


async def make_world(h: Harness) -> World:
    await h.api(API, "read")
    await h.api(OPAQUE_API, "o:read", token_format="opaque")
    await h.api(OTHER_API, "x:read")
    owner = await h.secret_client(("read", "o:read"))
    other = await h.secret_client(("read", "o:read"))
    rs = await h.secret_client((), introspect_apis=[API, OPAQUE_API])
    rs_other = await h.secret_client((), introspect_apis=[OTHER_API])
    return World(h, owner, other, rs, rs_other)
