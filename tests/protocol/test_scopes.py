"""The scope parameter (RFC 6749 §3.3) and the error-description charset (RFC 6749 §5.2).

    scope       = scope-token *( SP scope-token )
    scope-token = 1*( %x21 / %x23-5B / %x5D-7E )

Checklist IDs: TE-24 (grammar, case-sensitivity), TE-04 (empty scope is omitted) and TE-25
(``error_description`` charset for any description). The grant decisions that use the parsed
scopes (TE-22, TE-23, TE-24 allow-list) are in tests/protocol/test_grant.py; over HTTP in
tests/server/test_token_endpoint.py.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenward.protocol import errors
from tokenward.protocol.errors import InvalidScope, OAuthError, safe_description
from tokenward.protocol.scopes import MAX_SCOPES, format_scope, is_scope_token, parse_scope

# The ABNF above, transcribed independently of the implementation.
SCOPE_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if c not in (0x22, 0x5C))
RFC_SCOPE = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+(?: [\x21\x23-\x5B\x5D-\x7E]+)*")
# RFC 6749 §5.2 charsets.
ERROR_CHARSET = re.compile(r"[\x20\x21\x23-\x5B\x5D-\x7E]*")

scope_tokens = st.text(st.sampled_from(SCOPE_CHARS), min_size=1, max_size=12)


@given(st.lists(scope_tokens, min_size=1, max_size=MAX_SCOPES))
def test_any_grammatical_scope_parses_to_its_tokens(tokens: list[str]) -> None:
    assert parse_scope(" ".join(tokens)) == frozenset(tokens)


@given(st.lists(scope_tokens, min_size=1, max_size=20, unique=True))
def test_format_then_parse_round_trips(tokens: list[str]) -> None:
    rendered = format_scope(frozenset(tokens))
    assert RFC_SCOPE.fullmatch(rendered)
    assert parse_scope(rendered) == frozenset(tokens)


@given(st.text(st.characters(codec="utf-8"), max_size=40))
def test_parse_scope_accepts_exactly_the_grammar(value: str) -> None:
    """Any string: parsed iff it matches the ABNF (empty means omitted, TE-04)."""
    if value == "":
        assert parse_scope(value) is None
        return
    grammatical = RFC_SCOPE.fullmatch(value) is not None
    if grammatical:
        assert parse_scope(value) == frozenset(value.split(" "))
    else:
        with pytest.raises(InvalidScope) as info:
            parse_scope(value)
        assert info.value.body() == {
            "error": "invalid_scope",
            "error_description": "scope is malformed",
        }


@given(scope_tokens)
def test_is_scope_token_matches_the_abnf(value: str) -> None:
    assert is_scope_token(value)
    assert not is_scope_token(value + " ")
    assert not is_scope_token(value + '"')
    assert not is_scope_token(value + "\\")


SCOPE_CASES: list[tuple[str | None, frozenset[str] | type[InvalidScope] | None]] = [
    (None, None),
    ("", None),
    ("read", frozenset({"read"})),
    ("read write", frozenset({"read", "write"})),
    ("read read", frozenset({"read"})),
    ("*", frozenset({"*"})),
    ("urn:scope_1 urn:scope_2", frozenset({"urn:scope_1", "urn:scope_2"})),  # seed 001
    # TE-24 probes
    ("read\nwrite", InvalidScope),
    ('"read"', InvalidScope),
    ("re\\ad", InvalidScope),
    ("read  write", InvalidScope),
    (" read", InvalidScope),
    ("read ", InvalidScope),
    ("read\twrite", InvalidScope),
    ("l\u00e9ger", InvalidScope),
    (" ".join(f"s{i}" for i in range(MAX_SCOPES + 1)), InvalidScope),
]


@pytest.mark.parametrize(("value", "expected"), SCOPE_CASES)
def test_scope_table(
    value: str | None, expected: frozenset[str] | type[InvalidScope] | None
) -> None:
    if expected is InvalidScope:
        with pytest.raises(InvalidScope):
            parse_scope(value)
    else:
        assert parse_scope(value) == expected


def test_scopes_are_case_sensitive() -> None:
    assert parse_scope("READ") != parse_scope("read")


# -- TE-25: error and error_description charsets ---------------------------------------------

ERROR_CLASSES = [
    cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, OAuthError) and cls is not OAuthError
]


@given(st.text(max_size=80))
def test_safe_description_stays_in_the_charset(text: str) -> None:
    cleaned = safe_description(text)
    assert ERROR_CHARSET.fullmatch(cleaned)
    # Only forbidden characters are dropped: what is allowed survives in order.
    assert cleaned == "".join(c for c in text if ERROR_CHARSET.fullmatch(c))


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_code_is_in_the_charset(cls: type[OAuthError]) -> None:
    assert re.fullmatch(r"[\x21\x23-\x5B\x5D-\x7E]+", cls.error)


@given(st.text(max_size=80), st.text(max_size=80))
def test_any_description_renders_within_the_charset(description: str, reason: str) -> None:
    for cls in (errors.InvalidRequest, errors.InvalidScope, errors.UnsupportedTokenType):
        body = cls(description, reason=reason).body()
        assert ERROR_CHARSET.fullmatch(body.get("error_description", ""))
