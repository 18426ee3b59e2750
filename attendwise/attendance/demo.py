"""Demo pupils, families and an autumn term of marks for the five demo schools, imported as a
real school's would be: from the files its MIS exports.

The data are deterministic (seeded random): most pupils attend 95-100%, about one in six is
persistently absent, a few are severely absent; there are lates, some term-time holidays (G),
and N marks that the MIS later corrects to I or O, so pupils have mark history. Families have
children in more than one school, so the household links show siblings across the LA.

The pilot school (Spetisbury) has used Attendwise since last summer term: its CTF carries last
summer's marks as a second ``YearData``, most pupils' absence then much as it is now, so some of
its pupils joined the ladder last summer and are further up it this autumn.

Each school's data goes through the import paths a school uses (``integrations.services``),
from files written under ``<data dir>/demo-imports/`` that ``attendwise import`` also reads:

* the primaries export a Common Transfer File (CTF 25) with pupils, contacts and marks, and
  later a partial CTF of the pupils whose unexplained absences the MIS has since corrected;
* the secondary exports a CTF for pupils and families, its student list as CSV (for forms and
  the child-in-need flag, which a CTF does not carry), and its marks as CSV with minutes late,
  both read through the school's saved column mappings, then a CSV of the corrections.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app
from sqlalchemy.orm import Session
from stdnum.gb import upn as stdnum_upn

from attendwise.attendance import services
from attendwise.attendance.calendar import HALF_TERM_NAMES
from attendwise.integrations import csv_import, ctf, ctf_writer
from attendwise.integrations import services as imports
from attendwise.platform import tenancy
from attendwise.platform.demo import DemoOrgs
from attendwise.tenants.models import Organisation

SEED = 20260901
MARKS_FROM = dt.date(2026, 9, 1)
MARKS_TO = dt.date(2026, 11, 20)
CORRECTED_BY = dt.date(2026, 11, 16)  # N marks before this were later explained; later ones still N
ACADEMIC_YEAR = 2026
PUPILS_PER_SCHOOL = {"Secondary": 200, "Primary": 140}
EXPORTED_AT = dt.datetime(2026, 11, 20, 16, 30)  # noqa: DTZ001 - a CTF states local time, no zone
CORRECTED_AT = dt.datetime(2026, 11, 23, 8, 15)  # noqa: DTZ001
SEN_PROVISION = {"sen_support": "K", "ehcp": "E"}


def _half_terms(starts: str, ends: str) -> tuple[services.HalfTermRecord, ...]:
    """The six half-terms of a year from their first and last days (ISO dates, space-separated)."""
    return tuple(
        services.HalfTermRecord(name, dt.date.fromisoformat(start), dt.date.fromisoformat(end))
        for name, start, end in zip(HALF_TERM_NAMES, starts.split(), ends.split(), strict=True)
    )


HALF_TERMS = _half_terms(
    "2026-09-01 2026-11-02 2027-01-04 2027-02-22 2027-04-12 2027-06-07",
    "2026-10-23 2026-12-18 2027-02-12 2027-03-25 2027-05-28 2027-07-21",
)
INSET_DAYS = (dt.date(2027, 1, 4), dt.date(2027, 7, 21))
LAST_YEAR_HALF_TERMS = _half_terms(
    "2025-09-03 2025-11-03 2026-01-05 2026-02-23 2026-04-13 2026-06-01",
    "2025-10-24 2025-12-19 2026-02-13 2026-03-27 2026-05-22 2026-07-21",
)

PILOT_PRESET = "spetisbury"
"""The school that has used Attendwise since the summer term: its files carry last summer's marks
too, so its casework (and its ladder) began then."""
LAST_SUMMER_FROM = dt.date(2026, 4, 13)
LAST_SUMMER_TO = dt.date(2026, 7, 21)
SAME_PATTERN_LAST_SUMMER = 0.6
"""The chance a pupil's absence last summer was like this autumn's; otherwise it was another
pupil's pattern, so some persistent absentees are new this year and some have recovered."""

# The secondary's MIS exports: its column headers, saved as the school's CSV mappings.
PUPIL_COLUMNS = {
    "upn": "UPN",
    "legal_forename": "Legal Forename",
    "legal_surname": "Legal Surname",
    "preferred_forename": "Preferred Forename",
    "date_of_birth": "DOB",
    "year_group": "Year",
    "sex": "Gender",
    "registration_group": "Reg Group",
    "sen_status": "SEN Provision",
    "fsm": "FSM Eligible",
    "eal": "EAL",
    "looked_after": "In Care",
    "child_in_need": "CIN",
}
MARK_COLUMNS = {
    "upn": "UPN",
    "date": "Date",
    "session": "Session",
    "code": "Mark",
    "minutes_late": "Minutes Late",
}


def _words(text: str, sep: str | None = None) -> tuple[str, ...]:
    return tuple(text.split(sep))


FORENAMES_F = _words(
    "Olivia Amelia Isla Ava Mia Ivy Lily Isabella Sophia Grace Freya Florence Willow Poppy Evie Ella "
    "Rosie Ruby Emily Daisy Harper Sienna Aisha Zainab Maja Zofia Amira Layla Chloe Erin"
)
FORENAMES_M = _words(
    "Noah Oliver George Arthur Muhammad Leo Harry Oscar Archie Henry Theodore Freddie Jack Charlie "
    "Finley Alfie Thomas Jacob Teddy Reuben Ibrahim Yusuf Kacper Jakub Mason Ethan Logan Samuel"
)
ADULTS_F = _words("Sarah Emma Laura Rachel Claire Hannah Gemma Kirsty Nadia Agnieszka Fatima Louise Kelly")
ADULTS_M = _words("James Daniel Mark Paul Christopher Andrew Lee Craig Tomasz Imran Steven Richard Matthew")
SURNAMES = _words(
    "Smith Jones Taylor Brown Williams Wilson Johnson Davies Patel Wright Robinson Thompson Evans "
    "Walker White Roberts Green Hall Thomas Clarke Jackson Wood Harris Edwards Turner Martin Cooper "
    "Hill Ward Hughes Moore Clark King Harrison Lewis Baker Lee Allen Morris Khan Scott Watson Davis "
    "Parker James Bennett Young Phillips Richardson Mitchell Bailey Carter Cook Singh Shaw Bell "
    "Collins Cox Begum Kowalski Nowak Ahmed Hussain Marsh Pike Hardy Dyer Oakley Frampton Loder"
)
STREETS = _words("Church Lane|High Street|Mill Road|Station Road|Orchard Close|The Green|Manor Way", "|")
TOWNS = (("Spetisbury", "DT11"), ("Blandford Forum", "DT11"), ("Wimborne", "BH21"), ("Shaftesbury", "SP7"))
LANGUAGES = {"Polish": "POL", "Urdu": "URD", "Bengali": "BEN", "Arabic": "ARA", "Romanian": "RUM"}


@dataclass
class Family:
    surname: str
    town: tuple[str, str]
    street: str
    house: int
    postcode: str
    mother: str
    father: str | None
    language: str | None
    primary_school: int
    key: str = ""
    children: list[tuple[Organisation, str]] = field(default_factory=list)  # (school, UPN)

    @property
    def address(self) -> ctf_writer.Address:
        return ctf_writer.Address(str(self.house), self.street, self.town[0], self.postcode)


Marks = dict[str, dict[tuple[dt.date, str], tuple[str, int | None]]]
"""UPN -> (date, session) -> (code, minutes late)."""


def seed(session: Session, demo: DemoOrgs) -> None:
    rng = random.Random(SEED)
    schools = demo.schools
    primaries = [i for i, s in enumerate(schools) if s.phase == "Primary"]
    secondary = next(i for i, s in enumerate(schools) if s.phase == "Secondary")
    targets = {i: PUPILS_PER_SCHOOL[s.phase or "Primary"] - 10 * (i % 3) for i, s in enumerate(schools)}
    pupils: dict[int, list[services.PupilRecord]] = {i: [] for i in range(len(schools))}
    families: list[Family] = []
    family_of: dict[str, Family] = {}
    serials = dict.fromkeys(range(len(schools)), 0)

    while any(len(pupils[i]) < targets[i] for i in pupils):
        family = _family(rng, rng.choice(primaries))
        family.key = f"family-{len(families) + 1}"
        for _child in range(rng.choices((1, 2, 3), weights=(55, 35, 10))[0]):
            year = rng.choice(("R", *(str(n) for n in range(1, 12))))
            index = secondary if year.isdigit() and int(year) >= 7 else family.primary_school
            if len(pupils[index]) >= targets[index]:
                continue
            serials[index] += 1
            record = _pupil(rng, schools[index], serials[index], family, year)
            pupils[index].append(record)
            family.children.append((schools[index], record.upn))
            family_of[record.upn] = family
        if family.children:
            families.append(family)

    folder = Path(current_app.config["DATA_DIR"]) / "demo-imports"
    folder.mkdir(parents=True, exist_ok=True)
    for index, school in enumerate(schools):
        with tenancy.tenant_context(school.id):
            services.set_school_calendar(
                session,
                school.id,
                ACADEMIC_YEAR,
                HALF_TERMS,
                [services.ClosureRecord(day, "inset", "Staff training day") for day in INSET_DAYS],
            )
            services.set_school_calendar(session, school.id, ACADEMIC_YEAR - 1, LAST_YEAR_HALF_TERMS)
            contacts = _contacts(rng, families, school)
            first, corrected, patterns = _marks(rng, session, school, pupils[index])
            last_summer = (
                _last_summer(random.Random(SEED + 1), session, school, pupils[index], patterns)
                if demo.presets.get(school.id) == PILOT_PRESET
                else None
            )
        exports = _Exports(session, school, folder, pupils[index], family_of, contacts)
        if index == secondary:
            exports.csv_school(first, corrected)
        else:
            exports.ctf_school(first, corrected, last_summer)


def marks_from(preset: str) -> dt.date:
    """The first day of a demo school's marks: last summer term for the pilot school."""
    return LAST_SUMMER_FROM if preset == PILOT_PRESET else MARKS_FROM


class _Exports:
    """One school's MIS export files, written to disk and imported as the school would."""

    def __init__(
        self,
        session: Session,
        school: Organisation,
        folder: Path,
        pupils: list[services.PupilRecord],
        family_of: dict[str, Family],
        contacts: dict[str, tuple[ctf_writer.Contact, ...]],
    ) -> None:
        self.session = session
        self.school = school
        self.folder = folder
        self.pupils = pupils
        self.family_of = family_of
        self.contacts = contacts
        self.stem = f"{school.urn}-{(school.name or 'school').split()[0].lower()}"

    def ctf_school(self, first: Marks, corrected: Marks, last_summer: Marks | None) -> None:
        """Pupils, contacts and marks in a CTF (with last summer's in a YearData of their own
        for the pilot school); then a partial CTF of the pupils whose marks the MIS has since
        corrected."""
        self._ctf(f"{self.stem}-{EXPORTED_AT:%Y%m%d}.xml", self.pupils, first, EXPORTED_AT, last_summer)
        changed = [p for p in self.pupils if corrected[p.upn] != first[p.upn]]
        self._ctf(
            f"{self.stem}-corrected-{CORRECTED_AT:%Y%m%d}.xml",
            changed,
            corrected,
            CORRECTED_AT,
            qualifier="partial",
        )

    def csv_school(self, first: Marks, corrected: Marks) -> None:
        """Pupils and families by CTF, the student list and marks as CSV through saved mappings."""
        self._ctf(f"{self.stem}-pupils-{EXPORTED_AT:%Y%m%d}.xml", self.pupils, None, EXPORTED_AT)
        with tenancy.tenant_context(self.school.id):
            imports.save_mapping(self.session, self.school.id, "pupils", PUPIL_COLUMNS)
            imports.save_mapping(self.session, self.school.id, "marks", MARK_COLUMNS)
        self._csv(f"{self.stem}-students-{EXPORTED_AT:%Y%m%d}.csv", "pupils", self._student_list())
        self._csv(f"{self.stem}-marks-{EXPORTED_AT:%Y%m%d}.csv", "marks", _marks_csv(first))
        changes = {
            upn: {slot: mark for slot, mark in slots.items() if first[upn].get(slot) != mark}
            for upn, slots in corrected.items()
        }
        self._csv(f"{self.stem}-marks-{CORRECTED_AT:%Y%m%d}.csv", "marks", _marks_csv(changes))

    def _write(self, name: str, data: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        return path

    def _ctf(
        self,
        name: str,
        pupils: list[services.PupilRecord],
        marks: Marks | None,
        when: dt.datetime,
        last_summer: Marks | None = None,
        qualifier: str = "full",
    ) -> None:
        laestab = self.school.laestab or "8350000"
        data = ctf_writer.write(
            [self._ctf_pupil(record, marks, last_summer) for record in pupils],
            lea=laestab[:3],
            estab=laestab[3:],
            school_name=self.school.name or "",
            academic_year=str(ACADEMIC_YEAR),
            generated_at=when,
            supplier="ATTENDWISE-DEMO",
            qualifier=qualifier,
        )
        parsed = ctf.parse(ctf.read_limited(self._write(name, data), ctf.DEFAULT_MAX_BYTES))
        self._import("ctf", name, lambda: imports.import_ctf(self.session, self.school, parsed))

    def _csv(self, name: str, kind: str, data: bytes) -> None:
        path = self._write(name, data)

        def work() -> imports.Outcome:
            mapping = imports.saved_mapping(self.session, self.school.id, kind)
            parsed = csv_import.parse(ctf.read_limited(path, ctf.DEFAULT_MAX_BYTES), kind, mapping)
            return imports.import_csv(self.session, self.school, parsed)

        self._import(f"csv-{kind}", name, work)

    def _import(self, connector: str, name: str, work: Callable[[], imports.Outcome]) -> None:
        # No evaluation per import: the casework demo replays the term once the marks are in.
        run = imports.run_import(
            self.session, self.school, connector=connector, source=name, work=work, evaluate=False
        )
        with tenancy.tenant_context(self.school.id):
            problems = [f"{r.location}: {r.reason}" for r in run.rejections[:5]]
        if problems:
            raise RuntimeError(f"demo file {name} was not imported cleanly: {'; '.join(problems)}")

    def _ctf_pupil(
        self, record: services.PupilRecord, marks: Marks | None, last_summer: Marks | None
    ) -> ctf_writer.Pupil:
        family = self.family_of[record.upn]
        laestab = self.school.laestab or "8350000"

        def year_data(year: int, start: dt.date, end: dt.date, slots: Marks) -> ctf_writer.Attendance:
            return ctf_writer.Attendance(
                year=str(year),
                lea=laestab[:3],
                estab=laestab[3:],
                school_name=self.school.name or "",
                start=start,
                end=end,
                marks={slot: code for slot, (code, _minutes) in slots[record.upn].items()},
            )

        attendance: tuple[ctf_writer.Attendance, ...] = ()
        if last_summer is not None and record.upn in last_summer:
            attendance += (year_data(ACADEMIC_YEAR - 1, LAST_SUMMER_FROM, LAST_SUMMER_TO, last_summer),)
        if marks is not None:
            attendance += (year_data(ACADEMIC_YEAR, MARKS_FROM, MARKS_TO, marks),)
        return ctf_writer.Pupil(
            upn=record.upn,
            surname=record.legal_surname,
            forename=record.legal_forename,
            date_of_birth=record.date_of_birth,
            sex=record.sex,
            nc_year=record.year_group,
            preferred_forename=record.preferred_forename,
            first_language=LANGUAGES.get(family.language or "", "ENG"),
            fsm_start=dt.date(ACADEMIC_YEAR - 1, 9, 1) if record.fsm else None,
            sen_provision=SEN_PROVISION.get(record.sen_status),
            sen_start=dt.date(ACADEMIC_YEAR - 1, 9, 1),
            in_care=record.looked_after,
            address=family.address,
            contacts=self.contacts.get(record.upn, ()),
            attendance=attendance,
        )

    def _student_list(self) -> bytes:
        def yes(flag: bool) -> str:
            return "Yes" if flag else "No"

        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(PUPIL_COLUMNS.values())
        for p in self.pupils:
            writer.writerow(
                (
                    p.upn,
                    p.legal_forename,
                    p.legal_surname,
                    p.preferred_forename or "",
                    f"{p.date_of_birth:%d/%m/%Y}",
                    p.year_group,
                    p.sex,
                    p.registration_group or "",
                    {"none": "N", **SEN_PROVISION}[p.sen_status],
                    yes(p.fsm),
                    yes(p.eal),
                    yes(p.looked_after),
                    yes(p.child_in_need),
                )
            )
        return out.getvalue().encode("utf-8")


def _marks_csv(marks: Marks) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(MARK_COLUMNS.values())
    for upn, slots in marks.items():
        for (day, session_name), (code, minutes) in sorted(slots.items()):
            writer.writerow((upn, f"{day:%d/%m/%Y}", session_name, code, "" if minutes is None else minutes))
    return out.getvalue().encode("utf-8")


def _family(rng: random.Random, primary_school: int) -> Family:
    town = rng.choice(TOWNS)
    letters = "ABDEFGHJLNPQRSTUWXYZ"
    postcode = f"{town[1]} {rng.randint(1, 9)}{rng.choice(letters)}{rng.choice(letters)}"
    return Family(
        surname=rng.choice(SURNAMES),
        town=town,
        street=rng.choice(STREETS),
        house=rng.randint(1, 120),
        postcode=postcode,
        mother=rng.choice(ADULTS_F),
        father=rng.choice(ADULTS_M) if rng.random() < 0.7 else None,
        language=rng.choice(tuple(LANGUAGES)) if rng.random() < 0.1 else None,
        primary_school=primary_school,
    )


def _upn(school: Organisation, serial: int, temporary: bool) -> str:
    estab = (school.laestab or "8350000")[-4:]
    tail = f"{serial % 100:02d}{'ABCDEFGH'[serial % 8]}" if temporary else f"{serial:03d}"
    body = f"835{estab}{24 + serial % 3:02d}{tail}"
    return stdnum_upn.calc_check_digit(body) + body


def _pupil(
    rng: random.Random, school: Organisation, serial: int, family: Family, year: str
) -> services.PupilRecord:
    sex = rng.choice("FM")
    forename = rng.choice(FORENAMES_F if sex == "F" else FORENAMES_M)
    age = 4 if year == "R" else int(year) + 4
    born = dt.date(2026 - age - 1, 9, 1) + dt.timedelta(days=rng.randint(0, 364))
    sen = rng.choices(("none", "sen_support", "ehcp"), weights=(84, 13, 3))[0]
    form = f"{year}{rng.choice('ABC') if school.phase == 'Secondary' else ''}"
    return services.PupilRecord(
        upn=_upn(school, serial, temporary=serial % 61 == 0),
        legal_forename=forename,
        legal_surname=family.surname,
        preferred_forename=forename[:3] if rng.random() < 0.05 else None,
        date_of_birth=born,
        year_group=year,
        sex=sex,
        registration_group=f"{form}{'' if school.phase == 'Secondary' else ' class'}",
        sen_status=sen,
        fsm=rng.random() < 0.22,
        eal=family.language is not None,
        looked_after=rng.random() < 0.01,
        child_in_need=rng.random() < 0.03,
    )


def _contacts(
    rng: random.Random, families: list[Family], school: Organisation
) -> dict[str, tuple[ctf_writer.Contact, ...]]:
    """Each pupil's parents at this school, as the school's MIS records them."""
    found: dict[str, tuple[ctf_writer.Contact, ...]] = {}
    for family in families:
        here = [upn for org, upn in family.children if org.id == school.id]
        if not here:
            continue
        slug = f"{family.mother.lower()}.{family.surname.lower()}{family.house}"
        parents = [
            ctf_writer.Contact(
                order=1,
                title="Mrs" if rng.random() < 0.5 else "Ms",
                forename=family.mother,
                surname=family.surname,
                relationship="Mother",
                responsibility=True,
                address_as_pupil=True,
                phones=(("M", f"07700 9{family.house:03d}{len(family.surname):02d}"),),
                email=f"{slug}@example.test",
            )
        ]
        if family.father:
            lives_with = rng.random() < 0.75
            elsewhere = (
                None
                if lives_with
                else ctf_writer.Address(
                    str(rng.randint(1, 90)), rng.choice(STREETS), "Poole", f"BH15 {rng.randint(1, 9)}AA"
                )
            )
            parents.append(
                ctf_writer.Contact(
                    order=2,
                    title="Mr",
                    forename=family.father,
                    surname=family.surname,
                    relationship="Father",
                    responsibility=True,
                    address_as_pupil=lives_with,
                    address=elsewhere,
                    phones=(("M", f"07700 8{family.house:03d}{len(family.surname):02d}"),),
                )
            )
        for upn in here:
            found[upn] = tuple(parents)
    return found


Pattern = tuple[str, float]
"""A pupil's attendance pattern: profile (regular, persistent, severe) and absence rate."""


def _pattern(rng: random.Random) -> Pattern:
    profile = rng.choices(("regular", "persistent", "severe"), weights=(83, 14, 3))[0]
    absence_rate = {"regular": rng.uniform(0.0, 0.035), "persistent": rng.uniform(0.1, 0.25)}.get(
        profile, rng.uniform(0.5, 0.75)
    )
    return profile, absence_rate


def _holiday(rng: random.Random, days: list[dt.date]) -> set[dt.date]:
    """A term-time holiday (G) for about one pupil in 25."""
    if rng.random() < 0.04:
        start = rng.choice(range(len(days) - 5))
        return set(days[start : start + rng.randint(3, 5)])
    return set()


def _marks(
    rng: random.Random, session: Session, school: Organisation, pupils: list[services.PupilRecord]
) -> tuple[Marks, Marks, dict[str, Pattern]]:
    """The marks as the MIS first exported them, as it exported them after the corrections
    (unexplained absences before :data:`CORRECTED_BY` explained as I or O), and each pupil's
    pattern."""
    calendar = services.school_calendar(session, school.id, ACADEMIC_YEAR)
    days = calendar.school_days(MARKS_FROM, MARKS_TO)
    first: Marks = {}
    corrected: Marks = {}
    patterns: dict[str, Pattern] = {}
    trip_day = rng.choice(days[10:40])
    for record in pupils:
        pattern = patterns[record.upn] = _pattern(rng)
        sent = first[record.upn] = {}
        later = corrected[record.upn] = {}
        for day, session_name, code, explained in _sessions(rng, days, pattern, trip_day, record.year_group):
            minutes = rng.randint(3, 25) if code == "L" else rng.randint(31, 60) if code == "U" else None
            sent[day, session_name] = (code, minutes)
            fixed = explained is not None and day < CORRECTED_BY
            later[day, session_name] = (explained, None) if fixed and explained else (code, minutes)
    return first, corrected, patterns


def _last_summer(
    rng: random.Random,
    session: Session,
    school: Organisation,
    pupils: list[services.PupilRecord],
    patterns: dict[str, Pattern],
) -> Marks:
    """Last summer term's marks, as the MIS holds them now (every absence long since explained),
    for every pupil but this year's Reception, who started in September."""
    calendar = services.school_calendar(session, school.id, ACADEMIC_YEAR - 1)
    days = calendar.school_days(LAST_SUMMER_FROM, LAST_SUMMER_TO)
    trip_day = rng.choice(days[10:40])
    marks: Marks = {}
    for record in pupils:
        if record.year_group == "R":
            continue
        pattern = _pattern(rng)
        if rng.random() < SAME_PATTERN_LAST_SUMMER:
            pattern = patterns[record.upn]
        year_group = str(int(record.year_group) - 1) if record.year_group != "1" else "R"
        marks[record.upn] = {
            (day, session_name): (explained or code, None)
            for day, session_name, code, explained in _sessions(rng, days, pattern, trip_day, year_group)
        }
    return marks


def _sessions(
    rng: random.Random, days: list[dt.date], pattern: Pattern, trip_day: dt.date, year_group: str
) -> Iterator[tuple[dt.date, str, str, str | None]]:
    """One pupil's sessions over ``days``: (day, "AM"/"PM", first code, corrected code or None)."""
    profile, absence_rate = pattern
    holiday = _holiday(rng, days)
    for day in days:
        codes = _day_codes(
            rng,
            day,
            absence_rate=absence_rate,
            profile=profile,
            holiday=holiday,
            trip_day=trip_day,
            year_group=year_group,
        )
        for session_name, (code, explained) in zip(("AM", "PM"), codes, strict=True):
            yield day, session_name, code, explained


def _day_codes(
    rng: random.Random,
    day: dt.date,
    *,
    absence_rate: float,
    profile: str,
    holiday: set[dt.date],
    trip_day: dt.date,
    year_group: str,
) -> tuple[tuple[str, str | None], tuple[str, str | None]]:
    """(first code, corrected code or None) for the AM and PM sessions of one day."""
    if day in holiday:
        return ("G", None), ("G", None)
    if day == trip_day and year_group in ("6", "9"):
        return ("V", None), ("V", None)
    if rng.random() < absence_rate:
        roll = rng.random()
        if roll < 0.55:
            return ("N", "I"), ("N", "I")
        if roll < 0.7 and profile != "regular":
            return ("N", "O"), ("N", "O")
        if roll < 0.8:
            return ("M", None), ("\\", None)
        if roll < 0.9 and profile != "regular":
            return ("O", None), ("O", None)
        return ("I", None), ("I", None)
    late = rng.random()
    if late < (0.06 if profile != "regular" else 0.02):
        return ("L", None), ("\\", None)
    if late < (0.08 if profile != "regular" else 0.021):
        return ("U", None), ("\\", None)
    return ("/", None), ("\\", None)
