"""Platform corrections of unverified code classifications: allowed, audited, and used by the figures."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from attendwise.attendance import queries, services
from attendwise.attendance.codes import DEFAULT_TABLE, OverrideError, StatClass
from attendwise.attendance.models import CodeOverride
from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from attendwise.tenants import services as tenants
from tests.attendance.records import HALF_TERMS_2026, make_upn, pupil
from tests.conftest import csrf_token


@pytest.fixture
def platform_org(db_session):
    with tenancy.system_context("test: platform organisation"):
        return tenants.platform_organisation(db_session)


def _correct(db_session, platform_org, code, cls, reason="DfE guidance checked"):
    with tenancy.tenant_context(platform_org.id):
        return services.set_code_override(
            db_session,
            code=code,
            statistical_class=cls,
            reason=reason,
            user_id=None,
            audit_org_id=platform_org.id,
        )


def test_an_unverified_class_can_be_corrected_and_the_figures_follow(db_session, platform_org, make_school):
    school = make_school()
    monday = dt.date(2026, 9, 7)
    with tenancy.tenant_context(school.id):
        services.set_school_calendar(db_session, school.id, 2026, HALF_TERMS_2026)
        services.upsert_pupils(db_session, school.id, [pupil(1)])
        services.store_marks(
            db_session,
            school.id,
            [
                services.MarkRow(make_upn(1), monday, "AM", "/"),
                services.MarkRow(make_upn(1), monday, "PM", "Q"),
            ],
            "mis",
        )
        pupil_row = queries.get_pupil_by_upn(db_session, make_upn(1))
        before = queries.pupil_figures(db_session, pupil_row, on=monday)
    _correct(db_session, platform_org, "Q", "authorised")
    with tenancy.tenant_context(school.id):
        after = queries.pupil_figures(db_session, pupil_row, on=monday)
    assert (before["possible_sessions"], before["attendance_pct"]) == (1, 100.0)
    assert (after["possible_sessions"], after["authorised"], after["attendance_pct"]) == (2, 1, 50.0)
    assert services.code_table(db_session)["Q"].default_class is StatClass.NOT_COUNTED
    with tenancy.tenant_context(platform_org.id):
        event = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "code.override"))
    assert '"from": "not_counted"' in event.detail
    assert '"to": "authorised"' in event.detail


def test_a_verified_class_cannot_be_corrected(db_session, platform_org):
    with pytest.raises(OverrideError, match="verified source"):
        _correct(db_session, platform_org, "G", "authorised")
    assert db_session.scalars(select(CodeOverride)).all() == []
    assert services.code_table(db_session) is DEFAULT_TABLE


def test_a_correction_needs_a_reason(db_session, platform_org):
    with pytest.raises(ValueError, match="say why"):
        _correct(db_session, platform_org, "Q", "authorised", reason="  ")


def test_school_roles_cannot_correct_codes(client, login, make_user, make_school):
    login(make_user(make_school(), "school_admin"))
    response = client.post(
        "/api/v1/attendance-codes/corrections",
        json={"code": "Q", "statistical_class": "authorised", "reason": "because"},
        headers={"X-CSRFToken": csrf_token(client, "/")},
    )
    assert response.status_code == 403
    assert client.get("/api/v1/attendance-codes").status_code == 403
