"""The last tests of a run: actors written when it began still read, and conflict, as they did.

A store that answers from a cache with a time-to-live, or whose keys expire
(Redis EXPIRE, a KV bucket's max age, a replica that drops what it has not
synchronised), passes every test that reads right after writing.  So does one
that keeps only so many actors in memory and brings an evicted one back wrong
(an actor passivated out of an LRU and restored without its events).  The
planted actors are written by the ``revisit_plants`` fixture as the session's
first conformance test starts; here, once everything else has run and after
many other actors have been given an event and read (or given snapshots), they are checked again,
and no sooner than the profile's revisit age (2 s in quick, 10 s in default,
60 s in thorough) after they were written.
"""

from __future__ import annotations

import time

import pytest

from ..errors import VersionConflictError
from .support import (
    RequirementViolation,
    diff_event,
    diff_snapshot,
    new_event,
    new_snapshot,
    q,
    save_conflict,
    save_ok,
    versions,
    violated,
)


def _age(planted) -> str:
    return f"{time.monotonic() - planted.at:.1f} s after they were written at the start of the run"


def _wait_until_aged(planted, seconds: float) -> None:
    """Sleep until the planted actors are ``seconds`` old, and a second more (so that a time-to-live of
    exactly ``seconds``, counted from a save just after the planting began, has run out too), when
    the rest of the run took less."""
    time.sleep(max(0.0, planted.at + seconds + 1 - time.monotonic()))


def _untouched_actors(fresh_actor, count: int) -> list[str]:
    """``count`` actors nobody wrote, for any actor cache to fill with."""
    token = fresh_actor("")
    return [f"{token}-{number}" for number in range(count)]


@pytest.mark.requirement("ES-READ-003", "ES-LATEST-002", "ES-SAVE-002", "ES-SAVE-001")
def test_actors_written_at_the_start_are_unchanged_at_the_end(store, revisit_plants, fresh_actor, aether_profile):
    planted = revisit_plants
    if planted.problem:
        raise RequirementViolation(f"{planted.problem} (while planting actors at the start of the run)")
    # Each other actor gets an event and is read: caches and filters filled by saves (a filter of the
    # actors that have events, sized below the count and ignoring inserts once full) and by reads
    # (an LRU of latest versions that rebuilds an evicted actor from its first page) both overflow.
    others = _untouched_actors(fresh_actor, aether_profile.touched_actors)
    # Each event of a type of its own: a dictionary of event types fills up as the actors do.
    kind = f"Touched.{others[0][:12]}"
    try:
        results = store.one_after_another([call for number, actor in enumerate(others) for call in (
            ("save_event", (new_event(actor, 1, event_type=f"{kind}.{number}"),)), ("get_latest_version", (actor,)))])
    except VersionConflictError as error:
        violated("ES-SAVE-001", f"saved version 1 to {q(others[error.call_index // 2])}, a new actor (one of the "
                                f"actors touched before the revisit); expected success, store raised "
                                f"VersionConflictError({error})")
    for actor, latest in zip(others, results[1::2]):
        if latest != 1:
            violated("ES-LATEST-002", f"saved version 1 to {q(actor)}, a new actor, after saving to "
                                      f"{len(others):,} other new actors at most; get_latest_version returned {latest}")
    touched = f"{len(others):,} other actors"
    _wait_until_aged(planted, aether_profile.revisit_age_seconds)
    age = f"{_age(planted)}, and {touched} touched since"
    for actor, saved in planted.events.items():
        latest = store.get_latest_version(actor)
        if latest != saved[-1].version:
            violated("ES-LATEST-002", f"{q(actor)} was saved up to version {saved[-1].version}; {age}, "
                                      f"get_latest_version returns {latest}")
        got = store.get_events(actor, 0)
        problems = [p for a, b in zip(saved, got) for p in diff_event(a, b)]
        if versions(got) != versions(saved) or problems:
            violated("ES-READ-003", f"{q(actor)} was saved with versions {versions(saved)}; {age}, get_events "
                                    f"returns versions {versions(got)}" + (f": {'; '.join(problems)}" if problems else ""))
        error = save_conflict("ES-SAVE-002", store, new_event(actor, saved[-1].version), latest=saved[-1].version)
        if error.current_version != saved[-1].version:
            violated("ES-SAVE-002", f"{q(actor)} is at version {saved[-1].version}; {age}, a save at that version "
                                    f"conflicts with current version {error.current_version}")
        save_ok("ES-SAVE-002", store, new_event(actor, saved[-1].version + 1), context=f" ({age})")


@pytest.mark.requirement("SS-SNAP-002")
def test_snapshots_written_at_the_start_are_unchanged_at_the_end(snapshot_store, revisit_plants, fresh_actor,
                                                                 aether_profile):
    planted = revisit_plants
    if planted.problem:
        raise RequirementViolation(f"{planted.problem} (while planting actors at the start of the run)")
    # Snapshots are saved for the others (at version 0, which no store may refuse): a filter of the
    # actors that have one, sized for 8,192 and cleared when full, forgets the planted actors'.
    others = _untouched_actors(fresh_actor, aether_profile.touched_actors)
    snapshot_store.one_after_another([("save_snapshot", (new_snapshot(actor, 0),)) for actor in others])
    touched = f"{len(others):,} other actors"
    _wait_until_aged(planted, aether_profile.revisit_age_seconds)
    for actor, snapshot in planted.snapshots.items():
        got = snapshot_store.get_latest_snapshot(actor)
        if got is None or diff_snapshot(snapshot, got):
            violated("SS-SNAP-002", f"a snapshot of {q(actor)} was saved at version {snapshot.version}; "
                                    f"{_age(planted)}, and {touched} touched since, get_latest_snapshot returns "
                                    f"{'None' if got is None else f'version {got.version}'}")
