"""The token cache as a state machine: what a caller does, given a slot and the time.

Sans-IO and lock-free by itself: the managers hold their lock (threads) or rely on the event
loop (tasks) around `Slot.plan` and the transitions, and never across I/O.

RFC 9068 §6: "the client MUST NOT inspect the content of the access token". Expiry comes from
`expires_in` only, never from a JWT `exp`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Generic, TypeVar


@dataclass(frozen=True, kw_only=True)
class Token:
    """An access token and when this client stops trusting it (clock readings, not dates).

    `expires_in` and `scope` are what the server sent (None when absent). `obtained_at` is
    when the request was *sent*, so network time shortens the lifetime rather than extends it.
    """

    access_token: str = field(repr=False)
    token_type: str
    expires_in: float | None
    scope: str | None
    obtained_at: float
    refresh_at: float
    expires_at: float

    @property
    def authorization(self) -> str:
        """The `Authorization` header value (RFC 6750 §2.1)."""
        return f"Bearer {self.access_token}"


class Action(enum.Enum):
    USE = "use the cached token"
    RENEW_AHEAD = "use the cached token and start a renewal in the background"
    WAIT = "wait for the renewal already running"
    FETCH = "fetch a token now, while later callers wait"


@dataclass(eq=False)
class Flight:
    """One request for a token, shared by every caller who needs its result."""

    token: Token | None = None
    error: BaseException | None = None


F = TypeVar("F", bound=Flight)


@dataclass
class Slot(Generic[F]):
    """The cache entry of one key: the current token and the renewal in progress."""

    token: Token | None = None
    flight: F | None = None
    # After a failed background renewal, the next one waits until then (errors aren't cached:
    # a caller holding no valid token always tries again).
    renew_not_before: float = float("-inf")

    def plan(self, now: float) -> Action:
        token = self.token
        if token is not None and now < token.expires_at:
            if now < token.refresh_at or self.flight is not None or now < self.renew_not_before:
                return Action.USE
            return Action.RENEW_AHEAD
        return Action.FETCH if self.flight is None else Action.WAIT

    def take_off(self, flight: F) -> F:
        assert self.flight is None, "one flight per slot"
        self.flight = flight
        return flight

    def land(self, flight: F, token: Token) -> None:
        flight.token = token
        self.flight, self.token, self.renew_not_before = None, token, float("-inf")

    def crash(self, flight: F, error: BaseException, *, retry_at: float) -> None:
        flight.error = error
        self.flight, self.renew_not_before = None, retry_at

    def abandon(self, flight: F) -> None:
        """The flight was cancelled: neither result nor error; a waiter takes over."""
        self.flight = None

    def invalidate(self, token: Token) -> bool:
        """Drop `token` if it is still the cached one (another caller may have replaced it)."""
        if self.token is token:
            self.token = None
            return True
        return False
