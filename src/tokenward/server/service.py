"""The token service: the protocol rules wired to storage, keys, clock and audit.

``TokenService.token`` is the token endpoint's whole pipeline after HTTP parsing; it reads
only in-memory state (registry snapshot, loaded keys) and writes nothing to the database for
a JWT. Background loops keep that state fresh:

* every ``cache_refresh_seconds`` one ``SELECT version`` decides whether to reload the
  registry and keys (so a disabled client or revoked secret stops working on every worker
  within that bound);
* every second the audit buffer is written to the log; every 30 s "last used" stamps of
  secrets are written in one batch;
* every minute keys are rotated when due and keys past their publication window deleted;
* every ``opaque_token_purge_seconds`` expired opaque tokens, revocations and used
  client-assertion ``jti`` values are deleted (``server/lifecycle.py``).

Client assertions (private_key_jwt, client_secret_jwt) are checked by ``server/assertions.py``
and cost one database write each (the replay store); opaque tokens cost one write each too.
Introspection and revocation live in ``server/lifecycle.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tokenward.protocol.access_token import TokenResponse, build_claims, token_response
from tokenward.protocol.client_auth import (
    PresentedCredentials,
    check_client_state,
    check_secret,
    extract_credentials,
)
from tokenward.protocol.client_credentials import (
    Grant,
    TokenPolicy,
    check_grant_type,
    resolve_grant,
)
from tokenward.protocol.errors import InvalidClient, OAuthError, SlowDown, TemporarilyUnavailable
from tokenward.protocol.model import Client, Registry
from tokenward.server.assertions import ASSERTION_METHODS, ClientAssertions
from tokenward.server.events import AuditBuffer
from tokenward.server.keys import KeyRing, key_states, new_key_row
from tokenward.server.lifecycle import TokenLifecycle
from tokenward.server.secrets import ServerSecrets
from tokenward.server.settings import Settings
from tokenward.server.storage.sql.repository import Repository

__all__ = ["Clock", "FailureThrottle", "TokenRequest", "TokenService"]

Clock = Callable[[], float]
log = logging.getLogger("tokenward.service")


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """A parsed token request: the Authorization header (if any) and the body parameters."""

    authorization: bytes | None
    params: Mapping[str, str]

    def __repr__(self) -> str:
        return "TokenRequest(...)"


@dataclass
class FailureThrottle:
    """Per-client-id failure counter over a fixed one-minute window (RFC 6749 §2.3.1: "MUST
    protect ... against brute force attacks"). Checked *before* any secret is hashed; applies
    to unknown client ids too, so it reveals nothing about which ids exist. Per process."""

    limit: int
    window: int = 60
    _counts: dict[str, tuple[int, int]] = field(default_factory=dict)

    def check(self, client_id: str | None, now: int) -> None:
        if client_id is None:
            return
        start, count = self._counts.get(client_id, (now, 0))
        if now - start < self.window and count >= self.limit:
            raise SlowDown(retry_after=self.window - (now - start), reason="throttled")

    def fail(self, client_id: str | None, now: int) -> None:
        if client_id is None:
            return
        start, count = self._counts.get(client_id, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        self._counts[client_id] = (start, count + 1)
        if count + 1 == self.limit:
            log.warning("client authentication throttled", extra={"client_id": client_id})
        if len(self._counts) > 100_000:
            self._counts = {k: v for k, v in self._counts.items() if now - v[0] < self.window}


class TokenService:
    def __init__(
        self,
        settings: Settings,
        repository: Repository,
        server_secrets: ServerSecrets,
        *,
        clock: Clock = time.time,
    ) -> None:
        self.settings = settings
        self.repository = repository
        self.secrets = server_secrets
        self.clock = clock
        self.realm = "tokenward"
        self.policy = TokenPolicy(
            default_ttl=settings.token_ttl, max_ttl=settings.max_token_ttl, default_format="jwt"
        )
        self.registry = Registry.build([], [])
        self.keys = KeyRing(server_secrets.encryptor, max_token_ttl=settings.max_token_ttl)
        self.audit = AuditBuffer(enabled=settings.audit_log)
        self.throttle = FailureThrottle(settings.failed_auth_limit)
        self._last_used: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._refresh_lock = asyncio.Lock()
        self._last_refresh = 0.0
        self.assertions = ClientAssertions(
            settings, repository, server_secrets.encryptor, clock=clock
        )
        self.lifecycle = TokenLifecycle(self)

    has_introspection = True
    has_revocation = True

    def auth_methods(self) -> list[str]:
        """The client authentication methods this server accepts (RFC 8414 names)."""
        return ["client_secret_basic", "client_secret_post", *sorted(ASSERTION_METHODS)]

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.ensure_keys()
        await self.reload()
        loops = (self._poll_loop, self._flush_loop, self._maintenance_loop)
        for loop in (*loops, self.lifecycle.purge_loop):
            self._tasks.append(asyncio.create_task(loop()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.assertions.keys.aclose()
        self.audit.flush()
        with contextlib.suppress(Exception):
            await self.repository.touch_secrets(self._drain_last_used())

    async def reload(self) -> None:
        started = time.monotonic()
        registry = await self.repository.load_registry()
        rows = await self.repository.list_keys()
        self.keys.load(rows, now=int(self.clock()))
        self.registry = registry
        self._last_refresh = started

    async def refresh_if_changed(self, *, min_interval: float = 0.0) -> None:
        """Reload when the registry version moved; checks at most once per ``min_interval``.

        ``_last_refresh`` is when the latest check *started*. A caller returns only on a check
        that started after it arrived (an earlier one may predate the change it is looking
        for, e.g. a client created a moment ago); otherwise it waits for the next slot.
        """
        arrived = time.monotonic()
        async with self._refresh_lock:
            if self._last_refresh >= arrived:
                return
            wait = self._last_refresh + min_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_refresh = time.monotonic()
            version = await self.repository.version()
            if version != self.registry.version:
                await self.reload()

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.cache_refresh_seconds)
            try:
                await self.refresh_if_changed()
            except Exception:
                log.exception("registry refresh failed; serving the cached registry")

    async def _flush_loop(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(1.0)
            ticks += 1
            self.audit.flush()
            if ticks % 30 == 0:
                try:
                    await self.repository.touch_secrets(self._drain_last_used())
                except Exception:
                    log.exception("could not write secret last-used stamps")

    async def _maintenance_loop(self) -> None:
        while True:
            await asyncio.sleep(60)
            try:
                await self.ensure_keys()
            except Exception:
                log.exception("key maintenance failed")

    def _drain_last_used(self) -> dict[str, int]:
        stamps, self._last_used = self._last_used, {}
        return stamps

    # -- keys ---------------------------------------------------------------------------------

    def needed_algorithms(self) -> set[str]:
        return {self.settings.signing_alg} | {a.signing_alg for a in self.registry.apis.values()}

    async def ensure_keys(self, algorithms: set[str] | None = None) -> None:
        """Every needed algorithm has an active key; rotate when due; drop expired keys."""
        now = int(self.clock())
        rows = await self.repository.list_keys()
        states = key_states(rows, now=now, max_token_ttl=self.settings.max_token_ttl)
        await self.repository.delete_keys(
            s.kid for s in states if s.removable_at is not None and s.removable_at <= now
        )
        period = int(self.settings.key_rotation_days * 86400)
        for alg in sorted(algorithms or self.needed_algorithms()):
            mine = [r for r in rows if r.alg == alg]
            generation = max((r.generation for r in mine), default=0) + 1
            if not mine:
                await self._insert_key(alg, generation, now, activates_at=now)
                continue
            newest = max(mine, key=lambda r: r.activates_at)
            if period and newest.activates_at <= now - period:
                delay = self.settings.key_publication_delay
                await self._insert_key(alg, generation, now, activates_at=now + delay)

    async def _insert_key(self, alg: str, generation: int, now: int, *, activates_at: int) -> None:
        row = new_key_row(
            alg,
            generation=generation,
            now=now,
            activates_at=activates_at,
            encryptor=self.secrets.encryptor,
        )
        if await self.repository.insert_key(row):
            log.info("signing key created", extra={"kid": row.kid, "alg": alg})

    # -- the token endpoint -------------------------------------------------------------------

    async def token(self, request: TokenRequest) -> TokenResponse:
        """RFC 6749 §4.4.2-§4.4.3: validate, authenticate, decide, sign."""
        now = int(self.clock())
        creds: PresentedCredentials | None = None
        try:
            check_grant_type(request.params)
            creds = extract_credentials(request.authorization, request.params, realm=self.realm)
            creds = self.assertions.identify(creds)
            client = await self._authenticate(creds, now)
            check_grant_type(request.params, client)
            grant = resolve_grant(client, request.params, self.registry, self.policy)
            if grant.token_format == "opaque":
                return await self.lifecycle.issue_opaque(client, grant, now, creds.method)
            return self._issue(client, grant, now, creds.method)
        except OAuthError as error:
            self._failed(error, creds, now)
            raise

    def _failed(self, error: OAuthError, creds: PresentedCredentials | None, now: int) -> None:
        client_id = creds.client_id if creds is not None else None
        if isinstance(error, InvalidClient):
            self.throttle.fail(client_id, now)
        self.audit.failed(
            endpoint="token",
            client_id=client_id,
            error=error.error,
            reason=error.reason,
            method=creds.method if creds is not None else None,
        )

    async def lookup_client(self, client_id: str | None) -> Client | None:
        if client_id is None:
            return None
        client = self.registry.clients.get(client_id)
        if client is None:
            # A client created a moment ago on another instance: check the version now rather
            # than waiting for the next poll (rate-limited, so unknown ids cost little).
            await self.refresh_if_changed(min_interval=0.25)
            client = self.registry.clients.get(client_id)
        return client

    async def authenticate(self, creds: PresentedCredentials, now: int) -> Client:
        """Client authentication as at the token endpoint, for introspection and revocation
        (RFC 7662 §2.1, RFC 7009 §2.1). ``creds`` come from ``assertions.identify``."""
        return await self._authenticate(creds, now)

    async def _authenticate(self, creds: PresentedCredentials, now: int) -> Client:
        creds = self.assertions.identify(creds)  # no-op once identified
        self.throttle.check(creds.client_id, now)
        client = check_client_state(await self.lookup_client(creds.client_id), creds, self.realm)
        if creds.method in ASSERTION_METHODS:
            secret_used = await self.assertions.authenticate(client, creds, now)
        else:
            secret_used = check_secret(
                client, creds, digest=self.secrets.hasher.digest_like, now=now, realm=self.realm
            )
        if secret_used is not None:
            self._last_used[secret_used] = now
        return client

    def _issue(self, client: Client, grant: Grant, now: int, method: str) -> TokenResponse:
        signer = self.keys.signer(grant.signing_alg, now)
        if signer is None:
            raise TemporarilyUnavailable(reason=f"no active {grant.signing_alg} key")
        jti = secrets.token_urlsafe(16)
        claims = build_claims(
            issuer=self.settings.issuer, client_id=client.client_id, grant=grant, now=now, jti=jti
        )
        token = signer.sign(claims)
        self.audit.issued(
            client_id=client.client_id,
            scopes=grant.scopes,
            audience=grant.audience,
            jti=jti,
            method=method,
        )
        return token_response(token, grant)
