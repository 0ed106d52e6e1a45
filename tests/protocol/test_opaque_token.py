"""Opaque access tokens: shape, recognition and the stored digest (RFC 6749 §10.10)."""

from __future__ import annotations

import hashlib
import secrets

import pytest

from tokenward.protocol.opaque_token import PREFIX, is_opaque_token, opaque_digest, opaque_token


def test_a_token_is_the_prefix_and_256_random_bits() -> None:
    """§10.10: guessing probability "MUST be less than or equal to 2^(-128)"; here 2^(-256)."""
    random_part = secrets.token_urlsafe(32)
    token = opaque_token(random_part)
    assert token == PREFIX + random_part == "tw_at_" + random_part
    assert len(token) == 6 + 43
    assert is_opaque_token(token)


@pytest.mark.parametrize(
    "random_part",
    ["", "a" * 42, "a" * 44, "a" * 42 + "+", "a" * 42 + "=", "a" * 42 + ".", "a" * 42 + "\n"],
    ids=["empty", "42 chars", "44 chars", "base64 +", "padding", "dot", "newline"],
)
def test_anything_but_32_bytes_of_base64url_is_refused(random_part: str) -> None:
    with pytest.raises(ValueError, match="32 random bytes"):
        opaque_token(random_part)


@pytest.mark.parametrize(
    ("token", "opaque"),
    [
        ("tw_at_" + "A" * 43, True),
        ("tw_at_" + "-_" * 21 + "0", True),
        ("tw_at_" + "A" * 42, False),
        ("tw_at_" + "A" * 44, False),
        ("TW_AT_" + "A" * 43, False),
        ("xx_at_" + "A" * 43, False),
        ("tw_at_" + "A" * 43 + "\n", False),
        ("eyJhbGciOiJFUzI1NiJ9.e30.AA", False),  # a JWT: it has dots
        ("", False),
    ],
)
def test_recognising_an_opaque_token(token: str, opaque: bool) -> None:
    assert is_opaque_token(token) is opaque


def test_only_the_sha256_digest_is_stored() -> None:
    token = "tw_at_" + "A" * 43
    assert opaque_digest(token) == hashlib.sha256(token.encode()).hexdigest()
    assert len(opaque_digest(token)) == 64
    assert opaque_digest(token) != opaque_digest(token[:-1] + "B")
