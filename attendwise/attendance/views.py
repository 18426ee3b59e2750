"""Pages: the school's pupil list (filters, sorting, paging, CSV export) and a pupil's record."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from flask import Blueprint, Flask, Response, abort, flash, redirect, render_template, request, url_for

from attendwise.attendance import queries, services
from attendwise.attendance.calendar import (
    CalendarError,
    SchoolCalendar,
    academic_year_label,
    academic_year_of,
)
from attendwise.platform.auth import current_principal, require_perm
from attendwise.platform.db import db
from attendwise.platform.web import register_nav
from attendwise.tenants.models import Organisation
from attendwise.tenants.roles import Perm

bp = Blueprint(
    "attendance",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/attendance/static",
)

CSV_COLUMNS = (
    ("UPN", lambda p, f: p.upn),
    ("Surname", lambda p, f: p.legal_surname),
    ("Forename", lambda p, f: p.legal_forename),
    ("Preferred name", lambda p, f: p.display_name),
    ("Year group", lambda p, f: p.year_group),
    ("Registration group", lambda p, f: p.registration_group or ""),
    ("SEN", lambda p, f: p.sen_status.value),
    ("FSM", lambda p, f: "Y" if p.fsm else "N"),
    ("EAL", lambda p, f: "Y" if p.eal else "N"),
    ("Looked after", lambda p, f: "Y" if p.looked_after else "N"),
    ("Child in need", lambda p, f: "Y" if p.child_in_need else "N"),
    ("Possible sessions", lambda p, f: f["possible_sessions"]),
    ("Present", lambda p, f: f["present"]),
    ("Approved activity", lambda p, f: f["approved_activity"]),
    ("Authorised absence", lambda p, f: f["authorised"]),
    ("Unauthorised absence", lambda p, f: f["unauthorised"]),
    ("Attendance %", lambda p, f: _one_dp(f["attendance_pct"])),
    ("Persistent absence", lambda p, f: "Y" if f["persistent_absence"] else "N"),
    ("Severe absence", lambda p, f: "Y" if f["severe_absence"] else "N"),
    ("Late before close (L)", lambda p, f: f["late_before_close"]),
    ("Late after close (U)", lambda p, f: f["late_after_close"]),
    ("Most unauthorised in 10 school weeks", lambda p, f: f["max_unauthorised_in_10_school_weeks"]),
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _one_dp(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def safe_cell(value: Any) -> str:
    """A CSV cell a spreadsheet will not run as a formula (OWASP CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _viewer() -> Organisation:
    principal = current_principal()
    if principal is None or principal.organisation is None:
        abort(403)
    return principal.organisation


def _school_id() -> int:
    return _viewer().id


@bp.get("/pupils")
@require_perm(Perm.PUPILS_READ)
def pupil_list() -> Any:
    filters = queries.PupilFilters.from_args(request.args)
    org_id = _school_id()
    listing = queries.pupil_list(db.session(), org_id, filters)
    queries.record_list_view(db.session(), org_id, listing, via="page", filters=filters)
    return render_template(
        "attendance/pupils.html",
        listing=listing,
        filters=filters,
        flags=queries.FLAGS,
        sorts=queries.SORTS,
    )


@bp.get("/pupils/export.csv")
@require_perm(Perm.PUPILS_READ)
def pupil_list_csv() -> Response:
    filters = queries.PupilFilters.from_args(request.args)
    org_id = _school_id()
    listing = queries.pupil_list(db.session(), org_id, filters, paged=False)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([f"Period: {listing.period.label}"])
    writer.writerow([name for name, _get in CSV_COLUMNS])
    for row in listing.rows:
        writer.writerow([safe_cell(get(row.pupil, row.figures)) for _name, get in CSV_COLUMNS])
    queries.record_list_view(db.session(), org_id, listing, via="csv", filters=filters)
    name = f"pupils-{listing.period.period.start.isoformat()}-to-{listing.period.period.end.isoformat()}.csv"
    return Response(
        "\ufeff" + out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.get("/pupils/<int:pupil_id>")
@require_perm(Perm.PUPILS_READ)
def pupil_page(pupil_id: int) -> Any:
    pupil = queries.get_pupil(db.session(), pupil_id)
    if pupil is None:
        abort(404)
    principal = current_principal()
    page = queries.pupil_page(
        db.session(),
        pupil,
        viewer=_viewer(),
        may_see_other_schools=principal is not None and principal.can(Perm.SIBLINGS_HEADLINE),
        academic_year=queries.PupilFilters.from_args(request.args).academic_year,
    )
    queries.record_view(db.session(), pupil, via="page")
    back = request.args.get("back", "")
    back_url = back if back.startswith("/pupils") and not back.startswith("//") else url_for(".pupil_list")
    return render_template("attendance/pupil.html", page=page, pupil=pupil, back_url=back_url)


@bp.get("/calendar")
@require_perm(Perm.PUPILS_READ)
def school_calendar() -> Any:
    org_id = _school_id()
    year = queries.PupilFilters.from_args(request.args).academic_year or academic_year_of(queries.today())
    return _calendar_page(org_id, year, form=None, errors={})


@bp.post("/calendar")
@require_perm(Perm.ORG_SETTINGS)
def save_school_calendar() -> Any:
    org_id = _school_id()
    form = request.form
    try:
        year = int(form.get("year", ""))
    except ValueError:
        abort(400)
    errors: dict[str, str] = {}
    half_terms: list[services.HalfTermRecord] = []
    closures: list[services.ClosureRecord] = []
    try:
        parsed = SchoolCalendar.from_csv(form.get("half_terms", ""))
        half_terms = [services.HalfTermRecord(h.name, h.start, h.end) for h in parsed.half_terms]
    except CalendarError as exc:
        errors["half_terms"] = str(exc).replace("calendar file", "Half-terms")
    for number, line in enumerate(form.get("closures", "").splitlines(), 1):
        if not line.strip():
            continue
        day, _, description = (part.strip() for part in line.partition(","))
        kind = "closure" if description.lower().startswith("closure") else "inset"
        try:
            closures.append(services.ClosureRecord(dt.date.fromisoformat(day), kind, description))
        except ValueError:
            errors.setdefault("closures", f"Line {number}: {day!r} is not a date like 2026-09-01")
    if not errors:
        try:
            services.set_school_calendar(db.session(), org_id, year, half_terms, closures)
        except services.BatchRejected as exc:
            errors["half_terms"] = "; ".join(e.reason for e in exc.errors)
    if errors:
        return _calendar_page(org_id, year, form=form, errors=errors), 400
    flash(f"The {academic_year_label(year)} calendar is saved.", "success")
    return redirect(url_for(".school_calendar", year=year))


def _calendar_page(org_id: int, year: int, *, form: Any, errors: dict[str, str]) -> str:
    session = db.session()
    calendar = services.school_calendar(session, org_id, year)
    closures = services.school_closures(session, org_id, year)
    principal = current_principal()
    days = calendar.school_days(calendar.start, calendar.end)
    return render_template(
        "attendance/calendar.html",
        calendar=calendar,
        year=year,
        year_label=academic_year_label(year),
        own=services.has_own_calendar(session, org_id, year),
        closures=closures,
        school_days=len(days),
        school_weeks=len(calendar.school_weeks(calendar.start, calendar.end)),
        bank_holidays=sorted(d for d in calendar.bank_holidays if calendar.contains(d) and d.weekday() < 5),
        can_edit=principal is not None and principal.can(Perm.ORG_SETTINGS),
        half_terms_text=form.get("half_terms") if form else calendar.to_csv(),
        closures_text=form.get("closures")
        if form
        else "\n".join(f"{c.date.isoformat()}, {c.description}" for c in closures),
        errors=errors,
    )


def register(app: Flask) -> None:
    app.register_blueprint(bp)
    register_nav(endpoint="attendance.pupil_list", label="Pupils", perm=Perm.PUPILS_READ, order=10)
    register_nav(endpoint="attendance.school_calendar", label="Calendar", perm=Perm.PUPILS_READ, order=80)
    app.jinja_env.filters["aw_pct"] = _pct_filter
    app.jinja_env.filters["att_date"] = _date_filter


def _pct_filter(value: float | None) -> str:
    """A percentage to one decimal place for display (figures keep full precision elsewhere)."""
    return "\u2013" if value is None else f"{value:.1f}%"


def _date_filter(value: dt.date | dt.datetime | None) -> str:
    """``3 March 2026``, or ``3 March 2026 at 2:05pm`` (London time) for a moment."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        local = value.astimezone(queries.LONDON) if value.tzinfo else value
        hour = local.hour % 12 or 12
        return f"{local.day} {local:%B %Y} at {hour}:{local:%M}{'am' if local.hour < 12 else 'pm'}"
    return f"{value.day} {value:%B %Y}"
