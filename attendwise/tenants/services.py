"""State-changing functions for organisations, users and memberships (they flush, never commit)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.platform.passwords import hash_password
from attendwise.tenants.models import Identity, Membership, Organisation, OrgKind, User
from attendwise.tenants.roles import role


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
            f"role {definition.label!r} is for a {definition.org_kind.value}, but {org.name} is a {org.kind.value}"
        )
    membership = Membership(user_id=user.id, org_id=org.id, role=role_key)
    session.add(membership)
    session.flush()
    return membership
