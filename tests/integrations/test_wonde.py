"""The Wonde connector against a local server speaking Wonde's API: its own HTTP code, not mocks."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.attendance import marks_codec
from attendwise.attendance.calendar import SchoolCalendar
from attendwise.attendance.codes import decode
from attendwise.attendance.models import Pupil, PupilContact, PupilMarkYear
from attendwise.integrations import services, wonde
from attendwise.integrations.models import RunStatus, SyncRun
from attendwise.platform import tenancy
from attendwise.tenants.models import Organisation
from tests.integrations.ctf_generator import make_upn
from tests.integrations.wonde_server import Fault, WondeServer, WondeState, wonde_time

TOKEN = "test-app-token"
SCHOOL = "A1930499544"
START, END = dt.date(2025, 9, 1), dt.date(2025, 9, 30)
CODES = {
    "c-present-am": "/",
    "c-present-pm": "\\",
    "c-ill": "I",
    "c-unexplained": "N",
    "c-late": "L",
    "c-o": "O",
}


def school_days() -> list[dt.date]:
    return SchoolCalendar.england_default(2025).school_days(START, END)


def populate(state: WondeState, pupils: int = 5) -> None:
    rng = random.Random(4)
    for code_id, code in CODES.items():
        state.put("codes", {"id": code_id, "code": code, "description": code})
    for n in range(pupils):
        sid = f"S{n:03d}"
        state.put(
            "students",
            {
                "id": sid,
                "forename": f"Pupil{n}",
                "surname": "Wonde",
                "gender": "FEMALE" if n % 2 else "MALE",
                "date_of_birth": wonde_time(dt.datetime(2016, 1, 1 + n, tzinfo=dt.UTC)),
                "education_details": {"data": {"upn": make_upn(835, 2001, 21, 100 + n)}},
                "year": {"data": {"code": "4"}},
            },
        )
        state.put(
            "contacts",
            {
                "id": f"C{n:03d}",
                "forename": "Parent",
                "surname": f"Of{n}",
                "contact_details": {"data": {"phones": {"mobile": "07700 900123"}, "emails": {}}},
                "students": {
                    "data": [
                        {
                            "id": sid,
                            "relationship": {
                                "relationship": "Mother",
                                "parental_responsibility": True,
                                "priority": 1,
                            },
                        }
                    ]
                },
            },
        )
        for day in school_days():
            for session in ("AM", "PM"):
                roll = rng.random()
                code = (
                    "c-ill"
                    if roll < 0.05
                    else "c-unexplained"
                    if roll < 0.08
                    else f"c-present-{session.lower()}"
                )
                state.put(
                    "sessions",
                    {
                        "id": f"{sid}-{day.isoformat()}-{session}",
                        "student": sid,
                        "attendance_code": code,
                        "session": session,
                        "date": wonde_time(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)),
                        "minutes_late": None,
                    },
                )


@pytest.fixture
def server() -> Iterator[WondeServer]:
    state = WondeState(token=TOKEN, school=SCHOOL)
    populate(state)
    with WondeServer(state) as running:
        yield running


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(server: WondeServer, sleeps: Sleeps | None = None, **kwargs: Any) -> wonde.WondeClient:
    breakers: dict[str, wonde.CircuitBreaker] = {}
    return wonde.WondeClient(
        kwargs.pop("token", TOKEN),
        base_url=server.base_url,
        sleep=sleeps if sleeps is not None else Sleeps(),
        breakers=lambda school: breakers.setdefault(school, wonde.CircuitBreaker(threshold=3)),
        rng=random.Random(1),
        **kwargs,
    )


def sync(
    session: Session, school: Organisation, api: wonde.WondeClient, since: dt.datetime | None = None
) -> SyncRun:
    return services.run_import(
        session,
        school,
        connector="wonde",
        source=SCHOOL,
        work=lambda: wonde.sync_school(
            session, school, api, SCHOOL, start=START, end=END, updated_after=since
        ),
    )


def state_of(session: Session, school: Organisation) -> dict[str, Any]:
    """Everything a sync writes, keyed by UPN, for comparing two schools."""
    with tenancy.tenant_context(school.id):
        pupils = {p.id: p for p in session.scalars(select(Pupil).where(Pupil.org_id == school.id))}
        found: dict[str, Any] = {
            p.upn: {"name": (p.legal_forename, p.legal_surname, p.sex.value), "marks": {}, "contacts": set()}
            for p in pupils.values()
        }
        for link in session.scalars(select(PupilContact).where(PupilContact.org_id == school.id)):
            found[pupils[link.pupil_id].upn]["contacts"].add(
                (link.contact.surname, link.relationship_to_pupil)
            )
        for row in session.scalars(select(PupilMarkYear).where(PupilMarkYear.org_id == school.id)):
            codes = marks_codec.decode_year(row.codes, row.academic_year)
            for slot in codes.nonzero()[0]:
                day = dt.date(row.academic_year, 8, 1) + dt.timedelta(days=int(slot) // 2)
                found[pupils[row.pupil_id].upn]["marks"][(day, "AM" if slot % 2 == 0 else "PM")] = decode(
                    int(codes[slot])
                )
    return found


@pytest.fixture
def school(make_school: Callable[..., Organisation]) -> Organisation:
    return make_school()


def test_full_sync_follows_every_page_and_stores_the_school(
    db_session: Session, school: Organisation, server: WondeServer
) -> None:
    run = sync(db_session, school, client(server))

    assert run.status == RunStatus.SUCCEEDED
    assert run.rejected == 0
    stored = state_of(db_session, school)
    assert len(stored) == 5
    sessions = len(server.state.sessions)
    assert sum(len(p["marks"]) for p in stored.values()) == sessions
    assert all(p["contacts"] == {(f"Of{int(p['name'][0][5:])}", "Mother")} for p in stored.values())
    pages = [r for r in server.state.requests if "/attendance/session" in r]
    assert len(pages) == -(-sessions // server.state.max_per_page)
    assert all(f"Bearer {TOKEN}" for _ in pages)


def test_incremental_sync_reads_only_changes_and_applies_updates_and_deletions(
    db_session: Session, school: Organisation, server: WondeServer
) -> None:
    api = client(server)
    sync(db_session, school, api)
    cursor = server.state.clock
    state = server.state
    first_day = school_days()[0]
    state.put("sessions", {**state.sessions[f"S001-{first_day}-AM"], "attendance_code": "c-ill"})
    state.put("students", {**state.students["S002"], "surname": "Renamed"})
    upns = {s["id"]: s["education_details"]["data"]["upn"] for s in state.students.values()}
    state.delete("contact", "C003")
    state.delete("student", "S004")
    state.requests.clear()

    run = sync(db_session, school, api, since=cursor)

    assert run.status == RunStatus.SUCCEEDED
    assert (run.created, run.updated, run.deleted) == (0, 2, 1)
    assert all("updated_after=" in r for r in state.requests if "attendance-codes" not in r)
    stored = state_of(db_session, school)
    assert stored[upns["S001"]]["marks"][(first_day, "AM")] == "I"
    assert stored[upns["S002"]]["name"][1] == "Renamed"
    assert stored[upns["S003"]]["contacts"] == set()
    # A pupil deleted in the MIS keeps their statutory record here, and the school is told.
    assert len(stored) == 5
    assert stored[upns["S004"]]["marks"]
    with tenancy.tenant_context(school.id):
        [notice] = run.rejections
    assert notice.record == "student S004"
    assert "deleted in the MIS" in notice.reason


def test_a_sync_interrupted_by_failures_and_resumed_ends_as_an_uninterrupted_one(
    db_session: Session, make_school: Callable[..., Organisation], server: WondeServer
) -> None:
    steady, interrupted = make_school(), make_school()
    sync(db_session, steady, client(server))
    server.state.faults.append(Fault(path="/attendance/session", status=503, times=5))

    with pytest.raises(wonde.WondeError):
        sync(db_session, interrupted, client(server))
    with tenancy.tenant_context(interrupted.id):
        failed = db_session.scalars(select(SyncRun).where(SyncRun.org_id == interrupted.id)).one()
    assert failed.status == RunStatus.FAILED
    assert state_of(db_session, interrupted) == {}

    resumed = sync(db_session, interrupted, client(server))

    assert resumed.status == RunStatus.SUCCEEDED
    assert state_of(db_session, interrupted) == state_of(db_session, steady)


def test_the_same_sync_three_times_gives_identical_results(
    db_session: Session, school: Organisation, server: WondeServer
) -> None:
    api = client(server)
    runs = [sync(db_session, school, api) for _ in range(3)]
    snapshots = state_of(db_session, school)

    assert runs[0].created > 0
    assert [(r.created, r.updated, r.deleted) for r in runs[1:]] == [(0, 0, 0), (0, 0, 0)]
    assert runs[1].unchanged == runs[2].unchanged == runs[0].created
    assert snapshots == state_of(db_session, school)
    assert len(snapshots) == 5


def test_429_is_retried_after_retry_after_and_5xx_with_backoff(server: WondeServer) -> None:
    sleeps = Sleeps()
    server.state.faults += [
        Fault(path="/students", status=429, headers={"Retry-After": "7"}),
        Fault(path="/students", status=502, times=2),
    ]

    with client(server, sleeps) as api:
        students = list(api.students(SCHOOL))

    assert len(students) == 5
    assert sleeps[0] == 7
    assert len(sleeps) == 3
    assert all(0 <= s <= wonde.Retry().cap for s in sleeps[1:])


def test_a_timeout_is_retried(server: WondeServer) -> None:
    sleeps = Sleeps()
    server.state.faults.append(Fault(path="/attendance-codes", status=200, delay=1.5))

    with client(server, sleeps, timeout=0.5) as api:
        codes = list(api.attendance_codes(SCHOOL))

    assert {c["code"] for c in codes} == set(CODES.values())
    assert len(sleeps) == 1


def test_a_wrong_token_fails_at_once_and_the_run_is_recorded(
    db_session: Session, school: Organisation, server: WondeServer
) -> None:
    sleeps = Sleeps()

    with pytest.raises(wonde.WondeAuthError, match="approved Attendwise"):
        sync(db_session, school, client(server, sleeps, token="wrong"))

    assert sleeps == []
    assert len(server.state.requests) == 1
    with tenancy.tenant_context(school.id):
        run = db_session.scalars(select(SyncRun).where(SyncRun.org_id == school.id)).one()
    assert run.status == RunStatus.FAILED
    assert "WondeAuthError" in (run.error or "")


def test_the_circuit_breaker_stops_calling_a_failing_school(server: WondeServer) -> None:
    server.state.faults.append(Fault(path="/students", status=500, times=100))
    now = [0.0]
    breaker = wonde.CircuitBreaker(threshold=3, cool_down=60, clock=lambda: now[0])
    api = wonde.WondeClient(
        TOKEN,
        base_url=server.base_url,
        sleep=Sleeps(),
        breakers=lambda _school: breaker,
        rng=random.Random(1),
    )

    with pytest.raises(wonde.CircuitOpen, match="paused"):
        list(api.students(SCHOOL))
    calls = len(server.state.requests)
    with pytest.raises(wonde.CircuitOpen):
        list(api.students(SCHOOL))

    assert calls == 3
    assert len(server.state.requests) == calls
    server.state.faults.clear()
    now[0] = 61.0
    assert len(list(api.students(SCHOOL))) == 5
    assert breaker.failures == 0
    api.close()


def test_two_syncs_of_one_school_at_once_cannot_both_run(
    db_session: Session, school: Organisation, server: WondeServer
) -> None:
    with tenancy.tenant_context(school.id):
        services.start_run(db_session, school.id, connector="wonde", source=SCHOOL)
        db_session.commit()

    with pytest.raises(services.SyncInProgress):
        sync(db_session, school, client(server))

    assert state_of(db_session, school) == {}
    assert server.state.requests == []
