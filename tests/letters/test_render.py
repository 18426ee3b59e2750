"""Every default letter renders to a PDF/A with the figures a parent needs; nothing hostile gets out."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

from attendwise.letters import context, render
from tests.letters.conftest import Tripwire

PRESETS = Path(render.__file__).parents[1] / "policies" / "presets"
SHOWN = {"dothill-sal2", "pa-plan-copy"}  # copied to docs/screenshots for the notes
RESULTS = Path(__file__).parents[2] / "test-results" / "letters"
HOSTILE = [
    "<script>alert(1)</script>",
    "{{7*7}}",
    "<img src=file:///etc/passwd>",
    '<link rel="stylesheet" href="http://127.0.0.1:{port}/x.css">',
    '<p style="background: url(http://127.0.0.1:{port}/bg.png)">x</p>',
    "<style>@import url(http://127.0.0.1:{port}/i.css); body { background: url(file:///etc/passwd) }</style>",
]


def preset_letter_keys() -> list[str]:
    keys = set()
    for path in PRESETS.glob("*.yaml"):
        for line in path.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if stripped.startswith("template:"):
                keys.add(stripped.split(":", 1)[1].strip())
    return sorted(keys)


def pdf_text(pdf: bytes) -> str:
    return " ".join(
        " ".join((page.extract_text() or "").split()) for page in PdfReader(io.BytesIO(pdf)).pages
    )


def to_png(pdf: bytes, tmp_path: Path, name: str, dpi: int = 50) -> Path:
    pdftoppm = shutil.which("pdftoppm")
    assert pdftoppm, "pdftoppm is missing: install poppler-utils (the letter tests need it)"
    source = tmp_path / f"{name}.pdf"
    source.write_bytes(pdf)
    subprocess.run(
        [
            pdftoppm,
            "-png",
            "-r",
            str(dpi),
            "-f",
            "1",
            "-l",
            "1",
            "-singlefile",
            str(source),
            str(tmp_path / name),
        ],
        check=True,
        capture_output=True,
    )
    png = tmp_path / f"{name}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return png


def test_every_letter_a_preset_sends_has_a_default_template() -> None:
    keys = preset_letter_keys()
    assert len(keys) >= 19
    assert sorted(render.default_keys()) == keys


@pytest.mark.parametrize("key", preset_letter_keys())
def test_default_letter_renders_with_the_totals_and_the_comparison(key: str, tmp_path: Path) -> None:
    merge = context.sample()
    pdf = render.render_pdf(render.render_html(render.default_source(key), merge))
    assert pdf.startswith(b"%PDF-")
    intents = PdfReader(io.BytesIO(pdf)).trailer["/Root"]["/OutputIntents"]
    assert intents[0].get_object()["/S"] == "/GTS_PDFA1", "the letter is not a PDF/A"
    text = pdf_text(pdf)
    assert "Dothill Primary School" in text
    assert "Dear Ms Example" in text
    assert "Sam has missed 30 of 236 sessions this year (15 school days)" in text
    assert "pupils in Year 5 have missed 11.6 sessions" in text
    assert "Mrs A Head" in text
    png = to_png(pdf, tmp_path, key, dpi=90 if key in SHOWN else 50)
    if key in SHOWN:
        RESULTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(png, RESULTS / f"{key}.png")


def test_letters_for_legal_warnings_say_so() -> None:
    text = pdf_text(
        render.render_pdf(
            render.render_html(render.default_source("dothill-final-warning"), context.sample())
        )
    )
    assert "section 444 of the Education Act 1996" in text
    assert "sent to each parent with parental responsibility" in text


@pytest.mark.parametrize("attack", HOSTILE)
def test_hostile_text_in_every_free_text_field_is_printed_as_text(
    attack: str, tripwire: Tripwire, tmp_path: Path
) -> None:
    value = attack.replace("{port}", str(tripwire.port))
    merge = context.sample(
        school={"name": value, "address_lines": [value], "phone": value, "email": value},
        sender={"name": value, "role": value},
        recipient={"name": value, "salutation": value, "address_lines": [value]},
        pupil={"name": value, "forename": value, "registration_group": value},
        meeting={"date": value, "time": value, "place": value, "with_whom": value},
        plan={"targets": [value]},
        message=value,
        stage=value,
    )
    html = render.render_html(render.default_source("dormston-stage-3"), merge)
    assert "<script>" not in html
    assert "<img src=file" not in html
    assert "<link" not in html
    pdf = render.render_pdf(html)
    text = pdf_text(pdf)
    assert "root:x:0:0" not in text
    if attack == "{{7*7}}":
        assert "{{7*7}}" in text
        assert "49" not in text.replace("{{7*7}}", "")
    else:
        assert "alert(1)" in text or "file:///etc/passwd" in text or "127.0.0.1" in text


@pytest.mark.parametrize(
    "source",
    [
        "{{ config }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ pupil.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ self._TemplateReference__context }}",
        "{{ lipsum.__globals__ }}",
    ],
)
def test_a_school_template_cannot_reach_internals(source: str) -> None:
    with pytest.raises(render.LetterTemplateError):
        render.render_html(source, context.sample())


@pytest.mark.parametrize(
    "markup",
    [
        '<img src="file:///etc/passwd">',
        '<img src="http://127.0.0.1:{port}/logo.png">',
        '<link rel="stylesheet" href="http://127.0.0.1:{port}/s.css">',
        '<div style="background: url(http://127.0.0.1:{port}/bg.png)">x</div>',
        '<style>@import url("http://127.0.0.1:{port}/i.css");</style>',
        '<img src="data:image/svg+xml;utf8,<svg xmlns=%22http://www.w3.org/2000/svg%22><image href=%22file:///etc/passwd%22/></svg>">',
        '<object data="file:///etc/hostname"></object>',
        '<a rel="attachment" href="file:///etc/passwd">x</a>',
    ],
)
def test_a_school_template_that_points_outside_is_refused_without_a_connection(
    markup: str, tripwire: Tripwire
) -> None:
    html = "<html><body><p>Dear parent</p>" + markup.replace("{port}", str(tripwire.port)) + "</body></html>"
    with pytest.raises(render.RenderError, match="refused to fetch"):
        render.render_pdf(html)


def test_bundled_assets_are_served(tmp_path: Path) -> None:
    png = to_png(
        render.render_pdf(render.render_html(render.default_source("dothill-reminder"), context.sample())),
        tmp_path,
        "logo",
    )
    merge = context.sample(school={"logo": True})
    pdf = render.render_pdf(
        render.render_html(render.default_source("dothill-reminder"), merge),
        {"logo": (png.read_bytes(), "image/png")},
    )
    assert len(PdfReader(io.BytesIO(pdf)).pages[0].images) == 1


def test_a_render_over_its_time_limit_is_stopped_and_the_next_one_works() -> None:
    html = render.render_html(render.default_source("dothill-reminder"), context.sample())
    slow = render.Renderer(timeout=0.001)
    try:
        with pytest.raises(render.RenderError, match="longer than"):
            slow.render(html, render.letter_css(), {})
        slow.timeout = 60
        assert slow.render(html, render.letter_css(), {}).startswith(b"%PDF-")
    finally:
        slow.close()


def test_a_render_over_its_memory_limit_fails_cleanly() -> None:
    html = render.render_html(render.default_source("dothill-reminder"), context.sample())
    tight = render.Renderer(memory_bytes=64 * 1024 * 1024)
    try:
        with pytest.raises(render.RenderError):
            tight.render(html, render.letter_css(), {})
    finally:
        tight.close()


@pytest.mark.parametrize("key", preset_letter_keys())
def test_every_default_letter_fits_on_one_page_with_logo_signature_and_a_message(
    key: str, tmp_path: Path
) -> None:
    blank = render.render_pdf(render.render_html(render.default_source("dothill-reminder"), context.sample()))
    image = to_png(blank, tmp_path, "image").read_bytes()
    merge = context.sample(
        school={"logo": True, "signature": True},
        message="Please bring this letter with you to the meeting, or telephone the office to rearrange.",
    )
    pdf = render.render_pdf(
        render.render_html(render.default_source(key), merge),
        {"logo": (image, "image/png"), "signature": (image, "image/png")},
    )
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1, f"{key} runs to {len(reader.pages)} pages"
    text = pdf_text(pdf)
    assert "Yours sincerely" in text
    assert "Please bring this letter with you" in text
    assert len(reader.pages[0].images) == 2


def test_a_render_pool_uses_every_child_reuses_them_and_keeps_one_bad_letter_to_itself(
    tripwire: Tripwire,
) -> None:
    pool = render.RendererPool(2)
    html = render.render_html(render.default_source("dothill-reminder"), context.sample())
    names = [f"Pupil number {n}" for n in range(6)]
    letters = [html.replace("Sam Example", name) for name in names]
    hostile = f'<html><body><img src="http://127.0.0.1:{tripwire.port}/x.png"></body></html>'
    try:
        results = list(pool.render_many(iter([(h, {}) for h in [*letters[:3], hostile, *letters[3:]]])))
        assert isinstance(results[3], render.RenderError)
        assert "refused to fetch" in str(results[3])
        good = [r for n, r in enumerate(results) if n != 3]
        assert all(isinstance(r, bytes) for r in good)
        assert [names[n] in pdf_text(r) for n, r in enumerate(good)] == [True] * 6
        pids = set(pool.pids())
        assert len(pids) == 2, "both children rendered"
        list(pool.render_many(iter([(h, {}) for h in letters])))
        assert set(pool.pids()) == pids
    finally:
        pool.close()


def test_a_pool_child_over_its_time_limit_is_replaced_and_the_others_carry_on() -> None:
    pool = render.RendererPool(2, timeout=0.001)
    html = render.render_html(render.default_source("dothill-reminder"), context.sample())
    try:
        results = list(pool.render_many(iter([(html, {})] * 2)))
        assert all(isinstance(r, render.RenderError) and "longer than" in str(r) for r in results)
        for child in pool._children:
            child.timeout = 60
        assert all(isinstance(r, bytes) for r in pool.render_many(iter([(html, {})] * 3)))
    finally:
        pool.close()
