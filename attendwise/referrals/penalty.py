"""Penalty notices for absence under the national framework (domain sheet §4 and §8). Pure.

Two questions, answered without a database:

* **Eligibility** — every rolling window of 10 school weeks in which a pupil has 10 or more
  G/N/O/U sessions, with the sessions listed. School weeks and window sums come from
  :func:`attendwise.attendance.metrics.penalty_windows`, so a window crosses half-terms and
  academic years exactly as the metrics do. Sessions already used for another notice are not
  counted again. Meeting the threshold means the notice must be *considered*, not issued.
* **The ledger** — per parent per child, across every school in the LA: the first notice in a
  rolling 3 years is £80 if paid within 21 days of receipt, else £160 within 28; the second is a
  flat £160 within 28; a third is refused and the officer is pointed to the other routes.
  Withdrawn notices do not count; unpaid or prosecuted ones do. Summary proceedings for the
  s444(1) offence must start within 6 months of it, so the last day to lay an information is
  tracked and warned about.
"""

from __future__ import annotations

import calendar as _cal
import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from attendwise.attendance import codes as codes_mod
from attendwise.attendance.calendar import SchoolCalendar
from attendwise.attendance.metrics import PN_THRESHOLD, MarkMatrix, Period, penalty_windows

LEDGER_YEARS = 3
MAX_NOTICES_IN_LEDGER = 2
FIRST_NOTICE_EARLY_AMOUNT = 80
NOTICE_AMOUNT = 160
EARLY_PAYMENT_DAYS = 21
PAYMENT_DAYS = 28
PROSECUTION_LIMIT_MONTHS = 6
PROSECUTION_WARNING_DAYS = 28
ALTERNATIVE_ROUTES = (
    "Consider prosecution under s444(1) or s444(1A) Education Act 1996 (the LA must first consider an "
    "education supervision order, s447).",
    "Apply for an education supervision order (s36 Children Act 1989).",
    "Offer an attendance contract (s19 Anti-social Behaviour Act 2003).",
    "Refer for early help.",
)
SESSIONS = ("AM", "PM")

SessionKey = tuple[date, str]
"""A register session: its day and ``"AM"`` or ``"PM"``."""


class PenaltyError(ValueError):
    """A penalty-notice rule was broken; the message says which and where."""


@dataclass(frozen=True, order=True)
class Session:
    """One G/N/O/U session counted towards the threshold."""

    day: date
    session: str
    code: str

    @property
    def key(self) -> SessionKey:
        return (self.day, self.session)


@dataclass(frozen=True)
class EligibleWindow:
    """A run of 10 school weeks with at least 10 countable sessions."""

    start: date
    end: date
    sessions: tuple[Session, ...]

    @property
    def count(self) -> int:
        return len(self.sessions)

    @property
    def last_offence_day(self) -> date:
        return self.sessions[-1].day


def _check_session(key: SessionKey) -> None:
    if key[1] not in SESSIONS:
        raise PenaltyError(f"session on {key[0].isoformat()} must be AM or PM, not {key[1]!r}")


def eligibility(
    marks: Mapping[SessionKey, str],
    calendar: SchoolCalendar,
    *,
    period: Period | None = None,
    used: Iterable[SessionKey] = (),
) -> list[EligibleWindow]:
    """Every 10-school-week window of ``marks`` (one pupil at one school) with ≥10 G/N/O/U sessions.

    ``used`` are sessions already relied on by another notice: they are not counted again.
    Overlapping windows are all listed, earliest first.
    """
    if not marks:
        return []
    used_set = frozenset(used)
    for key in marks:
        _check_session(key)
    first = min(day for day, _ in marks)
    last = max(day for day, _ in marks)
    ndays = (last - first).days + 1
    row = np.zeros((1, 2 * ndays), dtype=np.uint8)
    for (day, session), code in marks.items():
        try:
            value = codes_mod.encode(code)
        except KeyError:
            raise PenaltyError(f"unknown attendance code {code!r} on {day.isoformat()} {session}") from None
        if (day, session) in used_set and code in codes_mod.PENALTY_NOTICE_CODES:
            value = codes_mod.encode("/")
        row[0, 2 * (day - first).days + SESSIONS.index(session)] = value
    span = Period(first, last)
    period = span if period is None else period
    matrix = MarkMatrix(first, row, ["pupil"])
    found: list[EligibleWindow] = []
    for window in penalty_windows(matrix, [calendar], period, 0):
        if window.sessions < PN_THRESHOLD:
            continue
        sessions = tuple(
            sorted(
                Session(day, session, code)
                for (day, session), code in marks.items()
                if window.start <= day <= window.end
                and code in codes_mod.PENALTY_NOTICE_CODES
                and (day, session) not in used_set
            )
        )
        found.append(EligibleWindow(window.start, window.end, sessions))
    return found


# -- the ledger -----------------------------------------------------------------------------------


class NoticeStatus(enum.StrEnum):
    ISSUED = "issued"
    PAID_EARLY = "paid_early"
    PAID = "paid"
    UNPAID = "unpaid"
    PROSECUTION_CONSIDERED = "prosecution_considered"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True)
class LedgerEntry:
    """A notice already on the ledger for this parent and child (from any school in the LA)."""

    issued_on: date
    status: NoticeStatus
    sessions: frozenset[SessionKey] = frozenset()
    school: str = ""

    @property
    def counts(self) -> bool:
        return self.status is not NoticeStatus.WITHDRAWN


@dataclass(frozen=True)
class Terms:
    """What a new notice would be: its number in the 3-year ledger and what is owed by when."""

    sequence: int
    issued_on: date
    amount: int
    early_amount: int | None

    def deadlines(self, received_on: date) -> tuple[date | None, date]:
        """(last day for the reduced amount or None, last day to pay) from the day of receipt."""
        if received_on < self.issued_on:
            raise PenaltyError("a notice cannot be received before it is issued")
        early = received_on + timedelta(days=EARLY_PAYMENT_DAYS) if self.early_amount is not None else None
        return early, received_on + timedelta(days=PAYMENT_DAYS)


@dataclass(frozen=True)
class Refusal:
    """A third notice in 3 years cannot be issued; the officer must take another route."""

    reason: str
    counted: tuple[LedgerEntry, ...]
    earliest_allowed: date
    alternatives: tuple[str, ...] = ALTERNATIVE_ROUTES


def years_before(day: date, years: int) -> date:
    """The same calendar day ``years`` earlier (later if negative; 29 February becomes 28 February)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def add_months(day: date, months: int) -> date:
    """``day`` moved by whole calendar months, clamped to the end of a shorter month."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, _cal.monthrange(year, month)[1]))


def counted_notices(history: Iterable[LedgerEntry], on: date) -> tuple[LedgerEntry, ...]:
    """The notices that count on ``on``: issued in the 3 years up to it and not withdrawn."""
    since = years_before(on, LEDGER_YEARS)
    return tuple(
        sorted(
            (e for e in history if e.counts and since < e.issued_on <= on),
            key=lambda e: e.issued_on,
        )
    )


def refusal(history: Iterable[LedgerEntry], issue_on: date) -> Refusal | None:
    """Why no notice can be issued on ``issue_on`` whatever the sessions (two already count), or None."""
    counted = counted_notices(history, issue_on)
    if len(counted) < MAX_NOTICES_IN_LEDGER:
        return None
    earliest = years_before(counted[-MAX_NOTICES_IN_LEDGER].issued_on, -LEDGER_YEARS)
    issued = ", ".join(e.issued_on.isoformat() for e in counted)
    return Refusal(
        reason=(
            f"This parent has already had {len(counted)} penalty notices for this child in the last "
            f"{LEDGER_YEARS} years (issued {issued}); a third cannot be issued."
        ),
        counted=counted,
        earliest_allowed=earliest,
    )


def assess(history: Iterable[LedgerEntry], issue_on: date, sessions: Iterable[SessionKey]) -> Terms | Refusal:
    """The terms of a new notice for one parent and child issued on ``issue_on``, or why not.

    Raises :class:`PenaltyError` if any of ``sessions`` was relied on by an earlier notice that
    still stands (marks cannot found two notices).
    """
    entries = tuple(history)
    wanted = frozenset(sessions)
    if not wanted:
        raise PenaltyError("a notice must name the sessions it relies on")
    for key in wanted:
        _check_session(key)
    reused = sorted(k for e in entries if e.counts for k in e.sessions & wanted)
    if reused:
        listed = ", ".join(f"{d.isoformat()} {s}" for d, s in reused[:5])
        more = f" and {len(reused) - 5} more" if len(reused) > 5 else ""
        raise PenaltyError(f"sessions already used for another notice: {listed}{more}")
    refused = refusal(entries, issue_on)
    if refused is not None:
        return refused
    counted = counted_notices(entries, issue_on)
    if not counted:
        return Terms(1, issue_on, NOTICE_AMOUNT, FIRST_NOTICE_EARLY_AMOUNT)
    return Terms(len(counted) + 1, issue_on, NOTICE_AMOUNT, None)


def payment_status(terms: Terms, received_on: date, paid_on: date, amount: int) -> NoticeStatus:
    """The status a payment gives a notice: paid at the reduced rate, paid, or still unpaid."""
    early, last = terms.deadlines(received_on)
    if paid_on < terms.issued_on:
        raise PenaltyError("a payment cannot be made before the notice is issued")
    if amount <= 0:
        raise PenaltyError("a payment must be a positive amount")
    in_early = early is not None and paid_on <= early
    if in_early and terms.early_amount is not None and amount >= terms.early_amount:
        return NoticeStatus.PAID_EARLY
    if paid_on <= last and amount >= terms.amount:
        return NoticeStatus.PAID
    if paid_on > last:
        raise PenaltyError(
            f"payment on {paid_on.isoformat()} is after the last day to pay ({last.isoformat()}): "
            "the notice is unpaid and the LA must prosecute or withdraw it"
        )
    owed = terms.early_amount if in_early else terms.amount
    raise PenaltyError(f"£{amount} is less than the £{owed} owed on {paid_on.isoformat()}")


def overdue(terms: Terms, received_on: date, today: date) -> bool:
    """Unpaid after 28 days: the LA must now consider prosecution or withdraw the notice."""
    return today > terms.deadlines(received_on)[1]


@dataclass(frozen=True)
class ProsecutionClock:
    """The last day to lay an information for the s444(1) offence, 6 months after it."""

    offence_on: date
    last_day: date
    days_left: int

    @property
    def expired(self) -> bool:
        return self.days_left < 0

    @property
    def warning(self) -> str | None:
        if self.expired:
            return (
                f"The 6-month limit for prosecuting absence ending {self.offence_on.isoformat()} passed on "
                f"{self.last_day.isoformat()}: these sessions can no longer found a prosecution."
            )
        if self.days_left <= PROSECUTION_WARNING_DAYS:
            return (
                f"Only {self.days_left} days left to prosecute absence ending {self.offence_on.isoformat()} "
                f"(limit {self.last_day.isoformat()})."
            )
        return None


def prosecution_clock(sessions: Sequence[Session] | Sequence[SessionKey], today: date) -> ProsecutionClock:
    """The 6-month clock for the absence in ``sessions``, from its last day."""
    if not sessions:
        raise PenaltyError("the prosecution clock needs at least one session")
    offence_on = max(s.day if isinstance(s, Session) else s[0] for s in sessions)
    last_day = add_months(offence_on, PROSECUTION_LIMIT_MONTHS)
    return ProsecutionClock(offence_on, last_day, (last_day - today).days)
