"""The decoy verification: one verification of the presented algorithm over the assertion's
signing input, against a key nobody holds, whatever the input; it never raises."""

from __future__ import annotations

import pytest

from tokenward.jose.decoy import DecoyVerifier

TOKENS = [
    "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
    "only-one-part",
    "",
    "a.b.c.d",
    "\ud800.\u00e9.x",  # not ASCII, a lone surrogate included: replaced, never raised
]


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA", "Ed25519", "HS256"])
def test_every_algorithm_spends_once_and_keeps_its_key(alg: str) -> None:
    decoy = DecoyVerifier()
    for token in TOKENS:
        decoy.spend(token, alg)
    assert list(decoy._spenders) == [alg]  # made once, at first use


@pytest.mark.parametrize("alg", [None, "none", "HS512", "RS256 "])
def test_an_unknown_algorithm_costs_an_es256_verification(alg: str | None) -> None:
    decoy = DecoyVerifier()
    decoy.spend(TOKENS[0], alg)
    assert list(decoy._spenders) == ["ES256"]
