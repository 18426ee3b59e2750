"""Letters: the bulk run ("this week's letters") against bare WeasyPrint with the same parallelism.

One command (embedded SQLite under a scratch data directory, no Redis: jobs run inline)::

    .venv/bin/python benchmarks/letters.py                          # 1,000 letters each way
    .venv/bin/python benchmarks/letters.py --count 200 --single 40  # a quick run

Setup: one school (the Dothill preset) with 30 pupils, a term of marks and a parent each.
Then, interleaved in blocks of 100 so both sides see the same machine load, it times

(a) the full pipeline, parallel: 100 open letter tasks, ``start_run`` and the commit, whose
    job (inline here) queues each task's letter (the pupil's figures and their year group's,
    the sandboxed template, the letter row), renders it as PDF/A on the render pool (one
    locked-down child per CPU, asset-only fetcher, time and memory limits), stores the PDF and
    HTML by content hash with a document row, and merges the block into one print batch;
(b) bare WeasyPrint, parallel: the same letters' HTML through
    ``HTML(string=...).write_pdf(stylesheets=[sheet], font_config=fonts, pdf_variant="pdf/a-3b")``
    in a ``multiprocessing`` pool of the same size (workers started and warmed up beforehand,
    as the render children are), each worker parsing the CSS once and keeping one
    ``FontConfiguration`` as the render children do: like with like. For reference it also
    times, on the first block, the plain ``write_pdf(stylesheets=[CSS(string=...)])`` that
    parses the CSS and loads the fonts again for every letter.

It also times ``--single`` letters one at a time on one core each way, the way a single
letter is made (``queue_letter``, commit, the render job in the one render child) and bare
WeasyPrint in this process, and prints letters per second for all four, the parallel
pipeline's overhead over parallel bare WeasyPrint (target <= 25%) and its time for 1,000
letters (target < 2 minutes). Exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pypdf import PdfReader

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attendwise.attendance.models import Contact, PupilContact
from attendwise.casework.models import Task, TaskKind, TaskStatus
from attendwise.letters import render, services, storage
from attendwise.letters.models import Document, Letter, LetterRun, LetterStatus
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
BLOCK = 100
PUPILS = 30


def setup(data_dir: Path) -> tuple[Any, int, list[int]]:
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


def pipeline_run(
    app: Any, school_id: int, pupil_ids: list[int], start: int, count: int
) -> tuple[float, list[str]]:
    """(a) for one block: returns the seconds and the HTML of the letters it made."""
    with app.app_context(), tenancy.tenant_context(school_id):
        session = db.session()
        for n in range(start, start + count):
            session.add(
                Task(
                    org_id=school_id,
                    pupil_id=pupil_ids[n % len(pupil_ids)],
                    kind=TaskKind.LETTER,
                    title=f"Letter: {KEY}",
                    params={"template": KEY, "to": "parent"},
                    due_on=ON,
                )
            )
        session.commit()
        began = time.perf_counter()
        run_id = services.start_run(session, school_id, ON, user_id=None).id
        session.commit()  # the run's job runs now (inline)
        elapsed = time.perf_counter() - began
        db.session.remove()
        session = db.session()
        run = session.get(LetterRun, run_id)
        assert run is not None
        assert run.status == "rendered", run.status
        assert run.failed == 0, run.errors
        letters = services.run_letters(session, school_id, run_id)
        assert len(letters) == count, (len(letters), count)
        store = storage.store()
        htmls = []
        for letter in letters:
            assert letter.status == LetterStatus.RENDERED
            document = session.get(Document, letter.document_id)
            assert document is not None
            htmls.append(store.get_html(school_id, document.sha256))
        session.query(Task).filter(Task.status == TaskStatus.OPEN).update({"status": TaskStatus.DONE})
        session.commit()
        db.session.remove()
    return elapsed, htmls


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes ``pids`` have used so far (from /proc)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


_REUSED: dict[str, Any] = {}


def _bare_one(job: tuple[str, str, bool]) -> int:
    """Bare WeasyPrint; with ``reuse``, parsing the stylesheet once and sharing one
    FontConfiguration, as the render children do (the best bare WeasyPrint can do)."""
    from weasyprint import CSS, HTML
    from weasyprint.text.fonts import FontConfiguration

    html, css, reuse = job
    if not reuse:
        pdf = HTML(string=html).write_pdf(stylesheets=[CSS(string=css)], pdf_variant=render.PDF_VARIANT)
        return len(pdf)
    if "fonts" not in _REUSED:
        _REUSED["fonts"] = FontConfiguration()
        _REUSED["sheet"] = CSS(string=css, font_config=_REUSED["fonts"])
    pdf = HTML(string=html).write_pdf(
        stylesheets=[_REUSED["sheet"]], font_config=_REUSED["fonts"], pdf_variant=render.PDF_VARIANT
    )
    return len(pdf)


def bare_parallel(workers: Any, htmls: list[str], css: str, *, reuse: bool) -> float:
    """(b) for one block."""
    began = time.perf_counter()
    sizes = workers.map(_bare_one, [(html, css, reuse) for html in htmls], chunksize=1)
    assert all(sizes)
    return time.perf_counter() - began


def single(app: Any, school_id: int, pupil_ids: list[int], count: int, css: str) -> tuple[float, float]:
    """One letter at a time: the single-letter path, and bare WeasyPrint in this process."""
    piped = plain = 0.0
    with app.app_context(), tenancy.tenant_context(school_id):
        session = db.session()
        for n in range(count):
            began = time.perf_counter()
            [letter_id] = services.queue_letter(
                session,
                school_id,
                pupil_ids[n % len(pupil_ids)],
                KEY,
                None,
                None,
                idempotency_key=f"single-{n}",
                on=ON,
            )
            session.commit()
            piped += time.perf_counter() - began
            letter = session.get(Letter, letter_id)
            assert letter is not None
            assert letter.status == LetterStatus.RENDERED
            html = render.render_html(render.default_source(KEY), letter.context)
            began = time.perf_counter()
            _bare_one((html, css, False))
            plain += time.perf_counter() - began
        db.session.remove()
    return piped, plain


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=1000, help="letters each way, in parallel")
    parser.add_argument("--single", type=int, default=100, help="letters each way, one at a time")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="attendwise-bench-letters-"))
    pool = render.pool()
    css = render.letter_css()
    workers = multiprocessing.get_context("spawn").Pool(pool.size)
    try:
        app, school_id, pupil_ids = setup(data_dir)
        _seconds, warm_html = pipeline_run(app, school_id, pupil_ids, 0, 2 * pool.size)  # start the children
        for reuse in (False, True):  # start and warm the bare workers
            bare_parallel(workers, warm_html * 2, css, reuse=reuse)
        sample = render.render_pdf_here(warm_html[0], css, {})
        pages = len(PdfReader(io.BytesIO(sample)).pages)
        load_before = os.getloadavg()[0]
        bare_pids = [process.pid for process in workers._pool]
        piped = plain = fresh = fresh_pipeline = cpu_piped = cpu_plain = 0.0
        done = 0
        while done < args.count:
            block = min(BLOCK, args.count - done)
            cpu = time.process_time() + cpu_seconds(pool.pids())
            seconds, htmls = pipeline_run(app, school_id, pupil_ids, done, block)
            piped += seconds
            cpu_piped += time.process_time() + cpu_seconds(pool.pids()) - cpu
            cpu = cpu_seconds(bare_pids)
            plain += bare_parallel(workers, htmls, css, reuse=True)
            cpu_plain += cpu_seconds(bare_pids) - cpu
            if not done:  # for reference, on the first block only (it is slow)
                fresh = bare_parallel(workers, htmls, css, reuse=False) / block
                fresh_pipeline = seconds / block
            done += block
            print(
                f"  {done}/{args.count}: pipeline {piped:.1f} s, bare {plain:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        one_piped = one_plain = 0.0
        if args.single:
            one_piped, one_plain = single(app, school_id, pupil_ids, args.single, css)
        load_after = os.getloadavg()[0]
    finally:
        workers.terminate()
        workers.join()
        pool.close()
        render.renderer().close()
        shutil.rmtree(data_dir, ignore_errors=True)
    overhead = piped / plain - 1
    per_thousand = piped / args.count * 1000
    rate, bare_rate = args.count / piped, args.count / plain
    print(f"letter: {KEY}, {pages} page(s); {os.cpu_count()} CPUs, {pool.size} render children")
    print(f"load average (1 min) before/after the timed part: {load_before:.1f} / {load_after:.1f}")
    print(f"parallel pipeline (bulk run): {args.count} letters in {piped:.1f} s = {rate:.2f} letters/s")
    print(f"parallel bare WeasyPrint:     {args.count} renders in {plain:.1f} s = {bare_rate:.2f} renders/s")
    print(
        f"  the same, parsing the CSS and loading fonts for each letter (first block only): "
        f"{1 / fresh:.2f} renders/s (pipeline/that on the same block: {fresh_pipeline / fresh:.3f})"
    )
    if args.single:
        print(
            f"one at a time, pipeline:      {args.single} letters in {one_piped:.1f} s = "
            f"{args.single / one_piped:.2f} letters/s"
        )
        print(
            f"one at a time, bare:          {args.single} renders in {one_plain:.1f} s = "
            f"{args.single / one_plain:.2f} renders/s"
        )
        print(f"bulk run speed-up over one letter at a time: {rate * one_piped / args.single:.2f}x")
    print(
        f"CPU time per letter: pipeline {cpu_piped / args.count * 1000:.0f} ms (this process and the render "
        f"children), bare {cpu_plain / args.count * 1000:.0f} ms; on {pool.size} otherwise idle cores 1,000 "
        f"letters would take about {cpu_piped / args.count * 1000 / pool.size:.0f} s (bare "
        f"{cpu_plain / args.count * 1000 / pool.size:.0f} s)"
    )
    print(f"ratio pipeline/bare (parallel): {piped / plain:.3f} (overhead {overhead:+.1%}; target <= +25%)")
    print(f"1,000 letters through the bulk run: {per_thousand:.0f} s (target < 120 s)")
    return 0 if overhead <= 0.25 and per_thousand < 120 else 1


if __name__ == "__main__":
    sys.exit(main())
