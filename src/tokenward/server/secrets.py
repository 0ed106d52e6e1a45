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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "KEK_FINGERPRINT",
    "KeyEncryptor",
    "SecretHasher",
    "ServerSecrets",
    "build_server_secrets",
    "fingerprint",
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


def fingerprint(material: bytes, label: str) -> str:
    """A value that identifies ``material`` without revealing it: HMAC-SHA-256 of a fixed label
    under the secret. The database records it so a process started with another pepper or
    key-encryption key is refused before it writes anything (docs/configuration-as-code.md)."""
    return hmac.new(material, b"tokenward fingerprint v1: " + label.encode(), "sha256").hexdigest()


#: The fingerprint name of the key-encryption key; peppers are ``pepper:<id>``.
KEK_FINGERPRINT = "key_encryption_key"


@dataclass(frozen=True)
class ServerSecrets:
    hasher: SecretHasher
    encryptor: KeyEncryptor
    #: True when the pepper or key-encryption key came from the development secrets file.
    generated: bool
    #: name -> fingerprint of every pepper (``pepper:<id>``) and of the key-encryption key.
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    #: The development secrets file used, and whether this process created it.
    dev_file: Path | None = None
    created: bool = False


def load_or_create_dev_secrets(path: Path) -> tuple[dict[str, str], bool]:
    """Read, or create with mode 0600, the development secrets file; True when created now.

    The file is written under a temporary name and linked into place, which fails if another
    process (a worker, a CLI command) created it first: then that one is read.
    """
    if path.exists():
        data: dict[str, str] = json.loads(path.read_text())
        return data, False
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"pepper": secrets.token_hex(32), "key_encryption_key": secrets.token_hex(32)}
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    try:
        os.link(temporary, path)
    except FileExistsError:
        return load_or_create_dev_secrets(path)
    finally:
        temporary.unlink()
    return data, True


def build_server_secrets(
    *,
    pepper: str | None,
    pepper_id: str,
    previous: dict[str, str],
    key_encryption_key: str | None,
    dev_file: Path | None,
) -> ServerSecrets:
    """Peppers and key-encryption key from settings, or from the dev file when allowed."""
    created = False
    used_file = None
    if pepper is None or key_encryption_key is None:
        if dev_file is None:
            missing = [
                name
                for name, value in (
                    ("TOKENWARD_PEPPER", pepper),
                    ("TOKENWARD_KEY_ENCRYPTION_KEY", key_encryption_key),
                )
                if value is None
            ]
            raise ValueError(
                f"{' and '.join(missing)} must be set (or {missing[0]}_FILE) when the database "
                "is not SQLite: every instance needs the same values"
            )
        dev, created = load_or_create_dev_secrets(dev_file)
        pepper = pepper or dev["pepper"]
        key_encryption_key = key_encryption_key or dev["key_encryption_key"]
        used_file = dev_file
    peppers = {**{k: v.encode() for k, v in previous.items()}, pepper_id: pepper.encode()}
    kek = _to_key(key_encryption_key)
    prints = {
        f"pepper:{pid}": fingerprint(value, f"pepper:{pid}") for pid, value in peppers.items()
    }
    prints[KEK_FINGERPRINT] = fingerprint(kek, KEK_FINGERPRINT)
    return ServerSecrets(
        hasher=SecretHasher(pepper.encode(), pepper_id, {k: peppers[k] for k in previous}),
        encryptor=KeyEncryptor(kek),
        generated=used_file is not None,
        fingerprints=prints,
        dev_file=used_file,
        created=created,
    )
