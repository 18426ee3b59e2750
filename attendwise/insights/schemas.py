"""Marshmallow schemas of the insights API: the comparison dataclasses as JSON."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from attendwise.insights.services import DEFAULT_PERIOD, PERIODS, Figures


class InsightsQueryArgsSchema(Schema):
    period = fields.String(
        load_default=DEFAULT_PERIOD,
        validate=validate.OneOf(list(PERIODS)),
        metadata={"description": "One of: " + ", ".join(f"{k} ({v})" for k, v in PERIODS.items())},
    )


class InsightFiguresSchema(Schema):
    """Figures of a group of pupils; every value is null when ``suppressed`` (fewer than 5 pupils)."""

    suppressed = fields.Boolean()
    pupils = fields.Integer(attribute="pupil_count", allow_none=True)
    possible_sessions = fields.Method("_possible", allow_none=True)
    attendance_pct = fields.Float(attribute="attendance", allow_none=True)
    absence_pct = fields.Float(attribute="absence", allow_none=True)
    authorised_pct = fields.Float(attribute="authorised_rate", allow_none=True)
    unauthorised_pct = fields.Float(attribute="unauthorised_rate", allow_none=True)
    persistent_absentees = fields.Method("_persistent", allow_none=True)
    persistent_pct = fields.Float(attribute="persistent_rate", allow_none=True)
    severe_absentees = fields.Method("_severe", allow_none=True)
    severe_pct = fields.Float(attribute="severe_rate", allow_none=True)

    def _possible(self, obj: Figures) -> int | None:
        return None if obj.suppressed else obj.possible

    def _persistent(self, obj: Figures) -> int | None:
        return None if obj.suppressed else obj.persistent

    def _severe(self, obj: Figures) -> int | None:
        return None if obj.suppressed else obj.severe


class InsightCountSchema(Schema):
    label = fields.String()
    value = fields.Integer(allow_none=True, metadata={"description": "null when suppressed (1 to 4)"})


class InsightCaseworkSchema(Schema):
    stages = fields.List(fields.Nested(InsightCountSchema))
    open_cases = fields.Nested(InsightCountSchema)
    letters = fields.Nested(InsightCountSchema)
    meetings = fields.Nested(InsightCountSchema)
    referrals = fields.Nested(InsightCountSchema)
    referral_outcomes = fields.List(fields.Nested(InsightCountSchema))


class InsightSchoolSchema(Schema):
    school_id = fields.Integer()
    name = fields.String()
    urn = fields.String(allow_none=True)
    phase = fields.String()
    figures = fields.Nested(InsightFiguresSchema)
    last_year = fields.Nested(InsightFiguresSchema, allow_none=True)
    casework = fields.Nested(InsightCaseworkSchema)
    refreshed_at = fields.DateTime(allow_none=True)


class InsightGroupSchema(Schema):
    breakdown = fields.String(metadata={"description": "phase, year or group"})
    key = fields.String()
    label = fields.String()
    figures = fields.Nested(InsightFiguresSchema)
    last_year = fields.Nested(InsightFiguresSchema, allow_none=True)


class InsightWeekSchema(Schema):
    number = fields.Integer()
    week_start = fields.Date()
    figures = fields.Nested(InsightFiguresSchema)
    last_year = fields.Nested(InsightFiguresSchema, allow_none=True)


class NationalValueSchema(Schema):
    measure = fields.String()
    phase = fields.String()
    value = fields.Float()
    academic_year = fields.Integer()
    period_kind = fields.String()
    source = fields.String()


class ComparisonSchema(Schema):
    scope_id = fields.Integer()
    scope_name = fields.String()
    scope_kind = fields.String()
    period = fields.String()
    period_label = fields.String()
    period_start = fields.Date(allow_none=True)
    period_end = fields.Date(allow_none=True)
    suppressed_outside_school = fields.Boolean()
    schools = fields.List(fields.Nested(InsightSchoolSchema))
    total = fields.Nested(InsightFiguresSchema)
    total_last_year = fields.Nested(InsightFiguresSchema, allow_none=True)
    groups = fields.List(fields.Nested(InsightGroupSchema))
    weeks = fields.List(fields.Nested(InsightWeekSchema))
    casework = fields.Nested(InsightCaseworkSchema)
    national = fields.List(fields.Nested(NationalValueSchema))
