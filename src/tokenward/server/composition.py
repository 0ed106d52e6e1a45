"""``build_server``: the one place where the server's components are made and wired.

The ASGI app (``server/app.py``), the CLI and the tests all build the server here; tests pass a
fake clock and their own stores through the keyword arguments rather than patching anything.
Building does no I/O: the runtime's ``start`` loads keys and registry.

The arrows point down only::

    endpoints (token, introspection, revocation)      admin (operations, schemas, views)
        |            |            |                        |
    authenticator  issuer      reader                     |
        |     \\      |            |                        |
    assertions  registry cache --> key ring <------- keys.rotate
        |            |               |                     |
    stores (Protocols): registry, keys, tokens, replay, audit, admin  <- storage/sql
    runtime: the background loops over the components above
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tokenward.protocol.client_credentials import TokenPolicy
from tokenward.protocol.model import AUTH_METHODS
from tokenward.server.admin.operations import Admin
from tokenward.server.admin.operators import Operators
from tokenward.server.admin.usage import UsageReports
from tokenward.server.assertions import ClientAssertions
from tokenward.server.authenticator import ClientAuthenticator
from tokenward.server.clock import Clock, system_clock
from tokenward.server.counters import SharedCounter
from tokenward.server.endpoints.introspection import IntrospectionEndpoint
from tokenward.server.endpoints.revocation import RevocationEndpoint
from tokenward.server.endpoints.token import TokenEndpoint
from tokenward.server.events import AuditBuffer
from tokenward.server.issuer import TokenIssuer
from tokenward.server.keys import KeyRing
from tokenward.server.metrics import Metrics
from tokenward.server.quotas import IssuanceQuota
from tokenward.server.reader import TokenReader
from tokenward.server.registry_cache import RegistryCache
from tokenward.server.runtime import Runtime
from tokenward.server.secrets import ServerSecrets, build_server_secrets
from tokenward.server.settings import Settings
from tokenward.server.storage.sql.migrate import upgrade
from tokenward.server.storage.sql.repository import sql_stores
from tokenward.server.stores import Stores
from tokenward.server.throttle import FailureThrottle
from tokenward.server.usage import UsageSink

__all__ = ["Server", "build_server", "load_server_secrets", "prepare_database"]

log = logging.getLogger("tokenward")


@dataclass(frozen=True)
class Server:
    """Every component of one server process."""

    settings: Settings
    clock: Clock
    stores: Stores
    secrets: ServerSecrets
    audit: AuditBuffer
    keyring: KeyRing
    registry: RegistryCache
    counter: SharedCounter
    throttle: FailureThrottle
    assertions: ClientAssertions
    authenticator: ClientAuthenticator
    issuer: TokenIssuer
    reader: TokenReader
    token: TokenEndpoint
    introspection: IntrospectionEndpoint
    revocation: RevocationEndpoint
    runtime: Runtime
    admin: Admin
    operators: Operators
    usage: UsageReports
    metrics: Metrics | None = None

    @property
    def auth_methods(self) -> list[str]:
        """The client authentication methods this server accepts (RFC 8414 names)."""
        return sorted(AUTH_METHODS)

    async def aclose(self) -> None:
        await self.stores.close()


def load_server_secrets(settings: Settings) -> ServerSecrets:
    server_secrets = build_server_secrets(
        pepper=settings.pepper.get_secret_value() if settings.pepper else None,
        pepper_id=settings.pepper_id,
        previous={k: v.get_secret_value() for k, v in settings.previous_peppers.items()},
        key_encryption_key=(
            settings.key_encryption_key.get_secret_value() if settings.key_encryption_key else None
        ),
        dev_file=settings.secrets_file if settings.is_sqlite else None,
    )
    if server_secrets.created:
        # Once, when generated: every later command reads the same file without a word.
        log.warning(
            "DEVELOPMENT SECRETS: pepper and key-encryption key were generated into %s; keep "
            "that file with the database, and set TOKENWARD_PEPPER and "
            "TOKENWARD_KEY_ENCRYPTION_KEY in production",
            server_secrets.dev_file,
        )
    return server_secrets


def prepare_database(settings: Settings) -> None:
    """Upgrade the schema when ``auto_migrate`` is on (``tokenward migrate`` otherwise)."""
    if settings.auto_migrate and upgrade(settings.database_url):
        log.info("database schema upgraded")


def build_server(
    settings: Settings,
    *,
    clock: Clock = system_clock,
    stores: Stores | None = None,
    server_secrets: ServerSecrets | None = None,
    freeze_heap: bool = False,
) -> Server:
    """The server's components over ``stores`` (the SQL stores of ``settings`` by default).
    ``freeze_heap``: a server process freezes its heap once loaded (``runtime.freeze_heap``);
    never a test or CLI process, whose heap is not the server's alone."""
    stores = stores or sql_stores(
        settings.database_url,
        batch_delay=settings.write_batch_delay_ms / 1000,
        batch_rows=settings.write_batch_max_rows,
    )
    server_secrets = server_secrets or load_server_secrets(settings)
    audit = AuditBuffer(
        enabled=settings.audit_log or settings.metrics,
        log=settings.audit_log,
        timing=settings.metrics,
        clock=clock,
    )
    keyring = KeyRing(server_secrets.encryptor, max_token_ttl=settings.max_token_ttl)
    registry = RegistryCache(
        stores.registry,
        stores.keys,
        keyring,
        clock=clock,
        lookup_timeout=settings.auth_failure_lookup_timeout,
    )
    limits = (settings.failed_auth_limit, settings.failed_auth_limit_per_address)
    counter = SharedCounter(stores.counters, hot=min(limits))
    throttle = FailureThrottle(counter, per_client=limits[0], per_address=limits[1])
    audit.subscribe(UsageSink(stores.usage, known=lambda cid: cid in registry.registry.clients))
    assertions = ClientAssertions(settings, stores.replay, server_secrets.encryptor, clock=clock)
    authenticator = ClientAuthenticator(
        registry=registry, assertions=assertions, hasher=server_secrets.hasher, throttle=throttle
    )
    issuer = TokenIssuer(issuer=settings.issuer, keyring=keyring, tokens=stores.tokens, audit=audit)
    reader = TokenReader(issuer=settings.issuer, keyring=keyring, tokens=stores.tokens)
    policy = TokenPolicy(
        default_ttl=settings.token_ttl, max_ttl=settings.max_token_ttl, default_format="jwt"
    )
    metrics = None
    if settings.metrics:
        metrics = Metrics(registry=registry, store=stores.registry, audit=audit, clock=clock)
        audit.subscribe(metrics)
    return Server(
        settings=settings,
        clock=clock,
        stores=stores,
        secrets=server_secrets,
        audit=audit,
        keyring=keyring,
        registry=registry,
        counter=counter,
        throttle=throttle,
        assertions=assertions,
        authenticator=authenticator,
        issuer=issuer,
        reader=reader,
        token=TokenEndpoint(
            authenticator=authenticator,
            registry=registry,
            issuer=issuer,
            policy=policy,
            quota=IssuanceQuota(counter),
        ),
        introspection=IntrospectionEndpoint(
            authenticator=authenticator, reader=reader, audit=audit
        ),
        revocation=RevocationEndpoint(authenticator=authenticator, reader=reader, audit=audit),
        runtime=Runtime(
            settings=settings,
            clock=clock,
            registry=registry,
            keys=stores.keys,
            encryptor=server_secrets.encryptor,
            authenticator=authenticator,
            assertions=assertions,
            tokens=stores.tokens,
            audit=audit,
            usage=stores.usage,
            operators=stores.operators,
            metrics=metrics,
            changes=stores.changes if settings.registry_notify else None,
            freeze_heap=freeze_heap,
            counter=counter,
        ),
        admin=Admin(
            settings=settings,
            store=stores.admin,
            keys=stores.keys,
            audit=stores.audit,
            secrets=server_secrets,
            clock=clock,
            changed=registry.changed,
        ),
        operators=Operators(settings=settings, store=stores.operators, clock=clock),
        usage=UsageReports(store=stores.usage, clock=clock),
        metrics=metrics,
    )
