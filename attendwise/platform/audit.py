"""The append-only, hash-chained audit log.

Every create, update and delete of a tenant-owned ORM row writes an event in the same
transaction (the ``after_flush`` hook below), and views of pupil records are recorded
explicitly with :func:`record`. Events are chained per organisation:
``row_hash = sha256(prev_hash || canonical JSON of the event)``, appended under a
per-organisation lock, so a row changed behind the application's back breaks the chain
and ``attendwise audit verify`` reports it. In PostgreSQL the application role may only
INSERT and SELECT this table (see the migration), and a trigger refuses UPDATE and DELETE.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Index, String, Table, Text, column, event, insert, inspect, select, text
from sqlalchemy import table as sql_table
from sqlalchemy.orm import Mapped, Session, mapped_column

from attendwise.platform import tenancy
from attendwise.platform.db import AttendwiseSession, Base, TenantMixin, sync_tenant, utcnow

GENESIS = "0" * 64


@dataclass(frozen=True)
class Actor:
    user_id: int | None = None
    label: str = "system"
    ip: str | None = None
    request_id: str | None = None


_SYSTEM_ACTOR = Actor()
_actor: ContextVar[Actor] = ContextVar("attendwise_audit_actor", default=_SYSTEM_ACTOR)


def set_actor(actor: Actor) -> None:
    _actor.set(actor)


def current_actor() -> Actor:
    return _actor.get()


class AuditEvent(TenantMixin, Base):
    __tablename__ = "audit_events"
    __audit_skip__ = True
    __table_args__ = (Index("ix_audit_events_org_seq", "org_id", "seq", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column()
    occurred_at: Mapped[dt.datetime] = mapped_column()
    actor_user_id: Mapped[int | None] = mapped_column()
    actor_label: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(60), index=True)
    object_type: Mapped[str] = mapped_column(String(60))
    object_id: Mapped[str | None] = mapped_column(String(64))
    pupil_id: Mapped[int | None] = mapped_column(index=True)
    detail: Mapped[str] = mapped_column(Text, default="{}")
    ip: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))


HASHED_FIELDS = (
    "org_id",
    "seq",
    "occurred_at",
    "actor_user_id",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "pupil_id",
    "detail",
    "ip",
    "request_id",
)


# ``json.dumps`` with options builds an encoder per call; an import hashes thousands of events.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
_DETAIL = json.JSONEncoder(sort_keys=True, default=str)


def _norm(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.UTC)
        return v.astimezone(dt.UTC).isoformat(timespec="microseconds")
    return v


def chain_hash(prev_hash: str, values: dict[str, Any]) -> str:
    return _hash(prev_hash, {k: _norm(values.get(k)) for k in HASHED_FIELDS})


def _hash(prev_hash: str, hashed: dict[str, Any]) -> str:
    """The row hash of ``hashed``: the :data:`HASHED_FIELDS`, each as :func:`_norm` makes it."""
    canonical = _CANONICAL.encode(hashed)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def _lock_org_chain(conn: Any, org_id: int) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(7081, CAST(:org AS integer))"), {"org": org_id})


@dataclass(frozen=True)
class Event:
    """One event to append; :func:`record_many` stamps the chain fields."""

    org_id: int
    action: str
    object_type: str
    object_id: str | int | None = None
    pupil_id: int | None = None
    detail: dict[str, Any] | None = None


def record(
    session: Session,
    *,
    org_id: int,
    action: str,
    object_type: str,
    object_id: str | int | None = None,
    pupil_id: int | None = None,
    detail: dict[str, Any] | None = None,
    actor: Actor | None = None,
) -> None:
    """Append one event to ``org_id``'s chain inside the session's transaction."""
    record_many(session, [Event(org_id, action, object_type, object_id, pupil_id, detail)], actor=actor)


def record_many(session: Session, events: list[Event], actor: Actor | None = None) -> None:
    """Append events to their organisations' chains: one lock, one read and one insert per organisation.

    In a session marked by :func:`defer_until_commit` the events wait in the session and are
    appended just before it commits, so the organisation's chain lock is held for the commit,
    not for the rest of the request.
    """
    if not events:
        return
    ctx = tenancy.require()
    for org_id in {e.org_id for e in events}:
        if not ctx.can_read(org_id):
            raise tenancy.TenantViolation("audit event for an organisation outside the current context")
    actor = actor or current_actor()
    deferred: list[_Deferred] | None = session.info.get(_DEFERRED)
    if deferred is not None and not session.in_nested_transaction():
        deferred.append(_Deferred(events, actor, ctx, utcnow()))
        return
    _append(session, events, actor, utcnow())


@dataclass(frozen=True)
class _Deferred:
    events: list[Event]
    actor: Actor
    ctx: tenancy.TenantContext
    at: dt.datetime


_DEFERRED = "aw_audit_deferred"


def defer_until_commit(session: Session) -> None:
    """Hold this session's audit events until just before it commits.

    A read-only request (a page of pupils, one pupil's record) records its views early and
    then renders for tens of milliseconds; appending at that moment would hold the school's
    chain lock, and so every other view of that school, until the response is done.
    """
    session.info[_DEFERRED] = []


def stop_deferring(session: Session) -> None:
    """End :func:`defer_until_commit` (after the commit or rollback that closes the request)."""
    session.info.pop(_DEFERRED, None)


@event.listens_for(AttendwiseSession, "before_commit")
def _append_deferred(session: Session) -> None:
    deferred: list[_Deferred] | None = session.info.get(_DEFERRED)
    if not deferred:
        return
    session.flush()  # the flush's own change events join the list before it is written
    while deferred:
        item = deferred.pop(0)
        with tenancy.using(item.ctx):
            _append(session, item.events, item.actor, item.at)


@event.listens_for(AttendwiseSession, "after_soft_rollback")
def _drop_deferred(session: Session, previous_transaction: Any) -> None:
    deferred: list[_Deferred] | None = session.info.get(_DEFERRED)
    if deferred and previous_transaction.parent is None:
        deferred.clear()


def _append(session: Session, events: list[Event], actor: Actor, now: dt.datetime) -> None:
    sync_tenant(session)
    conn = session.connection()
    table = cast(Table, AuditEvent.__table__)
    by_org: dict[int, list[Event]] = {}
    for e in events:
        by_org.setdefault(e.org_id, []).append(e)
    for org_id in sorted(by_org):
        _lock_org_chain(conn, org_id)
        last = conn.execute(
            select(table.c.seq, table.c.row_hash)
            .where(table.c.org_id == org_id)
            .order_by(table.c.seq.desc())
            .limit(1)
        ).first()
        seq = last.seq if last else 0
        prev = last.row_hash if last else GENESIS
        rows = []
        occurred_at = _norm(now)
        for e in by_org[org_id]:
            seq += 1
            values: dict[str, Any] = {
                "org_id": org_id,
                "seq": seq,
                "occurred_at": now,
                "actor_user_id": actor.user_id,
                "actor_label": actor.label[:200],
                "action": e.action,
                "object_type": e.object_type,
                "object_id": None if e.object_id is None else str(e.object_id),
                "pupil_id": e.pupil_id,
                "detail": _DETAIL.encode(e.detail or {}),
                "ip": actor.ip,
                "request_id": actor.request_id,
            }
            row_hash = _hash(prev, dict(values, occurred_at=occurred_at))  # values holds HASHED_FIELDS
            values["prev_hash"], values["row_hash"] = prev, row_hash
            prev = row_hash
            rows.append(values)
        if conn.dialect.name == "postgresql" and len(rows) >= _COPY_FROM:
            _copy_in(conn, table, rows)
        else:
            conn.execute(insert(table), rows)


_COPY_FROM = 200  # events; fewer are inserted as they are, more (a school's import) through COPY


def _copy_in(conn: Any, table: Table, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: append many events through ``COPY`` into a temporary table (dropped at commit).

    ``COPY FROM`` refuses a table with row-level security; the ``INSERT ... SELECT`` from the
    temporary table runs under the tenant's policies like any insert, in ``seq`` order.
    """
    names = list(rows[0])
    columns = ", ".join(f"{n} {table.c[n].type.compile(dialect=conn.dialect)}" for n in names)
    with conn.connection.driver_connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS aw_stage_audit_events ({columns}) ON COMMIT DROP"
        )
        cursor.execute("TRUNCATE aw_stage_audit_events")
        with cursor.copy(f"COPY aw_stage_audit_events ({', '.join(names)}) FROM STDIN") as copy:
            for values in rows:
                copy.write_row([values[n] for n in names])
    stage = sql_table("aw_stage_audit_events", *(column(n) for n in names))
    conn.execute(insert(table).from_select(names, select(*(stage.c[n] for n in names)).order_by(stage.c.seq)))


@dataclass(frozen=True)
class ChainProblem:
    org_id: int
    seq: int
    event_id: int
    reason: str


def verify(session: Session, org_ids: list[int] | None = None) -> Iterator[ChainProblem]:
    """Recompute every organisation's chain; yield each row that does not fit."""
    table = cast(Table, AuditEvent.__table__)
    query = select(table).order_by(table.c.org_id, table.c.seq)
    if org_ids:
        query = query.where(table.c.org_id.in_(org_ids))
    current_org: int | None = None
    prev = GENESIS
    expected_seq = 1
    sync_tenant(session)
    for row in session.connection().execute(query).mappings():
        if row["org_id"] != current_org:
            current_org, prev, expected_seq = row["org_id"], GENESIS, 1
        if row["seq"] != expected_seq:
            yield ChainProblem(row["org_id"], row["seq"], row["id"], f"sequence gap: expected {expected_seq}")
        if row["prev_hash"] != prev:
            yield ChainProblem(row["org_id"], row["seq"], row["id"], "previous-hash link broken")
        if chain_hash(row["prev_hash"], dict(row)) != row["row_hash"]:
            yield ChainProblem(row["org_id"], row["seq"], row["id"], "row content does not match its hash")
        prev = row["row_hash"]
        expected_seq = row["seq"] + 1


def _changes(obj: Any) -> dict[str, Any]:
    state = inspect(obj)
    out: dict[str, Any] = {}
    for attr in state.mapper.column_attrs:
        hist = state.attrs[attr.key].history
        if hist.has_changes():
            new = hist.added[0] if hist.added else None
            out[attr.key] = new if isinstance(new, (int, float, bool, type(None))) else str(new)[:200]
    return out


@event.listens_for(AttendwiseSession, "after_flush")
def _audit_changes(session: Session, _flush_context: Any) -> None:
    pending: list[tuple[str, Any]] = []
    for action, objs in (("create", session.new), ("update", session.dirty), ("delete", session.deleted)):
        for obj in objs:
            if not isinstance(obj, TenantMixin) or getattr(type(obj), "__audit_skip__", False):
                continue
            if action == "update" and not session.is_modified(obj, include_collections=False):
                continue
            pending.append((action, obj))
    events = []
    for action, obj in pending:
        # New objects are still pending in after_flush (no identity key yet), but their
        # primary key attributes already hold the inserted values.
        ident = inspect(obj).mapper.primary_key_from_instance(obj)
        pupil_id = getattr(obj, "pupil_id", None)
        events.append(
            Event(
                org_id=obj.org_id,
                action=action,
                object_type=type(obj).__tablename__,
                object_id=ident[0] if len(ident) == 1 else ",".join(map(str, ident)),
                pupil_id=pupil_id if isinstance(pupil_id, int) else None,
                detail=_changes(obj) if action != "delete" else {},
            )
        )
    record_many(session, events)
