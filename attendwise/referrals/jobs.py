"""Referral jobs: send the notification outbox.

PostgreSQL is the record of truth: a notification is a row in ``referral_outbox`` written in the
same transaction as the change it reports, so nothing is lost if mail is down. The sender runs
after each commit that queues mail and every :data:`SWEEP_EVERY` seconds; each row is sent with a
Message-ID derived from its idempotency key and marked sent, and a row that fails stays pending
with its attempt count and error for the next run.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from attendwise.platform import jobs
from attendwise.platform.db import db, utcnow
from attendwise.platform.mail import MailError, send_email
from attendwise.referrals.models import OutboxMessage, OutboxStatus

SWEEP_EVERY = 300  # seconds
BATCH = 200

PERIODIC = (
    jobs.Periodic(
        name="referrals-outbox",
        func="attendwise.referrals.jobs.send_outbox",
        queue="default",
        interval=SWEEP_EVERY,
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
