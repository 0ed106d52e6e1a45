"""Token revocation (RFC 7009).

"The authorization server first validates the client credentials (in case of a confidential
client) and then verifies whether the token was issued to the client making the revocation
request." (§2.1). A client revokes its own tokens only.

For any other token tokenward answers 200 and changes nothing, exactly as for an unknown or
malformed token (§2.2: "invalid tokens do not cause an error response"). §2.1 says such a
request "is refused and the client is informed of the error"; tokenward deliberately does not
inform: an error for "valid, but someone else's" would let any client test whether a string it
found is a live token (the revocation oracle of RFC 7009 §5). The refusal is in the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokenward.protocol.model import Client

__all__ = ["may_revoke"]


def may_revoke(caller: Client, claims: Mapping[str, Any]) -> bool:
    """True when ``claims`` belong to a token issued to ``caller``."""
    return claims.get("client_id") == caller.client_id
