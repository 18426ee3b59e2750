"""Refreshing a school's precomputed figures, as a job.

``casework.jobs.evaluate_school`` enqueues :func:`refresh_school` when an evaluation finishes
(it is queued after that job's transaction commits), so the trust and LA pages show figures
as of the latest evaluation run.
"""

from __future__ import annotations

import datetime as dt

from attendwise.insights import services
from attendwise.platform.db import db


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
