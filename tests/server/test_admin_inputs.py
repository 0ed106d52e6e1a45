"""The typed boundary of the admin layer: a value one operation refuses, every operation
refuses. Before the admin layer, ``update_client(token_format="bogus")`` was stored while
``create_client`` refused it; now both parse through the same annotated types."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from tests.server.harness import ACTOR, API, InProcess, in_process, make_settings
from tokenward.server.admin.schemas import (
    ApiCreate,
    ApiUpdate,
    ClientCreate,
    ClientUpdate,
    SecretCreate,
)

pytestmark = pytest.mark.anyio

PAIRS: list[tuple[type[BaseModel], type[BaseModel]]] = [
    (ClientCreate, ClientUpdate),
    (ApiCreate, ApiUpdate),
]


def _accepted(model: type[BaseModel], name: str) -> Any:
    """The JSON schema of the values a field accepts, without ``null`` (an update field is
    optional; the values it takes must be exactly the create field's)."""
    schema = dict(model.model_json_schema()["properties"][name])
    for key in ("title", "default", "description"):
        schema.pop(key, None)
    options = schema.get("anyOf")
    if options is not None and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        schema = rest[0] if len(rest) == 1 else {"anyOf": rest}
    return schema


@pytest.mark.parametrize(("create", "update"), PAIRS, ids=lambda m: m.__name__)
def test_shared_fields_have_one_type(create: type[BaseModel], update: type[BaseModel]) -> None:
    shared = create.model_fields.keys() & update.model_fields.keys()
    assert len(shared) >= 4
    for name in sorted(shared):
        assert _accepted(create, name) == _accepted(update, name), name


BOGUS: list[tuple[str, object]] = [
    ("token_format", "bogus"),
    ("token_ttl", 5),
    ("token_ttl", 10**9),
    ("auth_methods", ["client_secret_basic", "password"]),
    ("assertion_alg", "HS256"),
    ("scopes", ["has space"]),
    ("scopes", ["*"]),
    ("apis", ["not-a-uri"]),
    ("introspect_apis", ["https://api.example#frag"]),
    ("name", ""),
    ("jwks_uri", ""),
    ("quota_per_minute", 0),
    ("quota_per_hour", -5),
    ("quota_per_hour", "many"),
]


@pytest.mark.parametrize(("field", "value"), BOGUS)
def test_create_and_update_refuse_the_same_values(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        ClientCreate.model_validate({"name": "x", field: value})
    with pytest.raises(ValidationError, match=field):
        ClientUpdate.model_validate({field: value})


@pytest.mark.parametrize(
    "document",
    [
        {"identifier": "no-scheme", "name": "x"},
        {"identifier": "https://a.example", "name": "x", "signing_alg": "HS256"},
        {"identifier": "https://a.example", "name": "x", "token_format": "bogus"},
        {"identifier": "https://a.example", "name": "x", "unknown_field": 1},
    ],
)
def test_api_inputs_are_parsed_once(document: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ApiCreate.model_validate(document)


def test_an_unknown_field_is_refused_not_ignored() -> None:
    with pytest.raises(ValidationError, match="extra"):
        ClientUpdate.model_validate({"token_formt": "jwt"})
    with pytest.raises(ValidationError, match="extra"):
        SecretCreate.model_validate({"secret": "x", "expires": 3})


@pytest.fixture
async def tw(tmp_path: Path) -> Any:
    async with in_process(make_settings(tmp_path)) as running:
        await running.admin.create_api(
            ApiCreate(identifier=API, name="Example", scopes=["read"]), actor=ACTOR
        )
        yield running


async def test_a_token_lifetime_above_the_server_maximum_is_refused_by_both(
    tw: InProcess,
) -> None:
    from tokenward.server.admin import Invalid

    too_long = tw.settings.max_token_ttl + 1
    with pytest.raises(Invalid, match="token lifetime"):
        await tw.admin.create_client(
            ClientCreate(name="x", scopes=["read"], token_ttl=too_long), actor=ACTOR
        )
    created = await tw.admin.create_client(ClientCreate(name="x", scopes=["read"]), actor=ACTOR)
    with pytest.raises(Invalid, match="token lifetime"):
        await tw.admin.update_client(
            created.client.client_id, ClientUpdate(token_ttl=too_long), actor=ACTOR
        )


async def test_null_clears_an_override_and_omission_keeps_it(tw: InProcess) -> None:
    spec = ClientCreate(name="x", scopes=["read"], token_ttl=300, token_format="opaque")
    cid = (await tw.admin.create_client(spec, actor=ACTOR)).client.client_id
    kept = await tw.admin.update_client(cid, ClientUpdate(name="y"), actor=ACTOR)
    assert (kept.token_ttl, kept.token_format) == (300, "opaque")
    cleared = await tw.admin.update_client(
        cid, ClientUpdate.model_validate({"token_ttl": None}), actor=ACTOR
    )
    assert (cleared.token_ttl, cleared.token_format) == (None, "opaque")
