"""Persistent absence procedures with attendance action plans (seed 002, preset pa-action-plans).

The pupil misses every Monday (illness, so only the plan-driven steps act): 87.5% by Fri 12 Sep,
about 80% after that.
"""

from __future__ import annotations

import datetime as dt

from tests.policies.helpers import absent_on, d, replay, upn

PUPIL = upn(21)
MONDAYS = absent_on([0], code="I")


def improves_after_plan(day: dt.date) -> tuple[str, str]:
    return MONDAYS(day) if day <= d("2025-10-15") else ("/", "\\")


PLAN_MADE = (PUPIL, "2025-10-15", "meeting_attended")


def test_two_failed_reviews_reach_the_access_and_inclusion_referral() -> None:
    """ "Attendance concern phone calls, home visits and attendance concern letters actioned ... but no
    improvement in attendance" -> "Attendance Plan invitation" -> "Attendance Action Plan" -> Review 1
    "Targets not met - continue plan or initiate an Early Help Assessment" -> Review 2 "Targets not met
    - Early Help Action Plan or refer to Access and Inclusion Officer"."""
    events = [
        PLAN_MADE,
        (PUPIL, "2025-11-19", "review_targets_not_met"),
        (PUPIL, "2025-12-17", "review_targets_not_met"),
    ]
    out = replay("pa-action-plans", {PUPIL: MONDAYS}, "2025-09-01", "2025-12-19", events)
    assert out.moves(PUPIL) == [
        ("2025-09-12", 0, 1),
        ("2025-10-10", 1, 2),  # four school weeks of concern work with no improvement
        ("2025-10-15", 2, 3),  # the plan meeting
        ("2025-11-19", 3, 4),  # review 1: targets not met
        ("2025-12-17", 4, 5),  # review 2: targets not met
    ]
    assert out.kinds(PUPIL, 1) == ["phone_call", "home_visit", "letter"]
    assert out.kinds(PUPIL, 2) == ["meeting", "letter", "phone_call"]
    sibling_check = out.transition_to(PUPIL, 2).actions[2]
    assert "siblings" in sibling_check.detail
    assert out.kinds(PUPIL, 3) == ["action_plan", "letter"]
    assert out.kinds(PUPIL, 4) == ["review", "early_help", "phone_call", "letter"]
    referral = next(a for a in out.transition_to(PUPIL, 5).actions if a.kind == "referral")
    assert dict(referral.params)["referral_kind"] == "access_and_inclusion"
    assert "Registration certificates" in dict(referral.params)["evidence"]
    # "the Access and Inclusion Officer will make contact with school ... within 10 working days"
    last_review = out.transition_to(PUPIL, 5).actions[-1]
    assert dict(last_review.params)["review_after_working_days"] == 10
    assert out.pupils[PUPIL].stage_name == "Referral to the Access and Inclusion Officer"


def test_plan_closes_when_targets_are_met() -> None:
    """Review 1: "Targets met - plan closed. SPO to monitor." The pupil leaves the ladder and, now
    attending, is not picked up again."""
    events = [PLAN_MADE, (PUPIL, "2025-11-19", "review_targets_met")]
    out = replay("pa-action-plans", {PUPIL: improves_after_plan}, "2025-09-01", "2025-12-19", events)
    assert out.moves(PUPIL)[-1] == ("2025-11-19", 3, 0)
    assert "plan is closed" in out.transition_to(PUPIL, 0).reason
    assert out.pupils[PUPIL].stage == 0


def test_missed_invitation_still_makes_the_plan() -> None:
    """Invitation letter: "if parents fail to attend plans will be made in their absence"."""
    events = [(PUPIL, "2025-10-15", "meeting_missed")]
    out = replay("pa-action-plans", {PUPIL: MONDAYS}, "2025-09-01", "2025-10-17", events)
    assert out.moves(PUPIL)[-1] == ("2025-10-15", 2, 3)


def test_weekly_meetings_while_on_the_plan() -> None:
    """ "Weekly meetings are then held with students on the plan ... contact with home is maintained
    to give weekly updates of progress"."""
    out = replay("pa-action-plans", {PUPIL: MONDAYS}, "2025-09-01", "2025-11-14", [PLAN_MADE])
    weekly = [(a.on.isoformat(), a.kind) for a in out.pupils[PUPIL].recurring]
    assert weekly == [
        (day, kind)
        for day in ("2025-10-17", "2025-10-24", "2025-11-07", "2025-11-14")
        for kind in ("meeting", "phone_call")
    ]
