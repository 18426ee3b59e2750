"""Casework: a pupil's attendance case, its stage history, tasks, contacts, meetings, plans, support
and the append-only timeline.

One case is OPEN per pupil at a time (a partial unique index on both SQLite and PostgreSQL); when
a pupil leaves the ladder the case closes, and re-entering it opens a new episode. The case keeps
the engine's ladder state (stage, the day it was entered, the first stage of the episode, and the
counts on those days), so the next evaluation rebuilds :class:`~attendwise.policies.engine.LadderState`
from open cases alone. Rows people edit concurrently (cases, tasks, meetings, plans) carry a
``version`` column: a stale write raises ``StaleDataError`` instead of silently overwriting.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    Enum,
    Float,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from attendwise.attendance.models import Contact, Pupil
from attendwise.platform.db import Base, TenantMixin, TimestampMixin, utcnow


def _enum(cls: type[enum.Enum], length: int = 24) -> Enum:
    return Enum(cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e])


class CaseStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class StageSource(enum.StrEnum):
    ENGINE = "engine"
    PERSON = "person"


class TaskKind(enum.StrEnum):
    """The policy engine's action vocabulary, plus the DSL's safeguarding follow-up."""

    PHONE_CALL = "phone_call"
    LETTER = "letter"
    EMAIL = "email"
    MEETING = "meeting"
    HOME_VISIT = "home_visit"
    ACTION_PLAN = "action_plan"
    REVIEW = "review"
    ATTENDANCE_CONTRACT = "attendance_contract"
    EARLY_HELP = "early_help"
    NOTICE_TO_IMPROVE = "notice_to_improve"
    REFERRAL = "referral"
    CODE_GUIDANCE = "code_guidance"
    REWARD = "reward"
    SAFEGUARDING = "safeguarding"


class TaskStatus(enum.StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class SignoffDecision(enum.StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"


class ContactChannel(enum.StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    TEXT = "text"
    HOME_VISIT = "home_visit"
    LETTER = "letter"


class ContactOutcome(enum.StrEnum):
    SPOKE_TO = "spoke_to"
    NO_ANSWER = "no_answer"
    MESSAGE_LEFT = "message_left"
    NUMBER_WRONG = "number_wrong"
    SENT = "sent"
    SEEN = "seen"
    NOT_SEEN = "not_seen"
    CONCERNS = "concerns"


OUTCOMES_BY_CHANNEL: dict[ContactChannel, tuple[ContactOutcome, ...]] = {
    ContactChannel.PHONE: (
        ContactOutcome.SPOKE_TO,
        ContactOutcome.NO_ANSWER,
        ContactOutcome.MESSAGE_LEFT,
        ContactOutcome.NUMBER_WRONG,
    ),
    ContactChannel.EMAIL: (ContactOutcome.SENT,),
    ContactChannel.TEXT: (ContactOutcome.SENT,),
    ContactChannel.HOME_VISIT: (ContactOutcome.SEEN, ContactOutcome.NOT_SEEN, ContactOutcome.CONCERNS),
    ContactChannel.LETTER: (ContactOutcome.SENT,),
}


class MeetingStatus(enum.StrEnum):
    INVITED = "invited"
    ATTENDED = "attended"
    MISSED = "missed"
    REARRANGED = "rearranged"


class PlanStatus(enum.StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"


class ReviewOutcome(enum.StrEnum):
    CLOSE = "close"
    CONTINUE = "continue"
    ESCALATE = "escalate"


class SupportStatus(enum.StrEnum):
    OFFERED = "offered"
    ACCEPTED = "accepted"
    DECLINED = "declined"


class Case(TenantMixin, TimestampMixin, Base):
    """One episode of a pupil's attendance casework, with the ladder state the engine needs."""

    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("pupil_id", "episode"),
        Index(
            "uq_cases_one_open_per_pupil",
            "pupil_id",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_cases_org_status_stage", "org_id", "status", "stage"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id", ondelete="CASCADE"), index=True)
    episode: Mapped[int] = mapped_column(SmallInteger, default=1)
    status: Mapped[CaseStatus] = mapped_column(_enum(CaseStatus), default=CaseStatus.OPEN)
    stage: Mapped[int] = mapped_column(SmallInteger)
    stage_name: Mapped[str] = mapped_column(String(200))
    stage_entered_on: Mapped[dt.date] = mapped_column(Date)
    ladder_entered_on: Mapped[dt.date] = mapped_column(Date)
    snapshot: Mapped[list[float]] = mapped_column(JSON, default=list)
    snapshot_year: Mapped[int] = mapped_column(default=0)
    ladder_snapshot: Mapped[list[float]] = mapped_column(JSON, default=list)
    ladder_year: Mapped[int] = mapped_column(default=0)
    attendance_at_entry: Mapped[float | None] = mapped_column(Float)
    explanation: Mapped[str] = mapped_column(Text, default="")
    policy_key: Mapped[str] = mapped_column(String(100), default="")
    lead_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    opened_on: Mapped[dt.date] = mapped_column(Date)
    closed_on: Mapped[dt.date | None] = mapped_column(Date)
    version: Mapped[int] = mapped_column(default=1)

    pupil: Mapped[Pupil] = relationship(lazy="joined", innerjoin=True)
    stage_changes: Mapped[list[StageChange]] = relationship(
        back_populates="case", order_by="StageChange.id", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}


class StageChange(TenantMixin, Base):
    """A move between stages, by the engine or a person, with the policy version it was made under."""

    __tablename__ = "case_stage_changes"
    __table_args__ = (UniqueConstraint("org_id", "decision_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    from_stage: Mapped[int] = mapped_column(SmallInteger)
    from_name: Mapped[str] = mapped_column(String(200))
    to_stage: Mapped[int] = mapped_column(SmallInteger)
    to_name: Mapped[str] = mapped_column(String(200))
    source: Mapped[StageSource] = mapped_column(_enum(StageSource, 10))
    policy_key: Mapped[str] = mapped_column(String(100))
    explanation: Mapped[str] = mapped_column(Text)
    decision_key: Mapped[str | None] = mapped_column(String(200))
    changed_on: Mapped[dt.date] = mapped_column(Date)
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    case: Mapped[Case] = relationship(back_populates="stage_changes")


class Task(TenantMixin, TimestampMixin, Base):
    """Something to do for a pupil: from the engine (keyed, so never duplicated) or a person."""

    __tablename__ = "case_tasks"
    __table_args__ = (
        UniqueConstraint("org_id", "idempotency_key"),
        Index("ix_case_tasks_org_status_due", "org_id", "status", "due_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id", ondelete="CASCADE"), index=True)
    kind: Mapped[TaskKind] = mapped_column(_enum(TaskKind))
    title: Mapped[str] = mapped_column(String(300))
    detail: Mapped[str] = mapped_column(Text, default="")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    stage: Mapped[int | None] = mapped_column(SmallInteger)
    policy_key: Mapped[str] = mapped_column(String(100), default="")
    due_on: Mapped[dt.date] = mapped_column(Date)
    assignee_role: Mapped[str | None] = mapped_column(String(40))
    assignee_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[TaskStatus] = mapped_column(_enum(TaskStatus), default=TaskStatus.OPEN)
    completed_at: Mapped[dt.datetime | None] = mapped_column()
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    completion_note: Mapped[str] = mapped_column(Text, default="")
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    needs_signoff: Mapped[bool] = mapped_column(default=False)
    signoff_role: Mapped[str | None] = mapped_column(String(40))
    signoff_decision: Mapped[SignoffDecision | None] = mapped_column(_enum(SignoffDecision, 10))
    signoff_reason: Mapped[str] = mapped_column(Text, default="")
    signoff_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    signoff_at: Mapped[dt.datetime | None] = mapped_column()
    proposed_move: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """For a proposed stage change waiting for sign-off: the move and its entry actions."""
    version: Mapped[int] = mapped_column(default=1)

    pupil: Mapped[Pupil] = relationship(lazy="joined", innerjoin=True)

    __mapper_args__ = {"version_id_col": version}

    @property
    def waiting_for_signoff(self) -> bool:
        return self.needs_signoff and self.signoff_decision is None and self.status == TaskStatus.OPEN


class ContactLog(TenantMixin, TimestampMixin, Base):
    """A call, email, text, home visit or letter: who made it, when, with whom, and what happened."""

    __tablename__ = "case_contacts"
    __table_args__ = (UniqueConstraint("org_id", "letter_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    channel: Mapped[ContactChannel] = mapped_column(_enum(ContactChannel, 12))
    outcome: Mapped[ContactOutcome] = mapped_column(_enum(ContactOutcome, 16))
    note: Mapped[str] = mapped_column(Text, default="")
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    safeguarding: Mapped[bool] = mapped_column(default=False)
    dsl_task_id: Mapped[int | None] = mapped_column(ForeignKey("case_tasks.id", ondelete="SET NULL"))
    letter_id: Mapped[int | None] = mapped_column()
    """The letter this entry records (letters package id), so a delivery is logged once only."""

    contact: Mapped[Contact | None] = relationship()


class Meeting(TenantMixin, TimestampMixin, Base):
    """An invitation, whether it happened, and minutes in the signs-of-safety form."""

    __tablename__ = "case_meetings"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[dt.datetime] = mapped_column()
    place: Mapped[str] = mapped_column(String(200))
    invitees: Mapped[list[str]] = mapped_column(JSON, default=list)
    agenda: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[MeetingStatus] = mapped_column(_enum(MeetingStatus, 12), default=MeetingStatus.INVITED)
    attendance_recorded_at: Mapped[dt.datetime | None] = mapped_column()
    who_attended: Mapped[str] = mapped_column(Text, default="")
    going_well: Mapped[str] = mapped_column(Text, default="")
    concerns: Mapped[str] = mapped_column(Text, default="")
    wellbeing_goals: Mapped[str] = mapped_column(Text, default="")
    agreed_actions: Mapped[str] = mapped_column(Text, default="")
    minutes_recorded_at: Mapped[dt.datetime | None] = mapped_column()
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}


class ActionPlan(TenantMixin, TimestampMixin, Base):
    """An attendance action plan (or contract): targets, support, owners and a review date."""

    __tablename__ = "case_action_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    target_attendance: Mapped[float] = mapped_column(Float)
    target_weeks: Mapped[int] = mapped_column(SmallInteger)
    support_agreed: Mapped[list[str]] = mapped_column(JSON, default=list)
    owners: Mapped[list[str]] = mapped_column(JSON, default=list)
    starts_on: Mapped[dt.date] = mapped_column(Date)
    review_on: Mapped[dt.date] = mapped_column(Date)
    is_contract: Mapped[bool] = mapped_column(default=False)
    review_period_weeks: Mapped[int | None] = mapped_column(SmallInteger)
    status: Mapped[PlanStatus] = mapped_column(_enum(PlanStatus, 10), default=PlanStatus.ACTIVE)
    version: Mapped[int] = mapped_column(default=1)

    reviews: Mapped[list[PlanReview]] = relationship(back_populates="plan", order_by="PlanReview.id")

    __mapper_args__ = {"version_id_col": version}

    @property
    def target_text(self) -> str:
        return f"attendance above {self.target_attendance:g}% over the next {self.target_weeks} weeks"


class PlanReview(TenantMixin, TimestampMixin, Base):
    """A review of a plan: attendance since it started, measured from the marks, and the outcome."""

    __tablename__ = "case_plan_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("case_action_plans.id", ondelete="CASCADE"), index=True)
    reviewed_on: Mapped[dt.date] = mapped_column(Date)
    measured_attendance: Mapped[float | None] = mapped_column(Float)
    targets_met: Mapped[bool] = mapped_column()
    outcome: Mapped[ReviewOutcome] = mapped_column(_enum(ReviewOutcome, 10))
    note: Mapped[str] = mapped_column(Text, default="")
    by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    plan: Mapped[ActionPlan] = relationship(back_populates="reviews")


class SupportRecord(TenantMixin, TimestampMixin, Base):
    """Support first: barriers identified, support offered and its answer, agencies, early help."""

    __tablename__ = "case_support"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    barriers: Mapped[list[str]] = mapped_column(JSON, default=list)
    support: Mapped[str] = mapped_column(Text)
    status: Mapped[SupportStatus] = mapped_column(_enum(SupportStatus, 10))
    agencies: Mapped[list[str]] = mapped_column(JSON, default=list)
    early_help_offered: Mapped[bool] = mapped_column(default=False)
    early_help_started: Mapped[bool] = mapped_column(default=False)
    recorded_on: Mapped[dt.date] = mapped_column(Date)
    by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class CaseEvent(TenantMixin, Base):
    """An event the policy reads (meeting missed, review targets met, support declined, ...)."""

    __tablename__ = "case_events"
    __table_args__ = (Index("ix_case_events_org_on", "org_id", "occurred_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(40))
    occurred_on: Mapped[dt.date] = mapped_column(Date)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TimelineEntry(TenantMixin, Base):
    """One line of a case's history. Append-only: a correction is a new entry pointing at the old."""

    __tablename__ = "case_timeline"
    # Each entry is written alongside an audited change (the task, contact, meeting, plan or
    # stage change it describes) and an evaluation records one audit event per batch.
    __audit_skip__ = True
    __table_args__ = (Index("ix_case_timeline_case_at", "case_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    object_type: Mapped[str | None] = mapped_column(String(40))
    object_id: Mapped[int | None] = mapped_column()
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("case_timeline.id", ondelete="RESTRICT"))


class TimelineIsAppendOnly(RuntimeError):
    pass


@event.listens_for(TimelineEntry, "before_update")
def _refuse_timeline_update(_mapper: Any, _connection: Any, target: TimelineEntry) -> None:
    raise TimelineIsAppendOnly(f"timeline entry {target.id} cannot be edited: add a correction instead")


@event.listens_for(TimelineEntry, "before_delete")
def _refuse_timeline_delete(_mapper: Any, _connection: Any, target: TimelineEntry) -> None:
    raise TimelineIsAppendOnly(f"timeline entry {target.id} cannot be deleted: add a correction instead")


class ScheduledEvaluation(TenantMixin, Base):
    """One school-local day's scheduled run of the policy engine: queued once, then its outcome.

    The unique (school, day) pair is what makes the scheduler run each school once a day however
    often it looks, and however many schedulers race (``casework.jobs.dispatch_due_evaluations``).
    """

    __tablename__ = "case_scheduled_evaluations"
    __table_args__ = (UniqueConstraint("org_id", "school_day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_day: Mapped[dt.date] = mapped_column(Date)
    after: Mapped[str] = mapped_column(String(20))
    """Why it ran when it did: ``no_sync`` (no MIS sync scheduled), ``sync`` (today's sync had
    finished) or ``sync_overdue`` (today's sync had not finished hours after its time)."""
    queued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    evaluated: Mapped[int | None] = mapped_column()
    transitions: Mapped[int | None] = mapped_column()
    tasks_created: Mapped[int | None] = mapped_column()
