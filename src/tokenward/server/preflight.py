"""Checks made before a command or the server touches anything: the database is reachable and
migrated, and the pepper and key-encryption key are the ones it was set up with.

The database records a fingerprint of each pepper and of the key-encryption key on first use
(``secret_fingerprints``; HMAC-SHA-256 of a fixed label under the secret, never the value). A
process started with other values is refused with one line naming the setting, before it
writes anything: with another pepper every client secret it created would be refused, and with
another key-encryption key every signing key it created would be unreadable by the server.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag

from tokenward.server.secrets import (
    KEK_FINGERPRINT,
    KeyEncryptor,
    ServerSecrets,
    build_server_secrets,
)
from tokenward.server.settings import ConfigError, Settings
from tokenward.server.storage.sql.checks import (
    ConnectFailed,
    DatabaseProblem,
    DatabaseState,
    inspect_database,
    record_fingerprints,
)
from tokenward.server.storage.sql.migrate import upgrade

__all__ = ["Checked", "DatabaseUnreachable", "check_secrets", "preflight", "server_secrets"]

log = logging.getLogger("tokenward")


class DatabaseUnreachable(ConfigError):
    """The database could not be reached at all (``tokenward serve`` on PostgreSQL starts
    anyway and waits for it; every other command stops)."""


@dataclass(frozen=True)
class Checked:
    """A database and secrets that passed the checks."""

    state: DatabaseState
    secrets: ServerSecrets
    #: The SQLite database file was created by this check.
    created_database: bool
    migrated: bool


def preflight(settings: Settings, *, writes: bool) -> Checked:
    """Check the database and the secrets; raise :class:`ConfigError` (one line) otherwise.

    ``writes``: the command will write, so a missing SQLite database is created (the caller
    says so: ``Checked.created_database``), an older schema is upgraded (``auto_migrate``) and
    fingerprints not recorded yet are recorded. A read-only command never creates or migrates
    anything: on a missing database it says where it looked.
    """
    create = writes
    if not settings.is_sqlite:
        server_secrets(settings)  # both must be set: said before any connection is tried
    path = settings.sqlite_path
    created = path is not None and not path.exists()
    try:
        state = inspect_database(settings.database_url, create=create)
    except ConnectFailed as exc:
        raise DatabaseUnreachable(str(exc)) from None
    except DatabaseProblem as exc:
        raise ConfigError(str(exc)) from None
    if not state.exists:
        raise ConfigError(
            f"no database at {state.location} (TOKENWARD_HOME={settings.home_dir}): is "
            "TOKENWARD_HOME the server's? `tokenward serve` or `tokenward migrate` creates it"
        )
    state, migrated = _schema(settings, state, writes=writes)
    secrets = server_secrets(settings, state)
    check_secrets(settings, secrets, state, record=writes)
    return Checked(state=state, secrets=secrets, created_database=created, migrated=migrated)


def _schema(
    settings: Settings, state: DatabaseState, *, writes: bool
) -> tuple[DatabaseState, bool]:
    if state.unknown_revision:
        raise ConfigError(
            f"the database at {state.location} has schema revision {state.revision}, newer "
            f"than this tokenward's ({state.head}): upgrade tokenward"
        )
    if state.current:
        return state, False
    if not (writes and settings.auto_migrate):
        shown = state.revision or "none"
        raise ConfigError(
            f"the database at {state.location} is not migrated (schema revision {shown}, "
            f"this tokenward needs {state.head}): run `tokenward migrate`"
        )
    try:
        upgrade(settings.database_url)
        return inspect_database(settings.database_url), True
    except DatabaseProblem as exc:
        raise ConfigError(str(exc)) from None


def server_secrets(settings: Settings, state: DatabaseState | None = None) -> ServerSecrets:
    """The pepper and key-encryption key. On SQLite, unset ones come from the development
    secrets file, which is created only for a database that has recorded no secret yet: for
    one that has, a missing file means the original values are elsewhere."""
    dev_file = settings.secrets_file if settings.is_sqlite else None
    needs_file = settings.pepper is None or settings.key_encryption_key is None
    set_up = state is not None and bool(state.fingerprints or state.sealed_keys)
    if dev_file is not None and needs_file and not dev_file.exists() and set_up:
        assert state is not None
        raise ConfigError(
            f"the database at {state.location} was set up with other secrets, and the "
            f"development secrets file {dev_file} does not exist: restore it next to the "
            "database (docs/backup.md), or set TOKENWARD_PEPPER and "
            "TOKENWARD_KEY_ENCRYPTION_KEY to the original values"
        )
    try:
        return build_server_secrets(
            pepper=settings.pepper.get_secret_value() if settings.pepper else None,
            pepper_id=settings.pepper_id,
            previous={k: v.get_secret_value() for k, v in settings.previous_peppers.items()},
            key_encryption_key=(
                settings.key_encryption_key.get_secret_value()
                if settings.key_encryption_key
                else None
            ),
            dev_file=dev_file,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot use the development secrets file {dev_file}: {exc.strerror}"
        ) from None


def _setting_of(name: str, settings: Settings) -> str:
    if name == KEK_FINGERPRINT:
        return "TOKENWARD_KEY_ENCRYPTION_KEY"
    pepper_id = name.removeprefix("pepper:")
    if pepper_id == settings.pepper_id:
        return "TOKENWARD_PEPPER"
    return f"TOKENWARD_PREVIOUS_PEPPERS[{pepper_id}]"


def _mismatch(name: str, settings: Settings, secrets: ServerSecrets, location: str) -> str:
    setting = _setting_of(name, settings)
    if name == KEK_FINGERPRINT:
        what, from_file = "no signing key would decrypt", settings.key_encryption_key is None
    else:
        what, from_file = "every client secret would be refused", settings.pepper is None
    source = ""
    if from_file and secrets.dev_file is not None and setting != "TOKENWARD_PREVIOUS_PEPPERS":
        source = (
            f"; it came from the development secrets file {secrets.dev_file} (is "
            "TOKENWARD_HOME the server's?)"
        )
    return (
        f"{setting} does not match the one the database at {location} was set up with, so "
        f"{what}{source}: use the original value"
    )


def check_secrets(
    settings: Settings, secrets: ServerSecrets, state: DatabaseState, *, record: bool
) -> None:
    """Compare the fingerprints; record the ones not recorded yet when ``record``."""
    recorded = dict(state.fingerprints)
    for name, value in sorted(secrets.fingerprints.items()):
        if name in recorded and recorded[name] != value:
            raise ConfigError(_mismatch(name, settings, secrets, state.location))
    if KEK_FINGERPRINT not in recorded and state.sealed_keys:
        _decrypts_a_key(settings, secrets.encryptor, state)
    missing = {k: v for k, v in secrets.fingerprints.items() if k not in recorded}
    if not (record and missing):
        return
    try:
        now_recorded = record_fingerprints(settings.database_url, missing, now=int(time.time()))
    except DatabaseProblem as exc:
        raise ConfigError(str(exc)) from None
    for name in missing:
        if now_recorded.get(name) != missing[name]:
            raise ConfigError(_mismatch(name, settings, secrets, state.location))


def _decrypts_a_key(settings: Settings, encryptor: KeyEncryptor, state: DatabaseState) -> None:
    """A database from before fingerprints: the key-encryption key must open one of its keys."""
    for kid, sealed in state.sealed_keys.items():
        try:
            encryptor.decrypt(sealed, context=kid.encode())
            return
        except (InvalidTag, ValueError):
            continue
    raise ConfigError(
        f"TOKENWARD_KEY_ENCRYPTION_KEY decrypts none of the signing keys in the database at "
        f"{state.location}: use the original value"
    )
