"""Store children of the sixth review that misbehave over aether-store/1 in ways
tests/children/misbehave.py does not (or, for ``raw-separators``, behave correctly in an unusual way).

    python -m tests.children.hostile6 MODE

Serves the in-memory store correctly until its mode triggers (the TRIGGER-th request):

- ``raw-separators``: correct; writes JSON with ensure_ascii=False, so U+2028, U+2029, U+0085
  and other line separators of Unicode appear raw inside strings (valid JSON, valid UTF-8, no
  newline byte).  Must be certified.
- ``swap-ids``: whenever two requests are in flight, answers each with the other's id (every id
  is one in flight, so rule ``id`` holds; the answers go to the wrong calls).
- ``duplicate-id``: answers the trigger request twice.
- ``unknown-id``: before answering the trigger request, answers id 987654321, never sent.
- ``partial-then-silence``: writes half a response to the trigger request, then sleeps, reading nothing.
- ``close-stdout``: closes its stdout at the trigger request and stays alive, reading nothing.
- ``stdout-to-grandchild``: at the trigger request starts a grandchild that inherits stdout and
  sleeps; the child then closes its own stdout and exits 0 (the pipe stays open).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

from reference_store.memory import InMemoryEventStore
from tests.process_server import respond

GREETING = b'{"protocol": "aether-store/1", "snapshots": true}\n'
TRIGGER = 40


def _write(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _line(response: dict, raw: bool = False) -> bytes:
    return json.dumps(response, ensure_ascii=not raw).encode("utf-8") + b"\n"


def main() -> None:
    mode = sys.argv[1]
    _write(GREETING)
    store = InMemoryEventStore()
    stdin = sys.stdin.buffer.raw
    pending = b""
    count = 0

    def next_line(wait: float | None):
        nonlocal pending
        while b"\n" not in pending:
            if wait is not None and not select.select([stdin], [], [], wait)[0]:
                return None
            chunk = os.read(stdin.fileno(), 1 << 16)
            if not chunk:
                sys.exit(0)
            pending += chunk
        line, _, pending = pending.partition(b"\n")
        return json.loads(line)

    while True:
        request = next_line(None)
        count += 1
        triggered = count >= TRIGGER
        if mode == "swap-ids" and triggered:
            other = next_line(0.0)  # only when a second request is already waiting
            if other is not None:
                first, second = respond(store, request, None), respond(store, other, None)
                first["id"], second["id"] = second["id"], first["id"]
                _write(_line(first) + _line(second))
                continue
        if mode == "unknown-id" and count == TRIGGER:
            _write(b'{"id": 987654321, "result": null}\n')
        if mode == "partial-then-silence" and count == TRIGGER:
            _write(b'{"id": %d, "res' % request["id"])
            while True:
                time.sleep(60)
        if mode == "close-stdout" and count == TRIGGER:
            sys.stdout.flush()
            os.close(1)
            while True:
                time.sleep(60)
        if mode == "stdout-to-grandchild" and count == TRIGGER:
            subprocess.Popen(["sleep", "300"], start_new_session=True)
            os.close(1)
            os._exit(0)
        response = _line(respond(store, request, None), raw=(mode == "raw-separators"))
        _write(response)
        if mode == "duplicate-id" and count == TRIGGER:
            _write(response)


if __name__ == "__main__":
    main()
