"""The driver: loading factories, timeouts, type checks and async handles, on real small stores."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from aether_conformance import Event, VersionConflictError
from aether_conformance.driver import (
    StoreDriver,
    StoreLoadError,
    StoreRaised,
    StoreTimeout,
    StoreWrongType,
    load_factory,
    run_test_body,
    while_hung,
)

EVENT = Event(id="e", event_type="t", actor_id="a", version=1, data=None, timestamp=datetime(2024, 1, 1, tzinfo=timezone.utc))


class Hanging:
    def save_event(self, event):
        threading.Event().wait()

    def get_events(self, actor_id, from_version):
        return "not a list"

    def get_latest_version(self, actor_id):
        raise KeyError(actor_id)


class Conflicting:
    def save_event(self, event):
        raise VersionConflictError(actor_id=event.actor_id, attempted_version=event.version, current_version=7)

    def get_events(self, actor_id, from_version):
        return [EVENT, {"id": "x"}]

    def get_latest_version(self, actor_id):
        return True


class Int64:
    """An integer type of a database driver or numpy: not an int, but one by __index__."""

    def __init__(self, value):
        self.value = value

    def __index__(self):
        return self.value


class IntegerTypes(Conflicting):
    def save_event(self, event):
        raise VersionConflictError(actor_id=event.actor_id, attempted_version=Int64(event.version),
                                   current_version=Int64(7))

    def get_latest_version(self, actor_id):
        return {"index": Int64(2**63 - 1), "float": 3.0, "decimal": Decimal(3)}[actor_id]


class AsyncStore:
    def __init__(self):
        self.loop = None
        self.events = []

    async def save_event(self, event):
        self.loop = asyncio.get_running_loop()
        await asyncio.sleep(0)
        self.events.append(event)

    async def get_events(self, actor_id, from_version):
        return [e for e in self.events if e.actor_id == actor_id and e.version >= from_version]

    async def get_latest_version(self, actor_id):
        return max((e.version for e in self.events if e.actor_id == actor_id), default=0)


class Mixed(AsyncStore):
    def get_latest_version(self, actor_id):
        return 0


async def make_async_store():
    await asyncio.sleep(0)
    return AsyncStore()


def needs_argument(path):
    return Hanging()


NOT_CALLABLE = 42


class NotAStore:
    def save_event(self, event):
        pass


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no_colon", "MODULE:ATTR"),
        ("tests.test_driver:", "MODULE:ATTR"),
        ("tests.does_not_exist:x", "cannot import module"),
        ("tests.test_driver:missing", "has no attribute"),
        ("tests.test_driver:NOT_CALLABLE", "not a zero-argument factory"),
        ("tests.test_driver:needs_argument", "cannot be called without arguments"),
    ],
)
def test_bad_factories_are_refused_clearly(spec, message):
    with pytest.raises(StoreLoadError, match=message):
        load_factory(spec)


def test_a_handle_without_the_interface_is_refused():
    with pytest.raises(StoreLoadError, match="without get_events, get_latest_version"):
        StoreDriver("tests.test_driver:NotAStore", timeout=1).new_handle()


def test_each_method_is_driven_as_it_is_sync_or_async():
    driver = StoreDriver("tests.test_driver:Mixed", timeout=2)
    handle = driver.new_handle()
    handle.save_event(EVENT)
    assert handle.get_events("a", 0) == [EVENT] and handle.get_latest_version("a") == 0
    driver.close()


def test_a_hanging_call_times_out_and_the_store_is_then_treated_as_hung():
    driver = StoreDriver("tests.test_driver:Hanging", timeout=0.2)
    handle = driver.new_handle()
    started = time.monotonic()
    for _ in range(driver.hung_limit):
        # The configured timeout, not the default: named in the message, waited out (no upper bound on
        # the wait, which would fail on a busy machine).
        with pytest.raises(StoreTimeout, match=r'save_event\(event \{actorId: "a", version: 1.* within 0\.2s'):
            handle.save_event(EVENT)
    assert time.monotonic() - started >= 0.9 * 0.2 * driver.hung_limit
    with pytest.raises(StoreTimeout, match="treated as hung"):
        handle.get_latest_version("a")


class ReadsHang:
    def save_event(self, event):
        pass

    def get_latest_version(self, actor_id):
        return 0

    def get_events(self, actor_id, from_version):
        threading.Event().wait()


def test_a_method_that_always_hangs_is_treated_as_hung_though_others_answer():
    # Otherwise each test that reads would wait out the timeout: hundreds of timeouts in a run.
    driver = StoreDriver("tests.test_driver:ReadsHang", timeout=0.2)
    handle = driver.new_handle()
    for _ in range(driver.hung_limit):
        assert handle.get_latest_version("a") == 0  # answers, between the reads that hang
        with pytest.raises(StoreTimeout, match="within 0.2s"):
            handle.get_events("a", 0)
    with pytest.raises(StoreTimeout, match=r"not attempted: the last 3 get_events calls never returned .* "
                                           r"get_events is treated as hung"):
        handle.get_events("a", 0)
    assert handle.get_latest_version("a") == 0


def test_a_hang_is_charged_to_the_requirement_it_was_first_seen_under(monkeypatch):
    # One hang, one requirement: later reads of a method that has not answered since name the
    # requirement of the test it first hung in, so the report blocks their own tests by it.
    import aether_conformance.driver as driver_module

    driver = StoreDriver("tests.test_driver:ReadsHang", timeout=0.2)
    handle = driver.new_handle()
    monkeypatch.setattr(driver_module, "running_requirements", ("ES-READ-002",))
    with pytest.raises(StoreTimeout) as first:
        handle.get_events("a", 0)
    assert str(first.value).startswith("get_events(")  # the test that ran it names its own requirement
    monkeypatch.setattr(driver_module, "running_requirements", ("ES-READ-003",))
    for _ in range(driver.hung_limit - 1):
        with pytest.raises(StoreTimeout, match=r"^ES-READ-002: get_events\(.* within 0\.2s"):
            handle.get_events("a", 0)
    with pytest.raises(StoreTimeout, match=r"^ES-READ-002: get_events\(.* not attempted"):
        handle.get_events("a", 0)
    with pytest.raises(StoreTimeout, match=r"^ES-READ-002: get_latest_version\(.* the store is treated as hung"):
        handle.get_latest_version("a")


def test_wrong_types_and_stray_exceptions_are_reported():
    handle = StoreDriver("tests.test_driver:Hanging", timeout=1).new_handle()
    with pytest.raises(StoreWrongType, match=r'returned "not a list" \(str\); expected a list of events'):
        handle.get_events("a", 0)
    with pytest.raises(StoreRaised, match="raised builtins.KeyError") as raised:
        handle.get_latest_version("a")
    assert isinstance(raised.value.original, KeyError)


class DuckSequence:
    """A sequence by protocol (__len__ and __getitem__), not registered with collections.abc."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


class Cursor:
    """A database cursor: iterable (__iter__), but not itself an iterator (no __next__)."""

    def __init__(self, rows):
        self.rows = rows

    def __iter__(self):
        return iter(self.rows)


class ReadsAsSequences:
    """get_events answers as a tuple, a generator, a duck-typed sequence, a cursor, or (for other
    actors) text or a dict."""

    def __init__(self):
        self.events = [EVENT]

    def save_event(self, event):
        pass

    def get_events(self, actor_id, from_version):
        if actor_id == "tuple":
            return tuple(self.events)
        if actor_id == "generator":
            return (event for event in self.events)
        if actor_id == "duck":
            return DuckSequence(self.events)
        if actor_id == "cursor":
            return Cursor(self.events)
        if actor_id == "text":
            return "evt"
        return {1: EVENT}

    def get_latest_version(self, actor_id):
        return 1


def test_a_tuple_or_any_iterable_of_events_is_read_in_full_but_text_or_a_mapping_is_not():
    handle = StoreDriver("tests.test_driver:ReadsAsSequences", timeout=1).new_handle()
    for answer in ("tuple", "generator", "duck", "cursor"):
        assert handle.get_events(answer, 0) == [EVENT], answer
    with pytest.raises(StoreWrongType, match=r"\(str\); expected a list of events"):
        handle.get_events("text", 0)
    # ES-READ-005 mutates the store's own objects: a generator's are read once and handed over.
    seen = []
    assert handle.get_events_and_mutate("generator", 0, seen.extend) == 1 and seen[0] is handle.raw.events[0]
    with pytest.raises(StoreWrongType, match=r"\(dict\); expected a list of events"):
        handle.get_events("mapping", 0)


def test_conflicts_pass_through_and_items_are_checked():
    handle = StoreDriver("tests.test_driver:Conflicting", timeout=1).new_handle()
    with pytest.raises(VersionConflictError) as conflict:
        handle.save_event(EVENT)
    assert conflict.value.current_version == 7
    with pytest.raises(StoreWrongType, match=r"item \[1\]"):
        handle.get_events("a", 0)
    with pytest.raises(StoreWrongType, match=r"returned true \(bool\); expected an int"):
        handle.get_latest_version("a")


def test_a_version_may_be_any_integer_type_but_not_a_float_or_decimal():
    handle = StoreDriver("tests.test_driver:IntegerTypes", timeout=1).new_handle()
    latest = handle.get_latest_version("index")
    assert latest == 2**63 - 1 and type(latest) is int
    for kind in ("float", "decimal"):
        with pytest.raises(StoreWrongType, match=r"expected an int"):
            handle.get_latest_version(kind)
    # The conflict's fields likewise (the store's latest version, as it would answer it).
    with pytest.raises(VersionConflictError) as conflict:
        handle.save_event(EVENT)
    assert (conflict.value.attempted_version, conflict.value.current_version) == (EVENT.version, 7)
    assert type(conflict.value.current_version) is int


def test_async_factories_and_handles_run_on_the_drivers_loop():
    driver = StoreDriver("tests.test_driver:make_async_store", timeout=2)
    first, second = driver.new_handle(), driver.new_handle()
    assert driver.is_async and first.is_async
    first.save_event(EVENT)
    assert first.get_events("a", 1) == [EVENT] and first.get_latest_version("a") == 1
    assert first.raw.loop is driver.loop
    assert second.get_latest_version("a") == 0  # separate handles of a non-shared toy store
    driver.close()
    # Another driver's handles (a test's own, as the churn test makes) meet the same loop, closed or not.
    other = StoreDriver("tests.test_driver:make_async_store", timeout=2)
    other.new_handle().save_event(EVENT)
    assert other.handles[0].raw.loop is first.raw.loop
    other.close()


# -- what a store cannot do to the driver -----------------------------------------------------


class SkipsAndExits:
    """Async methods that raise what pytest and Python treat as control flow, not as errors."""

    async def save_event(self, event):
        pytest.skip("a store must not be able to skip a test")

    async def get_events(self, actor_id, from_version):
        raise SystemExit(0)

    async def get_latest_version(self, actor_id):
        return 0


def test_a_store_cannot_skip_a_test_or_exit_the_loop():
    driver = StoreDriver("tests.test_driver:SkipsAndExits", timeout=2)
    handle = driver.new_handle()
    with pytest.raises(StoreRaised, match="Skipped"):
        handle.save_event(EVENT)
    with pytest.raises(StoreRaised, match="SystemExit"):
        handle.get_events("a", 0)
    assert handle.get_latest_version("a") == 0  # the loop survived both
    driver.close()


def _returns_awaitables(method):
    # Not ``async def``: a decorated coroutine function, as some client libraries produce.
    def call(*args):
        return method(*args)

    return call


class AwaitableReturning(AsyncStore):
    save_event = _returns_awaitables(AsyncStore.save_event)
    get_events = _returns_awaitables(AsyncStore.get_events)
    get_latest_version = _returns_awaitables(AsyncStore.get_latest_version)


def test_awaitable_results_of_plain_methods_are_awaited_on_the_drivers_loop():
    driver = StoreDriver("tests.test_driver:AwaitableReturning", timeout=2)
    handle = driver.new_handle()
    handle.save_event(EVENT)
    assert handle.get_events("a", 0) == [EVENT] and handle.get_latest_version("a") == 1
    assert handle.raw.loop is driver.loop
    driver.close()


class Text(str):
    def __str__(self):
        return "not the value"


class Count(int):
    pass


class LazyData(dict):
    """A mapping that blocks when read, like an ORM row loading its columns on access."""

    def items(self):
        threading.Event().wait()


class Subclassed:
    def save_event(self, event):
        pass

    def get_events(self, actor_id, from_version):
        if actor_id == "lazy":
            return [Event(id="e", event_type="t", actor_id="lazy", version=1, data=LazyData(), timestamp=EVENT.timestamp)]
        return [Event(id=Text("e"), event_type=Text("t"), actor_id=Text("a"), version=Count(1),
                      data={Text("k"): [Text("v"), (1, 2.5)]}, timestamp=EVENT.timestamp)]

    def get_latest_version(self, actor_id):
        return Count(1)


def test_results_are_materialised_as_plain_values_within_the_timeout():
    handle = StoreDriver("tests.test_driver:Subclassed", timeout=0.5).new_handle()
    (event,) = handle.get_events("a", 0)
    assert type(event.id) is str and event.id == "e" and type(event.version) is int
    assert event.data == {"k": ["v", [1, 2.5]]} and type(next(iter(event.data))) is str
    latest = handle.get_latest_version("a")
    assert type(latest) is int and latest == 1
    with pytest.raises(StoreTimeout, match="per-call timeout"):
        handle.get_events("lazy", 0)


class NotJson:
    def save_event(self, event):
        pass

    def get_events(self, actor_id, from_version):
        return [Event(id="e", event_type="t", actor_id=actor_id, version=1, data={"s": {1, 2}}, timestamp=EVENT.timestamp)]

    def get_latest_version(self, actor_id):
        return 0


def test_data_that_is_not_json_is_a_wrong_type():
    handle = StoreDriver("tests.test_driver:NotJson", timeout=2).new_handle()
    with pytest.raises(StoreWrongType, match=r"item \[0\] that is not a valid record: a set"):
        handle.get_events("a", 0)


def hanging_factory():
    threading.Event().wait()


def test_a_sync_factory_that_hangs_is_a_load_error():
    with pytest.raises(StoreLoadError, match=r"did not return within 0.2s"):
        StoreDriver("tests.test_driver:hanging_factory", timeout=0.2).new_handle()


class StallsThenRecovers(Conflicting):
    """Hangs on its first calls (a paused leader), then answers again."""

    stalls = 2

    def get_latest_version(self, actor_id):
        if StallsThenRecovers.stalls:
            StallsThenRecovers.stalls -= 1
            threading.Event().wait(5)
        return 4


def test_a_store_that_recovers_from_a_stall_is_not_written_off():
    driver = StoreDriver("tests.test_driver:StallsThenRecovers", timeout=0.2)
    handle = driver.new_handle()
    for _ in range(2):
        with pytest.raises(StoreTimeout):
            handle.get_latest_version("a")
    assert handle.get_latest_version("a") == 4 and driver.hung_calls == []


def test_a_hang_first_seen_in_a_test_of_several_requirements_names_none_of_them(monkeypatch):
    # Such a test charges the hang to the requirement it was exercising, which the driver cannot
    # know: naming all of them would make a later test of one of them look like its own failure.
    import aether_conformance.driver as driver_module

    driver = StoreDriver("tests.test_driver:ReadsHang", timeout=0.2)
    handle = driver.new_handle()
    monkeypatch.setattr(driver_module, "running_requirements", ("ES-READ-001", "ES-READ-003"))
    with pytest.raises(StoreTimeout):
        handle.get_events("a", 0)
    monkeypatch.setattr(driver_module, "running_requirements", ("ES-READ-003",))
    with pytest.raises(StoreTimeout, match=r"^get_events\(.* within 0\.2s"):
        handle.get_events("a", 0)


# -- calls as applications make them: in one task, gathered, cancelled ---------------------------


class TaskRecordingStore(AsyncStore):
    """Remembers which task (or thread) made each call, and how many saves were under way at once."""

    def __init__(self):
        super().__init__()
        self.callers, self.under_way, self.most_under_way = [], 0, 0

    def _caller(self):
        self.callers.append(asyncio.current_task())

    async def save_event(self, event):
        self._caller()
        self.under_way += 1
        self.most_under_way = max(self.most_under_way, self.under_way)
        await asyncio.sleep(0)  # between its check and its append, as a store's I/O
        self.under_way -= 1
        if any(e.actor_id == event.actor_id and e.version >= event.version for e in self.events):
            raise VersionConflictError(actor_id=event.actor_id, attempted_version=event.version, current_version=1)
        self.events.append(event)

    async def get_latest_version(self, actor_id):
        self._caller()
        return await super().get_latest_version(actor_id)


class ThreadRecordingStore:
    def __init__(self):
        self.callers, self.events = [], []

    def save_event(self, event):
        self.callers.append(threading.get_ident())
        self.events.append(event)

    def get_events(self, actor_id, from_version):
        self.callers.append(threading.get_ident())
        return [e for e in self.events if e.actor_id == actor_id and e.version >= from_version]

    def get_latest_version(self, actor_id):
        self.callers.append(threading.get_ident())
        return max((e.version for e in self.events if e.actor_id == actor_id), default=0)


def test_calls_in_one_task_are_made_by_one_task_and_each_checked():
    driver = StoreDriver("tests.test_driver:TaskRecordingStore", timeout=2)
    handle = driver.new_handle()
    handle.save_event(EVENT)
    handle.get_latest_version("a")
    assert handle.raw.callers[0] is not handle.raw.callers[1]  # one call, one task
    handle.raw.callers.clear()
    second = dataclasses.replace(EVENT, version=2)
    saved, latest = handle.in_one_task([("save_event", (second,)), ("get_latest_version", ("a",))])
    assert (saved, latest) == (None, 2)
    assert handle.raw.callers[0] is handle.raw.callers[1]
    with pytest.raises(VersionConflictError):  # the first error ends the sequence
        handle.in_one_task([("save_event", (EVENT,)), ("get_latest_version", ("a",))])
    assert len(handle.raw.callers) == 3
    driver.close()


def test_calls_in_one_task_of_a_sync_handle_run_on_one_thread():
    driver = StoreDriver("tests.test_driver:ThreadRecordingStore", timeout=2)
    handle = driver.new_handle()
    _, latest, events = handle.in_one_task([("save_event", (EVENT,)), ("get_latest_version", ("a",)),
                                            ("get_events", ("a", 0))])
    assert latest == 1 and events == [EVENT]
    assert len(set(handle.raw.callers)) == 1 and handle.raw.callers[0] != threading.get_ident()
    driver.close()


class SlowAndHangingReads(ThreadRecordingStore):
    """Each read takes a quarter of a second; a read of actor "hang" never returns."""

    def get_latest_version(self, actor_id):
        if actor_id == "hang":
            threading.Event().wait()
        time.sleep(0.25)
        return super().get_latest_version(actor_id)


def test_a_call_of_another_handle_in_one_thread_that_hangs_is_a_store_timeout():
    driver = StoreDriver("tests.test_driver:SlowAndHangingReads", timeout=0.3)
    handle, other = driver.new_handle(), driver.new_handle()
    with pytest.raises(StoreTimeout, match=r'get_latest_version\("hang"\) did not return within 0.3s'):
        handle.in_one_task([("save_event", (EVENT,)), (other, "get_latest_version", ("hang",))])


def test_a_run_of_calls_is_made_on_one_thread_each_call_timed_on_its_own():
    driver = StoreDriver("tests.test_driver:SlowAndHangingReads", timeout=1)
    handle = driver.new_handle()
    # Eight reads of a quarter of a second: twice the timeout in all, each well within it.
    results = handle.one_after_another([("save_event", (EVENT,))] + [("get_latest_version", ("a",))] * 8)
    assert results == [None] + [1] * 8
    assert len(set(handle.raw.callers)) == 1 and handle.raw.callers[0] != threading.get_ident()
    driver.close()


def test_a_run_of_calls_names_the_call_that_hung_and_makes_no_more():
    driver = StoreDriver("tests.test_driver:SlowAndHangingReads", timeout=0.5)
    handle = driver.new_handle()
    second = dataclasses.replace(EVENT, version=2)
    with pytest.raises(StoreTimeout, match=r'get_latest_version\("hang"\) did not return within 0.5s') as raised:
        handle.one_after_another([("save_event", (EVENT,)), ("get_latest_version", ("a",)),
                                  ("get_latest_version", ("hang",)), ("save_event", (second,))])
    assert raised.value.call_index == 2
    assert [e.version for e in handle.raw.events] == [1]  # the save after the hang was never made
    # The hang counts towards the store's, as any call's does.
    assert [str(call) for call in driver.hung_by_method["get_latest_version"]] == ['get_latest_version("hang")']


def test_a_run_of_calls_stops_at_an_error_or_settles_each_call():
    driver = StoreDriver("tests.test_driver:TaskRecordingStore", timeout=2)
    handle = driver.new_handle()
    second = dataclasses.replace(EVENT, version=2)
    with pytest.raises(VersionConflictError) as raised:
        handle.one_after_another([("save_event", (EVENT,)), ("save_event", (EVENT,)), ("save_event", (second,))])
    assert raised.value.call_index == 1 and [e.version for e in handle.raw.events] == [1]
    assert len(set(handle.raw.callers)) == 1  # one task made them
    outcomes = handle.one_after_another([("save_event", (EVENT,)), ("save_event", (second,)),
                                         ("get_latest_version", ("a",))], settle=True)
    assert isinstance(outcomes[0], VersionConflictError) and outcomes[1:] == [None, 2]
    driver.close()


def test_a_run_of_calls_logs_the_calls_it_made_and_no_others():
    from aether_conformance import driver as driver_module

    driver = StoreDriver("tests.test_driver:TaskRecordingStore", timeout=2)
    handle = driver.new_handle()
    log, driver_module.call_log = driver_module.call_log, driver_module.CallLog()
    try:
        with pytest.raises(VersionConflictError):
            handle.one_after_another([("save_event", (EVENT,)), ("save_event", (EVENT,)), ("get_events", ("a", 0))])
        assert [call["method"] for call in driver_module.call_log.calls] == ["save_event", "save_event"]
    finally:
        driver_module.call_log = log
    driver.close()


# -- a test's body on a test thread ------------------------------------------------------------


def test_a_test_body_makes_its_sync_calls_on_its_own_thread_and_hands_back_its_outcome():
    driver = StoreDriver("tests.test_driver:ThreadRecordingStore", timeout=2)
    handle = driver.new_handle()
    body_threads = []

    def body():
        body_threads.append(threading.get_ident())
        handle.save_event(EVENT)
        handle.one_after_another([("get_latest_version", ("a",)), ("get_events", ("a", 0))])
        return handle.get_latest_version("a")

    assert run_test_body(body) == 1
    assert set(handle.raw.callers) == {body_threads[0]} and body_threads[0] != threading.get_ident()
    with pytest.raises(VersionConflictError):  # what the body raised, raised again here
        run_test_body(lambda: StoreDriver("tests.test_driver:Conflicting").new_handle().save_event(EVENT))
    with pytest.raises(pytest.skip.Exception, match="the test's own"):  # the test's outcomes pass through
        run_test_body(lambda: pytest.skip("the test's own"))
    driver.close()


class HangsOnceReleased(ThreadRecordingStore):
    """get_latest_version("hang") waits until the test releases it."""

    release = threading.Event()

    def get_latest_version(self, actor_id):
        if actor_id == "hang":
            self.release.wait()
        return super().get_latest_version(actor_id)


def test_a_hung_call_of_a_test_body_fails_it_and_the_body_makes_no_more_calls():
    driver = StoreDriver("tests.test_driver:HangsOnceReleased", timeout=0.3)
    handle = driver.new_handle()
    second = dataclasses.replace(EVENT, version=2)
    unwound, charged = threading.Event(), []

    def body():
        try:
            handle.save_event(EVENT)
            with while_hung(charged.append):  # what an except clause here would have been handed
                handle.get_latest_version("hang")
            handle.save_event(second)  # never made: the test already failed
        finally:
            unwound.set()

    with pytest.raises(StoreTimeout, match=r'^get_latest_version\("hang"\) did not return within 0.3s') as raised:
        run_test_body(body)
    assert charged == [raised.value]
    assert [str(call) for call in driver.hung_by_method["get_latest_version"]] == ['get_latest_version("hang")']
    HangsOnceReleased.release.set()  # the hung call returns, to a thread that was abandoned
    assert unwound.wait(timeout=30) and [e.version for e in handle.raw.events] == [1]
    driver.close()


class BlocksUntilReleased(ThreadRecordingStore):
    """get_latest_version("block") says it started, then waits until the test releases it."""

    started, release = threading.Event(), threading.Event()

    def get_latest_version(self, actor_id):
        if actor_id == "block":
            self.started.set()
            self.release.wait()
        return super().get_latest_version(actor_id)


def test_an_interrupted_run_leaves_the_test_body_making_no_more_calls():
    import _thread

    driver = StoreDriver("tests.test_driver:BlocksUntilReleased", timeout=60)
    handle = driver.new_handle()
    unwound = threading.Event()

    def body():
        try:
            handle.get_latest_version("block")
            handle.save_event(EVENT)  # never made: the run was interrupted
        finally:
            unwound.set()

    def interrupt():
        BlocksUntilReleased.started.wait()
        _thread.interrupt_main()  # as SIGINT would, while pytest's thread waits for the body

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_test_body(body)
    BlocksUntilReleased.release.set()
    assert unwound.wait(timeout=30) and handle.raw.events == []
    driver.close()


def test_a_hang_in_a_blamed_block_of_a_test_body_names_the_blamed_requirement():
    from aether_conformance.suite.support import blame

    driver = StoreDriver("tests.test_driver:ReadsHang", timeout=0.3)
    handle = driver.new_handle()

    def body():
        with blame("ES-READ-003"):
            handle.get_events("a", 0)

    with pytest.raises(StoreTimeout, match=r"^ES-READ-003: get_events\(.* did not return within 0.3s"):
        run_test_body(body)


def test_a_run_of_calls_of_a_test_body_may_outlast_the_timeout_while_each_call_is_within_it():
    driver = StoreDriver("tests.test_driver:SlowAndHangingReads", timeout=1)
    handle = driver.new_handle()
    # Eight reads of a quarter of a second: twice the timeout in all, each well within it.
    results = run_test_body(lambda: handle.one_after_another([("save_event", (EVENT,))]
                                                             + [("get_latest_version", ("a",))] * 8))
    assert results == [None] + [1] * 8
    with pytest.raises(StoreTimeout, match=r'get_latest_version\("hang"\) did not return within 1s'):
        run_test_body(lambda: handle.one_after_another([("get_latest_version", ("a",)),
                                                        ("get_latest_version", ("hang",))]))


def test_gathered_saves_are_all_under_way_at_once_and_each_outcome_is_kept():
    driver = StoreDriver("tests.test_driver:TaskRecordingStore", timeout=2)
    handle = driver.new_handle()
    events = [dataclasses.replace(EVENT, actor_id=f"a{n % 50}") for n in range(100)]
    outcomes = handle.gathered([("save_event", (event,)) for event in events])
    assert handle.raw.most_under_way == 100
    assert outcomes[:50] == [None] * 50
    assert all(isinstance(outcome, VersionConflictError) for outcome in outcomes[50:])
    driver.close()


class TwoStatementStore(AsyncStore):
    """Inserts, awaits, then counts: a cancellation between the two leaves the count behind."""

    def __init__(self):
        super().__init__()
        self.counted = 0

    async def save_event(self, event):
        self.events.append(event)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        self.counted += 1


def test_a_save_is_cancelled_after_the_given_turns_of_the_loop():
    driver = StoreDriver("tests.test_driver:TwoStatementStore", timeout=2)
    handle = driver.new_handle()
    assert handle.cancelled_after("save_event", (EVENT,), 0) == ("cancelled", None)
    assert handle.raw.events == []  # never started
    assert handle.cancelled_after("save_event", (EVENT,), 1) == ("cancelled", None)
    assert (len(handle.raw.events), handle.raw.counted) == (1, 0)  # inserted, not counted
    assert handle.cancelled_after("save_event", (EVENT,), 3) == ("completed", None)
    assert (len(handle.raw.events), handle.raw.counted) == (2, 1)
    driver.close()



class SyncFacadeReads(AsyncStore):
    """save_event is async; the reads are a sync facade over the async client, as many libraries'
    sync APIs are: one runs it with asyncio.run, one hands it to the running loop and waits."""

    def get_latest_version(self, actor_id):
        return asyncio.run(AsyncStore.get_latest_version(self, actor_id))

    def get_events(self, actor_id, from_version):
        return asyncio.run_coroutine_threadsafe(AsyncStore.get_events(self, actor_id, from_version),
                                                self.loop).result(timeout=1)


def test_sync_methods_of_an_async_handle_run_on_worker_threads_when_gathered_or_cancelled():
    # Spec section 6: sync calls run on worker threads, never on the loop (asyncio.run fails there,
    # and a wait on the loop from the loop blocks it).
    driver = StoreDriver("tests.test_driver:SyncFacadeReads", timeout=2)
    handle = driver.new_handle()
    handle.save_event(EVENT)
    assert handle.gathered([("get_latest_version", (EVENT.actor_id,)), ("get_events", (EVENT.actor_id, 1))],
                           after=("get_latest_version", (EVENT.actor_id,))) == [EVENT.version, [EVENT]]
    # Whether a worker answers within 50 turns of the loop depends on the machine: either outcome.
    assert handle.cancelled_after("get_latest_version", (EVENT.actor_id,), 50) in {("completed", EVENT.version),
                                                                                  ("cancelled", None)}
    assert handle.cancelled_after("get_events", (EVENT.actor_id, 1), 0) == ("cancelled", None)
    assert handle.get_events(EVENT.actor_id, 1) == [EVENT]  # the loop was not blocked
    driver.close()


class LoopWaitingReads(AsyncStore):
    """Sync reads that wait on the loop the client met (the kit's), counting how many are in flight."""

    def __init__(self):
        super().__init__()
        self.lock, self.in_flight, self.most_in_flight = threading.Lock(), 0, 0

    def get_latest_version(self, actor_id):
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return asyncio.run_coroutine_threadsafe(AsyncStore.get_latest_version(self, actor_id), self.loop).result()
        finally:
            with self.lock:
                self.in_flight -= 1


def test_gathered_sync_calls_that_wait_on_the_loop_take_turns_on_a_bounded_set_of_workers():
    # Unbounded, the loop started a worker thread for every gathered call before it served any of
    # them: 10,050 threads, and no answer within the timeout (a thirteenth review's control).
    from aether_conformance.driver import LOOP_SIDE_WORKERS

    driver = StoreDriver("tests.test_driver:LoopWaitingReads", timeout=30)
    handle = driver.new_handle()
    handle.save_event(EVENT)
    assert handle.gathered([("get_latest_version", (EVENT.actor_id,))] * 1_000) == [EVENT.version] * 1_000
    assert handle.raw.most_in_flight <= LOOP_SIDE_WORKERS
    driver.close()


class HangsInGather(AsyncStore):
    async def save_event(self, event):
        await asyncio.Event().wait()


def test_gathered_saves_that_never_finish_time_out():
    driver = StoreDriver("tests.test_driver:HangsInGather", timeout=0.2)
    handle = driver.new_handle()
    with pytest.raises(StoreTimeout, match="2 save_event calls gathered at once: 2 of them did not return, and "
                                           "none returned for 0.2s"):
        handle.gathered([("save_event", (EVENT,)), ("save_event", (EVENT,))])
    driver.close()


class Closes:
    closed = 0

    def __init__(self):
        self.events = []

    def save_event(self, event):
        pass

    def get_events(self, actor_id, from_version):
        return []

    def get_latest_version(self, actor_id):
        return 0

    def close(self):
        Closes.closed += 1


def test_a_released_handle_is_closed_and_its_number_never_reused():
    driver = StoreDriver("tests.test_driver:Closes", timeout=2)
    first, second = driver.new_handle(), driver.new_handle()
    before = Closes.closed
    driver.release(second)
    assert Closes.closed == before + 1 and driver.handles == [first]
    assert driver.new_handle().number == 2
    driver.close()


class SerialSlowSaves(AsyncStore):
    """One connection: saves queue for it, each taking 50 ms."""

    def __init__(self):
        super().__init__()
        self.connection = asyncio.Lock()

    async def save_event(self, event):
        async with self.connection:
            await asyncio.sleep(0.05)
            self.events.append(event)


def test_gathered_calls_that_keep_finishing_may_take_longer_than_the_timeout():
    driver = StoreDriver("tests.test_driver:SerialSlowSaves", timeout=0.3)
    handle = driver.new_handle()
    events = [dataclasses.replace(EVENT, actor_id=f"a{n}") for n in range(12)]  # 0.6 s in all
    assert handle.gathered([("save_event", (event,)) for event in events]) == [None] * 12
    assert handle.gathered([("get_latest_version", (f"a{n}",)) for n in range(12)]) == [1] * 12
    driver.close()


def test_gathered_calls_can_follow_a_call_of_the_gathering_task():
    driver = StoreDriver("tests.test_driver:TaskRecordingStore", timeout=2)
    handle = driver.new_handle()
    handle.gathered([("save_event", (EVENT,))], after=("get_latest_version", ("a",)))
    parent, saver = handle.raw.callers
    assert parent is not saver and parent is not None
    driver.close()


class TurnCountingStore(AsyncStore):
    """A save of actor "clock" counts ten turns of the loop; every other save notes the count."""

    def __init__(self):
        super().__init__()
        self.clock, self.started = 0, []

    async def save_event(self, event):
        if event.actor_id != "clock":
            self.started.append(self.clock)
            return
        for _ in range(10):
            await asyncio.sleep(0)
            self.clock += 1


def test_gathered_calls_start_at_the_turns_asked():
    driver = StoreDriver("tests.test_driver:TurnCountingStore", timeout=2)
    handle = driver.new_handle()
    clock = dataclasses.replace(EVENT, actor_id="clock")
    handle.gathered([("save_event", (event,)) for event in (clock, EVENT, EVENT, EVENT)], starts=[0, 0, 3, 7])
    assert handle.raw.started == [0, 3, 7]
    with pytest.raises(ValueError, match="starts: .* must be ascending turns, one for each of the 2 calls"):
        handle.gathered([("save_event", (EVENT,)), ("save_event", (EVENT,))], starts=[1, 0])
    driver.close()


class ClosesAsynchronously(AsyncStore):
    closed = 0

    async def aclose(self):
        ClosesAsynchronously.closed += 1


def test_a_handle_with_only_aclose_is_closed_with_it():
    driver = StoreDriver("tests.test_driver:ClosesAsynchronously", timeout=2)
    before = ClosesAsynchronously.closed
    driver.release(driver.new_handle())
    assert ClosesAsynchronously.closed == before + 1
    driver.close()


class NumbersOfOtherTypes(ThreadRecordingStore):
    """Data read back with numbers as a DynamoDB client (Decimal) or a columnar engine (__index__) gives them."""

    def get_events(self, actor_id, from_version):
        return [dataclasses.replace(e, data={"d": Decimal("3"), "f": Decimal("0.1"), "i": Int64(2**53 + 1),
                                              "list": [Decimal("-2.50"), Int64(0)], "flag": True})
                for e in super().get_events(actor_id, from_version)]


class NotANumber(ThreadRecordingStore):
    def get_events(self, actor_id, from_version):
        return [dataclasses.replace(e, data={"nan": Decimal("NaN")}) for e in super().get_events(actor_id, from_version)]


def test_numbers_of_other_types_in_data_are_read_as_the_int_or_float_they_equal():
    handle = StoreDriver("tests.test_driver:NumbersOfOtherTypes", timeout=2).new_handle()
    handle.save_event(EVENT)
    data = handle.get_events("a", 0)[0].data
    assert data == {"d": 3, "f": 0.1, "i": 2**53 + 1, "list": [-2.5, 0], "flag": True}
    assert [type(data[k]) for k in ("d", "f", "i", "flag")] == [int, float, int, bool]
    nan = StoreDriver("tests.test_driver:NotANumber", timeout=2).new_handle()
    nan.save_event(EVENT)
    with pytest.raises(StoreWrongType, match="NaN"):
        nan.get_events("a", 0)


class _ForeignNanoseconds(datetime):
    """Another library's datetime with nanoseconds below the microsecond (as pandas.Timestamp has)."""

    nanosecond = 789


class ReadOnlyViewsAndForeignTimes(ThreadRecordingStore):
    def get_events(self, actor_id, from_version):
        import types

        return [dataclasses.replace(e, data={"inner": types.MappingProxyType({"k": (1, 2)})},
                                    timestamp=_ForeignNanoseconds(2024, 1, 1, 0, 0, 0, 5, tzinfo=timezone.utc))
                for e in super().get_events(actor_id, from_version)]


def test_read_only_mappings_and_the_nanoseconds_of_other_datetimes_are_read_as_they_are():
    handle = StoreDriver("tests.test_driver:ReadOnlyViewsAndForeignTimes", timeout=2).new_handle()
    handle.save_event(EVENT)
    read = handle.get_events("a", 0)[0]
    assert read.data == {"inner": {"k": [1, 2]}} and type(read.data["inner"]) is dict
    assert read.timestamp.microsecond == 5 and read.timestamp.nanosecond == 789
