"""Pupils, enrolments, contacts, households, school calendars and session marks.

Marks are stored for the reads the metrics engine makes: one row per pupil and academic
year (:class:`PupilMarkYear`) holding every session of the year as bytes in the layout of
``attendwise.attendance.marks_codec`` (2 bytes per calendar day from 1 August, AM then PM,
each a code index, 0 = no mark). A year of one pupil is a few hundred bytes, so a whole LA
fits in memory and is read in one pass. Every change of a mark after it was first stored
is kept in :class:`MarkChange` with when it was seen, so evidence can show what was known
at the time; the metrics use the bytes (the latest).
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    JSON,
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


def _enum(cls: type[enum.Enum], length: int = 20) -> Enum:
    return Enum(cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e])


class SenStatus(enum.StrEnum):
    NONE = "none"
    SEN_SUPPORT = "sen_support"
    EHCP = "ehcp"


class Sex(enum.StrEnum):
    FEMALE = "F"
    MALE = "M"
    UNKNOWN = "U"


class RegistrationType(enum.StrEnum):
    """Dual registration: the main school and any subsidiary one (the other school codes D)."""

    MAIN = "main"
    SUBSIDIARY = "subsidiary"


class MarkSource(enum.StrEnum):
    MIS = "mis"
    MANUAL = "manual"
    IMPORT = "import"
    DEMO = "demo"


class ClosureKind(enum.StrEnum):
    INSET = "inset"
    CLOSURE = "closure"


class Pupil(TenantMixin, TimestampMixin, Base):
    __tablename__ = "pupils"
    __table_args__ = (
        UniqueConstraint("org_id", "upn"),
        UniqueConstraint("org_id", "source", "external_id"),
        Index("ix_pupils_org_surname", "org_id", "legal_surname", "legal_forename"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    upn: Mapped[str] = mapped_column(String(13))
    upn_temporary: Mapped[bool] = mapped_column(default=False)
    legal_forename: Mapped[str] = mapped_column(String(100))
    legal_surname: Mapped[str] = mapped_column(String(100))
    preferred_forename: Mapped[str | None] = mapped_column(String(100))
    preferred_surname: Mapped[str | None] = mapped_column(String(100))
    date_of_birth: Mapped[dt.date] = mapped_column(Date)
    sex: Mapped[Sex] = mapped_column(_enum(Sex, 1), default=Sex.UNKNOWN)
    year_group: Mapped[str] = mapped_column(String(3))  # NC year: N1, N2, R, 1..14
    registration_group: Mapped[str | None] = mapped_column(String(20))
    sen_status: Mapped[SenStatus] = mapped_column(_enum(SenStatus), default=SenStatus.NONE)
    fsm: Mapped[bool] = mapped_column(default=False)
    eal: Mapped[bool] = mapped_column(default=False)
    looked_after: Mapped[bool] = mapped_column(default=False)
    child_in_need: Mapped[bool] = mapped_column(default=False)
    source: Mapped[str | None] = mapped_column(String(40))
    external_id: Mapped[str | None] = mapped_column(String(100))

    enrolments: Mapped[list[Enrolment]] = relationship(
        back_populates="pupil", order_by="Enrolment.start_date", cascade="all, delete-orphan"
    )
    contact_links: Mapped[list[PupilContact]] = relationship(
        back_populates="pupil", order_by="PupilContact.priority", cascade="all, delete-orphan"
    )

    @property
    def display_name(self) -> str:
        forename = self.preferred_forename or self.legal_forename
        surname = self.preferred_surname or self.legal_surname
        return f"{forename} {surname}"

    def __repr__(self) -> str:
        return f"<Pupil {self.id}>"


class Enrolment(TenantMixin, TimestampMixin, Base):
    __tablename__ = "enrolments"
    __table_args__ = (UniqueConstraint("pupil_id", "start_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id", ondelete="CASCADE"), index=True)
    start_date: Mapped[dt.date] = mapped_column(Date)
    leave_date: Mapped[dt.date | None] = mapped_column(Date)
    registration_type: Mapped[RegistrationType] = mapped_column(
        _enum(RegistrationType), default=RegistrationType.MAIN
    )

    pupil: Mapped[Pupil] = relationship(back_populates="enrolments")


class Contact(TenantMixin, TimestampMixin, Base):
    """A parent or carer as the school's MIS holds them."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("org_id", "source", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str | None] = mapped_column(String(20))
    forename: Mapped[str] = mapped_column(String(100))
    surname: Mapped[str] = mapped_column(String(100))
    preferred_language: Mapped[str | None] = mapped_column(String(40))
    address_lines: Mapped[list[str]] = mapped_column(JSON, default=list)
    postcode: Mapped[str | None] = mapped_column(String(10))
    phones: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)  # [{"kind", "number"}]
    emails: Mapped[list[str]] = mapped_column(JSON, default=list)
    source: Mapped[str | None] = mapped_column(String(40))
    external_id: Mapped[str | None] = mapped_column(String(100))

    @property
    def display_name(self) -> str:
        return " ".join(p for p in (self.title, self.forename, self.surname) if p)


class PupilContact(TenantMixin, TimestampMixin, Base):
    __tablename__ = "pupil_contacts"
    __table_args__ = (UniqueConstraint("pupil_id", "contact_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    relationship_to_pupil: Mapped[str] = mapped_column(String(40))  # e.g. Mother, Father, Carer
    parental_responsibility: Mapped[bool] = mapped_column(default=False)
    lives_with_pupil: Mapped[bool] = mapped_column(default=False)
    priority: Mapped[int] = mapped_column(SmallInteger, default=1)

    pupil: Mapped[Pupil] = relationship(back_populates="contact_links")
    contact: Mapped[Contact] = relationship(lazy="joined")


class HouseholdKey(Base):
    """A cross-school sibling index: pupils whose contacts with parental responsibility share a key.

    A key is an HMAC (with the deployment's secret) of a contact's normalised name together
    with their postcode, email or phone, so it reveals nothing without the secret and the
    person's details. Only ``attendance.queries.siblings`` reads it; from another school it
    reveals just that a sibling exists and the sibling's headline attendance.
    """

    __tablename__ = "household_keys"
    __global_reason__ = (
        "cross-school sibling index holding only keyed hashes and ids; read solely through "
        "attendance.queries.siblings, which reveals a sibling's existence and headline attendance"
    )
    __table_args__ = (UniqueConstraint("key", "pupil_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), index=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id", ondelete="CASCADE"), index=True)


class SchoolHalfTerm(TenantMixin, Base):
    """One of a school's six half-terms in an academic year (the terms are pairs of them)."""

    __tablename__ = "school_half_terms"
    __table_args__ = (UniqueConstraint("org_id", "academic_year", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    academic_year: Mapped[int] = mapped_column()  # 2026 = 2026/27
    number: Mapped[int] = mapped_column(SmallInteger)  # 1..6
    name: Mapped[str] = mapped_column(String(40))  # "Autumn 1"
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date] = mapped_column(Date)


class SchoolClosure(TenantMixin, Base):
    """A day in term with no sessions for pupils: an INSET day or a planned closure."""

    __tablename__ = "school_closures"
    __table_args__ = (UniqueConstraint("org_id", "date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    date: Mapped[dt.date] = mapped_column(Date)
    kind: Mapped[ClosureKind] = mapped_column(_enum(ClosureKind))
    description: Mapped[str] = mapped_column(String(200), default="")


class PupilMarkYear(TenantMixin, Base):
    """All of one pupil's session marks for one academic year, as marks_codec bytes."""

    __tablename__ = "pupil_mark_years"
    __audit_skip__ = True  # high volume: services.store_marks audits each batch instead
    __table_args__ = (UniqueConstraint("pupil_id", "academic_year"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id", ondelete="CASCADE"), index=True)
    academic_year: Mapped[int] = mapped_column()  # 2025 = 2025/26, starting 1 August 2025
    codes: Mapped[bytes] = mapped_column(LargeBinary)
    minutes_late: Mapped[str] = mapped_column(Text, default="{}")  # JSON: {"<day>:<AM|PM>": minutes}
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __mapper_args__ = {"version_id_col": version}


class MarkChange(TenantMixin, Base):
    """A mark that changed after it was first stored (N became I, say), with when it was seen."""

    __tablename__ = "mark_changes"
    __audit_skip__ = True  # services.store_marks audits each batch instead
    __table_args__ = (Index("ix_mark_changes_pupil_date", "pupil_id", "date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id", ondelete="CASCADE"))
    date: Mapped[dt.date] = mapped_column(Date)
    session: Mapped[str] = mapped_column(String(2))  # AM or PM
    old_code: Mapped[str | None] = mapped_column(String(3))
    new_code: Mapped[str | None] = mapped_column(String(3))
    seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    source: Mapped[MarkSource] = mapped_column(_enum(MarkSource, 10))


class CodeOverride(Base):
    """A platform administrator's correction of an unverified code classification."""

    __tablename__ = "code_overrides"
    __global_reason__ = "the DfE code table is national: one correction applies to every school"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(3), unique=True)
    statistical_class: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(Text)
    changed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
