"""insights: each school's precomputed figures, trend weeks and casework counts; national figures

Revision ID: 20261205_1215
Revises: 20261205_1205
Create Date: 2026-12-05 12:15:00
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from attendwise.insights.national import SEED
from attendwise.migrations import roles

revision: str = "20261205_1215"
down_revision: str | Sequence[str] | None = "20261205_1205"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TENANT_TABLES = ("insight_school_figures", "insight_school_weeks", "insight_school_casework")


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
        "insight_school_figures",
        *_tenant_columns("insight_school_figures"),
        sa.Column("period", sa.String(length=20), nullable=False),
        sa.Column("breakdown", sa.String(length=10), nullable=False),
        sa.Column("group", sa.String(length=20), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("pupils", sa.Integer(), nullable=False),
        sa.Column("possible", sa.Integer(), nullable=False),
        sa.Column("attended", sa.Integer(), nullable=False),
        sa.Column("authorised", sa.Integer(), nullable=False),
        sa.Column("unauthorised", sa.Integer(), nullable=False),
        sa.Column("persistent", sa.Integer(), nullable=False),
        sa.Column("severe", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "org_id",
            "period",
            "breakdown",
            "group",
            name=op.f("uq_insight_school_figures_org_id_period_breakdown_group"),
        ),
    )
    op.create_table(
        "insight_school_weeks",
        *_tenant_columns("insight_school_weeks"),
        sa.Column("academic_year", sa.Integer(), nullable=False),
        sa.Column("week_start", sa.Date(), nullable=False),
        sa.Column("pupils", sa.Integer(), nullable=False),
        sa.Column("possible", sa.Integer(), nullable=False),
        sa.Column("attended", sa.Integer(), nullable=False),
        sa.Column("authorised", sa.Integer(), nullable=False),
        sa.Column("unauthorised", sa.Integer(), nullable=False),
        sa.UniqueConstraint("org_id", "week_start", name=op.f("uq_insight_school_weeks_org_id_week_start")),
    )
    op.create_table(
        "insight_school_casework",
        *_tenant_columns("insight_school_casework"),
        sa.Column("measure", sa.String(length=30), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("pupils", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "org_id", "measure", "key", name=op.f("uq_insight_school_casework_org_id_measure_key")
        ),
    )
    for table in TENANT_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f"ix_{table}_org_id"), ["org_id"], unique=False)
        roles.enable_tenant_rls(table)

    national = op.create_table(
        "insight_national_figures",
        sa.Column("id", ID, nullable=False),
        sa.Column("academic_year", sa.Integer(), nullable=False),
        sa.Column("period_kind", sa.String(length=10), nullable=False),
        sa.Column("measure", sa.String(length=20), nullable=False),
        sa.Column("phase", sa.String(length=10), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by_user_id", ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["updated_by_user_id"],
            ["users.id"],
            name=op.f("fk_insight_national_figures_updated_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_national_figures")),
        sa.UniqueConstraint(
            "academic_year",
            "period_kind",
            "measure",
            "phase",
            name="uq_insight_national_figures_key",
        ),
    )
    op.create_index("ix_insight_national_figures_year", "insight_national_figures", ["academic_year"])
    now = dt.datetime.now(dt.UTC)
    op.bulk_insert(
        national,
        [
            {
                "academic_year": year,
                "period_kind": kind,
                "measure": measure,
                "phase": phase,
                "value": value,
                "source": source,
                "updated_at": now,
            }
            for year, kind, measure, phase, value, source in SEED
        ],
    )


def downgrade() -> None:
    op.drop_index("ix_insight_national_figures_year", table_name="insight_national_figures")
    op.drop_table("insight_national_figures")
    for table in reversed(TENANT_TABLES):
        roles.disable_tenant_rls(table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_org_id"))
        op.drop_table(table)
