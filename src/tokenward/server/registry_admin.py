"""Registry administration: the operations behind the CLI and the admin API.

Every change is validated here, written through the repository (which bumps the registry
version so workers reload), and recorded as an audit event in the database.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from tokenward.jose.assertion import (
    ASSERTION_SIGNING_ALGORITHMS,
    ClientKeysError,
    check_client_jwks,
)
from tokenward.jose.keys import SIGNING_ALGORITHMS
from tokenward.protocol.model import AUTH_METHODS, SECRET_METHODS, Api, Client, ClientSecret
from tokenward.protocol.scopes import is_scope_token
from tokenward.server.client_keys import check_jwks_uri
from tokenward.server.keys import KeyState, key_states, new_key_row
from tokenward.server.secrets import (
    ServerSecrets,
    generate_client_secret,
    secret_strength_warning,
)
from tokenward.server.settings import Settings
from tokenward.server.storage.sql.repository import NotFoundError, Repository

__all__ = ["Admin", "AdminError", "NewSecret", "NotFoundError"]

_CLIENT_ID = re.compile(r"[A-Za-z0-9._~:@+\-]{1,255}")


class AdminError(ValueError):
    """An invalid administrative request; the message is safe to show."""


@dataclass(frozen=True)
class NewSecret:
    """A secret just created: the only moment its value is known."""

    record: ClientSecret
    value: str
    warning: str | None = None

    def __repr__(self) -> str:
        return f"NewSecret(id={self.record.id!r}, value='***')"


def _check_ttl(ttl: int | None, settings: Settings) -> None:
    if ttl is not None and not 30 <= ttl <= settings.max_token_ttl:
        raise AdminError(f"token lifetime must be between 30 and {settings.max_token_ttl} s")


_KeyRegistration = tuple[Mapping[str, Any] | None, str | None, str | None]


def _assertion_alg(jwks: Mapping[str, Any], alg: str | None) -> str:
    """The registered private_key_jwt algorithm: the one given, or the only one the keys fit
    (RSA keys default to RS256 unless their JWK says PS256, Ed25519 keys to EdDSA)."""
    try:
        usable = check_client_jwks(jwks)
    except ClientKeysError as exc:
        raise AdminError(f"invalid JWKS: {exc}") from None
    if alg is None:
        for family, default in (({"RS256", "PS256"}, "RS256"), ({"EdDSA", "Ed25519"}, "EdDSA")):
            if usable == family:
                return default
        if len(usable) != 1:
            raise AdminError("the JWKS holds keys of several types; choose --assertion-alg")
        return next(iter(usable))
    if alg not in usable:
        raise AdminError(f"no key in the JWKS can be used with {alg}")
    return alg


def _strong_secret(methods: frozenset[str], secret: str | None) -> None:
    # client_secret_jwt uses the secret as an HMAC key (RFC 7518 §3.2, RFC 8725 §3.5): a
    # captured assertion allows an offline guess, so a human-chosen secret is refused.
    if "client_secret_jwt" in methods and secret is not None and secret_strength_warning(secret):
        raise AdminError("client_secret_jwt needs a generated secret (an HMAC key); omit --secret")


class Admin:
    def __init__(
        self, settings: Settings, repository: Repository, server_secrets: ServerSecrets
    ) -> None:
        self.settings = settings
        self.repo = repository
        self.secrets = server_secrets

    def _now(self) -> int:
        return int(time.time())

    async def _audit(self, event: str, actor: str, **data: Any) -> None:
        await self.repo.add_audit(
            [{"at": self._now(), "event": event, "actor": actor, "data": data}]
        )

    # -- APIs ---------------------------------------------------------------------------------

    async def create_api(
        self,
        *,
        identifier: str,
        name: str,
        scopes: Iterable[str],
        token_ttl: int | None = None,
        signing_alg: str | None = None,
        token_format: str = "jwt",
        descriptions: Mapping[str, str] | None = None,
        actor: str = "cli",
    ) -> Api:
        parts = urlsplit(identifier)
        if not parts.scheme or "#" in identifier or not identifier.isprintable():
            raise AdminError("the API identifier must be an absolute URI without a fragment")
        names = frozenset(scopes)
        bad = sorted(s for s in names if not is_scope_token(s) or s == "*")
        if bad:
            raise AdminError(f"invalid scope name: {bad[0]!r} (RFC 6749 §3.3 scope-token)")
        alg = signing_alg or self.settings.signing_alg
        if alg not in SIGNING_ALGORITHMS:
            raise AdminError(f"signing algorithm must be one of {', '.join(SIGNING_ALGORITHMS)}")
        if token_format not in ("jwt", "opaque"):
            raise AdminError("token format must be jwt or opaque")
        _check_ttl(token_ttl, self.settings)
        api = Api(identifier, name, names, token_ttl, alg, token_format)  # type: ignore[arg-type]
        try:
            await self.repo.get_api(identifier)
        except NotFoundError:
            pass
        else:
            raise AdminError(f"an API with identifier {identifier} already exists")
        try:
            await self.repo.create_api(api, now=self._now(), descriptions=descriptions or {})
        except ValueError as exc:
            raise AdminError(str(exc)) from None
        await self.ensure_key(alg)
        await self._audit("api.created", actor, identifier=identifier, scopes=sorted(names))
        return api

    async def update_api(
        self,
        identifier: str,
        *,
        add_scopes: Iterable[str] = (),
        remove_scopes: Iterable[str] = (),
        token_ttl: int | None = None,
        signing_alg: str | None = None,
        token_format: str | None = None,
        actor: str = "cli",
    ) -> Api:
        values: dict[str, Any] = {}
        if token_ttl is not None:
            _check_ttl(token_ttl, self.settings)
            values["token_ttl"] = token_ttl
        if signing_alg is not None:
            if signing_alg not in SIGNING_ALGORITHMS:
                raise AdminError("unsupported signing algorithm")
            values["signing_alg"] = signing_alg
        if token_format is not None:
            if token_format not in ("jwt", "opaque"):
                raise AdminError("token format must be jwt or opaque")
            values["token_format"] = token_format
        added = list(add_scopes)
        if any(not is_scope_token(s) or s == "*" for s in added):
            raise AdminError("invalid scope name")
        try:
            await self.repo.update_api(
                identifier, add_scopes=added, remove_scopes=remove_scopes, values=values
            )
        except NotFoundError:
            raise
        except Exception as exc:
            raise AdminError(f"could not update API: {type(exc).__name__}") from None
        if signing_alg:
            await self.ensure_key(signing_alg)
        await self._audit("api.updated", actor, identifier=identifier, changes=values)
        return await self.repo.get_api(identifier)

    async def delete_api(self, identifier: str, *, actor: str = "cli") -> None:
        await self.repo.delete_api(identifier)
        await self._audit("api.deleted", actor, identifier=identifier)

    # -- clients ------------------------------------------------------------------------------

    async def _check_scopes(self, scopes: Iterable[str]) -> frozenset[str]:
        names = frozenset(scopes)
        known = {s for api in await self.repo.list_apis() for s in api.scopes}
        unknown = sorted(names - known)
        if unknown:
            raise AdminError(f"unknown scope {unknown[0]!r}: define it on an API first")
        return names

    async def _check_apis(self, apis: Iterable[str]) -> frozenset[str]:
        names = frozenset(apis)
        known = {api.identifier for api in await self.repo.list_apis()}
        unknown = sorted(names - known)
        if unknown:
            raise AdminError(f"unknown API {unknown[0]!r}")
        return names

    def _check_methods(self, methods: Iterable[str]) -> frozenset[str]:
        chosen = frozenset(methods) or SECRET_METHODS
        bad = sorted(chosen - AUTH_METHODS)
        if bad:
            raise AdminError(f"unsupported authentication method {bad[0]!r}")
        return chosen

    def _check_client_keys(
        self,
        methods: frozenset[str],
        jwks: Mapping[str, Any] | None,
        jwks_uri: str | None,
        assertion_alg: str | None,
    ) -> _KeyRegistration:
        """Public keys for private_key_jwt: inline JWKS or jwks_uri, and the one algorithm the
        client signs assertions with (RFC 8725 §3.1, §3.10)."""
        if "private_key_jwt" not in methods:
            if jwks is not None or jwks_uri is not None or assertion_alg is not None:
                raise AdminError("public keys and --assertion-alg are for private_key_jwt clients")
            return None, None, None
        if (jwks is None) == (jwks_uri is None):
            raise AdminError("private_key_jwt needs exactly one of --jwks-file or --jwks-uri")
        if assertion_alg is not None and assertion_alg not in ASSERTION_SIGNING_ALGORITHMS:
            choices = ", ".join(ASSERTION_SIGNING_ALGORITHMS)
            raise AdminError(f"assertion algorithm must be one of {choices}")
        if jwks is not None:
            return dict(jwks), None, _assertion_alg(jwks, assertion_alg)
        assert jwks_uri is not None
        try:
            check_jwks_uri(jwks_uri, allow_private=self.settings.jwks_uri_allow_private)
        except ValueError as exc:
            raise AdminError(str(exc)) from None
        return None, jwks_uri, assertion_alg or "ES256"

    async def create_client(
        self,
        *,
        name: str,
        client_id: str | None = None,
        scopes: Iterable[str] = (),
        default_scopes: Iterable[str] | None = None,
        apis: Iterable[str] = (),
        auth_methods: Iterable[str] = (),
        token_ttl: int | None = None,
        token_format: str | None = None,
        secret: str | None = None,
        jwks: Mapping[str, Any] | None = None,
        jwks_uri: str | None = None,
        assertion_alg: str | None = None,
        introspect_apis: Iterable[str] = (),
        actor: str = "cli",
    ) -> tuple[Client, NewSecret | None]:
        cid = client_id or str(uuid.uuid4())
        if not _CLIENT_ID.fullmatch(cid):
            raise AdminError("client_id may use letters, digits and . _ ~ : @ + - (max 255)")
        granted = await self._check_scopes(scopes)
        defaults = None if default_scopes is None else frozenset(default_scopes)
        if defaults is not None and not defaults <= granted:
            raise AdminError("default scopes must be among the granted scopes")
        methods = self._check_methods(auth_methods)
        _check_ttl(token_ttl, self.settings)
        if token_format not in (None, "jwt", "opaque"):
            raise AdminError("token format must be jwt or opaque")
        jwks, jwks_uri, assertion_alg = self._check_client_keys(
            methods, jwks, jwks_uri, assertion_alg
        )
        _strong_secret(methods, secret)
        client = Client(
            client_id=cid,
            name=name,
            auth_methods=methods,
            scopes=granted,
            default_scopes=defaults,
            apis=await self._check_apis(apis),
            token_ttl=token_ttl,
            token_format=token_format,  # type: ignore[arg-type]
            jwks=jwks,
            jwks_uri=jwks_uri,
            assertion_alg=assertion_alg,
            introspect_apis=await self._check_apis(introspect_apis),
        )
        try:
            await self.repo.get_client(cid)
        except NotFoundError:
            pass
        else:
            raise AdminError(f"client {cid} already exists")
        await self.repo.create_client(client, now=self._now())
        new_secret = None
        if methods & (SECRET_METHODS | {"client_secret_jwt"}):
            new_secret = await self.add_secret(cid, label="initial", secret=secret, actor=actor)
        await self._audit("client.created", actor, client_id=cid, scopes=sorted(granted))
        return await self.repo.get_client(cid), new_secret

    async def update_client(
        self,
        client_id: str,
        *,
        name: str | None = None,
        scopes: Iterable[str] | None = None,
        add_scopes: Iterable[str] = (),
        remove_scopes: Iterable[str] = (),
        default_scopes: Iterable[str] | None = None,
        apis: Iterable[str] | None = None,
        auth_methods: Iterable[str] | None = None,
        token_ttl: int | None = None,
        token_format: str | None = None,
        enabled: bool | None = None,
        jwks: Mapping[str, Any] | None = None,
        jwks_uri: str | None = None,
        assertion_alg: str | None = None,
        introspect_apis: Iterable[str] | None = None,
        actor: str = "cli",
    ) -> Client:
        client = await self.repo.get_client(client_id)
        granted = set(client.scopes if scopes is None else scopes)
        granted |= set(add_scopes)
        granted -= set(remove_scopes)
        changes: dict[str, Any] = {"scopes": await self._check_scopes(granted)}
        if name is not None:
            changes["name"] = name
        if default_scopes is not None:
            changes["default_scopes"] = frozenset(default_scopes)
        if apis is not None:
            changes["apis"] = await self._check_apis(apis)
        if auth_methods is not None:
            changes["auth_methods"] = self._check_methods(auth_methods)
        if token_ttl is not None:
            _check_ttl(token_ttl, self.settings)
            changes["token_ttl"] = token_ttl
        if token_format is not None:
            changes["token_format"] = token_format
        if enabled is not None:
            changes["enabled"] = enabled
            if not enabled:
                # Disabling also revokes every token issued so far (docs/revocation.md).
                changes["not_before"] = self._now() + 1
        if introspect_apis is not None:
            changes["introspect_apis"] = await self._check_apis(introspect_apis)
        changes.update(
            self._updated_keys(client, changes.get("auth_methods"), jwks, jwks_uri, assertion_alg)
        )
        updated = replace(client, **changes)
        if updated.default_scopes is not None and not updated.default_scopes <= updated.scopes:
            raise AdminError("default scopes must be among the granted scopes")
        await self.repo.save_client(updated, now=self._now())
        shown = {k: sorted(v) if isinstance(v, frozenset) else v for k, v in changes.items()}
        await self._audit("client.updated", actor, client_id=client_id, changes=shown)
        return updated

    def _updated_keys(
        self,
        client: Client,
        methods: frozenset[str] | None,
        jwks: Mapping[str, Any] | None,
        jwks_uri: str | None,
        assertion_alg: str | None,
    ) -> dict[str, Any]:
        """New keys replace the old ones (inline or URI); otherwise the old ones are kept,
        or dropped when private_key_jwt is no longer among the methods."""
        new_keys = jwks is not None or jwks_uri is not None
        if methods is None and not new_keys and assertion_alg is None:
            return {}
        methods = client.auth_methods if methods is None else methods
        if not new_keys:
            if "private_key_jwt" not in methods:
                return {"jwks": None, "jwks_uri": None, "assertion_alg": None}
            jwks, jwks_uri = client.jwks, client.jwks_uri
            assertion_alg = assertion_alg or client.assertion_alg
        keys = self._check_client_keys(methods, jwks, jwks_uri, assertion_alg)
        return dict(zip(("jwks", "jwks_uri", "assertion_alg"), keys, strict=True))

    async def revoke_tokens(self, client_id: str, *, actor: str = "cli") -> int:
        """Revoke every token the client holds: introspection reports tokens issued before the
        returned time (``not_before``) inactive, on every worker at once. Returns it."""
        client = await self.repo.get_client(client_id)
        not_before = self._now() + 1
        await self.repo.save_client(replace(client, not_before=not_before), now=self._now())
        await self._audit(
            "client.tokens_revoked", actor, client_id=client_id, not_before=not_before
        )
        return not_before

    async def delete_client(self, client_id: str, *, actor: str = "cli") -> None:
        await self.repo.delete_client(client_id)
        await self._audit("client.deleted", actor, client_id=client_id)

    # -- secrets ------------------------------------------------------------------------------

    async def add_secret(
        self,
        client_id: str,
        *,
        label: str = "",
        secret: str | None = None,
        expires_in: int | None = None,
        actor: str = "cli",
    ) -> NewSecret:
        warning = secret_strength_warning(secret) if secret is not None else None
        if secret == "":
            raise AdminError("an empty secret is not allowed")
        value = secret or generate_client_secret()
        client = await self.repo.get_client(client_id)
        _strong_secret(client.auth_methods, secret)
        encrypted = None
        if "client_secret_jwt" in client.auth_methods:
            encrypted = self.secrets.encryptor.encrypt(value.encode(), context=client_id.encode())
        now = self._now()
        record = await self.repo.add_secret(
            client_id,
            digest=self.secrets.hasher.digest(value),
            label=label,
            now=now,
            expires_at=now + expires_in if expires_in else None,
            encrypted_secret=encrypted,
        )
        await self._audit("secret.added", actor, client_id=client_id, secret_id=record.id)
        return NewSecret(record, value, warning)

    async def revoke_secret(
        self, client_id: str, secret_id: str, *, grace: int = 0, actor: str = "cli"
    ) -> None:
        """Revoke now, or let it work ``grace`` more seconds (rotation with overlap)."""
        if grace > 0:
            await self.repo.expire_secret(client_id, secret_id, self._now() + grace)
        else:
            await self.repo.revoke_secret(client_id, secret_id)
        await self._audit(
            "secret.revoked", actor, client_id=client_id, secret_id=secret_id, grace=grace
        )

    # -- keys ---------------------------------------------------------------------------------

    async def key_states(self) -> list[KeyState]:
        rows = await self.repo.list_keys()
        return key_states(rows, now=self._now(), max_token_ttl=self.settings.max_token_ttl)

    async def ensure_key(self, alg: str) -> None:
        if not any(r.alg == alg for r in await self.repo.list_keys()):
            await self.rotate_key(alg, activate_in=0, actor="system")

    async def rotate_key(
        self, alg: str | None = None, *, activate_in: int | None = None, actor: str = "cli"
    ) -> KeyState:
        """Publish a new key now; it signs after ``activate_in`` seconds (default: the
        publication delay). The previous key retires at that moment and stays published until
        every token it signed has expired."""
        alg = alg or self.settings.signing_alg
        if alg not in SIGNING_ALGORITHMS:
            raise AdminError(f"signing algorithm must be one of {', '.join(SIGNING_ALGORITHMS)}")
        delay = self.settings.key_publication_delay if activate_in is None else activate_in
        rows = [r for r in await self.repo.list_keys() if r.alg == alg]
        generation = max((r.generation for r in rows), default=0) + 1
        now = self._now()
        row = new_key_row(
            alg,
            generation=generation,
            now=now,
            activates_at=now + delay,
            encryptor=self.secrets.encryptor,
        )
        if not await self.repo.insert_key(row):
            raise AdminError("a concurrent rotation created this key generation; retry")
        await self._audit("key.rotated", actor, kid=row.kid, alg=alg, activates_at=now + delay)
        return next(s for s in await self.key_states() if s.kid == row.kid)
