"""The DfE attendance codes: meaning, statistical class, validity dates and the byte encoding.

One table, in one place (domain sheet ``law-and-codes.md`` §3 and §8). Each code carries the
status tag the sheet gives its classification: ``V`` (confirmed in the named source), ``P`` (only a
secondary source) or ``U`` (unverified). Classifications that are not ``V`` are data: a platform
admin may override them (``CodeTable(overrides={...})``); verified ones are the law and cannot be.

Every code also has a small integer used by the marks byte store (``marks_codec``): the position
in :data:`CODE_ORDER` plus one, ``0`` meaning "no mark". The list is APPEND-ONLY: stored marks
depend on it, so a code is never renumbered or removed, only added at the end.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date

import numpy as np


class StatClass(enum.StrEnum):
    """The five statistical classes of the DfE absence methodology."""

    PRESENT = "present"
    APPROVED_ACTIVITY = "approved_activity"
    AUTHORISED = "authorised"
    UNAUTHORISED = "unauthorised"
    NOT_COUNTED = "not_counted"

    @property
    def number(self) -> int:
        """The class as a small integer (1..5; 0 is "no mark") for numpy lookup tables."""
        return _CLASS_NUMBERS[self]

    @property
    def counts_as_attending(self) -> bool:
        return self in (StatClass.PRESENT, StatClass.APPROVED_ACTIVITY)

    @property
    def is_absence(self) -> bool:
        return self in (StatClass.AUTHORISED, StatClass.UNAUTHORISED)

    @property
    def is_possible(self) -> bool:
        """Whether a session with a code of this class is a possible session."""
        return self is not StatClass.NOT_COUNTED


_CLASS_NUMBERS = {cls: n for n, cls in enumerate(StatClass, start=1)}
NO_MARK_CLASS = 0
CLASS_BY_NUMBER: dict[int, StatClass] = {n: cls for cls, n in _CLASS_NUMBERS.items()}


class Verification(enum.StrEnum):
    """How well the domain sheet's classification of a code is sourced."""

    VERIFIED = "V"
    SECONDARY = "P"
    UNVERIFIED = "U"


REFORM_DATE = date(2024, 8, 19)
"""SI 2024/208 and the statutory WTISA guidance: the 2024 code set applies from this date."""
WITHDRAWN_AFTER = date(2024, 8, 18)
"""The last day the withdrawn codes H, J and bare Y could be recorded."""

PENALTY_NOTICE_CODES = frozenset({"G", "N", "O", "U"})
"""The only codes counted towards the penalty-notice threshold (domain sheet §3)."""
LATE_BEFORE_CLOSE = "L"
LATE_AFTER_CLOSE = "U"
ILLNESS = "I"
PLANNED_CLOSURE = "#"


@dataclass(frozen=True)
class Code:
    code: str
    index: int
    meaning: str
    stat_class: StatClass
    verification: Verification
    valid_from: date | None = None
    valid_to: date | None = None
    default_class: StatClass | None = None
    """The class the domain sheet gives, when an override has changed :attr:`stat_class`."""

    @property
    def overridden(self) -> bool:
        return self.default_class is not None and self.default_class != self.stat_class

    @property
    def withdrawn(self) -> bool:
        return self.valid_to is not None

    def valid_on(self, day: date) -> bool:
        if self.valid_from is not None and day < self.valid_from:
            return False
        return self.valid_to is None or day <= self.valid_to

    def validity_problem(self, day: date) -> str | None:
        """Why the code cannot be recorded on ``day`` (``None`` when it can)."""
        if self.valid_from is not None and day < self.valid_from:
            return f"code {self.code} is only valid from {self.valid_from.isoformat()}"
        if self.valid_to is not None and day > self.valid_to:
            return f"code {self.code} was withdrawn after {self.valid_to.isoformat()}"
        return None


_V, _P = Verification.VERIFIED, Verification.SECONDARY
_PRESENT, _AEA = StatClass.PRESENT, StatClass.APPROVED_ACTIVITY
_AUTH, _UNAUTH, _NC = StatClass.AUTHORISED, StatClass.UNAUTHORISED, StatClass.NOT_COUNTED
_NEW = REFORM_DATE

# (code, meaning, class, verification, valid_from, valid_to) — APPEND-ONLY: the order is the encoding.
_DEFINITIONS: tuple[tuple[str, str, StatClass, Verification, date | None, date | None], ...] = (
    ("/", "Present at morning registration", _PRESENT, _V, None, None),
    ("\\", "Present at afternoon registration", _PRESENT, _V, None, None),
    ("L", "Late: arrived after registration began, before the register closed", _PRESENT, _V, None, None),
    ("K", "Attending education provision arranged by the local authority", _AEA, _V, _NEW, None),
    ("V", "Attending an educational visit or trip organised by the school", _AEA, _V, None, None),
    ("P", "Participating in an approved sporting activity", _AEA, _P, None, None),
    ("W", "Attending work experience", _AEA, _P, None, None),
    ("B", "Attending any other approved off-site educational activity", _AEA, _P, None, None),
    ("D", "Dual registered: attending a session at another school", _NC, _P, None, None),
    ("C1", "Leave for a regulated performance or regulated employment abroad", _AUTH, _V, _NEW, None),
    ("C2", "Leave for part of a compulsory-age pupil's agreed part-time timetable", _AUTH, _V, _NEW, None),
    ("C", "Leave of absence for exceptional circumstances", _AUTH, _P, None, None),
    ("M", "Medical or dental appointment", _AUTH, _P, None, None),
    ("J1", "Leave to attend an interview for employment or admission", _AUTH, _V, _NEW, None),
    ("S", "Study leave for public examinations", _AUTH, _V, None, None),
    ("X", "Non-compulsory school age pupil not required to attend", _NC, _P, None, None),
    ("T", "Parent travelling for occupational purposes", _AUTH, _P, None, None),
    ("R", "Religious observance", _AUTH, _P, None, None),
    ("I", "Illness (not medical or dental appointment)", _AUTH, _P, None, None),
    ("E", "Suspended or permanently excluded, no alternative provision made", _AUTH, _P, None, None),
    ("Q", "Unable to attend: the local authority has not made access arrangements", _NC, _P, _NEW, None),
    ("Y1", "Unable to attend: transport normally provided not available", _NC, _P, _NEW, None),
    ("Y2", "Unable to attend: widespread disruption to travel", _NC, _P, _NEW, None),
    ("Y3", "Unable to attend: part of the school premises closed", _NC, _P, _NEW, None),
    ("Y4", "Unable to attend: whole school site unexpectedly closed", _NC, _P, _NEW, None),
    ("Y5", "Unable to attend: in criminal justice detention", _NC, _P, _NEW, None),
    ("Y6", "Unable to attend: public health guidance or law", _NC, _P, _NEW, None),
    ("Y7", "Unable to attend: any other unavoidable cause", _NC, _P, _NEW, None),
    ("G", "Holiday not granted by the school", _UNAUTH, _V, None, None),
    ("N", "Reason for absence not yet established", _UNAUTH, _V, None, None),
    ("O", "Absent in other or unknown circumstances", _UNAUTH, _V, None, None),
    ("U", "Arrived in school after the register closed", _UNAUTH, _V, None, None),
    ("Z", "Prospective pupil not on the admission register", _NC, _P, None, None),
    ("#", "Planned whole or partial school closure", _NC, _P, None, None),
    ("H", "Holiday authorised by the school (withdrawn 2024)", _AUTH, _P, None, WITHDRAWN_AFTER),
    ("J", "Interview (withdrawn 2024; now J1)", _AEA, _P, None, WITHDRAWN_AFTER),
    ("Y", "Unable to attend: exceptional circumstances (withdrawn 2024)", _NC, _P, None, WITHDRAWN_AFTER),
)

CODE_ORDER: tuple[str, ...] = tuple(d[0] for d in _DEFINITIONS)
"""The stored encoding: ``CODE_ORDER[i - 1]`` is the code with byte value ``i``. Append-only."""

CODE_INDEX: dict[str, int] = {code: i for i, code in enumerate(CODE_ORDER, start=1)}
NO_MARK = 0

CODES: dict[str, Code] = {
    code: Code(code, CODE_INDEX[code], meaning, cls, ver, valid_from, valid_to)
    for code, meaning, cls, ver, valid_from, valid_to in _DEFINITIONS
}


def encode(code: str) -> int:
    """The byte value of ``code`` (``KeyError`` for an unknown code)."""
    return CODE_INDEX[code]


def decode(index: int) -> str | None:
    """The code stored as ``index`` (``None`` for ``0``, no mark)."""
    if index == NO_MARK:
        return None
    return CODE_ORDER[index - 1]


class OverrideError(ValueError):
    pass


class CodeTable:
    """The code set with any admin overrides applied, plus numpy lookup tables indexed by byte value.

    ``overrides`` maps a code to the class an admin has decided it belongs to. Only codes whose
    classification is not verified may be overridden; anything else raises :class:`OverrideError`.
    """

    def __init__(self, overrides: Mapping[str, StatClass | str] | None = None) -> None:
        self.overrides: dict[str, StatClass] = {}
        codes = dict(CODES)
        for code, cls in (overrides or {}).items():
            if code not in codes:
                raise OverrideError(f"unknown attendance code {code!r}")
            try:
                new_class = StatClass(cls)
            except ValueError:
                raise OverrideError(
                    f"unknown statistical class {cls!r} for code {code}; "
                    f"expected one of {', '.join(c.value for c in StatClass)}"
                ) from None
            base = codes[code]
            if base.verification is Verification.VERIFIED and new_class != base.stat_class:
                raise OverrideError(
                    f"code {code} is classified {base.stat_class.value} by a verified source; "
                    "it cannot be overridden"
                )
            self.overrides[code] = new_class
            codes[code] = replace(base, stat_class=new_class, default_class=base.stat_class)
        self.codes: dict[str, Code] = codes
        lut = np.zeros(256, dtype=np.uint8)
        for c in codes.values():
            lut[c.index] = c.stat_class.number
        lut.setflags(write=False)
        self.class_lut = lut
        """``class_lut[byte]`` is the :class:`StatClass` number of the code stored as ``byte`` (0: none)."""

    def __iter__(self) -> Iterator[Code]:
        return iter(self.codes.values())

    def __contains__(self, code: object) -> bool:
        return code in self.codes

    def __getitem__(self, code: str) -> Code:
        return self.codes[code]

    def class_of(self, code: str) -> StatClass:
        return self.codes[code].stat_class

    def by_index(self, index: int) -> Code:
        return self.codes[CODE_ORDER[index - 1]]

    def indices(self, predicate_codes: set[str] | frozenset[str]) -> np.ndarray:
        """Byte values of the given codes, as an array for ``np.isin``."""
        return np.array(sorted(CODE_INDEX[c] for c in predicate_codes), dtype=np.uint8)

    def codes_in(self, cls: StatClass) -> list[str]:
        return [c.code for c in self.codes.values() if c.stat_class is cls]


DEFAULT_TABLE = CodeTable()
