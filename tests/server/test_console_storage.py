"""The console's storage on SQLite and PostgreSQL: operator accounts with their audit records,
the lockout counter, sessions that end with a disable or a password change, and the usage
statistics upsert (two workers adding to one minute), reads and purge."""

from __future__ import annotations

import pytest

from tokenward.server.storage.sql.repository import Repository
from tokenward.server.stores import (
    AuditQuery,
    AuditRecord,
    ConflictError,
    NotFoundError,
    OperatorRow,
    SessionRow,
    UsageCount,
)

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000


def audit(event: str, **data: object) -> AuditRecord:
    return AuditRecord(at=NOW, event=event, actor="test", data=data)


def operator(name: str, role: str = "admin") -> OperatorRow:
    return OperatorRow(name, "$argon2id$stub", role, True, 0, None, NOW, NOW, None)


def session(digest: str, name: str, *, seen: int = NOW, expires: int = NOW + 3600) -> SessionRow:
    return SessionRow(digest, name, "csrf-" + digest, NOW, expires, seen)


async def events(repo: Repository) -> list[str]:
    return [e["event"] for e in await repo.list_audit(AuditQuery(limit=100))][::-1]


async def test_operators_are_created_once_and_updated_with_their_audit(repo: Repository) -> None:
    await repo.create_operator(operator("alice"), audit=audit("operator.created"))
    with pytest.raises(ConflictError):
        await repo.create_operator(operator("alice"), audit=audit("operator.created"))
    await repo.update_operator(
        "alice", {"role": "read-only"}, end_sessions=False, audit=audit("operator.changed")
    )
    assert (await repo.get_operator("alice")).role == "read-only"
    with pytest.raises(NotFoundError):
        await repo.get_operator("bob")
    with pytest.raises(NotFoundError):
        await repo.update_operator("bob", {"enabled": False}, end_sessions=True, audit=audit("x"))
    assert [o.name for o in await repo.list_operators()] == ["alice"]
    # The refused update wrote no audit record: a change and its record are one transaction.
    assert await events(repo) == ["operator.created", "operator.changed"]


async def test_the_failure_counter_locks_at_the_limit_and_starts_again(repo: Repository) -> None:
    await repo.create_operator(operator("alice"), audit=audit("operator.created"))
    fail, lock = audit("operator.login_failed"), audit("operator.locked")
    outcomes = [
        await repo.login_failed("alice", limit=3, lock_until=NOW + 60, audit=fail, lock_audit=lock)
        for _ in range(4)
    ]
    assert outcomes == [False, False, True, False]
    row = await repo.get_operator("alice")
    assert row.locked_until == NOW + 60
    assert row.failed_logins == 1  # counting again after the lock
    assert (await events(repo)).count("operator.locked") == 1
    await repo.login_succeeded("alice", session("s1", "alice"), audit=audit("operator.login"))
    row = await repo.get_operator("alice")
    assert (row.failed_logins, row.locked_until, row.last_login_at) == (0, None, NOW)


async def test_disabling_or_a_new_password_ends_the_sessions(repo: Repository) -> None:
    for name in ("alice", "bob"):
        await repo.create_operator(operator(name), audit=audit("operator.created"))
    await repo.login_succeeded("alice", session("a1", "alice"), audit=audit("operator.login"))
    await repo.login_succeeded("alice", session("a2", "alice"), audit=audit("operator.login"))
    await repo.login_succeeded("bob", session("b1", "bob"), audit=audit("operator.login"))
    found = await repo.find_session("a1")
    assert found is not None
    assert (found[0].csrf_token, found[1].name) == ("csrf-a1", "alice")
    await repo.update_operator("alice", {"enabled": False}, end_sessions=True, audit=audit("x"))
    assert await repo.find_session("a1") is None
    assert await repo.find_session("a2") is None
    assert await repo.find_session("b1") is not None
    await repo.update_operator(
        "bob", {"password_hash": "$new"}, end_sessions=True, audit=audit("y")
    )
    assert await repo.find_session("b1") is None


async def test_sessions_end_touch_and_purge(repo: Repository) -> None:
    await repo.create_operator(operator("alice"), audit=audit("operator.created"))
    rows = [
        session("live", "alice"),
        session("idle", "alice", seen=NOW - 2000),
        session("over", "alice", expires=NOW),
    ]
    for row in rows:
        await repo.login_succeeded("alice", row, audit=audit("operator.login"))
    await repo.touch_session("live", seen_at=NOW + 5)
    found = await repo.find_session("live")
    assert found is not None
    assert found[0].seen_at == NOW + 5
    assert await repo.purge_sessions(NOW, idle=1800) == 2
    assert await repo.find_session("live") is not None
    await repo.end_session("live", audit=audit("operator.logout"))
    assert await repo.find_session("live") is None
    assert (await events(repo))[-1] == "operator.logout"


async def test_usage_counts_add_up_across_batches(repo: Repository) -> None:
    minute = NOW // 60 * 60
    batch = [
        UsageCount(minute, "billing", "token.issued", 3),
        UsageCount(minute, "billing", "token.failed", 1),
        UsageCount(minute + 60, "reports", "token.failed", 4),
    ]
    await repo.add_usage(batch)
    await repo.add_usage([UsageCount(minute, "billing", "token.issued", 2)])  # another worker
    await repo.add_usage([])
    series = await repo.usage_series(minute)
    assert series == [
        UsageCount(minute, "*", "token.failed", 1),
        UsageCount(minute, "*", "token.issued", 5),
        UsageCount(minute + 60, "*", "token.failed", 4),
    ]
    assert await repo.usage_series(minute, client_id="billing") == [
        UsageCount(minute, "billing", "token.failed", 1),
        UsageCount(minute, "billing", "token.issued", 5),
    ]
    assert await repo.usage_series(minute + 60, client_id="billing") == []
    assert await repo.top_clients(minute, suffix=".failed", limit=10) == [
        ("reports", 4),
        ("billing", 1),
    ]
    assert await repo.top_clients(minute, suffix=".failed", limit=1) == [("reports", 4)]
    assert await repo.purge_usage(minute + 60) == 2
    assert await repo.usage_series(0) == [UsageCount(minute + 60, "*", "token.failed", 4)]
