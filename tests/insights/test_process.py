"""Process measures: the arithmetic on known facts, and a school's real casework read end to end."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.attendance.metrics import Period
from attendwise.casework import services as casework_services
from attendwise.casework.jobs import evaluate_on
from attendwise.casework.models import ContactChannel, ContactOutcome, Task, TaskStatus
from attendwise.casework.queries import CaseHistory, open_case_for_pupil
from attendwise.insights import process
from attendwise.insights import services as insights_services
from attendwise.insights.process import SchoolActivity, gather, measure
from attendwise.insights.services import schools_in_scope
from attendwise.platform import tenancy
from attendwise.tenants.models import Organisation
from tests.casework.conftest import build_school
from tests.insights.analysis_data import build_trust
from tests.platform.account_fixtures import enrol_from_setup_page

D = dt.date
START, END = D(2026, 9, 1), D(2026, 12, 18)


def _activity(school_id: int, cases: list[CaseHistory], **kw: int) -> SchoolActivity:
    values = {
        "tasks_overdue": 0,
        "letters": 0,
        "persistent_absentees": 0,
        "referrals_submitted": 0,
        "referrals_returned": 0,
    } | kw
    return SchoolActivity(school_id, f"School {school_id}", START, END, cases, **values)


def _case(opened: dt.date, contact: dt.date | None, moves=(), closed=None, pupil=1) -> CaseHistory:
    return CaseHistory(pupil, opened, contact, tuple(moves), closed)


def test_median_days_from_trigger_to_first_contact_pools_cases_across_schools() -> None:
    a = _activity(1, [_case(D(2026, 9, 7), D(2026, 9, 8)), _case(D(2026, 9, 14), D(2026, 9, 24))])
    b = _activity(
        2,
        [
            _case(D(2026, 10, 5), D(2026, 10, 7)),
            _case(D(2026, 10, 5), None),  # still waiting
            _case(D(2026, 6, 1), D(2026, 9, 2)),  # opened before the period: not counted
        ],
    )
    first, second, total = measure([a, b], total_name="Chalk Downs")
    assert (first.cases_opened, first.days_to_first_contact, first.awaiting_first_contact) == (2, 5.5, 0)
    assert (second.cases_opened, second.days_to_first_contact, second.awaiting_first_contact) == (2, 2.0, 1)
    assert total.name == "Chalk Downs"
    assert total.school_id is None
    assert (total.cases_opened, total.days_to_first_contact, total.awaiting_first_contact) == (4, 2.0, 1)


def test_letters_per_persistent_absentee_overdue_tasks_and_returned_referrals() -> None:
    a = _activity(1, [], letters=30, persistent_absentees=12, tasks_overdue=3, referrals_submitted=4,
                  referrals_returned=1)  # fmt: skip
    b = _activity(2, [], letters=5, persistent_absentees=0, tasks_overdue=2, referrals_submitted=1,
                  referrals_returned=1)  # fmt: skip
    first, second, total = measure([a, b])
    assert first.letters_per_persistent_absentee == 2.5
    assert second.letters_per_persistent_absentee is None  # no absentee: not a division by zero
    assert total.letters_per_persistent_absentee == pytest.approx(35 / 12)
    assert (total.tasks_overdue, total.referrals_submitted, total.referrals_returned) == (5, 5, 2)


def test_weeks_from_stage_entry_to_improvement() -> None:
    stepped_down = _case(
        D(2026, 9, 7),
        D(2026, 9, 7),
        moves=[
            (D(2026, 9, 7), 0, 1, "Concern"),
            (D(2026, 9, 21), 1, 2, "Letter"),
            (D(2026, 10, 19), 2, 1, "C"),
        ],
    )
    closed = _case(D(2026, 9, 7), None, moves=[(D(2026, 9, 7), 0, 1, "Concern")], closed=D(2026, 11, 2))
    still = _case(D(2026, 11, 2), None, moves=[(D(2026, 11, 2), 0, 2, "Letter")])
    (row, _total) = measure([_activity(1, [stepped_down, closed, still])])
    # Entries: stage 1 on 7 Sep (down on 19 Oct: 6 weeks), stage 2 on 21 Sep (down on 19 Oct: 4
    # weeks), stage 1 on 7 Sep (closed 2 Nov: 8 weeks), stage 2 on 2 Nov (not improved yet).
    assert row.stage_entries == 4
    assert row.improved == 3
    assert row.weeks_to_improvement == 6.0


def test_gather_reads_a_schools_casework_and_marks(
    db_session: Session, make_school: Callable[..., Organisation]
) -> None:
    built = build_school(db_session, make_school(name="Hill Primary"), pupils=12, absent_pupils=6)
    school = built.school
    with tenancy.tenant_context(school.id):
        for friday in (D(2026, 9, 25), D(2026, 10, 2), D(2026, 10, 9)):
            evaluate_on(db_session, school.id, friday)
        case = open_case_for_pupil(db_session, built.pupils[0].id)
        assert case is not None
        casework_services.log_contact(
            db_session,
            case,
            channel=ContactChannel.PHONE,
            outcome=ContactOutcome.SPOKE_TO,
            note="",
            by_user_id=None,
            occurred_at=dt.datetime.combine(
                case.opened_on + dt.timedelta(days=3), dt.time(10), tzinfo=dt.UTC
            ),
        )
    period = Period(START, D(2026, 11, 20))
    activity = gather(db_session, school.id, school.name, period)
    assert activity.persistent_absentees == 6  # the six pupils who miss one day in four
    assert len(activity.cases) == 6
    (row, _total) = measure([activity])
    assert row.cases_opened == 6
    assert row.days_to_first_contact == 3.0
    assert row.awaiting_first_contact == 5
    assert row.stage_entries >= 6
    assert row.tasks_overdue > 0
    with tenancy.tenant_context(school.id):
        tasks = db_session.scalars(select(Task).where(Task.status == TaskStatus.OPEN)).all()
        casework_services.complete_tasks(
            db_session, [t for t in tasks if not t.waiting_for_signoff], by_user_id=None, note="done"
        )
        waiting = sum(1 for t in tasks if t.waiting_for_signoff and t.due_on <= period.end)
    assert gather(db_session, school.id, school.name, period).tasks_overdue == waiting


def test_the_table_suppresses_small_counts_outside_the_school_only() -> None:
    cases = [_case(D(2026, 9, 7), D(2026, 9, 9), pupil=p) for p in range(3)]
    activity = _activity(1, cases, letters=12, persistent_absentees=3, tasks_overdue=7, referrals_submitted=2)
    rows = measure([activity])
    inside = process.table(rows, suppress=False)
    outside = process.table(rows, suppress=True)
    column = {name: i for i, name in enumerate(inside.columns)}
    school_in, school_out = inside.rows[0], outside.rows[0]
    assert school_in[column["Cases opened"]] == 3
    assert school_in[column["Median days from trigger to first contact"]] == 2.0
    assert school_in[column["Letters per persistent absentee"]] == 4.0
    assert school_out[column["Cases opened"]] == "x"
    assert school_out[column["Median days from trigger to first contact"]] == "x"
    assert school_out[column["Letters per persistent absentee"]] == "x"
    assert school_out[column["Referrals submitted"]] == "x"
    assert school_out[column["Tasks overdue"]] == 7  # 5 or more: shown
    assert school_out[column["Letters"]] == 12
    assert school_out[column["Cases waiting for a first contact"]] == 0  # nothing to hide in a zero


def test_the_process_page_shows_a_trusts_schools_with_small_groups_suppressed(
    client, login, make_user, db_session: Session, make_trust, make_school
) -> None:
    trust = build_trust(db_session, make_trust, make_school)
    login(make_user(trust, "trust_leader"))
    page = client.get("/insights/process?period=term")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    table = html[html.index('data-testid="process-table"') :]
    hill, vale = table.index("Hill Primary"), table.index("Vale Primary")
    hill_cells = re.findall(r'<td class="[^"]*">([^<]*)</td>', table[hill:vale])
    vale_cells = re.findall(r'<td class="[^"]*">([^<]*)</td>', table[vale:])
    assert hill_cells[5] == "10"  # persistent absentees
    assert vale_cells[5] == "x"  # 4 pupils: not shown outside the school
    assert "Download this table" in html


def test_a_school_sees_its_own_small_figures(
    client, login, make_user, db_session: Session, make_trust, make_school
) -> None:
    trust = build_trust(db_session, make_trust, make_school)
    with tenancy.system_context("test: the smaller school"):
        info = next(s for s in schools_in_scope(db_session, trust) if s.name == "Vale Primary")
        vale = db_session.get_one(Organisation, info.id)
    login(make_user(vale, "senior_attendance_champion"))
    html = client.get("/insights/process?period=term").get_data(as_text=True)
    table = html[html.index('data-testid="process-table"') :]
    cells = re.findall(r'<td class="[^"]*">([^<]*)</td>', table[table.index("Vale Primary") :])
    assert cells[5] == "4"
    assert "Hill Primary" not in html


def test_an_la_officer_sees_its_schools_process_measures_as_aggregates(
    client, login, make_user, db_session: Session, make_la, make_school
) -> None:
    la = make_la(name="Dorset Council")
    built = build_school(db_session, make_school(la=la, name="Hill Primary"), pupils=12, absent_pupils=6)
    with tenancy.tenant_context(built.school.id):
        for friday in (D(2026, 9, 25), D(2026, 10, 2)):
            evaluate_on(db_session, built.school.id, friday)
        insights_services.refresh(db_session, built.school.id, on=D(2026, 11, 20))
    login(make_user(la, "la_attendance_officer"))
    enrol_from_setup_page(client, "/auth/mfa/setup")
    response = client.get("/insights/process?period=term")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    table = html[html.index('data-testid="process-table"') :]
    cells = re.findall(r'<td class="[^"]*">([^<]*)</td>', table[table.index("Hill Primary") :])
    assert cells[0] == "6"  # cases opened
    assert cells[5] == "6"  # persistent absentees
    assert "Pupil1 " not in html  # no pupil's name reaches the LA
