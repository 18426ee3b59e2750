"""The merge fields a letter template sees: a plain dict dumped through a marshmallow schema.

Templates never receive ORM objects. :func:`build` gathers the figures from the database;
:data:`LetterContextSchema` fixes the shape (every key present, ``None`` where unknown), so a
school's template that works in the preview works for every pupil. :func:`sample` gives the
same shape with made-up values, for previews and tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from marshmallow import Schema, fields
from sqlalchemy import select
from sqlalchemy.orm import Session

CHART_WEEKS = 6
BAR_MM = 60.0  # the longer of the two comparison bars


class SchoolSchema(Schema):
    name = fields.String(required=True)
    address_lines = fields.List(fields.String(), load_default=list)
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    head_name = fields.String(allow_none=True)
    logo = fields.Boolean(load_default=False)
    signature = fields.Boolean(load_default=False)


class PersonSchema(Schema):
    name = fields.String(required=True)
    role = fields.String(allow_none=True)


class RecipientSchema(Schema):
    contact_id = fields.Integer(allow_none=True)
    name = fields.String(required=True)
    salutation = fields.String(required=True)
    relationship = fields.String(allow_none=True)
    address_lines = fields.List(fields.String(), load_default=list)
    email = fields.String(allow_none=True)


class PupilSchema(Schema):
    id = fields.Integer(allow_none=True)
    name = fields.String(required=True)
    forename = fields.String(required=True)
    year_group = fields.String(required=True)
    registration_group = fields.String(allow_none=True)
    date_of_birth = fields.String(allow_none=True)
    upn = fields.String(allow_none=True)


class CellSchema(Schema):
    code = fields.String()
    kind = fields.String()


class WeekSchema(Schema):
    label = fields.String()
    sessions = fields.List(fields.Nested(CellSchema))


class AttendanceSchema(Schema):
    period_start = fields.String()
    period_end = fields.String()
    possible_sessions = fields.Integer()
    sessions_missed = fields.Integer()
    days_missed = fields.String()
    authorised = fields.Integer()
    unauthorised = fields.Integer()
    late_after_close = fields.Integer()
    attendance_pct = fields.String()
    classmates_count = fields.Integer()
    classmates_avg_missed = fields.String(allow_none=True)
    classmates_fewer = fields.Integer()
    comparison = fields.String(allow_none=True)  # "more", "same", "fewer"
    bar_pupil_mm = fields.String()
    bar_classmates_mm = fields.String()
    weeks = fields.List(fields.Nested(WeekSchema))


class MeetingSchema(Schema):
    date = fields.String(required=True)
    time = fields.String(required=True)
    place = fields.String(required=True)
    with_whom = fields.String(required=True)


class PlanSchema(Schema):
    targets = fields.List(fields.String(), load_default=list)


class MinutesSchema(Schema):
    """Meeting minutes in the signs-of-safety form (a parent's copy of the minutes)."""

    who_attended = fields.String(required=True)
    going_well = fields.String(load_default="")
    concerns = fields.String(load_default="")
    wellbeing_goals = fields.String(load_default="")
    agreed_actions = fields.String(load_default="")


class DatesSchema(Schema):
    letter_date = fields.String(required=True)
    improvement_end = fields.String(allow_none=True)
    review_date = fields.String(allow_none=True)


class LetterContextSchema(Schema):
    school = fields.Nested(SchoolSchema, required=True)
    sender = fields.Nested(PersonSchema, required=True)
    recipient = fields.Nested(RecipientSchema, required=True)
    pupil = fields.Nested(PupilSchema, required=True)
    attendance = fields.Nested(AttendanceSchema, required=True)
    stage = fields.String(allow_none=True)
    meeting = fields.Nested(MeetingSchema, allow_none=True)
    plan = fields.Nested(PlanSchema, allow_none=True)
    minutes = fields.Nested(MinutesSchema, allow_none=True)
    dates = fields.Nested(DatesSchema, required=True)
    message = fields.String(allow_none=True)


_SCHEMA = LetterContextSchema()
_OPTIONAL = ("stage", "meeting", "plan", "minutes", "message")


def dump(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``raw`` and return the plain context (every top-level key present)."""
    errors = _SCHEMA.validate(raw)
    if errors:
        raise ValueError(f"letter merge fields are not valid: {errors}")
    plain: dict[str, Any] = _SCHEMA.dump(raw)
    for key in _OPTIONAL:
        plain.setdefault(key, None)
    plain["dates"].setdefault("improvement_end", None)
    plain["dates"].setdefault("review_date", None)
    for key in ("phone", "email", "head_name"):
        plain["school"].setdefault(key, None)
    plain["school"].setdefault("logo", False)
    plain["school"].setdefault("signature", False)
    return plain


def long_date(day: dt.date) -> str:
    return f"{day.day} {day:%B %Y}"


def _number(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def attendance_block(
    pupil_record: Mapping[str, Any],
    classmates_missed: Sequence[int],
    weeks: list[dict[str, Any]],
) -> dict[str, Any]:
    """Figures for the letter: the pupil's totals and how they compare with classmates."""
    missed = int(pupil_record["authorised"]) + int(pupil_record["unauthorised"])
    pct = pupil_record.get("attendance_pct")
    average = float(np.mean(classmates_missed)) if len(classmates_missed) else None
    comparison = None
    if average is not None:
        comparison = (
            "more" if missed > average * 1.1 + 1 else "fewer" if missed < average * 0.9 - 1 else "same"
        )
    longest = max(missed, average or 0.0, 1.0)
    return {
        "period_start": pupil_record["period_start"],
        "period_end": pupil_record["period_end"],
        "possible_sessions": int(pupil_record["possible_sessions"]),
        "sessions_missed": missed,
        "days_missed": _number(missed / 2),
        "authorised": int(pupil_record["authorised"]),
        "unauthorised": int(pupil_record["unauthorised"]),
        "late_after_close": int(pupil_record.get("late_after_close") or 0),
        "attendance_pct": _number(pct) if pct is not None else "100",
        "classmates_count": len(classmates_missed),
        "classmates_avg_missed": _number(average) if average is not None else None,
        "classmates_fewer": sum(1 for m in classmates_missed if m < missed),
        "comparison": comparison,
        "bar_pupil_mm": _number(BAR_MM * missed / longest),
        "bar_classmates_mm": _number(BAR_MM * (average or 0.0) / longest),
        "weeks": weeks,
    }


_KIND = {"present": "present", "authorised": "authorised", "unauthorised": "unauthorised"}


def _cell(code: str | None, stat_class: str, school_day: bool) -> dict[str, str]:
    if not school_day:
        return {"code": "", "kind": "none"}
    if code in ("L", "U"):
        return {"code": code, "kind": "late" if code == "L" else "unauthorised"}
    return {"code": code or "", "kind": _KIND.get(stat_class, "other")}


def build(
    session: Session,
    org_id: int,
    pupil_id: int,
    recipient: Mapping[str, Any],
    *,
    extra: Mapping[str, Any] | None = None,
    on: dt.date | None = None,
) -> dict[str, Any]:
    """The plain context for one letter to one recipient about one pupil, from the database."""
    from attendwise.attendance import queries, services
    from attendwise.attendance.calendar import academic_year_of
    from attendwise.attendance.models import Pupil
    from attendwise.letters.models import LetterSettings
    from attendwise.tenants.models import Organisation

    pupil = session.scalar(select(Pupil).where(Pupil.id == pupil_id, Pupil.org_id == org_id))
    if pupil is None:
        raise LookupError(f"pupil {pupil_id} is not a pupil of this school")
    on = on or queries.today()
    year = academic_year_of(on)
    calendar = services.school_calendar(session, org_id, year)
    period = queries.period_choices(calendar, on)[0].period
    table = services.code_table(session)
    classmate_ids = list(
        session.scalars(
            select(Pupil.id).where(
                Pupil.org_id == org_id, Pupil.year_group == pupil.year_group, Pupil.id != pupil.id
            )
        )
    )
    result = queries.figures(session, org_id, calendar, period, [pupil.id, *classmate_ids], table=table)
    record = result.record(0)
    missed = (result.authorised + result.unauthorised)[1:]
    possible = result.possible[1:]
    classmates = [int(m) for m, p in zip(missed, possible, strict=True) if p > 0]
    codes = queries.mark_matrix(session, org_id, year, [pupil.id]).codes[0]
    register = queries.register(calendar, codes, on, table)
    school_weeks = [
        week for half in register for week in half.weeks if any(day.school_day for day in week.days)
    ][-CHART_WEEKS:]
    weeks = [
        {
            "label": f"{week.monday.day} {week.monday:%b}",
            "sessions": [
                _cell(mark.code, mark.stat_class, day.school_day)
                for day in week.days
                for mark in (day.am, day.pm)
            ],
        }
        for week in school_weeks
    ]
    school = session.get(Organisation, org_id)
    settings = session.scalar(select(LetterSettings).where(LetterSettings.org_id == org_id))
    forename = pupil.preferred_forename or pupil.legal_forename
    raw: dict[str, Any] = {
        "school": {
            "name": school.name if school else "",
            "address_lines": list(settings.address_lines) if settings else [],
            "phone": settings.phone if settings else None,
            "email": settings.email if settings else None,
            "head_name": settings.head_name if settings else None,
            "logo": bool(settings and settings.logo),
            "signature": bool(settings and settings.signature),
        },
        "sender": {
            "name": (settings.sender_name if settings else None) or "Attendance Team",
            "role": (settings.sender_role if settings else None) or "Attendance Team",
        },
        "recipient": dict(recipient),
        "pupil": {
            "id": pupil.id,
            "name": f"{forename} {pupil.preferred_surname or pupil.legal_surname}",
            "forename": forename,
            "year_group": pupil.year_group,
            "registration_group": pupil.registration_group,
            "date_of_birth": long_date(pupil.date_of_birth),
            "upn": pupil.upn,
        },
        "attendance": attendance_block(record, classmates, weeks),
        "dates": {"letter_date": long_date(on)},
    }
    for key, value in (extra or {}).items():
        if key == "dates":
            raw["dates"].update(value)
        else:
            raw[key] = value
    return dump(raw)


def sample(**overrides: Any) -> dict[str, Any]:
    """A complete made-up context: previews of a school's template, tests and the benchmark."""
    kinds = ["present"] * 7 + ["authorised", "unauthorised", "present"]
    weeks = [
        {
            "label": f"{monday.day} {monday:%b}",
            "sessions": [
                {"code": {"present": "/", "authorised": "I", "unauthorised": "O"}[k], "kind": k}
                for k in kinds[n:] + kinds[:n]
            ],
        }
        for n, monday in enumerate(dt.date(2027, 2, 1) + dt.timedelta(weeks=w) for w in range(CHART_WEEKS))
    ]
    record = {
        "period_start": "2026-09-03",
        "period_end": "2027-03-12",
        "possible_sessions": 236,
        "authorised": 18,
        "unauthorised": 12,
        "late_after_close": 3,
        "attendance_pct": 87.3,
    }
    raw: dict[str, Any] = {
        "school": {
            "name": "Dothill Primary School",
            "address_lines": ["Shawbirch Road", "Telford", "TF1 3LE"],
            "phone": "01952 000000",
            "email": "office@dothill.example",
            "head_name": "Mrs A Head",
            "logo": False,
            "signature": False,
        },
        "sender": {"name": "Mrs A Head", "role": "Headteacher"},
        "recipient": {
            "contact_id": None,
            "name": "Ms Jane Example",
            "salutation": "Ms Example",
            "relationship": "Mother",
            "address_lines": ["1 High Street", "Telford", "TF1 1AA"],
            "email": "jane@example.test",
        },
        "pupil": {
            "id": None,
            "name": "Sam Example",
            "forename": "Sam",
            "year_group": "5",
            "registration_group": "5B",
            "date_of_birth": "4 May 2016",
            "upn": "A123456789012",
        },
        "attendance": attendance_block(record, [8, 10, 12, 6, 14, 9, 11, 30, 4], weeks),
        "stage": "Stage 2",
        "meeting": {
            "date": "Tuesday 23 March 2027",
            "time": "9:15am",
            "place": "the school office",
            "with_whom": "Mrs A Head and Mr B Attendance",
        },
        "plan": {"targets": ["Sam arrives by 8:45am every day", "Weekly check-in with Mr B on Fridays"]},
        "dates": {
            "letter_date": "12 March 2027",
            "improvement_end": "23 April 2027",
            "review_date": "9 April 2027",
        },
        "message": None,
    }
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return dump(raw)
