"""Casework: cases (one open per pupil), stage history, tasks, contacts, meetings, plans, reviews,
support, events and the append-only timeline; all tenant-owned with row-level security.

Revision ID: 20261124_1327
Revises: 20261124_1325
Create Date: 2026-11-24 13:27:23.235861
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from attendwise.migrations import roles

revision: str = "20261124_1327"
down_revision: str | Sequence[str] | None = "20261124_1325"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


TENANT_TABLES = (
    "cases",
    "case_action_plans",
    "case_events",
    "case_meetings",
    "case_stage_changes",
    "case_support",
    "case_tasks",
    "case_timeline",
    "case_contacts",
    "case_plan_reviews",
)


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("pupil_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("episode", sa.SmallInteger(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("open", "closed", name="casestatus", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("stage", sa.SmallInteger(), nullable=False),
        sa.Column("stage_name", sa.String(length=200), nullable=False),
        sa.Column("stage_entered_on", sa.Date(), nullable=False),
        sa.Column("ladder_entered_on", sa.Date(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("snapshot_year", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("ladder_snapshot", sa.JSON(), nullable=False),
        sa.Column("ladder_year", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("attendance_at_entry", sa.Float(), nullable=True),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("policy_key", sa.String(length=100), nullable=False),
        sa.Column("lead_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.Column("closed_on", sa.Date(), nullable=True),
        sa.Column("version", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_user_id"], ["users.id"], name=op.f("fk_cases_lead_user_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_cases_org_id_organisations"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["pupil_id"], ["pupils.id"], name=op.f("fk_cases_pupil_id_pupils"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("pupil_id", "episode", name=op.f("uq_cases_pupil_id_episode")),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cases_org_id"), ["org_id"], unique=False)
        batch_op.create_index("ix_cases_org_status_stage", ["org_id", "status", "stage"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_pupil_id"), ["pupil_id"], unique=False)
        batch_op.create_index(
            "uq_cases_one_open_per_pupil",
            ["pupil_id"],
            unique=True,
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        )

    op.create_table(
        "case_action_plans",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("target_attendance", sa.Float(), nullable=False),
        sa.Column("target_weeks", sa.SmallInteger(), nullable=False),
        sa.Column("support_agreed", sa.JSON(), nullable=False),
        sa.Column("owners", sa.JSON(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("review_on", sa.Date(), nullable=False),
        sa.Column("is_contract", sa.Boolean(), nullable=False),
        sa.Column("review_period_weeks", sa.SmallInteger(), nullable=True),
        sa.Column(
            "status",
            sa.Enum("active", "closed", name="planstatus", native_enum=False, length=10),
            nullable=False,
        ),
        sa.Column("version", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_action_plans_case_id_cases"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_case_action_plans_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_action_plans")),
    )
    with op.batch_alter_table("case_action_plans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_action_plans_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_action_plans_org_id"), ["org_id"], unique=False)

    op.create_table(
        "case_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("pupil_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("occurred_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_events_case_id_cases"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_case_events_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["pupil_id"], ["pupils.id"], name=op.f("fk_case_events_pupil_id_pupils"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_events")),
    )
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_events_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_events_org_id"), ["org_id"], unique=False)
        batch_op.create_index("ix_case_events_org_on", ["org_id", "occurred_on"], unique=False)

    op.create_table(
        "case_meetings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("place", sa.String(length=200), nullable=False),
        sa.Column("invitees", sa.JSON(), nullable=False),
        sa.Column("agenda", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "invited",
                "attended",
                "missed",
                "rearranged",
                name="meetingstatus",
                native_enum=False,
                length=12,
            ),
            nullable=False,
        ),
        sa.Column("attendance_recorded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("who_attended", sa.Text(), nullable=False),
        sa.Column("going_well", sa.Text(), nullable=False),
        sa.Column("concerns", sa.Text(), nullable=False),
        sa.Column("wellbeing_goals", sa.Text(), nullable=False),
        sa.Column("agreed_actions", sa.Text(), nullable=False),
        sa.Column("minutes_recorded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_meetings_case_id_cases"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_case_meetings_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_meetings")),
    )
    with op.batch_alter_table("case_meetings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_meetings_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_meetings_org_id"), ["org_id"], unique=False)

    op.create_table(
        "case_stage_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("from_stage", sa.SmallInteger(), nullable=False),
        sa.Column("from_name", sa.String(length=200), nullable=False),
        sa.Column("to_stage", sa.SmallInteger(), nullable=False),
        sa.Column("to_name", sa.String(length=200), nullable=False),
        sa.Column(
            "source",
            sa.Enum("engine", "person", name="stagesource", native_enum=False, length=10),
            nullable=False,
        ),
        sa.Column("policy_key", sa.String(length=100), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("decision_key", sa.String(length=200), nullable=True),
        sa.Column("changed_on", sa.Date(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["by_user_id"],
            ["users.id"],
            name=op.f("fk_case_stage_changes_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_stage_changes_case_id_cases"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_case_stage_changes_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_stage_changes")),
        sa.UniqueConstraint("org_id", "decision_key", name=op.f("uq_case_stage_changes_org_id_decision_key")),
    )
    with op.batch_alter_table("case_stage_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_stage_changes_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_stage_changes_org_id"), ["org_id"], unique=False)

    op.create_table(
        "case_support",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("barriers", sa.JSON(), nullable=False),
        sa.Column("support", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("offered", "accepted", "declined", name="supportstatus", native_enum=False, length=10),
            nullable=False,
        ),
        sa.Column("agencies", sa.JSON(), nullable=False),
        sa.Column("early_help_offered", sa.Boolean(), nullable=False),
        sa.Column("early_help_started", sa.Boolean(), nullable=False),
        sa.Column("recorded_on", sa.Date(), nullable=False),
        sa.Column("by_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["by_user_id"], ["users.id"], name=op.f("fk_case_support_by_user_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_support_case_id_cases"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_case_support_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_support")),
    )
    with op.batch_alter_table("case_support", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_support_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_support_org_id"), ["org_id"], unique=False)

    op.create_table(
        "case_tasks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("pupil_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "phone_call",
                "letter",
                "email",
                "meeting",
                "home_visit",
                "action_plan",
                "review",
                "attendance_contract",
                "early_help",
                "notice_to_improve",
                "referral",
                "code_guidance",
                "reward",
                "safeguarding",
                name="taskkind",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("stage", sa.SmallInteger(), nullable=True),
        sa.Column("policy_key", sa.String(length=100), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("assignee_role", sa.String(length=40), nullable=True),
        sa.Column("assignee_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "status",
            sa.Enum("open", "done", "cancelled", name="taskstatus", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("completion_note", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("needs_signoff", sa.Boolean(), nullable=False),
        sa.Column("signoff_role", sa.String(length=40), nullable=True),
        sa.Column(
            "signoff_decision",
            sa.Enum("approved", "declined", name="signoffdecision", native_enum=False, length=10),
            nullable=True,
        ),
        sa.Column("signoff_reason", sa.Text(), nullable=False),
        sa.Column("signoff_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("signoff_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("proposed_move", sa.JSON(), nullable=True),
        sa.Column("version", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignee_user_id"],
            ["users.id"],
            name=op.f("fk_case_tasks_assignee_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_tasks_case_id_cases"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["completed_by_id"],
            ["users.id"],
            name=op.f("fk_case_tasks_completed_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_case_tasks_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["pupil_id"], ["pupils.id"], name=op.f("fk_case_tasks_pupil_id_pupils"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["signoff_by_id"],
            ["users.id"],
            name=op.f("fk_case_tasks_signoff_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_tasks")),
        sa.UniqueConstraint("org_id", "idempotency_key", name=op.f("uq_case_tasks_org_id_idempotency_key")),
    )
    with op.batch_alter_table("case_tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_tasks_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_tasks_org_id"), ["org_id"], unique=False)
        batch_op.create_index("ix_case_tasks_org_status_due", ["org_id", "status", "due_on"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_tasks_pupil_id"), ["pupil_id"], unique=False)

    op.create_table(
        "case_timeline",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("object_type", sa.String(length=40), nullable=True),
        sa.Column("object_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("corrects_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["by_user_id"], ["users.id"], name=op.f("fk_case_timeline_by_user_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_timeline_case_id_cases"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["corrects_id"],
            ["case_timeline.id"],
            name=op.f("fk_case_timeline_corrects_id_case_timeline"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_case_timeline_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_timeline")),
    )
    with op.batch_alter_table("case_timeline", schema=None) as batch_op:
        batch_op.create_index("ix_case_timeline_case_at", ["case_id", "occurred_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_timeline_org_id"), ["org_id"], unique=False)

    op.create_table(
        "case_contacts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "channel",
            sa.Enum(
                "phone",
                "email",
                "text",
                "home_visit",
                "letter",
                name="contactchannel",
                native_enum=False,
                length=12,
            ),
            nullable=False,
        ),
        sa.Column(
            "outcome",
            sa.Enum(
                "spoke_to",
                "no_answer",
                "message_left",
                "number_wrong",
                "sent",
                "seen",
                "not_seen",
                "concerns",
                name="contactoutcome",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("safeguarding", sa.Boolean(), nullable=False),
        sa.Column("dsl_task_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["by_user_id"], ["users.id"], name=op.f("fk_case_contacts_by_user_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_contacts_case_id_cases"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_case_contacts_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["dsl_task_id"],
            ["case_tasks.id"],
            name=op.f("fk_case_contacts_dsl_task_id_case_tasks"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_case_contacts_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_contacts")),
    )
    with op.batch_alter_table("case_contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_contacts_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_contacts_org_id"), ["org_id"], unique=False)

    op.create_table(
        "case_plan_reviews",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("plan_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reviewed_on", sa.Date(), nullable=False),
        sa.Column("measured_attendance", sa.Float(), nullable=True),
        sa.Column("targets_met", sa.Boolean(), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum("close", "continue", "escalate", name="reviewoutcome", native_enum=False, length=10),
            nullable=False,
        ),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("by_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["by_user_id"],
            ["users.id"],
            name=op.f("fk_case_plan_reviews_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_case_plan_reviews_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["case_action_plans.id"],
            name=op.f("fk_case_plan_reviews_plan_id_case_action_plans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_plan_reviews")),
    )
    with op.batch_alter_table("case_plan_reviews", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_plan_reviews_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_plan_reviews_plan_id"), ["plan_id"], unique=False)

    for table in TENANT_TABLES:
        roles.enable_tenant_rls(table)


def downgrade() -> None:
    for table in TENANT_TABLES:
        roles.disable_tenant_rls(table)
    with op.batch_alter_table("case_plan_reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_plan_reviews_plan_id"))
        batch_op.drop_index(batch_op.f("ix_case_plan_reviews_org_id"))

    op.drop_table("case_plan_reviews")
    with op.batch_alter_table("case_contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_contacts_org_id"))
        batch_op.drop_index(batch_op.f("ix_case_contacts_case_id"))

    op.drop_table("case_contacts")
    with op.batch_alter_table("case_timeline", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_timeline_org_id"))
        batch_op.drop_index("ix_case_timeline_case_at")

    op.drop_table("case_timeline")
    with op.batch_alter_table("case_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_tasks_pupil_id"))
        batch_op.drop_index("ix_case_tasks_org_status_due")
        batch_op.drop_index(batch_op.f("ix_case_tasks_org_id"))
        batch_op.drop_index(batch_op.f("ix_case_tasks_case_id"))

    op.drop_table("case_tasks")
    with op.batch_alter_table("case_support", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_support_org_id"))
        batch_op.drop_index(batch_op.f("ix_case_support_case_id"))

    op.drop_table("case_support")
    with op.batch_alter_table("case_stage_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_stage_changes_org_id"))
        batch_op.drop_index(batch_op.f("ix_case_stage_changes_case_id"))

    op.drop_table("case_stage_changes")
    with op.batch_alter_table("case_meetings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_meetings_org_id"))
        batch_op.drop_index(batch_op.f("ix_case_meetings_case_id"))

    op.drop_table("case_meetings")
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.drop_index("ix_case_events_org_on")
        batch_op.drop_index(batch_op.f("ix_case_events_org_id"))
        batch_op.drop_index(batch_op.f("ix_case_events_case_id"))

    op.drop_table("case_events")
    with op.batch_alter_table("case_action_plans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_action_plans_org_id"))
        batch_op.drop_index(batch_op.f("ix_case_action_plans_case_id"))

    op.drop_table("case_action_plans")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_cases_one_open_per_pupil",
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        )
        batch_op.drop_index(batch_op.f("ix_cases_pupil_id"))
        batch_op.drop_index("ix_cases_org_status_stage")
        batch_op.drop_index(batch_op.f("ix_cases_org_id"))

    op.drop_table("cases")
