"""Row-level security policies evaluate the tenant helpers once per query

Revision ID: 20261124_1510
Revises: 20261124_1412
Create Date: 2026-11-24 15:10:00

The first policies called the tenant helper functions once per row; wrapping each call in a
scalar sub-select makes it an InitPlan evaluated once per query. Same rules, same errors.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from attendwise.migrations import roles

revision: str = "20261124_1510"
down_revision: str | Sequence[str] | None = "20261124_1412"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PER_ROW_READ = "aw_is_system() OR org_id = ANY (aw_read_orgs())"
PER_ROW_WRITE = "aw_is_system() OR org_id = aw_write_org()"


def _tenant_tables() -> list[str]:
    rows = op.get_bind().execute(
        sa.text(
            "SELECT DISTINCT tablename FROM pg_policies "
            "WHERE schemaname = current_schema() AND policyname = tablename || '_read' ORDER BY tablename"
        )
    )
    return [r[0] for r in rows]


def _recreate(read: str, write: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _tenant_tables():
        roles.drop_tenant_policies(table)
        roles.create_tenant_policies(table, read, write)


def upgrade() -> None:
    _recreate(roles.READ_POLICY, roles.WRITE_POLICY)


def downgrade() -> None:
    _recreate(PER_ROW_READ, PER_ROW_WRITE)
