"""The Dormston School (seed 001): missed-session thresholds, in both tables of the document.

The pupil below misses the morning session of every school day: 3 sessions in the first
(Wednesday-to-Friday) week, then 5 a week - 8 by Fri 12 Sep, 13 by 19 Sep, 18 by 26 Sep,
23 by 3 Oct, 28 by 10 Oct.
"""

from __future__ import annotations

from attendwise.policies import simulate
from attendwise.policies.versions import diff, version_on
from tests.policies.helpers import d, present, replay, upn

MORNINGS = upn(11)
PERFECT = upn(12)


def misses_mornings(_: object) -> tuple[str, str]:
    return "I", "\\"


def test_launch_table_thresholds() -> None:
    """Version 1: "Stage 1 - 5-7missed sessions", "Stage 2 - 15-17 missed sessions", "Stage 3 -
    25-27 missed sessions", "Stage 4 - ESS Referral made to the Local Authority" (after the
    parenting contract, "reviewed in 4-6 weeks", shows no improvement)."""
    out = replay("dormston@1", {MORNINGS: misses_mornings, PERFECT: present}, "2025-09-01", "2025-11-28")
    assert out.moves(MORNINGS) == [
        ("2025-09-12", 0, 1),  # 8 sessions: at least 5
        ("2025-09-26", 1, 2),  # 18: at least 15
        ("2025-10-10", 2, 3),  # 28: at least 25
        ("2025-11-14", 3, 4),  # 4 school weeks after 10 Oct (half-term week not counted)
    ]
    assert "15-17 missed sessions" in out.transition_to(MORNINGS, 2).reason
    assert "18 sessions missed this year (at least 15)" in out.transition_to(MORNINGS, 2).reason
    assert out.moves(PERFECT) == []


def test_later_table_thresholds() -> None:
    """Version 2: "Stage Two: (c. 13-15 sessions)", "Stage Three: (21-23 sessions)"; "we notify parents
    that we need medical evidence to authorise anymore absences"; "We put an ESS referral into the
    local Authority due to the lack of improvement in the child's attendance"."""
    out = replay("dormston@2", {MORNINGS: misses_mornings}, "2025-09-01", "2025-11-28")
    assert out.moves(MORNINGS) == [
        ("2025-09-12", 0, 1),
        ("2025-09-19", 1, 2),  # 13 sessions
        ("2025-10-03", 2, 3),  # 23 sessions: at least 21
        ("2025-11-07", 3, 4),
    ]
    assert out.kinds(MORNINGS, 2) == ["letter", "code_guidance"]
    assert "medical evidence" in out.transition_to(MORNINGS, 2).actions[1].detail
    stage3 = out.kinds(MORNINGS, 3)
    assert stage3 == ["letter", "meeting", "attendance_contract", "early_help"]
    referral = out.transition_to(MORNINGS, 4).actions[0]
    assert referral.as_dict() == {"kind": "referral", "detail": referral.detail, "referral_kind": "ess"}


def test_stage_one_is_always_a_conversation() -> None:
    """ "We always speak to the parent at stage one of our procedures."""
    out = replay("dormston", {MORNINGS: misses_mornings}, "2025-09-01", "2025-09-12")
    (call,) = out.transition_to(MORNINGS, 1).actions
    assert call.kind == "phone_call"
    assert "concern rather than the law" in call.detail


def test_contract_review_showing_no_improvement_refers_early() -> None:
    """Stage 3's contract "will be reviewed in 4-6 weeks": a review recorded as targets not met at
    four weeks refers to the LA even if the figures crept up."""
    out = replay(
        "dormston@2",
        {MORNINGS: misses_mornings},
        "2025-09-01",
        "2025-11-07",
        events=[(MORNINGS, "2025-11-05", "review_targets_not_met")],
    )
    assert out.moves(MORNINGS)[-1] == ("2025-11-05", 3, 4)


def test_the_version_in_effect_is_used_and_recorded() -> None:
    """Both tables ship as versions of one preset; a decision records the version it was made under."""
    policies, pinned = simulate.load_preset("dormston")
    assert pinned is None
    assert [p.version for p in policies] == [1, 2]
    assert version_on(policies, d("2023-10-01")).version == 1
    assert version_on(policies, d("2025-10-01")).version == 2
    out = replay("dormston", {MORNINGS: misses_mornings}, "2025-09-01", "2025-09-19")
    assert {t.policy for t in out.pupils[MORNINGS].transitions} == {"dormston@2"}


def test_plain_language_diff_between_the_tables() -> None:
    policies, _ = simulate.load_preset("dormston")
    lines = diff(policies[0], policies[1])
    assert (
        "Stage 2 (Letter home from Head of House) is now entered when sessions missed this year at least 13 "
        "(was when sessions missed this year at least 15)." in lines
    )
    assert any(
        line.startswith("Stage 3 (Meeting and contract) is now entered when sessions missed")
        for line in lines
    )
    assert diff(policies[1], policies[1]) == []
