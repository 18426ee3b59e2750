"""Spetisbury (seed 000), driven sentence by sentence through scripted pupils.

Calendar: England 2025/26 (school opens Wed 3 Sep; autumn half-term 27-31 Oct is not a school
week). Spetisbury evaluates on Fridays, "following register checks".
"""

from __future__ import annotations

import numpy as np

from attendwise.policies import simulate
from attendwise.policies.engine import LadderState, evaluate
from tests.policies.helpers import CALENDAR, absent_on, d, marks, marks_on, present, replay, upn

ALWAYS_PA = upn(1)
RECOVERS = upn(2)
PERFECT = upn(3)


def test_escalation_by_weeks_without_improvement() -> None:
    """Stage 1: "A child has an % attendance of less than 90%".
    Stage 2: "Following a period of 3-5 weeks if the child is still a PA and there has been no or
    little improvement in the % attendance" - and likewise 5-8 weeks (stage 3), 8-12 weeks (stage 4)
    and 12 or more weeks (stage 5), counted from the first stage.
    """
    out = replay("spetisbury", {ALWAYS_PA: absent_on([0, 1])}, "2025-09-01", "2025-12-19")
    # Mon and Tue missed every week: 75% by Fri 12 Sep, then about 60% all term.
    assert out.moves(ALWAYS_PA) == [
        ("2025-09-12", 0, 1),
        ("2025-10-03", 1, 2),  # 3 school weeks after 12 Sep
        ("2025-10-17", 2, 3),  # 5 school weeks
        ("2025-11-14", 3, 4),  # 8 school weeks (half-term week not counted)
        ("2025-12-12", 4, 5),  # 12 school weeks
    ]
    first = out.transition_to(ALWAYS_PA, 1)
    assert "attendance 75.0% this year (below 90%)" in first.reason
    second = out.transition_to(ALWAYS_PA, 2)
    assert "persistently absent" in second.reason
    assert "little improvement" in second.reason
    assert "after 3 school weeks" in second.reason
    assert out.pupils[ALWAYS_PA].stage == 5
    assert out.pupils[ALWAYS_PA].stage_name == "Penalty notice referral"


def test_stage_actions_follow_the_table() -> None:
    """Stage 1: "Phone call from Shulay to the parent ... followed up by sending an Arbor mail with
    the stage 1 letter" and "All further absence is unauthorised (code O), unless decided otherwise
    by SLT." Stage 4: "A referral is made to pupil services for a court warning." Stage 5: "A
    referral is made to issue a penalty notice."
    """
    out = replay("spetisbury", {ALWAYS_PA: absent_on([0, 1])}, "2025-09-01", "2025-12-19")
    assert out.kinds(ALWAYS_PA, 1) == ["phone_call", "letter", "code_guidance"]
    letter = out.transition_to(ALWAYS_PA, 1).actions[1]
    assert letter.detail.startswith("letter spetisbury-stage-1")
    assert "code O" in out.transition_to(ALWAYS_PA, 1).actions[2].detail
    assert out.kinds(ALWAYS_PA, 2) == ["phone_call", "meeting", "letter", "early_help"]
    stage4 = out.transition_to(ALWAYS_PA, 4).actions
    assert [(a.kind, dict(a.params)["referral_kind"]) for a in stage4] == [("referral", "court_warning")]
    assert stage4[0].as_dict()["detail"].startswith("court_warning")
    stage5 = out.transition_to(ALWAYS_PA, 5).actions
    assert [dict(a.params)["referral_kind"] for a in stage5] == ["penalty_notice"]


def test_improvement_stops_the_escalation() -> None:
    """ "... if the child is still a PA and there has been no or little improvement": a pupil whose
    attendance improves after stage 1 is not moved on."""
    recovering = absent_on([0, 1], until=d("2025-09-19"))
    out = replay("spetisbury", {RECOVERS: recovering}, "2025-09-01", "2025-12-19")
    assert out.moves(RECOVERS) == [("2025-09-12", 0, 1)]


def test_missed_meeting_moves_straight_to_the_next_stage() -> None:
    """Stage 2: "If this meeting is missed stage 3 is immediately followed."
    Stage 3: "If this meeting is missed stage 4 is immediately followed." and "Home visits may also
    be carried out if parents do not attend meetings."
    """
    events = [(ALWAYS_PA, "2025-10-07", "meeting_missed"), (ALWAYS_PA, "2025-10-21", "meeting_missed")]
    out = replay("spetisbury", {ALWAYS_PA: absent_on([0, 1])}, "2025-09-01", "2025-11-07", events)
    assert out.moves(ALWAYS_PA) == [
        ("2025-09-12", 0, 1),
        ("2025-10-03", 1, 2),
        ("2025-10-07", 2, 3),  # the Tuesday the meeting was missed, not the next Friday
        ("2025-10-21", 3, 4),
    ]
    assert "meeting was missed" in out.transition_to(ALWAYS_PA, 3).reason
    assert out.kinds(ALWAYS_PA, 4) == ["referral", "home_visit"]


def test_friday_call_to_every_persistent_absentee() -> None:
    """ "Each week Shulay calls each and every of our parents whose child/ren are PA. This is done on
    Friday morning's following register checks." Pupils who are not PA get no call."""
    out = replay("spetisbury", {ALWAYS_PA: absent_on([0, 1]), PERFECT: present}, "2025-09-01", "2025-10-10")
    calls = [a for a in out.pupils[ALWAYS_PA].recurring if a.kind == "phone_call"]
    assert [a.on.isoformat() for a in calls] == [
        "2025-09-12",
        "2025-09-19",
        "2025-09-26",
        "2025-10-03",
        "2025-10-10",
    ]
    assert all(a.on.weekday() == 4 for a in calls)
    assert out.pupils[PERFECT].recurring == []
    assert out.pupils[PERFECT].transitions == []
    assert out.pupils[PERFECT].stage == 0


def test_legal_steps_wait_for_sign_off_outside_a_simulation() -> None:
    """Court-warning and penalty-notice referrals carry legal weight: the engine proposes the move to
    the senior attendance champion instead of making it, and proposes it once (a stable key)."""
    policies, _ = simulate.load_preset("spetisbury")
    policy = policies[0]
    rp = simulate.Replay.from_marks(
        marks({ALWAYS_PA: absent_on([0, 1])}, d("2025-11-21")), CALENDAR, [], d("2025-09-01"), d("2025-11-21")
    )
    state = LadderState.initial([ALWAYS_PA], 0)
    state.stage[:] = 3
    state.entered[:] = d("2025-10-17").toordinal()
    state.ladder_entered[:] = d("2025-09-12").toordinal()
    state.attendance_at_entry[:] = 62.0
    first = evaluate(policy, state, rp.facts(d("2025-11-14"), policy))
    (proposal,) = first.transitions
    assert (proposal.status, proposal.sign_off, proposal.to_stage) == (
        "proposed",
        "senior_attendance_champion",
        4,
    )
    assert int(first.state.stage[0]) == 3
    assert "move to stage 4 proposed" in proposal.explanation
    again = evaluate(policy, first.state, rp.facts(d("2025-11-21"), policy))
    assert again.transitions[0].key == proposal.key
    approved = evaluate(policy, first.state, rp.facts(d("2025-11-21"), policy), approve_all=True)
    assert approved.transitions[0].status == "awaiting_support"
    supported = evaluate(
        policy, first.state, rp.facts(d("2025-11-21"), policy), approve_all=True, assume_support=True
    )
    assert int(supported.state.stage[0]) == 4
    assert np.array_equal(first.state.stage, state.stage)


def test_evaluating_twice_changes_nothing() -> None:
    """Idempotent: the same day evaluated again makes no further move and no new decision keys."""
    policies, _ = simulate.load_preset("spetisbury")
    policy = policies[0]
    pupils = {ALWAYS_PA: absent_on([0, 1]), PERFECT: marks_on({}, present)}
    rp = simulate.Replay.from_marks(
        marks(pupils, d("2025-09-12")), CALENDAR, [], d("2025-09-01"), d("2025-09-12")
    )
    facts = rp.facts(d("2025-09-12"), policy)
    state = LadderState.initial(list(pupils), 0)
    once = evaluate(policy, state, facts, recurring_today=lambda every: every == "friday")
    twice = evaluate(policy, once.state, facts, recurring_today=lambda every: every == "friday")
    assert [t.to_stage for t in once.transitions] == [1]
    assert twice.transitions == []
    assert np.array_equal(once.state.stage, twice.state.stage)
    assert {a.key for a in twice.actions} == {a.key for a in once.actions}
