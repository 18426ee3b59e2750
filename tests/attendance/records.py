"""Records for the attendance services, shared by the attendance tests."""

from __future__ import annotations

import datetime as dt

from stdnum.gb import upn as stdnum_upn

from attendwise.attendance import services
from attendwise.attendance.calendar import HALF_TERM_NAMES

HALF_TERMS_2026 = tuple(
    services.HalfTermRecord(name, start, end)
    for name, start, end in zip(
        HALF_TERM_NAMES,
        (
            dt.date(2026, 9, 2),
            dt.date(2026, 11, 2),
            dt.date(2027, 1, 5),
            dt.date(2027, 2, 22),
            dt.date(2027, 4, 12),
            dt.date(2027, 6, 7),
        ),
        (
            dt.date(2026, 10, 23),
            dt.date(2026, 12, 18),
            dt.date(2027, 2, 12),
            dt.date(2027, 3, 26),
            dt.date(2027, 5, 28),
            dt.date(2027, 7, 21),
        ),
        strict=True,
    )
)


def make_upn(serial: int, la: int = 835, estab: int = 2001, year: int = 26) -> str:
    """A valid permanent UPN with the right check letter."""
    body = f"{la:03d}{estab:04d}{year:02d}{serial:03d}"
    return stdnum_upn.calc_check_digit(body) + body


def pupil(serial: int, surname: str = "Smith", **kwargs: object) -> services.PupilRecord:
    values: dict[str, object] = {
        "upn": make_upn(serial),
        "legal_forename": f"Pupil{serial}",
        "legal_surname": surname,
        "date_of_birth": dt.date(2016, 9, 1) + dt.timedelta(days=serial),
        "year_group": "5",
    }
    values.update(kwargs)
    return services.PupilRecord(**values)  # type: ignore[arg-type]
