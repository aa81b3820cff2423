"""ES-READ-* and ES-LATEST-*: what get_events and get_latest_version return."""

from __future__ import annotations

import copy
import random
import uuid

import pytest

from ..driver import StoreRaised
from ..errors import VersionConflictError
from ..model import INT64_MAX, INT64_MIN, Timestamp, json_equal
from .support import DATA_LOOKALIKES, ROUND_TRIP_CASES, blame, diff_event, read_back, new_event, q, save_ok, versions, violated

GAPPED = [1, 2, 4, 7, 8, 15]


def _saved(store, actor, version_list, req_id, **fields):
    events = [new_event(actor, v, **fields) for v in version_list]
    for event in events:
        save_ok(req_id, store, event)
    return events


@pytest.mark.requirement("ES-READ-001")
@pytest.mark.parametrize("from_version", [INT64_MIN, -1, 0, 1, 2, 3, 4, 5, 7, 8, 14, 15])
def test_reads_are_inclusive_and_ascending(store, fresh_actor, from_version):
    actor = fresh_actor()
    saved = _saved(store, actor, GAPPED, "ES-READ-001")
    expected = [v for v in GAPPED if v >= from_version]
    got = store.get_events(actor, from_version)
    if versions(got) != expected:
        violated(
            "ES-READ-001",
            f"saved versions {GAPPED} to actor {q(actor)}; get_events(from_version={from_version}) returned "
            f"versions {versions(got)}; expected {expected} (inclusive, ascending)",
        )
    by_version = {e.version: e.id for e in saved}
    wrong = [(e.version, e.id) for e in got if by_version.get(e.version) != e.id]
    if wrong:
        violated("ES-READ-001", f"get_events on {q(actor)} returned events not saved at their versions: {wrong}")


@pytest.mark.requirement("ES-READ-001")
def test_every_read_sees_the_saves_made_since_the_same_read(store, fresh_actor):
    # The same reads, from every kind of from_version, before and after each save: a read-through
    # cache keyed by (actor, from_version) that a save invalidates only for the whole-stream key
    # keeps answering tail reads with what they returned before.
    actor = fresh_actor("reread")
    saved: list[int] = []
    for version in (1, 2, 3, 5, 6):
        save_ok("ES-READ-001", store, new_event(actor, version))
        saved.append(version)
        for from_version in (0, 1, 2, 3, 4, 5, 6, 7):
            expected = [v for v in saved if v >= from_version]
            got = versions(store.get_events(actor, from_version))
            if got != expected:
                violated("ES-READ-001", f"saved versions {saved} to actor {q(actor)}, reading from 0 to 7 after each "
                                        f"save; get_events(from_version={from_version}) then returned {got}; "
                                        f"expected {expected}")


@pytest.mark.requirement("ES-READ-002")
def test_unknown_actor_has_no_events(store, fresh_actor):
    actor = fresh_actor("never-written")
    for from_version in (0, 1, 100):
        got = store.get_events(actor, from_version)
        if got != []:
            violated("ES-READ-002", f"get_events({q(actor)}, {from_version}) on an unknown actor returned {got!r}; expected []")


@pytest.mark.requirement("ES-READ-002")
@pytest.mark.parametrize("from_version", [16, 100, 2**62])
def test_reading_past_the_latest_is_empty(store, fresh_actor, from_version):
    actor = fresh_actor()
    _saved(store, actor, GAPPED, "ES-READ-002")
    got = store.get_events(actor, from_version)
    if got != []:
        violated(
            "ES-READ-002",
            f"saved versions {GAPPED} to actor {q(actor)}; get_events(from_version={from_version}) returned "
            f"versions {versions(got)}; expected []",
        )


@pytest.mark.requirement("ES-READ-003")
@pytest.mark.parametrize("case", sorted(ROUND_TRIP_CASES))
def test_events_round_trip(store, fresh_actor, case):
    actor = fresh_actor()
    event = new_event(actor, 1, **ROUND_TRIP_CASES[case])
    save_ok("ES-READ-003", store, event)
    got = read_back(store, actor, 1, [1])
    problems = diff_event(event, got[0])
    if problems:
        violated("ES-READ-003", f"event saved to {q(actor)} ({case}) came back changed: " + "; ".join(problems))


# Ids and types that look like values of another type: a column with numeric affinity (SQLite
# NUMERIC) or a UUID/Guid type stores them as that type and returns its canonical spelling.
TYPED_LOOKING_FIELDS = {
    "uuid-upper-case": lambda: {"id": str(uuid.uuid4()).upper()},
    "uuid-braces": lambda: {"id": "{" + str(uuid.uuid4()) + "}"},
    "uuid-no-dashes": lambda: {"id": uuid.uuid4().hex},
    "leading-zeros": lambda: {"id": f"000{uuid.uuid4().int % 10**18}", "event_type": "007", "command_id": "0042"},
    "decimal": lambda: {"id": f"{uuid.uuid4().int % 10**12}.50", "event_type": "1.0", "command_id": "+5"},
    "exponent": lambda: {"id": f"{uuid.uuid4().int % 10**12}e3", "event_type": "1e3", "command_id": "2E-2"},
}


@pytest.mark.requirement("ES-READ-003")
def test_event_types_differing_in_case_or_accents_stay_apart(store, fresh_actor):
    # Event types kept in a lookup table under a case- or accent-insensitive collation come back
    # in whichever spelling was saved first, by this run or an earlier one: of four spellings
    # such a table folds together, at least three come back changed.
    actor = fresh_actor()
    saved = [new_event(actor, v, event_type=t) for v, t in
             enumerate(("OrderPlaced", "orderplaced", "ORDERPLACED", "OrderPlacéd"), 1)]
    for event in saved:
        save_ok("ES-READ-003", store, event)
    got = store.get_events(actor, 0)
    if [e.event_type for e in got] != [e.event_type for e in saved]:
        violated("ES-READ-003", f"saved events of types {[e.event_type for e in saved]} to {q(actor)}; they came back "
                                f"as types {[e.event_type for e in got]}")


@pytest.mark.requirement("ES-READ-003")
@pytest.mark.parametrize("case", sorted(TYPED_LOOKING_FIELDS))
def test_typed_looking_ids_and_types_round_trip(store, fresh_actor, case):
    actor = fresh_actor()
    event = new_event(actor, 1, **TYPED_LOOKING_FIELDS[case]())
    save_ok("ES-READ-003", store, event, context=f" ({case} id)")
    got = read_back(store, actor, 0, [1])
    problems = diff_event(event, got[0])
    if problems:
        violated("ES-READ-003", f"event saved to {q(actor)} ({case}) came back changed: " + "; ".join(problems))


def _blank_id() -> str:
    # Blank, not empty, and new on every run (a store may refuse an id it already stores, ES-ID-001).
    rng = random.Random(uuid.uuid4().int)
    return "".join(rng.choice(" \t\u00a0\u2003\u3000") for _ in range(24))


# Event ids another layer rewrites or drops: a CHAR column pads and strips spaces, a .NET or Java
# layer replaces blank ids, an object store lists keys by '/' as folders.
EVENT_IDS_OTHER_LAYERS_REWRITE = {
    "trailing-space": lambda: f"evt-{uuid.uuid4().hex} ",
    "leading-space": lambda: f" evt-{uuid.uuid4().hex}",
    "blank": _blank_id,
    "path-like": lambda: f"orders/2024/evt-{uuid.uuid4().hex}",
    # A byte-order mark first, in the actor's first event: a reader that sniffs a BOM drops it.
    "byte-order-mark-first": lambda: f"\ufeffevt-{uuid.uuid4().hex}",
    "dot-segments-and-escapes": lambda: f"../evt-{uuid.uuid4().hex}/./a%2Fb\\c",
}


@pytest.mark.requirement("ES-READ-003")
@pytest.mark.parametrize("case", sorted(EVENT_IDS_OTHER_LAYERS_REWRITE))
def test_event_ids_other_layers_rewrite_round_trip(store, fresh_actor, case):
    actor = fresh_actor()
    saved = [new_event(actor, 1, id=EVENT_IDS_OTHER_LAYERS_REWRITE[case]()), new_event(actor, 2)]
    for event in saved:
        save_ok("ES-READ-003", store, event, context=f" (event id {q(event.id)})")
    got = read_back(store, actor, 0, [1, 2])
    problems = [p for a, b in zip(saved, got) for p in diff_event(a, b)]
    if problems:
        violated("ES-READ-003", f"events saved to {q(actor)} ({case} event id) came back changed: " + "; ".join(problems))


@pytest.mark.requirement("ES-SAVE-001", "ES-READ-003")
def test_event_ids_differing_in_case_are_different_ids(store, fresh_actor):
    # A unique index under a case-insensitive collation (MySQL's default) takes the second for a
    # reuse of the first; ES-ID-001 lets a store refuse only an id it already stores.
    token = uuid.uuid4().hex
    first, second = fresh_actor(), fresh_actor()
    saved = [new_event(first, 1, id=f"EVT-{token.upper()}"), new_event(first, 2, id=f"evt-{token}"),
             new_event(second, 1, id=f"Evt-{token}")]
    for event in saved:
        try:
            store.save_event(event)
        except StoreRaised as error:
            violated("ES-SAVE-001", f"saved event id {q(event.id)} to {q(event.actor_id)} v{event.version} after ids "
                                    f"that differ from it only in case; store raised {type(error.original).__name__}: "
                                    f"{error.original_text}")
        except VersionConflictError as error:
            violated("ES-SAVE-001", f"saved event id {q(event.id)} to {q(event.actor_id)} v{event.version}; store raised "
                                    f"VersionConflictError({error})")
    got = store.get_events(first, 0) + store.get_events(second, 0)
    if [e.id for e in got] != [e.id for e in saved]:
        violated("ES-READ-003", f"saved event ids {[e.id for e in saved]}; read back {[e.id for e in got]}")


@pytest.mark.requirement("ES-READ-001", "ES-READ-002")
def test_reads_from_far_beyond_int32_after_many_small_ones(aether_driver, fresh_actor):
    # A driver that prepares a statement after a few calls fixes its parameter types then: with
    # small from_versions first, an int4 parameter refuses 2^40 later ("integer out of range").
    # A new handle, so that this test's reads are its first.
    store = aether_driver.new_handle()
    actor = fresh_actor()
    for version in (1, 2, 3):
        save_ok("ES-READ-001", store, new_event(actor, version))
    for from_version in (0, 1, 2, 3, 1, 2, 0, 3):
        read_back(store, actor, from_version, [v for v in (1, 2, 3) if v >= from_version])
    for from_version in (2**31, 2**40, INT64_MAX):
        got = store.get_events(actor, from_version)
        if got != []:
            violated("ES-READ-002", f"{q(actor)} holds versions 1-3; get_events(from_version={from_version}) after eight "
                                    f"reads from small versions returned versions {versions(got)}, expected []")


@pytest.mark.requirement("ES-READ-003", "ES-SAVE-001")
def test_hundreds_of_distinct_event_types_round_trip(store, fresh_actor):
    # Event types kept in a lookup table with a small key (MySQL TINYINT: 255 of them, SMALLINT)
    # run out after that many types, this run's or all runs' together: 300 new ones here.
    actor = fresh_actor()
    token = uuid.uuid4().hex[:12]
    saved = [new_event(actor, version, event_type=f"Type{version}-{token}") for version in range(1, 301)]
    for event in saved:
        save_ok("ES-SAVE-001", store, event, context=f" (event type {event.event_type!r}, one of 300 distinct ones)")
    got = store.get_events(actor, 0)
    if [e.event_type for e in got] != [e.event_type for e in saved]:
        changed = [(e.version, e.event_type) for e, s in zip(got, saved) if e.event_type != s.event_type][:3]
        violated("ES-READ-003", f"saved 300 events of distinct types to {q(actor)}; read back {len(got)} events, "
                                f"types changed: {changed}")


@pytest.mark.requirement("ES-READ-003")
@pytest.mark.parametrize("case", sorted(DATA_LOOKALIKES))
def test_data_a_content_store_takes_for_other_data_is_kept(store, fresh_actor, case):
    first, second = DATA_LOOKALIKES[case]
    # Each in both orders, on one actor and on actors of their own.
    streams = {fresh_actor("lookalike"): (first, second), fresh_actor("lookalike"): (second, first),
               fresh_actor("lookalike"): (first,), fresh_actor("lookalike"): (second,)}
    saved = {actor: [new_event(actor, version, data=copy.deepcopy(data)) for version, data in enumerate(datas, 1)]
             for actor, datas in streams.items()}
    for events in saved.values():
        for event in events:
            save_ok("ES-READ-003", store, event)
    for actor, events in saved.items():
        for expected, actual in zip(events, read_back(store, actor, 1, versions(events))):
            if not json_equal(expected.data, actual.data):
                violated("ES-READ-003", f"saved data {first!r} and {second!r} ({case}) to one actor in both orders and "
                                        f"to actors of their own; event v{expected.version} of {q(actor)}, saved with "
                                        f"data {expected.data!r}, came back with {actual.data!r}")


# One read crosses null, empty, flat and nested data in turn: a store with a path of its own for
# one kind of data (a NULL column, an event with nothing to copy) must still return the rest.
DATA_SHAPES = [None, {}, {"version": 1, "note": "flat"}, ROUND_TRIP_CASES["nested-data"]["data"]]


@pytest.mark.requirement("ES-READ-003")
def test_many_events_round_trip_in_one_read(store, fresh_actor):
    actor = fresh_actor()
    saved = [new_event(actor, v, data=copy.deepcopy(DATA_SHAPES[(v - 1) % len(DATA_SHAPES)])) for v in range(1, 251)]
    for event in saved:
        save_ok("ES-READ-003", store, event)
    got = read_back(store, actor, 1, list(range(1, 251)))
    for expected, actual in zip(saved, got):
        problems = diff_event(expected, actual)
        if problems:
            violated("ES-READ-003", f"event v{expected.version} of {q(actor)} came back changed: " + "; ".join(problems))


@pytest.mark.requirement("ES-READ-004")
@pytest.mark.parametrize(
    "stamp",
    ["2024-01-02T03:04:05.123456789Z", "2024-01-02T03:04:05.000000001+02:00", "2024-01-02T03:04:05.1-07:30",
     "2024-01-02T03:04:05+14:00"],
)
def test_timestamps_keep_nanoseconds_and_offset(store, fresh_actor, stamp):
    actor = fresh_actor()
    timestamp = Timestamp.parse(stamp)
    save_ok("ES-READ-004", store, new_event(actor, 1, timestamp=timestamp))
    got = read_back(store, actor, 1, [1])[0].timestamp
    got_ns = got.nanosecond if isinstance(got, Timestamp) else 0
    if got != timestamp or got.utcoffset() != timestamp.utcoffset():
        violated(
            "ES-READ-004",
            f"saved timestamp {stamp} to {q(actor)}; read back {got.isoformat()} "
            f"(+{got_ns} ns, offset {got.utcoffset()}); expected nanoseconds {timestamp.nanosecond} and "
            f"offset {timestamp.utcoffset()}",
        )


@pytest.mark.requirement("ES-READ-005")
def test_mutating_a_saved_event_does_not_change_the_store(store, fresh_actor):
    actor = fresh_actor()
    event = new_event(actor, 1, data={"items": [1, 2], "nested": {"k": "v"}})
    original = copy.deepcopy(event.data)
    store.save_event(event, hand_over=True)  # the object changed below, not the driver's copy
    event.data["items"].append(3)
    event.data["nested"]["k"] = "changed"
    event.data["added"] = True
    got = read_back(store, actor, 1, [1])[0].data
    if not json_equal(got, original):
        violated("ES-READ-005", f"mutated the caller's data after saving it to {q(actor)}; the store now returns {got!r}, expected {original!r}")


@pytest.mark.requirement("ES-READ-005")
def test_mutating_a_read_event_does_not_change_the_store(store, fresh_actor):
    actor = fresh_actor()
    event = new_event(actor, 1, data={"items": [1, 2], "nested": {"k": "v"}})
    original = copy.deepcopy(event.data)
    save_ok("ES-READ-005", store, event)

    def mutate(returned):
        # The store's own objects, not the driver's copies: a store that hands out what it keeps is caught.
        try:
            returned[0].data["items"].append(3)
            returned[0].data["nested"]["k"] = "changed"
        except (TypeError, AttributeError, KeyError, IndexError):
            pass  # read-only data, or not the event saved (read_back below says which)

    store.get_events_and_mutate(actor, 1, mutate)
    got = read_back(store, actor, 1, [1])[0].data
    if not json_equal(got, original):
        violated("ES-READ-005", f"mutated the data of an event read from {q(actor)}; the store now returns {got!r}, expected {original!r}")


@pytest.mark.requirement("ES-LATEST-001")
def test_unknown_actor_is_at_version_0(store, fresh_actor):
    actor = fresh_actor("never-written")
    latest = store.get_latest_version(actor)
    if latest != 0:
        violated("ES-LATEST-001", f"get_latest_version({q(actor)}) on an unknown actor returned {latest!r}; expected 0")


@pytest.mark.requirement("ES-LATEST-002")
@pytest.mark.parametrize("sequence", [[1], [1, 2, 3], [3, 9], GAPPED], ids=str)
def test_latest_is_the_highest_saved(store, fresh_actor, sequence):
    actor = fresh_actor()
    for count, version in enumerate(sequence, 1):
        save_ok("ES-LATEST-002", store, new_event(actor, version))
        latest = store.get_latest_version(actor)
        if latest != version:
            violated(
                "ES-LATEST-002",
                f"saved versions {sequence[:count]} to {q(actor)}; get_latest_version returned {latest}; expected {version}",
            )


@pytest.mark.requirement("ES-READ-003")
def test_event_types_a_backend_reserves_round_trip(store, fresh_actor):
    # EventStoreDB reserves types starting with '$': "$>" is a link it resolves (and drops when the
    # target is missing), "$@" a link to an event number, "$metadata" a stream's settings.
    actor = fresh_actor()
    types = ("$>", "$@", "$metadata", "$streamDeleted", "$$$", "$ce-orders", "$et-ThingHappened")
    saved = [new_event(actor, version, event_type=kind, data={"link": f"{version}@{actor}"})
             for version, kind in enumerate(types, 1)]
    for event in saved:
        save_ok("ES-READ-003", store, event, context=f" (event type {event.event_type!r})")
    got = store.get_events(actor, 0)
    problems = [p for a, b in zip(saved, got) for p in diff_event(a, b)]
    if versions(got) != versions(saved) or problems:
        violated("ES-READ-003", f"saved events of types {list(types)} to {q(actor)}; read back versions "
                                f"{versions(got)} of types {[e.event_type for e in got]}" + "; ".join(problems[:3]))


@pytest.mark.requirement("ES-SAVE-001", "ES-READ-003")
@pytest.mark.parametrize("letter", ["é", "語", "🦀"], ids=["two-byte", "three-byte", "four-byte"])
def test_long_event_ids_differing_only_at_their_end_are_different_ids(store, fresh_actor, letter):
    # 1,000 characters, within the floor of 1,024 every store accepts, but 2,000 to 4,000 UTF-8
    # bytes: an index that keeps only the first 1,500 bytes of a string (Firestore's) takes the
    # second for a reuse of the first.
    token = uuid.uuid4().hex
    actor, other = fresh_actor(), fresh_actor()
    ids = [f"{token}{letter * 960}-{end}" for end in ("one", "two", "six")]
    saved = [new_event(actor, 1, id=ids[0]), new_event(actor, 2, id=ids[1]), new_event(other, 1, id=ids[2])]
    for event in saved:
        with blame("ES-SAVE-001"):
            save_ok("ES-SAVE-001", store, event, context=f" (event ids of 1,000 characters, {letter!r} repeated, that "
                                                         "differ only in their last three)")
    got = store.get_events(actor, 0) + store.get_events(other, 0)
    if [e.id for e in got] != ids:
        violated("ES-READ-003", f"saved three events whose ids of 1,000 characters differ only at their end; read back "
                                f"{len(got)} events, ids ending {[e.id[-6:] for e in got]}")


# Data under the 512 KiB floor made of many small members: a document store that counts every
# number as 8 bytes (Firestore) or caps the fields of a document (20,000) refuses it, and so does
# one that measures the limit on a wire form with spaces after separators (500 KB compact, 750 KB
# as Python's json.dumps writes it).
MANY_MEMBERS = {
    "250,000 small numbers": lambda: {"samples": [n % 10 for n in range(250_000)]},
    "25,000 object members": lambda: {f"k{n:05d}": n % 10 for n in range(25_000)},
}


@pytest.mark.requirement("ES-SAVE-001", "ES-READ-003")
@pytest.mark.parametrize("kind", sorted(MANY_MEMBERS))
def test_data_of_many_small_members_under_the_size_floor_round_trips(store, fresh_actor, kind):
    actor = fresh_actor()
    event = new_event(actor, 1, data=MANY_MEMBERS[kind]())
    with blame("ES-SAVE-001"):
        save_ok("ES-SAVE-001", store, event, context=f" (data of {kind}, under the 512 KiB every store accepts)")
    got = read_back(store, actor, 0, [1])
    if not json_equal(got[0].data, event.data):
        violated("ES-READ-003", f"saved an event of {q(actor)} whose data has {kind}; it came back changed")
