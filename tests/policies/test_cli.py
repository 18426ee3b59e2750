"""The command-line contract, through the real ``attendwise`` command (no database needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.policies.helpers import CALENDAR, absent_on, d, marks, present, upn

ATTENDWISE = Path(sys.executable).with_name("attendwise")
PA = upn(51)
GOOD = upn(52)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ATTENDWISE_DATA_DIR": os.environ.get("ATTENDWISE_DATA_DIR", "/tmp/attendwise-cli-test"),
    }
    return subprocess.run(
        [str(ATTENDWISE), "policy", *args], capture_output=True, text=True, timeout=300, check=False, env=env
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    rows = marks({PA: absent_on([0, 1]), GOOD: present}, d("2025-11-07"))
    (root / "marks.csv").write_text(
        "upn,date,session,code\n"
        + "".join(f"{m.upn},{m.date.isoformat()},{m.session},{m.code}\n" for m in rows)
    )
    (root / "calendar.csv").write_text(CALENDAR.to_csv())
    (root / "events.csv").write_text(f"upn,date,event\n{PA},2025-10-07,meeting_missed\n")
    (root / "bad-events.csv").write_text(
        f"upn,date,event\n{PA},2025-10-07,meeting_skipped\nX1,2025-13-01,meeting_missed\n"
    )
    (root / "bad.yaml").write_text(
        "format: attendwise-policy/1\nid: x\nname: X\nversion: {number: 1, effective_from: 2025-09-01}\n"
        "evaluation: {cadence: weekly}\nstages:\n  - number: 1\n    name: One\n    enter:\n"
        "      after_weeks: soon\n      when: {attendence: {below: 90}}\n"
    )
    return {p.stem: p for p in root.iterdir()}


def test_validate_accepts_a_preset_file() -> None:
    preset = Path(__file__).parents[2] / "attendwise/policies/presets/dormston.yaml"
    result = run("validate", str(preset))
    assert result.returncode == 0, result.stderr
    assert "valid (dormston: version 1 from 2021-09-01, version 2 from 2024-09-02)" in result.stdout


def test_validate_prints_every_error_and_exits_1(files: dict[str, Path]) -> None:
    result = run("validate", str(files["bad"]))
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert lines == [
        f"{files['bad']}: line 10, column 20: stage 1: `after_weeks` must be a range like 5-8, got 'soon'",
        f"{files['bad']}: line 11, column 14: stage 1: `attendence` is not a known condition (did you mean "
        "`attendance`?); use one of " + lines[1].split("use one of ")[1],
    ]


def test_schema_is_json_schema() -> None:
    result = run("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_simulate_prints_each_pupils_stages(files: dict[str, Path]) -> None:
    result = run(
        "simulate",
        "--preset",
        "spetisbury",
        "--marks",
        str(files["marks"]),
        "--events",
        str(files["events"]),
        "--calendar",
        str(files["calendar"]),
        "--from",
        "2025-09-01",
        "--to",
        "2025-11-07",
    )
    assert result.returncode == 0, result.stderr
    pupils = {p["upn"]: p for p in json.loads(result.stdout)["pupils"]}
    assert set(pupils) == {PA, GOOD}
    assert (pupils[GOOD]["stage"], pupils[GOOD]["transitions"]) == (0, [])
    pa = pupils[PA]
    assert [(t["date"], t["from"], t["to"]) for t in pa["transitions"]] == [
        ("2025-09-12", 0, 1),
        ("2025-10-03", 1, 2),
        ("2025-10-07", 2, 3),
    ]
    assert pa["stage"] == 3
    assert pa["stage_name"] == "TAC meeting"
    assert set(pa["transitions"][0]) == {"date", "from", "to", "reason", "actions"}
    assert [a["kind"] for a in pa["transitions"][0]["actions"]] == ["phone_call", "letter", "code_guidance"]


def test_simulate_pins_a_preset_version(files: dict[str, Path]) -> None:
    """Dormston's two tables: 25 missed sessions for stage 3 in version 1, 21 in version 2."""
    common = ["--marks", str(files["marks"]), "--from", "2025-09-01", "--to", "2025-10-24"]

    def moves(preset: str) -> list[tuple[str, int]]:
        result = run("simulate", "--preset", preset, *common)
        assert result.returncode == 0, result.stderr
        pupil = next(p for p in json.loads(result.stdout)["pupils"] if p["upn"] == PA)
        return [(t["date"], t["to"]) for t in pupil["transitions"]]

    # Mondays and Tuesdays missed: 4 sessions a week from 8 Sep (8 by 19 Sep, 16 by 3 Oct, 24 by
    # 17 Oct, 28 by 24 Oct).
    assert moves("dormston@1") == [("2025-09-19", 1), ("2025-10-03", 2), ("2025-10-24", 3)]
    assert moves("dormston@2") == [("2025-09-19", 1), ("2025-10-03", 2), ("2025-10-17", 3)]


def test_simulate_rejects_bad_input_with_reasons(files: dict[str, Path]) -> None:
    result = run(
        "simulate",
        "--preset",
        "spetisbury",
        "--marks",
        str(files["marks"]),
        "--events",
        str(files["bad-events"]),
        "--from",
        "2025-09-01",
        "--to",
        "2025-10-10",
    )
    assert result.returncode == 1
    assert "events file row 2: unknown event 'meeting_skipped'" in result.stderr
    assert "events file row 3:" in result.stderr
    unknown = run(
        "simulate",
        "--preset",
        "nowhere",
        "--marks",
        str(files["marks"]),
        "--from",
        "2025-09-01",
        "--to",
        "2025-09-05",
    )
    assert unknown.returncode == 1
    assert "there is no preset 'nowhere'" in unknown.stderr
