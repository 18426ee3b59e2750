"""A school's Wonde connection: settings with an encrypted token, daily syncs, Sync now, Retry.

Syncs run for real: the jobs run inline (no Redis in tests) against the local Wonde server.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from attendwise.attendance import queries as attendance_queries
from attendwise.attendance.models import Pupil
from attendwise.casework import jobs as casework_jobs
from attendwise.integrations import connectors, services
from attendwise.integrations.cli import connectors_group
from attendwise.integrations.models import ConnectorSettings, RunStatus, SyncRun
from attendwise.platform import crypto, tenancy
from attendwise.platform.audit import AuditEvent
from attendwise.tenants.models import Organisation
from tests.conftest import csrf_token
from tests.integrations.ctf_generator import make_upn
from tests.integrations.wonde_server import WondeServer, WondeState, wonde_time

TOKEN = "wonde-app-token-5f3a9c2e71"
SCHOOL = "A1930499544"
DAYS = [dt.date(2026, 11, 2) + dt.timedelta(days=n) for n in range(12) if (2 + n) % 7 not in (0, 1)]
SCHOOL_DAY = dt.date(2026, 11, 13)


def populate(state: WondeState, pupils: int = 3) -> None:
    for code_id, code in {"c-am": "/", "c-pm": "\\", "c-n": "N"}.items():
        state.put("codes", {"id": code_id, "code": code})
    for n in range(pupils):
        sid = f"S{n:03d}"
        state.put(
            "students",
            {
                "id": sid,
                "forename": f"Pupil{n}",
                "surname": "Wonde",
                "gender": "FEMALE",
                "date_of_birth": wonde_time(dt.datetime(2017, 3, 1 + n, tzinfo=dt.UTC)),
                "education_details": {"data": {"upn": make_upn(835, 2001, 22, 300 + n)}},
                "year": {"data": {"code": "4"}},
            },
        )
        for day in DAYS:
            for session in ("AM", "PM"):
                code = "c-n" if (n, day, session) == (0, DAYS[3], "AM") else f"c-{session.lower()}"
                state.put(
                    "sessions",
                    {
                        "id": f"{sid}-{day}-{session}",
                        "student": sid,
                        "attendance_code": code,
                        "session": session,
                        "date": wonde_time(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)),
                    },
                )


@pytest.fixture
def server(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[WondeServer]:
    # Wonde's clock is now: records it changes after a sync are newer than that sync's cursor.
    state = WondeState(token=TOKEN, school=SCHOOL, clock=dt.datetime.now(dt.UTC))
    populate(state)
    with WondeServer(state) as running:
        monkeypatch.setitem(app.config, "WONDE_BASE_URL", running.base_url)
        yield running


@pytest.fixture
def school(make_school: Callable[..., Organisation]) -> Organisation:
    return make_school()


@pytest.fixture
def admin_client(
    client: FlaskClient, login: Callable[..., Any], make_user: Callable[..., Any], school: Organisation
) -> FlaskClient:
    login(make_user(school, "school_admin"))
    return client


def save(
    session: Session,
    school: Organisation,
    *,
    token: str = TOKEN,
    sync_at: str = "18:00",
    enabled: bool = True,
) -> ConnectorSettings:
    with tenancy.tenant_context(school.id):
        saved = connectors.save_settings(
            session,
            school.id,
            connectors.SettingsForm(
                connector="wonde", mis_school_id=SCHOOL, token=token, sync_at=sync_at, enabled=enabled
            ),
        )
        session.commit()
    return saved


def post_settings(client: FlaskClient, **fields: str) -> Any:
    token = csrf_token(client, "/integrations/connector")
    form = {"connector": "wonde", "mis_school_id": SCHOOL, "sync_at": "18:00", "enabled": "yes", **fields}
    return client.post("/integrations/connector", data={"csrf_token": token, **form})


@dataclass(frozen=True)
class Run:
    id: int
    status: RunStatus
    connector: str
    source: str
    created: int
    updated: int


def runs(session: Session, school: Organisation) -> list[Run]:
    """The school's runs, oldest first, read now (the rows expire when a sync commits)."""
    session.expire_all()  # a sync job's own session may have changed rows this one holds
    with tenancy.tenant_context(school.id):
        rows = session.scalars(select(SyncRun).where(SyncRun.org_id == school.id).order_by(SyncRun.id))
        return [Run(r.id, r.status, r.connector, r.source, r.created, r.updated) for r in rows]


def audit_text(session: Session, school: Organisation) -> str:
    with tenancy.tenant_context(school.id):
        rows = session.execute(
            select(AuditEvent.action, AuditEvent.detail).where(AuditEvent.org_id == school.id)
        ).all()
    return "\n".join(f"{action} {detail}" for action, detail in rows)


# ---- the settings page ------------------------------------------------------------------------


def test_the_token_is_stored_encrypted_and_never_shown_logged_or_audited(
    admin_client: FlaskClient, db_session: Session, school: Organisation, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first = admin_client.get("/integrations/connector")
    assert first.status_code == 200
    assert "Bearer token" in first.get_data(as_text=True)

    saved = post_settings(admin_client, token=TOKEN)
    assert saved.status_code == 303
    page = admin_client.get(saved.headers["Location"]).get_data(as_text=True)
    index = admin_client.get("/integrations").get_data(as_text=True)

    with tenancy.tenant_context(school.id):
        row = db_session.scalar(select(ConnectorSettings).where(ConnectorSettings.org_id == school.id))
    assert row is not None
    assert row.token_encrypted is not None
    assert TOKEN not in row.token_encrypted
    assert crypto.decrypt(row.token_encrypted) == TOKEN
    assert "Connector settings saved." in page
    assert "A token was saved on" in page
    assert "is not shown again" in page
    assert "Replace the token (optional)" in page
    assert "Wonde (school A1930499544)" in index
    assert "at 18:00 (Europe/London)" in index
    for html in (page, index):
        assert TOKEN not in html
        assert row.token_encrypted not in html
    assert TOKEN not in caplog.text
    trail = audit_text(db_session, school)
    assert "integrations.connector_created" in trail
    assert '"token": "replaced"' in trail
    assert TOKEN not in trail
    assert row.token_encrypted not in trail


def test_an_empty_token_keeps_the_saved_one_and_a_new_one_replaces_it(
    admin_client: FlaskClient, db_session: Session, school: Organisation
) -> None:
    post_settings(admin_client, token=TOKEN)
    with tenancy.tenant_context(school.id):
        before = db_session.scalar(select(ConnectorSettings.token_encrypted))

    kept = post_settings(admin_client, token="", sync_at="06:30", enabled="")
    off = admin_client.get("/integrations").get_data(as_text=True)
    with tenancy.tenant_context(school.id):
        row = db_session.scalar(select(ConnectorSettings))
        assert row is not None
        db_session.refresh(row)
        assert (row.token_encrypted, row.sync_at, row.enabled) == (before, dt.time(6, 30), False)
    replaced = post_settings(admin_client, token="a-brand-new-token-0042")
    with tenancy.tenant_context(school.id):
        db_session.refresh(row)
        assert row.token_encrypted is not None
        assert crypto.decrypt(row.token_encrypted) == "a-brand-new-token-0042"

    assert kept.status_code == replaced.status_code == 303
    assert '"token": "kept"' in audit_text(db_session, school)
    assert re.search(r"Daily sync\s*</dt>\s*<dd[^>]*>\s*Off\s*<", off)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"token": ""}, "token", "Enter the bearer token Wonde gave you"),
        ({"token": TOKEN, "mis_school_id": "A19 30/1"}, "mis_school_id", "only letters, digits"),
        ({"token": TOKEN, "mis_school_id": ""}, "mis_school_id", "Wonde ID, like A1930499544"),
        ({"token": TOKEN, "sync_at": "25:00"}, "sync_at", "24-hour clock"),
        ({"token": "short"}, "token", "must be 8 to 500 characters"),
        ({"token": "two words-here"}, "token", "has a space or line break"),
        ({"token": TOKEN, "connector": "arbor"}, "connector", "Choose a connector"),
    ],
)
def test_bad_settings_are_refused_naming_the_field_and_nothing_is_saved(
    admin_client: FlaskClient,
    db_session: Session,
    school: Organisation,
    fields: dict[str, str],
    field: str,
    message: str,
) -> None:
    refused = post_settings(admin_client, **fields)

    html = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert message in html
    assert f'href="#{field}"' in html
    assert fields.get("token") in ("", None) or fields["token"] not in html
    with tenancy.tenant_context(school.id):
        assert db_session.scalar(select(func.count(ConnectorSettings.id))) == 0


def test_other_roles_cannot_see_or_change_the_connection(
    client: FlaskClient, login: Callable[..., Any], make_user: Callable[..., Any], school: Organisation
) -> None:
    login(make_user(school, "school_staff"))

    assert client.get("/integrations/connector").status_code == 403


def test_rotating_the_key_reencrypts_every_token(
    app: Flask, db_session: Session, school: Organisation, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setitem(app.config, "ENCRYPTION_KEYS", old)
    row = save(db_session, school)
    runner = app.test_cli_runner()

    monkeypatch.setitem(app.config, "ENCRYPTION_KEYS", Fernet.generate_key().decode())
    refused = runner.invoke(connectors_group, ["rotate-keys"])
    monkeypatch.setitem(app.config, "ENCRYPTION_KEYS", f"{new},{old}")
    rotated = runner.invoke(connectors_group, ["rotate-keys"])
    monkeypatch.setitem(app.config, "ENCRYPTION_KEYS", new)

    assert refused.exit_code == 1
    assert f"organisation(s) {school.id}" in refused.output
    assert "nothing was changed" in refused.output
    assert rotated.exit_code == 0, rotated.output
    assert "re-encrypted 1 connector token(s)" in rotated.output
    with tenancy.tenant_context(school.id):
        db_session.refresh(row)
    assert row.token_encrypted is not None
    assert crypto.decrypt(row.token_encrypted) == TOKEN


# ---- syncing ------------------------------------------------------------------------------------


def test_the_daily_sync_runs_once_a_day_after_the_schools_local_time(
    db_session: Session, school: Organisation, server: WondeServer
) -> None:
    save(db_session, school, sync_at="18:00")
    summer = dt.datetime(2026, 7, 1, 16, 59, tzinfo=dt.UTC)  # 17:59 in London (BST)

    def sweep(now: dt.datetime) -> list[int]:
        with tenancy.system_context("test: scheduler sweep"):
            queued = connectors.queue_due_syncs(db_session, now)
            db_session.commit()
        return queued

    before = sweep(summer)
    at_time = sweep(summer + dt.timedelta(minutes=1))
    again = sweep(summer + dt.timedelta(hours=5))
    next_day = sweep(summer + dt.timedelta(days=1, minutes=30))

    assert before == []
    assert again == []
    assert at_time == next_day == [school.id]
    done = runs(db_session, school)
    assert [r.status for r in done] == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]
    assert done[0].connector == "wonde"
    assert done[0].source == SCHOOL
    assert done[0].created > 0
    assert done[1].created == 0
    with tenancy.tenant_context(school.id):
        assert db_session.scalar(select(func.count(Pupil.id))) == 3


def test_the_days_sync_counts_as_finished_once_a_run_after_its_time_has_ended(
    db_session: Session, school: Organisation
) -> None:
    save(db_session, school, sync_at="18:00")
    evening = dt.datetime(2026, 12, 1, 18, 40, tzinfo=dt.UTC)  # 18:40 in London (GMT)

    def run(status: RunStatus, minutes_before: int) -> SyncRun:
        started = evening - dt.timedelta(minutes=minutes_before)
        row = SyncRun(org_id=school.id, connector="wonde", source=SCHOOL, status=status, started_at=started)
        db_session.add(row)
        db_session.flush()
        return row

    with tenancy.tenant_context(school.id):
        nothing_yet = connectors.daily_sync(db_session, school, evening)
        run(RunStatus.SUCCEEDED, minutes_before=120)  # a "Sync now" at 16:40 is not today's sync
        only_earlier = connectors.daily_sync(db_session, school, evening)
        todays = run(RunStatus.RUNNING, minutes_before=30)
        running = connectors.daily_sync(db_session, school, evening)
        todays.status = RunStatus.FAILED
        db_session.flush()
        failed = connectors.daily_sync(db_session, school, evening)
    save(db_session, school, enabled=False)
    with tenancy.tenant_context(school.id):
        switched_off = connectors.daily_sync(db_session, school, evening)

    assert nothing_yet == connectors.DailySync(at=dt.time(18, 0), finished=False)
    assert only_earlier == running == nothing_yet
    assert failed == connectors.DailySync(at=dt.time(18, 0), finished=True)
    assert switched_off is None


def test_with_redis_the_scheduled_sync_is_an_rq_job_on_the_sync_queue(
    db_session: Session, school: Organisation, server: WondeServer, redis_jobs: tuple[Redis, str]
) -> None:
    conn, prefix = redis_jobs
    save(db_session, school, sync_at="07:00")
    with tenancy.system_context("test: scheduler sweep"):
        connectors.queue_due_syncs(db_session, dt.datetime(2026, 11, 3, 7, 5, tzinfo=dt.UTC))
        db_session.commit()
    sync_queue = Queue(prefix + "sync", connection=conn)

    (job_id,) = sync_queue.job_ids
    job = sync_queue.fetch_job(job_id)
    assert job is not None
    func, org_id, _actor, args, kwargs = job.args
    assert (func, org_id, args, kwargs) == (
        "attendwise.integrations.jobs.sync_school",
        school.id,
        (school.id,),
        {},
    )
    assert job.timeout == connectors.SYNC_TIMEOUT
    assert runs(db_session, school) == [], "nothing ran in the scheduler's process"
    result = job.perform()  # what a worker does with it
    assert result["status"] == "succeeded"
    assert [r.status for r in runs(db_session, school)] == [RunStatus.SUCCEEDED]


def test_a_disabled_connection_is_never_synced_on_schedule(
    db_session: Session, school: Organisation, server: WondeServer
) -> None:
    save(db_session, school, sync_at="00:00", enabled=False)

    with tenancy.system_context("test: scheduler sweep"):
        queued = connectors.queue_due_syncs(db_session, dt.datetime(2026, 11, 3, 12, tzinfo=dt.UTC))

    assert queued == []
    assert server.state.requests == []


def test_sync_now_pulls_the_school_and_the_page_lists_the_run(
    admin_client: FlaskClient,
    db_session: Session,
    school: Organisation,
    server: WondeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    save(db_session, school)
    token = csrf_token(admin_client, "/integrations")

    started = admin_client.post("/integrations/sync", data={"csrf_token": token})
    page = admin_client.get(started.headers["Location"]).get_data(as_text=True)

    assert started.status_code == 303
    (run,) = runs(db_session, school)
    assert run.status == RunStatus.SUCCEEDED
    assert run.created == 3 + 3 * 2 * len(DAYS)
    assert "Sync started" in page
    assert f"wonde {SCHOOL}" in page
    assert "HTTP Request: GET" in caplog.text  # the client's requests were logged, without the token
    assert TOKEN not in caplog.text
    assert TOKEN not in page


def test_sync_now_without_a_connection_or_during_a_sync_is_refused_with_the_reason(
    admin_client: FlaskClient, db_session: Session, school: Organisation, server: WondeServer
) -> None:
    token = csrf_token(admin_client, "/integrations")
    unconnected = admin_client.post("/integrations/sync", data={"csrf_token": token})
    save(db_session, school)
    with tenancy.tenant_context(school.id):
        services.start_run(db_session, school.id, connector="ctf", source="big.xml")
        db_session.commit()
    busy = admin_client.post("/integrations/sync", data={"csrf_token": token})

    assert unconnected.status_code == 400
    assert "Set up the school&#39;s Wonde connection first" in unconnected.get_data(as_text=True)
    assert busy.status_code == 409
    assert "a ctf sync of this school has been running since" in busy.get_data(as_text=True)
    assert server.state.requests == []
    assert len(runs(db_session, school)) == 1


def test_sync_now_is_not_held_up_by_a_run_whose_process_died(
    admin_client: FlaskClient, db_session: Session, school: Organisation, server: WondeServer
) -> None:
    save(db_session, school)
    with tenancy.tenant_context(school.id):
        dead = services.start_run(db_session, school.id, connector="wonde", source=SCHOOL)
        dead.started_at = dead.started_at - services.STALE_AFTER - dt.timedelta(minutes=5)
        db_session.commit()
    token = csrf_token(admin_client, "/integrations")

    started = admin_client.post("/integrations/sync", data={"csrf_token": token})

    assert started.status_code == 303
    assert [r.status for r in runs(db_session, school)] == [RunStatus.FAILED, RunStatus.SUCCEEDED]


def test_a_failed_sync_is_shown_with_its_reason_and_retried(
    admin_client: FlaskClient, db_session: Session, school: Organisation, server: WondeServer
) -> None:
    save(db_session, school, token="revoked-token-000")
    token = csrf_token(admin_client, "/integrations")
    admin_client.post("/integrations/sync", data={"csrf_token": token})
    (failed,) = runs(db_session, school)
    shown = admin_client.get(f"/integrations?run={failed.id}").get_data(as_text=True)

    server.state.token = "revoked-token-000"
    retried = admin_client.post(f"/integrations/runs/{failed.id}/retry", data={"csrf_token": token})
    again = admin_client.post(f"/integrations/runs/{failed.id + 1}/retry", data={"csrf_token": token})

    assert failed.status == RunStatus.FAILED
    assert "Wonde refused access to school A1930499544 (401)" in shown
    assert 'data-testid="retry-run"' in shown
    assert retried.status_code == 303
    _first, second = runs(db_session, school)
    assert second.status == RunStatus.SUCCEEDED
    assert second.created > 0
    assert again.status_code == 409
    assert "Only a failed sync can be retried" in again.get_data(as_text=True)
    assert f'"retry_of": {failed.id}' in audit_text(db_session, school)


def test_a_failed_file_import_is_not_retried_from_the_page(
    admin_client: FlaskClient, db_session: Session, school: Organisation
) -> None:
    with tenancy.tenant_context(school.id):
        run = services.start_run(db_session, school.id, connector="ctf", source="school.xml")
        services.fail_run(db_session, run.id, "ValueError: broken")
        db_session.commit()
    token = csrf_token(admin_client, "/integrations")

    shown = admin_client.get(f"/integrations?run={run.id}").get_data(as_text=True)
    refused = admin_client.post(f"/integrations/runs/{run.id}/retry", data={"csrf_token": token})

    assert "ValueError: broken" in shown
    assert 'data-testid="retry-run"' not in shown
    assert refused.status_code == 409
    assert "A file import is retried by uploading the file again" in refused.get_data(as_text=True)


def test_a_wonde_sync_that_changes_marks_evaluates_the_school_again(
    db_session: Session, school: Organisation, server: WondeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluated: list[int] = []
    real = casework_jobs.evaluate_school

    def evaluate_school(org_id: int, on: str | None = None) -> dict[str, object]:
        evaluated.append(org_id)
        return real(org_id, on)

    monkeypatch.setattr(casework_jobs, "evaluate_school", evaluate_school)
    monkeypatch.setattr(attendance_queries, "today", lambda: SCHOOL_DAY)
    save(db_session, school)

    with tenancy.system_context("test"):
        first = connectors.sync(db_session, school)
    after_first = list(evaluated)
    with tenancy.system_context("test"):
        unchanged = connectors.sync(db_session, school)
    after_unchanged = list(evaluated)
    server.state.put("sessions", {**server.state.sessions[f"S001-{DAYS[5]}-PM"], "attendance_code": "c-n"})
    with tenancy.system_context("test"):
        changed = connectors.sync(db_session, school)

    assert first.created > 0
    assert unchanged.created == unchanged.updated == 0
    assert changed.updated == 1
    assert after_first == [school.id]
    assert after_unchanged == [school.id]
    assert evaluated == [school.id, school.id]
