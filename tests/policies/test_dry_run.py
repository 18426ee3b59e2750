"""The dry run: what a policy would do on current data, creating nothing."""

from __future__ import annotations

from attendwise.policies import simulate
from tests.policies.helpers import CALENDAR, absent_on, d, marks, present, upn

PA = upn(61)
GOOD = upn(62)


def test_dry_run_counts_stages_this_weeks_actions_and_changes() -> None:
    policies, _ = simulate.load_preset("spetisbury")
    rp = simulate.Replay.from_marks(
        marks({PA: absent_on([0, 1]), GOOD: present}, d("2025-10-03")),
        CALENDAR,
        [],
        d("2025-08-01"),
        d("2025-10-03"),
    )
    report = simulate.dry_run(policies, rp, d("2025-10-03"))
    assert report["policy"] == "spetisbury@1"
    assert {s["stage"]: s["pupils"] for s in report["stages"]} == {0: 1, 1: 0, 2: 1, 3: 0, 4: 0, 5: 0}
    week = report["week"]
    assert (week["from"], week["to"]) == ("2025-09-29", "2025-10-03")
    # this week: PA moves to stage 2 (call, meeting, letter, early help) and gets the Friday call
    assert week["actions"] == {"early_help": 1, "letter": 1, "meeting": 1, "phone_call": 2}
    (change,) = week["stage_changes"]
    assert (change["upn"], change["from"], change["to"]) == (PA, 1, 2)
    assert change["explanation"].startswith("Stage 2 since 3 Oct 2025: still persistently absent")
