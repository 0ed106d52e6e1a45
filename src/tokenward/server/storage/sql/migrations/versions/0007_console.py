"""console: operator accounts, their sessions, per-minute token usage

Revision ID: 0007
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("password_changed_at", sa.BigInteger(), nullable=False),
        sa.Column("last_login_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "operator_sessions",
        sa.Column("id_digest", sa.String(length=64), nullable=False),
        sa.Column("operator", sa.String(length=100), nullable=False),
        sa.Column("csrf_token", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("seen_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["operator"], ["operators.name"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id_digest"),
    )
    with op.batch_alter_table("operator_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_operator_sessions_operator"), ["operator"], unique=False
        )
    op.create_table(
        "usage_minutes",
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("minute", "client_id", "event"),
    )


def downgrade() -> None:
    op.drop_table("usage_minutes")
    with op.batch_alter_table("operator_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_operator_sessions_operator"))
    op.drop_table("operator_sessions")
    op.drop_table("operators")
