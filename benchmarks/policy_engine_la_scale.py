"""The policy engine at local-authority scale, against the attendance core's metric computation.

One command (no database; the marks are generated in memory exactly as the attendance core's
benchmark generates them)::

    .venv/bin/python benchmarks/policy_engine_la_scale.py               # 250,000 pupils, 400 schools
    .venv/bin/python benchmarks/policy_engine_la_scale.py --pupils 20000

Each school runs one of the five presets (school i runs preset i mod 5). The pupils' standing
before the measured day comes from evaluating them a fortnight earlier (not timed). Then, for
one Friday in spring, it times

(a) the attendance core computing every metric for every pupil over the year to date
    (``metrics.compute``), and
(b) the engine evaluating every pupil of the LA on that day: the same one metrics computation,
    the per-policy facts (including 002's last-six-weeks window), every stage change with its
    explanation, and every recurring action due that Friday (e.g. the weekly calls and rewards),
    recorded in a sink,

and prints both times (the best of three runs each, as the machine is shared) and the ratio
(b)/(a). Target: (b) <= 1.5 x (a).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from metrics_la_scale import YEAR, generate_school, school_calendars

from attendwise.attendance import marks_codec
from attendwise.attendance.metrics import MarkMatrix, Period, PupilMetrics, compute
from attendwise.policies import simulate
from attendwise.policies.document import Policy
from attendwise.policies.engine import (
    Clock,
    Facts,
    LadderState,
    MemorySink,
    evaluate,
    half_term_columns,
    take_rows,
)

BEFORE = date(2025, 2, 28)
REPEATS = 3
ON = date(2025, 3, 14)


def generate(pupils: int, schools: int, seed: int) -> tuple[MarkMatrix, list]:
    rng = np.random.default_rng(seed)
    calendars = school_calendars(schools)
    per_school = np.full(schools, pupils // schools)
    per_school[: pupils % schools] += 1
    blocks = [generate_school(rng, int(n), calendars[s]) for s, n in enumerate(per_school)]
    codes = np.concatenate(blocks)
    calendar_of = np.repeat(np.arange(schools, dtype=np.int32), per_school)
    upns = [f"P{i:07d}" for i in range(len(codes))]
    assert codes.shape[1] == marks_codec.year_length(YEAR)
    return MarkMatrix(date(YEAR, 8, 1), codes, upns, calendar_of), calendars


class LA:
    """The LA's pupils grouped by the preset their school runs."""

    def __init__(self, matrix: MarkMatrix, calendars: list, presets: list[Policy]) -> None:
        self.matrix = matrix
        self.calendars = calendars
        self.presets = presets
        school_preset = np.arange(len(calendars)) % len(presets)
        self.rows = [np.flatnonzero(school_preset[matrix.calendar_of] == k) for k in range(len(presets))]
        self.clocks = [Clock.of(c, matrix.start, ON) for c in calendars]
        self.days = [simulate.Days(c) for c in calendars]

    def evaluate(
        self, on: date, states: list[LadderState], metrics: PupilMetrics, sink: MemorySink
    ) -> list[LadderState]:
        out = []
        calendar_index = np.asarray(metrics.calendar_of)
        columns = half_term_columns(metrics, self.calendars, on)
        for policy, rows, state in zip(self.presets, self.rows, states, strict=True):
            sub = take_rows(metrics, rows)
            weekly_today = self.days[int(calendar_index[rows[0]])].weekly(on, policy.evaluation_day)
            monitoring = {s.number: s.monitoring for s in policy.stages}
            cadence = np.array([monitoring.get(n, policy.cadence) for n in range(100)])[state.stage]
            due = (cadence == "daily") | ((cadence == "weekly") & weekly_today)
            facts = Facts(
                on=on,
                metrics=sub,
                half_term_column=columns[rows],
                clocks=self.clocks,
                calendar_of=calendar_index[rows],
                window=lambda name, rows=rows, on=on: self.window(name, rows, on),
            )
            days = self.days[int(calendar_index[rows[0]])]
            result = evaluate(
                policy,
                state,
                facts,
                due=due,
                recurring_today=lambda every, days=days, policy=policy: days.falls(
                    every, on, policy.evaluation_day
                ),
            )
            result.publish(sink)
            out.append(result.state)
        return out

    def window(self, name: str, rows: np.ndarray, on: date) -> PupilMetrics:
        """Metrics over the last N school weeks for some rows, from only those weeks' columns."""
        weeks = int(name.split("_")[1])
        calendar = self.calendars[int(self.matrix.calendar_of[rows[0]])]
        first = calendar.school_weeks(self.matrix.start, on)[-weeks]
        lo, hi = (first - self.matrix.start).days, (on - self.matrix.start).days + 1
        # schools sharing one calendar object share its geometry: index the distinct calendars
        distinct: dict[int, int] = {}
        index = np.array([distinct.setdefault(id(c), len(distinct)) for c in self.calendars], dtype=np.int32)
        calendars = list({id(c): c for c in self.calendars}.values())
        sub = MarkMatrix(
            first,
            self.matrix.codes[rows, 2 * lo : 2 * hi],
            [self.matrix.pupils[i] for i in rows],
            index[self.matrix.calendar_of[rows]],
        )
        return compute(sub, calendars, Period(first, on))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pupils", type=int, default=250_000)
    parser.add_argument("--schools", type=int, default=400)
    parser.add_argument("--seed", type=int, default=20240902)
    args = parser.parse_args(argv)
    schools = min(args.schools, args.pupils)

    t = time.perf_counter()
    matrix, calendars = generate(args.pupils, schools, args.seed)
    presets = [simulate.load_preset(name)[0][-1] for name in simulate.preset_names()]
    la = LA(matrix, calendars, presets)
    print(f"generated {args.pupils:,} pupils in {schools} schools: {time.perf_counter() - t:.1f} s")

    states = [
        LadderState.initial([matrix.pupils[i] for i in rows], p.base_stage)
        for p, rows in zip(presets, la.rows, strict=True)
    ]
    earlier = compute(matrix, calendars, Period(matrix.start, BEFORE))
    states = la.evaluate(BEFORE, states, earlier, MemorySink())
    on_stage = sum(
        int(np.count_nonzero(s.stage != p.base_stage)) for s, p in zip(states, presets, strict=True)
    )
    print(f"standing on {BEFORE}: {on_stage:,} pupils above their policy's base stage")

    period = Period(matrix.start, ON, "Year to date")
    metrics_runs, engine_runs = [], []
    for _ in range(REPEATS):
        t = time.perf_counter()
        compute(matrix, calendars, period)
        metrics_runs.append(time.perf_counter() - t)

        sink = MemorySink()
        t = time.perf_counter()
        metrics = compute(matrix, calendars, period)
        la.evaluate(ON, states, metrics, sink)
        engine_runs.append(time.perf_counter() - t)
    metrics_s, engine_s = min(metrics_runs), min(engine_runs)

    ratio = engine_s / metrics_s
    print(f"on {ON}: {len(sink.transitions):,} stage decisions, {len(sink.actions):,} recurring actions")
    print(f"(a) metrics for every pupil:          {metrics_s:7.2f} s")
    print(f"(b) engine, metrics included:         {engine_s:7.2f} s")
    verdict = "OK" if ratio <= 1.5 else "MISSED"
    print(f"ratio (b)/(a):                        {ratio:7.2f}   target <= 1.5   {verdict}")
    return 0 if ratio <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
