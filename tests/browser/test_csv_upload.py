"""A CSV import in Debian's Chromium: pupils, then marks whose bad rows the preview highlights."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from tests.integrations.test_csv_upload import UPNS, marks_file, school_days

PUPILS = (
    "UPN,Legal forename,Legal surname,Date of birth,Year group,Sex\n"
    f"{UPNS[0]},Amelia,Smith,2016-03-04,4,F\n"
    f"{UPNS[1]},Oliver,Jones,12/11/2015,5,M\n"
).encode()


def choose_file(page: Any, kind: str, name: str, data: bytes) -> None:
    page.get_by_label(kind, exact=True).check()
    page.get_by_label("CSV file").set_input_files({"name": name, "mimeType": "text/csv", "buffer": data})
    page.get_by_role("button", name="Upload and preview").click()


def test_a_school_admin_previews_the_problems_of_a_csv_and_imports_it(
    page: Any,
    live_server: Any,
    sign_in: Callable[..., None],
    assert_accessible: Callable[[Any], None],
    screenshot: Callable[[Any, str], Any],
) -> None:
    school = live_server.make_school(name=f"Spetisbury Primary {live_server.next_id()}")
    sign_in(live_server.make_user([(school, "school_admin")], display_name="Sam Admin"))
    days = school_days(12)
    lines = [
        f"{UPNS[n % 2]},{day.isoformat()},{session},/"
        for day in days
        for n, session in ((0, "AM"), (1, "PM"))
    ]
    lines[3] = f"{UPNS[1]},{days[1].isoformat()},PM,?"  # row 5
    lines[7] = f"{UPNS[1]},{days[3].isoformat()},Evening,/"  # row 9

    page.get_by_role("navigation", name="Main").get_by_role("link", name="MIS data").click()
    page.get_by_role("button", name="Upload and preview").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "Choose whether the file holds attendance marks or pupils"
    )
    expect(page.get_by_role("alert")).to_contain_text("Choose a CSV file (.csv) exported from your MIS")
    assert_accessible(page)

    choose_file(page, "Pupils", "pupils.csv", PUPILS)
    expect(page.get_by_role("heading", level=1)).to_have_text("Import pupils from pupils.csv")
    expect(page.get_by_test_id("csv-summary")).to_contain_text("0 problem(s) in the whole file.")
    page.get_by_test_id("csv-import").click()
    expect(page.get_by_role("cell", name="csv-pupils pupils.csv")).to_be_visible()
    expect(page.get_by_text("2 created, 0 updated, 0 unchanged")).to_be_visible()

    choose_file(page, "Attendance marks", "autumn-marks.csv", marks_file(lines))
    expect(page.get_by_text("Choose a column for each required field, then check the rows")).to_be_visible()
    page.get_by_label("Attendance code").select_option("Mark")
    page.get_by_role("button", name="Check the rows with these columns").click()

    preview = page.get_by_test_id("csv-preview")
    expect(page.get_by_test_id("csv-summary")).to_contain_text("3 problem(s) in the whole file.")
    expect(page.get_by_test_id("csv-summary")).to_contain_text("12 mark(s) would be imported.")
    expect(preview.locator("tr[data-row='5'] [data-problem]")).to_have_text("Problem: ?")
    expect(preview.locator("tr[data-row='5']")).to_contain_text("'?' is not a DfE attendance code")
    expect(preview.locator("tr[data-row='9'] [data-problem]")).to_have_text("Problem: Evening")
    expect(preview.locator("tr[data-row='9']")).to_contain_text("session 'Evening' is not AM or PM")
    expect(preview.locator("tr[data-row='3']")).to_contain_text("none of this pupil's 10 other mark(s)")
    expect(preview.locator("tr.aw-csv-preview__row--problem")).to_have_count(10)
    expect(preview.locator("tr[data-row='2']")).not_to_have_class(re.compile("aw-csv-preview__row--problem"))
    assert_accessible(page)
    screenshot(page, "7-csv-preview")

    page.get_by_test_id("csv-import").click()
    expect(page.get_by_role("cell", name="csv-marks autumn-marks.csv")).to_be_visible()
    expect(
        page.get_by_text("12 created, 0 updated, 0 unchanged, 0 deleted, 3 record(s) rejected")
    ).to_be_visible()
    assert_accessible(page)
