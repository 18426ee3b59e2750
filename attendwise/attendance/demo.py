"""Demo pupils, families and an autumn term of marks for the five demo schools.

Everything goes through the same services an MIS import uses. The data are deterministic
(seeded random): most pupils attend 95-100%, about one in six is persistently absent, a few
are severely absent; there are lates, some term-time holidays (G), and N marks that the
"MIS" later corrects to I or O, so pupils have mark history. Families have children in more
than one school, so the household links show siblings across the LA.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy.orm import Session
from stdnum.gb import upn as stdnum_upn

from attendwise.attendance import services
from attendwise.attendance.calendar import HALF_TERM_NAMES
from attendwise.platform import tenancy
from attendwise.platform.demo import DemoOrgs
from attendwise.tenants.models import Organisation

SEED = 20260901
MARKS_FROM = dt.date(2026, 9, 1)
MARKS_TO = dt.date(2026, 11, 20)
CORRECTED_BY = dt.date(2026, 11, 16)  # N marks before this were later explained; later ones still N
ACADEMIC_YEAR = 2026
PUPILS_PER_SCHOOL = {"Secondary": 200, "Primary": 140}

HALF_TERMS = tuple(
    services.HalfTermRecord(name, dt.date.fromisoformat(start), dt.date.fromisoformat(end))
    for name, start, end in zip(
        HALF_TERM_NAMES,
        ("2026-09-01", "2026-11-02", "2027-01-04", "2027-02-22", "2027-04-12", "2027-06-07"),
        ("2026-10-23", "2026-12-18", "2027-02-12", "2027-03-25", "2027-05-28", "2027-07-21"),
        strict=True,
    )
)
INSET_DAYS = (dt.date(2027, 1, 4), dt.date(2027, 7, 21))


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
LANGUAGES = ("Polish", "Urdu", "Bengali", "Arabic", "Romanian")


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


def seed(session: Session, demo: DemoOrgs) -> None:
    rng = random.Random(SEED)
    schools = demo.schools
    primaries = [i for i, s in enumerate(schools) if s.phase == "Primary"]
    secondary = next(i for i, s in enumerate(schools) if s.phase == "Secondary")
    targets = {i: PUPILS_PER_SCHOOL[s.phase or "Primary"] - 10 * (i % 3) for i, s in enumerate(schools)}
    pupils: dict[int, list[services.PupilRecord]] = {i: [] for i in range(len(schools))}
    families: list[Family] = []
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
        if family.children:
            families.append(family)

    for index, school in enumerate(schools):
        with tenancy.tenant_context(school.id):
            services.set_school_calendar(
                session,
                school.id,
                ACADEMIC_YEAR,
                HALF_TERMS,
                [services.ClosureRecord(day, "inset", "Staff training day") for day in INSET_DAYS],
            )
            services.upsert_pupils(session, school.id, pupils[index])
            services.upsert_contacts(session, school.id, list(_contacts(rng, families, school)))
            first, corrections = _marks(rng, session, school, pupils[index])
            services.store_marks(session, school.id, first, "mis")
            services.store_marks(session, school.id, corrections, "mis")


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
        language=rng.choice(LANGUAGES) if rng.random() < 0.1 else None,
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
        source="demo",
        external_id=f"{school.urn}-{serial}",
        enrolments=(services.EnrolmentRecord(dt.date(2026 - (0 if year == "R" else 1), 9, 1)),),
    )


def _contacts(
    rng: random.Random, families: list[Family], school: Organisation
) -> Iterator[services.ContactRecord]:
    for family in families:
        here = [upn for org, upn in family.children if org.id == school.id]
        if not here:
            continue
        address = (f"{family.house} {family.street}", family.town[0])
        slug = f"{family.mother.lower()}.{family.surname.lower()}{family.house}"
        yield services.ContactRecord(
            forename=family.mother,
            surname=family.surname,
            title="Mrs" if rng.random() < 0.5 else "Ms",
            preferred_language=family.language or "English",
            address_lines=address,
            postcode=family.postcode,
            phones=(("mobile", f"07700 9{family.house:03d}{len(family.surname):02d}"),),
            emails=(f"{slug}@example.test",),
            source="demo",
            external_id=f"{family.key}-mother",
            links=tuple(
                services.ContactLink(upn, "Mother", parental_responsibility=True, lives_with_pupil=True)
                for upn in here
            ),
        )
        if family.father:
            lives_with = rng.random() < 0.75
            yield services.ContactRecord(
                forename=family.father,
                surname=family.surname,
                title="Mr",
                preferred_language=family.language or "English",
                address_lines=address
                if lives_with
                else (f"{rng.randint(1, 90)} {rng.choice(STREETS)}", "Poole"),
                postcode=family.postcode if lives_with else f"BH15 {rng.randint(1, 9)}AA",
                phones=(("mobile", f"07700 8{family.house:03d}{len(family.surname):02d}"),),
                source="demo",
                external_id=f"{family.key}-father",
                links=tuple(
                    services.ContactLink(
                        upn, "Father", parental_responsibility=True, lives_with_pupil=lives_with, priority=2
                    )
                    for upn in here
                ),
            )


def _marks(
    rng: random.Random, session: Session, school: Organisation, pupils: list[services.PupilRecord]
) -> tuple[list[services.MarkRow], list[services.MarkRow]]:
    """The marks as the MIS first sent them, and the later corrections (N -> I or O)."""
    calendar = services.school_calendar(session, school.id, ACADEMIC_YEAR)
    days = calendar.school_days(MARKS_FROM, MARKS_TO)
    first: list[services.MarkRow] = []
    corrections: list[services.MarkRow] = []
    trip_day = rng.choice(days[10:40])
    for record in pupils:
        profile = rng.choices(("regular", "persistent", "severe"), weights=(83, 14, 3))[0]
        absence_rate = {"regular": rng.uniform(0.0, 0.035), "persistent": rng.uniform(0.1, 0.25)}.get(
            profile, rng.uniform(0.5, 0.75)
        )
        holiday = set()
        if rng.random() < 0.04:
            start = rng.choice(range(len(days) - 5))
            holiday = set(days[start : start + rng.randint(3, 5)])
        for day in days:
            codes = _day_codes(
                rng,
                day,
                absence_rate=absence_rate,
                profile=profile,
                holiday=holiday,
                trip_day=trip_day,
                year_group=record.year_group,
            )
            for session_name, (code, later) in zip(("AM", "PM"), codes, strict=True):
                minutes = rng.randint(3, 25) if code == "L" else rng.randint(31, 60) if code == "U" else None
                first.append(services.MarkRow(record.upn, day, session_name, code, minutes))
                if later and day < CORRECTED_BY:
                    corrections.append(services.MarkRow(record.upn, day, session_name, later))
    return first, corrections


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
