"""Load a store factory and drive its handles, sync or async, under timeouts.

Every test talks to a store through a :class:`DrivenHandle`: each call runs
under a per-call timeout, its result's type is checked, and anything a store
should not do (hang, return the wrong type, raise something other than
``VersionConflictError``) becomes a :class:`StoreMisbehaviour` whose message
says which call, with which arguments, and what came back.  The plugin
prefixes that message with the requirement IDs of the test that made the call.

Sync handles run their calls on daemon worker threads, so a hung call can be
abandoned without hanging the run.  Async handles run on one event loop owned
by the driver, in its own thread; factories that return an awaitable are
awaited there, so clients bind to that loop.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import queue
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from .errors import VersionConflictError
from .model import ActorSnapshot, Event

__all__ = [
    "StoreLoadError",
    "StoreMisbehaviour",
    "StoreTimeout",
    "StoreRaised",
    "StoreWrongType",
    "load_factory",
    "StoreDriver",
    "DrivenHandle",
]

EVENT_METHODS = ("save_event", "get_events", "get_latest_version")
SNAPSHOT_METHODS = ("save_snapshot", "get_latest_snapshot")


class StoreLoadError(Exception):
    """The store named by MODULE:ATTR could not be loaded or is not a store factory."""


class StoreMisbehaviour(AssertionError):
    """The store did something no conforming store does (hang, wrong type, stray exception)."""


class StoreTimeout(StoreMisbehaviour):
    pass


class StoreRaised(StoreMisbehaviour):
    def __init__(self, message: str, original: BaseException) -> None:
        super().__init__(message)
        self.original = original


class StoreWrongType(StoreMisbehaviour):
    pass


def load_factory(spec: str) -> Callable[[], Any]:
    """Import ``MODULE:ATTR`` (ATTR may be dotted) and return the zero-argument factory."""
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise StoreLoadError(f"store must be given as MODULE:ATTR (e.g. mypkg.store:make_store), got {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as error:  # any import-time failure of the user's module is a load error
        raise StoreLoadError(f"cannot import module {module_name!r}: {type(error).__name__}: {error}") from error
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise StoreLoadError(f"module {module_name!r} has no attribute {attr_path!r}") from None
    if not callable(target):
        raise StoreLoadError(f"{spec} is a {type(target).__name__}, not a zero-argument factory")
    try:
        inspect.signature(target).bind()
    except TypeError:
        raise StoreLoadError(f"{spec} cannot be called without arguments; register a zero-argument factory") from None
    except ValueError:
        pass  # builtins without a signature: let the call decide
    return target


def _describe(value: Any) -> str:
    if isinstance(value, Event):
        return f"Event(actor_id={value.actor_id!r}, version={value.version}, id={value.id!r})"
    if isinstance(value, ActorSnapshot):
        return f"ActorSnapshot(actor_id={value.actor_id!r}, version={value.version})"
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


class _Worker:
    """A daemon thread that runs one call at a time; abandoned if a call hangs."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._loop, name="aether-store-call", daemon=True).start()

    def _loop(self) -> None:
        while True:
            fn, args, deliver = self.jobs.get()
            try:
                result = (True, fn(*args))
            except BaseException as error:  # handed back to the caller, which decides
                result = (False, error)
            deliver(result)


class _ThreadRunner:
    """Runs sync calls on reusable daemon workers, one worker per concurrent call.

    Returns ``(True, value)`` or ``(False, exception)``; raises TimeoutError
    when the call does not finish in time (the worker is then abandoned).
    """

    def __init__(self) -> None:
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()

    def _take(self) -> _Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return _Worker()

    def run(self, fn: Callable, args: tuple, timeout: float) -> tuple[bool, Any]:
        worker, done, slot = self._take(), threading.Event(), []

        def deliver(result: tuple[bool, Any]) -> None:
            slot.append(result)
            done.set()

        worker.jobs.put((fn, args, deliver))
        if not done.wait(timeout):
            raise TimeoutError
        self._idle.put(worker)
        return slot[0]


class StoreDriver:
    """Creates handles from one factory and drives them uniformly."""

    def __init__(self, spec: str, *, timeout: float = 10.0) -> None:
        self.spec = spec
        self.timeout = timeout
        self.factory = load_factory(spec)
        self.runner = _ThreadRunner()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handles: list[DrivenHandle] = []
        self._lock = threading.Lock()
        self.is_async: bool | None = None
        self.has_snapshots: bool | None = None
        # Calls that never returned.  A store that has hung this often is treated as hung:
        # later calls fail at once instead of each waiting out the timeout.
        self.hung_calls: list[str] = []
        self.hung_limit = 3

    # -- event loop for async handles ---------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="aether-store-loop", daemon=True).start()
                self._loop = loop
            return self._loop

    def run_coroutine(self, coro: Coroutine, timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    # -- handles ----------------------------------------------------------------------
    def new_handle(self) -> DrivenHandle:
        ok, handle = self.runner.run(self.factory, (), self.timeout)
        if not ok:
            raise StoreLoadError(f"factory {self.spec} raised {type(handle).__name__}: {handle}") from handle
        if inspect.isawaitable(handle):
            try:
                handle = self.run_coroutine(_await(handle), self.timeout)
            except TimeoutError:
                raise StoreLoadError(f"awaiting factory {self.spec} took over {self.timeout}s") from None
        missing = [name for name in EVENT_METHODS if not callable(getattr(handle, name, None))]
        if missing:
            raise StoreLoadError(
                f"{self.spec} returned a {type(handle).__name__} without {', '.join(missing)}; "
                f"a store handle needs {', '.join(EVENT_METHODS)}"
            )
        is_async = inspect.iscoroutinefunction(handle.save_event)
        methods = EVENT_METHODS + (SNAPSHOT_METHODS if self._has_snapshots(handle) else ())
        mixed = [name for name in methods if inspect.iscoroutinefunction(getattr(handle, name)) != is_async]
        if mixed:
            raise StoreLoadError(
                f"{self.spec}: a handle must be all-sync or all-async, but {', '.join(mixed)} "
                f"{'are' if len(mixed) > 1 else 'is'} not {'async' if is_async else 'sync'} like save_event"
            )
        with self._lock:
            if self.is_async is None:
                self.is_async, self.has_snapshots = is_async, self._has_snapshots(handle)
            driven = DrivenHandle(self, handle, len(self._handles))
            self._handles.append(driven)
        return driven

    @staticmethod
    def _has_snapshots(handle: Any) -> bool:
        return all(callable(getattr(handle, name, None)) for name in SNAPSHOT_METHODS)

    def close(self) -> None:
        """Close handles that offer close() (sync or async); never raises."""
        for driven in self._handles:
            close = getattr(driven.raw, "close", None)
            if not callable(close):
                continue
            try:
                if inspect.iscoroutinefunction(close):
                    self.run_coroutine(close(), self.timeout)
                else:
                    self.runner.run(close, (), self.timeout)
            except Exception:  # a store that cannot close cleanly must not turn a verdict into a crash
                pass
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)


async def _await(awaitable: Any) -> Any:
    return await awaitable


class DrivenHandle:
    """A store handle called through the driver: timeouts, type checks, clear failures."""

    def __init__(self, driver: StoreDriver, raw: Any, number: int) -> None:
        self.driver = driver
        self.raw = raw
        self.name = f"handle #{number}"
        self.is_async = inspect.iscoroutinefunction(raw.save_event)

    def __repr__(self) -> str:
        return f"<DrivenHandle {self.name} of {self.driver.spec}>"

    # -- calls ------------------------------------------------------------------------
    def _call(self, method: str, *args: Any) -> Any:
        call = f"{method}({', '.join(_describe(a) for a in args)})"
        fn = getattr(self.raw, method)
        timeout = self.driver.timeout
        hung = self.driver.hung_calls
        if len(hung) >= self.driver.hung_limit:
            raise StoreTimeout(
                f"{call} not attempted: {len(hung)} earlier calls never returned (first: {hung[0]}), "
                "so the store is treated as hung"
            )
        try:
            if self.is_async:
                try:
                    return self.driver.run_coroutine(fn(*args), timeout)
                except TimeoutError:
                    raise
                except VersionConflictError:
                    raise
                except Exception as error:
                    raise self._raised(call, error) from error
            ok, value = self.driver.runner.run(fn, args, timeout)
        except TimeoutError:
            hung.append(call)
            raise StoreTimeout(f"{call} did not return within {timeout:g}s (per-call timeout)") from None
        if ok:
            return value
        if isinstance(value, VersionConflictError):
            raise value
        raise self._raised(call, value) from value

    @staticmethod
    def _raised(call: str, error: BaseException) -> StoreRaised:
        return StoreRaised(f"{call} raised {type(error).__module__}.{type(error).__qualname__}: {error}", error)

    # -- the store interface, checked ---------------------------------------------------
    def save_event(self, event: Event) -> None:
        self._call("save_event", event)

    def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        return _check_events(f"get_events({actor_id!r}, {from_version})", self._call("get_events", actor_id, from_version))

    def get_latest_version(self, actor_id: str) -> int:
        return _check_version(f"get_latest_version({actor_id!r})", self._call("get_latest_version", actor_id))

    def save_snapshot(self, snapshot: ActorSnapshot) -> None:
        self._call("save_snapshot", snapshot)

    def get_latest_snapshot(self, actor_id: str) -> ActorSnapshot | None:
        return _check_snapshot(f"get_latest_snapshot({actor_id!r})", self._call("get_latest_snapshot", actor_id))


def _check_events(call: str, value: Any) -> list[Event]:
    if not isinstance(value, list):
        raise StoreWrongType(f"{call} returned {_describe(value)} ({type(value).__name__}); expected a list of Event")
    for position, item in enumerate(value):
        if not isinstance(item, Event):
            raise StoreWrongType(
                f"{call} returned a list whose item [{position}] is {_describe(item)} "
                f"({type(item).__name__}); expected aether_conformance.Event"
            )
    return value


def _check_version(call: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StoreWrongType(f"{call} returned {_describe(value)} ({type(value).__name__}); expected an int")
    return value


def _check_snapshot(call: str, value: Any) -> ActorSnapshot | None:
    if value is not None and not isinstance(value, ActorSnapshot):
        raise StoreWrongType(
            f"{call} returned {_describe(value)} ({type(value).__name__}); expected an ActorSnapshot or None"
        )
    return value


def ensure_import_path(directory: str) -> None:
    """Make MODULE importable from ``directory`` as ``python -m`` would (the current directory)."""
    if directory not in sys.path:
        sys.path.insert(0, directory)
