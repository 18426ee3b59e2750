"""Pages of the insights analysis: process measures, what works, exports and the governors' report.

:func:`register` adds these routes to the insights blueprint (:mod:`attendwise.insights.views`).
Every page covers the signed-in user's own organisation: a trust's or an LA's schools, or the
school itself, with the same permission as the dashboards (``insights:read``) and the same
small-group suppression outside the school. Each table downloads as CSV or XLSX with
``?format=csv`` or ``?format=xlsx`` (formula-injection safe, :mod:`attendwise.insights.exports`);
the dashboards' own tables download from ``/insights/export?table=schools|groups|weeks``.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from werkzeug.wrappers.response import Response as BaseResponse

from attendwise.insights import exports, process, report, what_works
from attendwise.insights import services as insights_services
from attendwise.letters.render import LetterTemplateError, RenderError
from attendwise.platform.auth import current_principal, require_perm
from attendwise.platform.db import db
from attendwise.tenants.models import OrgKind
from attendwise.tenants.roles import Perm

FORMATS: dict[str, tuple[Callable[[exports.Table], bytes], str, str]] = {
    "csv": (exports.to_csv, exports.CSV_MIME, "csv"),
    "xlsx": (exports.to_xlsx, exports.XLSX_MIME, "xlsx"),
}
ORG_KINDS = (OrgKind.SCHOOL, OrgKind.TRUST, OrgKind.LA)
MAX_WEEKS = 12


def _scope_id() -> int:
    principal = current_principal()
    org = principal.organisation if principal is not None else None
    if org is None or org.kind not in ORG_KINDS:
        abort(404)
    return org.id


def _period(default: str = insights_services.DEFAULT_PERIOD) -> str:
    period = request.values.get("period", default)
    return period if period in insights_services.PERIODS else default


def _comparison(period: str) -> insights_services.Comparison:
    try:
        return insights_services.comparison(db.session(), _scope_id(), period)
    except insights_services.NotVisible:
        abort(404)


def _download(table: exports.Table) -> Response | None:
    """The table as a file when ``?format=`` asks for one; ``None`` for the page itself."""
    wanted = request.args.get("format", "")
    if not wanted:
        return None
    if wanted not in FORMATS:
        abort(400, description=f"format: choose csv or xlsx, not {wanted[:20]!r}")
    write, mime, extension = FORMATS[wanted]
    return Response(
        write(table),
        mimetype=mime,
        headers={"Content-Disposition": f'attachment; filename="{exports.filename(table.title, extension)}"'},
    )


def process_page() -> str | Response:
    comparison = _comparison(_period())
    rows = process.for_comparison(db.session(), comparison)
    table = process.table(
        rows,
        suppress=comparison.suppressed_outside_school,
        title=f"Process measures: {comparison.scope_name}",
    )
    return _download(table) or render_template(
        "insights/analysis/process.html",
        comparison=comparison,
        periods=insights_services.PERIODS,
        table=table,
    )


def _weeks() -> int:
    raw = request.values.get("weeks", str(what_works.DEFAULT_WEEKS))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_WEEKS:
        wanted = f"a whole number of school weeks from 1 to {MAX_WEEKS}"
        abort(400, description=f"weeks: choose {wanted}, not {raw[:20]!r}")
    return int(raw)


def what_works_page() -> str | BaseResponse:
    """What works, as last computed by its job. Nothing stored yet (or a computation lost) queues
    one and comes back to this page: with inline jobs it has run by then, with a worker the page
    says it is being computed. ``POST`` asks for it to be computed again."""
    comparison = _comparison(_period())
    weeks = _weeks()
    session = db.session()
    row = what_works.cached(session, comparison.scope_id, comparison.period, weeks)
    if request.method == "POST" or row is None or what_works.lost(row):
        what_works.request(session, comparison.scope_id, comparison.period, weeks)
        wanted = request.args.get("format") if request.method == "GET" else None
        return redirect(
            url_for("insights.what_works", period=comparison.period, weeks=weeks, format=wanted), code=303
        )
    results = what_works.stored_results(row)
    suppress = comparison.suppressed_outside_school
    table = what_works.table(results or [], suppress=suppress, title=f"What works: {comparison.scope_name}")
    if results is None and request.args.get("format"):
        abort(
            409,
            description=(
                "what works is still being computed for this period: download it once the page shows it"
            ),
        )
    shown = [r for r in results or [] if r.treated and not (suppress and what_works.is_small(r))]
    return _download(table) or render_template(
        "insights/analysis/what_works.html",
        comparison=comparison,
        periods=insights_services.PERIODS,
        table=table,
        result=row,
        computed=results is not None,
        summaries=[(r.summary, r.warning) for r in shown],
        caveat=what_works.CAVEAT,
        too_few=what_works.TOO_FEW,
        weeks=weeks,
        week_choices=range(1, MAX_WEEKS + 1),
    )


def export_table() -> Response:
    """A dashboard table (``?table=schools|groups|weeks``) as CSV or XLSX (``?format=``)."""
    tables = exports.comparison_tables(_comparison(_period()))
    name = request.args.get("table", "")
    if name not in tables:
        abort(400, description=f"table: choose {', '.join(tables)}, not {name[:20]!r}")
    if not request.args.get("format"):
        abort(400, description="format: choose csv or xlsx")
    download = _download(tables[name])
    assert download is not None
    return download


def governors_report() -> Response:
    scope_id = _scope_id()
    period = _period("term")
    try:
        pdf = report.render_pdf(db.session(), scope_id, period=period)
    except insights_services.NotVisible:
        abort(404)
    except (LetterTemplateError, RenderError) as exc:
        abort(503, description=f"the governors' report could not be made: {exc}")
    return Response(
        pdf,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="governors-report-{period}.pdf"'},
    )


def register(bp: Blueprint) -> None:
    """Add the analysis routes to the insights blueprint (before it is registered on the app)."""
    guard = require_perm(Perm.INSIGHTS_READ)
    bp.add_url_rule("/process", "process", guard(process_page), methods=["GET"])
    bp.add_url_rule("/what-works", "what_works", guard(what_works_page), methods=["GET", "POST"])
    bp.add_url_rule("/export", "export_table", guard(export_table), methods=["GET"])
    bp.add_url_rule("/governors-report.pdf", "governors_report", guard(governors_report), methods=["GET"])
