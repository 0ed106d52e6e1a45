"""Every admin API endpoint against a real ``tokenward serve``: request -> expected response.

The module shares one server, on SQLite and then on PostgreSQL (``site`` is ``any_site``); each
test makes its own APIs and clients, so the tests do not depend on one another's order.
"""

from __future__ import annotations

import secrets
import time

import httpx
import pytest

from tests.server.admin_api.support import ADMIN, READ, AdminSite, api_path, assert_error


@pytest.fixture(scope="module")
def site(any_site: AdminSite) -> AdminSite:
    return any_site


def _api(admin: httpx.Client, *scopes: str, **fields: object) -> str:
    identifier = f"https://{secrets.token_hex(4)}.api.example"
    body = {"identifier": identifier, "name": "Example", "scopes": list(scopes), **fields}
    response = admin.post("/apis", json=body)
    assert response.status_code == 201, response.text
    return identifier


def _scope() -> str:
    return f"s{secrets.token_hex(4)}:read"


# -- APIs ---------------------------------------------------------------------------------------


def test_create_get_list_update_delete_an_api(admin: httpx.Client) -> None:
    identifier = f"https://{secrets.token_hex(4)}.example"
    created = admin.post(
        "/apis",
        json={
            "identifier": identifier,
            "name": "Countries",
            "scopes": ["countries:read"],
            "scope_descriptions": {"countries:read": "Read countries"},
            "token_ttl": 600,
        },
    )
    expected = {
        "identifier": identifier,
        "name": "Countries",
        "scopes": ["countries:read"],
        "token_ttl": 600,
        "signing_alg": "ES256",
        "token_format": "jwt",
    }
    assert (created.status_code, created.json()) == (201, expected)
    assert admin.get(api_path(identifier)).json() == expected
    assert expected in admin.get("/apis").json()

    changed = admin.patch(
        api_path(identifier),
        json={
            "name": "Nations",
            "add_scopes": ["countries:write"],
            "remove_scopes": [],
            "token_ttl": None,
        },
    )
    assert changed.status_code == 200, changed.text
    assert changed.json() | {} == expected | {
        "name": "Nations",
        "scopes": ["countries:read", "countries:write"],
        "token_ttl": None,
    }
    removed = admin.patch(api_path(identifier), json={"remove_scopes": ["countries:read"]})
    assert removed.json()["scopes"] == ["countries:write"]

    deleted = admin.delete(api_path(identifier))
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert_error(admin.get(api_path(identifier)), 404, "not_found")
    assert_error(admin.delete(api_path(identifier)), 404, "not_found")


def test_api_conflicts_and_validation(admin: httpx.Client) -> None:
    scope = _scope()
    identifier = _api(admin, scope)
    again = admin.post("/apis", json={"identifier": identifier, "name": "Again"})
    assert_error(again, 409, "conflict")
    taken = admin.post(
        "/apis", json={"identifier": "https://other.example", "name": "O", "scopes": [scope]}
    )
    assert_error(taken, 409, "conflict")

    bad = admin.post("/apis", json={"identifier": "not a uri", "name": "", "token_format": "xml"})
    body = assert_error(bad, 422, "validation_failed")
    fields = {d["field"] for d in body["details"]}
    assert fields == {"body.identifier", "body.name", "body.token_format"}

    no_json = admin.post("/apis", content=b"{nope", headers={"content-type": "application/json"})
    assert_error(no_json, 400, "invalid_request")
    ttl = admin.patch(api_path(identifier), json={"token_ttl": 7 * 86400})
    assert_error(ttl, 422, "validation_failed")  # over the server's max_token_ttl (a day)
    assert_error(
        admin.patch(api_path("https://nope.example"), json={"name": "x"}), 404, "not_found"
    )


# -- clients ------------------------------------------------------------------------------------


def test_create_a_client_with_a_generated_secret_and_get_a_token(
    site: AdminSite, admin: httpx.Client
) -> None:
    scope = _scope()
    identifier = _api(admin, scope)
    created = admin.post("/clients", json={"name": "billing", "scopes": [scope]})
    assert created.status_code == 201, created.text
    body = created.json()
    client, new = body["client"], body["secret"]
    assert client["name"] == "billing"
    assert client["enabled"] is True
    assert client["scopes"] == [scope]
    assert client["auth_methods"] == ["client_secret_basic", "client_secret_post"]
    assert new["client_id"] == client["client_id"]
    assert len(new["client_secret"]) >= 43  # 256 bits, base64url
    assert [s["id"] for s in client["secrets"]] == [new["secret_id"]]

    token = site.token_response(client["client_id"], new["client_secret"])
    assert token.status_code == 200
    introspected = httpx.post(
        f"{site.url}/introspect",
        data={"token": token.json()["access_token"]},
        auth=(client["client_id"], new["client_secret"]),
    ).json()
    assert (introspected["active"], introspected["aud"]) == (True, identifier)


def test_create_a_client_with_a_given_secret_and_id(site: AdminSite, admin: httpx.Client) -> None:
    scope = _scope()
    _api(admin, scope)
    chosen = "given-" + secrets.token_urlsafe(32)
    client_id = f"cli-{secrets.token_hex(4)}"
    created = admin.post(
        "/clients",
        json={"name": "ci", "client_id": client_id, "secret": chosen, "scopes": [scope]},
    )
    assert created.status_code == 201, created.text
    assert created.json()["secret"]["client_secret"] == chosen
    assert site.token_response(client_id, chosen).status_code == 200
    duplicate = admin.post("/clients", json={"name": "again", "client_id": client_id})
    assert_error(duplicate, 409, "conflict")


def test_client_read_and_update(admin: httpx.Client) -> None:
    read, write = _scope(), _scope().replace(":read", ":write")
    _api(admin, read, write)
    client_id = admin.post("/clients", json={"name": "c", "scopes": [read]}).json()["client"][
        "client_id"
    ]
    assert admin.get(f"/clients/{client_id}").json()["scopes"] == [read]
    assert client_id in {c["client_id"] for c in admin.get("/clients").json()}

    granted = admin.patch(
        f"/clients/{client_id}",
        json={
            "add_scopes": [write],
            "default_scopes": [read],
            "token_ttl": 300,
            "token_format": "opaque",
            "auth_methods": ["client_secret_post"],
            "name": "renamed",
        },
    )
    assert granted.status_code == 200, granted.text
    view = granted.json()
    assert (view["scopes"], view["default_scopes"]) == (sorted([read, write]), [read])
    assert (view["token_ttl"], view["token_format"], view["name"]) == (300, "opaque", "renamed")
    assert view["auth_methods"] == ["client_secret_post"]

    revoked = admin.patch(
        f"/clients/{client_id}",
        json={"remove_scopes": [write], "default_scopes": None, "token_ttl": None},
    ).json()
    assert (revoked["scopes"], revoked["default_scopes"], revoked["token_ttl"]) == (
        [read],
        None,
        None,
    )

    unknown = admin.patch(f"/clients/{client_id}", json={"add_scopes": ["never:defined"]})
    assert_error(unknown, 422, "validation_failed")
    assert_error(admin.get("/clients/nobody"), 404, "not_found")
    assert_error(admin.patch("/clients/nobody", json={"name": "x"}), 404, "not_found")


def test_private_key_jwt_with_public_keys_or_a_jwks_uri(admin: httpx.Client) -> None:
    from joserfc.jwk import ECKey

    public = ECKey.generate_key("P-256").as_dict(private=False)
    created = admin.post(
        "/clients",
        json={"name": "signer", "auth_methods": ["private_key_jwt"], "jwks": {"keys": [public]}},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"] is None  # no secret-based method, no secret
    client = body["client"]
    assert (client["jwks_keys"], client["assertion_alg"], client["secrets"]) == (1, "ES256", [])

    moved = admin.patch(
        f"/clients/{client['client_id']}", json={"jwks_uri": "https://keys.example/jwks.json"}
    ).json()
    assert (moved["jwks_uri"], moved["jwks_keys"]) == ("https://keys.example/jwks.json", None)
    private = admin.patch(
        f"/clients/{client['client_id']}", json={"jwks_uri": "https://127.0.0.1/jwks.json"}
    )
    assert_error(private, 422, "validation_failed")


def test_disable_enable_revoke_tokens_and_delete(site: AdminSite, admin: httpx.Client) -> None:
    scope = _scope()
    _api(admin, scope)
    client_id, secret = site.new_client(admin, scopes=[scope])
    token = site.token(client_id, secret)

    disabled = admin.post(f"/clients/{client_id}/disable")
    assert (disabled.status_code, disabled.json()["enabled"]) == (200, False)
    _until(lambda: site.token_response(client_id, secret).status_code == 401)
    assert _active(site, token, client_id, secret) is None  # the client cannot even ask

    enabled = admin.post(f"/clients/{client_id}/enable")
    assert (enabled.status_code, enabled.json()["enabled"]) == (200, True)
    _until(lambda: site.token_response(client_id, secret).status_code == 200)
    assert _active(site, token, client_id, secret) is False  # disabling revoked it for good

    fresh = site.token(client_id, secret)
    time.sleep(1.1)  # not_before is a whole second after the tokens it revokes
    revoked = admin.post(f"/clients/{client_id}/revoke-tokens")
    assert revoked.status_code == 200
    assert revoked.json()["client_id"] == client_id
    assert revoked.json()["not_before"].endswith("Z")
    assert _active(site, fresh, client_id, secret) is False

    assert admin.delete(f"/clients/{client_id}").status_code == 204
    assert_error(admin.get(f"/clients/{client_id}"), 404, "not_found")
    assert_error(admin.post(f"/clients/{client_id}/disable"), 404, "not_found")
    assert_error(admin.post(f"/clients/{client_id}/revoke-tokens"), 404, "not_found")


def _active(site: AdminSite, token: str, client_id: str, secret: str) -> bool | None:
    response = httpx.post(f"{site.url}/introspect", data={"token": token}, auth=(client_id, secret))
    return response.json()["active"] if response.status_code == 200 else None


def _until(condition: object, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the change did not reach the token endpoint"
        time.sleep(0.1)


# -- secrets ------------------------------------------------------------------------------------


def test_add_list_and_revoke_secrets(site: AdminSite, admin: httpx.Client) -> None:
    scope = _scope()
    _api(admin, scope)
    client_id, first = site.new_client(admin, scopes=[scope])

    added = admin.post(
        f"/clients/{client_id}/secrets", json={"label": "deploy 2", "expires_in": 3600}
    )
    assert added.status_code == 201, added.text
    new = added.json()
    assert (new["client_id"], new["label"]) == (client_id, "deploy 2")
    assert new["expires_at"].endswith("Z")
    second = new["client_secret"]
    _until(lambda: site.token_response(client_id, second).status_code == 200)
    assert site.token_response(client_id, first).status_code == 200  # both work: overlap

    listed = admin.get(f"/clients/{client_id}/secrets")
    assert listed.status_code == 200
    rows = {row["id"]: row for row in listed.json()}
    assert set(rows) == {
        admin.get(f"/clients/{client_id}").json()["secrets"][0]["id"],
        new["secret_id"],
    }
    assert set(rows[new["secret_id"]]) == {
        "id",
        "label",
        "created_at",
        "expires_at",
        "last_used_at",
    }

    first_id = next(i for i in rows if i != new["secret_id"])
    graced = admin.post(f"/clients/{client_id}/secrets/{first_id}/revoke", json={"grace": 3600})
    assert graced.status_code == 204
    kept = {r["id"]: r for r in admin.get(f"/clients/{client_id}/secrets").json()}[first_id]
    assert kept["expires_at"] is not None
    assert site.token_response(client_id, first).status_code == 200  # still in its grace period

    now = admin.post(f"/clients/{client_id}/secrets/{first_id}/revoke")
    assert now.status_code == 204
    _until(lambda: site.token_response(client_id, first).status_code == 401)
    assert site.token_response(client_id, second).status_code == 200
    missing = admin.post(f"/clients/{client_id}/secrets/{first_id}/revoke")
    assert_error(missing, 404, "not_found")
    assert_error(admin.get("/clients/nobody/secrets"), 404, "not_found")
    assert_error(admin.post("/clients/nobody/secrets", json={}), 404, "not_found")
    assert_error(
        admin.post(f"/clients/{client_id}/secrets", json={"grace": 1}), 422, "validation_failed"
    )


# -- signing keys -------------------------------------------------------------------------------


def test_list_rotate_and_retire_keys(site: AdminSite, admin: httpx.Client) -> None:
    before = admin.get("/keys")
    assert before.status_code == 200
    active = [k for k in before.json() if k["alg"] == "ES256" and k["state"] == "active"]
    assert len(active) == 1

    rotated = admin.post("/keys/rotate", json={"alg": "ES256", "activate_in": 3600})
    assert rotated.status_code == 201, rotated.text
    upcoming = rotated.json()
    assert (upcoming["alg"], upcoming["state"]) == ("ES256", "next")
    listed = {k["kid"]: k["state"] for k in admin.get("/keys").json()}
    assert listed[upcoming["kid"]] == "next"

    # A key that never signed is deleted, not retired.
    assert_error(admin.post(f"/keys/{upcoming['kid']}/retire"), 409, "conflict")
    assert admin.delete(f"/keys/{upcoming['kid']}").status_code == 204
    assert upcoming["kid"] not in {k["kid"] for k in admin.get("/keys").json()}

    # The active key: a successor signs at once, the old key stays published.
    old = active[0]["kid"]
    assert_error(admin.delete(f"/keys/{old}"), 409, "conflict")  # signing: retire it first
    retired = admin.post(f"/keys/{old}/retire").json()
    assert retired["state"] == "retired"
    assert retired["removed_at"] is not None
    states = {k["kid"]: k["state"] for k in admin.get("/keys").json()}
    assert states[old] == "retired"
    assert sorted(s for k, s in states.items() if k != old).count("active") >= 1
    assert admin.post(f"/keys/{old}/retire").json()["state"] == "retired"  # no change

    assert_error(admin.delete(f"/keys/{old}"), 409, "conflict")  # its tokens may be live
    assert admin.delete(f"/keys/{old}", params={"force": "true"}).status_code == 204
    # The token in hand was signed by the key just removed: it no longer verifies.
    assert_error(admin.get("/keys"), 401, "invalid_token")
    with site.api() as fresh:
        assert old not in {k["kid"] for k in fresh.get("/keys").json()}
        assert_error(fresh.post(f"/keys/{old}/retire"), 404, "not_found")
        assert_error(fresh.delete(f"/keys/{old}"), 404, "not_found")
        assert_error(fresh.post("/keys/rotate", json={"alg": "HS256"}), 422, "validation_failed")


# -- audit --------------------------------------------------------------------------------------


def test_audit_pages_and_filters(site: AdminSite, admin: httpx.Client) -> None:
    scope = _scope()
    _api(admin, scope)
    client_id, _ = site.new_client(admin, scopes=[scope])
    admin.post(f"/clients/{client_id}/disable")
    admin.post(f"/clients/{client_id}/enable")

    mine = admin.get("/audit", params={"client_id": client_id}).json()
    assert [e["event"] for e in mine["events"]] == [
        "client.updated",
        "client.updated",
        "client.created",
    ]
    assert {e["actor"] for e in mine["events"]} == {f"api:{site.client_id}"}
    assert mine["next_cursor"] is None

    page = admin.get("/audit", params={"client_id": client_id, "limit": 2}).json()
    assert len(page["events"]) == 2
    assert page["next_cursor"] == str(page["events"][-1]["id"])
    rest = admin.get(
        "/audit", params={"client_id": client_id, "limit": 2, "cursor": page["next_cursor"]}
    ).json()
    assert [e["event"] for e in rest["events"]] == ["client.created"]
    assert rest["next_cursor"] is None

    created = admin.get("/audit", params={"event": "client.created", "client_id": client_id})
    assert [e["data"]["client_id"] for e in created.json()["events"]] == [client_id]
    by_cli = admin.get("/audit", params={"actor": "cli", "limit": 1000}).json()["events"]
    assert {"api.created", "client.created"} <= {e["event"] for e in by_cli}  # tokenward init

    at = mine["events"][-1]["at"]
    since = admin.get("/audit", params={"client_id": client_id, "since": at}).json()["events"]
    assert len(since) == 3
    until = admin.get("/audit", params={"client_id": client_id, "until": at}).json()["events"]
    assert until == []
    invalid = (
        {"limit": 0},
        {"limit": 1001},
        {"cursor": "abc"},
        {"since": "2026-01-01T00:00:00"},  # no time zone
        {"until": "-18993"},  # a number is not a date-time (found by the fuzz run)
    )
    for bad in invalid:
        assert_error(admin.get("/audit", params=bad), 422, "validation_failed")


# -- documents ----------------------------------------------------------------------------------


def test_openapi_and_docs_are_served_without_a_token(site: AdminSite) -> None:
    document = httpx.get(f"{site.url}/admin/api/openapi.json")
    assert document.status_code == 200
    spec = document.json()
    flows = spec["components"]["securitySchemes"]["tokenward"]["flows"]
    assert flows["clientCredentials"]["tokenUrl"] == f"{site.env.issuer}/token"
    assert set(flows["clientCredentials"]["scopes"]) == {ADMIN, READ}
    assert spec["paths"]["/apis"]["post"]["security"] == [{"tokenward": [ADMIN]}]
    assert spec["paths"]["/apis"]["get"]["security"] == [{"tokenward": [READ]}]
    page = httpx.get(f"{site.url}/admin/api/docs")
    assert page.status_code == 200
    assert "/admin/api/openapi.json" in page.text


def test_every_path_under_the_prefix_answers_in_the_api_shape(admin: httpx.Client) -> None:
    # A percent-encoded newline once fell through the mount to the protocol routes' 404.
    for path in ("/clients/a%0Ab", "/clients/a%0Ab/secrets", "/nowhere%0A"):
        assert_error(admin.get(path), 404, "not_found")
    assert_error(admin.post("/clients/a%0Ab/secrets/x%0Ay/revoke"), 404, "not_found")
    assert_error(admin.put("/clients"), 405, "method_not_allowed")
