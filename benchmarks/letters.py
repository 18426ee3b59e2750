"""Letters: the full pipeline against bare WeasyPrint, on the same single-page letter.

One command (embedded SQLite under a scratch data directory, no Redis: jobs run inline)::

    .venv/bin/python benchmarks/letters.py               # 1,000 letters each way
    .venv/bin/python benchmarks/letters.py --count 100

Setup: one school (the Dothill preset) with 30 pupils, a term of marks and a parent each.
Then, interleaved in blocks of 50 so both halves see the same machine load, it times

(a) the full pipeline per letter: ``queue_letter`` (the pupil's figures and their year
    group's, the sandboxed template check, the letter row), the commit, and the render job
    (sandboxed Jinja, WeasyPrint PDF/A in the locked-down child process with the asset-only
    fetcher, the content-addressed store, the document row);
(b) bare WeasyPrint: ``HTML(string=...).write_pdf(stylesheets=[CSS(string=...)],
    pdf_variant="pdf/a-3b")`` in this process on the same letter's HTML;

and prints letters per second for each, the pipeline's overhead over bare WeasyPrint
(target <= 25%) and the pipeline's time for 1,000 letters (target < 2 minutes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pypdf import PdfReader

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attendwise.attendance.models import Contact, PupilContact
from attendwise.letters import render, services
from attendwise.letters.models import Letter, LetterStatus
from attendwise.platform import tenancy
from attendwise.platform.app import create_app
from attendwise.platform.cli import upgrade_database
from attendwise.platform.config import Settings
from attendwise.platform.db import db
from attendwise.tenants import services as tenants
from attendwise.tenants.models import OrgKind
from tests.casework.conftest import build_school

KEY = "dothill-reminder"
ON = dt.date(2026, 11, 20)
BLOCK = 50
PUPILS = 30


def setup(data_dir: Path) -> tuple[object, int, list[int]]:
    app = create_app(settings=Settings.from_env({"ATTENDWISE_DATA_DIR": str(data_dir)}))
    with app.app_context():
        upgrade_database()
        session = db.session()
        with tenancy.system_context("benchmark setup"):
            la = tenants.create_organisation(session, kind=OrgKind.LA, name="Bench LA", la_code="893")
            school = tenants.create_organisation(
                session,
                kind=OrgKind.SCHOOL,
                name="Dothill Primary School",
                urn="123456",
                laestab="8932001",
                la=la,
            )
        session.commit()
        built = build_school(session, school, pupils=PUPILS, absent_pupils=8, preset="dothill", marks_to=ON)
        with tenancy.tenant_context(school.id):
            for n, pupil in enumerate(built.pupils):
                contact = Contact(
                    org_id=school.id,
                    title="Ms",
                    forename=f"Parent{n}",
                    surname=pupil.legal_surname,
                    address_lines=[f"{n} High Street", "Telford"],
                    postcode="TF1 1AA",
                )
                session.add(contact)
                session.flush()
                session.add(
                    PupilContact(
                        org_id=school.id,
                        pupil_id=pupil.id,
                        contact_id=contact.id,
                        relationship_to_pupil="Mother",
                        parental_responsibility=True,
                        lives_with_pupil=True,
                    )
                )
            session.commit()
        pupil_ids = [pupil.id for pupil in built.pupils]
        school_id = school.id
    return app, school_id, pupil_ids


def pipeline(app: object, school_id: int, pupil_ids: list[int], start: int, count: int) -> float:
    with app.app_context(), tenancy.tenant_context(school_id):  # type: ignore[attr-defined]
        session = db.session()
        began = time.perf_counter()
        for n in range(start, start + count):
            services.queue_letter(
                session,
                school_id,
                pupil_ids[n % len(pupil_ids)],
                KEY,
                None,
                None,
                idempotency_key=f"bench-{n}",
                on=ON,
            )
            session.commit()
        elapsed = time.perf_counter() - began
        db.session.remove()
    return elapsed


def bare(html: str, css: str, count: int) -> float:
    from weasyprint import CSS, HTML

    began = time.perf_counter()
    for _ in range(count):
        HTML(string=html).write_pdf(stylesheets=[CSS(string=css)], pdf_variant=render.PDF_VARIANT)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="attendwise-bench-letters-"))
    try:
        app, school_id, pupil_ids = setup(data_dir)
        with app.app_context(), tenancy.tenant_context(school_id):  # type: ignore[attr-defined]
            services.queue_letter(
                db.session(), school_id, pupil_ids[0], KEY, None, None, idempotency_key="warm", on=ON
            )
            db.session().commit()
            letter = db.session().query(Letter).order_by(Letter.id).first()
            assert letter is not None
            assert letter.status == LetterStatus.RENDERED
            html = render.render_html(render.default_source(KEY), letter.context)
            db.session.remove()
        css = render.letter_css()
        sample = render.render_pdf_here(html, css, {})
        pages = len(PdfReader(io.BytesIO(sample)).pages)
        bare(html, css, 3)
        piped = plain = 0.0
        done = 0
        while done < args.count:
            block = min(BLOCK, args.count - done)
            piped += pipeline(app, school_id, pupil_ids, done, block)
            plain += bare(html, css, block)
            done += block
            print(
                f"  {done}/{args.count}: pipeline {piped:.1f} s, bare {plain:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        with app.app_context(), tenancy.tenant_context(school_id):  # type: ignore[attr-defined]
            rendered = db.session().query(Letter).filter(Letter.status == LetterStatus.RENDERED).count()
        render.renderer().close()
        overhead = piped / plain - 1
        print(f"letter: {KEY}, {pages} page(s); {rendered} letters rendered and stored")
        print(f"pipeline:  {args.count} letters in {piped:.1f} s = {args.count / piped:.2f} letters/s")
        print(f"bare:      {args.count} renders in {plain:.1f} s = {args.count / plain:.2f} renders/s")
        print(f"ratio pipeline/bare: {piped / plain:.3f} (overhead {overhead:+.1%}; target <= +25%)")
        per_thousand = piped / args.count * 1000
        print(f"1,000 letters through the pipeline: {per_thousand:.0f} s (target < 120 s)")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
