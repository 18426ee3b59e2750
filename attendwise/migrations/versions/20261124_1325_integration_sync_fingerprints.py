"""integration layer: per-pupil fingerprints of what each feed last delivered

Revision ID: 20261124_1325
Revises: 20261124_1319
Create Date: 2026-11-24 13:25:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from attendwise.migrations import roles

revision: str = "20261124_1325"
down_revision: str | Sequence[str] | None = "20261124_1319"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sync_fingerprints",
        sa.Column("id", ID, nullable=False),
        sa.Column("feed", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("org_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_sync_fingerprints_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_fingerprints")),
        sa.UniqueConstraint("org_id", "feed", "key", name=op.f("uq_sync_fingerprints_org_id_feed_key")),
    )
    op.create_index(op.f("ix_sync_fingerprints_org_id"), "sync_fingerprints", ["org_id"], unique=False)
    roles.enable_tenant_rls("sync_fingerprints")


def downgrade() -> None:
    roles.disable_tenant_rls("sync_fingerprints")
    op.drop_index(op.f("ix_sync_fingerprints_org_id"), table_name="sync_fingerprints")
    op.drop_table("sync_fingerprints")
