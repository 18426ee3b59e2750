"""Chart geometry for the insights pages, drawn as SVG by the templates (no script, no library).

Each chart is a plain dataclass of positions and labels; the template draws it and puts the
same numbers in a GOV.UK table next to it, so the chart is never the only way to read them.
Colours come from the GOV.UK palette; the heat map prints every value in its cell, so colour
is never the only signal either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from attendwise.insights.services import Comparison, Figures, NationalValue, SchoolRow, WeekPoint

WIDTH = 640
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 36


def pct(value: float | None, places: int = 1) -> str:
    """A percentage as the pages print it; "x" when suppressed or undefined."""
    return "x" if value is None else f"{value:.{places}f}%"


# ---- weekly trend ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    label: str
    path: str  # SVG path data
    points: list[tuple[float, float]]
    dashed: bool


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class TrendChart:
    width: int
    height: int
    series: list[Series]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    plot_left: int
    plot_right: int
    plot_bottom: int

    @property
    def empty(self) -> bool:
        return not any(s.points for s in self.series)


def trend(weeks: Sequence[WeekPoint], height: int = 240) -> TrendChart:
    """Attendance % per school week this year, and the same week number last year (dashed)."""
    values = [w.figures.attendance for w in weeks] + [
        w.last_year.attendance for w in weeks if w.last_year is not None
    ]
    known = [v for v in values if v is not None]
    low = math.floor(min(known) / 5) * 5 if known else 80.0
    low = min(low, 90.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM
    count = max(len(weeks) - 1, 1)

    def x(i: int) -> float:
        return LEFT + plot_w * i / count

    def y(v: float) -> float:
        return TOP + plot_h * (100.0 - v) / (100.0 - low)

    def series(label: str, points: list[tuple[int, float | None]], dashed: bool) -> Series:
        xy = [(round(x(i), 1), round(y(v), 1)) for i, v in points if v is not None]
        path = " ".join(f"{'M' if k == 0 else 'L'}{px},{py}" for k, (px, py) in enumerate(xy))
        return Series(label, path, xy, dashed)

    this_year = series("This year", [(i, w.figures.attendance) for i, w in enumerate(weeks)], False)
    last_year = series(
        "Last year, same school week",
        [(i, w.last_year.attendance if w.last_year else None) for i, w in enumerate(weeks)],
        True,
    )
    step = 5 if 100 - low > 10 else 2
    y_ticks = [Tick(round(y(v), 1), f"{v:.0f}%") for v in range(int(low), 101, step)]
    every = max(1, math.ceil(len(weeks) / 8))
    x_ticks = [Tick(round(x(i), 1), f"Wk {w.number}") for i, w in enumerate(weeks) if i % every == 0]
    return TrendChart(
        WIDTH, height, [this_year, last_year], y_ticks, x_ticks, LEFT, WIDTH - RIGHT, TOP + plot_h
    )


# ---- school-by-school bars ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    label: str
    y: float
    width: float
    value: str
    suppressed: bool


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    bars: list[Bar]
    label_width: int
    bar_height: int
    reference_x: float | None
    reference_label: str


BAR_ROW = 22
BAR_LABEL = 260


def school_bars(comparison: Comparison, measure: str = "attendance") -> BarChart:
    """One bar per school for ``measure`` (0 to 100%), sorted best first; the scope's total as a line."""
    rows = sorted(
        comparison.schools,
        key=lambda r: (r.figures.measure(measure) is None, -(r.figures.measure(measure) or 0.0), r.name),
    )
    span = WIDTH - BAR_LABEL - 64
    bars = []
    for i, row in enumerate(rows):
        value = row.figures.measure(measure)
        bars.append(
            Bar(
                row.name,
                i * BAR_ROW,
                0.0 if value is None else round(span * value / 100.0, 1),
                pct(value),
                row.figures.suppressed,
            )
        )
    total = comparison.total.measure(measure)
    return BarChart(
        WIDTH,
        max(len(bars), 1) * BAR_ROW + 8,
        bars,
        BAR_LABEL,
        BAR_ROW - 6,
        None if total is None else round(BAR_LABEL + span * total / 100.0, 1),
        f"{comparison.scope_name} overall: {pct(total)}",
    )


# ---- heat map ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    x: float
    text: str
    fill: str
    band: str


@dataclass(frozen=True)
class HeatRow:
    label: str
    school_id: int
    y: float
    cells: list[Cell]


@dataclass(frozen=True)
class HeatMap:
    width: int
    height: int
    columns: list[Tick]
    rows: list[HeatRow]
    label_width: int
    cell_width: int
    cell_height: int
    legend: list[tuple[str, str]]


HEAT_MEASURES = ("attendance", "authorised", "unauthorised", "persistent", "severe")
# Light GOV.UK tints: black text keeps a contrast above 7:1 on each. The arrows repeat the band
# in the text, so colour is never the only way to tell it.
BANDS = {
    "much_better": ("#bdd7ee", "++", "Much better than national (by a quarter or more)"),
    "better": ("#deebf7", "+", "Better than national"),
    "similar": ("#ffffff", "", "Within a tenth of national"),
    "worse": ("#fbe1dc", "-", "Worse than national"),
    "much_worse": ("#f4b6a9", "--", "Much worse than national (by a quarter or more)"),
    "none": ("#f3f2f1", "", "Suppressed or no national figure"),
}


def national_for(national: Sequence[NationalValue], measure: str, phase: str) -> float | None:
    """The national figure for ``measure`` (attendance is 100 - absence), the phase's if published."""
    key = "absence" if measure == "attendance" else measure
    wanted = phase.lower() if phase.lower() in ("primary", "secondary", "special") else "all"
    found = {n.phase: n.value for n in national if n.measure == key}
    value = found.get(wanted, found.get("all"))
    if value is None:
        return None
    return 100.0 - value if measure == "attendance" else value


def band(value: float | None, reference: float | None, measure: str) -> str:
    """How ``value`` compares with ``reference``: the relative gap, with "better" meaning higher
    attendance or lower absence."""
    if value is None or reference is None or reference <= 0:
        return "none"
    if measure == "attendance":
        value, reference = 100.0 - value, 100.0 - reference  # compare the absence behind it
    gap = (value - reference) / reference
    if gap <= -0.25:
        return "much_better"
    if gap <= -0.10:
        return "better"
    if gap < 0.10:
        return "similar"
    if gap < 0.25:
        return "worse"
    return "much_worse"


def heat_map(comparison: Comparison) -> HeatMap:
    """Schools (rows) by measures (columns), each cell banded against the national figure."""
    label_w, cell_w, cell_h = 250, 92, 24
    columns = [Tick(label_w + cell_w * i + cell_w / 2, label) for i, label in enumerate(heat_labels())]
    rows = []
    reference: dict[tuple[str, str], float | None] = {}
    for r, school in enumerate(comparison.schools):
        cells = []
        for i, measure in enumerate(HEAT_MEASURES):
            value = school.figures.measure(measure)
            key = (measure, school.phase)
            if key not in reference:
                reference[key] = national_for(comparison.national, measure, school.phase)
            b = band(value, reference[key], measure)
            fill, mark, _text = BANDS[b]
            cells.append(Cell(label_w + cell_w * i, f"{pct(value)} {mark}".rstrip(), fill, b))
        rows.append(HeatRow(school.name, school.school_id, 28 + r * cell_h, cells))
    return HeatMap(
        label_w + cell_w * len(HEAT_MEASURES),
        28 + max(len(rows), 1) * cell_h,
        columns,
        rows,
        label_w,
        cell_w,
        cell_h,
        [(fill, f"{mark} {text}".lstrip()) for fill, mark, text in BANDS.values()],
    )


def heat_labels() -> list[str]:
    return ["Attendance", "Authorised", "Unauthorised", "Persistent", "Severe"]


def figures_cells(figures: Figures) -> list[str]:
    """A row of the figures tables: pupils, then each percentage (or "x")."""
    return [
        "x" if figures.pupil_count is None else f"{figures.pupil_count:,}",
        pct(figures.attendance),
        pct(figures.authorised_rate),
        pct(figures.unauthorised_rate),
        pct(figures.persistent_rate),
        pct(figures.severe_rate),
    ]


def school_cells(row: SchoolRow) -> list[str]:
    return figures_cells(row.figures)


# ---- large charts and tables as markup -----------------------------------------------------------
# An LA's pages draw hundreds of schools: these are built here, every value escaped, rather than
# with template loops (several times faster at 400 schools, which the dashboard's budget needs).


def _t(value: object) -> str:
    return str(escape(value))


def _markup(parts: list[str]) -> Markup:
    """Join markup built above: every text or attribute value in it went through :func:`_t`
    (numbers are formatted by Python and colours come from :data:`BANDS`)."""
    return Markup("".join(parts))  # noqa: S704 - the values inside are escaped with _t


def _short(name: str, limit: int = 38) -> str:
    return name if len(name) <= limit else name[: limit - 1].rstrip() + "…"


def bars_svg(bars: BarChart) -> Markup:
    parts = [
        f'<svg class="aw-chart" viewBox="0 0 {bars.width} {bars.height}" role="img" '
        'aria-labelledby="bars-title bars-desc" data-testid="bars-chart">'
        '<title id="bars-title">Attendance by school</title>'
        '<desc id="bars-desc">One bar per school, highest attendance first; the vertical line is the '
        "overall figure. The figures are in the table of schools.</desc>"
    ]
    h = bars.bar_height
    for bar in bars.bars:
        parts.append(
            f'<text class="aw-chart__label" x="{bars.label_width - 8}" y="{bar.y + h - 3}" '
            f'text-anchor="end">{_t(_short(bar.label))}</text>'
            f'<rect class="aw-chart__bar" x="{bars.label_width}" y="{bar.y}" '
            f'width="{bar.width}" height="{h}"/>'
            f'<text class="aw-chart__label" x="{bars.label_width + bar.width + 4}" y="{bar.y + h - 3}">'
            f"{_t(bar.value)}</text>"
        )
    if bars.reference_x is not None:
        parts.append(
            f'<line class="aw-chart__reference" x1="{bars.reference_x}" y1="0" '
            f'x2="{bars.reference_x}" y2="{bars.height}"/>'
        )
    parts.append("</svg>")
    return _markup(parts)


def heat_svg(heat: HeatMap) -> Markup:
    parts = [
        f'<svg class="aw-chart" viewBox="0 0 {heat.width} {heat.height}" role="img" '
        'aria-labelledby="heat-title heat-desc" data-testid="heat-chart">'
        '<title id="heat-title">Schools by measure against national figures</title>'
        '<desc id="heat-desc">A grid of schools by measure; each cell shows the school\'s figure and is '
        "shaded by how it compares with the national figure for its phase. The figures are in the table "
        "of schools.</desc>"
    ]
    for column in heat.columns:
        parts.append(
            f'<text class="aw-chart__label aw-chart__label--strong" x="{column.position}" y="18" '
            f'text-anchor="middle">{_t(column.label)}</text>'
        )
    w, h = heat.cell_width, heat.cell_height
    for row in heat.rows:
        parts.append(
            f'<text class="aw-chart__label" x="{heat.label_width - 8}" y="{row.y + h - 8}" '
            f'text-anchor="end">{_t(_short(row.label))}</text>'
        )
        for cell in row.cells:
            parts.append(
                f'<rect class="aw-chart__cell" x="{cell.x}" y="{row.y}" width="{w}" height="{h}" '
                f'fill="{cell.fill}"/><text class="aw-chart__value" x="{cell.x + w / 2}" '
                f'y="{row.y + h - 8}" text-anchor="middle">{_t(cell.text)}</text>'
            )
    parts.append("</svg>")
    return _markup(parts)


def school_table_rows(comparison: Comparison, links: dict[int, str]) -> Markup:
    """The rows of the table of schools; ``links``: school id -> its dashboard, where allowed."""
    rows = []
    numeric = '<td class="govuk-table__cell govuk-table__cell--numeric"'
    for row in comparison.schools:
        cells = figures_cells(row.figures)
        name = _t(row.name)
        if row.school_id in links:
            name = f'<a class="govuk-link" href="{_t(links[row.school_id])}">{name}</a>'
        last = pct(row.last_year.attendance) if row.last_year else "no data"
        open_cases, referrals = row.casework.open_cases, row.casework.referrals
        rows.append(
            f'<tr class="govuk-table__row" data-testid="school-{row.school_id}">'
            f'<th scope="row" class="govuk-table__header">{name}</th>'
            f'<td class="govuk-table__cell">{_t(row.phase)}</td>'
            f"{numeric}>{cells[0]}</td>"
            f'{numeric} data-testid="attendance-{row.school_id}">{cells[1]}</td>'
            f"{numeric}>{last}</td>"
            f"{numeric}>{cells[2]}</td>{numeric}>{cells[3]}</td>{numeric}>{cells[4]}</td>"
            f"{numeric}>{cells[5]}</td>"
            f"{numeric}>{'x' if open_cases.suppressed else open_cases.value}</td>"
            f"{numeric}>{'x' if referrals.suppressed else referrals.value}</td></tr>"
        )
    return _markup(rows)
