"""letters: bulk-run counters as INTEGER on SQLite, as the model declares them

The letter_runs migration created ``total``, ``done`` and ``failed`` as plain BIGINT; the
model's ``int`` is BIGINT on PostgreSQL and INTEGER on SQLite, so ``attendwise db check``
reported drift on every SQLite database (the embedded default). PostgreSQL is unchanged.

Revision ID: 20261205_1545
Revises: 20261205_1510
Create Date: 2026-12-05 15:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261205_1545"
down_revision: str | Sequence[str] | None = "20261205_1510"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTERS = ("total", "done", "failed")


def _retype(old: sa.types.TypeEngine[int], new: sa.types.TypeEngine[int]) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("letter_runs") as batch_op:
        for column in COUNTERS:
            batch_op.alter_column(column, existing_type=old, type_=new, existing_nullable=False)


def upgrade() -> None:
    _retype(sa.BigInteger(), sa.Integer())


def downgrade() -> None:
    _retype(sa.Integer(), sa.BigInteger())
