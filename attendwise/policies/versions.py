"""Policy versions: which version applies on a day, and what changed between two, in plain words.

Each version of a school's policy has an effective date; a decision records the version it was
made under (``Policy.key``, e.g. ``dormston@2``). :func:`diff` lists the changes a reader would
care about, one sentence each, stage by stage.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

from attendwise.policies.document import (
    Action,
    AllOf,
    AnyOf,
    AtStage,
    Condition,
    EventSeen,
    Flag,
    Leave,
    Metric,
    NotOf,
    Policy,
    Stage,
)

_METRICS = {
    "attendance": "attendance",
    "sessions_missed": "sessions missed",
    "unauthorised_sessions": "unauthorised sessions",
    "unexplained_sessions": "unexplained (N) sessions",
    "end_of_year_attendance": "attendance at the end of last year",
    "improvement": "improvement in attendance (percentage points) since the stage began",
    "weeks_in_stage": "school weeks at the stage",
    "weeks_on_ladder": "school weeks since the first stage",
    "school_days_in_stage": "school days at the stage",
}
_WINDOWS = {
    "year_to_date": "this year",
    "half_term": "this half-term",
    "term": "this term",
    "since_stage_entry": "since the stage began",
    "since_ladder_entry": "since the first stage",
}
_FLAGS = {
    "persistent_absence": "persistently absent",
    "severe_absence": "severely absent",
    "penalty_notice_threshold": "at the penalty-notice threshold",
    "support_recorded": "support is on record",
}


def version_on(policies: Sequence[Policy], day: dt.date, pinned: int | None = None) -> Policy:
    """The version in effect on ``day`` (the earliest version before any took effect), or the
    ``pinned`` version number."""
    if pinned is not None:
        return next(p for p in policies if p.version == pinned)
    effective = [p for p in policies if p.effective_from <= day]
    return effective[-1] if effective else policies[0]


def words(cond: Condition) -> str:
    """A condition as a phrase: "sessions missed this year at least 15"."""
    if isinstance(cond, AllOf):
        return " and ".join(_group(c) for c in cond.items)
    if isinstance(cond, AnyOf):
        return " or ".join(_group(c) for c in cond.items)
    if isinstance(cond, NotOf):
        return f"not ({words(cond.item)})"
    if isinstance(cond, Flag):
        return _FLAGS[cond.name] if cond.value else f"not {_FLAGS[cond.name]}"
    if isinstance(cond, EventSeen):
        since = "the stage began" if cond.since == "stage_entry" else "the first stage"
        return f"{cond.event.replace('_', ' ')} recorded since {since}"
    if isinstance(cond, AtStage):
        return "at stage " + " or ".join(str(n) for n in cond.numbers)
    assert isinstance(cond, Metric)
    if cond.metric == "lates":
        kind = {"L": "late arrivals (L)", "U": "late arrivals after the register closed (U)"}
        name = kind.get(cond.late_kind, "late arrivals")
    else:
        name = _METRICS[cond.metric]
    window = f" {_WINDOWS[cond.cmp.window]}" if cond.cmp.window in _WINDOWS else ""
    if cond.cmp.window and cond.cmp.window.startswith("last_"):
        window = f" over the last {cond.cmp.window.split('_')[1]} school weeks"
    if cond.metric == "lates" and not cond.cmp.window:
        window = " this year"
    if cond.metric in ("sessions_missed", "unauthorised_sessions", "unexplained_sessions") and not window:
        window = " this year"
    unit = "%" if cond.metric in ("attendance", "end_of_year_attendance") else ""
    return f"{name}{window} {cond.cmp.describe(unit)}"


def _group(cond: Condition) -> str:
    text = words(cond)
    return f"({text})" if isinstance(cond, AllOf | AnyOf) else text


def _action(a: Action) -> str:
    return f"{a.kind.replace('_', ' ')} ({a.summary()})"


def entry_words(stage: Stage) -> str:
    if stage.universal:
        return "every pupil not on a higher stage"
    if stage.enter is None:
        return "only by moving from another stage"
    parts = []
    if stage.enter.from_stages:
        parts.append("from stage " + " or ".join(str(n) for n in stage.enter.from_stages))
    if stage.enter.after_weeks is not None:
        clock = "at the stage" if stage.enter.weeks_counted_from == "stage_entry" else "since the first stage"
        parts.append(f"after {stage.enter.after_weeks} school weeks {clock}")
    if stage.enter.when is not None:
        parts.append(f"when {words(stage.enter.when)}")
    return ", ".join(parts)


def _leave(rule: Leave) -> str:
    return f"to stage {rule.to} when {words(rule.when)}"


def _set_changes(label: str, before: Sequence[str], after: Sequence[str]) -> Iterator[str]:
    for item in after:
        if item not in before:
            yield f"{label}: adds {item}."
    for item in before:
        if item not in after:
            yield f"{label}: no longer {item}."


def diff(old: Policy, new: Policy) -> list[str]:
    """Plain sentences for every change from ``old`` to ``new`` (empty when they behave the same)."""
    out: list[str] = []
    if (old.id, old.version) != (new.id, new.version):
        out.append(
            f"Version {new.version} ({new.version_label or new.name}) replaces version {old.version} "
            f"({old.version_label or old.name}) from {new.effective_from.isoformat()}."
        )
    if old.name != new.name:
        out.append(f"The policy is renamed from '{old.name}' to '{new.name}'.")
    if (old.cadence, old.evaluation_day) != (new.cadence, new.evaluation_day):
        out.append(
            f"Pupils are evaluated {new.cadence} on {new.evaluation_day.title()}s "
            f"(was {old.cadence} on {old.evaluation_day.title()}s)."
        )
    if old.sign_off_role != new.sign_off_role:
        out.append(
            f"Sign-off now goes to {new.sign_off_role or 'nobody'} (was {old.sign_off_role or 'nobody'})."
        )
    if old.new_academic_year != new.new_academic_year:
        out.append(
            "Each new academic year every pupil starts afresh."
            if new.new_academic_year == "start_afresh"
            else "Pupils keep their stage into a new academic year."
        )
    old_t = {name: value for name, value, _ in old.thresholds}
    new_t = {name: value for name, value, _ in new.thresholds}
    for name in new_t.keys() - old_t.keys():
        out.append(f"New threshold {name.replace('_', ' ')}: {new_t[name]:g}.")
    for name in old_t.keys() - new_t.keys():
        out.append(f"Threshold {name.replace('_', ' ')} is removed.")
    for name in sorted(old_t.keys() & new_t.keys()):
        if old_t[name] != new_t[name]:
            out.append(f"Threshold {name.replace('_', ' ')} changes from {old_t[name]:g} to {new_t[name]:g}.")
    old_stages = {s.number: s for s in old.stages}
    new_stages = {s.number: s for s in new.stages}
    for number in sorted(old_stages.keys() | new_stages.keys()):
        before, after = old_stages.get(number), new_stages.get(number)
        if before is None and after is not None:
            out.append(f"New stage {number} ({after.name}), entered {entry_words(after)}.")
            continue
        if after is None and before is not None:
            out.append(f"Stage {number} ({before.name}) is removed.")
            continue
        assert before is not None
        assert after is not None
        out.extend(_stage_changes(before, after))
    old_rules = [f"'{r.name}' every {r.every}" for r in old.rules]
    new_rules = [f"'{r.name}' every {r.every}" for r in new.rules]
    out.extend(_set_changes("Recurring rules", old_rules, new_rules))
    return out


def _identity(action: Action) -> tuple[str, str]:
    """What makes an action the same action across versions: its kind and template or referral kind."""
    params = dict(action.params)
    return action.kind, str(params.get("template") or params.get("referral_kind") or params.get("code") or "")


def _action_changes(label: str, before: Sequence[Action], after: Sequence[Action]) -> Iterator[str]:
    """Actions added or removed, and those kept whose wording or settings changed."""
    old = {_identity(a): a for a in before}
    new = {_identity(a): a for a in after}
    for key, action in new.items():
        previous = old.get(key)
        if previous is None:
            yield f"{label}: adds {_action(action)}."
        elif previous != action:
            yield f"{label}: the {action.kind.replace('_', ' ')} now reads: {action.summary()}"
    for key, action in old.items():
        if key not in new:
            yield f"{label}: no longer {_action(action)}."


def _stage_changes(before: Stage, after: Stage) -> Iterator[str]:
    label = f"Stage {after.number} ({after.name})"
    if before.name != after.name:
        yield f"Stage {after.number} is renamed from '{before.name}' to '{after.name}'."
    if entry_words(before) != entry_words(after):
        yield f"{label} is now entered {entry_words(after)} (was {entry_words(before)})."
    if before.monitoring != after.monitoring:
        yield f"{label} is now monitored {after.monitoring} (was {before.monitoring})."
    if before.support_first != after.support_first:
        if after.support_first and before.support_first:
            yield f"{label}: the support-first gate now reads: {after.support_first}"
        elif after.support_first:
            yield f"{label} now needs support on record first: {after.support_first}"
        else:
            yield f"{label} no longer needs support on record first."
    yield from _action_changes(f"{label}, on entry", before.on_entry, after.on_entry)
    yield from _set_changes(
        f"{label}, leaving", [_leave(r) for r in before.leave], [_leave(r) for r in after.leave]
    )
    yield from _set_changes(
        f"{label}, while in the stage",
        [f"every {r.every}: " + "; ".join(_action(a) for a in r.actions) for r in before.while_in_stage],
        [f"every {r.every}: " + "; ".join(_action(a) for a in r.actions) for r in after.while_in_stage],
    )
