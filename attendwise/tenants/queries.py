"""Read-only queries for the organisation pages (members, invitations, the audit log)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from attendwise.platform.audit import AuditEvent
from attendwise.platform.db import utcnow
from attendwise.tenants.models import Invitation, Membership, Organisation, OrgKind, User


def members(session: Session, org_id: int) -> list[tuple[Membership, User]]:
    """Everyone who has or had a role in the organisation, active first, by name."""
    rows = session.execute(
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.org_id == org_id)
        .order_by(Membership.active.desc(), func.lower(User.display_name), User.email)
    ).all()
    return [(m, u) for m, u in rows]


def membership_in(session: Session, org_id: int, membership_id: int) -> Membership | None:
    """A membership of this organisation only (another organisation's is simply not found)."""
    return session.scalar(
        select(Membership).where(Membership.id == membership_id, Membership.org_id == org_id)
    )


def open_invitations(session: Session, org_id: int) -> list[Invitation]:
    """Invitations not yet accepted, revoked or expired (explicitly this organisation's: a
    trust's read scope also covers its schools)."""
    return list(
        session.scalars(
            select(Invitation)
            .where(
                Invitation.org_id == org_id,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > utcnow(),
            )
            .order_by(Invitation.created_at.desc())
        )
    )


def organisations(session: Session, kind: OrgKind) -> list[Organisation]:
    return list(
        session.scalars(select(Organisation).where(Organisation.kind == kind).order_by(Organisation.name))
    )


def school_counts(session: Session, column: str) -> dict[int, int]:
    """Schools per local authority (``la_id``) or per trust (``trust_id``)."""
    key = getattr(Organisation, column)
    rows = session.execute(
        select(key, func.count()).where(Organisation.kind == OrgKind.SCHOOL, key.is_not(None)).group_by(key)
    ).all()
    return {int(k): int(n) for k, n in rows}


def member_schools(session: Session, org: Organisation) -> list[Organisation]:
    """The schools of a local authority or trust."""
    if org.kind == OrgKind.SCHOOL:
        return []
    column = Organisation.la_id if org.kind == OrgKind.LA else Organisation.trust_id
    return list(session.scalars(select(Organisation).where(column == org.id).order_by(Organisation.name)))


def search_schools(session: Session, text: str, limit: int = 50) -> list[Organisation]:
    query = select(Organisation).where(Organisation.kind == OrgKind.SCHOOL)
    text = text.strip()
    if text:
        pattern = f"%{text.lower()}%"
        query = query.where(
            or_(
                func.lower(Organisation.name).like(pattern),
                Organisation.urn == text,
                Organisation.laestab == text,
            )
        )
    return list(session.scalars(query.order_by(Organisation.name).limit(limit)))


@dataclass(frozen=True)
class AuditFilter:
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    actor: str = ""
    action: str = ""
    pupil_id: int | None = None


def audit_query(org_id: int, f: AuditFilter) -> Select[Any]:
    """This organisation's own events (never its member schools'), newest first."""
    query = select(AuditEvent).where(AuditEvent.org_id == org_id)
    if f.date_from:
        query = query.where(AuditEvent.occurred_at >= _start_of(f.date_from))
    if f.date_to:
        query = query.where(AuditEvent.occurred_at < _start_of(f.date_to + dt.timedelta(days=1)))
    if f.actor:
        query = query.where(func.lower(AuditEvent.actor_label).contains(f.actor.lower(), autoescape=True))
    if f.action:
        query = query.where(AuditEvent.action.startswith(f.action, autoescape=True))
    if f.pupil_id is not None:
        query = query.where(AuditEvent.pupil_id == f.pupil_id)
    return query.order_by(AuditEvent.seq.desc())


def _start_of(day: dt.date) -> dt.datetime:
    """Midnight at the start of ``day`` in England, as UTC (searches are by the local date)."""
    from zoneinfo import ZoneInfo

    return dt.datetime.combine(day, dt.time(), tzinfo=ZoneInfo("Europe/London")).astimezone(dt.UTC)


def audit_page(
    session: Session, org_id: int, f: AuditFilter, page: int, per_page: int
) -> tuple[list[AuditEvent], int]:
    """One page of events and the total number matching."""
    query = audit_query(org_id, f)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    events = list(session.scalars(query.offset((page - 1) * per_page).limit(per_page)))
    return events, int(total)


def audit_actions(session: Session, org_id: int) -> list[str]:
    """The distinct actions recorded for this organisation (for the filter's choices)."""
    return list(
        session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.org_id == org_id)
            .distinct()
            .order_by(AuditEvent.action)
        )
    )
