"""Letters from queue to delivery; the letter row in the database is the record of truth.

Lifecycle: ``queued`` → (render job) ``rendering`` → ``rendered`` → email: (send job)
``sending`` → ``sent`` (or ``retry`` after a refused hand-over, ``failed`` after
:data:`MAX_ATTEMPTS`); post: printed in a batch, then ``posted`` with the certificate of
posting. Every step claims the row with a conditional UPDATE, so a job run twice, or by two
workers, acts once. The ``sending`` claim (with the Message-ID the email will carry) is
committed *before* the mail server is contacted: a worker that dies mid-send leaves the
letter ``sending``, and the sweeper never resends it blindly (see :mod:`.jobs`).

Bulk runs ("this week's letters", :func:`start_run`) queue the week's letter tasks as letters
and render them in one job on the :class:`~attendwise.letters.render.RendererPool`, one child
per CPU. A run's emails wait until someone releases them (:func:`release_emails`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from attendwise.letters import context as letter_context
from attendwise.letters import hooks, render, storage
from attendwise.letters.models import (
    Channel,
    Document,
    EmailMode,
    Letter,
    LetterRun,
    LetterSettings,
    LetterStatus,
    LetterTemplate,
    PostBatch,
    RunStatus,
)
from attendwise.platform import audit, jobs
from attendwise.platform.db import sync_tenant, utcnow
from attendwise.platform.mail import MailError, send_email

MAX_ATTEMPTS = 5

# Letters the law (or the school's policy) requires to reach each parent with parental
# responsibility separately: warnings of legal action and invitations to all parents.
ONE_PER_PARENT = frozenset(
    {
        "dormston-stage-3",
        "dothill-final-warning",
        "pa-plan-invitation",
        "pa-plan-copy",
        "pa-referral-notice",
        "spetisbury-stage-3",
    }
)


class LetterError(ValueError):
    """The letter cannot be made or sent as asked (the message says why)."""


# ---- templates -----------------------------------------------------------------------------


def template_source(session: Session, org_id: int, key: str) -> tuple[str, int]:
    """The school's newest saved version of ``key``, or the default (version 0)."""
    own = session.scalar(
        select(LetterTemplate)
        .where(LetterTemplate.org_id == org_id, LetterTemplate.key == key)
        .order_by(LetterTemplate.version.desc())
        .limit(1)
    )
    if own is not None:
        return own.source, own.version
    try:
        return render.default_source(key), 0
    except render.LetterTemplateError as exc:
        raise LetterError(str(exc)) from exc


def save_template(session: Session, org_id: int, key: str, source: str, *, user_id: int | None) -> int:
    """Save a new version of the school's copy of ``key`` after proving it renders; returns the version."""
    if key not in render.default_keys():
        raise LetterError(f"there is no letter {key!r} to copy")
    render.render_html(source, letter_context.sample())
    latest = session.scalar(
        select(func.max(LetterTemplate.version)).where(
            LetterTemplate.org_id == org_id, LetterTemplate.key == key
        )
    )
    version = int(latest or 0) + 1
    session.add(
        LetterTemplate(org_id=org_id, key=key, version=version, source=source, created_by_user_id=user_id)
    )
    session.flush()
    return version


def assets_for(session: Session, org_id: int) -> dict[str, render.Asset]:
    settings = session.scalar(select(LetterSettings).where(LetterSettings.org_id == org_id))
    assets: dict[str, render.Asset] = {}
    if settings is not None and settings.logo and settings.logo_mime:
        assets["logo"] = (settings.logo, settings.logo_mime)
    if settings is not None and settings.signature and settings.signature_mime:
        assets["signature"] = (settings.signature, settings.signature_mime)
    return assets


# ---- queueing ------------------------------------------------------------------------------


def _recipients(
    session: Session, org_id: int, pupil_id: int, key: str, contact_ids: Sequence[int] | None
) -> list[dict[str, Any]]:
    from attendwise.attendance.models import Contact, PupilContact

    query = (
        select(PupilContact, Contact)
        .join(Contact, Contact.id == PupilContact.contact_id)
        .where(PupilContact.org_id == org_id, PupilContact.pupil_id == pupil_id)
        .order_by(PupilContact.priority, PupilContact.id)
    )
    if contact_ids is not None:
        query = query.where(PupilContact.contact_id.in_(contact_ids))
    else:
        query = query.where(PupilContact.parental_responsibility.is_(True))
    rows = session.execute(query).all()
    if contact_ids is not None and len(rows) != len(set(contact_ids)):
        missing = set(contact_ids) - {contact.id for _, contact in rows}
        raise LetterError(f"contacts {sorted(missing)} are not contacts of pupil {pupil_id}")
    if not rows:
        raise LetterError(f"pupil {pupil_id} has no contact with parental responsibility to write to")
    if contact_ids is None and key not in ONE_PER_PARENT:
        rows = rows[:1]
    out = []
    for link, contact in rows:
        title = (contact.title or "").strip()
        name = " ".join(part for part in (title, contact.forename, contact.surname) if part)
        out.append(
            {
                "contact_id": contact.id,
                "name": name,
                "salutation": f"{title} {contact.surname}"
                if title
                else f"{contact.forename} {contact.surname}",
                "relationship": link.relationship_to_pupil,
                "address_lines": [*contact.address_lines, *([contact.postcode] if contact.postcode else [])],
                "email": contact.emails[0] if contact.emails else None,
            }
        )
    return out


def queue_letter(
    session: Session,
    org_id: int,
    pupil_id: int,
    template_key: str,
    context_extra: Mapping[str, Any] | None = None,
    recipients: Sequence[int] | None = None,
    *,
    case_id: int | None = None,
    channel: str = Channel.POST.value,
    idempotency_key: str | None = None,
    on: dt.date | None = None,
    enqueue_render: bool = True,
) -> list[int]:
    """Queue ``template_key`` about a pupil, one letter per recipient; returns the letter ids.

    ``recipients`` are contact ids; ``None`` means the first contact with parental
    responsibility, or every one of them for :data:`ONE_PER_PARENT` letters.
    ``context_extra`` adds merge fields (``meeting``, ``plan``, ``stage``, ``message``,
    ``dates``). Queueing the same letter again (same key, pupil, recipient, case and day, or
    the same ``idempotency_key``) returns the existing letter instead of a second one.
    ``enqueue_render=False`` leaves the render to the caller (a bulk run renders its own).
    """
    if channel not in {c.value for c in Channel}:
        raise LetterError(f"channel must be 'email' or 'post', not {channel!r}")
    source, version = template_source(session, org_id, template_key)
    day = on or utcnow().date()
    ids = []
    for recipient in _recipients(session, org_id, pupil_id, template_key, recipients):
        if channel == Channel.EMAIL and not recipient["email"]:
            raise LetterError(f"{recipient['name']} has no email address: send this letter by post")
        key = (
            f"{idempotency_key}:{recipient['contact_id']}"
            if idempotency_key
            else f"{org_id}:{pupil_id}:{template_key}:{recipient['contact_id']}:{case_id or '-'}:{day:%Y%m%d}"
        )
        existing = session.scalar(select(Letter.id).where(Letter.idempotency_key == key))
        if existing is not None:
            ids.append(existing)
            continue
        merge = letter_context.build(session, org_id, pupil_id, recipient, extra=context_extra, on=on)
        render.render_html(source, merge)
        letter = Letter(
            org_id=org_id,
            pupil_id=pupil_id,
            case_id=case_id,
            template_key=template_key,
            template_version=version,
            recipient_contact_id=recipient["contact_id"],
            recipient_name=recipient["name"][:200],
            recipient_email=recipient["email"],
            channel=channel,
            status=LetterStatus.QUEUED.value,
            idempotency_key=key,
            context=merge,
        )
        session.add(letter)
        session.flush()
        ids.append(letter.id)
        if enqueue_render:
            enqueue_render_job(session, letter)
    return ids


def job_id(kind: str, ident: int) -> str:
    """The RQ job id of a letter's render or send (``kind`` "render", "send") or of a bulk run
    ("run"): one id per step, so the sweeper can ask whether that job is still pending."""
    return f"letter-{kind}-{ident}"


def _enqueue_once(
    session: Session,
    kind: str,
    func: str,
    ident: int,
    *args: Any,
    org_id: int,
    queue: str,
    timeout: int,
    at: dt.datetime | None,
) -> bool:
    """Queue ``attendwise.letters.jobs.<func>(ident, *args)`` as job :func:`job_id` unless that
    job is still pending at ``at`` (default now; :func:`attendwise.platform.jobs.pending`), so
    at most one waits per letter step or run. True if a job was queued."""
    name = job_id(kind, ident)
    if jobs.pending(name, at=at):
        return False
    jobs.enqueue(
        f"attendwise.letters.jobs.{func}",
        ident,
        *args,
        org_id=org_id,
        queue=queue,
        job_id=name,
        job_timeout=timeout,
        session=session,
    )
    return True


def enqueue_render_job(session: Session, letter: Letter, *, at: dt.datetime | None = None) -> bool:
    """Queue the letter's render unless its render job is still pending; True if queued."""
    return _enqueue_once(
        session, "render", "render_letter", letter.id, org_id=letter.org_id, queue="pdf", timeout=120, at=at
    )


# ---- rendering -----------------------------------------------------------------------------


def _claim(
    session: Session, letter_id: int, from_statuses: Sequence[str], to_status: str, **values: Any
) -> bool:
    """The conditional UPDATE every step goes through: True if this caller now owns the step."""
    sync_tenant(session)
    result = session.execute(
        update(Letter)
        .where(Letter.id == letter_id, Letter.status.in_(list(from_statuses)))
        .values(status=to_status, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    claimed = bool(result.rowcount)  # type: ignore[attr-defined]
    if claimed:
        session.expire_all()
    return claimed


def store_document(
    session: Session, org_id: int, pdf: bytes, html: str, *, kind: str, title: str, pupil_id: int | None
) -> Document:
    sha256 = storage.store().put(org_id, pdf, html)
    document = session.scalar(select(Document).where(Document.org_id == org_id, Document.sha256 == sha256))
    if document is None:
        document = Document(
            org_id=org_id, sha256=sha256, size=len(pdf), kind=kind, title=title[:200], pupil_id=pupil_id
        )
        session.add(document)
        session.flush()
    return document


def _letter_source(session: Session, letter: Letter) -> str:
    if letter.template_version == 0:
        return render.default_source(letter.template_key)
    own = session.scalar(
        select(LetterTemplate).where(
            LetterTemplate.org_id == letter.org_id,
            LetterTemplate.key == letter.template_key,
            LetterTemplate.version == letter.template_version,
        )
    )
    if own is None:
        raise LetterError(f"version {letter.template_version} of {letter.template_key!r} is missing")
    return own.source


def render_letter(session: Session, letter_id: int) -> bool:
    """Render a queued letter to a stored PDF. False if another run already did (or is doing) it."""
    if not _claim(session, letter_id, [LetterStatus.QUEUED.value], LetterStatus.RENDERING.value):
        return False
    letter = session.get(Letter, letter_id)
    assert letter is not None
    try:
        html = render.render_html(_letter_source(session, letter), letter.context)
        pdf = render.render_pdf(html, assets_for(session, letter.org_id))
    except (render.LetterTemplateError, render.RenderError, LetterError) as exc:
        letter.status = LetterStatus.FAILED.value
        letter.error = f"could not render: {exc}"[:500]
        session.flush()
        return False
    document = store_document(
        session,
        letter.org_id,
        pdf,
        html,
        kind="letter",
        title=f"{letter.template_key} to {letter.recipient_name}",
        pupil_id=letter.pupil_id,
    )
    letter.document_id = document.id
    letter.status = LetterStatus.RENDERED.value
    letter.rendered_at = utcnow()
    session.flush()
    if letter.channel == Channel.EMAIL and emails_released(session, letter):
        enqueue_send(session, letter)
    return True


def emails_released(session: Session, letter: Letter) -> bool:
    """A letter outside a bulk run may be emailed once rendered; one in a run only after the
    run's emails were released."""
    if letter.run_id is None:
        return True
    released = session.scalar(select(LetterRun.emails_released_at).where(LetterRun.id == letter.run_id))
    return released is not None


def enqueue_send(session: Session, letter: Letter, *, at: dt.datetime | None = None) -> bool:
    """Queue the letter's send unless its send job is still pending (a resend after that job
    ended queues a new one); True if queued."""
    return _enqueue_once(
        session, "send", "send_letter", letter.id, org_id=letter.org_id, queue="letters", timeout=120, at=at
    )


# ---- email -------------------------------------------------------------------------------


def message_id_for(letter: Letter) -> str:
    digest = hashlib.sha256(letter.idempotency_key.encode()).hexdigest()[:24]
    return f"<letter-{letter.id}-{digest}@attendwise.invalid>"


def _email_text(letter: Letter, mode: str, link: str | None) -> str:
    merge: Mapping[str, Any] = letter.context
    school = merge["school"]["name"]
    pupil = merge["pupil"]["name"]
    lines = [
        f"Dear {merge['recipient']['salutation']},",
        "",
        f"Please find a letter from {school} about {pupil}.",
    ]
    if mode == EmailMode.LINK and link:
        lines += ["", f"You can read and download it here (the link works for 30 days): {link}"]
    else:
        lines += ["", "The letter is attached as a PDF."]
    lines += ["", "If you have any questions, please contact the school.", "", school]
    return "\n".join(lines)


def send_letter(session: Session, letter_id: int) -> bool:
    """Email a rendered letter exactly once. False if it was not ours to send."""
    letter = session.get(Letter, letter_id)
    if letter is None or letter.channel != Channel.EMAIL or not emails_released(session, letter):
        return False
    message_id = message_id_for(letter)
    if not _claim(
        session,
        letter_id,
        [LetterStatus.RENDERED.value, LetterStatus.RETRY.value],
        LetterStatus.SENDING.value,
        attempts=Letter.attempts + 1,
        sending_started_at=utcnow(),
        provider_message_id=message_id,
    ):
        return False
    audit.record(
        session,
        org_id=letter.org_id,
        action="letter.sending",
        object_type="letter",
        object_id=letter.id,
        pupil_id=letter.pupil_id,
    )
    session.commit()  # the claim and the Message-ID are on record before the mail server hears of it
    letter = session.get(Letter, letter_id)
    assert letter is not None
    assert letter.document_id is not None
    assert letter.recipient_email
    document = session.get(Document, letter.document_id)
    assert document is not None
    settings = session.scalar(select(LetterSettings).where(LetterSettings.org_id == letter.org_id))
    mode = settings.email_mode if settings else EmailMode.ATTACH.value
    link = download_link(letter) if mode == EmailMode.LINK else None
    attachments = []
    if mode != EmailMode.LINK:
        pdf = storage.store().get_pdf(letter.org_id, document.sha256)
        attachments.append((f"letter-{letter.id}.pdf", pdf, "application/pdf"))
    merge: Mapping[str, Any] = letter.context
    subject = f"A letter from {merge['school']['name']} about {merge['pupil']['name']}"
    try:
        sent_id = send_email(
            letter.recipient_email,
            subject[:200],
            _email_text(letter, mode, link),
            attachments=attachments,
            message_id=message_id,
        )
    except MailError as exc:
        failed = letter.attempts >= MAX_ATTEMPTS
        letter.status = (LetterStatus.FAILED if failed else LetterStatus.RETRY).value
        letter.error = str(exc)[:500]
        session.flush()
        return False
    letter.status = LetterStatus.SENT.value
    letter.provider_message_id = sent_id
    letter.sent_at = utcnow()
    letter.error = None
    session.flush()
    _delivered(session, letter)
    return True


def download_link(letter: Letter) -> str:
    from itsdangerous import URLSafeTimedSerializer

    token = URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="letter-download").dumps(
        [letter.org_id, letter.id]
    )
    return f"{current_app.config['BASE_URL'].rstrip('/')}/letters/download?t={token}"


def _delivered(session: Session, letter: Letter) -> None:
    hooks.delivered(
        session,
        hooks.LetterDelivered(
            org_id=letter.org_id,
            letter_id=letter.id,
            pupil_id=letter.pupil_id,
            case_id=letter.case_id,
            template_key=letter.template_key,
            channel=letter.channel,
            recipient_name=letter.recipient_name,
            recipient_contact_id=letter.recipient_contact_id,
            at=letter.sent_at or letter.posted_at or utcnow(),
        ),
    )


# ---- post ----------------------------------------------------------------------------------


def print_batch(session: Session, org_id: int, letter_ids: Sequence[int] | None = None) -> int:
    """Merge rendered, unbatched post letters into one PDF for printing; returns the batch id."""
    from pypdf import PdfWriter

    query = select(Letter).where(
        Letter.org_id == org_id,
        Letter.channel == Channel.POST.value,
        Letter.status == LetterStatus.RENDERED.value,
        Letter.post_batch_id.is_(None),
    )
    if letter_ids is not None:
        query = query.where(Letter.id.in_(letter_ids))
    letters = session.scalars(query.order_by(Letter.id)).all()
    if not letters:
        raise LetterError("there are no rendered letters waiting to be printed")
    writer = PdfWriter()
    store = storage.store()
    for letter in letters:
        document = session.get(Document, letter.document_id)
        assert document is not None
        writer.append(io.BytesIO(store.get_pdf(org_id, document.sha256)))
    out = io.BytesIO()
    writer.write(out)
    listing = "\n".join(f"{letter.id}\t{letter.template_key}\t{letter.recipient_name}" for letter in letters)
    document = store_document(
        session,
        org_id,
        out.getvalue(),
        listing,
        kind="post_batch",
        title=f"{len(letters)} letters for printing",
        pupil_id=None,
    )
    batch = PostBatch(org_id=org_id, document_id=document.id)
    session.add(batch)
    session.flush()
    for letter in letters:
        letter.post_batch_id = batch.id
    session.flush()
    return batch.id


def mark_posted(
    session: Session,
    org_id: int,
    batch_id: int,
    *,
    posted_on: dt.date,
    certificate_of_posting: str,
    user_id: int | None,
) -> int:
    """Record a printed batch as posted (with the Post Office certificate reference); returns
    how many letters this call marked (0 if the batch was already posted)."""
    batch = session.scalar(select(PostBatch).where(PostBatch.id == batch_id, PostBatch.org_id == org_id))
    if batch is None:
        raise LetterError(f"there is no print batch {batch_id}")
    if not certificate_of_posting.strip():
        raise LetterError("enter the certificate of posting reference")
    marked = 0
    for letter_id in session.scalars(select(Letter.id).where(Letter.post_batch_id == batch.id)).all():
        if _claim(
            session, letter_id, [LetterStatus.RENDERED.value], LetterStatus.POSTED.value, posted_at=utcnow()
        ):
            marked += 1
            letter = session.get(Letter, letter_id)
            assert letter is not None
            audit.record(
                session,
                org_id=org_id,
                action="letter.posted",
                object_type="letter",
                object_id=letter.id,
                pupil_id=letter.pupil_id,
            )
            _delivered(session, letter)
    if marked:
        batch.posted_on = posted_on
        batch.certificate_of_posting = certificate_of_posting.strip()[:200]
        batch.posted_by_user_id = user_id
        session.flush()
    return marked


DELIVERY_UNCERTAIN = "delivery uncertain"


def is_delivery_uncertain(letter: Letter) -> bool:
    return (
        letter.channel == Channel.EMAIL
        and letter.status == LetterStatus.FAILED
        and (letter.error or "").startswith(DELIVERY_UNCERTAIN)
    )


def confirm_delivered(session: Session, org_id: int, letter_id: int) -> bool:
    """A person found a "delivery uncertain" email in the mail server's log: record it as sent,
    on the case's contact log and timeline, once. Sending it again would have sent it twice."""
    letter = session.scalar(select(Letter).where(Letter.id == letter_id, Letter.org_id == org_id))
    if letter is None or not is_delivery_uncertain(letter):
        return False
    sent_at = letter.sending_started_at or utcnow()
    if not _claim(
        session, letter_id, [LetterStatus.FAILED.value], LetterStatus.SENT.value, error=None, sent_at=sent_at
    ):
        return False
    audit.record(
        session,
        org_id=org_id,
        action="letter.delivery_confirmed",
        object_type="letter",
        object_id=letter_id,
        pupil_id=letter.pupil_id,
    )
    letter = session.get(Letter, letter_id)
    assert letter is not None
    _delivered(session, letter)
    return True


def resend(session: Session, org_id: int, letter_id: int) -> bool:
    """A person checked a failed email (e.g. delivery uncertain) and asks for it to go again."""
    letter = session.scalar(select(Letter).where(Letter.id == letter_id, Letter.org_id == org_id))
    if letter is None or letter.channel != Channel.EMAIL or letter.document_id is None:
        return False
    if not _claim(session, letter_id, [LetterStatus.FAILED.value], LetterStatus.RETRY.value, error=None):
        return False
    audit.record(
        session,
        org_id=org_id,
        action="letter.resend",
        object_type="letter",
        object_id=letter_id,
        pupil_id=letter.pupil_id,
    )
    letter = session.get(Letter, letter_id)
    assert letter is not None
    enqueue_send(session, letter)
    return True


# ---- bulk runs: this week's letters ----------------------------------------------------------

RUN_CHECKPOINT = 10  # letter tasks between progress commits


@dataclass(frozen=True)
class WeekLetter:
    """One letter task due this week, as the preview lists it."""

    task_id: int
    pupil_id: int
    case_id: int | None
    pupil_name: str
    template_key: str | None
    due_on: dt.date
    recipients: list[dict[str, Any]]  # name, channel ("email" or "post")
    problem: str | None  # why this task cannot be part of a run
    letters: list[Letter]  # letters already made for this task, by an earlier run


def week_of(day: dt.date) -> tuple[dt.date, dt.date]:
    """Monday and Sunday of the week ``day`` falls in."""
    monday = day - dt.timedelta(days=day.weekday())
    return monday, monday + dt.timedelta(days=6)


def _task_key(task_id: int) -> str:
    return f"task-{task_id}"


def week_letters(session: Session, org_id: int, on: dt.date) -> list[WeekLetter]:
    """The school's open letter tasks due by the end of ``on``'s week (overdue ones too), each
    with the people it goes to and how, or the reason it cannot be made."""
    from attendwise.casework import services as casework

    keys = render.default_keys()
    out = []
    made: dict[str, list[Letter]] = {}
    tasks = casework.letter_tasks_due(session, week_of(on)[1])
    if tasks:
        for letter in session.scalars(
            select(Letter)
            .where(Letter.org_id == org_id, Letter.idempotency_key.in_(_keys_for(session, org_id, tasks)))
            .order_by(Letter.id)
        ):
            made.setdefault(letter.idempotency_key.split(":", 1)[0], []).append(letter)
    for task in tasks:
        problem = None
        recipients: list[dict[str, Any]] = []
        if task.template_key is None:
            problem = "the task names no letter template: write this letter by hand"
        elif task.template_key not in keys:
            problem = f"there is no letter template {task.template_key!r}"
        else:
            try:
                recipients = [
                    {"name": r["name"], "channel": _channel_for(r)}
                    for r in _recipients(session, org_id, task.pupil_id, task.template_key, None)
                ]
            except LetterError as exc:
                problem = str(exc)
        out.append(
            WeekLetter(
                task.task_id,
                task.pupil_id,
                task.case_id,
                task.pupil_name,
                task.template_key,
                task.due_on,
                recipients,
                problem,
                made.get(_task_key(task.task_id), []),
            )
        )
    return out


def _keys_for(session: Session, org_id: int, tasks: Sequence[Any]) -> list[str]:
    """Every idempotency key the run's letters for ``tasks`` can carry (one per contact)."""
    from attendwise.attendance.models import PupilContact

    contacts: dict[int, list[int]] = {}
    pupil_ids = sorted({task.pupil_id for task in tasks})
    for pupil_id, contact_id in session.execute(
        select(PupilContact.pupil_id, PupilContact.contact_id).where(
            PupilContact.org_id == org_id, PupilContact.pupil_id.in_(pupil_ids)
        )
    ):
        contacts.setdefault(pupil_id, []).append(contact_id)
    return [
        f"{_task_key(task.task_id)}:{contact_id}"
        for task in tasks
        for contact_id in contacts.get(task.pupil_id, [])
    ]


def _channel_for(recipient: Mapping[str, Any]) -> str:
    """A run emails a parent we have an address for and posts to everyone else."""
    return (Channel.EMAIL if recipient["email"] else Channel.POST).value


def start_run(session: Session, org_id: int, on: dt.date, *, user_id: int | None) -> LetterRun:
    """Start rendering this week's letters as one job; returns the run (the one already under
    way, if there is one, so pressing the button twice starts nothing twice)."""
    busy = session.scalar(
        select(LetterRun)
        .where(
            LetterRun.org_id == org_id,
            LetterRun.status.in_([RunStatus.QUEUED.value, RunStatus.RENDERING.value]),
        )
        .order_by(LetterRun.id.desc())
        .limit(1)
    )
    if busy is not None:
        return busy
    items = [
        {
            "task": w.task_id,
            "pupil": w.pupil_id,
            "case": w.case_id,
            "template": w.template_key,
            "pupil_name": w.pupil_name,
        }
        for w in week_letters(session, org_id, on)
        if w.problem is None
    ]
    if not items:
        raise LetterError("there are no letters due this week that can be made")
    run = LetterRun(
        org_id=org_id,
        week_start=week_of(on)[0],
        status=RunStatus.QUEUED.value,
        items=items,
        total=len(items),
        done=0,
        failed=0,
        errors=[],
        created_by_user_id=user_id,
    )
    session.add(run)
    session.flush()
    enqueue_run_job(session, run, on)
    return run


def enqueue_run_job(session: Session, run: LetterRun, on: dt.date, *, at: dt.datetime | None = None) -> bool:
    """Queue the bulk run's job unless it is still pending; True if queued."""
    return _enqueue_once(
        session,
        "run",
        "render_run",
        run.id,
        on.isoformat(),
        org_id=run.org_id,
        queue="pdf",
        timeout=3600,
        at=at,
    )


@dataclass
class _Pending:
    item: int  # index into the run's items
    letter_id: int
    html: str
    future: Future[bytes]


def render_run(
    session: Session, run_id: int, on: dt.date, *, checkpoint: Callable[[], None] | None = None
) -> bool:
    """The run's job: queue each task's letters (one per recipient, by email or post) and
    render them on the render pool, two per child in flight, then merge the post letters into
    one print batch. ``checkpoint`` (the job's commit) runs every :data:`RUN_CHECKPOINT` tasks
    so the page can show progress. False if another job already took the run.

    A run the sweeper re-queues (its job died) starts again from the top: letters already
    rendered are kept, and its letters left half-way are rendered again."""
    sync_tenant(session)
    claimed = session.execute(
        update(LetterRun)
        .where(LetterRun.id == run_id, LetterRun.status == RunStatus.QUEUED.value)
        .values(status=RunStatus.RENDERING.value, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not claimed:
        return False
    run = session.get(LetterRun, run_id)
    assert run is not None
    session.refresh(run)
    org_id = run.org_id
    items: list[dict[str, Any]] = [dict(item) for item in run.items]
    pool = render.pool()
    css = render.letter_css()
    assets = assets_for(session, org_id)
    left = [0] * len(items)  # letters of each task still rendering
    errors: list[str] = []
    pending: deque[_Pending] = deque()
    run.failed = 0

    def fail(index: int, reason: str) -> None:
        errors.append(f"{items[index]['pupil_name']} ({items[index]['template']}): {reason}"[:300])
        run.failed += 1

    def collect(entry: _Pending) -> None:
        left[entry.item] -= 1
        letter = session.get(Letter, entry.letter_id)
        assert letter is not None
        try:
            pdf = entry.future.result()
        except render.RenderError as exc:
            letter.status = LetterStatus.FAILED.value
            letter.error = f"could not render: {exc}"[:500]
            fail(entry.item, f"could not render: {exc}")
            return
        document = store_document(
            session,
            org_id,
            pdf,
            entry.html,
            kind="letter",
            title=f"{letter.template_key} to {letter.recipient_name}",
            pupil_id=letter.pupil_id,
        )
        letter.document_id = document.id
        letter.status = LetterStatus.RENDERED.value
        letter.rendered_at = utcnow()

    for index, item in enumerate(items):
        task, pupil_id, key = int(item["task"]), int(item["pupil"]), str(item["template"])
        try:
            recipients = _recipients(session, org_id, pupil_id, key, None)
            letter_ids = []
            for recipient in recipients:
                letter_ids += queue_letter(
                    session,
                    org_id,
                    pupil_id,
                    key,
                    None,
                    [recipient["contact_id"]],
                    case_id=item["case"],
                    channel=_channel_for(recipient),
                    idempotency_key=_task_key(task),
                    on=on,
                    enqueue_render=False,
                )
        except (LetterError, LookupError, render.LetterTemplateError) as exc:
            fail(index, str(exc))
            continue
        for letter_id in letter_ids:
            letter = session.get(Letter, letter_id)
            assert letter is not None
            if letter.run_id is None and letter.status == LetterStatus.QUEUED:
                letter.run_id = run.id
            if letter.run_id != run.id or letter.status not in (LetterStatus.QUEUED, LetterStatus.RENDERING):
                continue  # an earlier run (or the single-letter job) made it
            letter.status = LetterStatus.RENDERING.value
            try:
                html = render.render_html(_letter_source(session, letter), letter.context)
            except (render.LetterTemplateError, LetterError) as exc:
                letter.status = LetterStatus.FAILED.value
                letter.error = f"could not render: {exc}"[:500]
                fail(index, f"could not render: {exc}")
                continue
            left[index] += 1
            pending.append(_Pending(index, letter.id, html, pool.submit(html, css, assets)))
            while len(pending) > 2 * pool.size:
                collect(pending.popleft())
        if checkpoint is not None and (index + 1) % RUN_CHECKPOINT == 0:
            run.done = sum(1 for n in left[: index + 1] if n == 0)
            run.errors = list(errors)
            session.flush()
            checkpoint()
    while pending:
        collect(pending.popleft())
    run.done = len(items)
    run.errors = errors
    session.flush()
    post = session.scalars(
        select(Letter.id).where(
            Letter.run_id == run.id,
            Letter.channel == Channel.POST.value,
            Letter.status == LetterStatus.RENDERED.value,
            Letter.post_batch_id.is_(None),
        )
    ).all()
    if post:
        run.post_batch_id = print_batch(session, org_id, list(post))
    run.status = RunStatus.RENDERED.value
    run.finished_at = utcnow()
    session.flush()
    return True


def run_letters(session: Session, org_id: int, run_id: int) -> list[Letter]:
    """The letters a run made, in the order it made them."""
    return list(
        session.scalars(
            select(Letter).where(Letter.org_id == org_id, Letter.run_id == run_id).order_by(Letter.id)
        )
    )


def release_emails(session: Session, org_id: int, run_id: int, *, user_id: int | None) -> int:
    """Send the run's rendered emails; returns how many were queued (0 if they already were:
    each email is also claimed by its send job, so none goes twice)."""
    sync_tenant(session)
    released = session.execute(
        update(LetterRun)
        .where(
            LetterRun.id == run_id,
            LetterRun.org_id == org_id,
            LetterRun.status == RunStatus.RENDERED.value,
            LetterRun.emails_released_at.is_(None),
        )
        .values(emails_released_at=utcnow(), emails_released_by_user_id=user_id, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not released:
        return 0
    session.expire_all()
    letters = session.scalars(
        select(Letter).where(
            Letter.org_id == org_id,
            Letter.run_id == run_id,
            Letter.channel == Channel.EMAIL.value,
            Letter.status.in_([LetterStatus.RENDERED.value, LetterStatus.RETRY.value]),
        )
    ).all()
    for letter in letters:
        enqueue_send(session, letter)
    audit.record(
        session,
        org_id=org_id,
        action="letter_run.emails_released",
        object_type="letter_run",
        object_id=run_id,
        detail={"emails": len(letters)},
    )
    return len(letters)


# ---- registration certificate ----------------------------------------------------------------


def registration_certificate(
    session: Session, org_id: int, pupil_id: int, start: dt.date, end: dt.date, *, on: dt.date | None = None
) -> Document:
    """A pupil's register for ``start``..``end`` (one academic year) as a signed-off PDF, stored."""
    from collections import Counter

    from attendwise.attendance import metrics, queries
    from attendwise.attendance import services as attendance_services
    from attendwise.attendance.calendar import academic_year_of
    from attendwise.attendance.models import Pupil
    from attendwise.tenants.models import Organisation

    if end < start:
        raise LetterError("the period must end on or after the day it starts")
    year = academic_year_of(start)
    if academic_year_of(end) != year:
        raise LetterError(
            "a registration certificate covers one academic year: choose dates in the same year"
        )
    pupil = session.scalar(select(Pupil).where(Pupil.id == pupil_id, Pupil.org_id == org_id))
    if pupil is None:
        raise LetterError(f"pupil {pupil_id} is not a pupil of this school")
    calendar = attendance_services.school_calendar(session, org_id, year)
    table = attendance_services.code_table(session)
    period = metrics.Period(max(start, calendar.start), min(end, calendar.end), "certificate")
    totals = queries.figures(session, org_id, calendar, period, [pupil.id], table=table).record(0)
    codes = queries.mark_matrix(session, org_id, year, [pupil.id]).codes[0]
    used: Counter[str] = Counter()
    meanings: dict[str, str] = {}
    weeks = []
    for half in queries.register(calendar, codes, period.end, table):
        for week in half.weeks:
            cells = []
            for day in week.days:
                for mark in (day.am, day.pm):
                    if not (period.start <= day.day <= period.end) or not day.school_day:
                        cells.append("")
                    else:
                        cells.append(mark.code or "-")
                        if mark.code:
                            used[mark.code] += 1
                            meanings[mark.code] = mark.meaning
            if any(cells):
                weeks.append({"label": letter_context.long_date(week.monday), "sessions": cells})
    school = session.get(Organisation, org_id)
    settings = session.scalar(select(LetterSettings).where(LetterSettings.org_id == org_id))
    pct = totals["attendance_pct"]
    merge = {
        "school": {
            "name": school.name if school else "",
            "urn": school.urn if school else None,
            "address_lines": list(settings.address_lines) if settings else [],
            "logo": bool(settings and settings.logo),
            "signature": bool(settings and settings.signature),
        },
        "pupil": {
            "name": f"{pupil.legal_forename} {pupil.legal_surname}",
            "date_of_birth": letter_context.long_date(pupil.date_of_birth),
            "upn": pupil.upn,
            "year_group": pupil.year_group,
        },
        "period": {
            "start": letter_context.long_date(period.start),
            "end": letter_context.long_date(period.end),
        },
        "weeks": weeks,
        "totals": {
            "possible_sessions": totals["possible_sessions"],
            "present": totals["present"],
            "approved_activity": totals["approved_activity"],
            "authorised": totals["authorised"],
            "unauthorised": totals["unauthorised"],
            "attendance_pct": f"{pct:.1f}" if pct is not None else "100.0",
        },
        "codes": [{"code": c, "meaning": meanings[c], "count": n} for c, n in sorted(used.items())],
        "signatory": {
            "name": (settings.head_name if settings else None) or "Headteacher",
            "role": "Headteacher",
        },
        "generated_on": letter_context.long_date(on or utcnow().date()),
    }
    html = render.render_html(render.registration_certificate_source(), merge)
    pdf = render.render_pdf(html, assets_for(session, org_id))
    document = store_document(
        session,
        org_id,
        pdf,
        html,
        kind="registration_certificate",
        title=f"Registration certificate {period.start:%d %b %Y} to {period.end:%d %b %Y}",
        pupil_id=pupil.id,
    )
    audit.record(
        session,
        org_id=org_id,
        action="pupil.registration_certificate",
        object_type="document",
        object_id=document.id,
        pupil_id=pupil.id,
        detail={"from": period.start.isoformat(), "to": period.end.isoformat()},
    )
    return document


def letters_made(session: Session, start: dt.date, end: dt.date) -> int:
    """Letters the current school queued from ``start`` to ``end`` (any channel, not failed)."""
    low = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    high = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    count = session.scalar(
        select(func.count())
        .select_from(Letter)
        .where(Letter.queued_at >= low, Letter.queued_at < high, Letter.status != LetterStatus.FAILED.value)
    )
    return int(count or 0)
