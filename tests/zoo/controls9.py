"""Correct stores with unusual but legal behaviour (ninth adversarial review): the suite must
certify every one of them.  None repeats a control of controls.py, controls6.py, controls8.py or
escapes7c.py.  They aim at what a real client library does to the process around it (its own
event loop in a thread, background threads, process-wide settings, chatty logging, a slow
connect) rather than at the records themselves.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import sys
import threading
import time
import warnings
import weakref

from aether_conformance import ActorSnapshot, Event, VersionConflictError

from .base import CorrectStore, ShareState, factory


class DriverError(Exception):
    """The low-level error a client library raises from its wire layer."""


def _conflict_from_deep(event: Event, current: int) -> VersionConflictError:
    """The conflict as a client library raises it: translated from its wire error, chained
    (``__cause__``), with a note added (PEP 678).  Spec 3.2: a conflict is VersionConflictError or
    a subclass; its text is fixed by ES-ERR-002, its other attributes are not."""
    try:
        raise DriverError(f"SQLSTATE 40001 on stream {event.actor_id!r}")
    except DriverError as wire:
        error = VersionConflictError(actor_id=event.actor_id, attempted_version=event.version,
                                     current_version=current)
        error.__cause__ = wire
        error.add_note("raised by the wire layer; the transaction was rolled back")
        return error


# -- 1. an async client that runs on its own event loop, in a thread of its own -----------------

class _LoopThread:
    """One event loop in a daemon thread, started by the first handle and shared by every handle
    of the factory, as a client library that owns its I/O loop does (grpc.aio behind a sync
    facade, an "anyio portal", asgiref's async_to_sync in reverse)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(ready.set)
            self.loop.run_forever()

        threading.Thread(target=run, name="own-client-loop", daemon=True).start()
        ready.wait()


class OwnLoopState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.io: _LoopThread | None = None
        self.io_lock = threading.Lock()
        self.locks: dict[str, asyncio.Lock] = {}  # used on the client's own loop only

    def own_loop(self) -> asyncio.AbstractEventLoop:
        with self.io_lock:
            if self.io is None:
                self.io = _LoopThread()
            return self.io.loop


class OwnLoopClient:
    """Every method is ``async def``; its work runs on the client's OWN loop (another thread) and
    the result is handed back to the caller's loop with asyncio.wrap_future.  A caller that is
    cancelled cancels the work on the client's loop (run_coroutine_threadsafe propagates it); the
    check and the append run with no await between them, so a save has happened or not, never
    half.  Spec 3.2: methods may be async def; spec 6 lets a store rely on the kit's loop, but
    does not require it to use that loop for its I/O.  Conflicts are chained from a wire error."""

    def __init__(self, shared: OwnLoopState) -> None:
        self.shared = shared
        self.loop = shared.own_loop()

    async def _on_own_loop(self, coro):
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    # -- what runs on the client's loop
    async def _save(self, event: Event) -> None:
        await asyncio.sleep(0)  # the request goes out
        lock = self.shared.locks.setdefault(event.actor_id, asyncio.Lock())
        async with lock:
            await asyncio.sleep(0)  # SELECT max(version) round trip, inside the actor's lock
            with self.shared.lock:
                stream = self.shared.events.setdefault(event.actor_id, [])
                latest = stream[-1].version if stream else 0
                if event.version <= latest:
                    raise _conflict_from_deep(event, latest)
                stream.append(copy.deepcopy(event))
        await asyncio.sleep(0)  # the acknowledgement comes back

    async def _events(self, actor_id: str, from_version: int) -> list[Event]:
        await asyncio.sleep(0)
        with self.shared.lock:
            return [copy.deepcopy(e) for e in self.shared.events.get(actor_id, ()) if e.version >= from_version]

    async def _latest(self, actor_id: str) -> int:
        await asyncio.sleep(0)
        with self.shared.lock:
            stream = self.shared.events.get(actor_id)
            return stream[-1].version if stream else 0

    async def _save_snapshot(self, snapshot: ActorSnapshot) -> None:
        await asyncio.sleep(0)
        with self.shared.lock:
            self.shared.snapshots.setdefault(snapshot.actor_id, []).append(copy.deepcopy(snapshot))

    async def _snapshot(self, actor_id: str) -> ActorSnapshot | None:
        await asyncio.sleep(0)
        with self.shared.lock:
            kept = self.shared.snapshots.get(actor_id)
            return copy.deepcopy(max(kept, key=lambda s: s.version)) if kept else None

    # -- the store interface
    async def save_event(self, event: Event) -> None:
        await self._on_own_loop(self._save(event))

    async def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        return await self._on_own_loop(self._events(actor_id, from_version))

    async def get_latest_version(self, actor_id: str) -> int:
        return await self._on_own_loop(self._latest(actor_id))

    async def save_snapshot(self, snapshot: ActorSnapshot) -> None:
        await self._on_own_loop(self._save_snapshot(snapshot))

    async def get_latest_snapshot(self, actor_id: str) -> ActorSnapshot | None:
        return await self._on_own_loop(self._snapshot(actor_id))

    async def aclose(self) -> None:
        await self._on_own_loop(asyncio.sleep(0))


own_loop_client = factory(OwnLoopClient, OwnLoopState)


# -- 2. process-wide settings changed by a client library at connect time ----------------------

_settings_done = False


def _change_process_settings() -> None:
    """What libraries do to the process they are loaded in: a local time zone (TZ + tzset, as
    apps that read timestamps in local time set), a long GIL switch interval (set for throughput
    by some C-extension clients), warnings shown every time, a raised recursion limit, DEBUG
    logging for the whole process (logging.basicConfig), and the working directory changed to
    "/" (python-daemon's default).  Nothing in the spec forbids any of it."""
    global _settings_done
    if _settings_done:
        return
    _settings_done = True
    os.environ["TZ"] = "Pacific/Chatham"  # +12:45 / +13:45, a DST zone with a 45-minute offset
    time.tzset()
    sys.setswitchinterval(0.02)
    warnings.simplefilter("always")
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
    os.chdir("/")


class LocalTimeProcessSettings(CorrectStore):
    """Reads timestamps back in the process's local zone (datetime.astimezone() with no argument,
    after TZ=Pacific/Chatham): the same instant (ES-READ-003), nanoseconds and offset lost
    (ES-READ-004, a SHOULD).  Its factory changes process-wide settings (see
    _change_process_settings).  Conflicts are chained from a wire error."""

    def __init__(self, shared: ShareState) -> None:
        _change_process_settings()
        super().__init__(shared)

    def conflict(self, event: Event, latest: int) -> Exception:
        return _conflict_from_deep(event, latest)

    def select(self, actor_id: str, from_version: int) -> list[Event]:
        return [copy.deepcopy(e).__class__(**{**_fields(e), "timestamp": _local(e.timestamp)})
                for e in self.shared.events.get(actor_id, []) if e.version >= from_version]

    def get_latest_snapshot(self, actor_id: str) -> ActorSnapshot | None:
        found = super().get_latest_snapshot(actor_id)
        if found is None:
            return None
        return ActorSnapshot(actor_id=found.actor_id, version=found.version, state=found.state,
                             timestamp=_local(found.timestamp))


def _fields(event: Event) -> dict:
    return dict(id=event.id, event_type=event.event_type, actor_id=event.actor_id, command_id=event.command_id,
                version=event.version, data=copy.deepcopy(event.data), timestamp=event.timestamp)


def _local(ts):
    """The instant in the process's local zone, to the microsecond; a time the local zone cannot
    hold within years 1..9999 is kept as it was (spec 2.3)."""
    try:
        from datetime import datetime
        plain = datetime(ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second, ts.microsecond,
                         tzinfo=ts.tzinfo, fold=ts.fold)
        return plain.astimezone()
    except (OverflowError, ValueError):
        return ts


local_time_process_settings = factory(LocalTimeProcessSettings)


# -- 3. chatty logging, prints and warnings on every call, and a heartbeat thread --------------

_log = logging.getLogger("chattydb.client")


class ChattyState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.heartbeat: threading.Thread | None = None
        self.beats = 0


class ChattyClient(CorrectStore):
    """logging.basicConfig(level=DEBUG) at connect time and a DEBUG line for every call, a print()
    to stdout for every save and one to stderr for every conflict, a DeprecationWarning for every
    new handle (a renamed keyword), and a daemon heartbeat thread that takes the store's lock every
    2 ms and logs every 100 beats (a lease renewal).  Spec 1: output is not covered; spec 3.2 bounds
    only calls."""

    def __init__(self, shared: ChattyState) -> None:
        super().__init__(shared)
        logging.basicConfig(level=logging.DEBUG)
        warnings.warn("ChattyClient(timeout=...) is deprecated; use connect_timeout", DeprecationWarning, stacklevel=2)
        with shared.lock:
            if shared.heartbeat is None:
                shared.heartbeat = threading.Thread(target=_beat, args=(weakref.ref(shared),),
                                                    name="chattydb-heartbeat", daemon=True)
                shared.heartbeat.start()
        _log.debug("connected handle %x", id(self))

    def save_event(self, event: Event) -> None:
        _log.debug("save_event actor=%r version=%d", event.actor_id[:40], event.version)
        try:
            super().save_event(event)
        except VersionConflictError as conflict:
            print(f"chattydb: conflict on {event.actor_id[:40]!r}: {conflict}", file=sys.stderr)
            raise
        print(f"chattydb: saved {event.actor_id[:40]!r} v{event.version}")

    def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        _log.debug("get_events actor=%r from=%d", actor_id[:40], from_version)
        return super().get_events(actor_id, from_version)

    def get_latest_version(self, actor_id: str) -> int:
        _log.debug("get_latest_version actor=%r", actor_id[:40])
        return super().get_latest_version(actor_id)

    def close(self) -> None:
        _log.info("closed handle %x", id(self))


def _beat(shared_ref) -> None:
    while True:
        shared = shared_ref()
        if shared is None:
            return
        with shared.lock:
            shared.beats += 1
            beats = shared.beats
        del shared
        if beats % 100 == 0:
            _log.debug("heartbeat %d", beats)
        time.sleep(0.002)


chatty_client = factory(ChattyClient, ChattyState)


# -- 4. a slow lazy connect, a session per handle, a slow flush at the last close ---------------

class LazyState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.connected = False
        self.connect_lock = threading.Lock()
        self.open_handles = 0


class LazyConnectSlowClose(CorrectStore):
    """Connects on the first call, not in the factory: the first call of the store waits 2.5 s
    (DNS, TLS, authentication against a cold server) and every call that arrives meanwhile waits
    for it; each handle's first call opens a session (5 ms).  close() takes 2 ms, and the close of
    the last open handle flushes for 1.5 s.  Spec 3.2: each call is bounded by the per-call timeout
    only (10 s by default); spec 1: performance is not covered."""

    def __init__(self, shared: LazyState) -> None:
        super().__init__(shared)
        self.session = False
        self.closed = False
        with shared.lock:
            shared.open_handles += 1

    def _connect(self) -> None:
        if not self.shared.connected:
            with self.shared.connect_lock:
                if not self.shared.connected:
                    time.sleep(2.5)
                    self.shared.connected = True
        if not self.session:
            time.sleep(0.005)
            self.session = True

    def save_event(self, event):
        self._connect()
        return super().save_event(event)

    def get_events(self, actor_id, from_version):
        self._connect()
        return super().get_events(actor_id, from_version)

    def get_latest_version(self, actor_id):
        self._connect()
        return super().get_latest_version(actor_id)

    def save_snapshot(self, snapshot):
        self._connect()
        return super().save_snapshot(snapshot)

    def get_latest_snapshot(self, actor_id):
        self._connect()
        return super().get_latest_snapshot(actor_id)

    def close(self) -> None:
        with self.shared.lock:
            if self.closed:
                return
            self.closed = True
            self.shared.open_handles -= 1
            last = self.shared.open_handles == 0
        time.sleep(1.5 if last else 0.002)


lazy_connect_slow_close = factory(LazyConnectSlowClose, LazyState)


CONTROLS = ["own_loop_client", "local_time_process_settings", "chatty_client", "lazy_connect_slow_close"]


# -- 5. a cached client: the factory is a callable object that hands out one client -------------

class SingletonClient(CorrectStore):
    """The one client of the process, handed out again by every call of the factory (redis-py's
    ``from_url`` behind a module cache, boto3's cached session client); close() counts its users
    and only the last one really closes it.  Spec 3.2: "Each call of the factory returns a handle;
    all handles of one factory MUST share one store" -- the same object shares it trivially."""

    def __init__(self, shared: ShareState) -> None:
        super().__init__(shared)
        self.users = 0
        self.users_lock = threading.Lock()
        self.closed = False

    def close(self) -> None:
        with self.users_lock:
            self.users -= 1
            if self.users == 0:
                self.closed = True  # a later connect() reopens it


class Connector:
    """The factory: a callable object whose parameters all have defaults (a DSN read from the
    environment), not a function.  Spec 3.2: MODULE:ATTR is "a zero-argument factory"."""

    def __init__(self) -> None:
        self.client: SingletonClient | None = None
        self.lock = threading.Lock()
        self.shared = ShareState()

    def __call__(self, *, dsn: str | None = None, pool_size: int = 10) -> SingletonClient:
        with self.lock:
            if self.client is None:
                self.client = SingletonClient(self.shared)
            with self.client.users_lock:
                self.client.users += 1
                self.client.closed = False
            return self.client


singleton_client = Connector()


# -- 6. stop-the-world pauses ----------------------------------------------------------------

class PauseState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.gate = threading.Lock()


class StopTheWorldPauses(CorrectStore):
    """Every 1,500th call (any method, any handle) holds every call of the store for 2.5 s (a
    checkpoint, a stop-the-world GC pause of the server, a pool recycling its connections): calls
    that arrive meanwhile wait, then go on in order.  Each call answers within the per-call timeout
    (10 s by default); spec 1: performance is not covered."""

    def _gate(self) -> None:
        with self.shared.gate:
            self.shared.calls += 1
            if self.shared.calls % 1500 == 0:
                time.sleep(2.5)

    def save_event(self, event):
        self._gate()
        return super().save_event(event)

    def get_events(self, actor_id, from_version):
        self._gate()
        return super().get_events(actor_id, from_version)

    def get_latest_version(self, actor_id):
        self._gate()
        return super().get_latest_version(actor_id)

    def save_snapshot(self, snapshot):
        self._gate()
        return super().save_snapshot(snapshot)

    def get_latest_snapshot(self, actor_id):
        self._gate()
        return super().get_latest_snapshot(actor_id)


stop_the_world_pauses = factory(StopTheWorldPauses, PauseState)

CONTROLS += ["singleton_client", "stop_the_world_pauses"]
