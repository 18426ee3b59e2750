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
import re
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
    header = next((values for _number, values in _records(reader, start=1)), None)
    if header is None:
        problems.append(Problem("row 1", "the file is empty: it has no header row"))
        return
    position = {h.strip().lower(): i for i, h in enumerate(header)}
    required, optional = FIELDS[kind]
    columns: dict[str, int] = {}
    for name in (*required, *optional):
        wanted = mapping.get(name, name)  # "" says the file has no such column
        if wanted and wanted.lower() in position:
            columns[name] = position[wanted.lower()]
        elif name in required:
            problems.append(
                Problem(
                    "row 1",
                    f"no column {wanted!r} for {name}: choose the column that holds {name} "
                    f"(the file's columns are: {', '.join(h.strip() for h in header)})",
                )
            )
    if any(p.location == "row 1" for p in problems):
        return
    for number, values in _records(reader):
        if not any(v.strip() for v in values):
            continue
        if len(values) < len(header):
            problems.append(Problem(f"row {number}", f"expected {len(header)} values, found {len(values)}"))
            continue
        yield number, {name: values[i].strip() for name, i in columns.items()}


class _Unreadable(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.reason)
        self.problem = problem


def _records(reader: Iterator[list[str]], start: int = 2) -> Iterator[tuple[int, list[str]]]:
    """The rows after the header with their numbers; raise :class:`_Unreadable` where the CSV breaks."""
    number = start
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _Unreadable(
                Problem(f"row {number}", f"cannot be read as CSV ({exc}); nothing in the file was taken")
            ) from None
        yield number, values
        number += 1


def parse(data: bytes, kind: str, mapping: Mapping[str, str] | None = None) -> CsvFile:
    result = CsvFile(kind=kind)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        result.problems.append(Problem("file", f"the file is not UTF-8 text (byte {exc.start + 1})"))
        return result
    try:
        if kind == "marks":
            _marks(result, text, mapping or {})
        else:
            _pupils(result, text, mapping or {})
    except _Unreadable as broken:
        result.marks, result.pupils = [], []
        result.problems.append(broken.problem)
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


# ---- the upload page: headers, a suggested mapping, a preview -----------------------------

PREVIEW_ROWS = 20
LABELS = {
    "upn": "UPN",
    "date": "Date",
    "session": "Session (AM or PM)",
    "code": "Attendance code",
    "minutes_late": "Minutes late",
    "legal_forename": "Legal first name",
    "legal_surname": "Legal last name",
    "date_of_birth": "Date of birth",
    "year_group": "Year group",
    "sex": "Sex",
    "preferred_forename": "Preferred first name",
    "preferred_surname": "Preferred last name",
    "registration_group": "Registration group",
    "sen_status": "SEN status",
    "fsm": "Free school meals",
    "eal": "English as an additional language",
    "looked_after": "Looked after",
    "child_in_need": "Child in need",
}
"""How the upload page names each field of :data:`FIELDS`."""

_ROW = re.compile(r"row (\d+)(?:, column (.+))?")
_PUPIL_ROWS = re.compile(r"rows of UPN (.+)")


class CsvUnreadable(ValueError):
    """The file cannot be read as a CSV whose first row names its columns."""


def headers(data: bytes) -> list[str]:
    """The file's column headers (stripped), or :class:`CsvUnreadable` saying why it has none."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvUnreadable(
            f"it is not UTF-8 text (byte {exc.start + 1}); save it from the MIS or spreadsheet as CSV UTF-8"
        ) from None
    reader = csv.reader(io.StringIO(text))
    try:
        rows = _records(reader, start=1)
        header = next(rows, (1, []))[1]
        names = [h.strip() for h in header]
        if not any(names):
            raise CsvUnreadable("it is empty: its first row must name the columns")
        seen: dict[str, int] = {}
        for position, name in enumerate(names, start=1):
            if name and name.lower() in seen:
                raise CsvUnreadable(
                    f"two columns are headed {name!r} (columns {seen[name.lower()]} and {position}); "
                    "rename one in the export"
                )
            seen[name.lower()] = position
        if not any(any(v.strip() for v in values) for _number, values in rows):
            raise CsvUnreadable("it has a header row but no rows below it")
    except _Unreadable as broken:
        raise CsvUnreadable(f"{broken.problem.location} {broken.problem.reason}") from None
    return names


def _squashed(name: str) -> str:
    return re.sub(r"[\s_-]", "", name).lower()


def suggest(kind: str, columns: list[str], saved: Mapping[str, str]) -> dict[str, str]:
    """Each field's column: the school's saved choice when this file has that column, else the
    column named like the field (``Date_of_birth``, ``date of birth``), else ``""`` (none)."""
    by_name = {c.lower(): c for c in columns if c}
    by_squashed = {_squashed(c): c for c in columns if c}
    required, optional = FIELDS[kind]
    chosen = {}
    for name in (*required, *optional):
        remembered = saved.get(name)
        if remembered == "" and name in optional:
            chosen[name] = ""
        elif remembered and remembered.lower() in by_name:
            chosen[name] = by_name[remembered.lower()]
        else:
            chosen[name] = by_squashed.get(_squashed(name), "")
    return chosen


def check_mapping(
    kind: str, columns: list[str], chosen: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """The mapping to import with (every field, ``""`` for none) and the errors by field: a
    required field with no column, a column not in the file, a column chosen twice."""
    by_name = {c.lower(): c for c in columns if c}
    required, optional = FIELDS[kind]
    mapping: dict[str, str] = {}
    errors: dict[str, str] = {}
    taken: dict[str, str] = {}
    for name in (*required, *optional):
        column = (chosen.get(name) or "").strip()
        if not column:
            mapping[name] = ""
            if name in required:
                errors[name] = f"Choose the column that holds the {LABELS[name].lower()}"
            continue
        if column.lower() not in by_name:
            errors[name] = f"{LABELS[name]}: {column!r} is not a column of this file"
            continue
        column = by_name[column.lower()]
        if column.lower() in taken:
            errors[name] = f"{LABELS[name]}: column {column!r} is already chosen for {taken[column.lower()]}"
            continue
        taken[column.lower()] = LABELS[name].lower()
        mapping[name] = column
    return mapping, errors


@dataclass(frozen=True)
class PreviewRow:
    number: int
    values: tuple[str, ...]
    problems: tuple[tuple[str | None, str], ...]  # (the column it names, if any; the reason)
    bad_cells: frozenset[int]  # positions of the values a problem names


@dataclass(frozen=True)
class Preview:
    columns: tuple[str, ...]
    rows: tuple[PreviewRow, ...]  # the first rows of the file
    file_problems: tuple[Problem, ...]  # about the whole file or its header row
    problems: int | None  # in the whole file (None: not checked)
    records: int | None  # the marks or pupils an import would take


def preview(data: bytes, kind: str, mapping: Mapping[str, str] | None, rows: int = PREVIEW_ROWS) -> Preview:
    """Parse the whole file as the import will, and place its problems on its first ``rows`` rows;
    with no ``mapping`` (not chosen yet), only show those rows.

    A problem at ``row N`` marks that row, at ``row N, column H`` that cell too; a pupil left out
    because of another of their rows (``rows of UPN X``) marks each shown row with that UPN.
    """
    parsed = parse(data, kind, mapping) if mapping is not None else None
    mapping = mapping or {}
    columns = headers(data)
    position = {c.lower(): i for i, c in enumerate(columns) if c}
    shown: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig")))
    try:
        for number, values in _records(reader, start=1):
            if number > 1 and any(v.strip() for v in values):
                shown.append((number, values))
            if len(shown) == rows:
                break
    except _Unreadable:
        pass  # the parse reported where the file breaks; the rows before it are shown
    upn_at = position.get((mapping.get("upn") or "upn").lower())
    on_row: dict[int, list[tuple[str | None, str]]] = {}
    in_cell: dict[int, set[int]] = {}
    of_pupil: dict[str, list[tuple[str | None, str]]] = {}
    general = []
    for problem in parsed.problems if parsed else ():
        if found := _ROW.fullmatch(problem.location):
            number = int(found.group(1))
            if number == 1:
                general.append(problem)
                continue
            on_row.setdefault(number, []).append((found.group(2), problem.reason))
            if found.group(2) and found.group(2).lower() in position:
                in_cell.setdefault(number, set()).add(position[found.group(2).lower()])
        elif found := _PUPIL_ROWS.fullmatch(problem.location):
            of_pupil.setdefault(found.group(1), []).append((None, problem.reason))
        else:
            general.append(problem)
    preview_rows = []
    for number, values in shown:
        upn = "".join(values[upn_at].split()).upper() if upn_at is not None and upn_at < len(values) else ""
        padded = (*values, *[""] * (len(columns) - len(values)))
        preview_rows.append(
            PreviewRow(
                number=number,
                values=tuple(padded),
                problems=tuple(on_row.get(number, []) + of_pupil.get(upn, [])),
                bad_cells=frozenset(in_cell.get(number, set())),
            )
        )
    return Preview(
        columns=tuple(columns),
        rows=tuple(preview_rows),
        file_problems=tuple(general),
        problems=len(parsed.problems) if parsed else None,
        records=len(parsed.marks) + len(parsed.pupils) if parsed else None,
    )
