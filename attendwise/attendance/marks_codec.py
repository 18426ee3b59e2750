"""The byte layout of the marks store, and reading a whole school, trust or LA into one matrix.

One row of ``pupil_mark_years`` holds one pupil's academic year: ``codes`` has two bytes per
calendar day from 1 August (``2*d`` the morning session of day ``d``, ``2*d+1`` the afternoon),
each byte a code's value from :data:`attendwise.attendance.codes.CODE_ORDER` (0 = no mark).
A year is 730 bytes (732 when it contains 29 February), so 250,000 pupils fit in about 180 MB
and are read with one SELECT and one ``np.frombuffer``.

``minutes_late`` is sparse JSON text: ``{"<ISO date>:<AM|PM>": minutes}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from attendwise.attendance.calendar import academic_year_end, academic_year_of, academic_year_start
from attendwise.attendance.codes import CODE_ORDER, CODES
from attendwise.attendance.metrics import MarkMatrix
from attendwise.platform import tenancy
from attendwise.platform.db import sync_tenant

SESSIONS = ("AM", "PM")

# Each code's first and last valid day as ordinals, indexed by any byte (0 = no mark and the
# bytes of no code are never valid), so whole arrays of codes and days are checked at once.
_UNUSED = 255 - len(CODE_ORDER)
VALID_FROM = np.array(
    [date.max.toordinal()]
    + [(CODES[c].valid_from or date.min).toordinal() for c in CODE_ORDER]
    + [date.max.toordinal()] * _UNUSED,
    dtype=np.int64,
)
VALID_TO = np.array(
    [0] + [(CODES[c].valid_to or date.max).toordinal() for c in CODE_ORDER] + [0] * _UNUSED, dtype=np.int64
)


def known_code(codes: np.ndarray) -> np.ndarray:
    """Per byte: is it the value of a code (not 0, not past the end of the code list)."""
    return (codes != 0) & (codes <= len(CODE_ORDER))


def valid_on(codes: np.ndarray, ordinals: np.ndarray) -> np.ndarray:
    """Per byte: is it a code in force on the day with that ordinal (``date.toordinal()``)."""
    return (ordinals >= VALID_FROM[codes]) & (ordinals <= VALID_TO[codes])


_marks = sa.table(
    "pupil_mark_years",
    sa.column("org_id", sa.Integer),
    sa.column("pupil_id", sa.Integer),
    sa.column("academic_year", sa.Integer),
    sa.column("codes", sa.LargeBinary),
)


def year_days(year: int) -> int:
    return (academic_year_end(year) - academic_year_start(year)).days + 1


def year_length(year: int) -> int:
    """Bytes in one pupil's year of marks."""
    return 2 * year_days(year)


def slot(year: int, day: date, session: str) -> int:
    """The byte offset of ``session`` ("AM"/"PM") on ``day`` within ``year``'s row."""
    if academic_year_of(day) != year:
        raise ValueError(f"{day.isoformat()} is not in academic year {year}")
    if session not in SESSIONS:
        raise ValueError(f"session must be AM or PM, not {session!r}")
    return 2 * (day - academic_year_start(year)).days + SESSIONS.index(session)


def empty_year(year: int) -> np.ndarray:
    """A writable year of no marks."""
    return np.zeros(year_length(year), dtype=np.uint8)


def decode_year(data: bytes, year: int) -> np.ndarray:
    """A writable copy of a stored row (shorter rows are padded with "no mark")."""
    out = empty_year(year)
    stored = np.frombuffer(data, dtype=np.uint8)
    if len(stored) > len(out):
        raise ValueError(f"a stored year of marks has {len(stored)} bytes; {year} has {len(out)}")
    out[: len(stored)] = stored
    return out


def view_year(data: bytes, year: int) -> np.ndarray:
    """A read-only, zero-copy view of a full stored row."""
    if len(data) != year_length(year):
        raise ValueError(f"a stored year of marks has {len(data)} bytes; {year} needs {year_length(year)}")
    return np.frombuffer(data, dtype=np.uint8)


def encode_year(codes: np.ndarray, year: int) -> bytes:
    if codes.dtype != np.uint8 or codes.shape != (year_length(year),):
        raise ValueError(f"a year of marks for {year} is {year_length(year)} uint8 values")
    return codes.tobytes()


def minutes_late_key(day: date, session: str) -> str:
    return f"{day.isoformat()}:{session}"


def decode_minutes_late(text: str | None) -> dict[tuple[date, str], int]:
    out: dict[tuple[date, str], int] = {}
    for key, minutes in json.loads(text or "{}").items():
        day, _, session = key.partition(":")
        out[(date.fromisoformat(day), session)] = int(minutes)
    return out


def encode_minutes_late(minutes: dict[tuple[date, str], int]) -> str:
    items = {minutes_late_key(day, session): int(n) for (day, session), n in minutes.items()}
    return json.dumps(items, sort_keys=True, separators=(",", ":"))


def matrix_from_rows(
    rows: Iterable[tuple[int, bytes]],
    year: int,
    *,
    calendar_of: dict[int, int] | None = None,
) -> MarkMatrix:
    """A :class:`MarkMatrix` of one academic year from ``(pupil_id, codes)`` rows.

    Full-length rows are joined and viewed with one ``np.frombuffer``; short ones are padded.
    """
    ids: list[int] = []
    blobs: list[bytes] = []
    for pupil_id, data in rows:
        ids.append(pupil_id)
        blobs.append(bytes(data))
    width = year_length(year)
    if all(len(b) == width for b in blobs):
        codes = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), width)
    else:
        codes = np.zeros((len(blobs), width), dtype=np.uint8)
        for i, b in enumerate(blobs):
            codes[i] = decode_year(b, year)
    cal = np.zeros(len(ids), dtype=np.int32)
    if calendar_of:
        cal = np.fromiter((calendar_of.get(p, 0) for p in ids), dtype=np.int32, count=len(ids))
    return MarkMatrix(academic_year_start(year), codes, ids, cal)


def load_matrix(
    session: Session,
    academic_years: Sequence[int],
    *,
    pupil_ids: Sequence[int] | None = None,
    org_ids: Sequence[int] | None = None,
    calendar_of: dict[int, int] | None = None,
) -> MarkMatrix:
    """Read the marks of consecutive academic years into one matrix, one row per pupil.

    One SELECT of ``pupil_id, codes`` per year. It needs a tenant context and reads only the
    organisations that context may read (PostgreSQL row-level security enforces the same).
    Pupils missing a year get "no mark" for it.
    """
    ctx = tenancy.require()
    if not ctx.system:
        allowed = ctx.read_org_ids
        org_ids = sorted(allowed if org_ids is None else allowed.intersection(org_ids))
    years = sorted(academic_years)
    if not years or years != list(range(years[0], years[-1] + 1)):
        raise ValueError("academic_years must be consecutive")
    sync_tenant(session)
    conn = session.connection()
    per_year: list[MarkMatrix] = []
    for year in years:
        query = sa.select(_marks.c.pupil_id, _marks.c.codes).where(_marks.c.academic_year == year)
        if pupil_ids is not None:
            query = query.where(_marks.c.pupil_id.in_(list(pupil_ids)))
        if org_ids is not None:
            query = query.where(_marks.c.org_id.in_(list(org_ids)))
        per_year.append(matrix_from_rows(_fetch(conn, query.order_by(_marks.c.pupil_id)), year))
    if len(per_year) == 1:
        only = per_year[0]
        cal = _calendar_index(only.pupils, calendar_of)
        return MarkMatrix(only.start, only.codes, only.pupils, cal)
    everyone = sorted(set().union(*(m.pupils for m in per_year)))
    position = {p: i for i, p in enumerate(everyone)}
    parts = []
    for m in per_year:
        part = np.zeros((len(everyone), m.codes.shape[1]), dtype=np.uint8)
        part[[position[p] for p in m.pupils]] = m.codes
        parts.append(part)
    codes = np.concatenate(parts, axis=1)
    return MarkMatrix(per_year[0].start, codes, everyone, _calendar_index(everyone, calendar_of))


def _fetch(conn: sa.Connection, query: sa.Select[Any]) -> Sequence[tuple[int, bytes]]:
    """Rows of ``query``; on psycopg in binary format, so ``bytea`` arrives as raw bytes, not hex."""
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor(binary=True) as cursor:
            cursor.execute(str(compiled), compiled.params)
            return cursor.fetchall()
    return [(r[0], r[1]) for r in conn.execute(query)]


def _calendar_index(pupils: Sequence[int], calendar_of: dict[int, int] | None) -> np.ndarray:
    if not calendar_of:
        return np.zeros(len(pupils), dtype=np.int32)
    return np.fromiter((calendar_of.get(p, 0) for p in pupils), dtype=np.int32, count=len(pupils))
