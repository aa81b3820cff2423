"""Stores that attack the run rather than break a requirement: they kill their process, hang,
leave processes behind, or raise text no JSON encoder accepts.  ``tests/test_verdict.py`` runs
the CLI against them.  Each is correct except where it strikes: saving INT64_MIN to a new actor
(ES-SAVE-002's conflict tests), so that the requirement being tested is known."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time

from aether_conformance import Event
from aether_conformance.model import INT64_MIN
from tests.zoo.base import CorrectStore, ShareState, factory


class ProcessKiller(CorrectStore):
    """Ends its own process the way $HOSTILE_HOW says: os._exit(0), os._exit(3), SIGKILL, a segfault."""

    def save_event(self, event):
        if event.version == INT64_MIN:
            how = os.environ.get("HOSTILE_HOW", "exit0")
            if how == "exit0":
                os._exit(0)
            if how == "exit3":
                os._exit(3)
            if how == "sigkill":
                os.kill(os.getpid(), signal.SIGKILL)
            if how == "segfault":
                ctypes.string_at(0)  # reads address 0: SIGSEGV, as a broken C extension would
        super().save_event(event)


process_killer = factory(ProcessKiller)


class SurrogateErrors(CorrectStore):
    """Refuses INT64_MIN with an error whose text holds a lone surrogate."""

    def save_event(self, event):
        if event.version == INT64_MIN:
            raise RuntimeError("bad version \udc80 here")
        super().save_event(event)


surrogate_errors = factory(SurrogateErrors)


class _Blocking(dict):
    """A mapping that blocks when read, like an ORM row that loads its columns on access."""

    def items(self):
        threading.Event().wait()
        return super().items()


class LazyRows(CorrectStore):
    def select(self, actor_id, from_version):
        return [Event(id=e.id, event_type=e.event_type, actor_id=e.actor_id, version=e.version,
                      data=_Blocking(e.data or {}), timestamp=e.timestamp, command_id=e.command_id)
                for e in super().select(actor_id, from_version)]


lazy_rows = factory(LazyRows)


def hanging_factory():
    threading.Event().wait()


_shared = ShareState()


class SlowWithGrandchild(CorrectStore):
    """Answers slowly and, like a store that runs a sidecar, starts a process in its own session."""

    def __init__(self, shared):
        super().__init__(shared)
        sidecar = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
        with open(os.environ["HOSTILE_PIDS"], "a") as pids:
            pids.write(f"{os.getpid()} {sidecar.pid}\n")

    def get_latest_version(self, actor_id):
        time.sleep(0.3)
        return super().get_latest_version(actor_id)


def slow_with_grandchild():
    return SlowWithGrandchild(_shared)



class BlockingFinaliser(CorrectStore):
    """A handle whose finaliser waits forever (for a pool that will never give its connection back):
    the suite's churn test drops handles and collects garbage, which must not hang the run."""

    def __del__(self):
        threading.Event().wait()


blocking_finaliser = factory(BlockingFinaliser)


def silent_new_handles():
    """The first handle answers; every later one never answers a call (a pool with one connection,
    which each new handle waits for)."""
    return _silent_after_first()


class _SilentAfterFirst(CorrectStore):
    made = 0

    def __init__(self, shared):
        super().__init__(shared)
        type(self).made += 1
        self.silent = type(self).made > 1

    def get_latest_version(self, actor_id):
        if self.silent:
            with open(os.environ["HOSTILE_CALLS"], "a") as calls:
                calls.write("silent\n")
            threading.Event().wait()
        return super().get_latest_version(actor_id)


_silent_after_first = factory(_SilentAfterFirst)
