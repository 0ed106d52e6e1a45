"""Every administrative operation and read: the one admin layer.

The CLI, the admin REST API, the console and ``tokenward apply`` are thin surfaces over
:class:`Admin`: they parse their input into the typed models of ``admin/schemas.py``, call one
method, and render the view models of ``admin/views.py``. Each change is validated here, then
written by the store in one transaction together with its audit record (naming the ``actor``)
and a registry-version bump, so every worker reloads within the refresh bound; the process
that made the change refreshes at once (``changed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import random
import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from tokenward.jose.assertion import ClientKeysError, check_client_jwks
from tokenward.protocol.model import SECRET_METHODS, Api, AuthMethod, Client
from tokenward.server.admin.errors import Conflict, Invalid, NotFound
from tokenward.server.admin.schemas import (
    ApiCreate,
    ApiUpdate,
    ClientCreate,
    ClientUpdate,
    KeyRotate,
    SecretCreate,
    SecretRevoke,
)
from tokenward.server.admin.views import (
    ApiView,
    AuditEventView,
    AuditPage,
    ClientCreated,
    ClientView,
    KeyView,
    NewSecretView,
    SecretView,
    timestamp,
)
from tokenward.server.client_keys import check_jwks_uri
from tokenward.server.clock import Clock
from tokenward.server.keys import KeyState, key_states, rotate, safe_activation_delay
from tokenward.server.secrets import (
    ServerSecrets,
    generate_client_secret,
    secret_strength_warning,
)
from tokenward.server.settings import Settings
from tokenward.server.stores import (
    AdminStore,
    AuditQuery,
    AuditRecord,
    AuditStore,
    ConcurrentChangeError,
    ConflictError,
    KeyStore,
    NewSecretRow,
    NotFoundError,
)

__all__ = ["MODIFY_ATTEMPTS", "Admin"]

log = logging.getLogger("tokenward.admin")
_KeyRegistration = tuple[Mapping[str, Any] | None, str | None, str | None]
_SECRET_BEARING: frozenset[AuthMethod] = SECRET_METHODS | {"client_secret_jwt"}
#: Read-modify-write attempts of one client change before giving up with a conflict.
MODIFY_ATTEMPTS = 10


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    """Store outcomes as admin errors."""
    try:
        yield
    except NotFoundError:
        raise NotFound(f"{what} not found") from None
    except ConflictError as exc:
        raise Conflict(str(exc)) from None


def _assertion_alg(jwks: Mapping[str, Any], alg: str | None) -> str:
    """The registered private_key_jwt algorithm: the one given, or the only one the keys fit
    (RSA keys default to RS256 unless their JWK says PS256, Ed25519 keys to EdDSA)."""
    try:
        usable = check_client_jwks(jwks)
    except ClientKeysError as exc:
        raise Invalid(f"invalid JWKS: {exc}") from None
    if alg is None:
        for family, default in (({"RS256", "PS256"}, "RS256"), ({"EdDSA", "Ed25519"}, "EdDSA")):
            if usable == family:
                return default
        if len(usable) != 1:
            raise Invalid("the JWKS holds keys of several types; choose assertion_alg")
        return next(iter(usable))
    if alg not in usable:
        raise Invalid(f"no key in the JWKS can be used with {alg}")
    return alg


def _later(current: int | None, proposed: int) -> int:
    """A ``not_before`` never moves back: a revocation is never undone by a later change."""
    return proposed if current is None else max(current, proposed)


def _strong_secret(methods: frozenset[AuthMethod], secret: str | None) -> None:
    # client_secret_jwt uses the secret as an HMAC key (RFC 7518 §3.2, RFC 8725 §3.5): a
    # captured assertion allows an offline guess, so a human-chosen secret is refused.
    if "client_secret_jwt" in methods and secret is not None and secret_strength_warning(secret):
        raise Invalid("client_secret_jwt needs a generated secret (an HMAC key); omit the secret")


class Admin:
    def __init__(
        self,
        *,
        settings: Settings,
        store: AdminStore,
        keys: KeyStore,
        audit: AuditStore,
        secrets: ServerSecrets,
        clock: Clock,
        changed: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._keys = keys
        self._audit = audit
        self._secrets = secrets
        self._clock = clock
        self._changed = changed

    def _now(self) -> int:
        return int(self._clock())

    def _record(self, event: str, actor: str, **data: Any) -> AuditRecord:
        return AuditRecord(at=self._now(), event=event, actor=actor, data=data)

    async def _after_change(self) -> None:
        if self._changed is not None:
            try:
                await self._changed()
            except Exception:
                log.exception("local registry refresh failed after an admin change")

    def _check_ttl(self, ttl: int | None) -> None:
        if ttl is not None and ttl > self._settings.max_token_ttl:
            raise Invalid(f"token lifetime must be between 30 and {self._settings.max_token_ttl} s")

    # -- APIs ---------------------------------------------------------------------------------

    async def list_apis(self) -> list[ApiView]:
        return [ApiView.of(api) for api in await self._store.list_apis()]

    async def get_api(self, identifier: str) -> ApiView:
        with _translated(f"API {identifier}"):
            return ApiView.of(await self._store.get_api(identifier))

    async def create_api(self, spec: ApiCreate, *, actor: str) -> ApiView:
        self._check_ttl(spec.token_ttl)
        unknown = sorted(set(spec.scope_descriptions) - set(spec.scopes))
        if unknown:
            raise Invalid(f"a description names a scope the API does not define: {unknown[0]}")
        alg = spec.signing_alg or self._settings.signing_alg
        api = Api(
            spec.identifier, spec.name, frozenset(spec.scopes), spec.token_ttl, alg,
            spec.token_format,
        )  # fmt: skip
        record = self._record(
            "api.created", actor, identifier=api.identifier, scopes=sorted(api.scopes)
        )
        with _translated(f"API {api.identifier}"):
            await self._store.create_api(
                api, now=self._now(), descriptions=spec.scope_descriptions, audit=record
            )
        await self.ensure_key(alg)
        await self._after_change()
        return ApiView.of(api)

    async def update_api(self, identifier: str, changes: ApiUpdate, *, actor: str) -> ApiView:
        values = changes.model_dump(
            include={"name", "token_ttl", "signing_alg", "token_format"}, exclude_unset=True
        )
        self._check_ttl(changes.token_ttl)
        if "token_format" in values and values["token_format"] is None:
            raise Invalid("token_format: an API always has a token format (jwt or opaque)")
        if "signing_alg" in values and values["signing_alg"] is None:
            values.pop("signing_alg")
        await self._check_descriptions(identifier, changes)
        record = self._record(
            "api.updated",
            actor,
            identifier=identifier,
            changes=changes.model_dump(mode="json", exclude_unset=True),
        )
        with _translated(f"API {identifier}"):
            await self._store.update_api(
                identifier,
                add_scopes=changes.add_scopes,
                remove_scopes=changes.remove_scopes,
                values=values,
                audit=record,
                descriptions=changes.scope_descriptions,
            )
        if changes.signing_alg:
            await self.ensure_key(changes.signing_alg)
        await self._after_change()
        return await self.get_api(identifier)

    async def _check_descriptions(self, identifier: str, changes: ApiUpdate) -> None:
        if changes.scope_descriptions is None:
            return
        with _translated(f"API {identifier}"):
            current = (await self._store.get_api(identifier)).scopes
        after = (set(current) | set(changes.add_scopes)) - set(changes.remove_scopes)
        unknown = sorted(set(changes.scope_descriptions) - after)
        if unknown:
            raise Invalid(f"a description names a scope the API does not define: {unknown[0]}")

    async def scope_descriptions(self) -> dict[str, str]:
        """Every scope's description ("" when it has none), by scope name."""
        return await self._store.scope_descriptions()

    async def delete_api(self, identifier: str, *, actor: str) -> None:
        record = self._record("api.deleted", actor, identifier=identifier)
        with _translated(f"API {identifier}"):
            await self._store.delete_api(identifier, audit=record)
        await self._after_change()

    # -- clients ------------------------------------------------------------------------------

    async def list_clients(self) -> list[ClientView]:
        return [ClientView.of(c) for c in await self._store.list_clients()]

    async def _client(self, client_id: str) -> Client:
        with _translated(f"client {client_id}"):
            return await self._store.get_client(client_id)

    async def get_client(self, client_id: str) -> ClientView:
        return ClientView.of(await self._client(client_id))

    async def _check_scopes(self, scopes: frozenset[str]) -> frozenset[str]:
        known = {s for api in await self._store.list_apis() for s in api.scopes}
        unknown = sorted(scopes - known)
        if unknown:
            raise Invalid(f"unknown scope {unknown[0]!r}: define it on an API first")
        return scopes

    async def _check_apis(self, apis: list[str]) -> frozenset[str]:
        known = {api.identifier for api in await self._store.list_apis()}
        unknown = sorted(set(apis) - known)
        if unknown:
            raise Invalid(f"unknown API {unknown[0]!r}")
        return frozenset(apis)

    def _check_client_keys(
        self,
        methods: frozenset[AuthMethod],
        jwks: Mapping[str, Any] | None,
        jwks_uri: str | None,
        assertion_alg: str | None,
    ) -> _KeyRegistration:
        """Public keys for private_key_jwt: inline JWKS or jwks_uri, and the one algorithm the
        client signs assertions with (RFC 8725 §3.1, §3.10)."""
        if "private_key_jwt" not in methods:
            if jwks is not None or jwks_uri is not None or assertion_alg is not None:
                raise Invalid("public keys and assertion_alg are for private_key_jwt clients")
            return None, None, None
        if (jwks is None) == (jwks_uri is None):
            raise Invalid("private_key_jwt needs exactly one of jwks or jwks_uri")
        if jwks is not None:
            return dict(jwks), None, _assertion_alg(jwks, assertion_alg)
        assert jwks_uri is not None
        try:
            check_jwks_uri(jwks_uri, allow_private=self._settings.jwks_uri_allow_private)
        except ValueError as exc:
            raise Invalid(str(exc)) from None
        return None, jwks_uri, assertion_alg or "ES256"

    async def create_client(self, spec: ClientCreate, *, actor: str) -> ClientCreated:
        granted = await self._check_scopes(frozenset(spec.scopes))
        defaults = None if spec.default_scopes is None else frozenset(spec.default_scopes)
        if defaults is not None and not defaults <= granted:
            raise Invalid("default scopes must be among the granted scopes")
        methods = frozenset(spec.auth_methods) or SECRET_METHODS
        self._check_ttl(spec.token_ttl)
        jwks, jwks_uri, assertion_alg = self._check_client_keys(
            methods, spec.jwks, spec.jwks_uri, spec.assertion_alg
        )
        chosen = spec.secret.get_secret_value() if spec.secret is not None else None
        _strong_secret(methods, chosen)
        now = self._now()
        client = Client(
            client_id=spec.client_id or str(uuid.uuid4()),
            name=spec.name,
            auth_methods=methods,
            scopes=granted,
            default_scopes=defaults,
            apis=await self._check_apis(spec.apis),
            token_ttl=spec.token_ttl,
            token_format=spec.token_format,
            jwks=jwks,
            jwks_uri=jwks_uri,
            assertion_alg=assertion_alg,
            introspect_apis=await self._check_apis(spec.introspect_apis),
            created_at=now,
            quota_per_minute=spec.quota_per_minute,
            quota_per_hour=spec.quota_per_hour,
        )
        new = None
        if methods & _SECRET_BEARING:
            new = self._new_secret(client, label="initial", chosen=chosen, expires_in=None)
        record = self._record(
            "client.created",
            actor,
            client_id=client.client_id,
            scopes=sorted(granted),
            secret_id=new[0].id if new else None,
            quota_per_minute=client.quota_per_minute,
            quota_per_hour=client.quota_per_hour,
        )
        with _translated(f"client {client.client_id}"):
            await self._store.create_client(
                client, now=now, secret=new[0] if new else None, audit=record
            )
        await self._after_change()
        return ClientCreated(
            client=await self.get_client(client.client_id),
            secret=self._secret_view(client.client_id, *new) if new else None,
        )

    async def client_jwks(self, client_id: str) -> dict[str, Any] | None:
        """The public keys registered inline for a private_key_jwt client (not secrets: what
        ``tokenward export`` writes)."""
        client = await self._client(client_id)
        return None if client.jwks is None else dict(client.jwks)

    async def update_client(
        self, client_id: str, changes: ClientUpdate, *, actor: str
    ) -> ClientView:
        shown = changes.model_dump(mode="json", exclude_unset=True, exclude={"jwks"})
        if "jwks" in changes.model_fields_set:
            shown["jwks"] = "(replaced)"

        async def change(client: Client) -> tuple[Client, AuditRecord]:
            updated = await self._changed_client(client, changes)
            if updated.default_scopes is not None and not updated.default_scopes <= updated.scopes:
                raise Invalid("default scopes must be among the granted scopes")
            return updated, self._record(
                "client.updated", actor, client_id=client_id, changes=shown
            )

        return ClientView.of(await self._modify_client(client_id, change))

    async def _modify_client(
        self, client_id: str, change: Callable[[Client], Awaitable[tuple[Client, AuditRecord]]]
    ) -> Client:
        """Read, change, write if nobody wrote in between (the row's ``revision``); else read
        again and reapply the change, so concurrent changes compose instead of overwriting
        each other (docs/consistency.md)."""
        for attempt in range(MODIFY_ATTEMPTS):
            client = await self._client(client_id)
            updated, record = await change(client)
            try:
                with _translated(f"client {client_id}"):
                    await self._store.save_client(updated, now=self._now(), audit=record)
            except ConcurrentChangeError:
                # Jittered backoff: writers that collided do not collide again in lockstep.
                await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))  # noqa: S311
                continue
            await self._after_change()
            return replace(updated, revision=client.revision + 1)
        raise Conflict(f"client {client_id} kept changing concurrently; try again")

    async def _changed_client(self, client: Client, changes: ClientUpdate) -> Client:
        given = changes.model_fields_set
        granted = set(client.scopes if changes.scopes is None else changes.scopes)
        granted = (granted | set(changes.add_scopes)) - set(changes.remove_scopes)
        values: dict[str, Any] = {"scopes": await self._check_scopes(frozenset(granted))}
        if changes.name is not None:
            values["name"] = changes.name
        if "default_scopes" in given:
            defaults = changes.default_scopes
            values["default_scopes"] = None if defaults is None else frozenset(defaults)
        if changes.apis is not None:
            values["apis"] = await self._check_apis(changes.apis)
        if changes.auth_methods is not None:
            values["auth_methods"] = frozenset(changes.auth_methods) or SECRET_METHODS
        if "token_ttl" in given:
            self._check_ttl(changes.token_ttl)
            values["token_ttl"] = changes.token_ttl
        if "token_format" in given:
            values["token_format"] = changes.token_format
        if changes.enabled is not None:
            values["enabled"] = changes.enabled
            if not changes.enabled:
                # Disabling also revokes every token issued so far (docs/revocation.md).
                values["not_before"] = _later(client.not_before, self._now() + 1)
        if changes.introspect_apis is not None:
            values["introspect_apis"] = await self._check_apis(changes.introspect_apis)
        for quota in ("quota_per_minute", "quota_per_hour"):
            if quota in given:
                values[quota] = getattr(changes, quota)
        values.update(self._changed_keys(client, values.get("auth_methods"), changes))
        return replace(client, **values)

    def _changed_keys(
        self, client: Client, methods: frozenset[AuthMethod] | None, changes: ClientUpdate
    ) -> dict[str, Any]:
        """New keys replace the old ones (inline or URI); otherwise the old ones are kept,
        or dropped when private_key_jwt is no longer among the methods."""
        jwks: Mapping[str, Any] | None = changes.jwks
        jwks_uri, alg = changes.jwks_uri, changes.assertion_alg
        new_keys = jwks is not None or jwks_uri is not None
        if methods is None and not new_keys and alg is None:
            return {}
        methods = client.auth_methods if methods is None else methods
        if not new_keys:
            if "private_key_jwt" not in methods:
                return {"jwks": None, "jwks_uri": None, "assertion_alg": None}
            jwks, jwks_uri = client.jwks, client.jwks_uri
            alg = alg or client.assertion_alg  # type: ignore[assignment]
        keys = self._check_client_keys(methods, jwks, jwks_uri, alg)
        return dict(zip(("jwks", "jwks_uri", "assertion_alg"), keys, strict=True))

    async def revoke_tokens(self, client_id: str, *, actor: str) -> int:
        """Revoke every token the client holds: introspection reports tokens issued before the
        returned time (``not_before``) inactive, on every worker at once. Returns it."""
        not_before = self._now() + 1

        async def change(client: Client) -> tuple[Client, AuditRecord]:
            record = self._record(
                "client.tokens_revoked", actor, client_id=client_id, not_before=not_before
            )
            return replace(client, not_before=_later(client.not_before, not_before)), record

        await self._modify_client(client_id, change)
        return not_before

    async def delete_client(self, client_id: str, *, actor: str) -> None:
        record = self._record("client.deleted", actor, client_id=client_id)
        with _translated(f"client {client_id}"):
            await self._store.delete_client(client_id, audit=record)
        await self._after_change()

    # -- secrets ------------------------------------------------------------------------------

    def _new_secret(
        self, client: Client, *, label: str, chosen: str | None, expires_in: int | None
    ) -> tuple[NewSecretRow, str, str | None]:
        """A secret row, its value and a warning for a weak chosen value."""
        if chosen == "":
            raise Invalid("an empty secret is not allowed")
        _strong_secret(client.auth_methods, chosen)
        value = chosen if chosen is not None else generate_client_secret()
        encrypted = None
        if "client_secret_jwt" in client.auth_methods:
            # Verifying an HMAC needs the key itself: kept AES-GCM sealed, bound to the client.
            encrypted = self._secrets.encryptor.encrypt(
                value.encode(), context=client.client_id.encode()
            )
        now = self._now()
        row = NewSecretRow(
            id="sec_" + secrets.token_hex(8),
            digest=self._secrets.hasher.digest(value),
            label=label,
            created_at=now,
            expires_at=now + expires_in if expires_in else None,
            encrypted_secret=encrypted,
        )
        warning = secret_strength_warning(chosen) if chosen is not None else None
        return row, value, warning

    @staticmethod
    def _secret_view(
        client_id: str, row: NewSecretRow, value: str, warning: str | None
    ) -> NewSecretView:
        return NewSecretView(
            client_id=client_id,
            secret_id=row.id,
            client_secret=value,
            label=row.label,
            expires_at=timestamp(row.expires_at),
            warning=warning,
        )

    async def secret_matches(self, client_id: str, secret: str) -> bool:
        """Whether ``secret`` is one of the client's unexpired secrets (compared as the token
        endpoint does: by digest, in constant time). ``tokenward apply`` uses it to add a
        secret referenced from the environment or a file only when it is new."""
        now = self._now()
        hasher = self._secrets.hasher
        for stored in (await self._client(client_id)).secrets:
            if stored.expires_at is not None and stored.expires_at <= now:
                continue
            candidate = hasher.digest_like(secret, stored.digest)
            if candidate is not None and hmac.compare_digest(candidate, stored.digest):
                return True
        return False

    async def list_secrets(self, client_id: str) -> list[SecretView]:
        return (await self.get_client(client_id)).secrets

    async def add_secret(self, client_id: str, spec: SecretCreate, *, actor: str) -> NewSecretView:
        """A new secret, usable at once beside the old ones (rotation without downtime)."""
        client = await self._client(client_id)
        chosen = spec.secret.get_secret_value() if spec.secret is not None else None
        row, value, warning = self._new_secret(
            client, label=spec.label, chosen=chosen, expires_in=spec.expires_in
        )
        record = self._record("secret.added", actor, client_id=client_id, secret_id=row.id)
        with _translated(f"client {client_id}"):
            await self._store.add_secret(client_id, row, audit=record)
        await self._after_change()
        return self._secret_view(client_id, row, value, warning)

    async def revoke_secret(
        self, client_id: str, secret_id: str, spec: SecretRevoke, *, actor: str
    ) -> None:
        """Revoke now, or let it work ``spec.grace`` more seconds (rotation with overlap)."""
        expires_at = self._now() + spec.grace if spec.grace > 0 else None
        record = self._record(
            "secret.revoked", actor, client_id=client_id, secret_id=secret_id, grace=spec.grace
        )
        with _translated(f"secret {secret_id} of client {client_id}"):
            await self._store.revoke_secret(
                client_id, secret_id, expires_at=expires_at, audit=record
            )
        await self._after_change()

    # -- signing keys -------------------------------------------------------------------------

    async def list_keys(self) -> list[KeyView]:
        rows = await self._keys.list_keys()
        states = key_states(rows, now=self._now(), max_token_ttl=self._settings.max_token_ttl)
        return [KeyView.of(s) for s in states]

    async def ensure_key(self, alg: str) -> None:
        """An algorithm an API signs with has a key, signing at once (a new API's first)."""
        if not any(r.alg == alg for r in await self._keys.list_keys()):
            now = self._now()
            await rotate(self._keys, self._secrets.encryptor, alg=alg, now=now, activates_at=now)

    async def rotate_key(self, spec: KeyRotate, *, actor: str) -> KeyView:
        """Publish a new key now; it signs after ``activate_in`` seconds (default: the
        publication delay). The previous key retires at that moment and stays published until
        every token it signed has expired. An activation sooner than every verifier can know
        the key is refused unless ``spec.force``."""
        alg = spec.alg or self._settings.signing_alg
        delay = (
            self._settings.key_publication_delay if spec.activate_in is None else spec.activate_in
        )
        now = self._now()
        if not spec.force:
            self._check_activation(delay, now, default=spec.activate_in is None)
        row = await rotate(
            self._keys, self._secrets.encryptor, alg=alg, now=now, activates_at=now + delay
        )
        if row is None:
            raise Conflict("a concurrent rotation created this key generation; retry")
        record = self._record(
            "key.rotated", actor, kid=row.kid, alg=alg, activates_at=now + delay, forced=spec.force
        )
        await self._audit.add_audit([record])
        await self._after_change()
        return next(k for k in await self.list_keys() if k.kid == row.kid)

    async def _key_state(self, kid: str) -> KeyState:
        rows = await self._keys.list_keys()
        states = key_states(rows, now=self._now(), max_token_ttl=self._settings.max_token_ttl)
        found = next((s for s in states if s.kid == kid), None)
        if found is None:
            raise NotFound(f"key {kid} not found")
        return found

    async def retire_key(self, kid: str, *, actor: str) -> KeyView:
        """Stop signing with key ``kid`` now (e.g. it may be compromised). A successor signs at
        once: the ``next`` key of its algorithm, brought forward, or a new key. The retired key
        stays published until every token it signed has expired. Retiring a retired key
        changes nothing."""
        state = await self._key_state(kid)
        if state.state == "retired":
            return KeyView.of(state)
        if state.state == "next":
            raise Conflict(f"key {kid} has not signed anything yet (next): delete it instead")
        successor = await self._successor(state.alg)
        await self._audit.add_audit(
            [self._record("key.retired", actor, kid=kid, alg=state.alg, successor=successor)]
        )
        await self._after_change()
        return KeyView.of(await self._key_state(kid))

    async def _successor(self, alg: str) -> str:
        """The kid that signs ``alg`` from now on: the earliest ``next`` key, or a new one."""
        now = self._now()
        rows = await self._keys.list_keys()
        states = key_states(rows, now=now, max_token_ttl=self._settings.max_token_ttl)
        upcoming = sorted(
            (s for s in states if s.alg == alg and s.state == "next"),
            key=lambda s: s.activates_at,
        )
        if upcoming:
            with _translated(f"key {upcoming[0].kid}"):
                await self._keys.set_key_activation(upcoming[0].kid, now)
            return upcoming[0].kid
        row = await rotate(self._keys, self._secrets.encryptor, alg=alg, now=now, activates_at=now)
        if row is None:
            raise Conflict("a concurrent rotation created this key generation; retry")
        return row.kid

    async def delete_key(self, kid: str, *, force: bool = False, actor: str) -> None:
        """Remove key ``kid`` from the JWKS and the database. An active key must be retired
        first; a retired key whose tokens may still be valid is kept unless ``force`` (a
        compromised key: its tokens stop verifying once verifiers refresh their JWKS)."""
        state = await self._key_state(kid)
        if state.state == "active":
            raise Conflict(f"key {kid} is signing (active): retire it first")
        live_until = state.removable_at
        if live_until is not None and live_until > self._now() and not force:
            until = timestamp(live_until)
            assert until is not None
            raise Conflict(
                f"key {kid} signed tokens that may be valid until "
                f"{until.isoformat().replace('+00:00', 'Z')}; deleting it now makes them fail "
                "verification: force it only if the key is compromised"
            )
        await self._keys.delete_keys([kid])
        await self._audit.add_audit(
            [self._record("key.deleted", actor, kid=kid, alg=state.alg, forced=force)]
        )
        await self._after_change()

    def _check_activation(self, delay: int, now: int, *, default: bool) -> None:
        settings = self._settings
        least = safe_activation_delay(
            jwks_max_age=settings.jwks_max_age, registry_refresh=settings.cache_refresh_seconds
        )
        if delay >= least:
            return
        earliest = timestamp(now + least)
        assert earliest is not None
        given = "TOKENWARD_KEY_PUBLICATION_DELAY is" if default else "activating in"
        raise Invalid(
            f"{given} {delay} s, too soon: verifiers may keep the JWKS for "
            f"{settings.jwks_max_age} s (TOKENWARD_JWKS_MAX_AGE) and other instances publish a "
            f"new key within {settings.cache_refresh_seconds:g} s "
            f"(TOKENWARD_CACHE_REFRESH_SECONDS), so tokens it signs sooner would fail "
            f"verification; the earliest safe activation is in {least} s "
            f"({earliest.isoformat().replace('+00:00', 'Z')}). Force it only to replace a "
            "compromised key (docs/consistency.md)"
        )

    # -- audit --------------------------------------------------------------------------------

    def _check_limit(self, query: AuditQuery) -> None:
        if not 1 <= query.limit <= 1000:
            raise Invalid("limit must be between 1 and 1000")

    async def list_audit(self, query: AuditQuery) -> list[AuditEventView]:
        self._check_limit(query)
        return [AuditEventView.of(row) for row in await self._audit.list_audit(query)]

    async def audit_page(self, query: AuditQuery) -> AuditPage:
        """``query.limit`` events and the cursor of the next page (``query.before_id``)."""
        self._check_limit(query)
        rows = await self._audit.list_audit(replace(query, limit=query.limit + 1))
        events = [AuditEventView.of(row) for row in rows[: query.limit]]
        more = len(rows) > query.limit
        return AuditPage(events=events, next_cursor=str(events[-1].id) if more else None)
