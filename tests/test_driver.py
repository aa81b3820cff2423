"""The driver: loading factories, timeouts, type checks and async handles, on real small stores."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timezone

import pytest

from aether_conformance import Event, VersionConflictError
from aether_conformance.driver import (
    StoreDriver,
    StoreLoadError,
    StoreRaised,
    StoreTimeout,
    StoreWrongType,
    load_factory,
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


def test_mixed_sync_and_async_methods_are_refused():
    with pytest.raises(StoreLoadError, match="all-sync or all-async"):
        StoreDriver("tests.test_driver:Mixed", timeout=1).new_handle()


def test_a_hanging_call_times_out_and_the_store_is_then_treated_as_hung():
    driver = StoreDriver("tests.test_driver:Hanging", timeout=0.2)
    handle = driver.new_handle()
    started = time.monotonic()
    for _ in range(driver.hung_limit):
        # The configured timeout, not the default: named in the message, waited out (no upper bound on
        # the wait, which would fail on a busy machine).
        with pytest.raises(StoreTimeout, match=r"save_event\(Event\(actor_id='a', version=1.* within 0\.2s"):
            handle.save_event(EVENT)
    assert time.monotonic() - started >= 0.9 * 0.2 * driver.hung_limit
    with pytest.raises(StoreTimeout, match="treated as hung"):
        handle.get_latest_version("a")


def test_wrong_types_and_stray_exceptions_are_reported():
    handle = StoreDriver("tests.test_driver:Hanging", timeout=1).new_handle()
    with pytest.raises(StoreWrongType, match=r"returned 'not a list' \(str\); expected a list of Event"):
        handle.get_events("a", 0)
    with pytest.raises(StoreRaised, match="raised builtins.KeyError") as raised:
        handle.get_latest_version("a")
    assert isinstance(raised.value.original, KeyError)


def test_conflicts_pass_through_and_items_are_checked():
    handle = StoreDriver("tests.test_driver:Conflicting", timeout=1).new_handle()
    with pytest.raises(VersionConflictError) as conflict:
        handle.save_event(EVENT)
    assert conflict.value.current_version == 7
    with pytest.raises(StoreWrongType, match=r"item \[1\]"):
        handle.get_events("a", 0)
    with pytest.raises(StoreWrongType, match=r"returned True \(bool\); expected an int"):
        handle.get_latest_version("a")


def test_async_factories_and_handles_run_on_the_drivers_loop():
    driver = StoreDriver("tests.test_driver:make_async_store", timeout=2)
    first, second = driver.new_handle(), driver.new_handle()
    assert driver.is_async and first.is_async
    first.save_event(EVENT)
    assert first.get_events("a", 1) == [EVENT] and first.get_latest_version("a") == 1
    assert first.raw.loop is driver.loop
    assert second.get_latest_version("a") == 0  # separate handles of a non-shared toy store
    driver.close()
