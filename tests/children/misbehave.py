"""A store child that breaks aether-store/1 in one chosen way, for the adapter's hardening tests.

    python -m tests.children.misbehave MODE [--pid-file PATH]

Until its mode triggers it serves the in-memory store correctly (one request at
a time).  ``--pid-file`` receives its pid (and its grandchild's, in mode
``grandchild``), one per line, so a test can check that nothing outlived the run.

Modes that never get as far as serving: ``silent`` (never greets, ignores
SIGTERM), ``exit-early`` (a few stderr lines, then exit code 7),
``flood-stderr`` (2.4 MiB of stderr before greeting, then never reads stdin).
``grandchild`` spawns a long sleep in its process group and serves correctly.
``orphan-holds-stdout`` answers nothing: at its first request it spawns a long sleep in a
session of its own that inherits its stdout and stderr, and exits with code 9.
The others answer their trigger request with one bad line: see ``BAD_LINES``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

from reference_store.memory import InMemoryEventStore
from tests.process_server import respond

GREETING = b'{"protocol": "aether-store/1", "snapshots": true}\n'
BEYOND_INT64 = 1 << 63


def _bad_line(mode: str, request: dict) -> bytes | None:
    """The line a mode answers ``request`` with, or None to answer it correctly."""
    rid = request["id"]
    if mode == "invalid-utf8":
        return b'{"id": %d, "result": null, "note": "caf\xe9"}\n' % rid
    if mode == "deep-nesting":
        return b'{"id": %d, "result": ' % rid + b"[" * 600 + b"]" * 600 + b"}\n"
    if mode == "bool-id":
        return b'{"id": true, "result": null}\n'
    if mode == "result-and-error":
        return b'{"id": %d, "result": 1, "error": {"kind": "internal", "message": "both"}}\n' % rid
    if mode == "conflict-without-conflict":
        return b'{"id": %d, "error": {"kind": "version_conflict"}}\n' % rid
    if mode == "big-int" and request["method"] == "get_latest_version":
        return b'{"id": %d, "result": %d}\n' % (rid, BEYOND_INT64)
    if mode == "huge-int" and request["method"] == "get_latest_version":
        return b'{"id": %d, "result": %s}\n' % (rid, b"9" * 5000)
    if mode == "long-line":  # 2 MiB, over the 1 MiB limit the test sets, but it ends
        return b'{"id": %d, "result": "' % rid + b"x" * (2 << 20) + b'"}\n'
    return None


def _write(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode")
    parser.add_argument("--pid-file")
    arguments = parser.parse_args()
    mode = arguments.mode
    pids = [os.getpid()]
    if mode == "grandchild":
        pids.append(subprocess.Popen(["sleep", "600"]).pid)
    if arguments.pid_file:
        with open(arguments.pid_file, "w") as pid_file:
            pid_file.write("".join(f"{pid}\n" for pid in pids))

    if mode == "silent":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL ends it
        while True:
            time.sleep(60)
    if mode == "exit-early":
        print("loading configuration", file=sys.stderr)
        print("fatal: cannot open database /nonexistent/store.db", file=sys.stderr, flush=True)
        sys.exit(7)
    if mode == "flood-stderr":
        for number in range(40_000):  # 2.4 MiB, far beyond a pipe buffer
            sys.stderr.write(f"debug line {number} {'.' * 50}\n")
        sys.stderr.flush()
        _write(GREETING)
        while True:  # stops reading stdin: requests pile up in the pipe
            time.sleep(60)

    _write(GREETING)
    store = InMemoryEventStore()
    for line in sys.stdin.buffer:
        request = json.loads(line)
        if mode == "orphan-holds-stdout":
            orphan = subprocess.Popen(["sleep", "600"], start_new_session=True)
            if arguments.pid_file:
                with open(arguments.pid_file, "a") as pid_file:
                    pid_file.write(f"{orphan.pid}\n")
            os._exit(9)
        if mode == "invalid-utf8-stderr":
            sys.stderr.buffer.write(b"warning: caf\xe9 not found\n")
            sys.stderr.buffer.flush()
        if mode == "endless-line":
            chunk = b"x" * 65536
            _write(b'{"id": %d, "result": "' % request["id"])
            while True:
                _write(chunk)
        bad = _bad_line(mode, request)
        _write(bad if bad is not None else json.dumps(respond(store, request, None)).encode() + b"\n")


if __name__ == "__main__":
    main()
