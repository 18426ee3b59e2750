"""casework: each school's scheduled policy evaluation, once per school-local day

Revision ID: 20261205_1255
Revises: 20261205_1230
Create Date: 2026-12-05 12:55:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from attendwise.migrations import roles

revision: str = "20261205_1255"
down_revision: str | Sequence[str] | None = "20261205_1230"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "case_scheduled_evaluations",
        sa.Column("id", ID, nullable=False),
        sa.Column("school_day", sa.Date(), nullable=False),
        sa.Column("after", sa.String(length=20), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("evaluated", ID, nullable=True),
        sa.Column("transitions", ID, nullable=True),
        sa.Column("tasks_created", ID, nullable=True),
        sa.Column("org_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_case_scheduled_evaluations_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_scheduled_evaluations")),
        sa.UniqueConstraint(
            "org_id", "school_day", name=op.f("uq_case_scheduled_evaluations_org_id_school_day")
        ),
    )
    op.create_index(
        op.f("ix_case_scheduled_evaluations_org_id"), "case_scheduled_evaluations", ["org_id"], unique=False
    )
    roles.enable_tenant_rls("case_scheduled_evaluations")


def downgrade() -> None:
    roles.disable_tenant_rls("case_scheduled_evaluations")
    op.drop_index(op.f("ix_case_scheduled_evaluations_org_id"), table_name="case_scheduled_evaluations")
    op.drop_table("case_scheduled_evaluations")
