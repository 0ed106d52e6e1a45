"""Who is asking (``HttpPolicy.source``): the socket peer, or the right-most untrusted hop of
the one forwarding header the trusted proxies set (RFC 7239 §5.2 ``Forwarded``, or
``X-Forwarded-For``). A real server reads the same rule in tests/e2e/test_client_auth_hardening.py.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

import pytest

from tokenward.server.http.transport import HttpPolicy, RequestHead

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


def policy(header: Literal["x-forwarded-for", "forwarded"]) -> HttpPolicy:
    return HttpPolicy(trusted_proxies=PROXIES, proxy_header=header)


@pytest.mark.parametrize(
    ("peer", "forwarded", "source"),
    [
        ("10.0.0.1", [b"for=198.51.100.7"], "198.51.100.7"),
        ("10.0.0.1", [b'for="[2001:db8::1]:4711"'], "2001:db8::1"),
        ("10.0.0.1", [b"for=192.0.2.60:8080;proto=https;by=10.0.0.1"], "192.0.2.60"),
        # Right to left, trusted hops skipped; the first untrusted one is the client.
        ("10.0.0.1", [b"for=203.0.113.1, for=198.51.100.7, for=10.0.0.2"], "198.51.100.7"),
        ("10.0.0.1", [b"for=203.0.113.1", b"for=10.0.0.3"], "203.0.113.1"),
        ("fd00::5", [b'for="[fd00::9]", for=198.51.100.8'], "198.51.100.8"),
        # Garbage (an obfuscated or unknown node, RFC 7239 §6) stops the walk at the hop
        # that received it.
        ("10.0.0.1", [b"for=_hidden, for=10.0.0.2"], "10.0.0.2"),
        ("10.0.0.1", [b"for=unknown"], "10.0.0.1"),
        ("10.0.0.1", [], "10.0.0.1"),
        # Not from a trusted proxy: the header is the client's own words.
        ("192.0.2.1", [b"for=198.51.100.7"], "192.0.2.1"),
    ],
)
def test_forwarded(peer: str, forwarded: list[bytes], source: str) -> None:
    head = RequestHead(forwarded=forwarded, forwarded_for=[b"203.0.113.99"])
    assert policy("forwarded").source(peer, head) == source


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "source"),
    [
        ("10.0.0.1", [b"198.51.100.7"], "198.51.100.7"),
        ("10.0.0.1", [b"203.0.113.1, 198.51.100.7"], "198.51.100.7"),
        ("10.0.0.1", [b"203.0.113.1", b"198.51.100.7, 10.0.0.2"], "198.51.100.7"),
        ("10.0.0.1", [b"2001:db8::1"], "2001:db8::1"),
        ("10.0.0.1", [b"not-an-address"], "10.0.0.1"),
        ("192.0.2.1", [b"198.51.100.7"], "192.0.2.1"),
    ],
)
def test_x_forwarded_for(peer: str, forwarded_for: list[bytes], source: str) -> None:
    head = RequestHead(forwarded=[b"for=203.0.113.99"], forwarded_for=forwarded_for)
    assert policy("x-forwarded-for").source(peer, head) == source


def test_without_trusted_proxies_every_header_is_ignored() -> None:
    head = RequestHead(forwarded=[b"for=198.51.100.7"], forwarded_for=[b"198.51.100.8"])
    assert HttpPolicy(proxy_header="forwarded").source("10.0.0.1", head) == "10.0.0.1"
    assert HttpPolicy().source("10.0.0.1", head) == "10.0.0.1"
