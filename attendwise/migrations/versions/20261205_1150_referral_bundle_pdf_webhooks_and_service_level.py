"""Referrals: the frozen bundle as a PDF with its hash, the service-level record (when a referral was
concluded, how long its clock was paused), and LA webhooks with their deliveries and attempts
(tenant-owned, row-level security).

Revision ID: 20261205_1150
Revises: 20261124_1510
Create Date: 2026-12-05 11:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from attendwise.migrations import roles

revision: str = "20261205_1150"
down_revision: str | Sequence[str] | None = "20261124_1510"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLES = ("referral_webhook_endpoints", "referral_webhook_deliveries", "referral_webhook_attempts")


def upgrade() -> None:
    with op.batch_alter_table("received_referrals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bundle_pdf", sa.LargeBinary(), nullable=True))
        batch_op.add_column(
            sa.Column("bundle_pdf_sha256", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("concluded_on", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column("paused_working_days", sa.SmallInteger(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("received_referrals", schema=None) as batch_op:
        batch_op.alter_column("bundle_pdf_sha256", server_default=None)
        batch_op.alter_column("paused_working_days", server_default=None)

    op.create_table(
        "referral_webhook_endpoints",
        sa.Column("id", ID, nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by_user_id", ID, nullable=True),
        sa.Column("org_id", ID, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_referral_webhook_endpoints_created_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_referral_webhook_endpoints_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_webhook_endpoints")),
    )
    with op.batch_alter_table("referral_webhook_endpoints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_referral_webhook_endpoints_org_id"), ["org_id"], unique=False)

    op.create_table(
        "referral_webhook_deliveries",
        sa.Column("id", ID, nullable=False),
        sa.Column("endpoint_id", ID, nullable=False),
        sa.Column("event", sa.String(length=60), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("pending", "delivered", "failed", name="deliverystatus", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("attempts", sa.SmallInteger(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("org_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["referral_webhook_endpoints.id"],
            name=op.f("fk_referral_webhook_deliveries_endpoint_id_referral_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_referral_webhook_deliveries_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_webhook_deliveries")),
        sa.UniqueConstraint(
            "endpoint_id", "event_id", name=op.f("uq_referral_webhook_deliveries_endpoint_id_event_id")
        ),
    )
    with op.batch_alter_table("referral_webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_referral_webhook_deliveries_endpoint_id"), ["endpoint_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_referral_webhook_deliveries_org_id"), ["org_id"], unique=False)
        batch_op.create_index(
            "ix_referral_webhook_deliveries_due", ["status", "next_attempt_at"], unique=False
        )

    op.create_table(
        "referral_webhook_attempts",
        sa.Column("id", ID, nullable=False),
        sa.Column("delivery_id", ID, nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.SmallInteger(), nullable=True),
        sa.Column("duration_ms", ID, nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("org_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["referral_webhook_deliveries.id"],
            name=op.f("fk_referral_webhook_attempts_delivery_id_referral_webhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_referral_webhook_attempts_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_webhook_attempts")),
    )
    with op.batch_alter_table("referral_webhook_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_referral_webhook_attempts_delivery_id"), ["delivery_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_referral_webhook_attempts_org_id"), ["org_id"], unique=False)

    for table in TABLES:
        roles.enable_tenant_rls(table)


def downgrade() -> None:
    for table in TABLES:
        roles.disable_tenant_rls(table)
    for table in reversed(TABLES):
        op.drop_table(table)
    with op.batch_alter_table("received_referrals", schema=None) as batch_op:
        batch_op.drop_column("paused_working_days")
        batch_op.drop_column("concluded_on")
        batch_op.drop_column("bundle_pdf_sha256")
        batch_op.drop_column("bundle_pdf")
