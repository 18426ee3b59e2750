"""Sync runs and imports: the lock, the counts, the rejections, and the all-or-nothing pupil.

An import writes through the attendance services (``upsert_pupils``, ``upsert_contacts``,
``store_marks``), which validate a whole batch and refuse all of it when one row is bad. The
importer turns that into "good records are imported, bad ones are reported": it runs the whole
file inside a savepoint, and when a batch is refused it sets aside the records named in the
refusal (a pupil together with its contacts and marks; a contact on its own), rolls the
savepoint back and tries again. So each pupil ends either fully updated or untouched, and the
same file imported twice, in any order, changes nothing the second time (the services compare
before they write).

Functions flush, never commit, except :func:`start_run`'s caller, which commits the running
row at once so that the lock is visible to other processes.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import String, delete, func, insert, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from attendwise.attendance import services as attendance
from attendwise.attendance.models import Contact, Pupil
from attendwise.integrations import csv_import, ctf
from attendwise.integrations.models import CsvMapping, RunStatus, SyncFingerprint, SyncRejection, SyncRun
from attendwise.platform import audit, jobs, tenancy
from attendwise.platform.db import utcnow
from attendwise.tenants.models import Organisation

STALE_AFTER = dt.timedelta(hours=6)
"""A run still ``running`` after this long is taken to have died (its process was killed)."""

EVALUATE_SCHOOL = "attendwise.casework.jobs.evaluate_school"
"""The job that evaluates a school's pupils against its policy (casework owns it)."""

SEN_STATUS = {"E": "ehcp", "K": "sen_support", "N": "none"}


class SyncInProgress(RuntimeError):
    """Another sync of the same school is running."""


@dataclass(frozen=True)
class Rejection:
    record: str
    location: str
    reason: str


@dataclass
class Outcome:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return len({r.record for r in self.rejections})

    def add(self, kind: str, counts: attendance.Counts) -> None:
        self.created += counts.created
        self.updated += counts.updated
        self.unchanged += counts.unchanged
        counted = self.detail.setdefault(kind, {"created": 0, "updated": 0, "unchanged": 0})
        counted["created"] += counts.created
        counted["updated"] += counts.updated
        counted["unchanged"] += counts.unchanged


# ---- runs ---------------------------------------------------------------------------------


def start_run(
    session: Session, org_id: int, *, connector: str, source: str = "", user_id: int | None = None
) -> SyncRun:
    """Record a running sync for the school, or raise :class:`SyncInProgress`.

    The caller must commit straight away: the committed running row is the lock.
    """
    _require_writer(org_id)
    now = utcnow()
    running = session.scalars(
        select(SyncRun).where(SyncRun.org_id == org_id, SyncRun.status == RunStatus.RUNNING)
    ).all()
    for run in running:
        if _aware(run.started_at) < now - STALE_AFTER:
            run.status = RunStatus.FAILED
            run.finished_at = now
            run.error = f"abandoned: still running after {STALE_AFTER} (the process was stopped)"
        else:
            raise SyncInProgress(in_progress(run))
    session.flush()
    run = SyncRun(
        org_id=org_id, connector=connector, source=source[:255], started_by_user_id=user_id, started_at=now
    )
    try:
        # Rolling the savepoint back also takes the refused row out of the session.
        with session.begin_nested():
            session.add(run)
            session.flush()
    except IntegrityError:
        other = session.scalar(
            select(SyncRun).where(SyncRun.org_id == org_id, SyncRun.status == RunStatus.RUNNING)
        )
        raise SyncInProgress(in_progress(other)) from None
    return run


def in_progress(run: SyncRun | None) -> str:
    if run is None:
        return "another sync of this school is running"
    return (
        f"a {run.connector} sync of this school has been running since "
        f"{_aware(run.started_at):%Y-%m-%d %H:%M} UTC (run {run.id}); try again when it has finished"
    )


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def finish_run(session: Session, run: SyncRun, outcome: Outcome) -> SyncRun:
    run.status = RunStatus.SUCCEEDED
    run.finished_at = utcnow()
    run.created, run.updated, run.unchanged = outcome.created, outcome.updated, outcome.unchanged
    run.deleted, run.rejected = outcome.deleted, outcome.rejected
    run.detail = outcome.detail
    for rejection in outcome.rejections:
        session.add(
            SyncRejection(
                org_id=run.org_id,
                run=run,
                record=rejection.record[:200],
                location=rejection.location[:500],
                reason=rejection.reason,
            )
        )
    session.flush()
    if outcome.rejections:
        audit.record(
            session,
            org_id=run.org_id,
            action="sync.rejections",
            object_type="sync_run",
            object_id=run.id,
            detail={"rejections": len(outcome.rejections), "records": outcome.rejected},
        )
    return run


def fail_run(session: Session, run_id: int, error: str) -> None:
    """Mark a run failed (in a fresh transaction, after the import's own was rolled back)."""
    run = session.get(SyncRun, run_id)
    if run is not None:
        run.status = RunStatus.FAILED
        run.finished_at = utcnow()
        run.error = error[:2000]
        session.flush()


def last_success(session: Session, org_id: int, connector: str) -> dt.datetime | None:
    """When the school's last successful run of ``connector`` started: the next sync's cursor."""
    started = session.scalar(
        select(SyncRun.started_at)
        .where(
            SyncRun.org_id == org_id, SyncRun.connector == connector, SyncRun.status == RunStatus.SUCCEEDED
        )
        .order_by(SyncRun.started_at.desc())
        .limit(1)
    )
    return _aware(started) if started else None


def external_ids(session: Session, org_id: int, source: str) -> dict[str, str]:
    """The school's pupils from ``source``: external id -> UPN."""
    rows = session.execute(
        select(Pupil.external_id, Pupil.upn).where(
            Pupil.org_id == org_id, Pupil.source == source, Pupil.external_id.is_not(None)
        )
    ).all()
    return {str(external): upn for external, upn in rows}


def delete_contacts(session: Session, org_id: int, source: str, external_ids: set[str]) -> int:
    """Remove the contacts the MIS deleted (their links to pupils go with them)."""
    _require_writer(org_id)
    if not external_ids:
        return 0
    removed = 0
    for contact in session.scalars(
        select(Contact).where(
            Contact.org_id == org_id, Contact.source == source, Contact.external_id.in_(sorted(external_ids))
        )
    ):
        session.delete(contact)
        removed += 1
    session.flush()
    return removed


def school_by_urn(session: Session, urn: str) -> Organisation | None:
    return session.scalar(select(Organisation).where(Organisation.urn == urn))


# ---- importing a CTF ----------------------------------------------------------------------


def _record_of(location: str) -> str:
    """The record a problem belongs to: the pupil (``Pupil[3]``) or the whole file."""
    match = re.search(r"Pupil\[\d+\]", location, flags=re.IGNORECASE)
    return match.group(0) if match else "file"


def _pupil_record(pupil: ctf.Pupil, as_of: dt.date) -> attendance.PupilRecord:
    latest_sen = max(pupil.sen, key=lambda s: s.start or dt.date.min, default=None)
    return attendance.PupilRecord(
        upn=pupil.upn,
        legal_forename=pupil.forename,
        legal_surname=pupil.surname,
        preferred_forename=pupil.preferred_forename,
        preferred_surname=pupil.preferred_surname,
        date_of_birth=pupil.date_of_birth,
        year_group=pupil.nc_year,
        sex=pupil.sex,
        sen_status=SEN_STATUS.get(latest_sen.provision, "none") if latest_sen else "none",
        fsm=any(s.start <= as_of and (s.end is None or s.end >= as_of) for s in pupil.fsm),
        eal=bool(pupil.eal),
        looked_after=bool(pupil.looked_after),
        source="ctf",
    )


@dataclass
class _ContactGroup:
    contact: ctf.Contact
    postcode: str | None
    address_lines: tuple[str, ...]
    links: dict[str, tuple[ctf.Contact, str]] = field(default_factory=dict)  # upn -> (contact, pupil loc)


def _group_contacts(pupils: Sequence[ctf.Pupil]) -> list[_ContactGroup]:
    """One record per person: the same parent under two siblings becomes one contact, two links.

    Pupils are taken in UPN order, so the details kept for a person (from their first pupil)
    do not depend on the order of the file; phones and emails are the union over all pupils.
    """
    groups: dict[tuple[str, str, str], _ContactGroup] = {}
    for pupil in sorted(pupils, key=lambda p: p.upn):
        for contact in pupil.contacts:
            address = contact.address or (pupil.address if contact.address_as_pupil else None)
            postcode = attendance.normalise_postcode(address.postcode if address else None)
            key = attendance.contact_identity(contact.forename or "", contact.surname or "", postcode)
            group = groups.setdefault(
                key,
                _ContactGroup(
                    contact=contact, postcode=postcode, address_lines=address.lines if address else ()
                ),
            )
            group.links.setdefault(pupil.upn, (contact, pupil.location))
    return list(groups.values())


def _contact_record(group: _ContactGroup, upns: set[str]) -> attendance.ContactRecord:
    contact = group.contact
    every = [link for link, _where in group.links.values()]
    phones = sorted({(phone.kind or "phone", phone.number) for c in every for phone in c.phones})
    emails = sorted({c.email.lower() for c in every if c.email})
    return attendance.ContactRecord(
        forename=contact.forename or "",
        surname=contact.surname or "",
        title=contact.title,
        address_lines=group.address_lines,
        postcode=group.postcode,
        phones=tuple(phones),
        emails=tuple(emails),
        source="ctf",
        links=tuple(
            attendance.ContactLink(
                pupil_upn=upn,
                relationship=link.relationship or "Contact",
                parental_responsibility=link.parental_responsibility,
                lives_with_pupil=link.address_as_pupil,
                priority=min(max(link.order or 1, 1), 99),
            )
            for upn, (link, _where) in sorted(group.links.items())
            if upn in upns
        ),
    )


@dataclass(frozen=True)
class Where:
    """Where a record came from, for its rejection: the record and the place in the source."""

    record: str
    location: str


class MarkIn(NamedTuple):
    """A mark on its way in (a tuple: a school's year is half a million of them)."""

    upn: str
    date: dt.date
    session: str
    code: str
    minutes_late: int | None = None


@dataclass
class Batch:
    """Normalised records of one source, each with where it came from.

    Marks come one per session (``marks``: CSV, Wonde) or as spans of consecutive sessions
    (``spans``: a CTF's AttendanceMarks strings, stored without a Python object per session).
    """

    pupils: list[tuple[attendance.PupilRecord, Where]] = field(default_factory=list)
    contacts: list[tuple[attendance.ContactRecord, list[Where]]] = field(default_factory=list)
    marks: list[tuple[MarkIn, Where]] = field(default_factory=list)
    spans: list[tuple[attendance.MarkSpan, Where]] = field(default_factory=list)


def store(
    session: Session, org_id: int, batch: Batch, *, source: str = "import", feed: str | None = None
) -> Outcome:
    """Write a batch through the attendance services; with a ``feed``, skip what it sent before.

    A pupil whose record, contacts and marks are exactly what the same feed delivered last time
    (the :class:`SyncFingerprint` digest matches, and the pupil is still there) is not written
    again: applying it would change nothing. Its records count as unchanged.
    """
    digests = _digests(batch) if feed else {}
    same = _already_delivered(session, org_id, feed, digests) if feed else set()
    fresh, repeated = _split(batch, same)
    outcome, refused = _store(session, org_id, fresh, source=source)
    repeated_marks = len(repeated.marks) + sum(_marks_in(span) for span, _where in repeated.spans)
    for kind, number in (
        ("pupils", len(repeated.pupils)),
        ("contacts", len(repeated.contacts)),
        ("marks", repeated_marks),
    ):
        if number:
            outcome.unchanged += number
            counts = outcome.detail.setdefault(kind, {"created": 0, "updated": 0, "unchanged": 0})
            counts["unchanged"] += number
    if feed:
        _remember(
            session, org_id, feed, {k: d for k, d in digests.items() if k not in same and k not in refused}
        )
    return outcome


def _marks_in(span: attendance.MarkSpan) -> int:
    return len(span.codes) - span.codes.count(0)


def _digests(batch: Batch) -> dict[str, str]:
    """Per pupil (UPN): a SHA-256 of everything the batch holds about them."""
    parts: dict[str, list[str]] = {}
    for record, _where in batch.pupils:
        parts.setdefault(record.upn, []).append("pupil " + repr(_without_row(record)))
    for contact, _wheres in batch.contacts:
        text = "contact " + repr(_without_row(contact))
        for link in contact.links:
            parts.setdefault(link.pupil_upn, []).append(text)
    for mark, _where in batch.marks:
        parts.setdefault(mark.upn, []).append(
            f"mark {mark.date} {mark.session} {mark.code} {mark.minutes_late}"
        )
    for span, _where in batch.spans:
        parts.setdefault(span.upn, []).append(f"span {span.start} {span.codes.hex()}")
    return {
        upn: hashlib.sha256("\n".join(sorted(items)).encode()).hexdigest() for upn, items in parts.items()
    }


_Record = TypeVar("_Record", attendance.PupilRecord, attendance.ContactRecord)


def _without_row(record: _Record) -> _Record:
    """The record without its row number in the file: moving a record does not change it."""
    return record if record.row is None else replace(record, row=None)


def _already_delivered(session: Session, org_id: int, feed: str | None, digests: dict[str, str]) -> set[str]:
    if not digests:
        return set()
    stored = dict(
        session.execute(
            select(SyncFingerprint.key, SyncFingerprint.digest).where(
                SyncFingerprint.org_id == org_id, SyncFingerprint.feed == feed
            )
        ).all()
    )
    present = set(session.scalars(select(Pupil.upn).where(Pupil.org_id == org_id)))
    return {key for key, digest in digests.items() if stored.get(key) == digest and key in present}


def _split(batch: Batch, same: set[str]) -> tuple[Batch, Batch]:
    """(what must be written, what was delivered before); a contact is written if any of its pupils is."""
    if not same:
        return batch, Batch()
    fresh, repeated = Batch(), Batch()
    for pupil in batch.pupils:
        (repeated if pupil[0].upn in same else fresh).pupils.append(pupil)
    for contact in batch.contacts:
        all_same = all(link.pupil_upn in same for link in contact[0].links)
        (repeated if all_same else fresh).contacts.append(contact)
    for mark in batch.marks:
        (repeated if mark[0].upn in same else fresh).marks.append(mark)
    for span in batch.spans:
        (repeated if span[0].upn in same else fresh).spans.append(span)
    return fresh, repeated


def _remember(session: Session, org_id: int, feed: str, digests: dict[str, str]) -> None:
    if not digests:
        return
    keys = sorted(digests)
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        # One statement however many pupils: the pairs travel as two arrays.
        pairs = select(
            func.unnest(literal(keys, ARRAY(String))).label("key"),
            func.unnest(literal([digests[k] for k in keys], ARRAY(String))).label("digest"),
        ).subquery()
        upsert = pg_insert(SyncFingerprint).from_select(
            ["org_id", "feed", "key", "digest", "stored_at"],
            select(literal(org_id), literal(feed), pairs.c.key, pairs.c.digest, literal(now)),
        )
        session.execute(
            upsert.on_conflict_do_update(
                index_elements=["org_id", "feed", "key"],
                set_={"digest": upsert.excluded.digest, "stored_at": upsert.excluded.stored_at},
            )
        )
    else:
        session.execute(
            delete(SyncFingerprint).where(
                SyncFingerprint.org_id == org_id, SyncFingerprint.feed == feed, SyncFingerprint.key.in_(keys)
            )
        )
        session.execute(
            insert(SyncFingerprint),
            [
                {"org_id": org_id, "feed": feed, "key": key, "digest": digest, "stored_at": now}
                for key, digest in digests.items()
            ],
        )
    audit.record(
        session,
        org_id=org_id,
        action="sync.fingerprints",
        object_type="sync_fingerprints",
        detail={"feed": feed, "pupils": len(keys)},
    )


def _store(session: Session, org_id: int, batch: Batch, *, source: str) -> tuple[Outcome, set[str]]:
    """Write a batch through the attendance services, setting aside what they refuse.

    The unit is the pupil: a pupil whose record or any mark is refused is left out altogether
    (record, contacts' links to them, and marks); a refused contact is left out on its own.
    Everything runs in a savepoint that is rolled back before each retry, so nothing of a
    refused attempt remains.
    """
    excluded: dict[str, Rejection] = {}
    excluded_contacts: dict[int, list[Rejection]] = {}
    while True:
        pupils = {
            row: (replace(record, row=row), where)
            for row, (record, where) in enumerate(
                (p for p in batch.pupils if p[0].upn not in excluded), start=1
            )
        }
        contacts = {}
        for row, (contact, wheres) in enumerate(batch.contacts, start=1):
            links = tuple(link for link in contact.links if link.pupil_upn not in excluded)
            if row not in excluded_contacts and links:
                contacts[row] = (replace(contact, links=links, row=row), wheres)
        marks = dict(enumerate((m for m in batch.marks if m[0].upn not in excluded), start=1))
        spans = dict(enumerate((s for s in batch.spans if s[0].upn not in excluded), start=1))
        outcome = Outcome()
        savepoint = session.begin_nested()
        step = "pupils"
        try:
            if batch.pupils:
                outcome.add(
                    "pupils", attendance.upsert_pupils(session, org_id, [r for r, _w in pupils.values()])
                )
            step = "contacts"
            if batch.contacts:
                outcome.add(
                    "contacts",
                    attendance.upsert_contacts(session, org_id, [r for r, _w in contacts.values()]),
                )
            step = "marks"
            if batch.marks:
                rows = [
                    attendance.MarkRow(
                        upn=m.upn,
                        date=m.date,
                        session=m.session,
                        code=m.code,
                        minutes_late=m.minutes_late,
                        row=row,
                    )
                    for row, (m, _w) in marks.items()
                ]
                counts = attendance.store_marks(session, org_id, rows, source=source)
                outcome.add("marks", counts)
            step = "spans"
            if batch.spans:
                spans_in = [replace(span, row=row) for row, (span, _w) in spans.items()]
                outcome.add("marks", attendance.store_mark_spans(session, org_id, spans_in, source=source))
        except attendance.BatchRejected as refused:
            savepoint.rollback()
            progress = False
            for error in refused.errors:
                if step == "pupils" and error.row in pupils:
                    record, where = pupils[error.row]
                    progress |= _exclude(
                        excluded, record.upn, Rejection(where.record, where.location, error.reason)
                    )
                elif step == "marks" and error.row in marks:
                    mark, where = marks[error.row]
                    progress |= _exclude(excluded, mark.upn, _not_imported(where, error.reason))
                elif step == "spans" and error.row in spans:
                    span, where = spans[error.row]
                    progress |= _exclude(excluded, span.upn, _not_imported(where, error.reason))
                elif step == "contacts" and error.row in contacts and error.row not in excluded_contacts:
                    excluded_contacts[error.row] = [
                        Rejection(w.record, w.location, f"contact not imported: {error.reason}")
                        for w in contacts[error.row][1]
                    ]
                    progress = True
            if not progress:
                raise
            continue
        savepoint.commit()
        outcome.rejections.extend(excluded.values())
        set_aside = set(excluded)
        for row, rejections in excluded_contacts.items():
            outcome.rejections.extend(rejections)
            set_aside.update(link.pupil_upn for link in batch.contacts[row - 1][0].links)
        return outcome, set_aside


def _not_imported(where: Where, reason: str) -> Rejection:
    return Rejection(where.record, where.location, f"the pupil was not imported: {reason}")


def _exclude(excluded: dict[str, Rejection], upn: str, rejection: Rejection) -> bool:
    if upn in excluded:
        return False
    excluded[upn] = rejection
    return True


def _merge(outcome: Outcome, stored: Outcome) -> Outcome:
    outcome.created, outcome.updated, outcome.unchanged = stored.created, stored.updated, stored.unchanged
    outcome.deleted += stored.deleted
    outcome.detail.update(stored.detail)
    outcome.rejections.extend(stored.rejections)
    return outcome


def import_ctf(
    session: Session, school: Organisation, parsed: ctf.CtfFile, *, as_of: dt.date | None = None
) -> Outcome:
    """Import a parsed CTF into ``school``: every good pupil whole, every problem reported.

    A file whose Pupil elements are byte for byte those of the school's last CTF import (which
    stored every one of them), on the same date, is not read again: importing it would change
    nothing, and the outcome says so with the last import's counts, all unchanged.
    """
    _require_writer(school.id)
    when = as_of or (
        parsed.header.date_time.date() if parsed.header and parsed.header.date_time else utcnow().date()
    )
    key = _file_key(parsed, when, school.laestab)
    if key is not None and (same := _identical_import(session, school.id, key)) is not None:
        return same
    outcome = Outcome(
        rejections=[Rejection(_record_of(p.location), p.location, p.reason) for p in parsed.problems]
    )
    batch = Batch()
    skipped_years = 0
    for pupil in parsed.pupils:
        where = Where(_record_of(pupil.location), pupil.location)
        batch.pupils.append((_pupil_record(pupil, when), where))
        for year in pupil.years:
            if school.laestab and year.lea and year.estab and f"{year.lea}{year.estab}" != school.laestab:
                skipped_years += 1
                continue
            if year.start_date is not None and year.codes:
                marks_at = Where(where.record, f"{year.location}/AttendSessions/AttendanceMarks")
                batch.spans.append((attendance.MarkSpan(pupil.upn, year.start_date, year.codes), marks_at))
    upns = {p.upn for p in parsed.pupils}
    for group in _group_contacts(parsed.pupils):
        wheres = [Where(_record_of(where), contact.location) for contact, where in group.links.values()]
        batch.contacts.append((_contact_record(group, upns), wheres))
    outcome.detail["years_from_other_schools"] = skipped_years
    outcome = _merge(outcome, store(session, school.id, batch, feed="ctf"))
    session.execute(
        delete(SyncFingerprint).where(SyncFingerprint.org_id == school.id, SyncFingerprint.feed == FILE_FEED)
    )
    if key is not None and not outcome.rejections:
        outcome.detail["file"] = key
        session.flush()
        _remember(session, school.id, FILE_FEED, {"pupils": key, "state": _pupils_state(session, school.id)})
    return outcome


FILE_FEED = "ctf-file"
"""One fingerprint per school: what its last CTF import read, when it stored all of it."""


def _file_key(parsed: ctf.CtfFile, when: dt.date, laestab: str | None) -> str | None:
    """A SHA-256 of everything an import of ``parsed`` depends on: each Pupil element's bytes, the
    date the import is as of and the school's LA/establishment number; ``None`` when the file has
    a problem before its pupils are read, no pupils, or a Pupil element with no or a repeated UPN."""
    upns = [element.upn for element in parsed.elements]
    if not upns or None in upns or len(set(upns)) != len(upns) or parsed.file_problems:
        return None
    lines = sorted(f"{element.upn} {element.digest}" for element in parsed.elements)
    return hashlib.sha256("\n".join([f"as of {when}", f"school {laestab}", *lines]).encode()).hexdigest()


def _identical_import(session: Session, org_id: int, key: str) -> Outcome | None:
    """The outcome of importing a file the school's last successful CTF import read in full, or
    ``None`` when that is not the case or the school's pupils have changed since (one removed,
    added or edited by any route: the file would put them back)."""
    found = _last_full_import(session, org_id, key)
    return None if found is None else _nothing_changed(*found)


def _last_full_import(session: Session, org_id: int, key: str | None) -> tuple[SyncRun, str] | None:
    """The school's last successful CTF import and its file key, if it stored every pupil of that
    file (and the file is ``key``, when given) and the school's pupils are as it left them."""
    stored = _file_fingerprints(session, org_id)
    if "pupils" not in stored or (key is not None and stored["pupils"] != key):
        return None
    if stored.get("state") != _pupils_state(session, org_id):
        return None
    last = session.scalar(
        select(SyncRun)
        .where(SyncRun.org_id == org_id, SyncRun.connector == "ctf", SyncRun.status == RunStatus.SUCCEEDED)
        .order_by(SyncRun.started_at.desc(), SyncRun.id.desc())
        .limit(1)
    )
    if last is None or last.rejected or (last.detail or {}).get("file") != stored["pupils"]:
        return None
    return last, stored["pupils"]


def _nothing_changed(last: SyncRun, key: str) -> Outcome:
    outcome = Outcome(
        detail={
            "file": key,
            "same_as_run": last.id,
            "years_from_other_schools": last.detail.get("years_from_other_schools", 0),
        }
    )
    for kind in ("pupils", "contacts", "marks"):
        total = sum((last.detail.get(kind) or {}).values())
        if total:
            outcome.add(kind, attendance.Counts(unchanged=total))
    return outcome


def import_ctf_bytes(session: Session, school: Organisation, data: bytes) -> Outcome:
    """Import a CTF file's bytes (already size-checked), as the upload page and the command do.

    A file byte for byte the one the school's last CTF import stored in full, dated in its
    header, is not even parsed while the school's pupils are as that import left them:
    importing it would change nothing. Anything else goes to :func:`import_ctf`.
    """
    _require_writer(school.id)
    digest = _bytes_digest(school, data)
    if _file_fingerprints(session, school.id).get("bytes") == digest:
        found = _last_full_import(session, school.id, None)
        if found is not None:
            outcome = _nothing_changed(*found)
            outcome.detail["same_bytes"] = True
            return outcome
    parsed = ctf.parse(data)
    outcome = import_ctf(session, school, parsed)
    if outcome.detail.get("file") and parsed.header and parsed.header.date_time:
        _remember(session, school.id, FILE_FEED, {"bytes": digest})
    return outcome


def _bytes_digest(school: Organisation, data: bytes) -> str:
    """The file's SHA-256 with the school's LA/establishment number (an import depends on both)."""
    return hashlib.sha256(f"{hashlib.sha256(data).hexdigest()} school {school.laestab}".encode()).hexdigest()


def _file_fingerprints(session: Session, org_id: int) -> dict[str, str]:
    return dict(
        session.execute(
            select(SyncFingerprint.key, SyncFingerprint.digest).where(
                SyncFingerprint.org_id == org_id, SyncFingerprint.feed == FILE_FEED
            )
        ).all()
    )


def _pupils_state(session: Session, org_id: int) -> str:
    """A digest of how many pupils the school has, which, and when any last changed: equal
    values mean no pupil was added, removed or edited in between."""
    count, ids, newest = session.execute(
        select(func.count(), func.coalesce(func.sum(Pupil.id), 0), func.max(Pupil.updated_at)).where(
            Pupil.org_id == org_id
        )
    ).one()
    return hashlib.sha256(f"{count} {ids} {newest.isoformat() if newest else ''}".encode()).hexdigest()


# ---- importing a CSV ----------------------------------------------------------------------


def import_csv(session: Session, school: Organisation, parsed: csv_import.CsvFile) -> Outcome:
    """Import a parsed CSV of marks or pupils: good pupils whole, refusals reported by row."""
    _require_writer(school.id)
    outcome = Outcome(
        rejections=[Rejection(_csv_record(p.location), p.location, p.reason) for p in parsed.problems]
    )
    batch = Batch(
        pupils=[(p, Where(f"UPN {p.upn}", f"row {p.row}")) for p in parsed.pupils],
        marks=[
            (MarkIn(m.upn, m.date, m.session, m.code, m.minutes_late), Where(f"UPN {m.upn}", f"row {m.row}"))
            for m in parsed.marks
        ],
    )
    return _merge(outcome, store(session, school.id, batch, feed=f"csv-{parsed.kind}"))


def _csv_record(location: str) -> str:
    return location.split(",", 1)[0]


def saved_mapping(session: Session, org_id: int, kind: str) -> dict[str, str]:
    mapping = session.scalar(select(CsvMapping).where(CsvMapping.org_id == org_id, CsvMapping.kind == kind))
    return dict(mapping.columns) if mapping else {}


def save_mapping(session: Session, org_id: int, kind: str, columns: dict[str, str]) -> CsvMapping:
    _require_writer(org_id)
    mapping = session.scalar(select(CsvMapping).where(CsvMapping.org_id == org_id, CsvMapping.kind == kind))
    if mapping is None:
        mapping = CsvMapping(org_id=org_id, kind=kind, columns=dict(columns))
        session.add(mapping)
    elif mapping.columns != columns:
        mapping.columns = dict(columns)
    session.flush()
    return mapping


def run_import(
    session: Session,
    school: Organisation,
    *,
    connector: str,
    source: str,
    work: Callable[[], Outcome],
    user_id: int | None = None,
    evaluate: bool = True,
) -> SyncRun:
    """Take the school's lock, run ``work`` in one transaction, and record the run either way.

    When any mark was created or changed, the school's pupils are evaluated against its policy
    again (the casework evaluation job, queued to run after the commit), unless ``evaluate`` is
    false: the demo, whose casework replays the whole term after the imports.
    """
    with tenancy.tenant_context(school.id):
        run = start_run(session, school.id, connector=connector, source=source, user_id=user_id)
        session.commit()
        run_id = run.id
        try:
            with _garbage_collector_skips_what_exists():
                outcome = work()
            finish_run(session, run, outcome)
            marks = outcome.detail.get("marks") or {}
            if evaluate and (marks.get("created") or marks.get("updated")):
                jobs.enqueue(
                    EVALUATE_SCHOOL, school.id, org_id=school.id, queue="evaluation", session=session
                )
            session.commit()
        except BaseException as exc:
            session.rollback()
            fail_run(session, run_id, f"{type(exc).__name__}: {exc}")
            session.commit()
            raise
    return run


def _require_writer(org_id: int) -> None:
    if not tenancy.require().can_write(org_id):
        raise tenancy.TenantViolation("importing into another organisation")


@contextmanager
def _garbage_collector_skips_what_exists() -> Iterator[None]:
    """Leave the objects that exist now (the application) out of the garbage collector's scans,
    and collect nothing, until the block ends; everything is collectable as usual afterwards.

    An import makes tens of thousands of records (and the parsed file) that live until it ends,
    none of them garbage, and each collection they trigger would scan them and the application
    again: a quarter of the CPU of a 1,500-pupil CTF import (benchmarks/ingest.py).
    """
    gc.freeze()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.unfreeze()
