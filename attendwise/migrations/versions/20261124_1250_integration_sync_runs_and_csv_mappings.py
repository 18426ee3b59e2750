"""integration layer: sync runs (the per-school lock), their rejections, saved CSV column mappings

Revision ID: 20261124_1250
Revises: 20261124_1244
Create Date: 2026-11-24 12:49:12.582265
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from attendwise.migrations import roles

revision: str = "20261124_1250"
down_revision: str | Sequence[str] | None = "20261124_1244"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = ("sync_runs", "sync_rejections", "csv_mappings")

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
RUNNING = sa.text("status = 'running'")


def upgrade() -> None:
    op.create_table(
        "sync_runs",
        sa.Column("id", ID, nullable=False),
        sa.Column("connector", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column(
            "status",
            sa.Enum("running", "succeeded", "failed", name="runstatus", native_enum=False, length=12),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created", ID, nullable=False),
        sa.Column("updated", ID, nullable=False),
        sa.Column("unchanged", ID, nullable=False),
        sa.Column("deleted", ID, nullable=False),
        sa.Column("rejected", ID, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("started_by_user_id", ID, nullable=True),
        sa.Column("org_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_sync_runs_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["started_by_user_id"],
            ["users.id"],
            name=op.f("fk_sync_runs_started_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    op.create_index(op.f("ix_sync_runs_org_id"), "sync_runs", ["org_id"], unique=False)
    op.create_index("ix_sync_runs_org_started", "sync_runs", ["org_id", "started_at"], unique=False)
    op.create_index(
        "uq_sync_runs_one_running",
        "sync_runs",
        ["org_id"],
        unique=True,
        sqlite_where=RUNNING,
        postgresql_where=RUNNING,
    )

    op.create_table(
        "sync_rejections",
        sa.Column("id", ID, nullable=False),
        sa.Column("run_id", ID, nullable=False),
        sa.Column("record", sa.String(length=200), nullable=False),
        sa.Column("location", sa.String(length=500), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("org_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_sync_rejections_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["sync_runs.id"], name=op.f("fk_sync_rejections_run_id_sync_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_rejections")),
    )
    op.create_index(op.f("ix_sync_rejections_org_id"), "sync_rejections", ["org_id"], unique=False)
    op.create_index(op.f("ix_sync_rejections_run_id"), "sync_rejections", ["run_id"], unique=False)

    op.create_table(
        "csv_mappings",
        sa.Column("id", ID, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("org_id", ID, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_csv_mappings_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_csv_mappings")),
        sa.UniqueConstraint("org_id", "kind", name=op.f("uq_csv_mappings_org_id_kind")),
    )
    op.create_index(op.f("ix_csv_mappings_org_id"), "csv_mappings", ["org_id"], unique=False)

    for table in TENANT_TABLES:
        roles.enable_tenant_rls(table)


def downgrade() -> None:
    for table in TENANT_TABLES:
        roles.disable_tenant_rls(table)
    op.drop_index(op.f("ix_csv_mappings_org_id"), table_name="csv_mappings")
    op.drop_table("csv_mappings")
    op.drop_index(op.f("ix_sync_rejections_run_id"), table_name="sync_rejections")
    op.drop_index(op.f("ix_sync_rejections_org_id"), table_name="sync_rejections")
    op.drop_table("sync_rejections")
    op.drop_index("uq_sync_runs_one_running", table_name="sync_runs")
    op.drop_index("ix_sync_runs_org_started", table_name="sync_runs")
    op.drop_index(op.f("ix_sync_runs_org_id"), table_name="sync_runs")
    op.drop_table("sync_runs")
