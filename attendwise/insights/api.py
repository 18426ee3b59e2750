"""REST API of the insights figures (``/api/v1/insights``, ``insights:read``).

The same figures as the pages, from the same precomputed rows, with the same scope (the
caller's organisation: its schools for a trust or an LA; a trust also reads its member
schools one by one) and the same small-group suppression.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort

from attendwise.insights import services
from attendwise.insights.schemas import ComparisonSchema, InsightsQueryArgsSchema, NationalValueSchema
from attendwise.platform import tenancy
from attendwise.platform.api import API_PREFIX, Blueprint, api
from attendwise.platform.db import db
from attendwise.tenants.roles import Perm

blp = Blueprint(
    "insights_api",
    __name__,
    url_prefix=f"{API_PREFIX}/insights",
    description="Attendance and casework figures of a trust's or an LA's schools, or one school's.",
)


def _comparison(scope_id: int, period: str) -> services.Comparison:
    try:
        return services.comparison(db.session(), scope_id, period)
    except services.NotVisible:
        abort(404)


@blp.route("/comparison")
@blp.requires(Perm.INSIGHTS_READ)
@blp.arguments(InsightsQueryArgsSchema, location="query")
@blp.response(200, ComparisonSchema)
def own_comparison(args: dict[str, Any]) -> services.Comparison:
    """The caller's organisation: per school and in total for a trust or an LA, or the school's own
    figures. Figures from fewer than 5 pupils are null (``suppressed``) outside the school."""
    return _comparison(tenancy.require().org_id, args["period"])


@blp.route("/schools/<int:school_id>")
@blp.requires(Perm.INSIGHTS_READ)
@blp.arguments(InsightsQueryArgsSchema, location="query")
@blp.response(200, ComparisonSchema)
def school_comparison(args: dict[str, Any], school_id: int) -> services.Comparison:
    """One school's figures: for its own staff, or for a trust of which it is a member (404 otherwise)."""
    comparison = _comparison(school_id, args["period"])
    if comparison.scope_kind != "school":
        abort(404)
    return comparison


@blp.route("/national")
@blp.requires(Perm.INSIGHTS_READ)
@blp.response(200, NationalValueSchema(many=True))
def national() -> list[services.NationalValue]:
    """The national figures comparisons use: per measure and phase, the latest full year stored."""
    return services.national_reference(db.session())


def register(app: Flask) -> None:
    api.register_blueprint(blp)
