"""Every table is tenant-scoped or on the explicit global allowlist, and RLS covers every tenant table.

The lists come from the mapped models and the live database, so tables that other packages
add later are checked without editing this file.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from attendwise.platform import models_registry
from attendwise.platform.db import Base, TenantMixin
from tests.conftest import USE_POSTGRES
from tests.platform.route_objects import tenant_tables

models_registry.import_all()

POLICY_COMMANDS = {"SELECT", "INSERT", "UPDATE", "DELETE"}


def _mapped_classes() -> list[type]:
    return sorted((m.class_ for m in Base.registry.mappers), key=lambda c: c.__name__)


def test_every_mapped_class_is_tenant_scoped_or_says_why_it_is_global():
    problems = []
    for cls in _mapped_classes():
        tenant = issubclass(cls, TenantMixin)
        reason = cls.__dict__.get("__global_reason__")
        if tenant and reason:
            problems.append(f"{cls.__name__}: tenant-owned but also declares __global_reason__")
        elif not tenant and not (isinstance(reason, str) and reason.strip()):
            problems.append(
                f"{cls.__name__} ({cls.__tablename__}): inherit TenantMixin, or set "  # type: ignore[attr-defined]
                f'__global_reason__ = "why every tenant may share it"'
            )
    assert not problems, "\n".join(problems)


def test_tenant_tables_carry_a_non_null_org_id_referencing_organisations():
    for table in tenant_tables():
        column = table.c.org_id
        assert not column.nullable, table.name
        targets = {fk.column.table.name for fk in column.foreign_keys}
        assert targets == {"organisations"}, table.name


def test_every_table_in_the_metadata_belongs_to_a_mapped_class():
    mapped = {m.local_table.name for m in Base.registry.mappers}
    unmapped = sorted(set(Base.metadata.tables) - mapped)
    assert not unmapped, (
        f"tables {unmapped} have no mapped class, so neither the ORM tenant filter nor this allowlist "
        "sees them: map a class that inherits TenantMixin or declares __global_reason__"
    )


def test_the_known_tenant_and_global_tables_are_classified():
    """A control: the check above can tell the two kinds apart."""
    names = {t.name for t in tenant_tables()}
    assert {"audit_events", "invitations"} <= names
    assert not {"organisations", "users", "web_sessions"} & names


@pytest.fixture(scope="module")
def catalog(database_urls):
    engine = create_engine(database_urls["owner"])
    with engine.connect() as conn:
        rls = {
            row.relname: (row.relrowsecurity, row.relforcerowsecurity)
            for row in conn.execute(
                text(
                    "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
                )
            )
        }
        policies: dict[str, dict[str, str]] = {}
        for row in conn.execute(
            text("SELECT tablename, cmd, qual, with_check FROM pg_policies WHERE schemaname = 'public'")
        ):
            policies.setdefault(row.tablename, {})[row.cmd] = f"{row.qual or ''} {row.with_check or ''}"
        with_org_id = set(
            conn.scalars(
                text(
                    "SELECT table_name FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND column_name = 'org_id'"
                )
            )
        )
    engine.dispose()
    return {"rls": rls, "policies": policies, "with_org_id": with_org_id}


postgres_only = pytest.mark.skipif(not USE_POSTGRES, reason="row-level security exists only on PostgreSQL")


@pytest.mark.postgres
@postgres_only
@pytest.mark.parametrize("table", [t.name for t in tenant_tables()])
def test_tenant_table_has_row_level_security_enabled_forced_and_four_policies(table, catalog):
    assert table in catalog["rls"], f"{table} is mapped but the migrations never created it"
    enabled, forced = catalog["rls"][table]
    assert enabled, f"{table}: call roles.enable_tenant_rls({table!r}) in its migration (RLS not enabled)"
    assert forced, f"{table}: row-level security is enabled but not FORCEd"
    policies = catalog["policies"].get(table, {})
    assert set(policies) == POLICY_COMMANDS, f"{table}: policies for {sorted(policies)}, need all four"
    assert "aw_read_orgs()" in policies["SELECT"]
    for cmd in ("INSERT", "UPDATE", "DELETE"):
        assert "aw_write_org()" in policies[cmd], f"{table}: {cmd} policy does not check the write tenant"


@pytest.mark.postgres
@postgres_only
def test_every_database_table_with_org_id_is_a_tenant_table_or_globally_allowlisted(catalog):
    """Catches tables created by a migration that no tenant model maps."""
    tenant = {t.name for t in tenant_tables()}
    allowlisted = {m.local_table.name for m in Base.registry.mappers if not issubclass(m.class_, TenantMixin)}
    unprotected = sorted(
        name
        for name in catalog["with_org_id"]
        if name not in allowlisted and not (name in tenant and all(catalog["rls"].get(name, (False, False))))
    )
    assert not unprotected, f"tables with org_id but no row-level security: {unprotected}"
