"""Configuration as code (docs/configuration-as-code.md): ``tokenward export``, ``validate`` and
``apply``.

The round trip holds for every kind of object (export -> apply on an empty server -> export
gives the same file); a second apply changes nothing; ``--dry-run`` changes nothing and prints
what would change; ``--prune`` is the only way apply deletes; secrets are never exported, are
generated and shown once, or come from the environment or a file, and a referenced secret is
added only when the client does not have it yet. Every change is audited with actor ``apply``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.harness import client_jwks, in_process, make_settings
from tests.support.tokenward_server import TokenwardEnv, tokenward_server
from tokenward.server.admin.bootstrap import admin_audience, set_up_admin_api
from tokenward.server.admin.declarative import (
    DeclarationError,
    apply_plan,
    export,
    parse_declaration,
    plan,
)
from tokenward.server.admin.operations import Admin
from tokenward.server.cli.config import dump
from tokenward.server.stores import AuditQuery

pytestmark = pytest.mark.anyio

API = "https://api.example.com"
OTHER = "https://reports.example.com"


def full_declaration() -> dict[str, Any]:
    """One of everything a file can say, in the order export writes it."""
    return {
        "version": 1,
        "apis": [
            {
                "identifier": API,
                "name": "Example API",
                "scopes": {"countries:read": "List countries", "shipments:write": ""},
                "signing_alg": "ES256",
            },
            {
                "identifier": OTHER,
                "name": "Reports",
                "scopes": {"reports:read": ""},
                "token_ttl": 300,
                "signing_alg": "RS256",
                "token_format": "opaque",
            },
        ],
        "clients": [
            {
                "client_id": "billing",
                "name": "Billing",
                "scopes": ["countries:read", "shipments:write"],
                "default_scopes": ["countries:read"],
                "token_ttl": 600,
                "quota_per_minute": 60,
                "quota_per_hour": 1000,
            },
            {
                "client_id": "gateway",
                "name": "Gateway",
                "enabled": False,
                "auth_methods": ["client_secret_basic"],
                "token_format": "opaque",
                "introspect_apis": [API],
            },
            {
                "client_id": "hmac",
                "name": "HMAC assertions",
                "scopes": ["countries:read"],
                "auth_methods": ["client_secret_jwt"],
            },
            {
                "client_id": "remote-keys",
                "name": "Remote keys",
                "auth_methods": ["private_key_jwt"],
                "jwks_uri": "https://keys.example.com/jwks.json",
                "assertion_alg": "ES256",
            },
            {
                "client_id": "signer",
                "name": "Signer",
                "scopes": ["reports:read"],
                "apis": [API],
                "auth_methods": ["private_key_jwt"],
                "jwks": client_jwks(),
                "assertion_alg": "ES256",
            },
        ],
    }


async def _apply(
    admin: Admin, data: Any, *, prune: bool = False, environ: dict[str, str] | None = None
) -> list[str]:
    declaration = parse_declaration(data)
    steps = await plan(
        admin, declaration, prune=prune, default_alg="ES256", environ=environ or {}, base=Path()
    )
    await apply_plan(admin, declaration, steps, default_alg="ES256")
    return [str(change) for change in steps.changes]


async def test_round_trip_and_a_second_apply_changes_nothing(tmp_path: Path) -> None:
    data = full_declaration()
    async with in_process(make_settings(tmp_path), loops=False) as tw:
        applied = await _apply(tw.admin, data)
        assert len(applied) == 7
        assert await export(tw.admin, default_alg="ES256") == data
        assert await _apply(tw.admin, data) == []
        events = await tw.admin.list_audit(AuditQuery(limit=1000))
        assert {e.actor for e in events} == {"apply"}


async def test_changes_are_shown_then_made(tmp_path: Path) -> None:
    data = full_declaration()
    async with in_process(make_settings(tmp_path), loops=False) as tw:
        await _apply(tw.admin, data)
        api = data["apis"][0]
        api["scopes"] = {"countries:read": "Read countries", "parcels:write": ""}
        billing = data["clients"][0]
        billing.update(name="Billing team", scopes=["countries:read"])
        del billing["token_ttl"]
        del data["clients"][1]["enabled"]
        assert await _apply(tw.admin, data) == [
            f"~ api {API}: +scope parcels:write; -scope shipments:write; "
            "scope countries:read description 'List countries' -> 'Read countries'",
            "~ client billing: name Billing -> Billing team; "
            "scopes [countries:read, shipments:write] -> [countries:read]; token_ttl 600 -> -",
            "~ client gateway: enabled False -> True",
        ]
        assert await export(tw.admin, default_alg="ES256") == data
        client = await tw.admin.get_client("billing")
        assert (client.name, client.token_ttl) == ("Billing team", None)


async def test_without_prune_nothing_is_deleted(tmp_path: Path) -> None:
    data = full_declaration()
    async with in_process(make_settings(tmp_path), loops=False) as tw:
        await _apply(tw.admin, data)
        smaller = {"version": 1, "apis": data["apis"][:1], "clients": data["clients"][:1]}
        assert await _apply(tw.admin, smaller) == []
        assert len(await tw.admin.list_clients()) == 5
        assert await _apply(tw.admin, smaller, prune=True) == [
            "- client gateway",
            "- client hmac",
            "- client remote-keys",
            "- client signer",
            f"- api {OTHER}",
        ]
        assert await export(tw.admin, default_alg="ES256") == smaller


async def test_the_admin_api_is_not_a_configuration_files(tmp_path: Path) -> None:
    """Its API is left out of export and refused in a file; prune keeps it and its clients."""
    data = full_declaration()
    async with in_process(make_settings(tmp_path), loops=False) as tw:
        own = admin_audience(tw.settings.issuer)
        await _apply(tw.admin, data)
        before = await export(tw.admin, default_alg="ES256", own_api=own)
        setup = await set_up_admin_api(tw.admin, issuer=tw.settings.issuer, actor="test")
        assert setup.created is not None
        assert await export(tw.admin, default_alg="ES256", own_api=own) == before
        steps = await plan(
            tw.admin,
            parse_declaration({"version": 1, "apis": [], "clients": []}),
            prune=True,
            default_alg="ES256",
            environ={},
            base=Path(),
            own_api=own,
        )
        removed = [str(c) for c in steps.changes]
        assert len(removed) == 7  # five clients and two APIs ...
        assert not [line for line in removed if own in line or "tokenward-admin" in line]
        declared = {"version": 1, "apis": [{"identifier": own, "name": "mine", "scopes": {}}]}
        with pytest.raises(DeclarationError) as refused:
            await plan(
                tw.admin,
                parse_declaration(declared),
                prune=False,
                default_alg="ES256",
                environ={},
                base=Path(),
                own_api=own,
            )
        assert refused.value.problems == [
            f"apis: {own} is tokenward's own admin API (set up by tokenward init), not a "
            "configuration file's"
        ]


async def test_referenced_secrets(tmp_path: Path) -> None:
    secret_file = tmp_path / "shop.secret"
    secret_file.write_text("f" * 43 + "\n")
    data = {
        "apis": [{"identifier": API, "name": "A", "scopes": {"read": ""}}],
        "clients": [
            {"client_id": "shop", "name": "Shop", "scopes": ["read"], "secret": {"env": "S"}},
            {"client_id": "depot", "name": "Depot", "secret": {"file": str(secret_file)}},
        ],
    }
    async with in_process(make_settings(tmp_path), loops=False) as tw:
        await _apply(tw.admin, data, environ={"S": "e" * 43})
        assert await tw.admin.secret_matches("shop", "e" * 43)
        assert await tw.admin.secret_matches("depot", "f" * 43)
        assert await _apply(tw.admin, data, environ={"S": "e" * 43}) == []
        # A new value in the environment: added beside the old one (rotation with overlap).
        assert await _apply(tw.admin, data, environ={"S": "g" * 43}) == ["+ secret shop: from $S"]
        assert await tw.admin.secret_matches("shop", "e" * 43)
        assert await tw.admin.secret_matches("shop", "g" * 43)
        with pytest.raises(DeclarationError, match="environment variable S is not set"):
            await _apply(tw.admin, data)
        exported = await export(tw.admin, default_alg="ES256")
        assert "secret" not in json.dumps(exported["clients"])


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"version": 2}, "version: Input should be 1"),
        (
            {"apis": [{"identifier": "no-uri", "name": "A"}]},
            "apis[0].identifier: must be an absolute URI",
        ),
        ({"clients": [{"client_id": "c", "name": "C", "colour": 1}]}, "clients[0].colour"),
        (
            {"clients": [{"client_id": "c", "name": "C", "scopes": ["x"]}]},
            "clients[0] (c).scopes: unknown scope 'x' (define it under an API)",
        ),
        (
            {
                "apis": [
                    {"identifier": API, "name": "A", "scopes": {"s": ""}},
                    {"identifier": OTHER, "name": "B", "scopes": {"s": ""}},
                ]
            },
            f"apis: scope 's' is defined by {API} and {OTHER}",
        ),
        (
            {"clients": [{"client_id": "c", "name": "C"}, {"client_id": "c", "name": "D"}]},
            "clients: c appears more than once",
        ),
        (
            {
                "clients": [
                    {
                        "client_id": "c",
                        "name": "C",
                        "auth_methods": ["private_key_jwt"],
                        "secret": {"env": "X"},
                    }
                ]
            },
            "clients[0] (c).secret: this client has no secret method (auth_methods)",
        ),
        (
            {"clients": [{"client_id": "c", "name": "C", "secret": {"env": "X", "file": "f"}}]},
            "give exactly one of env or file",
        ),
    ],
)
def test_invalid_files_name_the_place(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(DeclarationError) as caught:
        parse_declaration(data)
    assert any(problem in line for line in caught.value.problems), caught.value.problems


def test_through_the_cli(tw_env: TokenwardEnv, tmp_path: Path) -> None:
    """The file export writes -> dry run (prints the plan, changes nothing) -> apply on an
    empty server (generated secrets printed once) -> export gives the same file -> a second
    apply changes nothing; a bad file is refused in one line per problem, exit status 2."""
    exported = dump(full_declaration())
    config = tmp_path / "exported.yaml"
    config.write_text(exported)
    tw_env.cli("migrate")  # an empty server's database
    dry = tw_env.cli("apply", str(config), "--dry-run").stdout
    assert dry.splitlines()[-1] == "(dry run: nothing changed)"
    assert "+ client billing: secret generated" in dry
    applied = json.loads(tw_env.cli("apply", str(config), "--json").stdout)
    assert applied["changes"] == dry.splitlines()[:-1]
    assert sorted(applied["secrets"]) == ["billing", "gateway", "hmac"]
    assert tw_env.cli("export").stdout == exported
    assert tw_env.cli("apply", str(config)).stdout == "no changes\n"

    (tmp_path / "bad.yaml").write_text("clients:\n- client_id: c\n  name: C\n  scopes: [x]\n")
    refused = tw_env.cli("apply", str(tmp_path / "bad.yaml"), check=False)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"error: {tmp_path / 'bad.yaml'}: clients[0] (c).scopes: unknown scope 'x' "
        "(define it under an API)"
    ]
    (tmp_path / "twice.yaml").write_text("apis: []\napis: []\n")
    refused = tw_env.cli("validate", "twice.yaml", cwd=tmp_path, check=False)
    assert refused.returncode == 2
    assert refused.stderr == "error: twice.yaml: line 2, column 1: key 'apis' appears twice\n"


def test_a_server_built_by_hand_exported_and_applied_to_an_empty_running_server(
    tmp_path: Path,
) -> None:
    """The round trip from a registry made with the ordinary commands (not a file): export it,
    apply the file to an empty server while it serves, and that server exports the same file.
    The generated secrets are printed once and work at once; a second apply changes nothing
    and prints no secret."""
    source = TokenwardEnv(home=tmp_path / "source")
    target = TokenwardEnv(home=tmp_path / "target")
    for env in (source, target):
        env.home.mkdir()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(client_jwks()))
    source.cli("apis", "create", "--identifier", API, "--name", "A", "--scope", "r", "--scope", "w")
    source.cli(
        "apis",
        "create",
        "--identifier",
        OTHER,
        "--name",
        "Reports",
        "--scope",
        "rep",
        "--token-ttl",
        "120",
        "--signing-alg",
        "RS256",
        "--token-format",
        "opaque",
    )
    source.cli(
        "clients",
        "create",
        "--client-id",
        "billing",
        "--name",
        "Billing",
        "--scope",
        "r",
        "--scope",
        "w",
        "--default-scope",
        "r",
        "--token-ttl",
        "300",
    )
    source.cli(
        "clients",
        "create",
        "--client-id",
        "gw",
        "--name",
        "GW",
        "--api",
        OTHER,
        "--auth-method",
        "client_secret_post",
        "--introspect",
        API,
    )
    source.cli(
        "clients",
        "create",
        "--client-id",
        "signer",
        "--name",
        "S",
        "--scope",
        "rep",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        str(jwks),
    )
    source.cli("clients", "disable", "gw")
    exported = source.cli("export").stdout
    config = tmp_path / "tokenward.yaml"
    config.write_text(exported)

    target.cli("migrate")
    with tokenward_server(target):
        applied = json.loads(target.cli("apply", str(config), "--json").stdout)
        assert sorted(applied["secrets"]) == ["billing", "gw"]
        token = httpx.post(
            f"{target.issuer}/token",
            data={"grant_type": "client_credentials"},
            auth=("billing", applied["secrets"]["billing"]),
            timeout=10,
        )
        assert token.status_code == 200, token.text
        assert token.json()["scope"] == "r"
        assert target.cli("export").stdout == exported
        again = target.cli("apply", str(config))
        assert again.stdout == "no changes\n"
        assert applied["secrets"]["billing"] not in again.stdout + again.stderr
