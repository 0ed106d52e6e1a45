"""One loopback rule: where plain http is tolerated (RFC 6749 §3.2, RFC 8414 §2).

``is_loopback_host`` decides; the server's start-up issuer check and the resource library's
issuer warning must follow it host for host.
"""

from __future__ import annotations

import logging

import pytest

from tokenward.protocol.transport import is_loopback_host
from tokenward.resource import TokenVerifier
from tokenward.server.settings import Settings

LOOPBACK = [
    "localhost",  # RFC 6761 §6.3
    "LocalHost",
    "127.0.0.1",  # RFC 6890 §2.2.2: 127.0.0.0/8
    "127.0.0.2",
    "127.255.255.254",
    "127.1.2.3",
    "::1",  # RFC 4291 §2.5.3
    "[::1]",  # RFC 3986 §3.2.2: an IP-literal in a URL authority
    "0:0:0:0:0:0:0:1",
    "[0000::1]",
]
NOT_LOOPBACK = [
    "",
    "as.example",
    "localhost.example",
    "foo.localhost",  # resolver-dependent (RFC 6761 §6.3 "MAY"): not without DNS
    "localhost.",
    "127.0.0.1.nip.io",  # starts like a loopback address, resolves anywhere
    "127.example",
    "127.1",  # an inet_aton shorthand URL parsers disagree on
    "127.000.000.001",
    "0177.0.0.1",
    "2130706433",
    "128.0.0.1",
    "126.255.255.255",
    "0.0.0.0",  # "any address", not loopback
    "10.0.0.1",
    "::",
    "::2",
    "[::1",
    "::1]",
    "[[::1]]",
    "::ffff:127.0.0.1",  # IPv4-mapped: Python 3.13 and 3.11 judge it differently
    "::1%lo",  # a zone index
    "[::1]:8000",
]


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host) is True


@pytest.mark.parametrize("host", NOT_LOOPBACK)
def test_hosts_that_are_not_loopback(host: str) -> None:
    assert is_loopback_host(host) is False


ISSUERS = [
    ("http://localhost:8000", True),
    ("http://127.0.0.1:8000/tenant", True),
    ("http://127.0.0.2", True),
    ("http://[::1]:8000", True),
    ("http://LOCALHOST", True),
    ("http://127.0.0.1.nip.io", False),
    ("http://127.example:8000", False),
    ("http://as.example", False),
    ("http://[::ffff:127.0.0.1]", False),
]


@pytest.mark.parametrize(("issuer", "loopback"), ISSUERS)
def test_server_and_resource_library_follow_the_rule(
    issuer: str, loopback: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # The authorization server refuses to start on a plain-http, non-loopback issuer ...
    settings = Settings.model_construct(issuer=issuer, allow_insecure_http=False)
    if loopback:
        settings.check_transport()
    else:
        with pytest.raises(ValueError, match="only allowed on a loopback host"):
            settings.check_transport()
    # ... and the resource library warns about one.
    caplog.set_level(logging.WARNING, logger="tokenward")
    TokenVerifier(issuer, audience="https://api.example")
    warned = any("plain http" in record.getMessage() for record in caplog.records)
    assert warned is not loopback
