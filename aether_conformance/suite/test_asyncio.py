"""What applications do to a store that the one-call-at-a-time tests do not.

An asyncio application awaits a save and reads in the same task, fans saves
out with ``asyncio.gather``, and cancels saves (``asyncio.wait_for`` timing
out, an HTTP client disconnecting).  A store that writes behind a task it
does not await, keeps its locks in a bounded cache, or writes in two
statements without a transaction passes every test that awaits one call at a
time, and breaks here.  The reads in the same task run for sync stores too (on
one worker thread, where a store's thread-local state lives); gathered and
cancelled saves need an ``async def`` save_event (capability ``asyncio``).
"""

from __future__ import annotations

import pytest

from ..errors import VersionConflictError
from .support import blame, new_event, new_snapshot, q, save_ok, versions, violated

# Turns of the event loop after which a save is cancelled: 0 (before it starts) and on, until a
# save finishes on its own first.  A store whose save awaits more often than this is cancelled at
# its first awaits only.
CANCEL_POINTS = 32


@pytest.mark.requirement("ES-LATEST-002", "ES-SAVE-001")
def test_a_save_is_read_at_once_in_the_same_task(store, fresh_actor):
    actor = fresh_actor("same-task")
    where = "in one asyncio task" if store.is_async else "on one thread"
    for version in (1, 2, 3):
        _, latest, events = store.in_one_task([
            ("save_event", (new_event(actor, version),)),
            ("get_latest_version", (actor,)),
            ("get_events", (actor, version)),
        ])
        if latest != version:
            violated("ES-LATEST-002", f"saved version {version} of {q(actor)} and then, {where}, read "
                                      f"get_latest_version: {latest}; expected {version}")
        if versions(events) != [version]:
            violated("ES-SAVE-001", f"saved version {version} of {q(actor)} and then, {where}, read get_events "
                                    f"from {version}: versions {versions(events)}; expected [{version}]")


@pytest.mark.requirement("SS-SNAP-002")
def test_a_snapshot_is_read_at_once_in_the_same_task(snapshot_store, fresh_actor):
    actor = fresh_actor("same-task")
    where = "in one asyncio task" if snapshot_store.is_async else "on one thread"
    for version in (0, 1, 2):
        if version:  # no snapshot ahead of the events, which a store may refuse (SS-SNAP-005)
            save_ok("SS-SNAP-002", snapshot_store, new_event(actor, version))
        _, got = snapshot_store.in_one_task([
            ("save_snapshot", (new_snapshot(actor, version),)),
            ("get_latest_snapshot", (actor,)),
        ])
        if got is None or got.version != version:
            violated("SS-SNAP-002", f"saved a snapshot of {q(actor)} at version {version} and then, {where}, "
                                    f"read get_latest_snapshot: {'None' if got is None else f'version {got.version}'}")


@pytest.mark.requirement("ES-CONC-001")
def test_saves_gathered_at_once_are_checked_and_appended_atomically(async_store, fresh_actor, aether_profile):
    # Version 1 of one actor twice, first and last, with saves of many other actors between, every
    # save a task started at once: exactly one of the two may win, however many other actors' saves
    # come between (a lock per actor kept in an LRU of 1,024 or 10,000 entries loses the first
    # save's lock while that save still holds it).  Nothing of the actor's may come between: it
    # would keep the actor's entry fresh.
    store = async_store
    actor, others = fresh_actor("gathered"), aether_profile.touched_actors
    token = fresh_actor("")
    mine = {0: "first", others + 1: "last"}
    events = [new_event(f"{token}-{n}", 1) for n in range(others)]
    for position, label in sorted(mine.items()):
        events.insert(position, new_event(actor, 1, id=f"{actor}-{label}"))
    outcomes = store.gathered_saves(events)
    for event, outcome in zip(events, outcomes):
        if outcome is not None and event.actor_id != actor:
            violated("ES-CONC-001", f"{len(events):,} saves gathered at once: version 1 of {q(event.actor_id)}, "
                                    f"the actor's only save, failed: {outcome}")
    how = (f"two saves of version 1 of {q(actor)} (first and last of {len(events):,} saves of "
           f"{others + 1:,} actors gathered at once)")
    won = [events[position].id for position in mine if outcomes[position] is None]
    for position in mine:
        if outcomes[position] is not None and not isinstance(outcomes[position], VersionConflictError):
            violated("ES-CONC-001", f"{how}: the {mine[position]} failed other than with a VersionConflictError: "
                                    f"{outcomes[position]}")
    stored = store.get_events(actor, 0)
    if len(won) != 1 or [e.id for e in stored] != won:
        violated("ES-CONC-001", f"{how}: {len(won)} acknowledged ({', '.join(won) or 'none'}); the actor then "
                                f"holds events {[(e.version, e.id) for e in stored]}; expected exactly one save "
                                "acknowledged and stored")


@pytest.mark.requirement("ES-SAVE-002", "ES-LATEST-002")
def test_a_save_cancelled_part_way_is_all_or_nothing(async_store, fresh_actor):
    # Cancelled after each turn of the event loop in turn, a save has happened or not, never half.
    # It may still happen later (a store that shields its write from cancellation finishes it), so
    # the same version is then saved again and exactly one of the two must be stored: the other
    # save conflicts.  Two statements without a transaction (the event inserted, the stream's
    # counter not yet updated) leave the first stored and accept the second too.
    store = async_store
    for turns in range(CANCEL_POINTS + 1):
        actor = fresh_actor(f"cancel-{turns}")
        first, cancelled, again = (new_event(actor, 1), new_event(actor, 2, id=f"{actor}-cancelled"),
                                   new_event(actor, 2, id=f"{actor}-again"))
        save_ok("ES-SAVE-002", store, first)
        outcome = store.save_cancelled_after(cancelled, turns)
        how = (f"version 2 of {q(actor)} was saved and {outcome} after {turns} turn{'' if turns == 1 else 's'} of "
               "the event loop, then saved again with another event id")
        conflict = None
        try:
            with blame("ES-SAVE-002"):
                store.save_event(again)
        except VersionConflictError as error:
            conflict = error
        if outcome == "completed" and conflict is None:
            violated("ES-SAVE-002", f"{how}: accepted again; expected VersionConflictError")
        stored = [(event.version, event.id) for event in store.get_events(actor, 0)]
        expected = [(1, first.id), (2, again.id if conflict is None else cancelled.id)]
        if stored != expected:
            said = "accepted" if conflict is None else f"refused ({conflict})"
            violated("ES-SAVE-002", f"{how}: {said}; the actor then holds (version, id) {stored}; expected "
                                    f"{expected}")
        if conflict is not None and conflict.current_version != 2:
            violated("ES-SAVE-002", f"{how}: refused with current version {conflict.current_version}; expected 2")
        latest = store.get_latest_version(actor)
        if latest != 2:
            violated("ES-LATEST-002", f"{how}: the actor holds {stored}, and get_latest_version returns {latest}")
        if outcome == "completed":
            return
