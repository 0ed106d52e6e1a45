"""A secret appears in exactly one answer: the one that created it.

Secrets are created through the API (given and generated, at client creation and added later),
then every read endpoint, the audit trail, refusals whose request carried a secret, and the
server's log are searched for each value.
"""

from __future__ import annotations

import secrets

import httpx

from tests.server.admin_api.support import AdminSite, assert_error


def _texts(admin: httpx.Client, client_id: str) -> list[str]:
    reads = ["/apis", "/clients", f"/clients/{client_id}", f"/clients/{client_id}/secrets", "/keys"]
    answers = [admin.get(path) for path in reads]
    answers.append(admin.get("/audit", params={"limit": 1000}))
    assert all(a.status_code == 200 for a in answers)
    return [a.text for a in answers]


def test_a_secret_is_in_the_answer_that_created_it_and_nowhere_else(site: AdminSite) -> None:
    given = "chosen-" + secrets.token_urlsafe(24)
    with site.api() as admin:
        created = admin.post("/clients", json={"name": "once", "secret": given})
        assert created.status_code == 201
        assert given in created.text
        client_id = created.json()["client"]["client_id"]
        added = admin.post(f"/clients/{client_id}/secrets", json={"label": "two"})
        generated = added.json()["client_secret"]
        assert generated in added.text
        weak = "weak-" + secrets.token_hex(4)

        refusals = [
            # invalid, conflicting, unknown, too weak for client_secret_jwt: each carried a secret
            admin.post("/clients", json={"name": "", "secret": given, "token_ttl": 1}),
            admin.post("/clients", json={"name": "x", "client_id": client_id, "secret": given}),
            admin.post("/clients/nobody/secrets", json={"secret": given}),
            admin.post(
                "/clients",
                json={"name": "x", "auth_methods": ["client_secret_jwt"], "secret": weak},
            ),
            admin.post("/clients", json={"name": "x", "secret": {"value": given}}),
            admin.post("/clients", json={"name": "x", "secret": 12345, "extra": given}),
        ]
        statuses = [r.status_code for r in refusals]
        assert statuses == [422, 409, 404, 422, 422, 422]
        assert_error(refusals[0], 422, "validation_failed")

        texts = _texts(admin, client_id) + [r.text for r in refusals]
    for value in (given, generated, weak, site.secret):
        assert not [text for text in texts if value in text]
    log = site.server.log()
    for value in (given, generated, site.secret):
        assert value not in log
