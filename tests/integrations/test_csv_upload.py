"""CSV files on the MIS data page: upload, choose the columns, preview the problems, import."""

from __future__ import annotations

import datetime as dt
import html
import io
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.attendance.models import Pupil
from attendwise.integrations import services
from attendwise.integrations.models import CsvUpload, RunStatus, SyncRunFile
from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from attendwise.tenants.models import Organisation
from tests.conftest import csrf_token
from tests.integrations.ctf_generator import make_upn
from tests.integrations.test_import import count, stored_marks
from tests.integrations.test_retry_file import fail_storing_once, get_run, retry, run_id

UPNS = [make_upn(835, 2001, 21, n) for n in range(1, 5)]
PUPIL_COLUMNS = {
    "upn": "Pupil UPN",
    "legal_forename": "Forename",
    "legal_surname": "Surname",
    "date_of_birth": "Birth date",
    "year_group": "Year",
    "sex": "Gender",
}
PUPILS = (
    "Pupil UPN,Forename,Surname,Birth date,Year,Gender\n"
    f"{UPNS[0]},Amelia,Smith,2016-03-04,4,F\n"
    f"{UPNS[1]},Oliver,Jones,12/11/2015,5,M\n"
    f"{UPNS[2]},Isla,Brown,2016-01-01,4,F\n"
).encode()
MARK_COLUMNS = {"upn": "UPN", "date": "Date", "session": "Session", "code": "Mark"}


def school_days(count: int) -> list[dt.date]:
    days, day = [], dt.date(2025, 9, 3)
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def marks_file(rows: list[str]) -> bytes:
    return ("UPN,Date,Session,Mark\n" + "\n".join(rows) + "\n").encode()


def upload(client: FlaskClient, data: bytes, kind: str = "pupils", name: str = "pupils.csv") -> Any:
    token = csrf_token(client, "/integrations")
    return client.post(
        "/integrations/csv",
        data={"csrf_token": token, "kind": kind, "csv_file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def submit(client: FlaskClient, page: str, columns: dict[str, str], action: str = "check") -> Any:
    token = csrf_token(client, page)
    fields = {f"column-{name}": column for name, column in columns.items()}
    return client.post(page, data={"csrf_token": token, "action": action, **fields})


def import_file(client: FlaskClient, data: bytes, kind: str, columns: dict[str, str]) -> Any:
    sent = upload(client, data, kind=kind, name=f"{kind}.csv")
    assert sent.status_code == 303, sent.get_data(as_text=True)
    return submit(client, sent.headers["Location"], columns, action="import")


def rows(page: str) -> dict[int, tuple[bool, list[str], str]]:
    """Each preview row by number: whether it is marked, its marked cells, its problems' text."""
    found = {}
    for marked, number, body in re.findall(
        r'<tr class="govuk-table__row( aw-csv-preview__row--problem)?" data-row="(\d+)">(.*?)</tr>',
        page,
        flags=re.DOTALL,
    ):
        cells = re.findall(
            r'data-problem="yes"><span class="govuk-visually-hidden">Problem: </span>([^<]*)', body
        )
        problems = html.unescape(" ".join(re.sub(r"<[^>]+>", "", body).split()))
        found[int(number)] = (bool(marked), cells, problems)
    return found


def selected(page: str, name: str) -> str:
    select_html = re.search(rf'<select[^>]*name="column-{name}"[^>]*>(.*?)</select>', page, flags=re.DOTALL)
    assert select_html, name
    chosen = re.search(r'<option value="([^"]*)" selected', select_html.group(1))
    return chosen.group(1) if chosen else ""


def actions(session: Session, school: Organisation) -> list[str]:
    with tenancy.tenant_context(school.id):
        return list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.org_id == school.id, AuditEvent.action.like("integrations.%"))
                .order_by(AuditEvent.seq)
            )
        )


@pytest.fixture
def school(make_school: Callable[..., Organisation]) -> Organisation:
    return make_school()


@pytest.fixture
def admin(school: Organisation, login: Callable[..., Any], make_user: Callable[..., Any]) -> Any:
    user = make_user(school, "school_admin")
    login(user)
    return user


def test_the_preview_marks_each_bad_row_and_cell_with_its_reason_and_counts_the_whole_file(
    client: FlaskClient, admin: Any
) -> None:
    days = school_days(30)
    lines = [f"{UPNS[1]},{day.isoformat()},AM,/" for day in days]
    lines[2] = f"{UPNS[0]},{days[2].isoformat()},AM,?"  # row 4: not a code
    lines[3] = f"{UPNS[0]},31/02/2025,PM,/"  # row 5: not a date
    lines[5] = f"{UPNS[0]},{days[5].isoformat()},AM,N"  # row 7: good, but UPN 0 has bad rows
    lines[28] = f"{UPNS[2]},{days[28].isoformat()},XM,/"  # row 30: beyond the preview
    sent = upload(client, marks_file(lines), kind="marks", name="autumn marks.csv")

    assert sent.status_code == 303
    first = client.get(sent.headers["Location"]).get_data(as_text=True)
    assert selected(first, "upn") == "UPN"
    assert selected(first, "date") == "Date"
    assert selected(first, "session") == "Session"
    assert selected(first, "code") == ""
    assert "Choose a column for each required field, then check the rows" in first
    checked = submit(client, sent.headers["Location"], MARK_COLUMNS)

    page = checked.get_data(as_text=True)
    shown = rows(page)
    assert checked.status_code == 200
    assert sorted(shown) == list(range(2, 22))
    assert shown[4][:2] == (True, ["?"])
    assert "Mark: '?' is not a DfE attendance code" in shown[4][2]
    assert shown[5][:2] == (True, ["31/02/2025"])
    assert "Date: '31/02/2025' is not a date" in shown[5][2]
    assert shown[7][:2] == (True, [])
    assert "none of this pupil's 1 other mark(s) were taken, because of row(s) 4, 5" in shown[7][2]
    assert shown[2] == (False, [], "2 " + f"{UPNS[1]} {days[0].isoformat()} AM /")
    assert "4 problem(s) in the whole file." in page
    assert "26 mark(s) would be imported." in page
    assert '<span class="aw-csv-preview__field">Attendance code</span>' in page


def test_a_second_file_is_mapped_as_the_school_last_imported_one(
    client: FlaskClient, db_session: Session, school: Organisation, admin: Any
) -> None:
    first = upload(client, PUPILS)
    assert all(
        selected(client.get(first.headers["Location"]).get_data(as_text=True), f) == "" for f in PUPIL_COLUMNS
    )
    assert submit(client, first.headers["Location"], PUPIL_COLUMNS, action="import").status_code == 303

    second = upload(client, PUPILS.replace(b"Pupil UPN", b"PUPIL UPN"), name="spring.csv")

    page = client.get(second.headers["Location"]).get_data(as_text=True)
    assert selected(page, "upn") == "PUPIL UPN"
    assert {name: selected(page, name) for name in PUPIL_COLUMNS if name != "upn"} == {
        name: column for name, column in PUPIL_COLUMNS.items() if name != "upn"
    }
    assert selected(page, "fsm") == ""
    assert "0 problem(s) in the whole file." in page
    with tenancy.tenant_context(school.id):
        assert services.saved_mapping(db_session, school.id, "pupils") == {
            **dict.fromkeys(("preferred_forename", "preferred_surname", "registration_group"), ""),
            **dict.fromkeys(("sen_status", "fsm", "eal", "looked_after", "child_in_need"), ""),
            **PUPIL_COLUMNS,
        }


def test_import_records_one_run_with_its_counts_and_stores_the_pupils_and_marks(
    client: FlaskClient, db_session: Session, school: Organisation, admin: Any
) -> None:
    days = school_days(2)
    marks = marks_file(
        [
            f"{UPNS[0]},{days[0].isoformat()},AM,/",
            f"{UPNS[0]},{days[0].isoformat()},PM,N",
            f"{UPNS[1]},{days[1].isoformat()},AM,I",
            f"{UPNS[3]},{days[1].isoformat()},AM,/",
        ]
    )

    pupils = import_file(client, PUPILS, "pupils", PUPIL_COLUMNS)
    imported = import_file(client, marks, "marks", MARK_COLUMNS)

    assert pupils.status_code == imported.status_code == 303
    pupils_run = get_run(db_session, school, run_id(pupils))
    marks_run = get_run(db_session, school, run_id(imported))
    assert (pupils_run.connector, pupils_run.source, pupils_run.status) == (
        "csv-pupils",
        "pupils.csv",
        RunStatus.SUCCEEDED,
    )
    assert (pupils_run.created, pupils_run.rejected) == (3, 0)
    assert (marks_run.connector, marks_run.created, marks_run.rejected) == ("csv-marks", 3, 1)
    assert count(db_session, school, Pupil) == 3
    assert stored_marks(db_session, school) == {
        UPNS[0]: {(days[0], "AM"): "/", (days[0], "PM"): "N"},
        UPNS[1]: {(days[1], "AM"): "I"},
        UPNS[2]: {},
    }
    page = client.get(imported.headers["Location"]).get_data(as_text=True)
    assert "3 created, 0 updated, 0 unchanged" in page
    assert f"no pupil with UPN {UPNS[3]}" in page
    assert count(db_session, school, CsvUpload) == 0
    assert count(db_session, school, SyncRunFile) == 0
    assert actions(db_session, school).count("integrations.file_uploaded") == 2
    assert actions(db_session, school).count("integrations.file_discarded") == 2


def test_a_failed_csv_import_keeps_its_file_and_retry_imports_it_through_the_saved_columns(
    client: FlaskClient,
    db_session: Session,
    school: Organisation,
    admin: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fail_storing_once(monkeypatch)

    sent = import_file(client, PUPILS, "pupils", PUPIL_COLUMNS)

    failed = run_id(sent)
    assert get_run(db_session, school, failed).status == RunStatus.FAILED
    assert count(db_session, school, Pupil) == 0
    assert count(db_session, school, CsvUpload) == 0
    assert count(db_session, school, SyncRunFile) == 1
    page = client.get(sent.headers["Location"]).get_data(as_text=True)
    assert "Retry imports pupils.csv again" in page

    retried = retry(client, failed)

    again = get_run(db_session, school, run_id(retried))
    assert (again.connector, again.status, again.created) == ("csv-pupils", RunStatus.SUCCEEDED, 3)
    assert again.source == f"retry of run {failed}: pupils.csv"
    with tenancy.tenant_context(school.id):
        assert set(db_session.scalars(select(Pupil.legal_surname))) == {"Smith", "Jones", "Brown"}
    assert count(db_session, school, SyncRunFile) == 0
    assert "integrations.file_kept" in actions(db_session, school)


def test_a_file_over_the_upload_limit_is_refused_and_nothing_is_kept(
    app: Flask,
    client: FlaskClient,
    db_session: Session,
    school: Organisation,
    admin: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 4000)
    lines = [f"{UPNS[0]},{day.isoformat()},AM,/" for day in school_days(200)]

    refused = upload(client, marks_file(lines), kind="marks")

    assert refused.status_code == 413
    assert count(db_session, school, CsvUpload) == 0


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"kind": "pupils"}, "csv_file", "Choose a CSV file (.csv) exported from your MIS"),
        (
            {"kind": "grades", "file": PUPILS},
            "kind",
            "Choose whether the file holds attendance marks or pupils",
        ),
        (
            {"kind": "pupils", "file": "UPN,Surname\nX,Brontë\n".encode("latin-1")},
            "csv_file",
            "it is not UTF-8 text (byte 20)",
        ),
        ({"kind": "pupils", "file": b""}, "csv_file", "it is empty: its first row must name the columns"),
        (
            {"kind": "marks", "file": b"UPN,Date,Session,Mark\n\n"},
            "csv_file",
            "it has a header row but no rows below it",
        ),
        (
            {"kind": "marks", "file": b"UPN,Date,upn\nX,Y,Z\n"},
            "csv_file",
            "two columns are headed 'upn' (columns 1 and 3)",
        ),
    ],
)
def test_a_bad_upload_is_refused_with_the_reason_on_its_field(
    client: FlaskClient,
    db_session: Session,
    school: Organisation,
    admin: Any,
    form: dict[str, Any],
    field: str,
    message: str,
) -> None:
    data: dict[str, Any] = {"csrf_token": csrf_token(client, "/integrations"), "kind": form["kind"]}
    if "file" in form:
        data["csv_file"] = (io.BytesIO(form["file"]), "x.csv")

    refused = client.post("/integrations/csv", data=data, content_type="multipart/form-data")

    page = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert f'href="#{field}"' in page
    assert message.replace("'", "&#39;") in page
    assert count(db_session, school, CsvUpload) == 0


def test_a_required_field_without_a_column_or_a_column_chosen_twice_is_refused(
    client: FlaskClient, db_session: Session, school: Organisation, admin: Any
) -> None:
    sent = upload(client, PUPILS)

    refused = submit(
        client,
        sent.headers["Location"],
        {**PUPIL_COLUMNS, "legal_surname": "", "preferred_forename": "Forename"},
        action="import",
    )

    page = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert 'href="#column-legal_surname"' in page
    assert "Choose the column that holds the legal last name" in page
    assert 'href="#column-preferred_forename"' in page
    assert "Preferred first name: column &#39;Forename&#39; is already chosen for legal first name" in page
    assert count(db_session, school, Pupil) == 0
    assert count(db_session, school, CsvUpload) == 1
    with tenancy.tenant_context(school.id):
        assert services.saved_mapping(db_session, school.id, "pupils") == {}


def test_an_import_while_another_sync_runs_is_refused_and_the_upload_kept(
    client: FlaskClient, db_session: Session, school: Organisation, admin: Any
) -> None:
    sent = upload(client, PUPILS)
    with tenancy.tenant_context(school.id):
        services.start_run(db_session, school.id, connector="wonde")
        db_session.commit()

    busy = submit(client, sent.headers["Location"], PUPIL_COLUMNS, action="import")

    assert busy.status_code == 409
    assert "a wonde sync of this school has been running since" in busy.get_data(as_text=True)
    assert count(db_session, school, CsvUpload) == 1
    assert count(db_session, school, Pupil) == 0


def test_a_discarded_upload_is_deleted_and_audited(
    client: FlaskClient, db_session: Session, school: Organisation, admin: Any
) -> None:
    sent = upload(client, PUPILS)
    token = csrf_token(client, sent.headers["Location"])

    discarded = client.post(f"{sent.headers['Location']}/discard", data={"csrf_token": token})

    assert discarded.status_code == 303
    assert "pupils.csv was discarded" in client.get(discarded.headers["Location"]).get_data(as_text=True)
    assert count(db_session, school, CsvUpload) == 0
    assert actions(db_session, school) == ["integrations.file_uploaded", "integrations.file_discarded"]
    assert client.get(sent.headers["Location"]).status_code == 404


def test_another_schools_upload_is_not_found_and_other_roles_are_forbidden(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_school: Callable[..., Organisation],
    make_user: Callable[..., Any],
) -> None:
    mine, theirs = make_school(), make_school()
    login(make_user(theirs, "school_admin"))
    theirs_at = upload(client, PUPILS).headers["Location"]
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/integrations")})

    login(make_user(mine, "school_admin"))
    token = csrf_token(client, "/integrations")
    form = {"csrf_token": token, "action": "import", **{f"column-{k}": v for k, v in PUPIL_COLUMNS.items()}}
    assert client.get(theirs_at).status_code == 404
    assert client.post(theirs_at, data=form).status_code == 404
    assert client.post(f"{theirs_at}/discard", data={"csrf_token": token}).status_code == 404
    client.post("/auth/logout", data={"csrf_token": token})

    login(make_user(theirs, "attendance_officer"))
    assert client.get(theirs_at).status_code == 403
    assert count(db_session, theirs, CsvUpload) == 1
    assert count(db_session, theirs, Pupil) == 0
