"""The national figures Attendwise starts with (law-and-codes §6), loaded by the migration that
creates the table. After that a platform administrator keeps them up to date on the national
figures page; this list is not read again.

Each entry: (academic year, period kind, measure, phase, value %, source).
"""

from __future__ import annotations

_EES = "https://explore-education-statistics.service.gov.uk/find-statistics/"
_ABSENCE = f"{_EES}pupil-absence-in-schools-in-england/"
_FULL_2223 = f"DfE, Pupil absence in schools in England 2022/23 (school census), {_ABSENCE}2022-23"
_FULL_2324 = f"DfE, Pupil absence in schools in England 2023/24 (school census), {_ABSENCE}2023-24"
_AUT_2223 = (
    "DfE school census, autumn term 2022/23 (phase figures as reported by Tes), "
    "https://tes.com/magazine/news/general/absence-despite-dfe-attendance-drive"
)
_AUT_2324 = f"DfE, Pupil absence in schools in England autumn term 2023/24, {_ABSENCE}2023-24-autumn-term"
_AUT_2425 = f"DfE, Pupil absence in schools in England autumn term 2024/25, {_ABSENCE}2024-25-autumn-term"
_DAILY_2425 = (
    "DfE, Pupil attendance in schools 2025 week 29 (daily attendance data, not the census), "
    f"{_EES}pupil-attendance-in-schools/2025-week-29"
)

SEED: tuple[tuple[int, str, str, str, float, str], ...] = (
    (2022, "year", "absence", "all", 7.4, _FULL_2223),
    (2022, "year", "authorised", "all", 5.0, _FULL_2223),
    (2022, "year", "unauthorised", "all", 2.4, _FULL_2223),
    (2022, "year", "persistent", "all", 21.2, _FULL_2223),
    (2022, "year", "severe", "all", 2.0, _FULL_2223),
    (2022, "year", "absence", "primary", 5.9, _FULL_2223),
    (2022, "year", "absence", "secondary", 9.0, _FULL_2223),
    (2022, "year", "absence", "special", 13.0, _FULL_2223),
    (2022, "year", "unauthorised", "primary", 1.6, _FULL_2223),
    (2022, "year", "unauthorised", "secondary", 3.4, _FULL_2223),
    (2022, "year", "unauthorised", "special", 3.2, _FULL_2223),
    (2023, "year", "absence", "all", 7.1, _FULL_2324),
    (2023, "year", "authorised", "all", 4.7, _FULL_2324),
    (2023, "year", "unauthorised", "all", 2.5, _FULL_2324),
    (2023, "year", "persistent", "all", 20.0, _FULL_2324),
    (2023, "year", "severe", "all", 2.3, _FULL_2324),
    (2023, "year", "absence", "primary", 5.5, _FULL_2324),
    (2023, "year", "absence", "secondary", 8.9, _FULL_2324),
    (2023, "year", "absence", "special", 13.0, _FULL_2324),
    (2023, "year", "authorised", "primary", 3.9, _FULL_2324),
    (2023, "year", "authorised", "secondary", 5.4, _FULL_2324),
    (2023, "year", "authorised", "special", 9.7, _FULL_2324),
    (2023, "year", "unauthorised", "primary", 1.6, _FULL_2324),
    (2023, "year", "unauthorised", "secondary", 3.5, _FULL_2324),
    (2023, "year", "unauthorised", "special", 3.3, _FULL_2324),
    (2022, "autumn", "absence", "all", 7.5, _AUT_2223),
    (2022, "autumn", "authorised", "all", 5.4, _AUT_2223),
    (2022, "autumn", "unauthorised", "all", 2.1, _AUT_2223),
    (2022, "autumn", "persistent", "all", 24.2, _AUT_2223),
    (2022, "autumn", "severe", "all", 1.7, _AUT_2223),
    (2022, "autumn", "absence", "primary", 6.3, _AUT_2223),
    (2022, "autumn", "absence", "secondary", 8.8, _AUT_2223),
    (2022, "autumn", "absence", "special", 13.4, _AUT_2223),
    (2022, "autumn", "persistent", "primary", 20.9, _AUT_2223),
    (2022, "autumn", "persistent", "secondary", 27.4, _AUT_2223),
    (2022, "autumn", "persistent", "special", 40.9, _AUT_2223),
    (2022, "autumn", "severe", "primary", 0.7, _AUT_2223),
    (2022, "autumn", "severe", "secondary", 2.8, _AUT_2223),
    (2022, "autumn", "severe", "special", 5.8, _AUT_2223),
    (2023, "autumn", "absence", "all", 6.7, _AUT_2324),
    (2023, "autumn", "authorised", "all", 4.5, _AUT_2324),
    (2023, "autumn", "unauthorised", "all", 2.2, _AUT_2324),
    (2023, "autumn", "persistent", "all", 19.4, _AUT_2324),
    (2023, "autumn", "absence", "primary", 5.3, _AUT_2324),
    (2023, "autumn", "absence", "secondary", 8.1, _AUT_2324),
    (2023, "autumn", "absence", "special", 12.7, _AUT_2324),
    (2024, "autumn", "absence", "all", 6.38, _AUT_2425),
    (2024, "autumn", "absence", "primary", 5.07, _AUT_2425),
    (2024, "autumn", "absence", "secondary", 7.66, _AUT_2425),
    (2024, "autumn", "absence", "special", 12.55, _AUT_2425),
    (2024, "year", "absence", "all", 6.9, _DAILY_2425),
    (2024, "year", "persistent", "all", 18.7, _DAILY_2425),
)
