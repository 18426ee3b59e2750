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
* the render itself runs in one long-lived child process (:class:`Renderer`) whose address
  space is capped with ``resource.setrlimit(RLIMIT_AS)`` and which is killed and replaced
  when a render passes its time limit. The child only renders: it holds no database
  connection and no application secrets.

Output is PDF/A-3b.
"""

from __future__ import annotations

import pickle
import re
import select
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

TEMPLATES = Path(__file__).parent / "templates" / "letters"
DEFAULTS = TEMPLATES / "defaults"
ASSET_SCHEME = "aw-asset"
PDF_VARIANT = "pdf/a-3b"
DEFAULT_TIMEOUT = 30.0  # seconds per render
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


def render_html(source: str, context: Mapping[str, Any]) -> str:
    """Render template text in the sandbox. Raise :class:`LetterTemplateError` naming the fault."""
    try:
        return _ENV.from_string(source).render(**context)
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


def render_pdf_here(html: str, css: str, assets: Mapping[str, Asset]) -> bytes:
    """Render in this process (the child's work; also the benchmark's bare baseline)."""
    from weasyprint import CSS, HTML

    fetcher = _fetcher_class()(assets)
    document = HTML(string=html, url_fetcher=fetcher, base_url=None)
    stylesheet = CSS(string=css, url_fetcher=fetcher)
    pdf: bytes = document.write_pdf(stylesheets=[stylesheet], pdf_variant=PDF_VARIANT, uncompressed_pdf=False)
    return pdf


# ---- the child process -----------------------------------------------------------------------


def child_main(memory_bytes: int) -> None:
    """The render child's loop: pickled requests on stdin, pickled replies on stdout."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the reply stream
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
        if self._process is None or self._process.poll() is not None:
            self.close()
            self._process = subprocess.Popen(  # noqa: S603 - our own module, no shell
                [sys.executable, "-m", "attendwise.letters.render_child", str(self.memory_bytes)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                close_fds=True,
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


_renderer = Renderer()


def renderer() -> Renderer:
    return _renderer


def render_pdf(html: str, assets: Mapping[str, Asset] | None = None) -> bytes:
    """HTML (already rendered from a sandboxed template) → PDF/A bytes, in the child process."""
    return _renderer.render(html, letter_css(), assets or {})


def registration_certificate_source() -> str:
    return (DEFAULTS / "common" / "registration-certificate.html").read_text(encoding="utf-8")
