"""Read marks and pupils from a school's CSV export, through a column mapping.

A mapping names, for each Attendwise field, the header the MIS export uses (``{"code": "Mark",
"session": "Session Name"}``); a field not in the mapping is looked for under its own name.
Headers match case-insensitively. Problems carry ``row N`` (the header is row 1, as a
spreadsheet shows it) or ``row N, column H`` as their location.

As with a CTF, the pupil is the unit: a pupil with any bad mark row has none of their marks
taken from the file (every bad row is reported), so nothing is half-imported; the other pupils'
marks are taken.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from attendwise.attendance import services as attendance
from attendwise.attendance.codes import CODES
from attendwise.attendance.marks_file import MAX_MINUTES_LATE, MarkRow
from attendwise.integrations.ctf import Problem

KINDS = ("marks", "pupils")
FIELDS = {
    "marks": (("upn", "date", "session", "code"), ("minutes_late",)),
    "pupils": (
        ("upn", "legal_forename", "legal_surname", "date_of_birth", "year_group"),
        (
            "sex",
            "preferred_forename",
            "preferred_surname",
            "registration_group",
            "sen_status",
            "fsm",
            "eal",
            "looked_after",
            "child_in_need",
        ),
    ),
}
SESSION_NAMES = {"AM": "AM", "PM": "PM", "MORNING": "AM", "AFTERNOON": "PM"}
SEN_NAMES = {
    "none": "none",
    "n": "none",
    "": "none",
    "sen_support": "sen_support",
    "k": "sen_support",
    "ehcp": "ehcp",
    "e": "ehcp",
}
TRUE = frozenset({"true", "yes", "y", "1"})
FALSE = frozenset({"false", "no", "n", "0", ""})


class MappingError(ValueError):
    pass


@dataclass
class CsvFile:
    kind: str
    marks: list[MarkRow] = field(default_factory=list)
    pupils: list[attendance.PupilRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def parse_mapping(pairs: tuple[str, ...] | list[str], kind: str) -> dict[str, str]:
    """``("code=Mark", "session=Session Name")`` as a mapping; unknown fields are refused."""
    required, optional = FIELDS[kind]
    mapping = {}
    for pair in pairs:
        name, sep, header = pair.partition("=")
        name = name.strip().lower()
        if not sep or not header.strip():
            raise MappingError(f"{pair!r}: expected FIELD=HEADER")
        if name not in (*required, *optional):
            raise MappingError(
                f"{name!r} is not a {kind} field; the fields are {', '.join((*required, *optional))}"
            )
        mapping[name] = header.strip()
    return mapping


def _date(value: str) -> dt.date:
    """ISO (2025-09-03) or the day-first form UK exports use (03/09/2025)."""
    value = value.strip()
    if "/" in value:
        return dt.datetime.strptime(value, "%d/%m/%Y").date()  # noqa: DTZ007 - a date, no time zone
    return dt.date.fromisoformat(value)


def _rows(
    text: str, kind: str, mapping: Mapping[str, str], problems: list[Problem]
) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header = next(reader, None)
    if header is None:
        problems.append(Problem("row 1", "the file is empty: it has no header row"))
        return
    position = {h.strip().lower(): i for i, h in enumerate(header)}
    required, optional = FIELDS[kind]
    columns: dict[str, int] = {}
    for name in (*required, *optional):
        wanted = mapping.get(name, name)
        if wanted.lower() in position:
            columns[name] = position[wanted.lower()]
        elif name in required:
            problems.append(
                Problem(
                    "row 1",
                    f"no column {wanted!r} for {name}; map it with --column {name}=HEADER "
                    f"(the file's columns are: {', '.join(h.strip() for h in header)})",
                )
            )
    if any(p.location == "row 1" for p in problems):
        return
    for number, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) < len(header):
            problems.append(Problem(f"row {number}", f"expected {len(header)} values, found {len(values)}"))
            continue
        yield number, {name: values[i].strip() for name, i in columns.items()}


def parse(data: bytes, kind: str, mapping: Mapping[str, str] | None = None) -> CsvFile:
    result = CsvFile(kind=kind)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        result.problems.append(Problem("file", f"the file is not UTF-8 text (byte {exc.start + 1})"))
        return result
    if kind == "marks":
        _marks(result, text, mapping or {})
    else:
        _pupils(result, text, mapping or {})
    return result


def _column(name: str, mapping: Mapping[str, str]) -> str:
    return mapping.get(name, name)


def _marks(result: CsvFile, text: str, mapping: Mapping[str, str]) -> None:
    by_pupil: dict[str, list[MarkRow]] = {}
    bad_rows: dict[str, list[int]] = {}
    seen: dict[tuple[str, dt.date, str], tuple[int, str]] = {}
    # A year of marks repeats each UPN, date and code thousands of times: check each once.
    upns: dict[str, tuple[str, bool] | str] = {}
    days: dict[str, dt.date | None] = {}
    validity: dict[tuple[str, dt.date], str | None] = {}
    for number, cell in _rows(text, "marks", mapping, result.problems):
        where = f"row {number}"
        before = len(result.problems)
        upn, temporary = cell["upn"], False
        checked = upns.get(cell["upn"])
        if checked is None:
            try:
                checked = upns[cell["upn"]] = attendance.check_upn(cell["upn"])
            except ValueError as exc:
                checked = upns[cell["upn"]] = str(exc)
        if isinstance(checked, str):
            result.problems.append(Problem(f"{where}, column {_column('upn', mapping)}", checked))
        else:
            upn, temporary = checked
        if cell["date"] not in days:
            try:
                days[cell["date"]] = _date(cell["date"])
            except ValueError:
                days[cell["date"]] = None
        day = days[cell["date"]]
        if day is None:
            result.problems.append(
                Problem(
                    f"{where}, column {_column('date', mapping)}",
                    f"{cell['date']!r} is not a date (YYYY-MM-DD or DD/MM/YYYY)",
                )
            )
        session = SESSION_NAMES.get(cell["session"].upper())
        if session is None:
            result.problems.append(
                Problem(
                    f"{where}, column {_column('session', mapping)}",
                    f"session {cell['session']!r} is not AM or PM",
                )
            )
        code = cell["code"].upper() if cell["code"][:1].isalpha() else cell["code"]
        known = CODES.get(code)
        if known is None:
            result.problems.append(
                Problem(
                    f"{where}, column {_column('code', mapping)}",
                    f"{cell['code']!r} is not a DfE attendance code",
                )
            )
        elif day is not None:
            if (code, day) not in validity:
                validity[code, day] = known.validity_problem(day)
            if why := validity[code, day]:
                result.problems.append(Problem(f"{where}, column {_column('code', mapping)}", why))
        minutes: int | None = None
        raw_minutes = cell.get("minutes_late", "")
        if raw_minutes:
            if raw_minutes.isdigit() and int(raw_minutes) <= MAX_MINUTES_LATE:
                minutes = int(raw_minutes)
            else:
                result.problems.append(
                    Problem(
                        f"{where}, column {_column('minutes_late', mapping)}",
                        f"minutes late {raw_minutes!r} must be a whole number from 0 to {MAX_MINUTES_LATE}",
                    )
                )
        if len(result.problems) > before or day is None or session is None:
            bad_rows.setdefault(upn, []).append(number)
            continue
        earlier = seen.get((upn, day, session))
        if earlier is None:
            seen[(upn, day, session)] = (number, code)
            by_pupil.setdefault(upn, []).append(
                MarkRow(number, upn, day, session, code, minutes_late=minutes, temporary_upn=temporary)
            )
        elif earlier[1] != code:
            result.problems.append(
                Problem(
                    where,
                    f"{upn} {day.isoformat()} {session} is {code} here but {earlier[1]} in row {earlier[0]}",
                )
            )
            bad_rows.setdefault(upn, []).append(number)
    for upn, rows in bad_rows.items():
        dropped = len(by_pupil.pop(upn, []))
        if dropped:
            result.problems.append(
                Problem(
                    f"rows of UPN {upn}",
                    f"none of this pupil's {dropped} other mark(s) were taken, because of row(s) "
                    f"{', '.join(str(r) for r in rows)}",
                )
            )
    result.marks = [mark for rows in by_pupil.values() for mark in rows]


def _flag(value: str, name: str, where: str, problems: list[Problem]) -> bool:
    lowered = value.lower()
    if lowered in TRUE:
        return True
    if lowered not in FALSE:
        problems.append(Problem(where, f"{name} {value!r} is not yes or no"))
    return False


def _pupils(result: CsvFile, text: str, mapping: Mapping[str, str]) -> None:
    seen: dict[str, int] = {}
    for number, cell in _rows(text, "pupils", mapping, result.problems):
        where = f"row {number}"
        before = len(result.problems)
        upn = cell["upn"]
        try:
            upn, _temporary = attendance.check_upn(cell["upn"])
        except ValueError as exc:
            result.problems.append(Problem(f"{where}, column {_column('upn', mapping)}", str(exc)))
        if upn in seen:
            result.problems.append(Problem(where, f"UPN {upn} is also in row {seen[upn]}"))
        seen.setdefault(upn, number)
        for name in ("legal_forename", "legal_surname"):
            if not cell[name]:
                result.problems.append(
                    Problem(f"{where}, column {_column(name, mapping)}", f"{name} is empty")
                )
        dob: dt.date | None = None
        try:
            dob = _date(cell["date_of_birth"])
        except ValueError:
            result.problems.append(
                Problem(
                    f"{where}, column {_column('date_of_birth', mapping)}",
                    f"{cell['date_of_birth']!r} is not a date (YYYY-MM-DD or DD/MM/YYYY)",
                )
            )
        year_group = cell["year_group"].upper().lstrip("0") or cell["year_group"]
        if year_group not in attendance.YEAR_GROUPS:
            result.problems.append(
                Problem(
                    f"{where}, column {_column('year_group', mapping)}",
                    f"{cell['year_group']!r} is not a year group ({', '.join(attendance.YEAR_GROUPS)})",
                )
            )
        sex = (cell.get("sex") or "U").upper()[:1]
        if sex not in ("F", "M", "U"):
            result.problems.append(
                Problem(f"{where}, column {_column('sex', mapping)}", f"sex {cell['sex']!r} is not F, M or U")
            )
        sen = SEN_NAMES.get((cell.get("sen_status") or "").lower())
        if sen is None:
            result.problems.append(
                Problem(
                    f"{where}, column {_column('sen_status', mapping)}",
                    f"SEN status {cell['sen_status']!r} is not none, sen_support (K) or ehcp (E)",
                )
            )
        flags = {
            name: _flag(
                cell.get(name, ""), name, f"{where}, column {_column(name, mapping)}", result.problems
            )
            for name in ("fsm", "eal", "looked_after", "child_in_need")
        }
        if len(result.problems) > before or dob is None or sen is None:
            continue
        result.pupils.append(
            attendance.PupilRecord(
                upn=upn,
                legal_forename=cell["legal_forename"],
                legal_surname=cell["legal_surname"],
                date_of_birth=dob,
                year_group=year_group,
                sex=sex,
                preferred_forename=cell.get("preferred_forename") or None,
                preferred_surname=cell.get("preferred_surname") or None,
                registration_group=cell.get("registration_group") or None,
                sen_status=sen,
                fsm=flags["fsm"],
                eal=flags["eal"],
                looked_after=flags["looked_after"],
                child_in_need=flags["child_in_need"],
                source="csv",
                row=number,
            )
        )
