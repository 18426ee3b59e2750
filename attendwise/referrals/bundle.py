"""The frozen evidence bundle as one indexed, paginated PDF.

At submission the bundle's canonical content is turned into a plain context (strings, numbers,
lists: never ORM objects), rendered by the letters package's public renderer (sandboxed Jinja,
then WeasyPrint in its locked-down child process with a time limit) with this package's own
template and stylesheet, and stored with the LA's copy. The first page indexes every part with
its page number (``target-counter``) and its SHA-256; every page carries "Page X of Y".

Parts appear in the order an LA reads a case: the registration certificate, letters, the contact
log, meetings and minutes, plans and reviews, the support-first record, everyone with parental
responsibility, siblings, then the case chronology and anything else the school supplied.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from attendwise.letters import render

TEMPLATES = Path(__file__).parent / "templates" / "referrals" / "pdf"

SECTIONS: tuple[tuple[str, str], ...] = (
    ("registration_certificate", "Registration certificate"),
    ("warning_letter", "Letters"),
    ("contact_log", "Contact log"),
    ("meeting", "Meetings and minutes"),
    ("plan", "Plans and reviews"),
    ("support", "Support-first record"),
    ("parents", "Contacts with parental responsibility"),
    ("siblings", "Siblings"),
    ("timeline", "Case chronology"),
)
SECTION_LABELS = dict(SECTIONS)
_RANK = {key: n for n, (key, _label) in enumerate(SECTIONS)}


def section_rank(section: str) -> int:
    """Where a part of this section goes in the bundle (unknown sections last)."""
    return _RANK.get(section, len(SECTIONS))


def _date(value: str | None) -> str:
    if not value:
        return ""
    day = dt.date.fromisoformat(value[:10])
    return f"{day.day} {day:%B %Y}"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _fields(content: dict[str, Any], skip: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """Scalar and list fields of a part as label/value pairs, in a stable order."""
    return [
        {"label": key.replace("_", " ").capitalize(), "value": _text(value)}
        for key, value in sorted(content.items())
        if key not in skip and not isinstance(value, dict) and _text(value) != ""
    ]


def part_sha256(item: dict[str, Any]) -> str:
    """The hash of one part, as stored on its :class:`~attendwise.referrals.models.BundleItem`."""
    data = json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(data).hexdigest()


def _part(n: int, item: dict[str, Any]) -> dict[str, Any]:
    content = item["content"]
    part: dict[str, Any] = {
        "n": n,
        "anchor": f"part-{n}",
        "section": SECTION_LABELS.get(item["section"], item["section"].replace("_", " ").capitalize()),
        "title": item["title"],
        "dated": _date(item["dated"]),
        "sha256": part_sha256(item),
        "kind": "fields",
        "fields": [],
        "rows": [],
        "windows": [],
        "text": "",
    }
    if item["section"] == "registration_certificate":
        part["kind"] = "certificate"
        part["fields"] = [
            {"label": "From", "value": _date(content.get("from"))},
            {"label": "To", "value": _date(content.get("to"))},
            {"label": "School weeks", "value": _text(content.get("school_weeks"))},
        ]
        part["rows"] = [[_date(day), am or "-", pm or "-"] for day, am, pm in content.get("rows", [])]
        part["windows"] = [
            {
                "start": _date(w["from"]),
                "end": _date(w["to"]),
                "sessions": [f"{_date(d)} {s} ({c})" for d, s, c in w["sessions"]],
            }
            for w in content.get("penalty_windows", [])
        ]
    elif item["section"] == "timeline":
        part["kind"] = "table"
        part["rows"] = [[_date(when), kind, title] for when, kind, title in content.get("entries", [])]
    elif item["section"] == "siblings":
        part["kind"] = "table"
        part["rows"] = [
            [s["name"], _text(s.get("year_group")), _text(s.get("attendance_pct"))]
            for s in content.get("siblings", [])
        ]
    elif item["section"] == "plan":
        part["fields"] = _fields(content, skip=("reviews",))
        part["rows"] = [[_date(r["on"]), r["outcome"], r["note"]] for r in content.get("reviews", [])]
        part["kind"] = "plan"
    elif set(content) == {"text"}:
        part["kind"] = "text"
        part["text"] = content["text"]
    else:
        part["fields"] = _fields(content, skip=("parent_key",))
    return part


def context(content: dict[str, Any], digest: str) -> dict[str, Any]:
    """The plain context the bundle template renders: only strings, numbers and lists."""
    referral, pupil = content["referral"], content["pupil"]
    return {
        "kind_label": referral["kind_label"],
        "reason": referral.get("reason", ""),
        "school": referral["school"],
        "school_urn": referral.get("school_urn") or "",
        "assembled_on": _date(referral["assembled_on"]),
        "sha256": digest,
        "pupil": {
            "name": pupil["name"],
            "upn": pupil["upn"],
            "date_of_birth": _date(pupil["date_of_birth"]),
            "year_group": _text(pupil.get("year_group")),
        },
        "checklist": [
            {"label": c["label"], "satisfied": bool(c["satisfied"])} for c in content.get("checklist", [])
        ],
        "parts": [_part(n, item) for n, item in enumerate(content["items"], start=1)],
    }


def render_html(content: dict[str, Any], digest: str) -> str:
    """The bundle as HTML, rendered in the letters sandbox from a plain context."""
    source = (TEMPLATES / "bundle.html").read_text(encoding="utf-8")
    return render.render_html(source, context(content, digest))


def render_pdf(html: str) -> bytes:
    """The HTML as a PDF, in the letters package's render process (time and memory limited)."""
    css = (TEMPLATES / "bundle.css").read_text(encoding="utf-8")
    return render.renderer().render(html, css, {})
