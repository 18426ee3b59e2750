"""A batch of real letters emailed by real workers: the worker-kill and outage drills' subject.

Set-up (in the drill's process, against the scratch database): a school with 50 pupils, each
with a mother to email, then ``--jobs`` letters queued through
:func:`attendwise.letters.services.queue_letter` to them in turn (each its own idempotency
key, so its own Message-ID). The first is rendered by
:func:`~attendwise.letters.services.render_letter` (WeasyPrint, stored in the
content-addressed document store); to keep the CPU on the jobs under test, the others are
then marked rendered with that same document. Every letter's send job
(``attendwise.letters.jobs.send_letter``) is queued in one commit, and ``attendwise worker
letters`` sends them through SMTP to an aiosmtpd server in this process, which counts every
message it accepts by Message-ID.

The drill's faults run while the batch is sent. Whenever the workers fall idle with letters
left, the drill runs the platform's sweeper (:func:`attendwise.letters.jobs.sweep_school`) as
it would run :data:`SKIP` later, rather than waiting: past ``STUCK_AFTER`` it re-queues the
sends whose job was lost; past ``SENDING_TIMEOUT`` it marks the letters stuck in ``sending``
"delivery uncertain". For those the drill then does what the sweeper's message asks of a
person: look for the Message-ID in the mail server's log, and resend
(:func:`attendwise.letters.services.resend`) only the letters the server never accepted.
The skipped time is counted in the delays.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from typing import Any

from aiosmtpd.controller import Controller
from flask import Flask
from redis import Redis
from rq import Queue
from sqlalchemy import select, update

from attendwise.letters.jobs import SENDING_TIMEOUT, SWEEP_EVERY
from benchmarks.drills.common import BIN, ROOT, free_port

TEMPLATE = "dothill-reminder"
PUPILS = 50  # the batch's letters go to these pupils' mothers in turn
UNCERTAIN = "delivery uncertain%"
# The sweeper's longest wait: a letter stuck in "sending" is flagged on the first sweep past
# SENDING_TIMEOUT. The drill skips it instead of waiting.
SKIP = SENDING_TIMEOUT + dt.timedelta(seconds=SWEEP_EVERY)


class Mailbox:
    """An SMTP server on loopback that accepts everything and notes when each Message-ID came."""

    def __init__(self) -> None:
        self.received: dict[str, list[float]] = defaultdict(list)
        self._lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd calls it by this name
        message_id = str(BytesHeaderParser().parsebytes(envelope.content)["Message-ID"]).strip()
        with self._lock:
            self.received[message_id].append(time.time())
        return "250 Message accepted for delivery"

    def times(self, message_id: str) -> list[float]:
        with self._lock:
            return list(self.received.get(message_id, ()))

    def total(self) -> int:
        with self._lock:
            return sum(len(times) for times in self.received.values())


def drill_env(
    name: str, prefix: str, db_url: str, owner_url: str, redis_url: str, mail_port: int
) -> dict[str, str]:
    """The settings a drill's worker (``db_url``: the application role) and the drill share."""
    return {
        **os.environ,
        "ATTENDWISE_DATABASE_URL": db_url,
        "ATTENDWISE_MIGRATION_DATABASE_URL": owner_url,
        "ATTENDWISE_REDIS_URL": redis_url,
        "ATTENDWISE_JOBS_QUEUE_PREFIX": prefix,
        "ATTENDWISE_DATA_DIR": f"/tmp/{name}",
        "ATTENDWISE_MAIL_SERVER": "127.0.0.1",
        "ATTENDWISE_MAIL_PORT": str(mail_port),
        "ATTENDWISE_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }


class Worker:
    """``attendwise worker letters``, started again whenever it exits (as Kubernetes would)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.restarts = 0
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [str(BIN / "attendwise"), "worker", "letters"],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def keep_alive(self) -> None:
        if self.proc.poll() is not None:
            self.proc = self._start()
            self.restarts += 1

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class Batch:
    org_id: int
    message_ids: dict[int, str]  # letter id -> the Message-ID its email carries
    enqueued_at: float  # time.time() when the send jobs were committed
    skips: list[float] = field(default_factory=list)  # time.time() of each skipped wait


def seed_school(session: Any, pupils: int) -> int:
    """A school with ``pupils`` pupils, each with a mother (parental responsibility, an email
    address) to write to; returns the school's id."""
    from stdnum.gb import upn as stdnum_upn

    from attendwise.attendance import services as attendance
    from attendwise.platform import tenancy
    from attendwise.tenants import services as tenants
    from attendwise.tenants.models import OrgKind

    with tenancy.system_context("letter drill set-up"):
        la = tenants.create_organisation(session, kind=OrgKind.LA, name="Drill Council", la_code="835")
        school = tenants.create_organisation(
            session,
            kind=OrgKind.SCHOOL,
            name="Dothill Primary School",
            urn="123480",
            laestab="8353480",
            phase="Primary",
            la=la,
        )
    upns = []
    for serial in range(1, pupils + 1):
        body = f"835348025{serial:03d}"
        upns.append(stdnum_upn.calc_check_digit(body) + body)
    with tenancy.tenant_context(school.id):
        attendance.upsert_pupils(
            session,
            school.id,
            [
                attendance.PupilRecord(
                    upn=upn,
                    legal_forename=f"Pupil{serial}",
                    legal_surname=_surname(serial),
                    date_of_birth=dt.date(2016, 9, 1) + dt.timedelta(days=serial),
                    year_group=str(1 + serial % 6),
                )
                for serial, upn in enumerate(upns, 1)
            ],
        )
        attendance.upsert_contacts(
            session,
            school.id,
            [
                attendance.ContactRecord(
                    forename="Jane",
                    surname=_surname(serial),
                    title="Ms",
                    links=(attendance.ContactLink(upn, "Mother", True, True, 1),),
                    address_lines=(f"{serial} High Street", "Telford"),
                    postcode="TF1 1AA",
                    emails=(f"jane.family{serial}@example.test",),
                )
                for serial, upn in enumerate(upns, 1)
            ],
        )
    session.commit()
    return int(school.id)


def _surname(serial: int) -> str:
    """Letters only: contacts with the same name and postcode are one person to the import."""
    return "Family" + "".join(chr(ord("a") + int(digit)) for digit in str(serial))


def prepare(app: Flask, letters: int) -> Batch:
    """A school, ``letters`` rendered email letters, and one send job queued for each."""
    from attendwise.attendance.models import Pupil
    from attendwise.letters import services
    from attendwise.letters.models import Letter, LetterStatus
    from attendwise.platform import tenancy
    from attendwise.platform.db import db, utcnow

    with app.app_context():
        session = db.session()
        org_id = seed_school(session, PUPILS)
        with tenancy.tenant_context(org_id):
            pupils = session.scalars(select(Pupil.id).where(Pupil.org_id == org_id).order_by(Pupil.id)).all()
            ids: list[int] = []
            for i in range(letters):
                ids += services.queue_letter(
                    session,
                    org_id,
                    pupils[i % len(pupils)],
                    TEMPLATE,
                    channel="email",
                    idempotency_key=f"drill-{i}",
                    enqueue_render=False,
                )
            session.commit()
            first, rest = ids[0], ids[1:]
            if not services.render_letter(session, first):
                raise RuntimeError(f"letter {first} did not render")
            document_id = session.get(Letter, first).document_id  # type: ignore[union-attr]
            session.execute(
                update(Letter)
                .where(Letter.id.in_(rest))
                .values(document_id=document_id, status=LetterStatus.RENDERED.value, rendered_at=utcnow())
            )
            for letter in session.scalars(select(Letter).where(Letter.id.in_(rest))):
                services.enqueue_send(session, letter)
            message_ids = {
                letter.id: services.message_id_for(letter)
                for letter in session.scalars(select(Letter).where(Letter.id.in_(ids)))
            }
            enqueued_at = time.time()
            session.commit()  # the render's send job and the others go to RQ now
        db.session.remove()
    return Batch(org_id, message_ids, enqueued_at)


class Drill:
    """Drives one batch to the end: faults while it is sent, the sweeper when workers fall idle."""

    def __init__(self, app: Flask, batch: Batch, mailbox: Mailbox, queue: Queue, worker: Worker) -> None:
        self.app = app
        self.batch = batch
        self.mailbox = mailbox
        self.queue = queue
        self.worker = worker
        self.sweeps: Counter[str] = Counter()
        self.resent = 0
        self.finished = False  # False: the deadline came first, and what was unsent counts as lost

    def statuses(self) -> Counter[str]:
        return Counter(status for _, status, _ in self.letters())

    def letters(self) -> list[Any]:
        """(id, status, error) of every letter in the batch."""
        from attendwise.letters.models import Letter
        from attendwise.platform import tenancy
        from attendwise.platform.db import db

        with self.app.app_context(), tenancy.tenant_context(self.batch.org_id):
            rows = db.session.execute(
                select(Letter.id, Letter.status, Letter.error).where(
                    Letter.id.in_(list(self.batch.message_ids))
                )
            ).all()
            db.session.remove()
        return list(rows)

    def run(self, fault: Callable[[], None], deadline: float) -> None:
        """Until every letter is sent or flagged, or ``deadline`` (time.monotonic()) passes."""
        seen: tuple[Any, ...] = ()
        still_since = time.monotonic()
        while time.monotonic() < deadline:
            fault()
            self.worker.keep_alive()
            state = (self.queue.count, self.mailbox.total(), tuple(sorted(self.statuses().items())))
            if state != seen:
                seen, still_since = state, time.monotonic()
            elif self.queue.count == 0 and time.monotonic() - still_since >= 2:
                # Nothing queued and nothing moved for 2 s: only the sweeper can help now.
                if not self.sweep_and_check():
                    self.finished = True
                    return
                seen = ()
            time.sleep(0.2)

    def sweep_and_check(self) -> bool:
        """The sweeper as it would run SKIP from now, then the person's check of what it
        flagged; False if neither found anything left to send."""
        from attendwise.letters import jobs, services
        from attendwise.letters.models import Letter, LetterStatus
        from attendwise.platform import tenancy
        from attendwise.platform.db import db, utcnow

        self.batch.skips.append(time.time())
        with self.app.app_context(), tenancy.tenant_context(self.batch.org_id):
            session = db.session()
            counts = jobs.sweep_school((utcnow() + SKIP).isoformat())
            session.commit()
            self.sweeps.update(counts)
            resent = 0
            flagged = session.execute(
                select(Letter.id, Letter.provider_message_id).where(
                    Letter.id.in_(list(self.batch.message_ids)),
                    Letter.status == LetterStatus.FAILED.value,
                    Letter.error.like(UNCERTAIN),
                )
            ).all()
            for letter_id, message_id in flagged:
                if self.mailbox.times(str(message_id)):
                    continue
                if services.resend(session, self.batch.org_id, letter_id):
                    resent += 1
            session.commit()
            db.session.remove()
        self.resent += resent
        return bool(counts["send"] or resent)

    def report(self) -> list[str]:
        """The figures: lost, duplicated, stuck in 'sending', flagged, and the longest delays."""
        from attendwise.letters.models import LetterStatus

        rows = self.letters()
        received = {letter_id: self.mailbox.times(mid) for letter_id, mid in self.batch.message_ids.items()}
        once = sum(1 for times in received.values() if len(times) == 1)
        twice = sum(1 for times in received.values() if len(times) > 1)
        never = [letter_id for letter_id, times in received.items() if not times]
        status = {letter_id: state for letter_id, state, _ in rows}
        flagged = sum(
            1
            for letter_id, state, error in rows
            if state == LetterStatus.FAILED and (error or "").startswith("delivery uncertain")
        )
        sent_not_received = sum(1 for letter_id in never if status[letter_id] == LetterStatus.SENT)
        strangers = self.mailbox.total() - sum(len(times) for times in received.values())
        delays = []  # (seconds from queued to received, counting the skipped waits; waits skipped)
        for times in received.values():
            if times:
                waits = sum(1 for at in self.batch.skips if at < times[0])
                delays.append((times[0] - self.batch.enqueued_at + waits * SKIP.total_seconds(), waits))
        longest, waits = max(delays, default=(0.0, 0))
        direct = [delay for delay, skipped in delays if not skipped]
        counts = Counter(status.values())
        return [
            f"letters: {len(rows)}   final status: {dict(sorted(counts.items()))}"
            + ("" if self.finished else "   (DEADLINE reached before the batch was done)"),
            f"emails received once: {once}   received twice or more (DUPLICATED): {twice}",
            f"never received (LOST): {len(never)}   of which recorded 'sent': {sent_not_received}   "
            f"messages not from this batch: {strangers}",
            f"left in 'sending' after the sweeper: {counts.get(LetterStatus.SENDING.value, 0)}",
            f"sweeper ({len(self.batch.skips)} passes): {self.sweeps['send']} sends re-queued, "
            f"{self.sweeps['uncertain']} letters marked 'delivery uncertain'; of those, "
            f"{flagged} had reached the mail server (left 'failed' for a person to confirm) and "
            f"{self.resent} resends went to the rest",
            f"longest delay from queued to received: {_minutes(longest)}, counting {waits} waits of "
            f"{_minutes(SKIP.total_seconds())} for the sweeper that the drill skipped; "
            f"longest of the {len(direct)} received without the sweeper: "
            f"{_minutes(max(direct)) if direct else '-'}",
        ]


def _minutes(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


@contextlib.contextmanager
def letter_drill(
    name: str, prefix: str, owner_url: str, app_url: str, redis_url: str, letters: int
) -> Iterator[Drill]:
    """Mailbox, set-up and worker for one drill; stops them and removes the drill's files after."""
    from attendwise.platform.app import create_app
    from attendwise.platform.config import Settings
    from attendwise.platform.db import db

    mailbox = Mailbox()
    mailbox.controller.start()
    port = mailbox.controller.port
    app = create_app(
        settings=Settings.from_env(drill_env(name, prefix, owner_url, owner_url, redis_url, port))
    )
    worker: Worker | None = None
    try:
        batch = prepare(app, letters)
        queue = Queue(f"{prefix}letters", connection=Redis.from_url(redis_url))
        worker = Worker(drill_env(name, prefix, app_url, owner_url, redis_url, port))
        yield Drill(app, batch, mailbox, queue, worker)
    finally:
        if worker is not None:
            worker.stop()
        mailbox.controller.stop()
        db.dispose()
        shutil.rmtree(f"/tmp/{name}", ignore_errors=True)
