"""Referral jobs: send the notification outbox, deliver webhooks, warn of overdue referrals.

PostgreSQL is the record of truth: a notification is a row in ``referral_outbox`` written in the
same transaction as the change it reports, so nothing is lost if mail is down. The sender runs
after each commit that queues mail and every :data:`SWEEP_EVERY` seconds; each row is sent with a
Message-ID derived from its idempotency key and marked sent, and a row that fails stays pending
with its attempt count and error for the next run.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import select

from attendwise.attendance import queries as attendance_queries
from attendwise.platform import jobs
from attendwise.platform.db import db, utcnow
from attendwise.platform.mail import MailError, send_email
from attendwise.referrals import services, webhooks
from attendwise.referrals.models import LAProfile, OutboxMessage, OutboxStatus, ReceivedReferral, Status

SWEEP_EVERY = 300  # seconds
WEBHOOK_SWEEP_EVERY = 30  # seconds: retries are due from 15 s after a failure
BATCH = 200

PERIODIC = (
    jobs.Periodic(
        name="referrals-outbox",
        func="attendwise.referrals.jobs.send_outbox",
        queue="default",
        interval=SWEEP_EVERY,
    ),
    jobs.Periodic(
        name="referrals-webhooks",
        func="attendwise.referrals.jobs.deliver_webhooks",
        queue="notifications",
        interval=WEBHOOK_SWEEP_EVERY,
    ),
    jobs.Periodic(
        name="referrals-unpaid-notices",
        func="attendwise.referrals.jobs.flag_unpaid_notices",
        queue="default",
        cron="0 6 * * *",
    ),
    jobs.Periodic(
        name="referrals-overdue",
        func="attendwise.referrals.jobs.warn_overdue",
        queue="default",
        cron="0 7 * * 1-5",
    ),
)


def message_id_for(row: OutboxMessage) -> str:
    digest = hashlib.sha256(row.idempotency_key.encode()).hexdigest()[:32]
    return f"<referral-{digest}@attendwise>"


def send_outbox() -> dict[str, int]:
    """System job: send every pending notification; returns how many were sent and failed."""
    session = db.session()
    rows = session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.status == OutboxStatus.PENDING)
        .order_by(OutboxMessage.id)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    counts = {"sent": 0, "failed": 0}
    for row in rows:
        row.attempts += 1
        try:
            send_email(row.to_addr, row.subject, row.body, message_id=message_id_for(row))
        except MailError as exc:
            row.last_error = str(exc)
            counts["failed"] += 1
        else:
            row.status = OutboxStatus.SENT
            row.sent_at = utcnow()
            row.last_error = ""
            counts["sent"] += 1
        session.flush()
    return counts


def warn_overdue(today: str | None = None) -> int:
    """System job, each working morning: tell each LA's team which referrals are past their
    service level (the clock paused while waiting for a school does not count). One email per
    referral per due date, however often it runs; returns how many were queued."""
    session = db.session()
    on = dt.date.fromisoformat(today) if today else attendance_queries.today()
    overdue = session.scalars(
        select(ReceivedReferral)
        .where(
            ReceivedReferral.due_on < on,
            ReceivedReferral.paused_on.is_(None),
            ReceivedReferral.status.in_([Status.SUBMITTED, Status.ACKNOWLEDGED, Status.ACCEPTED]),
        )
        .order_by(ReceivedReferral.org_id, ReceivedReferral.due_on)
    ).all()
    mailboxes = {
        row.org_id: row.team_email for row in session.execute(select(LAProfile.org_id, LAProfile.team_email))
    }
    queued = 0
    for received in overdue:
        to = mailboxes.get(received.org_id)
        if not to:
            continue
        row = services.notify(
            session,
            org_id=received.org_id,
            key=f"referral-{received.id}-overdue-{received.due_on.isoformat()}",
            to=to,
            subject=f"Overdue referral R{received.id}: {received.kind_label} from {received.school_name}",
            body=(
                f"Referral R{received.id} ({received.kind_label}) from {received.school_name} was due "
                f"{received.due_on.isoformat()} and is still {received.status.value.replace('_', ' ')}.\n"
            ),
        )
        queued += row is not None
    return queued


def deliver_webhooks(now: str | None = None) -> dict[str, int]:
    """Attempt every due webhook delivery: right after the change (for one LA) and, as the
    periodic sweeper (system context), every retry whose backoff has passed."""
    return webhooks.deliver_due(db.session(), dt.datetime.fromisoformat(now) if now else None)


def flag_unpaid_notices(today: str | None = None) -> int:
    """System job, each morning: penalty notices past their payment period become unpaid, and
    the officer is told to consider prosecution or withdraw. Returns how many were flagged."""
    on = dt.date.fromisoformat(today) if today else attendance_queries.today()
    return len(services.flag_unpaid(db.session(), on))
