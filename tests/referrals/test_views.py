"""The referral pages as a school and an LA officer use them, and what an LA officer can never see."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.platform import tenancy
from attendwise.referrals.models import PenaltyNotice, ReceivedReferral, Referral
from attendwise.tenants.models import Organisation, User
from tests.platform.account_fixtures import enrol_from_setup_page
from tests.referrals.conftest import World


def _token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return match.group(1)


def _post(client: FlaskClient, page_path: str, action_path: str, **data: Any) -> Any:
    token = _token(client.get(page_path).get_data(as_text=True))
    return client.post(action_path, data={"csrf_token": token, **data})


def _sign_in_officer(client: FlaskClient, login: Callable[..., Any], officer: User) -> None:
    login(officer)
    enrol_from_setup_page(client, "/auth/mfa/setup")


@pytest.fixture(autouse=True)
def _fixed_today(monkeypatch: pytest.MonkeyPatch) -> None:
    from attendwise.attendance import queries as attendance_queries
    from tests.referrals.conftest import SUBMIT_ON

    monkeypatch.setattr(attendance_queries, "today", lambda: SUBMIT_ON)


def _school_submits(client: FlaskClient, login: Callable[..., Any], world: World) -> int:
    login(world.champion)
    case_page = client.get(f"/cases/{world.case.id}").get_data(as_text=True)
    start = f"/referrals/new?pupil_id={world.pupil.id}"
    assert f'data-testid="refer-link" href="{start}"' in case_page
    response = _post(client, start, "/referrals/new", pupil_id=world.pupil.id, kind="penalty_notice")
    assert response.status_code == 302
    path = response.headers["Location"]
    page = client.get(path).get_data(as_text=True)
    assert "Missing</strong> Warning letter sent" in page
    act = f"{path}/act"
    response = _post(client, path, act, action="signoff")
    response = _post(client, path, act, action="submit")
    assert response.status_code == 400
    assert "missing: Warning letter sent, Support offered" in response.get_data(as_text=True)
    _post(client, path, act, action="supply", key="warning_letter", text="Letter posted 12 October")
    _post(client, path, act, action="supply", key="support", text="Mentoring weekly")
    _post(client, path, act, action="signoff")
    assert _post(client, path, act, action="submit").status_code == 302
    page = client.get(path).get_data(as_text=True)
    assert 'data-testid="referral-status">Submitted' in page, re.findall(r"referral-status.{0,80}", page)
    client.post("/auth/logout", data={"csrf_token": _token(page)})
    return int(path.rsplit("/", 1)[1])


def test_school_submits_and_the_officer_triages(
    client: FlaskClient, login: Callable[..., Any], db_session: Session, world: World
) -> None:
    referral_id = _school_submits(client, login, world)
    with tenancy.tenant_context(world.school.id):
        referral = db_session.scalars(select(Referral).where(Referral.id == referral_id)).one()
        received_id = referral.received_id
    _sign_in_officer(client, login, world.officer)
    queue = client.get("/referrals/queue").get_data(as_text=True)
    assert "Ada Reed2001" in queue
    assert client.get("/referrals/queue?status=closed").get_data(as_text=True).count("Ada Reed2001") == 0
    path = f"/referrals/received/{received_id}"
    act = f"{path}/act"
    page = client.get(path).get_data(as_text=True)
    assert page.count('data-testid="pn-window"') >= 1
    assert "A notice now would be notice 1: £160, or £80 if paid within 21 days" in page
    _post(client, path, act, action="acknowledge")
    _post(client, path, act, action="accept")
    response = _post(client, path, act, action="issue_notice", parent="0", window="0")
    assert response.status_code == 302
    page = client.get(path).get_data(as_text=True)
    assert 'data-testid="notice-status">Issued' in page
    assert "Penalty notice issued" in page
    listed = client.get("/api/v1/referrals?kind=penalty_notice").get_json()
    assert listed["total"] == 1
    assert listed["items"][0]["decisions"][0]["kind"] == "pn_issued"
    detail = client.get(f"/api/v1/referrals/{received_id}").get_json()
    assert detail["items"][0]["section"] == "registration_certificate"
    assert len(detail["bundle_sha256"]) == 64
    notices = client.get(f"/api/v1/referrals/{received_id}/penalty-notices").get_json()
    assert [(n["sequence"], n["amount"], n["early_amount"]) for n in notices] == [(1, 160, 80)]
    bundle = client.get(f"{path}/bundle")
    assert bundle.status_code == 200
    assert "Registration certificate" in bundle.get_data(as_text=True)


def test_la_officer_gets_404_for_a_school_that_did_not_refer(
    client: FlaskClient,
    login: Callable[..., Any],
    db_session: Session,
    world: World,
    make_la: Callable[..., Organisation],
    make_user: Callable[..., User],
) -> None:
    referral_id = _school_submits(client, login, world)
    with tenancy.tenant_context(world.school.id):
        referral = db_session.scalars(select(Referral).where(Referral.id == referral_id)).one()
        received_id = referral.received_id
    with tenancy.tenant_context(world.la.id):
        received = db_session.scalars(
            select(ReceivedReferral).where(ReceivedReferral.id == received_id)
        ).one()
        notice = PenaltyNotice(
            org_id=world.la.id,
            received_id=received.id,
            school_org_id=world.school.id,
            parent_key="p",
            child_key="c",
            parent_name="Grace Reed",
            child_name="Ada Reed2001",
            sequence=1,
            issued_on=received.submitted_on,
            received_on=received.submitted_on,
            amount=160,
            early_amount=80,
            sessions=[],
            offence_on=received.submitted_on,
            prosecution_deadline=received.submitted_on,
        )
        db_session.add(notice)
        db_session.flush()
        notice_id = notice.id
    with tenancy.tenant_context(world.school.id):
        pupil_id, case_id = world.pupil.id, world.case.id
    with tenancy.tenant_context(world.other_school.id):
        other_pupil_id = world.other_pupil.id
    outsider = make_user(make_la(), "la_attendance_officer")
    _sign_in_officer(client, login, outsider)
    assert "Ada Reed" not in client.get("/referrals/queue").get_data(as_text=True)
    assert client.get("/api/v1/referrals").get_json()["total"] == 0
    for path in (
        f"/referrals/received/{received_id}",
        f"/referrals/received/{received_id}/bundle",
        f"/api/v1/referrals/{received_id}",
        f"/api/v1/referrals/{received_id}/penalty-notices",
    ):
        assert client.get(path).status_code == 404
    token = _token(client.get("/referrals/queue").get_data(as_text=True))
    response = client.post(
        f"/referrals/notices/{notice_id}", data={"csrf_token": token, "action": "withdraw"}
    )
    assert response.status_code == 404
    client.post("/auth/logout", data={"csrf_token": token})

    # The LA's own officer: the other school never referred its pupil, so nothing of it is visible.
    _sign_in_officer(client, login, world.officer)
    for path in (
        f"/pupils/{other_pupil_id}",
        f"/pupils/{pupil_id}",
        f"/cases/{case_id}",
        f"/referrals/{referral_id}",
        f"/letters/{referral_id}/pdf",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Ada Reed" not in response.get_data(as_text=True)
    assert client.get(f"/referrals/received/{received_id}").status_code == 200
