"""Who may call the admin API (RFC 6750 §2-3, RFC 9068 §4), against a real ``tokenward serve``.

Each refusal: its status, its ``error``, the ``WWW-Authenticate`` challenge, and the admin API's
one error shape. The expired and foreign tokens are signed here: the expired one with the
server's own key (read from the same database and secrets, as a second instance would), the
foreign one with a key the server never saw.
"""

from __future__ import annotations

import asyncio
import secrets
import time

import httpx
import pytest

from tests.server.admin_api.support import ADMIN, READ, AdminSite, assert_error
from tokenward.jose.keys import generate_private_pem, load_key_material
from tokenward.jose.signing import JwsSigner
from tokenward.protocol.access_token import JWT_TYP, build_claims
from tokenward.protocol.client_credentials import Grant
from tokenward.server.composition import build_server
from tokenward.server.settings import Settings

REALM = 'Bearer realm="tokenward admin"'


def _challenge(response: httpx.Response) -> str:
    value: str = response.headers["www-authenticate"]
    return value


def _claims(site: AdminSite, *, issued: int, client_id: str | None = None) -> dict[str, object]:
    grant = Grant(site.audience, frozenset({ADMIN}), 60, "ES256", "jwt")
    return build_claims(
        issuer=site.env.issuer,
        client_id=client_id or site.client_id,
        grant=grant,
        now=issued,
        jti=secrets.token_urlsafe(16),
    )


async def _signed_by_the_server(site: AdminSite, claims: dict[str, object]) -> str:
    home = site.env.home
    settings = Settings(
        database_url=f"sqlite:///{home}/tw.db",
        issuer=site.env.issuer,
        secrets_file=home / "secrets.json",
    )
    server = build_server(settings)
    try:
        await server.registry.load()
        signer = server.keyring.signer("ES256", int(time.time()))
        assert signer is not None
        return signer.sign(claims)
    finally:
        await server.aclose()


def test_no_token_is_401_without_an_error_code(site: AdminSite) -> None:
    for headers in ({}, {"authorization": "Basic Zm9vOmJhcg=="}):
        response = httpx.get(f"{site.url}/admin/api/clients", headers=headers)
        assert_error(response, 401, "unauthorized")
        # RFC 6750 §3.1: no authentication information -> "SHOULD NOT include an error code".
        assert _challenge(response) == REALM
    in_query = httpx.get(f"{site.url}/admin/api/clients", params={"access_token": site.token()})
    assert_error(in_query, 401, "unauthorized")  # RFC 6750 §2.3: the query is no credential


def test_a_malformed_or_doubled_credential_is_400(site: AdminSite) -> None:
    for value in ("Bearer", "Bearer a b"):
        response = httpx.get(f"{site.url}/admin/api/clients", headers={"authorization": value})
        assert_error(response, 400, "invalid_request")
        assert 'error="invalid_request"' in _challenge(response)
    token = site.token()
    both = httpx.get(
        f"{site.url}/admin/api/clients",
        params={"access_token": token},
        headers={"authorization": f"Bearer {token}"},
    )
    assert_error(both, 400, "invalid_request")  # RFC 6750 §2: one method only


def _refused(site: AdminSite, token: str) -> None:
    response = httpx.get(f"{site.url}/admin/api/apis", headers={"authorization": f"Bearer {token}"})
    assert_error(response, 401, "invalid_token")
    challenge = _challenge(response)
    assert challenge.startswith(REALM + ', error="invalid_token"')
    assert token not in response.text
    log = site.server.log()
    assert '"reason":' in log  # the precise reason is logged...
    assert token not in log  # ...never the token


def test_tokens_that_are_not_valid_here_are_401_invalid_token(site: AdminSite) -> None:
    _refused(site, "not-a-token")
    _refused(site, site.token() + "x")  # signature broken
    with site.api() as admin:
        # Wrong audience: a token this server issued, for another API.
        scope = f"s{secrets.token_hex(4)}:read"
        other = f"https://{secrets.token_hex(4)}.other.example"
        created = admin.post("/apis", json={"identifier": other, "name": "O", "scopes": [scope]})
        assert created.status_code == 201
        other_id, other_secret = site.new_client(admin, scopes=[scope, ADMIN])
    _refused(site, site.token(other_id, other_secret, scope=scope))
    assert site.token(other_id, other_secret, scope=ADMIN)  # the same client, the right audience

    # Signed by a key the server never published.
    foreign = JwsSigner(load_key_material(generate_private_pem("ES256"), "ES256"), typ=JWT_TYP)
    _refused(site, foreign.sign(_claims(site, issued=int(time.time()))))


def test_an_expired_token_is_401(site: AdminSite) -> None:
    now = int(time.time())
    expired = asyncio.run(_signed_by_the_server(site, _claims(site, issued=now - 3600)))
    _refused(site, expired)
    # The same construction, still within its lifetime, is accepted: only exp differs.
    valid = asyncio.run(_signed_by_the_server(site, _claims(site, issued=now)))
    response = httpx.get(f"{site.url}/admin/api/apis", headers={"authorization": f"Bearer {valid}"})
    assert response.status_code == 200


def test_a_disabled_clients_and_a_revoked_token_are_401(site: AdminSite) -> None:
    with site.api() as admin:
        client_id, secret = site.new_client(admin, scopes=[ADMIN])
        token = site.token(client_id, secret)
        with site.api(token) as theirs:
            assert theirs.get("/clients").status_code == 200
            assert admin.post(f"/clients/{client_id}/disable").status_code == 200
            assert_error(theirs.get("/clients"), 401, "invalid_token")  # at once, no cache
            admin.post(f"/clients/{client_id}/enable")
            assert_error(theirs.get("/clients"), 401, "invalid_token")  # disabling revoked it

    fresh = site.token()
    revoked = httpx.post(
        f"{site.url}/revoke", data={"token": fresh}, auth=(site.client_id, site.secret)
    )
    assert revoked.status_code == 200
    _refused(site, fresh)


def test_read_scope_reads_and_cannot_write(site: AdminSite) -> None:
    with site.api() as admin:
        reader_id, reader_secret = site.new_client(admin, scopes=[READ])
    with site.api(site.token(reader_id, reader_secret)) as reader:
        for path in ("/apis", "/clients", "/keys", "/audit", f"/clients/{reader_id}/secrets"):
            assert reader.get(path).status_code == 200, path
        writes = [
            reader.post("/apis", json={"identifier": "https://w.example", "name": "W"}),
            reader.patch(f"/clients/{reader_id}", json={"add_scopes": [ADMIN]}),
            reader.post(f"/clients/{reader_id}/secrets", json={}),
            reader.delete(f"/clients/{reader_id}"),
            reader.post("/keys/rotate"),
        ]
    for response in writes:
        assert_error(response, 403, "insufficient_scope")
        challenge = _challenge(response)
        assert challenge.startswith(REALM + ', error="insufficient_scope"')
        assert challenge.endswith(f'scope="{ADMIN}"')
    with site.api() as admin:
        assert admin.get(f"/clients/{reader_id}").json()["scopes"] == [READ]  # nothing changed


def test_an_opaque_admin_token_is_accepted(site: AdminSite) -> None:
    with site.api() as admin:
        client_id, secret = site.new_client(admin, scopes=[READ], token_format="opaque")
    token = site.token(client_id, secret)
    assert token.count(".") == 0
    with site.api(token) as opaque:
        assert opaque.get("/apis").status_code == 200


def test_bodies_are_bounded_and_read_only_after_authentication(site: AdminSite) -> None:
    big = b'{"name": "' + b"x" * (64 * 1024) + b'"}'
    anonymous = httpx.post(f"{site.url}/admin/api/clients", content=big)
    assert_error(anonymous, 401, "unauthorized")
    with site.api() as admin:
        too_large = admin.post(
            "/clients", content=big, headers={"content-type": "application/json"}
        )
        assert_error(too_large, 413, "body_too_large")

        def chunks() -> object:
            yield b'{"name": "streamed"}'

        chunked = admin.post("/clients", content=chunks())  # type: ignore[arg-type]
        assert_error(chunked, 411, "length_required")


def test_answers_are_never_cached(site: AdminSite) -> None:
    with site.api() as admin:
        for response in (admin.get("/clients"), admin.get("/clients/nobody")):
            assert response.headers["cache-control"] == "no-store"
            assert response.headers["pragma"] == "no-cache"
    refused = httpx.get(f"{site.url}/admin/api/clients")
    assert refused.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", ["/admin/api/openapi.json", "/admin/api/docs"])
def test_documents_are_public(site: AdminSite, path: str) -> None:
    assert httpx.get(f"{site.url}{path}").status_code == 200
