"""Direct unit tests of the in-memory reference store (reference_store/memory.py).

These drive the store's methods themselves, not through the conformance
suite, so a regression in the reference store shows up here with a plain
traceback rather than as a failed requirement.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections import Counter, OrderedDict
from datetime import datetime, timezone

import pytest

from aether_conformance import ActorSnapshot, Event, Timestamp, VersionConflictError, json_equal
from aether_conformance.limits import MAX_NESTING_DEPTH
from reference_store.memory import InMemoryEventStore, shared_store

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def event(actor: str, version: int, data: dict | None = None, *, event_id: str | None = None) -> Event:
    return Event(
        id=event_id if event_id is not None else f"{actor}-{version}",
        event_type="Deposited",
        actor_id=actor,
        version=version,
        data={"amount": version} if data is None else data,
        timestamp=T0,
    )


def snapshot(actor: str, version: int, state: dict | None) -> ActorSnapshot:
    return ActorSnapshot(actor_id=actor, version=version, state=state, timestamp=T0)


def versions(store: InMemoryEventStore, actor: str, from_version: int = 0) -> list[int]:
    return [e.version for e in store.get_events(actor, from_version)]


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore()


# --- saving -----------------------------------------------------------------


def test_first_version_one_is_saved_and_read_back_equal(store):
    saved = Event(
        id="e1", event_type="Opened", actor_id="acct", version=1,
        data={"owner": "Zoë", "limits": {"daily": 100, "tags": ["a", None, 1.5]}},
        timestamp=Timestamp.parse("2024-05-01T12:00:00.123456789+02:00"), command_id="cmd-1",
    )
    store.save_event(saved)
    assert store.get_events("acct", 0) == [saved]
    assert store.get_latest_version("acct") == 1


def test_gaps_between_versions_are_accepted(store):
    for v in (2, 5, 6, 40):
        store.save_event(event("a", v))
    assert versions(store, "a") == [2, 5, 6, 40]
    assert store.get_latest_version("a") == 40


def test_int64_max_version_is_accepted_and_then_everything_conflicts(store):
    top = 2**63 - 1
    store.save_event(event("a", top))
    assert store.get_latest_version("a") == top
    with pytest.raises(VersionConflictError) as info:
        store.save_event(event("a", top, event_id="again"))
    assert info.value.current_version == top


@pytest.mark.parametrize("attempted", [3, 2, 1, 0, -1, -(2**63)])
def test_equal_or_lower_version_conflicts_with_fields_and_go_text(store, attempted):
    for v in (1, 3):
        store.save_event(event("acct-7", v))
    with pytest.raises(VersionConflictError) as info:
        store.save_event(event("acct-7", attempted, event_id="late"))
    error = info.value
    assert (error.actor_id, error.attempted_version, error.current_version) == ("acct-7", attempted, 3)
    assert str(error) == f'version conflict: actor "acct-7" has version 3, cannot save version {attempted}'


@pytest.mark.parametrize("attempted", [0, -5])
def test_zero_and_negative_versions_conflict_on_a_new_actor(store, attempted):
    with pytest.raises(VersionConflictError) as info:
        store.save_event(event("fresh", attempted))
    error = info.value
    assert (error.actor_id, error.attempted_version, error.current_version) == ("fresh", attempted, 0)
    assert str(error) == f'version conflict: actor "fresh" has version 0, cannot save version {attempted}'
    # The failed first save must not have created the actor.
    assert store.get_events("fresh", 0) == []
    assert store.get_latest_version("fresh") == 0


def test_conflict_text_quotes_the_actor_id_as_go_does(store):
    actor = 'odd "id"\n\tµ'
    store.save_event(event(actor, 1))
    with pytest.raises(VersionConflictError) as info:
        store.save_event(event(actor, 1, event_id="dup"))
    assert str(info.value) == 'version conflict: actor "odd \\"id\\"\\n\\tµ" has version 1, cannot save version 1'


def test_rejected_save_leaves_no_trace(store):
    for v in (1, 2, 4):
        store.save_event(event("a", v))
    before = store.get_events("a", 0)
    for bad in (4, 3, 0):
        with pytest.raises(VersionConflictError):
            store.save_event(event("a", bad, {"intruder": True}, event_id=f"bad-{bad}"))
    assert store.get_events("a", 0) == before
    assert store.get_latest_version("a") == 4
    # The next valid save still follows the real latest version, not a rejected one.
    store.save_event(event("a", 5))
    assert versions(store, "a") == [1, 2, 4, 5]


def test_actors_are_independent(store):
    store.save_event(event("a", 1))
    store.save_event(event("a", 2))
    store.save_event(event("b", 1))  # would conflict if versions were shared across actors
    assert versions(store, "a") == [1, 2]
    assert versions(store, "b") == [1]
    assert store.get_latest_version("b") == 1


def test_non_event_is_refused_with_a_type_error_and_nothing_stored(store):
    with pytest.raises(TypeError, match="save_event expects an Event, got dict"):
        store.save_event({"actor_id": "a", "version": 1})  # type: ignore[arg-type]
    assert store.get_latest_version("a") == 0


# --- reading ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("from_version", "expected"),
    [
        (-(2**63), [2, 5, 9, 10]),  # far below the first
        (0, [2, 5, 9, 10]),
        (1, [2, 5, 9, 10]),  # below the first
        (2, [2, 5, 9, 10]),  # inclusive of an exact match
        (3, [5, 9, 10]),  # between versions: starts at the next one up
        (5, [5, 9, 10]),
        (6, [9, 10]),
        (10, [10]),  # exactly the last
        (11, []),  # above the last
        (2**63 - 1, []),
    ],
)
def test_get_events_is_inclusive_and_bisects_correctly_across_gaps(store, from_version, expected):
    for v in (2, 5, 9, 10):
        store.save_event(event("a", v))
    got = store.get_events("a", from_version)
    assert [e.version for e in got] == expected
    assert [e.id for e in got] == [f"a-{v}" for v in expected]


def test_unknown_actor_reads_as_empty_list_and_latest_zero(store):
    store.save_event(event("known", 1))
    result = store.get_events("unknown", 0)
    assert result == [] and isinstance(result, list)
    latest = store.get_latest_version("unknown")
    assert latest == 0 and type(latest) is int


def test_reads_do_not_create_actors(store):
    store.get_events("ghost", 0)
    store.get_latest_version("ghost")
    store.get_latest_snapshot("ghost")
    # A first save at version 0 must still conflict with current 0, not with some placeholder.
    with pytest.raises(VersionConflictError) as info:
        store.save_event(event("ghost", 0))
    assert info.value.current_version == 0


# --- isolation --------------------------------------------------------------


def _unpicklable_data() -> dict:
    class Box:  # a local class: pickle refuses it, copy.deepcopy does not
        def __init__(self, items: list) -> None:
            self.items = items

        def __eq__(self, other: object) -> bool:
            return type(other).__name__ == "Box" and other.items == self.items

    return {"box": Box([1, {"k": "v"}])}


# Each shape takes a different path through the store's copying; each factory call
# builds a fresh, equal value, so one copy can be vandalised and another compared.
DATA_SHAPES = {
    "flat": lambda: {"amount": 1, "rate": 0.5, "ok": True, "none": None, "note": "Zoë"},
    "nested": lambda: {
        "lines": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1.0}],
        "meta": {"tags": ["x", "\u00e9 \U0010ffff", "🎉"], "empty": {}},
        "big": 2**70,
    },
    "dict subclass": lambda: OrderedDict([("b", 1), ("a", 2)]),
    "unpicklable": _unpicklable_data,
}


def vandalise(value: object) -> None:
    """Mutate every container reachable from ``value``, all the way down."""
    if isinstance(value, dict):
        for item in list(value.values()):
            vandalise(item)
        value["vandal"] = True
    elif isinstance(value, list):
        for item in value:
            vandalise(item)
        value.append("vandal")
    elif hasattr(value, "__dict__"):
        for item in list(vars(value).values()):
            vandalise(item)
        value.vandal = True


@pytest.mark.parametrize("shape", DATA_SHAPES)
def test_data_round_trips_with_its_types(store, shape):
    store.save_event(event("a", 1, DATA_SHAPES[shape]()))
    expected = DATA_SHAPES[shape]()
    got = store.get_events("a", 0)[0].data
    assert got == expected
    assert type(got) is type(expected)
    assert list(got) == list(expected)  # key order survives too
    # By name: each factory call of the unpicklable shape defines its own Box class.
    assert [type(v).__qualname__ for v in got.values()] == [type(v).__qualname__ for v in expected.values()]


@pytest.mark.parametrize("shape", DATA_SHAPES)
def test_mutating_the_saved_events_data_does_not_change_the_store(store, shape):
    data = DATA_SHAPES[shape]()
    store.save_event(event("a", 1, data))
    vandalise(data)
    assert store.get_events("a", 0)[0].data == DATA_SHAPES[shape]()


@pytest.mark.parametrize("shape", DATA_SHAPES)
def test_mutating_a_returned_events_data_does_not_change_the_store(store, shape):
    store.save_event(event("a", 1, DATA_SHAPES[shape]()))
    vandalise(store.get_events("a", 0)[0].data)
    assert store.get_events("a", 0)[0].data == DATA_SHAPES[shape]()


def test_null_and_empty_data_stay_distinct(store):
    store.save_event(Event(id="n", event_type="T", actor_id="a", version=1, data=None, timestamp=T0))
    store.save_event(Event(id="e", event_type="T", actor_id="a", version=2, data={}, timestamp=T0))
    assert [e.data for e in store.get_events("a", 0)] == [None, {}]


# --- snapshots --------------------------------------------------------------


def test_no_snapshot_is_none(store):
    store.save_snapshot(snapshot("other", 3, {}))
    store.save_event(event("a", 1))
    assert store.get_latest_snapshot("a") is None
    assert store.get_latest_snapshot("never-seen") is None


@pytest.mark.parametrize("order", [(1, 5, 3), (5, 3, 1), (3, 1, 5)])
def test_highest_snapshot_version_wins_whatever_the_write_order(store, order):
    for v in order:
        store.save_snapshot(snapshot("a", v, {"at": v}))
    latest = store.get_latest_snapshot("a")
    assert (latest.version, latest.state) == (5, {"at": 5})


def test_first_written_snapshot_wins_a_version_tie_as_in_the_go_seed(store):
    # The seed replaces only when the new version is strictly greater.
    store.save_snapshot(snapshot("a", 4, {"written": "first"}))
    store.save_snapshot(snapshot("a", 4, {"written": "second"}))
    store.save_snapshot(snapshot("a", 2, {"written": "lower"}))
    assert store.get_latest_snapshot("a").state == {"written": "first"}


def test_snapshot_round_trips_and_is_isolated_from_callers(store):
    state = {"balance": 10, "history": [1, 2]}
    saved = ActorSnapshot(
        actor_id="a", version=7, state=state, timestamp=Timestamp.parse("2024-05-01T12:00:00.000000001-07:30")
    )
    store.save_snapshot(saved)
    state["history"].append(3)
    got = store.get_latest_snapshot("a")
    assert got == ActorSnapshot(actor_id="a", version=7, state={"balance": 10, "history": [1, 2]},
                                timestamp=saved.timestamp)
    assert got.timestamp.nanosecond == 1
    got.state["balance"] = 0
    assert store.get_latest_snapshot("a").state == {"balance": 10, "history": [1, 2]}


def test_null_snapshot_state_round_trips(store):
    store.save_snapshot(snapshot("a", 1, None))
    assert store.get_latest_snapshot("a").state is None


def test_snapshots_change_neither_events_nor_latest_versions(store):
    store.save_event(event("a", 2))
    store.save_snapshot(snapshot("a", 9, {}))  # ahead of the events: the seed accepts it
    assert versions(store, "a") == [2]
    assert store.get_latest_version("a") == 2
    store.save_event(event("a", 3))  # the snapshot's version does not raise the conflict bar


def test_non_snapshot_is_refused_with_a_type_error(store):
    with pytest.raises(TypeError, match="save_snapshot expects an ActorSnapshot, got Event"):
        store.save_snapshot(event("a", 1))  # type: ignore[arg-type]
    assert store.get_latest_snapshot("a") is None


# --- the shared factory -----------------------------------------------------


def test_shared_store_handles_share_events_conflicts_and_snapshots():
    # shared_store() is process-wide, so a fresh actor id keeps this test apart from others.
    actor = f"shared-{uuid.uuid4()}"
    first, second = shared_store(), shared_store()
    first.save_event(event(actor, 1))
    assert versions(second, actor) == [1]
    assert second.get_latest_version(actor) == 1
    with pytest.raises(VersionConflictError) as info:
        second.save_event(event(actor, 1, event_id="other"))
    assert info.value.current_version == 1
    second.save_snapshot(snapshot(actor, 1, {"s": 1}))
    assert first.get_latest_snapshot(actor).state == {"s": 1}


def test_separate_instances_do_not_share(store):
    store.save_event(event("a", 1))
    assert InMemoryEventStore().get_latest_version("a") == 0


# --- concurrency ------------------------------------------------------------


@pytest.fixture
def frequent_thread_switches():
    # The default 5 ms switch interval lets a thread finish many saves uncontested;
    # switching far more often makes writers actually interleave.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


def run_threads(count: int, target) -> None:
    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            target(index)
        except BaseException as error:  # re-raised below: a dead thread must fail the test
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "writer threads did not finish"
    if errors:
        raise errors[0]


def test_concurrent_read_latest_then_save_retry_loops_produce_one_gapless_stream(store, frequent_thread_switches):
    writers, successes_each = 8, 40
    actor = "contended"
    barrier = threading.Barrier(writers)
    won: list[list[str]] = [[] for _ in range(writers)]
    conflicts: list[list[VersionConflictError]] = [[] for _ in range(writers)]

    def writer(index: int) -> None:
        barrier.wait()
        while len(won[index]) < successes_each:
            attempt = store.get_latest_version(actor) + 1
            event_id = f"w{index}-{len(won[index])}"
            try:
                store.save_event(event(actor, attempt, {"writer": index}, event_id=event_id))
            except VersionConflictError as error:
                conflicts[index].append(error)
            else:
                won[index].append(event_id)

    run_threads(writers, writer)

    stream = store.get_events(actor, 0)
    total = writers * successes_each
    assert [e.version for e in stream] == list(range(1, total + 1))
    ids = Counter(e.id for e in stream)
    assert all(n == 1 for n in ids.values())
    assert set(ids) == {event_id for ids_of_writer in won for event_id in ids_of_writer}
    # Each stored event carries its own writer's data, not another attempt's.
    assert all(e.data == {"writer": int(e.id[1:].split("-")[0])} for e in stream)
    assert store.get_latest_version(actor) == total
    for error in (error for errors in conflicts for error in errors):
        assert error.actor_id == actor
        assert error.current_version >= error.attempted_version


def test_concurrent_saves_of_the_same_version_have_exactly_one_winner(store, frequent_thread_switches):
    writers, rounds = 8, 60
    actor = "same-version"
    barrier = threading.Barrier(writers)
    winners: list[list[int]] = [[] for _ in range(writers)]
    losers: list[list[VersionConflictError]] = [[] for _ in range(writers)]

    def writer(index: int) -> None:
        for version in range(1, rounds + 1):
            # Everyone offers the same version at once; the barrier also keeps any
            # thread from moving on to version+1 before all have tried version.
            barrier.wait()
            try:
                store.save_event(event(actor, version, {"writer": index}, event_id=f"w{index}-v{version}"))
            except VersionConflictError as error:
                losers[index].append(error)
            else:
                winners[index].append(version)

    run_threads(writers, writer)

    won_versions = Counter(v for versions_of_writer in winners for v in versions_of_writer)
    assert won_versions == Counter(range(1, rounds + 1))  # exactly one winner for each version
    assert sum(len(errors) for errors in losers) == rounds * (writers - 1)
    for errors in losers:
        for error in errors:
            # Nobody can be past this round yet, so the latest is exactly the contested version.
            assert (error.actor_id, error.current_version) == (actor, error.attempted_version)
    stream = store.get_events(actor, 0)
    assert [e.version for e in stream] == list(range(1, rounds + 1))
    winner_of = {v: w for w, versions_of_writer in enumerate(winners) for v in versions_of_writer}
    assert [e.id for e in stream] == [f"w{winner_of[v]}-v{v}" for v in range(1, rounds + 1)]


# --- what Go's JSON cannot carry, and nesting to the kit's limit ------------------------------


def nested(levels: int, leaf: object = 1) -> dict:
    """A dict nesting ``levels`` containers (itself included), alternating objects and arrays."""
    value: object = leaf
    for level in range(levels - 1):
        value = [value] if level % 2 else {"k": value}
    return {"k": value}


@pytest.mark.parametrize("leaf", [1, "unpicklable"], ids=["json", "unpicklable-leaf"])
def test_data_nested_to_the_kit_limit_round_trips_isolated(store, leaf):
    # Deeper than pickle goes (about 500 levels): the store must copy some other way, never acknowledge and fail.
    leaf_value = _unpicklable_data()["box"] if leaf == "unpicklable" else leaf
    store.save_event(event("a", 1, nested(MAX_NESTING_DEPTH, leaf_value)))
    got = store.get_events("a", 0)[0].data
    assert got == nested(MAX_NESTING_DEPTH, leaf_value)
    got["k"] = "vandal"
    assert store.get_events("a", 0)[0].data == nested(MAX_NESTING_DEPTH, leaf_value)


def test_snapshot_state_nested_to_the_kit_limit_round_trips_isolated(store):
    store.save_snapshot(snapshot("a", 1, nested(MAX_NESTING_DEPTH)))
    got = store.get_latest_snapshot("a")
    assert json_equal(got.state, nested(MAX_NESTING_DEPTH))
    got.state["k"] = "vandal"
    assert json_equal(store.get_latest_snapshot("a").state, nested(MAX_NESTING_DEPTH))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (nested(985), r"\['k'\].*: nested deeper than 512 levels"),
        (float("nan"), r"\['k'\]: NaN is not valid JSON"),
        ("\ud800", r"\['k'\]: lone surrogate"),
    ],
    ids=["985-levels", "nan", "surrogate"],
)
def test_data_changed_after_construction_is_checked_again_on_save(store, bad, message):
    # The model checked the data when the event was built; the caller changed it since.
    changed = event("a", 1, {"k": 1})
    changed.data["k"] = bad
    with pytest.raises(ValueError, match=r"^Event\.data" + message):
        store.save_event(changed)
    state = {"k": 1}
    changed_snapshot = snapshot("a", 1, state)
    state["k"] = bad
    with pytest.raises(ValueError, match=r"^ActorSnapshot\.state" + message):
        store.save_snapshot(changed_snapshot)
    assert store.get_events("a", 0) == [] and store.get_latest_version("a") == 0
    assert store.get_latest_snapshot("a") is None
