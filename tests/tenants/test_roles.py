"""The permission matrix in docs/permissions.md is generated from the code and cannot drift."""

from __future__ import annotations

from pathlib import Path

from attendwise.tenants.models import OrgKind
from attendwise.tenants.roles import ROLES, Perm, matrix_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"

WRITE_PERMS = {
    Perm.PUPILS_WRITE,
    Perm.CASES_WRITE,
    Perm.SIGNOFF,
    Perm.LETTERS_SEND,
    Perm.POLICY_EDIT,
    Perm.REFERRALS_SUBMIT,
    Perm.REFERRALS_SIGNOFF,
    Perm.USERS_MANAGE,
    Perm.ORG_SETTINGS,
    Perm.INTEGRATIONS_MANAGE,
}


def test_docs_permissions_md_is_what_attendwise_permissions_prints(app):
    result = app.test_cli_runner().invoke(args=["permissions"])
    assert result.exit_code == 0, result.output
    assert result.output == matrix_markdown()
    assert DOC.read_text(encoding="utf-8") == result.output, (
        "docs/permissions.md is out of date: run `attendwise permissions > docs/permissions.md`"
    )


def test_the_matrix_lists_every_role_and_every_permission():
    text = matrix_markdown()
    for role in ROLES.values():
        assert f"`{role.key}`" in text
    for perm in Perm:
        assert f"| `{perm.value}` |" in text


def test_the_issue_roles_exist_for_each_kind_of_organisation():
    by_kind = {kind: {r.key for r in ROLES.values() if r.org_kind == kind} for kind in OrgKind}
    assert by_kind[OrgKind.SCHOOL] == {
        "attendance_officer",
        "senior_attendance_champion",
        "school_staff",
        "school_admin",
    }
    assert by_kind[OrgKind.TRUST] == {"trust_leader", "trust_admin"}
    assert by_kind[OrgKind.LA] == {"la_attendance_officer", "la_admin"}
    assert by_kind[OrgKind.PLATFORM] == {"platform_admin"}


def test_school_staff_are_read_only():
    assert not ROLES["school_staff"].perms & WRITE_PERMS


def test_la_and_platform_roles_never_read_pupils_directly_and_need_mfa():
    for key in ("la_attendance_officer", "la_admin", "platform_admin"):
        role = ROLES[key]
        assert Perm.PUPILS_READ not in role.perms
        assert Perm.CASES_READ not in role.perms
        assert role.mfa_required


def test_only_senior_roles_sign_off_steps_with_legal_weight():
    signers = {r.key for r in ROLES.values() if Perm.SIGNOFF in r.perms or Perm.REFERRALS_SIGNOFF in r.perms}
    assert signers == {"senior_attendance_champion"}


def test_only_trust_roles_read_their_member_schools():
    assert {r.key for r in ROLES.values() if r.reads_member_schools} == {"trust_leader", "trust_admin"}
