"""Prometheus metrics, computed off the request path (docs/metrics.md).

The token, introspection and revocation handlers already append one audit event per request
(and, with metrics on, one ``(endpoint, seconds)`` pair: ``AuditBuffer.timed``). Once a second
the audit buffer hands the batch to :class:`Metrics` (a sink, ``AuditBuffer.subscribe``), which
aggregates it and updates the counters and histograms on the audit writer thread
(``events.off_loop``): a request pays for one list append, never for a metric update. Registry,
key and database state are gauges sampled by a runtime loop (:meth:`Metrics.sample`).

Several worker processes: prometheus-client's multiprocess mode. :func:`prepare_metrics_dir`
runs in the process that starts the workers (``tokenward serve``, or a supervisor), before they
start; it sets ``PROMETHEUS_MULTIPROC_DIR``, every worker writes its values there, and whichever
worker answers a scrape sums all of them. Without it (one process, the tests) the values live
in this object's own registry.

Label cardinality is bounded by what the operator registers, never by what a caller sends: a
client id is a label only for an authenticated client that is in the registry; failure reasons
are cut to their fixed prefix (``"duplicate 'x'"`` -> ``"duplicate"``) and capped in number.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
from bisect import bisect_right
from collections import Counter
from collections.abc import Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from tokenward.server.clock import Clock
from tokenward.server.events import AuditBuffer, off_loop
from tokenward.server.registry_cache import RegistryCache
from tokenward.server.settings import Settings
from tokenward.server.stores import RegistryStore

__all__ = [
    "LATENCY_BUCKETS",
    "MULTIPROC_ENV",
    "Metrics",
    "bounded_reason",
    "prepare_metrics_dir",
    "remove_metrics_dir",
]

log = logging.getLogger("tokenward.metrics")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Request latency buckets, seconds: the token endpoint answers in well under a millisecond of
#: CPU, so the low end is fine-grained; the top catches stalls and database waits.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
KEY_STATES = ("next", "active", "retired")
#: Distinct failure reasons kept per process; any further one is counted as "other".
MAX_REASONS = 64
DATABASE_PROBE_TIMEOUT = 2.0
_REASON_CUT = re.compile(r"""['"(\d]""")
_event_name = itemgetter("event")


def prepare_metrics_dir(settings: Settings) -> Path | None:
    """Before the workers start: give them one empty directory to share their values
    (prometheus-client multiprocess mode), named by ``PROMETHEUS_MULTIPROC_DIR`` in this
    process's environment, which they inherit. None when metrics are off."""
    if not settings.metrics:
        return None
    path = settings.metrics_dir or Path(tempfile.mkdtemp(prefix="tokenward-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()  # values of a previous run would be summed with this one's
    os.environ[MULTIPROC_ENV] = str(path)
    values = sys.modules.get("prometheus_client.values")
    if values is not None:
        # The value class is chosen when prometheus_client is imported: choose again.
        values.ValueClass = values.get_value_class()  # type: ignore[attr-defined]
    return path


def remove_metrics_dir(settings: Settings, path: Path | None) -> None:
    """After the workers stopped: delete a directory :func:`prepare_metrics_dir` created."""
    if path is not None and settings.metrics_dir is None:
        shutil.rmtree(path, ignore_errors=True)


def bounded_reason(reason: str) -> str:
    """A failure reason's fixed prefix: the text before any quoted, parenthesised or numeric
    part (which may echo request input), at most 48 characters."""
    match = _REASON_CUT.search(reason)
    head = reason[: match.start()] if match else reason
    return head.strip().rstrip(":").strip()[:48] or "other"


class Metrics:
    """The metrics of one worker process; an audit sink (``await metrics(events)``)."""

    def __init__(
        self, *, registry: RegistryCache, store: RegistryStore, audit: AuditBuffer, clock: Clock
    ) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self._registry = registry
        self._store = store
        self._audit = audit
        self._clock = clock
        self._reasons: set[str] = set()
        self._algs: set[str] = set()
        self._listener: asyncio.Server | None = None
        self.own = CollectorRegistry(auto_describe=True)
        mine: dict[str, Any] = {"registry": self.own, "namespace": "tokenward"}
        state: dict[str, Any] = {**mine, "multiprocess_mode": "mostrecent"}
        self.issued = Counter(
            "tokens_issued", "Access tokens issued.", ["client_id", "auth_method"], **mine
        )
        self.failed = Counter(
            "requests_failed",
            "Refused requests by endpoint, RFC error code and reason; client_id is set only "
            "for an authenticated, registered client.",
            ["endpoint", "error", "reason", "client_id"],
            **mine,
        )
        self.throttled = Counter(
            "throttled",
            "Requests refused by the failed-authentication throttle.",
            ["endpoint"],
            **mine,
        )
        self.quota = Counter("quota_exceeded", "Requests refused by a quota.", ["endpoint"], **mine)
        self.events = Counter("audit_events", "Audit events by name.", ["event"], **mine)
        self.latency = Histogram(
            "request_duration_seconds",
            "Time from the request's arrival at the handler to its response, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            **mine,
        )
        self.registry_version = Gauge(
            "registry_version", "Registry version this worker serves.", **state
        )
        self.clients = Gauge("registry_clients", "Registered clients.", **state)
        self.apis = Gauge("registry_apis", "Registered APIs.", **state)
        self.keys = Gauge(
            "signing_keys", "Signing keys by algorithm and state.", ["alg", "state"], **state
        )
        self.database_up = Gauge(
            "database_up", "1 when the database answered the last probe, else 0.", **state
        )

    # -- the audit sink ---------------------------------------------------------------------

    async def __call__(self, events: Sequence[dict[str, Any]]) -> None:
        timings = self._audit.drain_timings()
        known = self._registry.registry.clients  # an immutable snapshot: safe in the thread
        await off_loop(self.record, events, timings, known)

    def record(
        self,
        events: Sequence[dict[str, Any]],
        timings: Mapping[str, list[float]],
        known: Mapping[str, object],
    ) -> None:
        """Aggregate a batch, then touch each series once (a multiprocess update costs
        microseconds: once per series per batch, not once per request)."""
        names = Counter(map(_event_name, events))
        counts: dict[str, Counter[tuple[str, ...]]] = {
            "events": Counter({(name,): n for name, n in names.items()}),
            "issued": Counter(),
            "failed": Counter(),
            "throttled": Counter(),
            "quota": Counter(),
        }
        issued = Counter(
            [(e["client_id"], e["auth_method"]) for e in events if e["event"] == "token.issued"]
        )
        for (client, method), n in issued.items():
            counts["issued"][(str(client) if client in known else "", str(method))] += n
        if any(name.endswith(".failed") for name in names):
            for event in events:
                if event["event"].endswith(".failed"):
                    self._count_failure(event, known, counts)
        for name, counter in counts.items():
            metric = getattr(self, name)
            for labels, n in counter.items():
                metric.labels(*labels).inc(n)
        self._observe(timings)

    def _count_failure(
        self,
        event: Mapping[str, Any],
        known: Mapping[str, object],
        counts: Mapping[str, Counter[tuple[str, ...]]],
    ) -> None:
        endpoint, error = event["event"].removesuffix(".failed"), str(event.get("error"))
        reason = self._reason(str(event.get("reason", "")))
        client = event.get("client_id")
        labelled = event.get("authenticated") is True and client in known
        counts["failed"][(endpoint, error, reason, str(client) if labelled else "")] += 1
        if error == "slow_down" or "throttl" in reason:
            counts["throttled"][(endpoint,)] += 1
        if "quota" in reason:
            counts["quota"][(endpoint,)] += 1

    def _reason(self, reason: str) -> str:
        reason = bounded_reason(reason)
        if reason not in self._reasons:
            if len(self._reasons) >= MAX_REASONS:
                return "other"
            self._reasons.add(reason)
        return reason

    def _observe(self, timings: Mapping[str, list[float]]) -> None:
        """Histogram observations in bulk: per endpoint, the count of each bucket and the sum
        (what ``Histogram.observe`` would record one by one; tests/server/test_metrics.py
        compares the two). Sorted once, each bucket is one bisection."""
        for endpoint, values in timings.items():
            if not values:
                continue
            child = self.latency.labels(endpoint)
            values.sort()
            below = 0
            for index, bound in enumerate(child._upper_bounds):
                upto = bisect_right(values, bound)  # observe() puts v in the first v <= bound
                if upto > below:
                    child._buckets[index].inc(upto - below)
                below = upto
            child._sum.inc(sum(values))

    # -- state gauges -----------------------------------------------------------------------

    async def sample(self) -> None:
        """Registry, keys and database reachability, as this worker sees them."""
        registry = self._registry.registry
        self.registry_version.set(registry.version)
        self.clients.set(len(registry.clients))
        self.apis.set(len(registry.apis))
        states = self._registry.keyring.states(int(self._clock()))
        counts: Counter[tuple[str, str]] = Counter((s.alg, s.state) for s in states)
        self._algs.update(alg for alg, _ in counts)
        for alg in self._algs:  # an algorithm no longer in use reads 0, not its last count
            for state in KEY_STATES:
                self.keys.labels(alg, state).set(counts.get((alg, state), 0))
        self.database_up.set(1 if await self._database_answers() else 0)

    async def _database_answers(self) -> bool:
        try:
            await asyncio.wait_for(self._store.version(), DATABASE_PROBE_TIMEOUT)
        except Exception:
            return False
        return True

    # -- exposition -------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The text format: every worker's values in multiprocess mode, else this one's."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        if MULTIPROC_ENV not in os.environ:
            return generate_latest(self.own)
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return generate_latest(merged)

    async def render(self) -> bytes:
        """:meth:`exposition` off the loop (it reads every worker's file)."""
        return await asyncio.to_thread(self.exposition)

    async def listen(self, host: str, port: int) -> None:
        """Serve ``GET /metrics`` on a separate port. Every worker binds it with
        SO_REUSEPORT, so the port answers as long as one worker lives."""
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            log.error("cannot serve metrics on %s:%s (TOKENWARD_METRICS_PORT): %s", host, port, exc)
            raise
        self._listener = await asyncio.start_server(self._answer, sock=sock)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            with contextlib.suppress(Exception):
                await self._listener.wait_closed()
            self._listener = None

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            method, _, rest = head.partition(b" ")
            path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
            if method == b"GET" and path == b"/metrics":
                body = await self.render()
                status, kind = b"200 OK", b"text/plain; version=0.0.4; charset=utf-8"
            else:
                status, kind, body = b"404 Not Found", b"text/plain", b"not found\n"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: " + kind
                + b"\r\nContent-Length: " + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n" + body
            )  # fmt: skip
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()
