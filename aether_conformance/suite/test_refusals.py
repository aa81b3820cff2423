"""What a store MAY refuse (ES-ACTOR-003, ES-ID-001, ES-ID-002, ES-LIMIT-001), and how (ES-REFUSE-001).

Each test offers one input a MAY requirement lets a store refuse.  A store that
accepts it must then behave as for any other input, and where it does not, the
failure is charged to the MUST it breaks (an accepted event that reads back
changed is ES-READ-003), never to the MAY, which cannot decide conformance: a
MAY allows a clean refusal and nothing else.  A store that refuses it must do
so with ValueError and store nothing
(ES-REFUSE-001, a MUST: a TypeError, or a save that stored the event and then
raised, is not a refusal but a bug).  The form of every refusal is checked in
one place, the last test here, which offers each refusable input in turn.
"""

from __future__ import annotations

import functools

import pytest

from ..driver import StoreRaised
from ..errors import VersionConflictError
from ..limits import ENCODED_SIZE_FLOOR, FIELD_LENGTH_FLOOR, MAX_NESTING_DEPTH, NESTING_DEPTH_FLOOR
from .support import (blame, diff_event, diff_snapshot, highest_stored_version, new_event, new_snapshot, q, save_conflict,
                      save_ok, violated)

REFUSE = "ES-REFUSE-001"


def _stream(store, actor):
    """The actor's (event ids, latest version), or None when the store refuses the id on reads with ValueError."""
    try:
        return [e.id for e in store.get_events(actor, 0)], store.get_latest_version(actor)
    except StoreRaised as error:
        if isinstance(error.original, ValueError):
            return None
        raise


def _accepted(store, event, what):
    """Save ``event``: True when accepted; False when refused.  The form of a refusal is ES-REFUSE-001's to check."""
    try:
        store.save_event(event)
    except StoreRaised:
        return False
    return True


def _snapshot_kept(store, snapshot, what):
    """Save ``snapshot``: True when kept, False when refused; a refusal must be a ValueError (ES-REFUSE-001)."""
    try:
        store.save_snapshot(snapshot)
    except StoreRaised as error:
        if not isinstance(error.original, ValueError):
            violated(REFUSE, f"{what}: refused with {type(error.original).__name__}: {error.original_text}; "
                             "a refusal must be a ValueError")
        return False
    return True


def _cleanly_refused_or_accepted(store, event, what, *, other_store=None, elsewhere=None, refused_for_its_id=False):
    """Save ``event``; a refusal must be a ValueError that stored nothing (ES-REFUSE-001): not in the
    stream, the latest version or the next conflict, through this handle or ``other_store``; not
    after a save to another actor (``elsewhere``, a fresh actor id); and the version stays free
    for a plain event, unless the store refused the event for its actor id (``refused_for_its_id``)."""
    before = _stream(store, event.actor_id)
    try:
        store.save_event(event)
    except StoreRaised as error:
        if not isinstance(error.original, ValueError):
            violated(REFUSE, f"{what}: the store refused it with {type(error.original).__name__}: "
                             f"{error.original_text}; a refusal must be a ValueError")
        _unchanged(store, event.actor_id, before, f"{what}: refused with ValueError")
        if other_store is not None:
            # A cache written before the refusal, that the refusing handle reads past.
            _unchanged(other_store, event.actor_id, before, f"{what}: refused with ValueError through {store.name}; "
                                                            f"read through {other_store.name}")
        if elsewhere is not None:
            # A queue or log replaying the refused write with the next save, to any actor.
            save_ok(REFUSE, store, new_event(elsewhere, 1), context=f" (another actor, after {what})")
            _unchanged(store, event.actor_id, before, f"{what}: refused with ValueError, then version 1 was saved to "
                                                      f"another actor")
        if before and before[1] > 0:
            # Nothing of the refused save may show in the next conflict either (a high-water mark
            # written before the refusal).
            conflict = save_conflict(REFUSE, store, new_event(event.actor_id, before[1]), latest=before[1])
            if conflict.current_version != before[1]:
                violated(REFUSE, f"{what}: refused with ValueError; a save at the latest version {before[1]} then "
                                 f"conflicted with current version {conflict.current_version}")
        if before is not None and not refused_for_its_id:
            # The refused version is free: a guard row advanced before the refused insert takes it.
            try:
                store.save_event(new_event(event.actor_id, event.version))
            except VersionConflictError as conflict:
                violated(REFUSE, f"{what}: refused with ValueError; a plain event at the same version {event.version} "
                                 f"then conflicted: {conflict}")
        return
    except VersionConflictError as error:
        violated(REFUSE, f"{what}: the store raised VersionConflictError({error}); a refusal must be a ValueError")


def _unchanged(store, actor, before, what):
    after = _stream(store, actor)
    if after != before:
        violated(REFUSE, f"{what}, yet the stream (event ids, latest version) changed from {before} to {after}")


def _deep(depth):
    """Data nested ``depth`` levels deep (the data object itself the first)."""
    inner: object = "bottom"
    for _ in range(depth):
        inner = {"d": inner}
    return inner


def _long_actor(fresh_actor, length):
    fresh = fresh_actor("y")
    return "y" * (length - len(fresh)) + fresh


@pytest.mark.requirement("ES-ACTOR-003", "ES-READ-003", "ES-LATEST-002")
@pytest.mark.parametrize("kind", ["empty", "257-characters", "4096-characters"])
def test_empty_or_long_actor_ids_are_accepted_or_cleanly_refused(store, fresh_actor, kind):
    # The empty id is shared by every run against a long-lived store: write above what is there.
    actor = "" if kind == "empty" else _long_actor(fresh_actor, 257 if kind == "257-characters" else 4096)
    start = highest_stored_version(store, actor)
    event = new_event(actor, start + 1)
    what = f"saved version {start + 1} to a {kind} actor id"
    if not _accepted(store, event, what):
        return
    got = store.get_events(actor, start + 1)
    if [e.id for e in got] != [event.id]:
        violated("ES-READ-003", f"{what}; it was accepted but reads back as {[(e.id, e.version) for e in got]} "
                                "(ES-ACTOR-003 allows a clean refusal, not an accepted id that works otherwise)")
    latest = store.get_latest_version(actor)
    if latest != start + 1:
        violated("ES-LATEST-002", f"{what}; it was accepted but the latest version is {latest} "
                                  "(ES-ACTOR-003 allows a clean refusal, not an accepted id that works otherwise)")
    save_conflict("ES-ACTOR-003", store, new_event(actor, start + 1), latest=start + 1)


# What an empty key or token becomes where one cannot be empty: NATS subject sanitisers write '_',
# others '-', 'null' or '~'.
EMPTY_ID_PLACEHOLDERS = ("_", "-", "null", "~")


@pytest.mark.requirement("ES-ACTOR-002", "ES-ACTOR-003")
@pytest.mark.parametrize("placeholder", EMPTY_ID_PLACEHOLDERS)
def test_an_accepted_empty_actor_id_is_no_placeholder_id(store, placeholder):
    # Both ids are shared by every run against a long-lived store: each save goes above what is there.
    empty = new_event("", highest_stored_version(store, "") + 1)
    if not _accepted(store, empty, "saved an event to the empty actor id"):
        return  # refused (ES-ACTOR-003); test_empty_or_long_actor_ids_... checks how
    other = new_event(placeholder, highest_stored_version(store, placeholder) + 1)
    save_ok("ES-ACTOR-002", store, other)
    for actor, own, stray in (("", empty, other), (placeholder, other, empty)):
        got = [e.id for e in store.get_events(actor, 0)]
        if stray.id in got or own.id not in got:
            violated("ES-ACTOR-002", f"saved v{empty.version} to the empty actor id and v{other.version} to "
                                     f"{q(placeholder)}; get_events({q(actor)}, 0) "
                                     + (f"holds the event of {q(stray.actor_id)}" if stray.id in got
                                        else "lacks its own event")
                                     + f" (an empty key written as {q(placeholder)}: ES-ACTOR-003 lets a store "
                                       "refuse the empty id, not merge it with another)")


@pytest.mark.requirement("SS-SNAP-003", REFUSE)
@pytest.mark.parametrize("kind", ["empty", "257-characters", "4096-characters"])
def test_snapshots_of_empty_or_long_actor_ids_are_kept_or_cleanly_refused(snapshot_store, fresh_actor, kind):
    # A store that took the id for events must keep its snapshots too, or refuse them cleanly: a
    # snapshots table with a narrower key column (VARCHAR(256), a key that may not be empty) fails.
    actor = "" if kind == "empty" else _long_actor(fresh_actor, 257 if kind == "257-characters" else 4096)
    start = highest_stored_version(snapshot_store, actor)
    if not _accepted(snapshot_store, new_event(actor, start + 1), f"saved an event to a {kind} actor id"):
        # Refused for events (ES-ACTOR-003): a snapshot of it, at 0 (never ahead), is refused the same
        # way or kept, never refused with another error (a key-value client's own InvalidKeyError).
        _snapshot_kept(snapshot_store, new_snapshot(actor, 0),
                       f"saved a snapshot at version 0 of a {kind} actor id refused for events")
        return
    snapshot = new_snapshot(actor, start + 1)
    what = f"saved a snapshot at version {start + 1} of a {kind} actor id the store took events for"
    if not _snapshot_kept(snapshot_store, snapshot, what):
        return
    with blame("SS-SNAP-003"):
        got = snapshot_store.get_latest_snapshot(actor)
    if got is None or diff_snapshot(snapshot, got):
        violated("SS-SNAP-003", f"{what}; get_latest_snapshot returned {'None' if got is None else f'version {got.version}'}")


@pytest.mark.requirement("ES-ID-001", "ES-READ-003", "ES-LATEST-002")
def test_reused_event_ids_are_accepted_or_cleanly_refused(store, fresh_actor):
    actor = fresh_actor()
    first = new_event(actor, 1)
    save_ok("ES-ID-001", store, first)
    # Read before the reuse too: a cache filled by this read and fed by a change stream that skips
    # an event id it has seen (to absorb redeliveries) misses the second event.
    store.get_events(actor, 0)
    again = new_event(actor, 2, id=first.id, data={"second": True})
    what = f"saved version 2 to {q(actor)} reusing the event id {first.id!r} of version 1"
    if not _accepted(store, again, what):
        return
    got = store.get_events(actor, 0)
    if len(got) != 2 or diff_event(first, got[0]) or diff_event(again, got[1]):
        violated("ES-READ-003", f"{what}; it was accepted (ES-ID-001 allows only a clean refusal) but the stream reads back as "
                              f"{[(e.id, e.version, e.data) for e in got]}")
    latest = store.get_latest_version(actor)
    if latest != 2:
        violated("ES-LATEST-002", f"{what}; it was accepted, and get_latest_version returned {latest}, expected 2")


@pytest.mark.requirement("ES-ID-001", "ES-READ-003")
@pytest.mark.parametrize("size", ["small", "450 KB"])
def test_an_event_id_reused_by_another_actor_is_accepted_or_cleanly_refused(store, fresh_actor, size):
    # A table keyed by the event id alone (INSERT ... ON CONFLICT (id) DO NOTHING) acknowledges the
    # second actor's event and keeps nothing of it; a store that keeps large payloads aside under
    # the event id (DynamoDB's 400 KB items, with a claim check in S3) swaps theirs.
    actor, other = fresh_actor(), fresh_actor()
    blob = {} if size == "small" else {"blob": "a" * 450_000}
    first = new_event(actor, 1, data={"first actor": True, **blob})
    save_ok("ES-ID-001", store, first)
    again = new_event(other, 1, id=first.id, data={"other actor": True, **{k: "b" * len(v) for k, v in blob.items()}})
    what = f"saved version 1 to {q(other)} reusing the event id {first.id!r} of version 1 of {q(actor)}"
    if not _accepted(store, again, what):
        return
    for owner, expected in ((other, again), (actor, first)):
        got = store.get_events(owner, 0)
        if len(got) != 1 or diff_event(expected, got[0]):
            violated("ES-READ-003", f"{what}; it was accepted (ES-ID-001 allows only a clean refusal) but "
                                    f"{q(owner)} reads back as {[(e.id, e.actor_id, e.version, e.data) for e in got]}")


@pytest.mark.requirement("ES-ID-002", "ES-READ-003")
def test_an_empty_event_id_is_kept_or_cleanly_refused(store, fresh_actor):
    actor = fresh_actor()
    event = new_event(actor, 1, id="")
    what = f"saved version 1 to {q(actor)} with the empty event id"
    if not _accepted(store, event, what):
        return
    got = store.get_events(actor, 0)
    if len(got) != 1 or diff_event(event, got[0]):
        violated("ES-READ-003", f"{what}; it was accepted (ES-ID-002 allows only a clean refusal) but reads back as {[(e.id, e.version) for e in got]}: "
                              "an accepted empty id must be kept exactly")


@pytest.mark.requirement("ES-LIMIT-001", "ES-READ-003")
@pytest.mark.parametrize("kind", ["encoded-size-twice-the-floor", "encoded-size-of-3-mib", "encoded-size-of-4.5-mib-varied",
                                  "fields-four-times-the-floor", "command-id-alone-four-times-the-floor",
                                  "fields-of-40000-characters", "nesting-four-times-the-floor",
                                  "nesting-at-the-model-maximum"])
def test_events_beyond_the_floors_are_kept_or_cleanly_refused(store, fresh_actor, kind):
    # Past the floors, as far as real limits go: 1 MiB (NATS's max_payload, msgpack's max_str_len),
    # 1.5 MiB (etcd's request size), 32,766 bytes (a Lucene term): kept, or refused with ValueError.
    actor = fresh_actor()
    if kind == "encoded-size-twice-the-floor":
        event = new_event(actor, 1, data={"blob": "x" * (2 * ENCODED_SIZE_FLOOR)})
    elif kind == "encoded-size-of-3-mib":
        event = new_event(actor, 1, data={"blob": "x" * (3 * 1024 * 1024)})
    elif kind == "encoded-size-of-4.5-mib-varied":
        event = new_event(actor, 1, data=_varied_blob())
    elif kind == "fields-of-40000-characters":
        long = "f" * 40_000
        event = new_event(actor, 1, id=long + fresh_actor(""), event_type=long, command_id=long)
    elif kind == "nesting-four-times-the-floor":
        event = new_event(actor, 1, data=_deep(4 * NESTING_DEPTH_FLOOR))
    elif kind == "nesting-at-the-model-maximum":
        event = new_event(actor, 1, data=_deep(MAX_NESTING_DEPTH))
    elif kind == "command-id-alone-four-times-the-floor":
        event = new_event(actor, 1, command_id="c" * (4 * FIELD_LENGTH_FLOOR))
    else:
        long = "f" * (4 * FIELD_LENGTH_FLOOR)
        event = new_event(actor, 1, id=long + fresh_actor(""), event_type=long, command_id=long)
    what = f"saved version 1 to {q(actor)} ({kind})"
    if not _accepted(store, event, what):
        return
    got = store.get_events(actor, 0)
    if len(got) != 1 or diff_event(event, got[0]):
        problems = diff_event(event, got[0]) if len(got) == 1 else [f"{len(got)} events read"]
        violated("ES-READ-003", f"{what}; it was accepted (ES-LIMIT-001 allows only a clean refusal) but came back "
                                "changed: " + "; ".join(p[:200] for p in problems))


def _varied_blob() -> dict[str, str]:
    return {"blob": _varied_text()}


@functools.cache
def _varied_text() -> str:
    # 4.5 MiB, past MySQL 5.7's max_allowed_packet of 4 MiB and ten DynamoDB items of 380 KB, and
    # no two of its 400 KB pieces alike: chunks reassembled in the wrong order show.
    return "".join(f"{n:09d}|" for n in range(4_718_592 // 10))


def _refusable_inputs(store, fresh_actor):
    """One input of each kind a MAY requirement lets a store refuse, each on a fresh actor."""
    reused = new_event(fresh_actor(), 1)
    long = "f" * (4 * FIELD_LENGTH_FLOOR)
    return {
        "empty-actor-id": ([], new_event("", highest_stored_version(store, "") + 1)),
        "long-actor-id": ([], new_event(_long_actor(fresh_actor, 4096), 1)),
        "reused-event-id": ([reused], new_event(reused.actor_id, 2, id=reused.id)),
        "empty-event-id": ([], new_event(fresh_actor(), 1, id="")),
        "long-fields": ([], new_event(fresh_actor(), 1, id=long + fresh_actor(""), event_type=long, command_id=long)),
        # One long field at a time: a store that checks two of them and writes the third to a
        # narrower column of its own (a command-id index) fails on that one alone.
        "long-event-id-alone": ([], new_event(fresh_actor(), 1, id=long + fresh_actor(""))),
        "long-event-type-alone": ([], new_event(fresh_actor(), 1, event_type=long)),
        "long-command-id-alone": ([], new_event(fresh_actor(), 1, command_id=long)),
        "encoded-size": ([], new_event(fresh_actor(), 1, data={"blob": "x" * (2 * ENCODED_SIZE_FLOOR)})),
        "encoded-size-of-3-mib": ([], new_event(fresh_actor(), 1, data={"blob": "x" * (3 * 1024 * 1024)})),
        "encoded-size-of-4.5-mib-varied": ([], new_event(fresh_actor(), 1, data=_varied_blob())),
        "fields-of-40000-characters": ([], new_event(fresh_actor(), 1, id="f" * 40_000 + fresh_actor(""),
                                                     event_type="f" * 40_000, command_id="f" * 40_000)),
        "deep-nesting": ([], new_event(fresh_actor(), 1, data=_deep(4 * NESTING_DEPTH_FLOOR))),
        # As deep as the model carries: where recursive encoders (pickle, about 500 levels) give out.
        "deepest-nesting": ([], new_event(fresh_actor(), 1, data=_deep(MAX_NESTING_DEPTH))),
    }


@pytest.mark.requirement(REFUSE)
def test_a_refused_snapshot_is_a_value_error_that_stores_nothing(snapshot_store, fresh_actor):
    actor = fresh_actor()
    save_ok(REFUSE, snapshot_store, new_event(actor, 1), context=" while preparing the input")
    snapshot_store.save_snapshot(new_snapshot(actor, 1))
    what = f"saved a snapshot at version 9 of {q(actor)}, whose latest event is 1 (SS-SNAP-005 lets a store refuse it)"
    if _snapshot_kept(snapshot_store, new_snapshot(actor, 9, state={"ahead": True}), what):
        return
    got = snapshot_store.get_latest_snapshot(actor)
    if got is None or got.version != 1:
        violated(REFUSE, f"{what}: refused with ValueError, yet the latest snapshot is now "
                         f"{'None' if got is None else f'version {got.version}'}; expected version 1")
    # Once the events pass 9: a row written before the refusal and hidden while it was ahead shows.
    for version in range(2, 11):
        save_ok(REFUSE, snapshot_store, new_event(actor, version), context=f" (after {what}, refused)")
    got = snapshot_store.get_latest_snapshot(actor)
    if got is None or got.version != 1:
        violated(REFUSE, f"{what}: refused with ValueError; after events up to 10 the latest snapshot is "
                         f"{'None' if got is None else f'version {got.version}'}; expected version 1")


@pytest.mark.requirement(REFUSE)
@pytest.mark.parametrize("kind", ["empty-actor-id", "long-actor-id", "reused-event-id", "empty-event-id", "long-fields",
                                  "long-event-id-alone", "long-event-type-alone", "long-command-id-alone",
                                  "fields-of-40000-characters", "encoded-size", "encoded-size-of-3-mib",
                                  "encoded-size-of-4.5-mib-varied", "deep-nesting", "deepest-nesting"])
def test_a_refusal_is_a_value_error_that_stores_nothing(store, other_store, fresh_actor, kind):
    setup, event = _refusable_inputs(store, fresh_actor)[kind]
    for earlier in setup:
        save_ok(REFUSE, store, earlier, context=" while preparing the input")
    _cleanly_refused_or_accepted(store, event, f"saved version {event.version} to {q(event.actor_id[:80])} ({kind})",
                                 other_store=other_store, elsewhere=fresh_actor("elsewhere"),
                                 refused_for_its_id=kind in ("empty-actor-id", "long-actor-id"))


@pytest.mark.requirement("ES-LIMIT-001", "SS-SNAP-003", REFUSE)
@pytest.mark.parametrize("kind", ["encoded-size-twice-the-floor", "nesting-four-times-the-floor"])
def test_snapshots_beyond_the_floors_are_kept_or_cleanly_refused(snapshot_store, fresh_actor, kind):
    actor = fresh_actor()
    save_ok("ES-LIMIT-001", snapshot_store, new_event(actor, 1), context=" while preparing the input")
    first = new_snapshot(actor, 1)
    snapshot_store.save_snapshot(first)
    state = {"blob": "x" * (2 * ENCODED_SIZE_FLOOR)} if kind.startswith("encoded") else _deep(4 * NESTING_DEPTH_FLOOR)
    bigger = new_snapshot(actor, 2, state=state)
    save_ok("ES-LIMIT-001", snapshot_store, new_event(actor, 2), context=" while preparing the input")
    what = f"saved a snapshot at version 2 of {q(actor)} ({kind})"
    if not _snapshot_kept(snapshot_store, bigger, what):
        got = snapshot_store.get_latest_snapshot(actor)
        if got is None or diff_snapshot(first, got):
            violated(REFUSE, f"{what}: refused with ValueError, yet the latest snapshot is now "
                             f"{'None' if got is None else f'version {got.version}'}; expected version 1 unchanged")
        # The version stays free: a pointer raised before the refusal takes a plain snapshot at 2 for
        # one it already has.
        plain = new_snapshot(actor, 2)
        snapshot_store.save_snapshot(plain)
        got = snapshot_store.get_latest_snapshot(actor)
        if got is None or diff_snapshot(plain, got):
            violated(REFUSE, f"{what}: refused with ValueError; a plain snapshot at version 2 saved next reads back as "
                             f"{'None' if got is None else f'version {got.version}'}")
        return
    got = snapshot_store.get_latest_snapshot(actor)
    if got is None or diff_snapshot(bigger, got):
        problems = diff_snapshot(bigger, got) if got is not None else ["get_latest_snapshot returned None"]
        violated("SS-SNAP-003", f"{what}; it was accepted (ES-LIMIT-001 allows only a clean refusal) but came back "
                                "changed: " + "; ".join(p[:200] for p in problems))
