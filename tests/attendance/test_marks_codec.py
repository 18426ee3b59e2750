"""The marks byte layout, and reading a school's marks into one matrix under its tenant."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from attendwise.attendance import marks_codec
from attendwise.attendance.codes import encode
from attendwise.attendance.models import Pupil, PupilMarkYear
from attendwise.platform import tenancy


def test_a_year_is_two_bytes_per_calendar_day_from_1_august() -> None:
    assert marks_codec.year_length(2024) == 730
    assert marks_codec.year_length(2027) == 732  # 29 February 2028
    assert marks_codec.slot(2024, dt.date(2024, 8, 1), "AM") == 0
    assert marks_codec.slot(2024, dt.date(2024, 8, 1), "PM") == 1
    assert marks_codec.slot(2024, dt.date(2025, 7, 31), "PM") == 729
    with pytest.raises(ValueError, match="not in academic year 2024"):
        marks_codec.slot(2024, dt.date(2025, 8, 1), "AM")
    with pytest.raises(ValueError, match="AM or PM"):
        marks_codec.slot(2024, dt.date(2024, 9, 2), "EV")


def test_encode_decode_round_trip_and_short_rows_are_padded() -> None:
    codes = marks_codec.empty_year(2024)
    codes[marks_codec.slot(2024, dt.date(2024, 9, 2), "PM")] = encode("L")
    data = marks_codec.encode_year(codes, 2024)
    assert len(data) == 730
    assert np.array_equal(marks_codec.decode_year(data, 2024), codes)
    assert not marks_codec.view_year(data, 2024).flags.writeable
    padded = marks_codec.decode_year(b"\x01\x02", 2024)
    assert padded[:3].tolist() == [1, 2, 0]
    assert len(padded) == 730
    with pytest.raises(ValueError, match="730"):
        marks_codec.encode_year(np.zeros(10, dtype=np.uint8), 2024)


def test_minutes_late_round_trip() -> None:
    minutes = {(dt.date(2024, 9, 2), "AM"): 12}
    text = marks_codec.encode_minutes_late(minutes)
    assert text == '{"2024-09-02:AM":12}'
    assert marks_codec.decode_minutes_late(text) == minutes
    assert marks_codec.decode_minutes_late(None) == {}


def _pupil_with_marks(
    session, org_id: int, upn: str, year: int, marks: dict[tuple[dt.date, str], str]
) -> int:
    with tenancy.tenant_context(org_id):
        pupil = Pupil(
            upn=upn,
            legal_forename="Sam",
            legal_surname="Smith",
            date_of_birth=dt.date(2016, 3, 4),
            year_group="5",
        )
        session.add(pupil)
        session.flush()
        codes = marks_codec.empty_year(year)
        for (day, s), code in marks.items():
            codes[marks_codec.slot(year, day, s)] = encode(code)
        session.add(
            PupilMarkYear(pupil_id=pupil.id, academic_year=year, codes=marks_codec.encode_year(codes, year))
        )
        session.flush()
        return pupil.id


def test_load_matrix_reads_only_the_tenants_pupils_and_joins_years(db_session, make_school) -> None:
    a, b = make_school(), make_school()
    day = dt.date(2024, 9, 2)
    mine = _pupil_with_marks(db_session, a.id, "A835200026001", 2024, {(day, "AM"): "N"})
    _pupil_with_marks(db_session, b.id, "B835200026002", 2024, {(day, "AM"): "/"})
    with tenancy.tenant_context(a.id):
        db_session.add(
            PupilMarkYear(
                pupil_id=mine,
                academic_year=2025,
                codes=marks_codec.encode_year(marks_codec.empty_year(2025), 2025),
            )
        )
        db_session.flush()
        matrix = marks_codec.load_matrix(db_session, [2024, 2025])
        single = marks_codec.load_matrix(db_session, [2024], pupil_ids=[mine])
    assert matrix.pupils == [mine]
    assert matrix.start == dt.date(2024, 8, 1)
    assert matrix.codes.shape == (1, 730 + 730)
    assert matrix.codes[0, matrix.column(day, "AM")] == encode("N")
    assert single.codes.shape == (1, 730)
    with pytest.raises(tenancy.TenantContextMissing):
        marks_codec.load_matrix(db_session, [2024])
