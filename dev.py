#!/usr/bin/env python3
"""The two ways into Attendwise on a fresh machine (Python 3.11+, standard library only).

    python3 dev.py demo    build the demo database and serve it on http://127.0.0.1:5000
    python3 dev.py test    run the whole test suite (extra arguments go to pytest)

Each does its own set-up first: a virtual environment in .venv, the pinned packages from
requirements.lock installed with pip (then Attendwise itself, editable, without
dependencies), and for the tests Debian's Chromium and poppler-utils. The install is skipped while
requirements.lock and pyproject.toml are unchanged, so running again is fast.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".attendwise-installed"
INPUTS = ("requirements.lock", "pyproject.toml")
CHROMIUM = "/usr/bin/chromium"
USAGE = __doc__.split("\n\n")[1]


def say(message: str) -> None:
    print(f"dev.py: {message}", flush=True)


def run(*args: str | Path, env: dict[str, str] | None = None) -> None:
    subprocess.run([str(a) for a in args], check=True, cwd=ROOT, env=env)


def _inputs_hash() -> str:
    digest = hashlib.sha256()
    for name in INPUTS:
        digest.update((ROOT / name).read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def ensure_environment() -> None:
    """Create .venv and install the locked packages, unless that is already done."""
    if sys.version_info < (3, 11):
        sys.exit(f"dev.py: Attendwise needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        say(f"creating the virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    wanted = _inputs_hash()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    say("installing the pinned packages from requirements.lock (first run only)")
    run(PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", "requirements.lock")
    run(PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "-e", ".")
    STAMP.write_text(wanted + "\n")


# Debian packages the tests need: the browser, and pdftoppm to look at rendered letters.
TEST_PACKAGES = {"chromium": CHROMIUM, "poppler-utils": "pdftoppm"}


def ensure_test_packages() -> None:
    """Browser tests drive Debian's Chromium; a browser must never download itself."""
    missing = [
        package
        for package, program in TEST_PACKAGES.items()
        if not (Path(program).exists() or shutil.which(Path(program).name))
    ]
    if not missing:
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        say(f"installing Debian's {' and '.join(missing)} with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run("apt-get", "update", "-qq", env=env)
        run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, env=env)
        return
    say(f"{' and '.join(missing)} missing and this is not root: install them from Debian for the tests")


def demo(args: list[str]) -> int:
    ensure_environment()
    attendwise = BIN / "attendwise"
    say("building the demo database and starting the server (Ctrl-C stops it)")
    os.execv(attendwise, [str(attendwise), "demo", *args])  # noqa: S606 - our own console script
    return 0


def test(args: list[str]) -> int:
    ensure_environment()
    ensure_test_packages()
    command = [str(PYTHON), "-m", "pytest"]
    if not any(a == "-n" or a.startswith(("-n", "--numprocesses", "-p")) for a in args):
        # Two workers; the route matrix stays in one worker so its report is whole.
        command += ["-n", "2", "--dist", "loadgroup"]
    code = subprocess.run([*command, *args], cwd=ROOT, check=False).returncode
    if code == 5:
        say("pytest collected no tests: that is a failure")
        return 1
    return code


COMMANDS = {"demo": demo, "test": test}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        return COMMANDS[argv[0]](argv[1:])
    except subprocess.CalledProcessError as exc:
        say(f"set-up step failed ({' '.join(map(str, exc.cmd))}, exit {exc.returncode})")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
