"""A platform administrator onboards local authorities, trusts and schools (GIAS CSV)."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from attendwise.tenants.models import Organisation, OrgKind
from tests.platform.account_fixtures import body_text
from tests.tenants.conftest import post

PAGE = "/platform/organisations"
GIAS_HEADER = (
    '"URN","LA (code)","LA (name)","EstablishmentNumber","EstablishmentName",'
    '"EstablishmentStatus (name)","PhaseOfEducation (name)","Trusts (name)"\n'
)


def events(db_session, org_id: int) -> list[AuditEvent]:
    with tenancy.system_context("test inspection"):
        return list(
            db_session.scalars(select(AuditEvent).where(AuditEvent.org_id == org_id).order_by(AuditEvent.seq))
        )


def org_named(db_session, name: str) -> Organisation | None:
    return db_session.scalar(select(Organisation).where(Organisation.name == name))


def upload(client, rows: list[str], filename: str = "edubasealldata.csv"):
    data = (GIAS_HEADER + "".join(r + "\n" for r in rows)).encode("cp1252")
    return post(
        client,
        "/platform/organisations/import",
        "/platform/organisations/import",
        {"file": (io.BytesIO(data), filename)},
        content_type="multipart/form-data",
    )


@pytest.fixture
def signed_in_admin(client, sign_in, platform_admin):
    sign_in(platform_admin)
    return platform_admin


def test_platform_admin_creates_a_local_authority_audited_under_it(client, db_session, signed_in_admin):
    response = post(
        client, PAGE, f"{PAGE}/local-authorities", {"la_name": "Dorset Council", "la_code": "835"}
    )
    assert response.status_code == 302
    la = org_named(db_session, "Dorset Council")
    assert la is not None
    assert (la.kind, la.la_code, la.mfa_required) == (OrgKind.LA, "835", True)
    [event] = events(db_session, la.id)
    assert (event.action, event.actor_label) == ("organisation.create", signed_in_admin.email)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Dorset Council (LA code 835) has been created." in page


@pytest.mark.parametrize(
    ("code", "message"),
    [("83", "LA code must be three digits, got &#39;83&#39;"), ("835", "LA code 835 is already used by")],
)
def test_bad_or_duplicate_la_codes_are_refused(client, db_session, signed_in_admin, make_la, code, message):
    make_la(name="Dorset Council", la_code="835")
    response = post(client, PAGE, f"{PAGE}/local-authorities", {"la_name": "Another", "la_code": code})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert org_named(db_session, "Another") is None


def test_trusts_are_created_once_by_name(client, db_session, signed_in_admin):
    first = post(client, PAGE, f"{PAGE}/trusts", {"trust_name": "Chalk Downs Learning Trust"})
    assert first.status_code == 302
    again = post(client, PAGE, f"{PAGE}/trusts", {"trust_name": "chalk downs learning trust"})
    assert again.status_code == 400
    assert "a trust called chalk downs learning trust already exists" in again.get_data(as_text=True)
    assert len(db_session.scalars(select(Organisation).where(Organisation.kind == OrgKind.TRUST)).all()) == 1


def test_gias_import_creates_schools_linked_to_their_la_and_trust(
    client, db_session, signed_in_admin, make_la, make_trust
):
    la = make_la(name="Dorset Council", la_code="835")
    trust = make_trust("Chalk Downs Learning Trust")
    response = upload(
        client,
        [
            '113470,835,Dorset,3315,"Spetisbury CE Primary School",Open,Primary,',
            "139880,835,Dorset,2004,Hillside Academy,Open,Primary,Chalk Downs Learning Trust",
            "100001,835,Dorset,2005,Gone School,Closed,Primary,",
        ],
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html
    assert "2 schools imported" in html
    assert "Row 4: URN 100001 (Gone School) is closed" in html
    spetisbury = org_named(db_session, "Spetisbury CE Primary School")
    hillside = org_named(db_session, "Hillside Academy")
    assert spetisbury is not None
    assert hillside is not None
    assert (spetisbury.urn, spetisbury.laestab, spetisbury.la_id, spetisbury.trust_id) == (
        "113470",
        "8353315",
        la.id,
        None,
    )
    assert (hillside.la_id, hillside.trust_id, hillside.phase) == (la.id, trust.id, "Primary")
    assert [e.action for e in events(db_session, hillside.id)] == ["organisation.create"]
    platform_events = events(db_session, signed_in_admin.memberships[0].org_id)
    assert [e.action for e in platform_events][-1] == "schools.import"

    again = upload(
        client, ["139880,835,Dorset,2004,Hillside Academy,Open,Primary,Chalk Downs Learning Trust"]
    )
    assert again.status_code == 200
    assert "URN 139880 is already on Attendwise (Hillside Academy)" in again.get_data(as_text=True)


def test_one_bad_row_means_nothing_is_imported_and_every_problem_is_listed(
    client, db_session, signed_in_admin, make_la
):
    make_la(name="Dorset Council", la_code="835")
    response = upload(
        client,
        [
            "113470,835,Dorset,3315,Good School,Open,Primary,",
            "113471,999,Nowhere,3316,Unknown LA School,Open,Primary,",
            "113472,835,Dorset,3317,Trust School,Open,Primary,Missing Trust",
            "11347X,835,Dorset,3318,Bad URN School,Open,Primary,",
        ],
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "nothing was imported" in html
    for expected in (
        "no local authority with code 999: create it first",
        "no trust called &#39;Missing Trust&#39;: create it first",
        "&#39;11347X&#39; is not a 6-digit URN",
    ):
        assert expected in html
    assert db_session.scalars(select(Organisation).where(Organisation.kind == OrgKind.SCHOOL)).all() == []


def test_an_upload_that_is_not_a_school_list_is_explained(client, db_session, signed_in_admin):
    response = post(
        client,
        "/platform/organisations/import",
        "/platform/organisations/import",
        {"file": (io.BytesIO(b"name,age\nSam,9\n"), "pupils.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert "the header row has no column &#39;URN&#39;" in response.get_data(as_text=True)


def test_platform_admin_invites_the_first_school_administrator(
    client,
    db_session,
    signed_in_admin,
    school,
    smtp_server,
):
    page = f"{PAGE}/{school.id}"
    response = post(client, page, f"{page}/invite", {"email": "Head@HillTop.test", "role": "school_admin"})
    assert response.status_code == 302
    [message] = smtp_server.messages
    assert message["To"] == "head@hilltop.test"
    assert f"Attendwise at {school.name} as School administrator" in body_text(message)
    assert "head@hilltop.test (School administrator)" in client.get(page).get_data(as_text=True)


def test_only_platform_admins_reach_onboarding(client, sign_in, school_admin):
    sign_in(school_admin)
    for path in (PAGE, "/platform/organisations/import", f"{PAGE}/{school_admin.memberships[0].org_id}"):
        assert client.get(path).status_code == 403
