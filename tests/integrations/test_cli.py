"""``attendwise import ...`` through the real command, as tools outside the repository run it."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest

from attendwise.attendance.calendar import SchoolCalendar
from tests.conftest import APP_ROLE, USE_POSTGRES, create_pg_database, drop_pg_database, pg_url
from tests.integrations import ctf_generator as gen

ATTENDWISE = str(Path(sys.executable).with_name("attendwise"))


def attendwise(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATTENDWISE_DATA_DIR": str(data_dir)}
    env.pop("ATTENDWISE_DATABASE_URL", None)
    return subprocess.run(
        [ATTENDWISE, *args], capture_output=True, text=True, env=env, timeout=240, check=False
    )


def by_upn(output: str) -> dict[str, dict[str, Any]]:
    return {p["upn"]: p for p in json.loads(output)["pupils"]}


def test_dry_run_prints_each_pupils_figures_and_the_files_totals(tmp_path: Path) -> None:
    made = gen.random_pupils(6, seed=21)
    made[4].years[0].totals_override = {"unauthorised": 0}
    path = gen.write(tmp_path / "school.xml", made)

    done = attendwise("import", "ctf", str(path), "--dry-run", "--format", "json", data_dir=tmp_path)

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["errors"] == []
    pupils = by_upn(done.stdout)
    assert list(pupils) == [p.upn for p in made]
    for pupil in made:
        got = pupils[pupil.upn]
        stated = pupil.years[0].totals()
        assert got["file_totals"] == stated
        assert got["possible_sessions"] == stated["possible"]
        assert got["present"] + got["approved_activity"] == stated["attended"]
        assert got["authorised"] == stated["authorised"]
        if pupil is not made[4]:
            assert got["unauthorised"] == stated["unauthorised"]
        assert (got["surname"], got["forename"], got["date_of_birth"]) == (
            pupil.surname,
            pupil.forename,
            pupil.dob,
        )
        absent = got["authorised"] + got["unauthorised"]
        assert got["persistent_absence"] is (absent >= 0.1 * got["possible_sessions"])
    real_unauthorised = pupils[made[4].upn]["unauthorised"]
    assert pupils[made[4].upn]["disagreements"] == [
        {
            "total": "unauthorised",
            "year": "2025",
            "file": 0,
            "marks": real_unauthorised,
            "location": "CTfile/CTFpupilData/Pupil[5]/Attendance/YearData[1]",
        }
    ]
    assert all(pupils[p.upn]["disagreements"] == [] for p in made if p is not made[4])


def test_dry_run_reports_every_problem_with_its_location_and_exits_1(tmp_path: Path) -> None:
    made = gen.random_pupils(4, seed=22)
    upn = made[0].upn
    assert upn is not None
    made[0].upn = ("A" if upn[0] != "A" else "B") + upn[1:]
    made[1].years[0].sessions[2] = "A"
    made[2].contacts[1].forename = made[2].contacts[1].surname = None
    made[3].dob = None
    path = gen.write(tmp_path / "bad.xml", made)

    done = attendwise("import", "ctf", str(path), "--dry-run", "--format", "json", data_dir=tmp_path)

    assert done.returncode == 1
    report = json.loads(done.stdout)
    errors = {e["location"]: e["reason"] for e in report["errors"]}
    base = "CTfile/CTFpupilData"
    assert "check letter" in errors[f"{base}/Pupil[1]/UPN"]
    assert "2025-09-02 AM" in errors[f"{base}/Pupil[2]/Attendance/YearData[1]/AttendSessions/AttendanceMarks"]
    assert "no name" in errors[f"{base}/Pupil[3]/Contacts/Contact[2]"]
    assert "missing" in errors[f"{base}/Pupil[4]/DOB"]
    assert [p["upn"] for p in report["pupils"]] == [made[2].upn]


def test_oversize_and_hostile_files_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.xml"
    big.write_bytes(b"<CTfile>" + b" " * 3000 + b"</CTfile>")
    bomb = tmp_path / "bomb.xml"
    bomb.write_text(
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
        "<CTfile><Header><CTFversion>25.0</CTFversion></Header><CTFpupilData><Pupil><Surname>&b;</Surname>"
        "</Pupil></CTFpupilData></CTfile>"
    )

    too_big = attendwise(
        "import", "ctf", str(big), "--dry-run", "--max-bytes", "1000", "--format", "json", data_dir=tmp_path
    )
    hostile = attendwise("import", "ctf", str(bomb), "--dry-run", data_dir=tmp_path)

    assert too_big.returncode == 1
    [error] = json.loads(too_big.stdout)["errors"]
    assert "files over 1,000 bytes are refused before they are read" in error["reason"]
    assert hostile.returncode == 1
    assert "CTfile: the file was refused: it declares a DTD or entities" in hostile.stderr


def test_csv_marks_dry_run_through_a_column_mapping(tmp_path: Path) -> None:
    upns = [gen.make_upn(835, 2001, 22, n) for n in (1, 2)]
    path = tmp_path / "marks.csv"
    path.write_text(
        textwrap.dedent(
            f"""\
            Pupil UPN,Date,Session Name,Mark
            {upns[0]},03/09/2025,AM,/
            {upns[0]},03/09/2025,PM,N
            {upns[1]},03/09/2025,AM,/
            {upns[1]},03/09/2025,PM,Q9
            """
        )
    )

    done = attendwise(
        "import", "csv", str(path), "--kind", "marks", "--dry-run", "--format", "json",
        "--column", "upn=Pupil UPN", "--column", "session=Session Name", "--column", "code=mark",
        data_dir=tmp_path,
    )  # fmt: skip

    assert done.returncode == 1
    report = json.loads(done.stdout)
    [pupil] = report["pupils"]
    assert (pupil["upn"], pupil["possible_sessions"], pupil["unauthorised"]) == (upns[0], 2, 1)
    locations = [e["location"] for e in report["errors"]]
    assert locations == ["row 5, column mark", f"rows of UPN {upns[1]}"]


SETUP = textwrap.dedent(
    """\
    from attendwise.platform import tenancy
    from attendwise.platform.app import create_app
    from attendwise.platform.cli import upgrade_database
    from attendwise.platform.db import db
    from attendwise.tenants import services
    from attendwise.tenants.models import OrgKind
    app = create_app()
    with app.app_context():
        upgrade_database()
        session = db.session()
        with tenancy.system_context("test setup"):
            la = services.create_organisation(session, kind=OrgKind.LA, name="Dorset", la_code="835")
            services.create_organisation(
                session, kind=OrgKind.SCHOOL, name="Test School", urn="113470", laestab="8352001", la=la
            )
        session.commit()
    """
)


def import_twice(tmp_path: Path, env: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Create a database with one school, then run the real import command twice on one file."""
    env = {**os.environ, "ATTENDWISE_DATA_DIR": str(tmp_path), **env}
    subprocess.run([sys.executable, "-c", SETUP], env=env, check=True, timeout=240, capture_output=True)
    calendar = SchoolCalendar.england_default(2025)
    start, end = dt.date(2025, 9, 1), dt.date(2025, 10, 17)
    closed = [d for d in (start + dt.timedelta(days=i) for i in range(47)) if not calendar.is_school_day(d)]
    path = gen.write(
        tmp_path / "school.xml", gen.random_pupils(5, seed=23, start=start, end=end, closed=closed)
    )
    command = [ATTENDWISE, "import", "ctf", str(path), "--school", "113470", "--format", "json"]
    results = []
    for _ in range(2):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240, check=False)
        assert done.returncode == 0, done.stderr
        results.append(json.loads(done.stdout))
    return results[0], results[1]


def check_second_changes_nothing(one: dict[str, Any], two: dict[str, Any]) -> None:
    assert one["detail"]["pupils"]["created"] == 5
    assert one["status"] == two["status"] == "succeeded"
    assert (two["created"], two["updated"], two["rejected"]) == (0, 0, 0)
    assert two["unchanged"] == one["created"]


def test_import_into_a_school_then_again_changes_nothing(tmp_path: Path) -> None:
    check_second_changes_nothing(*import_twice(tmp_path, {}))


@pytest.mark.skipif(not USE_POSTGRES, reason="runs when the suite uses PostgreSQL")
def test_import_on_postgresql_as_the_application_role(tmp_path: Path) -> None:
    name = f"attendwise_cli_import_{os.getpid()}"
    create_pg_database(name)
    try:
        env = {
            "ATTENDWISE_DATABASE_URL": pg_url(name, APP_ROLE),
            "ATTENDWISE_MIGRATION_DATABASE_URL": pg_url(name),
        }
        check_second_changes_nothing(*import_twice(tmp_path, env))
    finally:
        drop_pg_database(name)


@pytest.mark.skipif(not USE_POSTGRES, reason="runs when the suite uses PostgreSQL")
def test_two_imports_of_one_school_at_once_leave_no_duplicates(tmp_path: Path) -> None:
    name = f"attendwise_cli_race_{os.getpid()}"
    create_pg_database(name)
    try:
        env = {
            **os.environ,
            "ATTENDWISE_DATA_DIR": str(tmp_path),
            "ATTENDWISE_DATABASE_URL": pg_url(name, APP_ROLE),
            "ATTENDWISE_MIGRATION_DATABASE_URL": pg_url(name),
        }
        subprocess.run([sys.executable, "-c", SETUP], env=env, check=True, timeout=240, capture_output=True)
        calendar = SchoolCalendar.england_default(2025)
        start, end = dt.date(2025, 9, 1), dt.date(2025, 10, 17)
        closed = [
            d for d in (start + dt.timedelta(days=i) for i in range(47)) if not calendar.is_school_day(d)
        ]
        made = gen.random_pupils(8, seed=24, start=start, end=end, closed=closed)
        path = gen.write(tmp_path / "school.xml", made)
        command = [ATTENDWISE, "import", "ctf", str(path), "--school", "113470", "--format", "json"]

        running = [
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for _ in range(2)
        ]
        finished = [(p.wait(timeout=240), *p.communicate()) for p in running]

        succeeded = [json.loads(out) for code, out, _err in finished if code == 0]
        refused = [err for code, _out, err in finished if code != 0]
        assert succeeded, finished
        assert all("sync of this school has been running since" in err for err in refused), refused
        people = {(c.forename, c.surname) for p in made for c in p.contacts}  # no postcodes: one each
        records = len(made) + len(people) + sum(len(p.marks()) for p in made)
        assert sum(run["created"] for run in succeeded) == records
        with psycopg.connect(pg_url(name).replace("+psycopg", "")) as conn:
            pupils = conn.execute("SELECT count(*), count(DISTINCT upn) FROM pupils").fetchone()
            years = conn.execute("SELECT count(*) FROM pupil_mark_years").fetchone()
            running_runs = conn.execute("SELECT count(*) FROM sync_runs WHERE status = 'running'").fetchone()
        assert pupils == (len(made), len(made))
        assert years == (len(made),)
        assert running_runs == (0,)
    finally:
        drop_pg_database(name)
