"""The image's base is overridable (infra/build-image.sh builds on a Debian-made base where
Docker Hub is out of reach) without changing what a plain build uses."""

from __future__ import annotations

import re
from pathlib import Path

INFRA = Path(__file__).resolve().parents[2] / "infra"


def test_both_stages_build_on_one_overridable_base_defaulting_to_the_official_image():
    text = (INFRA / "Dockerfile").read_text()
    before_first_stage = text.split("\nFROM ", 1)[0]
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", before_first_stage, flags=re.M)
    # The runtime runs the venv made in the build stage: its interpreter path must exist there too.
    assert re.findall(r"^FROM (\S+) AS (\w+)$", text, flags=re.M) == [
        ("${BASE_IMAGE}", "build"),
        ("${BASE_IMAGE}", "runtime"),
    ]
