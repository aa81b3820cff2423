"""Stores a fifth adversarial review wrote: multi-handle, async and bookkeeping bugs just outside
what the suite probed (the suite certified all 17).

Each store is tests/zoo/base.py's CorrectStore broken in one place.  ``TRIGGERS`` maps each
factory name to a deterministic function showing the bug by direct calls (True when it shows,
tests/test_zoo_escape_triggers.py); ``BROKEN`` names the requirement the real CLI must report
failed for the 15 the suite now catches (tests/test_zoo.py); ``OUT_OF_CONTRACT`` the 2 whose bug
shows only when handles are driven from several event loops, which the specification leaves to
the store (section 4: the kit awaits on one loop of its own; README, "Known gaps").
"""

from __future__ import annotations

import asyncio
import collections
import copy
from datetime import datetime, timezone

from aether_conformance import ActorSnapshot, Event, VersionConflictError
from tests.zoo.base import CorrectStore, ShareState, factory

T0 = datetime(2024, 3, 1, 12, tzinfo=timezone.utc)


def ev(actor, version, id=None):
    return Event(id=id or f"{actor}-{version}", actor_id=actor, version=version, event_type="T",
                 data={"v": version}, timestamp=T0)


def snap(actor, version):
    return ActorSnapshot(actor_id=actor, version=version, state={"v": version}, timestamp=T0)


def conflicts(store, event):
    try:
        store.save_event(event)
    except VersionConflictError as error:
        return error
    return None


# 1 ---------------------------------------------------------------------------------------------
SEGMENT = 4096


class SegmentRollEmptyTail(CorrectStore):
    """A segmented-log store (Kafka/Chronicle-style segment files per stream) that rolls a new,
    empty segment right after the append that fills the current one (write-then-roll), and computes
    the latest version from the last segment's last record, else 0.  After exactly 4096 events
    (and until the next append) get_latest_version says 0; the conflict check uses the same
    function, so version 1 is accepted again."""

    def append(self, event):
        segments = self.shared.events.setdefault(event.actor_id, [[]])
        segments[-1].append(copy.deepcopy(event))
        if len(segments[-1]) == SEGMENT:
            segments.append([])

    def latest(self, actor_id):
        segments = self.shared.events.get(actor_id)
        return segments[-1][-1].version if segments and segments[-1] else 0

    def select(self, actor_id, from_version):
        return [copy.deepcopy(e) for seg in self.shared.events.get(actor_id, []) for e in seg
                if e.version >= from_version]


def trigger_segment():
    s = factory(SegmentRollEmptyTail)()
    for v in range(1, SEGMENT + 1):
        s.save_event(ev("a", v))
    return s.get_latest_version("a") == 0


# 2 ---------------------------------------------------------------------------------------------
class RingState(ShareState):
    def __init__(self):
        super().__init__()
        self.seq = 0
        self.ring = collections.deque(maxlen=1024)  # (seq, actor) invalidations


class InvalidationRingLapse(CorrectStore):
    """A near cache of latest versions per handle (Hazelcast/Ignite near cache, Redis client-side
    caching) kept coherent by an invalidation journal that is a ring buffer of 1024 entries.  A
    handle drains the ring on each call; a handle that sat idle while more than 1024 saves went
    through other handles silently misses invalidations (no sequence-gap repair) and keeps
    answering a stale latest version for actors it had cached."""

    def __init__(self, shared):
        super().__init__(shared)
        self.cache = {}
        self.seen = 0

    def _drain(self):
        for seq, actor in list(self.shared.ring):
            if seq > self.seen:
                self.cache.pop(actor, None)
        self.seen = self.shared.seq

    def save_event(self, event):
        with self.shared.lock:
            self._drain()
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            self.append(event)
            self.shared.seq += 1
            self.shared.ring.append((self.shared.seq, event.actor_id))
            self.cache[event.actor_id] = event.version
            self.seen = self.shared.seq

    def get_events(self, actor_id, from_version):
        with self.shared.lock:
            self._drain()
            return self.select(actor_id, from_version)

    def get_latest_version(self, actor_id):
        with self.shared.lock:
            self._drain()
            if actor_id not in self.cache:
                self.cache[actor_id] = self.latest(actor_id)
            return self.cache[actor_id]


def trigger_ring():
    make = factory(InvalidationRingLapse, RingState)
    a, b = make(), make()
    a.save_event(ev("x", 1))
    b.get_latest_version("x")
    a.save_event(ev("x", 2))
    for i in range(1100):
        a.save_event(ev(f"o{i}", 1))
    return b.get_latest_version("x") == 1


# 3 ---------------------------------------------------------------------------------------------
class SnapshotGuardedBySessionLatest(CorrectStore):
    """An ORM session (Marten/Axon-style identity map) that loaded an aggregate at a stream
    position will not hand out a snapshot ahead of that position: get_latest_version records the
    position per handle; the handle's own event and snapshot saves move it forward; nothing else
    does.  A handle that read the latest version, then sees another handle save events and a
    higher snapshot, keeps returning its older snapshot (or None) - the highest is hidden."""

    def __init__(self, shared):
        super().__init__(shared)
        self.known = {}

    def _bump(self, actor_id, version):
        if actor_id in self.known:
            self.known[actor_id] = max(self.known[actor_id], version)

    def save_event(self, event):
        super().save_event(event)
        self._bump(event.actor_id, event.version)

    def save_snapshot(self, snapshot):
        super().save_snapshot(snapshot)
        self._bump(snapshot.actor_id, snapshot.version)

    def get_latest_version(self, actor_id):
        latest = super().get_latest_version(actor_id)
        self.known[actor_id] = max(self.known.get(actor_id, 0), latest)
        return latest

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            limit = self.known.get(actor_id, float("inf"))
            candidates = [s for s in self.shared.snapshots.get(actor_id, []) if s.version <= limit]
            return copy.deepcopy(max(candidates, key=lambda s: s.version)) if candidates else None


def trigger_snapguard():
    make = factory(SnapshotGuardedBySessionLatest)
    a, b = make(), make()
    a.save_event(ev("x", 1))
    a.save_snapshot(snap("x", 1))
    b.get_latest_version("x")
    a.save_event(ev("x", 2))
    a.save_snapshot(snap("x", 2))
    got = b.get_latest_snapshot("x")
    return got is None or got.version != 2


# 4 ---------------------------------------------------------------------------------------------
class IdempotencyState(ShareState):
    def __init__(self):
        super().__init__()
        self.responses = {}


class IdempotentConflictReplay(CorrectStore):
    """An HTTP event-store API with Stripe-style idempotency keys: the client sends the event id
    as Idempotency-Key, and the server caches every response under it - 409 Conflict included.
    Re-sending the same event after the stream moved on replays the cached 409 with its old
    current_version."""

    def save_event(self, event):
        key = (event.actor_id, event.id, event.version)
        with self.shared.lock:
            cached = self.shared.responses.get(key)
            if cached is not None:
                raise copy.copy(cached)
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                error = self.conflict(event, latest)
                self.shared.responses[key] = error
                raise error
            self.append(event)


def trigger_idem():
    s = factory(IdempotentConflictReplay, IdempotencyState)()
    s.save_event(ev("x", 1))
    s.save_event(ev("x", 2))
    e = ev("x", 1, id="retry")
    first = conflicts(s, e)
    s.save_event(ev("x", 3))
    second = conflicts(s, e)
    return first.current_version == 2 and second.current_version == 2


# 5 ---------------------------------------------------------------------------------------------
class LruLockState(ShareState):
    def __init__(self):
        super().__init__()
        self.locks = collections.OrderedDict()


class AsyncLruActorLocks(CorrectStore):
    """An asyncio store whose per-actor asyncio.Lock objects live in a bounded LRU
    (cachetools.LRUCache(maxsize=1024), the common "lock per key" recipe).  Between the check and
    the append the store awaits its I/O.  When more than 1024 other actors get locks while one
    save is inside its critical section, that actor's lock is evicted; the next save of the same
    actor makes a fresh lock, enters too, and both append the same version."""

    async def _io(self):
        await asyncio.sleep(0)

    def _lock(self, actor_id):
        locks = self.shared.locks
        if actor_id in locks:
            locks.move_to_end(actor_id)
            return locks[actor_id]
        lock = locks[actor_id] = asyncio.Lock()
        if len(locks) > 1024:
            locks.popitem(last=False)
        return lock

    async def save_event(self, event):
        async with self._lock(event.actor_id):
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            await self._io()
            self.append(event)

    async def get_events(self, actor_id, from_version):
        return self.select(actor_id, from_version)

    async def get_latest_version(self, actor_id):
        return self.latest(actor_id)


def trigger_lru_locks():
    s = factory(AsyncLruActorLocks, LruLockState)()

    async def run():
        calls = [s.save_event(ev("x", 1, id="first"))] + [s.save_event(ev(f"o{i}", 1)) for i in range(1025)] \
            + [s.save_event(ev("x", 1, id="second"))]
        await asyncio.gather(*calls, return_exceptions=True)
        return [e.version for e in await s.get_events("x", 0)]

    return asyncio.run(run()) == [1, 1]


# 6 ---------------------------------------------------------------------------------------------
class StandbyState(ShareState):
    def __init__(self):
        super().__init__()
        self.handles = 0


class PgpoolStandbyAfter512Sessions(CorrectStore):
    """pgpool-II load balancing with a primary backend limited to 512 client sessions: sessions
    beyond the 512th are routed (for reads) to a hot standby whose WAL replay is paused
    (recovery_target_action = pause after a base backup), so it serves the data as of when that
    session connected.  Saves go to the primary and are checked there."""

    def __init__(self, shared):
        super().__init__(shared)
        with shared.lock:
            shared.handles += 1
            self.number = shared.handles
            self.frozen = copy.deepcopy(shared.events) if self.number > 512 else None

    def select(self, actor_id, from_version):
        source = self.frozen if self.frozen is not None else self.shared.events
        return [copy.deepcopy(e) for e in source.get(actor_id, []) if e.version >= from_version]

    def get_latest_version(self, actor_id):
        with self.shared.lock:
            if self.frozen is None:
                return self.latest(actor_id)
            stream = self.frozen.get(actor_id)
            return stream[-1].version if stream else 0


def trigger_standby():
    make = factory(PgpoolStandbyAfter512Sessions, StandbyState)
    first = make()
    for _ in range(600):
        make()
    late = make()
    first.save_event(ev("x", 1))
    return late.get_latest_version("x") == 0


# 7 ---------------------------------------------------------------------------------------------
class LoopBufferState(ShareState):
    def __init__(self):
        super().__init__()
        self.buffers = {}  # event loop -> snapshots not yet flushed


class AsyncPerLoopSnapshotBuffer(CorrectStore):
    """An asyncio store with write-behind snapshots (an aiocache/motor bulk-writer pattern): each
    event loop has its own buffer, flushed to the database every 64 snapshots.  Reads on the same
    loop merge the buffer (read-your-writes), so every handle driven from one loop is consistent;
    a handle made and driven on another event loop does not see the unflushed snapshots."""

    FLUSH = 64

    def _buffer(self):
        return self.shared.buffers.setdefault(asyncio.get_running_loop(), [])

    async def save_event(self, event):
        self.check_and_append(event)

    async def get_events(self, actor_id, from_version):
        return CorrectStore.get_events(self, actor_id, from_version)

    async def get_latest_version(self, actor_id):
        return CorrectStore.get_latest_version(self, actor_id)

    async def save_snapshot(self, snapshot):
        with self.shared.lock:
            buffer = self._buffer()
            buffer.append(copy.deepcopy(snapshot))
            if len(buffer) >= self.FLUSH:
                for item in buffer:
                    self.shared.snapshots.setdefault(item.actor_id, []).append(item)
                buffer.clear()

    async def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            candidates = list(self.shared.snapshots.get(actor_id, [])) + [
                s for s in self._buffer() if s.actor_id == actor_id]
            return copy.deepcopy(max(candidates, key=lambda s: s.version)) if candidates else None


def trigger_loop_buffer():
    make = factory(AsyncPerLoopSnapshotBuffer, LoopBufferState)
    a, b = make(), make()

    async def write():
        await a.save_event(ev("x", 1))
        await a.save_snapshot(snap("x", 1))

    async def read():
        return await b.get_latest_snapshot("x"), await b.get_latest_version("x")

    asyncio.run(write())
    got, latest = asyncio.run(read())  # a second event loop
    return latest == 1 and got is None


# 8 ---------------------------------------------------------------------------------------------
class UowState(ShareState):
    pass


class CloseRollsBackUncommitted(CorrectStore):
    """A SQL Server/MySQL store whose readers use READ UNCOMMITTED (NOLOCK) and whose writer
    connection commits in batches of 100 saves for throughput: every handle sees every save at
    once, conflicts included, but close() ends the connection without COMMIT and the server rolls
    back the saves of the open batch, after they were acknowledged."""

    BATCH = 100

    def __init__(self, shared):
        super().__init__(shared)
        self.uncommitted = []

    def save_event(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            self.append(event)
            self.uncommitted.append(event.actor_id)
            if len(self.uncommitted) >= self.BATCH:
                self.uncommitted.clear()

    def close(self):
        with self.shared.lock:
            for actor_id in reversed(self.uncommitted):
                self.shared.events[actor_id].pop()
            self.uncommitted.clear()


def trigger_close_rollback():
    make = factory(CloseRollsBackUncommitted, UowState)
    a, b = make(), make()
    for v in (1, 2, 3):
        a.save_event(ev("x", v))
    a.close()
    return b.get_latest_version("x") == 0


# 9 ---------------------------------------------------------------------------------------------
class FailFastHintConflict(CorrectStore):
    """A gRPC client (EventStoreDB-style) that remembers the last stream revision it saw per stream
    (own appends, reads of the latest, conflicts) and fails fast with WrongExpectedVersion when the
    expected version is obviously stale - 1000 or more behind what it remembers - without a round
    trip.  The refusal is right, but its current_version is the remembered one, which another
    handle may have moved past."""

    def __init__(self, shared):
        super().__init__(shared)
        self.hint = {}

    def save_event(self, event):
        hinted = self.hint.get(event.actor_id)
        if hinted is not None and event.version <= hinted - 1000:
            raise self.conflict(event, hinted)
        try:
            super().save_event(event)
        except VersionConflictError as error:
            self.hint[event.actor_id] = error.current_version
            raise
        self.hint[event.actor_id] = event.version

    def get_latest_version(self, actor_id):
        latest = super().get_latest_version(actor_id)
        self.hint[actor_id] = latest
        return latest


def trigger_fail_fast():
    make = factory(FailFastHintConflict)
    a, b = make(), make()
    a.save_event(ev("x", 5000))
    b.save_event(ev("x", 5001))
    error = conflicts(a, ev("x", 1))
    return error is not None and error.current_version == 5000


# 10 --------------------------------------------------------------------------------------------
class PendingState(ShareState):
    def __init__(self):
        super().__init__()
        self.reserved = {}


class AsyncFireAndForgetAppend(CorrectStore):
    """An asyncio store that reserves the version synchronously (so racing saves conflict
    correctly) but writes the event with asyncio.create_task(...) and returns at once (w=0 /
    fire-and-forget producer).  Calls arriving as separate tasks run after the append, so every
    handle reads its writes; but a coroutine that awaits save_event and then reads in the same
    task reads before the append: the latest version and events lack the acknowledged save."""

    async def save_event(self, event):
        with self.shared.lock:
            latest = max(self.latest(event.actor_id), self.shared.reserved.get(event.actor_id, 0))
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            self.shared.reserved[event.actor_id] = event.version
        event = copy.deepcopy(event)

        async def write():
            with self.shared.lock:
                self.append(event)

        asyncio.get_running_loop().create_task(write())

    async def get_events(self, actor_id, from_version):
        return CorrectStore.get_events(self, actor_id, from_version)

    async def get_latest_version(self, actor_id):
        return CorrectStore.get_latest_version(self, actor_id)


def trigger_fire_and_forget():
    s = factory(AsyncFireAndForgetAppend, PendingState)()

    async def run():
        await s.save_event(ev("x", 1))
        return await s.get_latest_version("x")

    return asyncio.run(run()) == 0


# 11 --------------------------------------------------------------------------------------------
class LoopLockState(ShareState):
    def __init__(self):
        super().__init__()
        self.loop_locks = {}


class AsyncLockPerEventLoop(CorrectStore):
    """A process-local asyncio store (check-then-insert, no unique index) serialised by an
    asyncio.Lock - kept per event loop in a dict keyed by the running loop, the usual fix for
    "Lock is bound to a different event loop".  All handles driven from one loop exclude each
    other; handles driven from two loops (threads each running asyncio.run, several server
    threads) do not, and both win the same version."""

    async def _io(self):
        await asyncio.sleep(0)

    def _lock(self):
        with self.shared.lock:
            return self.shared.loop_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())

    async def save_event(self, event):
        async with self._lock():
            with self.shared.lock:
                latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            await self._io()
            with self.shared.lock:
                self.append(event)

    async def get_events(self, actor_id, from_version):
        return CorrectStore.get_events(self, actor_id, from_version)

    async def get_latest_version(self, actor_id):
        return CorrectStore.get_latest_version(self, actor_id)


def trigger_loop_locks():
    import threading

    make = factory(AsyncLockPerEventLoop, LoopLockState)
    barrier = threading.Barrier(2)

    async def meet():
        await asyncio.to_thread(barrier.wait, 10)

    def run(number):
        handle = make()
        handle._io = meet  # both writers are between check and append at once
        try:
            asyncio.run(handle.save_event(ev("x", 1, id=f"w{number}")))
        except VersionConflictError:
            pass

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [e.version for e in asyncio.run(make().get_events("x", 0))] == [1, 1]


# 12 --------------------------------------------------------------------------------------------
BUCKET = 5000


class MongoBucketFirstDocLatest(CorrectStore):
    """MongoDB bucket pattern: an actor's events are pushed into a document's array, 5,000 per
    bucket ({actor, bucket, events: [...]}); a full bucket overflows into bucket n+1.  The
    version guard is the update filter {"actor": a, "events.version": {"$not": {"$gte": v}}}
    applied to the *first* bucket (find_one sorted by bucket ascending, the index order); once an
    actor has more than 5,000 events the guard sees only versions <= 5,000, so the latest version
    and conflicts above it are judged from the first bucket."""

    def latest(self, actor_id):
        stream = self.shared.events.get(actor_id)
        if not stream:
            return 0
        return stream[min(len(stream), BUCKET) - 1].version


def trigger_bucket():
    s = factory(MongoBucketFirstDocLatest)()
    for v in range(1, BUCKET + 2):
        s.save_event(ev("a", v))
    return conflicts(s, ev("a", BUCKET + 1, id="dup")) is None


# 13 --------------------------------------------------------------------------------------------
class BloomState(ShareState):
    def __init__(self):
        super().__init__()
        self.bloom = set()  # stands for the filter's bits: no false negatives until reset
        self.capacity = 8192


class SnapshotBloomResetOnSaturation(CorrectStore):
    """A snapshot table fronted by a "has snapshot" filter (a Bloom filter sized for 8,192 actors)
    that answers None without a lookup when the filter says no.  When the filter saturates it is
    reset to empty (instead of being rebuilt from the table), so every actor whose snapshot was
    saved before the reset reads None until it saves another."""

    def save_snapshot(self, snapshot):
        super().save_snapshot(snapshot)
        with self.shared.lock:
            if snapshot.actor_id not in self.shared.bloom and len(self.shared.bloom) >= self.shared.capacity:
                self.shared.bloom.clear()
            self.shared.bloom.add(snapshot.actor_id)

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            if actor_id not in self.shared.bloom:
                return None
        return super().get_latest_snapshot(actor_id)


def trigger_bloom():
    s = factory(SnapshotBloomResetOnSaturation, BloomState)()
    s.save_snapshot(snap("x", 1))
    for i in range(8192):
        s.save_snapshot(snap(f"o{i}", 1))
    return s.get_latest_snapshot("x") is None


# 14 --------------------------------------------------------------------------------------------
class LazyTableState(ShareState):
    def __init__(self):
        super().__init__()
        self.snapshot_table = False


class SnapshotTableProbeCached(CorrectStore):
    """A store that creates its snapshots table lazily (CREATE TABLE IF NOT EXISTS on the first
    save_snapshot).  A handle whose read finds no table ("no such table: snapshots") remembers
    that the store has no snapshots and answers None from then on without asking again - even
    after another handle creates the table and saves snapshots."""

    def __init__(self, shared):
        super().__init__(shared)
        self.no_table = False

    def save_snapshot(self, snapshot):
        with self.shared.lock:
            self.shared.snapshot_table = True
        super().save_snapshot(snapshot)

    def get_latest_snapshot(self, actor_id):
        if self.no_table:
            return None
        with self.shared.lock:
            if not self.shared.snapshot_table:
                self.no_table = True
                return None
        return super().get_latest_snapshot(actor_id)


def trigger_table_probe():
    make = factory(SnapshotTableProbeCached, LazyTableState)
    a, b = make(), make()
    b.get_latest_snapshot("x")
    a.save_event(ev("x", 1))
    a.save_snapshot(snap("x", 1))
    return b.get_latest_snapshot("x") is None


# 15 --------------------------------------------------------------------------------------------
class HotState(ShareState):
    def __init__(self):
        super().__init__()
        self.conflicts = collections.Counter()


class HotStreamMailboxConflict(CorrectStore):
    """Contention escalation (a "hot aggregate" mode as in actor-based stores): after 2,000
    conflicts on one actor, its saves go through a single-writer mailbox that applies them in
    order.  The mailbox refuses stale versions correctly but only knows that the write lost, so
    its VersionConflictError reports current_version = attempted_version."""

    HOT = 2000

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                hot = self.shared.conflicts[event.actor_id] >= self.HOT
                self.shared.conflicts[event.actor_id] += 1
                raise self.conflict(event, event.version if hot else latest)
            self.append(event)


def trigger_hot():
    s = factory(HotStreamMailboxConflict, HotState)()
    s.save_event(ev("x", 1))
    s.save_event(ev("x", 2))
    for _ in range(2000):
        conflicts(s, ev("x", 1, id="c"))
    error = conflicts(s, ev("x", 1, id="c"))
    return error.current_version == 1


# 16 --------------------------------------------------------------------------------------------
class CounterState(ShareState):
    def __init__(self):
        super().__init__()
        self.counters = {}
        self.inflight = {}


class AsyncCancelBetweenInsertAndCounter(CorrectStore):
    """An asyncio store that writes in two statements without a transaction: INSERT the event,
    await, then UPDATE streams SET version = v (the counter that both the check and
    get_latest_version read).  A save cancelled between the two (an HTTP client disconnecting
    cancels the handler task; asyncio.wait_for timing out) leaves the event stored and the counter
    behind: the latest version is wrong and the same version is accepted again."""

    async def _io(self):
        await asyncio.sleep(0)

    def latest(self, actor_id):
        # the counter, or the version of a save in flight (its row lock)
        return max(self.shared.counters.get(actor_id, 0), self.shared.inflight.get(actor_id, 0))

    async def save_event(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            self.append(event)
            self.shared.inflight[event.actor_id] = event.version
        try:
            await self._io()
            with self.shared.lock:
                self.shared.counters[event.actor_id] = event.version
        finally:  # the row lock goes with the cancelled task; the UPDATE never ran
            with self.shared.lock:
                if self.shared.inflight.get(event.actor_id) == event.version:
                    del self.shared.inflight[event.actor_id]

    async def get_events(self, actor_id, from_version):
        return CorrectStore.get_events(self, actor_id, from_version)

    async def get_latest_version(self, actor_id):
        return CorrectStore.get_latest_version(self, actor_id)


def trigger_cancel():
    s = factory(AsyncCancelBetweenInsertAndCounter, CounterState)()

    async def run():
        task = asyncio.get_running_loop().create_task(s.save_event(ev("x", 1, id="a")))
        await asyncio.sleep(0)  # the task has inserted and is awaiting its UPDATE
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await s.save_event(ev("x", 1, id="b"))
        return [e.version for e in await s.get_events("x", 0)]

    return asyncio.run(run()) == [1, 1]


# 17 --------------------------------------------------------------------------------------------
class SessionState(ShareState):
    def __init__(self):
        super().__init__()
        self.handles = 0
        self.applied = set()  # (client id, sequence number) of requests already applied


class ClientIdTinyintDedupe(CorrectStore):
    """Exactly-once writes with client sessions (Raft client sessions, Kafka's idempotent
    producer): each handle registers a client id and numbers its saves 1, 2, 3...; the server
    acknowledges a (client id, sequence) it has already applied without applying it again.  The
    client id column is a TINYINT UNSIGNED filled from the handle counter, so the 257th handle
    gets client id 1 again: its first saves are taken for retries of handle 1's and acknowledged
    without being stored."""

    def __init__(self, shared):
        super().__init__(shared)
        with shared.lock:
            shared.handles += 1
            self.client = shared.handles % 256
        self.sequence = 0

    def save_event(self, event):
        with self.shared.lock:
            self.sequence += 1
            request = (self.client, self.sequence)
            if request in self.shared.applied:
                return  # "a retry of a request already applied"
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            self.append(event)
            self.shared.applied.add(request)


def trigger_client_id():
    make = factory(ClientIdTinyintDedupe, SessionState)
    first = make()
    first.save_event(ev("x", 1))
    handles = [make() for _ in range(256)]
    handles[-1].save_event(ev("y", 1))  # the 257th handle: client id 1, sequence 1
    return first.get_latest_version("y") == 0


TRIGGERS = {
    "segment": trigger_segment,
    "ring": trigger_ring,
    "snapguard": trigger_snapguard,
    "idem": trigger_idem,
    "lru_locks": trigger_lru_locks,
    "standby": trigger_standby,
    "loop_buffer": trigger_loop_buffer,
    "close_rollback": trigger_close_rollback,
    "fail_fast": trigger_fail_fast,
    "fire_and_forget": trigger_fire_and_forget,
    "loop_locks": trigger_loop_locks,
    "bucket": trigger_bucket,
    "bloom": trigger_bloom,
    "table_probe": trigger_table_probe,
    "hot": trigger_hot,
    "cancel": trigger_cancel,
    "client_id": trigger_client_id,
}

segment = factory(SegmentRollEmptyTail)
ring = factory(InvalidationRingLapse, RingState)
snapguard = factory(SnapshotGuardedBySessionLatest)
idem = factory(IdempotentConflictReplay, IdempotencyState)
lru_locks = factory(AsyncLruActorLocks, LruLockState)
standby = factory(PgpoolStandbyAfter512Sessions, StandbyState)
loop_buffer = factory(AsyncPerLoopSnapshotBuffer, LoopBufferState)
close_rollback = factory(CloseRollsBackUncommitted, UowState)
fail_fast = factory(FailFastHintConflict)
fire_and_forget = factory(AsyncFireAndForgetAppend, PendingState)
loop_locks = factory(AsyncLockPerEventLoop, LoopLockState)
bucket = factory(MongoBucketFirstDocLatest)
bloom = factory(SnapshotBloomResetOnSaturation, BloomState)
table_probe = factory(SnapshotTableProbeCached, LazyTableState)
hot = factory(HotStreamMailboxConflict, HotState)
cancel = factory(AsyncCancelBetweenInsertAndCounter, CounterState)
client_id = factory(ClientIdTinyintDedupe, SessionState)

BROKEN = {
    "segment": "ES-LATEST-002",
    "ring": "ES-HANDLE-001",
    "snapguard": "ES-HANDLE-001",
    "idem": "ES-ERR-001",
    "close_rollback": "ES-HANDLE-001",
    "fail_fast": "ES-HANDLE-001",
    "bucket": "ES-LATEST-002",
    "hot": "ES-ERR-001",
    "table_probe": "ES-HANDLE-001",

    "lru_locks": "ES-CONC-001",
    "fire_and_forget": "ES-LATEST-002",
    "cancel": "ES-SAVE-002",
    "standby": "ES-HANDLE-001",
    "client_id": "ES-SAVE-001",
    "bloom": "SS-SNAP-002",
}

# Stores whose bug needs handles driven from two event loops.  The kit drives every handle on the one
# loop it owns, and the specification lets a store rely on that (asyncio clients bound to one loop
# are the norm), so these conform: each trigger shows what would break outside that contract.
OUT_OF_CONTRACT = {
    "loop_locks": ("ES-CONC-001", "writers racing from two event loops"),
    "loop_buffer": ("ES-HANDLE-001", "a snapshot saved from one event loop and read from another"),
}
