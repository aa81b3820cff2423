"""A child process that cleans up after a server launcher that dies without doing so.

The launchers (:mod:`.nats_server`, :mod:`.nats_cluster`, :mod:`.postgres_server`)
stop their servers by PID and remove their directories on every exit path
Python sees.  SIGKILL (the OOM killer, a store that kills the run, a CI job
cancelled hard) is a path no Python code sees: then the watchdog, a small
child in its own session reading the launcher's instructions from a pipe,
finds the pipe closed without a goodbye, SIGKILLs every process (or process
and its children) it was told of and removes every directory.
"""

from __future__ import annotations

import os
import subprocess
import sys

__all__ = ["Watchdog", "WATCHDOG_MARK"]

# The watchdog's argument: how a supervisor that outlives a launcher recognises the watchdogs it
# must let finish their cleanup before it stops what is left (see cli._supervise).
WATCHDOG_MARK = "aether-conformance-watchdog"

# Reads "pid N" / "family N" / "gone N" / "dir PATH" lines; a "closed" line means the launcher
# cleaned up.  End of input without it means the launcher died: kill what it left (a family is a
# process and its children, found before any is killed), remove its directories.
_WATCHDOG = """
import os, shutil, signal, sys
pids, families, dirs = set(), set(), []
for line in sys.stdin:
    word, _, arg = line.rstrip("\\n").partition(" ")
    if word == "pid":
        pids.add(int(arg))
    elif word == "family":
        families.add(int(arg))
    elif word == "gone":
        pids.discard(int(arg))
        families.discard(int(arg))
    elif word == "dir":
        dirs.append(arg)
    elif word == "closed":
        sys.exit(0)
for entry in os.listdir("/proc") if families and os.path.isdir("/proc") else ():
    if not entry.isdigit():
        continue
    try:
        with open(f"/proc/{entry}/stat") as stat:
            parent = int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        continue
    if parent in families:
        pids.add(int(entry))
for pid in sorted(families) + sorted(pids - families):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
for path in dirs:
    shutil.rmtree(path, ignore_errors=True)
"""


class Watchdog:
    """Kills the processes and removes the directories it is told of if this process dies first."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, WATCHDOG_MARK], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, text=True, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self._process.pid

    def watch_process(self, pid: int) -> None:
        self._tell(f"pid {pid}")

    def watch_family(self, pid: int) -> None:
        """A process and its children (a postmaster and its backends), killed together."""
        self._tell(f"family {pid}")

    def forget(self, pid: int) -> None:
        """The process (or family) was stopped by its launcher: a later process may reuse the number."""
        self._tell(f"gone {pid}")

    def remove_on_death(self, directory: str | os.PathLike[str]) -> None:
        self._tell(f"dir {os.fspath(directory)}")

    def _tell(self, line: str) -> None:
        stdin = self._process.stdin
        if stdin is None or stdin.closed:
            return
        try:
            stdin.write(line + "\n")
            stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # the watchdog is gone: the launcher's own cleanup still runs

    def close(self) -> None:
        """The launcher cleaned up itself: the watchdog exits without touching anything."""
        self._tell("closed")
        if self._process.stdin is not None:
            try:
                self._process.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
