"""Referrals: LA profiles and kinds, school referrals, the LA's frozen copies and bundle items, the
message thread, decisions, the penalty-notice ledger and the notification outbox; all tenant-owned
with row-level security.

Revision ID: 20261124_1408
Revises: 20261124_1358
Create Date: 2026-11-24 14:08:50.201988
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from attendwise.migrations import roles

revision: str = "20261124_1408"
down_revision: str | Sequence[str] | None = "20261124_1358"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "la_referral_profiles",
    "referral_kinds",
    "received_referrals",
    "referral_bundle_items",
    "referral_outbox",
    "penalty_notices",
    "referral_decisions",
    "referrals",
    "referral_messages",
)


def upgrade() -> None:
    op.create_table(
        "la_referral_profiles",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "nti_issuer",
            sa.Enum("la", "school", "either", name="issuer", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column(
            "pn_issuer",
            sa.Enum("la", "school", "either", name="issuer", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("improvement_period_school_days", sa.SmallInteger(), nullable=False),
        sa.Column("team_email", sa.String(length=254), nullable=False),
        sa.Column("daily_digest", sa.Boolean(), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "improvement_period_school_days BETWEEN 15 AND 30",
            name=op.f("ck_la_referral_profiles_improvement_period_15_to_30"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_la_referral_profiles_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_la_referral_profiles")),
        sa.UniqueConstraint("org_id", name=op.f("uq_la_referral_profiles_org_id")),
    )
    with op.batch_alter_table("la_referral_profiles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_la_referral_profiles_org_id"), ["org_id"], unique=False)

    op.create_table(
        "received_referrals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source_org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source_referral_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("school_name", sa.String(length=200), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "notice_to_improve",
                "penalty_notice",
                "court_warning",
                "review_conference",
                "ess_referral",
                "early_help",
                "ten_days_unauthorised",
                "fifteen_days_illness",
                "whereabouts_unknown",
                name="kindkey",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("kind_label", sa.String(length=200), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "submitted",
                "acknowledged",
                "more_information_requested",
                "accepted",
                "decided",
                "closed",
                "declined",
                name="status",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("pupil_name", sa.String(length=200), nullable=False),
        sa.Column("pupil_upn", sa.String(length=13), nullable=False),
        sa.Column("pupil_dob", sa.Date(), nullable=False),
        sa.Column("child_key", sa.String(length=64), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_on", sa.Date(), nullable=False),
        sa.Column("sla_working_days", sa.SmallInteger(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("paused_on", sa.Date(), nullable=True),
        sa.Column("assigned_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("declined_reason", sa.Text(), nullable=False),
        sa.Column("bundle", sa.JSON(), nullable=False),
        sa.Column("bundle_html", sa.Text(), nullable=False),
        sa.Column("bundle_hash", sa.String(length=64), nullable=False),
        sa.Column("version", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assigned_user_id"],
            ["users.id"],
            name=op.f("fk_received_referrals_assigned_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_received_referrals_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["source_org_id"],
            ["organisations.id"],
            name=op.f("fk_received_referrals_source_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_received_referrals")),
        sa.UniqueConstraint(
            "source_org_id",
            "source_referral_id",
            name=op.f("uq_received_referrals_source_org_id_source_referral_id"),
        ),
    )
    with op.batch_alter_table("received_referrals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_received_referrals_assigned_user_id"), ["assigned_user_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_received_referrals_child_key"), ["child_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_received_referrals_org_id"), ["org_id"], unique=False)
        batch_op.create_index(
            "ix_received_referrals_org_status_due", ["org_id", "status", "due_on"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_received_referrals_source_org_id"), ["source_org_id"], unique=False
        )

    op.create_table(
        "referral_kinds",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "key",
            sa.Enum(
                "notice_to_improve",
                "penalty_notice",
                "court_warning",
                "review_conference",
                "ess_referral",
                "early_help",
                "ten_days_unauthorised",
                "fifteen_days_illness",
                "whereabouts_unknown",
                name="kindkey",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("statutory", sa.Boolean(), nullable=False),
        sa.Column("checklist", sa.JSON(), nullable=False),
        sa.Column("signoff_role", sa.String(length=60), nullable=False),
        sa.Column("sla_working_days", sa.SmallInteger(), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_referral_kinds_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_kinds")),
        sa.UniqueConstraint("org_id", "key", name=op.f("uq_referral_kinds_org_id_key")),
    )
    with op.batch_alter_table("referral_kinds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_referral_kinds_org_id"), ["org_id"], unique=False)

    op.create_table(
        "referral_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("to_addr", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("pending", "sent", name="outboxstatus", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("attempts", sa.SmallInteger(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_referral_outbox_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_referral_outbox_idempotency_key")),
    )
    with op.batch_alter_table("referral_outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_referral_outbox_org_id"), ["org_id"], unique=False)
        batch_op.create_index("ix_referral_outbox_status", ["status", "id"], unique=False)

    op.create_table(
        "penalty_notices",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("received_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("school_org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("parent_key", sa.String(length=64), nullable=False),
        sa.Column("child_key", sa.String(length=64), nullable=False),
        sa.Column("parent_name", sa.String(length=200), nullable=False),
        sa.Column("child_name", sa.String(length=200), nullable=False),
        sa.Column("sequence", sa.SmallInteger(), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("amount", sa.SmallInteger(), nullable=False),
        sa.Column("early_amount", sa.SmallInteger(), nullable=True),
        sa.Column("sessions", sa.JSON(), nullable=False),
        sa.Column("offence_on", sa.Date(), nullable=False),
        sa.Column("prosecution_deadline", sa.Date(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "issued",
                "paid_early",
                "paid",
                "unpaid",
                "prosecution_considered",
                "withdrawn",
                name="noticestatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("paid_on", sa.Date(), nullable=True),
        sa.Column("paid_amount", sa.SmallInteger(), nullable=True),
        sa.Column("withdrawn_reason", sa.Text(), nullable=False),
        sa.Column("issued_by_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount >= 1", name=op.f("ck_penalty_notices_amount_positive")),
        sa.ForeignKeyConstraint(
            ["issued_by_user_id"],
            ["users.id"],
            name=op.f("fk_penalty_notices_issued_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_penalty_notices_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["received_id"],
            ["received_referrals.id"],
            name=op.f("fk_penalty_notices_received_id_received_referrals"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["school_org_id"],
            ["organisations.id"],
            name=op.f("fk_penalty_notices_school_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_penalty_notices")),
    )
    with op.batch_alter_table("penalty_notices", schema=None) as batch_op:
        batch_op.create_index(
            "ix_penalty_notices_ledger", ["org_id", "parent_key", "child_key", "issued_on"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_penalty_notices_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_penalty_notices_received_id"), ["received_id"], unique=False)

    op.create_table(
        "referral_bundle_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("received_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("section", sa.String(length=60), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("dated", sa.Date(), nullable=True),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_referral_bundle_items_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["received_id"],
            ["received_referrals.id"],
            name=op.f("fk_referral_bundle_items_received_id_received_referrals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_bundle_items")),
        sa.UniqueConstraint(
            "received_id", "position", name=op.f("uq_referral_bundle_items_received_id_position")
        ),
    )
    with op.batch_alter_table("referral_bundle_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_referral_bundle_items_org_id"), ["org_id"], unique=False)

    op.create_table(
        "referral_decisions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("received_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "nti_issued",
                "pn_issued",
                "court_warning",
                "review_conference",
                "eso_considered",
                "prosecution_considered",
                "returned_to_school",
                name="decisionkind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("decided_on", sa.Date(), nullable=False),
        sa.Column("decided_by_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("improvement_ends_on", sa.Date(), nullable=True),
        sa.Column("conference_on", sa.Date(), nullable=True),
        sa.Column("attendees", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("penalty_notice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["decided_by_user_id"],
            ["users.id"],
            name=op.f("fk_referral_decisions_decided_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_referral_decisions_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["penalty_notice_id"],
            ["penalty_notices.id"],
            name=op.f("fk_referral_decisions_penalty_notice_id_penalty_notices"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["received_id"],
            ["received_referrals.id"],
            name=op.f("fk_referral_decisions_received_id_received_referrals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_decisions")),
    )
    with op.batch_alter_table("referral_decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_referral_decisions_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_referral_decisions_received_id"), ["received_id"], unique=False)

    op.create_table(
        "referrals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("la_org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("pupil_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "kind",
            sa.Enum(
                "notice_to_improve",
                "penalty_notice",
                "court_warning",
                "review_conference",
                "ess_referral",
                "early_help",
                "ten_days_unauthorised",
                "fifteen_days_illness",
                "whereabouts_unknown",
                name="kindkey",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("kind_label", sa.String(length=200), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "submitted",
                "acknowledged",
                "more_information_requested",
                "accepted",
                "decided",
                "closed",
                "declined",
                name="status",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("supplied", sa.JSON(), nullable=False),
        sa.Column("created_by_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "signed_off_by_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("signed_off_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("bundle_hash", sa.String(length=64), nullable=False),
        sa.Column("la_status_note", sa.Text(), nullable=False),
        sa.Column("version", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_referrals_case_id_cases"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_referrals_created_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["la_org_id"],
            ["organisations.id"],
            name=op.f("fk_referrals_la_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_referrals_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["pupil_id"], ["pupils.id"], name=op.f("fk_referrals_pupil_id_pupils"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["received_id"],
            ["received_referrals.id"],
            name=op.f("fk_referrals_received_id_received_referrals"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["signed_off_by_user_id"],
            ["users.id"],
            name=op.f("fk_referrals_signed_off_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referrals")),
    )
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_referrals_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_referrals_la_org_id"), ["la_org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_referrals_org_id"), ["org_id"], unique=False)
        batch_op.create_index("ix_referrals_org_status", ["org_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_referrals_pupil_id"), ["pupil_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_referrals_received_id"), ["received_id"], unique=False)

    op.create_table(
        "referral_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("thread_key", sa.String(length=64), nullable=False),
        sa.Column("referral_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("received_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("author_org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("author_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("author_name", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("requests_information", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_org_id"],
            ["organisations.id"],
            name=op.f("fk_referral_messages_author_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["author_user_id"],
            ["users.id"],
            name=op.f("fk_referral_messages_author_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_referral_messages_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["received_id"],
            ["received_referrals.id"],
            name=op.f("fk_referral_messages_received_id_received_referrals"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
            name=op.f("fk_referral_messages_referral_id_referrals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_messages")),
        sa.UniqueConstraint("org_id", "thread_key", name=op.f("uq_referral_messages_org_id_thread_key")),
    )
    with op.batch_alter_table("referral_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_referral_messages_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_referral_messages_received_id"), ["received_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_referral_messages_referral_id"), ["referral_id"], unique=False)

    for table in TABLES:
        roles.enable_tenant_rls(table)


def downgrade() -> None:
    for table in TABLES:
        roles.disable_tenant_rls(table)
    with op.batch_alter_table("referral_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referral_messages_referral_id"))
        batch_op.drop_index(batch_op.f("ix_referral_messages_received_id"))
        batch_op.drop_index(batch_op.f("ix_referral_messages_org_id"))

    op.drop_table("referral_messages")
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referrals_received_id"))
        batch_op.drop_index(batch_op.f("ix_referrals_pupil_id"))
        batch_op.drop_index("ix_referrals_org_status")
        batch_op.drop_index(batch_op.f("ix_referrals_org_id"))
        batch_op.drop_index(batch_op.f("ix_referrals_la_org_id"))
        batch_op.drop_index(batch_op.f("ix_referrals_case_id"))

    op.drop_table("referrals")
    with op.batch_alter_table("referral_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referral_decisions_received_id"))
        batch_op.drop_index(batch_op.f("ix_referral_decisions_org_id"))

    op.drop_table("referral_decisions")
    with op.batch_alter_table("referral_bundle_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referral_bundle_items_org_id"))

    op.drop_table("referral_bundle_items")
    with op.batch_alter_table("penalty_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_penalty_notices_received_id"))
        batch_op.drop_index(batch_op.f("ix_penalty_notices_org_id"))
        batch_op.drop_index("ix_penalty_notices_ledger")

    op.drop_table("penalty_notices")
    with op.batch_alter_table("referral_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_referral_outbox_status")
        batch_op.drop_index(batch_op.f("ix_referral_outbox_org_id"))

    op.drop_table("referral_outbox")
    with op.batch_alter_table("referral_kinds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referral_kinds_org_id"))

    op.drop_table("referral_kinds")
    with op.batch_alter_table("received_referrals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_received_referrals_source_org_id"))
        batch_op.drop_index("ix_received_referrals_org_status_due")
        batch_op.drop_index(batch_op.f("ix_received_referrals_org_id"))
        batch_op.drop_index(batch_op.f("ix_received_referrals_child_key"))
        batch_op.drop_index(batch_op.f("ix_received_referrals_assigned_user_id"))

    op.drop_table("received_referrals")
    with op.batch_alter_table("la_referral_profiles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_la_referral_profiles_org_id"))

    op.drop_table("la_referral_profiles")
