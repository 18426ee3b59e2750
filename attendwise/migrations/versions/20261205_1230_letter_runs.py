"""Letters: bulk "this week's letters" runs, and each letter's run

Revision ID: 20261205_1230
Revises: 20261205_1215
Create Date: 2026-12-05 12:30:00

A run records the letter tasks it covers, its progress (so the page can show it while the
job renders), the print batch of its post letters and when its emails were released: the
sweeper leaves a run's emails alone until then. Tenant-owned, with row-level security.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from attendwise.migrations import roles

revision: str = "20261205_1230"
down_revision: str | Sequence[str] | None = "20261205_1215"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "letter_runs",
        sa.Column("id", ID, nullable=False),
        sa.Column("week_start", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("done", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("created_by_user_id", ID, nullable=True),
        sa.Column("post_batch_id", ID, nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("emails_released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("emails_released_by_user_id", ID, nullable=True),
        sa.Column("org_id", ID, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_letter_runs_created_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["emails_released_by_user_id"],
            ["users.id"],
            name=op.f("fk_letter_runs_emails_released_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_letter_runs_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["post_batch_id"],
            ["letter_post_batches.id"],
            name=op.f("fk_letter_runs_post_batch_id_letter_post_batches"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_letter_runs")),
    )
    with op.batch_alter_table("letter_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_letter_runs_org_id"), ["org_id"], unique=False)
    with op.batch_alter_table("letters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("run_id", ID, nullable=True))
        batch_op.create_index(batch_op.f("ix_letters_run_id"), ["run_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_letters_run_id_letter_runs"),
            "letter_runs",
            ["run_id"],
            ["id"],
            ondelete="SET NULL",
        )
    roles.enable_tenant_rls("letter_runs")


def downgrade() -> None:
    roles.disable_tenant_rls("letter_runs")
    with op.batch_alter_table("letters", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_letters_run_id_letter_runs"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_letters_run_id"))
        batch_op.drop_column("run_id")
    with op.batch_alter_table("letter_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_letter_runs_org_id"))
    op.drop_table("letter_runs")
