"""Console operators: local accounts, sign-in with lockout, server-side sessions.

Passwords are hashed with argon2id (argon2-cffi's ``PasswordHasher`` defaults, RFC 9106's
second recommended option), in a worker thread and at most two at a time, so that sign-ins
never stall the event loop that serves the token endpoint.

Lockout: ``console_lockout_failures`` consecutive wrong passwords lock the account for
``console_lockout_seconds``. While locked, a sign-in is refused without checking the password
(no guessing, no hashing cost). The lock always ends by itself; an admin (console or
``tokenward admins unlock``) or ``tokenward admins reset-password`` lifts it at once. Every
refusal says the same thing, so the sign-in page does not tell which names exist.

Sessions are rows, not signed cookies: the cookie carries 256 random bits, the database keeps
their SHA-256 and the session's CSRF token. Disabling an operator or resetting a password
deletes their rows in the same transaction, so it ends every session at once, on every worker.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import anyio
import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import SecretStr

from tokenward.server.admin.errors import AdminError, Conflict, NotFound
from tokenward.server.admin.schemas import OperatorCreate, PasswordReset
from tokenward.server.admin.views import OperatorView
from tokenward.server.clock import Clock
from tokenward.server.settings import Settings
from tokenward.server.stores import (
    AuditRecord,
    ConflictError,
    NotFoundError,
    OperatorRow,
    OperatorStore,
    SessionRow,
)

__all__ = ["LoginRefused", "OperatorSession", "Operators", "session_digest"]

log = logging.getLogger("tokenward.console")
#: Seconds between two "seen" stamps of one session (one write per session per minute).
_TOUCH_EVERY = 60


class LoginRefused(AdminError):
    """Wrong name or password, a disabled account or a locked one: one answer for all."""

    status = 401
    code = "login_refused"


@dataclass(frozen=True, slots=True)
class OperatorSession:
    """A signed-in operator, as the console sees each request."""

    id_digest: str
    name: str
    role: str
    csrf_token: str

    @property
    def actor(self) -> str:
        return f"console:{self.name}"

    @property
    def may_change(self) -> bool:
        return self.role == "admin"

    def __repr__(self) -> str:
        return f"OperatorSession(name={self.name!r}, role={self.role!r})"


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Store outcomes as admin errors."""
    try:
        yield
    except NotFoundError:
        raise NotFound(f"{what} not found") from None
    except ConflictError as exc:
        raise Conflict(str(exc)) from None


def session_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Operators:
    def __init__(self, *, settings: Settings, store: OperatorStore, clock: Clock) -> None:
        self._settings = settings
        self._store = store
        self._clock = clock
        self._hasher = PasswordHasher()
        self._limiter: anyio.CapacityLimiter | None = None
        self._dummy_hash: str | None = None

    def _now(self) -> int:
        return int(self._clock())

    def _record(self, event: str, actor: str, **data: object) -> AuditRecord:
        return AuditRecord(at=self._now(), event=event, actor=actor, data=data)

    async def _in_thread(self, work: object, *args: str) -> object:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(2)
        return await anyio.to_thread.run_sync(work, *args, limiter=self._limiter)  # type: ignore[arg-type]

    async def _hash(self, password: SecretStr) -> str:
        return str(await self._in_thread(self._hasher.hash, password.get_secret_value()))

    def _matches(self, stored: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(stored, password))
        except (VerificationError, InvalidHashError):
            return False

    # -- accounts -----------------------------------------------------------------------------

    async def list_operators(self) -> list[OperatorView]:
        now = self._now()
        return [OperatorView.of(row, now=now) for row in await self._store.list_operators()]

    async def get(self, name: str) -> OperatorView:
        with translated(f"operator {name}"):
            return OperatorView.of(await self._store.get_operator(name), now=self._now())

    async def create(self, spec: OperatorCreate, *, actor: str) -> OperatorView:
        now = self._now()
        row = OperatorRow(
            name=spec.name,
            password_hash=await self._hash(spec.password),
            role=spec.role,
            enabled=True,
            failed_logins=0,
            locked_until=None,
            created_at=now,
            password_changed_at=now,
            last_login_at=None,
        )
        record = self._record("operator.created", actor, operator=spec.name, role=spec.role)
        with translated(f"operator {spec.name}"):
            await self._store.create_operator(row, audit=record)
        return OperatorView.of(row, now=now)

    async def _update(
        self, name: str, event: str, actor: str, *, end_sessions: bool, **values: object
    ) -> OperatorView:
        record = self._record(event, actor, operator=name)
        with translated(f"operator {name}"):
            await self._store.update_operator(name, values, end_sessions=end_sessions, audit=record)
        return await self.get(name)

    async def disable(self, name: str, *, actor: str) -> OperatorView:
        """Disable the account and end its sessions."""
        return await self._update(
            name, "operator.disabled", actor, end_sessions=True, enabled=False
        )

    async def enable(self, name: str, *, actor: str) -> OperatorView:
        return await self._update(name, "operator.enabled", actor, end_sessions=False, enabled=True)

    async def unlock(self, name: str, *, actor: str) -> OperatorView:
        return await self._update(
            name, "operator.unlocked", actor, end_sessions=False, failed_logins=0, locked_until=None
        )

    async def reset_password(self, name: str, spec: PasswordReset, *, actor: str) -> OperatorView:
        """A new password: ends every session of the account and lifts a lock."""
        await self.get(name)
        digest = await self._hash(spec.password)
        return await self._update(
            name,
            "operator.password_reset",
            actor,
            end_sessions=True,
            password_hash=digest,
            password_changed_at=self._now(),
            failed_logins=0,
            locked_until=None,
        )

    # -- sign-in and sessions -----------------------------------------------------------------

    async def _find(self, name: str) -> OperatorRow | None:
        try:
            return await self._store.get_operator(name)
        except NotFoundError:
            return None

    async def _password_ok(self, row: OperatorRow | None, password: str) -> bool:
        """Verify against the stored hash, or against a dummy one so that an unknown name
        costs the same time as a known one."""
        if row is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self._hash(SecretStr(secrets.token_hex(16)))
            await self._in_thread(self._matches, self._dummy_hash, password)
            return False
        return bool(await self._in_thread(self._matches, row.password_hash, password))

    async def login(self, name: str, password: str, *, source: str) -> tuple[str, OperatorSession]:
        """Check the password; return a new session's cookie value and the session."""
        now = self._now()
        row = await self._find(name)
        if row is not None and row.locked_until is not None and row.locked_until > now:
            log.warning("console sign-in refused: account locked", extra={"operator": name})
            raise LoginRefused("locked")
        usable = row if row is not None and row.enabled else None
        if not await self._password_ok(usable, password):
            await self._failed(row, name, source=source)
            raise LoginRefused("wrong name or password")
        assert usable is not None
        if self._hasher.check_needs_rehash(usable.password_hash):
            await self._update(
                name,
                "operator.password_rehashed",
                f"console:{name}",
                end_sessions=False,
                password_hash=await self._hash(SecretStr(password)),
            )
        return await self._open_session(usable, source=source)

    async def _failed(self, row: OperatorRow | None, name: str, *, source: str) -> None:
        log.warning("console sign-in failed", extra={"operator": name, "source": source})
        if row is None or not row.enabled:
            return  # no row for names that do not exist: nothing an outsider can fill
        settings = self._settings
        seconds = settings.console_lockout_seconds
        await self._store.login_failed(
            name,
            limit=settings.console_lockout_failures,
            lock_until=self._now() + seconds,
            audit=self._record("operator.login_failed", "console", operator=name, source=source),
            lock_audit=self._record("operator.locked", "console", operator=name, seconds=seconds),
        )

    async def _open_session(self, row: OperatorRow, *, source: str) -> tuple[str, OperatorSession]:
        token = secrets.token_urlsafe(32)
        now = self._now()
        session = SessionRow(
            id_digest=session_digest(token),
            operator=row.name,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + self._settings.console_session_max_seconds,
            seen_at=now,
        )
        record = self._record("operator.login", f"console:{row.name}", source=source)
        await self._store.login_succeeded(row.name, session, audit=record)
        return token, OperatorSession(session.id_digest, row.name, row.role, session.csrf_token)

    async def session(self, token: str) -> OperatorSession | None:
        """The live session a cookie value names, or None (unknown, ended, idle too long,
        past its end, or its operator disabled)."""
        digest = session_digest(token)
        found = await self._store.find_session(digest)
        if found is None:
            return None
        session, operator = found
        now = self._now()
        idle = now - session.seen_at >= self._settings.console_session_idle_seconds
        if idle or now >= session.expires_at or not operator.enabled:
            await self._store.end_session(digest, audit=None)
            return None
        if now - session.seen_at >= _TOUCH_EVERY:
            await self._store.touch_session(digest, seen_at=now)
        return OperatorSession(digest, operator.name, operator.role, session.csrf_token)

    async def logout(self, session: OperatorSession) -> None:
        record = self._record("operator.logout", session.actor)
        await self._store.end_session(session.id_digest, audit=record)

    async def purge_sessions(self) -> int:
        return await self._store.purge_sessions(
            self._now(), idle=self._settings.console_session_idle_seconds
        )
