"""Reading a policy document: safe YAML with positions, every error at once, then typed objects.

A policy file holds one YAML document per version of the same policy (``---`` between them).
Parsing is defensive because documents are typed by school staff and pasted from anywhere:

* only plain YAML: tags (``!!python/object``, ``!foo``), anchors and aliases are refused, so
  alias bombs cannot expand; the text, the number of nodes and the nesting depth are capped and
  the reader stops at the first breach;
* every node keeps its line and column, so each error names where it is;
* the JSON Schema (:mod:`attendwise.policies.schema`) and the whole-document checks run to the
  end and report everything they find, each as one plain sentence.

The result is a list of :class:`Policy` objects (one per version), frozen dataclasses the
engine evaluates.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from attendwise.policies import schema

MAX_BYTES = 256 * 1024
MAX_NODES = 20_000
MAX_DEPTH = 32
MAX_DOCUMENTS = 20

Path = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class PolicyError:
    """One problem in a document: where it is (1-based line and column) and what is wrong."""

    line: int
    column: int
    message: str
    document: int = 1

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "message": self.message}


class PolicyInvalid(ValueError):
    def __init__(self, errors: Sequence[PolicyError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


# --------------------------------------------------------------------------- safe YAML


class _Refused(Exception):
    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message = message
        self.line = (mark.line + 1) if mark is not None else 1
        self.column = (mark.column + 1) if mark is not None else 1


class _GuardedLoader(yaml.SafeLoader):
    """PyYAML's pure-Python safe composer with limits, refusing tags, anchors and aliases."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nodes = 0
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused("aliases (*name) are not allowed in a policy document", event.start_mark)
        if getattr(event, "anchor", None) is not None:
            raise _Refused("anchors (&name) are not allowed in a policy document", event.start_mark)
        tag = getattr(event, "tag", None)
        if tag is not None:
            raise _Refused(f"YAML tags ({tag}) are not allowed in a policy document", event.start_mark)
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _Refused(f"the document has more than {MAX_NODES} values", event.start_mark)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f"the document is nested more than {MAX_DEPTH} levels deep", event.start_mark)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_SCALARS = yaml.constructor.SafeConstructor()


@dataclass
class _Located:
    """A document as plain JSON-like values, with the position of every value and key."""

    value: Any
    text: str = ""
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    errors: list[PolicyError] = field(default_factory=list)

    def where(self, path: Path, key: bool = False) -> tuple[int, int]:
        table = self.keys if key and path in self.keys else self.values
        p = path
        while p not in table and p:
            p = p[:-1]
        return table.get(p, (1, 1))


def _pos(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _plain(node: yaml.Node, path: Path, out: _Located) -> Any:
    out.values[path] = _pos(node)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line, col = _pos(key_node)
                out.errors.append(PolicyError(line, col, "keys must be plain words, not lists or mappings"))
                continue
            key = str(key_node.value)
            if key in result:
                line, col = _pos(key_node)
                out.errors.append(PolicyError(line, col, f"`{key}` appears twice in the same mapping"))
                continue
            out.keys[(*path, key)] = _pos(key_node)
            result[key] = _plain(value_node, (*path, key), out)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, (*path, i), out) for i, item in enumerate(node.value)]
    try:
        value = _SCALARS.construct_object(node)
    except (yaml.YAMLError, ValueError, OverflowError):
        return str(node.value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(node.value)
    if isinstance(value, bytes):
        return str(node.value)
    return value


def _reader_error(text: str, exc: yaml.reader.ReaderError) -> PolicyError:
    before = text[: max(exc.position, 0)]
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    return PolicyError(
        line, column, f"the character U+{exc.character:04X} is not allowed in a policy document"
    )


def read_yaml(text: str) -> tuple[list[_Located], list[PolicyError]]:
    """Compose ``text`` safely; returns the documents, or the one error that stopped reading."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        return [], [PolicyError(1, 1, f"the document is larger than {MAX_BYTES // 1024} KiB")]
    try:
        loader = _GuardedLoader(text)
    except yaml.reader.ReaderError as exc:
        return [], [_reader_error(text, exc)]
    documents: list[_Located] = []
    start = 0
    try:
        while loader.check_node():
            if len(documents) >= MAX_DOCUMENTS:
                return [], [PolicyError(1, 1, f"a policy file may hold at most {MAX_DOCUMENTS} versions")]
            node = loader.get_node()
            end = node.end_mark.index if node is not None else len(text)
            located = _Located(None, text=re.sub(r"^\s*---[ \t]*\n", "", text[start:end]).strip("\n") + "\n")
            start = end
            located.value = _plain(node, (), located) if node is not None else None
            documents.append(located)
    except _Refused as exc:
        return [], [PolicyError(exc.line, exc.column, exc.message)]
    except yaml.reader.ReaderError as exc:
        return [], [_reader_error(text, exc)]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = exc.problem or exc.context or "the text is not valid YAML"
        return [], [PolicyError(line, col, f"this is not valid YAML: {problem}")]
    except yaml.YAMLError as exc:
        return [], [PolicyError(1, 1, f"this is not valid YAML: {exc}")]
    finally:
        loader.dispose()
    if not documents:
        return [], [PolicyError(1, 1, "the document is empty")]
    return documents, []


# --------------------------------------------------------------------------- compiled policy


@dataclass(frozen=True)
class Comparison:
    """Bounds on a number; ``labels`` keeps the threshold names used, for explanations."""

    below: float | None = None
    at_most: float | None = None
    at_least: float | None = None
    above: float | None = None
    window: str | None = None
    labels: tuple[tuple[str, str], ...] = ()

    def describe(self, unit: str = "") -> str:
        names = dict(self.labels)
        parts = []
        for word, value in (
            ("below", self.below),
            ("at most", self.at_most),
            ("at least", self.at_least),
            ("above", self.above),
        ):
            if value is not None:
                text = f"{_num(value)}{unit}"
                name = names.get(word.replace(" ", "_"))
                parts.append(f"{word} {text}" + (f" ({name.replace('_', ' ')})" if name else ""))
        return " and ".join(parts)


def _num(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Metric:
    """A comparison on one metric (attendance, sessions_missed, lates, improvement, ...)."""

    metric: str
    cmp: Comparison
    late_kind: str = "any"


@dataclass(frozen=True)
class Flag:
    name: str
    value: bool


@dataclass(frozen=True)
class EventSeen:
    event: str
    since: str = "stage_entry"


@dataclass(frozen=True)
class AtStage:
    numbers: tuple[int, ...]


@dataclass(frozen=True)
class AllOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class NotOf:
    item: Condition


Condition = Metric | Flag | EventSeen | AtStage | AllOf | AnyOf | NotOf


@dataclass(frozen=True)
class WeekRange:
    low: int
    high: int | None

    def __str__(self) -> str:
        if self.high is None:
            return f"{self.low}+"
        return f"{self.low}" if self.high == self.low else f"{self.low}-{self.high}"


@dataclass(frozen=True)
class Action:
    kind: str
    detail: str
    params: tuple[tuple[str, Any], ...] = ()
    sign_off: str | None = None

    def param(self, name: str, default: Any = None) -> Any:
        return dict(self.params).get(name, default)

    @property
    def needs_sign_off(self) -> bool:
        return self.sign_off is not None

    def summary(self) -> str:
        """The action in one line, naming what identifies it (template, referral kind, period)."""
        params = dict(self.params)
        head = ""
        if self.kind == "referral":
            head = f"{params['referral_kind']}: "
        elif self.kind == "letter":
            head = f"letter {params['template']}: "
        elif self.kind == "notice_to_improve" and "improvement_period_school_days" in params:
            head = f"{params['improvement_period_school_days']} school days to improve: "
        elif self.kind == "code_guidance":
            head = f"code {params['code']}: "
        return head + self.detail


@dataclass(frozen=True)
class Recurring:
    every: str
    actions: tuple[Action, ...]
    when: Condition | None = None
    name: str = ""


@dataclass(frozen=True)
class Leave:
    to: int
    when: Condition
    reason: str
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True)
class Enter:
    from_stages: tuple[int, ...] | None
    when: Condition | None
    after_weeks: WeekRange | None
    weeks_counted_from: str
    reason: str = ""


@dataclass(frozen=True)
class Stage:
    number: int
    name: str
    description: str = ""
    universal: bool = False
    enter: Enter | None = None
    support_first: str | None = None
    sign_off: str | None = None
    monitoring: str = "weekly"
    on_entry: tuple[Action, ...] = ()
    while_in_stage: tuple[Recurring, ...] = ()
    leave: tuple[Leave, ...] = ()

    @property
    def label(self) -> str:
        return f"stage {self.number} ({self.name})"


@dataclass(frozen=True)
class Policy:
    """One version of a school's policy, compiled."""

    id: str
    name: str
    version: int
    effective_from: dt.date
    cadence: str
    stages: tuple[Stage, ...]
    evaluation_day: str = "friday"
    new_academic_year: str = "carry_on"
    school: str = ""
    source: str = ""
    version_label: str = ""
    version_notes: str = ""
    sign_off_role: str | None = None
    thresholds: tuple[tuple[str, float, str], ...] = ()
    rules: tuple[Recurring, ...] = ()
    text: str = field(default="", compare=False, repr=False)

    def stage(self, number: int) -> Stage | None:
        for stage in self.stages:
            if stage.number == number:
                return stage
        return None

    @property
    def base_stage(self) -> int:
        """Where a pupil stands before any trigger: the universal stage, or 0 (no stage)."""
        for stage in self.stages:
            if stage.universal:
                return stage.number
        return 0

    def stage_name(self, number: int) -> str:
        stage = self.stage(number)
        return stage.name if stage is not None else "Not on a stage"

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"


# --------------------------------------------------------------------------- messages


_VALIDATOR = Draft202012Validator(schema.POLICY_SCHEMA)
_TYPE_WORDS = {
    "object": "a mapping (key: value lines)",
    "array": "a list",
    "string": "text",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
}


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return repr(shown)
    return repr(value)


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


class _Messages:
    """Turns schema errors into located plain sentences, naming the stage or rule they are in."""

    def __init__(self, located: _Located, document: int) -> None:
        self.doc = located
        self.document = document

    def context(self, path: Path) -> str:
        root = self.doc.value if isinstance(self.doc.value, dict) else {}
        parts: list[str] = []
        if len(path) >= 2 and path[0] == "stages" and isinstance(path[1], int):
            stages = root.get("stages")
            number = None
            if isinstance(stages, list) and path[1] < len(stages) and isinstance(stages[path[1]], dict):
                number = stages[path[1]].get("number")
            if isinstance(number, int) and not isinstance(number, bool):
                parts.append(f"stage {number}")
            else:
                parts.append(f"stage entry {path[1] + 1} in the list")
            rest = path[2:]
        elif len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
            parts.append(f"rule {path[1] + 1}")
            rest = path[2:]
        elif len(path) >= 2 and path[0] == "thresholds":
            parts.append(f"threshold `{path[1]}`")
            rest = path[2:]
        elif path and isinstance(path[0], str):
            if len(path) > 1:
                parts.append(f"`{path[0]}`")
            rest = path[1:]
        else:
            rest = path
        for i, step in enumerate(rest[:-1]):
            nxt = rest[i + 1]
            if isinstance(step, str) and isinstance(nxt, int) and step in ("on_entry", "actions"):
                parts.append(f"{step.replace('_', '-')} action {nxt + 1}")
            elif isinstance(step, str) and isinstance(nxt, int) and step == "leave":
                parts.append(f"leave rule {nxt + 1}")
            elif isinstance(step, str) and isinstance(nxt, int) and step == "while_in_stage":
                parts.append(f"recurring item {nxt + 1}")
        return ", ".join(parts)

    def field(self, path: Path) -> str:
        for step in reversed(path):
            if isinstance(step, str):
                return step
        return "value"

    def error(self, path: Path, sentence: str, key: bool = False) -> PolicyError:
        line, col = self.doc.where(path, key=key)
        ctx = self.context(path)
        return PolicyError(line, col, f"{ctx}: {sentence}" if ctx else sentence[:1].upper() + sentence[1:])

    def from_schema(self, err: ValidationError) -> Iterator[PolicyError]:
        path: Path = tuple(err.absolute_path)
        name = self.field(path)
        kw: Any = err.validator
        vv: Any = err.validator_value
        sch = err.schema if isinstance(err.schema, dict) else {}
        expect = sch.get("x-expect")
        inst: Any = err.instance
        if kw == "required" and isinstance(inst, dict):
            missing = [k for k in vv if k not in inst]
            in_then = "then" in err.relative_schema_path
            for k in missing:
                if in_then and isinstance(inst.get("kind"), str):
                    text = f"a {inst['kind'].replace('_', ' ')} action needs `{k}`"
                else:
                    text = f"`{k}` is required"
                yield self.error(path, text)
        elif kw == "additionalProperties" and isinstance(inst, dict):
            known = list(sch.get("properties", {}))
            for k in inst:
                if k not in known:
                    yield self.error(
                        (*path, k),
                        f"`{k}` is not a field here{_suggest(k, known)}; allowed: {', '.join(known)}",
                        key=True,
                    )
        elif "propertyNames" in err.relative_schema_path:
            bad = str(inst)
            allowed = vv if kw == "enum" else None
            if allowed:
                hint = _suggest(bad, allowed)
                text = f"`{bad}` is not a known condition{hint}; use one of {', '.join(allowed)}"
            else:
                text = f"`{bad}` is not a valid name: use lower-case letters, digits and _"
            yield self.error((*path, bad), text, key=True)
        elif kw in ("minProperties", "maxProperties") and "propertyNames" in sch:
            keys = ", ".join(f"`{k}`" for k in inst) if isinstance(inst, dict) and inst else "none"
            yield self.error(
                path,
                f"a condition must have exactly one key such as `attendance`, `all` or `any`; got {keys}",
            )
        elif kw == "minProperties":
            yield self.error(path, f"`{name}` must not be empty")
        elif kw == "enum":
            choices = [str(c) for c in vv]
            yield self.error(
                path,
                f"`{name}` must be one of {', '.join(choices)}; "
                f"got {_show(inst)}{_suggest(str(inst), choices)}",
            )
        elif kw == "const":
            yield self.error(path, f"`{name}` must be {vv!r}; got {_show(inst)}")
        elif kw == "type":
            wanted = vv if isinstance(vv, list) else [vv]
            words = " or ".join(_TYPE_WORDS.get(str(w), str(w)) for w in wanted)
            yield self.error(path, f"`{name}` must be {words}; got {_show(inst)}")
        elif kw in ("pattern", "anyOf", "oneOf", "format"):
            if expect is None and kw == "anyOf":
                expect = next((s.get("x-expect") for s in vv if "x-expect" in s), None)
            yield self.error(path, f"`{name}` must be {expect or 'valid'}, got {_show(inst)}")
        elif kw in ("minimum", "maximum"):
            word = "at least" if kw == "minimum" else "at most"
            yield self.error(path, f"`{name}` must be {word} {vv}; got {_show(inst)}")
        elif kw == "minItems":
            yield self.error(path, f"`{name}` needs at least {vv} item(s)")
        elif kw == "maxItems":
            yield self.error(path, f"`{name}` may have at most {vv} items")
        elif kw == "minLength":
            yield self.error(path, f"`{name}` must not be empty")
        elif kw == "maxLength":
            yield self.error(path, f"`{name}` is longer than {vv} characters")
        elif kw == "maxProperties":
            yield self.error(path, f"`{name}` may have at most {vv} entries")
        else:
            yield self.error(path, f"`{name}` is not valid: {err.message}")


# --------------------------------------------------------------------------- semantic checks + compile

_WEEKS_RE = re.compile(r"^\s*([0-9]{1,3})\s*(?:-\s*([0-9]{1,3})|(\+))?\s*$")
_SIGN_OFF_ROLES: tuple[str, ...] | None = None


def sign_off_roles() -> tuple[str, ...]:
    """School roles that may sign off steps (those holding the sign-off permission)."""
    global _SIGN_OFF_ROLES  # noqa: PLW0603 - computed once from the role table
    if _SIGN_OFF_ROLES is None:
        from attendwise.tenants.models import OrgKind
        from attendwise.tenants.roles import ROLES, Perm

        _SIGN_OFF_ROLES = tuple(
            r.key for r in ROLES.values() if r.org_kind == OrgKind.SCHOOL and Perm.SIGNOFF in r.perms
        )
    return _SIGN_OFF_ROLES


def parse_weeks(value: Any) -> WeekRange | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return WeekRange(value, value) if value >= 0 else None
    if not isinstance(value, str):
        return None
    m = _WEEKS_RE.match(value)
    if not m:
        return None
    low = int(m.group(1))
    if m.group(3):
        return WeekRange(low, None)
    high = int(m.group(2)) if m.group(2) else low
    return WeekRange(low, high)


class _Compiler:
    """Whole-document checks and compilation. Parts with schema errors (``bad``) are skipped, so
    the checks of every well-formed part still run and all problems are reported together."""

    def __init__(self, located: _Located, messages: _Messages, bad: set[Path]) -> None:
        self.doc = located
        self.msg = messages
        self.bad = bad
        self.errors: list[PolicyError] = []
        root = located.value
        self.root: dict[str, Any] = root
        raw_thresholds = root.get("thresholds")
        self.thresholds = {
            k: (float(v["value"]), str(v["meaning"]))
            for k, v in (raw_thresholds.items() if isinstance(raw_thresholds, dict) else ())
            if isinstance(v, dict)
            and isinstance(v.get("value"), int | float)
            and not isinstance(v["value"], bool)
        }
        raw_stages = root.get("stages")
        self.numbers: list[Any] = [
            s.get("number")
            for s in (raw_stages if isinstance(raw_stages, list) else [])
            if isinstance(s, dict)
            and isinstance(s.get("number"), int)
            and not isinstance(s.get("number"), bool)
        ]
        evaluation = root.get("evaluation")
        cadence = evaluation.get("cadence") if isinstance(evaluation, dict) else None
        self.cadence = cadence if cadence in schema.CADENCES else "weekly"
        sign_off = root.get("sign_off")
        self.sign_off_role = sign_off.get("role") if isinstance(sign_off, dict) else None
        if not isinstance(self.sign_off_role, str):
            self.sign_off_role = None

    def sound(self, path: Path) -> bool:
        """Whether no schema error sits at ``path`` or on an object holding it."""
        return not any(path[: len(b)] == b for b in self.bad)

    def clean(self, path: Path) -> bool:
        """Whether nothing at or under ``path`` (or the object holding it) failed the schema."""
        return not any(b[: len(path)] == path or path[: len(b)] == b for b in self.bad)

    def fail(self, path: Path, sentence: str, key: bool = False) -> None:
        self.errors.append(self.msg.error(path, sentence, key=key))

    def check_stage_ref(self, path: Path, number: int, what: str) -> None:
        if number != 0 and number not in self.numbers:
            known = ", ".join(str(n) for n in self.numbers)
            self.fail(path, f"{what} stage {number}, which the policy does not have (stages: {known})")

    # conditions
    def condition(self, raw: dict[str, Any], path: Path) -> Condition:
        ((key, value),) = raw.items()
        here = (*path, key)
        if key in ("all", "any"):
            items = tuple(self.condition(c, (*here, i)) for i, c in enumerate(value))
            return AllOf(items) if key == "all" else AnyOf(items)
        if key == "not":
            return NotOf(self.condition(value, here))
        if key in ("persistent_absence", "severe_absence", "penalty_notice_threshold", "support_recorded"):
            return Flag(key, bool(value))
        if key == "event":
            if isinstance(value, str):
                return EventSeen(value)
            return EventSeen(value["name"], value.get("since", "stage_entry"))
        if key == "at_stage":
            numbers = (value,) if isinstance(value, int) else tuple(value)
            for n in numbers:
                self.check_stage_ref(here, n, "`at_stage` names")
            return AtStage(numbers)
        return Metric(
            key,
            self.comparison(value, here, percent=key in ("attendance", "end_of_year_attendance")),
            late_kind=value.get("kind", "any") if key == "lates" else "any",
        )

    def comparison(self, raw: dict[str, Any], path: Path, percent: bool) -> Comparison:
        values: dict[str, float] = {}
        labels: list[tuple[str, str]] = []
        for word in ("below", "at_most", "at_least", "above"):
            if word not in raw:
                continue
            v = raw[word]
            if isinstance(v, str):
                if v not in self.thresholds:
                    known = ", ".join(self.thresholds) or "none declared"
                    self.fail(
                        (*path, word),
                        f"`{word}` names threshold '{v}', which is not declared under "
                        f"`thresholds` (declared: {known}){_suggest(v, list(self.thresholds))}",
                    )
                    continue
                labels.append((word, v))
                v = self.thresholds[v][0]
            values[word] = float(v)
            if percent and not 0 <= float(v) <= 100:
                self.fail((*path, word), f"`{word}` is a percentage and must be between 0 and 100; got {v}")
        lows = [values[w] for w in ("at_least", "above") if w in values]
        highs = [values[w] for w in ("below", "at_most") if w in values]
        if lows and highs and max(lows) >= min(highs):
            self.fail(path, "the bounds leave no value: the lower bound is not below the upper bound")
        return Comparison(
            below=values.get("below"),
            at_most=values.get("at_most"),
            at_least=values.get("at_least"),
            above=values.get("above"),
            window=raw.get("window"),
            labels=tuple(labels),
        )

    # actions
    def action(self, raw: dict[str, Any], path: Path, stage_sign_off: str | None) -> Action:
        kind = raw["kind"]
        params = tuple(
            sorted((k, _freeze(v)) for k, v in raw.items() if k not in ("kind", "detail", "sign_off"))
        )
        role = raw.get("sign_off")
        if kind in schema.LEGAL_WEIGHT_KINDS:
            role = role or stage_sign_off or self.sign_off_role
            if role is None:
                self.fail(
                    path,
                    f"a {kind.replace('_', ' ')} has legal weight and needs a person's sign-off: "
                    "add `sign_off: senior_attendance_champion` to the action, its stage or the policy",
                )
        if "sign_off" in raw and role not in sign_off_roles():
            self.fail(
                (*path, "sign_off"),
                f"sign-off role '{role}' cannot sign off steps; use one of {', '.join(sign_off_roles())}",
            )
        period = raw.get("improvement_period_school_days")
        if kind == "notice_to_improve" and period is not None and not 15 <= period <= 30:
            self.fail(
                (*path, "improvement_period_school_days"),
                f"a notice to improve must give 3 to 6 weeks (15 to 30 school days) to improve; got {period}",
            )
        for key in ("review_after_weeks",):
            if key in raw and parse_weeks(raw[key]) is None:
                self.fail((*path, key), f"`{key}` must be a range like 4-6, got {_show(raw[key])}")
        return Action(kind=kind, detail=raw["detail"], params=params, sign_off=role)

    def actions(self, raws: list[Any], path: Path, stage_sign_off: str | None) -> tuple[Action, ...]:
        return tuple(
            self.action(a, (*path, i), stage_sign_off) for i, a in enumerate(raws) if self.clean((*path, i))
        )

    def recurring(self, raw: dict[str, Any], path: Path, stage_sign_off: str | None) -> Recurring:
        when = (
            self.condition(raw["when"], (*path, "when"))
            if "when" in raw and self.clean((*path, "when"))
            else None
        )
        return Recurring(
            every=raw["every"],
            actions=self.actions(raw["actions"], (*path, "actions"), stage_sign_off),
            when=when,
            name=raw.get("name", ""),
        )

    def stage(self, raw: dict[str, Any], i: int) -> Stage:
        path: Path = ("stages", i)
        number = raw["number"]
        role = raw.get("sign_off")
        if role is not None and role not in sign_off_roles():
            self.fail(
                (*path, "sign_off"),
                f"sign-off role '{role}' cannot sign off steps; use one of {', '.join(sign_off_roles())}",
            )
        enter = None
        raw_enter = raw.get("enter")
        if raw_enter is not None and self.clean((*path, "enter")):
            weeks = None
            if "after_weeks" in raw_enter:
                weeks = parse_weeks(raw_enter["after_weeks"])
                if weeks is None or (weeks.high is not None and weeks.high < weeks.low):
                    self.fail(
                        (*path, "enter", "after_weeks"),
                        f"`after_weeks` must be a range like 5-8, got {_show(raw_enter['after_weeks'])}",
                    )
            froms = raw_enter.get("from")
            for j, n in enumerate(froms or []):
                self.check_stage_ref((*path, "enter", "from", j), n, "`from` names")
                if n >= number:
                    self.fail(
                        (*path, "enter", "from", j),
                        f"`from` may only list lower stages (escalation); {n} is not below {number} — "
                        "use `leave` on the higher stage to move a pupil down",
                    )
            when = (
                self.condition(raw_enter["when"], (*path, "enter", "when")) if "when" in raw_enter else None
            )
            if when is None and weeks is None and not froms:
                self.fail(
                    (*path, "enter"), "`enter` needs `when` or `after_weeks` to say when a pupil moves here"
                )
            enter = Enter(
                from_stages=tuple(froms) if froms else None,
                when=when,
                after_weeks=weeks,
                weeks_counted_from=raw_enter.get("weeks_counted_from", "stage_entry"),
                reason=raw_enter.get("reason", ""),
            )
        if raw.get("universal") and enter is not None:
            self.fail(
                (*path, "universal"),
                "a universal stage holds every pupil not on a higher stage, so it cannot also have `enter`",
            )
        leave = []
        for j, rl in enumerate(raw.get("leave", [])):
            lp = (*path, "leave", j)
            if not self.clean(lp):
                continue
            if rl["to"] == number:
                self.fail((*lp, "to"), f"`to` must name another stage, not stage {number} itself")
            self.check_stage_ref((*lp, "to"), rl["to"], "`to` names")
            leave.append(
                Leave(
                    to=rl["to"],
                    when=self.condition(rl["when"], (*lp, "when")),
                    reason=rl["reason"],
                    actions=self.actions(rl.get("actions", []), (*lp, "actions"), role),
                )
            )
        return Stage(
            number=number,
            name=raw["name"],
            description=raw.get("description", ""),
            universal=bool(raw.get("universal", False)),
            enter=enter,
            support_first=(raw.get("support_first") or {}).get("detail"),
            sign_off=role,
            monitoring=str(raw.get("monitoring", self.cadence)),
            on_entry=self.actions(raw.get("on_entry", []), (*path, "on_entry"), role),
            while_in_stage=tuple(
                self.recurring(r, (*path, "while_in_stage", j), role)
                for j, r in enumerate(raw.get("while_in_stage", []))
                if self.clean((*path, "while_in_stage", j))
            ),
            leave=tuple(leave),
        )

    def _guarded(self, build: Callable[..., Any], raw: Any, *args: Any) -> Any:
        """``build(raw, *args)`` when that part passed the schema; ``None`` when it did not."""
        if isinstance(args[0], tuple):
            if not self.clean(args[0]):
                return None
        else:
            path: Path = ("stages", args[0])
            if not (self.sound(path) and self.clean((*path, "number")) and self.clean((*path, "name"))):
                return None
        return build(raw, *args)

    def compile(self, text: str) -> Policy | None:
        root = self.root
        if self.sign_off_role is not None and self.sign_off_role not in sign_off_roles():
            self.fail(
                ("sign_off", "role"),
                f"sign-off role '{self.sign_off_role}' cannot sign off steps; "
                f"use one of {', '.join(sign_off_roles())}",
            )
        effective = dt.date.min
        if self.clean(("version",)):
            try:
                effective = dt.date.fromisoformat(root["version"]["effective_from"])
            except ValueError:
                self.fail(
                    ("version", "effective_from"),
                    f"`effective_from` is not a real date: {_show(root['version']['effective_from'])}",
                )
        seen: set[int] = set()
        for i, n in enumerate(self.numbers):
            if n in seen:
                self.fail(("stages", i, "number"), f"stage number {n} is used twice")
                continue
            seen.add(n)
            if i and n < self.numbers[i - 1]:
                self.fail(
                    ("stages", i, "number"), "stages must be listed in ascending order of their numbers"
                )
        raw_stages: list[Any] = root["stages"] if isinstance(root.get("stages"), list) else []
        stages = tuple(self._guarded(self.stage, s, i) for i, s in enumerate(raw_stages))
        raw_rules: list[Any] = root["rules"] if isinstance(root.get("rules"), list) else []
        rules = tuple(self._guarded(self.recurring, r, ("rules", j), None) for j, r in enumerate(raw_rules))
        complete = tuple(s for s in stages if isinstance(s, Stage))
        if self.bad or not complete:
            return None
        universal = [s for s in complete if s.universal]
        if len(universal) > 1:
            self.fail(("stages",), "only one stage may be universal")
        if universal and universal[0] is not complete[0]:
            self.fail(
                ("stages", complete.index(universal[0]), "universal"),
                "only the lowest stage may be universal",
            )
        targets = {lv.to for s in complete for lv in s.leave}
        for i, s in enumerate(complete):
            if not s.universal and s.enter is None and s.number not in targets and s.number != 0:
                self.fail(
                    ("stages", i),
                    f"stage {s.number} can never be reached: it has no `enter` "
                    "and no other stage's `leave` goes to it",
                )
        if self.errors or self.bad:
            return None
        evaluation = root["evaluation"]
        version = root["version"]
        return Policy(
            id=root["id"],
            name=root["name"],
            version=version["number"],
            effective_from=effective,
            cadence=evaluation["cadence"],
            evaluation_day=evaluation.get("day", "friday"),
            new_academic_year=evaluation.get("new_academic_year", "carry_on"),
            stages=complete,
            school=root.get("school", ""),
            source=root.get("source", ""),
            version_label=version.get("label", ""),
            version_notes=version.get("notes", ""),
            sign_off_role=self.sign_off_role,
            thresholds=tuple((k, v, m) for k, (v, m) in self.thresholds.items()),
            rules=tuple(r for r in rules if isinstance(r, Recurring)),
            text=text,
        )


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


# --------------------------------------------------------------------------- entry points


@dataclass
class ParseResult:
    policies: list[Policy]
    errors: list[PolicyError]

    @property
    def ok(self) -> bool:
        return not self.errors


def parse(text: str) -> ParseResult:
    """Read every version in ``text``; return the compiled policies or every error found."""
    documents, errors = read_yaml(text)
    if errors:
        return ParseResult([], errors)
    policies: list[Policy] = []
    all_errors: list[PolicyError] = []
    for n, located in enumerate(documents, start=1):
        doc_errors = list(located.errors)
        messages = _Messages(located, n)
        if not isinstance(located.value, dict):
            doc_errors.append(
                PolicyError(
                    *located.where(()),
                    f"a policy document must be a mapping of `key: value` lines; got {_show(located.value)}",
                )
            )
        else:
            bad: set[Path] = set()
            for err in _VALIDATOR.iter_errors(located.value):
                bad.add(tuple(err.absolute_path))
                doc_errors.extend(messages.from_schema(err))
            if not located.errors:
                compiler = _Compiler(located, messages, bad)
                try:
                    policy = compiler.compile(located.text)
                except (
                    KeyError,
                    TypeError,
                    ValueError,
                    AttributeError,
                ) as exc:  # pragma: no cover - defensive
                    compiler.fail((), f"the document could not be read: {exc}")
                    policy = None
                doc_errors.extend(compiler.errors)
                if policy is not None:
                    policies.append(policy)
        all_errors.extend(PolicyError(e.line, e.column, e.message, n) for e in doc_errors)
    if not all_errors:
        all_errors.extend(_check_versions(policies, documents))
    unique = sorted(set(all_errors), key=lambda e: (e.line, e.column, e.message))
    return ParseResult(policies if not unique else [], unique)


def _check_versions(policies: list[Policy], documents: list[_Located]) -> Iterator[PolicyError]:
    for i in range(1, len(policies)):
        prev, cur = policies[i - 1], policies[i]
        line, col = documents[i].where(("version",))
        if cur.id != prev.id:
            yield PolicyError(
                line,
                col,
                f"every version in one file must have the same `id`; '{cur.id}' differs from '{prev.id}'",
                i + 1,
            )
        if cur.version <= prev.version:
            yield PolicyError(
                line,
                col,
                f"version {cur.version} must be numbered above the previous version {prev.version}",
                i + 1,
            )
        if cur.effective_from <= prev.effective_from:
            yield PolicyError(
                line,
                col,
                f"version {cur.version} must take effect after version "
                f"{prev.version} ({prev.effective_from.isoformat()})",
                i + 1,
            )


def load(text: str) -> list[Policy]:
    """The compiled versions of a policy file, oldest first; raises :class:`PolicyInvalid`."""
    result = parse(text)
    if result.errors:
        raise PolicyInvalid(result.errors)
    return result.policies
