"""insights: what each school's stored figures were computed from, so a refresh keeps what has not changed

Revision ID: 20261205_1450
Revises: 20261205_1255
Create Date: 2026-12-05 14:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from attendwise.migrations import roles

revision: str = "20261205_1450"
down_revision: str | Sequence[str] | None = "20261205_1255"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLES = ("insight_school_sources",)


def _tenant_columns(table: str) -> list[sa.SchemaItem]:
    return [
        sa.Column("id", ID, nullable=False),
        sa.Column("org_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f(f"fk_{table}_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]


def upgrade() -> None:
    op.create_table(
        "insight_school_sources",
        *_tenant_columns("insight_school_sources"),
        sa.Column("unit", sa.String(length=40), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("through", sa.Date(), nullable=True),
        sa.Column("counts", sa.LargeBinary(), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("org_id", "unit", name=op.f("uq_insight_school_sources_org_id_unit")),
    )
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f"ix_{table}_org_id"), ["org_id"], unique=False)
        roles.enable_tenant_rls(table)


def downgrade() -> None:
    for table in reversed(TABLES):
        roles.disable_tenant_rls(table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_org_id"))
        op.drop_table(table)
