"""A file import that failed half-way keeps its file and is retried from the MIS data page."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.attendance.models import Pupil
from attendwise.integrations import services
from attendwise.integrations.models import RunStatus, SyncRun, SyncRunFile
from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from attendwise.tenants.models import Organisation
from tests.conftest import csrf_token
from tests.integrations import ctf_generator as gen
from tests.integrations.test_import import count, pupils, stored_marks
from tests.integrations.test_views import upload


def fail_storing_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first import stores its batch, then the connection is lost: a failure half-way."""
    real = services.store
    calls = iter(range(1, 1000))

    def store(*args: Any, **kwargs: Any) -> Any:
        stored = real(*args, **kwargs)
        if next(calls) == 1:
            raise ConnectionError("the database connection was lost")
        return stored

    monkeypatch.setattr(services, "store", store)


def run_id(response: Any) -> int:
    found = re.search(r"run=(\d+)", response.headers["Location"])
    assert found, response.headers["Location"]
    return int(found.group(1))


def retry(client: FlaskClient, run: int) -> Any:
    token = csrf_token(client, "/integrations")
    return client.post(f"/integrations/runs/{run}/retry", data={"csrf_token": token})


def get_run(session: Session, school: Organisation, run: int) -> SyncRun:
    with tenancy.tenant_context(school.id):
        found = session.get(SyncRun, run)
        assert found is not None
        session.refresh(found)
        return found


def test_a_ctf_import_that_failed_half_way_is_retried_with_the_kept_file(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_school: Callable[..., Organisation],
    make_user: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    school = make_school()
    login(make_user(school, "school_admin"))
    made = pupils(3, seed=71)
    fail_storing_once(monkeypatch)

    sent = upload(client, gen.to_bytes(gen.build(made)), name="autumn.xml")

    failed = run_id(sent)
    page = client.get(sent.headers["Location"]).get_data(as_text=True)
    assert get_run(db_session, school, failed).status == RunStatus.FAILED
    assert "ConnectionError: the database connection was lost" in page
    assert 'data-testid="retry-run"' in page
    assert "Retry imports autumn.xml again" in page
    assert count(db_session, school, Pupil) == 0
    assert count(db_session, school, SyncRunFile) == 1

    retried = retry(client, failed)

    assert retried.status_code == 303
    again = get_run(db_session, school, run_id(retried))
    assert again.id != failed
    assert again.status == RunStatus.SUCCEEDED
    assert again.source == f"retry of run {failed}: autumn.xml"
    assert again.detail["pupils"]["created"] == 3
    assert stored_marks(db_session, school) == {p.upn: p.marks() for p in made}
    assert count(db_session, school, SyncRunFile) == 0
    shown = client.get(retried.headers["Location"]).get_data(as_text=True)
    assert f"imported as run {again.id}" in shown
    assert 'data-testid="retry-run"' not in shown
    with tenancy.tenant_context(school.id):
        actions = db_session.scalars(
            select(AuditEvent.action).where(
                AuditEvent.org_id == school.id, AuditEvent.object_type == "sync_run"
            )
        ).all()
    assert "integrations.file_kept" in actions
    assert "integrations.file_discarded" in actions
    assert retry(client, failed).status_code == 409


def test_a_retry_that_fails_again_keeps_the_file_for_the_newest_run(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_school: Callable[..., Organisation],
    make_user: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    school = make_school()
    login(make_user(school, "school_admin"))
    fail_storing_once(monkeypatch)
    failed = run_id(upload(client, gen.to_bytes(gen.build(pupils(2, seed=72)))))
    fail_storing_once(monkeypatch)

    retried = retry(client, failed)

    second = run_id(retried)
    assert get_run(db_session, school, second).status == RunStatus.FAILED
    page = client.get(retried.headers["Location"]).get_data(as_text=True)
    assert "failed again" in page
    assert 'data-testid="retry-run"' in page
    assert retry(client, failed).status_code == 409
    assert get_run(db_session, school, run_id(retry(client, second))).status == RunStatus.SUCCEEDED
    assert count(db_session, school, Pupil) == 2
    assert count(db_session, school, SyncRunFile) == 0


def test_a_successful_import_keeps_no_file_and_cannot_be_retried(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_school: Callable[..., Organisation],
    make_user: Callable[..., Any],
) -> None:
    school = make_school()
    login(make_user(school, "school_admin"))

    sent = upload(client, gen.to_bytes(gen.build(pupils(2, seed=73))))

    done = run_id(sent)
    assert get_run(db_session, school, done).status == RunStatus.SUCCEEDED
    assert count(db_session, school, SyncRunFile) == 0
    assert 'data-testid="retry-run"' not in client.get(sent.headers["Location"]).get_data(as_text=True)
    refused = retry(client, done)
    assert refused.status_code == 409
    assert "Only a failed sync can be retried" in refused.get_data(as_text=True)


def test_another_schools_failed_import_is_not_found_and_other_roles_are_forbidden(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_school: Callable[..., Organisation],
    make_user: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mine, theirs = make_school(), make_school()
    login(make_user(theirs, "school_admin"))
    fail_storing_once(monkeypatch)
    their_run = run_id(upload(client, gen.to_bytes(gen.build(pupils(1, seed=74)))))
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/integrations")})

    login(make_user(mine, "school_admin"))
    assert retry(client, their_run).status_code == 404
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/integrations")})

    login(make_user(theirs, "attendance_officer"))
    token = csrf_token(client, "/")
    assert client.post(f"/integrations/runs/{their_run}/retry", data={"csrf_token": token}).status_code == 403
    assert count(db_session, theirs, SyncRunFile) == 1
    assert count(db_session, theirs, Pupil) == 0
