"""Roles and the permission matrix.

This module is the single source of the matrix: ``docs/permissions.md`` is generated from
it (``attendwise permissions``) and a test fails when the two differ.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from attendwise.tenants.models import OrgKind


class Perm(enum.StrEnum):
    PUPILS_READ = "pupils:read"
    PUPILS_WRITE = "pupils:write"
    SIBLINGS_HEADLINE = "siblings:headline"
    CASES_READ = "cases:read"
    CASES_WRITE = "cases:write"
    SIGNOFF = "cases:signoff"
    LETTERS_SEND = "letters:send"
    POLICY_READ = "policy:read"
    POLICY_EDIT = "policy:edit"
    REFERRALS_SUBMIT = "referrals:submit"
    REFERRALS_SIGNOFF = "referrals:signoff"
    REFERRALS_TRIAGE = "referrals:triage"
    REFERRALS_READ = "referrals:read"
    INSIGHTS_READ = "insights:read"
    INTEGRATIONS_MANAGE = "integrations:manage"
    USERS_MANAGE = "users:manage"
    AUDIT_READ = "audit:read"
    ORG_SETTINGS = "org:settings"
    API_TOKENS = "api:tokens"
    PLATFORM_ADMIN = "platform:admin"


@dataclass(frozen=True)
class RoleDef:
    key: str
    label: str
    org_kind: OrgKind
    perms: frozenset[Perm]
    reads_member_schools: bool = False  # trust roles read their schools' data
    mfa_required: bool = False
    description: str = ""


_SCHOOL_READ = {Perm.PUPILS_READ, Perm.CASES_READ, Perm.POLICY_READ}
_SCHOOL_WORK = _SCHOOL_READ | {
    Perm.PUPILS_WRITE,
    Perm.SIBLINGS_HEADLINE,
    Perm.CASES_WRITE,
    Perm.LETTERS_SEND,
    Perm.REFERRALS_SUBMIT,
    Perm.API_TOKENS,
}

ROLES: dict[str, RoleDef] = {
    r.key: r
    for r in (
        RoleDef(
            "attendance_officer",
            "Attendance officer",
            OrgKind.SCHOOL,
            frozenset(_SCHOOL_WORK),
            description="Runs the school's attendance casework day to day.",
        ),
        RoleDef(
            "senior_attendance_champion",
            "Senior attendance champion",
            OrgKind.SCHOOL,
            frozenset(
                _SCHOOL_WORK | {Perm.SIGNOFF, Perm.REFERRALS_SIGNOFF, Perm.POLICY_EDIT, Perm.INSIGHTS_READ}
            ),
            description="Senior leader accountable for attendance; signs off steps with legal weight.",
        ),
        RoleDef(
            "school_staff",
            "Staff (read only)",
            OrgKind.SCHOOL,
            frozenset(_SCHOOL_READ),
            description="Teachers and pastoral staff who need to see attendance, not change it.",
        ),
        RoleDef(
            "school_admin",
            "School administrator",
            OrgKind.SCHOOL,
            frozenset(
                _SCHOOL_WORK
                | {
                    Perm.POLICY_EDIT,
                    Perm.USERS_MANAGE,
                    Perm.AUDIT_READ,
                    Perm.ORG_SETTINGS,
                    Perm.INTEGRATIONS_MANAGE,
                    Perm.INSIGHTS_READ,
                }
            ),
            description="Manages the school's users, settings, policy and MIS connection.",
        ),
        RoleDef(
            "trust_leader",
            "Trust leader",
            OrgKind.TRUST,
            frozenset({Perm.INSIGHTS_READ, Perm.POLICY_READ}),
            reads_member_schools=True,
            description="Compares the trust's schools; reads aggregate figures.",
        ),
        RoleDef(
            "trust_admin",
            "Trust administrator",
            OrgKind.TRUST,
            frozenset(
                {Perm.INSIGHTS_READ, Perm.POLICY_READ, Perm.USERS_MANAGE, Perm.AUDIT_READ, Perm.API_TOKENS}
            ),
            reads_member_schools=True,
            description="Manages the trust's users.",
        ),
        RoleDef(
            "la_attendance_officer",
            "LA attendance officer",
            OrgKind.LA,
            frozenset({Perm.REFERRALS_TRIAGE, Perm.REFERRALS_READ, Perm.INSIGHTS_READ, Perm.API_TOKENS}),
            mfa_required=True,
            description="Triages referrals from the LA's schools; sees only what schools refer.",
        ),
        RoleDef(
            "la_admin",
            "LA administrator",
            OrgKind.LA,
            frozenset(
                {
                    Perm.REFERRALS_TRIAGE,
                    Perm.REFERRALS_READ,
                    Perm.INSIGHTS_READ,
                    Perm.USERS_MANAGE,
                    Perm.AUDIT_READ,
                    Perm.ORG_SETTINGS,
                }
                | {Perm.API_TOKENS}
            ),
            mfa_required=True,
            description="Manages the LA's officers, referral kinds and code of conduct.",
        ),
        RoleDef(
            "platform_admin",
            "Platform administrator",
            OrgKind.PLATFORM,
            frozenset({Perm.PLATFORM_ADMIN, Perm.USERS_MANAGE, Perm.AUDIT_READ}),
            mfa_required=True,
            description="Creates LAs and trusts and imports schools; never reads pupil data.",
        ),
    )
}


def role(key: str) -> RoleDef:
    try:
        return ROLES[key]
    except KeyError:
        raise ValueError(f"unknown role {key!r}") from None


def roles_for(kind: OrgKind) -> list[RoleDef]:
    return [r for r in ROLES.values() if r.org_kind == kind]


def has_perm(role_key: str, perm: Perm) -> bool:
    return perm in role(role_key).perms


def matrix_markdown() -> str:
    roles = list(ROLES.values())
    lines = [
        "# Permission matrix",
        "",
        "Generated from `attendwise/tenants/roles.py` by `attendwise permissions > docs/permissions.md`;",
        "`tests/tenants/test_roles.py` fails when this file and the code disagree.",
        "",
        "Every permission applies inside the user's current organisation only. Trust roles also read",
        "their member schools' data (aggregate figures). LA roles never read a school's pupils except",
        "through referrals the school has sent.",
        "",
        "| permission | " + " | ".join(f"{r.label} ({r.org_kind.value})" for r in roles) + " |",
        "|---|" + "---|" * len(roles),
    ]
    for perm in Perm:
        cells = ["yes" if perm in r.perms else "" for r in roles]
        lines.append(f"| `{perm.value}` | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| role | organisation | reads member schools | MFA required | what it is for |",
        "|---|---|---|---|---|",
    ]
    for r in roles:
        lines.append(
            f"| {r.label} (`{r.key}`) | {r.org_kind.value} | {'yes' if r.reads_member_schools else 'no'} | "
            f"{'yes' if r.mfa_required else 'if the organisation requires it'} | {r.description} |"
        )
    return "\n".join(lines) + "\n"
