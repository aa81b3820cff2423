"""ES-ACTOR-001 and ES-ACTOR-002: actors are independent exact strings."""

from __future__ import annotations

import pytest

from ..errors import VersionConflictError
from .support import (diff_event, exact_id, highest_stored_version, new_event, q, read_back, save_conflict, save_ok,
                      versions, violated)


@pytest.mark.requirement("ES-ACTOR-001")
def test_actors_do_not_share_versions(store, fresh_actor):
    first, second = fresh_actor("first"), fresh_actor("second")
    for version in (1, 2, 3, 4, 5):
        save_ok("ES-ACTOR-001", store, new_event(first, version))
    save_ok("ES-ACTOR-001", store, new_event(second, 1), context=f" (actor {q(first)} is at version 5)")
    save_ok("ES-ACTOR-001", store, new_event(second, 2))
    save_conflict("ES-ACTOR-001", store, new_event(second, 2), latest=2)
    for actor, expected in ((first, [1, 2, 3, 4, 5]), (second, [1, 2])):
        got = versions(store.get_events(actor, 0))
        latest = store.get_latest_version(actor)
        if got != expected or latest != expected[-1]:
            violated(
                "ES-ACTOR-001",
                f"saved versions 1-5 to {q(first)} and 1-2 to {q(second)}; {q(actor)} has versions {got} "
                f"and latest {latest}; expected {expected} and {expected[-1]}",
            )


@pytest.mark.requirement("ES-ACTOR-001")
def test_a_conflict_on_one_actor_does_not_touch_another(store, fresh_actor):
    first, second = fresh_actor("first"), fresh_actor("second")
    save_ok("ES-ACTOR-001", store, new_event(first, 1))
    save_ok("ES-ACTOR-001", store, new_event(second, 1))
    error = save_conflict("ES-ACTOR-001", store, new_event(first, 1), latest=1)
    if error.actor_id != first:
        violated("ES-ACTOR-001", f"a conflict on {q(first)} named actor {q(error.actor_id)}")
    if store.get_latest_version(second) != 1:
        violated("ES-ACTOR-001", f"a rejected save to {q(first)} changed the latest version of {q(second)}")


# Pairs of ids built to collide under lossy keyings are in test_boundaries.py
# (aether_conformance.boundaries.COLLIDING_ACTOR_IDS).


EXACT_IDS = {
    "spaces": "order 17 for  Zoë",
    "dots": "com.example.orders.17",
    "wildcards": "*.>.*",
    "only-star": "*",
    "only-gt": ">",
    "slashes-and-colons": "tenant/7:order#3?x=1&y=%20",
    "quotes": "it's \"quoted\" \\ back",
    "control": "tab\tnewline\ncr\rnul\x00",
    "emoji": "🦀🎉👩‍👩‍👧",
    "cjk": "订单-注文-주문",
    "rtl": "طلب-הזמנה",
    "max-length": "x" * 256,
    "max-length-wide": "🦀" * 256,
}


@pytest.mark.requirement("ES-ACTOR-002")
@pytest.mark.parametrize("kind", sorted(EXACT_IDS))
def test_any_id_is_accepted_and_kept_exactly(store, fresh_actor, kind):
    actor = exact_id(EXACT_IDS[kind], fresh_actor(""))
    event = new_event(actor, 1)
    save_ok("ES-ACTOR-002", store, event, context=f" (an id with {kind})")
    got = read_back(store, actor, 0, [1], context=f" (an id with {kind})")
    problems = diff_event(event, got[0])
    if any(problem.startswith("actor_id:") for problem in problems):
        violated("ES-ACTOR-002", f"saved one event to actor {q(actor)} ({kind}); get_events returned it with actor id "
                                 f"{q(got[0].actor_id)}")
    if problems:  # the id survived, something else did not
        violated("ES-READ-003", f"the event saved to actor {q(actor)} ({kind}) came back changed: " + "; ".join(problems))
    if store.get_latest_version(actor) != 1:
        violated("ES-ACTOR-002", f"saved version 1 to actor {q(actor)} ({kind}); latest is not 1")
    save_conflict("ES-ACTOR-002", store, new_event(actor, 1), latest=1)


# Whole ids a file system reserves: a store keeping a file or directory per actor opens a device
# (Windows' CON, NUL, COM1..., with or without an extension) or a directory ('.', '..', '~').
RESERVED_FILE_NAMES = ("CON", "nul", "AUX", "PRN", "COM3", "LPT1", "nul.orders", "con.txt", ".", "..", "~")


@pytest.mark.requirement("ES-ACTOR-002")
@pytest.mark.parametrize("name", RESERVED_FILE_NAMES)
def test_names_a_file_system_reserves_are_ordinary_ids(store, name):
    # No token can be added to these ids, so every run writes the same actors: above what is there,
    # once more if another run against the same store got there first.
    for _ in range(5):
        event = new_event(name, highest_stored_version(store, name) + 1)
        try:
            store.save_event(event)
            break
        except VersionConflictError:
            continue
    else:
        violated("ES-ACTOR-002", f"five saves to actor {q(name)}, each above the highest version its events showed, "
                                 "all conflicted")
    latest = store.get_latest_version(name)
    got = store.get_events(name, event.version)
    if latest < event.version or not got or got[0].id != event.id or got[0].actor_id != name:
        violated("ES-ACTOR-002", f"saved version {event.version} to actor {q(name)} (a name file systems reserve); "
                                 f"latest is then {latest} and get_events({q(name)}, {event.version}) returned "
                                 f"{[(e.id, e.actor_id, e.version) for e in got]}")
