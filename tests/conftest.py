"""Session-wide rules for the kit's own tests: no test depends on wall-clock speed, none leaves anything behind.

* Hypothesis runs without deadlines (profile ``aether-kit``): the 2 cores are
  shared, and a property that takes 372 ms instead of 200 ms under load is not
  wrong.  What bounds a hang is each test's own generous timeout.
* The session gets a private temporary directory: ``TMPDIR`` points at it for
  this process, the xdist workers and every child they start (pytest's own
  ``tmp_path`` directories stay where pytest keeps them, through
  ``PYTEST_DEBUG_TEMPROOT``).  At the end it must be empty and no process that
  inherited it may still run; otherwise the run fails, listing the leftovers.
  The directory is removed either way.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("aether-kit", deadline=None)

SESSION_ENV = "AETHER_KIT_TEST_SESSION_TMPDIR"
# Generous: processes that end by themselves when the run ends take well under a second.
PROCESS_EXIT_GRACE = 30
_SESSION_TMPDIR = pytest.StashKey[Path]()


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _is_the_kits_own_test_session(config: pytest.Config) -> bool:
    # Also loaded when the CLI runs pytest from the repository root (pytest loads test*/conftest.py
    # of the invocation directory when no argument is a path): then it must stay out of the way.
    return config.inipath is not None and config.inipath.resolve() == Path(__file__).resolve().parent.parent / "pyproject.toml"


def pytest_configure(config: pytest.Config) -> None:
    if not _is_the_kits_own_test_session(config):
        return
    settings.load_profile("aether-kit")
    if _is_xdist_worker(config) or SESSION_ENV in os.environ:
        return  # the controller (or an outer session) made the temp dir
    system_tmp = tempfile.gettempdir()
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", system_tmp)
    private = tempfile.mkdtemp(prefix="aether-kit-tests-", dir=system_tmp)
    os.environ["TMPDIR"] = os.environ[SESSION_ENV] = private
    tempfile.tempdir = private  # gettempdir() caches its answer
    config.stash[_SESSION_TMPDIR] = Path(private)


def _processes_of_the_session(marker: bytes) -> list[tuple[int, int, str]]:
    """(pid, parent pid, command) of the processes other than this one whose environment carries ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environment = (entry / "environ").read_bytes()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):  # gone meanwhile, or not ours to read
            continue
        if parent == os.getpid() and "multiprocessing.resource_tracker" in command:
            continue  # this process's own tracker: it exits when this process does, after the check
        if marker in environment.split(b"\0"):
            found.append((int(entry.name), parent, command or "?"))
    return found


@pytest.hookimpl(trylast=True)  # after xdist has told its workers to stop
def pytest_sessionfinish(session: pytest.Session) -> None:
    private = session.config.stash.get(_SESSION_TMPDIR, None)
    if private is None:
        return
    processes: list[tuple[int, int, str]] = []
    if Path("/proc").is_dir():
        marker = f"{SESSION_ENV}={private}".encode()
        # xdist's workers, and helpers such as multiprocessing's resource tracker, exit on their own once
        # the run is over; what still runs after the grace period was left behind.
        deadline = time.monotonic() + PROCESS_EXIT_GRACE
        while (processes := _processes_of_the_session(marker)) and time.monotonic() < deadline:
            time.sleep(0.2)
    files = sorted(str(path.relative_to(private)) for path in private.rglob("*"))
    shutil.rmtree(private, ignore_errors=True)
    if not processes and not files:
        return
    lines = [f"the tests left things behind (session temp dir {private}, now removed):"]
    lines += [f"  process still running: pid {pid} (parent {parent}): {command}" for pid, parent, command in processes]
    lines += [f"  left in the temp dir: {name}" for name in files[:50]]
    if len(files) > 50:
        lines.append(f"  … and {len(files) - 50} more")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("=", "LEFTOVERS", red=True, bold=True)
        reporter.write_line("\n".join(lines))
    else:
        print("\n".join(lines))
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
