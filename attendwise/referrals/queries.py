"""Read helpers for the referral pages: the LA queue and its filters, the thread, the penalty panel."""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.attendance import calendar as cal
from attendwise.platform import tenancy
from attendwise.platform.auth import Principal
from attendwise.referrals import penalty, services
from attendwise.referrals.models import (
    KindKey,
    PenaltyNotice,
    ReceivedReferral,
    ReferralKind,
    ReferralMessage,
    Status,
)
from attendwise.tenants import roles
from attendwise.tenants.models import Membership, Organisation, User


def kinds_for_school(session: Session, school: Organisation) -> list[tuple[str, str]]:
    """(key, label) of every kind the school's LA accepts."""
    if school.la_id is None:
        return []
    with tenancy.system_context("referrals: list the LA's referral kinds for one of its schools"):
        rows = session.execute(
            select(ReferralKind.key, ReferralKind.label)
            .where(ReferralKind.org_id == school.la_id, ReferralKind.enabled.is_(True))
            .order_by(ReferralKind.id)
        ).all()
    return [(k.value, label) for k, label in rows]


@dataclass(frozen=True)
class QueueFilters:
    kind: KindKey | None = None
    school_id: int | None = None
    status: Status | None = None
    officer_id: int | None = None
    due_by: dt.date | None = None
    open_only: bool = True
    unpaid_only: bool = False

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> QueueFilters:
        def pick(enum_cls: Any, raw: str | None) -> Any:
            try:
                return enum_cls(raw) if raw else None
            except ValueError:
                return None

        def number(raw: str | None) -> int | None:
            return int(raw) if raw and raw.isdigit() else None

        due_raw = args.get("due_by") or ""
        try:
            due = dt.date.fromisoformat(due_raw) if due_raw else None
        except ValueError:
            due = None
        return cls(
            kind=pick(KindKey, args.get("kind")),
            school_id=number(args.get("school")),
            status=pick(Status, args.get("status")),
            officer_id=number(args.get("officer")),
            due_by=due,
            open_only=args.get("all") != "1",
            unpaid_only=args.get("unpaid") == "1",
        )


@dataclass(frozen=True)
class QueueRow:
    received: ReceivedReferral
    working_days_left: int
    overdue: bool
    paused: bool
    unpaid_notices: int = 0


def queue(session: Session, filters: QueueFilters, today: dt.date) -> list[QueueRow]:
    """The LA's received referrals, most urgent first, with their service-level position."""
    query = select(ReceivedReferral).order_by(ReceivedReferral.due_on, ReceivedReferral.id)
    if filters.kind:
        query = query.where(ReceivedReferral.kind == filters.kind)
    if filters.school_id:
        query = query.where(ReceivedReferral.source_org_id == filters.school_id)
    if filters.status:
        query = query.where(ReceivedReferral.status == filters.status)
    elif filters.open_only and not filters.unpaid_only:
        query = query.where(ReceivedReferral.status.notin_([Status.CLOSED, Status.DECLINED]))
    if filters.officer_id:
        query = query.where(ReceivedReferral.assigned_user_id == filters.officer_id)
    if filters.due_by:
        query = query.where(ReceivedReferral.due_on <= filters.due_by)
    unpaid: dict[int, int] = {}
    for notice in session.scalars(
        select(PenaltyNotice).where(
            PenaltyNotice.received_id.is_not(None),
            PenaltyNotice.status.in_([penalty.NoticeStatus.ISSUED, penalty.NoticeStatus.UNPAID]),
        )
    ):
        if notice.received_id is not None and services.notice_unpaid(notice, today):
            unpaid[notice.received_id] = unpaid.get(notice.received_id, 0) + 1
    rows = []
    for received in session.scalars(query):
        if filters.unpaid_only and received.id not in unpaid:
            continue
        paused = received.paused_on is not None
        if received.due_on >= today:
            left = cal.working_days(today, received.due_on) - (1 if cal.is_working_day(today) else 0)
        else:
            left = -cal.working_days(received.due_on, today) + 1
        active = received.status not in (Status.DECIDED, Status.CLOSED, Status.DECLINED)
        rows.append(
            QueueRow(
                received,
                left,
                active and not paused and received.due_on < today,
                paused,
                unpaid.get(received.id, 0),
            )
        )
    return rows


def schools_in_queue(session: Session) -> list[tuple[int, str]]:
    return [
        (org_id, name)
        for org_id, name in session.execute(
            select(ReceivedReferral.source_org_id, ReceivedReferral.school_name)
            .distinct()
            .order_by(ReceivedReferral.school_name)
        )
    ]


def officers(session: Session, principal: Principal) -> list[tuple[int, str]]:
    """The people of the principal's LA who can triage referrals."""
    assert principal.organisation is not None
    triage = [r.key for r in roles.ROLES.values() if roles.Perm.REFERRALS_TRIAGE in r.perms]
    return [
        (user_id, name)
        for user_id, name in session.execute(
            select(User.id, User.display_name)
            .join(Membership, Membership.user_id == User.id)
            .where(
                Membership.org_id == principal.organisation.id,
                Membership.active.is_(True),
                Membership.role.in_(triage),
            )
            .order_by(User.display_name)
        )
    ]


def thread_for_received(session: Session, received: ReceivedReferral) -> list[ReferralMessage]:
    return list(
        session.scalars(
            select(ReferralMessage)
            .where(ReferralMessage.received_id == received.id)
            .order_by(ReferralMessage.id)
        )
    )


def parents_of(received: ReceivedReferral) -> list[dict[str, Any]]:
    return [i["content"] for i in received.bundle["items"] if i["section"] == "parents"]


def _windows(received: ReceivedReferral) -> list[dict[str, Any]]:
    for item in received.bundle["items"]:
        if item["section"] == "registration_certificate":
            return list(item["content"].get("penalty_windows", []))
    return []


def unused_window_sessions(
    session: Session, received: ReceivedReferral, parent: str, window: int
) -> list[penalty.SessionKey]:
    """The sessions of the frozen bundle's ``window`` not used by a standing notice on this ledger."""
    windows = _windows(received)
    if not 0 <= window < len(windows):
        raise services.ReferralError("the bundle has no penalty-notice window to rely on")
    used = {
        (dt.date.fromisoformat(d), s)
        for n in services.ledger(session, received.org_id, parent, received.child_key)
        if n.status is not penalty.NoticeStatus.WITHDRAWN
        for d, s in n.sessions
    }
    keys = [(dt.date.fromisoformat(d), s) for d, s, _code in windows[window]["sessions"]]
    unused = [k for k in keys if k not in used]
    if len(unused) < penalty.PN_THRESHOLD:
        raise services.ReferralError(
            f"only {len(unused)} sessions of this window are not already used by another notice; "
            f"a notice needs {penalty.PN_THRESHOLD}"
        )
    return unused


@dataclass(frozen=True)
class ParentLedger:
    parent: dict[str, Any]
    notices: list[PenaltyNotice]
    next_notice: penalty.Terms | penalty.Refusal | None
    reason: str


@dataclass(frozen=True)
class PenaltyPanel:
    windows: list[dict[str, Any]]
    ledgers: list[ParentLedger]
    clock: penalty.ProsecutionClock | None


def penalty_panel(session: Session, received: ReceivedReferral, today: dt.date) -> PenaltyPanel:
    """Eligibility windows from the frozen bundle and, per parent, the ledger and the next notice."""
    windows = _windows(received)
    ledgers = []
    for parent in parents_of(received):
        notices = services.ledger(session, received.org_id, parent["parent_key"], received.child_key)
        next_notice: penalty.Terms | penalty.Refusal | None = services.notice_refusal(
            session, received, parent["parent_key"], today
        )
        reason = ""
        if windows and next_notice is None:
            try:
                sessions = unused_window_sessions(session, received, parent["parent_key"], 0)
                next_notice = services.assess_notice(session, received, parent["parent_key"], sessions, today)
            except (services.ReferralError, penalty.PenaltyError) as exc:
                reason = str(exc)
        ledgers.append(ParentLedger(parent, notices, next_notice, reason))
    clock = None
    if windows:
        last = max(dt.date.fromisoformat(d) for d, _s, _c in windows[-1]["sessions"])
        clock = penalty.prosecution_clock([(last, "PM")], today)
    return PenaltyPanel(windows, ledgers, clock)


def referrals_by_status(session: Session, start: dt.date, end: dt.date) -> dict[str, int]:
    """The current school's referrals submitted from ``start`` to ``end``, counted by status."""
    from sqlalchemy import func

    from attendwise.referrals.models import Referral

    low = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    high = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    rows = session.execute(
        select(Referral.status, func.count())
        .where(Referral.submitted_at >= low, Referral.submitted_at < high)
        .group_by(Referral.status)
    ).all()
    return {Status(status).value: int(n) for status, n in rows}


def referrals_returned(session: Session, start: dt.date, end: dt.date) -> tuple[int, int]:
    """The current school's referrals submitted from ``start`` to ``end``, and how many of them
    the LA asked more information about: ``(submitted, returned)``."""
    from sqlalchemy import func

    from attendwise.referrals.models import Referral

    low = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    high = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    submitted = select(Referral.id).where(Referral.submitted_at >= low, Referral.submitted_at < high)
    total = session.scalar(select(func.count()).select_from(submitted.subquery()))
    returned = session.scalar(
        select(func.count(func.distinct(ReferralMessage.referral_id))).where(
            ReferralMessage.requests_information.is_(True),
            ReferralMessage.referral_id.in_(submitted.scalar_subquery()),
        )
    )
    return int(total or 0), int(returned or 0)


# -- the LA overview ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchoolLine:
    school: str
    referrals: int
    open: int
    sent_back: int

    @property
    def sent_back_pct(self) -> float:
        return 100.0 * self.sent_back / self.referrals if self.referrals else 0.0


@dataclass(frozen=True)
class Overview:
    total: int
    by_kind: list[tuple[str, int]]
    by_status: list[tuple[str, int]]
    schools: list[SchoolLine]
    concluded: int
    within_sla: int
    median_working_days: float | None
    overdue_now: int

    @property
    def within_sla_pct(self) -> float | None:
        return 100.0 * self.within_sla / self.concluded if self.concluded else None


def elapsed_working_days(received: ReceivedReferral) -> int | None:
    """Working days from submission to the decision or decline, not counting days the clock was
    paused waiting for the school; None while the referral is still open."""
    if received.concluded_on is None:
        return None
    if received.concluded_on <= received.submitted_on:
        return 0
    days = cal.working_days(received.submitted_on + dt.timedelta(days=1), received.concluded_on)
    return max(days - received.paused_working_days, 0)


def overview(session: Session, today: dt.date) -> Overview:
    """The LA's referrals by kind, status and school, and its service-level performance."""
    rows = session.scalars(select(ReceivedReferral).order_by(ReceivedReferral.id)).all()
    sent_back = set(
        session.scalars(
            select(ReferralMessage.received_id)
            .where(ReferralMessage.received_id.is_not(None), ReferralMessage.requests_information.is_(True))
            .distinct()
        )
    )
    kinds: dict[str, int] = {}
    statuses: dict[Status, int] = {}
    schools: dict[int, list[ReceivedReferral]] = {}
    for r in rows:
        kinds[r.kind_label] = kinds.get(r.kind_label, 0) + 1
        statuses[r.status] = statuses.get(r.status, 0) + 1
        schools.setdefault(r.source_org_id, []).append(r)
    finished = (Status.DECIDED, Status.CLOSED, Status.DECLINED)
    lines = sorted(
        (
            SchoolLine(
                school=group[-1].school_name,
                referrals=len(group),
                open=sum(r.status not in finished for r in group),
                sent_back=sum(r.id in sent_back for r in group),
            )
            for group in schools.values()
        ),
        key=lambda line: (-line.referrals, line.school),
    )
    concluded = [r for r in rows if r.concluded_on is not None]
    elapsed = sorted(d for r in concluded if (d := elapsed_working_days(r)) is not None)
    return Overview(
        total=len(rows),
        by_kind=sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])),
        by_status=[(s.value.replace("_", " ").capitalize(), statuses[s]) for s in Status if s in statuses],
        schools=lines,
        concluded=len(concluded),
        within_sla=sum(r.concluded_on is not None and r.concluded_on <= r.due_on for r in concluded),
        median_working_days=float(statistics.median(elapsed)) if elapsed else None,
        overdue_now=sum(
            r.status in (Status.SUBMITTED, Status.ACKNOWLEDGED, Status.ACCEPTED)
            and r.paused_on is None
            and r.due_on < today
            for r in rows
        ),
    )
