"""State-changing functions for referrals: the school's side, the LA's side, and the ledger.

A school builds a referral from what Attendwise already holds, its named role signs it off, and
:func:`submit` freezes the bundle into rows owned by the LA. LA actions change only LA-owned rows
and mirror the status onto the school's referral in a named system context (:func:`_mirror`),
which is audited like any other write. Functions flush, never commit.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from attendwise.attendance import calendar as cal
from attendwise.attendance import queries as attendance_queries
from attendwise.attendance import services as attendance_services
from attendwise.attendance.calendar import academic_year_of
from attendwise.attendance.codes import decode
from attendwise.attendance.metrics import Period
from attendwise.attendance.models import Contact, Pupil
from attendwise.casework import queries as case_queries
from attendwise.casework.models import Case
from attendwise.letters.render import RenderError
from attendwise.platform import audit, jobs, tenancy
from attendwise.platform.db import utcnow
from attendwise.referrals import bundle as bundle_pdf
from attendwise.referrals import penalty, webhooks
from attendwise.referrals.models import (
    BundleItem,
    Decision,
    DecisionKind,
    Issuer,
    KindKey,
    LAProfile,
    OutboxMessage,
    PenaltyNotice,
    ReceivedReferral,
    Referral,
    ReferralKind,
    ReferralMessage,
    Status,
    WebhookEvent,
)
from attendwise.tenants import roles
from attendwise.tenants.models import Organisation, OrgKind, User

BUNDLE_SCHEMA = "attendwise.referral-bundle/1"

DEFAULT_KINDS: dict[KindKey, tuple[str, bool, list[dict[str, Any]]]] = {
    KindKey.NOTICE_TO_IMPROVE: (
        "Notice to improve request",
        False,
        [
            {"key": "registration_certificate", "label": "Registration certificate", "weeks": 10},
            {"key": "warning_letter", "label": "Warning letter sent", "weeks": 18},
            {"key": "support", "label": "Support offered", "weeks": 12},
            {"key": "parents", "label": "Everyone with parental responsibility", "weeks": 0},
        ],
    ),
    KindKey.PENALTY_NOTICE: (
        "Penalty notice request",
        False,
        [
            {"key": "registration_certificate", "label": "Registration certificate", "weeks": 12},
            {"key": "warning_letter", "label": "Warning letter sent", "weeks": 18},
            {"key": "support", "label": "Support offered", "weeks": 4},
            {"key": "parents", "label": "Everyone with parental responsibility", "weeks": 0},
        ],
    ),
    KindKey.COURT_WARNING: (
        "Court warning request",
        False,
        [
            {"key": "registration_certificate", "label": "Registration certificate", "weeks": 12},
            {"key": "meeting", "label": "Attendance meeting held", "weeks": 12},
            {"key": "plan", "label": "Attendance plan and reviews", "weeks": 12},
            {"key": "parents", "label": "Everyone with parental responsibility", "weeks": 0},
        ],
    ),
    KindKey.REVIEW_CONFERENCE: (
        "Attendance review conference (access and inclusion)",
        False,
        [
            {"key": "registration_certificate", "label": "Registration certificate", "weeks": 12},
            {"key": "plan", "label": "Attendance plan and reviews", "weeks": 12},
            {"key": "support", "label": "Support offered", "weeks": 12},
        ],
    ),
    KindKey.ESS_REFERRAL: (
        "Education support service referral",
        False,
        [
            {"key": "registration_certificate", "label": "Registration certificate", "weeks": 12},
            {"key": "contact_log", "label": "Contact with the family", "weeks": 6},
            {"key": "support", "label": "Support offered", "weeks": 12},
        ],
    ),
    KindKey.EARLY_HELP: (
        "Early help referral",
        False,
        [{"key": "support", "label": "Support offered", "weeks": 12}],
    ),
    KindKey.TEN_DAYS_UNAUTHORISED: (
        "Notification: 10 consecutive school days of unauthorised absence",
        True,
        [{"key": "registration_certificate", "label": "Registration certificate", "weeks": 4}],
    ),
    KindKey.FIFTEEN_DAYS_ILLNESS: (
        "Notification: 15 school days missed through illness",
        True,
        [{"key": "registration_certificate", "label": "Registration certificate", "weeks": 6}],
    ),
    KindKey.WHEREABOUTS_UNKNOWN: (
        "Notification: whereabouts unknown",
        True,
        [
            {"key": "registration_certificate", "label": "Registration certificate", "weeks": 4},
            {"key": "contact_log", "label": "Attempts to contact the family", "weeks": 4},
            {"key": "parents", "label": "Everyone with parental responsibility", "weeks": 0},
        ],
    ),
}

# The statuses an LA may move a received referral to, from each status.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.SUBMITTED: frozenset({Status.ACKNOWLEDGED, Status.MORE_INFORMATION_REQUESTED, Status.DECLINED}),
    Status.ACKNOWLEDGED: frozenset({Status.MORE_INFORMATION_REQUESTED, Status.ACCEPTED, Status.DECLINED}),
    Status.MORE_INFORMATION_REQUESTED: frozenset({Status.ACKNOWLEDGED, Status.ACCEPTED, Status.DECLINED}),
    Status.ACCEPTED: frozenset({Status.DECIDED, Status.MORE_INFORMATION_REQUESTED}),
    Status.DECIDED: frozenset({Status.DECIDED, Status.CLOSED}),
    Status.CLOSED: frozenset(),
    Status.DECLINED: frozenset(),
}


class ReferralError(ValueError):
    """A referral action was refused; the message says why."""


# -- identity keys --------------------------------------------------------------------------------


def _key(kind: str, *parts: str) -> str:
    secret = hashlib.sha256(b"attendwise-referral-identity-v1:" + current_app.config["SECRET_KEY"].encode())
    text = "\x1f".join(" ".join(p.casefold().split()) for p in parts)
    return hmac.new(secret.digest(), f"{kind}\x1e{text}".encode(), hashlib.sha256).hexdigest()


def child_key(upn: str, date_of_birth: dt.date) -> str:
    """The same child at any school of the LA: UPN and date of birth, keyed with the deployment secret."""
    return _key("child", upn.upper(), date_of_birth.isoformat())


def parent_key(forename: str, surname: str, postcode: str | None) -> str:
    """The same parent at any school of the LA: name and postcode, keyed with the deployment secret."""
    return _key("parent", forename, surname, (postcode or "").replace(" ", "").upper())


# -- LA configuration ------------------------------------------------------------------------------


def ensure_la_setup(session: Session, la_id: int) -> LAProfile:
    """The LA's profile and its referral kinds, created with the defaults the first time."""
    ctx = tenancy.require()
    if not ctx.can_write(la_id):
        raise tenancy.TenantViolation(f"cannot configure organisation {la_id} from this context")
    profile = session.scalar(select(LAProfile).where(LAProfile.org_id == la_id))
    if profile is None:
        profile = LAProfile(org_id=la_id)
        session.add(profile)
    have = set(session.scalars(select(ReferralKind.key).where(ReferralKind.org_id == la_id)))
    for key, (label, statutory, checklist) in DEFAULT_KINDS.items():
        if key not in have:
            session.add(
                ReferralKind(org_id=la_id, key=key, label=label, statutory=statutory, checklist=checklist)
            )
    session.flush()
    return profile


IMPROVEMENT_PERIOD_DAYS = (15, 30)  # school days, the national framework's range
SLA_DAYS = (1, 60)
CHECKLIST_WEEKS = (0, 104)
EVIDENCE = {
    "registration_certificate": "Registration certificate",
    "warning_letter": "Warning letter sent",
    "contact_log": "Contact with the family",
    "meeting": "Attendance meeting held",
    "plan": "Attendance plan and reviews",
    "support": "Support offered",
    "parents": "Everyone with parental responsibility",
    "siblings": "Siblings",
}


def _changes(row: Any, values: dict[str, Any]) -> dict[str, list[Any]]:
    """Set ``values`` on ``row``; return {field: [before, after]} for what changed."""
    changed: dict[str, list[Any]] = {}
    for name, value in values.items():
        before = getattr(row, name)
        if before != value:
            changed[name] = [before.value if isinstance(before, enum.Enum) else before, value]
            setattr(row, name, value)
    return changed


def _whole(raw: str | int, field_name: str, bounds: tuple[int, int], what: str) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ReferralError(f"{field_name}: enter {what} as a whole number") from None
    low, high = bounds
    if not low <= value <= high:
        raise ReferralError(f"{field_name}: {what} must be between {low} and {high}, not {value}")
    return value


def update_profile(
    session: Session,
    la_id: int,
    *,
    nti_issuer: str,
    pn_issuer: str,
    improvement_period_school_days: str | int,
    team_email: str,
    daily_digest: bool,
) -> LAProfile:
    """Change the LA's code-of-conduct parameters (validated; the change is audited)."""
    issuers = {i.value: i for i in Issuer}
    if nti_issuer not in issuers:
        raise ReferralError(f"nti_issuer: choose who issues notices to improve, not {nti_issuer!r}")
    if pn_issuer not in issuers:
        raise ReferralError(f"pn_issuer: choose who issues penalty notices, not {pn_issuer!r}")
    period = _whole(
        improvement_period_school_days,
        "improvement_period_school_days",
        IMPROVEMENT_PERIOD_DAYS,
        "the improvement period in school days",
    )
    email = team_email.strip()
    if email and (len(email) > 254 or "@" not in email.strip("@") or " " in email):
        raise ReferralError(f"team_email: {email!r} is not an email address")
    profile = ensure_la_setup(session, la_id)
    changed = _changes(
        profile,
        {
            "nti_issuer": issuers[nti_issuer],
            "pn_issuer": issuers[pn_issuer],
            "improvement_period_school_days": period,
            "team_email": email,
            "daily_digest": daily_digest,
        },
    )
    session.flush()
    if changed:
        audit.record(
            session,
            org_id=la_id,
            action="referral.settings.update",
            object_type="la_referral_profile",
            object_id=profile.id,
            detail={
                k: [str(v) if isinstance(v, enum.Enum) else v for v in pair] for k, pair in changed.items()
            },
        )
    return profile


def update_kind(
    session: Session,
    kind: ReferralKind,
    *,
    label: str,
    enabled: bool,
    signoff_role: str,
    sla_working_days: str | int,
    checklist: Sequence[tuple[str, str, str | int]],
) -> ReferralKind:
    """Change one referral kind: its checklist (evidence, label, window in weeks), who signs off at
    the school, and its service level. Validated as a whole; the change is audited."""
    if not label.strip():
        raise ReferralError("label: give the referral kind a name schools will recognise")
    school_roles = {r.key for r in roles.roles_for(OrgKind.SCHOOL)}
    if signoff_role not in school_roles:
        raise ReferralError(f"signoff_role: {signoff_role!r} is not a school role")
    sla = _whole(sla_working_days, "sla_working_days", SLA_DAYS, "the service level in working days")
    items: list[dict[str, Any]] = []
    for n, (key, item_label, weeks) in enumerate(checklist, start=1):
        if key not in EVIDENCE:
            raise ReferralError(f"checklist item {n}: {key!r} is not evidence Attendwise can assemble")
        if key in {i["key"] for i in items}:
            raise ReferralError(f"checklist item {n}: {EVIDENCE[key]} is listed twice")
        span = _whole(weeks, f"checklist item {n}", CHECKLIST_WEEKS, "the window in weeks")
        if key == "registration_certificate" and span < 1:
            raise ReferralError(
                f"checklist item {n}: the registration certificate must cover at least 1 week"
            )
        items.append({"key": key, "label": item_label.strip()[:200] or EVIDENCE[key], "weeks": span})
    changed = _changes(
        kind,
        {
            "label": label.strip()[:200],
            "enabled": enabled,
            "signoff_role": signoff_role,
            "sla_working_days": sla,
            "checklist": items,
        },
    )
    session.flush()
    if changed:
        audit.record(
            session,
            org_id=kind.org_id,
            action="referral.kind.update",
            object_type="referral_kind",
            object_id=kind.id,
            detail={"kind": kind.key.value, **changed},
        )
    return kind


def _kind(session: Session, la_id: int, key: KindKey) -> ReferralKind:
    with tenancy.system_context("referrals: read the LA's referral kinds for a school"):
        kind = session.scalar(
            select(ReferralKind).where(ReferralKind.org_id == la_id, ReferralKind.key == key)
        )
        if kind is not None:
            session.expunge(kind)
    if kind is None or not kind.enabled:
        raise ReferralError(f"the local authority does not accept referrals of kind {key.value!r}")
    return kind


# -- the school's side ----------------------------------------------------------------------------


def start(
    session: Session,
    *,
    pupil_id: int,
    kind: KindKey | str,
    user_id: int | None,
    case_id: int | None = None,
    reason: str = "",
) -> Referral:
    """A draft referral of one of the school's pupils to the school's LA."""
    ctx = tenancy.require()
    pupil = session.get(Pupil, pupil_id)
    if pupil is None or pupil.org_id != ctx.org_id:
        raise ReferralError(f"pupil {pupil_id} is not on this school's roll")
    school = session.get(Organisation, pupil.org_id)
    if school is None or school.la_id is None:
        raise ReferralError("this school has no local authority to refer to")
    try:
        key = KindKey(kind)
    except ValueError:
        raise ReferralError(f"unknown referral kind {kind!r}") from None
    if case_id is not None:
        case = session.get(Case, case_id)
        if case is None or case.pupil_id != pupil.id:
            raise ReferralError(f"case {case_id} is not this pupil's case")
    else:
        open_case = case_queries.open_case_for_pupil(session, pupil.id)
        case_id = open_case.id if open_case else None
    kind_row = _kind(session, school.la_id, key)
    referral = Referral(
        org_id=pupil.org_id,
        la_org_id=school.la_id,
        pupil_id=pupil.id,
        case_id=case_id,
        kind=key,
        kind_label=kind_row.label,
        reason=reason,
        created_by_user_id=user_id,
    )
    session.add(referral)
    session.flush()
    return referral


@dataclass
class ChecklistLine:
    key: str
    label: str
    weeks: int
    satisfied: bool
    by: str


@dataclass
class Bundle:
    """What a referral would send: its canonical content and what is missing."""

    content: dict[str, Any]
    checklist: list[ChecklistLine] = field(default_factory=list)

    @property
    def missing(self) -> list[ChecklistLine]:
        return [line for line in self.checklist if not line.satisfied]


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _day(value: dt.date | dt.datetime) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def _marks(session: Session, pupil: Pupil, start: dt.date, end: dt.date) -> dict[tuple[dt.date, str], str]:
    out: dict[tuple[dt.date, str], str] = {}
    for year in range(academic_year_of(start), academic_year_of(end) + 1):
        matrix = attendance_queries.mark_matrix(session, pupil.org_id, year, [pupil.id])
        row = matrix.codes[0]
        for column in range(row.size):
            day = matrix.start + dt.timedelta(days=column // 2)
            code = decode(int(row[column])) if row[column] else None
            if code and start <= day <= end:
                out[(day, penalty.SESSIONS[column % 2])] = code
    return out


def _certificate(session: Session, pupil: Pupil, weeks: int, on: dt.date) -> dict[str, Any]:
    year = academic_year_of(on)
    calendar = cal.merge(
        [attendance_services.school_calendar(session, pupil.org_id, y) for y in (year - 1, year)]
    )
    period = Period.last_school_weeks(calendar, weeks, on)
    marks = _marks(session, pupil, period.start, period.end)
    rows = [
        [day.isoformat(), marks.get((day, "AM"), ""), marks.get((day, "PM"), "")]
        for day in calendar.school_days(period.start, period.end)
    ]
    windows = penalty.eligibility(marks, calendar, period=period) if marks else []
    return {
        "from": period.start.isoformat(),
        "to": period.end.isoformat(),
        "school_weeks": weeks,
        "rows": rows,
        "penalty_windows": [
            {
                "from": w.start.isoformat(),
                "to": w.end.isoformat(),
                "sessions": [[s.day.isoformat(), s.session, s.code] for s in w.sessions],
            }
            for w in windows
        ],
    }


def _parents(session: Session, pupil: Pupil) -> list[dict[str, Any]]:
    out = []
    for link in pupil.contact_links:
        if not link.parental_responsibility:
            continue
        contact: Contact = link.contact
        out.append(
            {
                "name": contact.display_name,
                "forename": contact.forename,
                "surname": contact.surname,
                "relationship": link.relationship_to_pupil,
                "lives_with_pupil": link.lives_with_pupil,
                "address": list(contact.address_lines),
                "postcode": contact.postcode,
                "phones": [p.get("number", "") for p in contact.phones],
                "emails": list(contact.emails),
                "parent_key": parent_key(contact.forename, contact.surname, contact.postcode),
            }
        )
    return out


def assemble(session: Session, referral: Referral, on: dt.date) -> Bundle:
    """The bundle as it stands on ``on``, checked against the LA's checklist for the kind."""
    pupil = session.get(Pupil, referral.pupil_id)
    school = session.get(Organisation, referral.org_id)
    if pupil is None or school is None:
        raise ReferralError("the referred pupil is no longer on the school's roll")
    kind = _kind(session, referral.la_org_id, referral.kind)
    items: list[dict[str, Any]] = []

    def add(section: str, title: str, dated: dt.date | None, content: dict[str, Any]) -> None:
        items.append({"section": section, "title": title, "dated": _iso(dated), "content": content})

    cert_weeks = max(
        (int(c["weeks"]) for c in kind.checklist if c["key"] == "registration_certificate"), default=10
    )
    certificate = _certificate(session, pupil, cert_weeks, on)
    add(
        "registration_certificate",
        f"Registration certificate, last {cert_weeks} school weeks",
        on,
        certificate,
    )
    parents = _parents(session, pupil)
    for p in parents:
        add("parents", f"{p['name']} ({p['relationship']})", None, p)
    case = session.get(Case, referral.case_id) if referral.case_id else None
    if case is not None:
        page = case_queries.case_page(session, case)
        for log in case_queries.contact_logs(session, case.id):
            add(
                "contact_log",
                f"{log.channel.value.replace('_', ' ').capitalize()}: {log.outcome.value.replace('_', ' ')}",
                _day(log.occurred_at),
                {"note": log.note, "with": log.contact.display_name if log.contact else ""},
            )
        for meeting in page.meetings:
            add(
                "meeting",
                f"Meeting at {meeting.place}",
                _day(meeting.starts_at),
                {
                    "status": meeting.status.value,
                    "who_attended": meeting.who_attended,
                    "concerns": meeting.concerns,
                    "agreed_actions": meeting.agreed_actions,
                },
            )
        for plan in page.plans:
            add(
                "plan",
                "Attendance contract" if plan.is_contract else "Attendance plan",
                plan.starts_on,
                {
                    "target_attendance": plan.target_attendance,
                    "support_agreed": list(plan.support_agreed),
                    "review_on": plan.review_on.isoformat(),
                    "reviews": [
                        {"on": r.reviewed_on.isoformat(), "outcome": r.outcome.value, "note": r.note}
                        for r in plan.reviews
                    ],
                },
            )
        for record in page.support:
            add(
                "support",
                record.support[:300] or "Support",
                record.recorded_on,
                {
                    "barriers": list(record.barriers),
                    "status": record.status.value,
                    "agencies": list(record.agencies),
                    "early_help_offered": record.early_help_offered,
                    "early_help_started": record.early_help_started,
                },
            )
        for entry in page.timeline:
            if "letter" in entry.kind.lower() or "letter" in entry.title.lower():
                add("warning_letter", entry.title, _day(entry.occurred_at), {"detail": entry.body})
        add(
            "timeline",
            "Case chronology",
            None,
            {"entries": [[_iso(e.occurred_at), e.kind, e.title] for e in reversed(page.timeline)]},
        )
    siblings = attendance_queries.siblings(session, pupil, viewer=school, may_see_other_schools=False, on=on)
    if siblings:
        add(
            "siblings",
            "Siblings",
            None,
            {
                "siblings": [
                    {"name": s.name, "year_group": s.year_group, "attendance_pct": s.attendance_pct}
                    for s in siblings
                ]
            },
        )
    wanted = {c["key"]: c["label"] for c in kind.checklist}
    for key, text in sorted(referral.supplied.items()):
        add(
            key,
            f"{wanted.get(key, key.replace('_', ' ').capitalize())} (supplied by the school)",
            None,
            {"text": text},
        )
    items.sort(key=lambda i: bundle_pdf.section_rank(i["section"]))

    checklist: list[ChecklistLine] = []
    for item in kind.checklist:
        key, weeks = item["key"], int(item["weeks"])
        since = on - dt.timedelta(weeks=weeks)
        found = [
            i
            for i in items
            if i["section"] == key
            and (weeks == 0 or i["dated"] is None or dt.date.fromisoformat(i["dated"]) >= since)
        ]
        if key == "registration_certificate":
            found = [i for i in found if i["content"].get("rows")]
        by = found[0]["title"] if found else ""
        checklist.append(ChecklistLine(key, item["label"], weeks, bool(found), by))
    content = {
        "schema": BUNDLE_SCHEMA,
        "referral": {
            "kind": referral.kind.value,
            "kind_label": referral.kind_label,
            "reason": referral.reason,
            "school": school.name,
            "school_urn": school.urn,
            "assembled_on": on.isoformat(),
        },
        "pupil": {
            "name": f"{pupil.legal_forename} {pupil.legal_surname}",
            "upn": pupil.upn,
            "date_of_birth": pupil.date_of_birth.isoformat(),
            "year_group": pupil.year_group,
        },
        "items": items,
        "checklist": [
            {"key": c.key, "label": c.label, "weeks": c.weeks, "satisfied": c.satisfied} for c in checklist
        ],
    }
    return Bundle(content, checklist)


def supply(session: Session, referral: Referral, key: str, text: str) -> Referral:
    """The school supplies a missing checklist item (a description of evidence held on paper)."""
    if referral.status not in (Status.DRAFT, Status.MORE_INFORMATION_REQUESTED):
        raise ReferralError("evidence can only be added before submission or when the LA asks for more")
    if not text.strip():
        raise ReferralError(f"say what evidence you hold for {key!r}")
    referral.supplied = {**referral.supplied, key: text.strip()}
    referral.signed_off_by_user_id = None
    referral.signed_off_at = None
    session.flush()
    return referral


def sign_off(session: Session, referral: Referral, *, user_id: int, role_key: str) -> Referral:
    """The role the LA names for this kind (or any role with referral sign-off) signs it off."""
    if referral.status != Status.DRAFT:
        raise ReferralError("only a draft referral can be signed off")
    kind = _kind(session, referral.la_org_id, referral.kind)
    if role_key != kind.signoff_role and not roles.has_perm(role_key, roles.Perm.REFERRALS_SIGNOFF):
        raise ReferralError(f"this referral must be signed off by a {roles.role(kind.signoff_role).label}")
    referral.signed_off_by_user_id = user_id
    referral.signed_off_at = utcnow()
    session.flush()
    return referral


def canonical(content: dict[str, Any]) -> bytes:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def submit(session: Session, referral: Referral, *, user_id: int | None, on: dt.date) -> ReceivedReferral:
    """Freeze the bundle into LA-owned rows and notify the LA. Refused while items are missing."""
    if referral.status != Status.DRAFT:
        raise ReferralError("this referral has already been submitted")
    if referral.signed_off_by_user_id is None:
        raise ReferralError("the referral must be signed off before it is submitted")
    bundle = assemble(session, referral, on)
    if bundle.missing:
        names = ", ".join(line.label for line in bundle.missing)
        raise ReferralError(f"the local authority's checklist is not met; missing: {names}")
    school = session.get(Organisation, referral.org_id)
    kind = _kind(session, referral.la_org_id, referral.kind)
    digest = sha256(canonical(bundle.content))
    pupil = bundle.content["pupil"]
    html = bundle_pdf.render_html(bundle.content, digest)
    try:
        pdf = bundle_pdf.render_pdf(html)
    except RenderError as exc:
        raise ReferralError(f"the bundle could not be made into a PDF ({exc}); try again") from exc
    with tenancy.system_context("referrals: freeze a submitted bundle into the LA's rows"):
        received = ReceivedReferral(
            org_id=referral.la_org_id,
            source_org_id=referral.org_id,
            source_referral_id=referral.id,
            school_name=school.name if school else "",
            kind=referral.kind,
            kind_label=referral.kind_label,
            pupil_name=pupil["name"],
            pupil_upn=pupil["upn"],
            pupil_dob=dt.date.fromisoformat(pupil["date_of_birth"]),
            child_key=child_key(pupil["upn"], dt.date.fromisoformat(pupil["date_of_birth"])),
            submitted_on=on,
            sla_working_days=kind.sla_working_days,
            due_on=cal.add_working_days(on, kind.sla_working_days),
            bundle=bundle.content,
            bundle_html=html,
            bundle_hash=digest,
            bundle_pdf=pdf,
            bundle_pdf_sha256=sha256(pdf),
        )
        for position, item in enumerate(bundle.content["items"], start=1):
            received.items.append(
                BundleItem(
                    org_id=referral.la_org_id,
                    position=position,
                    section=item["section"],
                    title=item["title"][:300],
                    dated=dt.date.fromisoformat(item["dated"]) if item["dated"] else None,
                    content=item["content"],
                    sha256=bundle_pdf.part_sha256(item),
                )
            )
        session.add(received)
        session.flush()
        webhooks.emit(session, referral.la_org_id, WebhookEvent.REFERRAL_SUBMITTED, event_data(received))
        profile = session.scalar(select(LAProfile).where(LAProfile.org_id == referral.la_org_id))
        if profile is not None and profile.team_email:
            notify(
                session,
                org_id=referral.la_org_id,
                key=f"referral-{received.id}-submitted",
                to=profile.team_email,
                subject=f"New referral: {referral.kind_label} from {received.school_name}",
                body=(
                    f"{received.school_name} has referred a pupil ({referral.kind_label}).\n"
                    f"Reference R{received.id}; service level due {received.due_on.isoformat()}.\n"
                ),
            )
    referral.status = Status.SUBMITTED
    referral.submitted_at = utcnow()
    referral.received_id = received.id
    referral.bundle_hash = digest
    session.flush()
    audit.record(
        session,
        org_id=referral.org_id,
        action="referral.submit",
        object_type="referral",
        object_id=referral.id,
        pupil_id=referral.pupil_id,
        detail={
            "bundle_sha256": digest,
            "pdf_sha256": received.bundle_pdf_sha256,
            "la_org_id": referral.la_org_id,
        },
    )
    return received


def school_reply(
    session: Session, referral: Referral, *, user_id: int | None, author: str, body: str, on: dt.date
) -> None:
    """The school answers the LA's request for information; the service-level clock restarts."""
    if referral.status != Status.MORE_INFORMATION_REQUESTED or referral.received_id is None:
        raise ReferralError("the local authority has not asked for more information")
    if not body.strip():
        raise ReferralError("write the information the local authority asked for")
    key = f"school-{referral.id}-{secrets.token_hex(8)}"
    session.add(
        ReferralMessage(
            org_id=referral.org_id,
            thread_key=key,
            referral_id=referral.id,
            author_org_id=referral.org_id,
            author_user_id=user_id,
            author_name=author,
            body=body.strip(),
        )
    )
    referral.status = Status.ACKNOWLEDGED
    with tenancy.system_context("referrals: deliver a school's answer to the LA"):
        received = session.get(ReceivedReferral, referral.received_id)
        if received is None:
            raise ReferralError("the local authority's copy of this referral no longer exists")
        session.add(
            ReferralMessage(
                org_id=received.org_id,
                thread_key=key,
                received_id=received.id,
                author_org_id=referral.org_id,
                author_user_id=user_id,
                author_name=author,
                body=body.strip(),
            )
        )
        _resume_clock(received, on)
        received.status = Status.ACKNOWLEDGED
        session.flush()


# -- the LA's side --------------------------------------------------------------------------------


def _resume_clock(received: ReceivedReferral, on: dt.date) -> None:
    if received.paused_on is not None:
        paused = max(cal.working_days(received.paused_on, on) - 1 if on > received.paused_on else 0, 0)
        received.due_on = cal.add_working_days(received.due_on, paused)
        received.paused_working_days += paused
        received.paused_on = None


def event_data(received: ReceivedReferral) -> dict[str, Any]:
    """What a webhook says about a referral: references and status, never the pupil's name."""
    return {
        "referral_id": received.id,
        "reference": f"R{received.id}",
        "kind": received.kind.value,
        "status": received.status.value,
        "school_org_id": received.source_org_id,
        "school": received.school_name,
        "submitted_on": received.submitted_on.isoformat(),
        "due_on": received.due_on.isoformat(),
    }


def _notice_event(session: Session, notice: PenaltyNotice) -> None:
    """Record a change to a penalty notice on the LA's audit chain and tell its webhooks."""
    audit.record(
        session,
        org_id=notice.org_id,
        action=f"penalty_notice.{notice.status.value}",
        object_type="penalty_notice",
        object_id=notice.id,
        detail={"referral_id": notice.received_id, "sequence": notice.sequence},
    )
    webhooks.emit(
        session,
        notice.org_id,
        WebhookEvent.PENALTY_NOTICE_CHANGED,
        {
            "penalty_notice_id": notice.id,
            "referral_id": notice.received_id,
            "status": notice.status.value,
            "sequence": notice.sequence,
            "amount": notice.amount,
            "issued_on": notice.issued_on.isoformat(),
        },
    )


def _mirror(session: Session, received: ReceivedReferral, note: str = "") -> None:
    """Copy the LA's status onto the school's referral (the one cross-tenant write) and tell the
    LA's webhooks."""
    with tenancy.system_context("referrals: mirror the LA's status onto the school's referral"):
        referral = session.get(Referral, received.source_referral_id)
        if referral is not None and referral.org_id == received.source_org_id:
            referral.status = received.status
            if note:
                referral.la_status_note = note
            session.flush()
    webhooks.emit(
        session, received.org_id, WebhookEvent.REFERRAL_STATUS_CHANGED, {**event_data(received), "note": note}
    )


def _move(received: ReceivedReferral, to: Status, on: dt.date | None = None) -> None:
    if to not in TRANSITIONS[received.status]:
        raise ReferralError(
            f"a referral that is {received.status.value.replace('_', ' ')} cannot become "
            f"{to.value.replace('_', ' ')}"
        )
    received.status = to
    if to in (Status.DECIDED, Status.DECLINED) and received.concluded_on is None:
        received.concluded_on = on or attendance_queries.today()


def _notify_school(session: Session, received: ReceivedReferral, event: str, text: str) -> None:
    with tenancy.system_context("referrals: address a status email to the referring school"):
        referral = session.get(Referral, received.source_referral_id)
        creator = referral.created_by_user_id if referral else None
        user = session.get(User, creator) if creator else None
        if user is not None and referral is not None:
            notify(
                session,
                org_id=referral.org_id,
                key=f"referral-{received.id}-{event}",
                to=user.email,
                subject=f"Referral R{received.id} ({received.kind_label}): {text}",
                body=f"The local authority has updated referral R{received.id}: {text}.\n",
            )


def acknowledge(session: Session, received: ReceivedReferral) -> None:
    _move(received, Status.ACKNOWLEDGED)
    session.flush()
    _mirror(session, received, "Acknowledged by the local authority")


def assign(session: Session, received: ReceivedReferral, user_id: int | None) -> None:
    received.assigned_user_id = user_id
    session.flush()


def request_information(
    session: Session, received: ReceivedReferral, *, user_id: int | None, author: str, body: str, on: dt.date
) -> None:
    """Ask the school for more; the service-level clock pauses until it answers."""
    if not body.strip():
        raise ReferralError("say what information the school should send")
    _move(received, Status.MORE_INFORMATION_REQUESTED)
    received.paused_on = on
    key = f"la-{received.id}-{secrets.token_hex(8)}"
    session.add(
        ReferralMessage(
            org_id=received.org_id,
            thread_key=key,
            received_id=received.id,
            author_org_id=received.org_id,
            author_user_id=user_id,
            author_name=author,
            body=body.strip(),
            requests_information=True,
        )
    )
    session.flush()
    with tenancy.system_context("referrals: deliver the LA's request to the school"):
        session.add(
            ReferralMessage(
                org_id=received.source_org_id,
                thread_key=key,
                referral_id=received.source_referral_id,
                author_org_id=received.org_id,
                author_user_id=user_id,
                author_name=author,
                body=body.strip(),
                requests_information=True,
            )
        )
        session.flush()
    _mirror(session, received, "More information requested")
    _notify_school(session, received, f"info-{key}", "more information requested")


def accept(session: Session, received: ReceivedReferral) -> None:
    _move(received, Status.ACCEPTED)
    session.flush()
    _mirror(session, received, "Accepted by the local authority")
    _notify_school(session, received, "accepted", "accepted")


def decline(session: Session, received: ReceivedReferral, reason: str) -> None:
    if not reason.strip():
        raise ReferralError("a declined referral needs a reason the school can act on")
    _move(received, Status.DECLINED)
    received.declined_reason = reason.strip()
    session.flush()
    _mirror(session, received, f"Declined: {reason.strip()}")
    _notify_school(session, received, "declined", f"declined ({reason.strip()})")


def close(session: Session, received: ReceivedReferral) -> None:
    _move(received, Status.CLOSED)
    session.flush()
    _mirror(session, received, "Closed")


def decide(
    session: Session,
    received: ReceivedReferral,
    kind: DecisionKind | str,
    *,
    user_id: int | None,
    on: dt.date,
    notes: str = "",
    conference_on: dt.date | None = None,
    attendees: str = "",
    outcome: str = "",
    penalty_notice: PenaltyNotice | None = None,
) -> Decision:
    """Record a decision. A notice to improve gets its improvement period end from the LA's code
    of conduct, counted in school days of the referring school's calendar."""
    if received.status not in (Status.ACCEPTED, Status.DECIDED):
        raise ReferralError("accept the referral before recording a decision")
    try:
        decision_kind = DecisionKind(kind)
    except ValueError:
        raise ReferralError(f"unknown decision {kind!r}") from None
    if decision_kind is DecisionKind.PN_ISSUED and penalty_notice is None:
        raise ReferralError("issue the penalty notice on the ledger first")
    if decision_kind is DecisionKind.REVIEW_CONFERENCE and conference_on is None:
        raise ReferralError("a review conference needs a date")
    improvement_ends_on = None
    if decision_kind is DecisionKind.NTI_ISSUED:
        profile = session.scalar(select(LAProfile).where(LAProfile.org_id == received.org_id))
        days = profile.improvement_period_school_days if profile else 30
        year = academic_year_of(on)
        with tenancy.system_context("referrals: the referring school's calendar for a notice to improve"):
            calendar = cal.merge(
                [
                    attendance_services.school_calendar(session, received.source_org_id, y)
                    for y in (year, year + 1)
                ]
            )
        later = calendar.school_days(on + dt.timedelta(days=1), calendar.end)
        improvement_ends_on = later[days - 1] if len(later) >= days else cal.add_working_days(on, days)
    decision = Decision(
        org_id=received.org_id,
        received_id=received.id,
        kind=decision_kind,
        decided_on=on,
        decided_by_user_id=user_id,
        notes=notes,
        improvement_ends_on=improvement_ends_on,
        conference_on=conference_on,
        attendees=attendees,
        outcome=outcome,
        penalty_notice_id=penalty_notice.id if penalty_notice else None,
    )
    received.decisions.append(decision)
    _move(received, Status.DECIDED, on)
    session.flush()
    label = decision_kind.label
    _mirror(session, received, f"Decision: {label}")
    webhooks.emit(
        session,
        received.org_id,
        WebhookEvent.REFERRAL_DECIDED,
        {
            **event_data(received),
            "decision_id": decision.id,
            "decision": decision_kind.value,
            "decided_on": on.isoformat(),
            "improvement_ends_on": _iso(improvement_ends_on),
            "penalty_notice_id": decision.penalty_notice_id,
        },
    )
    _notify_school(session, received, f"decision-{decision.id}", f"decision recorded ({label})")
    return decision


_OUTCOME_LABELS = {
    Status.SUBMITTED: "Awaiting the local authority",
    Status.ACKNOWLEDGED: "Awaiting the local authority",
    Status.MORE_INFORMATION_REQUESTED: "Returned for more information",
    Status.ACCEPTED: "Accepted",
    Status.DECIDED: "Decided",
    Status.CLOSED: "Closed",
    Status.DECLINED: "Declined",
}


def outcomes_of_school(session: Session, school_id: int, start: dt.date, end: dt.date) -> dict[str, int]:
    """A school's referrals submitted from ``start`` to ``end``, counted by the LA's outcome: the
    label of the latest decision (e.g. "Penalty notice issued") once one is recorded, otherwise
    where the referral stands ("Accepted", "Returned for more information", "Declined", ...).

    The decisions are the LA's rows: they are read in an explicit system context for this one
    school's referrals, and only counts leave (the school already sees each referral's status
    and the LA's note of its decision)."""
    latest = (
        select(Decision.received_id, func.max(Decision.id).label("decision_id"))
        .group_by(Decision.received_id)
        .subquery()
    )
    with tenancy.system_context(f"referrals: outcome counts of school {school_id}'s referrals"):
        rows = session.execute(
            select(ReceivedReferral.status, Decision.kind, func.count())
            .outerjoin(latest, latest.c.received_id == ReceivedReferral.id)
            .outerjoin(Decision, Decision.id == latest.c.decision_id)
            .where(
                ReceivedReferral.source_org_id == school_id,
                ReceivedReferral.submitted_on >= start,
                ReceivedReferral.submitted_on <= end,
            )
            .group_by(ReceivedReferral.status, Decision.kind)
        ).all()
    out: dict[str, int] = {}
    for status, kind, n in rows:
        label = DecisionKind(kind).label if kind is not None else _OUTCOME_LABELS[Status(status)]
        out[label] = out.get(label, 0) + int(n)
    return out


# -- the penalty-notice ledger ---------------------------------------------------------------------


def ledger(session: Session, la_id: int, parent: str, child: str) -> list[PenaltyNotice]:
    return list(
        session.scalars(
            select(PenaltyNotice)
            .where(
                PenaltyNotice.org_id == la_id,
                PenaltyNotice.parent_key == parent,
                PenaltyNotice.child_key == child,
            )
            .order_by(PenaltyNotice.issued_on, PenaltyNotice.id)
        )
    )


def _entries(notices: Iterable[PenaltyNotice]) -> list[penalty.LedgerEntry]:
    return [
        penalty.LedgerEntry(
            n.issued_on,
            n.status,
            frozenset((dt.date.fromisoformat(d), s) for d, s in n.sessions),
            str(n.school_org_id),
        )
        for n in notices
    ]


def assess_notice(
    session: Session,
    received: ReceivedReferral,
    parent: str,
    sessions: Sequence[penalty.SessionKey],
    on: dt.date,
) -> penalty.Terms | penalty.Refusal:
    return penalty.assess(
        _entries(ledger(session, received.org_id, parent, received.child_key)), on, sessions
    )


def notice_refusal(
    session: Session, received: ReceivedReferral, parent: str, on: dt.date
) -> penalty.Refusal | None:
    """The refusal if this parent already has two notices for the child that count on ``on``."""
    return penalty.refusal(_entries(ledger(session, received.org_id, parent, received.child_key)), on)


def refusal_message(refused: penalty.Refusal) -> str:
    return refused.reason + " Consider instead: " + " ".join(refused.alternatives)


def issue_notice(
    session: Session,
    received: ReceivedReferral,
    *,
    parent: dict[str, Any],
    sessions: Sequence[penalty.SessionKey],
    issued_on: dt.date,
    received_on: dt.date,
    user_id: int | None,
) -> PenaltyNotice:
    """Put a notice on the ledger for one parent (an entry of the bundle's ``parents``) and the
    referred child, or raise :class:`ReferralError` with the refusal and the other routes."""
    try:
        result = assess_notice(session, received, parent["parent_key"], sessions, issued_on)
        if isinstance(result, penalty.Refusal):
            raise ReferralError(refusal_message(result))
        clock = penalty.prosecution_clock(list(sessions), issued_on)
        result.deadlines(received_on)
    except penalty.PenaltyError as exc:
        raise ReferralError(str(exc)) from None
    if clock.expired:
        raise ReferralError(clock.warning or "the prosecution limit has passed")
    notice = PenaltyNotice(
        org_id=received.org_id,
        received_id=received.id,
        school_org_id=received.source_org_id,
        parent_key=parent["parent_key"],
        child_key=received.child_key,
        parent_name=parent["name"],
        child_name=received.pupil_name,
        sequence=result.sequence,
        issued_on=issued_on,
        received_on=received_on,
        amount=result.amount,
        early_amount=result.early_amount,
        sessions=[[d.isoformat(), s] for d, s in sorted(sessions)],
        offence_on=clock.offence_on,
        prosecution_deadline=clock.last_day,
        issued_by_user_id=user_id,
    )
    session.add(notice)
    session.flush()
    _notice_event(session, notice)
    return notice


def _terms(notice: PenaltyNotice) -> penalty.Terms:
    return penalty.Terms(notice.sequence, notice.issued_on, notice.amount, notice.early_amount)


def record_payment(
    session: Session, notice: PenaltyNotice, *, paid_on: dt.date, amount: int
) -> PenaltyNotice:
    if notice.status is not penalty.NoticeStatus.ISSUED:
        raise ReferralError(f"this notice is {notice.status.value.replace('_', ' ')}, not awaiting payment")
    try:
        notice.status = penalty.payment_status(_terms(notice), notice.received_on, paid_on, amount)
    except penalty.PenaltyError as exc:
        raise ReferralError(str(exc)) from None
    notice.paid_on = paid_on
    notice.paid_amount = amount
    session.flush()
    _notice_event(session, notice)
    return notice


WITHDRAWABLE = frozenset(
    {penalty.NoticeStatus.ISSUED, penalty.NoticeStatus.UNPAID, penalty.NoticeStatus.PROSECUTION_CONSIDERED}
)
UNPAID_NEXT_STEP = "Unpaid: prosecution to be considered or notice withdrawn"


def notice_unpaid(notice: PenaltyNotice, today: dt.date) -> bool:
    """Past its 28-day payment period without payment (flagged or not yet flagged by the job)."""
    if notice.status is penalty.NoticeStatus.UNPAID:
        return True
    return notice.status is penalty.NoticeStatus.ISSUED and penalty.overdue(
        _terms(notice), notice.received_on, today
    )


def notice_clock(notice: PenaltyNotice, today: dt.date) -> penalty.ProsecutionClock:
    """The 6-month limit for prosecuting the absence this notice was for."""
    return penalty.ProsecutionClock(
        notice.offence_on, notice.prosecution_deadline, (notice.prosecution_deadline - today).days
    )


def flag_unpaid(session: Session, today: dt.date) -> list[PenaltyNotice]:
    """Mark every issued notice past its payment period unpaid and put the next step in front of
    the LA: a webhook, and an email to the assigned officer (or the team mailbox) saying that
    prosecution must be considered or the notice withdrawn, with the prosecution limit."""
    flagged = [
        n
        for n in session.scalars(
            select(PenaltyNotice)
            .where(PenaltyNotice.status == penalty.NoticeStatus.ISSUED)
            .order_by(PenaltyNotice.org_id, PenaltyNotice.id)
        )
        if notice_unpaid(n, today)
    ]
    for notice in flagged:
        notice.status = penalty.NoticeStatus.UNPAID
        session.flush()
        _notice_event(session, notice)
        received = session.get(ReceivedReferral, notice.received_id) if notice.received_id else None
        officer = (
            session.get(User, received.assigned_user_id) if received and received.assigned_user_id else None
        )
        profile = session.scalar(select(LAProfile).where(LAProfile.org_id == notice.org_id))
        to = officer.email if officer else (profile.team_email if profile else "")
        if to:
            clock = notice_clock(notice, today)
            reference = f"referral R{notice.received_id}" if notice.received_id else "the ledger"
            notify(
                session,
                org_id=notice.org_id,
                key=f"penalty-notice-{notice.id}-unpaid",
                to=to,
                subject=f"Penalty notice unpaid ({reference}): consider prosecution or withdraw",
                body=(
                    f"Penalty notice {notice.sequence} issued {notice.issued_on.isoformat()} to "
                    f"{notice.parent_name} was not paid within {penalty.PAYMENT_DAYS} days.\n"
                    f"{UNPAID_NEXT_STEP}. Prosecution must start by {clock.last_day.isoformat()}.\n"
                ),
            )
    return flagged


def consider_prosecution(session: Session, notice: PenaltyNotice, today: dt.date) -> PenaltyNotice:
    """The LA takes the unpaid notice towards prosecution (refused once the 6-month limit passed)."""
    if not notice_unpaid(notice, today):
        raise ReferralError("only an unpaid notice, past its 28-day payment period, can go to prosecution")
    clock = notice_clock(notice, today)
    if clock.expired:
        raise ReferralError(clock.warning or "the 6-month limit for prosecution has passed")
    notice.status = penalty.NoticeStatus.PROSECUTION_CONSIDERED
    session.flush()
    _notice_event(session, notice)
    return notice


def withdraw_notice(session: Session, notice: PenaltyNotice, reason: str) -> PenaltyNotice:
    """Withdraw a notice that has not been paid; it then no longer counts towards the limit of
    two notices in three years."""
    if notice.status not in WITHDRAWABLE:
        raise ReferralError(f"this notice is {notice.status.value.replace('_', ' ')} and cannot be withdrawn")
    if not reason.strip():
        raise ReferralError(
            "say why the notice is withdrawn (issued in error, wrong recipient, material error)"
        )
    notice.status = penalty.NoticeStatus.WITHDRAWN
    notice.withdrawn_reason = reason.strip()
    session.flush()
    _notice_event(session, notice)
    return notice


# -- notifications -----------------------------------------------------------------------------------


def notify(
    session: Session, *, org_id: int, key: str, to: str, subject: str, body: str
) -> OutboxMessage | None:
    """Queue one email in the outbox (a second call with the same key does nothing) and enqueue
    the sender to run after commit. Returns the new row, or None if the key was already queued."""
    existing = session.scalar(select(OutboxMessage).where(OutboxMessage.idempotency_key == key))
    if existing is not None:
        return None
    row = OutboxMessage(org_id=org_id, idempotency_key=key, to_addr=to, subject=subject[:300], body=body)
    session.add(row)
    session.flush()
    jobs.enqueue("attendwise.referrals.jobs.send_outbox", org_id=None, queue="default", session=session)
    return row
