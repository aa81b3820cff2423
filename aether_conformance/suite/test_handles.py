"""ES-HANDLE-001: every handle of one factory sees every other handle's writes at once."""

from __future__ import annotations

import pytest

from ..driver import StoreDriver
from .support import drop, new_event, new_snapshot, q, save_all_ok, save_conflict, save_ok, versions, violated


@pytest.mark.requirement("ES-HANDLE-001")
def test_a_write_through_one_handle_is_read_through_another(store, other_store, fresh_actor):
    actor = fresh_actor()
    # Read through the second handle first, so that a per-handle cache would be warm (and stale).
    before = (other_store.get_latest_version(actor), versions(other_store.get_events(actor, 0)))
    for version in (1, 2, 3):
        save_ok("ES-HANDLE-001", store, new_event(actor, version))
    latest, events = other_store.get_latest_version(actor), versions(other_store.get_events(actor, 0))
    if (latest, events) != (3, [1, 2, 3]):
        violated(
            "ES-HANDLE-001",
            f"saved versions 1-3 to {q(actor)} through {store.name}; {other_store.name} then read latest "
            f"{latest} and versions {events} (before the writes it read {before}); expected 3 and [1, 2, 3]",
        )


@pytest.mark.presupposes("ES-ERR-001")  # it reads the conflict's current_version
@pytest.mark.requirement("ES-HANDLE-001")
def test_conflicts_are_checked_against_other_handles_writes(store, other_store, fresh_actor):
    actor = fresh_actor()
    save_ok("ES-HANDLE-001", other_store, new_event(actor, 1))
    other_store.get_latest_version(actor)  # warm any per-handle cache at version 1
    for version in (2, 3):
        save_ok("ES-HANDLE-001", store, new_event(actor, version))
    error = save_conflict("ES-HANDLE-001", other_store, new_event(actor, 2), latest=3)
    if error.current_version != 3:
        violated(
            "ES-HANDLE-001",
            f"{other_store.name} was refused version 2 of {q(actor)} with current_version "
            f"{error.current_version}; {store.name} had saved up to 3",
        )
    save_ok("ES-HANDLE-001", other_store, new_event(actor, 4), context=f" through {other_store.name} after 3 through {store.name}")
    save_conflict("ES-HANDLE-001", store, new_event(actor, 4), latest=4)


@pytest.mark.requirement("ES-SAVE-002")
def test_a_save_retried_through_a_handle_that_read_before_it_landed_conflicts(store, other_store, fresh_actor):
    # The same event saved again through another handle whose last read predates it (a request
    # retried on another node after a timeout): a store that appends with the revision its handle
    # last saw as the expected one meets, in EventStoreDB, its own event id at that position, which
    # the server answers as an idempotent success.  The version is taken: the retry must conflict.
    actor = fresh_actor()
    save_ok("ES-SAVE-002", store, new_event(actor, 1))
    other_store.get_events(actor, 0)
    other_store.get_latest_version(actor)
    event = new_event(actor, 2)
    save_ok("ES-SAVE-002", store, event)
    error = save_conflict("ES-SAVE-002", other_store, event, latest=2)
    if (error.attempted_version, error.current_version) != (2, 2):
        violated("ES-SAVE-002", f"version 2 of {q(actor)} saved through {store.name}, then the same event again through "
                                f"{other_store.name} (which had read version 1): conflict with attempted "
                                f"{error.attempted_version} and current {error.current_version}, expected 2 and 2")
    got = [(e.version, e.id) for e in store.get_events(actor, 0)]
    if len(got) != 2:
        violated("ES-SAVE-002", f"version 2 of {q(actor)} saved twice (through two handles): the actor holds {got}")


@pytest.mark.requirement("ES-HANDLE-001")
def test_snapshots_are_shared_between_handles(snapshot_store, other_store, fresh_actor):
    store = snapshot_store  # skips, like every snapshot test, when the store has no snapshots
    actor = fresh_actor()
    save_ok("ES-HANDLE-001", store, new_event(actor, 5))  # a store may refuse snapshots ahead of events
    other_store.get_latest_snapshot(actor)
    store.save_snapshot(new_snapshot(actor, 5))
    got = other_store.get_latest_snapshot(actor)
    if got is None or got.version != 5:
        violated("ES-HANDLE-001", f"saved a snapshot at version 5 of {q(actor)} through {store.name}; "
                                  f"{other_store.name} read {got!r}")
    # Now that the other handle holds version 5 (a per-client cache cleared only by its own saves
    # keeps it), a higher one saved elsewhere must replace it there too.
    save_ok("ES-HANDLE-001", store, new_event(actor, 6))
    store.save_snapshot(new_snapshot(actor, 6))
    got = other_store.get_latest_snapshot(actor)
    if got is None or got.version != 6:
        violated("ES-HANDLE-001", f"saved snapshots at versions 5 then 6 of {q(actor)} through {store.name}; "
                                  f"{other_store.name}, which had read version 5, then read "
                                  f"{'None' if got is None else f'version {got.version}'}")
    # And with no event saved between the read and the next snapshot: a cache invalidated by event
    # saves alone (LISTEN/NOTIFY on the events table only) keeps version 6.
    save_ok("ES-HANDLE-001", store, new_event(actor, 7))
    other_store.get_latest_snapshot(actor)
    store.save_snapshot(new_snapshot(actor, 7))
    got = other_store.get_latest_snapshot(actor)
    if got is None or got.version != 7:
        violated("ES-HANDLE-001", f"{other_store.name} read the snapshot of {q(actor)} at version 6; then {store.name} "
                                  f"saved one at version 7, and {other_store.name} read "
                                  f"{'None' if got is None else f'version {got.version}'}")
    # The other way round: the handle that wrote every snapshot so far (a cache of what it wrote
    # itself, replaced only by its own saves) must see a higher one saved elsewhere.
    save_ok("ES-HANDLE-001", other_store, new_event(actor, 8))
    other_store.save_snapshot(new_snapshot(actor, 8))
    got = store.get_latest_snapshot(actor)
    if got is None or got.version != 8:
        violated("ES-HANDLE-001", f"{store.name} saved snapshots of {q(actor)} at versions 5 to 7; then {other_store.name} "
                                  f"saved one at version 8, and {store.name} read "
                                  f"{'None' if got is None else f'version {got.version}'}")


@pytest.mark.presupposes("ES-ERR-001")
@pytest.mark.requirement("ES-HANDLE-001")
def test_a_conflict_far_behind_another_handles_writes_names_the_latest(store, other_store, fresh_actor):
    # A client that refuses saves far behind the revision it remembers, without asking the
    # server, names that remembered revision; the latest is another handle's.
    actor = fresh_actor()
    save_ok("ES-HANDLE-001", store, new_event(actor, 5000))
    save_ok("ES-HANDLE-001", other_store, new_event(actor, 5001))
    error = save_conflict("ES-HANDLE-001", store, new_event(actor, 1), latest=5001)
    if error.current_version != 5001:
        violated("ES-HANDLE-001", f"{store.name} saved version 5000 of {q(actor)}, {other_store.name} 5001; a save of "
                                  f"version 1 through {store.name} conflicted with current version {error.current_version}")


@pytest.mark.requirement("ES-HANDLE-001")
@pytest.mark.parametrize("end", ["closed", "dropped without close"])
def test_what_a_closed_handle_saved_stays(store, aether_driver, fresh_actor, end):
    # A handle closed, or dropped and collected unclosed, after its saves were acknowledged: a
    # close that rolls back what a batch had not committed yet loses them, and so does a buffer
    # that only close() flushes.
    actor = fresh_actor()
    held = [StoreDriver(aether_driver.spec, timeout=aether_driver.timeout)]
    try:
        closing = held[0].new_handle()
        for version in (1, 2, 3):
            save_ok("ES-HANDLE-001", closing, new_event(actor, version))
    finally:
        if end == "closed":
            held[0].close()
    del closing
    if not drop(held, aether_driver.timeout):
        violated("ES-HANDLE-001", "dropping a handle: garbage collection did not finish within the "
                                  f"{aether_driver.timeout:g} s timeout (a finaliser of the store's that blocks)")
    latest, events = store.get_latest_version(actor), versions(store.get_events(actor, 0))
    if (latest, events) != (3, [1, 2, 3]):
        violated("ES-HANDLE-001", f"a handle saved versions 1-3 of {q(actor)} and was {end}; {store.name} then read "
                                  f"latest {latest} and versions {events}")


@pytest.mark.requirement("ES-HANDLE-001")
def test_a_task_that_read_an_actor_reads_another_handles_later_save(store, other_store, fresh_actor):
    # One task (or thread) reads, another handle saves meanwhile, the first reads again: a session
    # kept per task or per thread (SQLAlchemy's scoped session) answers from what it loaded first,
    # and the writer loop of spec section 6, retrying in one task, conflicts for ever.
    actor = fresh_actor()
    save_ok("ES-HANDLE-001", store, new_event(actor, 1))
    before, _, latest, events = store.in_one_task([
        ("get_latest_version", (actor,)),
        (other_store, "save_event", (new_event(actor, 2),)),
        ("get_latest_version", (actor,)),
        ("get_events", (actor, 0)),
    ])
    if (latest, versions(events)) != (2, [1, 2]):
        where = "task" if store.is_async else "thread"
        violated("ES-HANDLE-001", f"one {where} read latest {before} of {q(actor)}; {other_store.name} then saved version 2 "
                                  f"and the same {where} read latest {latest} and versions {versions(events)}")


@pytest.mark.requirement("ES-HANDLE-001")
def test_snapshots_saved_elsewhere_after_a_read_of_the_latest_are_seen(snapshot_store, other_store, fresh_actor):
    # A session that hides what is above the position it last read (the latest version it was
    # told) must not hide a snapshot another handle saved since.
    store = snapshot_store
    actor = fresh_actor()
    save_ok("ES-HANDLE-001", store, new_event(actor, 1))
    store.save_snapshot(new_snapshot(actor, 1))
    other_store.get_latest_version(actor)
    other_store.get_latest_snapshot(actor)
    save_ok("ES-HANDLE-001", store, new_event(actor, 2))
    store.save_snapshot(new_snapshot(actor, 2))
    got = other_store.get_latest_snapshot(actor)
    if got is None or got.version != 2:
        violated("ES-HANDLE-001", f"{other_store.name} read latest 1 and the snapshot at 1 of {q(actor)}; {store.name} "
                                  f"then saved event 2 and a snapshot at 2; {other_store.name} read "
                                  f"{'None' if got is None else f'version {got.version}'}")


@pytest.mark.requirement("ES-HANDLE-001")
def test_a_handle_idle_through_many_saves_elsewhere_reads_the_latest(store, other_store, fresh_actor):
    # A near cache kept current by a bounded ring of invalidations (1,024 in Hazelcast) misses the
    # one for an actor it holds once more saves than that went by.
    actor, elsewhere = fresh_actor(), fresh_actor("busy")
    save_ok("ES-HANDLE-001", store, new_event(actor, 1))
    other_store.get_latest_version(actor)
    save_ok("ES-HANDLE-001", store, new_event(actor, 2))
    save_all_ok("ES-HANDLE-001", store, [new_event(f"{elsewhere}-{version % 50}", version // 50 + 1)
                                         for version in range(1, 1101)])
    latest = other_store.get_latest_version(actor)
    if latest != 2:
        violated("ES-HANDLE-001", f"{other_store.name} read {q(actor)} at version 1; {store.name} saved version 2 and "
                                  f"then 1,100 events of other actors; {other_store.name} read latest {latest}")


@pytest.mark.requirement("ES-HANDLE-001", "ES-SAVE-001")
def test_hundreds_of_handles_one_after_another_each_see_and_keep_writes(store, aether_driver, fresh_actor,
                                                                      aether_profile):
    # Each handle, made and closed in turn, reads a save made after it was made and saves one of its
    # own: the 257th handle of a store whose client ids are one byte takes the first handle's id
    # (and its saves for retries already applied), the 513th session a pool routes to a standby.
    seen, kept = fresh_actor("seen"), fresh_actor("kept")
    for version in range(1, aether_profile.handles + 1):
        handle = aether_driver.new_handle()
        try:
            save_ok("ES-HANDLE-001", store, new_event(seen, version))
            latest = handle.get_latest_version(seen)
            if latest != version:
                violated("ES-HANDLE-001", f"{handle.name}, made in turn after {version - 1:,} others, read latest {latest} of "
                                          f"{q(seen)} after {store.name} saved version {version}")
            save_ok("ES-SAVE-001", handle, new_event(kept, version))
            own = handle.get_latest_version(kept)
            if own != version:
                violated("ES-SAVE-001", f"{handle.name}, made in turn after {version - 1:,} others, saved version {version} of "
                                        f"{q(kept)} and then read latest {own}")
        finally:
            aether_driver.release(handle)
        latest = store.get_latest_version(kept)
        if latest != version:
            violated("ES-HANDLE-001", f"a handle, made in turn after {version - 1:,} others, saved version {version} of "
                                      f"{q(kept)} and was closed; {store.name} then read latest {latest}")
    got = versions(store.get_events(kept, 0))
    if got != list(range(1, aether_profile.handles + 1)):
        missing = sorted(set(range(1, aether_profile.handles + 1)) - set(got))
        violated("ES-HANDLE-001", f"{aether_profile.handles:,} handles made in turn each saved one version of {q(kept)} "
                                  f"and were closed; {store.name} then read {len(got):,} events, versions "
                                  f"{missing[:5]} missing")


# Handles open at once, the run's own included: within the 40 a store must allow (spec section 6),
# with room for handles the run dropped unclosed, which a store may count until it notices.
OPEN_HANDLES = 36


@pytest.mark.requirement("ES-HANDLE-001")
def test_handles_held_open_together_see_each_others_writes(store, aether_driver, fresh_actor):
    # Three dozen handles open at once, the run's own included: a store that gives the handles beyond
    # its first 16 or 32 a cache of their own, kept current by a limited number of notification
    # slots, serves the late ones stale reads.
    actor = fresh_actor()
    handles = []
    try:
        for _ in range(OPEN_HANDLES - len(aether_driver.handles)):
            handles.append(aether_driver.new_handle())
        for handle in handles:
            handle.get_latest_version(actor)  # warm whatever each one keeps
        for version, writer in enumerate(handles, 1):
            save_ok("ES-HANDLE-001", writer, new_event(actor, version))
            for reader in (handles[-1], handles[0], handles[len(handles) // 2]):
                latest = reader.get_latest_version(actor)
                if latest != version:
                    violated("ES-HANDLE-001", f"{OPEN_HANDLES} handles open at once; {writer.name} saved version "
                                              f"{version} of {q(actor)}, {reader.name} then read latest {latest}")
    finally:
        for handle in handles:
            aether_driver.release(handle)
