"""Client public keys for private_key_jwt: registered inline, or fetched from a ``jwks_uri``.

Fetching a URL a client chose is a server-side request forgery and denial-of-service lever
(RFC 8725 §3.10, checklist CA-22), so every fetch is bounded:

* ``https`` only (``http`` only when ``jwks_uri_allow_private`` is on, for tests);
* the host name is resolved first, and every address must be public: loopback, private,
  link-local (cloud metadata at 169.254.169.254), shared, multicast and reserved ranges are
  refused unless ``jwks_uri_allow_private``. The connection then goes to the address that was
  checked (the URL's host is kept for ``Host`` and TLS SNI/certificate checks), so a second DNS
  answer cannot redirect it (DNS rebinding);
* no redirects, no proxies from the environment, one time limit for the whole exchange
  (``jwks_uri_timeout``), at most 64 KiB of body (decoded), at most 20 keys;
* the document is cached ``jwks_uri_cache_seconds``; an assertion naming an unknown ``kid``
  triggers at most one refetch per ``jwks_uri_refetch_cooldown`` (key rotation without a fetch
  storm); a failed fetch is not retried before the cooldown either. When a refresh fails, the
  previous keys stay usable for one more cache period.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from tokenward.jose.assertion import ClientKeysError, check_client_jwks
from tokenward.jose.verification import JoseError, PublicKeySet
from tokenward.protocol.model import Client
from tokenward.server.settings import Settings

if TYPE_CHECKING:  # imported when a jwks_uri is first fetched: every CLI command imports this
    import httpx

__all__ = ["MAX_JWKS_BYTES", "ClientKeys", "JwksFetchError", "check_jwks_uri", "fetch_jwks"]

MAX_JWKS_BYTES = 64 * 1024
log = logging.getLogger("tokenward.client_keys")


class JwksFetchError(Exception):
    """A ``jwks_uri`` could not be used. The message is short and safe to log."""


def _address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_jwks_uri(uri: str, *, allow_private: bool) -> None:
    """Static checks of a ``jwks_uri`` (registration and every fetch). Raises ValueError."""
    if len(uri) > 2048 or not uri.isprintable():
        raise ValueError("jwks_uri is too long or not printable")
    parts = urlsplit(uri)
    if parts.scheme != "https" and not (allow_private and parts.scheme == "http"):
        raise ValueError("jwks_uri must be an https URL")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise ValueError("jwks_uri needs a host and no user information")
    if parts.fragment:
        raise ValueError("jwks_uri must not have a fragment")
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return  # a name: its addresses are checked after resolution, at each fetch
    if not allow_private and not _address_allowed(str(literal)):
        raise ValueError("jwks_uri points to a private, loopback or link-local address")


async def _resolve(host: str, port: int, *, allow_private: bool) -> str:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise JwksFetchError("jwks_uri host does not resolve") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise JwksFetchError("jwks_uri host does not resolve")
    if not allow_private and not all(_address_allowed(a) for a in addresses):
        # Every answer must be public: a mixed answer is how rebinding attacks start.
        raise JwksFetchError("jwks_uri resolves to a private, loopback or link-local address")
    return addresses[0].split("%", 1)[0]


def _pinned_url(uri: str, address: str) -> tuple[str, str, str]:
    """The URL with the checked address as host; plus the Host header and the SNI name."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    shown = f"[{address}]" if ":" in address else address
    netloc = f"{shown}:{parts.port}" if parts.port else shown
    host_header = parts.netloc
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), host_header, host


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    length = response.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise JwksFetchError("jwks_uri document is too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise JwksFetchError("jwks_uri document is too large")
        chunks.append(chunk)
    return b"".join(chunks)


async def _get(http: httpx.AsyncClient, uri: str, *, allow_private: bool) -> bytes:
    parts = urlsplit(uri)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = await _resolve(parts.hostname or "", port, allow_private=allow_private)
    url, host_header, sni = _pinned_url(uri, address)
    request = http.build_request(
        "GET",
        url,
        headers={"Host": host_header, "Accept": "application/jwk-set+json, application/json"},
        extensions={"sni_hostname": sni},
    )
    response = await http.send(request, stream=True, follow_redirects=False)
    try:
        if response.status_code != 200:
            # Redirects are refused, not followed: the target would escape the checks above.
            raise JwksFetchError(f"jwks_uri answered HTTP {response.status_code}")
        return await _read_limited(response, MAX_JWKS_BYTES)
    finally:
        await response.aclose()


async def fetch_jwks(
    http: httpx.AsyncClient, uri: str, *, allow_private: bool, time_limit: float
) -> PublicKeySet:
    """Fetch, bound and validate a client's JWKS (see the module docstring)."""
    import httpx

    try:
        check_jwks_uri(uri, allow_private=allow_private)
    except ValueError as exc:
        raise JwksFetchError(str(exc)) from None
    try:
        async with asyncio.timeout(time_limit):
            body = await _get(http, uri, allow_private=allow_private)
    except TimeoutError:
        raise JwksFetchError("jwks_uri fetch timed out") from None
    except httpx.HTTPError as exc:
        raise JwksFetchError(f"jwks_uri fetch failed: {type(exc).__name__}") from None
    try:
        document = json.loads(body)
        check_client_jwks(document)
        return PublicKeySet.from_jwks(document)
    except (ValueError, JoseError) as exc:
        safe = str(exc) if isinstance(exc, ClientKeysError) else "not a JSON JWKS"
        raise JwksFetchError(f"jwks_uri document rejected: {safe}") from None


@dataclass
class _Remote:
    keys: PublicKeySet | None = None
    fetched_at: float = float("-inf")
    attempted_at: float = float("-inf")


class ClientKeys:
    """The public keys of each private_key_jwt client, cached per process."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float],
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._http = http
        self._inline: dict[str, tuple[Mapping[str, object], PublicKeySet | None]] = {}
        self._remote: dict[tuple[str, str], _Remote] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.fetches = 0

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            import httpx

            # trust_env=False: an HTTP(S)_PROXY from the environment would bypass the address
            # checks; verify=True (the default) checks certificates against the URL's host.
            self._http = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def keys_for(self, client: Client, *, refresh: bool = False) -> PublicKeySet | None:
        """The client's keys; ``refresh`` asks for a refetch (an unknown ``kid``)."""
        if client.jwks is not None:
            return self._inline_keys(client.client_id, client.jwks)
        if client.jwks_uri is None:
            return None
        return await self._remote_keys(client.client_id, client.jwks_uri, refresh=refresh)

    def _inline_keys(self, client_id: str, document: Mapping[str, object]) -> PublicKeySet | None:
        cached = self._inline.get(client_id)
        if cached is not None and cached[0] is document:
            return cached[1]
        keys: PublicKeySet | None
        try:
            keys = PublicKeySet.from_jwks(document)
        except JoseError:
            keys = None
        self._inline[client_id] = (document, keys)
        return keys

    def _fresh(self, entry: _Remote, now: float, refresh: bool) -> bool:
        """True when the cached state answers without a fetch."""
        cooling = now - entry.attempted_at < self.settings.jwks_uri_refetch_cooldown
        if refresh or entry.keys is None:
            return cooling
        return now - entry.fetched_at < self.settings.jwks_uri_cache_seconds or cooling

    async def _remote_keys(self, client_id: str, uri: str, *, refresh: bool) -> PublicKeySet | None:
        key = (client_id, uri)
        entry = self._remote.setdefault(key, _Remote())
        if self._fresh(entry, self.clock(), refresh):
            return entry.keys
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            started = self.clock()
            if self._fresh(entry, started, refresh):
                return entry.keys  # fetched by a concurrent request while we waited
            entry.attempted_at = started
            await self._refetch(entry, uri, started)
        return entry.keys

    async def _refetch(self, entry: _Remote, uri: str, now: float) -> None:
        self.fetches += 1
        try:
            entry.keys = await fetch_jwks(
                self._client(),
                uri,
                allow_private=self.settings.jwks_uri_allow_private,
                time_limit=self.settings.jwks_uri_timeout,
            )
            entry.fetched_at = now
        except JwksFetchError as exc:
            stale_until = entry.fetched_at + 2 * self.settings.jwks_uri_cache_seconds
            if now >= stale_until:
                entry.keys = None
            log.warning("client jwks_uri unusable: %s", exc, extra={"jwks_uri": uri[:200]})

    def describe(self) -> dict[str, Any]:
        """Cache statistics, for tests and diagnostics."""
        return {"fetches": self.fetches, "remote": len(self._remote), "inline": len(self._inline)}
