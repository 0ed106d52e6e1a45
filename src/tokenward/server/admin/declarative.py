"""Configuration as code: a declaration of the APIs, scopes and clients a server should have,
the differences from what it has, and the admin operations that remove them.

``tokenward export`` writes a :class:`Declaration` (never a secret); ``tokenward validate``
parses one and checks that it holds together; ``tokenward apply`` computes a :class:`Plan`
against the registry (:func:`plan`) and carries it out through :class:`Admin`
(:func:`apply_plan`, actor ``apply``), so every change is validated and audited like any
other. Applying the same file twice changes nothing the second time.

* An object in the file and on the server is made to match the file: a field left out of the
  file means its default (the file is the whole description of what it lists).
* An object on the server and not in the file is left alone, unless ``prune``: then it is
  deleted (clients first, then APIs).
* Secrets are never in the file. A client's ``secret`` is either absent (a new client gets a
  generated secret, shown once) or a reference, ``{env: NAME}`` or ``{file: PATH}``: the
  client is created with that value, and an existing client whose secrets do not include it
  gets it added (its other secrets keep working; revoke them with ``--grace`` to rotate).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from tokenward.protocol.model import SECRET_METHODS
from tokenward.server.admin.operations import Admin
from tokenward.server.admin.schemas import (
    ApiCreate,
    ApiIdentifier,
    ApiUpdate,
    AssertionAlg,
    AuthMethod,
    ClientCreate,
    ClientId,
    ClientUpdate,
    JwksUri,
    Name,
    Quota,
    ScopeDescriptions,
    ScopeName,
    SecretCreate,
    SigningAlg,
    TokenFormat,
    TokenTtl,
)
from tokenward.server.admin.views import ApiView, ClientView, NewSecretView

__all__ = [
    "APPLY_ACTOR",
    "ApiSpec",
    "Change",
    "ClientSpec",
    "Declaration",
    "DeclarationError",
    "Plan",
    "SecretRef",
    "apply_plan",
    "export",
    "parse_declaration",
    "plan",
    "read_secret",
]

#: The actor recorded in the audit trail for changes made by ``tokenward apply``.
APPLY_ACTOR = "apply"
_SECRET_BEARING = frozenset({*SECRET_METHODS, "client_secret_jwt"})
_DEFAULT_METHODS = sorted(SECRET_METHODS)

#: A client field's value when the file leaves it out.
_CLIENT_DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "scopes": [],
    "default_scopes": None,
    "apis": [],
    "auth_methods": _DEFAULT_METHODS,
    "token_ttl": None,
    "token_format": None,
    "introspect_apis": [],
    "quota_per_minute": None,
    "quota_per_hour": None,
}


class DeclarationError(ValueError):
    """The file cannot be applied: one line per problem, each naming where it is."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Spec):
    """Where a client's secret comes from: an environment variable or a file (its content,
    one trailing newline dropped). Never the value itself."""

    env: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    file: Annotated[str, Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env or file")
        return self


class ApiSpec(_Spec):
    identifier: ApiIdentifier
    name: Name
    #: Scope name -> description ("" for none).
    scopes: ScopeDescriptions = {}
    token_ttl: TokenTtl | None = None
    #: Omitted: the server's TOKENWARD_SIGNING_ALG.
    signing_alg: SigningAlg | None = None
    token_format: TokenFormat = "jwt"


class ClientSpec(_Spec):
    client_id: ClientId
    name: Name
    enabled: bool = True
    scopes: list[ScopeName] = []
    default_scopes: list[ScopeName] | None = None
    apis: list[ApiIdentifier] = []
    #: Omitted: client_secret_basic and client_secret_post.
    auth_methods: list[AuthMethod] = []
    token_ttl: TokenTtl | None = None
    token_format: TokenFormat | None = None
    jwks: dict[str, Any] | None = None
    jwks_uri: JwksUri | None = None
    #: Omitted: derived from the keys (ES256 with a jwks_uri).
    assertion_alg: AssertionAlg | None = None
    introspect_apis: list[ApiIdentifier] = []
    #: Issuance quotas (tokens per minute, per hour); omitted: none.
    quota_per_minute: Quota | None = None
    quota_per_hour: Quota | None = None
    secret: SecretRef | None = None

    @property
    def methods(self) -> list[AuthMethod]:
        return sorted(set(self.auth_methods) or SECRET_METHODS)


class Declaration(_Spec):
    """A whole configuration file."""

    version: Literal[1] = 1
    apis: list[ApiSpec] = []
    clients: list[ClientSpec] = []

    @model_validator(mode="after")
    def _consistent(self) -> Declaration:
        problems = _consistency_problems(self)
        if problems:
            raise ValueError(" | ".join(problems))
        return self


def _consistency_problems(declaration: Declaration) -> list[str]:
    """References inside the file: every scope and API a client names is defined in it."""
    problems = _duplicates("apis", [a.identifier for a in declaration.apis])
    problems += _duplicates("clients", [c.client_id for c in declaration.clients])
    owner: dict[str, str] = {}
    for api in declaration.apis:
        for scope in api.scopes:
            if scope in owner:
                problems.append(
                    f"apis: scope {scope!r} is defined by {owner[scope]} and {api.identifier}"
                )
            owner[scope] = api.identifier
    identifiers = {a.identifier for a in declaration.apis}
    for index, client in enumerate(declaration.clients):
        problems += [
            f"clients[{index}] ({client.client_id}).{p}"
            for p in _client_problems(client, owner, identifiers)
        ]
    return problems


def _duplicates(where: str, keys: list[str]) -> list[str]:
    counts = Counter(keys)
    return [f"{where}: {key} appears more than once" for key in sorted(counts) if counts[key] > 1]


def _client_problems(client: ClientSpec, scopes: Mapping[str, str], apis: set[str]) -> list[str]:
    problems = [
        f"scopes: unknown scope {s!r} (define it under an API)"
        for s in client.scopes
        if s not in scopes
    ]
    defaults = set(client.default_scopes or ()) - set(client.scopes)
    problems += [
        f"default_scopes: {s!r} is not among the client's scopes" for s in sorted(defaults)
    ]
    for name, listed in (("apis", client.apis), ("introspect_apis", client.introspect_apis)):
        problems += [
            f"{name}: unknown API {a!r} (define it under apis)" for a in listed if a not in apis
        ]
    bearing = bool(set(client.methods) & _SECRET_BEARING)
    if client.secret is not None and not bearing:
        problems.append("secret: this client has no secret method (auth_methods)")
    pkjwt = "private_key_jwt" in client.methods
    if pkjwt and (client.jwks is None) == (client.jwks_uri is None):
        problems.append("jwks: private_key_jwt needs exactly one of jwks or jwks_uri")
    if not pkjwt and (client.jwks or client.jwks_uri or client.assertion_alg):
        problems.append("jwks: public keys and assertion_alg are for private_key_jwt clients")
    return problems


def parse_declaration(data: object) -> Declaration:
    """A :class:`Declaration` from parsed YAML (or JSON); :class:`DeclarationError` names
    every problem."""
    if data is None:
        data = {}
    try:
        return Declaration.model_validate(data)
    except ValidationError as exc:
        raise DeclarationError(_problems(exc)) from None


def _problems(error: ValidationError) -> list[str]:
    out = []
    for item in error.errors(include_url=False, include_input=False):
        message = str(item["msg"]).removeprefix("Value error, ")
        if not item["loc"]:
            out += message.split(" | ")
            continue
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"])
        out.append(f"{where.removeprefix('.')}: {message}")
    return out


# -- the state of a server, in the shape of the file -----------------------------------------


def _api_entry(
    api: ApiView | ApiSpec, descriptions: Mapping[str, str], default_alg: str
) -> dict[str, Any]:
    scopes = (
        api.scopes if isinstance(api, ApiSpec) else {s: descriptions.get(s, "") for s in api.scopes}
    )
    entry: dict[str, Any] = {
        "identifier": api.identifier,
        "name": api.name,
        "scopes": dict(sorted(scopes.items())),
    }
    if api.token_ttl is not None:
        entry["token_ttl"] = api.token_ttl
    entry["signing_alg"] = api.signing_alg or default_alg
    if api.token_format != "jwt":
        entry["token_format"] = api.token_format
    return entry


def _client_entry(
    client: ClientView | ClientSpec, jwks: Mapping[str, Any] | None
) -> dict[str, Any]:
    methods = client.auth_methods if isinstance(client, ClientView) else client.methods
    values: dict[str, Any] = {
        "client_id": client.client_id,
        "name": client.name,
        "enabled": client.enabled,
        "scopes": sorted(client.scopes),
        "default_scopes": None if client.default_scopes is None else sorted(client.default_scopes),
        "apis": sorted(client.apis),
        "auth_methods": sorted(methods),
        "token_ttl": client.token_ttl,
        "token_format": client.token_format,
        "jwks": None if jwks is None else dict(jwks),
        "jwks_uri": client.jwks_uri,
        "assertion_alg": client.assertion_alg,
        "introspect_apis": sorted(client.introspect_apis),
        "quota_per_minute": client.quota_per_minute,
        "quota_per_hour": client.quota_per_hour,
    }
    return values


def _without_defaults(entry: Mapping[str, Any]) -> dict[str, Any]:
    """What export writes: the fields that differ from their defaults."""
    return {k: v for k, v in entry.items() if v is not None and _CLIENT_DEFAULTS.get(k, ...) != v}


async def export(admin: Admin, *, default_alg: str, own_api: str | None = None) -> dict[str, Any]:
    """The registry as a declaration (a plain dict, ready to be written): never a secret.
    ``own_api``, tokenward's own admin API, and the clients holding its scopes are left out:
    they are the control plane's credentials, set up by ``tokenward init`` on every server."""
    descriptions = await admin.scope_descriptions()
    apis = await admin.list_apis()
    reserved = _own_scopes(apis, own_api)
    clients = []
    for client in await admin.list_clients():
        if reserved & set(client.scopes):
            continue
        jwks = await admin.client_jwks(client.client_id) if client.jwks_keys is not None else None
        clients.append(_without_defaults(_client_entry(client, jwks)))
    return {
        "version": 1,
        "apis": [
            _api_entry(api, descriptions, default_alg) for api in apis if api.identifier != own_api
        ],
        "clients": clients,
    }


def _own_scopes(apis: Sequence[ApiView], own_api: str | None) -> set[str]:
    return {s for a in apis if a.identifier == own_api for s in a.scopes}


# -- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One difference and how it is removed: ``+`` create, ``~`` update, ``-`` delete."""

    sign: Literal["+", "~", "-"]
    kind: Literal["api", "client", "secret"]
    key: str
    details: tuple[str, ...] = ()

    def __str__(self) -> str:
        head = f"{self.sign} {self.kind} {self.key}"
        return head + (": " + "; ".join(self.details) if self.details else "")


@dataclass
class Plan:
    """The changes, in the order they are applied."""

    changes: list[Change] = field(default_factory=list)
    _api_updates: dict[str, ApiUpdate] = field(default_factory=dict)
    _client_updates: dict[str, ClientUpdate] = field(default_factory=dict)
    _scope_removals: dict[str, list[str]] = field(default_factory=dict)
    _secrets: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def empty(self) -> bool:
        return not self.changes


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, dict):
        return "{...}"
    return "-" if value is None else str(value)


def _differences(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """What changes, field by field (scopes of an API one by one)."""
    out = []
    for name in sorted(set(current) | set(wanted)):
        before, after = current.get(name), wanted.get(name)
        if before == after or name in ("identifier", "client_id"):
            continue
        if name == "scopes" and isinstance(before, dict) and isinstance(after, dict):
            out += _scope_differences(before, after)
        else:
            out.append(f"{name} {_shown(before)} -> {_shown(after)}")
    return out


def _scope_differences(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    out = [f"+scope {s}" for s in sorted(set(after) - set(before))]
    out += [f"-scope {s}" for s in sorted(set(before) - set(after))]
    out += [
        f"scope {s} description {before[s]!r} -> {after[s]!r}"
        for s in sorted(set(before) & set(after))
        if before[s] != after[s]
    ]
    return out


def read_secret(ref: SecretRef, *, environ: Mapping[str, str], base: Path) -> str:
    """The value a :class:`SecretRef` names; :class:`DeclarationError` when it cannot be read."""
    if ref.env is not None:
        value = environ.get(ref.env)
        if not value:
            raise DeclarationError([f"secret: environment variable {ref.env} is not set"])
        return value
    assert ref.file is not None
    path = base / os.path.expanduser(ref.file)
    try:
        value = path.read_text(encoding="utf-8").removesuffix("\n").removesuffix("\r")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise DeclarationError([f"secret: cannot read {path}: {reason}"]) from None
    if not value:
        raise DeclarationError([f"secret: {path} is empty"])
    return value


async def plan(
    admin: Admin,
    declaration: Declaration,
    *,
    prune: bool,
    default_alg: str,
    environ: Mapping[str, str],
    base: Path,
    own_api: str | None = None,
) -> Plan:
    """What must change for the server to match ``declaration``. ``own_api`` (tokenward's
    admin API) is not the file's to declare, and ``prune`` never deletes it nor a client
    holding one of its scopes: a configuration file cannot lock the operators out."""
    if own_api is not None and any(a.identifier == own_api for a in declaration.apis):
        raise DeclarationError(
            [
                f"apis: {own_api} is tokenward's own admin API (set up by tokenward init), not a "
                "configuration file's"
            ]
        )
    result = Plan()
    secrets = {
        c.client_id: read_secret(c.secret, environ=environ, base=base)
        for c in declaration.clients
        if c.secret is not None
    }
    result._secrets.update(secrets)
    await _plan_apis(admin, declaration, result, default_alg=default_alg)
    await _plan_clients(admin, declaration, result, secrets)
    if prune:
        await _plan_prune(admin, declaration, result, own_api)
    return result


def _check_own(declaration: Declaration, own_api: str | None) -> None:
    """Refuse a file that declares tokenward's own admin API (a client naming its scopes is
    refused already: a file's clients may only name scopes the file defines)."""
    problems = [
        f"apis: {own_api} is tokenward's own admin API (set up by tokenward init), not a "
        "configuration file's"
        for a in declaration.apis
        if a.identifier == own_api
    ]
    if problems:
        raise DeclarationError(problems)


async def _plan_prune(
    admin: Admin, declaration: Declaration, result: Plan, own_api: str | None
) -> None:
    apis = await admin.list_apis()
    kept_apis = {a.identifier for a in declaration.apis} | {own_api}
    admin_scopes = _own_scopes(apis, own_api)
    wanted_clients = {c.client_id for c in declaration.clients}
    result.changes += [
        Change("-", "client", c.client_id)
        for c in await admin.list_clients()
        if c.client_id not in wanted_clients and not admin_scopes & set(c.scopes)
    ]
    result.changes += [
        Change("-", "api", a.identifier) for a in apis if a.identifier not in kept_apis
    ]


async def _plan_apis(
    admin: Admin, declaration: Declaration, result: Plan, *, default_alg: str
) -> None:
    descriptions = await admin.scope_descriptions()
    current = {api.identifier: api for api in await admin.list_apis()}
    for spec in declaration.apis:
        wanted = _api_entry(spec, {}, default_alg)
        if spec.identifier not in current:
            result.changes.append(
                Change("+", "api", spec.identifier, (f"scopes {_shown(sorted(spec.scopes))}",))
            )
            continue
        have = _api_entry(current[spec.identifier], descriptions, default_alg)
        details = _differences(have, wanted)
        if not details:
            continue
        result.changes.append(Change("~", "api", spec.identifier, tuple(details)))
        added = sorted(set(spec.scopes) - set(have["scopes"]))
        removed = sorted(set(have["scopes"]) - set(spec.scopes))
        changed = {
            s: d for s, d in spec.scopes.items() if have["scopes"].get(s, d) != d or s in added
        }
        fields = {
            k: wanted.get(k)
            for k in ("name", "token_ttl", "signing_alg")
            if have.get(k) != wanted.get(k)
        }
        if have.get("token_format", "jwt") != spec.token_format:
            fields["token_format"] = spec.token_format
        if changed:
            fields["scope_descriptions"] = changed
        result._api_updates[spec.identifier] = ApiUpdate(add_scopes=added, **fields)
        if removed:
            result._scope_removals[spec.identifier] = removed


async def _plan_clients(
    admin: Admin, declaration: Declaration, result: Plan, secrets: Mapping[str, str]
) -> None:
    current = {c.client_id: c for c in await admin.list_clients()}
    for spec in declaration.clients:
        if spec.client_id not in current:
            origin = "referenced" if spec.secret is not None else "generated"
            bearing = set(spec.methods) & _SECRET_BEARING
            result.changes.append(
                Change("+", "client", spec.client_id, (f"secret {origin}",) if bearing else ())
            )
            continue
        have_view = current[spec.client_id]
        jwks = await admin.client_jwks(spec.client_id) if have_view.jwks_keys is not None else None
        have = _client_entry(have_view, jwks)
        wanted = _client_entry(spec, spec.jwks)
        if spec.assertion_alg is None:
            wanted.pop("assertion_alg", None)
            have.pop("assertion_alg", None)
        details = _differences(have, wanted)
        if details:
            result.changes.append(Change("~", "client", spec.client_id, tuple(details)))
            result._client_updates[spec.client_id] = _client_update(have, wanted)
        if spec.client_id in secrets and not await admin.secret_matches(
            spec.client_id, secrets[spec.client_id]
        ):
            result.changes.append(
                Change("+", "secret", spec.client_id, ("from " + _ref(spec.secret),))
            )


def _ref(ref: SecretRef | None) -> str:
    assert ref is not None
    return f"${ref.env}" if ref.env is not None else str(ref.file)


def _client_update(have: Mapping[str, Any], wanted: Mapping[str, Any]) -> ClientUpdate:
    """The fields that differ, as the file says (a field the file leaves out: its default).
    Keys leave with private_key_jwt; new keys (jwks or jwks_uri) replace the old ones."""
    values: dict[str, Any] = {}
    for name in sorted(set(have) | set(wanted)):
        if have.get(name) == wanted.get(name):
            continue
        if name in _CLIENT_DEFAULTS or name == "name":
            values[name] = wanted.get(name, _CLIENT_DEFAULTS.get(name))
        elif name in ("jwks", "jwks_uri", "assertion_alg") and name in wanted:
            values[name] = wanted[name]
    return ClientUpdate(**values)


# -- applying it ---------------------------------------------------------------------------------


async def apply_plan(
    admin: Admin, declaration: Declaration, steps: Plan, *, default_alg: str
) -> list[NewSecretView]:
    """Carry out ``steps`` through ``admin`` (actor ``apply``); return the secrets created,
    whose values are shown once. APIs are created and updated first, then clients; scope
    removals and deletions come last, so no client is left naming a scope being removed."""
    apis = {a.identifier: a for a in declaration.apis}
    clients = {c.client_id: c for c in declaration.clients}
    created: list[NewSecretView] = []
    for change in steps.changes:
        if change.sign == "+" and change.kind == "api":
            await admin.create_api(_api_create(apis[change.key], default_alg), actor=APPLY_ACTOR)
        elif change.sign == "~" and change.kind == "api":
            await admin.update_api(change.key, steps._api_updates[change.key], actor=APPLY_ACTOR)
    for change in steps.changes:
        if change.kind == "client" and change.sign == "+":
            new = await _create_client(admin, clients[change.key], steps._secrets.get(change.key))
            created += [new] if new is not None and clients[change.key].secret is None else []
        elif change.kind == "client" and change.sign == "~":
            await admin.update_client(
                change.key, steps._client_updates[change.key], actor=APPLY_ACTOR
            )
        elif change.kind == "secret":
            spec = SecretCreate(label="apply", secret=SecretStr(steps._secrets[change.key]))
            await admin.add_secret(change.key, spec, actor=APPLY_ACTOR)
        elif change.kind == "client" and change.sign == "-":
            await admin.delete_client(change.key, actor=APPLY_ACTOR)
    for identifier, removed in steps._scope_removals.items():
        await admin.update_api(identifier, ApiUpdate(remove_scopes=removed), actor=APPLY_ACTOR)
    for change in steps.changes:
        if change.kind == "api" and change.sign == "-":
            await admin.delete_api(change.key, actor=APPLY_ACTOR)
    return created


def _api_create(spec: ApiSpec, default_alg: str) -> ApiCreate:
    return ApiCreate(
        identifier=spec.identifier,
        name=spec.name,
        scopes=sorted(spec.scopes),
        scope_descriptions={k: v for k, v in spec.scopes.items() if v},
        token_ttl=spec.token_ttl,
        signing_alg=spec.signing_alg or default_alg,
        token_format=spec.token_format,
    )


async def _create_client(
    admin: Admin, spec: ClientSpec, secret: str | None
) -> NewSecretView | None:
    create = ClientCreate(
        name=spec.name,
        client_id=spec.client_id,
        scopes=spec.scopes,
        default_scopes=spec.default_scopes,
        apis=spec.apis,
        auth_methods=spec.methods,
        token_ttl=spec.token_ttl,
        token_format=spec.token_format,
        secret=None if secret is None else SecretStr(secret),
        jwks=spec.jwks,
        jwks_uri=spec.jwks_uri,
        assertion_alg=spec.assertion_alg,
        introspect_apis=spec.introspect_apis,
        quota_per_minute=spec.quota_per_minute,
        quota_per_hour=spec.quota_per_hour,
    )
    result = await admin.create_client(create, actor=APPLY_ACTOR)
    if not spec.enabled:
        await admin.update_client(spec.client_id, ClientUpdate(enabled=False), actor=APPLY_ACTOR)
    return result.secret
