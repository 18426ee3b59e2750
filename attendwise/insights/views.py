"""Pages: the trust and LA dashboards, a school's own dashboard, and the national figures.

Every page reads precomputed figures through :func:`attendwise.insights.services.comparison`,
never marks. A trust's or an LA's dashboard shows its own schools only; another school's page
is a 404. Figures from fewer than 5 pupils are suppressed outside the school. A school's name
links to its dashboard only where the user's role reads that school (a trust's roles);
otherwise the figures stay aggregate.
"""

from __future__ import annotations

from flask import Blueprint, Flask, abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from attendwise.insights import analysis_views, charts, services
from attendwise.platform import tenancy
from attendwise.platform.auth import Principal, current_principal, require_perm
from attendwise.platform.db import db
from attendwise.platform.web import register_nav
from attendwise.tenants.models import OrgKind
from attendwise.tenants.roles import Perm

bp = Blueprint(
    "insights",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
    url_prefix="/insights",
)


def _principal() -> Principal:
    principal = current_principal()
    if principal is None or principal.organisation is None:
        abort(403)
    return principal


def _period() -> str:
    period = request.args.get("period", services.DEFAULT_PERIOD)
    return period if period in services.PERIODS else services.DEFAULT_PERIOD


def _comparison(scope_id: int, period: str) -> services.Comparison:
    try:
        return services.comparison(db.session(), scope_id, period)
    except services.NotVisible:
        abort(404)


def _page_context(comparison: services.Comparison) -> dict[str, object]:
    ctx = tenancy.require()
    return {
        "comparison": comparison,
        "periods": services.PERIODS,
        "trend": charts.trend(comparison.weeks),
        "bars": charts.school_bars(comparison),
        "heat": charts.heat_map(comparison),
        "pct": charts.pct,
        "figures_cells": charts.figures_cells,
        "national_for": charts.national_for,
        "links": {
            s.school_id: url_for("insights.school", school_id=s.school_id, period=comparison.period)
            for s in comparison.schools
            if ctx.can_read(s.school_id)
        },
        "bars_svg": charts.bars_svg,
        "heat_svg": charts.heat_svg,
        "school_table_rows": charts.school_table_rows,
    }


@bp.get("/")
@require_perm(Perm.INSIGHTS_READ)
def dashboard() -> str | Response:
    """The current organisation's dashboard: its schools (a trust or an LA), or the school's own."""
    principal = _principal()
    org = principal.organisation
    assert org is not None
    if org.kind == OrgKind.SCHOOL:
        return redirect(url_for("insights.school", school_id=org.id, period=_period()))
    if org.kind not in (OrgKind.TRUST, OrgKind.LA):
        abort(404)
    comparison = _comparison(org.id, _period())
    return render_template("insights/dashboard.html", **_page_context(comparison))


@bp.get("/schools/<int:school_id>")
@require_perm(Perm.INSIGHTS_READ)
def school(school_id: int) -> str:
    """One school's dashboard: for its own staff, and for a trust reading its member school."""
    comparison = _comparison(school_id, _period())
    if comparison.scope_kind != OrgKind.SCHOOL.value:
        abort(404)
    return render_template("insights/school.html", **_page_context(comparison))


@bp.route("/national", methods=["GET", "POST"])
@require_perm(Perm.PLATFORM_ADMIN)
def national() -> tuple[str, int] | str | Response:
    """The national reference figures, which a platform administrator keeps up to date."""
    principal = _principal()
    errors: dict[str, str] = {}
    form = request.form
    if request.method == "POST":
        values, errors = _national_form(form)
        if values is not None:
            try:
                services.save_national(
                    db.session(),
                    values,
                    user_id=principal.user.id if principal.user else None,
                    actor_org_id=principal.organisation.id if principal.organisation else 0,
                )
            except services.InsightsError as exc:
                errors["value"] = str(exc)
            else:
                return redirect(url_for("insights.national", saved=1))
    page = render_template(
        "insights/national.html",
        figures=services.national_figures(db.session()),
        errors=errors,
        form=form,
        measures=services.NATIONAL_MEASURES,
        phases=services.NATIONAL_PHASES,
        saved=request.args.get("saved") == "1",
    )
    return (page, 400) if errors else page


def _national_form(form: dict[str, str]) -> tuple[services.NationalInput | None, dict[str, str]]:
    errors: dict[str, str] = {}
    raw_year, raw_value = form.get("academic_year", "").strip(), form.get("value", "").strip()
    year = int(raw_year) if raw_year.isdigit() else None
    if year is None:
        errors["academic_year"] = f"Academic year: enter the year it starts, like 2023 (not {raw_year!r})"
    try:
        value: float | None = float(raw_value)
    except ValueError:
        value = None
        errors["value"] = f"Value: enter a percentage such as 7.1 (not {raw_value!r})"
    values = services.NationalInput(
        academic_year=year if year is not None else 2000,  # placeholders: already reported above
        period_kind=form.get("period_kind", ""),
        measure=form.get("measure", ""),
        phase=form.get("phase", ""),
        value=value if value is not None else 0.0,
        source=form.get("source", ""),
    )
    for problem in services.check_national(values):
        name, _, text = problem.partition(": ")
        errors.setdefault(name, f"{name.replace('_', ' ').capitalize()}: {text}")
    return (None, errors) if errors else (values, {})


def register(app: Flask) -> None:
    app.register_blueprint(bp)
    register_nav(endpoint="insights.dashboard", label="Insights", perm=Perm.INSIGHTS_READ, order=60)
    register_nav(endpoint="insights.national", label="National figures", perm=Perm.PLATFORM_ADMIN, order=60)


analysis_views.register(bp)  # process measures, what works, the governors' report (once, at import)
