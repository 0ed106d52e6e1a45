"""Prometheus metrics (docs/metrics.md): what is counted, how labels stay bounded, and the sum
over several worker processes.

In-process (one process: the metrics object's own registry): tokens issued by client, failures
by endpoint, error and reason (a client label only for an authenticated, registered client),
throttle hits, latency histograms, registry/key/database gauges, all read back through
``GET /metrics``. A real ``tokenward serve --workers 2`` with a separate metrics port: every
scrape, whichever worker answers it, reports every worker's requests.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.helpers import fresh_post, until
from tests.server.harness import ACTOR, API, InProcess, in_process, make_settings
from tests.support.live import free_port
from tests.support.tokenward_server import TokenwardEnv, tokenward_server
from tokenward.server.admin.schemas import ApiCreate, ClientCreate
from tokenward.server.events import AuditBuffer
from tokenward.server.metrics import LATENCY_BUCKETS, MAX_REASONS, Metrics, bounded_reason

pytestmark = pytest.mark.anyio

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def tw(tmp_path: Path) -> AsyncIterator[InProcess]:
    settings = make_settings(tmp_path, metrics=True, failed_auth_limit=3, audit_log=False)
    async with in_process(settings) as running:
        await running.admin.create_api(
            ApiCreate(identifier=API, name="A", scopes=["read", "write"]), actor=ACTOR
        )
        for client_id in ("c1", "c2"):
            spec = ClientCreate(name=client_id, client_id=client_id, scopes=["read"], secret="s")
            await running.admin.create_client(spec, actor=ACTOR)
        yield running


async def scrape(tw: InProcess) -> Samples:
    await tw.server.audit.flush()  # what the 1 s loop does
    response = await tw.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


async def test_tokens_failures_and_latency_are_counted(tw: InProcess) -> None:
    for _ in range(5):
        assert (await tw.token(auth=("c1", "s"))).status_code == 200
    assert (await tw.token({"scope": "write"}, auth=("c2", "s"))).status_code == 400
    assert (await tw.token(auth=("c2", "wrong"))).status_code == 401
    for _ in range(4):  # the fourth is over the limit of 3
        await tw.token(auth=("ghost", "x"))
    samples = await scrape(tw)

    issued = "tokenward_tokens_issued_total"
    assert value(samples, issued, client_id="c1", auth_method="client_secret_basic") == 5
    failed = "tokenward_requests_failed_total"
    # Authenticated and registered: labelled with its id.
    scope = {"endpoint": "token", "error": "invalid_scope", "reason": "not granted"}
    assert value(samples, failed, client_id="c2", **scope) == 1
    # A wrong secret for a registered id, or an unknown id: never a client label.
    wrong = {"endpoint": "token", "error": "invalid_client", "reason": "wrong or expired secret"}
    assert value(samples, failed, client_id="", **wrong) == 1
    assert value(samples, failed, client_id="", **{**wrong, "reason": "unknown client"}) == 3
    assert value(samples, "tokenward_throttled_total", endpoint="token") == 1
    assert not any(dict(labels).get("client_id") == "ghost" for _, labels in samples)
    count = value(samples, "tokenward_request_duration_seconds_count", endpoint="token")
    assert count == 11
    assert value(samples, "tokenward_request_duration_seconds_bucket", endpoint="token", le="+Inf")
    assert value(samples, "tokenward_request_duration_seconds_sum", endpoint="token") > 0


async def test_registry_key_and_database_gauges(tw: InProcess) -> None:
    await tw.sync()
    metrics = tw.server.metrics
    assert metrics is not None
    await metrics.sample()
    samples = await scrape(tw)
    assert value(samples, "tokenward_registry_clients") == 2
    assert value(samples, "tokenward_registry_apis") == 1
    assert value(samples, "tokenward_registry_version") == tw.server.registry.version
    assert value(samples, "tokenward_signing_keys", alg="ES256", state="active") == 1
    assert value(samples, "tokenward_signing_keys", alg="ES256", state="next") == 0
    assert value(samples, "tokenward_database_up") == 1


class Unreachable:
    async def version(self) -> int:
        raise OSError("connection refused")

    async def load_registry(self) -> Any:
        raise OSError("connection refused")

    async def client_record(self, client_id: str) -> Any:
        raise OSError("connection refused")


async def test_an_unreachable_database_reads_0(tw: InProcess) -> None:
    metrics = Metrics(
        registry=tw.server.registry, store=Unreachable(), audit=AuditBuffer(enabled=True),
        clock=tw.clock,
    )  # fmt: skip
    await metrics.sample()
    assert value(parse(metrics.exposition().decode()), "tokenward_database_up") == 0


def test_reasons_are_cut_to_their_fixed_prefix() -> None:
    assert bounded_reason("duplicate 'scope'") == "duplicate"
    assert bounded_reason("grant_type 'password'") == "grant_type"
    assert bounded_reason("assertion: typ 'x' is not a client assertion type") == "assertion: typ"
    assert bounded_reason("assertion: malformed (bad base64)") == "assertion: malformed"
    assert bounded_reason("no active ES256 key") == "no active ES"
    assert bounded_reason("'") == "other"
    assert len(bounded_reason("x" * 500)) == 48


async def test_label_values_stay_bounded_whatever_callers_send(tw: InProcess) -> None:
    metrics = tw.server.metrics
    assert metrics is not None
    events = [
        {
            "event": "token.failed",
            "client_id": f"id-{i}",
            "error": "invalid_request",
            "reason": f"reason{chr(65 + i % 26)}{chr(65 + i // 26)} text",
            "authenticated": True,  # even if it were: the id is not registered
        }
        for i in range(300)
    ]
    metrics.record(events, {}, tw.server.registry.registry.clients)
    samples = parse(metrics.exposition().decode())
    failed = [dict(labels) for name, labels in samples if name == "tokenward_requests_failed_total"]
    assert {labels["client_id"] for labels in failed} == {""}
    reasons = {labels["reason"] for labels in failed}
    assert len(reasons) == MAX_REASONS + 1
    assert "other" in reasons


def test_bulk_histogram_matches_observing_one_by_one() -> None:
    """``Metrics._observe`` writes bucket counts and the sum directly (one update per bucket
    per batch); it must give what ``Histogram.observe`` gives."""
    rng = random.Random(7)
    durations = [
        rng.choice([0.0001, 0.0005, 0.001, 0.03, 7.0]) * rng.random() * 2 for _ in range(500)
    ]
    durations += list(LATENCY_BUCKETS)  # the boundaries themselves
    buffer = AuditBuffer(enabled=True, timing=True)
    registry: Any = object()  # record() never reads the registry cache
    metrics = Metrics(registry=registry, store=Unreachable(), audit=buffer, clock=time.time)
    metrics.record([], {"token": list(durations)}, {})
    reference = Histogram(
        "request_duration_seconds", "", ["endpoint"], namespace="tokenward",
        buckets=LATENCY_BUCKETS, registry=CollectorRegistry(),
    )  # fmt: skip
    for d in durations:
        reference.labels("token").observe(d)
    ours = {k: v for k, v in parse(metrics.exposition().decode()).items() if "duration" in k[0]}
    theirs = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in reference.collect()
        for s in family.samples
    }
    assert ours.keys() == theirs.keys()
    for key, expected in theirs.items():
        assert ours[key] == pytest.approx(expected), key


def test_two_workers_one_answer_on_a_separate_port(tw_env: TokenwardEnv, tmp_path: Path) -> None:
    metrics_port = free_port()
    directory = tmp_path / "metrics"
    extra = {
        "TOKENWARD_METRICS": "true",
        "TOKENWARD_METRICS_PORT": str(metrics_port),
        "TOKENWARD_METRICS_DIR": str(directory),
    }
    requests = 40
    # Registered before the start, so both workers load the client with their snapshot: this
    # test counts tokens, not how a client created a moment ago reaches a worker (that is
    # tests/server/test_registry_cache.py and tests/lifecycle/test_e2e.py).
    tw_env.cli("apis", "create", "--identifier", API, "--name", "A", "--scope", "read")
    client = tw_env.cli_json("clients", "create", "--name", "c", "--scope", "read")
    auth = (client["client_id"], client["client_secret"])
    with tokenward_server(tw_env, workers=2, extra=extra) as server:
        for _ in range(requests):  # a fresh connection each: the kernel spreads them
            response = fresh_post(
                f"{server.url}/token", auth=auth, data={"grant_type": "client_credentials"}
            )
            assert response.status_code == 200
        assert httpx.get(f"{server.url}/metrics").status_code == 404  # not on the main port
        name = "tokenward_tokens_issued_total"
        labels = {"client_id": client["client_id"], "auth_method": "client_secret_basic"}

        def issued() -> float:
            text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            return value(parse(text), name, **labels)

        until(lambda: issued() == requests, what="every request counted")
        # Every scrape (each may reach either worker) sees the sum of both.
        assert {issued() for _ in range(8)} == {requests}
        assert len(list(directory.glob("counter_*.db"))) >= 1


async def test_metrics_are_off_by_default(tmp_path: Path) -> None:
    async with in_process(make_settings(tmp_path)) as tw:
        assert tw.server.metrics is None
        assert (await tw.http.get("/metrics")).status_code == 404


async def test_the_docs_and_the_dashboard_name_only_real_metrics(tw: InProcess) -> None:
    metrics = tw.server.metrics
    assert metrics is not None
    suffixes = {
        "counter": ["_total"],
        "histogram": ["", "_bucket", "_sum", "_count"],
        "gauge": [""],
    }
    real = {
        family.name + suffix
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for suffix in suffixes[family.type]
    }
    root = Path(__file__).resolve().parents[2] / "docs"
    for document in ("metrics.md", "grafana-dashboard.json"):
        named = set(re.findall(r"tokenward_[a-z_]+[a-z]", (root / document).read_text()))
        named -= {"tokenward_registry", "tokenward_audit"}  # a NOTIFY channel, a logger
        assert named, document
        assert named <= real, (document, sorted(named - real))
    dashboard = json.loads((root / "grafana-dashboard.json").read_text())
    assert all(panel["targets"] for panel in dashboard["panels"])
