"""PostgreSQL roles and row-level security, written by hand and used by the migrations.

The application connects as a role that owns no tables and has neither SUPERUSER nor
BYPASSRLS; migrations run as the owner. Every tenant-owned table gets row-level security,
ENABLEd and FORCEd, with policies that read the tenant from two transaction-local settings
(``app.org_id`` for writes, ``app.read_org_ids`` for reads) which ``platform/db.py`` sets
with ``set_config(..., true)`` and bound parameters. The helper functions raise when no
tenant is set, so a forgotten context is an error, never an empty or full result.
"""

from __future__ import annotations

import re

from alembic import op
from sqlalchemy import text
from sqlalchemy.engine import Connection

FUNCTIONS = """
CREATE OR REPLACE FUNCTION aw_is_system() RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT coalesce(current_setting('app.read_org_ids', true), '') = '*'
$$;
CREATE OR REPLACE FUNCTION aw_read_orgs() RETURNS bigint[] LANGUAGE plpgsql STABLE AS $$
DECLARE v text := coalesce(current_setting('app.read_org_ids', true), '');
BEGIN
  IF v = '' THEN
    RAISE EXCEPTION 'attendwise: no tenant is set for this transaction' USING ERRCODE = '42501';
  END IF;
  IF v = '*' THEN RETURN NULL; END IF;
  RETURN string_to_array(v, ',')::bigint[];
END $$;
CREATE OR REPLACE FUNCTION aw_write_org() RETURNS bigint LANGUAGE plpgsql STABLE AS $$
DECLARE v text := coalesce(current_setting('app.org_id', true), '');
BEGIN
  IF v = '' THEN
    RAISE EXCEPTION 'attendwise: no tenant is set for this transaction' USING ERRCODE = '42501';
  END IF;
  RETURN v::bigint;
END $$;
CREATE OR REPLACE FUNCTION aw_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'attendwise: % on % is not allowed: the table is append-only', TG_OP, TG_TABLE_NAME
    USING ERRCODE = '42501';
END $$;
"""

DROP_FUNCTIONS = """
DROP FUNCTION IF EXISTS aw_refuse_change();
DROP FUNCTION IF EXISTS aw_write_org();
DROP FUNCTION IF EXISTS aw_read_orgs();
DROP FUNCTION IF EXISTS aw_is_system();
"""


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def create_functions() -> None:
    if _is_postgres():
        op.execute(FUNCTIONS)


def drop_functions() -> None:
    if _is_postgres():
        op.execute(DROP_FUNCTIONS)


# Each helper call is wrapped in a scalar sub-select, so PostgreSQL evaluates it once per
# query (an InitPlan) instead of once per row: about ten times faster on large scans. An
# unset tenant still raises as soon as the query needs the value.
READ_POLICY = "(SELECT aw_is_system()) OR org_id = ANY ((SELECT aw_read_orgs())::bigint[])"
WRITE_POLICY = "(SELECT aw_is_system()) OR org_id = (SELECT aw_write_org())"


def create_tenant_policies(table: str, read: str = READ_POLICY, write: str = WRITE_POLICY) -> None:
    op.execute(f"CREATE POLICY {table}_read ON {table} FOR SELECT USING ({read})")
    op.execute(f"CREATE POLICY {table}_insert ON {table} FOR INSERT WITH CHECK ({write})")
    op.execute(f"CREATE POLICY {table}_update ON {table} FOR UPDATE USING ({write}) WITH CHECK ({write})")
    op.execute(f"CREATE POLICY {table}_delete ON {table} FOR DELETE USING ({write})")


def drop_tenant_policies(table: str) -> None:
    for action in ("read", "insert", "update", "delete"):
        op.execute(f"DROP POLICY IF EXISTS {table}_{action} ON {table}")


def enable_tenant_rls(table: str) -> None:
    """Row-level security for a table with an ``org_id`` column."""
    if not _is_postgres():
        return
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    create_tenant_policies(table)


def disable_tenant_rls(table: str) -> None:
    if not _is_postgres():
        return
    drop_tenant_policies(table)
    op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")


def make_append_only(table: str) -> None:
    if _is_postgres():
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION aw_refuse_change()"
        )


def drop_append_only(table: str) -> None:
    if _is_postgres():
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")


# Tables the application role may read and append to, but never change.
APPEND_ONLY_TABLES = ("audit_events",)

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def grant_app_role(conn: Connection, role: str) -> None:
    """Create (if allowed) and grant the application role: DML on tables, nothing more."""
    if not _ROLE_NAME.match(role):
        raise ValueError(f"application role name {role!r} is not a plain identifier")
    exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
    if not exists:
        conn.execute(text(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"))
    conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
    conn.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"))
    conn.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"))
    conn.execute(text(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {role}"))
    for table in APPEND_ONLY_TABLES:
        if conn.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar() is not None:
            conn.execute(text(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {role}"))
