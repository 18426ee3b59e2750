"""LA settings: the code of conduct (improvement period 15-30 school days) and each referral kind's
checklist, sign-off role and service level; validated, audited, and used by later referrals."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from attendwise.referrals import services
from attendwise.referrals.models import DecisionKind, KindKey, LAProfile, ReceivedReferral, ReferralKind
from attendwise.referrals.services import ReferralError
from attendwise.tenants.models import User
from tests.referrals.conftest import SUBMIT_ON, World, sign_in_officer

PROFILE = {
    "nti_issuer": "la",
    "pn_issuer": "either",
    "team_email": "team@la.example.test",
    "daily_digest": False,
}


def _audit(session: Session, action: str) -> list[dict[str, Any]]:
    return [
        json.loads(d) for d in session.scalars(select(AuditEvent.detail).where(AuditEvent.action == action))
    ]


@pytest.mark.parametrize("days", ["14", "31", "0", "twenty"])
def test_improvement_period_outside_15_to_30_school_days_is_refused(
    db_session: Session, world: World, days: str
) -> None:
    with tenancy.tenant_context(world.la.id):
        with pytest.raises(ReferralError, match="improvement_period_school_days"):
            services.update_profile(db_session, world.la.id, improvement_period_school_days=days, **PROFILE)
        assert db_session.scalars(select(LAProfile)).one().improvement_period_school_days == 30


def test_code_of_conduct_change_is_audited_and_sets_the_improvement_period(
    db_session: Session, world: World
) -> None:
    with tenancy.tenant_context(world.la.id):
        for days in ("15", "30", "15"):
            services.update_profile(db_session, world.la.id, improvement_period_school_days=days, **PROFILE)
        changes = _audit(db_session, "referral.settings.update")
        assert changes[0]["improvement_period_school_days"] == [30, 15]
        assert changes[0]["pn_issuer"] == ["la", "either"]
        assert changes[1] == {"improvement_period_school_days": [15, 30]}
    with tenancy.tenant_context(world.school.id):
        referral = services.start(
            db_session, pupil_id=world.pupil.id, kind=KindKey.NOTICE_TO_IMPROVE, user_id=None
        )
        services.supply(db_session, referral, "warning_letter", "Letter")
        services.supply(db_session, referral, "support", "Mentoring")
        services.sign_off(
            db_session, referral, user_id=world.champion.id, role_key="senior_attendance_champion"
        )
        received_id = services.submit(db_session, referral, user_id=None, on=SUBMIT_ON).id
    with tenancy.tenant_context(world.la.id):
        received = db_session.get_one(ReceivedReferral, received_id)
        services.acknowledge(db_session, received)
        services.accept(db_session, received)
        decision = services.decide(db_session, received, DecisionKind.NTI_ISSUED, user_id=None, on=SUBMIT_ON)
    # 15 school days after Friday 20 November 2026: 23 Nov .. 11 Dec.
    assert decision.improvement_ends_on == dt.date(2026, 12, 11)


def test_kind_checklist_signoff_and_service_level_drive_the_next_referral(
    db_session: Session, world: World
) -> None:
    with tenancy.tenant_context(world.la.id):
        kind = db_session.scalars(select(ReferralKind).where(ReferralKind.key == KindKey.EARLY_HELP)).one()
        services.update_kind(
            db_session,
            kind,
            label="Early help (family hub)",
            enabled=True,
            signoff_role="school_admin",
            sla_working_days="5",
            checklist=[("support", "Support offered", "12"), ("meeting", "Family meeting", "8")],
        )
        detail = _audit(db_session, "referral.kind.update")[0]
        assert detail["sla_working_days"] == [10, 5]
        assert detail["label"] == ["Early help referral", "Early help (family hub)"]
        assert [i["key"] for i in detail["checklist"][1]] == ["support", "meeting"]
    with tenancy.tenant_context(world.school.id):
        referral = services.start(db_session, pupil_id=world.pupil.id, kind=KindKey.EARLY_HELP, user_id=None)
        assert referral.kind_label == "Early help (family hub)"
        missing = services.assemble(db_session, referral, SUBMIT_ON).missing
        assert [line.label for line in missing] == ["Support offered", "Family meeting"]
        with pytest.raises(ReferralError, match="signed off by a School administrator"):
            services.sign_off(db_session, referral, user_id=world.officer.id, role_key="attendance_officer")
        services.supply(db_session, referral, "support", "Mentoring")
        services.supply(db_session, referral, "meeting", "Family meeting 3 November")
        services.sign_off(db_session, referral, user_id=world.champion.id, role_key="school_admin")
        received = services.submit(db_session, referral, user_id=None, on=SUBMIT_ON)
    assert received.sla_working_days == 5
    assert received.due_on == dt.date(2026, 11, 27)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"label": " "}, "label: give the referral kind a name"),
        ({"signoff_role": "la_admin"}, "signoff_role: 'la_admin' is not a school role"),
        (
            {"sla_working_days": "0"},
            "sla_working_days: the service level in working days must be between 1 and 60",
        ),
        ({"checklist": [("bank_statement", "", "4")]}, "checklist item 1: 'bank_statement' is not evidence"),
        (
            {"checklist": [("support", "", "4"), ("support", "", "8")]},
            "checklist item 2: Support offered is listed",
        ),
        (
            {"checklist": [("support", "", "-1")]},
            "checklist item 1: the window in weeks must be between 0 and 104",
        ),
        ({"checklist": [("registration_certificate", "", "0")]}, "must cover at least 1 week"),
    ],
)
def test_bad_kind_settings_are_refused_naming_the_field_and_nothing_changes(
    db_session: Session, world: World, change: dict[str, Any], message: str
) -> None:
    values: dict[str, Any] = {
        "label": "Early help",
        "enabled": True,
        "signoff_role": "senior_attendance_champion",
        "sla_working_days": "10",
        "checklist": [("support", "Support", "12")],
        **change,
    }
    with tenancy.tenant_context(world.la.id):
        kind = db_session.scalars(select(ReferralKind).where(ReferralKind.key == KindKey.EARLY_HELP)).one()
        before = (kind.label, kind.sla_working_days, list(kind.checklist))
        with pytest.raises(ReferralError, match=re.escape(message)):
            services.update_kind(db_session, kind, **values)
        assert (kind.label, kind.sla_working_days, list(kind.checklist)) == before
        assert _audit(db_session, "referral.kind.update") == []


def _token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return match.group(1)


def test_la_admin_edits_settings_pages_and_an_officer_cannot(
    client: FlaskClient,
    login: Callable[..., Any],
    db_session: Session,
    world: World,
    make_user: Callable[..., User],
) -> None:
    sign_in_officer(client, login, make_user(world.la, "la_admin"))
    page = client.get("/referrals/settings").get_data(as_text=True)
    refused = client.post(
        "/referrals/settings",
        data={"csrf_token": _token(page), "improvement_period_school_days": "40", **PROFILE},
    )
    assert refused.status_code == 400
    assert (
        "improvement_period_school_days: the improvement period in school days must be between 15 and 30"
        in (refused.get_data(as_text=True))
    )
    saved = client.post(
        "/referrals/settings",
        data={"csrf_token": _token(page), "improvement_period_school_days": "20", **PROFILE},
    )
    assert 'data-testid="saved"' in saved.get_data(as_text=True)
    with tenancy.tenant_context(world.la.id):
        assert db_session.scalars(select(LAProfile)).one().improvement_period_school_days == 20
        kind = db_session.scalars(
            select(ReferralKind).where(ReferralKind.key == KindKey.PENALTY_NOTICE)
        ).one()
    path = f"/referrals/settings/kinds/{kind.id}"
    form = client.get(path).get_data(as_text=True)
    assert 'value="Registration certificate"' in form
    response = client.post(
        path,
        data={
            "csrf_token": _token(form),
            "label": "Penalty notice request",
            "enabled": "yes",
            "signoff_role": "senior_attendance_champion",
            "sla_working_days": "15",
            "rows": "3",
            "key-0": "registration_certificate",
            "label-0": "Register, 10 weeks",
            "weeks-0": "10",
            "key-1": "",
            "key-2": "warning_letter",
            "label-2": "Warning letter",
            "weeks-2": "12",
        },
    )
    assert response.status_code == 200
    assert 'data-testid="saved"' in response.get_data(as_text=True)
    with tenancy.tenant_context(world.la.id):
        db_session.expire_all()
        kind = db_session.get_one(ReferralKind, kind.id)
        assert kind.sla_working_days == 15
        assert kind.checklist == [
            {"key": "registration_certificate", "label": "Register, 10 weeks", "weeks": 10},
            {"key": "warning_letter", "label": "Warning letter", "weeks": 12},
        ]
    sign_in_officer(client, login, world.officer)
    assert client.get("/referrals/settings").status_code == 403
    assert client.get(path).status_code in (403, 404)
