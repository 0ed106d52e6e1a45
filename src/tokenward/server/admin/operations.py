"""Every administrative operation and read: the one admin layer.

The CLI, the admin REST API, the console and ``tokenward apply`` are thin surfaces over
:class:`Admin`: they parse their input into the typed models of ``admin/schemas.py``, call one
method, and render the view models of ``admin/views.py``. Each change is validated here, then
written by the store in one transaction together with its audit record (naming the ``actor``)
and a registry-version bump, so every worker reloads within the refresh bound; the process
that made the change refreshes at once (``changed``).
"""

from __future__ import annotations

import contextlib
import logging
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
    ClientCreated,
    ClientView,
    KeyView,
    NewSecretView,
    SecretView,
    timestamp,
)
from tokenward.server.client_keys import check_jwks_uri
from tokenward.server.clock import Clock
from tokenward.server.keys import key_states, rotate
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
    ConflictError,
    KeyStore,
    NewSecretRow,
    NotFoundError,
)

__all__ = ["Admin"]

log = logging.getLogger("tokenward.admin")
_KeyRegistration = tuple[Mapping[str, Any] | None, str | None, str | None]
_SECRET_BEARING: frozenset[AuthMethod] = SECRET_METHODS | {"client_secret_jwt"}


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
            )
        if changes.signing_alg:
            await self.ensure_key(changes.signing_alg)
        await self._after_change()
        return await self.get_api(identifier)

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

    async def update_client(
        self, client_id: str, changes: ClientUpdate, *, actor: str
    ) -> ClientView:
        client = await self._client(client_id)
        updated = await self._changed_client(client, changes)
        if updated.default_scopes is not None and not updated.default_scopes <= updated.scopes:
            raise Invalid("default scopes must be among the granted scopes")
        shown = changes.model_dump(mode="json", exclude_unset=True, exclude={"jwks"})
        if "jwks" in changes.model_fields_set:
            shown["jwks"] = "(replaced)"
        record = self._record("client.updated", actor, client_id=client_id, changes=shown)
        with _translated(f"client {client_id}"):
            await self._store.save_client(updated, now=self._now(), audit=record)
        await self._after_change()
        return ClientView.of(updated)

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
                values["not_before"] = self._now() + 1
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
        client = await self._client(client_id)
        not_before = self._now() + 1
        record = self._record(
            "client.tokens_revoked", actor, client_id=client_id, not_before=not_before
        )
        with _translated(f"client {client_id}"):
            await self._store.save_client(
                replace(client, not_before=not_before), now=self._now(), audit=record
            )
        await self._after_change()
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
        every token it signed has expired."""
        alg = spec.alg or self._settings.signing_alg
        delay = (
            self._settings.key_publication_delay if spec.activate_in is None else spec.activate_in
        )
        now = self._now()
        row = await rotate(
            self._keys, self._secrets.encryptor, alg=alg, now=now, activates_at=now + delay
        )
        if row is None:
            raise Conflict("a concurrent rotation created this key generation; retry")
        await self._audit.add_audit(
            [self._record("key.rotated", actor, kid=row.kid, alg=alg, activates_at=now + delay)]
        )
        await self._after_change()
        return next(k for k in await self.list_keys() if k.kid == row.kid)

    # -- audit --------------------------------------------------------------------------------

    async def list_audit(self, query: AuditQuery) -> list[AuditEventView]:
        if not 1 <= query.limit <= 1000:
            raise Invalid("limit must be between 1 and 1000")
        return [AuditEventView.of(row) for row in await self._audit.list_audit(query)]
