"""Fixed boundary cases from :mod:`aether_conformance.boundaries`: versions, colliding ids, text, time.

Every case is a named, deterministic test: a store that keeps versions in a
float64 or a 32-bit column, orders them as strings, keys actors through a
lossy transformation, normalises text or converts timestamps through a local
zone fails the same case on every run.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from ..boundaries import (COLLIDING_ACTOR_IDS, NORMALISATION_SENSITIVE_TEXT, TIMESTAMPS, TIMESTAMPS_BEYOND_UTC_YEARS,
                          VERSION_RUNS)
from ..errors import go_quote
from ..model import INT64_MAX, Timestamp
from .support import (blame, diff_event, diff_snapshot, new_event, new_snapshot, q, save_conflict, save_ok, versions,
                      violated)

_RUNS = sorted(VERSION_RUNS)
SNAPSHOT_TIME = datetime(2024, 3, 2, 8, 30, tzinfo=timezone.utc)


def _from_versions(run: tuple[int, ...]) -> list[int]:
    """Every saved version, one below and one above it (within int64): mid-stream reads and gaps."""
    return sorted({f for v in run for f in (v - 1, v, v + 1) if f <= INT64_MAX})


@pytest.mark.requirement("ES-SAVE-004", "ES-LATEST-002", "ES-READ-001", "ES-READ-003")
@pytest.mark.parametrize("name", _RUNS)
def test_boundary_versions_are_stored_and_read_exactly(store, fresh_actor, name):
    run = VERSION_RUNS[name].versions
    actor = fresh_actor()
    saved = []
    for version in run:
        # The version as text: a Go store holds JSON numbers as float64, exact only to 2^53.
        event = new_event(actor, version, data={"version": str(version), "boundary": name})
        save_ok("ES-SAVE-004", store, event, context=f" after versions {versions(saved)} ({name})")
        saved.append(event)
        latest = store.get_latest_version(actor)
        if latest != version:
            violated("ES-LATEST-002", f"saved versions {versions(saved)} to {q(actor)} ({name}); "
                                      f"get_latest_version returned {latest}, expected {version}")
    got = store.get_events(actor, 0)
    if versions(got) != list(run):
        violated("ES-SAVE-004", f"saved versions {list(run)} to {q(actor)} ({name}); get_events(0) returned "
                                f"versions {versions(got)}")
    for expected, actual in zip(saved, got):
        problems = diff_event(expected, actual)
        if problems:
            violated("ES-READ-003", f"event v{expected.version} of {q(actor)} ({name}) came back changed: "
                                    + "; ".join(problems))
    for from_version in _from_versions(run):
        got = versions(store.get_events(actor, from_version))
        expected = [v for v in run if v >= from_version]
        if got != expected:
            violated("ES-READ-001", f"saved versions {list(run)} to {q(actor)} ({name}); "
                                    f"get_events(from_version={from_version}) returned versions {got}, expected {expected}")


@pytest.mark.requirement("ES-SAVE-002", "ES-SAVE-003", "ES-ERR-001", "ES-ERR-002")
@pytest.mark.parametrize("name", _RUNS)
def test_conflicts_at_boundary_versions_carry_exact_facts(store, fresh_actor, name):
    run = VERSION_RUNS[name].versions
    actor = fresh_actor()
    saved = [new_event(actor, v) for v in run]
    for event in saved:
        save_ok("ES-SAVE-002", store, event, context=f" ({name}, preparing the stream)")
    latest = run[-1]
    # The latest itself, every earlier version, and the gaps just below the latest and the first.
    attempts = sorted({*run, latest - 1, run[0] - 1}, reverse=True)
    for attempt in attempts:
        error = save_conflict("ES-SAVE-002", store, new_event(actor, attempt), latest=latest)
        expected = {"actor_id": actor, "attempted_version": attempt, "current_version": latest}
        got = {name_: getattr(error, name_, "<missing>") for name_ in expected}
        if got != expected or any(type(value) is not type(expected[key]) for key, value in got.items()):
            violated("ES-ERR-001", f"saved version {attempt} to {q(actor)} at latest {latest} ({name}); expected "
                                   f"VersionConflictError with {expected}, store raised one with {got!r}")
        text = f"version conflict: actor {go_quote(actor)} has version {latest}, cannot save version {attempt}"
        if str(error) != text:
            violated("ES-ERR-002", f"saved version {attempt} to {q(actor)} at latest {latest} ({name}); expected "
                                   f"error text {text!r}, store's error text is {str(error)!r}")
    got, now = store.get_events(actor, 0), store.get_latest_version(actor)
    if [e.id for e in got] != [e.id for e in saved] or now != latest:
        violated("ES-SAVE-003", f"after rejected saves of versions {attempts} to {q(actor)} ({name}), the stream "
                                f"holds versions {versions(got)} and latest {now}; expected exactly {list(run)} and {latest}")


@pytest.mark.requirement("SS-SNAP-002", "SS-SNAP-003")
@pytest.mark.parametrize("taken", ["later-when-higher", "earlier-when-higher"])
@pytest.mark.parametrize("name", _RUNS)
def test_boundary_snapshot_versions(snapshot_store, fresh_actor, name, taken):
    run = VERSION_RUNS[name].versions
    actor = fresh_actor()
    for version in run:
        save_ok("SS-SNAP-002", snapshot_store, new_event(actor, version), context=f" ({name})")
    # In order, then every lower one again: the highest must stay, exactly as saved.  Each snapshot
    # has its own state and timestamp, so a row upserted field by field (the version kept with
    # GREATEST, the rest overwritten by the last save) shows.  Taken earlier when higher too:
    # versions a float64 score cannot tell apart (2**53 and 2**53 + 1) must not be ordered by time.
    sign = 1 if taken == "later-when-higher" else -1

    def snapshot(version):
        return new_snapshot(actor, version, state={"at": str(version), "boundary": name},
                            timestamp=SNAPSHOT_TIME + sign * timedelta(microseconds=version % 999_983))

    for order in (run, tuple(reversed(run[:-1]))):
        for version in order:
            snapshot_store.save_snapshot(snapshot(version))
            got = snapshot_store.get_latest_snapshot(actor)
            highest = version if order is run else run[-1]
            if got is None or got.version != highest:
                violated("SS-SNAP-002", f"saved snapshots of {q(actor)} ({name}) up to version {version}; "
                                        f"get_latest_snapshot returned "
                                        f"{'None' if got is None else f'version {got.version}'}, expected {highest}")
            problems = diff_snapshot(snapshot(highest), got)
            if problems:
                violated("SS-SNAP-003", f"snapshot v{highest} of {q(actor)} ({name}) came back changed: "
                                        + "; ".join(problems))


def _check_stream(store, actor, other, expected, kind, req_id="ES-ACTOR-002"):
    got = store.get_events(actor, 0)
    if [(e.id, e.version, e.actor_id) for e in got] != [(e.id, e.version, e.actor_id) for e in expected]:
        violated(req_id, f"saved {len(expected)} events to {q(actor)} and 3 or more to {q(other)} (ids differing "
                         f"by {kind}; each actor's version N with command id 'command-N'); get_events({q(actor)}) returned {len(got)}: versions {versions(got)}, event ids "
                         f"{[e.id for e in got][:4]}")
    latest = store.get_latest_version(actor)
    want = expected[-1].version if expected else 0
    if latest != want:
        violated(req_id, f"get_latest_version({q(actor)}) returned {latest}, expected {want}: its stream is mixed "
                         f"up with {q(other)} (ids differing by {kind})")


def _both_ways(fresh_actor, kind):
    """The pair twice, on fresh tokens: left written first, then right first (one test, two orders:
    a lossy key shows up in whichever id is written second)."""
    pair = COLLIDING_ACTOR_IDS[kind]
    left, right = pair.build(fresh_actor(""))
    yield left, right
    left, right = pair.build(fresh_actor(""))
    yield right, left


@pytest.mark.requirement("ES-ACTOR-002")
@pytest.mark.parametrize("kind", sorted(COLLIDING_ACTOR_IDS))
def test_colliding_ids_stay_apart(store, fresh_actor, kind):
    for one, two in _both_ways(fresh_actor, kind):
        _check_pair_apart(store, one, two, kind)


def _check_pair_apart(store, one, two, kind):
    # Both actors' events carry one command id per version: a table of processed commands keyed by
    # (actor, command id, version) under the same lossy keying takes the second actor's saves for
    # redeliveries of the first's, acknowledges them and stores nothing.
    one_events = [new_event(one, v, command_id=f"command-{v}") for v in (1, 2, 3)]
    for event in one_events:
        save_ok("ES-ACTOR-002", store, event, context=f" (ids differing by {kind})")
    _check_stream(store, two, one, [], kind)  # a prefix scan or lossy key shows one's events here
    two_events = [new_event(two, v, command_id=f"command-{v}") for v in (1, 2)]
    for event in two_events:
        save_ok("ES-ACTOR-002", store, event, context=f" while {q(one)} is at version 3 (ids differing by {kind})")
    for actor, expected, other in ((one, one_events, two), (two, two_events, one)):
        _check_stream(store, actor, other, expected, kind)
    error = save_conflict("ES-ACTOR-002", store, new_event(two, 2), latest=2)
    if (error.actor_id, error.current_version) != (two, 2):
        violated("ES-ACTOR-002", f"saving version 2 again to {q(two)} (latest 2) raised a conflict naming actor "
                                 f"{q(error.actor_id)} at version {error.current_version} (ids differing by {kind})")
    save_ok("ES-ACTOR-002", store, new_event(two, 3), context=f" (latest 2; {q(one)} is at 3; ids differing by {kind})")
    mid = store.get_events(two, 2)
    if versions(mid) != [2, 3] or [e.actor_id for e in mid] != [two, two]:
        if all(e.actor_id == two for e in mid):  # its own events, but not the ones asked for
            violated("ES-READ-001", f"saved versions 1-3 to {q(two)}; get_events({q(two)}, 2) returned versions "
                                    f"{versions(mid)}, expected [2, 3] (ids differing by {kind})")
        violated("ES-ACTOR-002", f"get_events({q(two)}, 2) returned versions {versions(mid)} of actors "
                                 f"{[q(e.actor_id) for e in mid]} (ids differing by {kind})")
    _check_stream(store, one, two, one_events, kind)


@pytest.mark.presupposes("ES-ACTOR-002")  # the same ids, kept apart for events first
@pytest.mark.requirement("SS-SNAP-004")
@pytest.mark.parametrize("kind", sorted(COLLIDING_ACTOR_IDS))
def test_colliding_ids_keep_their_own_snapshots(snapshot_store, fresh_actor, kind):
    for one, two in _both_ways(fresh_actor, kind):
        _check_snapshots_apart(snapshot_store, one, two, kind)


def _check_snapshots_apart(store, one, two, kind):
    for version in (1, 2, 3):
        save_ok("SS-SNAP-004", store, new_event(one, version), context=f" (ids differing by {kind})")
    one_snapshot = new_snapshot(one, 3, state={"owner": one})
    store.save_snapshot(one_snapshot)
    got = store.get_latest_snapshot(two)
    if got is not None:
        violated("SS-SNAP-004", f"saved a snapshot of {q(one)} only; get_latest_snapshot({q(two)}) returned "
                                f"version {got.version} of {q(got.actor_id)} (ids differing by {kind})")
    save_ok("SS-SNAP-004", store, new_event(two, 1), context=f" (ids differing by {kind})")
    two_snapshot = new_snapshot(two, 1, state={"owner": two})
    store.save_snapshot(two_snapshot)
    for actor, expected in ((one, one_snapshot), (two, two_snapshot)):
        got = store.get_latest_snapshot(actor)
        if got is None or diff_snapshot(expected, got):
            violated("SS-SNAP-004", f"saved snapshot v{expected.version} of {q(actor)} and another of a different "
                                    f"actor (ids differing by {kind}); get_latest_snapshot({q(actor)}) returned "
                                    f"{'None' if got is None else f'version {got.version} of {q(got.actor_id)}'}")


def _digits() -> str:
    """18 fresh random digits, the first not 0: a number within int64 that no run repeats."""
    return str(10**17 + uuid.uuid4().int % (9 * 10**17))


# Ids that look like a value of another type, paired with that value's canonical spelling: a
# column with numeric affinity (SQLite NUMERIC) or a UUID/Guid type keys and returns both as one.
TYPED_LOOKING_IDS = {
    "leading-zero": lambda: (lambda d: ("0" + d, d))(_digits()),
    "decimal-point": lambda: (lambda d: (d + ".0", d))(_digits()),
    "exponent": lambda: (lambda d: (d[:12] + "e3", d[:12] + "000"))(_digits()),
    "uuid-upper-case": lambda: (lambda u: (u.upper(), u))(str(uuid.uuid4())),
    "uuid-braces": lambda: (lambda u: ("{" + u + "}", u))(str(uuid.uuid4())),
    "uuid-no-dashes": lambda: (lambda u: (u.replace("-", ""), u))(str(uuid.uuid4())),
}


def _typed_both_ways(kind):
    left, right = TYPED_LOOKING_IDS[kind]()
    yield left, right
    left, right = TYPED_LOOKING_IDS[kind]()
    yield right, left


@pytest.mark.requirement("ES-ACTOR-002")
@pytest.mark.parametrize("kind", sorted(TYPED_LOOKING_IDS))
def test_ids_that_look_typed_stay_exact_strings(store, kind):
    for one, two in _typed_both_ways(kind):
        _check_pair_apart(store, one, two, f"{kind} spelling")


@pytest.mark.presupposes("ES-ACTOR-002")  # the same ids, kept apart for events first
@pytest.mark.requirement("SS-SNAP-004")
@pytest.mark.parametrize("kind", sorted(TYPED_LOOKING_IDS))
def test_ids_that_look_typed_keep_their_own_snapshots(snapshot_store, kind):
    for one, two in _typed_both_ways(kind):
        _check_snapshots_apart(snapshot_store, one, two, f"{kind} spelling")


@pytest.mark.requirement("ES-READ-003")
@pytest.mark.parametrize("kind", sorted(NORMALISATION_SENSITIVE_TEXT))
def test_normalisation_sensitive_text_round_trips(store, fresh_actor, kind):
    text = NORMALISATION_SENSITIVE_TEXT[kind]
    actor = fresh_actor()
    event = new_event(actor, 1, event_type=text, command_id=text, data={"text": text, text: [text]})
    # A second event whose strings differ only in form (NFC vs NFD, or untrimmed) must stay distinct.
    other = new_event(actor, 2, event_type=text.strip() + "|", data={"text": text.strip()})
    for saved in (event, other):
        save_ok("ES-READ-003", store, saved, context=f" ({kind} text)")
    got = store.get_events(actor, 0)
    if len(got) != 2:
        violated("ES-READ-003", f"saved 2 events to {q(actor)} ({kind} text); get_events returned {len(got)}")
    for saved, read in zip((event, other), got):
        problems = diff_event(saved, read)
        if problems:
            violated("ES-READ-003", f"event v{saved.version} of {q(actor)} with {kind} text came back changed: "
                                    + "; ".join(problems))


# Empty and blank event types, which a trimming or PAD SPACE lookup table of types joins.
_BLANK_TYPES = ("", " ", "  ")


@pytest.mark.requirement("ES-SAVE-001", "ES-READ-003")
@pytest.mark.parametrize("field", ["id", "event_type", "command_id"])
def test_ids_types_and_command_ids_a_collation_confuses_are_each_kept(store, fresh_actor, field):
    # Each pair of COLLIDING_ACTOR_IDS (trailing spaces, case, accents, width, kana, NFC and NFD,
    # ignorable characters, ...) as the event ids, event types or command ids of two events of one
    # actor: a unique index or a lookup table under a collation that takes them for one another
    # refuses the second (a new id is not a reused one) or reads back the first.
    actor, token = fresh_actor(field), fresh_actor("")
    texts = [text for kind in sorted(COLLIDING_ACTOR_IDS) for text in COLLIDING_ACTOR_IDS[kind].build(token)]
    if field == "event_type":
        texts += _BLANK_TYPES
    texts = list(dict.fromkeys(texts))  # pairs share some ids ("{}x"), and a store may refuse a reused id
    saved = [new_event(actor, version, **{field: text}) for version, text in enumerate(texts, 1)]
    for event in saved:
        save_ok("ES-SAVE-001", store, event, context=f" (its {field} {go_quote(getattr(event, field))} differs from "
                                                     "every other one saved)")
    got = store.get_events(actor, 0)
    changed = [(event.version, getattr(event, field), getattr(read, field)) for event, read in zip(saved, got)
               if getattr(read, field) != getattr(event, field)]
    if len(got) != len(saved) or changed:
        what = (f"{len(got)} events read" if len(got) != len(saved) else
                f"version {changed[0][0]}'s {field} {go_quote(changed[0][1])} came back as {go_quote(changed[0][2])}")
        violated("ES-READ-003", f"saved {len(saved)} events to {q(actor)} whose {field}s a collation or normaliser "
                                f"takes for one another in pairs: {what}")


@pytest.mark.requirement("SS-SNAP-003")
@pytest.mark.parametrize("kind", sorted(NORMALISATION_SENSITIVE_TEXT))
def test_normalisation_sensitive_state_round_trips(snapshot_store, fresh_actor, kind):
    text = NORMALISATION_SENSITIVE_TEXT[kind]
    actor = fresh_actor()
    save_ok("SS-SNAP-003", snapshot_store, new_event(actor, 1))
    snapshot = new_snapshot(actor, 1, state={"text": text, text: {"nested": [text]}})
    snapshot_store.save_snapshot(snapshot)
    got = snapshot_store.get_latest_snapshot(actor)
    if got is None or diff_snapshot(snapshot, got):
        problems = diff_snapshot(snapshot, got) if got is not None else ["get_latest_snapshot returned None"]
        violated("SS-SNAP-003", f"snapshot of {q(actor)} with {kind} text came back changed: " + "; ".join(problems))


@pytest.mark.requirement("ES-READ-003", "ES-READ-004")
@pytest.mark.parametrize("kind", sorted(TIMESTAMPS))
def test_boundary_timestamps_round_trip(store, fresh_actor, kind):
    stamp = Timestamp.parse(TIMESTAMPS[kind])
    actor = fresh_actor()
    event = new_event(actor, 1, timestamp=stamp)
    save_ok("ES-READ-003", store, event, context=f" (timestamp {TIMESTAMPS[kind]}, {kind})")
    got = store.get_events(actor, 0)
    if len(got) != 1:
        violated("ES-READ-003", f"saved one event to {q(actor)}; get_events returned {len(got)}")
    problems = diff_event(event, got[0])
    if problems:
        violated("ES-READ-003", f"event with timestamp {TIMESTAMPS[kind]} ({kind}) came back changed: "
                                + "; ".join(problems))
    read_stamp = got[0].timestamp
    nanos = read_stamp.nanosecond if isinstance(read_stamp, Timestamp) else 0
    if read_stamp != stamp or read_stamp.utcoffset() != stamp.utcoffset():
        violated("ES-READ-004", f"saved timestamp {TIMESTAMPS[kind]} ({kind}); read back {read_stamp.isoformat()} "
                                f"(+{nanos} ns, offset {read_stamp.utcoffset()})")


@pytest.mark.requirement("ES-READ-004")
@pytest.mark.parametrize("kind", sorted(TIMESTAMPS_BEYOND_UTC_YEARS))
def test_timestamps_whose_utc_year_is_0_or_10000_are_kept(store, fresh_actor, kind):
    text = TIMESTAMPS_BEYOND_UTC_YEARS[kind]
    stamp = Timestamp.parse(text)
    actor = fresh_actor()
    event = new_event(actor, 1, timestamp=stamp)
    with blame("ES-READ-004"):
        save_ok("ES-READ-004", store, event, context=f" (timestamp {text}, {kind})")
        got = store.get_events(actor, 0)
    if len(got) != 1 or diff_event(event, got[0]) or got[0].timestamp.utcoffset() != stamp.utcoffset():
        violated("ES-READ-004", f"saved an event with timestamp {text} ({kind}: its UTC year is 0 or 10000) to "
                                f"{q(actor)}; read back {[e.timestamp.isoformat() for e in got]}")


@pytest.mark.requirement("SS-SNAP-003")
@pytest.mark.parametrize("kind", sorted(TIMESTAMPS))
def test_boundary_snapshot_timestamps_round_trip(snapshot_store, fresh_actor, kind):
    actor = fresh_actor()
    save_ok("SS-SNAP-003", snapshot_store, new_event(actor, 1))
    snapshot = new_snapshot(actor, 1, timestamp=Timestamp.parse(TIMESTAMPS[kind]))
    snapshot_store.save_snapshot(snapshot)
    read = snapshot_store.get_latest_snapshot(actor)
    if read is None or diff_snapshot(snapshot, read):
        violated("SS-SNAP-003", f"snapshot of {q(actor)} with timestamp {TIMESTAMPS[kind]} ({kind}) came back as "
                                f"{'None' if read is None else read.timestamp.isoformat()}")
