"""The governors' report: a real PDF through the letters renderer, with the figures it should hold."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable

import pytest
from pypdf import PdfReader
from sqlalchemy.orm import Session

from attendwise.insights import report, what_works
from attendwise.insights import services as insights_services
from attendwise.platform import tenancy
from attendwise.tenants.models import Organisation
from tests.insights.analysis_data import ON, build_trust, member_ids


@pytest.fixture
def trust_with_casework(
    db_session: Session, make_trust: Callable[..., Organisation], make_school: Callable[..., Organisation]
) -> Organisation:
    return build_trust(db_session, make_trust, make_school)


def _text(pdf: bytes) -> str:
    """The PDF's words, with line breaks and runs of spaces made single spaces."""
    return " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages).split())


def test_the_report_holds_the_trusts_figures_charts_process_and_what_works(
    db_session: Session, trust_with_casework: Organisation
) -> None:
    trust = trust_with_casework
    with tenancy.tenant_context(trust.id, read_org_ids=member_ids(db_session, trust)):
        comparison = insights_services.comparison(db_session, trust.id, "term")
        merge = report.context(db_session, trust.id, period="term", today=ON)
        pdf = report.render_pdf(db_session, trust.id, period="term", today=ON)
    assert pdf.startswith(b"%PDF-")
    text = _text(pdf)
    assert "Attendance report for governors: Chalk Downs Learning Trust" in text
    assert "Hill Primary" in text
    assert "Vale Primary" in text
    total = comparison.total.attendance
    assert total is not None
    assert f"{total:.1f}%" in text
    # 10 of Hill's 30 and 4 of Vale's 24 pupils miss one day in four: 75% attendance.
    assert total == pytest.approx(100 * (1 - 14 * 0.25 / 54), abs=0.6)
    for school in comparison.schools:
        assert school.figures.attendance is not None
        assert f"{school.figures.attendance:.1f}%" in text
    assert "How the process is followed" in text
    assert "What happened after each step" in text
    assert "does not show that the step caused the change" in text
    assert "Attendance each school week (the chart's data)" in text
    assert merge["schools"] is not None
    assert len(merge["schools"]["bars"]) == 2
    assert merge["trend"]["dots"]
    process_rows = merge["process"]["rows"]
    assert process_rows[-1][0] == "All schools of Chalk Downs Learning Trust"
    assert process_rows[0][6] == "10"  # Hill's persistent absentees this term
    assert process_rows[1][6] == "x"  # Vale's four: fewer than 5, not shown outside the school


def test_the_context_holds_only_plain_values(db_session: Session, trust_with_casework: Organisation) -> None:
    trust = trust_with_casework
    with tenancy.tenant_context(trust.id, read_org_ids=member_ids(db_session, trust)):
        merge = report.context(db_session, trust.id, period="term", today=ON)

    def plain(value: object) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return value is None or isinstance(value, str | int | float | bool)

    assert plain(merge)


def test_a_trust_leader_downloads_the_report_and_school_staff_cannot(
    client, login, make_user, db_session: Session, trust_with_casework: Organisation
) -> None:
    login(make_user(trust_with_casework, "trust_leader"))
    response = client.get("/insights/governors-report.pdf?period=term")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert 'filename="governors-report-term.pdf"' in response.headers["Content-Disposition"]
    text = _text(response.data)
    assert "Attendance report for governors: Chalk Downs Learning Trust" in text
    assert "Hill Primary" in text


def test_school_staff_without_the_insights_permission_get_no_report(
    client, login, make_user, db_session: Session, trust_with_casework: Organisation
) -> None:
    school_id = min(member_ids(db_session, trust_with_casework))
    with tenancy.system_context("test: a member school"):
        school = db_session.get(Organisation, school_id)
    assert school is not None
    login(make_user(school, "school_staff"))
    assert client.get("/insights/governors-report.pdf").status_code == 403
    assert client.get("/insights/process").status_code == 403
    assert client.get("/insights/what-works?format=csv").status_code == 403


def test_the_report_uses_the_stored_what_works_and_says_when_it_was_computed(
    db_session: Session, trust_with_casework: Organisation
) -> None:
    trust = trust_with_casework
    with tenancy.tenant_context(trust.id, read_org_ids=member_ids(db_session, trust)):
        computed = what_works.compute(db_session, trust.id, "term", what_works.DEFAULT_WEEKS)
        stored = what_works.stored_results(computed)
        assert stored is not None
        doctored = [dataclasses.replace(stored[0], label="Stored step"), *stored[1:]]
        computed.results = json.dumps([dataclasses.asdict(r) for r in doctored])
        db_session.flush()
        merge = report.context(db_session, trust.id, period="term", today=ON)
    assert merge["what_works"]["rows"][0][0] == "Stored step"  # read, not computed again
    assert merge["what_works_computed"].startswith(f"{computed.computed_at.day} ")
