"""The case's household and timeline over the API: the same people and audit as the pages,
the timeline oldest first a page at a time, and nothing of another school's case."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.casework import services
from attendwise.casework.models import ContactChannel, ContactOutcome, TimelineEntry
from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from attendwise.tenants.models import Organisation, User
from tests.casework.conftest import CaseWithParents
from tests.casework.test_household import TODAY, add_brother_with_a_case, add_child_of_jane


def _audit(session: Session, org_id: int, action: str) -> list[AuditEvent]:
    with tenancy.system_context("test: read the audit log"):
        return list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == action, AuditEvent.org_id == org_id)
                .order_by(AuditEvent.seq)
            )
        )


def test_the_household_over_the_api_shows_what_the_page_shows_and_is_audited(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    make_school: Callable[..., Organisation],
    case_with_parents: CaseWithParents,
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr("attendwise.attendance.queries.today", lambda: TODAY)
    school, case = case_with_parents.school, case_with_parents.case
    case_id = case.id
    with tenancy.system_context("test: the school's LA"):
        la = db_session.get(Organisation, school.la_id)
    same_la = make_school(la=la, name="Hadley Learning Community")
    with tenancy.tenant_context(school.id):
        upn = case.pupil.upn
    brother_id, brothers_case_id = add_brother_with_a_case(db_session, school, upn)
    add_child_of_jane(db_session, same_la, "Zebedee", "Secretname", 2)
    add_child_of_jane(db_session, make_school(name="Faraway Academy"), "Farfetched", "Otherla", 3)
    db_session.commit()

    login(make_user(school, "attendance_officer"))
    response = client.get(f"/api/v1/casework/cases/{case_id}/household")
    assert response.status_code == 200
    body = response.get_json()
    assert body["case_id"] == case_id
    here = [m for m in body["members"] if m["at_this_school"]]
    elsewhere = [m for m in body["members"] if not m["at_this_school"]]
    assert [(m["pupil_id"], m["name"]) for m in here] == [(brother_id, "Robin Brother")]
    assert here[0]["case"] == {
        "id": brothers_case_id,
        "episode": 1,
        "open": True,
        "stage": 2,
        "stage_name": "Stage 2 meeting",
    }
    assert len(elsewhere) == 1  # the same LA's school; the other LA's sibling is not there at all
    assert elsewhere[0]["pupil_id"] is None
    assert elsewhere[0]["name"] is None
    assert elsewhere[0]["case"] is None
    text = response.get_data(as_text=True)
    for secret in ("Zebedee", "Secretname", "Farfetched", "Otherla", "Hadley", "Faraway"):
        assert secret not in text

    [view] = _audit(db_session, school.id, "case.household_view")
    assert view.object_id == str(case_id)
    assert json.loads(view.detail) == {"siblings_here": [brother_id], "siblings_elsewhere": 1}
    assert [e.pupil_id for e in _audit(db_session, school.id, "pupil.view")] == [brother_id]

    # Read-only staff lack siblings:headline: the other school's sibling is not even counted.
    login(make_user(school, "school_staff"))
    staff = client.get(f"/api/v1/casework/cases/{case_id}/household").get_json()
    assert [m["name"] for m in staff["members"]] == ["Robin Brother"]

    # Another school, even in the same LA, gets 404 and leaves no audit entry on this case.
    login(make_user(same_la, "attendance_officer"))
    assert client.get(f"/api/v1/casework/cases/{case_id}/household").status_code == 404
    assert len(_audit(db_session, school.id, "case.household_view")) == 2


def test_the_timeline_over_the_api_is_oldest_first_paged_and_audited(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    make_school: Callable[..., Organisation],
    case_with_parents: CaseWithParents,
) -> None:
    school, case = case_with_parents.school, case_with_parents.case
    case_id, pupil_id = case.id, case.pupil_id
    with tenancy.tenant_context(school.id):
        for n, note in enumerate(("No answer at 9", "Spoke to mum at 11")):
            services.log_contact(
                db_session,
                case,
                channel=ContactChannel.PHONE,
                outcome=ContactOutcome.NO_ANSWER if n == 0 else ContactOutcome.SPOKE_TO,
                note=note,
                by_user_id=None,
                occurred_at=dt.datetime(2026, 11, 23, 9 + 2 * n, tzinfo=dt.UTC),
            )
        wrong = db_session.scalars(
            select(TimelineEntry).where(TimelineEntry.case_id == case_id, TimelineEntry.kind == "contact")
        ).first()
        assert wrong is not None
        wrong_id = wrong.id
        services.correct_timeline(db_session, case, wrong.id, "It was 9:30, not 9", by_user_id=None)
        expected = [
            (e.id, e.kind, e.title)
            for e in db_session.scalars(
                select(TimelineEntry)
                .where(TimelineEntry.case_id == case_id)
                .order_by(TimelineEntry.occurred_at, TimelineEntry.id)
            )
        ]
        db_session.commit()
    assert len(expected) > 4
    assert expected[0][1] == "case_opened"
    assert expected[-1][1] == "correction"

    login(make_user(school, "school_staff"))
    url = f"/api/v1/casework/cases/{case_id}/timeline"
    first = client.get(f"{url}?per_page=3").get_json()
    assert first["total"] == len(expected)
    assert first["pages"] == -(-len(expected) // 3)
    seen = [(e["id"], e["kind"], e["title"]) for e in first["items"]]
    for page in range(2, first["pages"] + 1):
        more = client.get(f"{url}?per_page=3&page={page}").get_json()
        seen += [(e["id"], e["kind"], e["title"]) for e in more["items"]]
    assert seen == expected
    last = client.get(f"{url}?per_page=3&page={first['pages']}").get_json()["items"][-1]
    assert last["corrects_id"] == wrong_id
    assert last["body"] == "It was 9:30, not 9"
    assert client.get(f"{url}?per_page=500").status_code == 422

    views = _audit(db_session, school.id, "case.timeline_view")
    # Each page read once, the last one twice; the refused request read nothing and is not recorded.
    assert len(views) == first["pages"] + 1
    assert {(v.object_id, v.pupil_id) for v in views} == {(str(case_id), pupil_id)}

    login(make_user(make_school(), "attendance_officer"))
    assert client.get(url).status_code == 404


def test_household_and_timeline_are_documented_with_their_response_schemas(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    paths = spec["paths"]
    for path, schema in (
        ("/api/v1/casework/cases/{case_id}/household", "Household"),
        ("/api/v1/casework/cases/{case_id}/timeline", "TimelinePage"),
    ):
        ok = paths[path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": f"#/components/schemas/{schema}"}
    page = spec["components"]["schemas"]["TimelinePage"]["properties"]["items"]["items"]
    entry = spec["components"]["schemas"][page["$ref"].rsplit("/", 1)[1]]
    assert {"occurred_at", "kind", "title", "body", "corrects_id"} <= set(entry["properties"])
    parameters = {p["name"] for p in paths["/api/v1/casework/cases/{case_id}/timeline"]["get"]["parameters"]}
    assert {"page", "per_page"} <= parameters
