"""The case page a page at a time (1,000 entries cost what 10 do), and the case timeline as a
PDF for a court bundle: every entry, oldest first, permission-checked and audited."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from attendwise.casework import services
from attendwise.casework.models import (
    Case,
    ContactChannel,
    ContactLog,
    ContactOutcome,
    TimelineEntry,
)
from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from attendwise.platform.db import db
from attendwise.tenants.models import Organisation, User
from tests.casework.conftest import CaseWithParents

START = dt.datetime(2030, 9, 2, 8, 0, tzinfo=dt.UTC)  # after everything the engine wrote


def add_history(session: Session, case: Case, n: int) -> None:
    """``n`` timeline entries and ``n`` contact-log entries, one a minute from START."""
    with tenancy.tenant_context(case.org_id):
        for i in range(n):
            at = START + dt.timedelta(minutes=i)
            session.add(
                TimelineEntry(case_id=case.id, kind="note", title=f"History entry {i:04d}", occurred_at=at)
            )
            session.add(
                ContactLog(
                    case_id=case.id,
                    channel=ContactChannel.PHONE,
                    outcome=ContactOutcome.NO_ANSWER,
                    note=f"Call number {i:04d}",
                    occurred_at=at,
                )
            )
        session.flush()


@contextmanager
def counting() -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_a_case_with_a_thousand_entries_shows_the_newest_fifty_for_the_same_queries_as_ten(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    case_with_parents: CaseWithParents,
    casework_school: Callable[..., Any],
) -> None:
    from tests.casework.conftest import FRIDAYS

    big = case_with_parents.case
    add_history(db_session, big, 1000)
    other = casework_school(pupils=4, absent_pupils=1, estab=2002)
    from attendwise.casework.jobs import evaluate_on

    with tenancy.tenant_context(other.school.id):
        for friday in FRIDAYS:
            evaluate_on(db_session, other.school.id, friday)
        small = db_session.scalars(select(Case)).one()
    add_history(db_session, small, 10)

    login(make_user(other.school, "attendance_officer"))
    client.get(f"/cases/{small.id}")  # warm up: the first request of a session loads more
    with counting() as few:
        small_page = client.get(f"/cases/{small.id}").get_data(as_text=True)
    login(make_user(case_with_parents.school, "attendance_officer"))
    client.get(f"/cases/{big.id}")
    with counting() as many:
        big_page = client.get(f"/cases/{big.id}").get_data(as_text=True)

    assert len(few) == len(many), f"{len(few)} statements for 10 entries but {len(many)} for 1,000"
    assert "History entry 0999" in big_page
    assert "History entry 0950" in big_page
    assert "History entry 0949" not in big_page
    assert "Call number 0999" in big_page
    assert "Call number 0949" not in big_page
    assert "Older entries" in big_page
    assert "Older entries" not in small_page
    assert "History entry 0000" in small_page

    older = re.search(r'href="([^"]*timeline_page=2[^"]*)"', big_page)
    assert older is not None
    second = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "History entry 0949" in second
    assert "History entry 0900" in second
    assert "History entry 0950" not in second
    assert "Newer entries" in second
    assert "Call number 0999" in second  # the contact log stays on its own page
    assert client.get(f"/cases/{big.id}?timeline_page=x").status_code == 200

    # With JavaScript, the same link has htmx fetch the older page of the timeline alone and
    # swap it into the timeline section; the rest of the page stays as it is.
    url = older.group(1).replace("&amp;", "&").split("#")[0]
    assert f'hx-get="{url.replace("&", "&amp;")}"' in big_page
    assert 'hx-target="#aw-timeline"' in big_page
    fragment = client.get(url, headers={"HX-Request": "true", "HX-Target": "aw-timeline"}).get_data(
        as_text=True
    )
    assert fragment.lstrip().startswith('<div id="aw-timeline">')
    assert "History entry 0949" in fragment
    assert "History entry 0950" not in fragment
    assert "Newer entries" in fragment
    assert "Call number" not in fragment
    assert "<html" not in fragment


def test_the_timeline_pdf_lists_every_entry_oldest_first_and_is_audited(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    case_with_parents: CaseWithParents,
    tmp_path: Any,
) -> None:
    school, case = case_with_parents.school, case_with_parents.case
    with tenancy.tenant_context(school.id):
        log = services.log_contact(
            db_session,
            case,
            channel=ContactChannel.PHONE,
            outcome=ContactOutcome.SPOKE_TO,
            note="Mum says mornings are hard",
            by_user_id=None,
            contact_id=case_with_parents.mother_id,
        )
        wrong = db_session.scalars(
            select(TimelineEntry).where(TimelineEntry.object_id == log.id, TimelineEntry.kind == "contact")
        ).one()
        services.correct_timeline(db_session, case, wrong.id, "It was Dad, not Mum", by_user_id=None)
        db_session.flush()
        titles = [
            e.title
            for e in db_session.scalars(
                select(TimelineEntry)
                .where(TimelineEntry.case_id == case.id)
                .order_by(TimelineEntry.occurred_at, TimelineEntry.id)
            )
        ]
    assert len(titles) >= 5

    login(make_user(school, "attendance_officer"))
    page = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert f'href="/cases/{case.id}/timeline.pdf"' in page
    response = client.get(f"/cases/{case.id}/timeline.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert "attachment" in response.headers["Content-Disposition"]
    pdf = response.get_data()
    (tmp_path / "timeline.pdf").write_bytes(pdf)
    text = " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "Attendance case timeline" in text
    assert "Pupil1 Family1" in text
    assert f"{len(titles)} entries." in text
    positions = [text.find(" ".join(title.split())) for title in titles]
    assert -1 not in positions, [t for t, p in zip(titles, positions, strict=True) if p == -1]
    assert positions == sorted(positions), "the entries are not in the order they happened"
    assert f"Corrects entry {len(titles) - 1}" in text
    assert "It was Dad, not Mum" in text

    with tenancy.tenant_context(school.id):
        [audited] = db_session.scalars(
            select(AuditEvent).where(AuditEvent.action == "case.timeline_pdf")
        ).all()
        assert audited.object_id == str(case.id)
        assert audited.pupil_id == case.pupil_id


def test_read_only_staff_cannot_export_and_another_school_cannot_see_the_timeline_pdf(
    client: FlaskClient,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    make_school: Callable[..., Organisation],
    case_with_parents: CaseWithParents,
) -> None:
    case_id = case_with_parents.case.id
    path = f"/cases/{case_id}/timeline.pdf"
    login(make_user(case_with_parents.school, "school_staff"))
    assert client.get(path).status_code == 403
    assert 'timeline.pdf"' not in client.get(f"/cases/{case_id}").get_data(as_text=True)
    login(make_user(make_school(), "attendance_officer"))
    assert client.get(path).status_code == 404
