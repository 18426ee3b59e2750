"""Letter jobs: render, send, and the sweeper that finds letters whose job was lost.

RQ may lose a job (Redis restart, a killed worker); the letter row never is. Every
:data:`SWEEP_EVERY` seconds the sweeper, per school:

* re-queues the render of letters ``queued`` (or stuck ``rendering``) for over
  :data:`STUCK_AFTER` — rendering has no outside effect, so doing it again is safe;
* re-queues the send of emails ``rendered`` or ``retry`` whose send job is overdue (a bulk
  run's emails only once someone released them);
* re-queues a bulk run whose job was lost or stopped (no progress for :data:`STUCK_AFTER`);
* reconciles emails stuck in ``sending``: SMTP offers no way to ask whether a message was
  accepted, so such a letter is never resent automatically. It is marked ``failed`` with
  "delivery uncertain" and its Message-ID, for a person to check and resend
  (:func:`attendwise.letters.services.resend`). That is the price of never sending twice.

Each render, send and bulk run has one RQ job id (:func:`attendwise.letters.services.job_id`).
A letter or run whose job is still pending (queued, or started on a worker that still beats)
is left to that job, so a long queue never fills with copies; one whose job ended, or was
lost with Redis, is re-queued.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select, update

from attendwise.letters import services
from attendwise.letters.models import Channel, Letter, LetterRun, LetterStatus, RunStatus
from attendwise.platform import audit, jobs, tenancy
from attendwise.platform.db import db, sync_tenant, utcnow

SWEEP_EVERY = 300  # seconds
STUCK_AFTER = dt.timedelta(minutes=10)
SENDING_TIMEOUT = dt.timedelta(minutes=15)


def render_letter(letter_id: int) -> bool:
    return services.render_letter(db.session(), letter_id)


def send_letter(letter_id: int) -> bool:
    return services.send_letter(db.session(), letter_id)


def render_run(run_id: int, on: str) -> bool:
    session = db.session()
    return services.render_run(session, run_id, dt.date.fromisoformat(on), checkpoint=session.commit)


def sweep() -> list[int]:
    """Periodic (system context): one sweep job per school."""
    return jobs.fan_out(sweep_school, queue="letters")


def sweep_school(now: str | None = None) -> dict[str, int]:
    """Re-queue or reconcile this school's stuck letters; returns counts by what was done."""
    session = db.session()
    org_id = tenancy.require().org_id
    moment = dt.datetime.fromisoformat(now) if now else utcnow()
    counts = {"render": 0, "send": 0, "uncertain": 0, "run": 0}
    stale = moment - STUCK_AFTER
    held = select(LetterRun.id).where(LetterRun.emails_released_at.is_(None))
    stuck = session.scalars(
        select(Letter).where(
            Letter.org_id == org_id,
            Letter.updated_at < stale,
            or_(
                Letter.status.in_([LetterStatus.QUEUED.value, LetterStatus.RENDERING.value]),
                (Letter.channel == Channel.EMAIL.value)
                & Letter.status.in_([LetterStatus.RENDERED.value, LetterStatus.RETRY.value])
                & or_(Letter.run_id.is_(None), Letter.run_id.not_in(held)),
            ),
        )
    ).all()
    for letter in stuck:
        if letter.status in (LetterStatus.QUEUED, LetterStatus.RENDERING):
            if letter.status == LetterStatus.RENDERING:
                services._claim(session, letter.id, [LetterStatus.RENDERING.value], LetterStatus.QUEUED.value)
            counts["render"] += services.enqueue_render_job(session, letter, at=moment)
        else:
            counts["send"] += services.enqueue_send(session, letter, at=moment)
    uncertain = session.scalars(
        select(Letter).where(
            Letter.org_id == org_id,
            Letter.status == LetterStatus.SENDING.value,
            Letter.sending_started_at < moment - SENDING_TIMEOUT,
        )
    ).all()
    for letter in uncertain:
        error = (
            f"{services.DELIVERY_UNCERTAIN}: the worker stopped while handing this email to the mail server "
            f"(Message-ID {letter.provider_message_id}). Check the mail server's log: "
            "record it as delivered if it is there, otherwise send it again."
        )
        if services._claim(
            session, letter.id, [LetterStatus.SENDING.value], LetterStatus.FAILED.value, error=error
        ):
            audit.record(
                session,
                org_id=org_id,
                action="letter.delivery_uncertain",
                object_type="letter",
                object_id=letter.id,
                pupil_id=letter.pupil_id,
            )
            counts["uncertain"] += 1
    sync_tenant(session)
    unfinished = [RunStatus.QUEUED.value, RunStatus.RENDERING.value]
    for run in session.scalars(
        select(LetterRun).where(
            LetterRun.org_id == org_id, LetterRun.status.in_(unfinished), LetterRun.updated_at < stale
        )
    ).all():
        if jobs.pending(services.job_id("run", run.id), at=moment):
            continue  # still waiting for a worker (or rendering): resetting it would start it twice
        requeued = session.execute(
            update(LetterRun)
            .where(LetterRun.id == run.id, LetterRun.status.in_(unfinished), LetterRun.updated_at < stale)
            .values(status=RunStatus.QUEUED.value, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if requeued:
            counts["run"] += services.enqueue_run_job(session, run, run.created_at.date(), at=moment)
    return counts


PERIODIC = (
    jobs.Periodic(
        name="letters.sweep",
        func="attendwise.letters.jobs.sweep",
        queue="letters",
        interval=SWEEP_EVERY,
    ),
)
