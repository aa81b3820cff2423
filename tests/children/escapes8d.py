"""Store children of the eighth review (8d): stores in other languages that go wrong on the wire
of aether-store/1 in one place each, and a few correct but unusual ones.

    python -m tests.children.escapes8d MODE

Each serves the in-memory reference store (reference_store.memory) over aether-store/1, as
tests/children/hostile6.py does, and is broken in ONE place by its mode:

- ``race-text`` (ES-ERR-002): a Go store with a lock-free pre-check (``latest >= v`` -> conflict)
  and the append under its lock; the conflict found only under the lock (a writer that raced in
  between) is built by a second code path, ``fmt.Errorf("version conflict: actor %s ...")``, so
  the actor id is not quoted.  Conflicts of sequential saves always take the first path.
- ``race-current`` (ES-ERR-001): the same store, but the locked path is an INSERT hitting the
  unique key (actor, version): it knows only that the slot is taken, and reports the attempted
  version as the current one (``currentVersion = attemptedVersion``), whatever the latest is.
- ``long-id-text`` (ES-ERR-002): a Java store builds the conflict message with
  ``StringUtils.abbreviate(actorId, 256)``: ids over 256 characters (which it accepts, ES-ACTOR-003)
  are quoted as their first 253 characters and ``...``.
- ``line-limit`` (ES-SAVE-001): a Node store documents the 512 KiB limit of ES-LIMIT-001 but
  measures the request LINE (the kit's ``", "`` and ``": "`` separators, the envelope) instead of
  the record's compact encoding, plus 1 KiB for the envelope: an event whose compact JSON is
  under 512 KiB but made of many small members (200,000 small numbers: 400 KB compact, 600 KB
  on the line) is refused with invalid_argument.
- ``empty-id-text`` (ES-ERR-002): a Node store accepts the empty actor id (ES-ACTOR-003 lets it)
  but names the actor in its conflict text with ``actorId || "<unknown>"``: the empty string is
  falsy, so the text reads ``actor "<unknown>"`` where Go writes ``actor ""``.
- ``unicode13-text`` (ES-ERR-002): a Java 17 store ports %q with ``Character.getType``, whose
  tables are Unicode 13.0: the emoji Unicode 14.0 added (U+1FAE0 melting face, U+1FAF0..U+1FAF6,
  U+1FAC3..U+1FAC5, U+1FA7B..U+1FA7C) are unassigned there, so it writes ``\\U0001fae0`` where Go
  (Unicode 17) writes the emoji.
- ``hot-actor-text`` (ES-ERR-002): after 1,000 conflicts on one actor, an actor framework's store
  moves the actor's writes to a single-writer mailbox, whose refusals carry the right fields but
  are worded by the mailbox: ``version conflict: actor a has version 2, ...`` (the id unquoted).
- ``snprintf-1k`` (ES-ERR-002): a C or Rust-FFI store formats the conflict text with
  ``snprintf(buf, 1024, ...)`` into a stack buffer: a text over 1,023 bytes is cut (and the broken
  UTF-8 at the cut dropped).  ASCII ids of 256 characters fit; 256 astral characters (1,024 bytes
  of UTF-8 in the quotes) or 256 escaped ones (``\\U...``, 2,560 bytes) do not.
- ``prefix-unique`` (ES-ACTOR-001): a MySQL store whose unique key is ``(actor_id(768), version)``,
  the longest prefix InnoDB indexes in utf8mb4 (3,072 bytes); it accepts ids over 256 characters
  (ES-ACTOR-003 lets it), but two such ids sharing their first 768 characters share the key: the
  second actor's save of a version the first holds fails as a duplicate key, reported as a
  version conflict at the second actor's own (lower) latest version.

Correct children (CONTROLS), which the kit must certify:

- ``reorder``: reads every request already waiting, handles them in arrival order, and writes the
  answers in reverse order (right ids).
- ``exotic-json``: writes every string ASCII-only (``\\uXXXX``, surrogate pairs for astral
  characters, ``\\/`` for the slash) and every number in ``data``/``state`` as a float
  (``1000.0``, ``1e+16``): what Jackson's double nodes write; versions stay integers.
- ``slow``: correct, one request at a time, pausing 40 ms every 64th request and 1 ms otherwise
  every 8th.

Outcome against the default profile (spec 3.2.1): CONFORMANT, i.e. escaped: race-text,
long-id-text, line-limit, empty-id-text, unicode13-text, hot-actor-text, snprintf-1k; caught:
race-current (ES-CONC-001), prefix-unique (SS-SNAP-003 / ES-REFUSE-001, its snapshot test's 4096
ids collide with the event test's).  The three CONTROLS are certified.  With ``ESCAPES8D_LOG=FILE``
in the child's environment each broken path appends a line to FILE when it is taken (race-text's
locked path ran 949 times in one default run, hot-actor-text's 3,515, long-id-text's twice).
Thorough (with AETHER_STORE_MAX_LINE_BYTES=134217728 and --timeout 60, which any child needs: its
65 MiB actor is read back as one line over the 64 MiB default, and its 100,050-event read takes
over 10 s here) certifies hot-actor-text too (its path taken 46,285 times).
Since then (spec 3.2.1, quick profile) the suite flags all seven: the concurrent writers compare
every conflict's text with the seed's; the thousands of conflicts on one actor check their text
too; conflict texts are checked for the empty id and ids of 257 and 1,000 characters a store
keeps, for 256 astral characters and for emoji of Unicode 14; and data of 250,000 small numbers
(500 KB compact, 750 KB with spaces) must be kept.  The kit's line limit is now 256 MiB.
The race modes wait 0.2 ms between the pre-check and the locked append (a database round trip):
without it the GIL runs both in one slice and the suite never reaches the locked path.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any, Callable

from aether_conformance import ActorSnapshot, Event, VersionConflictError
from aether_conformance.errors import go_quote
from reference_store.memory import InMemoryEventStore

GREETING = b'{"protocol": "aether-store/1", "snapshots": true, "name": "escapes8d", "version": "1"}\n'
LINE_LIMIT = 512 * 1024 + 1024
HOT_AFTER = 1_000  # conflicts on one actor before its writes move to a single-writer mailbox
PREFIX = 768  # InnoDB's 3,072-byte key prefix in utf8mb4

BROKEN = {
    # Its texts are wrong only under a race, where the concurrent writers see them; ES-ERR-002's own
    # (sequential) tests pass, so the report charges the failure to the race test's ES-CONC-001.
    "race-text": "ES-CONC-001",
    # A wrong current version under a race breaks ES-ERR-001; the history checker sees it as a
    # conflict no linearisation explains, and charges the concurrency rule.
    "race-current": "ES-CONC-001",
    "long-id-text": "ES-ERR-002",
    "line-limit": "ES-SAVE-001",
    "empty-id-text": "ES-ERR-002",
    # Breaks ES-ACTOR-001 for ids of more than 768 characters; ES-ACTOR-001's own tests use shorter
    # ones, and the tests of 4,096-character ids (ES-ACTOR-003, ES-READ-003, ES-LATEST-002) catch it.
    "prefix-unique": "ES-READ-003",
    "hot-actor-text": "ES-ERR-002",
    "snprintf-1k": "ES-ERR-002",
}
# unicode13-text was written as broken, and is correct: spec section 5 lets a store quote as its
# language's Unicode tables do (the seed built with a Go of Unicode 13 writes the same), and a
# twelfth review showed the suite's Unicode 14 emoji failing such a store.  The suite's ids no
# longer hold characters whose quoting depends on the Unicode version.
CONTROLS = ["reorder", "exotic-json", "slow", "unicode13-text"]
THREADED = {"race-text", "race-current"}


def _conflict_body(actor: str, attempted: int, current: int, message: str | None = None) -> dict:
    error = VersionConflictError(actor_id=actor, attempted_version=attempted, current_version=current)
    body = error.to_dict()
    if message is not None:
        body["message"] = message
    return {"kind": "version_conflict", "conflict": body}


def _note(text: str) -> None:
    # Where the broken path was taken, for the reviewer (ESCAPES8D_LOG names a file).
    path = os.environ.get("ESCAPES8D_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(text + "\n")


# Emoji Unicode 14.0 added (melting face, hand gestures, pregnant person, x-ray...): unassigned, so
# not printable, in Unicode 13.0 tables (Java 17's Character, Node 14's ICU 67).
_UNICODE_14_EMOJI = [(0x1FA7B, 0x1FA7C), (0x1FAC3, 0x1FAC5), (0x1FAE0, 0x1FAE7), (0x1FAF0, 0x1FAF6)]


def _new_in_14(char: str) -> bool:
    return any(low <= ord(char) <= high for low, high in _UNICODE_14_EMOJI)


def _quote_unicode13(text: str) -> str:
    return '"' + "".join(f"\\U{ord(c):08x}" if _new_in_14(c) else go_quote(c)[1:-1] for c in text) + '"'


def _abbreviate(text: str, width: int = 256) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


class Server:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.store = InMemoryEventStore()
        # Between the lock-free pre-check and the locked append (a trigger plants a rival there).
        self.between: Callable[[], None] | None = None
        self.conflicts: dict[str, int] = {}
        self.slots: dict[tuple[str, int], set[str]] = {}

    def _save(self, event: Event) -> dict | None:
        """None when stored, else the error object."""
        mode = self.mode
        if mode in THREADED:
            latest = self.store.get_latest_version(event.actor_id)  # the pre-check, outside the lock
            if event.version <= latest:
                return _conflict_body(event.actor_id, event.version, latest)
            if self.between is not None:
                self.between()
            else:
                time.sleep(0.0002)  # the round trip to the database between the SELECT and the INSERT
            try:
                self.store.save_event(event)
            except VersionConflictError as raced:
                _note(f"{mode}: race path on {raced.actor_id!r} v{raced.attempted_version} (latest {raced.current_version})")
                if mode == "race-text":
                    return _conflict_body(raced.actor_id, raced.attempted_version, raced.current_version,
                                          f"version conflict: actor {raced.actor_id} has version "
                                          f"{raced.current_version}, cannot save version {raced.attempted_version}")
                # race-current: a unique-key violation names the slot, not the latest
                return _conflict_body(raced.actor_id, raced.attempted_version, raced.attempted_version)
            return None
        if mode == "prefix-unique":
            # UNIQUE KEY (actor_id(768), version): another id with the same first 768 characters holds the slot
            prefix = event.actor_id[:PREFIX]
            owners = self.slots.setdefault((prefix, event.version), set())
            if owners - {event.actor_id} and event.version > self.store.get_latest_version(event.actor_id):
                _note(f"{mode}: duplicate key on an id of {len(event.actor_id)} characters, v{event.version}")
                return _conflict_body(event.actor_id, event.version, self.store.get_latest_version(event.actor_id))
        try:
            self.store.save_event(event)
            if mode == "prefix-unique":
                self.slots[(event.actor_id[:PREFIX], event.version)].add(event.actor_id)
        except VersionConflictError as conflict:
            if mode == "empty-id-text" and not conflict.actor_id:
                _note(f"{mode}: conflict on the empty id")
                text = (f"version conflict: actor \"<unknown>\" has version {conflict.current_version}, "
                        f"cannot save version {conflict.attempted_version}")
                return _conflict_body(conflict.actor_id, conflict.attempted_version, conflict.current_version, text)
            if mode == "hot-actor-text":
                self.conflicts[conflict.actor_id] = self.conflicts.get(conflict.actor_id, 0) + 1
                if self.conflicts[conflict.actor_id] > HOT_AFTER:
                    _note(f"{mode}: conflict {self.conflicts[conflict.actor_id]} on one actor, from the mailbox")
                    text = (f"version conflict: actor {conflict.actor_id} has version {conflict.current_version}, "
                            f"cannot save version {conflict.attempted_version}")
                    return _conflict_body(conflict.actor_id, conflict.attempted_version, conflict.current_version,
                                          text)
            if mode == "snprintf-1k":
                body = conflict.to_dict()
                encoded = body["message"].encode("utf-8")
                if len(encoded) > 1023:
                    _note(f"{mode}: a message of {len(encoded)} bytes cut to 1,023")
                    # snprintf(buf, 1024, ...) cuts bytes; the store then drops a broken UTF-8 tail
                    body["message"] = encoded[:1023].decode("utf-8", "ignore")
                return {"kind": "version_conflict", "conflict": body}
            if mode == "unicode13-text" and any(_new_in_14(char) for char in conflict.actor_id):
                _note(f"{mode}: conflict on an id with a Unicode 14 character")
                text = (f"version conflict: actor {_quote_unicode13(conflict.actor_id)} has version "
                        f"{conflict.current_version}, cannot save version {conflict.attempted_version}")
                return _conflict_body(conflict.actor_id, conflict.attempted_version, conflict.current_version, text)
            if mode == "long-id-text" and len(conflict.actor_id) > 256:
                _note(f"{mode}: conflict on an id of {len(conflict.actor_id)} characters")
                text = (f"version conflict: actor {go_quote(_abbreviate(conflict.actor_id))} has version "
                        f"{conflict.current_version}, cannot save version {conflict.attempted_version}")
                return _conflict_body(conflict.actor_id, conflict.attempted_version, conflict.current_version, text)
            return {"kind": "version_conflict", "conflict": conflict.to_dict()}
        return None

    def respond(self, raw: bytes) -> dict:
        request = json.loads(raw)
        rid, method, params = request["id"], request["method"], request["params"]
        try:
            if self.mode == "line-limit" and method in ("save_event", "save_snapshot") and len(raw) > LINE_LIMIT:
                _note(f"{self.mode}: refused a line of {len(raw)} bytes")
                return {"id": rid, "error": {"kind": "invalid_argument",
                                             "message": f"record exceeds the 512 KiB limit ({len(raw)} bytes)"}}
            if method == "save_event":
                error = self._save(Event.from_dict(params["event"], check_schema=False))
                return {"id": rid, "error": error} if error else {"id": rid, "result": None}
            if method == "get_events":
                result: Any = [e.to_dict() for e in self.store.get_events(params["actorId"], params["fromVersion"])]
            elif method == "get_latest_version":
                result = self.store.get_latest_version(params["actorId"])
            elif method == "save_snapshot":
                self.store.save_snapshot(ActorSnapshot.from_dict(params["snapshot"]))
                result = None
            elif method == "get_latest_snapshot":
                snapshot = self.store.get_latest_snapshot(params["actorId"])
                result = None if snapshot is None else snapshot.to_dict()
            else:
                _note(f"{self.mode}: refused a line of {len(raw)} bytes")
                return {"id": rid, "error": {"kind": "invalid_argument", "message": f"unknown method {method}"}}
        except ValueError as error:
            return {"id": rid, "error": {"kind": "invalid_argument", "message": str(error)}}
        return {"id": rid, "result": result}


def _floats(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float):
        return value
    if isinstance(value, list):
        return [_floats(item) for item in value]
    return {key: _floats(item) for key, item in value.items()}


def encode(mode: str, response: dict) -> bytes:
    if mode == "exotic-json":
        result = response.get("result")
        records = result if isinstance(result, list) else [result] if isinstance(result, dict) else []
        for record in records:
            for field in ("data", "state"):
                if field in record and record[field] is not None:
                    record[field] = _floats(record[field])
        return json.dumps(response).replace("/", "\\/").encode("ascii") + b"\n"
    return json.dumps(response, ensure_ascii=False).encode("utf-8") + b"\n"


def main() -> None:
    mode = sys.argv[1]
    sys.setrecursionlimit(20_000)  # _floats walks data of 512 levels, two frames a level
    server = Server(mode)
    out = sys.stdout.buffer
    write_lock = threading.Lock()

    def write(data: bytes) -> None:
        with write_lock:
            out.write(data)
            out.flush()

    write(GREETING)
    fd = sys.stdin.buffer.fileno()
    pending = b""
    count = 0
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return
        pending += chunk
        *lines, pending = pending.split(b"\n")
        lines = [line for line in lines if line.strip()]
        if mode == "reorder":
            answers = [encode(mode, server.respond(line)) for line in lines]
            write(b"".join(reversed(answers)))
            continue
        for line in lines:
            count += 1
            if mode in THREADED:
                threading.Thread(target=lambda r=line: write(encode(mode, server.respond(r))), daemon=True).start()
                continue
            if mode == "slow":
                time.sleep(0.04 if count % 64 == 0 else 0.001 if count % 8 == 0 else 0)
            write(encode(mode, server.respond(line)))


# -- triggers: the bug shown by direct calls ----------------------------------------------------

def _request(rid: int, method: str, **params: Any) -> bytes:
    return json.dumps({"id": rid, "method": method, "params": params}, ensure_ascii=False).encode()


def _event(actor: str, version: int, data: Any = None) -> dict:
    return {"id": f"{actor[:20]}-{version}", "eventType": "T", "actorId": actor, "version": version,
            "data": data, "timestamp": "2024-01-02T03:04:05.123456789Z"}


def _race(mode: str) -> dict:
    """Two writers at version 2 of actor 'a b' (latest 1): the second passes the pre-check before the first lands."""
    server = Server(mode)
    server.respond(_request(1, "save_event", event=_event("a b", 1)))
    rival = _request(2, "save_event", event=_event("a b", 4))

    def plant() -> None:
        server.between = None
        server.respond(rival)

    server.between = plant
    return server.respond(_request(3, "save_event", event=_event("a b", 2)))


def trigger_race_text() -> bool:
    conflict = _race("race-text")["error"]["conflict"]
    return conflict["message"] != 'version conflict: actor "a b" has version 4, cannot save version 2'


def trigger_race_current() -> bool:
    return _race("race-current")["error"]["conflict"]["currentVersion"] != 4


def trigger_long_id_text() -> bool:
    server = Server("long-id-text")
    actor = "y" * 300
    server.respond(_request(1, "save_event", event=_event(actor, 1)))
    conflict = server.respond(_request(2, "save_event", event=_event(actor, 1)))["error"]["conflict"]
    return conflict["message"] != f"version conflict: actor {go_quote(actor)} has version 1, cannot save version 1"


def trigger_empty_id_text() -> bool:
    server = Server("empty-id-text")
    server.respond(_request(1, "save_event", event=_event("", 1)))
    conflict = server.respond(_request(2, "save_event", event=_event("", 1)))["error"]["conflict"]
    return conflict["message"] != 'version conflict: actor "" has version 1, cannot save version 1'


def trigger_prefix_unique() -> bool:
    server = Server("prefix-unique")
    first, second = "y" * 800 + "-1", "y" * 800 + "-2"
    server.respond(_request(1, "save_event", event=_event(first, 1)))
    return "error" in server.respond(_request(2, "save_event", event=_event(second, 1)))


def trigger_unicode13_text() -> bool:
    server = Server("unicode13-text")
    actor = "party-\U0001fae0"
    server.respond(_request(1, "save_event", event=_event(actor, 1)))
    conflict = server.respond(_request(2, "save_event", event=_event(actor, 1)))["error"]["conflict"]
    return conflict["message"] != f'version conflict: actor "{actor}" has version 1, cannot save version 1'


def trigger_hot_actor_text() -> bool:
    server = Server("hot-actor-text")
    server.respond(_request(1, "save_event", event=_event("a", 1)))
    for number in range(HOT_AFTER + 1):
        answer = server.respond(_request(2 + number, "save_event", event=_event("a", 1)))
    return answer["error"]["conflict"]["message"] != 'version conflict: actor "a" has version 1, cannot save version 1'


def trigger_snprintf_1k() -> bool:
    server = Server("snprintf-1k")
    actor = "\U0001f980" * 256
    server.respond(_request(1, "save_event", event=_event(actor, 1)))
    conflict = server.respond(_request(2, "save_event", event=_event(actor, 1)))["error"]["conflict"]
    return conflict["message"] != f'version conflict: actor "{actor}" has version 1, cannot save version 1'


def trigger_line_limit() -> bool:
    server = Server("line-limit")
    data = {"samples": [n % 10 for n in range(200_000)]}
    compact = len(json.dumps(_event("a", 1, data), separators=(",", ":")).encode())
    assert compact < 512 * 1024
    answer = server.respond(_request(1, "save_event", event=_event("a", 1, data)))
    return "error" in answer


TRIGGERS = {
    "race-text": trigger_race_text,
    "race-current": trigger_race_current,
    "long-id-text": trigger_long_id_text,
    "line-limit": trigger_line_limit,
    "empty-id-text": trigger_empty_id_text,
    "prefix-unique": trigger_prefix_unique,
    "unicode13-text": trigger_unicode13_text,
    "hot-actor-text": trigger_hot_actor_text,
    "snprintf-1k": trigger_snprintf_1k,
}


if __name__ == "__main__":
    main()
