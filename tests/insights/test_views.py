"""The dashboards: who sees which schools, small-group suppression, drill-down, national figures."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from attendwise.insights import services
from attendwise.insights.models import NationalFigure
from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from tests.conftest import csrf_token
from tests.platform.account_fixtures import enrol_from_setup_page


def _rows(html: str, testid: str) -> str:
    match = re.search(rf'data-testid="{testid}".*?</table>', html, re.S)
    assert match, f"no {testid} on the page"
    return match.group(0)


def test_trust_leader_sees_its_schools_only_with_small_school_suppressed(client, login, make_user, world):
    login(make_user(world.trust, "trust_leader"))
    html = client.get("/insights/").get_data(as_text=True)
    schools = _rows(html, "schools-table")
    assert "Big Primary" in schools
    assert "Small Primary" in schools
    assert "Solo Secondary" not in html  # in the LA, not the trust
    assert "CanaryForeign" not in html
    small = re.search(rf'data-testid="school-{world.small.id}".*?</tr>', schools, re.S).group(0)
    assert ">x<" in small  # 4 pupils: every figure withheld
    assert "%" not in small.split("</th>", 1)[1].split("no data")[0]
    big = re.search(rf'data-testid="attendance-{world.big.id}">([^<]+)<', html).group(1)
    assert big.endswith("%")
    assert "fewer than 5 pupils are shown as <strong>x</strong>" in html


def test_trust_leader_drills_down_to_a_member_school_but_not_to_another(client, login, make_user, world):
    login(make_user(world.trust, "trust_leader"))
    html = client.get("/insights/").get_data(as_text=True)
    assert f'href="/insights/schools/{world.big.id}?period=ytd"' in html
    page = client.get(f"/insights/schools/{world.big.id}")
    assert page.status_code == 200
    assert "Big Primary: attendance insights" in page.get_data(as_text=True)
    # the looked-after group of one pupil is suppressed outside the school
    looked_after = _rows(page.get_data(as_text=True), "groups-table")
    row = re.search(r'data-testid="group-group-looked_after".*?</tr>', looked_after, re.S).group(0)
    assert row.count(">x<") == 6
    assert client.get(f"/insights/schools/{world.solo.id}").status_code == 404
    assert client.get(f"/insights/schools/{world.foreign.id}").status_code == 404


def test_la_officer_sees_every_school_of_the_la_without_drill_down(client, login, make_user, world):
    login(make_user(world.la, "la_attendance_officer"))
    enrol_from_setup_page(client, "/auth/mfa/setup")
    page = client.get("/insights/?period=term")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    for name in ("Big Primary", "Small Primary", "Solo Secondary"):
        assert name in html
    assert "CanaryForeign" not in html
    assert "/insights/schools/" not in html
    assert "Canary" not in html  # no pupil's name reaches the LA
    assert client.get(f"/insights/schools/{world.big.id}").status_code == 404


def test_school_user_sees_its_own_figures_unsuppressed_and_not_the_trust(client, login, make_user, world):
    login(make_user(world.small, "senior_attendance_champion"))
    first = client.get("/insights/")
    assert first.status_code == 302
    assert first.headers["Location"].endswith(f"/insights/schools/{world.small.id}?period=ytd")
    html = client.get(first.headers["Location"]).get_data(as_text=True)
    headline = _rows(html, "headline-table")
    assert re.search(r'data-testid="headline-attendance">\d+\.\d%<', headline)
    assert "Big Primary" not in html
    assert client.get(f"/insights/schools/{world.big.id}").status_code == 404
    with tenancy.tenant_context(world.small.id), pytest.raises(services.NotVisible):
        services.comparison(client.application.extensions["attendwise_db"].session(), world.trust.id, "ytd")


def test_school_staff_without_insights_permission_is_refused(client, login, make_user, world):
    login(make_user(world.big, "school_staff"))
    assert client.get(f"/insights/schools/{world.big.id}").status_code == 403


def test_unknown_period_falls_back_to_the_year_to_date(client, login, make_user, world):
    login(make_user(world.trust, "trust_leader"))
    html = client.get("/insights/?period=decade").get_data(as_text=True)
    assert '<option value="ytd" selected>' in html


def test_platform_admin_replaces_a_national_figure_and_it_is_audited(
    client, login, make_user, db_session, world
):
    with tenancy.system_context("test: the platform organisation"):
        from attendwise.tenants import services as tenants

        platform = tenants.platform_organisation(db_session)
    login(make_user(platform, "platform_admin"))
    enrol_from_setup_page(client, "/auth/mfa/setup")
    token = csrf_token(client, "/insights/national")
    form = {
        "csrf_token": token,
        "academic_year": "2024",
        "period_kind": "year",
        "measure": "absence",
        "phase": "all",
        "value": "7.2",
        "source": "DfE revised release",
    }
    bad = client.post("/insights/national", data={**form, "value": "lots", "phase": "nursery"})
    assert bad.status_code == 400
    body = bad.get_data(as_text=True)
    assert "Value: enter a percentage such as 7.1 (not &#39;lots&#39;)" in body
    assert "Phase: &#39;nursery&#39; is not one of all, primary, secondary, special" in body
    assert client.post("/insights/national", data=form).status_code == 302
    row = db_session.scalar(
        select(NationalFigure).where(
            NationalFigure.academic_year == 2024,
            NationalFigure.period_kind == "year",
            NationalFigure.measure == "absence",
            NationalFigure.phase == "all",
        )
    )
    assert row.value == 7.2
    assert row.source == "DfE revised release"
    with tenancy.system_context("test: read the audit log"):
        event = db_session.scalar(
            select(AuditEvent)
            .where(AuditEvent.action == "insights.national_figure")
            .order_by(AuditEvent.id.desc())
        )
    detail = json.loads(event.detail)
    assert detail["before"]["value"] == 6.9
    assert detail["after"]["value"] == 7.2
    # the dashboards compare with the new figure
    with tenancy.tenant_context(world.la.id):
        national = services.comparison(db_session, world.la.id, "ytd").national
    assert next(n for n in national if n.measure == "absence" and n.phase == "all").value == 7.2


def test_national_figures_are_seeded_with_their_sources(db_session):
    rows = db_session.scalars(select(NationalFigure)).all()
    figures = {(r.academic_year, r.period_kind, r.measure, r.phase): r for r in rows}
    assert figures[(2023, "year", "absence", "all")].value == 7.1
    assert figures[(2023, "year", "persistent", "all")].value == 20.0
    assert figures[(2023, "year", "severe", "all")].value == 2.3
    assert "explore-education-statistics" in figures[(2023, "year", "absence", "all")].source
