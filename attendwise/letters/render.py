"""Letters as PDFs: sandboxed Jinja → HTML → WeasyPrint in a locked-down child process.

Three rules keep untrusted text (pupil and contact names, notes, a school's own template)
from reaching anything but the page:

* templates run in a :class:`jinja2.sandbox.SandboxedEnvironment` with autoescape and
  :class:`jinja2.StrictUndefined`, over a plain, schema-dumped context (never ORM objects):
  ``{{ config }}`` is refused as undefined and ``{{ ''.__class__ }}`` as unsafe;
* WeasyPrint fetches through :class:`AssetFetcher`, a ``URLFetcher`` subclass that serves
  only assets loaded beforehand under the ``aw-asset:`` scheme (the letter CSS, the school's
  logo and signature) and stops the render for anything else (``file:``, ``http(s):``,
  ``data:``, redirects), never falling back to the default fetcher; the trusted CSS is
  passed as ``CSS(string=...)``;
* the render itself runs in a long-lived child process (:class:`Renderer`) whose address
  space is capped with ``resource.setrlimit(RLIMIT_AS)`` and which is killed and replaced
  when a render passes its time limit. The child only renders: it holds no database
  connection and no application secrets. Bulk runs use a :class:`RendererPool` of such
  children, one per CPU, each reused for every letter it is given.

A child parses each distinct trusted stylesheet once, with one ``FontConfiguration`` for its
lifetime, and reuses both for every later letter (WeasyPrint supports sharing them between
documents); only the letter's own HTML is parsed and laid out per render.

Output is PDF/A-3b.
"""

from __future__ import annotations

import functools
import os
import pickle
import queue
import re
import select
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

TEMPLATES = Path(__file__).parent / "templates" / "letters"
DEFAULTS = TEMPLATES / "defaults"
ASSET_SCHEME = "aw-asset"
PDF_VARIANT = "pdf/a-3b"
DEFAULT_TIMEOUT = 30.0  # seconds per render
STARTUP_TIMEOUT = 120.0  # seconds for a new render process to load WeasyPrint and the fonts
DEFAULT_MEMORY = 1536 * 1024 * 1024  # bytes of address space for the render process
_KEY = re.compile(r"[a-z0-9][a-z0-9-]{0,79}")

Asset = tuple[bytes, str]  # (content, MIME type)


class LetterTemplateError(ValueError):
    """A letter template is missing, unsafe, or refers to something the context lacks."""


class RenderError(RuntimeError):
    """WeasyPrint could not produce the PDF (refused URL, time or memory limit, crash)."""


# ---- templates -----------------------------------------------------------------------------


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(DEFAULTS)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.clear()
    return env


_ENV = _environment()


def default_keys() -> dict[str, str]:
    """Every letter key that has a default template, mapped to its preset."""
    return {
        path.stem: path.parent.name
        for path in sorted(DEFAULTS.glob("*/*.html"))
        if not path.name.startswith("_") and path.parent.name != "common"
    }


_PACKAGE_DEFAULTS: dict[str, Path] = {}


def register_package_default(key: str, path: Path) -> None:
    """Let a feature package supply the default template of a letter that no preset sends
    (casework's copy of meeting minutes). Such letters are queued and rendered like any
    other; they are not listed among the presets' letters a school copies and edits."""
    if not _KEY.fullmatch(key) or key in default_keys():
        raise LetterTemplateError(f"{key!r} cannot be registered as a package letter template")
    _PACKAGE_DEFAULTS[key] = path


def default_source(key: str) -> str:
    """The default template text for ``key`` (what a school copies to make its own)."""
    if key in _PACKAGE_DEFAULTS:
        return _PACKAGE_DEFAULTS[key].read_text(encoding="utf-8")
    preset = default_keys().get(key) if _KEY.fullmatch(key) else None
    if preset is None:
        raise LetterTemplateError(f"there is no default letter template {key!r}")
    return (DEFAULTS / preset / f"{key}.html").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=64)
def _compiled(source: str) -> Template:
    """Template text compiled once (a bulk run renders the same few templates many times)."""
    return _ENV.from_string(source)


def render_html(source: str, context: Mapping[str, Any]) -> str:
    """Render template text in the sandbox. Raise :class:`LetterTemplateError` naming the fault."""
    try:
        return _compiled(source).render(**context)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        raise LetterTemplateError(f"the letter template cannot be used{where}: {exc.message}") from exc


def letter_css() -> str:
    return (TEMPLATES / "letter.css").read_text(encoding="utf-8")


# ---- the fetcher -------------------------------------------------------------------------------


def _fetcher_class() -> type:
    from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

    class RefusedURL(FatalURLFetchingError):
        """A render asked for something other than a bundled asset."""

    class AssetFetcher(URLFetcher):
        """Serve ``aw-asset:<name>`` from memory; stop the render for every other URL."""

        def __init__(self, assets: Mapping[str, Asset]) -> None:
            super().__init__(timeout=1, allowed_protocols=(ASSET_SCHEME,), allow_redirects=False)
            self._assets = dict(assets)

        def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
            scheme, _, name = url.partition(":")
            if scheme.lower() == ASSET_SCHEME and name in self._assets:
                content, mime_type = self._assets[name]
                return URLFetcherResponse(url, content, {"Content-Type": mime_type})
            raise RefusedURL(f"refused to fetch {url[:120]!r}: letters may use only bundled assets")

        def open(self, url: Any, data: Any = None, timeout: Any = None) -> URLFetcherResponse:
            return self.fetch(url if isinstance(url, str) else url.full_url)

    return AssetFetcher


class _Stylesheets:
    """The child's parsed trusted stylesheets (by text) and its one font configuration."""

    def __init__(self) -> None:
        self._parsed: dict[str, Any] = {}
        self._fonts: Any = None

    def fonts(self) -> Any:
        if self._fonts is None:
            from weasyprint.text.fonts import FontConfiguration

            self._fonts = FontConfiguration()
        return self._fonts

    def get(self, css: str) -> Any:
        """``css`` parsed once; a URL inside it is refused like any other (it has no assets)."""
        from weasyprint import CSS

        sheet = self._parsed.get(css)
        if sheet is None:
            if len(self._parsed) >= 8:
                self._parsed.clear()
            sheet = CSS(string=css, url_fetcher=_fetcher_class()({}), font_config=self.fonts())
            self._parsed[css] = sheet
        return sheet


_STYLESHEETS = _Stylesheets()


def render_pdf_here(html: str, css: str, assets: Mapping[str, Asset]) -> bytes:
    """Render in this process (the child's work), reusing the parsed stylesheet and fonts."""
    from weasyprint import HTML

    fetcher = _fetcher_class()(assets)
    document = HTML(string=html, url_fetcher=fetcher, base_url=None)
    pdf: bytes = document.write_pdf(
        stylesheets=[_STYLESHEETS.get(css)],
        font_config=_STYLESHEETS.fonts(),
        pdf_variant=PDF_VARIANT,
        uncompressed_pdf=False,
    )
    return pdf


# ---- the child process -----------------------------------------------------------------------


def child_main(memory_bytes: int) -> None:
    """The render child's loop: pickled requests on stdin, pickled replies on stdout."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the reply stream
    import weasyprint  # noqa: F401 - loaded before the first letter's clock starts

    _STYLESHEETS.fonts()
    pickle.dump(("ready", None), replies, protocol=pickle.HIGHEST_PROTOCOL)
    replies.flush()
    while True:
        try:
            html, css, assets = pickle.load(requests)  # noqa: S301 - from our own parent process
        except EOFError:
            return
        try:
            reply: tuple[str, Any] = ("ok", render_pdf_here(html, css, assets))
        except MemoryError:
            reply = ("error", "the letter needed more memory than a render may use")
        except BaseException as exc:
            reply = ("error", f"{type(exc).__name__}: {exc}"[:500])
        pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()


@dataclass
class Renderer:
    """One render child, started on first use and replaced after a timeout or crash.

    The child is a fresh interpreter (``python -m attendwise.letters.render_child``), so it
    inherits no database connection, open file or thread from the caller.
    """

    timeout: float = DEFAULT_TIMEOUT
    memory_bytes: int = DEFAULT_MEMORY
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def _start(self) -> subprocess.Popen[bytes]:
        """The running child, or a new one once it has said it is ready: its start-up (an
        interpreter, WeasyPrint, the fonts) does not count against a letter's time limit."""
        if self._process is None or self._process.poll() is not None:
            self.close()
            process = self._process = subprocess.Popen(  # noqa: S603 - our own module, no shell
                [sys.executable, "-m", "attendwise.letters.render_child", str(self.memory_bytes)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                close_fds=True,
            )
            assert process.stdout is not None
            try:
                ready, _, _ = select.select([process.stdout], [], [], STARTUP_TIMEOUT)
                hello = pickle.load(process.stdout) if ready else None  # noqa: S301 - our own child
            except (EOFError, OSError, pickle.UnpicklingError):
                hello = None
            if hello != ("ready", None):
                self.close()
                raise RenderError(
                    "the render process could not start (memory limit, or the machine is overloaded)"
                )
        return self._process

    def render(self, html: str, css: str, assets: Mapping[str, Asset]) -> bytes:
        with self._lock:
            process = self._start()
            assert process.stdin is not None
            assert process.stdout is not None
            try:
                pickle.dump((html, css, dict(assets)), process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                process.stdin.flush()
                ready, _, _ = select.select([process.stdout], [], [], self.timeout)
                reply = pickle.load(process.stdout) if ready else None  # noqa: S301 - our own child
            except (EOFError, OSError, pickle.UnpicklingError) as exc:
                self.close()
                raise RenderError("the render process stopped unexpectedly (memory limit?)") from exc
            if reply is None:
                self.close()
                raise RenderError(f"the letter took longer than {self.timeout:g} s to render")
            status, payload = reply
            if status != "ok":
                raise RenderError(payload)
            return bytes(payload)

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait(10)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


class RendererPool:
    """Several :class:`Renderer` children rendering letters side by side (bulk runs).

    ``size`` defaults to the number of CPUs. Each child keeps its own time and memory limit
    and is replaced on its own after a timeout or crash; the children start on first use
    and stay up for the next letter, so a run pays the interpreter and font start-up once
    per child, not once per letter. The parent threads only wait on the children's pipes.
    """

    def __init__(
        self, size: int | None = None, *, timeout: float = DEFAULT_TIMEOUT, memory_bytes: int = DEFAULT_MEMORY
    ) -> None:
        self.size = max(1, size or os.cpu_count() or 1)
        self._idle: queue.SimpleQueue[Renderer] = queue.SimpleQueue()
        self._children = [Renderer(timeout=timeout, memory_bytes=memory_bytes) for _ in range(self.size)]
        for child in self._children:
            self._idle.put(child)
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _render(self, html: str, css: str, assets: Mapping[str, Asset]) -> bytes:
        child = self._idle.get()
        try:
            return child.render(html, css, assets)
        finally:
            self._idle.put(child)

    def submit(self, html: str, css: str, assets: Mapping[str, Asset]) -> Future[bytes]:
        """Start rendering on the next free child; the future raises :class:`RenderError`."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.size, thread_name_prefix="letter-render")
            return self._executor.submit(self._render, html, css, dict(assets))

    def render_many(
        self, letters: Iterator[tuple[str, Mapping[str, Asset]]], css: str | None = None
    ) -> Iterator[bytes | RenderError]:
        """Render ``(html, assets)`` pairs in order, at most two per child in flight; yields each
        PDF, or the :class:`RenderError` that stopped that one letter, in the same order."""
        sheet = css if css is not None else letter_css()
        pending: list[Future[bytes]] = []
        for html, assets in letters:
            pending.append(self.submit(html, sheet, assets))
            if len(pending) >= 2 * self.size:
                yield _outcome(pending.pop(0))
        for future in pending:
            yield _outcome(future)

    def pids(self) -> list[int]:
        """The process ids of the children running now (for monitoring and the benchmark)."""
        return [child.pid for child in self._children if child.pid is not None]

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        for child in self._children:
            child.close()


def _outcome(future: Future[bytes]) -> bytes | RenderError:
    try:
        return future.result()
    except RenderError as exc:
        return exc


_renderer = Renderer()
_pool = RendererPool()  # no process starts until the first bulk render


def renderer() -> Renderer:
    return _renderer


def pool() -> RendererPool:
    """The process's render pool for bulk runs, one child per CPU."""
    return _pool


def render_pdf(html: str, assets: Mapping[str, Asset] | None = None) -> bytes:
    """HTML (already rendered from a sandboxed template) → PDF/A bytes, in the child process."""
    return _renderer.render(html, letter_css(), assets or {})


def registration_certificate_source() -> str:
    return (DEFAULTS / "common" / "registration-certificate.html").read_text(encoding="utf-8")
