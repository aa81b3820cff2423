"""A store process in Python, speaking aether-store/1 on stdin/stdout, for the adapter's tests.

    python -m tests.process_server [--flaw NAME] [--sqlite PATH]

It serves the in-memory reference store (or, with ``--sqlite``, the SQLite store on a file
that every copy of the command shares, as ``--capability multiprocess`` needs); a flaw makes it misbehave the way a
store in another language might: ``off-by-one`` acknowledges a save at the latest
version without storing it, ``python-text`` writes the conflict text with Python's quoting,
``exit-after-50`` dies after 50 requests, ``no-greeting`` greets with the
wrong protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading

from aether_conformance import ActorSnapshot, Event, VersionConflictError
from reference_store.memory import InMemoryEventStore
from reference_store.sqlite import SQLiteEventStore


def respond(store: InMemoryEventStore | SQLiteEventStore, request: dict, flaw: str | None) -> dict:
    method, params = request["method"], request["params"]
    try:
        if method == "save_event":
            # No schema check: it is for stored events (version >= 1), and the kit offers
            # versions 0 and below on purpose, to see them refused.
            event = Event.from_dict(params["event"], check_schema=False)
            if flaw == "off-by-one" and event.version == store.get_latest_version(event.actor_id) > 0:
                return {"id": request["id"], "result": None}  # "already there": acknowledged, not stored
            store.save_event(event)
            result = None
        elif method == "get_events":
            result = [e.to_dict() for e in store.get_events(params["actorId"], params["fromVersion"])]
        elif method == "get_latest_version":
            result = store.get_latest_version(params["actorId"])
        elif method == "save_snapshot":
            store.save_snapshot(ActorSnapshot.from_dict(params["snapshot"]))
            result = None
        elif method == "get_latest_snapshot":
            snapshot = store.get_latest_snapshot(params["actorId"])
            result = None if snapshot is None else snapshot.to_dict()
        else:
            return {"id": request["id"], "error": {"kind": "invalid_argument", "message": f"unknown method {method}"}}
    except VersionConflictError as conflict:
        body = conflict.to_dict()
        if flaw == "python-text":
            body["message"] = (f"version conflict: actor {conflict.actor_id!r} has version "
                               f"{conflict.current_version}, cannot save version {conflict.attempted_version}")
        return {"id": request["id"], "error": {"kind": "version_conflict", "conflict": body}}
    except ValueError as error:
        return {"id": request["id"], "error": {"kind": "invalid_argument", "message": str(error)}}
    return {"id": request["id"], "result": result}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flaw", choices=["off-by-one", "python-text", "exit-after-50", "no-greeting"])
    parser.add_argument("--sqlite", metavar="PATH", help="serve the SQLite store on this file instead")
    arguments = parser.parse_args()
    flaw = arguments.flaw
    store = SQLiteEventStore(arguments.sqlite) if arguments.sqlite else InMemoryEventStore()
    write_lock = threading.Lock()

    def write(message: dict) -> None:
        with write_lock:
            sys.stdout.write(json.dumps(message, ensure_ascii=False) + "\n")
            sys.stdout.flush()

    write({"protocol": "aether-store/0" if flaw == "no-greeting" else "aether-store/1", "snapshots": True,
           "name": "tests.process_server", "version": "1"})
    for count, line in enumerate(sys.stdin, 1):
        if flaw == "exit-after-50" and count > 50:
            print("simulated crash", file=sys.stderr, flush=True)
            os._exit(3)
        request = json.loads(line)
        # One thread per request, like a concurrent server: the store's own lock must make it atomic.
        threading.Thread(target=lambda r=request: write(respond(store, r, flaw)), daemon=True).start()


if __name__ == "__main__":
    main()
