"""Errors raised by the token client, as data.

```
* TokenError                      anything this package raises on purpose
  + DiscoveryError                RFC 8414 metadata missing, unreachable or not for this issuer
  + TokenResponseError            a 2xx answer that is not a usable token (RFC 6749 §5.1, §7.1)
  + TokenRequestError             the token endpoint refused: .error, .description, .status
    - TokenEndpointUnavailable    5xx, 429 or a network error, still failing after the retries
```

No message or `repr` carries the client secret or an access token: they are built only from
the server's `error`, `error_description` and HTTP status (with the secret masked should a
server echo it back) or from a fixed sentence.
"""

from __future__ import annotations

__all__ = [
    "DiscoveryError",
    "TokenEndpointUnavailable",
    "TokenError",
    "TokenRequestError",
    "TokenResponseError",
]


class TokenError(Exception):
    """Base class of the errors raised by `tokenward.client`."""


class DiscoveryError(TokenError):
    """The authorization server metadata (RFC 8414) could not be used."""


class TokenResponseError(TokenError):
    """The token endpoint answered 2xx with something that is not a usable access token."""


class TokenRequestError(TokenError):
    """The token endpoint answered with an error (RFC 6749 §5.2).

    `error` is the OAuth error code (`invalid_client`, `invalid_scope`, ...) or None when the
    server sent no usable error body; `status` is the HTTP status (None: no answer at all).
    """

    def __init__(
        self,
        *,
        error: str | None,
        status: int | None,
        description: str | None = None,
        uri: str | None = None,
    ) -> None:
        self.error = error
        self.status = status
        self.description = description
        self.uri = uri
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"HTTP {self.status}" if self.status is not None else "no response"
        text = f"{self.error or 'token request failed'} ({where})"
        return f"{text}: {self.description}" if self.description else text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(error={self.error!r}, status={self.status!r}, "
            f"description={self.description!r})"
        )

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only __init__: tell pickle (multiprocessing, concurrent.futures) how to rebuild.
        return (_rebuild, (type(self), self.error, self.status, self.description, self.uri))


class TokenEndpointUnavailable(TokenRequestError):
    """The token endpoint kept failing (5xx, 429, network error) through every retry."""


def _rebuild(
    cls: type[TokenRequestError],
    error: str | None,
    status: int | None,
    description: str | None,
    uri: str | None,
) -> TokenRequestError:
    return cls(error=error, status=status, description=description, uri=uri)
