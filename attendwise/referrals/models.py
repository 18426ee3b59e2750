"""Referrals from schools to their local authority, and the LA's side of them.

Privacy by construction: a :class:`Referral` belongs to the school that makes it. On submission
its evidence bundle is frozen into rows owned by the LA (:class:`ReceivedReferral` and its
:class:`BundleItem` rows, with a SHA-256 hash of the canonical bundle), so the LA officer reads
only LA-owned rows and never a school's pupil, case or document. Later changes at the school do
not alter what the LA received. Status changes the LA makes are mirrored onto the school's
referral by :mod:`attendwise.referrals.services` inside a named, audited system context; that
is the only place one tenant's action writes another tenant's row.

The penalty-notice ledger (:class:`PenaltyNotice`) is LA-owned and keyed by keyed hashes of the
parent's and the child's identity, so it spans every school in the LA.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    Enum,
    ForeignKey,
    Index,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from attendwise.platform.db import Base, TenantMixin, TimestampMixin, utcnow
from attendwise.referrals.penalty import NoticeStatus


def _enum(cls: type[enum.Enum], length: int = 32) -> Enum:
    return Enum(cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e])


class KindKey(enum.StrEnum):
    NOTICE_TO_IMPROVE = "notice_to_improve"
    PENALTY_NOTICE = "penalty_notice"
    COURT_WARNING = "court_warning"
    REVIEW_CONFERENCE = "review_conference"
    ESS_REFERRAL = "ess_referral"
    EARLY_HELP = "early_help"
    TEN_DAYS_UNAUTHORISED = "ten_days_unauthorised"
    FIFTEEN_DAYS_ILLNESS = "fifteen_days_illness"
    WHEREABOUTS_UNKNOWN = "whereabouts_unknown"


class Issuer(enum.StrEnum):
    LA = "la"
    SCHOOL = "school"
    EITHER = "either"


class Status(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    ACKNOWLEDGED = "acknowledged"
    MORE_INFORMATION_REQUESTED = "more_information_requested"
    ACCEPTED = "accepted"
    DECIDED = "decided"
    CLOSED = "closed"
    DECLINED = "declined"


class DecisionKind(enum.StrEnum):
    NTI_ISSUED = "nti_issued"
    PN_ISSUED = "pn_issued"
    COURT_WARNING = "court_warning"
    REVIEW_CONFERENCE = "review_conference"
    ESO_CONSIDERED = "eso_considered"
    PROSECUTION_CONSIDERED = "prosecution_considered"
    RETURNED_TO_SCHOOL = "returned_to_school"

    @property
    def label(self) -> str:
        return _DECISION_LABELS[self]


_DECISION_LABELS = {
    DecisionKind.NTI_ISSUED: "Notice to improve issued",
    DecisionKind.PN_ISSUED: "Penalty notice issued",
    DecisionKind.COURT_WARNING: "Court warning issued",
    DecisionKind.REVIEW_CONFERENCE: "Attendance review conference scheduled",
    DecisionKind.ESO_CONSIDERED: "Education supervision order considered",
    DecisionKind.PROSECUTION_CONSIDERED: "Prosecution considered",
    DecisionKind.RETURNED_TO_SCHOOL: "Returned to school support",
}


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"


class WebhookEvent(enum.StrEnum):
    REFERRAL_SUBMITTED = "referral.submitted"
    REFERRAL_STATUS_CHANGED = "referral.status_changed"
    REFERRAL_DECIDED = "referral.decided"
    PENALTY_NOTICE_CHANGED = "penalty_notice.changed"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class LAProfile(TenantMixin, TimestampMixin, Base):
    """An LA's code-of-conduct parameters and where its notifications go."""

    __tablename__ = "la_referral_profiles"
    __table_args__ = (
        UniqueConstraint("org_id"),
        CheckConstraint(
            "improvement_period_school_days BETWEEN 15 AND 30", name="improvement_period_15_to_30"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    nti_issuer: Mapped[Issuer] = mapped_column(_enum(Issuer), default=Issuer.LA)
    pn_issuer: Mapped[Issuer] = mapped_column(_enum(Issuer), default=Issuer.LA)
    improvement_period_school_days: Mapped[int] = mapped_column(SmallInteger, default=30)
    team_email: Mapped[str] = mapped_column(String(254), default="")
    daily_digest: Mapped[bool] = mapped_column(default=False)


class ReferralKind(TenantMixin, TimestampMixin, Base):
    """One kind of referral an LA accepts, with its evidence checklist and service level.

    ``checklist`` is a list of ``{"key", "label", "weeks"}``: evidence of that kind (e.g. a
    letter, a contact, support) dated within the last ``weeks`` weeks, or for the registration
    certificate the number of school weeks it must cover.
    """

    __tablename__ = "referral_kinds"
    __table_args__ = (UniqueConstraint("org_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[KindKey] = mapped_column(_enum(KindKey))
    label: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(default=True)
    statutory: Mapped[bool] = mapped_column(default=False)
    checklist: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    signoff_role: Mapped[str] = mapped_column(String(60), default="senior_attendance_champion")
    sla_working_days: Mapped[int] = mapped_column(SmallInteger, default=10)


class Referral(TenantMixin, TimestampMixin, Base):
    """A school's referral of one pupil (owned by the school)."""

    __tablename__ = "referrals"
    __table_args__ = (Index("ix_referrals_org_status", "org_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    la_org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"), index=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id", ondelete="CASCADE"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"), index=True)
    kind: Mapped[KindKey] = mapped_column(_enum(KindKey))
    kind_label: Mapped[str] = mapped_column(String(200))
    status: Mapped[Status] = mapped_column(_enum(Status), default=Status.DRAFT)
    reason: Mapped[str] = mapped_column(Text, default="")
    supplied: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    signed_off_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    signed_off_at: Mapped[dt.datetime | None] = mapped_column()
    submitted_at: Mapped[dt.datetime | None] = mapped_column()
    received_id: Mapped[int | None] = mapped_column(
        ForeignKey("received_referrals.id", ondelete="SET NULL"), index=True
    )
    bundle_hash: Mapped[str] = mapped_column(String(64), default="")
    la_status_note: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(default=1)

    messages: Mapped[list[ReferralMessage]] = relationship(
        primaryjoin="Referral.id == foreign(ReferralMessage.referral_id)",
        order_by="ReferralMessage.id",
        viewonly=True,
    )

    __mapper_args__ = {"version_id_col": version}


class ReceivedReferral(TenantMixin, TimestampMixin, Base):
    """The LA's frozen copy of a submitted referral (owned by the LA)."""

    __tablename__ = "received_referrals"
    __table_args__ = (
        UniqueConstraint("source_org_id", "source_referral_id"),
        Index("ix_received_referrals_org_status_due", "org_id", "status", "due_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_org_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    source_referral_id: Mapped[int] = mapped_column()
    school_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[KindKey] = mapped_column(_enum(KindKey))
    kind_label: Mapped[str] = mapped_column(String(200))
    status: Mapped[Status] = mapped_column(_enum(Status), default=Status.SUBMITTED)
    pupil_name: Mapped[str] = mapped_column(String(200))
    pupil_upn: Mapped[str] = mapped_column(String(13))
    pupil_dob: Mapped[dt.date] = mapped_column(Date)
    child_key: Mapped[str] = mapped_column(String(64), index=True)
    submitted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    submitted_on: Mapped[dt.date] = mapped_column(Date)
    sla_working_days: Mapped[int] = mapped_column(SmallInteger, default=10)
    due_on: Mapped[dt.date] = mapped_column(Date)
    paused_on: Mapped[dt.date | None] = mapped_column(Date)
    assigned_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    declined_reason: Mapped[str] = mapped_column(Text, default="")
    bundle: Mapped[dict[str, Any]] = mapped_column(JSON)
    bundle_html: Mapped[str] = mapped_column(Text)
    bundle_hash: Mapped[str] = mapped_column(String(64))
    bundle_pdf: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    bundle_pdf_sha256: Mapped[str] = mapped_column(String(64), default="")
    concluded_on: Mapped[dt.date | None] = mapped_column(Date)
    paused_working_days: Mapped[int] = mapped_column(SmallInteger, default=0)
    version: Mapped[int] = mapped_column(default=1)

    items: Mapped[list[BundleItem]] = relationship(
        back_populates="received", order_by="BundleItem.position", cascade="all, delete-orphan"
    )
    decisions: Mapped[list[Decision]] = relationship(
        back_populates="received", order_by="Decision.id", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}


class BundleItem(TenantMixin, Base):
    """One indexed part of a frozen bundle, with its own hash."""

    __tablename__ = "referral_bundle_items"
    __table_args__ = (UniqueConstraint("received_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    received_id: Mapped[int] = mapped_column(ForeignKey("received_referrals.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(SmallInteger)
    section: Mapped[str] = mapped_column(String(60))
    title: Mapped[str] = mapped_column(String(300))
    dated: Mapped[dt.date | None] = mapped_column(Date)
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(String(64))

    received: Mapped[ReceivedReferral] = relationship(back_populates="items")


class ReferralMessage(TenantMixin, Base):
    """One message of the school-LA thread. Each message is stored twice, once per tenant: the
    school's copy on its referral, the LA's on the received referral; ``thread_key`` pairs them."""

    __tablename__ = "referral_messages"
    __table_args__ = (UniqueConstraint("org_id", "thread_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    thread_key: Mapped[str] = mapped_column(String(64))
    referral_id: Mapped[int | None] = mapped_column(
        ForeignKey("referrals.id", ondelete="CASCADE"), index=True
    )
    received_id: Mapped[int | None] = mapped_column(
        ForeignKey("received_referrals.id", ondelete="CASCADE"), index=True
    )
    author_org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"))
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    author_name: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    requests_information: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Decision(TenantMixin, TimestampMixin, Base):
    """An LA decision on a received referral."""

    __tablename__ = "referral_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    received_id: Mapped[int] = mapped_column(
        ForeignKey("received_referrals.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[DecisionKind] = mapped_column(_enum(DecisionKind))
    decided_on: Mapped[dt.date] = mapped_column(Date)
    decided_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    notes: Mapped[str] = mapped_column(Text, default="")
    improvement_ends_on: Mapped[dt.date | None] = mapped_column(Date)
    conference_on: Mapped[dt.date | None] = mapped_column(Date)
    attendees: Mapped[str] = mapped_column(Text, default="")
    outcome: Mapped[str] = mapped_column(Text, default="")
    penalty_notice_id: Mapped[int | None] = mapped_column(
        ForeignKey("penalty_notices.id", ondelete="SET NULL")
    )

    received: Mapped[ReceivedReferral] = relationship(back_populates="decisions")


class PenaltyNotice(TenantMixin, TimestampMixin, Base):
    """One penalty notice on the LA's ledger, for one parent and one child, from any school."""

    __tablename__ = "penalty_notices"
    __table_args__ = (
        Index("ix_penalty_notices_ledger", "org_id", "parent_key", "child_key", "issued_on"),
        CheckConstraint("amount >= 1", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    received_id: Mapped[int | None] = mapped_column(
        ForeignKey("received_referrals.id", ondelete="SET NULL"), index=True
    )
    school_org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"))
    parent_key: Mapped[str] = mapped_column(String(64))
    child_key: Mapped[str] = mapped_column(String(64))
    parent_name: Mapped[str] = mapped_column(String(200))
    child_name: Mapped[str] = mapped_column(String(200))
    sequence: Mapped[int] = mapped_column(SmallInteger)
    issued_on: Mapped[dt.date] = mapped_column(Date)
    received_on: Mapped[dt.date] = mapped_column(Date)
    amount: Mapped[int] = mapped_column(SmallInteger)
    early_amount: Mapped[int | None] = mapped_column(SmallInteger)
    sessions: Mapped[list[list[str]]] = mapped_column(JSON, default=list)  # [["2024-09-16", "AM"], ...]
    offence_on: Mapped[dt.date] = mapped_column(Date)
    prosecution_deadline: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[NoticeStatus] = mapped_column(_enum(NoticeStatus), default=NoticeStatus.ISSUED)
    paid_on: Mapped[dt.date | None] = mapped_column(Date)
    paid_amount: Mapped[int | None] = mapped_column(SmallInteger)
    withdrawn_reason: Mapped[str] = mapped_column(Text, default="")
    issued_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class OutboxMessage(TenantMixin, Base):
    """An email waiting to be sent (or sent). PostgreSQL is the record of truth: a send job
    claims pending rows, and the idempotency key makes a second enqueue of the same event a no-op."""

    __tablename__ = "referral_outbox"
    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        Index("ix_referral_outbox_status", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    to_addr: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[OutboxStatus] = mapped_column(_enum(OutboxStatus), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column()


class WebhookEndpoint(TenantMixin, TimestampMixin, Base):
    """An LA's outbound webhook: where events go, and the secret (encrypted at rest) that signs them."""

    __tablename__ = "referral_webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(String(200), default="")
    secret_encrypted: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(default=True)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class WebhookDelivery(TenantMixin, Base):
    """One event for one endpoint. PostgreSQL is the record of truth: the sender claims due rows,
    and ``event_id`` (sent as a header) lets the receiver drop a repeat."""

    __tablename__ = "referral_webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_referral_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("referral_webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(60))
    event_id: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column()

    attempt_rows: Mapped[list[WebhookAttempt]] = relationship(
        order_by="WebhookAttempt.id", cascade="all, delete-orphan"
    )


class WebhookAttempt(TenantMixin, Base):
    """One HTTP attempt at a delivery: when, the status code (None if no answer), how long it took."""

    __tablename__ = "referral_webhook_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("referral_webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    duration_ms: Mapped[int] = mapped_column()
    error: Mapped[str] = mapped_column(Text, default="")
