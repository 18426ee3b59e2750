"""Changing casework (flush, never commit): the engine's decisions and what staff record.

:class:`CaseworkSink` is the policy engine's :class:`~attendwise.policies.engine.DecisionSink`.
It buffers one evaluation's decisions and, in :meth:`CaseworkSink.finish`, writes them in a few
batched statements: applied moves open, move or close cases; entry and recurring actions become
tasks; a move with legal weight becomes one task waiting for the sign-off role; a stage behind a
support-first gate becomes a task to record support. Every decision carries the engine's key, so
publishing the same evaluation twice creates nothing the second time.

Staff events (a meeting attended or missed, review targets met or not, support accepted or
declined) are stored as :class:`CaseEvent` rows, which the next evaluation reads as its event log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from marshmallow import Schema, fields
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from attendwise.attendance.calendar import add_working_days
from attendwise.casework.models import (
    OUTCOMES_BY_CHANNEL,
    ActionPlan,
    Case,
    CaseEvent,
    CaseStatus,
    ContactChannel,
    ContactLog,
    ContactOutcome,
    Meeting,
    MeetingStatus,
    PlanReview,
    PlanStatus,
    ReviewOutcome,
    SignoffDecision,
    StageChange,
    StageSource,
    SupportRecord,
    SupportStatus,
    Task,
    TaskKind,
    TaskStatus,
    TimelineEntry,
)
from attendwise.letters.hooks import LetterDelivered
from attendwise.platform.db import utcnow
from attendwise.policies.document import Policy
from attendwise.policies.engine import ActionDecision, LadderState, TransitionDecision

LONDON = ZoneInfo("Europe/London")
DEFAULT_ROLE = "attendance_officer"
DSL_ROLE = "designated_safeguarding_lead"
ROLE_LABELS = {
    "attendance_officer": "Attendance officer",
    "senior_attendance_champion": "Senior attendance champion",
    "school_admin": "School administrator",
    DSL_ROLE: "Designated safeguarding lead",
}
# Working days from the decision to the task's due date, by kind.
DUE_WORKING_DAYS = {
    "phone_call": 0,
    "email": 1,
    "letter": 2,
    "code_guidance": 0,
    "reward": 5,
    "home_visit": 5,
    "meeting": 10,
    "action_plan": 10,
    "attendance_contract": 10,
    "early_help": 10,
    "review": 20,
    "notice_to_improve": 5,
    "referral": 5,
    "safeguarding": 0,
}
SAFE_BULK_KINDS = frozenset({TaskKind.LETTER, TaskKind.REWARD, TaskKind.CODE_GUIDANCE, TaskKind.EMAIL})
"""Kinds a user may complete in bulk ("letters posted"): nothing in them needs a record per pupil."""
CHUNK = 500


class CaseworkError(ValueError):
    """A change that was refused, with a sentence saying why."""


def task_title(kind: str, detail: str) -> str:
    head = kind.replace("_", " ").capitalize()
    return f"{head}: {detail}"[:300] if detail else head


def _due(on: dt.date, kind: str) -> dt.date:
    return add_working_days(on, DUE_WORKING_DAYS.get(kind, 2)) if DUE_WORKING_DAYS.get(kind, 2) else on


def _timeline(
    session: Session,
    case: Case | int,
    kind: str,
    title: str,
    body: str = "",
    *,
    by_user_id: int | None = None,
    obj: tuple[str, int | None] | None = None,
    corrects_id: int | None = None,
    at: dt.datetime | None = None,
) -> TimelineEntry:
    entry = TimelineEntry(
        occurred_at=at or utcnow(),
        case_id=case if isinstance(case, int) else case.id,
        kind=kind,
        title=title[:300],
        body=body,
        by_user_id=by_user_id,
        object_type=obj[0] if obj else None,
        object_id=obj[1] if obj else None,
        corrects_id=corrects_id,
    )
    session.add(entry)
    return entry


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(values), CHUNK):
        yield values[i : i + CHUNK]


def _action_task(
    action: ActionDecision, pupil_id: int, case_id: int | None, *, signed_off: bool = False
) -> Task:
    params = dict(action.params)
    return Task(
        case_id=case_id,
        pupil_id=pupil_id,
        kind=TaskKind(action.kind),
        title=task_title(action.kind, action.detail),
        detail=action.detail,
        params=params,
        stage=action.stage,
        policy_key=action.policy,
        due_on=_due(action.on, action.kind),
        assignee_role=DEFAULT_ROLE,
        idempotency_key=action.key,
        needs_signoff=action.sign_off is not None and not signed_off,
        signoff_role=action.sign_off,
        signoff_decision=SignoffDecision.APPROVED if action.sign_off and signed_off else None,
    )


def _action_payload(action: ActionDecision) -> dict[str, Any]:
    return {
        "key": action.key,
        "kind": action.kind,
        "detail": action.detail,
        "stage": action.stage,
        "policy": action.policy,
        "params": [list(p) for p in action.params],
        "sign_off": action.sign_off,
    }


def _action_from_payload(payload: dict[str, Any], on: dt.date, upn: str) -> ActionDecision:
    return ActionDecision(
        payload["key"],
        upn,
        on,
        payload["kind"],
        payload["detail"],
        payload["stage"],
        "",
        payload["policy"],
        tuple(tuple(p) for p in payload["params"]),
        payload["sign_off"],
    )


@dataclass
class CaseworkSink:
    """Decisions of one school's evaluation, written to cases and tasks by :meth:`finish`."""

    session: Session
    policy: Policy
    pupil_ids: dict[str, int]
    """UPN -> pupil id, for the pupils of the evaluation."""
    transitions: list[TransitionDecision] = field(default_factory=list)
    actions: list[ActionDecision] = field(default_factory=list)
    created_tasks: int = 0
    opened_cases: int = 0
    _new_tasks: list[tuple[Task, Case | None]] = field(default_factory=list)

    def transition(self, decision: TransitionDecision) -> None:
        self.transitions.append(decision)

    def action(self, decision: ActionDecision) -> None:
        self.actions.append(decision)

    def _existing(self) -> tuple[set[str], set[str]]:
        moves = [t.key for t in self.transitions]
        task_keys = [a.key for a in self.actions]
        for t in self.transitions:
            task_keys.extend(a.key for a in t.actions)
            task_keys.append(f"signoff:{t.key}")
            task_keys.append(f"support:{t.key}")
        seen_moves: set[str] = set()
        for chunk in _chunks(moves):
            seen_moves.update(
                k
                for k in self.session.scalars(
                    select(StageChange.decision_key).where(StageChange.decision_key.in_(chunk))
                )
                if k
            )
        seen_tasks: set[str] = set()
        for chunk in _chunks(task_keys):
            seen_tasks.update(
                k
                for k in self.session.scalars(
                    select(Task.idempotency_key).where(Task.idempotency_key.in_(chunk))
                )
                if k
            )
        return seen_moves, seen_tasks

    def finish(self, state: LadderState, counts: np.ndarray) -> None:
        """Write the buffered decisions; ``state`` is the evaluation's new ladder state and
        ``counts`` today's counts in ``SNAP_FIELDS`` order (both by the state's rows)."""
        if not self.transitions and not self.actions:
            return
        seen_moves, seen_tasks = self._existing()
        row_of = {upn: i for i, upn in enumerate(state.upns)}
        pids = {self.pupil_ids[t.upn] for t in self.transitions} | {
            self.pupil_ids[a.upn] for a in self.actions
        }
        cases: dict[int, Case] = {}
        ordered = sorted(pids)
        for i in range(0, len(ordered), CHUNK):
            chunk = ordered[i : i + CHUNK]
            for found in self.session.scalars(
                select(Case).where(Case.status == CaseStatus.OPEN, Case.pupil_id.in_(chunk))
            ):
                cases[found.pupil_id] = found
        case: Case | None
        base = self.policy.base_stage
        self._open_cases(cases, seen_moves, seen_tasks)
        for t in self.transitions:
            pupil_id = self.pupil_ids[t.upn]
            if t.status == "applied":
                if t.key in seen_moves:
                    continue
                row = row_of[t.upn]
                case = cases.get(pupil_id)
                leaving = t.to_stage in (base, 0) or self.policy.stage(t.to_stage) is None
                if leaving and case is None:
                    continue
                assert case is not None
                self._move(case, t, state, row)
                if leaving:
                    case.status = CaseStatus.CLOSED
                    case.closed_on = t.on
                    del cases[pupil_id]
                for action in t.actions:
                    if action.key not in seen_tasks:
                        self._add_task(_action_task(action, pupil_id, case.id, signed_off=False), case)
            elif t.status == "proposed":
                key = f"signoff:{t.key}"
                if key in seen_tasks:
                    continue
                case = cases[pupil_id]
                legal = next((a for a in t.actions if a.sign_off), None)
                task = Task(
                    case_id=case.id,
                    pupil_id=pupil_id,
                    kind=TaskKind(legal.kind if legal else "review"),
                    title=f"Sign off: move to stage {t.to_stage} ({t.to_name})"[:300],
                    detail=t.explanation,
                    params={},
                    stage=t.to_stage,
                    policy_key=t.policy,
                    due_on=_due(t.on, "referral"),
                    assignee_role=t.sign_off,
                    idempotency_key=key,
                    needs_signoff=True,
                    signoff_role=t.sign_off,
                    proposed_move={
                        "key": t.key,
                        "on": t.on.isoformat(),
                        "upn": t.upn,
                        "from": t.from_stage,
                        "to": t.to_stage,
                        "to_name": t.to_name,
                        "reason": t.reason,
                        "snapshot": [float(v) for v in counts[row_of[t.upn]]],
                        "attendance": float(counts[row_of[t.upn]][0] / counts[row_of[t.upn]][1] * 100)
                        if counts[row_of[t.upn]][1]
                        else None,
                        "actions": [_action_payload(a) for a in t.actions],
                        "support_first": _support_gate(self.policy, t.to_stage, None),
                    },
                )
                self._add_task(task, case)
                _timeline(
                    self.session,
                    case,
                    "proposal",
                    f"Proposed: move to stage {t.to_stage} ({t.to_name}), waiting for sign-off",
                    t.explanation,
                )
            else:
                key = f"support:{t.key}"
                if key in seen_tasks:
                    continue
                case = cases[pupil_id]
                self._add_task(
                    Task(
                        case_id=case.id,
                        pupil_id=pupil_id,
                        kind=TaskKind.EARLY_HELP,
                        title=f"Record support before stage {t.to_stage} ({t.to_name})"[:300],
                        detail=t.explanation,
                        params={},
                        stage=t.to_stage,
                        policy_key=t.policy,
                        due_on=_due(t.on, "early_help"),
                        assignee_role=DEFAULT_ROLE,
                        idempotency_key=key,
                    ),
                    case,
                )
        for a in self.actions:
            if a.key in seen_tasks:
                continue
            pupil_id = self.pupil_ids[a.upn]
            case = cases.get(pupil_id)
            self._add_task(_action_task(a, pupil_id, case.id if case else None), case)
        self.session.flush()
        for task, case in self._new_tasks:
            if case is not None:
                _timeline(self.session, case, "task", f"Task: {task.title}", obj=("task", task.id))
        self._new_tasks.clear()
        self.session.flush()

    def _open_cases(self, cases: dict[int, Case], seen_moves: set[str], seen_tasks: set[str]) -> None:
        """Open, in one flush, a case for each pupil a new decision concerns who has none open."""
        base = self.policy.base_stage
        first: dict[int, TransitionDecision] = {}
        for t in self.transitions:
            pupil_id = self.pupil_ids[t.upn]
            if pupil_id in cases or pupil_id in first:
                continue
            if t.status == "applied":
                leaving = t.to_stage in (base, 0) or self.policy.stage(t.to_stage) is None
                if t.key in seen_moves or leaving:
                    continue
            elif f"{'signoff' if t.status == 'proposed' else 'support'}:{t.key}" in seen_tasks:
                continue
            first[pupil_id] = t
        if not first:
            return
        episodes: dict[int, int] = {
            row.pupil_id: row.episode
            for row in self.session.execute(
                select(Case.pupil_id, func.max(Case.episode).label("episode"))
                .where(Case.pupil_id.in_(list(first)))
                .group_by(Case.pupil_id)
            )
        }
        opened = []
        for pupil_id, t in first.items():
            case = Case(
                pupil_id=pupil_id,
                episode=episodes.get(pupil_id, 0) + 1,
                stage=t.from_stage,
                stage_name=self.policy.stage_name(t.from_stage),
                stage_entered_on=t.on,
                ladder_entered_on=t.on,
                opened_on=t.on,
                policy_key=t.policy,
                explanation=t.explanation,
            )
            self.session.add(case)
            cases[pupil_id] = case
            opened.append(case)
        self.session.flush()
        self.opened_cases += len(opened)
        for case in opened:
            again = " after an earlier case closed" if case.episode > 1 else ""
            _timeline(self.session, case, "case_opened", f"Case opened (episode {case.episode}){again}")

    def _move(self, case: Case, t: TransitionDecision, state: LadderState, row: int) -> None:
        record_move(
            self.session,
            case,
            to_stage=t.to_stage,
            to_name=t.to_name,
            on=t.on,
            explanation=t.explanation,
            policy_key=t.policy,
            decision_key=t.key,
            source=StageSource.ENGINE,
            by_user_id=None,
            snapshot=[float(v) for v in state.snap[row]],
            ladder_entered=int(state.ladder_entered[row]),
            ladder_snapshot=[float(v) for v in state.ladder_snap[row]],
            snapshot_year=int(state.snap_year[row]),
            ladder_year=int(state.ladder_year[row]),
            attendance=float(state.attendance_at_entry[row]),
        )

    def _add_task(self, task: Task, case: Case | None) -> None:
        self.session.add(task)
        self.created_tasks += 1
        self._new_tasks.append((task, case))


def record_move(
    session: Session,
    case: Case,
    *,
    to_stage: int,
    to_name: str,
    on: dt.date,
    explanation: str,
    policy_key: str,
    decision_key: str | None,
    source: StageSource,
    by_user_id: int | None,
    snapshot: list[float],
    ladder_entered: int,
    ladder_snapshot: list[float],
    snapshot_year: int,
    ladder_year: int,
    attendance: float | None,
) -> StageChange:
    change = StageChange(
        case_id=case.id,
        from_stage=case.stage,
        from_name=case.stage_name,
        to_stage=to_stage,
        to_name=to_name,
        source=source,
        policy_key=policy_key,
        explanation=explanation,
        decision_key=decision_key,
        changed_on=on,
        by_user_id=by_user_id,
    )
    session.add(change)
    who = "by the policy" if source == StageSource.ENGINE else "on sign-off"
    _timeline(
        session,
        case,
        "stage_change",
        f"Stage {case.stage} ({case.stage_name}) to stage {to_stage} ({to_name}) {who}",
        explanation,
        by_user_id=by_user_id,
    )
    case.stage = to_stage
    case.stage_name = to_name
    case.stage_entered_on = on
    case.snapshot = snapshot
    case.snapshot_year = snapshot_year
    case.attendance_at_entry = None if attendance is None or np.isnan(attendance) else attendance
    case.explanation = explanation
    case.policy_key = policy_key
    if ladder_entered:
        case.ladder_entered_on = dt.date.fromordinal(ladder_entered)
        case.ladder_snapshot = ladder_snapshot
        case.ladder_year = ladder_year
    return change


def ladder_state(
    session: Session, upns: Sequence[str], pupil_ids: Sequence[int], base_stage: int
) -> LadderState:
    """The engine's ladder state for these pupils, rebuilt from their open cases."""
    state = LadderState.initial(upns, base_stage)
    row_of = {pid: i for i, pid in enumerate(pupil_ids)}
    rows = session.execute(
        select(
            Case.pupil_id,
            Case.stage,
            Case.stage_entered_on,
            Case.ladder_entered_on,
            Case.snapshot,
            Case.snapshot_year,
            Case.ladder_snapshot,
            Case.ladder_year,
            Case.attendance_at_entry,
        ).where(Case.status == CaseStatus.OPEN)
    )
    for pid, stage, entered, ladder, snap, snap_year, ladder_snap, ladder_year, attendance in rows:
        row = row_of.get(pid)
        if row is None:
            continue
        state.stage[row] = stage
        state.entered[row] = entered.toordinal()
        state.ladder_entered[row] = ladder.toordinal() if stage not in (0, base_stage) else 0
        if snap:
            state.snap[row] = snap
        state.snap_year[row] = snap_year
        if ladder_snap:
            state.ladder_snap[row] = ladder_snap
        state.ladder_year[row] = ladder_year
        state.attendance_at_entry[row] = np.nan if attendance is None else attendance
    return state


# --------------------------------------------------------------------------- staff actions


def _check_version(obj: Task | Meeting | ActionPlan | Case, version: int | None) -> None:
    """Refuse a change made from a page showing an older version (raises ``StaleDataError``)."""
    if version is not None and obj.version != version:
        from sqlalchemy.orm.exc import StaleDataError

        raise StaleDataError(
            f"{type(obj).__name__} {obj.id} was changed by someone else (version {obj.version}, "
            f"you had version {version})"
        )


def get_case(session: Session, case_id: int) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise LookupError(f"no case {case_id}")
    return case


def complete_task(
    session: Session, task: Task, *, by_user_id: int | None, note: str = "", version: int | None = None
) -> Task:
    _check_version(task, version)
    if task.status != TaskStatus.OPEN:
        raise CaseworkError(f"this task is already {task.status.value}")
    complete_tasks(session, [task], by_user_id=by_user_id, note=note)
    return task


def complete_tasks(session: Session, tasks: Sequence[Task], *, by_user_id: int | None, note: str) -> None:
    """Mark open tasks done in one flush, each with its line on its case's timeline."""
    waiting = [t for t in tasks if t.waiting_for_signoff]
    if waiting:
        raise CaseworkError(f"{waiting[0].title} is waiting for sign-off and cannot be completed yet")
    now = utcnow()
    for task in tasks:
        task.status = TaskStatus.DONE
        task.completed_at = now
        task.completed_by_id = by_user_id
        task.completion_note = note.strip()
    session.flush()
    for task in tasks:
        if task.case_id is not None:
            _timeline(
                session,
                task.case_id,
                "task_done",
                f"Done: {task.title}",
                task.completion_note,
                by_user_id=by_user_id,
                obj=("task", task.id),
            )
    session.flush()


def bulk_complete(session: Session, task_ids: Sequence[int], *, by_user_id: int | None, note: str) -> int:
    """Complete many tasks of kinds where that is safe (letters posted); refuses any other kind."""
    tasks = session.scalars(select(Task).where(Task.id.in_(task_ids))).all()
    if len(tasks) != len(set(task_ids)):
        raise CaseworkError("some of the chosen tasks no longer exist")
    unsafe = [t for t in tasks if t.kind not in SAFE_BULK_KINDS or t.waiting_for_signoff]
    if unsafe:
        raise CaseworkError(
            f"{len(unsafe)} of the chosen tasks must be completed one by one (for example {unsafe[0].title})"
        )
    still_open = [t for t in tasks if t.status == TaskStatus.OPEN]
    complete_tasks(session, still_open, by_user_id=by_user_id, note=note)
    return len(still_open)


def decide_signoff(
    session: Session,
    task: Task,
    *,
    approve: bool,
    reason: str,
    by_user_id: int | None,
    by_role: str | None,
    policy: Policy | None,
    on: dt.date,
    version: int | None = None,
) -> Task:
    """Approve or decline a step that needs sign-off; an approved stage move happens now."""
    _check_version(task, version)
    if not task.waiting_for_signoff:
        raise CaseworkError("this step is not waiting for sign-off")
    if task.signoff_role and by_role not in (task.signoff_role, "school_admin") and by_role is not None:
        raise CaseworkError(
            f"only the {ROLE_LABELS.get(task.signoff_role, task.signoff_role)} may sign this off"
        )
    if not approve and not reason.strip():
        raise CaseworkError("give a reason for declining")
    case = get_case(session, task.case_id) if task.case_id is not None else None
    move = task.proposed_move
    if approve and move is not None and case is not None:
        gate = _support_gate(policy, int(move["to"]), move.get("support_first"))
        if gate and not support_on_record(session, case):
            raise CaseworkError(
                f"this step cannot be approved yet: the policy allows stage {move['to']} "
                f"({move['to_name']}) only once support is on record ({gate.rstrip('.')}), and this case "
                "has no support recorded. Record the support offered (in Support), then approve."
            )
    task.signoff_decision = SignoffDecision.APPROVED if approve else SignoffDecision.DECLINED
    task.signoff_reason = reason.strip()
    task.signoff_by_id = by_user_id
    task.signoff_at = utcnow()
    if move is not None:
        task.status = TaskStatus.DONE if approve else TaskStatus.CANCELLED
        task.completed_at = utcnow()
        task.completed_by_id = by_user_id
    elif not approve:
        task.status = TaskStatus.CANCELLED
    session.flush()
    if case is None:
        return task
    word = "Approved" if approve else "Declined"
    _timeline(
        session,
        case,
        "signoff",
        f"{word}: {task.title}",
        task.signoff_reason,
        by_user_id=by_user_id,
        obj=("task", task.id),
    )
    if approve and move is not None:
        to = int(move["to"])
        name = policy.stage_name(to) if policy is not None else move["to_name"]
        snapshot = [float(v) for v in move["snapshot"]]
        starts_ladder = case.stage in (0, policy.base_stage if policy else 0)
        record_move(
            session,
            case,
            to_stage=to,
            to_name=name,
            on=on,
            explanation=f"Stage {to} since {on.day} {on:%b %Y}: {move['reason']} (signed off)",
            policy_key=task.policy_key,
            decision_key=move["key"],
            source=StageSource.PERSON,
            by_user_id=by_user_id,
            snapshot=snapshot,
            ladder_entered=on.toordinal() if starts_ladder else 0,
            ladder_snapshot=snapshot,
            snapshot_year=on.year if on.month >= 8 else on.year - 1,
            ladder_year=on.year if on.month >= 8 else on.year - 1,
            attendance=move.get("attendance"),
        )
        existing = set(
            session.scalars(
                select(Task.idempotency_key).where(
                    Task.idempotency_key.in_([a["key"] for a in move["actions"]])
                )
            )
        )
        created = [
            _action_task(
                _action_from_payload(payload, on, move["upn"]), case.pupil_id, case.id, signed_off=True
            )
            for payload in move["actions"]
            if payload["key"] not in existing
        ]
        session.add_all(created)
        session.flush()
        for new in created:
            _timeline(session, case, "task", f"Task: {new.title}", obj=("task", new.id))
    session.flush()
    return task


def _support_gate(policy: Policy | None, to_stage: int, recorded: str | None) -> str | None:
    """The support-first gate of ``to_stage`` (its wording), from the policy or as recorded."""
    stage = policy.stage(to_stage) if policy is not None else None
    return stage.support_first if stage is not None else recorded


def support_on_record(session: Session, case: Case) -> bool:
    """The engine's "support recorded" fact for this case: support offered or accepted, an
    active plan, or an answer (accepted or declined) to support offered."""
    offered = select(SupportRecord.id).where(
        SupportRecord.case_id == case.id, SupportRecord.status != SupportStatus.DECLINED
    )
    planned = select(ActionPlan.id).where(
        ActionPlan.case_id == case.id, ActionPlan.status == PlanStatus.ACTIVE
    )
    answered = select(CaseEvent.id).where(
        CaseEvent.pupil_id == case.pupil_id, CaseEvent.name.in_(("support_accepted", "support_declined"))
    )
    return any(session.scalar(query.limit(1)) is not None for query in (offered, planned, answered))


def log_contact(
    session: Session,
    case: Case,
    *,
    channel: ContactChannel,
    outcome: ContactOutcome,
    note: str,
    by_user_id: int | None,
    contact_id: int | None = None,
    occurred_at: dt.datetime | None = None,
    safeguarding: bool = False,
) -> ContactLog:
    if outcome not in OUTCOMES_BY_CHANNEL[channel]:
        allowed = ", ".join(o.value.replace("_", " ") for o in OUTCOMES_BY_CHANNEL[channel])
        raise CaseworkError(f"outcome: a {channel.value.replace('_', ' ')} can be {allowed}")
    log = ContactLog(
        case_id=case.id,
        contact_id=contact_id,
        channel=channel,
        outcome=outcome,
        note=note.strip(),
        by_user_id=by_user_id,
        occurred_at=occurred_at or utcnow(),
        safeguarding=safeguarding or outcome == ContactOutcome.CONCERNS,
    )
    session.add(log)
    session.flush()
    who = f" with {log.contact.display_name}" if log.contact is not None else ""
    _timeline(
        session,
        case,
        "contact",
        f"{channel.value.replace('_', ' ').capitalize()}{who}: {outcome.value.replace('_', ' ')}",
        log.note,
        by_user_id=by_user_id,
        obj=("contact", log.id),
    )
    if log.safeguarding:
        task = Task(
            case_id=case.id,
            pupil_id=case.pupil_id,
            kind=TaskKind.SAFEGUARDING,
            title="Safeguarding concern noticed during contact: review",
            detail=log.note,
            params={"contact_log_id": log.id},
            stage=case.stage,
            due_on=(occurred_at or utcnow()).date(),
            assignee_role=DSL_ROLE,
        )
        session.add(task)
        session.flush()
        log.dsl_task_id = task.id
        _timeline(
            session,
            case,
            "safeguarding",
            "Flagged for the designated safeguarding lead",
            by_user_id=by_user_id,
        )
        session.flush()
    return log


def record_event(session: Session, case: Case, name: str, on: dt.date) -> CaseEvent:
    ev = CaseEvent(case_id=case.id, pupil_id=case.pupil_id, name=name, occurred_on=on)
    session.add(ev)
    session.flush()
    return ev


def invite_to_meeting(
    session: Session,
    case: Case,
    *,
    starts_at: dt.datetime,
    place: str,
    invitees: Sequence[str],
    agenda: str,
    by_user_id: int | None,
) -> Meeting:
    if not place.strip():
        raise CaseworkError("place: say where the meeting is")
    if not [i for i in invitees if i.strip()]:
        raise CaseworkError("invitees: invite at least one person")
    meeting = Meeting(
        case_id=case.id,
        starts_at=starts_at,
        place=place.strip(),
        invitees=[i.strip() for i in invitees if i.strip()],
        agenda=agenda.strip(),
    )
    session.add(meeting)
    session.flush()
    _timeline(
        session,
        case,
        "meeting",
        f"Meeting invitation: {starts_at:%d %b %Y %H:%M} at {meeting.place}",
        f"Invited: {', '.join(meeting.invitees)}\n{meeting.agenda}".strip(),
        by_user_id=by_user_id,
        obj=("meeting", meeting.id),
    )
    return meeting


def record_meeting_attendance(
    session: Session,
    meeting: Meeting,
    status: MeetingStatus,
    *,
    by_user_id: int | None,
    version: int | None = None,
) -> Meeting:
    """Attended, missed or rearranged; attended and missed are events the policy reads."""
    _check_version(meeting, version)
    if status == MeetingStatus.INVITED:
        raise CaseworkError("attendance: choose attended, missed or rearranged")
    meeting.status = status
    meeting.attendance_recorded_at = utcnow()
    session.flush()
    case = get_case(session, meeting.case_id)
    if status in (MeetingStatus.ATTENDED, MeetingStatus.MISSED):
        record_event(session, case, f"meeting_{status.value}", meeting.starts_at.date())
    _timeline(
        session,
        case,
        "meeting",
        f"Meeting {status.value}",
        by_user_id=by_user_id,
        obj=("meeting", meeting.id),
    )
    return meeting


MINUTES_FIELDS = ("who_attended", "going_well", "concerns", "wellbeing_goals", "agreed_actions")


def record_minutes(
    session: Session,
    meeting: Meeting,
    minutes: dict[str, str],
    *,
    by_user_id: int | None,
    version: int | None = None,
) -> Meeting:
    _check_version(meeting, version)
    if not minutes.get("who_attended", "").strip():
        raise CaseworkError("who_attended: say who attended the meeting")
    for name in MINUTES_FIELDS:
        setattr(meeting, name, minutes.get(name, "").strip())
    meeting.minutes_recorded_at = utcnow()
    session.flush()
    case = get_case(session, meeting.case_id)
    body = "\n".join(f"{n.replace('_', ' ').capitalize()}: {getattr(meeting, n)}" for n in MINUTES_FIELDS)
    _timeline(
        session,
        case,
        "minutes",
        "Meeting minutes recorded",
        body,
        by_user_id=by_user_id,
        obj=("meeting", meeting.id),
    )
    return meeting


def create_plan(
    session: Session,
    case: Case,
    *,
    target_attendance: float,
    target_weeks: int,
    support_agreed: Sequence[str],
    owners: Sequence[str],
    starts_on: dt.date,
    review_on: dt.date,
    is_contract: bool,
    review_period_weeks: int | None,
    by_user_id: int | None,
) -> ActionPlan:
    if not 0 < target_attendance <= 100:
        raise CaseworkError("target_attendance: give a percentage between 0 and 100")
    if not 1 <= target_weeks <= 52:
        raise CaseworkError("target_weeks: give a number of weeks between 1 and 52")
    if review_on <= starts_on:
        raise CaseworkError("review_on: the review must be after the plan starts")
    if is_contract and (review_period_weeks is None or not 4 <= review_period_weeks <= 6):
        raise CaseworkError("review_period_weeks: an attendance contract is reviewed every 4 to 6 weeks")
    plan = ActionPlan(
        case_id=case.id,
        target_attendance=target_attendance,
        target_weeks=target_weeks,
        support_agreed=[s.strip() for s in support_agreed if s.strip()],
        owners=[o.strip() for o in owners if o.strip()],
        starts_on=starts_on,
        review_on=review_on,
        is_contract=is_contract,
        review_period_weeks=review_period_weeks if is_contract else None,
    )
    session.add(plan)
    session.flush()
    what = "Attendance contract" if is_contract else "Attendance action plan"
    _timeline(
        session,
        case,
        "plan",
        f"{what}: {plan.target_text}; review on {review_on:%d %b %Y}",
        f"Support: {', '.join(plan.support_agreed) or 'none'}\nOwners: {', '.join(plan.owners) or 'none'}",
        by_user_id=by_user_id,
        obj=("plan", plan.id),
    )
    return plan


def update_plan(
    session: Session,
    plan: ActionPlan,
    *,
    support_agreed: Sequence[str],
    owners: Sequence[str],
    review_on: dt.date,
    by_user_id: int | None,
    version: int | None = None,
) -> ActionPlan:
    _check_version(plan, version)
    if review_on <= plan.starts_on:
        raise CaseworkError("review_on: the review must be after the plan starts")
    plan.support_agreed = [s.strip() for s in support_agreed if s.strip()]
    plan.owners = [o.strip() for o in owners if o.strip()]
    plan.review_on = review_on
    session.flush()
    case = get_case(session, plan.case_id)
    _timeline(
        session,
        case,
        "plan",
        f"Plan updated; review on {review_on:%d %b %Y}",
        by_user_id=by_user_id,
        obj=("plan", plan.id),
    )
    return plan


def review_plan(
    session: Session,
    plan: ActionPlan,
    *,
    measured_attendance: float | None,
    outcome: ReviewOutcome,
    note: str,
    on: dt.date,
    by_user_id: int | None,
    version: int | None = None,
) -> PlanReview:
    """Record a review; whether targets were met comes from the marks, not from the reviewer."""
    _check_version(plan, version)
    met = measured_attendance is not None and measured_attendance >= plan.target_attendance
    review = PlanReview(
        plan_id=plan.id,
        reviewed_on=on,
        measured_attendance=measured_attendance,
        targets_met=met,
        outcome=outcome,
        note=note.strip(),
        by_user_id=by_user_id,
    )
    session.add(review)
    if outcome == ReviewOutcome.CLOSE:
        plan.status = PlanStatus.CLOSED
    session.flush()
    case = get_case(session, plan.case_id)
    record_event(session, case, "review_targets_met" if met else "review_targets_not_met", on)
    measured = "no marks" if measured_attendance is None else f"{measured_attendance:.1f}%"
    _timeline(
        session,
        case,
        "review",
        f"Plan review: targets {'met' if met else 'not met'} "
        f"({measured} against {plan.target_attendance:g}%); outcome {outcome.value}",
        review.note,
        by_user_id=by_user_id,
        obj=("plan", plan.id),
    )
    return review


def record_support(
    session: Session,
    case: Case,
    *,
    barriers: Sequence[str],
    support: str,
    status: SupportStatus,
    agencies: Sequence[str],
    early_help_offered: bool,
    early_help_started: bool,
    on: dt.date,
    by_user_id: int | None,
) -> SupportRecord:
    if not support.strip():
        raise CaseworkError("support: say what support was offered")
    record = SupportRecord(
        case_id=case.id,
        barriers=[b for b in barriers if b],
        support=support.strip(),
        status=status,
        agencies=[a.strip() for a in agencies if a.strip()],
        early_help_offered=early_help_offered,
        early_help_started=early_help_started,
        recorded_on=on,
        by_user_id=by_user_id,
    )
    session.add(record)
    session.flush()
    if status in (SupportStatus.ACCEPTED, SupportStatus.DECLINED):
        record_event(session, case, f"support_{status.value}", on)
    _timeline(
        session,
        case,
        "support",
        f"Support {status.value}: {record.support}",
        f"Barriers: {', '.join(record.barriers) or 'none recorded'}",
        by_user_id=by_user_id,
        obj=("support", record.id),
    )
    return record


def correct_timeline(
    session: Session, case: Case, entry_id: int, text: str, *, by_user_id: int | None
) -> TimelineEntry:
    """A correction: a new entry pointing at the one it corrects (entries are never edited)."""
    old = session.get(TimelineEntry, entry_id)
    if old is None or old.case_id != case.id:
        raise CaseworkError("that timeline entry is not on this case")
    if not text.strip():
        raise CaseworkError("correction: say what was wrong")
    return _timeline(
        session,
        case,
        "correction",
        f"Correction to: {old.title}",
        text.strip(),
        by_user_id=by_user_id,
        corrects_id=old.id,
    )


def assign_lead(session: Session, case: Case, user_id: int | None, *, version: int | None = None) -> Case:
    _check_version(case, version)
    case.lead_user_id = user_id
    session.flush()
    return case


# --------------------------------------------------------------------------- letters


def record_letter_delivered(session: Session, event: LetterDelivered) -> None:
    """A letter about a pupil went out (emailed, or posted with a certificate): log it on the
    case's contact log and timeline, once per letter however often the notice comes.

    Subscribed to :func:`attendwise.letters.hooks.on_delivered`, so it runs in the transaction
    that marks the letter sent or posted. A letter queued without a case goes on the pupil's
    open case, if there is one."""
    case = None
    if event.case_id is not None:
        case = session.scalars(select(Case).where(Case.id == event.case_id)).first()
    if case is None:
        case = session.scalars(
            select(Case).where(Case.pupil_id == event.pupil_id, Case.status == CaseStatus.OPEN)
        ).first()
    if case is None or case.pupil_id != event.pupil_id or case.org_id != event.org_id:
        return
    if session.scalar(select(ContactLog.id).where(ContactLog.letter_id == event.letter_id)) is not None:
        return
    how = "by email" if event.channel == "email" else "by post"
    log = ContactLog(
        case_id=case.id,
        contact_id=event.recipient_contact_id,
        channel=ContactChannel.LETTER,
        outcome=ContactOutcome.SENT,
        note=f"Letter {event.template_key} sent {how} to {event.recipient_name}",
        occurred_at=event.at,
        letter_id=event.letter_id,
    )
    session.add(log)
    session.flush()
    _timeline(
        session,
        case,
        "letter",
        f"Letter sent {how} to {event.recipient_name}: {event.template_key}",
        obj=("contact", log.id),
        at=event.at,
    )
    session.flush()
    _complete_letter_task(session, case, event, how)


def _complete_letter_task(session: Session, case: Case, event: LetterDelivered, how: str) -> None:
    """The case's open letter task that asked for this letter (its ``template`` param) is done,
    the one due first, with a completion note naming the letter, as "letters posted" would.

    A letter that goes to each parent separately completes one task, not one per copy: a copy
    of the same letter already logged on the case that day means its task is already done."""
    day = event.at.replace(hour=0, minute=0, second=0, microsecond=0)
    copy_logged = select(ContactLog.id).where(
        ContactLog.case_id == case.id,
        ContactLog.channel == ContactChannel.LETTER,
        ContactLog.letter_id != event.letter_id,
        ContactLog.note.startswith(f"Letter {event.template_key} sent ", autoescape=True),
        ContactLog.occurred_at >= day,
        ContactLog.occurred_at < day + dt.timedelta(days=1),
    )
    if session.scalar(copy_logged.limit(1)) is not None:
        return
    open_letters = session.scalars(
        select(Task)
        .where(Task.case_id == case.id, Task.kind == TaskKind.LETTER, Task.status == TaskStatus.OPEN)
        .order_by(Task.due_on, Task.id)
    )
    task = next(
        (
            t
            for t in open_letters
            if (t.params or {}).get("template") == event.template_key and not t.waiting_for_signoff
        ),
        None,
    )
    if task is None:
        return
    note = f"Letter {event.template_key} (letter {event.letter_id}) sent {how} to {event.recipient_name}"
    complete_tasks(session, [task], by_user_id=None, note=note)


MINUTES_LETTER = "casework-meeting-minutes"
"""The letter key of a parent's copy of meeting minutes (a casework template, see views.register)."""


def send_minutes_copy(
    session: Session, meeting: Meeting, *, by_user_id: int | None, on: dt.date
) -> list[int]:
    """Send each contact with parental responsibility a copy of the minutes, by email where
    they have an address and by post otherwise; returns the letter ids. Sending the same
    minutes again sends nothing new (the letters are keyed on the meeting and its version)."""
    from attendwise.attendance.models import PupilContact
    from attendwise.letters import services as letters

    if meeting.minutes_recorded_at is None:
        raise CaseworkError("record the minutes before sending parents a copy")
    case = get_case(session, meeting.case_id)
    parents = session.scalars(
        select(PupilContact)
        .where(PupilContact.pupil_id == case.pupil_id, PupilContact.parental_responsibility.is_(True))
        .order_by(PupilContact.priority, PupilContact.id)
    ).all()
    if not parents:
        raise CaseworkError("the pupil has no contact with parental responsibility to send the minutes to")
    version = f"Minutes version {meeting.version}"
    already = select(TimelineEntry.id).where(
        TimelineEntry.case_id == case.id,
        TimelineEntry.kind == "minutes_copy",
        TimelineEntry.object_id == meeting.id,
        TimelineEntry.body == version,
    )
    if session.scalar(already.limit(1)) is not None:
        raise CaseworkError("the parents have already been sent a copy of these minutes")
    extra = {
        "meeting": {
            "date": f"{meeting.starts_at.day} {meeting.starts_at:%B %Y}",
            "time": f"{meeting.starts_at:%H:%M}",
            "place": meeting.place,
            "with_whom": ", ".join(meeting.invitees),
        },
        "minutes": {name: getattr(meeting, name) for name in MINUTES_FIELDS},
    }
    ids: list[int] = []
    sent_to = []
    try:
        for link in parents:
            channel = "email" if link.contact.emails else "post"
            ids += letters.queue_letter(
                session,
                case.org_id,
                case.pupil_id,
                MINUTES_LETTER,
                extra,
                [link.contact_id],
                case_id=case.id,
                channel=channel,
                idempotency_key=f"minutes:{meeting.id}:v{meeting.version}",
                on=on,
            )
            sent_to.append(f"{link.contact.display_name} ({'email' if channel == 'email' else 'post'})")
    except letters.LetterError as exc:
        raise CaseworkError(f"the copy of the minutes cannot be sent: {exc}") from exc
    _timeline(
        session,
        case,
        "minutes_copy",
        f"Copy of the minutes of {meeting.starts_at:%d %b %Y} sent to {', '.join(sent_to)}",
        version,
        by_user_id=by_user_id,
        obj=("meeting", meeting.id),
    )
    session.flush()
    return ids


# --------------------------------------------------------------------------- court bundle

TIMELINE_PDF_TEMPLATE = Path(__file__).parent / "templates" / "casework" / "pdf" / "timeline.html"


class TimelineEntryPdfSchema(Schema):
    number = fields.Integer(required=True)
    when = fields.String(required=True)
    kind = fields.String(required=True)
    title = fields.String(required=True)
    body = fields.String(required=True)
    by = fields.String(required=True)
    corrects = fields.Integer(allow_none=True)


class TimelinePdfSchema(Schema):
    """The plain context of the case-timeline PDF (the template never sees ORM objects)."""

    school = fields.String(required=True)
    pupil = fields.String(required=True)
    upn = fields.String(required=True)
    date_of_birth = fields.String(required=True)
    episode = fields.Integer(required=True)
    status = fields.String(required=True)
    stage = fields.String(required=True)
    opened_on = fields.String(required=True)
    closed_on = fields.String(allow_none=True)
    generated_at = fields.String(required=True)
    generated_by = fields.String(required=True)
    entries = fields.List(fields.Nested(TimelineEntryPdfSchema), required=True)


def _uk_time(moment: dt.datetime) -> str:
    local = moment.astimezone(LONDON) if moment.tzinfo else moment.replace(tzinfo=dt.UTC).astimezone(LONDON)
    return f"{local.day} {local:%b %Y %H:%M}"


def timeline_pdf_context(
    session: Session, case: Case, *, school: str, by_user_id: int | None, at: dt.datetime
) -> dict[str, Any]:
    from attendwise.casework import case_view

    entries = case_view.whole_timeline(session, case.id)
    names = case_view.people(session, [e.by_user_id for e in entries] + [by_user_id])
    number = {entry.id: i for i, entry in enumerate(entries, start=1)}
    pupil = case.pupil
    raw = {
        "school": school,
        "pupil": f"{pupil.legal_forename} {pupil.legal_surname}",
        "upn": pupil.upn,
        "date_of_birth": f"{pupil.date_of_birth.day} {pupil.date_of_birth:%B %Y}",
        "episode": case.episode,
        "status": case.status.value,
        "stage": f"Stage {case.stage}: {case.stage_name}",
        "opened_on": f"{case.opened_on.day} {case.opened_on:%B %Y}",
        "closed_on": f"{case.closed_on.day} {case.closed_on:%B %Y}" if case.closed_on else None,
        "generated_at": _uk_time(at),
        "generated_by": names.get(by_user_id or 0, "Attendwise"),
        "entries": [
            {
                "number": number[e.id],
                "when": _uk_time(e.occurred_at),
                "kind": e.kind.replace("_", " "),
                "title": e.title,
                "body": e.body,
                "by": names.get(e.by_user_id, "Attendwise") if e.by_user_id else "Attendwise",
                "corrects": number.get(e.corrects_id) if e.corrects_id else None,
            }
            for e in entries
        ],
    }
    schema = TimelinePdfSchema()
    errors = schema.validate(raw)
    if errors:
        raise CaseworkError(f"the timeline cannot be exported: {errors}")
    plain: dict[str, Any] = schema.dump(raw)
    return plain


def export_timeline_pdf(
    session: Session, case: Case, *, school: str, by_user_id: int | None
) -> tuple[bytes, int]:
    """The case's whole timeline as a PDF for a court bundle, rendered by the letters package's
    sandboxed renderer, stored as a document and audited; returns (PDF, document id)."""
    from attendwise.letters import render
    from attendwise.letters import services as letters
    from attendwise.platform import audit

    merge = timeline_pdf_context(session, case, school=school, by_user_id=by_user_id, at=utcnow())
    try:
        html = render.render_html(TIMELINE_PDF_TEMPLATE.read_text(encoding="utf-8"), merge)
        pdf = render.render_pdf(html)
    except (render.LetterTemplateError, render.RenderError) as exc:
        raise CaseworkError(f"the timeline PDF could not be made: {exc}") from exc
    document = letters.store_document(
        session,
        case.org_id,
        pdf,
        html,
        kind="case_timeline",
        title=f"Case timeline, episode {case.episode}: {merge['pupil']}",
        pupil_id=case.pupil_id,
    )
    audit.record(
        session,
        org_id=case.org_id,
        action="case.timeline_pdf",
        object_type="case",
        object_id=case.id,
        pupil_id=case.pupil_id,
        detail={"document_id": document.id, "entries": len(merge["entries"])},
    )
    return pdf, document.id


@dataclass(frozen=True, slots=True)
class LetterTaskDue:
    """An open letter task as a bulk letter run needs it (plain values, no ORM objects)."""

    task_id: int
    pupil_id: int
    case_id: int | None
    template_key: str | None
    due_on: dt.date
    title: str
    pupil_name: str


def letter_tasks_due(session: Session, week_end: dt.date) -> list[LetterTaskDue]:
    """Read-only: the current school's open letter tasks due by ``week_end`` (overdue ones
    included), leaving out steps still waiting for sign-off; oldest first, one query."""
    from attendwise.attendance.models import Pupil

    forename = func.coalesce(Pupil.preferred_forename, Pupil.legal_forename)
    surname = func.coalesce(Pupil.preferred_surname, Pupil.legal_surname)
    rows = session.execute(
        select(Task.id, Task.pupil_id, Task.case_id, Task.params, Task.due_on, Task.title, forename, surname)
        .join(Pupil, Pupil.id == Task.pupil_id)
        .where(
            Task.kind == TaskKind.LETTER,
            Task.status == TaskStatus.OPEN,
            Task.due_on <= week_end,
            ~(Task.needs_signoff.is_(True) & Task.signoff_decision.is_(None)),
        )
        .order_by(Task.due_on, Task.id)
    )
    return [
        LetterTaskDue(
            task_id,
            pupil_id,
            case_id,
            (params or {}).get("template"),
            due_on,
            title,
            f"{first} {last}",
        )
        for task_id, pupil_id, case_id, params, due_on, title, first, last in rows
    ]
