"""ES-SAVE-*: which saves a store accepts and which it refuses, and that refusals leave no trace."""

from __future__ import annotations

import pytest

from ..driver import StoreRaised
from ..model import INT64_MAX, INT64_MIN, Timestamp
from .support import diff_event, new_event, q, read_back, save_conflict, save_ok, versions, violated



@pytest.mark.requirement("ES-SAVE-001")
def test_first_event_at_version_1_is_accepted(store, fresh_actor):
    actor = fresh_actor()
    save_ok("ES-SAVE-001", store, new_event(actor, 1), context=" (a new actor, latest 0)")


@pytest.mark.requirement("ES-SAVE-001")
@pytest.mark.parametrize("sequence", [[1, 2, 3], [2, 5], [1, 3, 4, 10], [7], [1, 1000, 1001]], ids=str)
def test_versions_above_latest_are_accepted_with_gaps(store, fresh_actor, sequence):
    actor = fresh_actor()
    latest = 0
    for version in sequence:
        save_ok("ES-SAVE-001", store, new_event(actor, version), context=f" whose latest is {latest}")
        latest = version


@pytest.mark.requirement("ES-SAVE-002")
@pytest.mark.parametrize(
    "history, attempt",
    [
        ([1, 2, 3], 3),
        ([1, 2, 3], 2),
        ([1, 2, 3], 1),
        ([1, 2, 3], 0),
        ([1, 2, 3], -1),
        ([2, 5], 4),
        ([2, 5], 3),
        ([], 0),
        ([], -7),
        ([], INT64_MIN),
        # Compared by subtraction in int64 (version - latest <= 0), these differences overflow.
        ([1, 2, 3], INT64_MIN),
        ([INT64_MAX], -2),
    ],
    ids=lambda v: str(v).replace(" ", ""),
)
def test_versions_at_or_below_latest_conflict(store, fresh_actor, history, attempt):
    actor = fresh_actor()
    for version in history:
        save_ok("ES-SAVE-002", store, new_event(actor, version), context=" while preparing the history")
    save_conflict("ES-SAVE-002", store, new_event(actor, attempt), latest=history[-1] if history else 0)


@pytest.mark.requirement("ES-SAVE-002")
def test_resaving_the_same_event_conflicts(store, fresh_actor):
    # No idempotency: a retried save of a stored version is a conflict, as in the seed.
    actor = fresh_actor()
    event = new_event(actor, 1)
    save_ok("ES-SAVE-002", store, event)
    save_conflict("ES-SAVE-002", store, event, latest=1)


@pytest.mark.requirement("ES-SAVE-003")
@pytest.mark.parametrize("attempt", [3, 2, 0, -5])
def test_rejected_save_leaves_no_trace(store, fresh_actor, attempt):
    actor = fresh_actor()
    saved = [new_event(actor, v) for v in (1, 2, 3)]
    for event in saved:
        save_ok("ES-SAVE-003", store, event)
    # Content of its own: an upsert that refuses the save only after rewriting the stored row
    # (ON DUPLICATE KEY UPDATE, then 'two rows affected' read as a conflict) shows in the content.
    rejected = new_event(actor, attempt, event_type="RejectedChange", command_id="cmd-rejected",
                         data={"rejected": True}, timestamp=Timestamp.parse("2001-02-03T04:05:06.7Z"))
    # Compared with what the store read back before the rejection: a store that changes content on
    # the way in (ES-READ-003) still leaves no trace if the rejected save changes nothing.
    saved = read_back(store, actor, INT64_MIN, [1, 2, 3])
    save_conflict("ES-SAVE-003", store, rejected, latest=3)
    events = store.get_events(actor, INT64_MIN)
    if [e.id for e in events] != [e.id for e in saved]:
        violated(
            "ES-SAVE-003",
            f"after a rejected save of version {attempt} (id {rejected.id}) to actor {q(actor)} at latest 3, "
            f"get_events returned versions {versions(events)} with ids {[e.id for e in events]}; expected "
            f"exactly the 3 saved events {[e.id for e in saved]}",
        )
    for before, after in zip(saved, events):
        problems = diff_event(before, after)
        if problems:
            violated("ES-SAVE-003", f"after a rejected save of version {attempt} to actor {q(actor)} at latest 3, "
                                    f"event v{before.version} changed: " + "; ".join(problems))
    latest = store.get_latest_version(actor)
    if latest != 3:
        violated(
            "ES-SAVE-003",
            f"after a rejected save of version {attempt} to actor {q(actor)} at latest 3, "
            f"get_latest_version returned {latest}; expected 3",
        )


@pytest.mark.requirement("ES-SAVE-003")
def test_a_rejected_events_id_is_free_for_the_retry(store, fresh_actor):
    # The optimistic writer's loop: a conflict, then the same event (same id) at the next version.
    # A store that records the id (a unique-id table written outside the guarded insert) before
    # the version check fails refuses the retry as a reused id.
    actor = fresh_actor()
    save_ok("ES-SAVE-003", store, new_event(actor, 1))
    rejected = new_event(actor, 1, command_id="cmd-retried")
    save_conflict("ES-SAVE-003", store, rejected, latest=1)
    retry = new_event(actor, 2, id=rejected.id, command_id=rejected.command_id, data=rejected.data)
    try:
        save_ok("ES-SAVE-003", store, retry, context=f" (event {q(rejected.id)}, retried after a conflict at version 1)")
    except StoreRaised as error:
        violated("ES-SAVE-003", f"a save of event {q(rejected.id)} at version 1 to {q(actor)} was rejected as a "
                                f"conflict; retried at version 2, the store refused it: "
                                f"{type(error.original).__name__}: {error.original_text}")
    read_back(store, actor, 2, [2], context=f" (event {q(rejected.id)}, retried at version 2 after a conflict)")


@pytest.mark.requirement("ES-SAVE-003")
def test_rejected_first_save_creates_nothing(store, fresh_actor):
    actor = fresh_actor()
    save_conflict("ES-SAVE-003", store, new_event(actor, 0), latest=0)
    events, latest = store.get_events(actor, INT64_MIN), store.get_latest_version(actor)
    if events or latest != 0:
        violated(
            "ES-SAVE-003",
            f"after a rejected save of version 0 to new actor {q(actor)}, the store holds versions "
            f"{versions(events)} and latest {latest}; expected no events and latest 0",
        )


@pytest.mark.requirement("ES-SAVE-004")
@pytest.mark.parametrize(
    "sequence",
    [[INT64_MAX], [1, INT64_MAX], [2**53, 2**53 + 1], [2**31 - 1, 2**31, 2**32 + 1], [INT64_MAX - 1, INT64_MAX]],
    ids=str,
)
def test_int64_versions_are_exact(store, fresh_actor, sequence):
    actor = fresh_actor()
    for version in sequence:
        save_ok("ES-SAVE-004", store, new_event(actor, version))
    events = store.get_events(actor, 0)
    if versions(events) != sequence:
        violated(
            "ES-SAVE-004",
            f"saved versions {sequence} to actor {q(actor)}; get_events returned versions {versions(events)}",
        )
    latest = store.get_latest_version(actor)
    if latest != sequence[-1]:
        violated("ES-SAVE-004", f"saved versions {sequence} to actor {q(actor)}; get_latest_version returned {latest}")
    # 2^53+1 and 2^53 are the same float64: a lossy store would let this through.
    save_conflict("ES-SAVE-004", store, new_event(actor, sequence[-1]), latest=sequence[-1])


@pytest.mark.requirement("ES-SAVE-002", "ES-SAVE-003")
@pytest.mark.parametrize("retry", ["same-event", "new-event-id"])
def test_a_retried_save_with_a_command_id_conflicts(store, fresh_actor, retry):
    # A store that treats command ids as idempotency keys answers the retry with success: the
    # writer then believes its save won, although another writer's event may hold that version.
    actor = fresh_actor()
    first = new_event(actor, 1, command_id="cmd-place-order")
    second = new_event(actor, 2, command_id="cmd-pay-order")
    for event in (first, second):
        save_ok("ES-SAVE-002", store, event)
    again = second if retry == "same-event" else new_event(actor, 2, command_id=second.command_id, data=second.data)
    error = save_conflict("ES-SAVE-002", store, again, latest=2)
    if (error.attempted_version, error.current_version) != (2, 2):
        violated("ES-SAVE-002", f"a retried save of version 2 (command id {second.command_id!r}) to {q(actor)} raised "
                                f"a conflict with attempted {error.attempted_version} and current {error.current_version}")
    got = store.get_events(actor, 0)
    if [e.id for e in got] != [first.id, second.id]:
        violated("ES-SAVE-003", f"after a rejected retry ({retry}) of version 2 with command id "
                                f"{second.command_id!r}, {q(actor)} holds ids {[e.id for e in got]}; expected "
                                f"{[first.id, second.id]}")


@pytest.mark.requirement("ES-SAVE-001", "ES-READ-003")
def test_events_sharing_a_command_id_are_all_stored(store, fresh_actor):
    # One command may emit several events; a store must not deduplicate them by command id.
    actor = fresh_actor()
    saved = [new_event(actor, v, command_id="cmd-shared", event_type="ItemAdded", data={"sku": "A-1"})
             for v in (1, 2, 5)]
    for event in saved:
        save_ok("ES-SAVE-001", store, event, context=f" (command id {event.command_id!r}, as the events before it)")
    got = store.get_events(actor, 0)
    if versions(got) != [1, 2, 5]:
        violated("ES-SAVE-001", f"saved versions 1, 2 and 5 to {q(actor)}, all with command id 'cmd-shared', each "
                                f"acknowledged; get_events returned versions {versions(got)}: events sharing a command "
                                "id are each stored, never deduplicated")
    if [(e.id, e.version, e.command_id) for e in got] != [(e.id, e.version, e.command_id) for e in saved]:
        violated("ES-READ-003", f"saved versions 1, 2 and 5 to {q(actor)}, all with command id 'cmd-shared'; "
                                f"get_events returned {[(e.id, e.version, e.command_id) for e in got]}")
    if store.get_latest_version(actor) != 5:
        violated("ES-SAVE-001", f"saved versions 1, 2 and 5 with one command id to {q(actor)}; latest is "
                                f"{store.get_latest_version(actor)}, expected 5")
