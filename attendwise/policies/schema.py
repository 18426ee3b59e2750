"""The published JSON Schema (draft 2020-12) of an Attendwise policy document.

``attendwise policy schema`` prints it so editors can validate as staff type. The schema checks
shape; :mod:`attendwise.policies.document` adds the checks that need the whole document (stage
references, thresholds, sign-off roles, the legal limits of a notice to improve).

Keys starting ``x-`` are annotations that the validator uses to word its errors
(``x-expect``: what a pattern-checked value should look like).
"""

from __future__ import annotations

import json
from typing import Any

SCHEMA_ID = "https://attendwise.example/schemas/policy-1.json"
FORMAT = "attendwise-policy/1"

ACTION_KINDS = (
    "phone_call",
    "letter",
    "email",
    "meeting",
    "home_visit",
    "action_plan",
    "review",
    "attendance_contract",
    "early_help",
    "notice_to_improve",
    "referral",
    "code_guidance",
    "reward",
)
REFERRAL_KINDS = (
    "notice_to_improve",
    "court_warning",
    "penalty_notice",
    "attendance_review_conference",
    "early_help",
    "ess",
    "access_and_inclusion",
    "la_notification",
)
LEGAL_WEIGHT_KINDS = frozenset({"notice_to_improve", "referral"})
"""Action kinds that always need a person's sign-off: notices to improve and referrals to the LA."""

EVENTS = (
    "meeting_attended",
    "meeting_missed",
    "review_targets_met",
    "review_targets_not_met",
    "support_accepted",
    "support_declined",
    "slt_decision",
)
WINDOWS = ("year_to_date", "term", "half_term", "since_stage_entry", "since_ladder_entry")
WINDOW_PATTERN = (
    r"^(year_to_date|term|half_term|since_stage_entry|since_ladder_entry"
    r"|last_([1-9]|[1-4][0-9]|5[0-2])_weeks)$"
)
EVERY = (
    "day",
    "week",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "half_term",
    "term",
    "end_of_year",
)
CADENCES = ("weekly", "daily")
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
WEEKS_PATTERN = r"^\s*[0-9]{1,3}\s*(-\s*[0-9]{1,3}|\+)?\s*$"

_TEXT = {"type": "string", "minLength": 1, "maxLength": 2000}
_SHORT = {"type": "string", "minLength": 1, "maxLength": 200}
_STAGE_NUMBER = {"type": "integer", "minimum": 0, "maximum": 99}
_THRESHOLD_REF = {
    "type": "string",
    "pattern": NAME_PATTERN,
    "x-expect": "a number or the name of a declared threshold",
}
_VALUE = {"anyOf": [{"type": "number"}, _THRESHOLD_REF]}
_WINDOW = {
    "type": "string",
    "pattern": WINDOW_PATTERN,
    "x-expect": "a window: " + ", ".join(WINDOWS) + " or last_N_weeks (N from 1 to 52)",
}
_WEEKS = {
    "anyOf": [
        {"type": "integer", "minimum": 0, "maximum": 520},
        {"type": "string", "pattern": WEEKS_PATTERN, "x-expect": "a range like 5-8"},
    ],
    "description": "School weeks: a range like 5-8, a single number, or 12+ for 12 or more.",
    "x-expect": "a range like 5-8",
}


def _comparison(window: bool = True, percent: bool = False) -> dict[str, Any]:
    props: dict[str, Any] = dict.fromkeys(("below", "at_most", "at_least", "above"), _VALUE)
    if window:
        props["window"] = _WINDOW
    return {
        "type": "object",
        "properties": props,
        "additionalProperties": False,
        "minProperties": 1,
        "x-percent": percent,
    }


def _lates() -> dict[str, Any]:
    schema = _comparison()
    schema["properties"] = {**schema["properties"], "kind": {"enum": ["L", "U", "any"]}}
    return schema


CONDITION_KEYS = (
    "all",
    "any",
    "not",
    "attendance",
    "sessions_missed",
    "unauthorised_sessions",
    "unexplained_sessions",
    "lates",
    "persistent_absence",
    "severe_absence",
    "penalty_notice_threshold",
    "end_of_year_attendance",
    "improvement",
    "weeks_in_stage",
    "weeks_on_ladder",
    "school_days_in_stage",
    "event",
    "at_stage",
    "support_recorded",
)

_EVENT = {
    "anyOf": [
        {"enum": list(EVENTS)},
        {
            "type": "object",
            "properties": {
                "name": {"enum": list(EVENTS)},
                "since": {"enum": ["stage_entry", "ladder_entry"]},
            },
            "required": ["name"],
            "additionalProperties": False,
        },
    ],
    "x-expect": "an event: " + ", ".join(EVENTS),
}

CONDITION: dict[str, Any] = {
    "type": "object",
    "minProperties": 1,
    "maxProperties": 1,
    "propertyNames": {"enum": list(CONDITION_KEYS)},
    "properties": {
        "all": {"type": "array", "items": {"$ref": "#/$defs/condition"}, "minItems": 1, "maxItems": 50},
        "any": {"type": "array", "items": {"$ref": "#/$defs/condition"}, "minItems": 1, "maxItems": 50},
        "not": {"$ref": "#/$defs/condition"},
        "attendance": _comparison(percent=True),
        "sessions_missed": _comparison(),
        "unauthorised_sessions": _comparison(),
        "unexplained_sessions": _comparison(),
        "lates": _lates(),
        "persistent_absence": {"type": "boolean"},
        "severe_absence": {"type": "boolean"},
        "penalty_notice_threshold": {"type": "boolean"},
        "end_of_year_attendance": _comparison(window=False, percent=True),
        "improvement": _comparison(window=False),
        "weeks_in_stage": _comparison(window=False),
        "weeks_on_ladder": _comparison(window=False),
        "school_days_in_stage": _comparison(window=False),
        "event": _EVENT,
        "at_stage": {
            "anyOf": [_STAGE_NUMBER, {"type": "array", "items": _STAGE_NUMBER, "minItems": 1}],
            "x-expect": "a stage number or a list of stage numbers",
        },
        "support_recorded": {"type": "boolean"},
    },
}

_ROLE = {
    "type": "string",
    "pattern": NAME_PATTERN,
    "x-expect": "a role key such as senior_attendance_champion",
}

_ACTION_FIELDS: dict[str, Any] = {
    "kind": {"enum": list(ACTION_KINDS)},
    "detail": _TEXT,
    "by": _SHORT,
    "to": {"anyOf": [_SHORT, {"type": "array", "items": _SHORT, "minItems": 1}]},
    "template": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_.-]{0,79}$", "x-expect": "a template key"},
    "channel": {"enum": ["post", "email", "text", "arbor_mail", "hand", "telephone", "in_person"]},
    "enclosures": {"type": "array", "items": _SHORT},
    "invitees": {"type": "array", "items": _SHORT, "minItems": 1},
    "lead": _SHORT,
    "format": {"enum": ["in_person", "telephone", "video"]},
    "agenda": {"type": "array", "items": _SHORT},
    "targets": {"type": "array", "items": _SHORT, "minItems": 1},
    "review_after_weeks": _WEEKS,
    "review_after_school_days": {"type": "integer", "minimum": 1, "maximum": 200},
    "review_after_working_days": {"type": "integer", "minimum": 1, "maximum": 200},
    "improvement_period_school_days": {"type": "integer", "minimum": 1, "maximum": 200},
    "copy_to": {"type": "array", "items": _SHORT},
    "referral_kind": {"enum": list(REFERRAL_KINDS)},
    "evidence": {"type": "array", "items": _SHORT},
    "code": {"type": "string", "pattern": r"^[A-Z][0-9]?$", "x-expect": "an attendance code such as O"},
    "sign_off": _ROLE,
}


def _requires(kind: str, *fields: str) -> dict[str, Any]:
    return {"if": {"properties": {"kind": {"const": kind}}}, "then": {"required": list(fields)}}


ACTION: dict[str, Any] = {
    "type": "object",
    "properties": _ACTION_FIELDS,
    "required": ["kind", "detail"],
    "additionalProperties": False,
    "allOf": [
        _requires("letter", "template"),
        _requires("meeting", "invitees"),
        _requires("referral", "referral_kind"),
        _requires("code_guidance", "code"),
    ],
}

_ACTIONS = {"type": "array", "items": {"$ref": "#/$defs/action"}, "maxItems": 50}

STAGE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "number": _STAGE_NUMBER,
        "name": _SHORT,
        "description": _TEXT,
        "universal": {"type": "boolean"},
        "enter": {
            "type": "object",
            "properties": {
                "from": {"type": "array", "items": _STAGE_NUMBER, "minItems": 1},
                "when": {"$ref": "#/$defs/condition"},
                "after_weeks": _WEEKS,
                "weeks_counted_from": {"enum": ["stage_entry", "ladder_entry"]},
                "reason": _TEXT,
            },
            "additionalProperties": False,
            "minProperties": 1,
        },
        "support_first": {
            "type": "object",
            "properties": {"detail": _TEXT},
            "required": ["detail"],
            "additionalProperties": False,
        },
        "sign_off": _ROLE,
        "monitoring": {"enum": list(CADENCES)},
        "on_entry": _ACTIONS,
        "while_in_stage": {"type": "array", "items": {"$ref": "#/$defs/recurring"}, "maxItems": 20},
        "leave": {
            "type": "array",
            "maxItems": 20,
            "items": {
                "type": "object",
                "properties": {
                    "to": _STAGE_NUMBER,
                    "when": {"$ref": "#/$defs/condition"},
                    "reason": _TEXT,
                    "actions": _ACTIONS,
                },
                "required": ["to", "when", "reason"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["number", "name"],
    "additionalProperties": False,
}

RECURRING: dict[str, Any] = {
    "type": "object",
    "properties": {
        "every": {"enum": list(EVERY)},
        "when": {"$ref": "#/$defs/condition"},
        "actions": {**_ACTIONS, "minItems": 1},
        "name": _SHORT,
    },
    "required": ["every", "actions"],
    "additionalProperties": False,
}

POLICY_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "Attendwise attendance escalation policy",
    "type": "object",
    "properties": {
        "format": {"const": FORMAT},
        "id": {
            "type": "string",
            "pattern": r"^[a-z0-9][a-z0-9-]{0,62}$",
            "x-expect": "a short key like dothill",
        },
        "name": _SHORT,
        "school": _SHORT,
        "source": _TEXT,
        "version": {
            "type": "object",
            "properties": {
                "number": {"type": "integer", "minimum": 1, "maximum": 9999},
                "effective_from": {
                    "type": "string",
                    "format": "date",
                    "pattern": r"^\d{4}-\d{2}-\d{2}$",
                    "x-expect": "a date like 2024-09-02",
                },
                "label": _SHORT,
                "notes": _TEXT,
            },
            "required": ["number", "effective_from"],
            "additionalProperties": False,
        },
        "evaluation": {
            "type": "object",
            "properties": {
                "cadence": {"enum": list(CADENCES)},
                "day": {"enum": ["monday", "tuesday", "wednesday", "thursday", "friday"]},
                "new_academic_year": {"enum": ["carry_on", "start_afresh"]},
            },
            "required": ["cadence"],
            "additionalProperties": False,
        },
        "sign_off": {
            "type": "object",
            "properties": {"role": _ROLE, "detail": _TEXT},
            "required": ["role"],
            "additionalProperties": False,
        },
        "thresholds": {
            "type": "object",
            "propertyNames": {"pattern": NAME_PATTERN},
            "maxProperties": 50,
            "additionalProperties": {
                "type": "object",
                "properties": {"value": {"type": "number"}, "meaning": _TEXT},
                "required": ["value", "meaning"],
                "additionalProperties": False,
            },
        },
        "stages": {"type": "array", "items": {"$ref": "#/$defs/stage"}, "minItems": 1, "maxItems": 30},
        "rules": {"type": "array", "items": {"$ref": "#/$defs/recurring"}, "maxItems": 30},
    },
    "required": ["format", "id", "name", "version", "evaluation", "stages"],
    "additionalProperties": False,
    "$defs": {"condition": CONDITION, "action": ACTION, "stage": STAGE, "recurring": RECURRING},
}


def schema_json() -> str:
    return json.dumps(POLICY_SCHEMA, indent=2, sort_keys=False)
