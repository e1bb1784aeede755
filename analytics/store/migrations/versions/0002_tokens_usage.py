"""token prefix and label; usage counts

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 00:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prefix", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("label", sa.String(length=128), nullable=True))
    op.create_table(
        "usage_counts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "username", "action"),
    )


def downgrade() -> None:
    op.drop_table("usage_counts")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("label")
        batch_op.drop_column("prefix")
