"""Read DfE Common Transfer Files (CTF 24 and 25) safely, keeping every problem with its place.

What this module promises:

* **Safe XML.** The file's size is checked against a limit *before* any parsing, and the XML is
  parsed with ``defusedxml`` with DTDs, entity declarations and external references forbidden,
  so "billion laughs" and external-entity files are refused, and nothing is fetched.
* **Tolerant names.** Element names are matched case-insensitively (``CTFversion`` and
  ``CTFVersion`` both occur), namespaces are ignored, and a pupil's ``Sex`` (CTF 25) or
  ``Gender`` (older files) is accepted.
* **Problems, not exceptions.** Each problem has a ``location`` (an element path such as
  ``CTfile/CTFpupilData/Pupil[3]/UPN``, using the file's own element names; or ``line L,
  column C`` when the XML itself is malformed) and a plain ``reason``. A pupil is taken whole or
  not at all: a missing required field, a UPN that fails its check letter, or attendance marks
  that cannot be read reject that pupil only; the other pupils in the file are still read. A
  contact with no name is dropped (and reported) while the pupil is kept.

How ``AttendSessions/AttendanceMarks`` is read (see ``docs/cli.md``):

* The string starts on ``AttendanceStartDate`` and runs over consecutive *calendar* days, two
  sessions per day, AM then PM (the layout of the CTF exporters, which write ``##`` for a day not
  in session, weekends and holidays included).
* Each session is one code. Nearly all codes are one character (``/``, ``\\``, ``L``, ``I``...).
  The codes introduced in August 2024 that have two characters (``C1``, ``C2``, ``J1``,
  ``Y1``-``Y7``) are a letter followed by a digit; since no attendance code is a bare digit, a
  letter followed by a digit is read as one two-character code and the reading is unambiguous.
* ``#`` (not in session) and ``-`` (no mark taken, as SIMS writes it) are sessions without a mark:
  nothing is stored for them and they count nowhere.
* Every other code must be a DfE code in force on its date (``attendwise.attendance.codes``);
  anything else is reported with the date, the session and its character position, and the
  pupil is rejected rather than imported with a gap in the register. An odd number of sessions
  (a day with only its AM half) is reported the same way.

The string is read as a whole, not session by session: its bytes go through lookup tables
(``numpy``) to one code byte per session, the values the marks store keeps
(``attendwise.attendance.marks_codec``), and each session's code is checked against its date
in the same way. A year of a 1,500-pupil school is half a million sessions; no Python object
is made for any of them unless something asks for :attr:`YearData.marks`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple
from xml.etree.ElementTree import Element, ParseError
from xml.parsers import expat

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from attendwise.attendance import codes as dfe_codes
from attendwise.attendance import marks_codec
from attendwise.attendance.services import YEAR_GROUPS, check_upn

SUPPORTED_VERSIONS = ("24", "25")
NOT_IN_SESSION = "#"
NO_MARK = "-"
DEFAULT_MAX_BYTES = 25 * 1024 * 1024

# First-language codes that do not indicate English as an additional language: English,
# believed to be English, information not obtained, refused (DfE language code set).
NOT_EAL = frozenset({"ENG", "ENB", "NOT", "REF"})


class CtfRefused(ValueError):
    """The file was refused before parsing (too large, unreadable)."""

    def __init__(self, location: str, reason: str) -> None:
        super().__init__(f"{location}: {reason}")
        self.location = location
        self.reason = reason


@dataclass(frozen=True)
class Problem:
    location: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"location": self.location, "reason": self.reason}


@dataclass(frozen=True)
class SchoolRef:
    lea: str | None
    estab: str | None
    name: str | None = None
    academic_year: str | None = None

    @property
    def laestab(self) -> str | None:
        if self.lea and self.estab:
            return f"{self.lea}{self.estab}"
        return None


@dataclass(frozen=True)
class Header:
    document_name: str | None
    version: str
    date_time: dt.datetime | None
    qualifier: str | None
    source: SchoolRef
    destination: SchoolRef | None


@dataclass(frozen=True)
class Phone:
    kind: str | None
    number: str


@dataclass(frozen=True)
class Address:
    lines: tuple[str, ...]
    postcode: str | None

    def text(self) -> str:
        return ", ".join([*self.lines, *([self.postcode] if self.postcode else [])])


@dataclass(frozen=True)
class Contact:
    order: int | None
    title: str | None
    surname: str | None
    forename: str | None
    relationship: str | None
    parental_responsibility: bool
    address: Address | None
    address_as_pupil: bool
    phones: tuple[Phone, ...]
    email: str | None
    location: str


@dataclass(frozen=True)
class FsmSpell:
    start: dt.date
    end: dt.date | None


@dataclass(frozen=True)
class SenSpell:
    start: dt.date | None
    provision: str


class Mark(NamedTuple):
    """One session's mark (a tuple: a year of a school is half a million of them)."""

    date: dt.date
    session: str  # "AM" or "PM"
    code: str


@dataclass(frozen=True)
class Totals:
    possible: int | None
    attended: int | None
    authorised: int | None
    unauthorised: int | None

    FIELDS = ("possible", "attended", "authorised", "unauthorised")

    def as_dict(self) -> dict[str, int | None]:
        return {name: getattr(self, name) for name in self.FIELDS}


@dataclass(frozen=True)
class YearData:
    year: str | None
    lea: str | None
    estab: str | None
    school_name: str | None
    totals: Totals
    start_date: dt.date | None
    codes: bytes  # one byte per session from start_date, AM then PM: the code's value, 0 = no mark
    has_sessions: bool
    location: str

    @property
    def marks(self) -> tuple[Mark, ...]:
        """The marks one by one (for reports and tests; the importer stores :attr:`codes` whole)."""
        if self.start_date is None:
            return ()
        values = np.frombuffer(self.codes, dtype=np.uint8)
        return tuple(
            Mark(
                self.start_date + dt.timedelta(days=n // 2),
                marks_codec.SESSIONS[n % 2],
                dfe_codes.CODE_ORDER[int(values[n]) - 1],
            )
            for n in np.flatnonzero(values).tolist()
        )


@dataclass(frozen=True)
class Pupil:
    upn: str
    upn_temporary: bool
    surname: str
    forename: str
    date_of_birth: dt.date
    sex: str
    preferred_surname: str | None
    preferred_forename: str | None
    middle_names: str | None
    former_upn: str | None
    nc_year: str
    ethnicity: str | None
    first_language: str | None
    eal: bool | None
    looked_after: bool | None
    care_authority: str | None
    fsm: tuple[FsmSpell, ...]
    sen: tuple[SenSpell, ...]
    address: Address | None
    contacts: tuple[Contact, ...]
    years: tuple[YearData, ...]
    location: str

    @property
    def marks(self) -> list[Mark]:
        return [m for year in self.years for m in year.marks]


@dataclass(frozen=True)
class PupilElement:
    """A Pupil element as the file holds it, before it is read: its UPN as written, and a
    SHA-256 of the element's bytes (a byte-for-byte identical element has the same digest)."""

    upn: str | None
    digest: str


class CtfFile:
    """A parsed file. The header is read at once; the pupils, and their problems, when first
    asked for, so an importer can see from :attr:`elements` that it has read them all before."""

    def __init__(
        self,
        header: Header | None = None,
        problems: list[Problem] | None = None,
        elements: list[PupilElement] | None = None,
        read: Callable[[], tuple[list[Pupil], list[Problem]]] | None = None,
    ) -> None:
        self.header = header
        self.elements = elements or []
        self.file_problems = list(problems or [])
        """The problems found without reading any pupil (the XML, the header)."""
        self._pupils: list[Pupil] = []
        self._pupil_problems: list[Problem] = []
        self._read = read

    def _read_pupils(self) -> None:
        if self._read is not None:
            read, self._read = self._read, None
            self._pupils, self._pupil_problems = read()

    @property
    def pupils(self) -> list[Pupil]:
        self._read_pupils()
        return self._pupils

    @property
    def problems(self) -> list[Problem]:
        self._read_pupils()
        return [*self.file_problems, *self._pupil_problems]


# ---- reading the bytes ---------------------------------------------------------------------


def read_limited(source: str | os.PathLike[str] | IO[bytes], max_bytes: int) -> bytes:
    """Return the file's bytes, refusing it when larger than ``max_bytes`` (never reads more)."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise CtfRefused(str(path), f"cannot read the file: {exc.strerror}") from exc
        if size > max_bytes:
            raise CtfRefused(str(path), _too_large(size, max_bytes))
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    else:
        data = source.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise CtfRefused("file", _too_large(None, max_bytes))
    return data


def _too_large(size: int | None, max_bytes: int) -> str:
    stated = f"{size:,} bytes" if size is not None else "larger than the limit"
    return f"the file is {stated}; files over {max_bytes:,} bytes are refused before they are read"


# ---- element helpers -------------------------------------------------------------------------


def _date(raw: str) -> dt.date:
    """A CTF date: ``yyyy-MM-dd``, also accepted with a midnight time (``yyyy-MM-ddT00:00:00``)."""
    day, _, time = raw.partition("T")
    if time.strip("0:") or len(day) != 10:
        raise ValueError(raw)
    return dt.date.fromisoformat(day)


def _name(el: Element) -> str:
    tag = el.tag if isinstance(el.tag, str) else ""
    return tag.rsplit("}", 1)[-1]


def _path_name(el: Element | None) -> str:
    return _name(el) if el is not None else ""


class _Reader:
    """Walks one file, collecting problems with their element paths."""

    def __init__(self, validate_upn: Callable[[str], tuple[str, bool]]):
        self.validate_upn = validate_upn
        self.problems: list[Problem] = []
        self._index: dict[Element, dict[str, list[Element]]] = {}
        self._folded: dict[str, str] = {}

    # -- finding elements: each element's children are indexed by folded name once, when first
    # asked for, so reading a field is a dictionary lookup whatever the file's letter case --

    def _index_of(self, el: Element) -> dict[str, list[Element]]:
        """Index ``el``'s children by folded name (the callers look in :attr:`_index` first)."""
        index: dict[str, list[Element]] = {}
        folded = self._folded
        for child in el:
            tag = child.tag
            key = folded.get(tag) if isinstance(tag, str) else ""
            if key is None:
                key = folded[tag] = tag.rsplit("}", 1)[-1].lower()
            index.setdefault(key, []).append(child)
        self._index[el] = index
        return index

    def _children(self, el: Element | None, name: str) -> list[Element]:
        """``el``'s children named ``name`` (any case, any namespace)."""
        if el is None:
            return []
        index = self._index.get(el)
        return (self._index_of(el) if index is None else index).get(name.lower(), [])

    def _child(self, el: Element | None, *names: str) -> Element | None:
        if el is not None:
            index = self._index.get(el)
            if index is None:
                index = self._index_of(el)
            for name in names:
                found = index.get(name.lower())
                if found:
                    return found[0]
        return None

    def _text(self, el: Element | None, *names: str) -> str | None:
        """The stripped text of ``el`` or of its first child with one of ``names``; ``None`` if empty."""
        node = self._child(el, *names) if names else el
        text = node.text if node is not None else None
        return (text.strip() or None) if text is not None else None

    def _where(self, el: Element | None, name: str, path: str) -> str:
        """The path of ``el``'s child ``name`` as the file spells it (as the caller spells it if absent)."""
        node = self._child(el, name)
        return f"{path}/{_name(node) if node is not None else name}"

    def report(self, location: str, reason: str) -> None:
        self.problems.append(Problem(location, reason))

    # -- scalar conversions (return None and report on bad input) --

    def date(self, el: Element | None, name: str, path: str, *, required: bool = False) -> dt.date | None:
        raw = self._text(el, name)
        if raw is None:
            if required:
                self.report(self._where(el, name, path), f"{name} is missing")
            return None
        try:
            return _date(raw)
        except ValueError:
            self.report(self._where(el, name, path), f"{raw!r} is not a date (expected YYYY-MM-DD)")
            return None

    def integer(self, el: Element | None, name: str, path: str) -> int | None:
        raw = self._text(el, name)
        if raw is None:
            return None
        if not raw.isdigit():
            self.report(self._where(el, name, path), f"{raw!r} is not a whole number")
            return None
        return int(raw)

    def boolean(self, el: Element | None, name: str, path: str) -> bool | None:
        raw = self._text(el, name)
        if raw is None:
            return None
        value = raw.lower()
        if value in ("true", "1", "yes", "y"):
            return True
        if value in ("false", "0", "no", "n"):
            return False
        self.report(self._where(el, name, path), f"{raw!r} is not true or false")
        return None

    # -- the file --

    def header(self, root: Element, root_path: str) -> Header | None:
        head = self._child(root, "Header")
        path = f"{root_path}/{_name(head) if head is not None else 'Header'}"
        if head is None:
            self.report(path, "the file has no Header")
            return None
        version = self._text(head, "CTFversion")
        version_node = self._child(head, "CTFversion")
        version_path = f"{path}/{_name(version_node) if version_node is not None else 'CTFversion'}"
        if version is None:
            self.report(version_path, "CTFversion is missing")
            return None
        major = version.split(".", 1)[0]
        if major not in SUPPORTED_VERSIONS:
            self.report(
                version_path,
                f"CTF version {version} is not supported: Attendwise reads CTF "
                f"{' and '.join(SUPPORTED_VERSIONS)}",
            )
            return None
        stamp = self._text(head, "DateTime")
        when = None
        if stamp is not None:
            try:
                when = dt.datetime.fromisoformat(stamp)
            except ValueError:
                self.report(f"{path}/DateTime", f"{stamp!r} is not a date and time (yyyy-MM-ddTHH:mm:ss)")
        source = self._child(head, "SourceSchool")
        dest = self._child(head, "DestSchool")
        return Header(
            document_name=self._text(head, "DocumentName"),
            version=version,
            date_time=when,
            qualifier=self._text(head, "DocumentQualifier"),
            source=SchoolRef(
                lea=self._text(source, "LEA"),
                estab=self._text(source, "Estab"),
                name=self._text(source, "SchoolName"),
                academic_year=self._text(source, "AcademicYear"),
            ),
            destination=(
                SchoolRef(lea=self._text(dest, "LEA"), estab=self._text(dest, "Estab"))
                if dest is not None
                else None
            ),
        )

    def pupils(self, root: Element, root_path: str) -> Iterator[Pupil]:
        data = self._child(root, "CTFpupilData")
        if data is None:
            return
        data_path = f"{root_path}/{_name(data)}"
        for index, el in enumerate(self._children(data, "Pupil"), start=1):
            pupil = self.pupil(el, f"{data_path}/{_name(el)}[{index}]")
            if pupil is not None:
                yield pupil

    def pupil(self, el: Element, path: str) -> Pupil | None:
        before = len(self.problems)
        upn = self.upn(el, path)
        names = {}
        for name in ("Surname", "Forename"):
            value = self._text(el, name)
            if value is None:
                self.report(f"{path}/{name}", f"the pupil's {name} is missing")
            names[name] = value
        dob = self.date(el, "DOB", path, required=True)
        sex = self.sex(el, path)
        basic = self._child(el, "BasicDetails")
        nc_year = self.nc_year(basic, path)
        looked_after = self._child(el, "LookedAfter")
        years = self.attendance(el, path)
        fatal = len(self.problems) > before
        contacts = self.contacts(el, path)
        fsm = self.fsm(el, path)
        sen = self.sen(el, path)
        first_language = self.first_language(basic)
        if fatal or upn is None or dob is None or sex is None or nc_year is None:
            self.report(path, "the pupil was not imported because of the problems above")
            return None
        return Pupil(
            upn=upn[0],
            upn_temporary=upn[1],
            surname=names["Surname"] or "",
            forename=names["Forename"] or "",
            date_of_birth=dob,
            sex=sex,
            preferred_surname=self._text(basic, "PreferredSurname"),
            preferred_forename=self._text(basic, "PreferredForename"),
            middle_names=self._text(basic, "MiddleNames"),
            former_upn=self._text(basic, "FormerUPN"),
            nc_year=nc_year,
            ethnicity=self._text(basic, "Ethnicity"),
            first_language=first_language,
            eal=None if first_language is None else first_language not in NOT_EAL,
            looked_after=self.boolean(looked_after, "InCare", f"{path}/LookedAfter"),
            care_authority=self._text(looked_after, "CareAuthority"),
            fsm=fsm,
            sen=sen,
            address=self.address(el),
            contacts=contacts,
            years=years,
            location=path,
        )

    def upn(self, el: Element, path: str) -> tuple[str, bool] | None:
        node = self._child(el, "UPN")
        where = f"{path}/{_name(node) if node is not None else 'UPN'}"
        raw = self._text(node)
        if raw is None:
            self.report(where, "the pupil's UPN is missing")
            return None
        try:
            return self.validate_upn(raw)
        except ValueError as exc:
            self.report(where, str(exc))
        return None

    def nc_year(self, basic: Element | None, path: str) -> str | None:
        node = self._child(basic, "NCyearActual")
        where = f"{path}/{_path_name(basic) or 'BasicDetails'}/{_path_name(node) or 'NCyearActual'}"
        raw = self._text(node)
        if raw is None:
            self.report(where, "the pupil's NCyearActual (year group) is missing")
            return None
        value = raw.upper().lstrip("0") or raw
        if value not in YEAR_GROUPS:
            self.report(where, f"{raw!r} is not a year group Attendwise records ({', '.join(YEAR_GROUPS)})")
            return None
        return value

    def sex(self, el: Element, path: str) -> str | None:
        node = self._child(el, "Sex", "Gender")
        where = f"{path}/{_name(node) if node is not None else 'Sex'}"
        raw = self._text(node)
        if raw is None:
            self.report(where, "the pupil's Sex (or Gender, before CTF 25) is missing")
            return None
        if raw.upper() not in ("M", "F"):
            self.report(where, f"{raw!r} is not a sex code the CTF allows (M or F)")
            return None
        return raw.upper()

    def first_language(self, basic: Element | None) -> str | None:
        languages = self._child(basic, "Languages")
        for entry in self._children(languages, "Type"):
            if (self._text(entry, "LanguageType") or "").upper() == "F":
                code = self._text(entry, "Language")
                return code.upper() if code else None
        return None

    def fsm(self, el: Element, path: str) -> tuple[FsmSpell, ...]:
        history = self._child(el, "FSMhistory")
        spells = []
        for index, spell in enumerate(self._children(history, "FSMinstance"), start=1):
            spell_path = f"{path}/{_path_name(history)}/{_name(spell)}[{index}]"
            start = self.date(spell, "FSMstartDate", spell_path, required=True)
            end = self.date(spell, "FSMendDate", spell_path)
            if start is not None:
                spells.append(FsmSpell(start=start, end=end))
        return tuple(spells)

    def sen(self, el: Element, path: str) -> tuple[SenSpell, ...]:
        history = self._child(el, "SENhistory")
        spells = []
        for index, spell in enumerate(self._children(history, "SEN"), start=1):
            spell_path = f"{path}/{_path_name(history)}/{_name(spell)}[{index}]"
            provision = self._text(spell, "SENprovision")
            if provision is None:
                self.report(f"{spell_path}/SENprovision", "SENprovision is missing")
                continue
            spells.append(
                SenSpell(start=self.date(spell, "StartDate", spell_path), provision=provision.upper())
            )
        return tuple(spells)

    def address(self, el: Element | None) -> Address | None:
        node = self._child(el, "Address")
        if node is None:
            return None
        postcode = None
        lines: list[str] = []
        for item in node.iter():
            if item is node or len(item):
                continue
            value = (item.text or "").strip()
            if not value:
                continue
            if _name(item).lower() in ("postcode", "zip"):
                postcode = value
            elif _name(item).lower() not in (
                "uniquepropertyreferencenumber",
                "country",
                "easting",
                "northing",
            ):
                lines.append(value)
        if not lines and postcode is None:
            return None
        return Address(lines=tuple(lines), postcode=postcode)

    def phones(self, el: Element | None) -> tuple[Phone, ...]:
        found = []
        for phone in self._children(self._child(el, "Phones"), "Phone"):
            number = self._text(phone, "PhoneNo")
            if number:
                found.append(Phone(kind=self._text(phone, "TelephoneType"), number=number))
        return tuple(found)

    def contacts(self, el: Element, path: str) -> tuple[Contact, ...]:
        container = self._child(el, "Contacts")
        found = []
        for index, node in enumerate(self._children(container, "Contact"), start=1):
            where = f"{path}/{_path_name(container)}/{_name(node)}[{index}]"
            surname = self._text(node, "Surname")
            forename = self._text(node, "Forename")
            if surname is None and forename is None:
                self.report(
                    where, "the contact has no name (neither Surname nor Forename); it was not imported"
                )
                continue
            if surname is None or forename is None:
                missing = "Surname" if surname is None else "Forename"
                self.report(
                    f"{where}/{missing}",
                    f"the contact has no {missing}; Attendwise needs both names, so it was not imported",
                )
                continue
            order = self.integer(node, "Order", where)
            found.append(
                Contact(
                    order=order,
                    title=self._text(node, "Title"),
                    surname=surname,
                    forename=forename,
                    relationship=self._text(node, "Relationship"),
                    parental_responsibility=bool(self.boolean(node, "Responsibility", where)),
                    address=self.address(node),
                    address_as_pupil=bool(self.boolean(node, "AddressAsPupil", where)),
                    phones=self.phones(node),
                    email=self._text(node, "Email"),
                    location=where,
                )
            )
        return tuple(found)

    def attendance(self, el: Element, path: str) -> tuple[YearData, ...]:
        container = self._child(el, "Attendance")
        years = tuple(
            self.year_data(node, f"{path}/{_path_name(container)}/{_name(node)}[{index}]")
            for index, node in enumerate(self._children(container, "YearData"), start=1)
        )
        if sum(1 for year in years if year.codes) > 1:
            self.clashes(years)
        return years

    def clashes(self, years: tuple[YearData, ...]) -> None:
        """Report a session that two YearData elements give different codes."""
        seen_keys = np.empty(0, dtype=np.int64)  # 2 * day ordinal (+1 for PM), sorted
        seen_values = np.empty(0, dtype=np.uint8)
        for year in years:
            if year.start_date is None or not year.codes:
                continue
            values = np.frombuffer(year.codes, dtype=np.uint8)
            numbers = np.flatnonzero(values)
            keys, marked = 2 * year.start_date.toordinal() + numbers, values[numbers]
            if len(seen_keys):
                at = np.minimum(np.searchsorted(seen_keys, keys), len(seen_keys) - 1)
                for i in np.flatnonzero((seen_keys[at] == keys) & (seen_values[at] != marked)).tolist():
                    key = int(keys[i])
                    self.report(
                        f"{year.location}/AttendSessions/AttendanceMarks",
                        f"{dt.date.fromordinal(key // 2).isoformat()} {marks_codec.SESSIONS[key % 2]} "
                        f"is marked {_code_text(int(marked[i]))!r} here but "
                        f"{_code_text(int(seen_values[at[i]]))!r} in an earlier YearData",
                    )
            every_key = np.concatenate([seen_keys, keys])
            every_value = np.concatenate([seen_values, marked])
            seen_keys, first = np.unique(every_key, return_index=True)  # the earliest YearData wins
            seen_values = every_value[first]

    def year_data(self, node: Element, where: str) -> YearData:
        totals = Totals(
            possible=self.integer(node, "SessionsPossible", where),
            attended=self.integer(node, "SessionsAttended", where),
            authorised=self.integer(node, "SessionsAuthorised", where),
            unauthorised=self.integer(node, "SessionsUnauthorised", where),
        )
        sessions = self._child(node, "AttendSessions")
        start = None
        codes = b""
        if sessions is not None:
            sessions_path = f"{where}/{_name(sessions)}"
            start = self.date(sessions, "AttendanceStartDate", sessions_path, required=True)
            raw = self._text(sessions, "AttendanceMarks") or ""
            marks_node = self._child(sessions, "AttendanceMarks")
            marks_path = (
                f"{sessions_path}/{_name(marks_node) if marks_node is not None else 'AttendanceMarks'}"
            )
            if start is not None:
                codes = self.marks(raw, start, marks_path)
        return YearData(
            year=self._text(node, "Year"),
            lea=self._text(node, "LEA"),
            estab=self._text(node, "Estab"),
            school_name=self._text(node, "SchoolName"),
            totals=totals,
            start_date=start,
            codes=codes,
            has_sessions=sessions is not None,
            location=where,
        )

    def marks(self, raw: str, start: dt.date, path: str) -> bytes:
        """The sessions of an AttendanceMarks string as code bytes; each bad session reported."""
        positions, values = _sessions(raw)
        if len(values) % 2:
            self.report(
                path,
                f"{len(values)} sessions cannot be whole days (two sessions a day, AM then PM): "
                f"the last day has only its AM session",
            )
        ordinals = start.toordinal() + np.arange(len(values)) // 2
        bad = (values != 0) & ~marks_codec.valid_on(values, ordinals)
        for number in np.flatnonzero(bad).tolist():
            day = start + dt.timedelta(days=number // 2)
            position = int(positions[number])
            _start, code = next(tokenise_marks(raw[position : position + 2]))
            self.report(
                path,
                f"{day.isoformat()} {marks_codec.SESSIONS[number % 2]} (character {position + 1}): "
                f"{dfe_code_problem(code, day)}",
            )
        values[bad] = 0
        return values.tobytes()


_SESSION_CODE = re.compile(r"[A-Za-z][0-9]|\S")
_UNKNOWN = 255  # the value of a code that is no DfE code (no code has it: there are 36)


def tokenise_marks(raw: str) -> Iterator[tuple[int, str]]:
    """Split an AttendanceMarks string into (character position, code), one per session.

    A letter followed by a digit is one code (C1, J1, Y3...); every other character is a code
    on its own. Whitespace (line breaks in long strings) is ignored.
    """
    for match in _SESSION_CODE.finditer(raw):
        yield match.start(), match.group().upper()


def _code_value(code: str) -> int:
    """A code's byte value; 0 for "not in session" and "no mark", :data:`_UNKNOWN` for no DfE code."""
    if code in (NOT_IN_SESSION, NO_MARK):
        return 0
    return dfe_codes.CODE_INDEX.get(code, _UNKNOWN)


def _code_text(value: int) -> str:
    return dfe_codes.CODE_ORDER[value - 1]


def _ascii_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lookup tables by ASCII byte, for reading a marks string the way :func:`tokenise_marks` does:
    is it whitespace, a letter, a digit; its value as a one-character code; and, indexed by a
    letter and a digit, the value of the two-character code they make."""
    chars = [chr(b) for b in range(128)]
    space = np.array([c.isspace() for c in chars], dtype=bool)
    letter = np.array([c.isascii() and c.isalpha() for c in chars], dtype=bool)
    digit = np.array([c in "0123456789" for c in chars], dtype=bool)
    single = np.array([_code_value(c.upper()) for c in chars], dtype=np.uint8)
    pair = np.array([[_code_value(f"{c}{d}".upper()) for d in range(10)] for c in chars], dtype=np.uint8)
    return space, letter, digit, single, pair


_SPACE, _LETTER, _DIGIT, _SINGLE, _PAIR = _ascii_tables()


def _sessions(raw: str) -> tuple[np.ndarray, np.ndarray]:
    """(character position, code value) of each session in an AttendanceMarks string, as arrays.

    The same reading as :func:`tokenise_marks`, done on the whole string at once: a letter
    followed by a digit starts a two-character code and the digit is not a session of its own.
    """
    if not raw.isascii():
        tokens = list(tokenise_marks(raw))
        return (
            np.array([position for position, _code in tokens], dtype=np.int64),
            np.array([_code_value(code) for _position, code in tokens], dtype=np.uint8),
        )
    chars = np.frombuffer(raw.encode("ascii"), dtype=np.uint8)
    pairs = np.zeros(len(chars), dtype=bool)
    pairs[:-1] = _LETTER[chars[:-1]] & _DIGIT[chars[1:]]
    starts = ~_SPACE[chars]
    starts[1:] &= ~pairs[:-1]
    positions = np.flatnonzero(starts)
    values = _SINGLE[chars[positions]]
    two = pairs[positions]
    if two.any():
        at = positions[two]
        values[two] = _PAIR[chars[at], chars[at + 1] - ord("0")]
    return positions, values


def dfe_code_problem(code: str, day: dt.date) -> str | None:
    """Why ``code`` cannot be a mark on ``day`` (unknown, or not in force then), or ``None``."""
    known = dfe_codes.CODES.get(code)
    if known is None:
        return f"{code!r} is not a DfE attendance code"
    return known.validity_problem(day)


def parse(data: bytes, *, validate_upn: Callable[[str], tuple[str, bool]] = check_upn) -> CtfFile:
    """Parse CTF bytes (already size-checked) into pupils and problems (pupils read on demand)."""
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        return CtfFile(
            problems=[
                Problem(
                    "CTfile", f"the file was refused: it declares a DTD or entities ({type(exc).__name__})"
                )
            ]
        )
    except ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        return CtfFile(
            problems=[
                Problem(
                    f"line {line}, column {column + 1}",
                    f"the file is not well-formed XML: {_xml_reason(exc)}",
                )
            ]
        )
    root_name = _name(root)
    if root_name.lower() != "ctfile":
        return CtfFile(problems=[Problem(root_name, f"the root element is {root_name}, not CTfile")])
    reader = _Reader(validate_upn=validate_upn)
    header = reader.header(root, root_name)
    file_problems, reader.problems = reader.problems, []
    if header is None:
        return CtfFile(problems=file_problems)

    def read() -> tuple[list[Pupil], list[Problem]]:
        return list(reader.pupils(root, root_name)), reader.problems

    pupil_elements = reader._children(reader._child(root, "CTFpupilData"), "Pupil")
    elements = [
        PupilElement(reader._text(el, "UPN"), hashlib.sha256(data[begin:end]).hexdigest())
        for el, (begin, end) in zip(
            pupil_elements,
            _pupil_byte_ranges(data, len(pupil_elements)),
            strict=True,
        )
    ]
    return CtfFile(header, file_problems, elements, read)


def _pupil_byte_ranges(data: bytes, count: int) -> list[tuple[int, int]]:
    """Where each of the ``count`` Pupil elements of the first CTFpupilData lies in ``data``: from
    its start tag to its end tag (not included). Called only on bytes ``defusedxml`` has parsed.

    The same elements, in the same order, as the reader's ``CTFpupilData/Pupil``: found from their
    tags when that is certain, otherwise by parsing the file again.
    """
    found = _pupil_tags(data, count)
    return found if found is not None else _parsed_pupil_ranges(data)


_PUPIL_TAG = re.compile(rb"<(/?)[Pp][Uu][Pp][Ii][Ll](?=[\s/>])")
"""A Pupil start or end tag, in any case, without a namespace prefix."""
_PREFIXED_PUPIL = re.compile(rb":[Pp][Uu][Pp][Ii][Ll](?=[\s/>])")
"""What a Pupil tag with a namespace prefix contains (a file with one is parsed instead)."""


def _pupil_tags(data: bytes, count: int) -> list[tuple[int, int]] | None:
    """The Pupil elements' ranges read from their tags alone, or ``None`` when that is not certain.

    In well-formed XML every ``<`` outside comments, CDATA sections and processing instructions
    begins a tag (a ``<`` cannot stand in text or in an attribute value), so with none of those,
    and no prefixed Pupil tag, the matches of :data:`_PUPIL_TAG` are every Pupil tag in the file.
    When they pair up one after another and there are exactly ``count`` pairs, the elements they
    enclose are the ``count`` children of CTFpupilData, in document order.
    """
    if b"<!" in data or data.count(b"<?") > 1 or _PREFIXED_PUPIL.search(data):
        return None
    ranges: list[tuple[int, int]] = []
    begin = -1
    for tag in _PUPIL_TAG.finditer(data):
        closing = bool(tag.group(1))
        if closing == (begin < 0):
            return None
        if closing:
            ranges.append((begin, tag.start()))
            begin = -1
        else:
            begin = tag.start()
    return ranges if begin < 0 and len(ranges) == count else None


def _parsed_pupil_ranges(data: bytes) -> list[tuple[int, int]]:
    """:func:`_pupil_byte_ranges` by parsing: the file has no DTD, so expat has nothing to expand or fetch."""
    scan = expat.ParserCreate(namespace_separator="}")
    ranges: list[tuple[int, int]] = []
    depth, container, begin = 0, "before", -1  # container: before, inside or after CTFpupilData

    def start(name: str, _attributes: dict[str, str]) -> None:
        nonlocal depth, container, begin
        depth += 1
        local = name.rsplit("}", 1)[-1].lower()
        if depth == 2 and container == "before" and local == "ctfpupildata":
            container = "inside"
        elif depth == 3 and container == "inside" and local == "pupil":
            begin = scan.CurrentByteIndex

    def end(_name: str) -> None:
        nonlocal depth, container, begin
        if depth == 3 and begin >= 0:
            ranges.append((begin, scan.CurrentByteIndex))
            begin = -1
        elif depth == 2 and container == "inside":
            container = "after"
        depth -= 1

    scan.StartElementHandler = start
    scan.EndElementHandler = end
    scan.Parse(data, True)
    return ranges


def _xml_reason(exc: ParseError) -> str:
    message = str(exc)
    return message.split(":", 1)[0] if ": line" in message else message


def dfe_class(code: str) -> str:
    return dfe_codes.DEFAULT_TABLE.class_of(code).value


def computed_totals(marks: list[Mark], classify: Callable[[str], str] = dfe_class) -> Totals:
    """The four CTF totals, computed from marks with ``classify(code)`` giving the DfE class
    (``present``, ``approved_activity``, ``authorised``, ``unauthorised`` or ``not_counted``)."""
    counts = {"present": 0, "approved_activity": 0, "authorised": 0, "unauthorised": 0, "not_counted": 0}
    for mark in marks:
        counts[classify(mark.code)] += 1
    attended = counts["present"] + counts["approved_activity"]
    return Totals(
        possible=attended + counts["authorised"] + counts["unauthorised"],
        attended=attended,
        authorised=counts["authorised"],
        unauthorised=counts["unauthorised"],
    )


def disagreements(pupil: Pupil, classify: Callable[[str], str] = dfe_class) -> list[dict[str, Any]]:
    """Each YearData total the file states that its own marks do not bear out."""
    found: list[dict[str, Any]] = []
    for year in pupil.years:
        if not year.has_sessions:
            continue
        computed = computed_totals(list(year.marks), classify)
        for name in Totals.FIELDS:
            stated = getattr(year.totals, name)
            if stated is not None and stated != getattr(computed, name):
                found.append(
                    {
                        "total": name,
                        "year": year.year,
                        "file": stated,
                        "marks": getattr(computed, name),
                        "location": year.location,
                    }
                )
    return found


def file_totals(pupil: Pupil) -> dict[str, int | None]:
    """The totals as the file states them, summed over the pupil's YearData elements."""
    summed: dict[str, int | None] = {}
    for name in Totals.FIELDS:
        values = [getattr(year.totals, name) for year in pupil.years]
        present = [v for v in values if v is not None]
        summed[name] = sum(present) if present else None
    return summed
