"""Audit events and logging.

Every token request produces one structured event (client_id, scopes, audience, jti,
outcome, reason). Each event of a request to the POST endpoints also carries the request's
``request_id`` (returned in the ``X-Request-Id`` header), its ``source`` address and, once the
client authenticated, the ``secret_id`` or assertion key ``kid`` it used: the HTTP layer binds
them to the request's task (:func:`bind_request`) and every builder below adds them.

Events are appended to an in-memory buffer on the hot path and handed behind, in batches, to
every *sink*: the audit log (JSON lines on the ``tokenward.audit`` logger) is one; usage
statistics and metrics subscribe the same way, so the token path pays nothing for them. Admin
changes are stored in the ``audit_events`` table by the admin layer. No secret, assertion or
token is ever part of an event: the event builders below only accept the fields they name.

Logging uses the standard library with a small JSON formatter rather than structlog: one
layer less on the token endpoint's path, and uvicorn's own loggers share the same handlers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any

__all__ = [
    "LOG_SLICE",
    "AuditBuffer",
    "AuditSink",
    "JsonFormatter",
    "audit_logger",
    "bind_request",
    "configure_logging",
    "logger",
    "off_loop",
    "write_audit_log",
]

#: Receives each drained batch of events, in order.
AuditSink = Callable[[Sequence[dict[str, Any]]], Awaitable[None]]

audit_logger = logging.getLogger("tokenward.audit")
logger = logging.getLogger("tokenward")

#: The fields of the request this task serves: ``request_id``, ``source``, then ``secret_id`` or
#: ``kid``. Each request runs in its own task (uvicorn), so each sees its own.
_request: ContextVar[dict[str, Any] | None] = ContextVar("tokenward_request", default=None)


def bind_request(fields: dict[str, Any]) -> None:
    """Every event recorded from now on in this task carries ``fields`` (a live dict: what is
    added to it later is carried too). Only the named request fields go in, never a secret."""
    _request.set(fields)


def _with_request(event: dict[str, Any]) -> dict[str, Any]:
    fields = _request.get()
    if fields:
        event.update(fields)
    return event


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra`` fields."""

    _STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "preformatted", False):
            # A batch of audit events, already one JSON object per line (AuditBuffer.flush).
            return record.getMessage()
        data: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD:
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, separators=(",", ":"))


def configure_logging(*, level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("tokenward")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = [handler]
    # Access logs would print request lines; the token endpoint never carries secrets in its
    # URL (rejected, see TE-02) but the access log adds nothing the audit log lacks.
    logging.getLogger("uvicorn.access").disabled = True


class AuditBuffer:
    """Collects token-endpoint events; ``flush`` writes them in one go.

    ``log``: the audit log is one of the sinks. ``timing``: the POST handler's request
    durations are kept too (:meth:`timed`), for the metrics sink (:meth:`drain_timings`).
    ``clock``: the server's clock stamps each event's ``at``, the time the usage charts bucket
    it by and the token's ``iat`` is read from.
    """

    def __init__(
        self,
        *,
        enabled: bool,
        log: bool = True,
        timing: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.enabled = enabled
        self._clock = clock
        self.timing = timing
        self._events: list[dict[str, Any]] = []
        self._timings: defaultdict[str, list[float]] = defaultdict(list)
        self._sinks: list[AuditSink] = [write_audit_log] if log else []

    def issued(
        self, *, client_id: str, scopes: Iterable[str], audience: str, jti: str, method: str
    ) -> None:
        if self.enabled:
            self._events.append(
                _with_request(
                    {
                        "event": "token.issued",
                        "at": self._clock(),
                        "client_id": client_id,
                        "scope": " ".join(sorted(scopes)),
                        "aud": audience,
                        "jti": jti,
                        "auth_method": method,
                        "outcome": "success",
                    }
                )
            )

    def failed(
        self,
        *,
        endpoint: str,
        client_id: str | None,
        error: str,
        reason: str,
        method: str | None,
        authenticated: bool = False,
    ) -> None:
        if self.enabled:
            self._events.append(
                _with_request(
                    {
                        "event": f"{endpoint}.failed",
                        "at": self._clock(),
                        "client_id": client_id,
                        "error": error,
                        "reason": reason,
                        "auth_method": method,
                        "outcome": "failure",
                        "authenticated": authenticated,
                    }
                )
            )

    def record(self, event: str, **fields: Any) -> None:
        if self.enabled:
            self._events.append(_with_request({"event": event, "at": self._clock(), **fields}))

    def timed(self, endpoint: str, seconds: float) -> None:
        """One request's duration (from the POST handler); kept only when metrics are on."""
        if self.timing:
            self._timings[endpoint].append(seconds)

    def drain(self) -> list[dict[str, Any]]:
        events, self._events = self._events, []
        return events

    def drain_timings(self) -> dict[str, list[float]]:
        """The request durations since the previous call, by endpoint."""
        timings, self._timings = self._timings, defaultdict(list)
        return timings

    def subscribe(self, sink: AuditSink) -> None:
        """Hand every drained batch to ``sink`` too (after the audit log)."""
        self._sinks.append(sink)

    async def flush(self) -> int:
        """Hand the buffered events to every sink; a failing sink does not stop the others."""
        events = self.drain()
        if events or self._timings:
            for sink in self._sinks:
                try:
                    await sink(events)
                except Exception:
                    logger.exception("audit sink failed")
        return len(events)


#: One thread writes the audit log (and runs other off-loop sink work, in batch order): the
#: serialisation of a second's events and the blocking write never stall the event loop.
_writer: ThreadPoolExecutor | None = None
#: Events serialised and written per log record by the writer thread.
LOG_SLICE = 200
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode


async def off_loop(work: Callable[..., None], *args: Any) -> None:
    """Run ``work(*args)`` on the audit writer thread and wait for it (batches stay in
    order; the loop keeps serving meanwhile)."""
    global _writer
    if _writer is None:
        _writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenward-audit")
    await asyncio.get_running_loop().run_in_executor(_writer, work, *args)


async def write_audit_log(events: Sequence[dict[str, Any]]) -> None:
    """The audit-log sink: the batch as JSON lines in one log record, written by the audit
    writer thread (:func:`off_loop`).

    One record per slice of ``LOG_SLICE`` events rather than per event: at thousands of tokens
    per second the logging machinery per record was a visible share of the request cost.
    Serialising and writing a second's batch on the event loop stalled every request for tens
    of milliseconds (the p99), hence the thread, and the slices. Each line has the shape of a
    JsonFormatter record (``ts``, ``level``, ``logger``, ``msg``) plus the event under
    ``audit``.
    """
    if audit_logger.isEnabledFor(logging.INFO):
        await off_loop(_log_lines, events)


def _log_lines(events: Sequence[dict[str, Any]]) -> None:
    """Runs on the writer thread, in slices of ``LOG_SLICE`` events: between two slices the
    thread lets go of the GIL (``time.sleep(0)``), so the event loop never waits for a whole
    batch's serialisation, only for one slice (about a millisecond)."""
    head = f'"level":"info","logger":"{audit_logger.name}","msg":'
    for start in range(0, len(events), LOG_SLICE):
        lines = "\n".join(
            f'{{"ts":{round(event["at"], 3)!r},{head}{_encode(event["event"])},'
            f'"audit":{_encode(event)}}}'
            for event in events[start : start + LOG_SLICE]
        )
        audit_logger.info(lines, extra={"preformatted": True})
        time.sleep(0)
