"""Schemathesis against the admin API's own OpenAPI document, with an admin token.

For every operation, bodies, paths and query strings are generated from the schema (valid ones,
and invalid ones too): no answer is a 5xx, every status is one the document declares, every
body matches its declared schema and content type, and a request without the token is refused
(``ignored_auth``). Business rules the schema cannot express (an unknown scope, a client id
that does not exist) make valid-looking requests fail with 4xx, so ``positive_data_acceptance``
is not among the checks; nor is ``negative_data_rejection``: bodies are parsed in pydantic's lax
mode (``"300"`` or ``false`` for an integer are coerced, docs/admin-api.md), which the typed
inputs share with the CLI and the console.

Schemathesis' pytest integration cannot load a schema from a fixture under pytest 9 (its lazy
loader sets a private pytest attribute), so the test draws each operation's cases with
``APIOperation.as_strategy`` under Hypothesis itself, and reports every failing operation.

It runs against a real ``tokenward serve`` rather than the ASGI app in-process: the fuzzed
paths, percent-encodings and headers then go through uvicorn's parser and the app's dispatch
(raw POST handlers in front, the mount under ``/admin/api``) exactly as deployed, and the token
is verified by the server's running key ring. Bounded: ``EXAMPLES`` per operation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err, Ok
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from tests.server.admin_api.support import AdminSite, admin_site
from tests.support.tokenward_server import TokenwardEnv

EXAMPLES = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    ignored_auth,
]


@pytest.fixture(scope="module")
def fuzzed_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminSite]:
    # Its own server: what the fuzzer creates and deletes stays out of the other tests.
    with admin_site(TokenwardEnv(home=tmp_path_factory.mktemp("fuzz"))) as running:
        yield running


def _fuzz(operation: Any, mode: GenerationMode, bearer: dict[str, str]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=bearer, checks=CHECKS, timeout=30)

    run()


@pytest.mark.slow
def test_admin_api_conforms_to_its_openapi(fuzzed_site: AdminSite) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed_site.url}/admin/api/openapi.json")
    bearer = {"Authorization": f"Bearer {fuzzed_site.token()}"}
    failures: list[str] = []
    results = list(schema.get_all_operations())
    assert not [r.err() for r in results if isinstance(r, Err)]  # the document is valid
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert len(operations) >= 20  # every route of the admin API is in the document
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, bearer)
            except Unsatisfiable:
                pass  # nothing to make invalid: an operation without parameters or body
            except (Exception, BaseExceptionGroup) as failure:  # schemathesis' FailureGroup
                failures.append(f"{operation.label} ({mode.value}): {failure}")
    assert failures == [], "\n\n".join(failures)
