"""ES-HANDLE-001: every handle of one factory sees every other handle's writes at once."""

from __future__ import annotations

import pytest

from .support import new_event, new_snapshot, q, save_conflict, save_ok, versions, violated


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
