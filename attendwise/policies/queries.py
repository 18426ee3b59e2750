"""Read helpers: a school's stored marks, ready for the engine (the dry run reads them here)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.attendance import queries as attendance_queries
from attendwise.attendance import services as attendance_services
from attendwise.attendance.calendar import academic_year_of
from attendwise.attendance.metrics import MarkMatrix
from attendwise.attendance.models import Pupil
from attendwise.policies import simulate
from attendwise.policies.document import Policy
from attendwise.policies.engine import Evaluation, LadderState


def school_replay(
    session: Session, org_id: int, on: dt.date, *, events: Sequence[simulate.EventRow] = ()
) -> tuple[simulate.Replay, list[Pupil]]:
    """The school's pupils and this academic year's marks up to ``on``, as the simulator takes them."""
    year = academic_year_of(on)
    pupils = list(
        session.scalars(select(Pupil).order_by(Pupil.legal_surname, Pupil.legal_forename, Pupil.id))
    )
    calendar = attendance_services.school_calendar(session, org_id, year)
    stored = attendance_queries.mark_matrix(session, org_id, year, [p.id for p in pupils])
    matrix = MarkMatrix(stored.start, stored.codes, [p.upn for p in pupils])
    return simulate.Replay(matrix, calendar, events, on, what="school's marks"), pupils


def evaluate_school(
    session: Session,
    org_id: int,
    policy: Policy,
    state: LadderState,
    on: dt.date,
    *,
    events: Sequence[simulate.EventRow] = (),
) -> Evaluation | None:
    """Evaluate the school's pupils on ``on`` as the scheduled job does, from its stored marks.

    ``state`` is where each pupil stood before (in the order of :func:`school_replay`'s pupils,
    labelled by UPN); ``events`` are the staff-recorded events. Nothing is written: the caller
    publishes the returned decisions to its :class:`~attendwise.policies.engine.DecisionSink` and
    keeps the new state. Moves needing sign-off are proposed and support-first gates wait for
    recorded support. ``None`` when nothing falls due that day.
    """
    replay, pupils = school_replay(session, org_id, on, events=events)
    if state.upns != [p.upn for p in pupils]:
        raise ValueError("the state must list the school's pupils in school_replay order")
    return simulate.evaluate_day(policy, replay, state, on)


def dry_run(session: Session, org_id: int, policy: Policy, on: dt.date) -> dict[str, Any]:
    """:func:`attendwise.policies.simulate.dry_run` on the school's stored data, creating nothing."""
    replay, pupils = school_replay(session, org_id, on)
    if not pupils:
        return {"on": on.isoformat(), "policy": policy.key, "pupils": 0, "stages": [], "week": None}
    report = simulate.dry_run([policy], replay, on)
    by_upn = {p.upn: p for p in pupils}
    for change in report["week"]["stage_changes"]:
        pupil = by_upn[change["upn"]]
        change["pupil_id"] = pupil.id
        change["name"] = pupil.display_name
    return report
