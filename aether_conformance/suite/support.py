"""What the suite's tests share: building events, and failing with a requirement ID.

Every failure message reads ``REQ-ID: what was done; expected …; store
returned …`` so a store author can act on it without reading the test.
"""

from __future__ import annotations

import gc
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn

from ..driver import DrivenHandle, StoreDriver, StoreMisbehaviour, StoreRaised, while_hung
from ..errors import VersionConflictError, go_quote
from ..model import ActorSnapshot, Event, Timestamp, json_equal
from ..report import cited_ids
from ..timestamps import utc_nanoseconds

__all__ = [
    "RequirementViolation",
    "violated",
    "blame",
    "q",
    "new_event",
    "new_snapshot",
    "exact_id",
    "save_all_ok",
    "save_ok",
    "save_conflict",
    "save_all_conflict",
    "diff_event",
    "diff_snapshot",
    "summary",
    "versions",
    "read_back",
    "DATA_LOOKALIKES",
    "ROUND_TRIP_CASES",
    "highest_stored_version",
    "SEQUENTIAL_RULES",
    "Planted",
    "plant_revisit_actors",
]

# What a concurrency test's history check relies on (its ``presupposes`` mark): that saves, reads,
# latest versions and conflicts behave when calls do not overlap.  A store that breaks one of these
# breaks it under concurrency too, and is reported once, under the rule it breaks.
SEQUENTIAL_RULES = ("ES-SAVE-001", "ES-SAVE-002", "ES-SAVE-003", "ES-ERR-001", "ES-READ-001", "ES-READ-002",
                    "ES-READ-003", "ES-LATEST-001", "ES-LATEST-002", "ES-ACTOR-001")

BASE_TIME = Timestamp.parse("2024-03-01T12:00:00.123456789Z")


class RequirementViolation(AssertionError):
    """A store broke the requirement named at the start of the message."""


def violated(req_id: str, message: str) -> NoReturn:
    # A store's text may hold lone surrogates, which no UTF-8 report (nor xdist's wire) can carry.
    raise RequirementViolation(f"{req_id}: {message}".encode("utf-8", "backslashreplace").decode("utf-8"))


@contextmanager
def blame(req_id: str) -> Iterator[None]:
    """In a test of several requirements, attribute a store misbehaviour to the one being exercised
    (a call that hangs too, which ends the test from outside the block: see driver.while_hung)."""

    def charge(error: BaseException) -> None:
        if isinstance(error, StoreMisbehaviour) and not cited_ids(str(error)):  # the driver may charge its own rule
            error.args = (f"{req_id}: {error}",)

    with while_hung(charge):
        try:
            yield
        except StoreMisbehaviour as error:
            charge(error)
            raise


def q(text: str) -> str:
    """Quote an id the way the seed's error text does."""
    return go_quote(text)


# Data (and snapshot state) that a content-addressed or interning layer takes for other data: equal under a hash
# (CRC-32 twins and Java String.hashCode twins of equal length stay equal inside any common
# surroundings, so the whole documents collide whatever canonical JSON a store hashes), or equal
# as Python values (True == 1, False == 0 == 0.0: a dict keyed by a frozen copy of the data).
DATA_LOOKALIKES = {
    "crc32-twins": ({"note": "plumless"}, {"note": "buckeroo"}),
    "java-hashcode-twins": ({"note": "Aa"}, {"note": "BB"}),
    "true-vs-1": ({"ok": 1}, {"ok": True}),
    "false-vs-0": ({"z": 0}, {"z": False}),
    "false-vs-0.0": ({"z": 0.0}, {"z": False}),
    "nested-bools-vs-numbers": ({"a": [1, 0, {"b": 1}]}, {"a": [True, False, {"b": True}]}),
}


# Event contents a store must give back exactly (ES-READ-003), as fields for new_event: the
# round-trip tests save each once, and the state machine saves them in every order.
ROUND_TRIP_CASES = {
    "null-data": {"data": None},
    "empty-data": {"data": {}},
    "nested-data": {"data": {"a": {"b": [1, 2.5, -3, True, False, None, {"c": "d"}]}, "e": [], "f": {}}},
    # NUL and control characters in keys as well as in values (jsonb refuses \u0000 anywhere; a
    # store escaping values only fails on keys).
    "unicode": {"event_type": "Créé-事件-🦀", "data": {"ключ": "значение", "emoji": "🎉", "nul": "a\u0000b",
                                                       "key\u0000with-nul": {"ctl\u0001\u001f\u007f": "\u0000"}}},
    "numbers": {"data": {"int": 2**53 - 1, "neg": -(2**53 - 1), "float": 0.1, "tiny": 5e-324, "big": 1.7976931348623157e308}},
    # Floats that need 16 or 17 significant digits: a layer writing 15 (SQLite's json(), printf
    # %.15g) changes them.
    "seventeen-digit-floats": {"data": {"sum": 0.1 + 0.2, "third": 1 / 3, "pi": 3.141592653589793,
                                        "1e23": 1e23, "near-one": 0.9999999999999999, "neg": -2.2250738585072014e-308}},
    "bools-are-not-numbers": {"data": {"t": True, "f": False, "one": 1, "zero": 0}},
    # Integers a 64-bit or JavaScript-safe representation cannot hold: they may come back as the
    # float64 they round to, but as numbers (not text, not an error, not dropped).
    "big-integers": {"data": {"over-2^53": 2**53 + 1, "int64-max": 2**63 - 1, "over-int64": 2**63,
                              "under-int64": -(2**63) - 1, "huge": 10**30,
                              # 39 significant digits: more than MongoDB's Decimal128 holds (34).
                              "over-2^128": 2**128, "under-minus-2^128": -(2**128) - 1}},
    # Values a JavaScript or PHP layer rewrites: a prototype key, a date-looking string (a reviver
    # makes it a Date), and an object keyed "0".."n-1" (PHP's json_decode turns it into a list).
    "script-layer-values": {"data": {"__proto__": {"x": 1}, "constructor": "c", "when": "2024-01-02T03:04:05Z",
                                     "seq": {"0": "a", "1": "b"}, "line-separators": "a\u2028b\u2029c\x85d"}},
    # Keys document databases reserve or rewrite ('$' and '.' in MongoDB, '_' in CouchDB, '' in
    # search indexes), and members whose value is null (serialisers that omit them).
    "special-keys": {"data": {"$type": "Order", "a.b": 1, "_id": "x", "": "empty key", "none": None,
                              "nested": {"$ref": "r", "x.y": [None], "": {}, "_rev": None}}},
    # Text a YAML 1.1 reader, a date-parsing JSON reader (Json.NET), an XML layer (line ends) or an
    # escaping scheme that is not injective turns into something else; and empty strings (DynamoDB
    # once wrote them as NULL).
    "text-that-looks-like-other-values": {"data": {
        "country": "NO", "light": "on", "answer": "Yes", "switch": "OFF", "y": "y", "null-text": "null",
        "tilde": "~", "true-text": "true", "number-text": "1e3", "hex-text": "0x1F", "octal-text": "010",
        "inf-text": ".inf", "nan-text": "NaN", "date-with-offset": "2024-01-02T03:04:05+02:00",
        "date-with-zeros": "2024-01-02T03:04:05.1000000Z", "date-only": "2024-01-02",
        "escape-text": "bad byte \\u0000 seen", "newline-text": "a\\nb", "percent-text": "a%2Eb",
        "cr": "a\rb", "crlf": "line1\r\nline2", "empty": "", "space": " ", "in-list": ["", "\r", "no"],
        "empty-key-and-value": {"": ""},
        # The same words as keys: a YAML layer that quotes values but not keys reads these as
        # booleans and null, which come back as the keys "true", "false" and "null".
        "keys": {"on": 1, "off": 0, "yes": 2, "NO": 3, "y": 4, "n": 5, "true": 6, "False": 7, "null": 8, "~": 9,
                 "Yes": 10, "Off": 11}}},
    # Keys a driver or library reads as instructions: MongoDB extended JSON wrappers, Spring
    # Data's type alias, an object with a length (lodash/underscore iterate it as an array), keys
    # that look escaped, and long keys (an EAV table's VARCHAR(64) key column).
    "keys-that-look-like-instructions": {"data": {
        "n": {"$numberLong": "5"}, "d": {"$date": "2024-01-02T03:04:05Z"}, "o": {"$oid": "5f1d7a9e8c1b2a3d4e5f6a7b"},
        "item": {"_class": "Book", "t": "x"}, "line": {"length": 3, "unit": "m"}, "a%2Eb": 1, "%2F": 2,
        "ruby": {"json_class": "Book", "title": "t"},
        "k" * 65: 65, "K" * 256: 256, "long-" + "x" * 1100: 1105}},
    # Keys named like the envelope's fields, or like metadata a layer merges into the document
    # and strips on the way out (Logstash's @version and @timestamp, ECS's actorId).
    "envelope-named-keys": {"data": {
        "id": "i", "actorId": "a", "actor_id": "a_", "version": 99, "eventType": "e", "event_type": "e_",
        "timestamp": "t", "@timestamp": "2024-01-02T03:04:05Z", "@version": 3, "commandId": "c", "data": {"data": None},
        "state": None, "_type": "doc", "_source": {}, "type": "x"}},
    # Keys differing only in case (a case-insensitive dictionary keeps one of them).
    "keys-differing-in-case": {"data": {"Key": 1, "key": 2, "KEY": 3, "nested": {"Id": "a", "id": "b"}}},
    # Keys a collation takes for one another (one row per key under a case-, accent-, width-, kana-
    # or trailing-space-insensitive collation keeps one of each pair).
    "keys-a-collation-confuses": {"data": {"Id": "A-1", "id": 7, "café": 1, "cafe": 2, "cafe\u0301": 3, "k": 4,
                                           "k ": 5, "ＡＢＣ": 6, "ABC": 7, "\u3042": 8, "\u30a2": 9}},
    "command-id": {"command_id": "cmd-42"},
    # Blank is not empty: a layer that maps blank strings to "none" drops it.
    "blank-command-id": {"command_id": " \t "},
    "no-command-id": {"command_id": ""},
    # Not the empty event id: every run would reuse it, and ES-ID-001 lets a store refuse reused ids.
    "empty-event-type": {"event_type": ""},
    "microseconds": {"timestamp": datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=timezone.utc)},
    "offset": {"timestamp": datetime(2024, 6, 1, 9, 0, 0, 1, tzinfo=timezone(timedelta(hours=5, minutes=30)))},
    "negative-offset": {"timestamp": datetime(1999, 12, 31, 23, 0, 0, 500000, tzinfo=timezone(timedelta(hours=-8)))},
    "go-zero-time": {"timestamp": datetime(1, 1, 1, tzinfo=timezone.utc)},
    # Local mean time: offsets with seconds (Amsterdam before 1937, Dublin before 1916), which a
    # formatter writing only hours and minutes moves by the seconds.
    "offset-with-seconds": {"timestamp": datetime(1900, 1, 1, tzinfo=timezone(timedelta(minutes=19, seconds=32)))},
    "negative-offset-with-seconds": {"timestamp": datetime(1910, 6, 1, 12, tzinfo=timezone(-timedelta(minutes=25, seconds=21)))},
}


def new_event(actor_id: str, version: int, **fields: Any) -> Event:
    values: dict[str, Any] = {
        "id": f"evt-{uuid.uuid4().hex}",
        "event_type": "ThingHappened",
        "actor_id": actor_id,
        "version": version,
        "data": {"version": version, "note": "conformance"},
        "timestamp": Timestamp.from_datetime(
            BASE_TIME + timedelta(seconds=version % 100_000), nanosecond=789
        ),
    }
    values.update(fields)
    return Event(**values)


def highest_stored_version(store: DrivenHandle, actor_id: str) -> int:
    """The highest version a shared, never fresh, actor holds (whatever its latest version claims):
    a test writes above it, so that every run against a long-lived store can use the same id."""
    try:
        return max([store.get_latest_version(actor_id), *(e.version for e in store.get_events(actor_id, 0))])
    except StoreRaised:
        return 0


def new_snapshot(actor_id: str, version: int, **fields: Any) -> ActorSnapshot:
    values: dict[str, Any] = {
        "actor_id": actor_id,
        "version": version,
        "state": {"version": version, "items": [1, 2, 3]},
        "timestamp": datetime(2024, 3, 2, 8, 30, 0, 654321, tzinfo=timezone.utc),
    }
    values.update(fields)
    return ActorSnapshot(**values)


def exact_id(base: str, suffix: str) -> str:
    """``base`` made fresh by ``suffix`` (a fresh_actor token) within the 256 characters every store accepts."""
    return (base[: 256 - len(suffix)] + suffix) if len(base) + len(suffix) > 256 else base + suffix


def summary(event: Event) -> str:
    return f"v{event.version} (id {event.id})"


def versions(events: list[Event]) -> list[int]:
    return [event.version for event in events]


# A save the test needs to succeed, or to conflict, is a precondition of what the test checks:
# when it goes wrong, the message names the requirement that rule belongs to (ES-SAVE-001 or
# ES-SAVE-002), so that one broken rule is reported once, and the tests that relied on it as
# blocked by it.  When that rule holds everywhere else, the report charges the test's own
# requirement instead (report.summarise).
SAVE_ACCEPTED, SAVE_REFUSED = "ES-SAVE-001", "ES-SAVE-002"


def save_ok(req_id: str, store: DrivenHandle, event: Event, context: str = "") -> None:
    """Save ``event``, which a conforming store must accept."""
    try:
        store.save_event(event)
    except VersionConflictError as error:
        violated(
            SAVE_ACCEPTED,
            f"saved version {event.version} to actor {q(event.actor_id)}{context}; expected success, "
            f"store raised VersionConflictError({error})",
        )


def save_all_ok(req_id: str, store: DrivenHandle, events: list[Event], context: str = "") -> None:
    """``save_ok`` for each of ``events`` in turn, made as one run of calls (one hand-off to the store)."""
    try:
        store.one_after_another([("save_event", (event,)) for event in events])
    except VersionConflictError as error:
        event = events[error.call_index]
        violated(SAVE_ACCEPTED, f"saved version {event.version} to actor {q(event.actor_id)}{context}; expected "
                                f"success, store raised VersionConflictError({error})")


def check_saves_made_at_once(store: DrivenHandle, how: str, saves: list[Event], outcomes: list[Any],
                             above: int = 0) -> list[int]:
    """Saves of one actor made at once, each ``outcomes`` item None (acknowledged) or what it raised:
    a refusal is a conflict at or above its own version, and what was acknowledged is what the
    actor holds above ``above``, in ascending order (ES-CONC-001).  Returns the versions held."""
    for event, outcome in zip(saves, outcomes):
        if isinstance(outcome, VersionConflictError) and outcome.current_version < event.version:
            violated("ES-CONC-001", f"{how}: version {event.version} was refused with current version "
                                    f"{outcome.current_version}, below it: {outcome}")
        if outcome is not None and not isinstance(outcome, VersionConflictError):
            violated("ES-CONC-001", f"{how}: version {event.version} failed other than with a VersionConflictError: "
                                    f"{outcome}")
    acknowledged = [event.version for event, outcome in zip(saves, outcomes) if outcome is None]
    stored = versions(store.get_events(saves[0].actor_id, above + 1 if above else 0))
    if stored != acknowledged:
        violated("ES-CONC-001", f"{how}: acknowledged versions {acknowledged}; the actor then holds {stored}"
                                + (f" above {above}" if above else ""))
    return stored


def save_conflict(req_id: str, store: DrivenHandle, event: Event, latest: int) -> VersionConflictError:
    """Save ``event``, which a conforming store must refuse; return the error."""
    try:
        store.save_event(event)
    except VersionConflictError as error:
        return error
    except StoreRaised as error:
        _not_refused(event, latest, error)
    _not_refused(event, latest, None)


def save_all_conflict(req_id: str, store: DrivenHandle, events: list[Event], latest: int) -> list[VersionConflictError]:
    """``save_conflict`` for each of ``events`` in turn, made as one run of calls: the errors."""
    outcomes = store.one_after_another([("save_event", (event,)) for event in events], settle=True)
    for event, outcome in zip(events, outcomes):
        if not isinstance(outcome, VersionConflictError):
            if outcome is not None and not isinstance(outcome, StoreRaised):
                raise outcome  # a misbehaviour the driver reports for itself
            _not_refused(event, latest, outcome)
    return outcomes


def _not_refused(event: Event, latest: int, raised: StoreRaised | None) -> NoReturn:
    got = (f"store raised {type(raised.original).__name__}: {raised.original_text}" if raised is not None
           else "store returned None")
    violated(SAVE_REFUSED, f"saved version {event.version} to actor {q(event.actor_id)} whose latest is {latest}; "
                           f"expected VersionConflictError, {got}")


def _same_instant_to_microsecond(left: datetime, right: datetime) -> bool:
    """Less than a microsecond apart: a store may cut the nanoseconds or round them (TIMESTAMPTZ
    rounds .123456789 to .123457), as spec section 2.3 says."""
    return abs(utc_nanoseconds(left) - utc_nanoseconds(right)) < 1000


def _diff(expected: Any, got: Any, exact: tuple[str, ...], json_field: str) -> list[str]:
    """Fields that differ: ``exact`` ones by type and value, the JSON one deeply, the timestamp to the µs."""
    problems = []
    for name in exact:
        want, have = getattr(expected, name), getattr(got, name)
        if type(want) is not type(have) or want != have:
            problems.append(f"{name}: saved {want!r}, read {have!r}")
    want, have = getattr(expected, json_field), getattr(got, json_field)
    if not json_equal(want, have):
        problems.append(f"{json_field}: saved {want!r}, read {have!r}")
    if not _same_instant_to_microsecond(expected.timestamp, got.timestamp):
        problems.append(f"timestamp: saved {expected.timestamp.isoformat()}, read {got.timestamp.isoformat()}")
    return problems


def read_back(store: DrivenHandle, actor_id: str, from_version: int, expected: list[int], context: str = "") -> list[Event]:
    """get_events, whose versions a test of something else (content, ids) needs to be ``expected``.
    When they are not, the failure names ES-READ-001: a store that reads the wrong events is
    reported there, and the test's own requirement as blocked by it."""
    got = store.get_events(actor_id, from_version)
    if versions(got) != expected:
        violated("ES-READ-001", f"saved versions {expected} to {q(actor_id)}{context}; get_events({q(actor_id)}, "
                                f"{from_version}) returned versions {versions(got)}")
    return got


def diff_event(expected: Event, got: Event) -> list[str]:
    """Fields ES-READ-003 requires to round-trip that differ (empty when equal)."""
    return _diff(expected, got, ("id", "event_type", "actor_id", "command_id", "version"), "data")


def diff_snapshot(expected: ActorSnapshot, got: ActorSnapshot) -> list[str]:
    """Fields SS-SNAP-003 requires to round-trip that differ (empty when equal)."""
    return _diff(expected, got, ("actor_id", "version"), "state")


@dataclass(frozen=True)
class Planted:
    """Actors written when the run began, to be checked again when it ends (test_revisit.py)."""

    at: float  # time.monotonic() when they were written
    events: dict[str, list[Event]]
    snapshots: dict[str, ActorSnapshot]
    # Why planting failed, for the revisit to report: a fixture error would fail every test with it.
    problem: str = ""


# What the third planted actor's events carry, each something a backend may expire or compact
# away some time after the save: null data (a tombstone on a compacted topic), data keys that TTL
# sweepers read (an epoch long past), a timestamp over 20 years old (a TTL counted from it).
PLANTED_KINDS: tuple[dict[str, Any], ...] = (
    {"data": None},
    {"data": {"ttl": 300, "expireAt": 1, "expires_at": 1, "expiresAt": 1, "expiry": 1, "expiration": 1}},
    {"timestamp": datetime(2001, 1, 1, 0, 0, 0, 1000, tzinfo=timezone.utc)},
)


# A planted actor longer than the first page of 1,000 that a store may rebuild an evicted actor
# from, and than the newest 1,000 events an archive tier keeps hot.
PLANTED_LONG = 1_050


def plant_revisit_actors(store: DrivenHandle, fresh_actor: Any) -> Planted:
    """Write a few actors at the very start of a session and read them once (warming any cache)."""
    started = time.monotonic()
    events: dict[str, list[Event]] = {}
    snapshots: dict[str, ActorSnapshot] = {}
    try:
        for label, stream in (("planted", (1, 2, 3)), ("planted-gaps", (2, 10, 100)), ("planted-kinds", (1, 2, 3)),
                              ("planted-long", range(1, PLANTED_LONG + 1))):
            actor = fresh_actor(label)
            # The gapped actor's events are one command's (a log compacted by command id keeps one).
            events[actor] = [new_event(actor, v, command_id=f"cmd-{label}" if label == "planted-gaps" else
                                       f"cmd-{label}-{v}") for v in stream]
            if label == "planted-kinds":
                events[actor] = [replace(event, **kind) for event, kind in zip(events[actor], PLANTED_KINDS)]
            if label == "planted-long":  # its oldest event has null data, which an archive tier may rewrite
                events[actor][0] = replace(events[actor][0], data=None)
            save_all_ok("ES-SAVE-001", store, events[actor],
                        context=" (planted at the start of the run, to revisit at its end)")
            store.get_latest_version(actor)
            store.get_events(actor, 0)
        # The first planted event's id again, on an actor of its own: a store may refuse it (ES-ID-001),
        # and if it keeps it, both events must stay (a log compacted by event id keeps the later).
        first = next(iter(events.values()))[0]
        again = new_event(fresh_actor("planted-reused-id"), 1, id=first.id)
        try:
            store.save_event(again)
        except StoreRaised as error:
            if not isinstance(error.original, ValueError):
                violated("ES-REFUSE-001", f"version 1 of new actor {q(again.actor_id)}, with an event id another "
                                          f"actor's event has, was refused with {type(error.original).__name__}: "
                                          f"{error.original_text}; a refusal must be a ValueError")
        except VersionConflictError as error:
            violated("ES-SAVE-001", f"version 1 of new actor {q(again.actor_id)} conflicted: {error}")
        else:
            events[again.actor_id] = [again]
        if store.driver.has_snapshots:
            actor, gapped = list(events)[:2]
            snapshots[actor] = new_snapshot(actor, 2, state={"planted": True})
            # A null state too: a log that writes the state as the record's value makes it a
            # tombstone, which its cleaner removes some 10,000 records later.
            snapshots[gapped] = new_snapshot(gapped, 100, state=None)
            with blame("SS-SNAP-002"):
                store.save_snapshot(snapshots[actor])
                # A lower one after it, taken later: a log compacted to the last record per actor, or a
                # table read newest-taken first once a cache of the highest has let the actor go,
                # answers this one.
                store.save_snapshot(new_snapshot(actor, 1, state={"planted": "lower, saved later"},
                                                 timestamp=snapshots[actor].timestamp + timedelta(hours=1)))
                store.save_snapshot(snapshots[gapped])
                store.get_latest_snapshot(actor)
    except AssertionError as error:  # RequirementViolation and StoreMisbehaviour
        message = str(error)
        return Planted(started, {}, {}, message if message[:3] in ("ES-", "SS-") else f"ES-SAVE-001: {message}")
    return Planted(started, events, snapshots)


@contextmanager
def heap_frozen() -> Iterator[None]:
    """Garbage collections inside the block look only at objects made inside it (``gc.freeze``): by
    the time handles are dropped the run holds some 140,000 objects, and a full collection of them
    for each dropped handle cost a tenth of a second."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def drop(held: list[StoreDriver], timeout: float) -> bool:
    """Drop the last reference to a driver (the one ``held``) and collect garbage in a thread of its
    own, where its handles' finalisers run: one that blocks stalls that thread, not the test.  False
    when the collection did not finish within ``timeout``."""

    def collect() -> None:
        held.clear()
        gc.collect()

    collector = threading.Thread(target=collect, name="aether-gc", daemon=True)
    collector.start()
    collector.join(timeout)
    return not collector.is_alive()
