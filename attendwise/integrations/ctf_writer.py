"""Write DfE Common Transfer Files (CTF 25): the files the demo imports, as an MIS exports them.

The layout is the one :mod:`attendwise.integrations.ctf` reads (shared/domain/mis-formats.md
§1.2-1.3): ``CTfile/Header`` and ``CTfile/CTFpupilData/Pupil``, with
``Attendance/YearData/AttendSessions{AttendanceStartDate, AttendanceMarks}`` holding two
sessions per calendar day from the start date (AM then PM), ``#`` for a day not in session.
Each ``YearData`` states the ``Sessions*`` totals of its own marks, as an MIS does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element, SubElement, indent, tostring

from attendwise.integrations import ctf

VERSION = "25.0"


@dataclass(frozen=True)
class Address:
    house: str
    street: str
    town: str
    postcode: str


@dataclass(frozen=True)
class Contact:
    order: int
    title: str | None
    forename: str
    surname: str
    relationship: str
    responsibility: bool
    address_as_pupil: bool
    address: Address | None = None  # only when not at the pupil's address
    phones: tuple[tuple[str, str], ...] = ()  # (TelephoneType, number), e.g. ("M", "07700 900123")
    email: str | None = None


@dataclass(frozen=True)
class Attendance:
    """One ``YearData``: the school's marks for a pupil from ``start``, by (date, "AM"/"PM")."""

    year: str
    lea: str
    estab: str
    school_name: str
    start: dt.date
    end: dt.date
    marks: Mapping[tuple[dt.date, str], str]


@dataclass(frozen=True)
class Pupil:
    upn: str
    surname: str
    forename: str
    date_of_birth: dt.date
    sex: str  # "M" or "F"
    nc_year: str
    preferred_forename: str | None = None
    first_language: str = "ENG"
    fsm_start: dt.date | None = None
    sen_provision: str | None = None  # "K" (SEN support) or "E" (EHC plan)
    sen_start: dt.date | None = None
    in_care: bool = False
    address: Address | None = None
    contacts: tuple[Contact, ...] = ()
    attendance: tuple[Attendance, ...] = field(default_factory=tuple)


def marks_string(attendance: Attendance) -> str:
    """``AttendanceMarks``: two codes per calendar day from ``start`` to ``end``, ``#`` when unmarked."""
    codes = []
    day = attendance.start
    while day <= attendance.end:
        for session in ("AM", "PM"):
            codes.append(attendance.marks.get((day, session), ctf.NOT_IN_SESSION))
        day += dt.timedelta(days=1)
    return "".join(codes)


def _add(parent: Element, tag: str, text: str | None) -> None:
    if text is not None:
        SubElement(parent, tag).text = text


def _address(parent: Element, address: Address) -> None:
    node = SubElement(SubElement(parent, "Address"), "BS7666Address")
    _add(node, "PAON", address.house)
    _add(node, "Street", address.street)
    _add(node, "Town", address.town)
    _add(node, "PostCode", address.postcode)


def _pupil(data: Element, pupil: Pupil) -> None:
    node = SubElement(data, "Pupil")
    _add(node, "UPN", pupil.upn)
    _add(node, "Surname", pupil.surname)
    _add(node, "Forename", pupil.forename)
    _add(node, "DOB", pupil.date_of_birth.isoformat())
    _add(node, "Sex", pupil.sex)
    basic = SubElement(node, "BasicDetails")
    _add(basic, "PreferredForename", pupil.preferred_forename)
    _add(basic, "NCyearActual", pupil.nc_year)
    language = SubElement(SubElement(basic, "Languages"), "Type")
    _add(language, "LanguageType", "F")
    _add(language, "Language", pupil.first_language)
    _add(basic, "EnrolStatus", "C")
    _add(SubElement(node, "LookedAfter"), "InCare", "true" if pupil.in_care else "false")
    if pupil.fsm_start:
        instance = SubElement(SubElement(node, "FSMhistory"), "FSMinstance")
        _add(instance, "FSMstartDate", pupil.fsm_start.isoformat())
        _add(instance, "UKcountry", "ENG")
    if pupil.sen_provision:
        sen = SubElement(SubElement(node, "SENhistory"), "SEN")
        _add(sen, "StartDate", pupil.sen_start.isoformat() if pupil.sen_start else None)
        _add(sen, "SENprovision", pupil.sen_provision)
    if pupil.address:
        _address(node, pupil.address)
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
            _add(entry, "AddressAsPupil", "true" if contact.address_as_pupil else "false")
            if contact.address and not contact.address_as_pupil:
                _address(entry, contact.address)
            if contact.phones:
                phones = SubElement(entry, "Phones")
                for kind, number in contact.phones:
                    phone = SubElement(phones, "Phone")
                    _add(phone, "TelephoneType", kind)
                    _add(phone, "PhoneNo", number)
            _add(entry, "Email", contact.email)
    if pupil.attendance:
        container = SubElement(node, "Attendance")
        for year in pupil.attendance:
            marks = [ctf.Mark(day, session, code) for (day, session), code in sorted(year.marks.items())]
            totals = ctf.computed_totals(marks)
            entry = SubElement(container, "YearData")
            _add(entry, "Year", year.year)
            _add(entry, "LEA", year.lea)
            _add(entry, "Estab", year.estab)
            _add(entry, "SchoolName", year.school_name)
            _add(entry, "SessionsPossible", str(totals.possible))
            _add(entry, "SessionsAuthorised", str(totals.authorised))
            _add(entry, "SessionsAttended", str(totals.attended))
            _add(entry, "SessionsUnauthorised", str(totals.unauthorised))
            sessions = SubElement(entry, "AttendSessions")
            _add(sessions, "AttendanceStartDate", year.start.isoformat())
            _add(sessions, "AttendanceMarks", marks_string(year))


def write(
    pupils: Sequence[Pupil],
    *,
    lea: str,
    estab: str,
    school_name: str,
    academic_year: str,
    generated_at: dt.datetime,
    supplier: str,
    qualifier: str = "full",
) -> bytes:
    """The CTF 25 file (UTF-8 bytes) a school's MIS would export for ``pupils``.

    ``qualifier`` is the header's ``DocumentQualifier``: ``full``, or ``partial`` for a file
    of some of the school's pupils (those whose records changed, say).
    """
    root = Element("CTfile")
    header = SubElement(root, "Header")
    _add(header, "DocumentName", "Common Transfer File")
    _add(header, "CTFversion", VERSION)
    _add(header, "DateTime", generated_at.strftime("%Y-%m-%dT%H:%M:%S"))
    _add(header, "DocumentQualifier", qualifier)
    _add(header, "SupplierID", supplier)
    source = SubElement(header, "SourceSchool")
    _add(source, "LEA", lea)
    _add(source, "Estab", estab)
    _add(source, "SchoolName", school_name)
    _add(source, "AcademicYear", academic_year)
    destination = SubElement(header, "DestSchool")
    _add(destination, "LEA", lea)
    _add(destination, "Estab", estab)
    data = SubElement(root, "CTFpupilData")
    for pupil in pupils:
        _pupil(data, pupil)
    indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(root, encoding="utf-8")
