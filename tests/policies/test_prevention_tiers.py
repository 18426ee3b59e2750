"""Prevention, early intervention and targeted reengagement (seed 004, preset prevention-tiers).

The tiers are numbered in the document's order: 0 universal, 1 95-97%, 2 93-95%, 3 91-93%,
4 persistent absence, 5 severe absence, 6 referral to the Local Authority.
"""

from __future__ import annotations

import datetime as dt

from tests.policies.helpers import absent_on, d, marks_on, present, replay, upn

EXCELLENT = upn(41)
SLIPPING = upn(42)
SEVERE = upn(43)


def ill_mornings(days: list[str]) -> dict[dt.date, tuple[str, str]]:
    return {d(day): ("I", "\\") for day in days}


def test_bands_move_the_pupil_down_the_tiers() -> None:
    """ "97-100%", "95-97%", "93-95%", "91-93%", then "Persistent absence": each band has its own
    actions - letter 1 and info sheet, letter 2 and a face to face meeting, a notice to improve "sent
    to parents and to Local Authority"."""
    # Morning sessions missed: 1 of 26 by Fri 19 Sep (96.2%), 3 of 46 by 3 Oct (93.5%), 5 of 66 by
    # 17 Oct (92.4%), 9 of 86 by 7 Nov (89.5%: persistently absent).
    days = ["2025-09-15", "2025-09-29", "2025-09-30", "2025-10-13", "2025-10-14"]
    days += ["2025-11-03", "2025-11-04", "2025-11-05", "2025-11-06"]
    out = replay("prevention-tiers", {SLIPPING: marks_on(ill_mornings(days))}, "2025-09-01", "2025-11-07")
    assert out.moves(SLIPPING) == [
        ("2025-09-19", 0, 1),
        ("2025-10-03", 1, 2),
        ("2025-10-17", 2, 3),
        ("2025-11-07", 3, 4),
    ]
    assert out.kinds(SLIPPING, 1) == ["meeting", "phone_call", "letter", "meeting", "meeting"]
    assert out.transition_to(SLIPPING, 1).actions[2].detail.startswith("letter prevention-letter-1")
    assert out.kinds(SLIPPING, 2) == ["letter", "meeting", "action_plan"]
    nti = out.transition_to(SLIPPING, 3).actions[0]
    assert nti.kind == "notice_to_improve"
    assert dict(nti.params)["copy_to"] == ("Local Authority",)
    assert "below 93%" in out.transition_to(SLIPPING, 3).reason


def test_reward_for_excellent_attendance() -> None:
    """ "97%-100% Excellent Attendance - Half termly letter/ email sent home. Regular Arbor alerts.
    - Rewards weekly, half termly and end of year for children." A pupil below 97% gets none."""
    out = replay(
        "prevention-tiers",
        {EXCELLENT: present, SLIPPING: absent_on([0], code="I")},
        "2025-09-01",
        "2025-10-24",
    )
    rewards = [
        (a.on.isoformat(), a.kind) for a in out.pupils[EXCELLENT].recurring if a.kind in ("reward", "letter")
    ]
    fridays = [
        "2025-09-05",
        "2025-09-12",
        "2025-09-19",
        "2025-09-26",
        "2025-10-03",
        "2025-10-10",
        "2025-10-17",
    ]
    assert [day for day, kind in rewards if kind == "reward"][: len(fridays)] == fridays
    # the last school day of Autumn 1 (Fri 24 Oct): weekly reward, half-termly letter and reward
    assert [kind for day, kind in rewards if day == "2025-10-24"] == ["reward", "letter", "reward"]
    assert out.pupils[EXCELLENT].stage == 0
    # 100% in the first (Wednesday to Friday) week, below 97% once Mondays are missed
    assert [a.on.isoformat() for a in out.pupils[SLIPPING].recurring if a.kind == "reward"] == ["2025-09-05"]


def test_notice_to_improve_with_20_school_days() -> None:
    """Severe absence: "Notice to improve letter sent with 20 days to improve ... - Attendance action
    plan discussed - Where there is a lack of parental engagement in support or support isn't
    effective, then referral to the Local Authority for formal and/or Statutory Procedures."
    The pupil misses Monday to Wednesday every week: 2 of 6 sessions in the first (Wednesday to
    Friday) week, persistently absent; 8 of 16 by Fri 12 Sep, severely absent."""
    out = replay("prevention-tiers", {SEVERE: absent_on([0, 1, 2])}, "2025-09-01", "2025-10-24")
    assert out.moves(SEVERE) == [
        ("2025-09-05", 0, 4),
        ("2025-09-12", 4, 5),
        ("2025-10-10", 5, 6),  # 20 school days after Fri 12 Sep: 15 Sep - 10 Oct
    ]
    assert "severely absent (absence 50.0%)" in out.transition_to(SEVERE, 5).reason
    nti = out.transition_to(SEVERE, 5).actions[0]
    assert nti.kind == "notice_to_improve"
    assert dict(nti.params)["improvement_period_school_days"] == 20
    assert nti.as_dict()["detail"].startswith("20 school days to improve")
    assert out.kinds(SEVERE, 5) == ["notice_to_improve", "meeting", "action_plan"]
    assert "20 school days at this stage" in out.transition_to(SEVERE, 6).reason
    (referral,) = out.transition_to(SEVERE, 6).actions
    assert dict(referral.params)["referral_kind"] == "la_notification"


def test_engaging_and_improving_within_the_notice_stops_the_referral() -> None:
    """The referral follows only "a lack of parental engagement in support or support isn't effective"."""

    def improves(day: dt.date) -> tuple[str, str]:
        return absent_on([0, 1, 2])(day) if day <= d("2025-09-12") else ("/", "\\")

    out = replay("prevention-tiers", {SEVERE: improves}, "2025-09-01", "2025-10-24")
    assert [to for _, _, to in out.moves(SEVERE)] == [4, 5]
