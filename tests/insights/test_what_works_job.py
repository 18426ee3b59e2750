"""What works is computed by a job and kept per organisation, period and window; the page shows
when it was computed, or that it is being computed."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select

from attendwise.insights import jobs, what_works
from attendwise.insights import services as insights_services
from attendwise.insights.models import WhatWorksResult
from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from attendwise.platform.db import utcnow
from tests.conftest import csrf_token
from tests.insights.analysis_data import ON, build_trust, member_ids

PAGE = "/insights/what-works?period=term&weeks=6"


def _row(db_session, trust):
    with tenancy.tenant_context(trust.id):
        return what_works.cached(db_session, trust.id, "term", 6)


def _queued(db_session, trust, requested_at, period="term"):
    with tenancy.tenant_context(trust.id):
        db_session.add(
            WhatWorksResult(
                org_id=trust.id, period=period, weeks=6, state="queued", requested_at=requested_at
            )
        )
        db_session.flush()


def test_the_first_visit_queues_the_job_which_inline_has_run_by_the_page(
    client, login, make_user, db_session, make_trust, make_school
):
    trust = build_trust(db_session, make_trust, make_school)
    login(make_user(trust, "trust_leader"))
    first = client.get(PAGE)
    assert first.status_code == 303
    assert first.headers["Location"].endswith(PAGE)
    page = client.get(first.headers["Location"])
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Computed " in html
    assert 'data-testid="what-works-table"' in html
    row = _row(db_session, trust)
    assert row.state == "done"
    results = what_works.stored_results(row)
    assert results[0].label == "Stage 1 (Persistent absence identified)"
    with tenancy.tenant_context(trust.id):
        logged = db_session.scalars(
            select(AuditEvent.detail).where(
                AuditEvent.org_id == trust.id, AuditEvent.action == "insights.what_works"
            )
        ).all()
    assert [json.loads(d) for d in logged] == [{"period": "term", "weeks": 6, "steps": len(results)}]


def test_while_queued_the_page_says_so_and_queues_nothing_more(
    client, login, make_user, db_session, make_trust, make_school
):
    trust = build_trust(db_session, make_trust, make_school)
    _queued(db_session, trust, utcnow())
    login(make_user(trust, "trust_leader"))
    page = client.get(PAGE)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Being computed" in html
    assert 'data-testid="what-works-table"' not in html
    assert client.get(PAGE + "&format=csv").status_code == 409
    assert _row(db_session, trust).state == "queued"  # an inline job would have finished it


def test_a_computation_queued_too_long_ago_is_queued_again(
    client, login, make_user, db_session, make_trust, make_school
):
    trust = build_trust(db_session, make_trust, make_school)
    _queued(db_session, trust, utcnow() - what_works.LOST_AFTER - dt.timedelta(minutes=1))
    login(make_user(trust, "trust_leader"))
    assert client.get(PAGE).status_code == 303
    assert _row(db_session, trust).state == "done"


def _computed(client, login, make_user, db_session, make_trust, make_school):
    """A trust whose leader has opened the page: what works computed (inline) and stored."""
    trust = build_trust(db_session, make_trust, make_school)
    login(make_user(trust, "trust_leader"))
    client.get(PAGE)
    return trust, _row(db_session, trust).computed_at


def test_compute_again_replaces_the_result_with_a_newer_one(
    client, login, make_user, db_session, make_trust, make_school
):
    trust, before = _computed(client, login, make_user, db_session, make_trust, make_school)
    token = csrf_token(client, PAGE)
    again = client.post("/insights/what-works", data={"period": "term", "weeks": "6", "csrf_token": token})
    assert again.status_code == 303
    assert _row(db_session, trust).computed_at > before


def test_a_failed_computation_is_recorded_with_why(db_session, make_trust):
    trust = make_trust(name="Empty Trust")
    _queued(db_session, trust, utcnow(), period="fortnight")
    with tenancy.tenant_context(trust.id):
        outcome = jobs.compute_what_works(trust.id, "fortnight", 6)
        row = what_works.cached(db_session, trust.id, "fortnight", 6)
    assert outcome == {"state": "failed"}
    assert row.state == "failed"
    assert row.error.startswith("InsightsError: period 'fortnight' is not one of")


def test_the_sweeper_requeues_only_results_older_than_their_schools_figures(
    client, login, make_user, db_session, make_trust, make_school
):
    trust, computed = _computed(client, login, make_user, db_session, make_trust, make_school)
    with tenancy.system_context("test: the periodic sweeper"):
        assert jobs.requeue_stale_what_works() == 0  # computed after the last refresh: current
    school = next(iter(member_ids(db_session, trust)))
    insights_services.refresh(db_session, school, on=ON + dt.timedelta(days=3))
    with tenancy.system_context("test: the periodic sweeper"):
        assert jobs.requeue_stale_what_works() == 1
    db_session.commit()  # the queued job runs inline once the sweeper's transaction commits
    assert _row(db_session, trust).computed_at > computed
