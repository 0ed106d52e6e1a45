"""Signing keys over time: next -> active -> retired -> gone (RFC 7517, OIDC Core §10.1.1).

:func:`rotate` is the one way a key is created: by the automatic rotation and upkeep
(:func:`ensure_keys`, run by the runtime), by ``tokenward keys rotate`` and by the admin API.
:class:`KeyRing` is what one process holds: the decrypted keys, a signer per algorithm and the
published JWKS document.

A key's state is computed from its timestamps and the clock, never stored, so every worker and
instance that reads the same rows agrees on which key signs:

* ``next``: created, published in the JWKS, not yet signing (``now < activates_at``). The
  publication delay lets every verifier's cached JWKS learn the key before a token uses it.
* ``active``: the newest key of its algorithm with ``activates_at <= now``. It signs.
* ``retired``: superseded by a newer active key; still published until every token it
  signed has expired (successor's activation + ``max_token_ttl`` + skew), then deleted.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidTag

from tokenward.jose.keys import KeyMaterial, generate_private_pem, load_key_material
from tokenward.jose.signing import JwsSigner
from tokenward.protocol.access_token import JWT_TYP
from tokenward.server.secrets import KeyEncryptor
from tokenward.server.stores import KeyRow, KeyStore

__all__ = [
    "ACTIVATION_MARGIN",
    "KeyRing",
    "KeyState",
    "ensure_keys",
    "key_states",
    "new_key_row",
    "rotate",
    "safe_activation_delay",
    "unreadable_cause",
]

SKEW = 60
#: Seconds added to the activation bound: a worker's reload itself, and small clock
#: differences between instances (each computes key states from its own clock).
ACTIVATION_MARGIN = 5
log = logging.getLogger("tokenward.keys")


@dataclass(frozen=True, slots=True)
class KeyState:
    kid: str
    alg: str
    state: Literal["next", "active", "retired"]
    activates_at: int
    retires_at: int | None
    removable_at: int | None


def key_states(rows: Sequence[KeyRow], *, now: int, max_token_ttl: int) -> list[KeyState]:
    """The state of each key at ``now``."""
    out: list[KeyState] = []
    by_alg: dict[str, list[KeyRow]] = {}
    for row in rows:
        by_alg.setdefault(row.alg, []).append(row)
    for alg_rows in by_alg.values():
        alg_rows.sort(key=lambda r: (r.activates_at, r.generation))
        active = [r for r in alg_rows if r.activates_at <= now]
        current = active[-1] if active else None
        for index, row in enumerate(alg_rows):
            successor = next((r for r in alg_rows[index + 1 :] if r.activates_at <= now), None)
            if row.activates_at > now:
                out.append(KeyState(row.kid, row.alg, "next", row.activates_at, None, None))
            elif row is current:
                out.append(KeyState(row.kid, row.alg, "active", row.activates_at, None, None))
            else:
                assert successor is not None
                retires = successor.activates_at
                removable = retires + max_token_ttl + SKEW
                out.append(
                    KeyState(row.kid, row.alg, "retired", row.activates_at, retires, removable)
                )
    return out


def safe_activation_delay(*, jwks_max_age: int, registry_refresh: float) -> int:
    """The least delay between publishing a key and letting it sign, so that no verifier can
    meet a token signed by a key it has not seen: every instance publishes the new key within
    one registry poll (``registry_refresh``), and a verifier that fetched the JWKS just before
    keeps that copy for ``jwks_max_age`` (docs/consistency.md)."""
    return jwks_max_age + math.ceil(registry_refresh) + ACTIVATION_MARGIN


def new_key_row(
    alg: str, *, generation: int, now: int, activates_at: int, encryptor: KeyEncryptor
) -> KeyRow:
    pem = generate_private_pem(alg)
    material = load_key_material(pem, alg)
    sealed = encryptor.encrypt(pem, context=material.kid.encode())
    return KeyRow(material.kid, alg, generation, sealed, now, activates_at)


async def rotate(
    store: KeyStore, encryptor: KeyEncryptor, *, alg: str, now: int, activates_at: int
) -> KeyRow | None:
    """Create the next key of ``alg``: published now, signing from ``activates_at``. Returns
    None when another process created that generation first (the caller may retry)."""
    rows = [r for r in await store.list_keys() if r.alg == alg]
    generation = max((r.generation for r in rows), default=0) + 1
    row = new_key_row(
        alg, generation=generation, now=now, activates_at=activates_at, encryptor=encryptor
    )
    if not await store.insert_key(row):
        return None
    log.info("signing key created", extra={"kid": row.kid, "alg": alg})
    return row


async def ensure_keys(
    store: KeyStore,
    encryptor: KeyEncryptor,
    *,
    algorithms: Iterable[str],
    now: int,
    max_token_ttl: int,
    rotation_period: int,
    publication_delay: int,
) -> None:
    """Key upkeep: every algorithm in use has a key (signing at once when it has none), a key
    older than ``rotation_period`` gets a successor, and keys past their publication window
    are deleted."""
    rows = await store.list_keys()
    states = key_states(rows, now=now, max_token_ttl=max_token_ttl)
    await store.delete_keys(
        s.kid for s in states if s.removable_at is not None and s.removable_at <= now
    )
    for alg in sorted(set(algorithms)):
        mine = [r for r in rows if r.alg == alg]
        if not mine:
            await rotate(store, encryptor, alg=alg, now=now, activates_at=now)
            continue
        newest = max(mine, key=lambda r: r.activates_at)
        if rotation_period and newest.activates_at <= now - rotation_period:
            await rotate(store, encryptor, alg=alg, now=now, activates_at=now + publication_delay)


def unreadable_cause(exc: Exception) -> str:
    """Why a stored key cannot be used, in words (never key material)."""
    if isinstance(exc, InvalidTag):
        return (
            "it does not decrypt with this TOKENWARD_KEY_ENCRYPTION_KEY (another key encrypted "
            "it, or the row was altered)"
        )
    return f"it cannot be read ({type(exc).__name__}: {exc})"


class KeyRing:
    """The keys one process holds: signers per algorithm and the published JWKS."""

    def __init__(self, encryptor: KeyEncryptor, *, max_token_ttl: int) -> None:
        self._encryptor = encryptor
        self._max_ttl = max_token_ttl
        self._materials: dict[str, KeyMaterial] = {}
        self._rows: list[KeyRow] = []
        self._signers: dict[str, JwsSigner] = {}
        self._next_change: int = 0
        self.jwks_json: bytes = b'{"keys":[]}'
        #: kid -> why the key could not be used (it is neither published nor signing).
        self.unreadable: dict[str, str] = {}

    def load(self, rows: Sequence[KeyRow], *, now: int) -> None:
        """Decrypt new rows (once each) and recompute signers and the JWKS document.

        A key that cannot be decrypted or read is left out (reported once, by ``kid`` and
        cause, and listed in :attr:`unreadable`): the keys that can be read are still
        published and sign."""
        materials = {}
        unreadable = {}
        for row in rows:
            known = self._materials.get(row.kid)
            if known is None:
                try:
                    pem = self._encryptor.decrypt(row.private_key, context=row.kid.encode())
                    known = load_key_material(pem, row.alg)
                except Exception as exc:  # any failure: one bad row never stops the others
                    unreadable[row.kid] = unreadable_cause(exc)
                    self._report(row, unreadable[row.kid])
                    continue
            materials[row.kid] = known
        self._materials = materials
        self.unreadable = unreadable
        self._rows = [row for row in rows if row.kid in materials]
        self._recompute(now)

    def _report(self, row: KeyRow, cause: str) -> None:
        if row.kid in self.unreadable:
            return
        log.error(
            "signing key %s (%s) is not used: %s; restore the key-encryption key it was "
            "created with, or remove it with `tokenward keys delete --force %s`",
            row.kid,
            row.alg,
            cause,
            row.kid,
            extra={"kid": row.kid, "alg": row.alg},
        )

    def _recompute(self, now: int) -> None:
        states = key_states(self._rows, now=now, max_token_ttl=self._max_ttl)
        self._signers = {
            s.alg: JwsSigner(self._materials[s.kid], typ=JWT_TYP)
            for s in states
            if s.state == "active"
        }
        published = [self._materials[s.kid].public_jwk for s in states]
        self.jwks_json = json.dumps({"keys": published}, separators=(",", ":")).encode()
        upcoming = [s.activates_at for s in states if s.state == "next"]
        self._next_change = min(upcoming) if upcoming else 2**62

    def signer(self, alg: str, now: int) -> JwsSigner | None:
        if now >= self._next_change:
            self._recompute(now)
        return self._signers.get(alg)

    def states(self, now: int) -> list[KeyState]:
        return key_states(self._rows, now=now, max_token_ttl=self._max_ttl)

    def verification_keys(self) -> dict[str, KeyMaterial]:
        """Every published key by kid (for introspection of our own JWTs)."""
        return dict(self._materials)
