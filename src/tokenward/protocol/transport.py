"""Which hosts count as loopback, where plain http is tolerated — RFC 6749 §3.1, §3.2.

RFC 6749 §3.2: "The authorization server MUST require the use of TLS ... when sending requests
to the token endpoint"; RFC 8414 §2: the issuer "uses the https scheme". tokenward relaxes this
for development on the local machine only, and this module is the one definition of "the local
machine" that the server (issuer check at start-up) and the resource library (issuer warning)
share:

* ``localhost`` (RFC 6761 §6.3), compared case-insensitively;
* any IPv4 literal in ``127.0.0.0/8`` (RFC 6890 §2.2.2);
* the IPv6 loopback address ``::1`` (RFC 4291 §2.5.3), with or without the brackets of a URL
  authority (RFC 3986 §3.2.2).

Sans-IO: no name is resolved, so ``127.0.0.1.example`` or any other name that merely starts
like a loopback address is *not* loopback, whatever DNS says today.
"""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback_host"]


def is_loopback_host(host: str) -> bool:
    """True when ``host`` (a URL's host, e.g. ``urlsplit(url).hostname``) is the local machine."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name, or an IPv4 shorthand such as 127.1 that URL parsers disagree on
    if isinstance(address, ipaddress.IPv6Address) and (
        address.scope_id is not None or address.ipv4_mapped is not None
    ):
        return False  # ::1%eth0, ::ffff:127.0.0.1: spellings Python versions judge differently
    return address.is_loopback
