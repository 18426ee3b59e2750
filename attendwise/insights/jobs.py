"""Refreshing a school's precomputed figures, and computing what works, as jobs.

``casework.jobs.evaluate_school`` enqueues :func:`refresh_school` when an evaluation finishes
(it is queued after that job's transaction commits), so the trust and LA pages show figures
as of the latest evaluation run. :func:`compute_what_works` is queued when a what-works page
has nothing stored for its settings, when a user asks for it again, and by the periodic
:func:`requeue_stale_what_works` once the figures of the schools it covers have been refreshed.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select

from attendwise.insights import services, what_works
from attendwise.insights.models import WhatWorksResult
from attendwise.platform.db import db
from attendwise.platform.jobs import Periodic

log = logging.getLogger(__name__)


def refresh_school(org_id: int, on: str | None = None) -> dict[str, object]:
    """The job: refresh one school's figures (``on``: ISO date, today by default)."""
    result = services.refresh(db.session(), org_id, on=dt.date.fromisoformat(on) if on else None)
    return {
        "school": result.school_id,
        "on": result.on.isoformat(),
        "figure_rows": result.figure_rows,
        "kept": sorted(result.kept),
        "extended": sorted(result.extended),
    }


def compute_what_works(scope_id: int, period: str, weeks: int) -> dict[str, object]:
    """The job: compute what works for an organisation (``what_works.request`` queues it). A
    failure is recorded on the stored result, with why, for the page to show."""
    session = db.session()
    try:
        with session.begin_nested():
            row = what_works.compute(session, scope_id, period, weeks)
    except Exception as exc:
        log.exception("what works for organisation %s (%s, %s weeks) failed", scope_id, period, weeks)
        what_works.fail(session, scope_id, period, weeks, f"{type(exc).__name__}: {exc}")
        return {"state": what_works.FAILED}
    return {"state": row.state, "computed_at": row.computed_at.isoformat() if row.computed_at else None}


SWEEP_EVERY = 600  # seconds


def requeue_stale_what_works() -> int:
    """Periodic (system context): queue again each stored what-works result computed before the
    figures of the schools it covers were last refreshed. Returns how many were queued."""
    session = db.session()
    queued = 0
    for row in session.scalars(select(WhatWorksResult).where(WhatWorksResult.state != what_works.QUEUED)):
        refreshed = services.last_refreshed(session, row.org_id)
        if refreshed is not None and (row.computed_at is None or refreshed > row.computed_at):
            what_works.request(session, row.org_id, row.period, row.weeks)
            queued += 1
    return queued


PERIODIC = (
    Periodic(
        name="insights.requeue_stale_what_works",
        func="attendwise.insights.jobs.requeue_stale_what_works",
        queue="default",
        interval=SWEEP_EVERY,
    ),
)
