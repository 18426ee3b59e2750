"""Database base classes, the session, and the ORM half of tenant isolation.

Tenant-owned models inherit :class:`TenantMixin`, which adds ``org_id``. Two session
events enforce the tenant context (see ``tenancy.py``):

* ``do_orm_execute`` adds ``org_id IN (readable orgs)`` to every SELECT through
  ``with_loader_criteria`` (which also reaches lazy and eager relationship loads), and
  ``org_id = write org`` to every ORM bulk UPDATE and DELETE; with no context it raises;
* ``before_flush`` stamps new rows with the write org and refuses rows of another org.

On PostgreSQL the same context is copied into the transaction with ``set_config(...,
true)`` and bound parameters, where row-level security enforces it again (the migration
``enable_tenant_rls`` helper writes the policies).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any, cast

from flask import Flask
from sqlalchemy import (
    BigInteger,
    DateTime,
    Delete,
    ForeignKey,
    Integer,
    MetaData,
    Update,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    ORMExecuteState,
    Session,
    declared_attr,
    mapped_column,
    scoped_session,
    sessionmaker,
    with_loader_criteria,
)

from attendwise.platform import tenancy

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Integer keys that autoincrement on both SQLite and PostgreSQL.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dt.datetime: DateTime(timezone=True),
        int: BigInteger().with_variant(Integer(), "sqlite"),
    }

    # Tables that are not tenant-owned must say so and why (tested in tests/platform).
    __global_reason__: str | None = None


class TenantMixin:
    """A row owned by one organisation (a school, trust, LA or the platform)."""

    @declared_attr
    def org_id(cls) -> Mapped[int]:  # noqa: N805 - declared_attr takes the class
        return mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"), index=True, nullable=False)


class TimestampMixin:
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def _tenant_read_criteria(ctx: tenancy.TenantContext) -> Any:
    ids = tuple(sorted(ctx.read_org_ids))
    return with_loader_criteria(TenantMixin, lambda cls: cls.org_id.in_(ids), include_aliases=True)


def _touches_tenant_table(state: ORMExecuteState) -> bool:
    """True when the statement reads a tenant table, also through a ``lazy="joined"`` relationship."""
    for mapper in state.all_mappers:
        if issubclass(mapper.class_, TenantMixin):
            return True
        if any(
            rel.lazy == "joined" and issubclass(rel.mapper.class_, TenantMixin)
            for rel in mapper.relationships
        ):
            return True
    return False


def _on_orm_execute(state: ORMExecuteState) -> None:
    ctx = tenancy.current()
    _sync_postgres_tenant(state.session, ctx)
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if ctx is None:
        if _touches_tenant_table(state):
            raise tenancy.TenantContextMissing("query on a tenant-owned table with no tenant context")
        return
    if ctx.system:
        return
    if state.is_select:
        state.statement = state.statement.options(_tenant_read_criteria(ctx))
    else:
        mapper = state.bind_mapper
        if mapper is not None and issubclass(mapper.class_, TenantMixin):
            statement = cast(Update | Delete, state.statement)
            state.statement = statement.where(mapper.class_.org_id == ctx.org_id)


def _on_before_flush(session: Session, _flush_context: Any, _instances: Any) -> None:
    _sync_postgres_tenant(session, tenancy.current())
    new = session.new  # a fresh IdentitySet on every access: read it once, not once per object
    tenant_objects = [o for o in (*new, *session.dirty, *session.deleted) if isinstance(o, TenantMixin)]
    if not tenant_objects:
        return
    ctx = tenancy.current()
    if ctx is None:
        raise tenancy.TenantContextMissing("write to a tenant-owned table with no tenant context")
    for obj in tenant_objects:
        if obj in new and getattr(obj, "org_id", None) is None:
            if ctx.system:
                raise tenancy.TenantViolation(
                    f"{type(obj).__name__} created in the system context needs an org_id"
                )
            obj.org_id = ctx.org_id
        if not ctx.can_write(obj.org_id):
            raise tenancy.TenantViolation(f"{type(obj).__name__} belongs to another organisation")


def _on_after_begin(session: Session, _transaction: Any, _connection: Connection) -> None:
    session.info.pop("aw_tenant_guc", None)


def _on_after_transaction_end(session: Session, _transaction: Any) -> None:
    # The setting is transaction-local: after COMMIT, ROLLBACK or a savepoint's rollback it is
    # gone (or may be), so the next statement must set it again. after_begin alone is too late:
    # it fires when the next statement begins the transaction, after the check was skipped.
    session.info.pop("aw_tenant_guc", None)


def _guc_values(ctx: tenancy.TenantContext | None) -> tuple[str, str]:
    if ctx is None:
        return "", ""
    if ctx.system:
        return "0", "*"
    return str(ctx.org_id), ",".join(str(i) for i in sorted(ctx.read_org_ids))


def sync_tenant(session: Session) -> None:
    """Call before Core statements on ``session.connection()``: the ORM events do it for ORM use."""
    _sync_postgres_tenant(session, tenancy.current())


def _sync_postgres_tenant(session: Session, ctx: tenancy.TenantContext | None) -> None:
    """Copy the tenant into the current PostgreSQL transaction (SET LOCAL semantics)."""
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return
    values = _guc_values(ctx)
    if session.info.get("aw_tenant_guc") == values:
        return
    conn = session.connection()
    conn.execute(
        text("SELECT set_config('app.org_id', :w, true), set_config('app.read_org_ids', :r, true)"),
        {"w": values[0], "r": values[1]},
    )
    session.info["aw_tenant_guc"] = values


def install_session_events(session_class: type[Session] | sessionmaker[Session]) -> None:
    event.listen(session_class, "do_orm_execute", _on_orm_execute)
    event.listen(session_class, "before_flush", _on_before_flush)
    event.listen(session_class, "after_begin", _on_after_begin)
    event.listen(session_class, "after_transaction_end", _on_after_transaction_end)


class AttendwiseSession(Session):
    """The one Session class; tenant events are attached to it once, at import."""


install_session_events(AttendwiseSession)


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the sqlite3 module, manage transactions, so SAVEPOINTs work.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

        # IMMEDIATE takes SQLite's write lock at BEGIN: one writer at a time, so read-then-write
        # sequences (the audit chain's "last hash, then append") cannot interleave between
        # threads. That is the embedded default's only concurrency; PostgreSQL uses row locks.
        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


class Database:
    """Engine and a session scoped to the Flask app context (one transaction per request)."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.session_factory: sessionmaker[AttendwiseSession] | None = None
        # scoped_session accepts any callable returning a session; the stubs ask for a sessionmaker.
        self.session: scoped_session[AttendwiseSession] = scoped_session(self._no_app_session)  # type: ignore[arg-type]

    @staticmethod
    def _no_app_session() -> AttendwiseSession:
        raise RuntimeError("the database is used before create_app() configured it")

    def init_app(self, app: Flask) -> None:
        url = app.config["DATABASE_URL"]
        self.engine = make_engine(url, **app.config.get("DATABASE_ENGINE_OPTIONS", {}))
        self.session_factory = sessionmaker(
            bind=self.engine, class_=AttendwiseSession, expire_on_commit=False
        )
        self.session = scoped_session(self.session_factory, scopefunc=_app_ctx_scope)
        app.extensions["attendwise_db"] = self

        @app.teardown_appcontext
        def _remove_session(_exc: BaseException | None) -> None:
            self.session.remove()

    def new_session(self) -> AttendwiseSession:
        """A session outside the request scope (jobs and commands use this with `session_scope`)."""
        assert self.session_factory is not None
        return self.session_factory()

    def dispose(self) -> None:
        if self.engine is not None:
            self.engine.dispose()


def _app_ctx_scope() -> int:
    from flask.globals import _cv_app

    ctx = _cv_app.get(None)
    if ctx is None:
        raise RuntimeError("no Flask app context: use db.new_session() outside requests")
    return id(ctx)


@contextlib.contextmanager
def session_scope(session: Session) -> Iterator[Session]:
    """Commit on success, roll back on error: the boundary of a job or command."""
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


db = Database()
