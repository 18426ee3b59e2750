"""State-changing functions for pupils, contacts, households, calendars and marks.

Importers (CTF, CSV, MIS APIs) and the demo call these with plain, normalised records and
get counts back. Every batch is validated in full before anything is written: a batch with
any bad row raises :class:`BatchRejected` listing each row number and reason, and nothing
from it is stored. Functions flush, never commit.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
import psycopg
from flask import current_app
from sqlalchemy import (
    JSON,
    DateTime,
    Table,
    TableClause,
    bindparam,
    column,
    delete,
    insert,
    literal,
    select,
    table,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from stdnum.exceptions import InvalidComponent, ValidationError
from stdnum.gb import upn as stdnum_upn

from attendwise.attendance import marks_codec
from attendwise.attendance.calendar import (
    HalfTerm,
    SchoolCalendar,
    academic_year_end,
    academic_year_of,
    academic_year_start,
)
from attendwise.attendance.codes import (
    CODE_INDEX,
    CODE_ORDER,
    CODES,
    DEFAULT_TABLE,
    NO_MARK,
    CodeTable,
    StatClass,
    decode,
)
from attendwise.attendance.models import (
    ClosureKind,
    CodeOverride,
    Contact,
    Enrolment,
    HouseholdKey,
    MarkChange,
    MarkSource,
    Pupil,
    PupilContact,
    PupilMarkYear,
    RegistrationType,
    SchoolClosure,
    SchoolHalfTerm,
    SenStatus,
    Sex,
)
from attendwise.platform import audit, tenancy
from attendwise.platform.db import sync_tenant, utcnow

YEAR_GROUPS = ("N1", "N2", "R", *(str(n) for n in range(1, 15)))
# LAs created after python-stdnum's list was made (Northamptonshire, Cumbria reorganisations).
NEWER_LA_NUMBERS = frozenset({940, 941, 942, 943})
MAX_MINUTES_LATE = 240


@dataclass(frozen=True)
class RowError:
    row: int
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.reason}"


class BatchRejected(ValueError):
    """A batch with at least one bad row: nothing from it was stored.

    ``errors`` lists every problem with its row; ``counts.rejected`` is the number of bad rows.
    """

    def __init__(self, what: str, errors: Sequence[RowError], rows: int) -> None:
        self.errors = list(errors)
        self.rows = rows
        self.counts = Counts(rejected=len({e.row for e in self.errors}))
        shown = "; ".join(str(e) for e in self.errors[:20])
        more = f" (and {len(self.errors) - 20} more)" if len(self.errors) > 20 else ""
        super().__init__(
            f"{what} rejected, nothing stored: {len(self.errors)} problem(s) in {rows} row(s): {shown}{more}"
        )


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    changed_pupils: frozenset[int] = frozenset()  # marks: whose marks changed (to re-evaluate)


# ---- UPNs -------------------------------------------------------------------------------


class UpnError(ValueError):
    pass


_compact_upn = functools.lru_cache(maxsize=65536)(stdnum_upn.compact)
"""A UPN without spaces or separators, upper case (cached: a sync compacts each pupil's UPN once
for the pupil and again for each contact link)."""


@functools.lru_cache(maxsize=65536)
def check_upn(value: str) -> tuple[str, bool]:
    """Return the compact UPN and whether it is temporary; raise :class:`UpnError` if malformed.

    Cached: an import checks each pupil's UPN several times (the file, the pupil, each contact
    link and mark span), and the answer depends on the string alone."""
    number = _compact_upn(value or "")
    try:
        stdnum_upn.validate(number)
    except InvalidComponent:
        if int(number[1:4]) not in NEWER_LA_NUMBERS or stdnum_upn.calc_check_digit(number[1:]) != number[0]:
            raise UpnError(f"UPN {value!r} has an unknown local-authority number {number[1:4]}") from None
    except ValidationError as exc:
        reason = {
            "InvalidLength": "must be 13 characters",
            "InvalidFormat": "must be a letter, 11 digits and a final digit or letter",
            "InvalidChecksum": "check letter does not match (mistyped?)",
        }.get(type(exc).__name__, "is not valid")
        raise UpnError(f"UPN {value!r} {reason}") from None
    return number, number[-1].isalpha()


# ---- pupils -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EnrolmentRecord:
    start_date: dt.date
    leave_date: dt.date | None = None
    registration_type: str = RegistrationType.MAIN.value


@dataclass(frozen=True)
class PupilRecord:
    upn: str
    legal_forename: str
    legal_surname: str
    date_of_birth: dt.date
    year_group: str
    sex: str = Sex.UNKNOWN.value
    preferred_forename: str | None = None
    preferred_surname: str | None = None
    registration_group: str | None = None
    sen_status: str = SenStatus.NONE.value
    fsm: bool = False
    eal: bool = False
    looked_after: bool = False
    child_in_need: bool = False
    source: str | None = None
    external_id: str | None = None
    enrolments: tuple[EnrolmentRecord, ...] = ()
    row: int | None = None  # the row number in the source file, for error messages


_PUPIL_FIELDS = (
    "upn",
    "upn_temporary",
    "legal_forename",
    "legal_surname",
    "preferred_forename",
    "preferred_surname",
    "date_of_birth",
    "sex",
    "year_group",
    "registration_group",
    "sen_status",
    "fsm",
    "eal",
    "looked_after",
    "child_in_need",
    "source",
    "external_id",
)


def _row_no(record: PupilRecord | ContactRecord | MarkRow | MarkSpan, index: int) -> int:
    return record.row if record.row is not None else index + 1


def _pupil_errors(rec: PupilRecord) -> list[str]:
    problems = []
    try:
        check_upn(rec.upn)
    except UpnError as exc:
        problems.append(str(exc))
    if not (rec.legal_forename or "").strip() or not (rec.legal_surname or "").strip():
        problems.append("legal forename and surname are required")
    if rec.year_group not in YEAR_GROUPS:
        problems.append(f"year group {rec.year_group!r} is not an NC year ({', '.join(YEAR_GROUPS)})")
    if rec.sex not in {s.value for s in Sex}:
        problems.append(f"sex {rec.sex!r} must be F, M or U")
    if rec.sen_status not in {s.value for s in SenStatus}:
        problems.append(f"SEN status {rec.sen_status!r} must be none, sen_support or ehcp")
    if not isinstance(rec.date_of_birth, dt.date) or not dt.date(1990, 1, 1) <= rec.date_of_birth:
        problems.append(f"date of birth {rec.date_of_birth!r} is not a plausible date")
    for e in rec.enrolments:
        if e.registration_type not in {r.value for r in RegistrationType}:
            problems.append(f"registration type {e.registration_type!r} must be main or subsidiary")
        if e.leave_date is not None and e.leave_date < e.start_date:
            problems.append(f"enrolment leaves ({e.leave_date}) before it starts ({e.start_date})")
    return problems


def upsert_pupils(session: Session, org_id: int, records: Sequence[PupilRecord]) -> Counts:
    """Create or update a school's pupils (matched on source + external id, else on UPN).

    Set-based: the school's pupils and enrolments are read in one query each and compared
    in Python; only the rows that differ are written (see :func:`_write_rows`), each with
    the audit event the ORM's flush hook would write for it.
    """
    _require_writer(org_id)
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for i, rec in enumerate(records):
        row = _row_no(rec, i)
        errors.extend(RowError(row, p) for p in _pupil_errors(rec))
        key = _compact_upn(rec.upn or "")
        if key in seen:
            errors.append(RowError(row, f"UPN {key} also appears in row {seen[key]}"))
        seen.setdefault(key, row)
    if errors:
        raise BatchRejected("pupil batch", errors, len(records))

    session.flush()
    stored = _stored_rows(session, Pupil, org_id, _PUPIL_FIELDS)
    stored_enrolments = _by_parent(
        _stored_rows(
            session, Enrolment, org_id, ("pupil_id", "start_date", "leave_date", "registration_type")
        ),
        "pupil_id",
        "start_date",
    )
    by_upn: dict[str, int | str] = {values["upn"]: pupil_id for pupil_id, values in stored.items()}
    by_ext: dict[tuple[Any, Any], int | str] = {
        (v["source"], v["external_id"]): pupil_id for pupil_id, v in stored.items() if v["external_id"]
    }
    # What each pupil is after the batch: stored ones by id, new ones by UPN.
    pupils: dict[int | str, dict[str, Any]] = {pupil_id: dict(v) for pupil_id, v in stored.items()}
    enrolments: dict[int | str, dict[dt.date, tuple[dt.date | None, str]]] = {
        pupil_id: {start: (v["leave_date"], v["registration_type"]) for start, (_id, v) in rows.items()}
        for pupil_id, rows in stored_enrolments.items()
    }
    counts = Counts()
    for rec in records:
        upn, temporary = check_upn(rec.upn)
        values = {
            **{f: getattr(rec, f) for f in _PUPIL_FIELDS if f not in ("upn", "upn_temporary")},
            "upn": upn,
            "upn_temporary": temporary,
            "sex": Sex(rec.sex).value,
            "sen_status": SenStatus(rec.sen_status).value,
            "legal_forename": rec.legal_forename.strip(),
            "legal_surname": rec.legal_surname.strip(),
        }
        match = by_ext.get((rec.source, rec.external_id)) if rec.external_id else None
        match = match if match is not None else by_upn.get(upn)
        if match is None:
            match = by_upn[upn] = upn
            pupils[match] = values
            counts.created += 1
            changed = False
        else:
            changed = any(pupils[match][n] != v for n, v in values.items())
            pupils[match].update(values)
        changed |= _sync_enrolments(enrolments.setdefault(match, {}), rec.enrolments)
        if isinstance(match, int):
            counts.updated += changed
            counts.unchanged += not changed

    now = utcnow()
    events: list[audit.Event] = []
    new_upns = [match for match in pupils if isinstance(match, str)]
    new_ids = _write_rows(
        session,
        org_id,
        Pupil,
        now,
        events,
        inserts=[pupils[upn] for upn in new_upns],
        updates=_changed_rows(stored, pupils),
    )
    ids = dict(zip(new_upns, new_ids, strict=True))
    by_id = {ids[key] if isinstance(key, str) else key: rows for key, rows in enrolments.items()}
    wanted = {
        pupil_id: {start: _enrolment_row(pupil_id, start, *e) for start, e in rows.items()}
        for pupil_id, rows in by_id.items()
    }
    _write_rows(session, org_id, Enrolment, now, events, **_child_writes(stored_enrolments, wanted))
    audit.record_many(session, events)
    return counts


_Children = dict[int, dict[Any, tuple[int, dict[str, Any]]]]  # parent id -> child key -> (id, row)


def _stored_rows(
    session: Session,
    model: type[Pupil | Enrolment | Contact | PupilContact],
    org_id: int,
    fields: Sequence[str],
) -> dict[int, dict[str, Any]]:
    """The school's rows of a table, in one query: id -> the named columns."""
    query = select(model.id, *(getattr(model, n) for n in fields)).where(model.org_id == org_id)
    return {row.id: {n: getattr(row, n) for n in fields} for row in session.execute(query.order_by(model.id))}


def _by_parent(rows: dict[int, dict[str, Any]], parent: str, key: str) -> _Children:
    children: _Children = {}
    for row_id, row in rows.items():
        children.setdefault(row[parent], {})[row[key]] = (row_id, row)
    return children


def _enrolment_row(pupil_id: Any, start: dt.date, leave: dt.date | None, kind: str) -> dict[str, Any]:
    return {"pupil_id": pupil_id, "start_date": start, "leave_date": leave, "registration_type": kind}


def _child_writes(stored: _Children, wanted: dict[Any, dict[Any, dict[str, Any]]]) -> dict[str, Any]:
    """The rows to insert, update and delete (as :func:`_write_rows` takes them) to make each
    parent's children, by key, the wanted ones; a parent not in ``wanted`` keeps its own."""
    inserts: list[dict[str, Any]] = []
    updates: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    deletes: list[tuple[int, int | None]] = []
    for parent, children in wanted.items():
        current = stored.get(parent, {})
        for key, values in children.items():
            if key not in current:
                inserts.append(values)
                continue
            row_id, before = current[key]
            changed = {n: v for n, v in values.items() if before[n] != v}
            if changed:
                updates.append((row_id, values, changed))
        deletes += [
            (row_id, row["pupil_id"]) for key, (row_id, row) in current.items() if key not in children
        ]
    return {"inserts": inserts, "updates": updates, "deletes": deletes}


def _sync_enrolments(
    current: dict[dt.date, tuple[dt.date | None, str]], records: Iterable[EnrolmentRecord]
) -> bool:
    """Make a pupil's enrolments (start -> leave, registration type) these; say whether they changed.

    A record without enrolments leaves them as they are.
    """
    wanted = {e.start_date: (e.leave_date, RegistrationType(e.registration_type).value) for e in records}
    if not wanted or wanted == current:
        return False
    current.clear()
    current.update(wanted)
    return True


def _changed_rows(
    stored: dict[int, dict[str, Any]], after: dict[Any, dict[str, Any]]
) -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
    """(id, every value, the values that changed) of each stored row the batch changed."""
    updates = []
    for row_id, before in stored.items():
        values = after[row_id]
        changed = {n: v for n, v in values.items() if before[n] != v}
        if changed:
            updates.append((row_id, values, changed))
    return updates


_AUDITED_AS_IS = (int, float, bool, type(None))


def _audit_values(values: dict[str, Any]) -> dict[str, Any]:
    """Values as the audit log's flush hook records them (``audit._changes``)."""
    return {n: v if isinstance(v, _AUDITED_AS_IS) else str(v)[:200] for n, v in values.items()}


def _write_rows(
    session: Session,
    org_id: int,
    model: type[Pupil | Enrolment | Contact | PupilContact],
    now: dt.datetime,
    events: list[audit.Event],
    *,
    inserts: Sequence[dict[str, Any]] = (),
    updates: Sequence[tuple[int, dict[str, Any], dict[str, Any]]] = (),
    deletes: Sequence[tuple[int, int | None]] = (),
) -> list[int]:
    """Insert, update and delete rows of one tenant table, one statement each; return the new ids.

    ``updates`` are (id, every value, the changed values) and ``deletes`` (id, pupil id). Each
    written row gets the event the ``after_flush`` hook writes for an ORM object (appended to
    ``events``): Core statements do not pass through the flush, so nothing is recorded twice.
    The session's copies of rows of this table are expired (deleted ones expunged).
    """
    sync_tenant(session)
    tbl = cast(Table, model.__table__)
    conn = session.connection()
    postgres = conn.dialect.name == "postgresql"
    name = tbl.name
    new_ids: list[int] = []
    if inserts:
        names = list(inserts[0])
        if postgres:
            new_ids = sorted(
                conn.execute(
                    text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
                    {"t": name, "n": len(inserts)},
                ).scalars()
            )
            stage = _staged_rows(session, tbl, "new", ["id", *names], zip(new_ids, inserts, strict=True))
            conn.execute(
                insert(tbl).from_select(
                    ["org_id", "id", *names, "created_at", "updated_at"],
                    select(
                        literal(org_id),
                        stage.c.id,
                        *(stage.c[n] for n in names),
                        literal(now, DateTime()),
                        literal(now, DateTime()),
                    ),
                )
            )
        else:
            result = conn.execute(
                insert(tbl).returning(tbl.c.id, sort_by_parameter_order=True),
                [{"org_id": org_id, **row, "created_at": now, "updated_at": now} for row in inserts],
            )
            new_ids = list(result.scalars())
        events += [
            audit.Event(
                org_id,
                "create",
                name,
                row_id,
                row.get("pupil_id"),
                {"org_id": org_id, **_audit_values(row)},
            )
            for row_id, row in zip(new_ids, inserts, strict=True)
        ]
    if updates:
        names = list(updates[0][1])
        if postgres:
            stage = _staged_rows(session, tbl, "changed", ["id", *names], ((i, v) for i, v, _c in updates))
            conn.execute(
                update(tbl)
                .where(tbl.c.id == stage.c.id)
                .values({**{n: stage.c[n] for n in names}, "updated_at": literal(now, DateTime())})
            )
        else:
            conn.execute(
                update(tbl)
                .where(tbl.c.id == bindparam("row_id"))
                .values(
                    {**{n: bindparam(f"new_{n}", type_=tbl.c[n].type) for n in names}, "updated_at": now}
                ),
                [{"row_id": i, **{f"new_{n}": v[n] for n in names}} for i, v, _c in updates],
            )
        events += [
            audit.Event(org_id, "update", name, i, v.get("pupil_id"), _audit_values(c)) for i, v, c in updates
        ]
    if deletes:
        conn.execute(delete(tbl).where(tbl.c.id.in_([i for i, _p in deletes])))
        events += [audit.Event(org_id, "delete", name, i, pupil_id, {}) for i, pupil_id in deletes]
    _forget_written(
        session, model, {i for i, _v, _c in updates}, deletes, [*inserts, *(v for _i, v, _c in updates)]
    )
    return new_ids


_COLLECTIONS = {"enrolments": "enrolments", "pupil_contacts": "contact_links"}


def _forget_written(
    session: Session,
    model: type[Pupil | Enrolment | Contact | PupilContact],
    updated: set[int],
    deletes: Sequence[tuple[int, int | None]],
    written: Sequence[dict[str, Any]],
) -> None:
    """Make the session's copies agree with rows written around it: expire the updated ones,
    expunge the deleted ones, and expire the pupils' collections of the table that changed."""
    deleted = {i for i, _p in deletes}
    collection = _COLLECTIONS.get(model.__tablename__)
    pupils = {p for _i, p in deletes} | {row.get("pupil_id") for row in written}
    for obj in list(session.identity_map.values()):
        if isinstance(obj, model) and obj.id in deleted:
            session.expunge(obj)
        elif isinstance(obj, model) and obj.id in updated:
            session.expire(obj)
        elif collection and isinstance(obj, Pupil) and obj.id in pupils:
            session.expire(obj, [collection])


def _staged_rows(
    session: Session,
    tbl: Table,
    purpose: str,
    names: list[str],
    rows: Iterable[tuple[int, dict[str, Any]]],
) -> TableClause:
    """:func:`_staged` for (id, values) rows of ``tbl``: the stage has those columns' types."""
    dialect = session.get_bind().dialect
    as_json = [(n, isinstance(tbl.c[n].type, JSON)) for n in names[1:]]
    return _staged(
        session,
        f"aw_stage_{tbl.name}_{purpose}",
        ", ".join(f"{n} {tbl.c[n].type.compile(dialect=dialect)}" for n in names),
        [
            (row_id, *[json.dumps(values[n]) if is_json else values[n] for n, is_json in as_json])
            for row_id, values in rows
        ],
    )


# ---- contacts and households ---------------------------------------------------------------


@dataclass(frozen=True)
class ContactLink:
    pupil_upn: str
    relationship: str
    parental_responsibility: bool = False
    lives_with_pupil: bool = False
    priority: int = 1


@dataclass(frozen=True)
class ContactRecord:
    forename: str
    surname: str
    links: tuple[ContactLink, ...]
    title: str | None = None
    preferred_language: str | None = None
    address_lines: tuple[str, ...] = ()
    postcode: str | None = None
    phones: tuple[tuple[str, str], ...] = ()  # (kind, number): ("mobile", "07700 900123")
    emails: tuple[str, ...] = ()
    source: str | None = None
    external_id: str | None = None
    row: int | None = None


_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}$")


def normalise_postcode(value: str | None) -> str | None:
    if not value or not value.strip():
        return None
    compact = re.sub(r"\s+", "", value.upper())
    return f"{compact[:-3]} {compact[-3:]}"


def _contact_errors(rec: ContactRecord, upns: set[str]) -> list[str]:
    problems = []
    if not rec.forename.strip() or not rec.surname.strip():
        problems.append("contact forename and surname are required")
    postcode = normalise_postcode(rec.postcode)
    if postcode and not _POSTCODE.match(postcode):
        problems.append(f"postcode {rec.postcode!r} is not a UK postcode")
    for email in rec.emails:
        if "@" not in email or email.strip() != email or " " in email:
            problems.append(f"email {email!r} is not an email address")
    for kind, number in rec.phones:
        if len(re.sub(r"\D", "", number)) < 6:
            problems.append(f"{kind} phone {number!r} has too few digits")
    if not rec.links:
        problems.append("a contact must be linked to at least one pupil")
    for link in rec.links:
        upn = _compact_upn(link.pupil_upn or "")
        if upn not in upns:
            problems.append(f"no pupil with UPN {link.pupil_upn!r} at this school")
        if not 1 <= link.priority <= 99:
            problems.append(f"contact priority {link.priority} must be 1 to 99")
    return problems


_CONTACT_FIELDS = (
    "title",
    "forename",
    "surname",
    "preferred_language",
    "address_lines",
    "postcode",
    "phones",
    "emails",
    "source",
    "external_id",
)
_LINK_FIELDS = ("relationship_to_pupil", "parental_responsibility", "lives_with_pupil", "priority")


def upsert_contacts(session: Session, org_id: int, records: Sequence[ContactRecord]) -> Counts:
    """Create or update contacts and set, for each, the pupils they are linked to.

    Set-based like :func:`upsert_pupils`: one read of the school's contacts and links, only
    the rows that differ written, each audited as the ORM's flush hook would.
    """
    _require_writer(org_id)
    session.flush()
    pupils: dict[str, int] = {
        row.upn: row.id for row in session.execute(select(Pupil.upn, Pupil.id).where(Pupil.org_id == org_id))
    }
    upns = set(pupils)
    errors = [
        RowError(_row_no(rec, i), p) for i, rec in enumerate(records) for p in _contact_errors(rec, upns)
    ]
    if errors:
        raise BatchRejected("contact batch", errors, len(records))

    stored = _stored_rows(session, Contact, org_id, _CONTACT_FIELDS)
    stored_links = _by_parent(
        _stored_rows(session, PupilContact, org_id, ("pupil_id", "contact_id", *_LINK_FIELDS)),
        "contact_id",
        "pupil_id",
    )
    # What each contact and its links are after the batch: stored ones by id, new ones by number.
    contacts: dict[int, dict[str, Any]] = {contact_id: dict(v) for contact_id, v in stored.items()}
    links = {
        contact_id: {p: {n: v[n] for n in _LINK_FIELDS} for p, (_id, v) in rows.items()}
        for contact_id, rows in stored_links.items()
    }
    by_ext = {(v["source"], v["external_id"]): c for c, v in stored.items() if v["external_id"]}
    by_identity = {contact_identity(v["forename"], v["surname"], v["postcode"]): c for c, v in stored.items()}
    new: list[int] = []
    seen: set[int] = set()
    touched_pupils: set[int] = set()
    counts = Counts()
    for rec in records:
        forename, surname, postcode = (
            rec.forename.strip(),
            rec.surname.strip(),
            normalise_postcode(rec.postcode),
        )
        values: dict[str, Any] = {
            "title": rec.title,
            "forename": forename,
            "surname": surname,
            "preferred_language": rec.preferred_language,
            "address_lines": [line.strip() for line in rec.address_lines if line.strip()],
            "postcode": postcode,
            "phones": [{"kind": kind, "number": number.strip()} for kind, number in rec.phones],
            "emails": [e.lower() for e in rec.emails],
            "source": rec.source,
            "external_id": rec.external_id,
        }
        key = by_ext.get((rec.source, rec.external_id)) if rec.external_id else None
        identity = contact_identity(forename, surname, postcode)
        if key is None:
            # Same name and postcode is the same person, unless the MIS says they are two.
            namesake = by_identity.get(identity)
            if namesake is not None and not (rec.external_id and contacts[namesake]["external_id"]):
                key = namesake
        if key is None:
            key = -1 - len(new)
            new.append(key)
            contacts[key] = values
            by_identity.setdefault(identity, key)
            if rec.external_id:
                by_ext[(rec.source, rec.external_id)] = key
            counts.created += 1
            changed = False
        else:
            changed = any(contacts[key][n] != v for n, v in values.items())
            contacts[key].update(values)
        current = links.setdefault(key, {})
        wanted = {
            pupils[_compact_upn(link.pupil_upn)]: {
                "relationship_to_pupil": link.relationship,
                "parental_responsibility": link.parental_responsibility,
                "lives_with_pupil": link.lives_with_pupil,
                "priority": link.priority,
            }
            for link in rec.links
        }
        if key in seen:  # the same person again in this batch (e.g. once per child): add the links
            wanted = {**current, **wanted}
        seen.add(key)
        gone = set(current) - set(wanted)
        touched_pupils |= gone
        changed |= bool(gone) or any(current.get(p) != v for p, v in wanted.items())
        links[key] = wanted
        if changed:
            touched_pupils.update(wanted)
        if key >= 0:
            counts.updated += changed
            counts.unchanged += not changed

    now = utcnow()
    events: list[audit.Event] = []
    new_ids = _write_rows(
        session,
        org_id,
        Contact,
        now,
        events,
        inserts=[contacts[key] for key in new],
        updates=_changed_rows(stored, contacts),
    )
    ids = dict(zip(new, new_ids, strict=True))
    wanted_links = {
        ids.get(key, key): {p: {"pupil_id": p, "contact_id": ids.get(key, key), **v} for p, v in rows.items()}
        for key, rows in links.items()
    }
    _write_rows(session, org_id, PupilContact, now, events, **_child_writes(stored_links, wanted_links))
    audit.record_many(session, events)
    if touched_pupils:
        responsible = (
            (pupil_id, contacts[key])
            for key, rows in links.items()
            for pupil_id, link in rows.items()
            if link["parental_responsibility"] and pupil_id in touched_pupils
        )
        refresh_household_keys(
            session,
            org_id,
            touched_pupils,
            [
                (pupil_id, c["forename"], c["surname"], c["postcode"], c["emails"], c["phones"])
                for pupil_id, c in responsible
            ],
        )
    return counts


def contact_identity(forename: str, surname: str, postcode: str | None) -> tuple[str, str, str]:
    """Who a contact is, for matching: the same name (ignoring case, accents and punctuation)
    at the same postcode is the same person."""
    return (_fold(forename), _fold(surname), (postcode or "").replace(" ", ""))


_NOT_A_LETTER = re.compile(r"[^a-z]")


def _fold(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form of a name."""
    if not text.isascii():  # ASCII has nothing to decompose
        text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return _NOT_A_LETTER.sub("", text.lower())


def _phone_digits(number: str) -> str:
    digits = re.sub(r"\D", "", number)
    return "0" + digits[2:] if digits.startswith("44") else digits


def _household_secret() -> bytes:
    return hashlib.sha256(b"attendwise-household-v1:" + current_app.config["SECRET_KEY"].encode()).digest()


def _household_keys(
    secret: bytes,
    forename: str,
    surname: str,
    postcode: str | None,
    emails: Sequence[str],
    phones: Sequence[dict[str, str]],
) -> set[str]:
    """Keyed hashes of a contact's name with each of their postcode, emails and phones."""
    name = f"{_fold(forename)}|{_fold(surname)}"
    parts = []
    if postcode:
        parts.append("postcode:" + postcode.replace(" ", ""))
    parts += ["email:" + e.strip().lower() for e in emails]
    parts += ["phone:" + _phone_digits(p["number"]) for p in phones if len(_phone_digits(p["number"])) >= 10]
    return {hmac.digest(secret, f"{name}|{part}".encode(), "sha256").hex() for part in parts}


HouseholdContact = tuple[int, str, str, str | None, Sequence[str], Sequence[dict[str, str]]]
"""A contact with parental responsibility for a pupil: (pupil id, forename, surname, postcode,
emails, phones), as the ``contacts`` and ``pupil_contacts`` rows hold them."""


def refresh_household_keys(
    session: Session, org_id: int, pupil_ids: Iterable[int], responsible: Iterable[HouseholdContact]
) -> None:
    """Rebuild the sibling-index rows for these pupils from ``responsible``, every contact with
    parental responsibility for them as the caller has just written them.

    Only the keys that differ from the stored ones are deleted or added.
    """
    ids = sorted(set(pupil_ids))
    if not ids:
        return
    stored_keys = select(HouseholdKey.id, HouseholdKey.key, HouseholdKey.pupil_id)
    if len(ids) <= 500:  # a few pupils read their own rows; a school's sync reads the school's
        stored_keys = stored_keys.where(HouseholdKey.pupil_id.in_(ids))
    else:
        stored_keys = stored_keys.where(HouseholdKey.school_id == org_id)
    chosen = set(ids)
    secret = _household_secret()
    wanted = {
        (key, pupil_id)
        for pupil_id, forename, surname, postcode, emails, phones in responsible
        if pupil_id in chosen
        for key in _household_keys(secret, forename, surname, postcode, emails, phones)
    }
    stored = {
        (key, pupil_id): key_id
        for key_id, key, pupil_id in session.execute(stored_keys)
        if pupil_id in chosen
    }
    stale = [key_id for pair, key_id in stored.items() if pair not in wanted]
    if stale:
        session.execute(delete(HouseholdKey).where(HouseholdKey.id.in_(stale)))
    added = sorted(wanted - stored.keys())
    if not added:
        return
    keys = cast(Table, HouseholdKey.__table__)
    if session.get_bind().dialect.name == "postgresql":
        stage = _staged(session, "aw_stage_household_keys", "key text, pupil_id bigint", added)
        session.execute(
            insert(keys).from_select(
                ["key", "school_id", "pupil_id"], select(stage.c.key, literal(org_id), stage.c.pupil_id)
            )
        )
    else:
        session.execute(
            insert(keys), [{"key": key, "school_id": org_id, "pupil_id": pupil_id} for key, pupil_id in added]
        )


# ---- calendars ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HalfTermRecord:
    name: str
    start_date: dt.date
    end_date: dt.date


@dataclass(frozen=True)
class ClosureRecord:
    date: dt.date
    kind: str = ClosureKind.INSET.value
    description: str = ""


def set_school_calendar(
    session: Session,
    org_id: int,
    academic_year: int,
    half_terms: Sequence[HalfTermRecord],
    closures: Sequence[ClosureRecord] = (),
) -> None:
    """Replace a school's six half-terms and its INSET days and closures for one academic year."""
    _require_writer(org_id)
    start, end = dt.date(academic_year, 8, 1), dt.date(academic_year + 1, 7, 31)
    errors: list[RowError] = []
    if len(half_terms) != 6:
        errors.append(RowError(0, f"an academic year has six half-terms, got {len(half_terms)}"))
    previous_end: dt.date | None = None
    for i, ht in enumerate(half_terms, 1):
        if not start <= ht.start_date <= ht.end_date <= end:
            errors.append(
                RowError(
                    i,
                    f"{ht.name}: {ht.start_date} to {ht.end_date} is not inside {academic_year}/"
                    f"{(academic_year + 1) % 100:02d} (1 August to 31 July) or ends before it starts",
                )
            )
        if previous_end is not None and ht.start_date <= previous_end:
            errors.append(RowError(i, f"{ht.name} starts before the previous half-term ends"))
        previous_end = ht.end_date
    for i, closure in enumerate(closures, 1):
        if not any(ht.start_date <= closure.date <= ht.end_date for ht in half_terms):
            errors.append(RowError(i, f"closure on {closure.date} is not in term time"))
        if closure.kind not in {k.value for k in ClosureKind}:
            errors.append(RowError(i, f"closure kind {closure.kind!r} must be inset or closure"))
    if errors:
        raise BatchRejected("school calendar", errors, len(half_terms) + len(closures))
    session.execute(
        delete(SchoolHalfTerm).where(
            SchoolHalfTerm.org_id == org_id, SchoolHalfTerm.academic_year == academic_year
        )
    )
    session.execute(
        delete(SchoolClosure).where(
            SchoolClosure.org_id == org_id, SchoolClosure.date >= start, SchoolClosure.date <= end
        )
    )
    for number, ht in enumerate(half_terms, 1):
        session.add(
            SchoolHalfTerm(
                org_id=org_id,
                academic_year=academic_year,
                number=number,
                name=ht.name,
                start_date=ht.start_date,
                end_date=ht.end_date,
            )
        )
    for closure in closures:
        session.add(
            SchoolClosure(
                org_id=org_id,
                date=closure.date,
                kind=ClosureKind(closure.kind),
                description=closure.description,
            )
        )
    session.flush()


def school_calendar(session: Session, org_id: int, academic_year: int) -> SchoolCalendar:
    """The school's calendar for one academic year; the England default where it has none."""
    start, end = academic_year_start(academic_year), academic_year_end(academic_year)
    rows = session.scalars(
        select(SchoolHalfTerm)
        .where(SchoolHalfTerm.org_id == org_id, SchoolHalfTerm.academic_year == academic_year)
        .order_by(SchoolHalfTerm.number)
    ).all()
    closures = session.scalars(
        select(SchoolClosure).where(
            SchoolClosure.org_id == org_id, SchoolClosure.date >= start, SchoolClosure.date <= end
        )
    ).all()
    inset = frozenset(c.date for c in closures if c.kind == ClosureKind.INSET)
    closed = frozenset(c.date for c in closures if c.kind == ClosureKind.CLOSURE)
    if not rows:
        default = SchoolCalendar.england_default(academic_year)
        if not closures:
            return default
        return replace(default, inset_days=default.inset_days | inset, closures=closed)
    return SchoolCalendar(
        tuple(HalfTerm(r.name, r.start_date, r.end_date) for r in rows), inset_days=inset, closures=closed
    )


def has_own_calendar(session: Session, org_id: int, academic_year: int) -> bool:
    """Whether the school has set its half-terms for the year (otherwise the England default applies)."""
    found = session.scalar(
        select(SchoolHalfTerm.id)
        .where(SchoolHalfTerm.org_id == org_id, SchoolHalfTerm.academic_year == academic_year)
        .limit(1)
    )
    return found is not None


def school_closures(session: Session, org_id: int, academic_year: int) -> list[SchoolClosure]:
    return list(
        session.scalars(
            select(SchoolClosure)
            .where(
                SchoolClosure.org_id == org_id,
                SchoolClosure.date >= academic_year_start(academic_year),
                SchoolClosure.date <= academic_year_end(academic_year),
            )
            .order_by(SchoolClosure.date)
        )
    )


# ---- marks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarkRow:
    upn: str
    date: dt.date | str
    session: str
    code: str
    minutes_late: int | None = None
    row: int | None = None


@dataclass(frozen=True)
class MarkSpan:
    """A pupil's marks on consecutive sessions from the morning of ``start``: the shape of a
    CTF's AttendanceMarks. ``codes`` has one byte per session (AM, PM, AM, ...), each a code's
    value in the marks store (:mod:`marks_codec`), 0 for a session the span says nothing about."""

    upn: str
    start: dt.date
    codes: bytes
    row: int | None = None


@dataclass
class _Marks:
    """A validated batch as columns: one entry per distinct (pupil, day, session), first row wins."""

    pupil_id: np.ndarray  # int64
    ordinal: np.ndarray  # int64: date.toordinal()
    session: np.ndarray  # int64: 0 AM, 1 PM
    code: np.ndarray  # uint8: the code's byte value
    minutes_late: list[int | None]
    repeats: int  # rows that repeat an earlier row of the batch exactly (same code)


@dataclass
class _YearGrid:
    """A batch's marks for one academic year: a row of code bytes per pupil (0 = not in the batch)."""

    year: int
    pupil_ids: np.ndarray  # int64, ascending
    codes: np.ndarray  # uint8, len(pupil_ids) x year_length(year)
    minutes_late: dict[tuple[int, int], int]  # (row, slot) -> minutes, for the marks that give them


_SESSION_OF = {"AM": 0, "PM": 1}
_KEY_STRIDE = 1 << 22  # > 2 * date.max.toordinal() + 1: (pupil, ordinal, session) packed in one int64


def _pupils_of(session: Session, org_id: int, upns: Iterable[str]) -> dict[str, tuple[int, str | None]]:
    """Each raw UPN -> (the school's pupil id, None), or (-1, why it names no pupil here)."""
    pupils = dict(session.execute(select(Pupil.upn, Pupil.id).where(Pupil.org_id == org_id)).all())
    found: dict[str, tuple[int, str | None]] = {}
    for raw in set(upns):
        try:
            upn, _temporary = check_upn(raw)
        except UpnError as exc:
            found[raw] = (-1, str(exc))
            continue
        pupil_id = pupils.get(upn)
        found[raw] = (pupil_id, None) if pupil_id else (-1, f"no pupil with UPN {upn} at this school")
    return found


def _validate_marks(session: Session, org_id: int, rows: Sequence[MarkRow]) -> tuple[_Marks, list[RowError]]:
    """Check every row; the work per row is list comprehensions and numpy, per distinct value is Python.

    A batch of a school's year holds ~1,500 UPNs, ~380 dates, 2 sessions and a few dozen codes,
    so each distinct value is parsed and checked once and the 570,000 rows only look them up.
    """
    count = len(rows)
    upn_of = _pupils_of(session, org_id, (r.upn for r in rows))
    calendars: dict[int, SchoolCalendar] = {}
    day_of: dict[dt.date | str, tuple[int, str | None]] = {}
    for raw_day in {r.date for r in rows}:
        day = raw_day
        if isinstance(day, str):
            try:
                day = dt.date.fromisoformat(day.strip())
            except ValueError:
                day_of[raw_day] = (-1, f"date {raw_day!r} is not an ISO date (YYYY-MM-DD)")
                continue
        year = academic_year_of(day)
        if year not in calendars:
            calendars[year] = school_calendar(session, org_id, year)
        outside = not calendars[year].contains(day)
        why = f"date {day.isoformat()} is outside the school calendar (in no half-term)" if outside else None
        day_of[raw_day] = (day.toordinal(), why)
    session_of = {raw: _SESSION_OF.get((raw or "").strip().upper(), -1) for raw in {r.session for r in rows}}
    code_of = {raw: CODE_INDEX.get((raw or "").strip(), NO_MARK) for raw in {r.code for r in rows}}

    pupil_id = np.array([upn_of[r.upn][0] for r in rows], dtype=np.int64)
    ordinal = np.array([day_of[r.date][0] for r in rows], dtype=np.int64)
    sess = np.array([session_of[r.session] for r in rows], dtype=np.int64)
    code = np.array([code_of[r.code] for r in rows], dtype=np.uint8)
    minutes = [r.minutes_late for r in rows]
    bad_minutes = np.zeros(count, dtype=bool)
    for i, value in enumerate(minutes):
        if value is not None and not (isinstance(value, int) and 0 <= value <= MAX_MINUTES_LATE):
            bad_minutes[i] = True
    dated = ordinal >= 0
    invalid_on_day = dated & (code != NO_MARK) & ~marks_codec.valid_on(code, ordinal)
    bad_day = np.array([day_of[r.date][1] is not None for r in rows], dtype=bool)
    bad = (pupil_id < 0) | bad_day | (sess < 0) | (code == NO_MARK) | invalid_on_day | bad_minutes

    good = np.flatnonzero(~bad)
    key = pupil_id[good] * _KEY_STRIDE + ordinal[good] * 2 + sess[good]
    order = np.argsort(key, kind="stable")  # stable: the first row of a (pupil, session) leads its run
    sorted_key, sorted_code = key[order], code[good][order]
    leads = np.ones(len(order), dtype=bool)
    leads[1:] = sorted_key[1:] != sorted_key[:-1]
    lead_at = np.maximum.accumulate(np.where(leads, np.arange(len(order)), 0))
    clash = sorted_code != sorted_code[lead_at]
    conflict_with = dict(zip(good[order[clash]].tolist(), good[order[lead_at[clash]]].tolist(), strict=True))

    errors: list[RowError] = []
    for i in sorted(np.flatnonzero(bad).tolist() + list(conflict_with)):
        rec = rows[i]
        problems = []
        if upn_of[rec.upn][1]:
            problems.append(upn_of[rec.upn][1])
        if day_of[rec.date][1]:
            problems.append(day_of[rec.date][1])
        if sess[i] < 0:
            problems.append(f"session {rec.session!r} must be AM or PM")
        if code[i] == NO_MARK:
            problems.append(f"unknown attendance code {rec.code!r}")
        elif invalid_on_day[i]:
            problems.append(CODES[rec.code.strip()].validity_problem(dt.date.fromordinal(int(ordinal[i]))))
        if bad_minutes[i]:
            problems.append(
                f"minutes late {rec.minutes_late!r} must be a whole number from 0 to {MAX_MINUTES_LATE}"
            )
        if i in conflict_with:
            first = rows[conflict_with[i]]
            day = dt.date.fromordinal(int(ordinal[i])).isoformat()
            problems.append(
                f"{rec.upn} {day} {'AM' if sess[i] == 0 else 'PM'} is coded {rec.code.strip()} here "
                f"but {first.code.strip()} in row {_row_no(first, conflict_with[i])}"
            )
        errors.extend(RowError(_row_no(rec, i), str(p)) for p in problems)
    kept = np.sort(good[order[leads]])  # one row per (pupil, day, session), in batch order
    marks = _Marks(
        pupil_id=pupil_id[kept],
        ordinal=ordinal[kept],
        session=sess[kept],
        code=code[kept],
        minutes_late=[minutes[i] for i in kept.tolist()],
        repeats=len(good) - len(kept) - len(conflict_with),
    )
    return marks, errors


def _grids_of_rows(marks: _Marks) -> list[_YearGrid]:
    days, day_index = np.unique(marks.ordinal, return_inverse=True)
    day_years = np.array([academic_year_of(dt.date.fromordinal(int(d))) for d in days], dtype=np.int64)
    mark_years = day_years[day_index]
    grids = []
    for year in np.unique(day_years).tolist():
        in_year = np.flatnonzero(mark_years == year)
        ids, row = np.unique(marks.pupil_id[in_year], return_inverse=True)
        slot = 2 * (marks.ordinal[in_year] - academic_year_start(year).toordinal()) + marks.session[in_year]
        codes = np.zeros((len(ids), marks_codec.year_length(year)), dtype=np.uint8)
        codes[row, slot] = marks.code[in_year]
        minutes = {
            (int(row[j]), int(slot[j])): value
            for j, value in enumerate(marks.minutes_late[i] for i in in_year.tolist())
            if value is not None
        }
        grids.append(_YearGrid(year, ids, codes, minutes))
    return grids


def _sessions_text(first_day: dt.date, slots: np.ndarray) -> str:
    """ "2025-10-28 AM" for one slot of a year, "2025-10-28 AM and 5 more sessions" for more."""
    slot = int(slots[0])
    named = f"{(first_day + dt.timedelta(days=slot // 2)).isoformat()} {marks_codec.SESSIONS[slot % 2]}"
    return named if len(slots) == 1 else f"{named} and {len(slots) - 1} more sessions"


def _span_problems(
    year: int, in_calendar: np.ndarray, offset: int, codes: np.ndarray, before: np.ndarray
) -> list[str]:
    """What is wrong with a span's marks in one academic year, laid on the pupil's year at ``offset``
    where ``before`` holds what earlier spans of the batch gave the same pupil and sessions, and
    ``in_calendar`` says per slot of the year whether it is in one of the school's half-terms."""
    first_day = academic_year_start(year)
    slots = offset + np.arange(len(codes))
    marked = codes != NO_MARK
    ordinals = first_day.toordinal() + slots // 2
    known = marks_codec.known_code(codes)
    problems = []
    if (unknown := marked & ~known).any():
        values = sorted(set(codes[unknown].tolist()))
        problems.append(f"{_sessions_text(first_day, slots[unknown])}: unknown code value(s) {values}")
    if (outside := marked & ~in_calendar[slots]).any():
        problems.append(
            f"{_sessions_text(first_day, slots[outside])}: outside the school calendar (in no half-term)"
        )
    invalid = known & ~marks_codec.valid_on(codes, ordinals)
    for value in sorted(set(codes[invalid].tolist())):
        where = invalid & (codes == value)
        day = dt.date.fromordinal(int(ordinals[where][0]))
        problems.append(
            f"{_sessions_text(first_day, slots[where])}: {CODES[CODE_ORDER[value - 1]].validity_problem(day)}"
        )
    if (clash := marked & (before != NO_MARK) & (before != codes)).any():
        problems.append(
            f"{_sessions_text(first_day, slots[clash])}: coded differently by an earlier span of the batch"
        )
    return problems


def _validate_spans(
    session: Session, org_id: int, spans: Sequence[MarkSpan]
) -> tuple[list[_YearGrid], list[RowError]]:
    """Lay each span on its pupil's academic years and check every session in numpy.

    A school's CTF is one span per pupil and year: the Python work is per span, never per session.
    """
    upn_of = _pupils_of(session, org_id, (s.upn for s in spans))
    errors: list[RowError] = []
    pieces: dict[int, list[tuple[int, int, int, np.ndarray]]] = {}  # year -> (span, pupil, offset, codes)
    for i, span in enumerate(spans):
        pupil_id, why = upn_of[span.upn]
        if why:
            errors.append(RowError(_row_no(span, i), why))
            continue
        codes = np.frombuffer(span.codes, dtype=np.uint8)
        done = 0
        while done < len(codes):
            day = span.start + dt.timedelta(days=done // 2)
            year = academic_year_of(day)
            upto = min(len(codes), 2 * ((academic_year_end(year) - span.start).days + 1))
            offset = 2 * (day - academic_year_start(year)).days
            if codes[done:upto].any():
                pieces.setdefault(year, []).append((i, pupil_id, offset, codes[done:upto]))
            done = upto
    grids = []
    for year, laid in sorted(pieces.items()):
        calendar = school_calendar(session, org_id, year)
        first_day, days = academic_year_start(year), marks_codec.year_days(year)
        in_calendar = np.repeat(calendar.half_term_index(first_day, days) >= 0, 2)
        ids = np.unique(np.array([pupil_id for _i, pupil_id, _o, _c in laid], dtype=np.int64))
        grid = np.zeros((len(ids), marks_codec.year_length(year)), dtype=np.uint8)
        if len(ids) == len(laid):  # one span per pupil: nothing can clash, so check the grid whole
            for _i, pupil_id, offset, codes in laid:
                grid[int(np.searchsorted(ids, pupil_id)), offset : offset + len(codes)] = codes
            if _grid_is_sound(grid, first_day, in_calendar):
                grids.append(_YearGrid(year, ids, grid, {}))
                continue
            grid[:] = NO_MARK  # something is wrong: find what, and whose, span by span
        for i, pupil_id, offset, codes in laid:
            target = grid[int(np.searchsorted(ids, pupil_id)), offset : offset + len(codes)]
            problems = _span_problems(year, in_calendar, offset, codes, target)
            errors.extend(RowError(_row_no(spans[i], i), p) for p in problems)
            np.copyto(target, codes, where=codes != NO_MARK)
        grids.append(_YearGrid(year, ids, grid, {}))
    return grids, errors


def _grid_is_sound(grid: np.ndarray, first_day: dt.date, in_calendar: np.ndarray) -> bool:
    """Whether every mark of a year's grid (pupils by sessions) passes :func:`_span_problems`'s
    checks, all at once: a known code, in force on its day, on a day in the school calendar."""
    ordinals = first_day.toordinal() + np.arange(grid.shape[1]) // 2
    marked = grid != NO_MARK
    sound = marks_codec.valid_on(grid, ordinals[np.newaxis, :]) & in_calendar[np.newaxis, :]
    return bool((sound | ~marked).all())


@dataclass
class _Stored:
    codes: bytes
    minutes_late: str
    version: int


def _stored_years(session: Session, org_id: int, year: int, pupil_ids: list[int]) -> dict[int, _Stored]:
    query = select(
        PupilMarkYear.pupil_id, PupilMarkYear.codes, PupilMarkYear.minutes_late, PupilMarkYear.version
    ).where(PupilMarkYear.org_id == org_id, PupilMarkYear.academic_year == year)
    if len(pupil_ids) <= 500:  # a small batch reads its own pupils; a school's sync reads the year
        query = query.where(PupilMarkYear.pupil_id.in_(pupil_ids))
    return {
        pupil_id: _Stored(bytes(codes), late or "{}", version)
        for pupil_id, codes, late, version in session.execute(query)
    }


def store_marks(session: Session, org_id: int, rows: Sequence[MarkRow], source: str) -> Counts:
    """Store session marks, keeping every change of an already-stored mark in ``mark_changes``.

    The whole batch is validated first; any bad row rejects all of it (:class:`BatchRejected`).
    Storing the same marks again changes nothing (rows and versions are untouched). Counts are
    per session: created (first mark), updated (code or minutes changed), unchanged; and the
    ids of the pupils whose marks changed, for re-evaluation.

    Set-based: each pupil's year is merged in numpy, then the changed years are written with
    one ``INSERT ... ON CONFLICT DO UPDATE`` (from a ``COPY``-filled staging table on
    PostgreSQL) that also checks each row's version, and the history with one more statement.
    """
    _require_writer(org_id)
    mark_source = MarkSource(source)
    marks, errors = _validate_marks(session, org_id, rows)
    if errors:
        raise BatchRejected("marks batch", errors, len(rows))
    return _store_grids(session, org_id, _grids_of_rows(marks), mark_source, len(rows), marks.repeats)


def store_mark_spans(session: Session, org_id: int, spans: Sequence[MarkSpan], source: str) -> Counts:
    """Store marks given as spans of consecutive sessions (:class:`MarkSpan`), as :func:`store_marks`
    stores rows: the same checks (each problem reported against its span's ``row``), the same
    all-or-nothing batch, counts per session, history and audit. A session a span gives no code
    (0) keeps what is stored for it."""
    _require_writer(org_id)
    mark_source = MarkSource(source)
    grids, errors = _validate_spans(session, org_id, spans)
    if errors:
        raise BatchRejected("marks batch", errors, len(spans))
    return _store_grids(session, org_id, grids, mark_source, len(spans), 0)


def _store_grids(
    session: Session, org_id: int, grids: list[_YearGrid], source: MarkSource, rows: int, repeats: int
) -> Counts:
    """Merge each validated year into what is stored, write the changed years and the history, audit."""
    counts = Counts(unchanged=repeats)
    if not grids:
        return counts
    session.flush()
    now = utcnow()
    writes: list[tuple[int, int, bytes, str, int]] = []
    history: list[tuple[int, dt.date, str, str | None, str | None]] = []
    pupils_in_batch = 0
    for grid in grids:
        year, ids, incoming = grid.year, grid.pupil_ids, grid.codes
        pupils_in_batch += len(ids)
        stored = _stored_years(session, org_id, year, ids.tolist())
        old = np.zeros_like(incoming)
        for r, pupil_id in enumerate(ids.tolist()):
            if pupil_id in stored:
                old[r] = marks_codec.decode_year(stored[pupil_id].codes, year)
        marked = incoming != NO_MARK
        late_changed, late = _minutes_late_changes(year, ids, marked, grid.minutes_late, stored)
        changed = marked & ((incoming != old) | late_changed)
        counts.created += int(np.count_nonzero(changed & (old == NO_MARK)))
        counts.updated += int(np.count_nonzero(changed & (old != NO_MARK)))
        counts.unchanged += int(np.count_nonzero(marked & ~changed))
        first_day = academic_year_start(year)
        for r, slot in zip(*np.nonzero(marked & (old != NO_MARK) & (old != incoming)), strict=True):
            history.append(
                (
                    int(ids[r]),
                    first_day + dt.timedelta(days=int(slot) // 2),
                    marks_codec.SESSIONS[slot % 2],
                    decode(int(old[r, slot])),
                    decode(int(incoming[r, slot])),
                )
            )
        new = np.where(marked, incoming, old)
        for r in np.flatnonzero(changed.any(axis=1)).tolist():
            pupil_id = int(ids[r])
            previous = stored.get(pupil_id)
            writes.append(
                (
                    pupil_id,
                    year,
                    marks_codec.encode_year(new[r], year),
                    json.dumps(late.get(r, {}), sort_keys=True, separators=(",", ":")),
                    previous.version + 1 if previous else 1,
                )
            )
    if writes:
        _write_years(session, org_id, writes, now)
    if history:
        _write_history(session, org_id, history, now, source)
    counts.changed_pupils = frozenset(w[0] for w in writes)
    if counts.created or counts.updated:
        audit.record(
            session,
            org_id=org_id,
            action="marks.store",
            object_type="pupil_mark_years",
            detail={
                "source": source.value,
                "rows": rows,
                "pupils": pupils_in_batch,
                "created": counts.created,
                "updated": counts.updated,
                "unchanged": counts.unchanged,
                "changes_kept": len(history),
            },
        )
    return counts


def _minutes_late_changes(
    year: int,
    ids: np.ndarray,
    marked: np.ndarray,
    minutes: dict[tuple[int, int], int],
    stored: dict[int, _Stored],
) -> tuple[np.ndarray, dict[int, dict[str, int]]]:
    """Which marks change a pupil's minutes late, and each changed pupil's minutes after the batch.

    A mark with minutes sets them; a mark without minutes clears what was stored for its session.
    Only marks with minutes and pupils with stored minutes are visited: most of a batch is neither.
    """
    changed = np.zeros(marked.shape, dtype=bool)
    late: dict[int, dict[str, int]] = {
        r: json.loads(stored[pupil_id].minutes_late)
        for r, pupil_id in enumerate(ids.tolist())
        if pupil_id in stored and stored[pupil_id].minutes_late != "{}"
    }
    for r, known in late.items():
        for key in list(known):
            day, _, session = key.partition(":")
            slot = marks_codec.slot(year, dt.date.fromisoformat(day), session)
            if marked[r, slot] and (r, slot) not in minutes:
                del known[key]
                changed[r, slot] = True
    first_day = academic_year_start(year)
    for (r, slot), value in minutes.items():
        known = late.setdefault(r, {})
        key = marks_codec.minutes_late_key(
            first_day + dt.timedelta(days=slot // 2), marks_codec.SESSIONS[slot % 2]
        )
        if known.get(key) != value:
            known[key] = value
            changed[r, slot] = True
    return changed, late


def _staged(session: Session, name: str, columns: str, rows: list[tuple[Any, ...]]) -> TableClause:
    """PostgreSQL: ``COPY`` rows into a temporary table (dropped at commit) and return it.

    The tenant tables have row-level security, which ``COPY FROM`` refuses; a temporary table
    has none, and the ``INSERT ... SELECT`` from it runs under the tenant's policies as usual.
    """
    driver = session.connection().connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    with driver.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({columns}) ON COMMIT DROP")
        cursor.execute(f"TRUNCATE {name}")
        with cursor.copy(f"COPY {name} FROM STDIN") as copy:
            for values in rows:
                copy.write_row(values)
    return table(name, *(column(c.split()[0]) for c in columns.split(", ")))


def _write_years(
    session: Session, org_id: int, writes: list[tuple[int, int, bytes, str, int]], now: dt.datetime
) -> None:
    """Insert or replace the changed pupil-years in one statement; refuse if any changed meanwhile.

    Each row carries the version it replaces plus one, and an existing row is replaced only
    while it still has the version that was read: a concurrent writer's marks are never lost.
    """
    sync_tenant(session)
    years = cast(Table, PupilMarkYear.__table__)
    names = ["pupil_id", "academic_year", "codes", "minutes_late", "version"]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stage = _staged(
            session,
            "aw_stage_mark_years",
            "pupil_id bigint, academic_year integer, codes bytea, minutes_late text, version integer",
            list(writes),
        )
        upsert: Any = pg_insert(years).from_select(
            ["org_id", *names, "updated_at"],
            select(literal(org_id), *(stage.c[n] for n in names), literal(now, DateTime())),
        )
        params: list[dict[str, Any]] | None = None
    else:
        upsert = sqlite_insert(years)
        params = [
            {"org_id": org_id, **dict(zip(names, values, strict=True)), "updated_at": now}
            for values in writes
        ]
    upsert = upsert.on_conflict_do_update(
        index_elements=[years.c.pupil_id, years.c.academic_year],
        set_={n: upsert.excluded[n] for n in ("codes", "minutes_late", "version", "updated_at")},
        where=years.c.version == upsert.excluded.version - 1,
    ).returning(years.c.pupil_id)
    written = session.connection().execute(upsert, params).scalars().all()
    if len(written) != len(writes):
        raise StaleDataError(
            f"the marks of {len(writes) - len(written)} pupil(s) were changed by someone else while "
            "this batch was stored; store it again"
        )
    for stale in [o for o in session.identity_map.values() if isinstance(o, PupilMarkYear)]:
        session.expire(stale)


def _write_history(
    session: Session,
    org_id: int,
    history: list[tuple[int, dt.date, str, str | None, str | None]],
    now: dt.datetime,
    source: MarkSource,
) -> None:
    """Keep what each changed mark was before, in one statement."""
    sync_tenant(session)
    changes = cast(Table, MarkChange.__table__)
    names = ["pupil_id", "date", "session", "old_code", "new_code"]
    if session.get_bind().dialect.name == "postgresql":
        stage = _staged(
            session,
            "aw_stage_mark_changes",
            "pupil_id bigint, date date, session text, old_code text, new_code text",
            list(history),
        )
        session.connection().execute(
            insert(changes).from_select(
                ["org_id", *names, "seen_at", "source"],
                select(
                    literal(org_id),
                    *(stage.c[n] for n in names),
                    literal(now, DateTime()),
                    literal(source.value),
                ),
            )
        )
        return
    session.connection().execute(
        insert(changes),
        [
            {
                "org_id": org_id,
                **dict(zip(names, values, strict=True)),
                "seen_at": now,
                "source": source.value,
            }
            for values in history
        ],
    )


# ---- code classifications --------------------------------------------------------------------------


def code_table(session: Session) -> CodeTable:
    """The DfE code table with the platform administrators' corrections applied."""
    overrides = dict(session.execute(select(CodeOverride.code, CodeOverride.statistical_class)).all())
    return CodeTable(overrides) if overrides else DEFAULT_TABLE


def set_code_override(
    session: Session,
    *,
    code: str,
    statistical_class: str,
    reason: str,
    user_id: int | None,
    audit_org_id: int,
) -> CodeOverride:
    """Correct an unverified code's class for every school (``OverrideError`` if not allowed)."""
    if not reason.strip():
        raise ValueError("say why the classification is being corrected")
    CodeTable({code: statistical_class})  # raises OverrideError for verified or unknown codes
    override = session.scalar(select(CodeOverride).where(CodeOverride.code == code))
    previous = override.statistical_class if override else DEFAULT_TABLE[code].stat_class.value
    if override is None:
        override = CodeOverride(code=code, statistical_class=statistical_class, reason=reason)
        session.add(override)
    override.statistical_class = StatClass(statistical_class).value
    override.reason, override.changed_by_user_id, override.changed_at = reason.strip(), user_id, utcnow()
    session.flush()
    audit.record(
        session,
        org_id=audit_org_id,
        action="code.override",
        object_type="code_overrides",
        object_id=override.id,
        detail={"code": code, "from": previous, "to": override.statistical_class, "reason": override.reason},
    )
    return override


def _require_writer(org_id: int) -> None:
    if not tenancy.require().can_write(org_id):
        raise tenancy.TenantViolation("writing another organisation's attendance data")
