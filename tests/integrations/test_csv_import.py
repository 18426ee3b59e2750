"""CSV exports of pupils and marks: column mappings, row-numbered problems, whole pupils only."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.attendance.models import Pupil
from attendwise.integrations import csv_import, services
from attendwise.integrations.models import RunStatus, SyncRun
from attendwise.platform import tenancy
from attendwise.tenants.models import Organisation
from tests.integrations.ctf_generator import make_upn

UPNS = [make_upn(835, 2001, 21, n) for n in range(1, 5)]

PUPILS_CSV = textwrap.dedent(
    f"""\
    UPN,First name,Last name,DOB,NC Year,Gender,FSM
    {UPNS[0]},Amelia,Smith,2016-03-04,4,F,yes
    {UPNS[1]},Oliver,Jones,12/11/2015,5,M,no
    {UPNS[2]},Isla,,2016-01-01,4,F,no
    {UPNS[3]},Noah,Brown,2016-02-02,Y9,M,no
    """
).encode()

PUPIL_MAPPING = {
    "upn": "UPN",
    "legal_forename": "First name",
    "legal_surname": "Last name",
    "date_of_birth": "DOB",
    "year_group": "NC Year",
    "sex": "Gender",
    "fsm": "FSM",
}


def marks_csv(rows: list[str]) -> bytes:
    return ("upn,date,session,code\n" + "\n".join(rows) + "\n").encode()


@pytest.fixture
def school(make_school: Callable[..., Organisation]) -> Organisation:
    return make_school()


def test_pupils_are_read_through_the_mapping_with_row_numbers() -> None:
    parsed = csv_import.parse(PUPILS_CSV, "pupils", PUPIL_MAPPING)

    assert [(p.upn, p.year_group, p.fsm, p.row) for p in parsed.pupils] == [
        (UPNS[0], "4", True, 2),
        (UPNS[1], "5", False, 3),
    ]
    assert [(p.location, p.reason) for p in parsed.problems] == [
        ("row 4, column Last name", "legal_surname is empty"),
        (
            "row 5, column NC Year",
            "'Y9' is not a year group (N1, N2, R, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14)",
        ),
    ]


def test_a_missing_column_names_the_mapping_to_use() -> None:
    parsed = csv_import.parse(PUPILS_CSV, "pupils", {})

    assert parsed.pupils == []
    assert parsed.problems[0].location == "row 1"
    assert parsed.problems[0].reason.startswith(
        "no column 'legal_forename' for legal_forename: choose the column that holds legal_forename "
        "(the file's columns are: "
    )


def test_a_mapping_to_an_unknown_field_is_refused() -> None:
    with pytest.raises(csv_import.MappingError, match="'colour' is not a marks field"):
        csv_import.parse_mapping(["colour=Colour"], "marks")


def test_a_pupil_with_a_bad_mark_row_keeps_none_of_their_marks() -> None:
    parsed = csv_import.parse(
        marks_csv(
            [
                f"{UPNS[0]},2025-09-03,AM,/",
                f"{UPNS[0]},2025-09-03,PM,\\",
                f"{UPNS[1]},2025-09-03,AM,/",
                f"{UPNS[1]},2025-09-03,XM,\\",
                f"{UPNS[1]},2025-09-04,AM,J",
            ]
        ),
        "marks",
    )

    assert {m.upn for m in parsed.marks} == {UPNS[0]}
    assert [p.location for p in parsed.problems] == [
        "row 5, column session",
        "row 6, column code",
        f"rows of UPN {UPNS[1]}",
    ]
    assert "withdrawn" in parsed.problems[1].reason


def test_two_codes_for_one_session_are_reported() -> None:
    parsed = csv_import.parse(
        marks_csv([f"{UPNS[0]},2025-09-03,AM,/", f"{UPNS[0]},2025-09-03,AM,N"]), "marks"
    )

    assert parsed.marks == []
    assert parsed.problems[0].location == "row 3"
    assert "is N here but / in row 2" in parsed.problems[0].reason


def test_import_pupils_then_marks_and_again_changes_nothing(
    db_session: Session, school: Organisation
) -> None:
    def run(kind: str, data: bytes, mapping: dict[str, str]) -> SyncRun:
        parsed = csv_import.parse(data, kind, mapping)
        return services.run_import(
            db_session,
            school,
            connector=f"csv-{kind}",
            source="x.csv",
            work=lambda: services.import_csv(db_session, school, parsed),
        )

    marks = marks_csv(
        [f"{UPNS[0]},2025-09-03,AM,/", f"{UPNS[0]},2025-09-03,PM,N", f"{UPNS[1]},2025-09-03,AM,I"]
    )
    pupils = run("pupils", PUPILS_CSV, PUPIL_MAPPING)
    first = run("marks", marks, {})
    again = run("marks", marks, {})

    assert pupils.status == RunStatus.SUCCEEDED
    assert (pupils.created, pupils.rejected) == (2, 2)
    assert (first.created, first.rejected) == (3, 0)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    with tenancy.tenant_context(school.id):
        assert set(db_session.scalars(select(Pupil.upn))) == {UPNS[0], UPNS[1]}


def test_marks_for_a_pupil_the_school_does_not_have_are_rejected_by_row(
    db_session: Session, school: Organisation
) -> None:
    parsed = csv_import.parse(PUPILS_CSV, "pupils", PUPIL_MAPPING)
    services.run_import(
        db_session,
        school,
        connector="csv-pupils",
        source="p.csv",
        work=lambda: services.import_csv(db_session, school, parsed),
    )
    marks = csv_import.parse(marks_csv([f"{UPNS[0]},2025-09-03,AM,/", f"{UPNS[2]},2025-09-03,AM,/"]), "marks")

    run = services.run_import(
        db_session,
        school,
        connector="csv-marks",
        source="m.csv",
        work=lambda: services.import_csv(db_session, school, marks),
    )

    with tenancy.tenant_context(school.id):
        [rejection] = run.rejections
    assert (run.created, run.rejected) == (1, 1)
    assert rejection.location == "row 3"
    assert f"no pupil with UPN {UPNS[2]}" in rejection.reason


def test_a_saved_mapping_is_kept_per_school(db_session: Session, school: Organisation) -> None:
    with tenancy.tenant_context(school.id):
        services.save_mapping(db_session, school.id, "pupils", PUPIL_MAPPING)
        services.save_mapping(db_session, school.id, "pupils", {**PUPIL_MAPPING, "fsm": "Free meals"})

        assert services.saved_mapping(db_session, school.id, "pupils")["fsm"] == "Free meals"
        assert services.saved_mapping(db_session, school.id, "marks") == {}
