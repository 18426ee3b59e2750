"""Hypothesis fuzzing of the validator: it never crashes, and every rejection is located and worded."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attendwise.policies import document, simulate
from attendwise.policies.schema import ACTION_KINDS, CONDITION_KEYS, EVENTS

KEYS = [
    "format",
    "id",
    "name",
    "version",
    "number",
    "effective_from",
    "evaluation",
    "cadence",
    "stages",
    "enter",
    "when",
    "after_weeks",
    "from",
    "on_entry",
    "leave",
    "to",
    "reason",
    "kind",
    "detail",
    "template",
    "referral_kind",
    "sign_off",
    "role",
    "thresholds",
    "value",
    "meaning",
    "rules",
    "every",
    "actions",
    "window",
    "below",
    "at_least",
    "universal",
    *CONDITION_KEYS,
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 120),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        ["5-8", "12+", "soon", "weekly", "friday", "2025-09-01", "2025-02-30", *ACTION_KINDS, *EVENTS]
    ),
    st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=5),
    ),
    max_leaves=30,
)
PRESETS = [yaml.safe_load(simulate.preset_text(name).split("\n---\n")[0]) for name in simulate.preset_names()]


def check(text: str) -> None:
    result = document.parse(text)
    for error in result.errors:
        assert error.line >= 1
        assert error.column >= 1
        assert len(error.message) > 10
        assert any(c.isalpha() for c in error.message)
    if not result.errors:
        assert result.policies


def mutate(tree: Any, path: list[int], value: Any) -> Any:
    """Replace the node reached by following ``path`` (indices modulo each container's size)."""
    if not path or not isinstance(tree, dict | list) or not tree:
        return value
    if isinstance(tree, dict):
        key = list(tree)[path[0] % len(tree)]
        return {**tree, key: mutate(tree[key], path[1:], value)}
    i = path[0] % len(tree)
    return [*tree[:i], mutate(tree[i], path[1:], value), *tree[i + 1 :]]


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.text(max_size=300))
def test_any_text_is_answered_with_located_errors(text: str) -> None:
    check(text)


@FUZZ
@given(VALUES)
def test_any_yaml_structure(value: Any) -> None:
    check(yaml.safe_dump(value, allow_unicode=True))


@FUZZ
@given(st.sampled_from(PRESETS), st.lists(st.integers(0, 50), min_size=1, max_size=8), VALUES)
def test_presets_with_one_part_replaced(preset: dict[str, Any], path: list[int], value: Any) -> None:
    check(yaml.safe_dump(mutate(preset, path, value), allow_unicode=True, sort_keys=False))
