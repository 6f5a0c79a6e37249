"""joint-check epoch tables: a flow run's epoch state kept in the database

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03

The tables `flows.epoch_store` keeps a joint-check epoch in: the duplicate
check's tag histories, the claimants' aggregation tags and the claims the
risk score reads, per insurer, all deleted with their epoch. They start
empty, so nothing is carried over from a database at 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _epoch_columns(*columns: sa.Column[object]) -> list[sa.SchemaItem]:
    """The epoch key every child table starts with, then `columns`."""
    return [
        sa.Column("epoch_id", sa.Integer(), nullable=False),
        sa.Column("party", sa.String(), nullable=False),
        *columns,
        sa.ForeignKeyConstraint(["epoch_id"], ["check_epoch.id"], ondelete="CASCADE"),
    ]


def upgrade() -> None:
    op.create_table(
        "check_epoch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "epoch_claim",
        *_epoch_columns(
            sa.Column("claim_id", sa.String(), nullable=False),
            sa.Column("claimant", sa.LargeBinary(), nullable=False),
            sa.Column("service_day", sa.Integer(), nullable=False),
            sa.Column("amount", sa.String(), nullable=False),
            sa.Column("hospital", sa.String(), nullable=False),
            sa.Column("flagged", sa.Boolean(), nullable=False),
        ),
        sa.PrimaryKeyConstraint("epoch_id", "claim_id"),
    )
    op.create_index(
        "ix_epoch_claim_claimant", "epoch_claim", ["epoch_id", "party", "claimant"]
    )
    op.create_table(
        "epoch_claimant",
        *_epoch_columns(
            sa.Column("claimant", sa.LargeBinary(), nullable=False),
            sa.Column("tag", sa.LargeBinary(), nullable=False),
        ),
        sa.PrimaryKeyConstraint("epoch_id", "party", "claimant"),
    )
    op.create_index(
        "ix_epoch_claimant_tag", "epoch_claimant", ["epoch_id", "party", "tag"]
    )
    op.create_table(
        "epoch_tag",
        *_epoch_columns(sa.Column("tag", sa.LargeBinary(), nullable=False)),
        sa.PrimaryKeyConstraint("epoch_id", "party", "tag"),
    )


def downgrade() -> None:
    op.drop_table("epoch_tag")
    op.drop_index("ix_epoch_claimant_tag", table_name="epoch_claimant")
    op.drop_table("epoch_claimant")
    op.drop_index("ix_epoch_claim_claimant", table_name="epoch_claim")
    op.drop_table("epoch_claim")
    op.drop_table("check_epoch")
