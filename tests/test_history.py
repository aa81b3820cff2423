"""The history recorder and the concurrency checker.

Each rule has a small hand-written history that breaks it and a close variant
that does not.  Property tests simulate an atomic store (every history passes)
and a check-then-write store (exactly the histories with a lost race fail).
"""

from __future__ import annotations

import json
import multiprocessing
import re
import threading
import time
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from aether_conformance import Event, VersionConflictError
from aether_conformance.history import (
    CONFLICT,
    ERROR,
    EVENTS,
    LATEST,
    OK,
    SAVE,
    UNKNOWN,
    CheckResult,
    EventsRead,
    HistoryRecorder,
    Operation,
    StoredEvent,
    check_event_reads,
    check_history,
    history_from_json,
    history_to_json,
    stored_events,
    to_jepsen,
)
from reference_store.memory import InMemoryEventStore

ACTOR = "a-1"
T0 = 5_000_000_000  # an arbitrary monotonic origin; explanations count from the first invoke


def at(us: float) -> int:
    """Microseconds after the origin, in nanoseconds."""
    return T0 + round(us * 1000)


class History:
    """A hand-written history; times are in microseconds."""

    def __init__(self) -> None:
        self.ops: list[Operation] = []

    def _add(self, **fields) -> Operation:
        op = Operation(index=len(self.ops), **fields)
        self.ops.append(op)
        return op

    def save(self, writer, version, invoked, completed, outcome=OK, *, current=None,
             event_id=None, digest=None, actor=ACTOR) -> Operation:
        event_id = event_id or f"e-{len(self.ops)}"
        return self._add(
            writer=writer, kind=SAVE, actor_id=actor, invoke_ns=at(invoked),
            complete_ns=None if completed is None else at(completed),
            outcome=UNKNOWN if completed is None else outcome,
            version=version, event_id=event_id, digest=digest or f"sha:{event_id}",
            current_version=current, detail="TimeoutError: no answer in 5s" if outcome == ERROR else "",
        )

    def read(self, writer, returned, invoked, completed, actor=ACTOR) -> Operation:
        return self._add(
            writer=writer, kind=LATEST, actor_id=actor, invoke_ns=at(invoked),
            complete_ns=at(completed), outcome=OK, version=returned,
        )


def stored(*saves: Operation) -> list[StoredEvent]:
    return [StoredEvent(op.version, op.event_id, op.digest) for op in saves]


def rules(result: CheckResult) -> list[str]:
    return sorted(v.rule for v in result.violations)


def only(result: CheckResult, rule: str):
    """The single violation of ``rule``; its explanation names its operations in time order."""
    found = [v for v in result.violations if v.rule == rule]
    assert len(found) == 1, result.violations
    violation = found[0]
    named = [int(n) for n in re.findall(r"#(\d+) ", violation.explanation)]
    by_index = {op.index: op for op in violation.operations}
    assert named and set(named) == set(by_index), violation.explanation
    times = [(by_index[i].invoke_ns, i) for i in named]
    assert times == sorted(times), f"not in time order: {violation.explanation}"
    assert [op.index for op in violation.operations] == [i for _, i in sorted(times)]
    return violation


# ---------------------------------------------------------------------------
# rule 1: one winner per version


def test_two_acknowledged_saves_of_one_version_are_reported_in_time_order():
    h = History()
    late = h.save("thread-2", 1, 1250, 2401)  # recorded first, invoked second
    early = h.save("thread-1", 1, 1203, 2310)
    result = check_history(h.ops, {ACTOR: stored(early)})
    assert rules(result) == ["duplicate-winner", "lost-ack"]
    violation = only(result, "duplicate-winner")
    assert violation.explanation.startswith(
        'two saves of version 1 to actor "a-1" both succeeded: '
        "#1 thread-1 save v1 (id e-1) [invoked 0.000 ms, ok at 1.107 ms]; "
        "#0 thread-2 save v1 (id e-0) [invoked 0.047 ms, ok at 1.198 ms]."
    )
    assert violation.operations == [early, late]
    assert result.explain() == violation.explanation + " (and 1 more)"


def test_one_winner_and_one_conflict_per_version_passes():
    h = History()
    h.save("thread-2", 1, 1250, 2401, CONFLICT, current=1)
    early = h.save("thread-1", 1, 1203, 2310)
    result = check_history(h.ops, {ACTOR: stored(early)})
    assert result.ok and result.explain() == ""


# ---------------------------------------------------------------------------
# rules 2-5: the final read


def test_stream_out_of_version_order_is_reported():
    h = History()
    one, two = h.save("w1", 1, 0, 1), h.save("w1", 2, 2, 3)
    result = check_history(h.ops, {ACTOR: stored(two, one)})
    assert rules(result) == ["stream-not-increasing"]
    assert "version 2 (event e-1) is followed by version 1 (event e-0)" in only(result, "stream-not-increasing").explanation
    assert check_history(h.ops, {ACTOR: stored(one, two)}).ok


def test_acknowledged_save_missing_from_the_stream_is_a_lost_ack():
    h = History()
    one, two = h.save("w1", 1, 0, 1), h.save("w2", 2, 2, 3)
    result = check_history(h.ops, {ACTOR: stored(one)})
    assert rules(result) == ["lost-ack"]
    assert "no event at version 2" in only(result, "lost-ack").explanation
    assert check_history(h.ops, {ACTOR: stored(one, two)}).ok


def test_lost_ack_says_which_event_took_its_place():
    h = History()
    mine = h.save("w1", 1, 0, 1)
    other = h.save("w2", 1, 0.5, None)  # never answered: it may have landed, but not over an acknowledged save
    result = check_history(h.ops, {ACTOR: stored(other)})
    assert rules(result) == ["lost-ack"]
    violation = only(result, "lost-ack")
    assert violation.operations == [mine]
    assert "has event e-1 at version 1 instead" in violation.explanation


def test_event_read_back_twice_is_a_duplicate():
    h = History()
    one = h.save("w1", 1, 0, 1)
    result = check_history(h.ops, {ACTOR: stored(one, one)})
    assert rules(result) == ["duplicate-event"]
    assert "appears 2 times" in only(result, "duplicate-event").explanation
    assert check_history(h.ops, {ACTOR: stored(one)}).ok


def test_a_save_that_errored_may_land_but_only_once():
    h = History()
    failed = h.save("w1", 1, 0, 1, ERROR)
    assert check_history(h.ops, {ACTOR: []}).ok
    assert check_history(h.ops, {ACTOR: stored(failed)}).ok
    assert rules(check_history(h.ops, {ACTOR: stored(failed, failed)})) == ["duplicate-event"]


def test_changed_content_is_reported():
    h = History()
    one = h.save("w1", 1, 0, 1, digest="sha:aaaa")
    result = check_history(h.ops, {ACTOR: [StoredEvent(1, one.event_id, "sha:bbbb")]})
    assert rules(result) == ["wrong-content"]
    assert "stored digest sha:bbbb, saved sha:aaaa" in only(result, "wrong-content").explanation
    assert check_history(h.ops, {ACTOR: [StoredEvent(1, one.event_id, "sha:aaaa")]}).ok


def test_rejected_save_visible_in_the_stream_is_reported():
    h = History()
    one = h.save("w1", 1, 0, 1)
    rejected = h.save("w2", 1, 0.5, 1.5, CONFLICT, current=1)
    result = check_history(h.ops, {ACTOR: stored(one, rejected)})
    assert "rejected-visible" in rules(result)
    assert only(result, "rejected-visible").operations == [rejected]
    assert check_history(h.ops, {ACTOR: stored(one)}).ok


def test_an_event_retried_after_an_error_may_be_visible_despite_the_retry_conflicting():
    # The first attempt timed out but landed; the identical retry then conflicts with it.
    h = History()
    first = h.save("w1", 1, 0, 1, ERROR, event_id="e-x")
    h.save("w1", 1, 2, 3, CONFLICT, current=1, event_id="e-x")
    assert check_history(h.ops, {ACTOR: stored(first)}).ok


def test_event_no_save_wrote_is_a_phantom():
    h = History()
    one = h.save("w1", 1, 0, 1)
    ghost = StoredEvent(2, "e-ghost", "sha:ghost")
    result = check_history(h.ops, {ACTOR: stored(one) + [ghost]})
    assert rules(result) == ["phantom-event"]
    assert "contains event e-ghost at version 2, which no recorded save wrote" in result.explain()
    # The same stream for an actor the history never touched is not checked.
    assert check_history(h.ops, {ACTOR: stored(one), "elsewhere": [ghost]}).ok


def test_phantom_names_saves_of_the_same_event_at_other_versions():
    h = History()
    one = h.save("w1", 1, 0, 1, event_id="e-1")
    result = check_history(h.ops, {ACTOR: [StoredEvent(3, "e-1", one.digest)]})
    assert rules(result) == ["lost-ack", "phantom-event"]
    violation = only(result, "phantom-event")
    assert "were for other versions: #0 w1 save v1" in violation.explanation


def test_final_read_of_every_saved_actor_is_required():
    h = History()
    h.save("w1", 1, 0, 1, actor="a-7")
    h.read("w1", 0, 0, 1, actor="reads-only")
    with pytest.raises(ValueError, match=r'final_streams: missing the final read of actor\(s\) "a-7";'):
        check_history(h.ops, {})


# ---------------------------------------------------------------------------
# rule 6: conflicts


def test_conflict_below_the_attempted_version_is_false():
    h = History()
    one = h.save("w1", 1, 0, 1)
    h.save("w2", 3, 2, 3, CONFLICT, current=1)
    result = check_history(h.ops, {ACTOR: stored(one)})
    assert rules(result) == ["false-conflict"]
    assert "with latest 1 it must accept version 3" in result.explain()
    h2 = History()
    one = h2.save("w1", 1, 0, 1)
    h2.save("w2", 1, 2, 3, CONFLICT, current=1)
    assert check_history(h2.ops, {ACTOR: stored(one)}).ok


def test_conflict_reporting_a_version_never_written_is_impossible():
    h = History()
    one = h.save("w1", 1, 0, 1)
    h.save("w2", 1, 2, 3, CONFLICT, current=5)
    result = check_history(h.ops, {ACTOR: stored(one)})
    assert rules(result) == ["impossible-current"]
    assert "no save of version 5 to this actor was acknowledged or appears in the final read" in result.explain()
    # An unanswered save of 5 that did land makes the same conflict possible.
    h.save("w3", 5, 1.5, None)
    assert check_history(h.ops, {ACTOR: stored(one, h.ops[-1])}).ok


def test_conflict_reporting_a_version_written_only_later_is_impossible():
    h = History()
    one = h.save("w1", 1, 0, 1)
    h.save("w2", 1, 2, 3, CONFLICT, current=5)
    five = h.save("w3", 5, 3.5, 4)  # invoked after the conflict was reported
    result = check_history(h.ops, {ACTOR: stored(one, five)})
    # Having claimed version 5 already, the store then also accepted a save of 5.
    assert rules(result) == ["accepted-below-latest", "impossible-current"]
    violation = only(result, "impossible-current")
    assert "was only invoked after that answer was given" in violation.explanation
    h2 = History()
    one = h2.save("w1", 1, 0, 1)
    h2.save("w2", 1, 2, 3, CONFLICT, current=5)
    five = h2.save("w3", 5, 2.5, 4)  # overlaps the conflicting save
    assert check_history(h2.ops, {ACTOR: stored(one, five)}).ok


def test_conflict_reporting_a_version_older_than_an_earlier_ack_is_stale():
    h = History()
    one, two = h.save("w1", 1, 0, 1), h.save("w1", 2, 1, 2)
    three = h.save("w1", 3, 3, 4)
    h.save("w2", 2, 5, 6, CONFLICT, current=2)  # invoked after v3 was acknowledged
    result = check_history(h.ops, {ACTOR: stored(one, two, three)})
    assert rules(result) == ["stale-conflict"]
    violation = only(result, "stale-conflict")
    assert [op.index for op in violation.operations] == [2, 3]
    assert "an atomic store reports at least 3" in violation.explanation
    h2 = History()
    one, two = h2.save("w1", 1, 0, 1), h2.save("w1", 2, 1, 2)
    three = h2.save("w1", 3, 3, 4)
    h2.save("w2", 2, 3.5, 6, CONFLICT, current=2)  # overlaps v3: may have been checked before it
    assert check_history(h2.ops, {ACTOR: stored(one, two, three)}).ok


# ---------------------------------------------------------------------------
# rule 7: latest reads


def test_latest_read_of_a_version_never_written_is_impossible():
    h = History()
    h.read("w1", 3, 0, 1)
    result = check_history(h.ops, {ACTOR: []})
    assert rules(result) == ["impossible-latest"]
    h.save("w2", 3, 0.5, None)  # never answered and not in the stream: it never took effect
    assert rules(check_history(h.ops, {ACTOR: []})) == ["impossible-latest"]
    assert check_history(h.ops, {ACTOR: stored(h.ops[-1])}).ok


def test_latest_read_of_a_version_saved_only_later_is_impossible():
    h = History()
    h.read("w1", 1, 0, 1)
    one = h.save("w2", 1, 2, 3)
    result = check_history(h.ops, {ACTOR: stored(one)})
    # Having shown version 1 already, the store then also accepted a save of 1.
    assert rules(result) == ["accepted-below-latest", "impossible-latest"]
    assert only(result, "impossible-latest").operations == h.ops
    h2 = History()
    h2.read("w1", 1, 0, 1)
    one = h2.save("w2", 1, 0.9, 3)
    assert check_history(h2.ops, {ACTOR: stored(one)}).ok


def test_latest_read_below_an_earlier_ack_is_stale():
    h = History()
    one = h.save("w1", 1, 0, 1)
    h.read("w2", 0, 2, 3)
    result = check_history(h.ops, {ACTOR: stored(one)})
    assert rules(result) == ["stale-latest"]
    assert "an atomic store returns at least 1" in only(result, "stale-latest").explanation
    h2 = History()
    one = h2.save("w1", 1, 0, 1)
    h2.read("w2", 0, 1, 3)  # invoked at the instant v1 was acknowledged: concurrent
    assert check_history(h2.ops, {ACTOR: stored(one)}).ok


def test_latest_going_backwards_between_reads_is_reported():
    h = History()
    one = h.save("w1", 1, 0, 1)
    two = h.save("w1", 2, 1.5, None)
    h.read("w2", 2, 20, 30)
    h.read("w3", 1, 40, 50)
    result = check_history(h.ops, {ACTOR: stored(one, two)})
    assert rules(result) == ["latest-went-backwards"]
    violation = only(result, "latest-went-backwards")
    assert [op.index for op in violation.operations] == [2, 3]
    assert "went backwards from 2 to 1" in violation.explanation
    h2 = History()
    one = h2.save("w1", 1, 0, 1)
    two = h2.save("w1", 2, 1.5, None)
    h2.read("w2", 2, 20, 30)
    h2.read("w3", 1, 25, 50)  # overlaps the first read: it may have been served before v2 landed
    assert check_history(h2.ops, {ACTOR: stored(one, two)}).ok


# ---------------------------------------------------------------------------
# rule 8: acknowledged saves


def test_save_acknowledged_below_an_earlier_ack_is_reported():
    h = History()
    two = h.save("w1", 2, 0, 1)
    one = h.save("w2", 1, 2, 3)
    result = check_history(h.ops, {ACTOR: stored(one, two)})
    assert rules(result) == ["accepted-below-latest"]
    assert "the latest version was already 2 before it was invoked" in result.explain()
    h2 = History()
    two = h2.save("w1", 2, 0, 1)
    one = h2.save("w2", 1, 0.5, 3)  # overlapping: v1 may have been applied first
    assert check_history(h2.ops, {ACTOR: stored(one, two)}).ok


def test_save_acknowledged_at_a_version_a_read_already_saw_is_reported():
    h = History()
    landed = h.save("w1", 1, 0, 1, ERROR)
    h.read("w2", 1, 2, 3)
    h.save("w3", 1, 4, 5, event_id="e-again")
    result = check_history(h.ops, {ACTOR: stored(landed)})
    assert rules(result) == ["accepted-below-latest", "lost-ack"]
    assert "(a read returned latest version 1)" in only(result, "accepted-below-latest").explanation
    assert rules(check_history(h.ops[:2], {ACTOR: stored(landed)})) == []


def test_save_of_version_zero_acknowledged_on_a_new_actor_is_reported():
    h = History()
    zero = h.save("w1", 0, 0, 1)
    result = check_history(h.ops, {ACTOR: stored(zero)})
    assert rules(result) == ["accepted-below-latest"]
    assert "a version of 0 or below is never accepted" in only(result, "accepted-below-latest").explanation
    h2 = History()
    h2.save("w1", 0, 0, 1, CONFLICT, current=0)
    assert check_history(h2.ops, {ACTOR: []}).ok


# Saves that raised or never answered, but whose event is in the final read, took effect:
# they are checked like acknowledged ones.


@pytest.mark.parametrize("outcome", [ERROR, UNKNOWN])
def test_unanswered_save_landing_below_an_earlier_ack_is_reported(outcome):
    h = History()
    three = h.save("w1", 3, 0, 1)
    two = h.save("w2", 2, 2, None if outcome == UNKNOWN else 3, outcome)  # invoked after v3 was acknowledged
    result = check_history(h.ops, {ACTOR: stored(two, three)})
    assert "accepted-below-latest" in rules(result)
    violation = only(result, "accepted-below-latest")
    assert violation.operations == [three, two]
    how = "raised an error" if outcome == ERROR else "never answered"
    assert f"took effect (its event is in the final read; the call {how})" in violation.explanation
    # Not in the final read: it never took effect, and nothing is wrong.
    assert check_history(h.ops, {ACTOR: stored(three)}).ok


@pytest.mark.parametrize("outcome", [ERROR, UNKNOWN])
def test_unanswered_save_of_version_zero_landing_on_a_new_actor_is_reported(outcome):
    h = History()
    zero = h.save("w1", 0, 0, None if outcome == UNKNOWN else 1, outcome)
    result = check_history(h.ops, {ACTOR: stored(zero)})
    assert rules(result) == ["accepted-below-latest"]
    assert "a version of 0 or below is never accepted" in result.explain()
    assert check_history(h.ops, {ACTOR: []}).ok


def test_timed_out_save_is_maybe_applied_read_back_once_or_never():
    h = History()
    one = h.save("w1", 1, 0, 1)
    timed_out = h.save("w2", 2, 2, None)
    assert check_history(h.ops, {ACTOR: stored(one)}).ok
    assert check_history(h.ops, {ACTOR: stored(one, timed_out)}).ok
    assert rules(check_history(h.ops, {ACTOR: stored(one, timed_out, timed_out)})) == ["duplicate-event"]


def test_an_events_read_is_checked_like_a_latest_read():
    h = History()
    one, two = h.save("w1", 1, 0, 1), h.save("w1", 2, 2, 3)
    h._add(writer="r1", kind=EVENTS, actor_id=ACTOR, invoke_ns=at(4), complete_ns=at(5), outcome=OK, version=1)
    result = check_history(h.ops, {ACTOR: stored(one, two)})
    assert rules(result) == ["stale-latest"]
    assert "#2 r1 read events up to = 1" in result.explain()
    h2 = History()
    h2._add(writer="r1", kind=EVENTS, actor_id=ACTOR, invoke_ns=at(0), complete_ns=at(1), outcome=OK, version=4)
    assert rules(check_history(h2.ops, {ACTOR: []})) == ["impossible-latest"]
    assert to_jepsen(h2.ops)[1]["f"] == "read-events"


def test_violations_are_ordered_by_time_across_actors():
    h = History()
    h.read("w1", 9, 10, 11, actor="late")
    h.read("w1", 9, 0, 1, actor="early")
    result = check_history(h.ops, {})
    assert [v.actor_id for v in result.violations] == ["early", "late"]
    assert result.explain().endswith("(and 1 more)")


# ---------------------------------------------------------------------------
# records


def test_operation_records_name_the_field_and_the_rule():
    base = dict(index=0, writer="w", kind=SAVE, actor_id=ACTOR, invoke_ns=1, complete_ns=2,
                outcome=OK, version=1, event_id="e", digest="d")
    assert Operation.from_dict(base).to_dict() == {**base, "current_version": None, "detail": ""}
    with pytest.raises(ValueError, match=r"Operation #0.current_version: a conflict must carry"):
        Operation.from_dict({**base, "outcome": CONFLICT})
    with pytest.raises(ValueError, match=r"Operation #0.complete_ns: must be None when the outcome is unknown"):
        Operation.from_dict({**base, "outcome": UNKNOWN})
    with pytest.raises(ValueError, match=r"Operation #0.complete_ns: must not be before invoke_ns"):
        Operation.from_dict({**base, "complete_ns": 0})
    with pytest.raises(ValueError, match=r"Operation #0.outcome: only a save can end in a version conflict"):
        Operation.from_dict({**base, "kind": LATEST, "event_id": None, "digest": None,
                             "outcome": CONFLICT, "current_version": 1})
    with pytest.raises(ValueError, match=r"missing field\(s\) complete_ns"):
        Operation.from_dict({k: v for k, v in base.items() if k != "complete_ns"})
    with pytest.raises(ValueError, match=r"unknown field\(s\) colour"):
        Operation.from_dict({**base, "colour": "red"})


def test_history_round_trips_through_json():
    h = History()
    h.save("w1", 1, 0, 1)
    h.save("w2", 1, 0.5, 2, CONFLICT, current=1)
    h.save("w3", 2, 3, 4, ERROR)
    h.save("w4", 2, 3.5, None)
    h.read("w5", 1, 5, 6)
    text = json.dumps(history_to_json(h.ops))
    assert history_from_json(json.loads(text)) == h.ops
    with pytest.raises(TypeError, match="must be a list of operation records"):
        history_from_json({"ops": []})


def test_jepsen_export_pairs_each_invoke_with_its_completion():
    h = History()
    h.save("w1", 1, 0, 2)
    h.save("w2", 1, 1, 2, CONFLICT, current=1)  # completes at the same instant as #0
    h.read("w3", 1, 2, 3)  # invoked at that instant: must stay concurrent
    h.save("w4", 2, 4, 5, ERROR)
    h.save("w5", 3, 4.5, None)
    entries = to_jepsen(h.ops)
    assert len(entries) == 2 * len(h.ops)
    assert [e["index"] for e in entries] == list(range(len(entries)))
    assert [e["time"] for e in entries] == sorted(e["time"] for e in entries)
    assert entries[0] == {"index": 0, "time": 0, "process": "w1", "type": "invoke", "f": "append",
                          "value": {"actor": ACTOR, "version": 1, "event_id": "e-0"}}
    by_process = {}
    for entry in entries:
        by_process.setdefault(entry["process"], []).append(entry)
    assert {p: [e["type"] for e in es] for p, es in by_process.items()} == {
        "w1": ["invoke", "ok"], "w2": ["invoke", "fail"], "w3": ["invoke", "ok"],
        "w4": ["invoke", "info"], "w5": ["invoke", "info"],
    }
    assert by_process["w2"][1]["value"]["current_version"] == 1
    assert by_process["w3"][0]["value"] == {"actor": ACTOR, "version": None}
    assert by_process["w3"][1]["value"] == {"actor": ACTOR, "version": 1}
    assert by_process["w4"][1]["error"] == "TimeoutError: no answer in 5s"
    assert entries[-1]["process"] == "w5" and entries[-1]["error"] == "no response"
    position = {(e["process"], e["type"]): e["index"] for e in entries}
    assert position[("w3", "invoke")] < position[("w1", "ok")]


# ---------------------------------------------------------------------------
# the recorder


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000

    def __call__(self) -> int:
        self.now += 10
        return self.now


def test_recorder_records_outcomes_and_reports_pending_as_unknown():
    recorder = HistoryRecorder(clock=FakeClock())
    read = recorder.invoke("w1", LATEST, ACTOR)
    save = recorder.invoke("w1", SAVE, ACTOR, version=1, event_id="e-1", digest="d")
    lost = recorder.invoke("w2", SAVE, ACTOR, version=1, event_id="e-2", digest="d")
    rejected = recorder.invoke("w3", SAVE, ACTOR, version=1, event_id="e-3", digest="d")
    broken = recorder.invoke("w4", LATEST, ACTOR)
    assert read.ok(0).version == 0
    save.ok()
    rejected.conflict(1)
    broken.error(OSError("connection reset"))
    ops = recorder.operations()
    assert [(op.index, op.outcome) for op in ops] == [(0, OK), (1, OK), (2, UNKNOWN), (3, CONFLICT), (4, ERROR)]
    assert [op.invoke_ns for op in ops] == [1010, 1020, 1030, 1040, 1050]
    assert ops[0].complete_ns == 1060 and ops[2].complete_ns is None
    assert ops[3].current_version == 1 and ops[4].detail == "OSError: connection reset"
    with pytest.raises(RuntimeError, match="operation #1 was already completed"):
        save.conflict(1)
    with pytest.raises(ValueError, match="ok\\(version=...\\) is for latest reads"):
        lost.ok(1)
    with pytest.raises(ValueError, match="a successful read must carry the returned version"):
        recorder.invoke("w1", LATEST, ACTOR).ok()
    with pytest.raises(TypeError, match="unexpected field\\(s\\) current_version"):
        recorder.invoke("w1", SAVE, ACTOR, version=1, event_id="e", digest="d", current_version=3)
    with pytest.raises(ValueError, match="a save must carry the event's event_id"):
        recorder.invoke("w1", SAVE, ACTOR, version=1, digest="d")
    assert recorder.operations()[2].outcome == UNKNOWN  # the refused ok() left it pending


def test_recorder_merges_child_records_and_reindexes_them():
    recorder = HistoryRecorder(clock=FakeClock())
    recorder.invoke("parent", LATEST, ACTOR).ok(0)
    child = HistoryRecorder(clock=FakeClock())
    child.invoke("proc-1/thread-0", SAVE, ACTOR, version=1, event_id="e-1", digest="d").ok()
    child.invoke("proc-1/thread-0", LATEST, ACTOR)
    recorder.extend(op.to_dict() for op in child.operations())
    recorder.extend([child.operations()[0]])
    ops = recorder.operations()
    assert [op.index for op in ops] == [0, 1, 2, 3]
    assert [(op.writer, op.kind, op.outcome) for op in ops[1:]] == [
        ("proc-1/thread-0", SAVE, OK), ("proc-1/thread-0", LATEST, UNKNOWN), ("proc-1/thread-0", SAVE, OK),
    ]
    with pytest.raises(ValueError, match="Operation #1.kind: must be one of save, latest"):
        recorder.extend([{**ops[1].to_dict(), "kind": "delete"}])
    assert len(recorder.operations()) == 4  # a bad batch merges nothing


def _record_in_child(queue) -> None:
    recorder = HistoryRecorder()
    recorder.invoke("proc-1/thread-0", SAVE, ACTOR, version=1, event_id="e-child", digest="d").ok()
    queue.put(history_to_json(recorder.operations()))


def test_records_from_a_child_process_merge_on_one_clock():
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    recorder = HistoryRecorder()
    recorder.invoke("parent", LATEST, ACTOR).ok(0)
    before = time.monotonic_ns()
    child = context.Process(target=_record_in_child, args=(queue,))
    child.start()
    records = queue.get(timeout=30)
    child.join(timeout=30)
    after = time.monotonic_ns()
    recorder.extend(records)
    parent_op, child_op = recorder.operations()
    assert child_op.index == 1 and child_op.event_id == "e-child"
    # CLOCK_MONOTONIC is system-wide on Linux: the child's times fall inside the parent's window.
    assert before <= child_op.invoke_ns <= child_op.complete_ns <= after


def test_recorder_is_thread_safe():
    recorder = HistoryRecorder()
    threads, per_thread = 8, 300
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        start.wait()
        for i in range(per_thread):
            recorder.invoke(f"thread-{n}", LATEST, f"a-{i % 3}").ok(i)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    ops = recorder.operations()
    assert [op.index for op in ops] == list(range(threads * per_thread))
    assert all(op.outcome == OK for op in ops)
    # Index and invoke time are taken under one lock, so recording order is invoke order.
    assert [op.invoke_ns for op in ops] == sorted(op.invoke_ns for op in ops)
    for n in range(threads):
        assert [op.version for op in ops if op.writer == f"thread-{n}"] == list(range(per_thread))


def _digest(event: Event) -> str:
    return f"sha:{event.id}:{json.dumps(event.data, sort_keys=True)}"


def race(store, recorder: HistoryRecorder, writer: str, actor: str, saves: int, start: threading.Barrier) -> None:
    """The suite's writer loop: read latest, save latest+1, retry on conflict."""
    start.wait()
    for n in range(saves):
        while True:
            pending = recorder.invoke(writer, LATEST, actor)
            latest = store.get_latest_version(actor)
            pending.ok(latest)
            event = Event(f"{writer}-{n}-v{latest + 1}", "Counted", actor, latest + 1, {"n": n},
                          datetime.now(timezone.utc))
            pending = recorder.invoke(writer, SAVE, actor, version=event.version, event_id=event.id,
                                      digest=_digest(event))
            try:
                store.save_event(event)
            except VersionConflictError as error:
                pending.conflict(error.current_version)
                continue
            pending.ok()
            break


def run_race(store, writers: int = 4, saves: int = 25) -> CheckResult:
    recorder = HistoryRecorder()
    start = threading.Barrier(writers)
    pool = [threading.Thread(target=race, args=(store, recorder, f"thread-{n}", ACTOR, saves, start))
            for n in range(writers)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    final = [StoredEvent(e.version, e.id, _digest(e)) for e in store.get_events(ACTOR, 0)]
    assert len(final) == writers * saves
    return check_history(recorder.operations(), {ACTOR: final})


class CheckThenWriteStore:
    """Checks the latest version, then appends, with nothing holding the two together.

    The first two saves meet at a barrier between check and append, so the
    race that an atomic store's lock prevents is certain to happen once.
    """

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._race = threading.Barrier(2)
        self._saves = 0
        self._lock = threading.Lock()  # guards the counter only, never check-and-append

    def get_latest_version(self, actor_id: str) -> int:
        return max((e.version for e in self._events if e.actor_id == actor_id), default=0)

    def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        return [e for e in self._events if e.actor_id == actor_id and e.version >= from_version]

    def save_event(self, event: Event) -> None:
        latest = self.get_latest_version(event.actor_id)
        if event.version <= latest:
            raise VersionConflictError(actor_id=event.actor_id, attempted_version=event.version,
                                       current_version=latest)
        with self._lock:
            self._saves += 1
            first_two = self._saves <= 2
        if first_two:
            self._race.wait()
        self._events.append(event)


def test_threads_racing_on_the_reference_store_give_a_valid_history():
    result = run_race(InMemoryEventStore())
    assert result.ok, result.explain()


def test_threads_racing_on_a_check_then_write_store_are_caught():
    result = run_race(CheckThenWriteStore(), writers=2, saves=5)
    assert "duplicate-winner" in rules(result)
    assert result.explain().startswith("two saves of version 1 to actor \"a-1\" both succeeded")


# ---------------------------------------------------------------------------
# simulated stores under random schedules
#
# Each writer is a generator that yields between the steps of its calls: the
# invoke, the instant the store acts, and the completion.  The scheduler picks
# which writer moves next and how far the clock advances (0 included, so
# timestamps often touch).  Invoke and completion are recorded with a
# HistoryRecorder reading the simulated clock.


class SimClock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def run_schedule(data, clock: SimClock, writers: list) -> None:
    alive = list(writers)
    while alive:
        turn = data.draw(st.integers(0, len(alive) - 1), label="turn")
        clock.now += data.draw(st.integers(0, 2), label="tick")
        try:
            next(alive[turn])
        except StopIteration:
            alive.pop(turn)


class AtomicStore:
    """Checks and appends in one step, as a correct store does."""

    def __init__(self) -> None:
        self.streams: dict[str, list[StoredEvent]] = {}

    def latest(self, actor: str) -> int:
        stream = self.streams.get(actor)
        return stream[-1].version if stream else 0

    def save(self, actor: str, version: int, event_id: str) -> int | None:
        """None when appended, else the current version that rejects it."""
        latest = self.latest(actor)
        if version <= latest:
            return latest
        self.streams.setdefault(actor, []).append(StoredEvent(version, event_id, f"sha:{event_id}"))
        return None


FATES = ["answer"] * 5 + ["error-after", "error-before", "lost-after", "lost-before"]


def atomic_writer(data, name: str, recorder: HistoryRecorder, store: AtomicStore, actors: list[str]):
    """A writer that mixes reads, fresh, stale and skipping saves, retries, errors and lost answers."""
    known = dict.fromkeys(actors, 0)
    retry = None  # an errored save, which may be retried as it was
    for n in range(data.draw(st.integers(1, 4), label="calls")):
        actor = data.draw(st.sampled_from(actors), label="actor")
        fate = data.draw(st.sampled_from(FATES), label="fate")
        applied = not fate.endswith("before")
        if data.draw(st.booleans(), label="read?"):
            pending = recorder.invoke(name, LATEST, actor)
            yield
            if applied:
                value = store.latest(actor)
                yield
            if fate != "answer":
                if fate.startswith("lost"):
                    return  # the call never returns; this writer is stuck in it
                pending.error("TimeoutError")
                continue
            pending.ok(value)
            known[actor] = value
            continue
        if retry is not None and data.draw(st.booleans(), label="retry as is?"):
            actor, version, event_id = retry
        else:
            version = known[actor] + data.draw(st.sampled_from([1, 1, 1, 0, 2, -1]), label="step")
            event_id = f"{name}-{n}"
        pending = recorder.invoke(name, SAVE, actor, version=version, event_id=event_id, digest=f"sha:{event_id}")
        yield
        current = None
        if applied:
            current = store.save(actor, version, event_id)
            yield
        if fate.startswith("lost"):
            return
        if fate.startswith("error"):
            pending.error("TimeoutError")
            retry = (actor, version, event_id)
        elif current is None:
            pending.ok()
            known[actor] = version
        else:
            pending.conflict(current)
            known[actor] = current


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_histories_of_an_atomic_store_always_pass(data):
    clock, store = SimClock(), AtomicStore()
    recorder = HistoryRecorder(clock=clock)
    actors = ["a-1", "a-2"][: data.draw(st.integers(1, 2), label="actors")]
    writers = [atomic_writer(data, f"w{n}", recorder, store, actors)
               for n in range(data.draw(st.integers(1, 4), label="writers"))]
    run_schedule(data, clock, writers)
    ops = recorder.operations()
    finals = {actor: list(store.streams.get(actor, [])) for actor in actors}
    result = check_history(ops, finals)
    assert result.ok, result.explain()

    # Losing any acknowledged event is then always caught, and blamed on its save.
    acked = [op for op in ops if op.kind == SAVE and op.outcome == OK]
    if acked:
        victim = data.draw(st.sampled_from(acked), label="victim")
        finals[victim.actor_id] = [e for e in finals[victim.actor_id] if e.event_id != victim.event_id]
        lost = [v for v in check_history(ops, finals).violations if v.rule == "lost-ack"]
        assert [v.operations for v in lost] == [[victim]]


class CheckThenWriteSim:
    """Checks at one step and writes at a later one; a write overwrites a version already there."""

    def __init__(self) -> None:
        self.events: dict[int, str] = {}
        self.lost_race = False

    def latest(self) -> int:
        return max(self.events, default=0)


def racing_writer(data, name: str, recorder: HistoryRecorder, store: CheckThenWriteSim):
    """The suite's loop: read latest, save latest+1, retry on conflict (a few times)."""
    for n in range(data.draw(st.integers(1, 2), label="saves")):
        for attempt in range(3):
            pending = recorder.invoke(name, LATEST, ACTOR)
            yield
            latest = store.latest()
            yield
            pending.ok(latest)
            version, event_id = latest + 1, f"{name}-{n}-{attempt}"
            pending = recorder.invoke(name, SAVE, ACTOR, version=version, event_id=event_id, digest=f"sha:{event_id}")
            yield
            current = store.latest()
            yield
            if version <= current:
                pending.conflict(current)
                continue
            if version in store.events:
                store.lost_race = True  # an atomic store would have refused this write
            store.events[version] = event_id
            yield
            pending.ok()
            break


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_check_then_write_histories_fail_exactly_when_a_race_was_lost(data):
    clock, store = SimClock(), CheckThenWriteSim()
    recorder = HistoryRecorder(clock=clock)
    writers = [racing_writer(data, f"w{n}", recorder, store) for n in range(data.draw(st.integers(2, 4)))]
    run_schedule(data, clock, writers)
    final = [StoredEvent(v, event_id, f"sha:{event_id}") for v, event_id in sorted(store.events.items())]
    result = check_history(recorder.operations(), {ACTOR: final})
    event("race lost" if store.lost_race else "no race lost")
    # Writers save latest+1, so versions stay contiguous and a lost race always
    # overwrites an acknowledged version: two winners, one of them lost.  With
    # no race lost, each call acted atomically at one instant and the history
    # is linearizable, so the checker must accept it.
    if store.lost_race:
        assert {"duplicate-winner", "lost-ack"} <= set(rules(result))
    else:
        assert result.ok, result.explain()


class AtTheTopOfInt64:
    """Says every actor is at version 2^63-1 (a counter shared with an actor the boundary tests
    filled), and refuses every save."""

    def save_event(self, event):
        from aether_conformance import VersionConflictError

        raise VersionConflictError(actor_id=event.actor_id, attempted_version=event.version,
                                   current_version=2**63 - 1)

    def get_events(self, actor_id, from_version):
        return []

    def get_latest_version(self, actor_id):
        return 2**63 - 1


def test_writers_facing_a_latest_at_the_top_of_int64_record_it_instead_of_crashing():
    # Writers add 1 to the latest they read; above 2^63-1 there is no event to build.  They sit the
    # round out, no thread dies, and the checker flags the latest no save produced.
    from aether_conformance.driver import StoreDriver
    from aether_conformance.history import stored_events
    from aether_conformance.writers import draw_plan, run_writers

    handle = StoreDriver("tests.test_history:AtTheTopOfInt64", timeout=5).new_handle()
    plan = draw_plan("top", "run", writers=3, rounds=5, seed=1)
    recorder = HistoryRecorder()
    died = []
    previous_hook, threading.excepthook = threading.excepthook, died.append
    try:
        run_writers([handle], plan, recorder, call_timeout=5)
    finally:
        threading.excepthook = previous_hook
    assert not died, died
    result = check_history(recorder.operations(), {"top": stored_events(handle.get_events("top", 0))})
    assert not result.ok and "9223372036854775807" in result.explain()


def test_racing_writers_interleave_finely_and_the_last_out_restores_the_switch_interval():
    import sys

    from aether_conformance.writers import RACE_SWITCH_INTERVAL, racing

    before = sys.getswitchinterval()
    first, second = racing(), racing()
    first.__enter__()
    assert sys.getswitchinterval() == pytest.approx(RACE_SWITCH_INTERVAL)
    second.__enter__()  # a fault run's watchers race beside its writers
    first.__exit__(None, None, None)
    assert sys.getswitchinterval() == pytest.approx(RACE_SWITCH_INTERVAL)  # the other run is still racing
    second.__exit__(None, None, None)
    assert sys.getswitchinterval() == before


# --- reads made during a run (check_event_reads) --------------------------------------------------

STAMP = datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)


def stream_event(version: int, **changes) -> Event:
    fields = dict(id=f"e{version}", event_type="Appended", actor_id="a", version=version,
                  data={"n": version, "half": version / 2}, timestamp=STAMP)
    return Event(**{**fields, **changes})


FINAL = {"a": stored_events([stream_event(v) for v in (1, 2, 3)])}


def events_read(*events: Event, from_version: int = 1, required: int = 0) -> EventsRead:
    return EventsRead("r0", "a", from_version, required, tuple((e.version, e.id) for e in events), 0, 1, events)


def read_rules(*reads: EventsRead) -> list[str]:
    return [v.rule for v in check_event_reads(reads, FINAL)]


def test_reads_of_a_prefix_of_the_final_stream_are_valid():
    assert read_rules(events_read(stream_event(1), stream_event(2)), events_read(stream_event(3), from_version=3)) == []


def test_a_read_returning_an_event_torn_from_its_payload_is_reported():
    torn = events_read(stream_event(1), stream_event(2, data=None))
    (violation,) = check_event_reads([torn], FINAL)
    assert violation.rule == "read-torn"
    assert "event e2 at version 2" in violation.explanation and "data None" in violation.explanation


@pytest.mark.parametrize("change", [dict(event_type="Other"), dict(command_id="c"),
                                    dict(timestamp=datetime(2024, 1, 2, 3, 4, 6, tzinfo=timezone.utc))])
def test_every_field_of_a_read_is_compared(change):
    assert read_rules(events_read(stream_event(1, **change))) == ["read-torn"]


def test_contents_are_compared_as_go_sees_json():
    # What a Go store returns for {"n": 2}: a float64; and a read that copies the event is not torn.
    assert read_rules(events_read(stream_event(2, data={"n": 2.0, "half": 1}), from_version=2)) == []
    assert read_rules(events_read(stream_event(2, data={"n": True, "half": 1.0}), from_version=2)) == ["read-torn"]


def test_a_read_out_of_order_is_reported():
    assert read_rules(events_read(stream_event(2), stream_event(1))) == ["read-out-of-order"]


def test_a_read_returning_a_version_below_its_from_version_is_reported():
    assert read_rules(events_read(stream_event(1), stream_event(2), from_version=2)) == ["read-below-from"]


def test_a_read_without_a_latest_the_reader_saw_is_reported():
    assert read_rules(events_read(stream_event(1), required=2)) == ["read-lost-latest"]


def test_a_read_of_an_event_the_final_read_lacks_is_reported():
    assert read_rules(events_read(stream_event(3), stream_event(4), from_version=3)) == ["read-vanished"]


def test_an_event_appearing_below_what_a_read_showed_is_reported():
    assert read_rules(events_read(stream_event(1), stream_event(3))) == ["event-below-latest-appeared"]
