"""Correct stores with unusual but legal behaviour (twelfth adversarial review, a): the suite must
certify every one of them.  None repeats a control of controls.py, controls6.py, controls8.py,
controls9.py or controls11b.py.

Each class is tests/zoo/base.py's CorrectStore changed in one place, legally; its docstring says
why the spec allows it.  ``CONTROLS`` lists the module-level factories; ``TRIGGERS`` maps each to
a direct-call check that shows the unusual behaviour (True when it shows).

Against spec 3.2.1 (real CLI, default profile, no -x) five were certified with every requirement
passed or only ES-READ-004 failing as expected (random_tie_snapshots, new_york_timestamps,
values_view_reads, many_yields_async, private_pool_async) and three show kit findings:

- unicode13_quoting: NOT CONFORMANT, ES-ERR-002 (test_conflict_error_text_is_the_seeds
  [melting-\U0001fae0-salute-\U0001fae1]): the suite expects Unicode 14 emoji raw, which only a
  quoting table of Unicode 14 or later writes; spec section 5 says the suite uses ids "whose
  quoting every version agrees on".
- nested_read_only_views: NOT CONFORMANT (ES-READ-001, ES-READ-003, ES-LATEST-002, ...): the
  driver's _plain_json refuses a nested Mapping that is not a dict.  Doubtful (see its docstring).
- pandas_like_timestamps: CONFORMANT, but ES-READ-004 (SHOULD) fails although the store keeps the
  nanoseconds: driver._plain_time keeps ``nanosecond`` only for the kit's own Timestamp.

All three are fixed, and all 8 are certified (tests/test_zoo.py): the conflict-text ids hold only
characters Unicode 13 already had; a nested Mapping is read as the object it is; any datetime's
``nanosecond`` of 0 to 999 is kept.  new_york_timestamps misses ES-READ-004 (a SHOULD) only.
"""

from __future__ import annotations

import asyncio
import copy
import random
import threading
import types
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from aether_conformance import ActorSnapshot, Event, VersionConflictError
from aether_conformance.errors import go_quote
from aether_conformance.timestamps import Timestamp
from tests.zoo.base import CorrectStore, ShareState, ev, factory, snap

# -- 1. conflict text quoted with Unicode 13 tables -------------------------------------------

# Code points Unicode 14.0 (2021) assigned as emoji: unassigned, so not printable, for a quoting
# table of Unicode 13.0 (Go 1.16 to 1.20, Java 17).  The emoji blocks only (a partial table of
# what 14.0 added), which is all this control needs to model.
_UNICODE_14_EMOJI = [
    (0x1F6DD, 0x1F6DF), (0x1F7F0, 0x1F7F0), (0x1F979, 0x1F979), (0x1F9CC, 0x1F9CC),
    (0x1FA7B, 0x1FA7C), (0x1FAA9, 0x1FAAC), (0x1FAB7, 0x1FABA), (0x1FAC3, 0x1FAC5),
    (0x1FAD7, 0x1FAD9), (0x1FAE0, 0x1FAE7), (0x1FAF0, 0x1FAF6),
]


def _new_in_14(char: str) -> bool:
    return any(low <= ord(char) <= high for low, high in _UNICODE_14_EMOJI)


def quote_unicode_13(text: str) -> str:
    """Go's strconv.Quote as Go 1.20 (Unicode 13.0 tables) writes it: a rune 13.0 does not know is
    not printable, so it is escaped (``\\U0001fae0``)."""
    out = []
    for char in text:
        if _new_in_14(char):
            out.append(f"\\U{ord(char):08x}")
        else:
            out.append(go_quote(char)[1:-1])
    return '"' + "".join(out) + '"'


class Unicode13Conflict(VersionConflictError):
    """The conflict as the store's server (a Go 1.20 build of the seed, or a Java 17 port) wrote it."""

    def __str__(self) -> str:
        return (f"version conflict: actor {quote_unicode_13(self.actor_id)} has version {self.current_version}, "
                f"cannot save version {self.attempted_version}")


class Unicode13Quoting(CorrectStore):
    """The conflict text comes from a server whose language has Unicode 13.0 tables (Go 1.16 to 1.20,
    the seed built with the Go of its day; Java 17): strconv.Quote escapes a rune its tables do not
    know.  Spec section 5: "characters assigned in Unicode versions that one side's tables do not
    have yet ...: the side that does not know a character escapes it.  Which of the two a
    conforming store writes for such a character depends on its language's Unicode version, so the
    suite's ES-ERR-002 tests use ids whose quoting every version agrees on."  Nothing in the spec
    names a lowest Unicode version; Go 1.20 is a Go the seed builds with."""

    def conflict(self, event: Event, latest: int) -> Exception:
        return Unicode13Conflict(actor_id=event.actor_id, attempted_version=event.version, current_version=latest)


def trigger_unicode13_quoting() -> bool:
    store = unicode13_quoting()
    actor = "melting-\U0001fae0"
    store.save_event(ev(actor, 1))
    try:
        store.save_event(ev(actor, 1))
    except VersionConflictError as error:
        return "\\U0001fae0" in str(error) and str(error) != (
            f"version conflict: actor {go_quote(actor)} has version 1, cannot save version 1")
    return False


# -- 2. snapshot ties: any tied snapshot, chosen afresh on each read ------------------------------

class RandomTieSnapshots(CorrectStore):
    """Of the snapshots tied at the highest version, each read returns any one, chosen afresh (a
    query ordered by version only, answered by whichever replica or partition scan comes first).
    Spec 8, "Snapshot version ties": "either snapshot may be returned (SS-SNAP-002 says 'a snapshot
    with the highest version')"."""

    def get_latest_snapshot(self, actor_id: str) -> ActorSnapshot | None:
        with self.shared.lock:
            snapshots = self.shared.snapshots.get(actor_id)
            if not snapshots:
                return None
            top = max(s.version for s in snapshots)
            return copy.deepcopy(random.choice([s for s in snapshots if s.version == top]))


def trigger_random_tie_snapshots() -> bool:
    store = random_tie_snapshots()
    store.save_snapshot(snap("tie", 1, state={"a": 1}))
    store.save_snapshot(snap("tie", 1, state={"b": 2}))
    return len({tuple(store.get_latest_snapshot("tie").state) for _ in range(200)}) == 2


# -- 3. nested objects as read-only mapping views -----------------------------------------------

def _frozen(value):
    """Nested objects as read-only views (the data object itself stays a dict, as the model needs)."""
    if isinstance(value, dict):
        return types.MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _frozen_top(value):
    if value is None:
        return None
    return {k: _frozen(v) for k, v in value.items()}


class NestedReadOnlyViews(CorrectStore):
    """Returns nested objects inside data and state as types.MappingProxyType (read-only views; arrays
    as tuples), isolation by immutability (ES-READ-005).  The record's own data is a dict, as the
    model requires; the model accepts the event.  Doubtful: spec 2.3 says data is a Go map and
    section 3.2 lists other types only for numbers; a read-only mapping is a JSON object all the same."""

    def select(self, actor_id: str, from_version: int) -> list[Event]:
        return [Event(id=e.id, event_type=e.event_type, actor_id=e.actor_id, command_id=e.command_id,
                      version=e.version, data=_frozen_top(e.data), timestamp=e.timestamp)
                for e in super().select(actor_id, from_version)]


def trigger_nested_read_only_views() -> bool:
    store = nested_read_only_views()
    store.save_event(ev("nested", 1, data={"o": {"k": [1, {"x": 2}]}}))
    got = store.get_events("nested", 0)[0].data
    return isinstance(got["o"], types.MappingProxyType) and isinstance(got["o"]["k"], tuple)


# -- 4. timestamps read back in a named zone, the repeated hour included ----------------------------

NEW_YORK = ZoneInfo("America/New_York")


def _in_new_york(stamp: datetime) -> datetime:
    nanos = getattr(stamp, "nanosecond", 0)
    try:
        local = stamp.astimezone(NEW_YORK)  # fold set by astimezone in the repeated hour
    except (OverflowError, ValueError):
        return stamp  # beyond datetime's range in that zone: kept as saved
    return Timestamp.from_datetime(local, nanos)


class NewYorkTimestamps(CorrectStore):
    """A TIMESTAMPTZ column read by a session whose TimeZone is America/New_York, returned as
    ZoneInfo datetimes (fold=1 in the repeated hour), the nanoseconds kept.  Spec 2.3: "a store
    that reads timestamps back in a named zone returns such offsets, and the model accepts them";
    only ES-READ-004 (a SHOULD) asks for the offset."""

    def select(self, actor_id: str, from_version: int) -> list[Event]:
        return [Event(id=e.id, event_type=e.event_type, actor_id=e.actor_id, command_id=e.command_id,
                      version=e.version, data=e.data, timestamp=_in_new_york(e.timestamp))
                for e in super().select(actor_id, from_version)]

    def get_latest_snapshot(self, actor_id: str) -> ActorSnapshot | None:
        got = super().get_latest_snapshot(actor_id)
        if got is None:
            return None
        return ActorSnapshot(actor_id=got.actor_id, version=got.version, state=got.state,
                             timestamp=_in_new_york(got.timestamp))


def trigger_new_york_timestamps() -> bool:
    store = new_york_timestamps()
    stamp = datetime(2024, 11, 3, 6, 30, tzinfo=timezone.utc)  # 01:30 EST, the second 01:30
    store.save_event(ev("ny", 1, timestamp=stamp))
    got = store.get_events("ny", 0)[0].timestamp
    return got.tzinfo is NEW_YORK and got.fold == 1 and got.utcoffset() == timedelta(hours=-5)


# -- 5. a datetime subclass of the store's own that keeps nanoseconds -------------------------------

class FixedOffset(tzinfo):
    """A pytz-like fixed offset (pytz.FixedOffset is a tzinfo, not a datetime.timezone)."""

    def __init__(self, offset: timedelta) -> None:
        self._offset = offset

    def utcoffset(self, dt):
        return self._offset

    def dst(self, dt):
        return timedelta(0)

    def tzname(self, dt):
        return f"FixedOffset({self._offset})"

    def __reduce__(self):
        return (FixedOffset, (self._offset,))


class NanoDatetime(datetime):
    """What pandas.Timestamp is to Python: a datetime subclass (not the kit's Timestamp) with a
    ``nanosecond`` attribute below the microsecond."""

    _ns = 0

    @property
    def nanosecond(self) -> int:
        return self._ns


def _nano(stamp: datetime) -> datetime:
    zone = FixedOffset(stamp.utcoffset())
    out = NanoDatetime(stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second,
                       stamp.microsecond, tzinfo=zone, fold=stamp.fold)
    out._ns = getattr(stamp, "nanosecond", 0)
    return out


class PandasLikeTimestamps(CorrectStore):
    """Returns timestamps as a datetime subclass with its own ``nanosecond`` (pandas.Timestamp, as a
    store reading through a DataFrame returns), in the saved offset with a pytz-like tzinfo: the
    instant, the nanoseconds and the offset are all kept.  Spec 2.3 / ES-READ-003: the same instant
    to the microsecond; ES-READ-004 (SHOULD): nanoseconds and offset, which this store keeps."""

    def select(self, actor_id: str, from_version: int) -> list[Event]:
        return [Event(id=e.id, event_type=e.event_type, actor_id=e.actor_id, command_id=e.command_id,
                      version=e.version, data=e.data, timestamp=_nano(e.timestamp))
                for e in super().select(actor_id, from_version)]


def trigger_pandas_like_timestamps() -> bool:
    store = pandas_like_timestamps()
    store.save_event(ev("pd", 1, timestamp=Timestamp.parse("2024-01-02T03:04:05.123456789+05:30")))
    got = store.get_events("pd", 0)[0].timestamp
    return type(got) is NanoDatetime and got.nanosecond == 789 and not isinstance(got, Timestamp)


# -- 6. reads as a dict view, saves that answer with the stored record ------------------------------

class ValuesViewReads(CorrectStore):
    """get_events answers with ``dict.values()`` of an ordered {version: event} map (a view: iterable,
    neither a sequence nor a mapping), and save_event returns the stored event instead of None (an
    ORM's save returning the row).  Spec 3.2: "get_events may answer with any iterable of events
    other than text or a mapping"; the driver ignores what a save returns ("as the seed's
    error-only signature implies")."""

    def save_event(self, event: Event):
        super().save_event(event)
        return event

    def get_events(self, actor_id: str, from_version: int):
        with self.shared.lock:
            return {e.version: e for e in self.select(actor_id, from_version)}.values()


def trigger_values_view_reads() -> bool:
    store = values_view_reads()
    returned = store.save_event(ev("view", 1))
    got = store.get_events("view", 0)
    return returned is not None and type(got).__name__ == "dict_values" and [e.version for e in got] == [1]


# -- 7. an async store that yields to the loop many times per call ----------------------------------

class YieldState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.alock: asyncio.Lock | None = None


class ManyYieldsAsync(CorrectStore):
    """All methods ``async def``; each call takes an asyncio.Lock shared by every handle and yields to
    the loop 20 times inside it (a pure-Python driver parsing a reply chunk by chunk).  Spec 6: the
    kit drives every handle on one loop, so a store may rely on that; how long a call takes is
    outside the specification (section 1: not performance)."""

    YIELDS = 20

    def _lock(self) -> asyncio.Lock:
        if self.shared.alock is None:
            self.shared.alock = asyncio.Lock()
        return self.shared.alock

    async def _run(self, fn, *args):
        async with self._lock():
            for _ in range(self.YIELDS):
                await asyncio.sleep(0)
            return fn(*args)

    async def save_event(self, event: Event) -> None:
        await self._run(CorrectStore.save_event, self, event)

    async def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        return await self._run(CorrectStore.get_events, self, actor_id, from_version)

    async def get_latest_version(self, actor_id: str) -> int:
        return await self._run(CorrectStore.get_latest_version, self, actor_id)

    async def save_snapshot(self, snapshot: ActorSnapshot) -> None:
        await self._run(CorrectStore.save_snapshot, self, snapshot)

    async def get_latest_snapshot(self, actor_id: str) -> ActorSnapshot | None:
        return await self._run(CorrectStore.get_latest_snapshot, self, actor_id)


def trigger_many_yields_async() -> bool:
    async def go() -> bool:
        store = ManyYieldsAsync(YieldState())
        turns = 0
        done = asyncio.ensure_future(store.save_event(ev("y", 1)))
        while not done.done():
            await asyncio.sleep(0)
            turns += 1
        return turns >= ManyYieldsAsync.YIELDS and await store.get_latest_version("y") == 1

    return asyncio.run(go())


# -- 8. async over a private thread pool --------------------------------------------------------

class PoolState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="store-io")


class PrivatePoolAsync(CorrectStore):
    """All methods ``async def``; each runs the blocking work on the store's own pool of two threads
    by loop.run_in_executor (a blocking client wrapped for asyncio, with a bounded pool of its own,
    not the loop's default executor).  Spec 3.2: a method may be ``async def``; the atomic
    check-and-append is the threading lock inside."""

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.shared.pool, fn, self, *args)

    async def save_event(self, event: Event) -> None:
        await self._run(CorrectStore.save_event, event)

    async def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        return await self._run(CorrectStore.get_events, actor_id, from_version)

    async def get_latest_version(self, actor_id: str) -> int:
        return await self._run(CorrectStore.get_latest_version, actor_id)

    async def save_snapshot(self, snapshot: ActorSnapshot) -> None:
        await self._run(CorrectStore.save_snapshot, snapshot)

    async def get_latest_snapshot(self, actor_id: str) -> ActorSnapshot | None:
        return await self._run(CorrectStore.get_latest_snapshot, actor_id)


def trigger_private_pool_async() -> bool:
    async def go() -> bool:
        store = private_pool_async()
        names = []
        await store.save_event(ev("pool", 1))
        names.append(await store._run(lambda self: threading.current_thread().name))
        return names[0].startswith("store-io") and await store.get_latest_version("pool") == 1

    return asyncio.run(go())


unicode13_quoting = factory(Unicode13Quoting)
random_tie_snapshots = factory(RandomTieSnapshots)
nested_read_only_views = factory(NestedReadOnlyViews)
new_york_timestamps = factory(NewYorkTimestamps)
pandas_like_timestamps = factory(PandasLikeTimestamps)
values_view_reads = factory(ValuesViewReads)
many_yields_async = factory(ManyYieldsAsync, YieldState)
private_pool_async = factory(PrivatePoolAsync, PoolState)

TRIGGERS = {
    "unicode13_quoting": trigger_unicode13_quoting,
    "random_tie_snapshots": trigger_random_tie_snapshots,
    "nested_read_only_views": trigger_nested_read_only_views,
    "new_york_timestamps": trigger_new_york_timestamps,
    "pandas_like_timestamps": trigger_pandas_like_timestamps,
    "values_view_reads": trigger_values_view_reads,
    "many_yields_async": trigger_many_yields_async,
    "private_pool_async": trigger_private_pool_async,
}

CONTROLS = list(TRIGGERS)
