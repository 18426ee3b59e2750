"""Insights at local-authority scale: the aggregate refresh against the evaluation, and the LA
dashboard rendered from the precomputed aggregates.

One command (PostgreSQL at 127.0.0.1:5432, user ``postgres``; a scratch database is created and
dropped)::

    .venv/bin/python benchmarks/insights.py                  # 250,000 pupils, 400 schools
    .venv/bin/python benchmarks/insights.py --pupils 20000

(a) **Refresh vs evaluation.** The marks come from the policy-engine benchmark's generator
(``policy_engine_la_scale.generate``: each school its own calendar and absence profiles). The
evaluation is timed exactly as that benchmark times it (metrics for every pupil over the year
to date, then every school's preset evaluated into a memory sink, the pupils' standing taken
from an evaluation a fortnight earlier). The refresh is :func:`attendwise.insights.services.school_rows`
for every school, the computation ``refresh`` stores: this year's half-term, term and year to
date, and a whole "last year" with the same periods a year earlier (the generated year again,
as the generator makes one year), every breakdown, and the weekly points. Both are in memory,
the best of three runs. Target: refresh <= 0.5 x evaluation.

(b) **LA dashboard.** The refresh's rows for every school are loaded into a migrated scratch
database with 400 schools in one LA; an LA officer (signed in, with MFA) requests ``/insights/``
through the application, as the application's database role (row-level security on), and the
median of the timed requests must be under 300 ms.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policy_engine_la_scale import BEFORE, LA, ON, REPEATS, generate

from attendwise.attendance.codes import DEFAULT_TABLE
from attendwise.attendance.metrics import MarkMatrix, Period, compute
from attendwise.attendance.queries import PupilTraits
from attendwise.insights import services
from attendwise.policies import simulate
from attendwise.policies.engine import LadderState, MemorySink

DASHBOARD_TARGET_MS = 300
RATIO_TARGET = 0.5
YEAR_GROUPS = np.array(["R", *(str(y) for y in range(1, 12))], dtype=object)


def school_inputs(
    matrix: MarkMatrix, calendars: list, seed: int
) -> list[tuple[PupilTraits, MarkMatrix, object]]:
    """Per school: generated characteristics, its rows of the marks, its calendar."""
    rng = np.random.default_rng(seed)
    out = []
    bounds = np.flatnonzero(np.diff(matrix.calendar_of)) + 1
    for rows in np.split(np.arange(len(matrix.pupils)), bounds):
        n = len(rows)
        traits = PupilTraits(
            ids=list(range(n)),
            year_group=YEAR_GROUPS[rng.integers(0, len(YEAR_GROUPS), n)],
            flags={
                "sen_support": rng.random(n) < 0.13,
                "ehcp": rng.random(n) < 0.04,
                "fsm": rng.random(n) < 0.25,
                "eal": rng.random(n) < 0.2,
                "looked_after": rng.random(n) < 0.01,
            },
        )
        marks = MarkMatrix(matrix.start, matrix.codes[rows[0] : rows[-1] + 1], traits.ids)
        out.append((traits, marks, calendars[int(matrix.calendar_of[rows[0]])]))
    return out


def refresh_all(inputs: list, on: dt.date) -> tuple[list[list[dict]], list[list[dict]]]:
    """Every school's figure and week rows, as ``services.refresh`` computes them."""
    figures, weeks = [], []
    now = dt.datetime.now(dt.UTC)
    for school_id, (traits, marks, calendar) in enumerate(inputs, start=1):
        years = [services.SchoolYear(calendar, marks), services.SchoolYear(calendar, marks)]
        periods = services.spans(calendar, calendar, on)
        # the generator makes one year: "last year" is that year again, with last-year keys
        this_year = [p for p in periods if p.key in ("ytd", "term", "half_term")]
        last_year = [services.Span(p.key + services.LAST_YEAR_SUFFIX, p.start, p.end) for p in this_year] + [
            services.Span("last_year", calendar.start, calendar.end)
        ]
        f_this, w_this = services.school_rows(school_id, traits, years[:1], this_year, DEFAULT_TABLE, now)
        f_last, _ = services.school_rows(school_id, traits, years[1:], last_year, DEFAULT_TABLE, now)
        figures.append(f_this + f_last)
        weeks.append(w_this)
    return figures, weeks


def time_evaluation(matrix: MarkMatrix, calendars: list, repeats: int) -> tuple[float, float]:
    presets = [simulate.load_preset(name)[0][-1] for name in simulate.preset_names()]
    la = LA(matrix, calendars, presets)
    states = [
        LadderState.initial([matrix.pupils[i] for i in rows], p.base_stage)
        for p, rows in zip(presets, la.rows, strict=True)
    ]
    earlier = compute(matrix, calendars, Period(matrix.start, BEFORE))
    states = la.evaluate(BEFORE, states, earlier, MemorySink())
    runs = []
    for _ in range(repeats):
        t, cpu = time.perf_counter(), time.process_time()
        metrics = compute(matrix, calendars, Period(matrix.start, ON, "Year to date"))
        la.evaluate(ON, states, metrics, MemorySink())
        runs.append((time.perf_counter() - t, time.process_time() - cpu))
    return min(runs)


def time_refresh(inputs: list, repeats: int) -> tuple[tuple[float, float], list, list]:
    runs, result = [], ([], [])
    for _ in range(repeats):
        t, cpu = time.perf_counter(), time.process_time()
        result = refresh_all(inputs, ON)
        runs.append((time.perf_counter() - t, time.process_time() - cpu))
    return min(runs), result[0], result[1]


def dashboard(
    figures: list, weeks: list, requests: int, keep: bool, profile: bool
) -> list[tuple[float, float]]:
    """Load the rows for an LA of ``len(figures)`` schools and time its officer's dashboard."""
    import pyotp
    from sqlalchemy import insert

    from attendwise.insights.models import SchoolCasework, SchoolFigures, SchoolWeek
    from attendwise.platform import tenancy
    from attendwise.platform.app import create_app
    from attendwise.platform.config import Settings
    from attendwise.platform.db import db
    from attendwise.tenants import services as tenants
    from attendwise.tenants.models import OrgKind
    from tests.conftest import APP_ROLE, create_pg_database, drop_pg_database, migrate, pg_url
    from tests.platform.account_fixtures import manual_key, page_csrf

    name = "attendwise_bench_insights"
    data_dir = Path(tempfile.mkdtemp(prefix="aw-insights-bench-"))
    create_pg_database(name)
    try:
        migrate(pg_url(name), data_dir)
        app = create_app(
            config={"DATABASE_URL": pg_url(name, APP_ROLE), "MAIL_SERVER": "", "SERVER_NAME": "bench.test"},
            settings=Settings.from_env({"ATTENDWISE_DATA_DIR": str(data_dir)}),
        )
        password = "insights-benchmark-password"
        with app.app_context():
            session = db.session()
            with tenancy.system_context("benchmark: build the LA"):
                la = tenants.create_organisation(session, kind=OrgKind.LA, name="Benchshire", la_code="999")
                school_ids = []
                for i in range(len(figures)):
                    school = tenants.create_organisation(
                        session,
                        kind=OrgKind.SCHOOL,
                        name=f"Bench School {i + 1:03d}",
                        urn=f"9{i:05d}",
                        phase="Primary" if i % 4 else "Secondary",
                        la=la,
                    )
                    school_ids.append(school.id)
                officer = tenants.create_user(
                    session, email="officer@bench.test", display_name="Bench Officer", password=password
                )
                tenants.add_membership(session, user=officer, org=la, role_key="la_attendance_officer")
            session.commit()
            now = dt.datetime.now(dt.UTC)
            for school_id, f_rows, w_rows in zip(school_ids, figures, weeks, strict=True):
                with tenancy.tenant_context(school_id):
                    session.execute(insert(SchoolFigures), [{**r, "org_id": school_id} for r in f_rows])
                    session.execute(insert(SchoolWeek), [{**r, "org_id": school_id} for r in w_rows])
                    session.execute(
                        insert(SchoolCasework),
                        [
                            {"org_id": school_id, "measure": m, "key": k, "pupils": n, "computed_at": now}
                            for m, k, n in (
                                ("open_cases", "", 40),
                                ("referrals", "", 3),
                                ("stage", "Stage 1", 25),
                            )
                        ],
                    )
                    session.commit()
        client = app.test_client()
        login = client.get("/auth/login").get_data(as_text=True)
        client.post(
            "/auth/login",
            data={"email": "officer@bench.test", "password": password, "csrf_token": page_csrf(login)},
        )
        setup = client.get("/auth/mfa/setup").get_data(as_text=True)
        client.post(
            "/auth/mfa/setup",
            data={"code": pyotp.TOTP(manual_key(setup)).now(), "csrf_token": page_csrf(setup)},
        )
        first = client.get("/insights/")
        assert first.status_code == 200, first.status_code
        assert f"Bench School {len(figures):03d}" in first.get_data(as_text=True)
        if profile:
            profiler = cProfile.Profile()
            profiler.runcall(client.get, "/insights/")
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        times = []
        for _ in range(requests):
            t, cpu = time.perf_counter(), time.process_time()
            response = client.get("/insights/")
            times.append((time.perf_counter() - t, time.process_time() - cpu))
            assert response.status_code == 200
        db.dispose()
        return times
    finally:
        if not keep:
            drop_pg_database(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pupils", type=int, default=250_000)
    parser.add_argument("--schools", type=int, default=400)
    parser.add_argument("--seed", type=int, default=20240902)
    parser.add_argument("--requests", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=REPEATS, help="best of this many timed runs")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--profile", action="store_true", help="print a profile of one dashboard request")
    args = parser.parse_args(argv)
    schools = min(args.schools, args.pupils)

    t = time.perf_counter()
    matrix, calendars = generate(args.pupils, schools, args.seed)
    inputs = school_inputs(matrix, calendars, args.seed)
    print(f"generated {args.pupils:,} pupils in {schools} schools: {time.perf_counter() - t:.1f} s")

    (evaluation_s, evaluation_cpu) = time_evaluation(matrix, calendars, args.repeats)
    (refresh_s, refresh_cpu), figures, weeks = time_refresh(inputs, args.repeats)
    ratio = refresh_s / evaluation_s
    rows = sum(len(f) for f in figures) + sum(len(w) for w in weeks)
    print(f"(a) evaluation of every pupil on {ON}:   {evaluation_s:7.2f} s wall, {evaluation_cpu:7.2f} s CPU")
    print(
        f"    refresh of every aggregate ({rows:,} rows): {refresh_s:7.2f} s wall, {refresh_cpu:7.2f} s CPU"
    )
    ok_ratio = ratio <= RATIO_TARGET
    verdict = "OK" if ok_ratio else "MISSED"
    print(f"    ratio refresh/evaluation:            {ratio:7.2f}   target <= {RATIO_TARGET}   {verdict}")
    print(f"    ratio by CPU time:                   {refresh_cpu / evaluation_cpu:7.2f}")

    runs = dashboard(figures, weeks, args.requests, args.keep, args.profile)
    times = [wall for wall, _ in runs]
    median_ms = 1000 * statistics.median(times)
    cpu_ms = 1000 * statistics.median(cpu for _, cpu in runs)
    ok_page = median_ms < DASHBOARD_TARGET_MS
    print(
        f"(b) LA dashboard, {schools} schools, {args.requests} requests: median {median_ms:6.1f} ms "
        f"(CPU {cpu_ms:6.1f} ms), min {1000 * min(times):6.1f} ms, max {1000 * max(times):6.1f} ms"
    )
    print(
        f"    ratio median/target:                 {median_ms / DASHBOARD_TARGET_MS:7.2f}   "
        f"target < 1   {'OK' if ok_page else 'MISSED'}"
    )
    return 0 if ok_ratio and ok_page else 1


if __name__ == "__main__":
    sys.exit(main())
