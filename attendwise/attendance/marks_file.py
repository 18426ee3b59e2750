"""The marks CSV of ``attendwise attendance summary``: parsed whole, or rejected whole.

Header ``upn,date,session,code`` plus an optional ``minutes_late`` column, in any order. A file
with any bad row is rejected as a whole: :class:`MarksFileError` lists every problem with its
row number (the header is row 1).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date

from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidLength, ValidationError
from stdnum.gb import upn as stdnum_upn

from attendwise.attendance.calendar import SchoolCalendar
from attendwise.attendance.codes import DEFAULT_TABLE, CodeTable

REQUIRED = ("upn", "date", "session", "code")
OPTIONAL = ("minutes_late",)
SESSIONS = ("AM", "PM")
MAX_MINUTES_LATE = 24 * 60

# Local authorities created since python-stdnum's list was compiled (2019-2023 reorganisations):
# Dorset, Bournemouth Christchurch and Poole, North and West Northamptonshire, Cumberland,
# Westmorland and Furness.
NEWER_LA_NUMBERS = frozenset({838, 839, 940, 941, 942, 943})


@dataclass(frozen=True)
class MarkRow:
    row: int
    upn: str
    date: date
    session: str
    code: str
    minutes_late: int | None = None
    temporary_upn: bool = False


@dataclass(frozen=True)
class Problem:
    row: int | None
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.reason}" if self.row is not None else self.reason


class MarksFileError(ValueError):
    """A rejected marks file; ``problems`` holds every reason, in row order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def check_upn(value: str) -> tuple[str, bool]:
    """The normalised UPN and whether it is temporary; ``ValueError`` saying why it is malformed."""
    number = stdnum_upn.compact(value)
    try:
        number = stdnum_upn.validate(number)
    except InvalidComponent:
        if int(number[1:4]) not in NEWER_LA_NUMBERS:
            raise ValueError(f"UPN {value!r} has an unknown local authority number {number[1:4]}") from None
        if stdnum_upn.calc_check_digit(number[1:]) != number[0]:
            raise ValueError(f"UPN {value!r} has the wrong check letter") from None
    except InvalidChecksum:
        raise ValueError(f"UPN {value!r} has the wrong check letter") from None
    except InvalidLength:
        raise ValueError(f"UPN {value!r} is not 13 characters long") from None
    except ValidationError:
        raise ValueError(
            f"UPN {value!r} is malformed: expected a check letter, 11 digits, then a digit "
            "(or a letter for a temporary UPN)"
        ) from None
    return number, number[-1].isalpha()


def parse_marks(
    text: str,
    calendar: SchoolCalendar | None = None,
    *,
    table: CodeTable = DEFAULT_TABLE,
) -> list[MarkRow]:
    """Every mark in ``text``, normalised; raises :class:`MarksFileError` listing all problems.

    Checks: the header; the UPN (check letter, format; temporary UPNs are allowed and flagged);
    the date (ISO, inside ``calendar`` when one is given); the session (AM or PM); the code
    (known, and valid on that date); minutes late (a whole number of minutes); and that no
    pupil and session has two different codes. The same mark repeated is kept once.
    """
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header_row = next(reader, None)
    if header_row is None:
        raise MarksFileError(
            [Problem(None, "the marks file is empty: expected the header upn,date,session,code")]
        )
    header = [h.strip().lower() for h in header_row]
    missing = [c for c in REQUIRED if c not in header]
    unknown = [h for h in header if h not in REQUIRED + OPTIONAL]
    duplicated = sorted({h for h in header if header.count(h) > 1})
    header_problems = []
    if missing:
        header_problems.append(f"the header lacks the column(s) {', '.join(missing)}")
    if unknown:
        header_problems.append(f"the header has unknown column(s) {', '.join(unknown)}")
    if duplicated:
        header_problems.append(f"the header repeats the column(s) {', '.join(duplicated)}")
    if header_problems:
        raise MarksFileError(
            [Problem(1, p + "; expected upn,date,session,code[,minutes_late]") for p in header_problems]
        )
    position = {name: header.index(name) for name in header}

    problems: list[Problem] = []
    rows: list[MarkRow] = []
    seen: dict[tuple[str, date, str], MarkRow] = {}
    for row_number, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            problems.append(Problem(row_number, f"expected {len(header)} values, found {len(values)}"))
            continue
        cell = {name: values[i].strip() for name, i in position.items()}
        row_problems: list[str] = []

        upn, temporary = cell["upn"], False
        try:
            upn, temporary = check_upn(cell["upn"])
        except ValueError as exc:
            row_problems.append(str(exc) if cell["upn"] else "the UPN is empty")

        day: date | None = None
        try:
            day = date.fromisoformat(cell["date"])
        except ValueError:
            row_problems.append(f"date {cell['date']!r} is not an ISO date (YYYY-MM-DD)")
        if day is not None and calendar is not None and not calendar.contains(day):
            row_problems.append(
                f"date {day.isoformat()} is outside the calendar "
                f"({calendar.start.isoformat()} to {calendar.end.isoformat()}, in half-terms)"
            )

        session = cell["session"].upper()
        if session not in SESSIONS:
            row_problems.append(f"session {cell['session']!r} is not AM or PM")

        code = cell["code"].upper()
        if code not in table:
            row_problems.append(f"unknown attendance code {cell['code']!r}")
        elif day is not None:
            invalid = table[code].validity_problem(day)
            if invalid:
                row_problems.append(f"{invalid}; {day.isoformat()} is outside that")

        minutes: int | None = None
        raw_minutes = cell.get("minutes_late", "")
        if raw_minutes:
            if raw_minutes.isdigit() and int(raw_minutes) <= MAX_MINUTES_LATE:
                minutes = int(raw_minutes)
            else:
                row_problems.append(f"minutes_late {raw_minutes!r} is not a whole number of minutes")

        if row_problems:
            problems.extend(Problem(row_number, p) for p in row_problems)
            continue
        assert day is not None
        mark = MarkRow(row_number, upn, day, session, code, minutes, temporary)
        key = (upn, day, session)
        earlier = seen.get(key)
        if earlier is None:
            seen[key] = mark
            rows.append(mark)
        elif (earlier.code, earlier.minutes_late) != (code, minutes):
            what = (
                f"codes {earlier.code} and {code}"
                if earlier.code != code
                else f"minutes late {earlier.minutes_late} and {minutes}"
            )
            problems.append(
                Problem(
                    row_number,
                    f"pupil {upn} has {what} for the {session} session of {day.isoformat()} "
                    f"(rows {earlier.row} and {row_number})",
                )
            )
    if problems:
        raise MarksFileError(problems)
    return rows
