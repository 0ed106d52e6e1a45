"""Client secrets and keys at rest.

* Client secrets are generated server-side with 256 bits from ``secrets`` in the URL-safe
  base64 alphabet (no escaping needed in Basic, forms, JSON or shells), shown once, and stored
  as ``hmac-sha256$<pepper-id>$<hex>``: HMAC-SHA-256 under a server pepper that never enters the
  database. A slow password hash adds nothing to a 256-bit secret and caps the token endpoint
  at a few requests per second (docs/security.md).
* Signing keys are stored encrypted with AES-256-GCM under the key-encryption key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import secrets
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "KeyEncryptor",
    "SecretHasher",
    "ServerSecrets",
    "build_server_secrets",
    "generate_client_secret",
    "load_or_create_dev_secrets",
    "secret_strength_warning",
]

SECRET_BYTES = 32


def generate_client_secret() -> str:
    """43 characters of [A-Za-z0-9_-]: 256 bits (RFC 6749 §10.10 asks for at least 128)."""
    return secrets.token_urlsafe(SECRET_BYTES)


def secret_strength_warning(secret: str) -> str | None:
    """A warning for an operator-chosen secret too weak for a machine credential."""
    if not secret:
        return "an empty secret is not allowed"
    counts = Counter(secret)
    entropy = -sum(c / len(secret) * math.log2(c / len(secret)) for c in counts.values())
    if len(secret) < 32 or entropy * len(secret) < 128:
        return (
            "this secret is weak (fewer than 128 bits of estimated entropy); prefer a generated "
            "one: omit --secret"
        )
    return None


class SecretHasher:
    """Keyed digests of client secrets, verifiable under the current and previous peppers."""

    def __init__(self, pepper: bytes, pepper_id: str, previous: dict[str, bytes]) -> None:
        self._pepper_id = pepper_id
        self._peppers = {**previous, pepper_id: pepper}

    def digest(self, secret: str) -> str:
        mac = hmac.new(self._peppers[self._pepper_id], secret.encode(), hashlib.sha256)
        return f"hmac-sha256${self._pepper_id}${mac.hexdigest()}"

    def digest_like(self, secret: str, stored: str) -> str | None:
        """The digest of ``secret`` in the format (and pepper) of ``stored``, if known."""
        scheme, _, rest = stored.partition("$")
        pepper_id, _, _ = rest.partition("$")
        pepper = self._peppers.get(pepper_id)
        if scheme != "hmac-sha256" or pepper is None:
            return None
        mac = hmac.new(pepper, secret.encode(), hashlib.sha256)
        return f"hmac-sha256${pepper_id}${mac.hexdigest()}"


class KeyEncryptor:
    """AES-256-GCM envelope for private keys (and client_secret_jwt secrets) at rest."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: bytes, *, context: bytes) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext, context)
        return "aesgcm$" + base64.b64encode(nonce + sealed).decode()

    def decrypt(self, token: str, *, context: bytes) -> bytes:
        scheme, _, data = token.partition("$")
        if scheme != "aesgcm":
            raise ValueError("unknown encryption scheme")
        raw = base64.b64decode(data)
        return self._aead.decrypt(raw[:12], raw[12:], context)


def _to_key(material: str) -> bytes:
    """64 hex characters are taken as the key; any other string is hashed to 32 bytes."""
    try:
        raw = bytes.fromhex(material)
        if len(raw) == 32:
            return raw
    except ValueError:
        pass
    return hashlib.sha256(material.encode()).digest()


@dataclass(frozen=True)
class ServerSecrets:
    hasher: SecretHasher
    encryptor: KeyEncryptor
    generated: bool


def load_or_create_dev_secrets(path: Path) -> dict[str, str]:
    """Read, or create with mode 0600, the development secrets file."""
    if path.exists():
        data: dict[str, str] = json.loads(path.read_text())
        return data
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"pepper": secrets.token_hex(32), "key_encryption_key": secrets.token_hex(32)}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    return data


def build_server_secrets(
    *,
    pepper: str | None,
    pepper_id: str,
    previous: dict[str, str],
    key_encryption_key: str | None,
    dev_file: Path | None,
) -> ServerSecrets:
    """Peppers and key-encryption key from settings, or from the dev file when allowed."""
    generated = False
    if pepper is None or key_encryption_key is None:
        if dev_file is None:
            raise ValueError(
                "TOKENWARD_PEPPER and TOKENWARD_KEY_ENCRYPTION_KEY must be set when the database "
                "is not SQLite (every instance needs the same values)"
            )
        dev = load_or_create_dev_secrets(dev_file)
        pepper = pepper or dev["pepper"]
        key_encryption_key = key_encryption_key or dev["key_encryption_key"]
        generated = True
    hasher = SecretHasher(pepper.encode(), pepper_id, {k: v.encode() for k, v in previous.items()})
    return ServerSecrets(hasher, KeyEncryptor(_to_key(key_encryption_key)), generated)
