"""Reproductions a store author can run: the store calls a failed test made, replayed against a model.

While a conformance test runs, the driver logs every call it makes to the store (which handle,
which method, which arguments).  When the test fails, the plugin writes a standalone Python
script into the artifacts directory that imports the store's factory, makes the same calls with
the same values, one after the other, and compares every answer with what the specification
says a store must answer (a small reference model of the seed's semantics).  It prints each step
and exits 1 at the first answer that differs, 0 once the store behaves, so it can become the
store's own regression test.

The replay is sequential: it reproduces what a single test did, not a race between writers (for
those, re-run the test; the history it wrote shows the interleaving).
"""

from __future__ import annotations

import json
import os
import pprint
import sys
from datetime import timezone
from pathlib import Path
from typing import Any

from .driver import StoreDriver, StoreMisbehaviour, StoreRaised, _describe, ensure_import_path
from .errors import VersionConflictError
from .model import ActorSnapshot, Event, json_equal
from .timestamps import parse_go_time

__all__ = ["ReferenceModel", "replay", "write_reproduction"]


def _unwire(value: Any) -> Any:
    """An argument as the driver logged it (records in their Go JSON form), back as a value."""
    if isinstance(value, dict) and value.get("record") == "Event":
        return Event.from_dict({k: v for k, v in value.items() if k != "record"}, check_schema=False)
    if isinstance(value, dict) and value.get("record") == "ActorSnapshot":
        return ActorSnapshot(actor_id=value["actorId"], version=value["version"], state=value["state"],
                             timestamp=parse_go_time(value["timestamp"]))
    return value


class ReferenceModel:
    """What the specification says a store answers, for one sequence of calls (the seed's semantics)."""

    def __init__(self) -> None:
        self.events: dict[str, list[Event]] = {}
        self.snapshots: dict[str, ActorSnapshot] = {}

    def latest(self, actor_id: str) -> int:
        stream = self.events.get(actor_id)
        return stream[-1].version if stream else 0

    def expect(self, method: str, args: list[Any]) -> tuple[str, Any]:
        """``("ok", value)``, ``("conflict", current_version)``; applies the call to the model."""
        if method == "save_event":
            event = args[0]
            latest = self.latest(event.actor_id)
            if event.version <= latest:
                return "conflict", latest
            self.events.setdefault(event.actor_id, []).append(event)
            return "ok", None
        if method == "get_events":
            return "ok", [e for e in self.events.get(args[0], []) if e.version >= args[1]]
        if method == "get_latest_version":
            return "ok", self.latest(args[0])
        if method == "save_snapshot":
            snapshot = args[0]
            held = self.snapshots.get(snapshot.actor_id)
            if held is None or snapshot.version >= held.version:
                self.snapshots[snapshot.actor_id] = snapshot
            return "ok", None
        return "ok", self.snapshots.get(args[0])


def _same(expected: Any, got: Any) -> bool:
    if isinstance(expected, list):
        return isinstance(got, list) and len(got) == len(expected) and all(map(_same, expected, got))
    if isinstance(expected, Event):
        return isinstance(got, Event) and all(
            getattr(expected, name) == getattr(got, name) for name in ("id", "event_type", "actor_id", "command_id", "version")
        ) and json_equal(expected.data, got.data) and _instant(expected.timestamp) == _instant(got.timestamp)
    if isinstance(expected, ActorSnapshot):
        return isinstance(got, ActorSnapshot) and expected.version == got.version and json_equal(expected.state, got.state)
    return expected == got


def _instant(stamp: Any) -> Any:
    return stamp.astimezone(timezone.utc).replace(tzinfo=None)  # to the microsecond, as ES-READ-003 asks


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value[:5]) + (", ..." if len(value) > 5 else "") + f"] ({len(value)})"
    return _describe(value)


def replay(store: str, calls: list[dict[str, Any]], *, timeout: float = 10.0, out: Any = sys.stdout) -> int:
    """Make ``calls`` against a fresh driver of ``store``; 1 at the first answer that breaks the spec, else 0."""
    ensure_import_path(os.getcwd())
    driver = StoreDriver(store, timeout=timeout)
    handles: dict[int, Any] = {}
    model = ReferenceModel()
    try:
        for step, call in enumerate(calls, 1):
            args = [_unwire(a) for a in call["args"]]
            handle = handles.get(call["handle"]) or handles.setdefault(call["handle"], driver.new_handle())
            kind, expected = model.expect(call["method"], args)
            shown = f"{call['method']}({', '.join(_describe(a) for a in args)}) through handle #{call['handle']}"
            try:
                got, got_kind = getattr(handle, call["method"])(*args), "ok"
            except VersionConflictError as error:
                got, got_kind = error, "conflict"
            except StoreRaised as error:
                if isinstance(error.original, ValueError) and kind == "ok" and call["method"].startswith("save"):
                    # A refusal some MAY requirement allows; the model cannot know which: go on without it.
                    print(f"{step:4}. {shown}: refused with ValueError ({error.original_text}); allowed only "
                          "where a MAY requirement says so", file=out)
                    continue
                got, got_kind = error, "raised"
            except StoreMisbehaviour as error:
                got, got_kind = error, "raised"
            if kind == "conflict":
                ok = got_kind == "conflict" and (got.actor_id, got.attempted_version, got.current_version) == (
                    args[0].actor_id, args[0].version, expected)
                want = f"VersionConflictError(current version {expected})"
            else:
                ok = got_kind == "ok" and _same(expected, got)
                want = "success" if call["method"].startswith("save") else _show(expected)
            answer = {"ok": lambda: "success" if call["method"].startswith("save") else _show(got),
                      "conflict": lambda: f"VersionConflictError({got})", "raised": lambda: str(got)}[got_kind]()
            if not ok:
                print(f"{step:4}. {shown}\n      expected: {want}\n      the store: {answer}\n"
                      f"REPRODUCED: the store's answer at step {step} breaks the specification", file=out)
                return 1
            print(f"{step:4}. {shown}: {answer}", file=out)
        print(f"NOT REPRODUCED: all {len(calls)} calls were answered as the specification requires", file=out)
        return 0
    finally:
        driver.close()


_SCRIPT = '''#!/usr/bin/env python3
"""Reproduces {requirement} for {store}, found by {test}.

The store calls that test made, replayed one by one and each answer checked against the
specification.  Run it from the directory you ran aether-conformance in (so that the store's
module imports), against a store as empty as the run's was (the actor ids are the run's):

    python {path}

It exits 1 while the bug reproduces, 0 once the store answers as the specification requires.
The failure it reproduces:

{message}
"""
import json  # noqa: F401 (the calls are a JSON text when their data nests too deep for a literal)
import sys

from aether_conformance.replay import replay

STORE = {store_literal}
CALLS = {calls}

if __name__ == "__main__":
    sys.exit(replay(STORE, CALLS, timeout={timeout!r}))
'''


def write_reproduction(directory: str | Path, test: str, requirement: str, store: str, message: str,
                       calls: list[dict[str, Any]], timeout: float) -> Path:
    """Write the script; return its path."""
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in test.rpartition("::")[2])[:100]
    path = Path(directory) / "reproductions" / f"{requirement}-{name}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    quoted = "\n".join("    " + line for line in message.replace('"""', "'''").splitlines()[:20])
    path.write_text(_SCRIPT.format(
        requirement=requirement, store=store, test=test, path=path, message=quoted, store_literal=repr(store),
        calls=_calls_source(calls), timeout=timeout,
    ), encoding="utf-8")
    return path


def _calls_source(calls: list[dict[str, Any]]) -> str:
    """The calls as Python source: pprint's literal, readable; but Python's parser takes at most 200
    nested brackets, and pprint recurses two frames a level, so data nested as deep as the model
    carries (512 levels) is written as a JSON text that json.loads reads back (the calls are in Go
    JSON form)."""
    try:
        source = pprint.pformat(calls, width=110, sort_dicts=False)
        compile(source, "<calls>", "eval")
        return source
    except (RecursionError, SyntaxError):
        return f"json.loads({json.dumps(calls, ensure_ascii=False)!r})"
