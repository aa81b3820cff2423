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
from .support import blame, check_saves_made_at_once, new_event, new_snapshot, q, save_ok, versions, violated

# Turns of the event loop after which a call is cancelled: each from 0 (before it starts) to 128,
# then further apart, until a call finishes on its own first (a store that awaits a connection,
# a handshake and then its statements takes hundreds of turns; real I/O takes more).
CANCEL_TURNS = (*range(129), 160, 200, 256, 320, 400, 512, 640, 800, 1024, 1280, 1600, 2048, 2560, 3200, 4096)


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


@pytest.mark.requirement("ES-CONC-001", "ES-ERR-001")
def test_saves_gathered_at_once_are_checked_and_appended_atomically(async_store, fresh_actor, aether_profile):
    # Version 1 of one actor twice, first and last, with saves of many other actors between, every
    # save a task started at once: exactly one of the two may win, however many other actors' saves
    # come between (a lock per actor kept in an LRU of 1,024 or 10,000 entries loses the first
    # save's lock while that save still holds it).  Nothing of the actor's may come between: it
    # would keep the actor's entry fresh.  A stale save among them must conflict with the true
    # latest version (a store that answers a busy pool with one blind conditional INSERT does not
    # know it), and every other actor's save must be kept (a batcher that clears its whole queue
    # after a batch loses what arrived meanwhile).  The gathering task reads first: a session kept
    # in the task's context is then shared by every gathered task.
    store = async_store
    actor, stale, others = fresh_actor("gathered"), fresh_actor("stale"), aether_profile.touched_actors
    for version in (1, 2, 3):
        save_ok("ES-CONC-001", store, new_event(stale, version))
    token = fresh_actor("")
    mine = {0: "first", others + 2: "last"}
    events = [new_event(f"{token}-{n}", 1) for n in range(others)]
    events.insert(others // 2, new_event(stale, 2, id=f"{stale}-stale"))
    for position, label in sorted(mine.items()):
        events.insert(position, new_event(actor, 1, id=f"{actor}-{label}"))
    outcomes = store.gathered([("save_event", (event,)) for event in events], after=("get_latest_version", (actor,)))
    how = (f"two saves of version 1 of {q(actor)} (first and last of {len(events):,} saves of "
           f"{others + 2:,} actors gathered at once)")
    for event, outcome in zip(events, outcomes):
        if event.actor_id == stale:
            if not isinstance(outcome, VersionConflictError):
                violated("ES-CONC-001", f"among {len(events):,} saves gathered at once, version 2 of {q(stale)} (at "
                                        f"version 3) {'succeeded' if outcome is None else f'failed: {outcome}'}; "
                                        "expected a VersionConflictError")
            if outcome.current_version != 3:
                violated("ES-ERR-001", f"among {len(events):,} saves gathered at once, version 2 of {q(stale)} (at "
                                       f"version 3) conflicted with current version {outcome.current_version}")
        elif outcome is not None and event.actor_id != actor:
            violated("ES-CONC-001", f"{len(events):,} saves gathered at once: version 1 of {q(event.actor_id)}, "
                                    f"the actor's only save, failed: {outcome}")
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
    latest = store.gathered([("get_latest_version", (f"{token}-{n}",)) for n in range(others)])
    lost = [f"{token}-{n}" for n, got in enumerate(latest) if got != 1]
    if lost:
        violated("ES-CONC-001", f"{len(events):,} saves gathered at once, every one of them acknowledged but for "
                                f"{q(actor)}'s and {q(stale)}'s; {len(lost):,} of the other actors then read latest "
                                f"other than 1, the first {q(lost[0])}: {latest[int(lost[0].rsplit('-', 1)[1])]}")


@pytest.mark.requirement("ES-CONC-001")
def test_a_save_arriving_as_others_finish_is_checked_atomically(async_store, fresh_actor):
    # Versions 1 and 2 of one actor started at once, and version 2 again a few turns of the event
    # loop later, for each start from 0 to 64 turns: the third arrives at some point as the first
    # finishes and hands over to the second.  A lock per actor deleted once "not lock.locked()"
    # (asyncio.Lock stays unlocked from its release until the woken waiter runs) is deleted under
    # the second save, and a third save arriving then makes a new lock: two saves inside at once.
    store = async_store
    for start in range(65):
        actor = fresh_actor(f"arriving-{start}")
        saves = [new_event(actor, 1, id=f"{actor}-a"), new_event(actor, 2, id=f"{actor}-b"),
                 new_event(actor, 2, id=f"{actor}-c")]
        outcomes = store.gathered([("save_event", (event,)) for event in saves], starts=[0, 0, start])
        how = (f"versions 1 and 2 of {q(actor)} saved at once and version 2 again {start} "
               f"turn{'' if start == 1 else 's'} of the event loop later")
        for event, outcome in zip(saves, outcomes):
            if outcome is not None and not isinstance(outcome, VersionConflictError):
                violated("ES-CONC-001", f"{how}: the save of {event.id} failed other than with a "
                                        f"VersionConflictError: {outcome}")
        acknowledged = [(event.version, event.id) for event, outcome in zip(saves, outcomes) if outcome is None]
        stored = [(event.version, event.id) for event in store.get_events(actor, 0)]
        if stored != sorted(acknowledged) or [version for version, _ in acknowledged].count(2) != 1:
            violated("ES-CONC-001", f"{how}: acknowledged (version, id) {acknowledged}, and the actor then holds "
                                    f"{stored}; expected exactly one version 2 acknowledged, and what was "
                                    "acknowledged stored")


@pytest.mark.requirement("ES-CONC-001", "ES-ERR-001")
def test_many_saves_of_one_actor_gathered_at_once_conflict_only_below_the_latest(async_store, fresh_actor):
    # Versions 1 to 32 of one actor gathered at once: more saves of one key in flight than a
    # partition serves before it throttles (an HTTP 429 mapped to a conflict, with the version read
    # before the write, is a conflict below the version attempted).  Whichever order the store
    # takes them in, what it acknowledged is what it holds, in ascending order, and a save it
    # refused met a latest version at or above its own.
    store, actor, count = async_store, fresh_actor("fan-out"), 32
    saves = [new_event(actor, version) for version in range(1, count + 1)]
    outcomes = store.gathered([("save_event", (event,)) for event in saves])
    check_saves_made_at_once(store, f"versions 1 to {count} of {q(actor)} saved at once", saves, outcomes)


@pytest.mark.requirement("SS-SNAP-002")
def test_snapshots_gathered_at_once_keep_the_highest(async_store, snapshot_store, fresh_actor):
    # Twenty snapshot saves of one actor in flight at once, in ascending order: a store that sheds
    # snapshot writes when too many are in flight (they are "only an optimisation") loses the last.
    actor, count = fresh_actor("gathered-snapshots"), 20
    for version in range(1, count + 1):
        save_ok("SS-SNAP-002", async_store, new_event(actor, version))
    outcomes = async_store.gathered([("save_snapshot", (new_snapshot(actor, v),)) for v in range(1, count + 1)])
    failed = [o for o in outcomes if o is not None]
    if failed:
        violated("SS-SNAP-002", f"{count} snapshot saves of {q(actor)} gathered at once: {len(failed)} failed, the "
                                f"first: {failed[0]}")
    got = async_store.get_latest_snapshot(actor)
    if got is None or got.version != count:
        violated("SS-SNAP-002", f"{count} snapshot saves of {q(actor)} (versions 1 to {count}) gathered at once, "
                                f"all acknowledged; get_latest_snapshot returns "
                                f"{'None' if got is None else f'version {got.version}'}")


@pytest.mark.requirement("ES-SAVE-002", "ES-LATEST-002")
def test_a_save_cancelled_part_way_is_all_or_nothing(async_store, fresh_actor):
    # Cancelled after each turn of the event loop in turn, a save has happened or not, never half.
    # It may still happen later (a store that shields its write from cancellation finishes it), so
    # the same version is then saved again and exactly one of the two must be stored: the other
    # save conflicts.  Two statements without a transaction (the event inserted, the stream's
    # counter not yet updated) leave the first stored and accept the second too.
    store = async_store
    for turns in CANCEL_TURNS:
        actor = fresh_actor(f"cancel-{turns}")
        first, cancelled, again = (new_event(actor, 1), new_event(actor, 2, id=f"{actor}-cancelled"),
                                   new_event(actor, 2, id=f"{actor}-again"))
        save_ok("ES-SAVE-002", store, first)
        outcome, _ = store.cancelled_after("save_event", (cancelled,), turns)
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


@pytest.mark.requirement("ES-LATEST-002", "ES-READ-001")
def test_a_read_cancelled_part_way_leaves_the_handle_answering_right(async_store, fresh_actor):
    # A read cancelled while its reply is on the way: a connection that keeps the unread reply
    # answers the next read with it (redis-py's CVE-2023-28858), and a table of reads in flight
    # shared by callers keeps the cancelled one for the next caller of the same actor.
    store = async_store
    read, other = fresh_actor("read"), fresh_actor("other")
    for actor, top in ((read, 2), (other, 5)):
        for version in range(1, top + 1):
            save_ok("ES-LATEST-002", store, new_event(actor, version))
    finished = set()
    for turns in CANCEL_TURNS:
        for method, args in (("get_latest_version", (read,)), ("get_events", (read, 0))):
            if method in finished:
                continue
            outcome, _ = store.cancelled_after(method, args, turns)
            if outcome == "completed":
                finished.add(method)
            how = f"{method}{args!r} was {outcome} after {turns} turn{'' if turns == 1 else 's'} of the event loop"
            for actor, top in ((other, 5), (read, 2)):
                with blame("ES-LATEST-002"):
                    latest = store.get_latest_version(actor)
                if latest != top:
                    violated("ES-LATEST-002", f"{how}; then get_latest_version({q(actor)}) on the same handle returned "
                                              f"{latest}, expected {top}")
                with blame("ES-READ-001"):
                    got = versions(store.get_events(actor, 0))
                if got != list(range(1, top + 1)):
                    violated("ES-READ-001", f"{how}; then get_events({q(actor)}, 0) on the same handle returned "
                                            f"versions {got}, expected {list(range(1, top + 1))}")
        if len(finished) == 2:
            return


@pytest.mark.requirement("ES-SAVE-001")
def test_a_save_cancelled_while_waiting_behind_another_frees_its_place(async_store, fresh_actor):
    # A lock that hands itself to the next waiter (no barging) must not hand itself to a waiter
    # that was cancelled: the lock would be held for ever and every later save would wait.
    store = async_store
    for turns in range(9):
        actor = fresh_actor(f"behind-{turns}")
        store.cancelled_after("save_event", (new_event(actor, 2, id=f"{actor}-cancelled"),), turns,
                              alongside=("save_event", (new_event(actor, 1),)))
        with blame("ES-SAVE-001"):
            got = versions(store.get_events(actor, 0))
            top = got[-1] if got else 0
            save_ok("ES-SAVE-001", store, new_event(actor, top + 1), context=f" (after a save of version 2 was "
                    f"cancelled {turns} turns of the event loop after it began to wait behind a save of version 1)")
