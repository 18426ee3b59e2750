"""The worklist and case pages: what staff see and record, sign-off, conflicts and permissions."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.casework import services
from attendwise.casework.jobs import evaluate_on
from attendwise.casework.models import Case, CaseStatus, ContactLog, Meeting, Task, TaskKind, TimelineEntry
from attendwise.platform import tenancy
from attendwise.tenants.models import Organisation, User
from tests.casework.conftest import CaseworkSchool
from tests.conftest import csrf_token

FRIDAYS = (dt.date(2026, 9, 11), dt.date(2026, 9, 18), dt.date(2026, 9, 25), dt.date(2026, 10, 2))


@pytest.fixture
def school_with_cases(db_session: Session, casework_school: Callable[..., CaseworkSchool]) -> CaseworkSchool:
    built = casework_school(pupils=12, absent_pupils=3)
    with tenancy.tenant_context(built.school.id):
        for friday in FRIDAYS:
            evaluate_on(db_session, built.school.id, friday)
    return built


def first_case(db_session: Session, school: Organisation) -> Case:
    with tenancy.tenant_context(school.id):
        case = db_session.scalars(
            select(Case).where(Case.status == CaseStatus.OPEN).order_by(Case.id)
        ).first()
    assert case is not None
    return case


def post(client: FlaskClient, path: str, form: dict[str, Any], page: str) -> Any:
    return client.post(path, data={"csrf_token": csrf_token(client, page), **form})


def test_the_school_worklist_lists_open_tasks_by_when_they_are_due(
    client: FlaskClient,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    school_with_cases: CaseworkSchool,
) -> None:
    login(make_user(school_with_cases.school, "attendance_officer"))
    page = client.get("/worklist?scope=school").get_data(as_text=True)
    assert "Worklist" in page
    assert "overdue" in page
    assert page.count('href="/cases/') >= 3
    assert "Phone call" in page


def test_logging_a_call_and_a_safeguarding_flag_makes_a_task_for_the_dsl(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    school_with_cases: CaseworkSchool,
) -> None:
    school = school_with_cases.school
    login(make_user(school, "attendance_officer"))
    case = first_case(db_session, school)
    page = f"/cases/{case.id}"
    response = post(
        client,
        f"{page}/contacts",
        {
            "channel": "phone",
            "outcome": "no_answer",
            "note": "Rang twice",
            "contact_id": "",
            "safeguarding": "yes",
        },
        page,
    )
    assert response.status_code == 302
    shown = client.get(page).get_data(as_text=True)
    assert "Phone: no answer" in shown
    assert "Rang twice" in shown
    with tenancy.tenant_context(school.id):
        log = db_session.scalars(select(ContactLog).where(ContactLog.case_id == case.id)).one()
        dsl = db_session.get(Task, log.dsl_task_id)
    assert dsl is not None
    assert dsl.kind == TaskKind.SAFEGUARDING
    assert dsl.assignee_role == "designated_safeguarding_lead"


def test_a_contact_outcome_that_does_not_fit_the_channel_is_refused_with_its_field(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    school_with_cases: CaseworkSchool,
) -> None:
    school = school_with_cases.school
    login(make_user(school, "attendance_officer"))
    case = first_case(db_session, school)
    response = post(
        client,
        f"/cases/{case.id}/contacts",
        {"channel": "home_visit", "outcome": "no_answer"},
        f"/cases/{case.id}",
    )
    assert response.status_code == 400
    assert "a home visit can be seen, not seen, concerns" in response.get_data(as_text=True)
    with tenancy.tenant_context(school.id):
        assert db_session.scalars(select(ContactLog)).first() is None


def test_two_people_completing_the_same_task_the_second_gets_a_conflict(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    school_with_cases: CaseworkSchool,
) -> None:
    school = school_with_cases.school
    login(make_user(school, "attendance_officer"))
    case = first_case(db_session, school)
    with tenancy.tenant_context(school.id):
        task = db_session.scalars(
            select(Task).where(Task.case_id == case.id, Task.needs_signoff.is_(False))
        ).first()
        assert task is not None
        seen_version = task.version
    first = post(
        client,
        f"/tasks/{task.id}/complete",
        {"note": "Called mum", "version": seen_version},
        f"/cases/{case.id}",
    )
    second = post(
        client,
        f"/tasks/{task.id}/complete",
        {"note": "Also called", "version": seen_version},
        f"/cases/{case.id}",
    )
    assert first.status_code == 302
    assert second.status_code == 409
    assert "Someone else changed this first" in second.get_data(as_text=True)
    with tenancy.tenant_context(school.id):
        db_session.expire_all()
        kept = db_session.get(Task, task.id)
        assert kept is not None
        assert kept.completion_note == "Called mum"


def test_two_people_editing_the_same_plan_the_second_gets_a_conflict(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    school_with_cases: CaseworkSchool,
) -> None:
    school = school_with_cases.school
    login(make_user(school, "attendance_officer"))
    case = first_case(db_session, school)
    page = f"/cases/{case.id}"
    created = post(
        client,
        f"{page}/plans",
        {
            "target_attendance": "92",
            "target_weeks": "6",
            "support_agreed": "Breakfast club",
            "review_on": "2027-01-15",
        },
        page,
    )
    assert created.status_code == 302
    version = re.search(
        r'action="/plans/(\d+)".*?name="version" value="(\d+)"', client.get(page).get_data(as_text=True), re.S
    )
    assert version is not None
    plan_id, seen = version.groups()
    one = post(
        client, f"/plans/{plan_id}", {"owners": "Ms Ali", "review_on": "2027-01-22", "version": seen}, page
    )
    two = post(
        client, f"/plans/{plan_id}", {"owners": "Mr Bell", "review_on": "2027-01-29", "version": seen}, page
    )
    assert one.status_code == 302
    assert two.status_code == 409
    shown = client.get(page).get_data(as_text=True)
    assert "owners: Ms Ali" in shown
    assert "Mr Bell" not in shown


def test_staff_without_the_write_permission_cannot_log_contacts(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    school_with_cases: CaseworkSchool,
) -> None:
    school = school_with_cases.school
    login(make_user(school, "school_staff"))
    case = first_case(db_session, school)
    assert client.get(f"/cases/{case.id}").status_code == 200
    response = post(
        client, f"/cases/{case.id}/contacts", {"channel": "phone", "outcome": "spoke_to"}, "/worklist"
    )
    assert response.status_code == 403


def test_a_case_of_another_school_is_not_found(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    make_school: Callable[..., Organisation],
    school_with_cases: CaseworkSchool,
) -> None:
    case = first_case(db_session, school_with_cases.school)
    login(make_user(make_school(), "attendance_officer"))
    assert client.get(f"/cases/{case.id}").status_code == 404


def test_the_timeline_is_append_only(db_session: Session, school_with_cases: CaseworkSchool) -> None:
    school = school_with_cases.school
    with tenancy.tenant_context(school.id):
        entry = db_session.scalars(select(TimelineEntry)).first()
        assert entry is not None
        entry.title = "rewritten"
        with pytest.raises(RuntimeError, match="cannot be edited"):
            db_session.flush()
        db_session.rollback()


def test_recording_a_meeting_missed_moves_the_case_when_the_policy_says_so(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    casework_school: Callable[..., CaseworkSchool],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = casework_school(pupils=6, absent_pupils=1)
    school = built.school
    with tenancy.tenant_context(school.id):
        for friday in (*FRIDAYS, dt.date(2026, 10, 9)):
            evaluate_on(db_session, school.id, friday)
    case = first_case(db_session, school)
    assert case.stage == 2
    monkeypatch.setattr("attendwise.attendance.queries.today", lambda: dt.date(2026, 11, 17))
    login(make_user(school, "attendance_officer"))
    page = f"/cases/{case.id}"
    post(
        client,
        f"{page}/meetings",
        {
            "meeting_date": "2026-11-17",
            "meeting_time": "09:30",
            "place": "School office",
            "invitees": "Parent\nAB",
        },
        page,
    )
    with tenancy.tenant_context(school.id):
        meeting = db_session.scalars(select(Meeting).where(Meeting.case_id == case.id)).one()
    response = post(
        client, f"/meetings/{meeting.id}/attendance", {"status": "missed", "version": meeting.version}, page
    )
    assert response.status_code == 302
    db_session.expire_all()  # the evaluation job ran in its own session
    shown = client.get(page).get_data(as_text=True)
    assert "Stage 3: TAC meeting" in shown
    assert "the stage 2 meeting was missed" in shown


def test_a_court_warning_waits_for_the_champion_who_approves_or_declines_with_a_reason(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    casework_school: Callable[..., CaseworkSchool],
) -> None:
    built = casework_school(pupils=6, absent_pupils=2)
    school = built.school
    with tenancy.tenant_context(school.id):
        for friday in (*FRIDAYS, dt.date(2026, 10, 9)):
            evaluate_on(db_session, school.id, friday)
        cases = db_session.scalars(select(Case).where(Case.status == CaseStatus.OPEN).order_by(Case.id)).all()
        for case, day in ((c, d) for c in cases for d in (dt.date(2026, 11, 16), dt.date(2026, 11, 17))):
            services.record_event(db_session, case, "meeting_missed", day)
        evaluate_on(db_session, school.id, dt.date(2026, 11, 16))
        evaluate_on(db_session, school.id, dt.date(2026, 11, 17))
        proposals = db_session.scalars(
            select(Task).where(Task.needs_signoff.is_(True)).order_by(Task.case_id)
        ).all()
        assert [c.stage for c in cases] == [3, 3]
        assert len(proposals) == 2
        assert all(p.waiting_for_signoff for p in proposals)
        assert all(p.signoff_role == "senior_attendance_champion" for p in proposals)
        task_ids = [p.id for p in proposals]
        case_ids = [c.id for c in cases]

    officer = make_user(school, "attendance_officer")
    login(officer)
    page = f"/cases/{case_ids[0]}"
    refused = post(client, f"/tasks/{task_ids[0]}/signoff", {"decision": "approve"}, page)
    assert refused.status_code == 403

    login(make_user(school, "senior_attendance_champion"))
    listed = client.get("/worklist?scope=mine").get_data(as_text=True)
    assert listed.count("Sign off: move to stage 4") == 2
    no_reason = post(client, f"/tasks/{task_ids[1]}/signoff", {"decision": "decline", "reason": ""}, page)
    assert no_reason.status_code == 400
    assert "give a reason for declining" in no_reason.get_data(as_text=True)

    # Stage 4 has a support-first gate: no approval until support is on record.
    gated = post(client, f"/tasks/{task_ids[0]}/signoff", {"decision": "approve", "reason": "x"}, page)
    assert gated.status_code == 400
    refusal = gated.get_data(as_text=True)
    assert "this step cannot be approved yet" in refusal
    assert "Support offered at stages 2 and 3 (family worker, LBI early help offer) is on record" in refusal
    assert "this case has no support recorded" in refusal
    db_session.expire_all()
    with tenancy.tenant_context(school.id):
        still = db_session.get(Task, task_ids[0])
        assert still is not None
        assert still.waiting_for_signoff
        assert db_session.get(Case, case_ids[0]).stage == 3  # type: ignore[union-attr]
    support = post(
        client,
        f"{page}/support",
        {"support": "Family worker", "support_status": "offered", "agencies": "LBI early help"},
        page,
    )
    assert support.status_code == 302

    approved = post(
        client,
        f"/tasks/{task_ids[0]}/signoff",
        {"decision": "approve", "reason": "Support refused twice"},
        page,
    )
    declined = post(
        client,
        f"/tasks/{task_ids[1]}/signoff",
        {"decision": "decline", "reason": "Family worker started this week"},
        f"/cases/{case_ids[1]}",
    )
    assert approved.status_code == 302
    assert declined.status_code == 302
    db_session.expire_all()
    with tenancy.tenant_context(school.id):
        moved, kept = (db_session.get(Case, c) for c in case_ids)
        referral = db_session.scalars(
            select(Task).where(
                Task.case_id == cases[0].id, Task.kind == TaskKind.REFERRAL, Task.needs_signoff.is_(False)
            )
        ).all()
        again = evaluate_on(db_session, school.id, dt.date(2026, 11, 17))
        assert moved is not None
        assert kept is not None
        assert (moved.stage, kept.stage) == (4, 3)
        assert [c.source.value for c in moved.stage_changes][-1] == "person"
    assert len(referral) == 1
    assert again.tasks_created == 0
    shown = client.get(f"/cases/{case_ids[1]}").get_data(as_text=True)
    assert "Declined: Sign off: move to stage 4" in shown
    assert "Family worker started this week" in shown


def test_a_school_admin_can_run_the_policy_now_on_the_schools_own_date_and_an_officer_cannot(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    casework_school: Callable[..., CaseworkSchool],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = casework_school(pupils=6, absent_pupils=2)
    built.school.timezone = "Asia/Dubai"  # a British school abroad, four hours ahead of London
    db_session.flush()
    # Thursday 10 September, 21:30 in London, is already Friday (the policy's weekly day) there.
    monkeypatch.setattr(
        "attendwise.casework.jobs.utcnow", lambda: dt.datetime(2026, 9, 10, 20, 30, tzinfo=dt.UTC)
    )
    monkeypatch.setattr("attendwise.attendance.queries.today", lambda: dt.date(2026, 9, 10))
    login(make_user(built.school, "attendance_officer"))
    assert "Run the policy now" not in client.get("/worklist").get_data(as_text=True)
    assert post(client, "/casework/run-now", {}, "/worklist").status_code == 403

    login(make_user(built.school, "school_admin"))
    response = post(client, "/casework/run-now", {}, "/worklist")
    assert response.status_code == 302
    db_session.expire_all()
    shown = client.get("/worklist?scope=school").get_data(as_text=True)
    assert "Phone call: Tell the parent their child is a persistent absentee" in shown
    with tenancy.tenant_context(built.school.id):
        assert len(db_session.scalars(select(Case)).all()) == 2
