"""Casework: a contact-log entry records which letter it logs, once per letter

Revision ID: 20261205_1200
Revises: 20261205_1150
Create Date: 2026-12-05 12:00:00

Letters delivered (emailed or posted) now appear on the case's contact log. The letter's id
with a unique constraint per organisation makes a repeated delivery notice log nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261205_1200"
down_revision: str | Sequence[str] | None = "20261205_1150"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("case_contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("letter_id", ID, nullable=True))
        batch_op.create_unique_constraint("uq_case_contacts_org_id_letter_id", ["org_id", "letter_id"])


def downgrade() -> None:
    with op.batch_alter_table("case_contacts", schema=None) as batch_op:
        batch_op.drop_constraint("uq_case_contacts_org_id_letter_id", type_="unique")
        batch_op.drop_column("letter_id")
