"""SS-SNAP-*: snapshot stores return the highest-version snapshot, unchanged."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest

from ..driver import StoreRaised
from ..errors import VersionConflictError
from ..model import json_equal
from .support import (DATA_LOOKALIKES, ROUND_TRIP_CASES, blame, diff_snapshot, exact_id, new_event, new_snapshot, q,
                      save_conflict, save_ok, versions, violated)
from .test_actors import EXACT_IDS


@pytest.mark.requirement("SS-SNAP-001")
def test_no_snapshot_is_none(snapshot_store, fresh_actor):
    actor = fresh_actor()
    got = snapshot_store.get_latest_snapshot(actor)
    if got is not None:
        violated("SS-SNAP-001", f"get_latest_snapshot({q(actor)}) for an actor without snapshots returned {got!r}; expected None")
    save_ok("SS-SNAP-001", snapshot_store, new_event(actor, 1))
    got = snapshot_store.get_latest_snapshot(actor)
    if got is not None:
        violated("SS-SNAP-001", f"{q(actor)} has an event but no snapshot; get_latest_snapshot returned {got!r}, expected None")


@pytest.mark.requirement("SS-SNAP-002")
# Negative versions too (not ahead of any stream, so no store may refuse them): a sorted key-value
# store keyed by the version's big-endian bytes without flipping the sign bit sorts -1 above 3.
# The highest first and six lower ones taken after it: a store keeping the five taken last loses it.
@pytest.mark.parametrize("order", [[1, 2, 3], [3, 2, 1], [2, 5, 3, 4, 1], [10, 1], [3, -1], [-5, -1, -3],
                                   [-(2**63), 2], [9, 1, 2, 3, 4, 5, 6]], ids=str)
def test_highest_version_wins(snapshot_store, fresh_actor, order):
    actor = fresh_actor()
    for version in range(1, max(order) + 1):
        save_ok("SS-SNAP-002", snapshot_store, new_event(actor, version))
    for count, version in enumerate(order, 1):
        # Each taken a second after the one before: a store that orders snapshots by the time they
        # were taken (Cassandra's clustering order on taken_at) returns the last, not the highest.
        taken = datetime(2024, 3, 2, 8, 30, tzinfo=timezone.utc) + timedelta(seconds=count)
        snapshot_store.save_snapshot(new_snapshot(actor, version, timestamp=taken))
        got = snapshot_store.get_latest_snapshot(actor)
        highest = max(order[:count])
        if got is None or got.version != highest:
            violated(
                "SS-SNAP-002",
                f"saved snapshots of {q(actor)} at versions {order[:count]} in that order; get_latest_snapshot "
                f"returned {'None' if got is None else f'version {got.version}'}; expected version {highest}",
            )


STATES = {
    "null": None,
    "empty": {},
    "nested": {"cart": {"items": [{"sku": "A-1", "qty": 2, "price": 9.99}], "open": True}, "tags": ["x", None]},
    "unicode": {"名前": "テスト", "emoji": "🦀", "nul": "a\u0000b", "key\u0000with-nul": {"ctl\u0001\u001f\u007f": "\u0000"}},
    "bools": {"t": True, "f": False, "one": 1, "zero": 0},
    "numbers": {"int32-max-plus-one": 2**31, "uint32-max-plus-two": 2**32 + 1, "float64-exact": 2**53 - 1,
                "negative": -(2**31) - 1, "float": 0.1, "tiny": 5e-324},
    "big-integers": ROUND_TRIP_CASES["big-integers"]["data"],
    "keys-differing-in-case": ROUND_TRIP_CASES["keys-differing-in-case"]["data"],
    "keys-a-collation-confuses": ROUND_TRIP_CASES["keys-a-collation-confuses"]["data"],
    "script-layer-values": ROUND_TRIP_CASES["script-layer-values"]["data"],
    "text-that-looks-like-other-values": ROUND_TRIP_CASES["text-that-looks-like-other-values"]["data"],
    "keys-that-look-like-instructions": ROUND_TRIP_CASES["keys-that-look-like-instructions"]["data"],
    "envelope-named-keys": ROUND_TRIP_CASES["envelope-named-keys"]["data"],
    "seventeen-digit-floats": ROUND_TRIP_CASES["seventeen-digit-floats"]["data"],
    # Empty containers below the top (PHP turns {} into [], Go's nil slices turn [] into null).
    "empty-nested": {"object": {}, "list": [], "deep": {"object": {}, "lists": [[], {}], "none": None}},
    # Keys document databases reserve or rewrite ('$' and '.' in MongoDB, '_' in CouchDB, '' in
    # search indexes), and members whose value is null (serialisers that omit them).
    "special-keys": {"$type": "Cart", "a.b": 1, "_id": "x", "": "empty key", "none": None,
                     "nested": {"$ref": "r", "x.y": [None], "": {}, "_rev": None}},
}


@pytest.mark.requirement("SS-SNAP-002")
def test_the_highest_snapshot_outlives_many_lower_ones(snapshot_store, fresh_actor):
    # A retention limit on snapshots kept per actor (JetStream max_msgs_per_subject, a capped
    # list) that drops the oldest *saved* loses the highest once enough lower ones follow it.
    # Past Redis's approximate trimming too, which drops whole nodes of 100 entries.
    actor, lower = fresh_actor(), 1_100
    save_ok("SS-SNAP-002", snapshot_store, new_event(actor, lower + 1))
    snapshot_store.save_snapshot(new_snapshot(actor, lower + 1))
    snapshot_store.one_after_another([("save_snapshot", (new_snapshot(actor, version),))
                                      for version in range(1, lower + 1)])
    got = snapshot_store.get_latest_snapshot(actor)
    if got is None or got.version != lower + 1:
        violated("SS-SNAP-002", f"saved a snapshot of {q(actor)} at version {lower + 1:,}, then {lower:,} lower ones (1 to "
                                f"{lower:,}); get_latest_snapshot returned "
                                f"{'None' if got is None else f'version {got.version}'}, expected {lower + 1:,}")


@pytest.mark.requirement("SS-SNAP-002", "SS-SNAP-003")
def test_the_highest_of_large_snapshots_wins(snapshot_store, fresh_actor):
    # Four snapshots of 380 KB: a read that takes the last item of a first page of 1 MB (a DynamoDB
    # Query that never follows LastEvaluatedKey) returns the second.
    actor = fresh_actor("large")
    for version in (1, 2, 3, 4):
        save_ok("SS-SNAP-002", snapshot_store, new_event(actor, version))
        snapshot_store.save_snapshot(new_snapshot(actor, version, state={"blob": f"{version}" * 380_000}))
    got = snapshot_store.get_latest_snapshot(actor)
    if got is None or got.version != 4:
        violated("SS-SNAP-002", f"saved snapshots of {q(actor)} at versions 1 to 4, each of 380 KB; get_latest_snapshot "
                                f"returned {'None' if got is None else f'version {got.version}'}, expected 4")
    # A lower one after it, with a state of its own: a blob store keyed by actor alone (a claim check
    # per actor, not per version) overwrites the state the highest snapshot's row points to.
    snapshot_store.save_snapshot(new_snapshot(actor, 2, state={"blob": "L" * 380_000}))
    got = snapshot_store.get_latest_snapshot(actor)
    what = f"saved snapshots of {q(actor)} at versions 1 to 4, each of 380 KB, then another at 2 with a state of its own"
    if got is None or got.version != 4:
        violated("SS-SNAP-002", f"{what}; get_latest_snapshot returned "
                                f"{'None' if got is None else f'version {got.version}'}, expected version 4")
    if not json_equal(got.state, {"blob": "4" * 380_000}):
        violated("SS-SNAP-003", f"{what}; get_latest_snapshot returned version 4 with a state starting "
                                f"{str(got.state)[:40]!r}, not the state saved with it")


@pytest.mark.requirement("SS-SNAP-003")
def test_a_snapshot_tied_with_another_is_one_of_them_whole(snapshot_store, fresh_actor):
    # Either of two snapshots at the same version may be returned (spec, "Snapshot version ties"),
    # but whole: a store that reconciles field by field (Cassandra's cells on equal write
    # timestamps keep the greater value) returns the state of one and the time of the other.
    actor = fresh_actor("tie")
    save_ok("SS-SNAP-003", snapshot_store, new_event(actor, 1))
    # The second's state sorts above the first's, and its time below.
    saved = [new_snapshot(actor, 1, state={"a": "first"}, timestamp=datetime(2024, 3, 2, 8, 30, 1, tzinfo=timezone.utc)),
             new_snapshot(actor, 1, state={"z": "second"}, timestamp=datetime(2024, 3, 2, 8, 30, 0, tzinfo=timezone.utc))]
    for snapshot in saved:
        snapshot_store.save_snapshot(snapshot)
    got = snapshot_store.get_latest_snapshot(actor)
    if got is None or all(diff_snapshot(snapshot, got) for snapshot in saved):
        violated("SS-SNAP-003", f"saved two snapshots of {q(actor)} at version 1 (state {{'a': 'first'}} at 08:30:01, "
                                f"then {{'z': 'second'}} at 08:30:00); get_latest_snapshot returned "
                                f"{'None' if got is None else f'state {got.state} at {got.timestamp}'}: neither of them")


@pytest.mark.requirement("SS-SNAP-002")
def test_a_snapshot_at_version_0_is_returned(snapshot_store, fresh_actor):
    # Not ahead of the events of a new actor (latest 0), so no store may refuse it (SS-SNAP-005);
    # a store that reads max(version) = 0 as "no snapshot" loses the actor's initial state.
    actor, version = fresh_actor(), 0
    snapshot = new_snapshot(actor, version, state={"initial": True})
    snapshot_store.save_snapshot(snapshot)
    got = snapshot_store.get_latest_snapshot(actor)
    if got is None or got.version != version:
        violated("SS-SNAP-002", f"saved a snapshot of {q(actor)} (no events) at version {version}; "
                                f"get_latest_snapshot returned {'None' if got is None else f'version {got.version}'}")
    # The actor's first events after it: a store that keeps the latest snapshot's pointer on a row
    # its first event creates loses the snapshot saved before that row.
    for event_version in (1, 2):
        save_ok("SS-SNAP-002", snapshot_store, new_event(actor, event_version), context=" (after a snapshot at 0)")
        got = snapshot_store.get_latest_snapshot(actor)
        if got is None or diff_snapshot(snapshot, got):
            violated("SS-SNAP-002", f"saved a snapshot of {q(actor)} at version 0, then events up to {event_version}; "
                                    f"get_latest_snapshot returned {'None' if got is None else f'version {got.version}'}")


@pytest.mark.requirement("SS-SNAP-003")
@pytest.mark.parametrize("kind", sorted(EXACT_IDS))
def test_snapshot_actor_ids_are_kept_exactly(snapshot_store, fresh_actor, kind):
    # The snapshot table's actor column may be narrower than the events' (utf8mb3, VARCHAR(64)).
    actor = exact_id(EXACT_IDS[kind], fresh_actor(""))
    save_ok("SS-SNAP-003", snapshot_store, new_event(actor, 1), context=f" (an id with {kind})")
    snapshot = new_snapshot(actor, 1)
    snapshot_store.save_snapshot(snapshot)
    got = snapshot_store.get_latest_snapshot(actor)
    if got is None or diff_snapshot(snapshot, got):
        problems = diff_snapshot(snapshot, got) if got is not None else ["get_latest_snapshot returned None"]
        violated("SS-SNAP-003", f"snapshot of {q(actor)} ({kind}) came back changed: " + "; ".join(problems))


@pytest.mark.requirement("SS-SNAP-003")
@pytest.mark.parametrize("case", sorted(STATES))
def test_snapshots_round_trip(snapshot_store, fresh_actor, case):
    actor = fresh_actor()
    save_ok("SS-SNAP-003", snapshot_store, new_event(actor, 1))
    snapshot = new_snapshot(
        actor, 1, state=STATES[case],
        timestamp=datetime(2024, 5, 6, 7, 8, 9, 101112, tzinfo=timezone(timedelta(hours=-3))),
    )
    snapshot_store.save_snapshot(snapshot)
    got = snapshot_store.get_latest_snapshot(actor)
    if got is None:
        violated("SS-SNAP-003", f"saved a snapshot of {q(actor)}; get_latest_snapshot returned None")
    problems = diff_snapshot(snapshot, got)
    if problems:
        violated("SS-SNAP-003", f"snapshot of {q(actor)} ({case}) came back changed: " + "; ".join(problems))


@pytest.mark.requirement("SS-SNAP-003")
@pytest.mark.parametrize("case", sorted(DATA_LOOKALIKES))
def test_states_a_content_store_takes_for_other_states_are_kept(snapshot_store, fresh_actor, case):
    first, second = DATA_LOOKALIKES[case]
    # Each state on an actor of its own, in both orders (a store keeping one copy per hash or per
    # equal value returns whichever came first).
    saved = [new_snapshot(fresh_actor("lookalike"), 0, state=copy.deepcopy(state)) for state in (first, second, first)]
    for snapshot in saved:
        snapshot_store.save_snapshot(snapshot)
    for snapshot in saved:
        got = snapshot_store.get_latest_snapshot(snapshot.actor_id)
        if got is None or not json_equal(got.state, snapshot.state):
            violated("SS-SNAP-003", f"saved states {first!r} and {second!r} ({case}) to actors of their own; the "
                                    f"snapshot of {q(snapshot.actor_id)}, saved with state {snapshot.state!r}, came back "
                                    + ("as None" if got is None else f"with {got.state!r}"))


@pytest.mark.requirement("SS-SNAP-003")
@pytest.mark.parametrize("offset", [timedelta(minutes=19, seconds=32), -timedelta(minutes=25, seconds=21)],
                         ids=["plus-00:19:32", "minus-00:25:21"])
def test_a_snapshot_taken_at_an_offset_with_seconds_keeps_its_instant(snapshot_store, fresh_actor, offset):
    # The local mean time of a zone before it adopted standard time (Amsterdam +00:19:32, Dublin
    # -00:25:21): a column that keeps the wall clock and the offset in whole minutes (SQL Server's
    # DATETIMEOFFSET) moves the instant by the seconds.
    actor = fresh_actor()
    save_ok("SS-SNAP-003", snapshot_store, new_event(actor, 1))
    snapshot = new_snapshot(actor, 1, timestamp=datetime(1900, 1, 1, 12, 0, 0, 250000, tzinfo=timezone(offset)))
    snapshot_store.save_snapshot(snapshot)
    got = snapshot_store.get_latest_snapshot(actor)
    if got is None or diff_snapshot(snapshot, got):
        violated("SS-SNAP-003", f"saved a snapshot of {q(actor)} taken at {snapshot.timestamp.isoformat()}; it came back "
                                f"as {'None' if got is None else got.timestamp.isoformat()}")


@pytest.mark.requirement("SS-SNAP-002")
def test_one_state_saved_at_two_versions_is_the_highest_of_them(snapshot_store, fresh_actor):
    # The same state at two versions of one actor, higher first and lower first: a store that keys
    # snapshots by a hash of their state (content-addressed objects, the version in metadata)
    # overwrites the higher version, or keeps the first one it saw when it skips existing objects.
    for order in ((8, 5), (5, 8)):
        actor = fresh_actor(f"same-state-{order[0]}-{order[1]}")
        for version in range(1, 9):
            save_ok("SS-SNAP-002", snapshot_store, new_event(actor, version))
        for version in order:
            snapshot_store.save_snapshot(new_snapshot(actor, version, state={"balance": 0}))
        got = snapshot_store.get_latest_snapshot(actor)
        if got is None or got.version != 8:
            violated("SS-SNAP-002", f"saved snapshots of {q(actor)} with the same state at versions {order[0]} then "
                                    f"{order[1]}; get_latest_snapshot returned "
                                    f"{'None' if got is None else f'version {got.version}'}, expected 8")


@pytest.mark.requirement("SS-SNAP-004")
def test_snapshots_are_per_actor_and_apart_from_events(snapshot_store, fresh_actor):
    first, second = fresh_actor("first"), fresh_actor("second")
    for version in (1, 2, 3):
        save_ok("SS-SNAP-004", snapshot_store, new_event(first, version))
    snapshot_store.save_snapshot(new_snapshot(first, 3))
    other = snapshot_store.get_latest_snapshot(second)
    if other is not None:
        violated("SS-SNAP-004", f"saved a snapshot of {q(first)}; get_latest_snapshot({q(second)}) returned {other!r}, expected None")
    events, latest = versions(snapshot_store.get_events(first, 0)), snapshot_store.get_latest_version(first)
    if (events, latest) != ([1, 2, 3], 3):
        violated("SS-SNAP-004", f"saving a snapshot of {q(first)} at version 3 changed its events to {events} and latest to {latest}")
    if snapshot_store.get_latest_version(second) != 0 or snapshot_store.get_events(second, 0):
        violated("SS-SNAP-004", f"saving a snapshot of {q(first)} gave {q(second)} events")


# Names a store may give an actor's snapshot stream or key, each also an actor id of its own.
SNAPSHOT_NAMES = ("{}-snapshots", "{}-snapshot", "{}_snapshots", "{}.snapshots", "{}:snapshot", "{}/snapshots",
                  "snapshot-{}", "snapshots-{}", "$snapshots-{}", "{}-snap")


@pytest.mark.requirement("SS-SNAP-004")
def test_a_snapshot_changes_nothing_of_an_actor_named_like_its_stream(snapshot_store, fresh_actor):
    # An EventStoreDB store that keeps the snapshots of A in a stream "A-snapshots" makes them the
    # events (and the latest version) of the actor of that name.
    actor = fresh_actor("snapped")
    named = [name.format(actor) for name in SNAPSHOT_NAMES]
    for other in named:
        save_ok("SS-SNAP-004", snapshot_store, new_event(other, 1))
    save_ok("SS-SNAP-004", snapshot_store, new_event(actor, 7))
    snapshot_store.save_snapshot(new_snapshot(actor, 7))
    for other in named:
        latest, events, snapshot = (snapshot_store.get_latest_version(other), versions(snapshot_store.get_events(other, 0)),
                                    snapshot_store.get_latest_snapshot(other))
        if (latest, events, snapshot) != (1, [1], None):
            violated("SS-SNAP-004", f"{q(other)} holds version 1; after a snapshot of {q(actor)} at version 7, it reads "
                                    f"latest {latest}, versions {events} and "
                                    f"{'no snapshot' if snapshot is None else f'a snapshot at {snapshot.version}'}")


@pytest.mark.requirement("SS-SNAP-005", "SS-SNAP-002", "SS-SNAP-004")
def test_snapshot_ahead_of_events_is_accepted_or_cleanly_refused(snapshot_store, fresh_actor):
    actor = fresh_actor()
    save_ok("SS-SNAP-002", snapshot_store, new_event(actor, 1))
    snapshot_store.save_snapshot(new_snapshot(actor, 1))
    ahead = new_snapshot(actor, 9, state={"ahead": True})
    try:
        snapshot_store.save_snapshot(ahead)
    except StoreRaised:  # a refusal; its form (ValueError, nothing stored) is ES-REFUSE-001's to check
        return
    got = snapshot_store.get_latest_snapshot(actor)
    if got is None or diff_snapshot(ahead, got):
        violated("SS-SNAP-002", f"a snapshot at version 9 of {q(actor)} was accepted (SS-SNAP-005 allows only a clean "
                                f"refusal), but get_latest_snapshot returned {got!r}")
    _events_untouched_by_snapshot(snapshot_store, actor, [1], "at version 9, ahead of its latest event 1")
    # The events catch up with the snapshot: a store that keeps snapshots in the stream (and takes
    # the highest record for the conflict's current version) or seeks reads by a snapshot's offset
    # shows it now.
    error = save_conflict("SS-SNAP-004", snapshot_store, new_event(actor, 2), latest=2)
    if error.current_version != 2:
        violated("SS-SNAP-004", f"{q(actor)} has events 1-2 and a snapshot at version 9; a save at version 2 conflicted "
                                f"with current version {error.current_version}, expected 2")
    for version in range(3, 11):
        save_ok("SS-SNAP-004", snapshot_store, new_event(actor, version), context=" (a snapshot at version 9 exists)")
    # A store that takes a snapshot at or above a new event's version for a stale one deletes it.
    got = snapshot_store.get_latest_snapshot(actor)
    if got is None or diff_snapshot(ahead, got):
        violated("SS-SNAP-002", f"saved a snapshot of {q(actor)} at version 9, ahead of its events, then events up to "
                                f"10; get_latest_snapshot returned {'None' if got is None else f'version {got.version}'}")
    for from_version in (0, 9, 10):
        got = versions(snapshot_store.get_events(actor, from_version))
        if got != list(range(max(from_version, 1), 11)):
            violated("SS-SNAP-004", f"{q(actor)} has events 1-10 and a snapshot at version 9; get_events(from_version="
                                    f"{from_version}) returned {got}")


def _events_untouched_by_snapshot(store, actor, expected, what):
    """SS-SNAP-004: after an accepted snapshot, the actor's events, latest version and next save are as before."""
    events, latest = store.get_events(actor, 0), store.get_latest_version(actor)
    if versions(events) != expected or latest != (expected[-1] if expected else 0):
        violated("SS-SNAP-004", f"saved a snapshot of {q(actor)} {what}; its events are now {versions(events)} and its "
                                f"latest version {latest}, expected {expected} and {expected[-1] if expected else 0}")
    next_version = (expected[-1] if expected else 0) + 1
    try:
        store.save_event(new_event(actor, next_version))
    except VersionConflictError as error:
        violated("SS-SNAP-004", f"saved a snapshot of {q(actor)} {what}; the next event, version {next_version}, "
                                f"was then refused: {error}")
    # A store that truncates, archives or stitches at the next append (truncate-before, a cold
    # archive up to the snapshot) shows it only now.
    events = versions(store.get_events(actor, 0))
    if events != [*expected, next_version]:
        violated("SS-SNAP-004", f"saved a snapshot of {q(actor)} {what}, then event {next_version}; its events are "
                                f"now {events}, expected {[*expected, next_version]}")


@pytest.mark.requirement("SS-SNAP-004", "ES-READ-002")
def test_a_snapshot_of_an_actor_without_events_gives_it_none(snapshot_store, fresh_actor):
    # The actor's record created by its first snapshot must read as an actor with no events.
    actor = fresh_actor()
    try:
        snapshot_store.save_snapshot(new_snapshot(actor, 1, state={"imported": True}))
    except StoreRaised:  # ahead of the events (latest 0): a refusal is allowed (SS-SNAP-005)
        return
    with blame("ES-READ-002"):
        got = snapshot_store.get_events(actor, 0)
    if got != []:
        violated("ES-READ-002", f"{q(actor)} has a snapshot and no events; get_events returned {versions(got)}, expected []")
    _events_untouched_by_snapshot(snapshot_store, actor, [], "at version 1, before any event")
    got = snapshot_store.get_latest_snapshot(actor)
    if got is None or got.version != 1:
        violated("SS-SNAP-002", f"saved a snapshot of {q(actor)} at version 1 before any event, then event 1; "
                                f"get_latest_snapshot returned {'None' if got is None else f'version {got.version}'}")
