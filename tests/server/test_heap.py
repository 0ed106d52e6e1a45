"""A server process freezes its heap once keys and registry are loaded (``runtime.freeze_heap``),
so that a full collection no longer walks the start-up heap with the event loop stopped (the
effect on p99 is measured by bench/bench_token.py, not here). A test or CLI process never
freezes: its heap is not the server's alone."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.harness import C1, in_process, make_settings, seed_registry

pytestmark = pytest.mark.anyio


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


async def test_a_server_process_freezes_its_heap_once_loaded(
    tmp_path: Path, unfrozen: None
) -> None:
    async with in_process(make_settings(tmp_path), freeze_heap=True) as tw:
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # the libraries' modules, classes and functions at least
        await seed_registry(tw)
        assert (await tw.token(auth=(C1.client_id, C1.secret))).status_code == 200
        # Once, at the first load, not per change; frozen objects are still freed when unused.
        assert gc.get_freeze_count() <= frozen


async def test_a_test_or_cli_process_never_freezes(tmp_path: Path, unfrozen: None) -> None:
    async with in_process(make_settings(tmp_path)) as tw:
        await seed_registry(tw)
        assert (await tw.token(auth=(C1.client_id, C1.secret))).status_code == 200
        assert gc.get_freeze_count() == 0
