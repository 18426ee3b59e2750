"""The sweeper on real Redis and a real RQ worker: one pending job per letter or run.

After an outage the sweeper re-queues what Redis lost, but a render, send or bulk run whose
job is still waiting is left to that job, however long the queue: two sweeps in a row queue
one job, not two, and a job on a worker that still beats is left alone. A job that ended,
that Redis lost or whose worker died is re-queued, and a resend after a finished send goes
out.
"""

from __future__ import annotations

import datetime as dt
import signal

import pytest
from flask import Flask
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from sqlalchemy import update
from sqlalchemy.orm import Session

from attendwise.letters import jobs, services
from attendwise.letters.models import Letter, LetterRun, LetterStatus, RunStatus
from attendwise.platform import jobs as platform_jobs
from attendwise.platform import tenancy
from attendwise.platform.db import utcnow
from tests.letters.conftest import ON, LetterSchool, Received
from tests.letters.test_runs import add_task


def rq_id(app: Flask, kind: str, ident: int) -> str:
    """The id RQ keeps a letter's render or send, or a run, under."""
    return platform_jobs.rq_job_id(app, services.job_id(kind, ident))


def queued(conn: Redis, prefix: str, queue: str) -> list[str]:
    return Queue(prefix + queue, connection=conn).job_ids


def work(conn: Redis, prefix: str, queue: str) -> None:
    """What a worker does: run every job queued on ``queue`` (in this process, so the jobs see
    this test's transaction). The worker's Ctrl+C and SIGTERM handlers are undone after."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        SimpleWorker([Queue(prefix + queue, connection=conn)], connection=conn).work(burst=True)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def lose_everything(conn: Redis, prefix: str) -> None:
    """A Redis restart without persistence: every queued job is gone."""
    for name in platform_jobs.QUEUES:
        Queue(prefix + name, connection=conn).delete(delete_jobs=True)


def sweep(minutes: int) -> dict[str, int]:
    return jobs.sweep_school((utcnow() + dt.timedelta(minutes=minutes)).isoformat())


def sweep_twice(session: Session, what: str) -> list[int]:
    """Two sweeps in a row, past ``STUCK_AFTER``: how many of ``what`` each re-queued."""
    counts = []
    for minutes in (11, 16):
        counts.append(sweep(minutes)[what])
        session.commit()
    return counts


def _letter(session: Session, letter_id: int) -> Letter:
    session.expire_all()
    return session.get_one(Letter, letter_id)


def email_letter(session: Session, letter_school: LetterSchool) -> int:
    """Queue a letter to the mother by email and commit: its render job goes to Redis."""
    [letter_id] = services.queue_letter(
        session,
        letter_school.school.id,
        letter_school.pupil.id,
        "dothill-reminder",
        None,
        [letter_school.mother_id],
        channel="email",
        on=ON,
    )
    session.commit()
    return letter_id


def test_a_render_still_queued_is_not_queued_again_and_one_lost_with_redis_is(
    app: Flask,
    db_session: Session,
    letter_school: LetterSchool,
    smtp_server: Received,
    redis_jobs: tuple[Redis, str],
) -> None:
    conn, prefix = redis_jobs
    with tenancy.tenant_context(letter_school.school.id):
        letter_id = email_letter(db_session, letter_school)
        render = rq_id(app, "render", letter_id)
        assert queued(conn, prefix, "pdf") == [render]

        # The PDF worker is slow: the letter is overdue but its render job still waits.
        assert sweep_twice(db_session, "render") == [0, 0]
        assert queued(conn, prefix, "pdf") == [render]

        lose_everything(conn, prefix)
        assert sweep_twice(db_session, "render") == [1, 0]  # the second finds the first's job waiting
        assert queued(conn, prefix, "pdf") == [render]

        work(conn, prefix, "pdf")
        assert _letter(db_session, letter_id).status == LetterStatus.RENDERED
        assert queued(conn, prefix, "letters") == [rq_id(app, "send", letter_id)]
        assert sweep(11)["send"] == 0
        db_session.commit()
        work(conn, prefix, "letters")
        assert _letter(db_session, letter_id).status == LetterStatus.SENT
        assert len(smtp_server.messages) == 1
        assert sweep(30) == {"render": 0, "send": 0, "uncertain": 0, "run": 0}


def test_a_send_whose_job_finished_is_sent_again_by_the_sweeper_and_by_a_resend(
    app: Flask,
    db_session: Session,
    letter_school: LetterSchool,
    smtp_server: Received,
    redis_jobs: tuple[Redis, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn, prefix = redis_jobs
    port = app.config["MAIL_PORT"]
    monkeypatch.setitem(app.config, "MAIL_PORT", 1)  # nothing listens there: every hand-over is refused
    with tenancy.tenant_context(letter_school.school.id):
        letter_id = email_letter(db_session, letter_school)
        work(conn, prefix, "pdf")
        work(conn, prefix, "letters")
        send = Job.fetch(rq_id(app, "send", letter_id), connection=conn)
        assert send.get_status() == JobStatus.FINISHED
        assert _letter(db_session, letter_id).status == LetterStatus.RETRY

        for attempt in range(2, services.MAX_ATTEMPTS + 1):
            assert sweep_twice(db_session, "send") == [1, 0], f"attempt {attempt}"
            assert queued(conn, prefix, "letters") == [send.id]
            work(conn, prefix, "letters")
        letter = _letter(db_session, letter_id)
        assert (letter.status, letter.attempts) == (LetterStatus.FAILED, services.MAX_ATTEMPTS)
        assert send.get_status() == JobStatus.FINISHED

        monkeypatch.setitem(app.config, "MAIL_PORT", port)
        assert services.resend(db_session, letter_school.school.id, letter_id)
        db_session.commit()
        assert queued(conn, prefix, "letters") == [send.id]
        work(conn, prefix, "letters")
        assert _letter(db_session, letter_id).status == LetterStatus.SENT
        assert len(smtp_server.messages) == 1


def test_a_send_on_a_worker_that_still_beats_is_left_to_it_and_one_whose_worker_died_is_not(
    app: Flask,
    db_session: Session,
    letter_school: LetterSchool,
    smtp_server: Received,
    redis_jobs: tuple[Redis, str],
) -> None:
    conn, prefix = redis_jobs
    with tenancy.tenant_context(letter_school.school.id):
        letter_id = email_letter(db_session, letter_school)
        work(conn, prefix, "pdf")
        # A worker took the send job (as RQ records it) and has not claimed the letter for
        # eleven minutes.
        send = Job.fetch(rq_id(app, "send", letter_id), connection=conn)
        Queue(prefix + "letters", connection=conn).remove(send)
        send.set_status(JobStatus.STARTED)
        eleven_minutes_ago = utcnow() - dt.timedelta(minutes=11)
        db_session.execute(update(Letter).where(Letter.id == letter_id).values(updated_at=eleven_minutes_ago))
        db_session.commit()

        send.heartbeat(utcnow(), 90)
        assert sweep(0)["send"] == 0, "its worker still beats"
        db_session.commit()
        send.heartbeat(utcnow() - dt.timedelta(minutes=2), 90)
        assert sweep(0)["send"] == 1, "its worker died"
        db_session.commit()
        assert queued(conn, prefix, "letters") == [send.id]

        work(conn, prefix, "letters")
        assert _letter(db_session, letter_id).status == LetterStatus.SENT
        assert len(smtp_server.messages) == 1


def test_a_bulk_run_still_queued_is_not_queued_again_and_one_lost_with_redis_is(
    app: Flask, db_session: Session, letter_school: LetterSchool, redis_jobs: tuple[Redis, str]
) -> None:
    conn, prefix = redis_jobs
    school = letter_school.school
    add_task(db_session, school.id, letter_school.pupil.id, "dothill-sal1", ON)
    with tenancy.tenant_context(school.id):
        run_id = services.start_run(db_session, school.id, ON, user_id=None).id
        db_session.commit()
        job = rq_id(app, "run", run_id)
        assert queued(conn, prefix, "pdf") == [job]

        assert sweep_twice(db_session, "run") == [0, 0]
        assert queued(conn, prefix, "pdf") == [job]

        lose_everything(conn, prefix)
        assert sweep_twice(db_session, "run") == [1, 0]
        assert queued(conn, prefix, "pdf") == [job]

        work(conn, prefix, "pdf")
        db_session.expire_all()
        assert db_session.get_one(LetterRun, run_id).status == RunStatus.RENDERED
