"""Attendance metrics at local-authority scale: read every pupil's year of marks, then compute all.

One command (PostgreSQL at 127.0.0.1:5432, user postgres, trust auth)::

    .venv/bin/python benchmarks/metrics_la_scale.py            # 250,000 pupils in 400 schools
    .venv/bin/python benchmarks/metrics_la_scale.py --pupils 20000

It creates a scratch database (``attendwise_bench``), a ``pupil_mark_years`` table with the
layout of the application's (one row per pupil and academic year, ``codes`` = 2 bytes per
calendar day), generates a synthetic LA (each school with its own calendar; a full year of
marks per pupil, about 380 sessions each) and loads it with binary COPY. Then, in one run, it
times

(a) reading the raw marks of every pupil into memory (``marks_codec.load_matrix``: one SELECT,
    one ``np.frombuffer``), and
(b) computing every metric for every pupil over the year (``metrics.compute``) plus the school
    and LA aggregates,

and prints both times, their ratio and the peak memory of the process. Targets: (b) <= 2 x (a),
(b) <= 10 s, peak memory <= 4 GB. The scratch database is dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time
from datetime import UTC, date, datetime

import numpy as np
import psycopg
import sqlalchemy as sa
from sqlalchemy.orm import Session

from attendwise.attendance import marks_codec
from attendwise.attendance.calendar import HalfTerm, SchoolCalendar
from attendwise.attendance.codes import encode
from attendwise.attendance.metrics import MarkMatrix, Period, aggregate, compute
from attendwise.platform import tenancy

YEAR = 2024
TABLE_DDL = """
CREATE TABLE pupil_mark_years (
    id serial PRIMARY KEY,
    org_id integer NOT NULL,
    pupil_id integer NOT NULL,
    academic_year integer NOT NULL,
    codes bytea NOT NULL,
    minutes_late text NOT NULL DEFAULT '{}',
    version integer NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL,
    UNIQUE (pupil_id, academic_year)
)
"""

# Reasons for absence and their shares, roughly as in the national statistics.
ABSENCE_CODES = ["I", "M", "N", "O", "G", "C", "E", "R", "U", "S"]
ABSENCE_SHARES = [0.50, 0.06, 0.08, 0.14, 0.08, 0.03, 0.02, 0.02, 0.05, 0.02]
OTHER_CODES = ["L", "B", "V", "K", "D", "X", "Y2", "P"]
OTHER_SHARES = [0.020, 0.004, 0.004, 0.002, 0.002, 0.001, 0.001, 0.001]


def school_calendars(n: int) -> list[SchoolCalendar]:
    """Calendars that differ as LA schools' do: INSET days, Easter, a closure."""
    base = SchoolCalendar.england_default(YEAR)
    halves = list(base.half_terms)
    variants = [base]
    variants.append(
        SchoolCalendar(
            tuple(halves),
            inset_days=frozenset({date(2024, 9, 2), date(2024, 11, 4), date(2025, 1, 6), date(2025, 2, 24)})
            | {halves[-1].end},
        )
    )
    variants.append(
        SchoolCalendar(tuple(halves), inset_days=base.inset_days, closures=frozenset({date(2025, 5, 1)}))
    )
    easter = [*halves]
    easter[3] = HalfTerm("Spring 2", halves[3].start, date(2025, 4, 4))
    easter[4] = HalfTerm("Summer 1", date(2025, 4, 22), halves[4].end)
    variants.append(SchoolCalendar(tuple(easter), inset_days=base.inset_days))
    return [variants[i % len(variants)] for i in range(n)]


def generate_school(rng: np.random.Generator, n: int, calendar: SchoolCalendar) -> np.ndarray:
    """``n`` pupils' year of marks for one school: (n, 730) uint8."""
    width = marks_codec.year_length(YEAR)
    open_days = np.flatnonzero(calendar.open_mask(date(YEAR, 8, 1), width // 2))
    cols = np.concatenate([2 * open_days, 2 * open_days + 1])
    cols.sort()
    am = (cols % 2) == 0
    kind = rng.random(n)
    rate = np.where(
        kind < 0.8, rng.beta(1.2, 30, n), np.where(kind < 0.97, rng.beta(3, 17, n), rng.beta(6, 6, n))
    ).astype(np.float32)
    u = rng.random((n, len(cols)), dtype=np.float32)
    absent = u < rate[:, None]
    reason = rng.choice(
        np.array([encode(c) for c in ABSENCE_CODES], dtype=np.uint8), (n, len(cols)), p=ABSENCE_SHARES
    )
    present = np.where(am, encode("/"), encode("\\")).astype(np.uint8)
    other_p = np.cumsum(OTHER_SHARES)
    v = rng.random((n, len(cols)), dtype=np.float32)
    other = np.searchsorted(other_p, v)
    other_codes = np.array([encode(c) for c in OTHER_CODES] + [0], dtype=np.uint8)
    codes_present = np.where(other < len(OTHER_CODES), other_codes[other], present[None, :])
    marks = np.where(absent, reason, codes_present).astype(np.uint8)
    # a week's term-time holiday (G) for one pupil in twenty
    holiday = np.flatnonzero(rng.random(n) < 0.05)
    if holiday.size and len(cols) > 10:
        first = rng.integers(0, len(cols) - 10, holiday.size)
        for offset in range(10):
            marks[holiday, first + offset] = encode("G")
    out = np.zeros((n, width), dtype=np.uint8)
    out[:, cols] = marks
    return out


def load(dsn: str, database: str, pupils: int, schools: int, seed: int) -> tuple[dict[int, int], int]:
    """Create the scratch database and COPY the synthetic LA in; returns pupil -> school index."""
    with psycopg.connect(f"{dsn}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{database}"')
    rng = np.random.default_rng(seed)
    calendars = school_calendars(schools)
    per_school = np.full(schools, pupils // schools)
    per_school[: pupils % schools] += 1
    calendar_of: dict[int, int] = {}
    sessions = 0
    now = datetime.now(UTC)
    with psycopg.connect(f"{dsn}/{database}") as conn:
        conn.execute(TABLE_DDL)
        next_id = 1
        with conn.cursor().copy(
            "COPY pupil_mark_years (org_id, pupil_id, academic_year, codes, version, updated_at) "
            "FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int4", "int4", "int4", "bytea", "int4", "timestamptz"])
            for school, n in enumerate(per_school):
                marks = generate_school(rng, int(n), calendars[school])
                sessions += int(np.count_nonzero(marks))
                for row in marks:
                    copy.write_row((school + 1, next_id, YEAR, row.tobytes(), 1, now))
                    calendar_of[next_id] = school
                    next_id += 1
        conn.execute("ANALYZE pupil_mark_years")
    return calendar_of, sessions


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pupils", type=int, default=250_000)
    parser.add_argument("--schools", type=int, default=400)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="attendwise_bench")
    parser.add_argument("--seed", type=int, default=20240902)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args(argv)
    schools = min(args.schools, args.pupils)

    t = time.perf_counter()
    calendar_of, sessions = load(args.dsn, args.database, args.pupils, schools, args.seed)
    print(
        f"generated and loaded {args.pupils:,} pupils in {schools} schools, {sessions:,} sessions: "
        f"{time.perf_counter() - t:.1f} s"
    )
    calendars = school_calendars(schools)
    gc.collect()

    engine = sa.create_engine(f"{args.dsn.replace('postgresql://', 'postgresql+psycopg://')}/{args.database}")
    try:
        with tenancy.system_context("LA-scale metrics benchmark"), Session(engine) as session:
            t, c = time.perf_counter(), time.process_time()
            matrix = marks_codec.load_matrix(session, [YEAR], calendar_of=calendar_of)
            read_s, read_cpu = time.perf_counter() - t, time.process_time() - c

            period = Period(date(YEAR, 8, 1), date(YEAR + 1, 7, 31), "2024/25")
            # one pupil first, so one-time work (lookup tables, numpy's lazy imports) is not timed
            compute(MarkMatrix(matrix.start, matrix.codes[:1], matrix.pupils[:1]), calendars[:1], period)
            t, c = time.perf_counter(), time.process_time()
            result = compute(matrix, calendars, period, trend_since=date(2025, 1, 6))
            by_school = aggregate(result, matrix.calendar_of)
            la = aggregate(result, np.zeros(len(result), dtype=np.int8))[0]
            compute_s, compute_cpu = time.perf_counter() - t, time.process_time() - c
    finally:
        engine.dispose()
        if not args.keep:
            with psycopg.connect(f"{args.dsn}/postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')

    peak = peak_memory_mb()
    ratio = compute_s / read_s
    print(
        f"matrix: {matrix.codes.shape[0]:,} pupils x {matrix.codes.shape[1]} sessions "
        f"({matrix.codes.nbytes / 1e6:.0f} MB); {len(by_school)} schools"
    )
    print(
        f"LA: attendance {la.attendance_pct:.2f}%, persistent absence {la.persistent_absence_rate:.1f}%, "
        f"severe {la.severe_absence_rate:.1f}%, at the penalty-notice threshold {la.at_penalty_threshold:,}"
    )
    print(f"load average (1 min):    {os.getloadavg()[0]:7.2f}   on {os.cpu_count()} cores")
    print(f"(a) read raw marks:      {read_s:7.2f} s  (this process's CPU {read_cpu:.2f} s)")
    print(f"(b) compute all metrics: {compute_s:7.2f} s  (this process's CPU {compute_cpu:.2f} s)")
    print(f"ratio (b)/(a):           {ratio:7.2f}   target <= 2   {'OK' if ratio <= 2 else 'MISSED'}")
    print(f"(b) absolute:            {compute_s:7.2f} s target <= 10 {'OK' if compute_s <= 10 else 'MISSED'}")
    print(f"peak memory:             {peak:7.0f} MB target <= 4096 {'OK' if peak <= 4096 else 'MISSED'}")
    return 0 if ratio <= 2 and compute_s <= 10 and peak <= 4096 else 1


if __name__ == "__main__":
    sys.exit(main())
