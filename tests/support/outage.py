"""A database outage, in process: every storage port wrapped so that, while ``down``, each call
fails the way a stopped database does (the driver cannot connect).

    outage = Outage()
    async with in_process(settings, stores=outage.wrap(sql_stores(url))) as tw:
        outage.down = True
        ...

Passed through ``build_server`` like any other store; nothing is patched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, cast

from tokenward.server.stores import Stores


class DatabaseDown(ConnectionRefusedError):
    """What the driver raises when the database does not answer."""


class _Port:
    """One storage port: passes every call through, or fails it while the outage lasts."""

    def __init__(self, inner: object, outage: Outage) -> None:
        self._inner = inner
        self._outage = outage

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self._inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            self._outage.calls += 1
            if self._outage.down:
                raise DatabaseDown("connection refused (test outage)")
            return await method(*args, **kwargs)

        return call


@dataclasses.dataclass
class Outage:
    down: bool = False
    calls: int = 0  # store calls made, failed or not

    def wrap(self, stores: Stores) -> Stores:
        """Every port of ``stores`` (each field but ``close``, and those absent: ``changes`` on
        SQLite) behind this outage."""
        ports = [
            f.name
            for f in dataclasses.fields(stores)
            if f.name != "close" and getattr(stores, f.name) is not None
        ]
        wrapped = {name: cast(Any, _Port(getattr(stores, name), self)) for name in ports}
        return dataclasses.replace(stores, **wrapped)
