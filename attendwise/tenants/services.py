"""State-changing functions for organisations, users and memberships (they flush, never commit)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from attendwise.platform import audit
from attendwise.platform.db import utcnow
from attendwise.platform.passwords import hash_password
from attendwise.platform.sessions import revoke_user_sessions
from attendwise.tenants import gias
from attendwise.tenants.models import Identity, Invitation, Membership, Organisation, OrgKind, User
from attendwise.tenants.roles import ROLES, Perm, role

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class OnboardingError(ValueError):
    pass


def create_organisation(
    session: Session,
    *,
    kind: OrgKind,
    name: str,
    la_code: str | None = None,
    urn: str | None = None,
    laestab: str | None = None,
    phase: str | None = None,
    la: Organisation | None = None,
    trust: Organisation | None = None,
    mfa_required: bool = False,
) -> Organisation:
    if kind == OrgKind.LA and not (la_code and la_code.isdigit() and len(la_code) == 3):
        raise OnboardingError(f"local authority {name!r}: LA code must be three digits, got {la_code!r}")
    if kind == OrgKind.SCHOOL and not (urn and urn.isdigit() and 6 <= len(urn) <= 7):
        raise OnboardingError(f"school {name!r}: URN must be 6 or 7 digits, got {urn!r}")
    if kind == OrgKind.SCHOOL and la is None:
        raise OnboardingError(f"school {name!r}: a school belongs to a local authority")
    org = Organisation(
        kind=kind,
        name=name,
        la_code=la_code,
        urn=urn,
        laestab=laestab,
        phase=phase,
        la_id=la.id if la else None,
        trust_id=trust.id if trust else None,
        mfa_required=mfa_required or kind == OrgKind.LA,
    )
    session.add(org)
    session.flush()
    return org


def platform_organisation(session: Session) -> Organisation:
    org = session.scalar(select(Organisation).where(Organisation.kind == OrgKind.PLATFORM))
    if org is None:
        org = Organisation(kind=OrgKind.PLATFORM, name="Attendwise platform", mfa_required=True)
        session.add(org)
        session.flush()
    return org


def create_user(session: Session, *, email: str, display_name: str, password: str | None = None) -> User:
    email = email.strip().lower()
    if "@" not in email:
        raise OnboardingError(f"{email!r} is not an email address")
    if session.scalar(select(User).where(User.email == email)) is not None:
        raise OnboardingError(f"a user with email {email} already exists")
    user = User(
        email=email, display_name=display_name, password_hash=hash_password(password) if password else None
    )
    session.add(user)
    session.flush()
    session.add(Identity(user_id=user.id, issuer=Identity.LOCAL_ISSUER, subject=str(user.id)))
    return user


def add_membership(session: Session, *, user: User, org: Organisation, role_key: str) -> Membership:
    definition = role(role_key)
    if definition.org_kind != org.kind:
        raise OnboardingError(
            f"role {definition.label!r} is for a {definition.org_kind.value}, "
            f"but {org.name} is a {org.kind.value}"
        )
    membership = Membership(user_id=user.id, org_id=org.id, role=role_key)
    session.add(membership)
    session.flush()
    return membership


# ---- onboarding: local authorities, trusts and schools (platform administrators) ----------


def onboard_local_authority(session: Session, *, name: str, la_code: str) -> Organisation:
    """Create a local authority (by its DfE LA code, e.g. 835 Dorset); audited under it."""
    name, la_code = name.strip(), la_code.strip()
    if not name:
        raise OnboardingError("Enter the local authority's name")
    existing = session.scalar(select(Organisation).where(Organisation.la_code == la_code))
    if existing is not None:
        raise OnboardingError(f"LA code {la_code} is already used by {existing.name}")
    org = create_organisation(session, kind=OrgKind.LA, name=name, la_code=la_code)
    audit.record(
        session,
        org_id=org.id,
        action="organisation.create",
        object_type="organisations",
        object_id=org.id,
        detail={"name": name, "la_code": la_code},
    )
    return org


def onboard_trust(session: Session, *, name: str) -> Organisation:
    """Create a multi-academy trust; names are unique so school imports can name it."""
    name = name.strip()
    if not name:
        raise OnboardingError("Enter the trust's name")
    if _trust_named(session, name) is not None:
        raise OnboardingError(f"a trust called {name} already exists")
    org = create_organisation(session, kind=OrgKind.TRUST, name=name)
    audit.record(
        session,
        org_id=org.id,
        action="organisation.create",
        object_type="organisations",
        object_id=org.id,
        detail={"name": name},
    )
    return org


def _trust_named(session: Session, name: str) -> Organisation | None:
    return session.scalar(
        select(Organisation).where(
            Organisation.kind == OrgKind.TRUST, func.lower(Organisation.name) == name.strip().lower()
        )
    )


@dataclass
class SchoolImport:
    """What an import did, or (with ``problems``) why it wrote nothing."""

    created: list[Organisation] = field(default_factory=list)
    skipped: list[gias.RowProblem] = field(default_factory=list)
    problems: list[gias.RowProblem] = field(default_factory=list)


def import_schools(session: Session, data: bytes, *, platform_org: Organisation) -> SchoolImport:
    """Import schools from a GIAS CSV, all or nothing.

    Every row is checked first (format, then that its LA and trust exist); if any row has a
    problem, nothing is written and every problem is returned. Schools already on Attendwise
    (same URN) and closed establishments are skipped and listed, so the same file can be
    imported again safely. Each new school is audited under itself, and the import as a
    whole under the platform organisation.
    """
    parsed = gias.parse(data)
    report = SchoolImport(skipped=list(parsed.skipped), problems=list(parsed.problems))
    las = {o.la_code: o for o in session.scalars(select(Organisation).where(Organisation.kind == OrgKind.LA))}
    trusts = {
        o.name.lower(): o
        for o in session.scalars(select(Organisation).where(Organisation.kind == OrgKind.TRUST))
    }
    urns = [s.urn for s in parsed.schools]
    existing = {
        o.urn: o
        for o in session.scalars(select(Organisation).where(Organisation.urn.in_(urns))).all()
        if o.urn is not None
    }
    to_create = []
    for school in parsed.schools:
        if school.urn in existing:
            report.skipped.append(
                gias.RowProblem(
                    school.row,
                    None,
                    f"URN {school.urn} is already on Attendwise ({existing[school.urn].name})",
                )
            )
            continue
        ok = True
        if school.la_code not in las:
            report.problems.append(
                gias.RowProblem(
                    school.row,
                    gias.GIAS_HEADER["la_code"],
                    f"no local authority with code {school.la_code}: create it first",
                )
            )
            ok = False
        if school.trust and school.trust.lower() not in trusts:
            report.problems.append(
                gias.RowProblem(
                    school.row,
                    gias.GIAS_HEADER["trust"],
                    f"no trust called {school.trust!r}: create it first",
                )
            )
            ok = False
        if ok:
            to_create.append(school)
    if report.problems:
        report.problems.sort(key=lambda p: p.row or 0)
        return report
    for school in to_create:
        org = create_organisation(
            session,
            kind=OrgKind.SCHOOL,
            name=school.name,
            urn=school.urn,
            laestab=school.laestab,
            phase=school.phase,
            la=las[school.la_code],
            trust=trusts[school.trust.lower()] if school.trust else None,
        )
        audit.record(
            session,
            org_id=org.id,
            action="organisation.create",
            object_type="organisations",
            object_id=org.id,
            detail={"name": org.name, "urn": org.urn, "laestab": org.laestab, "source": "GIAS import"},
        )
        report.created.append(org)
    audit.record(
        session,
        org_id=platform_org.id,
        action="schools.import",
        object_type="organisations",
        object_id=None,
        detail={"created": len(report.created), "skipped": len(report.skipped)},
    )
    return report


# ---- people: invitations, roles, deactivation (organisation administrators) ----------------

INVITATION_DAYS = 7


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    token: str  # the only copy: it goes into the email and is never stored


def invite(
    session: Session, *, org: Organisation, email: str, role_key: str, invited_by: User | None
) -> IssuedInvitation:
    """Create a one-time invitation (stored hashed) to join ``org`` with ``role_key``.

    A newer invitation to the same address for the same organisation replaces any
    outstanding one. Someone who is already an active member cannot be invited again.
    """
    email = email.strip().lower()
    if not EMAIL.fullmatch(email):
        raise OnboardingError(f"{email or 'that'} is not an email address, like name@school.org.uk")
    definition = role(role_key)
    if definition.org_kind != org.kind:
        raise OnboardingError(f"{definition.label} is not a role in a {org.kind.value}")
    member = session.scalar(
        select(Membership)
        .join(User, User.id == Membership.user_id)
        .where(Membership.org_id == org.id, User.email == email, Membership.active.is_(True))
    )
    if member is not None:
        raise OnboardingError(f"{email} is already a member of {org.name}")
    now = utcnow()
    for old in session.scalars(
        select(Invitation).where(
            Invitation.org_id == org.id,
            Invitation.email == email,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
    ):
        old.revoked_at = now
    raw = secrets.token_urlsafe(32)
    invitation = Invitation(
        org_id=org.id,
        email=email,
        role=role_key,
        token_hash=token_hash(raw),
        expires_at=now + dt.timedelta(days=INVITATION_DAYS),
        invited_by_id=invited_by.id if invited_by else None,
    )
    session.add(invitation)
    session.flush()
    return IssuedInvitation(invitation, raw)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def find_invitation(session: Session, raw: str) -> Invitation | None:
    """The open invitation for a token, or None if unknown, used, revoked or expired."""
    invitation = session.scalar(select(Invitation).where(Invitation.token_hash == token_hash(raw)))
    if invitation is None or invitation.accepted_at is not None or invitation.revoked_at is not None:
        return None
    if _aware(invitation.expires_at) <= utcnow():
        return None
    return invitation


def accept_invitation(session: Session, invitation: Invitation, user: User) -> Membership:
    """Give ``user`` the invited role (reactivating a past membership) and spend the token."""
    if user.email != invitation.email:
        raise OnboardingError(f"this invitation is for {invitation.email}, not {user.email}")
    org = session.get(Organisation, invitation.org_id)
    assert org is not None
    membership = session.scalar(
        select(Membership).where(Membership.user_id == user.id, Membership.org_id == org.id)
    )
    if membership is None:
        membership = add_membership(session, user=user, org=org, role_key=invitation.role)
    else:
        membership.role = invitation.role
        membership.active = True
    invitation.accepted_at = utcnow()
    session.flush()
    audit.record(
        session,
        org_id=org.id,
        action="membership.create",
        object_type="memberships",
        object_id=membership.id,
        detail={
            "user_id": user.id,
            "email": user.email,
            "role": membership.role,
            "invitation_id": invitation.id,
        },
    )
    return membership


def _manages_users(role_key: str) -> bool:
    return Perm.USERS_MANAGE in role(role_key).perms


def _managers_left(session: Session, org_id: int, without: int) -> int:
    managers = [key for key in ROLES if _manages_users(key)]
    return len(
        session.scalars(
            select(Membership.id).where(
                Membership.org_id == org_id,
                Membership.active.is_(True),
                Membership.role.in_(managers),
                Membership.id != without,
            )
        ).all()
    )


def change_role(session: Session, membership: Membership, role_key: str) -> None:
    """Give a member another role of their organisation's kind; someone must still manage users."""
    org = membership.organisation
    definition = role(role_key)
    if definition.org_kind != org.kind:
        raise OnboardingError(f"{definition.label} is not a role in a {org.kind.value}")
    if membership.role == role_key:
        return
    losing_admin = (
        Perm.USERS_MANAGE in role(membership.role).perms and Perm.USERS_MANAGE not in definition.perms
    )
    if membership.active and losing_admin and _managers_left(session, org.id, membership.id) == 0:
        raise OnboardingError(f"{org.name} needs at least one other person who can manage users first")
    before = membership.role
    membership.role = role_key
    session.flush()
    audit.record(
        session,
        org_id=org.id,
        action="membership.role_change",
        object_type="memberships",
        object_id=membership.id,
        detail={"user_id": membership.user_id, "from": before, "to": role_key},
    )


def deactivate_membership(session: Session, membership: Membership) -> bool:
    """End a member's access to this organisation. If it was their last active membership,
    every session of theirs ends too (returns True then)."""
    if not membership.active:
        return False
    org = membership.organisation
    if (
        Perm.USERS_MANAGE in role(membership.role).perms
        and _managers_left(session, org.id, membership.id) == 0
    ):
        raise OnboardingError(f"{org.name} needs at least one other person who can manage users first")
    membership.active = False
    session.flush()
    others = session.scalars(
        select(Membership.id).where(
            Membership.user_id == membership.user_id,
            Membership.active.is_(True),
            Membership.id != membership.id,
        )
    ).all()
    signed_out = not others
    if signed_out:
        revoke_user_sessions(membership.user_id)
    audit.record(
        session,
        org_id=org.id,
        action="membership.deactivate",
        object_type="memberships",
        object_id=membership.id,
        detail={"user_id": membership.user_id, "sessions_ended": signed_out},
    )
    return signed_out


def reactivate_membership(session: Session, membership: Membership) -> None:
    if membership.active:
        return
    membership.active = True
    session.flush()
    audit.record(
        session,
        org_id=membership.org_id,
        action="membership.reactivate",
        object_type="memberships",
        object_id=membership.id,
        detail={"user_id": membership.user_id, "role": membership.role},
    )


def revoke_invitation(session: Session, invitation: Invitation) -> None:
    """Withdraw an invitation so its link stops working (audited as an update of the row)."""
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = utcnow()
        session.flush()
