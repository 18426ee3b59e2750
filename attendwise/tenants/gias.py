"""Read a school list in the DfE's Get Information about Schools (GIAS) CSV layout.

GIAS exports (``edubasealldata*.csv`` and the "download selected establishments" files)
name their columns like ``URN``, ``EstablishmentName``, ``LA (code)``,
``EstablishmentNumber``, ``PhaseOfEducation (name)``, ``Trusts (name)`` and
``EstablishmentStatus (name)``, among dozens of others, which are ignored. Headers are
matched without regard to case, spaces or punctuation, so ``LA code`` also works. GIAS
files are Windows-1252 encoded; UTF-8 (with or without a byte-order mark) is accepted too.

This module only reads and checks the file: every problem is reported with its row number
as a spreadsheet shows it (the header is row 1), the column, and what is wrong. Closed
establishments are skipped and listed, not treated as errors. Whether the named local
authorities and trusts exist is checked against the database by
:func:`attendwise.tenants.services.import_schools`.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

# canonical field -> accepted header spellings (normalised: lowercase letters and digits only)
COLUMNS: dict[str, tuple[str, ...]] = {
    "urn": ("urn",),
    "name": ("establishmentname", "schoolname", "name"),
    "la_code": ("lacode",),
    "establishment_number": ("establishmentnumber", "estabnumber", "estab"),
    "phase": ("phaseofeducationname", "phaseofeducation", "phase"),
    "trust": ("trustsname", "trustname", "trust"),
    "status": ("establishmentstatusname", "establishmentstatus", "status"),
}
REQUIRED = ("urn", "name", "la_code", "establishment_number", "phase")
GIAS_HEADER = {
    "urn": "URN",
    "name": "EstablishmentName",
    "la_code": "LA (code)",
    "establishment_number": "EstablishmentNumber",
    "phase": "PhaseOfEducation (name)",
    "trust": "Trusts (name)",
    "status": "EstablishmentStatus (name)",
}
MAX_NAME = 200


@dataclass(frozen=True)
class SchoolRow:
    row: int
    urn: str
    name: str
    la_code: str
    establishment_number: str
    phase: str
    trust: str | None

    @property
    def laestab(self) -> str:
        return f"{self.la_code}{self.establishment_number}"


@dataclass(frozen=True)
class RowProblem:
    row: int | None  # None: the file as a whole
    column: str | None
    message: str

    def __str__(self) -> str:
        where = "File" if self.row is None else f"Row {self.row}"
        if self.column:
            where += f", {self.column}"
        return f"{where}: {self.message}"


@dataclass
class ParsedFile:
    schools: list[SchoolRow] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    skipped: list[RowProblem] = field(default_factory=list)


def _normalise(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _map_headers(headers: list[str]) -> tuple[dict[str, int], list[RowProblem]]:
    found: dict[str, int] = {}
    problems = []
    normalised = [_normalise(h) for h in headers]
    for key, spellings in COLUMNS.items():
        matches = [i for i, h in enumerate(normalised) if h in spellings]
        if len(matches) > 1:
            names = ", ".join(repr(headers[i]) for i in matches)
            problems.append(RowProblem(1, None, f"columns {names} both look like {GIAS_HEADER[key]!r}"))
        elif matches:
            found[key] = matches[0]
    missing = [GIAS_HEADER[k] for k in REQUIRED if k not in found]
    if missing:
        problems.append(
            RowProblem(1, None, "the header row has no column " + ", ".join(repr(m) for m in missing))
        )
    return found, problems


def parse(data: bytes) -> ParsedFile:
    """Check every row; ``problems`` empty means every school row is well formed."""
    result = ParsedFile()
    text = decode(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        headers = next(reader)
    except StopIteration:
        result.problems.append(RowProblem(None, None, "the file is empty"))
        return result
    except csv.Error as exc:
        result.problems.append(RowProblem(1, None, f"not readable as CSV: {exc}"))
        return result
    columns, header_problems = _map_headers(headers)
    if header_problems:
        result.problems.extend(header_problems)
        return result
    seen_urns: dict[str, int] = {}
    row_number = 1
    try:
        for record in reader:
            row_number += 1
            if not any(cell.strip() for cell in record):
                continue
            if len(record) != len(headers):
                result.problems.append(
                    RowProblem(
                        row_number, None, f"has {len(record)} fields but the header has {len(headers)}"
                    )
                )
                continue
            _check_row(row_number, record, columns, seen_urns, result)
    except csv.Error as exc:
        result.problems.append(RowProblem(row_number + 1, None, f"not readable as CSV: {exc}"))
    if not result.schools and not result.problems and not result.skipped:
        result.problems.append(RowProblem(None, None, "the file has a header row but no schools"))
    return result


def _check_row(
    row: int, record: list[str], columns: dict[str, int], seen_urns: dict[str, int], result: ParsedFile
) -> None:
    def cell(key: str) -> str:
        return record[columns[key]].strip() if key in columns else ""

    urn = cell("urn")
    name = cell("name")
    status = cell("status")
    if status.lower() == "closed":
        result.skipped.append(RowProblem(row, None, f"URN {urn} ({name}) is closed"))
        return
    problems = []
    if not re.fullmatch(r"\d{6}", urn):
        problems.append(RowProblem(row, GIAS_HEADER["urn"], f"{urn!r} is not a 6-digit URN"))
    elif urn in seen_urns:
        problems.append(RowProblem(row, GIAS_HEADER["urn"], f"URN {urn} is already on row {seen_urns[urn]}"))
    if not name:
        problems.append(RowProblem(row, GIAS_HEADER["name"], "the school has no name"))
    elif len(name) > MAX_NAME:
        problems.append(RowProblem(row, GIAS_HEADER["name"], f"longer than {MAX_NAME} characters"))
    la_code = cell("la_code")
    if not re.fullmatch(r"\d{3}", la_code):
        problems.append(RowProblem(row, GIAS_HEADER["la_code"], f"{la_code!r} is not a 3-digit LA code"))
    number = cell("establishment_number")
    if not re.fullmatch(r"\d{4}", number):
        problems.append(
            RowProblem(
                row, GIAS_HEADER["establishment_number"], f"{number!r} is not a 4-digit establishment number"
            )
        )
    phase = cell("phase")
    if not phase:
        problems.append(RowProblem(row, GIAS_HEADER["phase"], "no phase of education"))
    elif len(phase) > 40:
        problems.append(RowProblem(row, GIAS_HEADER["phase"], "longer than 40 characters"))
    if problems:
        result.problems.extend(problems)
        return
    seen_urns[urn] = row
    result.schools.append(
        SchoolRow(
            row=row,
            urn=urn,
            name=name,
            la_code=la_code,
            establishment_number=number,
            phase=phase,
            trust=cell("trust") or None,
        )
    )
