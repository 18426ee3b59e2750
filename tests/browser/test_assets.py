"""The committed front-end build: right versions, no GOV.UK-only branding, nothing missing."""

from __future__ import annotations

import re
from importlib.metadata import metadata, version
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "attendwise" / "platform" / "static"
VENDOR = STATIC / "vendor"
CSS = VENDOR / "frontend" / "frontend.min.css"


def _built_versions() -> dict[str, str]:
    lines = (VENDOR / "VERSIONS.txt").read_text(encoding="utf-8").splitlines()[1:]
    return {name: rest.split()[0] for name, rest in (line.split(" ", 1) for line in lines)}


def test_govuk_frontend_is_the_release_the_jinja_macros_target() -> None:
    jinja = version("govuk-frontend-jinja")
    readme = str(metadata("govuk-frontend-jinja").json["description"])
    row = re.search(rf"\|\s*\[{re.escape(jinja)}\][^|]*\|\s*\[(\d+\.\d+\.\d+)\]", readme)
    assert row, f"govuk-frontend-jinja {jinja} lists no GOV.UK Frontend release"
    assert _built_versions()["govuk-frontend"] == row.group(1), (
        "rebuild the assets (infra/frontend/build.sh) for the GOV.UK Frontend release "
        f"govuk-frontend-jinja {jinja} targets: {row.group(1)}"
    )


def test_no_gds_transport_font_and_no_crown() -> None:
    css = CSS.read_text(encoding="utf-8")
    assert "GDS Transport" not in css
    assert "@font-face" not in css
    assert "system-ui" in css
    files = [p.name.lower() for p in STATIC.rglob("*") if p.is_file()]
    assert not [f for f in files if f.endswith((".woff", ".woff2"))]
    assert not [f for f in files if "crown" in f or "crest" in f or f.startswith("govuk-icon")]


def test_every_image_the_stylesheet_uses_is_shipped() -> None:
    css = CSS.read_text(encoding="utf-8")
    used = set(re.findall(r'url\("?images/([^")]+)', css))
    # The GOV.UK footer's licence crest is in GOV.UK Frontend's CSS but never rendered here.
    used.discard("govuk-crest.svg")
    assert used
    missing = sorted(name for name in used if not (CSS.parent / "images" / name).is_file())
    assert not missing, f"images referred to by frontend.min.css but not built: {missing}"
