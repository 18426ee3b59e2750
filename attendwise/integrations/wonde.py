"""The Wonde connector: a REST client for ``https://api.wonde.com/v1.0/`` and the sync it drives.

The HTTP behaviour follows Wonde's documentation and official clients (mis-formats.md §2):

* ``Authorization: Bearer <token>``; one app token covers every school that approved the app;
* lists are paged: ``{"data": [...], "meta": {"pagination": {"next": url|null, "more": bool}}}``,
  and the client follows ``meta.pagination.next`` until ``more`` is false;
* ``include=`` adds related records; ``updated_after`` (``YYYY-MM-DD HH:MM:SS``) limits a list to
  records changed since the last sync; ``deletions`` lists records removed in the MIS (a deleted
  contact is removed; a deleted student is kept, with their marks and casework, and reported);
* a ``429`` is retried after its ``Retry-After`` (seconds or an HTTP date); a ``5xx``, a timeout
  or a dropped connection is retried with exponential backoff and full jitter; a ``401``/``403``
  is not retried (the school revoked access, or the token is wrong);
* a circuit breaker per school stops calling a school whose requests keep failing, for a
  cool-down, so one broken MIS link does not hold up every other school's sync.

Field names of the records are read as Wonde's clients and public fixtures show them. The JSON of
a session-attendance read record is not in any public source found (mis-formats.md §7): the
reading below (``student``, ``attendance_code``, ``session``, ``date``, ``minutes_late``) mirrors
the writeback record and must be checked against a real school's responses.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.orm import Session

from attendwise.attendance import services as attendance
from attendwise.integrations import services
from attendwise.tenants.models import Organisation

DEFAULT_BASE_URL = "https://api.wonde.com/v1.0/"
PER_PAGE = 200
STUDENT_INCLUDES = "education_details,year,contacts,contacts.contact_details"


class WondeError(RuntimeError):
    """The Wonde API could not be used for this school (after any retries)."""


class WondeAuthError(WondeError):
    """401/403: the token is wrong or the school has not approved (or has revoked) the app."""


class CircuitOpen(WondeError):
    """Recent calls for this school kept failing; no call is made until the cool-down ends."""


@dataclass
class Retry:
    attempts: int = 5
    base: float = 0.5  # seconds
    cap: float = 30.0
    max_retry_after: float = 300.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: a random wait up to base * 2**attempt, capped."""
        return rng.uniform(0, min(self.cap, self.base * 2**attempt))


@dataclass
class CircuitBreaker:
    """Opens after ``threshold`` consecutive failed requests; one trial call after ``cool_down``."""

    threshold: int = 5
    cool_down: float = 60.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def before_call(self, school: str) -> None:
        with self._lock:
            if self.opened_at is None:
                return
            waited = self.clock() - self.opened_at
            if waited < self.cool_down:
                raise CircuitOpen(
                    f"Wonde calls for school {school} are paused for {self.cool_down - waited:.0f} s more "
                    f"after {self.failures} failures in a row"
                )

    def succeeded(self) -> None:
        with self._lock:
            self.failures, self.opened_at = 0, None

    def failed(self) -> None:
        with self._lock:
            self.failures += 1
            if self.failures >= self.threshold:
                self.opened_at = self.clock()


_BREAKERS: dict[str, CircuitBreaker] = {}
_BREAKERS_LOCK = threading.Lock()


def breaker_for(school: str) -> CircuitBreaker:
    """The process-wide breaker of one Wonde school id."""
    with _BREAKERS_LOCK:
        return _BREAKERS.setdefault(school, CircuitBreaker())


def _retry_after(value: str | None, now: dt.datetime) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now).total_seconds())


class WondeClient:
    def __init__(
        self,
        token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 30.0,
        retry: Retry | None = None,
        sleep: Callable[[float], None] = time.sleep,
        breakers: Callable[[str], CircuitBreaker] = breaker_for,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.retry = retry or Retry()
        self.sleep = sleep
        self.breakers = breakers
        self.rng = rng or random.Random()
        self.http = httpx.Client(
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            follow_redirects=False,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> WondeClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def get(self, school: str, url: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One GET with retries; ``url`` is relative to the base URL or absolute (a ``next`` link)."""
        breaker = self.breakers(school)
        target = url if url.startswith(("http://", "https://")) else self.base_url + url
        problem = "no attempt made"
        for attempt in range(self.retry.attempts):
            breaker.before_call(school)
            try:
                response = self.http.get(target, params=params)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                breaker.failed()
                problem = f"{type(exc).__name__} on {target}"
                self.sleep(self.retry.backoff(attempt, self.rng))
                continue
            if response.status_code in (401, 403):
                raise WondeAuthError(
                    f"Wonde refused access to school {school} ({response.status_code}): check the token "
                    "and that the school has approved Attendwise in the Wonde portal"
                )
            if response.status_code == 429:
                wait = _retry_after(response.headers.get("Retry-After"), dt.datetime.now(dt.UTC))
                wait = self.retry.backoff(attempt, self.rng) if wait is None else wait
                problem = "429 Too Many Requests"
                self.sleep(min(wait, self.retry.max_retry_after))
                continue
            if response.status_code >= 500:
                breaker.failed()
                problem = f"{response.status_code} from {target}"
                self.sleep(self.retry.backoff(attempt, self.rng))
                continue
            if response.status_code >= 400:
                raise WondeError(f"Wonde answered {response.status_code} for {target}: {response.text[:200]}")
            breaker.succeeded()
            body = response.json()
            if not isinstance(body, dict):
                raise WondeError(f"Wonde sent a {type(body).__name__}, not an object, for {target}")
            return body
        raise WondeError(f"Wonde school {school}: gave up after {self.retry.attempts} attempts ({problem})")

    def paginate(
        self, school: str, path: str, params: dict[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every record of a list, following ``meta.pagination.next`` until ``more`` is false."""
        body = self.get(school, path, {"per_page": PER_PAGE, **(params or {})})
        while True:
            yield from body.get("data", [])
            pagination = (body.get("meta") or {}).get("pagination") or {}
            following = pagination.get("next")
            if not pagination.get("more") or not following:
                return
            body = self.get(school, following)

    # -- the endpoints a sync reads --

    def students(self, school: str, updated_after: dt.datetime | None = None) -> Iterator[dict[str, Any]]:
        return self.paginate(
            school, f"schools/{school}/students", _since({"include": STUDENT_INCLUDES}, updated_after)
        )

    def contacts(self, school: str, updated_after: dt.datetime | None = None) -> Iterator[dict[str, Any]]:
        return self.paginate(
            school,
            f"schools/{school}/contacts",
            _since({"include": "contact_details,students"}, updated_after),
        )

    def attendance_codes(self, school: str) -> Iterator[dict[str, Any]]:
        return self.paginate(school, f"schools/{school}/attendance-codes")

    def sessions(
        self, school: str, start: dt.date, end: dt.date, updated_after: dt.datetime | None = None
    ) -> Iterator[dict[str, Any]]:
        params = {"attendance_date_after": start.isoformat(), "attendance_date_before": end.isoformat()}
        return self.paginate(school, f"schools/{school}/attendance/session", _since(params, updated_after))

    def deletions(self, school: str, updated_after: dt.datetime | None = None) -> Iterator[dict[str, Any]]:
        return self.paginate(school, f"schools/{school}/deletions", _since({}, updated_after))


def _since(params: dict[str, Any], updated_after: dt.datetime | None) -> dict[str, Any]:
    if updated_after is None:
        return params
    return {**params, "updated_after": updated_after.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")}


# ---- reading Wonde records -------------------------------------------------------------------


def wonde_date(value: Any) -> dt.date | None:
    """A Wonde date: ``{"date": "2015-10-29 14:53:44.000000", ...}`` or a plain string."""
    if isinstance(value, dict):
        value = value.get("date")
    if not value:
        return None
    return dt.date.fromisoformat(str(value)[:10])


def included(record: dict[str, Any], name: str) -> Any:
    """An ``include=``d relation: Wonde wraps it as ``{"data": ...}``."""
    value = record.get(name)
    return value.get("data") if isinstance(value, dict) and "data" in value else value


# ---- the sync ----------------------------------------------------------------------------------

GENDERS = {"FEMALE": "F", "F": "F", "MALE": "M", "M": "M"}


def _year_group(student: dict[str, Any]) -> str:
    year = included(student, "year")
    code = (year or {}).get("code") if isinstance(year, dict) else None
    text = str(code or student.get("year_code") or "").strip().upper().removeprefix("YEAR").strip()
    return text.lstrip("0") or text


def _pupil(student: dict[str, Any]) -> tuple[attendance.PupilRecord | None, str | None]:
    details = included(student, "education_details") or {}
    upn = (details.get("upn") if isinstance(details, dict) else None) or ""
    if not upn:
        return None, "the student has no UPN in Wonde (education_details.upn)"
    born = wonde_date(student.get("date_of_birth"))
    if born is None:
        return None, "the student has no date_of_birth"
    try:
        upn, _temporary = attendance.check_upn(upn)
    except ValueError as exc:
        return None, str(exc)
    admitted = wonde_date(details.get("admission_date"))
    left = wonde_date(details.get("leaving_date"))
    return (
        attendance.PupilRecord(
            upn=upn,
            legal_forename=student.get("legal_forename") or student.get("forename") or "",
            legal_surname=student.get("legal_surname") or student.get("surname") or "",
            preferred_forename=student.get("forename"),
            preferred_surname=student.get("surname"),
            date_of_birth=born,
            year_group=_year_group(student),
            sex=GENDERS.get(str(student.get("gender") or "").upper(), "U"),
            source="wonde",
            external_id=str(student["id"]),
            enrolments=(attendance.EnrolmentRecord(start_date=admitted, leave_date=left),)
            if admitted
            else (),
        ),
        None,
    )


def _contact(contact: dict[str, Any], upn_of: dict[str, str]) -> attendance.ContactRecord:
    details = included(contact, "contact_details") or {}
    phones = details.get("phones") or {}
    emails = details.get("emails") or {}
    home = (details.get("addresses") or {}).get("home") or {}
    links = []
    for student in included(contact, "students") or []:
        relation = student.get("relationship") or {}
        upn = upn_of.get(str(student.get("id")))
        if upn:
            links.append(
                attendance.ContactLink(
                    pupil_upn=upn,
                    relationship=str(relation.get("relationship") or "Contact"),
                    parental_responsibility=bool(relation.get("parental_responsibility")),
                    lives_with_pupil=bool(relation.get("lives_with_pupil")),
                    priority=min(max(int(relation.get("priority") or 1), 1), 99),
                )
            )
    return attendance.ContactRecord(
        forename=contact.get("forename") or "",
        surname=contact.get("surname") or "",
        title=contact.get("title"),
        address_lines=tuple(
            str(home[k])
            for k in ("house_number", "house_name", "apartment", "street", "district", "town", "county")
            if home.get(k)
        ),
        postcode=home.get("postcode"),
        phones=tuple(
            (kind, str(phones[kind])) for kind in ("phone", "mobile", "home", "work") if phones.get(kind)
        ),
        emails=tuple(sorted({str(v).lower() for v in emails.values() if v})),
        source="wonde",
        external_id=str(contact["id"]),
        links=tuple(links),
    )


def sync_school(
    session: Session,
    school: Organisation,
    client: WondeClient,
    wonde_school: str,
    *,
    start: dt.date,
    end: dt.date,
    updated_after: dt.datetime | None = None,
) -> services.Outcome:
    """Pull the school's changes since ``updated_after`` (everything when ``None``) and store them.

    Everything is read from Wonde first and written in the caller's one transaction, so a sync
    that fails part-way (Wonde down beyond the retries) changes nothing, and the next sync,
    from the same cursor, gets the same records again.
    """
    codes = {str(c["id"]): str(c.get("code") or "") for c in client.attendance_codes(wonde_school)}
    students = list(client.students(wonde_school, updated_after))
    contacts = list(client.contacts(wonde_school, updated_after))
    sessions = list(client.sessions(wonde_school, start, end, updated_after))
    deletions = list(client.deletions(wonde_school, updated_after))

    outcome = services.Outcome()
    batch = services.Batch()
    upn_of = services.external_ids(session, school.id, "wonde")
    for student in students:
        where = services.Where(
            f"student {student.get('id')}", f"schools/{wonde_school}/students/{student.get('id')}"
        )
        record, problem = _pupil(student)
        if record is None:
            outcome.rejections.append(services.Rejection(where.record, where.location, problem or ""))
            continue
        upn_of[str(student["id"])] = record.upn
        batch.pupils.append((record, where))
    for contact in contacts:
        where = services.Where(
            f"contact {contact.get('id')}", f"schools/{wonde_school}/contacts/{contact.get('id')}"
        )
        batch.contacts.append((_contact(contact, upn_of), [where]))
    for mark in sessions:
        student_id = str(mark.get("student"))
        where = services.Where(
            f"student {student_id}", f"schools/{wonde_school}/attendance/session/{mark.get('id')}"
        )
        upn = upn_of.get(student_id)
        code = codes.get(str(mark.get("attendance_code")))
        day = wonde_date(mark.get("date"))
        if upn is None or code is None or day is None:
            reason = (
                f"no pupil for Wonde student {student_id}"
                if upn is None
                else f"unknown Wonde attendance code id {mark.get('attendance_code')!r}"
                if code is None
                else "the session has no date"
            )
            outcome.rejections.append(services.Rejection(where.record, where.location, reason))
            continue
        minutes = mark.get("minutes_late")
        session_name = str(mark.get("session") or "").upper()
        batch.marks.append(
            (services.MarkIn(upn, day, session_name, code, int(minutes) if minutes else None), where)
        )
    stored = services.store(session, school.id, batch, source="mis", feed="wonde")
    outcome.rejections.extend(stored.rejections)
    outcome.created, outcome.updated, outcome.unchanged = stored.created, stored.updated, stored.unchanged
    outcome.detail.update(stored.detail)
    removed = services.delete_contacts(
        session, school.id, "wonde", {str(d["id"]) for d in deletions if d.get("type") == "contact"}
    )
    for deletion in deletions:
        deleted_id = str(deletion.get("id"))
        if deletion.get("type") == "student" and deleted_id in upn_of:
            outcome.rejections.append(
                services.Rejection(
                    f"student {deleted_id}",
                    f"schools/{wonde_school}/deletions",
                    f"deleted in the MIS, but pupil {upn_of[deleted_id]} is kept with their marks and "
                    "casework (attendance registers are kept for six years): archive the pupil if the "
                    "record was made in error",
                )
            )
    outcome.deleted = removed
    outcome.detail["deleted"] = removed
    return outcome
