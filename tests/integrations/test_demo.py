"""The demo is filled through the import paths a school uses: CTF 25 and CSV files, saved mappings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from attendwise.attendance import demo as attendance_demo
from attendwise.attendance import marks_codec
from attendwise.attendance.models import Pupil, PupilMarkYear
from attendwise.integrations import connectors, ctf, ctf_writer, services
from attendwise.integrations import demo as integrations_demo
from attendwise.integrations.models import ConnectorSettings, RunStatus, SyncRun
from attendwise.platform import tenancy
from attendwise.platform.demo import DEMO_SCHOOLS, DemoOrgs
from attendwise.tenants import services as tenants
from attendwise.tenants.models import Organisation, OrgKind
from tests.integrations.ctf_generator import make_upn


def demo_orgs(session: Session) -> DemoOrgs:
    with tenancy.system_context("test: demo organisations"):
        la = tenants.create_organisation(session, kind=OrgKind.LA, name="Dorset", la_code="835")
        trust = tenants.create_organisation(session, kind=OrgKind.TRUST, name="Chalk Downs")
        schools = [
            tenants.create_organisation(
                session,
                kind=OrgKind.SCHOOL,
                name=name,
                urn=urn,
                laestab=f"835{urn[-4:]}",
                phase=phase,
                la=la,
                trust=trust if phase == "Primary" else None,
            )
            for urn, name, phase, _preset in DEMO_SCHOOLS
        ]
    return DemoOrgs(platform=la, la=la, trust=trust, schools=schools)


def test_the_demo_schools_are_imported_from_ctf_and_csv_files(app: Flask, db_session: Session) -> None:
    orgs = demo_orgs(db_session)
    with tenancy.system_context("test: seed the demo"):
        attendance_demo.seed(db_session, orgs)
        integrations_demo.seed(db_session, orgs)
    folder = Path(app.config["DATA_DIR"]) / "demo-imports"

    imported: dict[str, list[tuple[str, str, RunStatus, int]]] = {}
    for school in orgs.schools:
        with tenancy.tenant_context(school.id):
            imported[school.phase or ""] = imported.get(school.phase or "", []) + [
                (r.connector, r.source, r.status, r.rejected)
                for r in db_session.scalars(select(SyncRun).order_by(SyncRun.id))
            ]
    secondary = next(s for s in orgs.schools if s.phase == "Secondary")
    with tenancy.tenant_context(secondary.id):
        forms = set(db_session.scalars(select(Pupil.registration_group)))
        mapping = services.saved_mapping(db_session, secondary.id, "marks")
        minutes = [
            marks_codec.decode_minutes_late(y.minutes_late) for y in db_session.scalars(select(PupilMarkYear))
        ]

    assert [c for c, *_ in imported["Secondary"]] == ["ctf", "csv-pupils", "csv-marks", "csv-marks"]
    assert [c for c, *_ in imported["Primary"]] == ["ctf", "ctf"] * 4
    assert {status for runs in imported.values() for *_, status, _r in runs} == {RunStatus.SUCCEEDED}
    assert all(rejected == 0 for runs in imported.values() for *_, rejected in runs)
    for runs in imported.values():
        for _connector, source, _status, _rejected in runs:
            assert (folder / source).is_file()
    assert mapping == attendance_demo.MARK_COLUMNS
    assert {"7A", "7B", "7C"} <= forms
    assert any(minutes)
    first_file = folder / imported["Primary"][0][1]
    parsed = ctf.parse(first_file.read_bytes())
    assert parsed.header is not None
    assert parsed.header.version == "25.0"
    assert parsed.problems == []
    assert all(ctf.disagreements(p) == [] for p in parsed.pupils)


def test_the_demo_shows_a_switched_off_wonde_connection(
    db_session: Session, make_school: Callable[..., Organisation]
) -> None:
    school = make_school()
    orgs = DemoOrgs(platform=school, la=school, trust=school, schools=[school])

    with tenancy.system_context("test: seed the demo"):
        integrations_demo.seed(db_session, orgs)
    with tenancy.tenant_context(school.id):
        settings = connectors.settings_for(db_session, school.id)
        count = db_session.scalar(select(func.count(ConnectorSettings.id)))

    assert settings is not None
    assert count == 1
    assert (settings.connector, settings.mis_school_id, settings.enabled) == ("wonde", "A1930499544", False)
    assert settings.token_saved_at is not None
    with tenancy.system_context("test: scheduler sweep"):
        assert connectors.queue_due_syncs(db_session, dt.datetime(2026, 11, 3, 20, tzinfo=dt.UTC)) == []


def test_a_written_ctf_reads_back_with_the_same_pupil_contacts_marks_and_totals() -> None:
    start = dt.date(2026, 9, 7)
    marks = {
        (start, "AM"): "/",
        (start, "PM"): "\\",
        (start + dt.timedelta(days=1), "AM"): "N",
        (start + dt.timedelta(days=1), "PM"): "I",
        (start + dt.timedelta(days=4), "AM"): "L",
    }
    home = ctf_writer.Address("12", "Mill Road", "Wimborne", "BH21 1AB")
    pupil = ctf_writer.Pupil(
        upn=make_upn(835, 3470, 20, 7),
        surname="Nowak",
        forename="Zofia",
        date_of_birth=dt.date(2019, 5, 4),
        sex="F",
        nc_year="2",
        first_language="POL",
        fsm_start=dt.date(2025, 9, 1),
        sen_provision="K",
        address=home,
        contacts=(
            ctf_writer.Contact(
                order=1,
                title="Mrs",
                forename="Agnieszka",
                surname="Nowak",
                relationship="Mother",
                responsibility=True,
                address_as_pupil=True,
                phones=(("M", "07700 900123"),),
                email="a.nowak@example.test",
            ),
        ),
        attendance=(
            ctf_writer.Attendance(
                year="2026",
                lea="835",
                estab="3470",
                school_name="Spetisbury",
                start=start,
                end=start + dt.timedelta(days=6),
                marks=marks,
            ),
        ),
    )

    data = ctf_writer.write(
        [pupil],
        lea="835",
        estab="3470",
        school_name="Spetisbury",
        academic_year="2026",
        generated_at=dt.datetime(2026, 9, 14, 9, 0),
        supplier="TEST",
    )
    parsed = ctf.parse(data)

    assert parsed.problems == []
    (read,) = parsed.pupils
    assert (read.upn, read.surname, read.forename, read.sex, read.nc_year) == (
        pupil.upn,
        "Nowak",
        "Zofia",
        "F",
        "2",
    )
    assert read.eal is True
    assert read.sen[0].provision == "K"
    assert {(m.date, m.session): m.code for m in read.marks} == marks
    assert len(read.years[0].marks) == 5
    assert read.years[0].totals.as_dict() == {
        "possible": 5,
        "attended": 3,
        "authorised": 1,
        "unauthorised": 1,
    }
    assert ctf.disagreements(read) == []
    (contact,) = read.contacts
    assert (contact.forename, contact.surname, contact.parental_responsibility) == (
        "Agnieszka",
        "Nowak",
        True,
    )
    assert read.address is not None
    assert read.address.postcode == "BH21 1AB"
    assert b"<AttendanceMarks>/\\NI####L#####</AttendanceMarks>" in data
