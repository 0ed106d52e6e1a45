"""clients.quota_per_minute/quota_per_hour; rate_counts: shared throttle and quota counts

Revision ID: 0004
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quota_per_minute", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("quota_per_hour", sa.Integer(), nullable=True))
    op.create_table(
        "rate_counts",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("window", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window"),
    )
    with op.batch_alter_table("rate_counts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rate_counts_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rate_counts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rate_counts_expires_at"))
    op.drop_table("rate_counts")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("quota_per_hour")
        batch_op.drop_column("quota_per_minute")
