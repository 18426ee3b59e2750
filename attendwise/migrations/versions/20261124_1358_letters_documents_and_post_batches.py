"""Letters: letterhead settings, school template versions, content-addressed documents, post batches
and the letter rows (the record of every send); all tenant-owned with row-level security.

Revision ID: 20261124_1358
Revises: 20261124_1356
Create Date: 2026-11-24 13:58:34.117906
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from attendwise.migrations import roles

revision: str = "20261124_1358"
down_revision: str | Sequence[str] | None = "20261124_1356"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


TENANT_TABLES = ("letter_settings", "letter_templates", "documents", "letter_post_batches", "letters")


def upgrade() -> None:
    op.create_table(
        "letter_settings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("address_lines", sa.JSON(), nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("email", sa.String(length=200), nullable=True),
        sa.Column("head_name", sa.String(length=200), nullable=True),
        sa.Column("sender_name", sa.String(length=200), nullable=True),
        sa.Column("sender_role", sa.String(length=200), nullable=True),
        sa.Column("logo", sa.LargeBinary(), nullable=True),
        sa.Column("logo_mime", sa.String(length=40), nullable=True),
        sa.Column("signature", sa.LargeBinary(), nullable=True),
        sa.Column("signature_mime", sa.String(length=40), nullable=True),
        sa.Column("email_mode", sa.String(length=10), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_letter_settings_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_letter_settings")),
        sa.UniqueConstraint("org_id", name=op.f("uq_letter_settings_org_id")),
    )
    with op.batch_alter_table("letter_settings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_letter_settings_org_id"), ["org_id"], unique=False)

    op.create_table(
        "letter_templates",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("version", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_letter_templates_created_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_letter_templates_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_letter_templates")),
        sa.UniqueConstraint("org_id", "key", "version", name=op.f("uq_letter_templates_org_id_key_version")),
    )
    with op.batch_alter_table("letter_templates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_letter_templates_org_id"), ["org_id"], unique=False)

    op.create_table(
        "documents",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("pupil_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_documents_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["pupil_id"], ["pupils.id"], name=op.f("fk_documents_pupil_id_pupils"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
        sa.UniqueConstraint("org_id", "sha256", name=op.f("uq_documents_org_id_sha256")),
    )
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_documents_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_documents_pupil_id"), ["pupil_id"], unique=False)

    op.create_table(
        "letter_post_batches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("document_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("posted_on", sa.Date(), nullable=True),
        sa.Column("certificate_of_posting", sa.String(length=200), nullable=True),
        sa.Column("posted_by_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_letter_post_batches_document_id_documents"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_letter_post_batches_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["posted_by_user_id"],
            ["users.id"],
            name=op.f("fk_letter_post_batches_posted_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_letter_post_batches")),
    )
    with op.batch_alter_table("letter_post_batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_letter_post_batches_org_id"), ["org_id"], unique=False)

    op.create_table(
        "letters",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("pupil_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("template_key", sa.String(length=80), nullable=False),
        sa.Column("template_version", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "recipient_contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("recipient_name", sa.String(length=200), nullable=False),
        sa.Column("recipient_email", sa.String(length=320), nullable=True),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("attempts", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("document_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("provider_message_id", sa.String(length=250), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("post_batch_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rendered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sending_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_letters_document_id_documents"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_letters_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["post_batch_id"],
            ["letter_post_batches.id"],
            name=op.f("fk_letters_post_batch_id_letter_post_batches"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["pupil_id"], ["pupils.id"], name=op.f("fk_letters_pupil_id_pupils"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["recipient_contact_id"],
            ["contacts.id"],
            name=op.f("fk_letters_recipient_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_letters")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_letters_idempotency_key")),
    )
    with op.batch_alter_table("letters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_letters_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_letters_org_id"), ["org_id"], unique=False)
        batch_op.create_index("ix_letters_org_status", ["org_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_letters_pupil_id"), ["pupil_id"], unique=False)

    for table in TENANT_TABLES:
        roles.enable_tenant_rls(table)


def downgrade() -> None:
    for table in TENANT_TABLES:
        roles.disable_tenant_rls(table)
    with op.batch_alter_table("letters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_letters_pupil_id"))
        batch_op.drop_index("ix_letters_org_status")
        batch_op.drop_index(batch_op.f("ix_letters_org_id"))
        batch_op.drop_index(batch_op.f("ix_letters_case_id"))

    op.drop_table("letters")
    with op.batch_alter_table("letter_post_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_letter_post_batches_org_id"))

    op.drop_table("letter_post_batches")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_documents_pupil_id"))
        batch_op.drop_index(batch_op.f("ix_documents_org_id"))

    op.drop_table("documents")
    with op.batch_alter_table("letter_templates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_letter_templates_org_id"))

    op.drop_table("letter_templates")
    with op.batch_alter_table("letter_settings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_letter_settings_org_id"))

    op.drop_table("letter_settings")
