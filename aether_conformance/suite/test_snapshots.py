"""SS-SNAP-*: snapshot stores return the highest-version snapshot, unchanged."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ..driver import StoreRaised
from .support import diff_snapshot, new_event, new_snapshot, q, save_ok, versions, violated


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
@pytest.mark.parametrize("order", [[1, 2, 3], [3, 2, 1], [2, 5, 3, 4, 1], [10, 1]], ids=str)
def test_highest_version_wins(snapshot_store, fresh_actor, order):
    actor = fresh_actor()
    for version in range(1, max(order) + 1):
        save_ok("SS-SNAP-002", snapshot_store, new_event(actor, version))
    for count, version in enumerate(order, 1):
        snapshot_store.save_snapshot(new_snapshot(actor, version))
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
    "unicode": {"名前": "テスト", "emoji": "🦀", "nul": "a\u0000b"},
    "bools": {"t": True, "f": False, "one": 1, "zero": 0},
}


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


@pytest.mark.requirement("SS-SNAP-005")
def test_snapshot_ahead_of_events_is_accepted_or_cleanly_refused(snapshot_store, fresh_actor):
    actor = fresh_actor()
    save_ok("SS-SNAP-005", snapshot_store, new_event(actor, 1))
    snapshot_store.save_snapshot(new_snapshot(actor, 1))
    ahead = new_snapshot(actor, 9, state={"ahead": True})
    try:
        snapshot_store.save_snapshot(ahead)
    except StoreRaised:  # a refusal; its form (ValueError, nothing stored) is ES-REFUSE-001's to check
        return
    got = snapshot_store.get_latest_snapshot(actor)
    if got is None or diff_snapshot(ahead, got):
        violated("SS-SNAP-005", f"a snapshot at version 9 of {q(actor)} was accepted, but get_latest_snapshot returned {got!r}")
