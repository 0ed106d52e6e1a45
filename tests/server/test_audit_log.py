"""The token-endpoint audit log: written behind, by its own thread, and complete on a clean stop.

Each request appends its event to the audit buffer; once a second the buffer is drained and
every sink gets the batch. The audit-log sink serialises and writes on the audit writer thread
(``events.off_loop``), so the event loop never stalls on it; a clean stop flushes what is left.
Checked in-process (the thread that wrote each record) and on a real ``tokenward serve``
stopped with SIGTERM (every event of every request in the log).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import audit_events
from tests.server.harness import ACTOR, API, in_process, make_settings
from tests.support.tokenward_server import TokenwardEnv, tokenward_server
from tokenward.server.admin.schemas import ApiCreate, ClientCreate
from tokenward.server.events import audit_logger

pytestmark = pytest.mark.anyio
REQUESTS = 40


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collected() -> Iterator[Collect]:
    handler = Collect()
    level = audit_logger.level
    audit_logger.addHandler(handler)
    audit_logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        audit_logger.removeHandler(handler)
        audit_logger.setLevel(level)


async def test_written_by_the_writer_thread_and_flushed_on_stop(
    tmp_path: Path, collected: Collect
) -> None:
    async with in_process(make_settings(tmp_path)) as tw:
        await tw.admin.create_api(ApiCreate(identifier=API, name="A", scopes=["read"]), actor=ACTOR)
        spec = ClientCreate(name="c1", client_id="c1", scopes=["read"], secret="s1")
        await tw.admin.create_client(spec, actor=ACTOR)
        for _ in range(REQUESTS):
            assert (await tw.token(auth=("c1", "s1"))).status_code == 200
        assert (await tw.token(auth=("c1", "wrong"))).status_code == 401
    # The context has exited: the runtime stopped and flushed what the 1 s loop had not.
    lines = [line for r in collected.records for line in r.getMessage().splitlines()]
    events = [json.loads(line) for line in lines]
    assert [e["msg"] for e in events].count("token.issued") == REQUESTS
    assert [e["audit"]["reason"] for e in events if e["msg"] == "token.failed"] == [
        "wrong or expired secret"
    ]
    assert all(e["logger"] == "tokenward.audit" and e["level"] == "info" for e in events)
    assert {str(r.threadName).split("_")[0] for r in collected.records} == {"tokenward-audit"}


def test_a_real_server_stopped_cleanly_loses_no_event(tw_env: TokenwardEnv) -> None:
    with tokenward_server(tw_env) as server:
        tw_env.cli("apis", "create", "--identifier", API, "--name", "A", "--scope", "read")
        client = tw_env.cli_json("clients", "create", "--name", "c", "--scope", "read")
        auth = (client["client_id"], client["client_secret"])
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for _ in range(REQUESTS):
                response = http.post("/token", data={"grant_type": "client_credentials"}, auth=auth)
                assert response.status_code == 200
        server.stop()  # SIGTERM: at most a second's events are still buffered here
        log = server.log_path.read_text()
    issued = [e for e in audit_events(log) if e["event"] == "token.issued"]
    assert len(issued) == REQUESTS
    assert {e["client_id"] for e in issued} == {client["client_id"]}
