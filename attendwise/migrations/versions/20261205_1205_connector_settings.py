"""integration layer: each school's MIS API connector settings (encrypted token, sync time)

Revision ID: 20261205_1205
Revises: 20261205_1200
Create Date: 2026-12-05 12:05:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from attendwise.migrations import roles

revision: str = "20261205_1205"
down_revision: str | Sequence[str] | None = "20261205_1200"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "connector_settings",
        sa.Column("id", ID, nullable=False),
        sa.Column("connector", sa.String(length=40), nullable=False),
        sa.Column("mis_school_id", sa.String(length=100), nullable=False),
        sa.Column("token_encrypted", sa.Text(), nullable=True),
        sa.Column("token_saved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sync_at", sa.Time(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("last_scheduled_on", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("org_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_connector_settings_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connector_settings")),
        sa.UniqueConstraint("org_id", name=op.f("uq_connector_settings_org_id")),
    )
    op.create_index(op.f("ix_connector_settings_org_id"), "connector_settings", ["org_id"], unique=False)
    roles.enable_tenant_rls("connector_settings")


def downgrade() -> None:
    roles.disable_tenant_rls("connector_settings")
    op.drop_index(op.f("ix_connector_settings_org_id"), table_name="connector_settings")
    op.drop_table("connector_settings")
