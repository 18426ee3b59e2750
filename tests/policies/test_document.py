"""Policy documents: every error at once, located and in a plain sentence; unsafe YAML refused."""

from __future__ import annotations

import pytest

from attendwise.policies import document, simulate
from attendwise.policies.schema import POLICY_SCHEMA

MINIMAL = """\
format: attendwise-policy/1
id: test-school
name: Test policy
version: {number: 1, effective_from: 2025-09-01}
evaluation: {cadence: weekly}
stages:
  - number: 1
    name: Concern
    enter:
      when: {attendance: {below: 95}}
    on_entry:
      - {kind: phone_call, detail: Call home.}
  - number: 2
    name: Plan
    enter:
      from: [1]
      after_weeks: 4-6
      when: {improvement: {below: 1}}
    on_entry:
      - {kind: action_plan, detail: Plan with targets.}
"""


def errors(text: str) -> list[str]:
    return [str(e) for e in document.parse(text).errors]


@pytest.mark.parametrize("name", simulate.preset_names())
def test_every_preset_is_valid(name: str) -> None:
    assert document.parse(simulate.preset_text(name)).errors == []


def test_a_valid_document_compiles() -> None:
    (policy,) = document.load(MINIMAL)
    assert [s.number for s in policy.stages] == [1, 2]
    assert policy.base_stage == 0
    assert str(policy.stages[1].enter.after_weeks) == "4-6"


def test_after_weeks_error_names_stage_line_and_column() -> None:
    text = MINIMAL.replace("after_weeks: 4-6", "after_weeks: soon")
    assert errors(text) == ["line 17, column 20: stage 2: `after_weeks` must be a range like 5-8, got 'soon'"]


def test_every_error_is_reported_at_once() -> None:
    text = (
        MINIMAL.replace("cadence: weekly", "cadence: fortnightly")
        .replace("attendance: {below: 95}", "attendence: {below: 95}")
        .replace("{kind: action_plan, detail: Plan with targets.}", "{kind: letter, detail: A letter.}")
        .replace("from: [1]", "from: [7]")
    )
    found = errors(text)
    assert len(found) == 5, found
    assert any("`cadence` must be one of weekly, daily; got 'fortnightly'" in e for e in found)
    assert any(
        "stage 1: `attendence` is not a known condition (did you mean `attendance`?)" in e for e in found
    )
    assert any("stage 2, on-entry action 1: a letter action needs `template`" in e for e in found)
    assert any(
        "stage 2: `from` names stage 7, which the policy does not have (stages: 1, 2)" in e for e in found
    )
    assert any("`from` may only list lower stages (escalation); 7 is not below 2" in e for e in found)
    assert all(e.startswith("line ") for e in found)


def test_legal_steps_must_name_who_signs_them_off() -> None:
    text = MINIMAL.replace(
        "{kind: action_plan, detail: Plan with targets.}",
        "{kind: referral, referral_kind: penalty_notice, detail: Ask the LA for a penalty notice.}",
    )
    (error,) = errors(text)
    assert "a referral has legal weight and needs a person's sign-off" in error
    assert error.startswith("line 20, column 9: stage 2, on-entry action 1")
    signed = text.replace(
        "evaluation: {cadence: weekly}", "evaluation: {cadence: weekly}\nsign_off: {role: school_staff}"
    )
    assert any("sign-off role 'school_staff' cannot sign off steps" in e for e in errors(signed))


def test_notice_to_improve_period_must_be_three_to_six_weeks() -> None:
    text = MINIMAL.replace(
        "{kind: action_plan, detail: Plan with targets.}",
        "{kind: notice_to_improve, improvement_period_school_days: 10, sign_off: senior_attendance_champion,"
        " detail: NTI.}",
    )
    (error,) = errors(text)
    assert "3 to 6 weeks (15 to 30 school days)" in error


def test_thresholds_are_declared_before_use() -> None:
    text = MINIMAL.replace("{improvement: {below: 1}}", "{improvement: {below: little}}")
    (error,) = errors(text)
    assert "names threshold 'little', which is not declared under `thresholds`" in error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: &x [1]\nb: *x\n", "line 1, column 4: anchors (&name) are not allowed"),
        ("a: !!python/object/apply:os.system ['ls']\n", "YAML tags"),
        ("a: !custom 1\n", "YAML tags (!custom) are not allowed"),
        ("a: [\n", "this is not valid YAML"),
        ("", "the document is empty"),
        ("- a\n- b\n", "a policy document must be a mapping"),
        ("format: x\nformat: y\n", "`format` appears twice"),
        ("a: " + "[" * 40 + "]" * 40 + "\n", "nested more than 32 levels deep"),
    ],
)
def test_unsafe_or_broken_yaml_is_refused(text: str, expected: str) -> None:
    found = errors(text)
    assert any(expected in e for e in found), found


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    found = errors("\n".join(lines))
    assert found == ["line 1, column 5: anchors (&name) are not allowed in a policy document"]


def test_huge_documents_are_refused_before_parsing() -> None:
    text = "# " + "x" * (document.MAX_BYTES + 10)
    assert errors(text) == ["line 1, column 1: the document is larger than 256 KiB"]


def test_versions_in_one_file_must_follow_each_other() -> None:
    second = MINIMAL.replace("number: 1, effective_from: 2025-09-01", "number: 1, effective_from: 2024-09-01")
    found = errors(MINIMAL + "---\n" + second)
    assert any("version 1 must be numbered above the previous version 1" in e for e in found)
    assert any("must take effect after version 1" in e for e in found)


def test_schema_is_draft_2020_12() -> None:
    assert POLICY_SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "after_weeks" in POLICY_SCHEMA["$defs"]["stage"]["properties"]["enter"]["properties"]
