"""The code table, code by code, against the domain sheet (law-and-codes.md §3 table and §8)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from attendwise.attendance.codes import (
    CODE_ORDER,
    CODES,
    DEFAULT_TABLE,
    PENALTY_NOTICE_CODES,
    CodeTable,
    OverrideError,
    StatClass,
    Verification,
    decode,
    encode,
)

PRESENT, AEA, AUTH, UNAUTH, NC = (
    StatClass.PRESENT,
    StatClass.APPROVED_ACTIVITY,
    StatClass.AUTHORISED,
    StatClass.UNAUTHORISED,
    StatClass.NOT_COUNTED,
)
V, P = Verification.VERIFIED, Verification.SECONDARY

# (code, class, status tag) exactly as the §3 table gives them, in the table's order.
SHEET = [
    ("/", PRESENT, V),
    ("\\", PRESENT, V),
    ("L", PRESENT, V),
    ("K", AEA, V),
    ("V", AEA, V),
    ("P", AEA, P),
    ("W", AEA, P),
    ("B", AEA, P),
    ("D", NC, P),
    ("C1", AUTH, V),
    ("M", AUTH, P),
    ("J1", AUTH, V),
    ("S", AUTH, V),
    ("X", NC, P),
    ("C2", AUTH, V),
    ("C", AUTH, P),
    ("T", AUTH, P),
    ("R", AUTH, P),
    ("I", AUTH, P),
    ("E", AUTH, P),
    ("Q", NC, P),
    ("Y1", NC, P),
    ("Y2", NC, P),
    ("Y3", NC, P),
    ("Y4", NC, P),
    ("Y5", NC, P),
    ("Y6", NC, P),
    ("Y7", NC, P),
    ("G", UNAUTH, V),
    ("N", UNAUTH, V),
    ("O", UNAUTH, V),
    ("U", UNAUTH, V),
    ("Z", NC, P),
    ("#", NC, P),
]
ADDED_2024 = {"C1", "C2", "J1", "K", "Q", "Y1", "Y2", "Y3", "Y4", "Y5", "Y6", "Y7"}
WITHDRAWN = {"H": AUTH, "J": AEA, "Y": NC}


@pytest.mark.parametrize(("code", "cls", "tag"), SHEET, ids=[c for c, _k, _t in SHEET])
def test_each_current_code_has_the_sheets_class_and_status(
    code: str, cls: StatClass, tag: Verification
) -> None:
    entry = CODES[code]
    assert entry.stat_class is cls
    assert entry.verification is tag
    assert entry.meaning
    assert entry.valid_to is None
    assert entry.valid_on(date(2025, 1, 6))
    if code in ADDED_2024:
        assert entry.valid_from == date(2024, 8, 19)
        assert not entry.valid_on(date(2024, 8, 18))
    else:
        assert entry.valid_from is None
        assert entry.valid_on(date(2020, 1, 6))


def test_the_table_is_exactly_the_2024_set_plus_the_withdrawn_codes() -> None:
    assert set(CODES) == {c for c, _k, _t in SHEET} | set(WITHDRAWN)
    assert len(SHEET) == 34


@pytest.mark.parametrize(("code", "cls"), sorted(WITHDRAWN.items()))
def test_withdrawn_codes_are_readable_for_history_only(code: str, cls: StatClass) -> None:
    entry = CODES[code]
    assert entry.stat_class is cls
    assert entry.withdrawn
    assert entry.valid_on(date(2024, 8, 18))
    assert not entry.valid_on(date(2024, 8, 19))
    assert entry.validity_problem(date(2024, 9, 2)) == f"code {code} was withdrawn after 2024-08-18"


def test_rule_sheet_class_sets() -> None:
    current = DEFAULT_TABLE
    by_class = {cls: {c for c in current.codes_in(cls) if c not in WITHDRAWN} for cls in StatClass}
    assert by_class[PRESENT] == {"/", "\\", "L"}
    assert by_class[AEA] == {"K", "V", "P", "W", "B"}
    assert by_class[AUTH] == {"C", "C1", "C2", "E", "I", "J1", "M", "R", "S", "T"}
    assert by_class[UNAUTH] == {"G", "N", "O", "U"}
    assert by_class[NC] == {"D", "X", "Q", "Y1", "Y2", "Y3", "Y4", "Y5", "Y6", "Y7", "Z", "#"}
    assert set(PENALTY_NOTICE_CODES) == {"G", "N", "O", "U"}


def test_late_before_close_is_present_and_after_close_is_unauthorised() -> None:
    assert CODES["L"].stat_class.counts_as_attending
    assert CODES["U"].stat_class is UNAUTH
    assert "U" in PENALTY_NOTICE_CODES
    assert "L" not in PENALTY_NOTICE_CODES


def test_encoding_is_stable_and_append_only() -> None:
    # Stored marks depend on these numbers: this list may only ever grow at the end.
    assert CODE_ORDER[:37] == (
        "/", "\\", "L", "K", "V", "P", "W", "B", "D", "C1", "C2", "C", "M", "J1", "S", "X", "T", "R",
        "I", "E", "Q", "Y1", "Y2", "Y3", "Y4", "Y5", "Y6", "Y7", "G", "N", "O", "U", "Z", "#", "H", "J", "Y",
    )  # fmt: skip
    assert encode("/") == 1
    assert encode("#") == 34
    assert decode(0) is None
    assert all(decode(encode(c)) == c for c in CODES)
    assert len(CODE_ORDER) < 64  # the engine's bincount key leaves 6 bits for a code


def test_class_lookup_table_maps_bytes_to_classes() -> None:
    lut = DEFAULT_TABLE.class_lut
    assert lut.dtype == np.uint8
    assert lut[0] == 0
    assert lut[encode("N")] == UNAUTH.number
    assert lut[encode("Y3")] == NC.number
    assert not lut.flags.writeable


def test_admin_can_override_an_unverified_classification() -> None:
    table = CodeTable({"Q": "authorised", "B": StatClass.AUTHORISED})
    assert table.class_of("Q") is AUTH
    assert table["Q"].overridden
    assert table["Q"].default_class is NC
    assert table.class_lut[encode("B")] == AUTH.number
    assert DEFAULT_TABLE.class_of("Q") is NC  # the default table is untouched


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"N": "authorised"}, "code N is classified unauthorised by a verified source"),
        ({"ZZ": "present"}, "unknown attendance code 'ZZ'"),
        ({"Q": "absent"}, "unknown statistical class 'absent' for code Q"),
    ],
)
def test_bad_overrides_are_refused_with_a_reason(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(OverrideError, match=message):
        CodeTable(overrides)
