"""Precomputed figures for the insights pages, and the national reference figures.

The trust and LA pages never read marks: they read these rows, which
:func:`attendwise.insights.services.refresh` rewrites for one school after each evaluation run.
Every aggregate row belongs to its school (``org_id``), so tenant isolation and row-level
security apply to them as to the marks they summarise.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from attendwise.platform.db import Base, TenantMixin, utcnow


class SchoolFigures(TenantMixin, Base):
    """One school's attendance figures for one period and one group of pupils.

    ``period`` is a key of :data:`attendwise.insights.services.PERIODS` or the same key with
    ``_ly`` (the same period a year earlier); ``breakdown`` is ``all``, ``year`` (``group`` the
    NC year) or ``group`` (``group`` a pupil characteristic such as ``fsm``).
    """

    __tablename__ = "insight_school_figures"
    __audit_skip__ = True  # derived figures, rewritten by each refresh (itself audited)
    __table_args__ = (UniqueConstraint("org_id", "period", "breakdown", "group"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(20))
    breakdown: Mapped[str] = mapped_column(String(10))
    group: Mapped[str] = mapped_column(String(20))
    period_start: Mapped[dt.date] = mapped_column(Date)
    period_end: Mapped[dt.date] = mapped_column(Date)
    pupils: Mapped[int] = mapped_column(Integer)  # pupils with at least one possible session
    possible: Mapped[int] = mapped_column(Integer)
    attended: Mapped[int] = mapped_column(Integer)
    authorised: Mapped[int] = mapped_column(Integer)
    unauthorised: Mapped[int] = mapped_column(Integer)
    persistent: Mapped[int] = mapped_column(Integer)
    severe: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SchoolWeek(TenantMixin, Base):
    """One school's sessions in one Monday-to-Sunday school week (the trend charts' points)."""

    __tablename__ = "insight_school_weeks"
    __audit_skip__ = True  # derived figures, rewritten by each refresh (itself audited)
    __table_args__ = (UniqueConstraint("org_id", "week_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    academic_year: Mapped[int] = mapped_column(Integer)
    week_start: Mapped[dt.date] = mapped_column(Date)
    pupils: Mapped[int] = mapped_column(Integer)
    possible: Mapped[int] = mapped_column(Integer)
    attended: Mapped[int] = mapped_column(Integer)
    authorised: Mapped[int] = mapped_column(Integer)
    unauthorised: Mapped[int] = mapped_column(Integer)


class SchoolCasework(TenantMixin, Base):
    """One school's casework counts (``measure``/``key``), as of the last refresh.

    Measures: ``stage`` (open cases at each stage, ``key`` the stage's name), ``open_cases``,
    ``letters``, ``meetings``, ``referrals`` (this term) and ``referral_outcome`` (referrals this
    term by the LA's outcome, ``key`` its label: the latest decision, or where it stands).
    """

    __tablename__ = "insight_school_casework"
    __audit_skip__ = True  # derived figures, rewritten by each refresh (itself audited)
    __table_args__ = (UniqueConstraint("org_id", "measure", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    measure: Mapped[str] = mapped_column(String(30))
    key: Mapped[str] = mapped_column(String(200))
    pupils: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SchoolSource(TenantMixin, Base):
    """What one part of a school's stored figures was computed from, as of the last refresh.

    ``unit`` is ``figures:<period key>`` (that period's figure rows) or ``weeks:<academic year>``
    (that year's week rows); ``fingerprint`` hashes everything the rows depend on (the year's
    marks version, the pupils and their characteristics, the code table, the period's start; for
    weeks, the last week counted). A period's rows count its sessions ``through`` a day, and
    ``counts`` keeps each pupil's class counts to that day (packed, see
    :func:`attendwise.insights.services.school_rows`). A refresh keeps a unit whose fingerprint
    and day are unchanged, extends one whose fingerprint is unchanged from ``through`` to the new
    day with only the days in between, and recomputes the others.
    """

    __tablename__ = "insight_school_sources"
    __audit_skip__ = True  # bookkeeping of the refresh (itself audited)
    __table_args__ = (UniqueConstraint("org_id", "unit"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit: Mapped[str] = mapped_column(String(40))
    fingerprint: Mapped[str] = mapped_column(String(64))
    through: Mapped[dt.date | None] = mapped_column(Date)
    counts: Mapped[bytes | None] = mapped_column(LargeBinary)
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WhatWorksResult(TenantMixin, Base):
    """What works across an organisation's schools for one period and window, computed by a job.

    ``org_id`` is the trust, LA or school the analysis covers. ``state`` is ``queued`` while a
    job is to compute it (the last result, if any, stays shown meanwhile), ``done`` or
    ``failed`` (``error`` says why). ``results`` is the JSON list of
    :class:`attendwise.insights.what_works.StepResult` as of ``computed_at``.
    """

    __tablename__ = "insight_what_works"
    __audit_skip__ = True  # derived figures, rewritten by each computation (itself audited)
    __table_args__ = (UniqueConstraint("org_id", "period", "weeks"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(20))
    weeks: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(10))
    requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    computed_at: Mapped[dt.datetime | None] = mapped_column()
    results: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


class NationalFigure(Base):
    """A published national figure (England) to compare against, with its source.

    ``measure`` is one of ``absence``, ``authorised``, ``unauthorised``, ``persistent``,
    ``severe`` (percentages); ``phase`` is ``all``, ``primary``, ``secondary`` or ``special``;
    ``period_kind`` says which of the pages' periods it compares with (``year`` or ``autumn``).
    """

    __tablename__ = "insight_national_figures"
    __global_reason__ = "national statistics published by the DfE: the same reference for every tenant"
    __table_args__ = (
        UniqueConstraint(
            "academic_year", "period_kind", "measure", "phase", name="uq_insight_national_figures_key"
        ),
        Index("ix_insight_national_figures_year", "academic_year"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    academic_year: Mapped[int] = mapped_column(Integer)  # 2023 = 2023/24
    period_kind: Mapped[str] = mapped_column(String(10))
    measure: Mapped[str] = mapped_column(String(20))
    phase: Mapped[str] = mapped_column(String(10))
    value: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
