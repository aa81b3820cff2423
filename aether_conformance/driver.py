"""Load a store factory and drive its handles, sync or async, under timeouts.

Every test talks to a store through a :class:`DrivenHandle`: each call runs
under a per-call timeout, its result's type is checked, and anything a store
should not do (hang, return the wrong type, raise something other than
``VersionConflictError``) becomes a :class:`StoreMisbehaviour` whose message
says which call, with which arguments, and what came back.  The plugin
prefixes that message with the requirement IDs of the test that made the call.

Sync methods run on daemon worker threads, so a hung call can be abandoned
without hanging the run.  A conformance test's own body runs on a thread of
its own (:func:`run_test_body`), where its sync calls are made directly, each
still timed: the thread that started it watches, and on a call past its
timeout fails the test and abandons that thread.  ``async def`` methods, and
any method whose result is awaitable (a decorated coroutine function, a
future), are awaited on one event loop, in its own thread, that every driver
of the process shares; factories that return an awaitable are awaited there
too, so clients bind to that loop.

What a store returns is materialised inside the timed call: every event and
snapshot is rebuilt from plain ``str``, ``int`` and JSON values, so a lazy
result (an ORM row that queries when read) cannot hang the run after the
timeout, and the tests compare plain values.  Nothing a store raises can
escape as anything but a :class:`StoreMisbehaviour` or a
``VersionConflictError``: not ``SystemExit``, not pytest's own skip or exit
exceptions (a store must never be able to skip or pass a test).
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import inspect
import json
import numbers
import operator
import queue
import sys
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from .errors import VersionConflictError
from .limits import RECURSION_LIMIT
from .json_values import copy_json, plain_scalars_only
from .model import ActorSnapshot, Event, Timestamp

__all__ = [
    "StoreLoadError",
    "StoreMisbehaviour",
    "StoreTimeout",
    "StoreRaised",
    "StoreWrongType",
    "load_factory",
    "StoreDriver",
    "DrivenHandle",
    "run_test_body",
    "while_hung",
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
    """A store call raised something other than what the interface lets it raise.

    ``original`` is the store's exception, for ``isinstance`` checks only: its text was read
    within the call's timeout (``original_text``), since a store's ``__str__`` may hang.
    """

    def __init__(self, message: str, original: BaseException, original_text: str) -> None:
        super().__init__(message)
        self.original = original
        self.original_text = original_text


class StoreConflict(VersionConflictError):
    """A store's VersionConflictError as the kit's own: its three fields as plain values and its text
    as the store wrote it, all read within the call's timeout, so that no test touches the store's
    object again (a field whose ``__eq__`` or a ``__str__`` that hangs would hang the run)."""

    def __init__(self, *, actor_id: Any, attempted_version: Any, current_version: Any, text: str,
                 raised_type: str) -> None:
        # Not VersionConflictError.__init__: the fields may be of any type a store chose.
        Exception.__init__(self, text)
        self.actor_id, self.attempted_version, self.current_version = actor_id, attempted_version, current_version
        self.text, self.raised_type = text, raised_type

    def __str__(self) -> str:
        return self.text


class _Opaque:
    """Stands in for a value of a store's own type: equal only to itself, shown as it was described."""

    def __init__(self, description: str) -> None:
        self.description = description

    def __repr__(self) -> str:
        return self.description


class StoreWrongType(StoreMisbehaviour):
    pass


class StoreReadOutOfOrder(StoreMisbehaviour):
    """get_events returned a version below the one before it.

    Whatever test made the read, that is ES-READ-001's rule broken, and the message says so:
    a test that only reads back what it saved is then blocked by ES-READ-001, not failed.  Two
    events at one version are left to the tests: a stream may really hold them (two writers
    both won the version), and the history check names that as the concurrency bug it is.
    """


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
    """A value as the JSON a store author would recognise (null, true, "text"), shortened."""
    if isinstance(value, Event):
        text = f"event {{actorId: {_json(value.actor_id)}, version: {value.version}, id: {_json(value.id)}}}"
    elif isinstance(value, ActorSnapshot):
        text = f"snapshot {{actorId: {_json(value.actor_id)}, version: {value.version}}}"
    elif isinstance(value, (str, int, float, bool, type(None), list, dict)):
        text = _json(value)
    else:
        text = f"a {type(value).__module__}.{type(value).__qualname__} ({_json(repr(value))})"
    return text if len(text) <= 200 else text[:197] + "..."


class _Call:
    """A store call as its error messages show it (``save_event(event {...})``), worded only when
    a message needs it: wording every call cost a fifth of the driver's time per call."""

    __slots__ = ("method", "args", "_text", "requirements")

    def __init__(self, method: str, args: tuple, text: str | None = None) -> None:
        self.method, self.args, self._text = method, args, text
        # What the test making the call checks, when that is one requirement: a test of several
        # charges a misbehaviour to the one it was exercising (support.blame), which is not known here.
        self.requirements = running_requirements if len(running_requirements) == 1 else ()

    def __str__(self) -> str:
        if self._text is None:
            self._text = f"{self.method}({', '.join(_describe(a) for a in self.args)})"
        return self._text


def _charged_to(first_hang: _Call) -> str:
    return f"{', '.join(first_hang.requirements)}: " if first_hang.requirements else ""


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=repr).encode("utf-8", "backslashreplace").decode("utf-8")
    except (ValueError, RecursionError):  # circular or too deep to show: say what it is
        return f"<{type(value).__name__}>"


class CallLog:
    """The store calls of one test, in order: which handle, which method, which arguments (records
    in their Go JSON form).  A failed test's log becomes a reproduction script (replay.py)."""

    def __init__(self) -> None:
        self._calls: list[tuple[int, str, tuple]] = []
        self._before_examples: int | None = None

    def new_example(self) -> None:
        """A property test starts an example: forget the previous example's calls (keeping the test's
        setup), so that a failure's log holds the failing example alone, the one hypothesis runs last."""
        if self._before_examples is None:
            self._before_examples = len(self._calls)
        else:
            del self._calls[self._before_examples:]

    def record(self, handle: int, method: str, args: tuple) -> None:
        self._calls.append((handle, method, args))  # list.append is atomic

    @property
    def calls(self) -> list[dict[str, Any]]:
        # Wired only when a reproduction is written: the records are frozen, and their data was
        # never copied, so nothing is lost by not converting every call of every passing test.
        return [{"handle": handle, "method": method,
                 "args": [{"record": type(a).__name__, **a.to_dict()} if isinstance(a, (Event, ActorSnapshot)) else a
                          for a in args]}
                for handle, method, args in self._calls]


# The log of the test that is running in this process, set by the plugin; None when nothing logs.
call_log: CallLog | None = None
# The requirements of the test that is running in this process, set by the plugin: a store that
# hangs is charged once, to the test it first hung in, and later calls it cannot answer cite that.
running_requirements: tuple[str, ...] = ()


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
            # An idle worker holds nothing of the store: a dropped handle must be collectable, since
            # what a store does when a handle goes away (a pool slot released) is under test too.
            del fn, args, deliver, result


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

    def start(self, fn: Callable, args: tuple, deliver: Callable[[tuple[bool, Any]], None]) -> None:
        """Start ``fn(*args)`` on a worker, which calls ``deliver`` with the result and is reused."""
        worker = self._take()

        def finished(result: tuple[bool, Any]) -> None:
            self._idle.put(worker)
            deliver(result)

        worker.jobs.put((fn, args, finished))

    def run(self, fn: Callable, args: tuple, timeout: float,
            progress: Callable[[], int] | None = None) -> tuple[bool, Any]:
        """With ``progress`` (a count that grows as ``fn`` finishes each of its calls), the timeout is
        for no progress: a run of calls may take as long as its calls need, each within the timeout."""
        # A bare lock, held until the worker delivers: half the cost of an Event per call.
        worker, finished, slot = self._take(), threading.Lock(), []
        finished.acquire()

        def deliver(result: tuple[bool, Any]) -> None:
            slot.append(result)
            finished.release()

        worker.jobs.put((fn, args, deliver))
        seen = progress() if progress else 0
        while not finished.acquire(timeout=timeout):
            if progress is None or progress() == seen:
                raise TimeoutError
            seen = progress()
        self._idle.put(worker)
        return slot[0]


class _Abandoned(BaseException):
    """Unwinds a test thread that its watcher gave up on: it must make no more calls."""


class _Calling:
    __slots__ = ("started", "timeout", "progress", "seen", "timed_out")

    def __init__(self, timeout: float, progress: Callable[[], int] | None,
                 timed_out: Callable[[], BaseException]) -> None:
        self.started = time.monotonic()
        self.timeout, self.progress, self.timed_out = timeout, progress, timed_out
        self.seen = progress() if progress else 0


class _TestThread:
    """A test's body on a thread of its own, whose sync store calls are made directly.

    Handing each call to a worker thread costs two thread wake-ups (about 65 µs a call across two
    cores, seconds a run); a test thread pays that once per test.  Its calls are still timed: the
    thread that started it polls the call in progress, and when one has run past its timeout (made
    no progress for that long, for a run of calls) it raises that call's timeout error, as the call
    would have, in place of the test's outcome.  The test thread is abandoned as a hung worker is:
    if the call ever returns, the thread unwinds without making another.
    """

    POLL = 0.05  # seconds between looks at the call in progress: a hang is seen this late at most

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._calling: _Calling | None = None
        self._abandoned = False
        self._outcome: tuple[bool, Any] = (False, RuntimeError("the test thread ended without an outcome"))
        # What the test would do to a timeout error it caught on its way out (support.blame names a
        # requirement), innermost last: the watcher does it in the test's place.
        self.on_hang: list[Callable[[BaseException], None]] = []

    def run(self, body: Callable[[], Any]) -> Any:
        _test_threads.start(self._body, (body,), _ignore)  # a thread another test left, unless it hung
        try:
            while not self._finished.wait(self.POLL):
                hang = self._hang()
                if hang is not None:
                    raise hang
        except BaseException:  # a hang, or the run interrupted (SIGINT): the body makes no more calls
            with self._lock:
                self._abandoned = True
            raise
        ok, value = self._outcome
        if ok:
            return value
        raise value

    def _body(self, body: Callable[[], Any]) -> None:
        _this_thread.test = self
        try:
            self._outcome = (True, body())
        except _Abandoned:
            pass
        except BaseException as error:  # the test's outcome, raised again by the thread that waits for it
            self._outcome = (False, error)
        finally:
            _this_thread.test = None
            self._finished.set()

    def _hang(self) -> BaseException | None:
        """The error of the call in progress if it has run past its timeout (the thread is then abandoned)."""
        with self._lock:
            calling = self._calling
            if calling is None:
                return None
            now = time.monotonic()
            seen = calling.progress() if calling.progress is not None else calling.seen
            if seen != calling.seen:
                calling.seen, calling.started = seen, now
            if now - calling.started < calling.timeout:
                return None
            self._abandoned = True
            charges = list(self.on_hang)
        error = calling.timed_out()
        for charge in reversed(charges):
            charge(error)
        return error

    def call(self, fn: Callable, args: tuple, progress: Callable[[], int] | None, *, timeout: float,
             timed_out: Callable[[], BaseException]) -> tuple[bool, Any]:
        """``fn(*args)`` on this thread, as ``_ThreadRunner.run`` would run it on a worker."""
        calling = _Calling(timeout, progress, timed_out)
        with self._lock:
            if self._abandoned:
                raise _Abandoned
            self._calling = calling
        try:
            result: tuple[bool, Any] = (True, fn(*args))
        except BaseException as error:  # handed back to the caller, which decides
            result = (False, error)
        with self._lock:
            self._calling = None
            if self._abandoned:
                raise _Abandoned
        return result


_this_thread = threading.local()
# The threads test bodies run on: starting a thread for each test costs as much as its calls saved.
_test_threads = _ThreadRunner()


def _ignore(result: tuple[bool, Any]) -> None:
    pass


def _test_thread() -> _TestThread | None:
    return getattr(_this_thread, "test", None)


def run_test_body(body: Callable[[], Any]) -> Any:
    """Run a conformance test's ``body`` on a test thread and return what it returns, or raise what it
    raises, or the timeout error of a store call it made that hung.  The body cannot catch that error
    itself (its thread is still in the call): a test that goes on past a hung call makes the call
    from a thread of its own, whose calls are handed to workers."""
    return _TestThread().run(body)


@contextmanager
def while_hung(charge: Callable[[BaseException], None]) -> Iterator[None]:
    """On a test thread, ``charge`` a timeout error that ends the test inside this block, as an
    ``except`` clause of the block would have (see :class:`_TestThread`)."""
    test = _test_thread()
    if test is None:
        yield
        return
    test.on_hang.append(charge)
    try:
        yield
    finally:
        test.on_hang.pop()


# The event loop of every async call in this process, started on first use; it runs in a daemon
# thread for as long as the process does.
_store_loop: asyncio.AbstractEventLoop | None = None
_store_loop_lock = threading.Lock()


class StoreDriver:
    """Creates handles from one factory and drives them uniformly."""

    def __init__(self, spec: str, *, timeout: float = 10.0) -> None:
        self.spec = spec
        self.timeout = timeout
        # Room for a store to walk the deepest data the kit sends with copy.deepcopy or its own
        # recursion (see limits.RECURSION_LIMIT); the limit is per process, so it is only raised.
        sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
        self.factory = load_factory(spec)
        self.runner = _ThreadRunner()
        self._handles: list[DrivenHandle] = []
        self._made = 0
        self._lock = threading.Lock()
        self.is_async: bool | None = None
        self.has_snapshots: bool | None = None
        # What the first handle says it is (``aether_implementation``): recorded in the report.
        self.implementation: dict[str, str] = {}
        # Calls that never returned since the last call that did.  A store that has hung this
        # often in a row is treated as hung: later calls fail at once instead of each waiting out
        # the timeout.  Any call that returns resets it, so a store that stalls through a fault
        # (a paused leader) and recovers is not written off.
        self.hung_calls: list[_Call] = []
        # The same per method: a store whose get_events always hangs, while its other methods
        # answer, would otherwise cost one timeout per test, for hundreds of tests.
        self.hung_by_method: dict[str, list[_Call]] = {}
        self.hung_limit = 3

    # -- event loop for awaitable results -------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The process's one store loop: every driver's handles, however many drivers a test makes,
        are awaited on it, so a store may bind its clients to the loop it first met (spec, section 6)."""
        global _store_loop
        with _store_loop_lock:
            if _store_loop is None:
                _store_loop = asyncio.new_event_loop()
                threading.Thread(target=_store_loop.run_forever, name="aether-store-loop", daemon=True).start()
            return _store_loop

    def run_coroutine(self, coro: Coroutine, timeout: float | None,
                      progress: Callable[[], int] | None = None) -> tuple[bool, Any]:
        """Await ``coro`` on the driver's loop: ``(True, value)`` or ``(False, exception)``.

        Raises TimeoutError when it does not finish in time (with ``progress``, as ``_ThreadRunner.run``:
        when it makes no progress for that long).  Whatever the coroutine raises,
        SystemExit and pytest's outcome exceptions included, is caught inside the loop, which
        therefore never dies with the store.
        """
        future = asyncio.run_coroutine_threadsafe(_settled(coro), self.loop)
        seen = progress() if progress else 0
        while True:
            try:
                return future.result(timeout)
            except TimeoutError:
                if progress is None or progress() == seen:
                    future.cancel()
                    raise
                seen = progress()

    # -- handles ----------------------------------------------------------------------
    def new_handle(self) -> DrivenHandle:
        try:
            ok, handle = self.runner.run(self.factory, (), self.timeout)
        except TimeoutError:
            raise StoreLoadError(f"factory {self.spec} did not return within {self.timeout:g}s") from None
        if ok and inspect.isawaitable(handle):
            try:
                ok, handle = self.run_coroutine(_await(handle), self.timeout)
            except TimeoutError:
                raise StoreLoadError(f"awaiting factory {self.spec} took over {self.timeout:g}s") from None
        if not ok:
            raise StoreLoadError(f"factory {self.spec} raised {type(handle).__name__}: {handle}") from handle
        missing = [name for name in EVENT_METHODS if not callable(getattr(handle, name, None))]
        if missing:
            raise StoreLoadError(
                f"{self.spec} returned a {type(handle).__name__} without {', '.join(missing)}; "
                f"a store handle needs {', '.join(EVENT_METHODS)}"
            )
        with self._lock:
            if self.is_async is None:
                self.is_async = inspect.iscoroutinefunction(handle.save_event)
                self.has_snapshots = self._has_snapshots(handle)
                self.implementation = _implementation(handle)
            driven = DrivenHandle(self, handle, self._made)
            self._made += 1  # numbers are never reused: a reproduction makes one handle per number
            self._handles.append(driven)
        return driven

    @staticmethod
    def _has_snapshots(handle: Any) -> bool:
        return all(callable(getattr(handle, name, None)) for name in SNAPSHOT_METHODS)

    @property
    def handles(self) -> list[DrivenHandle]:
        return list(self._handles)

    def release(self, driven: DrivenHandle) -> None:
        """Close one handle and forget it, so that a test making hundreds of handles holds one at a
        time (each may be a connection); never raises."""
        with self._lock:
            self._handles.remove(driven)
        self._close(driven)

    def close(self) -> None:
        """Close handles that offer close() (sync or async); never raises."""
        for driven in self._handles:
            self._close(driven)

    def _close(self, driven: DrivenHandle) -> None:
        # close(), or aclose() as asyncio clients name it (httpx, redis.asyncio), sync or async.
        close = getattr(driven.raw, "close", None)
        if not callable(close):
            close = getattr(driven.raw, "aclose", None)
        if not callable(close):
            return
        try:
            ok, result = self.runner.run(close, (), self.timeout)
            if ok and inspect.isawaitable(result):
                self.run_coroutine(_await(result), self.timeout)
        except Exception:  # a store that cannot close cleanly must not turn a verdict into a crash
            pass


def _implementation(handle: Any) -> dict[str, str]:
    """The handle's ``aether_implementation`` (name, version, command, ...), as plain strings."""
    found = getattr(handle, "aether_implementation", None)
    if not isinstance(found, dict):
        return {}
    return {str(key): str(value) for key, value in found.items() if isinstance(key, str)}


async def _await(awaitable: Any) -> Any:
    return await awaitable


async def _settled(coro: Coroutine) -> tuple[bool, Any]:
    try:
        return True, await coro
    except BaseException as error:  # handed back to the caller, which decides; the loop lives on
        return False, error


class DrivenHandle:
    """A store handle called through the driver: timeouts, type checks, clear failures."""

    def __init__(self, driver: StoreDriver, raw: Any, number: int) -> None:
        self.driver = driver
        self.raw = raw
        self.number = number
        self.name = f"handle #{number}"
        self.is_async = inspect.iscoroutinefunction(raw.save_event)

    def __repr__(self) -> str:
        return f"<DrivenHandle {self.name} of {self.driver.spec}>"

    # -- calls ------------------------------------------------------------------------
    def _call(self, method: str, args: tuple, materialise: Callable[[str, Any], Any]) -> Any:
        """Call ``method``, await an awaitable result, and materialise it, all within the timeout."""
        call = _Call(method, args)
        if call_log is not None:
            call_log.record(self.number, method, args)
        fn = getattr(self.raw, method)
        driver = self.driver
        if inspect.iscoroutinefunction(fn):
            return self._timed(call, lambda: driver.run_coroutine(_materialised_async(call, fn, args, materialise),
                                                                  driver.timeout))
        work = (call, fn, args, materialise, driver)
        return self._timed(call, lambda: driver.runner.run(_materialised_sync, work, driver.timeout),
                           sync=(_materialised_sync, work, None))

    def _timed(self, call: _Call, run: Callable[[], tuple[bool, Any]], timeout: float | None = None,
               hung_call: Callable[[], _Call] | None = None,
               sync: tuple[Callable, tuple, Callable[[], int] | None] | None = None) -> Any:
        """``run()`` the call, unless the store is known hung; a timeout counts towards that (charged
        to ``hung_call()``, the call of a run of calls that did not return, when given).  On a test
        thread, ``sync`` (what ``run`` hands to a worker: function, arguments, progress) is called
        there directly instead."""
        driver = self.driver
        hung = driver.hung_calls
        method_hung = driver.hung_by_method.setdefault(call.method, [])
        for calls, what, treated in ((hung, "calls", "the store is"),
                                     (method_hung, f"{call.method} calls", f"{call.method} is")):
            if len(calls) >= driver.hung_limit:
                raise StoreTimeout(
                    f"{_charged_to(calls[0])}{call} not attempted: the last {len(calls)} {what} never returned "
                    f"(first: {calls[0]}), so {treated} treated as hung"
                )

        def timed_out() -> StoreTimeout:
            hung_now = hung_call() if hung_call is not None else call
            method_hung = driver.hung_by_method.setdefault(hung_now.method, [])
            # A call of a method that has hung since it last answered is the same hang again: it
            # names the requirement it was first seen under.
            again = _charged_to(method_hung[0]) if method_hung else ""
            hung.append(hung_now)
            method_hung.append(hung_now)
            return StoreTimeout(f"{again}{hung_now} did not return within {timeout or driver.timeout:g}s "
                                "(per-call timeout)")

        test = _test_thread() if sync is not None else None
        try:
            ok, value = test.call(*sync, timeout=timeout or driver.timeout, timed_out=timed_out) if test else run()
        except TimeoutError:
            raise timed_out() from None
        hung.clear()
        method_hung.clear()
        if ok:
            return value
        raise value  # settled within the timeout: a StoreMisbehaviour, or a StoreConflict of save_event

    def _steps(self, calls: list[tuple]) -> list[tuple[_Call, Callable, tuple, Callable]]:
        """Each call as (method, args), or (handle, method, args) for a call of another handle."""
        steps = []
        for call in calls:
            handle, method, args = call if len(call) == 3 else (self, *call)
            args = tuple(_handed(a) if isinstance(a, (Event, ActorSnapshot)) else a for a in args)
            if call_log is not None:
                call_log.record(handle.number, method, args)
            steps.append((_Call(method, args), getattr(handle.raw, method), args, _MATERIALISE[method]))
        return steps

    def in_one_task(self, calls: list[tuple]) -> list[Any]:
        """Make ``calls`` one after another in one asyncio task, as an application awaits a save and
        then reads, or on one worker thread for a sync handle.  A call is (method, args) of this
        handle, or (handle, method, args) of another, which the task awaits as a task of its own (a
        thread of its own).  Each result is checked as its own call's; the first error is raised.
        Timed as one call that has a timeout for each of its calls."""
        steps = self._steps(calls)
        elsewhere = [len(call) == 3 and call[0] is not self for call in calls]
        driver = self.driver
        timeout = driver.timeout * len(steps)
        call = _Call(" then ".join(step[0].method for step in steps), (),
                     text=f"in one {'task' if self.is_async else 'thread'}: {', then '.join(str(s[0]) for s in steps)}")
        if all(inspect.iscoroutinefunction(fn) for _, fn, _, _ in steps):
            return self._timed(call, lambda: driver.run_coroutine(_one_after_another_async(steps, elsewhere), timeout),
                               timeout)
        return self._timed(call, lambda: driver.runner.run(_one_after_another, (steps, elsewhere, driver), timeout),
                           timeout, sync=(_one_after_another, (steps, elsewhere, driver), None))

    def one_after_another(self, calls: list[tuple[str, tuple]], *, settle: bool = False) -> list[Any]:
        """Make ``calls`` (method name, arguments) of this handle one after another, each checked as
        the method's own call is, with one hand-off to a worker thread (one task for ``async def``
        methods) for all of them, or none on a test thread: a test of thousands of sequential calls
        then spends its time in the store, not in waking threads (about 65 µs a call across two cores).  Each call has the per-call
        timeout: the wait ends when none returned for that long, and the one that did not is named.
        What a call raised stops the run and is raised, with the call's index in ``calls`` as its
        ``call_index``; with ``settle`` it is returned in the call's place (a test of thousands of
        conflicts) and the calls go on."""
        steps = [(_Call(method, args), getattr(self.raw, method), args, _MATERIALISE[method])
                 for method, args in ((m, tuple(_handed(a) if isinstance(a, (Event, ActorSnapshot)) else a
                                                for a in args)) for m, args in calls)]
        if not steps:
            return []
        driver, made = self.driver, [0]
        call = _Call(steps[0][0].method, (), text=f"{len(steps):,} calls one after another")
        hung_call = lambda: steps[min(made[0], len(steps) - 1)][0]  # noqa: E731
        if all(inspect.iscoroutinefunction(fn) for _, fn, _, _ in steps):
            run = lambda: driver.run_coroutine(_run_of_calls_async(self.number, steps, settle, made),  # noqa: E731
                                               driver.timeout, lambda: made[0])
            sync = None
        else:
            work, progress = (self.number, steps, settle, made, driver), lambda: made[0]
            run = lambda: driver.runner.run(_run_of_calls, work, driver.timeout, progress)  # noqa: E731
            sync = (_run_of_calls, work, progress)
        try:
            return self._timed(call, run, hung_call=hung_call, sync=sync)
        except (StoreMisbehaviour, VersionConflictError) as error:
            error.call_index = made[0]
            raise

    def gathered(self, calls: list[tuple[str, tuple]], after: tuple[str, tuple] | None = None,
                 starts: list[int] | None = None) -> list[Any]:
        """Make ``calls`` (method name, arguments) from one coroutine, every call a task started at
        once, in order, as an asyncio application fans out with ``asyncio.gather``: what each call
        returned (checked as its own call's) or raised.  Only for a handle whose methods are
        ``async def``.  They may take as long as they need while they make progress: the timeout is
        for none of them finishing (a store that serialises them answers one at a time).  With
        ``after``, the coroutine makes that call first and gathers from a task that has used the store
        (whatever the store keeps in the task's context is then copied into every gathered task).
        With ``starts`` (ascending, one for each call), a call is started that many turns of the event
        loop after the first, as requests that arrive close together are."""
        first = self._steps([after]) if after else []
        steps = self._steps(calls)
        starts = starts or [0] * len(steps)
        if len(starts) != len(steps) or starts != sorted(starts):
            raise ValueError(f"starts: {starts!r} must be ascending turns, one for each of the {len(steps)} calls")
        driver = self.driver
        call = _Call(steps[0][0].method, (), text=f"{len(steps):,} {' and '.join(sorted({s[0].method for s in steps}))} "
                                                    "calls gathered at once")
        # The bound of last resort, for a loop the store blocks: a call a second.
        timeout = driver.timeout + len(steps)
        return self._timed(call, lambda: driver.run_coroutine(_gathered(call, first, steps, starts, driver.timeout),
                                                              timeout), timeout)

    def cancelled_after(self, method: str, args: tuple, turns: int,
                        alongside: tuple[str, tuple] | None = None) -> tuple[str, Any]:
        """Start ``method(*args)`` as a task and cancel it after ``turns`` turns of the event loop, as
        asyncio.wait_for or a client that disconnects does: ("cancelled", None), or ("completed",
        what it returned) when it finished first.  What the call raised is raised.  With
        ``alongside``, that call is started first (so the cancelled one may wait behind it) and
        awaited after the cancellation; what it raises is ignored.  Only for ``async def`` methods."""
        (call, fn, args, materialise), = self._steps([(method, args)])
        before = self._steps([alongside]) if alongside else []
        driver = self.driver
        timeout = driver.timeout * (1 + len(before))
        return self._timed(call, lambda: driver.run_coroutine(
            _cancelled_after(call, fn, args, materialise, turns, before), timeout), timeout)

    # -- the store interface, checked ---------------------------------------------------
    def save_event(self, event: Event, *, hand_over: bool = False) -> None:
        """Save a copy of ``event`` (the caller's own object with ``hand_over``: what ES-READ-005
        then changes, to see whether the store kept a copy)."""
        self._call("save_event", (event if hand_over else _handed(event),), _nothing)

    def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        return self._call("get_events", (actor_id, from_version), _events)

    def get_events_and_mutate(self, actor_id: str, from_version: int, mutate: Callable[[list[Any]], None]) -> int:
        """get_events, checked like any read; then ``mutate`` changes the store's own Event objects
        (what ES-READ-005 does to see whether the store shares them), within the same timed call,
        since they are the store's and may hang.  Returns how many events the read returned."""

        def materialise(call: _Call, value: Any) -> int:
            returned = _store_events(call, value)  # read once: an iterator cannot be read again
            _events(call, returned)  # the same checks; the copies are dropped
            mutate(returned)
            return len(returned)

        return self._call("get_events", (actor_id, from_version), materialise)

    def get_latest_version(self, actor_id: str) -> int:
        return self._call("get_latest_version", (actor_id,), _version)

    def save_snapshot(self, snapshot: ActorSnapshot) -> None:
        self._call("save_snapshot", (_handed(snapshot),), _nothing)

    def get_latest_snapshot(self, actor_id: str) -> ActorSnapshot | None:
        return self._call("get_latest_snapshot", (actor_id,), _snapshot)


def _handed(record: Event | ActorSnapshot) -> Event | ActorSnapshot:
    """The record a store is handed: a copy, so that a store that rewrites what it is given (strips
    empty members in place, say) changes its copy, not the record the test compares with."""
    handed = copy.copy(record)
    field = "data" if isinstance(record, Event) else "state"
    object.__setattr__(handed, field, copy_json(getattr(record, field)))
    return handed


# A store's text is kept whole up to here: a 50 MB message would otherwise fill every report.
MAX_TEXT = 4_000


def _text(error: BaseException) -> str:
    try:
        text = str(error)
    except Exception:  # a store's exception whose __str__ itself fails
        return f"<{type(error).__name__} whose str() failed>"
    if not isinstance(text, str):
        return f"<{type(error).__name__} whose str() is not a str>"
    text = str.__str__(text)
    if len(text) > MAX_TEXT:
        text = f"{text[:MAX_TEXT]}... ({len(text):,} characters in all)"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _field(error: BaseException, name: str) -> Any:
    """A field of a store's conflict error as a plain value (or an opaque stand-in)."""
    try:
        value = getattr(error, name)
    except Exception as problem:
        return _Opaque(f"<no {name}: {type(problem).__name__}>")
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int.__index__(value)
    if value is None or type(value) in (bool, float):
        return value
    try:
        # An integer type that says it is one (numpy's int64), as get_latest_version may return.
        return int.__index__(operator.index(value))
    except Exception:
        return _Opaque(f"{_describe(value)} ({type(value).__name__})")


def _kit_error(call: _Call, error: BaseException) -> BaseException:
    """What a store call raised, turned into the kit's own exception while the call is still timed:
    nothing a test does with it later runs the store's code."""
    if isinstance(error, StoreMisbehaviour):
        return error  # the kit's, from materialising
    text = _text(error)
    if isinstance(error, VersionConflictError) and call.method == "save_event":
        settled: BaseException = StoreConflict(
            actor_id=_field(error, "actor_id"), attempted_version=_field(error, "attempted_version"),
            current_version=_field(error, "current_version"), text=text, raised_type=type(error).__qualname__)
    else:
        settled = StoreRaised(f"{call} raised {type(error).__module__}.{type(error).__qualname__}: {text}", error, text)
    settled.__suppress_context__ = True  # a traceback printing the store's exception would call its __str__
    return settled


def _materialised_sync(call: _Call, fn: Callable, args: tuple, materialise: Callable, driver: StoreDriver) -> Any:
    """Runs on a worker thread: the call, awaiting an awaitable result on the loop, materialising."""
    try:
        result = fn(*args)
        if inspect.isawaitable(result):
            # A method that is not ``async def`` but returns an awaitable (a decorated coroutine
            # function): await it where async clients live.  The worker is already timed.
            ok, result = driver.run_coroutine(_await(result), None)
            if not ok:
                raise result
        return materialise(call, result)
    except BaseException as error:  # SystemExit and pytest's outcomes too: a store decides nothing
        raise _kit_error(call, error) from None


# Workers for the sync methods of a handle whose other methods are ``async def``, called among
# its coroutines (gathered, cancelled): spec section 6 promises a store that sync calls run on
# worker threads, never on the loop, where a sync method that runs asyncio.run() or waits on the
# loop would fail or block it.
_loop_side_runner = _ThreadRunner()
# How many of them run at once; the rest wait their turn on the loop.  A sync method may wait on the
# loop itself (a sync facade over the store's asyncio client, bound to the kit's loop): unbounded,
# the loop started a thread for each of 10,050 gathered calls before it served any of them, and
# none answered within the timeout.
LOOP_SIDE_WORKERS = 64
_loop_side_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


async def _on_worker(fn: Callable, args: tuple) -> Any:
    """``fn(*args)`` on a worker thread, awaited from the loop (a cancelled await abandons it)."""
    loop = asyncio.get_running_loop()
    turns = _loop_side_turns.get(loop)
    if turns is None:
        turns = _loop_side_turns[loop] = asyncio.Semaphore(LOOP_SIDE_WORKERS)
    async with turns:
        answered = loop.create_future()

        def deliver(result: tuple[bool, Any]) -> None:
            loop.call_soon_threadsafe(lambda: answered.done() or answered.set_result(result))

        _loop_side_runner.start(fn, args, deliver)
        ok, value = await answered
    if not ok:
        raise value
    return value


async def _answer(fn: Callable, args: tuple) -> Any:
    """What ``fn(*args)`` returns, awaited when awaitable: a handle may mix sync and async methods,
    and its sync ones run on a worker thread."""
    result = fn(*args) if inspect.iscoroutinefunction(fn) else await _on_worker(fn, args)
    return await result if inspect.isawaitable(result) else result


async def _materialised_async(call: _Call, fn: Callable, args: tuple, materialise: Callable) -> Any:
    try:
        return materialise(call, await _answer(fn, args))
    except GeneratorExit:
        raise  # the coroutine is being closed (a call abandoned when the driver closed): nothing to report
    except BaseException as error:
        raise _kit_error(call, error) from None


def _one_after_another(steps: list[tuple[_Call, Callable, tuple, Callable]], elsewhere: list[bool],
                       driver: StoreDriver) -> list[Any]:
    results = []
    for step, other in zip(steps, elsewhere):
        if other:
            try:
                ok, value = driver.runner.run(_materialised_sync, (*step, driver), driver.timeout)
            except TimeoutError:
                raise StoreTimeout(f"{step[0]} did not return within {driver.timeout:g}s (per-call timeout)") from None
            if not ok:
                raise value
            results.append(value)
        else:
            results.append(_materialised_sync(*step, driver))
    return results


def _run_of_calls(number: int, steps: list[tuple[_Call, Callable, tuple, Callable]], settle: bool, made: list[int],
                  driver: StoreDriver) -> list[Any]:
    """Runs on a worker thread: ``DrivenHandle.one_after_another``'s calls, counted in ``made``."""
    results: list[Any] = []
    for step in steps:
        if call_log is not None:  # as each is made: a run stopped by an error made no more
            call_log.record(number, step[0].method, step[2])
        try:
            results.append(_materialised_sync(*step, driver))
        except (StoreMisbehaviour, VersionConflictError) as error:
            if not settle or isinstance(error, StoreTimeout):
                raise
            results.append(error)
        made[0] += 1
    return results


async def _run_of_calls_async(number: int, steps: list[tuple[_Call, Callable, tuple, Callable]], settle: bool,
                              made: list[int]) -> list[Any]:
    results: list[Any] = []
    for step in steps:
        if call_log is not None:
            call_log.record(number, step[0].method, step[2])
        try:
            results.append(await _materialised_async(*step))
        except (StoreMisbehaviour, VersionConflictError) as error:
            if not settle or isinstance(error, StoreTimeout):
                raise
            results.append(error)
        made[0] += 1
    return results


async def _one_after_another_async(steps: list[tuple[_Call, Callable, tuple, Callable]],
                                   elsewhere: list[bool]) -> list[Any]:
    return [await (asyncio.ensure_future(_materialised_async(*step)) if other else _materialised_async(*step))
            for step, other in zip(steps, elsewhere)]


async def _gathered(call: _Call, first: list[tuple[_Call, Callable, tuple, Callable]],
                    steps: list[tuple[_Call, Callable, tuple, Callable]], starts: list[int], stall: float) -> list[Any]:
    for step in first:
        await _materialised_async(*step)  # in this task itself: a task of its own would not do
    tasks, turn = [], starts[0]
    for step, start in zip(steps, starts):
        while turn < start:
            await asyncio.sleep(0)
            turn += 1
        tasks.append(asyncio.ensure_future(_settled(_materialised_async(*step))))
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, timeout=stall, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            for task in pending:
                task.cancel()
            raise StoreTimeout(f"{call}: {len(pending):,} of them did not return, and none returned for {stall:g}s "
                               "(per-call timeout)")
    return [value for ok, value in (task.result() for task in tasks)]


async def _cancelled_after(call: _Call, fn: Callable, args: tuple, materialise: Callable, turns: int,
                           before: list[tuple[_Call, Callable, tuple, Callable]]) -> tuple[str, Any]:
    started = [asyncio.ensure_future(_settled(_materialised_async(*step))) for step in before]
    task = asyncio.ensure_future(_answer(fn, args))
    for _ in range(turns):
        if task.done():
            break
        await asyncio.sleep(0)
    task.cancel()
    try:
        value = await task
    except BaseException as error:
        if not task.cancelled():
            raise _kit_error(call, error) from None
        outcome: tuple[str, Any] = ("cancelled", None)
    else:
        outcome = ("completed", materialise(call, value))
    for other in started:
        await other
    return outcome


def _nothing(call: _Call, value: Any) -> None:
    return None  # what a save returns is ignored, as the seed's error-only signature implies


def _version(call: _Call, value: Any) -> int:
    """An int, or an integer type that says it is one (``__index__``: numpy's int64, a driver's
    own); not a bool, float or Decimal, whose value might not be whole."""
    if not isinstance(value, bool):
        try:
            return operator.index(value)
        except TypeError:
            pass
    # Charged to the rule that says what the answer is, wherever the test that met it: None is a
    # store's answer for an actor it has no row for (ES-LATEST-001), anything else a wrong latest.
    rule = "ES-LATEST-001" if value is None else "ES-LATEST-002"
    raise StoreWrongType(f"{rule}: {call} returned {_describe(value)} ({type(value).__name__}); expected an int")


def _store_events(call: _Call, value: Any) -> list[Any]:
    """What get_events returned, as a list of the store's own items.  A tuple, any other sequence or
    iterable (a cursor, registered with collections.abc or not) or an iterator (a generator) is read
    in full: only the events in it are specified.  Text and mappings iterate, but not over events."""
    if isinstance(value, list):
        return value
    try:
        if isinstance(value, (str, bytes, bytearray, Mapping)):
            raise TypeError
        items = iter(value)
    except TypeError:
        raise StoreWrongType(f"ES-READ-002: {call} returned {_describe(value)} ({type(value).__name__}); "
                             "expected a list of events") from None
    return list(items)


def _events(call: _Call, value: Any) -> list[Event]:
    value = _store_events(call, value)
    events = []
    for position, item in enumerate(value):
        if not isinstance(item, Event):
            raise StoreWrongType(
                f"{call} returned a list whose item [{position}] is {_describe(item)} "
                f"({type(item).__name__}); expected an aether_conformance.Event"
            )
        events.append(_rebuilt(call, f"item [{position}]", item))
    for position in range(1, len(events)):
        if events[position].version < events[position - 1].version:
            shown = [event.version for event in events]
            if len(shown) > 12:
                shown = [*shown[max(0, position - 5):position + 5]]
                where = f"around items [{max(0, position - 5)}..{min(len(events), position + 5) - 1}] "
            else:
                where = ""
            raise StoreReadOutOfOrder(
                f"ES-READ-001: {call} returned versions {where}{shown}: version {events[position].version} "
                f"(item [{position}]) follows {events[position - 1].version}; a read returns events in ascending "
                "version order"
            )
    return events


def _snapshot(call: _Call, value: Any) -> ActorSnapshot | None:
    if value is None:
        return None
    if not isinstance(value, ActorSnapshot):
        raise StoreWrongType(
            f"{call} returned {_describe(value)} ({type(value).__name__}); expected an ActorSnapshot or None"
        )
    return _rebuilt(call, "the snapshot", value)


def _rebuilt(call: _Call, where: str, record: Event | ActorSnapshot) -> Any:
    """A copy of ``record`` made of plain values, so that nothing lazy or subclassed reaches a test."""
    try:
        if isinstance(record, Event):
            return Event(
                id=_plain_str(record.id), event_type=_plain_str(record.event_type),
                actor_id=_plain_str(record.actor_id), command_id=_plain_str(record.command_id),
                version=_plain_int(record.version), data=_plain_json(record.data), timestamp=_plain_time(record.timestamp),
            )
        return ActorSnapshot(
            actor_id=_plain_str(record.actor_id), version=_plain_int(record.version),
            state=_plain_json(record.state), timestamp=_plain_time(record.timestamp),
        )
    except (TypeError, ValueError, RecursionError) as error:
        raise StoreWrongType(f"{call} returned {where} that is not a valid record: {_text(error)}") from None


_MATERIALISE: dict[str, Callable[[_Call, Any], Any]] = {
    "save_event": _nothing, "get_events": _events, "get_latest_version": _version,
    "save_snapshot": _nothing, "get_latest_snapshot": _snapshot,
}


def _plain_str(value: Any) -> Any:
    # str.__str__ copies a str subclass to a plain str without calling an overridden __str__.
    return str.__str__(value) if isinstance(value, str) else value


def _plain_int(value: Any) -> Any:
    return int.__index__(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _plain_time(value: Any) -> Any:
    if not isinstance(value, datetime):
        return value  # the model refuses it
    zone = value.tzinfo
    if zone is not None and type(zone) not in (timezone, ZoneInfo):
        # A store's own tzinfo: ask it for the offset now, within the call's timeout, and keep only that.
        offset = value.utcoffset()
        zone = None if offset is None else timezone(offset)
    if zone is value.tzinfo and type(value) in (datetime, Timestamp):
        return value  # immutable already
    plain = datetime(*value.timetuple()[:6], value.microsecond, tzinfo=zone, fold=value.fold)
    # The nanoseconds below the microsecond of any datetime that has them: the kit's Timestamp, or
    # another library's (pandas.Timestamp's nanosecond is 0-999 too).
    nanosecond = getattr(value, "nanosecond", 0)
    if type(nanosecond) is int and 0 < nanosecond <= 999:
        return Timestamp.from_datetime(plain, nanosecond)
    return plain


def _plain_json(value: Any) -> Any:
    """A deep copy of a JSON value in plain types (dict, list, str, int, float, bool, None); numbers
    of other types (Decimal, numpy's scalars) become the int or float they equal.

    Iterative, so that data nested as deep as the model allows never meets the recursion limit.
    """
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while stack:
        item, parent, key = stack.pop()
        if item is None or isinstance(item, bool):
            parent[key] = item
        elif isinstance(item, str):
            parent[key] = str.__str__(item)
        elif isinstance(item, int):
            parent[key] = int.__index__(item)
        elif isinstance(item, float):
            parent[key] = float(item)
        elif isinstance(item, Decimal):
            # What boto3 reads every DynamoDB number as: the int or float64 it equals (spec 3.2).
            parent[key] = int(item) if item.is_finite() and item == item.to_integral_value() else float(item)
        elif isinstance(item, numbers.Integral) or hasattr(type(item), "__index__"):
            # numpy's and pyarrow's integer scalars: integers by __index__, as versions may be (spec 3.2).
            parent[key] = int(operator.index(item))
        elif isinstance(item, numbers.Real):
            parent[key] = float(item)  # numpy's float32, say
        elif type(item) is dict and set(map(type, item)) == {str} and plain_scalars_only(item.values()):
            parent[key] = dict(item)  # nothing in it to convert: copied at C speed
        elif isinstance(item, Mapping):  # a dict, or a read-only view of one (MappingProxyType)
            copy: dict[str, Any] = {}
            parent[key] = copy
            for name, member in item.items():
                if not isinstance(name, str):
                    raise TypeError(f"an object key is {type(name).__name__} {name!r}, not a str")
                name = str.__str__(name)
                copy[name] = None
                stack.append((member, copy, name))
        elif isinstance(item, (list, tuple)) and plain_scalars_only(item):
            parent[key] = list(item)
        elif isinstance(item, (list, tuple)):
            copy_list: list[Any] = [None] * len(item)
            parent[key] = copy_list
            stack.extend((member, copy_list, index) for index, member in enumerate(item))
        else:
            raise TypeError(f"a {type(item).__name__} ({_describe(item)}) is not a JSON value")
    return root[0]


def ensure_import_path(directory: str) -> None:
    """Make MODULE importable from ``directory`` (the current directory), as ``python -m`` would,
    but behind the kit's own dependencies: a ``pytest.py`` or ``hypothesis/`` there must not
    replace them."""
    if directory not in sys.path:
        sys.path.append(directory)
