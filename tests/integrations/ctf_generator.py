"""Write DfE Common Transfer Files (CTF 25) for tests and the demo.

The element names follow the documented layout (shared/domain/mis-formats.md §1.2-1.3: the DfE
GIAP CTF 25 writer and the Follett exporter): ``CTfile/Header`` and ``CTfile/CTFpupilData/Pupil``
with ``Attendance/YearData/AttendSessions{AttendanceStartDate, AttendanceMarks}``, the marks
string holding two sessions per calendar day (AM then PM) with ``##`` for a day not in session.

The generator keeps its own small table of code classes (law-and-codes.md §8) to write the
file's ``Sessions*`` totals, so a round trip checks the importer against an independent count.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree.ElementTree import Element, ElementTree, SubElement, indent, tostring

from stdnum.gb.upn import calc_check_digit

PRESENT = ("/", "\\", "L")
APPROVED = ("B", "K", "P", "V", "W")
AUTHORISED = ("C", "C1", "C2", "E", "I", "J1", "M", "R", "S", "T")
UNAUTHORISED = ("G", "N", "O", "U")
NOT_COUNTED = ("D", "X", "Q", "Y1", "Y2", "Y3", "Y4", "Y5", "Y6", "Y7", "Z")

# The codes withdrawn in August 2024, as they were classified before it (law-and-codes.md §8).
WITHDRAWN = {"H": "authorised", "J": "approved_activity", "Y": "not_counted"}

CLASS_OF = {
    **WITHDRAWN,
    **dict.fromkeys(PRESENT, "present"),
    **dict.fromkeys(APPROVED, "approved_activity"),
    **dict.fromkeys(AUTHORISED, "authorised"),
    **dict.fromkeys(UNAUTHORISED, "unauthorised"),
    **dict.fromkeys(NOT_COUNTED, "not_counted"),
}


def make_upn(la: int, estab: int, year: int, serial: int) -> str:
    """A valid permanent UPN: check letter + LA (3) + establishment (4) + year (2) + serial (3)."""
    body = f"{la:03d}{estab:04d}{year % 100:02d}{serial:03d}"
    return calc_check_digit(body) + body


@dataclass
class GenContact:
    order: int
    surname: str | None
    forename: str | None
    relationship: str = "PAM"
    responsibility: bool = True
    phone: str | None = "01234 567890"
    email: str | None = None
    title: str | None = "Ms"


@dataclass
class GenYear:
    start: dt.date
    sessions: list[str]  # one code per session, "#" for not in session; AM, PM, AM, PM...
    year: str = "2025"
    lea: str = "835"
    estab: str = "2001"
    school_name: str = "Generated Primary School"
    totals_override: dict[str, int] = field(default_factory=dict)

    def marks(self) -> dict[tuple[dt.date, str], str]:
        found = {}
        for number, code in enumerate(self.sessions):
            if code != "#":
                day = self.start + dt.timedelta(days=number // 2)
                found[(day, "AM" if number % 2 == 0 else "PM")] = code
        return found

    def totals(self) -> dict[str, int]:
        counts = {"present": 0, "approved_activity": 0, "authorised": 0, "unauthorised": 0, "not_counted": 0}
        for code in self.sessions:
            if code in CLASS_OF:  # "#" (not in session) and codes a test made up count nowhere
                counts[CLASS_OF[code]] += 1
        attended = counts["present"] + counts["approved_activity"]
        figures = {
            "possible": attended + counts["authorised"] + counts["unauthorised"],
            "attended": attended,
            "authorised": counts["authorised"],
            "unauthorised": counts["unauthorised"],
        }
        figures.update(self.totals_override)
        return figures


@dataclass
class GenPupil:
    upn: str | None
    surname: str | None
    forename: str | None
    dob: str | None
    sex: str | None = "F"
    nc_year: str = "5"
    first_language: str = "ENG"
    fsm_start: str | None = None
    sen_provision: str | None = None
    in_care: bool = False
    contacts: list[GenContact] = field(default_factory=list)
    years: list[GenYear] = field(default_factory=list)
    sex_element: str = "Sex"

    def marks(self) -> dict[tuple[dt.date, str], str]:
        found: dict[tuple[dt.date, str], str] = {}
        for year in self.years:
            found.update(year.marks())
        return found


def school_days(start: dt.date, end: dt.date, closed: Iterable[dt.date] = ()) -> list[bool]:
    """For each calendar day from start to end: is it a school day (weekday not in ``closed``)?"""
    shut = set(closed)
    days = (end - start).days + 1
    return [
        (start + dt.timedelta(days=i)).weekday() < 5 and (start + dt.timedelta(days=i)) not in shut
        for i in range(days)
    ]


def random_sessions(rng: random.Random, open_days: Sequence[bool], absence_rate: float) -> list[str]:
    """Codes for each session of each day; a pupil absent at ``absence_rate`` on average."""
    absent = (*AUTHORISED, *UNAUTHORISED)
    sessions: list[str] = []
    for is_open in open_days:
        if not is_open:
            sessions += ["#", "#"]
            continue
        for half in ("/", "\\"):
            roll = rng.random()
            if roll < absence_rate:
                sessions.append(rng.choice(absent))
            elif roll < absence_rate + 0.02:
                sessions.append(rng.choice((*APPROVED, *NOT_COUNTED, "L")))
            else:
                sessions.append(half)
    return sessions


def random_pupils(
    count: int,
    *,
    seed: int = 1,
    start: dt.date = dt.date(2025, 9, 1),
    end: dt.date = dt.date(2025, 12, 19),
    closed: Iterable[dt.date] = (),
    la: int = 835,
    estab: int = 2001,
) -> list[GenPupil]:
    rng = random.Random(seed)
    open_days = school_days(start, end, closed)
    forenames = ("Amelia", "Oliver", "Isla", "Noah", "Ava", "Leo", "Mia", "Arthur", "Ivy", "Muhammad")
    surnames = ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel")
    pupils = []
    for n in range(count):
        surname = rng.choice(surnames)
        pupils.append(
            GenPupil(
                upn=make_upn(la, estab, 20 + n % 6 + 6 * (n // 999), n % 999 + 1),
                surname=surname,
                forename=rng.choice(forenames),
                dob=(dt.date(2015, 9, 1) + dt.timedelta(days=rng.randrange(0, 365))).isoformat(),
                sex=rng.choice("MF"),
                first_language=rng.choice(("ENG", "ENG", "ENG", "POL", "URD")),
                fsm_start="2024-09-01" if rng.random() < 0.25 else None,
                sen_provision=rng.choice((None, None, None, "K", "E")),
                in_care=rng.random() < 0.02,
                contacts=[
                    GenContact(order=1, surname=surname, forename="Sam", email=f"parent{n}@example.test"),
                    GenContact(order=2, surname=surname, forename="Alex", relationship="PAF"),
                ],
                years=[
                    GenYear(
                        start=start,
                        sessions=random_sessions(rng, open_days, rng.choice((0.02, 0.05, 0.12, 0.55))),
                        lea=str(la),
                        estab=str(estab),
                    )
                ],
            )
        )
    return pupils


def _add(parent: Element, tag: str, text: str | None) -> Element | None:
    if text is None:
        return None
    node = SubElement(parent, tag)
    node.text = text
    return node


def build(
    pupils: Sequence[GenPupil],
    *,
    version: str = "25.0",
    la: str = "835",
    estab: str = "2001",
    school_name: str = "Generated Primary School",
    academic_year: str = "2025",
) -> Element:
    root = Element("CTfile")
    header = SubElement(root, "Header")
    _add(header, "DocumentName", "Common Transfer File")
    _add(header, "CTFversion", version)
    _add(header, "DateTime", "2026-01-05T09:30:00")
    _add(header, "DocumentQualifier", "partial")
    _add(header, "DataDescriptor", "Attendwise test file")
    _add(header, "SupplierID", "ATTENDWISE-TESTS")
    source = SubElement(header, "SourceSchool")
    _add(source, "LEA", la)
    _add(source, "Estab", estab)
    _add(source, "SchoolName", school_name)
    _add(source, "AcademicYear", academic_year)
    dest = SubElement(header, "DestSchool")
    _add(dest, "LEA", la)
    _add(dest, "Estab", estab)
    data = SubElement(root, "CTFpupilData")
    for pupil in pupils:
        _pupil(data, pupil)
    return root


def _pupil(data: Element, pupil: GenPupil) -> None:
    node = SubElement(data, "Pupil")
    _add(node, "UPN", pupil.upn)
    _add(node, "Surname", pupil.surname)
    _add(node, "Forename", pupil.forename)
    _add(node, "DOB", pupil.dob)
    _add(node, pupil.sex_element, pupil.sex)
    basic = SubElement(node, "BasicDetails")
    _add(basic, "NCyearActual", pupil.nc_year)
    _add(basic, "Ethnicity", "WBRI")
    languages = SubElement(basic, "Languages")
    kind = SubElement(languages, "Type")
    _add(kind, "LanguageType", "F")
    _add(kind, "Language", pupil.first_language)
    _add(basic, "EnrolStatus", "C")
    looked_after = SubElement(node, "LookedAfter")
    _add(looked_after, "InCare", "true" if pupil.in_care else "false")
    if pupil.fsm_start:
        fsm = SubElement(node, "FSMhistory")
        instance = SubElement(fsm, "FSMinstance")
        _add(instance, "FSMstartDate", pupil.fsm_start)
        _add(instance, "UKcountry", "ENG")
    if pupil.sen_provision:
        history = SubElement(node, "SENhistory")
        sen = SubElement(history, "SEN")
        _add(sen, "StartDate", "2024-09-01")
        _add(sen, "SENprovision", pupil.sen_provision)
    if pupil.contacts:
        contacts = SubElement(node, "Contacts")
        for contact in pupil.contacts:
            entry = SubElement(contacts, "Contact")
            _add(entry, "Order", str(contact.order))
            _add(entry, "Title", contact.title)
            _add(entry, "Surname", contact.surname)
            _add(entry, "Forename", contact.forename)
            _add(entry, "Relationship", contact.relationship)
            _add(entry, "Responsibility", "true" if contact.responsibility else "false")
            _add(entry, "AddressAsPupil", "true")
            if contact.phone:
                phones = SubElement(entry, "Phones")
                phone = SubElement(phones, "Phone")
                _add(phone, "TelephoneType", "H")
                _add(phone, "PhoneNo", contact.phone)
            _add(entry, "Email", contact.email)
    if pupil.years:
        attendance = SubElement(node, "Attendance")
        for year in pupil.years:
            entry = SubElement(attendance, "YearData")
            totals = year.totals()
            _add(entry, "Year", year.year)
            _add(entry, "LEA", year.lea)
            _add(entry, "Estab", year.estab)
            _add(entry, "SchoolName", year.school_name)
            _add(entry, "SessionsPossible", str(totals["possible"]))
            _add(entry, "SessionsAuthorised", str(totals["authorised"]))
            _add(entry, "SessionsAttended", str(totals["attended"]))
            _add(entry, "SessionsUnauthorised", str(totals["unauthorised"]))
            sessions = SubElement(entry, "AttendSessions")
            _add(sessions, "AttendanceStartDate", year.start.isoformat())
            _add(sessions, "AttendanceMarks", "".join(year.sessions))


def to_bytes(root: Element) -> bytes:
    indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(root, encoding="utf-8")


def write(path: Path, pupils: Sequence[GenPupil], **header: str) -> Path:
    root = build(pupils, **header)
    indent(root)
    ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)
    return path
