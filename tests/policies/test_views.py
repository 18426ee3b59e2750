"""The policy pages: start from a preset, live validation, save, publish, versions and diffs."""

from __future__ import annotations

import datetime as dt
from html import unescape

from sqlalchemy import select

from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from attendwise.policies.models import PolicyVersion
from tests.conftest import csrf_token


def test_start_edit_publish_and_compare(client, login, make_school, make_user) -> None:
    school = make_school()
    login(make_user(school, "senior_attendance_champion"))
    start = client.get("/policy")
    assert start.status_code == 200
    assert "This school has no escalation policy yet" in start.get_data(as_text=True)
    token = csrf_token(client, "/policy")

    created = client.post(
        "/policy/start", data={"preset": "dormston", "effective_from": "2025-09-01", "csrf_token": token}
    )
    assert created.status_code == 302
    editor = client.get("/policy/edit").get_data(as_text=True)
    assert "sessions_missed: {at_least: 13}" in editor
    assert 'hx-post="/policy/check"' in editor

    text = editor.split('spellcheck="false"', 1)[1].split(">", 1)[1].split("</textarea>", 1)[0]
    text = unescape(text)
    broken = client.post(
        "/policy/check",
        data={"text": text.replace("after_weeks: 4-6", "after_weeks: soon"), "csrf_token": token},
    )
    assert "stage 4: `after_weeks` must be a range like 5-8, got &#39;soon&#39;" in broken.get_data(
        as_text=True
    )
    fine = client.post("/policy/check", data={"text": text, "csrf_token": token})
    assert "No problems found" in fine.get_data(as_text=True)

    refused = client.post(
        "/policy/edit",
        data={"text": text.replace("after_weeks: 4-6", "after_weeks: soon"), "csrf_token": token},
    )
    assert refused.status_code == 400
    assert "must be a range like 5-8" in refused.get_data(as_text=True)

    saved = client.post(
        "/policy/edit", data={"text": text.replace("{at_least: 13}", "{at_least: 12}"), "csrf_token": token}
    )
    assert saved.status_code == 302
    assert client.post("/policy/publish", data={"csrf_token": token}).status_code == 302

    ladder = client.get("/policy").get_data(as_text=True)
    assert "ESS referral to the Local Authority" in ladder
    assert "sessions missed this year at least 12" in ladder
    assert "Needs sign-off by</strong> the senior attendance champion" in ladder

    assert (
        client.post(
            "/policy/new-version", data={"effective_from": "2026-01-05", "csrf_token": token}
        ).status_code
        == 302
    )
    draft = client.get("/policy/edit").get_data(as_text=True)
    assert "Draft version 2, to take effect on 5 January 2026" in draft
    second = unescape(draft.split('spellcheck="false"', 1)[1].split(">", 1)[1].split("</textarea>", 1)[0])
    resaved = client.post(
        "/policy/edit", data={"text": second.replace("{at_least: 12}", "{at_least: 14}"), "csrf_token": token}
    )
    assert resaved.status_code == 302
    diff = client.get("/policy/versions/2").get_data(as_text=True)
    assert (
        "is now entered when sessions missed this year at least 14 "
        "(was when sessions missed this year at least 12)" in diff
    )


def test_read_only_staff_see_the_ladder_but_cannot_edit(client, login, make_school, make_user) -> None:
    school = make_school()
    login(make_user(school, "senior_attendance_champion"))
    token = csrf_token(client, "/policy")
    client.post(
        "/policy/start", data={"preset": "spetisbury", "effective_from": "2025-09-01", "csrf_token": token}
    )
    client.post("/policy/publish", data={"csrf_token": token})
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/policy")})

    login(make_user(school, "school_staff"))
    page = client.get("/policy")
    assert page.status_code == 200
    assert "TAC meeting" in page.get_data(as_text=True)
    assert client.get("/policy/edit").status_code == 403
    assert (
        client.post(
            "/policy/check", data={"text": "x", "csrf_token": csrf_token(client, "/policy")}
        ).status_code
        == 403
    )


def test_another_schools_policy_is_not_visible(client, login, make_school, make_user) -> None:
    mine, theirs = make_school(), make_school()
    login(make_user(mine, "senior_attendance_champion"))
    token = csrf_token(client, "/policy")
    client.post(
        "/policy/start", data={"preset": "dothill", "effective_from": "2025-09-01", "csrf_token": token}
    )
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/policy")})
    login(make_user(theirs, "senior_attendance_champion"))
    assert "no escalation policy yet" in client.get("/policy").get_data(as_text=True)
    assert client.get("/policy/versions/1").status_code == 404


def test_dry_run_page_on_the_schools_own_marks(
    client, login, make_school, make_user, db_session, monkeypatch
) -> None:
    """The dry run reads the school's stored marks and creates nothing: pupil 2 misses the whole
    fourth week (N), so on Fri 2 Oct 2026 Spetisbury's stage 1 would apply to them."""
    from attendwise.policies import views
    from tests.attendance.test_views_pupils import pupil, seed

    monkeypatch.setattr(views, "_today", lambda: dt.date(2026, 10, 2))
    school = make_school()
    seed(
        db_session,
        school,
        [pupil(1, surname="Able"), pupil(2, surname="Baker")],
        {1: ["/"] * 20, 2: ["/"] * 15 + ["N"] * 5},
    )
    login(make_user(school, "senior_attendance_champion"))
    token = csrf_token(client, "/policy")
    client.post(
        "/policy/start", data={"preset": "spetisbury", "effective_from": "2026-09-01", "csrf_token": token}
    )
    page = client.get("/policy/dry-run")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    stages = body.split('data-testid="dry-run-stages"')[1].split("</table>")[0]
    assert "0. Not on a stage" in stages
    assert "1. Persistent absence identified" in stages
    changes = body.split('data-testid="dry-run-changes"')[1].split("</table>")[0]
    assert "Pupil2 Baker" in changes
    assert "Stage 1 since 2 Oct 2026: attendance is below 90%: attendance 75.0% this year" in changes
    actions = body.split('data-testid="dry-run-actions"')[1].split("</dl>")[0]
    assert "Code guidance" in actions
    with tenancy.tenant_context(school.id):
        assert db_session.scalars(select(PolicyVersion)).one().published is False
        event = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "pupils.list")).one()
    assert '"via": "policy dry run"' in event.detail
