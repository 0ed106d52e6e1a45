"""RFC 6750 / RFC 9068 §4 / RFC 8725 scenarios, request -> exact response, on every adapter.

Each case is one HTTP request to a real server on loopback (pure ASGI middleware, FastAPI
dependency, Flask decorator — the ``api`` fixture), against a real fake authorization server
serving discovery and JWKS. IDs refer to the checklist (RS-xx: §1.4, Jx: §2.1).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.resource.conftest import Api, MainIssuer
from tests.resource.support import API, DROP, b64, compact, json_bytes, new_key
from tokenward.resource.errors import InsufficientScope, InvalidRequest, InvalidToken, MissingToken

# -- expected responses ----------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    status: int
    error: str | None = None
    scope: str | None = None  # insufficient_scope's scope attribute
    scopes: tuple[str, ...] = ("read",)  # for 200: the token's scopes
    form: tuple[str, ...] = ()  # for 200: the form fields the app received

    def challenge(self) -> str | None:
        if self.status == 200:
            return None
        params = [f'realm="{API}"']
        if self.error:
            description = _DESCRIPTIONS[self.error]
            params += [f'error="{self.error}"', f'error_description="{description}"']
        if self.scope:
            params.append(f'scope="{self.scope}"')
        return "Bearer " + ", ".join(params)

    def body(self) -> dict[str, Any]:
        if self.status == 200:
            return {"client_id": "c1", "scopes": list(self.scopes), "form": list(self.form)}
        if self.error is None:
            return {"error_description": MissingToken.description}
        return {"error": self.error, "error_description": _DESCRIPTIONS[self.error]}


_DESCRIPTIONS = {
    "invalid_request": InvalidRequest.description,
    "invalid_token": InvalidToken.description,
    "insufficient_scope": InsufficientScope.description,
}

OK = Expect(200)
MISSING = Expect(401)
BAD_REQUEST = Expect(400, "invalid_request")
INVALID = Expect(401, "invalid_token")


def forbidden(scope: str) -> Expect:
    return Expect(403, "insufficient_scope", scope=scope)


# -- requests --------------------------------------------------------------------------------

Make = Callable[[MainIssuer], str]


@dataclass(frozen=True)
class Case:
    id: str
    token: Make | None  # sent as "Authorization: Bearer <token>" unless `authorization` is set
    expect: Expect
    path: str = "/any"
    authorization: Callable[[str], list[str]] | None = None  # token -> header values
    query: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] | None = None  # POST form; "<token>" is replaced by the token


def valid(**claims: Any) -> Make:
    return lambda m: m.issuer.mint(**claims)


def relative(**offsets: int) -> Make:
    """A valid token whose time claims are now + offset (computed when the case runs)."""

    def make(m: MainIssuer) -> str:
        claims: dict[str, Any] = {k: int(time.time()) + v for k, v in offsets.items()}
        return m.issuer.mint(**claims)

    return make


def with_header(**header: Any) -> Make:
    return lambda m: m.issuer.mint(header=header)


def signed_by(alg: str, **header: Any) -> Make:
    return lambda m: m.issuer.mint(m.keys[alg], header=header)


def raw_token(header: bytes | None = None, claims: bytes | None = None) -> Make:
    """A token from raw JSON bytes, validly signed with the main ES256 key."""

    def make(m: MainIssuer) -> str:
        return compact(
            header or json_bytes(m.issuer.header()),
            claims or json_bytes(m.issuer.claims()),
            m.issuer.key,
        )

    return make


def claims_with_literal(name: str, literal: bytes) -> Make:
    """Valid claims where one value is replaced by a raw JSON literal (e.g. 1e309)."""

    def make(m: MainIssuer) -> str:
        claims = json_bytes(m.issuer.claims(**{name: "@@@"})).replace(b'"@@@"', literal)
        return compact(json_bytes(m.issuer.header()), claims, m.issuer.key)

    return make


def hs256_keyed_with(secret: Callable[[MainIssuer], bytes]) -> Make:
    """RFC 8725 §2.1 algorithm confusion: HS256 "signed" with the issuer's public key."""

    def make(m: MainIssuer) -> str:
        header = {"alg": "HS256", "kid": m.keys["RS256"].kid, "typ": "at+jwt"}
        key = secret(m)
        return compact(header, m.issuer.claims(), lambda si: hmac.digest(key, si, hashlib.sha256))

    return make


def alg_none(alg: str) -> Make:
    def make(m: MainIssuer) -> str:
        header = b64(json_bytes({"alg": alg, "typ": "at+jwt"}))
        return f"{header}.{b64(json_bytes(m.issuer.claims()))}."

    return make


def alg_none_with_signature(m: MainIssuer) -> str:
    return alg_none("none")(m) + "c2ln"


def attacker_signed(embed: str) -> Make:
    """Signed by a key the issuer never published, which the header points to or embeds."""

    def make(m: MainIssuer) -> str:
        attacker = new_key("ES256", kid="attacker")
        header: dict[str, Any] = {"alg": "ES256", "kid": attacker.kid, "typ": "at+jwt"}
        if embed == "jwk":
            header["jwk"] = attacker.public_jwk()
        elif embed == "x5c":
            header["x5c"] = [base64.b64encode(attacker.public_der()).decode()]
        elif embed == "kid-collision":
            header["kid"] = m.issuer.key.kid  # RS-15 / J14: another issuer's key, same kid
        return compact(header, m.issuer.claims(), attacker)

    return make


def alg_swap_rs256_on_ps256_key(m: MainIssuer) -> str:
    ps = m.keys["PS256"]
    header = {"alg": "RS256", "kid": ps.kid, "typ": "at+jwt"}
    return compact(header, m.issuer.claims(), lambda si: ps.sign(si, "RS256"))


def es256_on_p384_key(m: MainIssuer) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    p384 = m.keys["ES384"]

    def sign(si: bytes) -> bytes:
        r, s = utils.decode_dss_signature(p384.private.sign(si, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(48, "big") + s.to_bytes(48, "big")

    return compact({"alg": "ES256", "kid": p384.kid, "typ": "at+jwt"}, m.issuer.claims(), sign)


def standard_alphabet(m: MainIssuer) -> str:
    """The same token with "-" and "_" written as "+" and "/" (base64, not base64url)."""
    for _ in range(100):
        token = m.issuer.mint()
        signature = token.rsplit(".", 1)[1]
        if "-" in signature or "_" in signature:
            return token.translate(str.maketrans("-_", "+/"))
    raise AssertionError("no signature with - or _ in 100 tries")


def transformed(change: Callable[[str], str]) -> Make:
    return lambda m: change(m.issuer.mint())


def utf16_claims(m: MainIssuer) -> str:
    claims = json.dumps(m.issuer.claims()).encode("utf-16-le")
    return compact(m.issuer.header(), claims, m.issuer.key)


other_issuer_key = new_key("ES256")

CASES = [
    # Positive: every default algorithm, with and without kid.
    Case("ES256", valid(), OK),
    Case("RS256", signed_by("RS256"), OK),
    Case("PS256", signed_by("PS256"), OK),
    Case("EdDSA", signed_by("EdDSA"), OK),
    Case("Ed25519-fully-specified", signed_by("Ed25519"), OK),
    Case("no-kid-tries-keys-of-the-alg", with_header(kid=DROP), OK),
    Case("ES384-not-in-allowlist", signed_by("ES384"), INVALID),
    # RS-01 scheme case-insensitive
    Case("RS-01-lowercase", valid(), OK, authorization=lambda t: [f"bearer {t}"]),
    Case("RS-01-uppercase", valid(), OK, authorization=lambda t: [f"BEARER {t}"]),
    Case("RS-01-two-spaces", valid(), OK, authorization=lambda t: [f"Bearer  {t}"]),
    # RS-02 more than one method
    Case("RS-02-header-and-form", valid(), BAD_REQUEST, form={"access_token": "<token>"}),
    Case("RS-02-header-and-query", valid(), BAD_REQUEST, query={"access_token": "x"}),
    Case(
        "RS-02-two-headers",
        valid(),
        BAD_REQUEST,
        authorization=lambda t: [f"Bearer {t}", f"Bearer {t}"],
    ),
    Case(
        "RS-02-basic-and-bearer",
        valid(),
        BAD_REQUEST,
        authorization=lambda t: ["Basic Zm9vOmJhcg==", f"Bearer {t}"],
    ),
    Case("form-intact-for-the-app", valid(), Expect(200, form=("x",)), form={"x": "1"}),
    # RS-03 query and form methods are not credentials
    Case(
        "RS-03-query-only",
        valid(),
        MISSING,
        authorization=lambda t: [],
        query={"access_token": "<token>"},
    ),
    Case(
        "RS-03-form-only",
        valid(),
        MISSING,
        authorization=lambda t: [],
        form={"access_token": "<token>"},
    ),
    # RS-04 / RS-05 no credentials, other schemes
    Case("RS-04-no-header", None, MISSING),
    Case("RS-05-basic", valid(), MISSING, authorization=lambda t: ["Basic Zm9vOmJhcg=="]),
    Case("RS-05-dpop-scheme", valid(), MISSING, authorization=lambda t: [f"DPoP {t}"]),
    # RS-06 invalid token
    Case(
        "RS-06-bad-signature",
        transformed(lambda t: t[:-6] + ("AAAAAA" if t[-6:] != "AAAAAA" else "BBBBBB")),
        INVALID,
    ),
    Case("RS-06-garbage", lambda m: "not-a-token", INVALID),
    # RS-07 scopes
    Case("RS-07-read-on-read", valid(), OK, path="/read"),
    Case("RS-07-read-on-write", valid(), forbidden("write"), path="/write"),
    Case(
        "RS-07-both",
        valid(scope="read write"),
        Expect(200, scopes=("read", "write")),
        path="/write",
    ),
    Case("RS-07-no-scope-claim", valid(scope=DROP), forbidden("read"), path="/read"),
    Case("RS-07-scope-not-a-string", valid(scope=["read"]), INVALID, path="/read"),
    Case("RS-07-scope-bad-characters", valid(scope='read "w"'), INVALID, path="/read"),
    Case(
        "RS-07-scope-extra-spaces",
        valid(scope=" read  write "),
        Expect(200, scopes=("read", "write")),
        path="/read",
    ),
    # RS-08 malformed
    Case("RS-08-empty", None, BAD_REQUEST, authorization=lambda t: ["Bearer"]),
    Case("RS-08-two-parts", None, BAD_REQUEST, authorization=lambda t: ["Bearer a b"]),
    Case("RS-08-joined-headers", None, BAD_REQUEST, authorization=lambda t: ["Bearer a, Bearer b"]),
    Case("comma-in-token", None, INVALID, authorization=lambda t: ["Bearer a,b"]),
    # RS-09 no injection through the token into the challenge
    Case("RS-09-quotes-and-backslash", lambda m: 'a"b\\c', INVALID),
    # RS-10 / J10 typ
    Case("RS-10-typ-JWT", with_header(typ="JWT"), INVALID),
    Case("RS-10-no-typ", with_header(typ=DROP), INVALID),
    Case("RS-10-typ-at+JWT", with_header(typ="at+JWT"), OK),
    Case("RS-10-typ-application", with_header(typ="application/at+jwt"), OK),
    Case("RS-10-typ-not-string", with_header(typ=["at+jwt"]), INVALID),
    Case("J10-id-token", lambda m: m.issuer.mint(header={"typ": "JWT"}, aud="c1"), INVALID),
    Case("J10-client-assertion", with_header(typ="client-authentication+jwt"), INVALID),
    Case("J10-dpop-proof", with_header(typ="dpop+jwt"), INVALID),
    Case("J10-logout", with_header(typ="logout+jwt"), INVALID),
    # RS-11 / J9 aud
    Case("RS-11-other", valid(aud="https://other.example"), INVALID),
    Case("RS-11-array-with-us", valid(aud=[API, "x"]), OK),
    Case("J9-array-other-first", valid(aud=["https://other.example", API]), OK),
    Case("RS-11-missing", valid(aud=DROP), INVALID),
    Case("RS-11-number", valid(aud=42), INVALID),
    Case("RS-11-object", valid(aud={}), INVALID),
    Case("J9-empty-array", valid(aud=[]), INVALID),
    Case("J9-array-other", valid(aud=["https://other.example"]), INVALID),
    Case("J9-array-non-string", valid(aud=[API, 42]), INVALID),
    Case("J9-prefix", valid(aud=API + "/v2"), INVALID),
    Case("J9-trailing-slash", valid(aud=API + "/"), INVALID),
    # RS-12 / J9 iss
    Case("RS-12-trailing-slash", lambda m: m.issuer.mint(iss=m.issuer.issuer + "/"), INVALID),
    Case("RS-12-scheme-only", valid(iss="https"), INVALID),
    Case("RS-12-prefix", lambda m: m.issuer.mint(iss=m.issuer.issuer[:-3]), INVALID),
    Case("J9-suffix", lambda m: m.issuer.mint(iss=m.issuer.issuer + ".evil"), INVALID),
    Case("J9-case", lambda m: m.issuer.mint(iss=m.issuer.issuer.upper()), INVALID),
    Case(
        "J9-lookalike", lambda m: m.issuer.mint(iss=m.issuer.issuer.replace("t", "\u0442")), INVALID
    ),
    Case("J9-iss-array", lambda m: m.issuer.mint(iss=[m.issuer.issuer]), INVALID),
    Case("RS-12-missing", valid(iss=DROP), INVALID),
    # RS-13 / J1 alg none; J2 HMAC with the public key
    Case("J1-none-empty-signature", alg_none("none"), INVALID),
    Case("J1-None", alg_none("None"), INVALID),
    Case("J1-NONE", alg_none("NONE"), INVALID),
    Case("J1-nOnE", alg_none("nOnE"), INVALID),
    Case("J1-none-with-signature", alg_none_with_signature, INVALID),
    Case("J2-hs256-pem", hs256_keyed_with(lambda m: m.keys["RS256"].public_pem()), INVALID),
    Case("J2-hs256-der", hs256_keyed_with(lambda m: m.keys["RS256"].public_der()), INVALID),
    Case(
        "J2-hs256-jwk-n",
        hs256_keyed_with(lambda m: m.keys["RS256"].public_jwk()["n"].encode()),
        INVALID,
    ),
    Case(
        "J2-hs256-jwk-json",
        hs256_keyed_with(lambda m: json_bytes(m.keys["RS256"].public_jwk())),
        INVALID,
    ),
    Case("J2-hs256-openssh", hs256_keyed_with(lambda m: m.keys["RS256"].public_openssh()), INVALID),
    # J3 algorithm swap within a family
    Case("J3-rs256-on-ps256-key", alg_swap_rs256_on_ps256_key, INVALID),
    Case("J3-es256-on-p384-key", es256_on_p384_key, INVALID),
    Case(
        "J3-header-alg-mismatch",
        lambda m: m.issuer.mint(m.keys["RS256"], header={"alg": "PS256"}),
        INVALID,
    ),
    # RS-14 / J8 time claims (adapters use the default 30 s leeway)
    Case("RS-14-expired-beyond-leeway", relative(exp=-31), INVALID),
    Case("RS-14-expired-within-leeway", relative(exp=-5), OK),
    Case("J8-exp-missing", valid(exp=DROP), INVALID),
    Case("J8-exp-string", valid(exp="9999999999"), INVALID),
    Case("J8-exp-1e309", claims_with_literal("exp", b"1e309"), INVALID),
    Case("J8-exp-negative", valid(exp=-1), INVALID),
    Case("J8-exp-true", valid(exp=True), INVALID),
    Case("J8-exp-huge-int", claims_with_literal("exp", b"9" * 400), INVALID),
    Case("J8-nbf-future", relative(nbf=600), INVALID),
    Case("J8-nbf-past", relative(nbf=-10), OK),
    Case("J8-iat-future", relative(iat=3600), INVALID),
    Case("J8-iat-missing", valid(iat=DROP), INVALID),
    # RFC 9068 §2.2 required claims
    Case("required-sub", valid(sub=DROP), INVALID),
    Case("required-client_id", valid(client_id=DROP), INVALID),
    Case("required-jti", valid(jti=DROP), INVALID),
    Case("client_id-not-string", valid(client_id=7), INVALID),
    # RS-15 / J14 keys belong to their issuer
    Case("RS-15-kid-collision-other-key", attacker_signed("kid-collision"), INVALID),
    Case(
        "J14-other-issuers-kid",
        lambda m: compact(m.issuer.header(other_issuer_key), m.issuer.claims(), other_issuer_key),
        INVALID,
    ),
    # RS-16 / J7 crit
    Case("RS-16-crit-unknown", with_header(crit=["x"], x=1), INVALID),
    Case("J7-crit-exp", with_header(crit=["exp"], exp=1), INVALID),
    Case("J7-crit-absent-param", with_header(crit=["x"]), INVALID),
    Case("J7-crit-empty", with_header(crit=[]), INVALID),
    # RS-17 / RS-18 / J11 format
    Case("RS-17-jwe", lambda m: "eyJhbGciOiJSU0EtT0FFUCJ9.YQ.YQ.YQ.YQ", INVALID),
    Case("RS-18-json-serialization", lambda m: '{"payload":"e30","signatures":[]}', INVALID),
    Case(
        "RS-18-json-with-spaces",
        None,
        BAD_REQUEST,
        authorization=lambda t: ['Bearer {"payload": "e30", "signatures": []}'],
    ),
    Case("J11-empty-signature", transformed(lambda t: t.rsplit(".", 1)[0] + "."), INVALID),
    Case("J11-two-parts", transformed(lambda t: t.rsplit(".", 1)[0]), INVALID),
    Case("J11-four-parts", transformed(lambda t: t + ".e30"), INVALID),
    Case("J11-ten-thousand-dots", lambda m: "." * 10_000, INVALID),
    # RS-19 sender-constrained
    Case(
        "RS-19-cnf-jkt", valid(cnf={"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}), INVALID
    ),
    Case(
        "RS-19-cnf-x5t",
        valid(cnf={"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
        INVALID,
    ),
    # J4 kid injection
    Case("J4-path", with_header(kid="../../../../dev/null"), INVALID),
    Case("J4-sql", with_header(kid="' OR '1'='1"), INVALID),
    Case("J4-nul", with_header(kid="%00"), INVALID),
    Case("J4-number", with_header(kid=123), INVALID),
    Case("J4-object", with_header(kid={}), INVALID),
    Case("J4-long", with_header(kid="k" * 5000), INVALID),
    # J6 embedded keys
    Case("J6-embedded-jwk", attacker_signed("jwk"), INVALID),
    Case("J6-embedded-x5c", attacker_signed("x5c"), INVALID),
    # J12 encoding and JSON ambiguities
    Case("J12-padding", transformed(lambda t: t + "=="), INVALID),
    Case("J12-standard-alphabet", standard_alphabet, INVALID),
    Case(
        "J12-duplicate-alg",
        lambda m: raw_token(
            header=b'{"alg":"none","alg":"ES256","kid":"%s","typ":"at+jwt"}'
            % m.issuer.key.kid.encode()
        )(m),
        INVALID,
    ),
    Case(
        "J12-duplicate-exp",
        lambda m: raw_token(
            claims=json_bytes(m.issuer.claims(exp=1))[:-1] + b',"exp":%d}' % (time.time() + 300)
        )(m),
        INVALID,
    ),
    Case("J12-utf16", utf16_claims, INVALID),
    Case("J12-lone-surrogate", valid(sub="\ud800"), INVALID),
    Case("J12-nan", claims_with_literal("exp", b"NaN"), INVALID),
]


def _send(api: Api, case: Case, token: str | None) -> httpx.Response:
    if case.authorization is not None:
        authorization = case.authorization(token or "")
    else:
        authorization = [f"Bearer {token}"] if token is not None else []
    headers = [("Authorization", value) for value in authorization]
    query = {k: (token or "") if v == "<token>" else v for k, v in case.query.items()}
    with httpx.Client(base_url=api.url, timeout=10) as client:
        if case.form is None:
            return client.get(case.path, params=query, headers=headers)
        form = {k: (token or "") if v == "<token>" else v for k, v in case.form.items()}
        return client.post(case.path, params=query, headers=headers, data=form)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_scenario(api: Api, main_issuer: MainIssuer, case: Case) -> None:
    token = case.token(main_issuer) if case.token is not None else None
    response = _send(api, case, token)

    assert response.status_code == case.expect.status, response.text
    assert response.json() == case.expect.body()
    assert response.headers.get("www-authenticate") == case.expect.challenge()
    if case.expect.status != 200:
        assert response.headers["content-type"].startswith("application/json")
        assert response.headers["cache-control"] == "no-store"
    if token and len(token) > 8:  # RS-09, RS-20: the token is never echoed
        assert token[:9] not in response.text
        assert all(token[:9] not in value for value in response.headers.values())


def test_challenge_parameters_appear_once(api: Api, main_issuer: MainIssuer) -> None:
    """RS-09: error, error_description, scope each once; values free of '"' and '\\'."""
    token = main_issuer.issuer.mint()
    with httpx.Client(base_url=api.url) as client:
        challenge = client.get("/write", headers={"Authorization": f"Bearer {token}"}).headers[
            "www-authenticate"
        ]
    for name in ("realm", "error", "error_description", "scope"):
        assert challenge.count(f" {name}=") == 1
    values = challenge.split('"')[1::2]
    assert all("\\" not in v for v in values)
    assert challenge.count('"') == 8
