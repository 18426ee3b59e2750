"""attendance core tables: pupils, contacts, households, calendars, marks and their history

Revision ID: 20261124_1244
Revises: 20261124_1238
Create Date: 2026-11-24 12:44:10.669558
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from attendwise.migrations import roles

TENANT_TABLES = (
    "pupils",
    "enrolments",
    "contacts",
    "pupil_contacts",
    "school_half_terms",
    "school_closures",
    "pupil_mark_years",
    "mark_changes",
)


revision: str = "20261124_1244"
down_revision: str | Sequence[str] | None = "20261124_1238"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "code_overrides",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=3), nullable=False),
        sa.Column("statistical_class", sa.String(length=30), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_by_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["changed_by_user_id"],
            ["users.id"],
            name=op.f("fk_code_overrides_changed_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_code_overrides")),
        sa.UniqueConstraint("code", name=op.f("uq_code_overrides_code")),
    )
    op.create_table(
        "contacts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("title", sa.String(length=20), nullable=True),
        sa.Column("forename", sa.String(length=100), nullable=False),
        sa.Column("surname", sa.String(length=100), nullable=False),
        sa.Column("preferred_language", sa.String(length=40), nullable=True),
        sa.Column("address_lines", sa.JSON(), nullable=False),
        sa.Column("postcode", sa.String(length=10), nullable=True),
        sa.Column("phones", sa.JSON(), nullable=False),
        sa.Column("emails", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=True),
        sa.Column("external_id", sa.String(length=100), nullable=True),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_contacts_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.UniqueConstraint(
            "org_id", "source", "external_id", name=op.f("uq_contacts_org_id_source_external_id")
        ),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contacts_org_id"), ["org_id"], unique=False)

    op.create_table(
        "pupils",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("upn", sa.String(length=13), nullable=False),
        sa.Column("upn_temporary", sa.Boolean(), nullable=False),
        sa.Column("legal_forename", sa.String(length=100), nullable=False),
        sa.Column("legal_surname", sa.String(length=100), nullable=False),
        sa.Column("preferred_forename", sa.String(length=100), nullable=True),
        sa.Column("preferred_surname", sa.String(length=100), nullable=True),
        sa.Column("date_of_birth", sa.Date(), nullable=False),
        sa.Column("sex", sa.Enum("F", "M", "U", name="sex", native_enum=False), nullable=False),
        sa.Column("year_group", sa.String(length=3), nullable=False),
        sa.Column("registration_group", sa.String(length=20), nullable=True),
        sa.Column(
            "sen_status",
            sa.Enum("none", "sen_support", "ehcp", name="senstatus", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("fsm", sa.Boolean(), nullable=False),
        sa.Column("eal", sa.Boolean(), nullable=False),
        sa.Column("looked_after", sa.Boolean(), nullable=False),
        sa.Column("child_in_need", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=True),
        sa.Column("external_id", sa.String(length=100), nullable=True),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_pupils_org_id_organisations"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pupils")),
        sa.UniqueConstraint(
            "org_id", "source", "external_id", name=op.f("uq_pupils_org_id_source_external_id")
        ),
        sa.UniqueConstraint("org_id", "upn", name=op.f("uq_pupils_org_id_upn")),
    )
    with op.batch_alter_table("pupils", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pupils_org_id"), ["org_id"], unique=False)
        batch_op.create_index(
            "ix_pupils_org_surname", ["org_id", "legal_surname", "legal_forename"], unique=False
        )

    op.create_table(
        "school_closures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("inset", "closure", name="closurekind", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_school_closures_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_school_closures")),
        sa.UniqueConstraint("org_id", "date", name=op.f("uq_school_closures_org_id_date")),
    )
    with op.batch_alter_table("school_closures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_school_closures_org_id"), ["org_id"], unique=False)

    op.create_table(
        "school_half_terms",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("academic_year", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.SmallInteger(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_school_half_terms_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_school_half_terms")),
        sa.UniqueConstraint(
            "org_id", "academic_year", "number", name=op.f("uq_school_half_terms_org_id_academic_year_number")
        ),
    )
    with op.batch_alter_table("school_half_terms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_school_half_terms_org_id"), ["org_id"], unique=False)

    op.create_table(
        "enrolments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("pupil_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("leave_date", sa.Date(), nullable=True),
        sa.Column(
            "registration_type",
            sa.Enum("main", "subsidiary", name="registrationtype", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_enrolments_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["pupil_id"], ["pupils.id"], name=op.f("fk_enrolments_pupil_id_pupils"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrolments")),
        sa.UniqueConstraint("pupil_id", "start_date", name=op.f("uq_enrolments_pupil_id_start_date")),
    )
    with op.batch_alter_table("enrolments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_enrolments_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_enrolments_pupil_id"), ["pupil_id"], unique=False)

    op.create_table(
        "household_keys",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("school_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("pupil_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["pupil_id"], ["pupils.id"], name=op.f("fk_household_keys_pupil_id_pupils"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["organisations.id"],
            name=op.f("fk_household_keys_school_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_household_keys")),
        sa.UniqueConstraint("key", "pupil_id", name=op.f("uq_household_keys_key_pupil_id")),
    )
    with op.batch_alter_table("household_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_household_keys_key"), ["key"], unique=False)
        batch_op.create_index(batch_op.f("ix_household_keys_pupil_id"), ["pupil_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_household_keys_school_id"), ["school_id"], unique=False)

    op.create_table(
        "mark_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("pupil_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("session", sa.String(length=2), nullable=False),
        sa.Column("old_code", sa.String(length=3), nullable=True),
        sa.Column("new_code", sa.String(length=3), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "source",
            sa.Enum("mis", "manual", "import", "demo", name="marksource", native_enum=False, length=10),
            nullable=False,
        ),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_mark_changes_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["pupil_id"], ["pupils.id"], name=op.f("fk_mark_changes_pupil_id_pupils"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mark_changes")),
    )
    with op.batch_alter_table("mark_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mark_changes_org_id"), ["org_id"], unique=False)
        batch_op.create_index("ix_mark_changes_pupil_date", ["pupil_id", "date"], unique=False)

    op.create_table(
        "pupil_contacts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("pupil_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("relationship_to_pupil", sa.String(length=40), nullable=False),
        sa.Column("parental_responsibility", sa.Boolean(), nullable=False),
        sa.Column("lives_with_pupil", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_pupil_contacts_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_pupil_contacts_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["pupil_id"], ["pupils.id"], name=op.f("fk_pupil_contacts_pupil_id_pupils"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pupil_contacts")),
        sa.UniqueConstraint("pupil_id", "contact_id", name=op.f("uq_pupil_contacts_pupil_id_contact_id")),
    )
    with op.batch_alter_table("pupil_contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pupil_contacts_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_pupil_contacts_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_pupil_contacts_pupil_id"), ["pupil_id"], unique=False)

    op.create_table(
        "pupil_mark_years",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("pupil_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("academic_year", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("codes", sa.LargeBinary(), nullable=False),
        sa.Column("minutes_late", sa.Text(), nullable=False),
        sa.Column("version", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_pupil_mark_years_org_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["pupil_id"], ["pupils.id"], name=op.f("fk_pupil_mark_years_pupil_id_pupils"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pupil_mark_years")),
        sa.UniqueConstraint(
            "pupil_id", "academic_year", name=op.f("uq_pupil_mark_years_pupil_id_academic_year")
        ),
    )
    with op.batch_alter_table("pupil_mark_years", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pupil_mark_years_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_pupil_mark_years_pupil_id"), ["pupil_id"], unique=False)

    for table in TENANT_TABLES:
        roles.enable_tenant_rls(table)


def downgrade() -> None:
    for table in TENANT_TABLES:
        roles.disable_tenant_rls(table)
    with op.batch_alter_table("pupil_mark_years", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pupil_mark_years_pupil_id"))
        batch_op.drop_index(batch_op.f("ix_pupil_mark_years_org_id"))

    op.drop_table("pupil_mark_years")
    with op.batch_alter_table("pupil_contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pupil_contacts_pupil_id"))
        batch_op.drop_index(batch_op.f("ix_pupil_contacts_org_id"))
        batch_op.drop_index(batch_op.f("ix_pupil_contacts_contact_id"))

    op.drop_table("pupil_contacts")
    with op.batch_alter_table("mark_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_mark_changes_pupil_date")
        batch_op.drop_index(batch_op.f("ix_mark_changes_org_id"))

    op.drop_table("mark_changes")
    with op.batch_alter_table("household_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_household_keys_school_id"))
        batch_op.drop_index(batch_op.f("ix_household_keys_pupil_id"))
        batch_op.drop_index(batch_op.f("ix_household_keys_key"))

    op.drop_table("household_keys")
    with op.batch_alter_table("enrolments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrolments_pupil_id"))
        batch_op.drop_index(batch_op.f("ix_enrolments_org_id"))

    op.drop_table("enrolments")
    with op.batch_alter_table("school_half_terms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_school_half_terms_org_id"))

    op.drop_table("school_half_terms")
    with op.batch_alter_table("school_closures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_school_closures_org_id"))

    op.drop_table("school_closures")
    with op.batch_alter_table("pupils", schema=None) as batch_op:
        batch_op.drop_index("ix_pupils_org_surname")
        batch_op.drop_index(batch_op.f("ix_pupils_org_id"))

    op.drop_table("pupils")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contacts_org_id"))

    op.drop_table("contacts")
    op.drop_table("code_overrides")
