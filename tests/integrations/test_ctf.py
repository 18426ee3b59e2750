"""The CTF reader: round trip through the generator, every kind of bad input with its location."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from pathlib import Path
from typing import Any

import pytest

from attendwise.integrations import ctf
from tests.integrations import ctf_generator as gen

PUPILS = "CTfile/CTFpupilData"


def parse(pupils: list[gen.GenPupil], **header: str) -> ctf.CtfFile:
    return ctf.parse(gen.to_bytes(gen.build(pupils, **header)))


def one_pupil(**changes: object) -> gen.GenPupil:
    pupil = gen.random_pupils(1, seed=7)[0]
    for name, value in changes.items():
        setattr(pupil, name, value)
    return pupil


def test_round_trip_gives_the_same_pupils_contacts_and_marks() -> None:
    made = gen.random_pupils(25, seed=3)
    parsed = parse(made)

    assert parsed.problems == []
    assert parsed.header is not None
    assert parsed.header.version == "25.0"
    assert parsed.header.source.laestab == "8352001"
    assert [p.upn for p in parsed.pupils] == [p.upn for p in made]
    for got, want in zip(parsed.pupils, made, strict=True):
        assert (got.surname, got.forename, got.date_of_birth.isoformat(), got.sex) == (
            want.surname,
            want.forename,
            want.dob,
            want.sex,
        )
        assert got.nc_year == want.nc_year
        assert got.eal is (want.first_language != "ENG")
        assert got.looked_after is want.in_care
        assert bool(got.fsm) is bool(want.fsm_start)
        assert [(c.forename, c.surname, c.parental_responsibility) for c in got.contacts] == [
            (c.forename, c.surname, c.responsibility) for c in want.contacts
        ]
        assert {(m.date, m.session): m.code for m in got.marks} == want.marks()


def test_the_files_own_totals_agree_with_attendwise_figures() -> None:
    made = gen.random_pupils(25, seed=11)
    parsed = parse(made)

    for got, want in zip(parsed.pupils, made, strict=True):
        assert ctf.disagreements(got) == []
        assert ctf.computed_totals(got.marks).as_dict() == want.years[0].totals()
        assert ctf.file_totals(got) == want.years[0].totals()


def test_totals_that_do_not_match_the_marks_are_reported() -> None:
    pupil = one_pupil()
    true_possible = pupil.years[0].totals()["possible"]
    pupil.years[0].totals_override = {"possible": true_possible + 4}

    parsed = parse([pupil])

    assert parsed.problems == []
    [found] = ctf.disagreements(parsed.pupils[0])
    assert found["total"] == "possible"
    assert (found["file"], found["marks"]) == (true_possible + 4, true_possible)
    assert found["location"] == f"{PUPILS}/Pupil[1]/Attendance/YearData[1]"


def test_ctf24_with_gender_and_other_casing_is_read() -> None:
    pupil = one_pupil(sex_element="Gender")
    xml = gen.to_bytes(gen.build([pupil], version="24.0"))
    xml = xml.replace(b"CTFversion", b"CTFVersion").replace(b"AttendanceMarks", b"attendancemarks")

    parsed = ctf.parse(xml)

    assert parsed.problems == []
    assert parsed.pupils[0].sex == pupil.sex
    assert {(m.date, m.session): m.code for m in parsed.pupils[0].marks} == pupil.marks()


def test_unsupported_version_is_refused() -> None:
    parsed = parse([one_pupil()], version="23.0")

    assert parsed.pupils == []
    assert [p.location for p in parsed.problems] == ["CTfile/Header/CTFversion"]
    assert "23.0 is not supported" in parsed.problems[0].reason


def test_malformed_xml_is_reported_with_line_and_column() -> None:
    xml = gen.to_bytes(gen.build([one_pupil()])).replace(b"</Surname>", b"</Surnam>", 1)

    parsed = ctf.parse(xml)

    assert parsed.pupils == []
    [problem] = parsed.problems
    assert problem.location.startswith("line ")
    assert "not well-formed XML" in problem.reason


def test_billion_laughs_is_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        b"<CTfile><Header><CTFversion>25.0</CTFversion></Header><CTFpupilData><Pupil>"
        b"<Surname>&lol3;</Surname></Pupil></CTFpupilData></CTfile>"
    )

    parsed = ctf.parse(bomb)

    assert parsed.pupils == []
    assert [p.location for p in parsed.problems] == ["CTfile"]
    assert "DTD" in parsed.problems[0].reason


def test_external_entity_is_refused_and_nothing_is_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    xxe = (
        f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file://{secret}">]>'
        "<CTfile><Header><CTFversion>25.0</CTFversion></Header><CTFpupilData><Pupil>"
        "<Surname>&xxe;</Surname></Pupil></CTFpupilData></CTfile>"
    ).encode()

    parsed = ctf.parse(xxe)

    assert parsed.pupils == []
    assert "refused" in parsed.problems[0].reason
    assert "TOP-SECRET-VALUE" not in repr(parsed)


def test_oversize_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    # Not even XML: refusing it for its size proves the parser never saw it.
    path.write_bytes(b"<" * 5000)

    with pytest.raises(ctf.CtfRefused) as refused:
        ctf.read_limited(path, max_bytes=4096)

    assert "5,000 bytes" in refused.value.reason
    assert "4,096" in refused.value.reason
    with pytest.raises(ctf.CtfRefused):
        ctf.read_limited(io.BytesIO(b"x" * 5000), max_bytes=4096)
    assert ctf.read_limited(io.BytesIO(b"x" * 4096), max_bytes=4096) == b"x" * 4096


def test_bad_upn_rejects_only_that_pupil() -> None:
    pupils = gen.random_pupils(4, seed=5)
    good = pupils[2].upn
    assert good is not None
    pupils[2].upn = ("A" if good[0] != "A" else "B") + good[1:]

    parsed = parse(pupils)

    assert [p.upn for p in parsed.pupils] == [pupils[0].upn, pupils[1].upn, pupils[3].upn]
    locations = {p.location: p.reason for p in parsed.problems}
    assert f"{PUPILS}/Pupil[3]/UPN" in locations
    assert "check letter" in locations[f"{PUPILS}/Pupil[3]/UPN"]
    assert f"{PUPILS}/Pupil[3]" in locations


def test_unknown_code_is_reported_with_date_session_and_position() -> None:
    pupils = gen.random_pupils(3, seed=9)
    sessions = pupils[1].years[0].sessions
    sessions[0] = "A"  # 1 September 2025, AM: "A" is no DfE code

    parsed = parse(pupils)

    assert [p.upn for p in parsed.pupils] == [pupils[0].upn, pupils[2].upn]
    where = f"{PUPILS}/Pupil[2]/Attendance/YearData[1]/AttendSessions/AttendanceMarks"
    [problem] = [p for p in parsed.problems if p.location == where]
    assert "2025-09-01 AM (character 1)" in problem.reason
    assert "'A' is not a DfE attendance code" in problem.reason


def test_two_character_codes_are_read_as_one_session() -> None:
    pupil = one_pupil()
    year = pupil.years[0]
    year.sessions = ["C1", "\\", "J1", "Y3", "#", "#", "/", "C2"]
    year.start = dt.date(2025, 9, 3)

    parsed = parse([pupil])

    assert parsed.problems == []
    assert [(m.date.day, m.session, m.code) for m in parsed.pupils[0].marks] == [
        (3, "AM", "C1"),
        (3, "PM", "\\"),
        (4, "AM", "J1"),
        (4, "PM", "Y3"),
        (6, "AM", "/"),
        (6, "PM", "C2"),
    ]
    assert ctf.disagreements(parsed.pupils[0]) == []


def test_withdrawn_code_after_the_2024_reform_is_an_error_but_fine_before() -> None:
    after = one_pupil()
    after.years[0].sessions = ["J", "\\"]
    after.years[0].start = dt.date(2025, 9, 3)
    before = gen.random_pupils(2, seed=7)[1]
    before.years[0].sessions = ["H", "H"]
    before.years[0].start = dt.date(2024, 5, 1)

    parsed = parse([after, before])

    assert [p.upn for p in parsed.pupils] == [before.upn]
    assert any("withdrawn" in p.reason and "Pupil[1]" in p.location for p in parsed.problems)


def test_half_a_day_of_sessions_is_an_error() -> None:
    pupil = one_pupil()
    pupil.years[0].sessions = ["/", "\\", "/"]

    parsed = parse([pupil])

    assert parsed.pupils == []
    assert any("only its AM session" in p.reason for p in parsed.problems)


@pytest.mark.parametrize(
    ("field", "element"),
    [("surname", "Surname"), ("forename", "Forename"), ("dob", "DOB"), ("upn", "UPN"), ("sex", "Sex")],
)
def test_a_pupil_missing_a_required_field_is_rejected(field: str, element: str) -> None:
    pupils = gen.random_pupils(2, seed=2)
    setattr(pupils[0], field, None)

    parsed = parse(pupils)

    assert [p.upn for p in parsed.pupils] == [pupils[1].upn]
    reasons = {p.location: p.reason for p in parsed.problems}
    assert f"{PUPILS}/Pupil[1]/{element}" in reasons
    assert "missing" in reasons[f"{PUPILS}/Pupil[1]/{element}"]


def test_a_bad_date_of_birth_is_reported() -> None:
    parsed = parse([one_pupil(dob="31/02/2016")])

    assert parsed.pupils == []
    assert {p.location: p.reason for p in parsed.problems}[f"{PUPILS}/Pupil[1]/DOB"] == (
        "'31/02/2016' is not a date (expected YYYY-MM-DD)"
    )


def test_a_contact_with_no_name_is_dropped_and_the_pupil_kept() -> None:
    pupil = one_pupil()
    pupil.contacts[1].surname = None
    pupil.contacts[1].forename = None

    parsed = parse([pupil])

    assert len(parsed.pupils) == 1
    assert [c.forename for c in parsed.pupils[0].contacts] == ["Sam"]
    [problem] = parsed.problems
    assert problem.location == f"{PUPILS}/Pupil[1]/Contacts/Contact[2]"
    assert "no name" in problem.reason


def test_a_contact_with_only_one_name_is_reported() -> None:
    pupil = one_pupil()
    pupil.contacts[0].forename = None

    parsed = parse([pupil])

    assert [problem.location for problem in parsed.problems] == [
        f"{PUPILS}/Pupil[1]/Contacts/Contact[1]/Forename"
    ]
    assert len(parsed.pupils[0].contacts) == 1


def test_a_file_that_is_not_a_ctf_is_refused() -> None:
    parsed = ctf.parse(b"<Pupils><Pupil/></Pupils>")

    assert parsed.pupils == []
    assert parsed.problems[0].location == "Pupils"


def test_line_breaks_and_lower_case_in_the_marks_are_read_as_the_codes_they_spell() -> None:
    pupil = one_pupil()
    year = pupil.years[0]
    year.sessions = ["/", "\\", "c1", "\n      ", "n", "#", "#", "l", "y3", "\n", "/", "a"]
    year.start = dt.date(2025, 9, 3)

    parsed = parse([pupil])

    assert parsed.problems[0] == ctf.Problem(
        f"{PUPILS}/Pupil[1]/Attendance/YearData[1]/AttendSessions/AttendanceMarks",
        "2025-09-07 PM (character 20): 'A' is not a DfE attendance code",
    )
    year.sessions[-1] = "\\"
    parsed = parse([pupil])
    assert parsed.problems == []
    assert [(m.date.day, m.session, m.code) for m in parsed.pupils[0].marks] == [
        (3, "AM", "/"),
        (3, "PM", "\\"),
        (4, "AM", "C1"),
        (4, "PM", "N"),
        (6, "AM", "L"),
        (6, "PM", "Y3"),
        (7, "AM", "/"),
        (7, "PM", "\\"),
    ]


def test_two_year_data_giving_one_session_different_codes_reject_the_pupil() -> None:
    pupil = one_pupil()
    pupil.years[0].sessions = ["/", "\\"]
    pupil.years[0].start = dt.date(2025, 9, 3)
    pupil.years.append(gen.GenYear(start=dt.date(2025, 9, 3), sessions=["/", "N"]))

    parsed = parse([pupil])

    assert parsed.pupils == []
    where = f"{PUPILS}/Pupil[1]/Attendance/YearData[2]/AttendSessions/AttendanceMarks"
    assert {p.location: p.reason for p in parsed.problems}[where] == (
        "2025-09-03 PM is marked 'N' here but '\\\\' in an earlier YearData"
    )


def test_each_pupil_element_is_known_by_its_bytes_before_it_is_read() -> None:
    made = gen.random_pupils(3, seed=13)
    before = {e.upn: e.digest for e in parse(made).elements}
    made[1].years[0].sessions[0] = "N" if made[1].years[0].sessions[0] != "N" else "I"

    after = parse(made[::-1])

    assert set(before) == {p.upn for p in made}
    assert [
        upn for upn, digest in before.items() if {e.upn: e.digest for e in after.elements}[upn] != digest
    ] == [made[1].upn]


def _pupil_slices(data: bytes) -> list[bytes]:
    """Each Pupil element of a generated file, start tag to end tag (the generator writes them plainly)."""
    return [b"<Pupil>" + part.split(b"</Pupil>", 1)[0] for part in data.split(b"<Pupil>")[1:]]


@pytest.mark.parametrize(
    ("variant", "whole_file", "each_element"),
    [
        ("as exported", lambda d: d, lambda e: e),
        (
            "lower-case Pupil tags",
            lambda d: d.replace(b"<Pupil>", b"<pupil>").replace(b"</Pupil>", b"</pupil>"),
            lambda e: e.replace(b"<Pupil>", b"<pupil>"),
        ),
        (
            "a comment that holds a Pupil tag",
            lambda d: d.replace(b"<CTFpupilData>", b"<CTFpupilData><!-- <Pupil> was here -->"),
            lambda e: e,
        ),
        (
            "Pupil tags with a namespace prefix",
            lambda d: (
                d.replace(b"<CTfile>", b'<CTfile xmlns:c="urn:ctf">')
                .replace(b"<Pupil>", b"<c:Pupil>")
                .replace(b"</Pupil>", b"</c:Pupil>")
            ),
            lambda e: e.replace(b"<Pupil>", b"<c:Pupil>"),
        ),
        (
            "a Pupil element outside CTFpupilData",
            lambda d: d.replace(b"</Header>", b"<Pupil>not a pupil</Pupil></Header>"),
            lambda e: e,
        ),
    ],
)
def test_each_pupil_elements_digest_is_of_its_own_bytes_however_the_file_writes_its_tags(
    variant: str, whole_file: Any, each_element: Any
) -> None:
    made = gen.random_pupils(4, seed=21)
    exported = gen.to_bytes(gen.build(made))
    data = whole_file(exported)
    assert data != exported or variant == "as exported"

    parsed = ctf.parse(data)

    assert parsed.problems == []
    assert [e.upn for e in parsed.elements] == [p.upn for p in made]
    assert [e.digest for e in parsed.elements] == [
        hashlib.sha256(each_element(element)).hexdigest() for element in _pupil_slices(exported)
    ]
