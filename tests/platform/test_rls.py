"""Tenant isolation, both layers.

PostgreSQL (``postgres`` mark; runs whenever the suite uses PostgreSQL, always under CI=true):
as the application role, for EVERY tenant table, another tenant's rows cannot be read,
updated or deleted (0 rows), cannot be inserted (rejected), and a query with no tenant set
errors; the role owns nothing, bypasses nothing, and cannot change audit rows.

ORM (any database): the ``do_orm_execute`` criteria reach bulk UPDATE/DELETE and lazy,
joined and selectin relationship loads; and what ``Session.get`` does after a tenant switch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import ForeignKey, MetaData, create_engine, delete, event, func, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.pool import NullPool

from attendwise.migrations.roles import APPEND_ONLY_TABLES
from attendwise.platform import audit, tenancy
from attendwise.platform.db import AttendwiseSession, TenantMixin, make_engine
from tests.conftest import APP_ROLE, USE_POSTGRES
from tests.platform.route_objects import RowBuilder, tenant_tables

postgres_only = pytest.mark.skipif(not USE_POSTGRES, reason="row-level security exists only on PostgreSQL")
TENANT_TABLES = [t.name for t in tenant_tables()]
CHANGEABLE_TABLES = [name for name in TENANT_TABLES if name not in APPEND_ONLY_TABLES]
NO_TENANT = "no tenant is set"


def _set_tenant(conn: Connection, write: str, read: str) -> None:
    conn.execute(
        text("SELECT set_config('app.org_id', :w, true), set_config('app.read_org_ids', :r, true)"),
        {"w": write, "r": read},
    )


def _as_system(conn: Connection) -> None:
    _set_tenant(conn, "0", "*")


def _as_org(conn: Connection, org_id: int) -> None:
    _set_tenant(conn, str(org_id), str(org_id))


def _where_pk(table: sa.Table, row: dict[str, Any]) -> Any:
    return sa.and_(*(c == row[c.name] for c in table.primary_key.columns))


def _count(conn: Connection, table: sa.Table, where: Any) -> int:
    return conn.execute(select(func.count()).select_from(table).where(where)).scalar_one()


@pytest.fixture
def two_schools(db_session, make_school):
    return make_school(), make_school()


@pytest.fixture
def app_conn(db_session) -> Connection:
    """The test's connection, logged in as the application role (RLS live)."""
    return db_session.connection()


# ---- the role ------------------------------------------------------------------------------


@pytest.mark.postgres
@postgres_only
def test_the_application_role_is_plain_and_owns_nothing(app_conn):
    role = app_conn.execute(
        text("SELECT current_user AS name, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
    ).one()
    assert role.name == APP_ROLE
    assert (role.rolsuper, role.rolbypassrls) == (False, False)
    owned = app_conn.scalars(
        text(
            "SELECT c.relname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
            "WHERE r.rolname = current_user"
        )
    ).all()
    assert owned == []


@pytest.mark.postgres
@postgres_only
@pytest.mark.parametrize(
    "statement", ["UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events", "TRUNCATE audit_events"]
)
def test_the_application_role_cannot_change_audit_rows_even_in_the_system_context(
    db_session, app_conn, two_schools, statement
):
    school, _other = two_schools
    with tenancy.system_context("test: write one audit event"):
        audit.record(db_session, org_id=school.id, action="pupil.view", object_type="pupil", object_id=1)
    _as_system(app_conn)
    assert _count(app_conn, audit.AuditEvent.__table__, audit.AuditEvent.__table__.c.org_id == school.id) == 1
    with pytest.raises(DBAPIError, match="permission denied"), app_conn.begin_nested():
        app_conn.execute(text(statement))
    assert _count(app_conn, audit.AuditEvent.__table__, audit.AuditEvent.__table__.c.org_id == school.id) == 1


# ---- every tenant table, generically -------------------------------------------------------


def _foreign_row(conn: Connection, table_name: str, owner_id: int) -> tuple[sa.Table, dict[str, Any]]:
    table = next(t for t in tenant_tables() if t.name == table_name)
    _as_system(conn)
    row = RowBuilder(conn, canary="rls").insert(table, owner_id)
    return table, row


@pytest.mark.postgres
@postgres_only
@pytest.mark.parametrize("table_name", TENANT_TABLES)
def test_another_tenants_rows_are_invisible(app_conn, two_schools, table_name):
    a, b = two_schools
    table, row = _foreign_row(app_conn, table_name, b.id)
    _as_org(app_conn, a.id)
    assert _count(app_conn, table, _where_pk(table, row)) == 0
    assert _count(app_conn, table, table.c.org_id == b.id) == 0
    _as_org(app_conn, b.id)
    assert _count(app_conn, table, _where_pk(table, row)) == 1, "control: the owner sees its row"


@pytest.mark.postgres
@postgres_only
@pytest.mark.parametrize("table_name", CHANGEABLE_TABLES)
def test_another_tenants_rows_cannot_be_updated_or_deleted(app_conn, two_schools, table_name):
    a, b = two_schools
    table, row = _foreign_row(app_conn, table_name, b.id)
    _as_org(app_conn, a.id)
    assert (
        app_conn.execute(update(table).where(_where_pk(table, row)).values(org_id=table.c.org_id)).rowcount
        == 0
    )
    assert app_conn.execute(update(table).values(org_id=a.id)).rowcount == 0
    assert app_conn.execute(delete(table).where(_where_pk(table, row))).rowcount == 0
    _as_org(app_conn, b.id)
    assert _count(app_conn, table, _where_pk(table, row)) == 1
    assert (
        app_conn.execute(update(table).where(_where_pk(table, row)).values(org_id=table.c.org_id)).rowcount
        == 1
    )


@pytest.mark.postgres
@postgres_only
@pytest.mark.parametrize("table_name", CHANGEABLE_TABLES)
def test_a_row_cannot_be_moved_to_another_tenant(app_conn, two_schools, table_name):
    a, b = two_schools
    table, row = _foreign_row(app_conn, table_name, a.id)
    _as_org(app_conn, a.id)
    with pytest.raises(DBAPIError, match="row-level security"), app_conn.begin_nested():
        app_conn.execute(update(table).where(_where_pk(table, row)).values(org_id=b.id))


@pytest.mark.postgres
@postgres_only
@pytest.mark.parametrize("table_name", TENANT_TABLES)
def test_inserting_a_row_for_another_tenant_is_rejected(app_conn, two_schools, table_name):
    a, b = two_schools
    table = next(t for t in tenant_tables() if t.name == table_name)
    builder = RowBuilder(app_conn, canary="rls")
    _as_system(app_conn)
    values = builder.values_for(table, b.id, {})  # parents (if any) created as the system
    _as_org(app_conn, a.id)
    with pytest.raises(DBAPIError, match="row-level security"), app_conn.begin_nested():
        app_conn.execute(sa.insert(table).values(**values))
    _as_org(app_conn, b.id)
    with app_conn.begin_nested() as control:
        app_conn.execute(sa.insert(table).values(**values))
        control.rollback()


@pytest.mark.postgres
@postgres_only
@pytest.mark.parametrize("table_name", TENANT_TABLES)
def test_a_query_after_the_tenant_is_reset_to_empty_errors(app_conn, two_schools, table_name):
    _a, b = two_schools
    table, _row = _foreign_row(app_conn, table_name, b.id)
    _set_tenant(app_conn, "", "")
    with pytest.raises(DBAPIError, match=NO_TENANT), app_conn.begin_nested():
        _count(app_conn, table, sa.true())


@pytest.fixture
def owner_conn(database_urls) -> Iterator[Connection]:
    """A brand-new connection as the owner, in a transaction that is rolled back."""
    engine = create_engine(database_urls["owner"], poolclass=NullPool)
    with engine.connect() as conn:
        conn.begin()
        yield conn
        conn.rollback()
    engine.dispose()


@pytest.mark.postgres
@postgres_only
@pytest.mark.parametrize("table_name", TENANT_TABLES)
def test_a_query_on_a_connection_that_never_set_a_tenant_errors(owner_conn, database_urls, table_name):
    table = next(t for t in tenant_tables() if t.name == table_name)
    org_id = owner_conn.execute(
        text(
            "INSERT INTO organisations (kind, name, timezone, mfa_required, active, created_at, updated_at) "
            "VALUES ('trust', 'RLS probe trust', 'Europe/London', false, true, now(), now()) RETURNING id"
        )
    ).scalar_one()
    RowBuilder(owner_conn, canary="rls").insert(table, org_id)
    assert owner_conn.execute(text("SELECT current_setting('app.read_org_ids', true)")).scalar() is None
    owner_conn.execute(text(f"SET LOCAL ROLE {APP_ROLE}"))
    with pytest.raises(DBAPIError, match=NO_TENANT):
        _count(owner_conn, table, sa.true())


# ---- the ORM layer (SQLite and PostgreSQL alike: a private schema on SQLite) ---------------


class _Base(DeclarativeBase):
    metadata = MetaData()


class _Organisation(_Base):
    __tablename__ = "organisations"
    id: Mapped[int] = mapped_column(primary_key=True)


class Folder(_Base):
    """A global row whose relationships load tenant rows."""

    __tablename__ = "folders"
    __global_reason__ = "test model"
    id: Mapped[int] = mapped_column(primary_key=True)
    notes_lazy: Mapped[list[Note]] = relationship(lazy="select", viewonly=True, order_by="Note.id")
    notes_joined: Mapped[list[Note]] = relationship(lazy="joined", viewonly=True, order_by="Note.id")
    notes_selectin: Mapped[list[Note]] = relationship(lazy="selectin", viewonly=True, order_by="Note.id")


class Note(TenantMixin, _Base):
    __tablename__ = "notes"
    __audit_skip__ = True
    id: Mapped[int] = mapped_column(primary_key=True)
    folder_id: Mapped[int] = mapped_column(ForeignKey("folders.id"))
    body: Mapped[str] = mapped_column()


@pytest.fixture
def orm(tmp_path):
    """A session on a private database holding two tenants' notes in one folder."""
    engine = make_engine(f"sqlite:///{tmp_path / 'orm.sqlite3'}")
    _Base.metadata.create_all(engine)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    session = AttendwiseSession(bind=engine, expire_on_commit=False)
    session.add_all([_Organisation(id=1), _Organisation(id=2), Folder(id=1)])
    session.flush()
    with tenancy.system_context("test: seed notes"):
        session.add_all(
            [
                Note(id=10, org_id=1, folder_id=1, body="a1"),
                Note(id=11, org_id=1, folder_id=1, body="a2"),
                Note(id=20, org_id=2, folder_id=1, body="b1"),
            ]
        )
        session.commit()
    session.expunge_all()
    statements.clear()
    yield session, statements
    session.close()
    engine.dispose()


def _bodies(notes: list[Note]) -> list[str]:
    return [n.body for n in notes]


@pytest.mark.parametrize("attr", ["notes_lazy", "notes_joined", "notes_selectin"])
def test_relationship_loads_are_filtered_to_the_tenant(orm, attr):
    session, statements = orm
    with tenancy.tenant_context(1):
        folder = session.scalars(select(Folder)).unique().one()
        assert _bodies(getattr(folder, attr)) == ["a1", "a2"]
    note_sql = [s for s in statements if "notes" in s]
    assert note_sql, "the notes were loaded by SQL"
    assert all("org_id IN" in s for s in note_sql), note_sql


def test_a_lazy_load_with_no_tenant_context_raises(orm):
    session, _statements = orm
    with tenancy.tenant_context(1):
        folder = session.get(Folder, 1)
    assert folder is not None
    with pytest.raises(tenancy.TenantContextMissing):
        _ = folder.notes_lazy


def test_loading_a_global_row_that_eagerly_joins_tenant_rows_needs_a_context(orm):
    session, _statements = orm
    with pytest.raises(tenancy.TenantContextMissing):
        session.scalars(select(Folder)).unique().all()


def test_a_join_with_an_explicit_on_clause_is_filtered(orm):
    session, statements = orm
    with tenancy.tenant_context(2):
        bodies = session.scalars(
            select(Note.body).select_from(Folder).join(Note, Note.folder_id == Folder.id)
        ).all()
    assert bodies == ["b1"]
    assert "org_id IN" in statements[-1]


def test_the_statement_cache_never_serves_one_tenants_criteria_to_another(orm):
    session, _statements = orm
    query = select(Note.body).order_by(Note.id)
    with tenancy.tenant_context(1):
        first = session.scalars(query).all()
    with tenancy.tenant_context(2):
        second = session.scalars(query).all()
    with tenancy.tenant_context(1, read_org_ids={1, 2}):
        both = session.scalars(query).all()
    assert (first, second, both) == (["a1", "a2"], ["b1"], ["a1", "a2", "b1"])


def test_bulk_update_and_delete_only_reach_the_write_tenant(orm):
    session, statements = orm
    with tenancy.tenant_context(1, read_org_ids={1, 2}):
        updated = session.execute(update(Note).values(body="changed")).rowcount
        deleted = session.execute(delete(Note).where(Note.body == "b1")).rowcount
        session.commit()
    assert (updated, deleted) == (2, 0)
    assert all("org_id = " in s for s in statements if s.startswith(("UPDATE", "DELETE")))
    with tenancy.system_context("test: inspect"):
        assert sorted(_bodies(session.scalars(select(Note)).all())) == ["b1", "changed", "changed"]


def test_session_get_after_a_tenant_switch(orm):
    """Documents the identity-map hazard and why every request and job gets a fresh session.

    ``Session.get`` returns an object already in the identity map WITHOUT emitting SQL, so
    no criteria (and, on PostgreSQL, no RLS) apply: a session reused across tenants would
    hand tenant 2's row to tenant 1. Attendwise never does that: ``db.session`` is scoped to
    one app context (one request) and jobs run in a new session. Any fresh lookup, or
    ``populate_existing``, goes through SQL and is filtered.
    """
    session, statements = orm
    with tenancy.tenant_context(2):
        note = session.get(Note, 20)
    assert note is not None
    statements.clear()
    with tenancy.tenant_context(1):
        assert session.get(Note, 20) is note  # the hazard: served from the identity map
        assert statements == []
        assert session.get(Note, 20, populate_existing=True) is None
    session.commit()  # end the transaction so the second session can begin one on SQLite
    fresh = AttendwiseSession(bind=session.get_bind())
    with tenancy.tenant_context(1):
        assert fresh.get(Note, 20) is None
    fresh.close()


def test_each_app_context_gets_its_own_session(app):
    from attendwise.platform.db import db

    with app.app_context():
        first = db.session()
        assert db.session() is first
    with app.app_context():
        second = db.session()
    assert first is not second
