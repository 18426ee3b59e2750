"""``attendwise attendance summary``, through the installed command, as other tools call it."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from stdnum.gb import upn as stdnum_upn

from attendwise.attendance.calendar import SchoolCalendar
from attendwise.attendance.cli import records_to_csv

ATTENDWISE = str(Path(sys.executable).with_name("attendwise"))
CALENDAR = SchoolCalendar.england_default(2024)


def make_upn(serial: int, temporary: bool = False) -> str:
    body = f"8012000{24:02d}{serial:03d}" if not temporary else f"8012000{24:02d}{serial:02d}A"
    return stdnum_upn.calc_check_digit(body) + body


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATTENDWISE_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run(
        [ATTENDWISE, "attendance", "summary", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def write(tmp_path: Path, name: str, rows: list[list[object]]) -> str:
    path = tmp_path / name
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return str(path)


@pytest.fixture
def calendar_file(tmp_path: Path) -> str:
    path = tmp_path / "calendar.csv"
    path.write_text(CALENDAR.to_csv(), encoding="utf-8")
    return str(path)


def autumn_marks() -> list[list[object]]:
    """Pupil 1 attends everything but 4 L and 2 U; pupil 2 misses 1 in 10 exactly."""
    a, b = make_upn(1), make_upn(2, temporary=True)
    rows: list[list[object]] = [["upn", "date", "session", "code", "minutes_late"]]
    days = CALENDAR.school_days(date(2024, 9, 2), date(2024, 10, 25))  # 38 days, 76 sessions
    for i, d in enumerate(days):
        for s in ("AM", "PM"):
            n = 2 * i + (s == "PM")
            code_a = "L" if n in (0, 10, 20, 30) else "U" if n in (40, 41) else "/" if s == "AM" else "\\"
            rows.append([a, d.isoformat(), s, code_a, "7" if code_a in ("L", "U") else ""])
            code_b = "N" if n < 7 else "/" if s == "AM" else "\\"
            code_b = "D" if n == 75 else code_b  # not counted: 75 possible, 7 absent -> 9.3%
            rows.append([b, d.isoformat(), s, code_b, ""])
    return rows


def test_json_summary_per_pupil(tmp_path: Path, calendar_file: str) -> None:
    marks = write(tmp_path, "marks.csv", autumn_marks())
    result = run(
        tmp_path, "--marks", marks, "--calendar", calendar_file, "--from", "2024-09-02", "--to", "2024-10-25"
    )
    assert result.returncode == 0, result.stderr
    a, b = json.loads(result.stdout)
    assert a["upn"] == make_upn(1)
    assert a["temporary_upn"] is False
    assert (a["possible_sessions"], a["present"], a["unauthorised"]) == (76, 74, 2)
    assert a["approved_activity"] == 0
    assert a["authorised"] == 0
    assert a["attendance_pct"] == 100 * 74 / 76  # full precision, not rounded
    assert (a["late_before_close"], a["late_after_close"]) == (4, 2)
    assert a["lates_by_half_term"]["Autumn 1"] == {"late_before_close": 4, "late_after_close": 2}
    assert a["max_unauthorised_in_10_school_weeks"] == 2
    assert a["persistent_absence"] is False
    assert b["temporary_upn"] is True
    assert (b["possible_sessions"], b["unauthorised"], b["not_counted"]) == (75, 7, 1)
    assert b["persistent_absence"] is False
    assert b["severe_absence"] is False
    assert b["max_unauthorised_in_10_school_weeks"] == 7
    assert b["counts_by_code"] == {"/": 34, "\\": 34, "N": 7, "D": 1}


def test_exactly_ten_percent_through_the_command(tmp_path: Path) -> None:
    upn = make_upn(3)
    rows: list[list[object]] = [["upn", "date", "session", "code"]]
    days = CALENDAR.school_days(date(2024, 9, 2), date(2024, 9, 13))  # 8 days -> trim to 10 sessions
    sessions = [(d, s) for d in days for s in ("AM", "PM")][:10]
    rows += [[upn, d.isoformat(), s, "G" if i == 0 else "/"] for i, (d, s) in enumerate(sessions)]
    result = run(tmp_path, "--marks", write(tmp_path, "m.csv", rows))
    assert result.returncode == 0, result.stderr
    (record,) = json.loads(result.stdout)
    assert record["attendance_pct"] == 90.0
    assert record["persistent_absence"] is True


def test_period_limits_the_marks_counted(tmp_path: Path, calendar_file: str) -> None:
    marks = write(tmp_path, "marks.csv", autumn_marks())
    result = run(
        tmp_path, "--marks", marks, "--calendar", calendar_file, "--from", "2024-09-09", "--to", "2024-09-13"
    )
    a, b = json.loads(result.stdout)
    assert a["possible_sessions"] == 10
    assert b["unauthorised"] == 1  # the 7th N falls on Monday 9 September
    assert a["period_start"] == "2024-09-09"


def test_csv_output_is_flat_and_formula_safe(tmp_path: Path) -> None:
    upn = make_upn(4)
    rows = [
        ["upn", "date", "session", "code"],
        [upn, "2024-09-03", "AM", "/"],
        [upn, "2024-09-03", "PM", "L"],
    ]
    result = run(tmp_path, "--marks", write(tmp_path, "m.csv", rows), "--format", "csv")
    assert result.returncode == 0, result.stderr
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(table) == 1
    assert table[0]["upn"] == upn
    assert table[0]["possible_sessions"] == "2"
    assert table[0]["late_before_close 2024/25"] == "1"
    assert table[0]["sessions L"] == "1"
    assert not any(cell.startswith(("=", "+", "@")) for row in table for cell in row.values())


def test_bad_input_is_rejected_whole_with_row_numbers_and_reasons(tmp_path: Path, calendar_file: str) -> None:
    good = make_upn(5)
    rows = [
        ["upn", "date", "session", "code"],
        [good, "2024-09-03", "AM", "/"],
        [good, "2024-09-03", "PM", "QQ"],  # row 3: unknown code
        [good, "2024-08-20", "AM", "/"],  # row 4: summer holiday, outside the calendar
        [good, "2024-09-04", "EV", "/"],  # row 5: session
        ["A801200024005", "2024-09-04", "AM", "/"],  # row 6: wrong check letter
        ["=1+1", "2024-09-04", "AM", "/"],  # row 7: malformed
        [good, "2024-09-03", "AM", "N"],  # row 8: a second, different code for row 2's session
        [good, "2024-09-05", "AM", "H"],  # row 9: withdrawn code
    ]
    result = run(tmp_path, "--marks", write(tmp_path, "bad.csv", rows), "--calendar", calendar_file)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert [line.split(": ", 1)[1].split(":")[0] for line in lines] == [
        "row 3",
        "row 4",
        "row 5",
        "row 6",
        "row 7",
        "row 8",
        "row 9",
    ]
    text = result.stderr
    assert "unknown attendance code 'QQ'" in text
    assert "date 2024-08-20 is outside the calendar" in text
    assert "session 'EV' is not AM or PM" in text
    assert "UPN 'A801200024005' has the wrong check letter" in text
    assert "UPN '=1+1'" in text
    assert f"pupil {good} has codes / and N for the AM session of 2024-09-03 (rows 2 and 8)" in text
    assert "code H was withdrawn after 2024-08-18" in text


def test_missing_header_and_unreadable_files_fail_with_exit_1(tmp_path: Path, calendar_file: str) -> None:
    result = run(tmp_path, "--marks", write(tmp_path, "h.csv", [["pupil", "date", "session", "code"]]))
    assert result.returncode == 1
    assert "the header lacks the column(s) upn" in result.stderr
    result = run(tmp_path, "--marks", str(tmp_path / "nope.csv"))
    assert result.returncode == 1
    assert "nope.csv" in result.stderr
    bad_calendar = tmp_path / "cal.csv"
    bad_calendar.write_text("name,start,end\nAutumn 1,2024-09-02,notadate\n", encoding="utf-8")
    result = run(
        tmp_path, "--marks", write(tmp_path, "m.csv", autumn_marks()), "--calendar", str(bad_calendar)
    )
    assert result.returncode == 1
    assert "calendar file row 2: start and end must be ISO dates" in result.stderr


def test_an_empty_marks_file_gives_an_empty_list(tmp_path: Path) -> None:
    result = run(tmp_path, "--marks", write(tmp_path, "m.csv", [["upn", "date", "session", "code"]]))
    assert result.returncode == 0
    assert json.loads(result.stdout) == []


def test_csv_neutralises_text_that_a_spreadsheet_would_run_but_keeps_numbers() -> None:
    record = {
        "upn": '=HYPERLINK("http://x")',
        "note": "@SUM(A1)",
        "trend_since": -2.5,
        "lates_by_half_term": {"+Autumn": {"late_before_close": 1, "late_after_close": 0}},
        "counts_by_code": {"L": 1},
    }
    rows = list(csv.reader(io.StringIO(records_to_csv([record]))))
    assert rows[0] == [
        "upn",
        "note",
        "trend_since",
        "late_before_close +Autumn",
        "late_after_close +Autumn",
        "sessions L",
    ]
    assert rows[1] == ['\'=HYPERLINK("http://x")', "'@SUM(A1)", "-2.5", "1", "0", "1"]
