"""Logs are JSON lines with request ids, and carry no pupil's name or UPN.

A school with pupils is browsed the way staff use it (pupil list and search, pupil page, CSV
export, the API, another school's pupil, a missing page) and every line the app logged is
read back from stderr as the deployment would ship it.
"""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import select

from attendwise.attendance import services
from attendwise.attendance.models import Pupil
from attendwise.platform import tenancy
from tests.attendance.records import HALF_TERMS_2026, make_upn, pupil

PUPILS = [
    pupil(1, surname="Quennell", legal_forename="Marigold"),
    pupil(2, surname="Ostrowska", legal_forename="Theodora"),
]
OTHER = [pupil(3, surname="Featherstonehaugh", legal_forename="Peregrine")]
SECRETS = ["Quennell", "Marigold", "Ostrowska", "Theodora", "Featherstonehaugh", "Peregrine"] + [
    make_upn(n) for n in (1, 2, 3)
]


def _seed(db_session, school, records):
    with tenancy.tenant_context(school.id):
        services.set_school_calendar(db_session, school.id, 2026, HALF_TERMS_2026)
        services.upsert_pupils(db_session, school.id, records)
        db_session.flush()
        return {p.upn: p.id for p in db_session.scalars(select(Pupil))}


@pytest.fixture
def staff_browsing(client, login, make_user, make_school, db_session, capsys):
    school, other = make_school(name="Ash Primary"), make_school(name="Birch Primary")
    ids = _seed(db_session, school, PUPILS)
    other_ids = _seed(db_session, other, OTHER)
    capsys.readouterr()
    logging.getLogger().setLevel(logging.DEBUG)
    login(make_user(school, "attendance_officer"))
    own = ids[make_upn(1)]
    pages = {
        "list": client.get("/pupils"),
        "search": client.get("/pupils", query_string={"q": "Quennell"}),
        "pupil": client.get(f"/pupils/{own}"),
        "export": client.get("/pupils/export.csv"),
        "api": client.get(f"/api/v1/pupils/{own}"),
        "api_list": client.get("/api/v1/pupils", query_string={"q": make_upn(2)}),
        "other_school": client.get(f"/pupils/{other_ids[make_upn(3)]}"),
        "missing": client.get(f"/pupils/{own}/no-such-page"),
    }
    logging.getLogger().setLevel(logging.INFO)
    return pages, capsys.readouterr().err


def test_the_pages_showed_the_pupils_so_the_scan_means_something(staff_browsing):
    pages, _logs = staff_browsing
    assert "Quennell" in pages["pupil"].get_data(as_text=True)
    assert make_upn(2) in pages["export"].get_data(as_text=True)
    assert pages["other_school"].status_code == 404


def test_no_pupil_name_or_upn_appears_in_any_log_line(staff_browsing):
    _pages, logs = staff_browsing
    lines = [line for line in logs.splitlines() if line.strip()]
    assert len(lines) >= len(staff_browsing[0])
    leaked = [(secret, line) for line in lines for secret in SECRETS if secret.lower() in line.lower()]
    assert leaked == []


def test_each_request_logs_one_json_line_with_its_route_and_request_id(staff_browsing):
    pages, logs = staff_browsing
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    requests = [r for r in records if r.get("logger") == "attendwise.platform.metrics"]
    by_id = {r["request_id"]: r for r in requests}
    pupil_page = by_id[pages["pupil"].headers["X-Request-Id"]]
    assert pupil_page["route"] == "/pupils/<int:pupil_id>"
    assert pupil_page["status"] == 200
    assert by_id[pages["other_school"].headers["X-Request-Id"]]["status"] == 404
    assert by_id[pages["missing"].headers["X-Request-Id"]]["route"] == "unmatched"
