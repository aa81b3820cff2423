"""Concurrency histories: record what racing writers did, then check it.

A conformance run lets many writers race on the same actors.  Each call to the
store is recorded as an :class:`Operation` with the monotonic time before the
call (``invoke_ns``) and after it returned or raised (``complete_ns``).  After
the run the suite reads every actor's stream once more and hands both to
:func:`check_history`.

The checker asks one question: could an *atomic* store -- one where every call
takes effect at a single instant somewhere between its invoke and its
completion -- have produced these answers?  It relies only on real-time order:
operation A *precedes* B when A completed strictly before B was invoked.  An
operation that never returned (``UNKNOWN``) is treated as completing at the end
of time, and so is an ``ERROR``: either may or may not have taken effect, so
neither is ever taken as proof of what the store held.

Every check is a hash-map pass or a sort followed by a sweep, so a history of
a million operations is checked in seconds.

Contract with the recorder's user (the suite):

* every save to an actor that appears in the history is recorded, setup saves
  included -- an event no recorded save wrote is reported as a phantom;
* a save is identified by ``(event_id, version)``: an event may be retried with
  the same id, at the same or at another version;
* the final read of every actor with a recorded save is passed to the checker.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Any

from .errors import go_quote
from .model import Event
from .timestamps import utc_microseconds

__all__ = [
    "OK",
    "CONFLICT",
    "ERROR",
    "UNKNOWN",
    "SAVE",
    "LATEST",
    "EVENTS",
    "Operation",
    "PendingOperation",
    "HistoryRecorder",
    "StoredEvent",
    "content_digest",
    "stored_events",
    "Violation",
    "CheckResult",
    "check_history",
    "EventsRead",
    "check_event_reads",
    "SnapshotCall",
    "check_snapshot_calls",
    "history_to_json",
    "history_from_json",
    "to_jepsen",
]

OK, CONFLICT, ERROR, UNKNOWN = "ok", "conflict", "error", "unknown"
# A read is LATEST (get_latest_version) or EVENTS (get_events); an EVENTS read records the
# highest version it returned (0 when it returned nothing from version 0 or below): in an
# atomic store that is the actor's latest version at the instant of the read.
SAVE, LATEST, EVENTS = "save", "latest", "events"
_OUTCOMES = (OK, CONFLICT, ERROR, UNKNOWN)
_READS = (LATEST, EVENTS)
_KINDS = (SAVE, *_READS)
_INF = float("inf")


def _is_int(value: object) -> bool:
    # bool is an int subclass; True as a version or a time is a bug.
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class Operation:
    """One call to the store, as a writer saw it."""

    index: int
    writer: str
    kind: str
    actor_id: str
    invoke_ns: int
    complete_ns: int | None
    outcome: str
    version: int | None = None
    event_id: str | None = None
    digest: str | None = None
    current_version: int | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        def bad(field: str, rule: str) -> ValueError:
            return ValueError(f"Operation #{self.index}.{field}: {rule}")

        if not _is_int(self.index) or self.index < 0:
            raise ValueError(f"Operation.index: must be a non-negative int, got {self.index!r}")
        for name in ("writer", "actor_id", "detail"):
            if not isinstance(getattr(self, name), str):
                raise bad(name, f"must be a str, got {type(getattr(self, name)).__name__}")
        if self.kind not in _KINDS:
            raise bad("kind", f"must be one of {', '.join(_KINDS)}; got {self.kind!r}")
        if self.outcome not in _OUTCOMES:
            raise bad("outcome", f"must be one of {', '.join(_OUTCOMES)}; got {self.outcome!r}")
        if self.outcome == CONFLICT:
            if self.kind != SAVE:
                raise bad("outcome", "only a save can end in a version conflict")
            if not _is_int(self.current_version):
                raise bad("current_version", f"a conflict must carry the error's current_version, got {self.current_version!r}")
        elif self.current_version is not None:
            raise bad("current_version", f"must be None unless the outcome is conflict (it is {self.outcome})")
        if not _is_int(self.invoke_ns):
            raise bad("invoke_ns", f"must be an int, got {type(self.invoke_ns).__name__}")
        if self.outcome == UNKNOWN:
            if self.complete_ns is not None:
                raise bad("complete_ns", "must be None when the outcome is unknown (the call never returned)")
        elif not _is_int(self.complete_ns):
            raise bad("complete_ns", f"must be an int when the outcome is {self.outcome}, got {self.complete_ns!r}")
        elif self.complete_ns < self.invoke_ns:
            raise bad("complete_ns", f"must not be before invoke_ns ({self.complete_ns} < {self.invoke_ns})")
        if self.kind == SAVE:
            if not _is_int(self.version):
                raise bad("version", f"a save must carry the attempted version as an int, got {self.version!r}")
            for name in ("event_id", "digest"):
                if not isinstance(getattr(self, name), str):
                    raise bad(name, f"a save must carry the event's {name} as a str, got {getattr(self, name)!r}")
        else:
            if self.outcome == OK and not _is_int(self.version):
                raise bad("version", f"a successful read must carry the returned version, got {self.version!r}")
            if self.outcome != OK and self.version is not None:
                raise bad("version", f"must be None for a read that is {self.outcome}")
            for name in ("event_id", "digest"):
                if getattr(self, name) is not None:
                    raise bad(name, "must be None for a read")

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _OPERATION_FIELDS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Operation:
        if not isinstance(data, Mapping):
            raise TypeError(f"an operation record must be a dict, got {type(data).__name__}")
        missing = [name for name in _REQUIRED_FIELDS if name not in data]
        if missing:
            raise ValueError(f"operation record {dict(data)!r}: missing field(s) {', '.join(missing)}")
        unknown = [name for name in data if name not in _OPERATION_FIELDS]
        if unknown:
            raise ValueError(f"operation record: unknown field(s) {', '.join(map(str, unknown))}")
        return cls(**data)


_OPERATION_FIELDS = (
    "index", "writer", "kind", "actor_id", "invoke_ns", "complete_ns", "outcome",
    "version", "event_id", "digest", "current_version", "detail",
)
_REQUIRED_FIELDS = _OPERATION_FIELDS[:7]
_INVOKE_FIELDS = ("version", "event_id", "digest")


class PendingOperation:
    """An operation that has been invoked; finish it with exactly one of ok, conflict or error."""

    __slots__ = ("_recorder", "_started", "_done")

    def __init__(self, recorder: HistoryRecorder, started: Operation) -> None:
        self._recorder = recorder
        self._started = started
        self._done = False

    @property
    def index(self) -> int:
        return self._started.index

    def ok(self, version: int | None = None) -> Operation:
        """The call returned.  For a read, ``version`` is the latest version it showed."""
        if self._started.kind == SAVE and version is not None:
            raise ValueError(
                f"operation #{self.index}: ok(version=...) is for latest reads; "
                "a save's attempted version is given to invoke()"
            )
        fields = {"version": version} if self._started.kind in _READS else {}
        return self._finish(OK, fields)

    def conflict(self, current_version: int) -> Operation:
        """The call raised a version conflict reporting ``current_version``."""
        return self._finish(CONFLICT, {"current_version": current_version})

    def error(self, detail: object) -> Operation:
        """The call raised anything else; an exception is recorded as ``Type: message``."""
        if isinstance(detail, BaseException):
            detail = f"{type(detail).__name__}: {detail}"
        return self._finish(ERROR, {"detail": str(detail)})

    def _finish(self, outcome: str, fields: dict[str, Any]) -> Operation:
        complete_ns = self._recorder._clock()
        # Validate (Operation.__post_init__) before taking the lock or marking done,
        # so a wrong call leaves the operation pending rather than half-recorded.
        finished = replace(self._started, complete_ns=complete_ns, outcome=outcome, **fields)
        with self._recorder._lock:
            if self._done:
                raise RuntimeError(f"operation #{self.index} was already completed")
            self._done = True
            self._recorder._operations[self.index] = finished
        return finished


class HistoryRecorder:
    """Records operations from many threads (or asyncio tasks).  Thread-safe; one per test run."""

    def __init__(self, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # Pending operations sit here as their UNKNOWN form until completed, so
        # operations() needs no second pass to report them.
        self._operations: list[Operation] = []

    def invoke(self, writer: str, kind: str, actor_id: str, **fields: Any) -> PendingOperation:
        """Record that ``writer`` is about to call the store; call this right before the call."""
        unexpected = [name for name in fields if name not in _INVOKE_FIELDS]
        if unexpected:
            raise TypeError(
                f"invoke: unexpected field(s) {', '.join(unexpected)}; allowed: {', '.join(_INVOKE_FIELDS)}"
            )
        with self._lock:
            # Clock and index under one lock: recording order is invoke-time order.
            index = len(self._operations)
            started = Operation(
                index=index, writer=writer, kind=kind, actor_id=actor_id,
                invoke_ns=self._clock(), complete_ns=None, outcome=UNKNOWN, **fields,
            )
            self._operations.append(started)
        return PendingOperation(self, started)

    def now(self) -> int:
        """The recorder's clock, for timing records kept beside the history (reads of events, snapshots)."""
        return self._clock()

    def operations(self) -> list[Operation]:
        """Every operation in recording order; those still pending have outcome UNKNOWN."""
        with self._lock:
            return list(self._operations)

    def extend(self, ops: Iterable[Operation | Mapping[str, Any]]) -> None:
        """Merge records made elsewhere (e.g. a child process's ``to_dict()`` output), re-indexed after ours."""
        incoming = [op if isinstance(op, Operation) else Operation.from_dict(op) for op in ops]
        with self._lock:
            start = len(self._operations)
            self._operations.extend(replace(op, index=start + i) for i, op in enumerate(incoming))


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One element of the final read of an actor's stream."""

    version: int
    event_id: str
    digest: str
    # The event itself, when known: a read during the run that returned an equal object needs no digest.
    event: Event | None = field(default=None, compare=False, repr=False)


def content_digest(event: Event) -> str:
    """A digest of what ES-READ-003 requires to round-trip (timestamps to the microsecond).

    Equal for contents that :func:`~aether_conformance.model.json_equal` finds equal: numbers
    are digested as the float64 Go holds (a store written in Go returns 3.0 for 3), and
    true stays apart from 1.
    """
    stamp = utc_microseconds(event.timestamp)
    body = [event.id, event.event_type, event.actor_id, event.command_id, event.version, _as_go_holds(event.data), stamp]
    return hashlib.blake2b(json.dumps(body, sort_keys=True).encode(), digest_size=12).hexdigest()


def _as_go_holds(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        try:
            return ["number", float(value) + 0.0]  # + 0.0: -0.0 and 0 are equal numbers
        except OverflowError:  # beyond float64: json_equal compares such ints exactly
            return ["int", str(value)]
    if isinstance(value, dict):
        return {key: _as_go_holds(item) for key, item in value.items()}
    return [_as_go_holds(item) for item in value]


def stored_events(events: Sequence[Event]) -> list[StoredEvent]:
    """The final read of a stream, as the checkers take it."""
    return [StoredEvent(version=e.version, event_id=e.id, digest=content_digest(e), event=e) for e in events]


@dataclass
class Violation:
    rule: str
    actor_id: str
    explanation: str
    operations: list[Operation]


@dataclass
class CheckResult:
    violations: list[Violation]

    @property
    def ok(self) -> bool:
        return not self.violations

    def explain(self) -> str:
        """The first violation (in time order) in plain language, or "" when the history is valid."""
        if not self.violations:
            return ""
        first = self.violations[0].explanation
        more = len(self.violations) - 1
        return f"{first} (and {more} more)" if more else first


# ---------------------------------------------------------------------------
# The checker


_by_invoke = attrgetter("invoke_ns")
_by_complete = attrgetter("complete_ns")


def check_history(
    operations: Sequence[Operation], final_streams: Mapping[str, Sequence[StoredEvent]]
) -> CheckResult:
    """Check a recorded history against the final read of each actor's stream.

    ``final_streams`` must hold every actor the history saved to (an empty list
    when the read found nothing); streams of actors the history never touched
    are ignored.  Violations come back ordered by the time of the first
    operation they involve.
    """
    ops = sorted(operations, key=_by_invoke)
    if not ops:
        return CheckResult([])
    groups: dict[str, list[Operation]] = {}
    for op in ops:
        group = groups.get(op.actor_id)
        if group is None:
            groups[op.actor_id] = [op]
        else:
            group.append(op)
    missing = [
        actor for actor, group in groups.items()
        if actor not in final_streams and any(op.kind == SAVE for op in group)
    ]
    if missing:
        raise ValueError(
            "final_streams: missing the final read of actor(s) "
            + ", ".join(go_quote(actor) for actor in missing[:5])
            + (" ..." if len(missing) > 5 else "")
            + "; every actor the history saved to must be read back (an empty list if nothing was stored)"
        )
    t0 = ops[0].invoke_ns
    violations: list[Violation] = []
    for actor, group in groups.items():
        _ActorCheck(actor, group, final_streams.get(actor), t0, violations).run()
    violations.sort(key=_violation_order)
    return CheckResult(violations)


def _violation_order(violation: Violation) -> tuple[float, int]:
    if not violation.operations:
        return (_INF, 0)
    first = min(violation.operations, key=_by_invoke)
    return (first.invoke_ns, first.index)


class _ActorCheck:
    """All checks for one actor; ``group`` is that actor's operations in invoke order."""

    def __init__(
        self, actor: str, group: list[Operation], stream: Sequence[StoredEvent] | None,
        t0: int, out: list[Violation],
    ) -> None:
        self.actor = actor
        self.quoted = go_quote(actor)
        self.group = group
        self.stream = stream
        self.t0 = t0
        self.out = out
        self.saves = [op for op in group if op.kind == SAVE]
        self.ok_saves = [op for op in self.saves if op.outcome == OK]
        self._by_id: dict[str, list[Operation]] | None = None

    def run(self) -> None:
        self.check_one_winner_per_version()
        landed = self.check_stream() if self.stream is not None else {}
        self.check_real_time(self.sources(landed), landed)

    # -- reporting -----------------------------------------------------------

    def report(self, rule: str, explanation: str, ops: Iterable[Operation]) -> None:
        ordered = sorted(ops, key=lambda op: (op.invoke_ns, op.index))
        self.out.append(Violation(rule, self.actor, explanation, ordered))

    def ms(self, ns: int) -> str:
        return f"{(ns - self.t0) / 1e6:.3f} ms"

    def describe(self, op: Operation) -> str:
        if op.kind == SAVE:
            what = f"#{op.index} {op.writer} save v{op.version} (id {op.event_id})"
        elif op.outcome == OK:
            shown = "latest" if op.kind == LATEST else "events up to"
            what = f"#{op.index} {op.writer} read {shown} = {op.version}"
        else:
            what = f"#{op.index} {op.writer} read {'latest' if op.kind == LATEST else 'events'}"
        if op.outcome == OK:
            end = f"ok at {self.ms(op.complete_ns)}"
        elif op.outcome == CONFLICT:
            end = f"conflict (current version {op.current_version}) at {self.ms(op.complete_ns)}"
        elif op.outcome == ERROR:
            detail = op.detail if len(op.detail) <= 120 else op.detail[:117] + "..."
            end = f"error at {self.ms(op.complete_ns)}: {detail}"
        else:
            end = "never returned"
        return f"{what} [invoked {self.ms(op.invoke_ns)}, {end}]"

    def describe_all(self, ops: Iterable[Operation]) -> str:
        return "; ".join(self.describe(op) for op in sorted(ops, key=lambda op: (op.invoke_ns, op.index)))

    # -- rule 1: one winner per version --------------------------------------

    def check_one_winner_per_version(self) -> None:
        first: dict[int, Operation] = {}
        winners: dict[int, list[Operation]] = {}
        for op in self.ok_saves:
            earlier = first.setdefault(op.version, op)
            if earlier is not op:
                winners.setdefault(op.version, [earlier]).append(op)
        for version, ops in winners.items():
            count = "two saves" if len(ops) == 2 else f"{len(ops)} saves"
            both = "both" if len(ops) == 2 else "all"
            self.report(
                "duplicate-winner",
                f"{count} of version {version} to actor {self.quoted} {both} succeeded: {self.describe_all(ops)}. "
                f"An atomic store accepts one save per version: the one it applies second must find "
                f"version {version} taken and raise a version conflict.",
                ops,
            )

    # -- rules 2-5: the final read against the saves ---------------------------

    def check_stream(self) -> dict[tuple[str, int], StoredEvent]:
        """Check the final read; return the stored events by (event_id, version)."""
        by_key: dict[tuple[str, int], Operation] = {}
        same_key: dict[tuple[str, int], list[Operation]] = {}  # retries of one event at one version (rare)
        for op in self.saves:
            key = (op.event_id, op.version)
            first = by_key.setdefault(key, op)
            if first is not op:
                same_key.setdefault(key, [first]).append(op)

        stored: dict[tuple[str, int], StoredEvent] = {}
        repeats: dict[tuple[str, int], int] = {}
        previous: StoredEvent | None = None
        for event in self.stream:
            key = (event.event_id, event.version)
            if key in stored:
                repeats[key] = repeats.get(key, 1) + 1
            else:
                stored[key] = event
            if previous is not None and event.version <= previous.version and key != (
                previous.event_id, previous.version
            ):
                writers = self._saves_of(by_key, same_key, previous, event)
                saved_by = f" They were saved by: {self.describe_all(writers)}." if writers else ""
                self.report(
                    "stream-not-increasing",
                    f"the final read of actor {self.quoted} is not in strictly increasing version order: "
                    f"version {previous.version} (event {previous.event_id}) is followed by version "
                    f"{event.version} (event {event.event_id}).{saved_by} A stream is returned in ascending "
                    f"version order and holds each version once.",
                    writers,
                )
            previous = event

        for key, event in stored.items():
            if not repeats and not same_key:
                # Fast path, taken for nearly every event: one save wrote it, once.
                op = by_key.get(key)
                if op is not None and op.outcome != CONFLICT and op.digest == event.digest:
                    continue
            ops = same_key.get(key) or ([by_key[key]] if key in by_key else [])
            count = repeats.get(key, 1)
            if count > 1:
                saved_by = f" It was saved by: {self.describe_all(ops)}." if ops else ""
                self.report(
                    "duplicate-event",
                    f"event {event.event_id} at version {event.version} appears {count} times in the final "
                    f"read of actor {self.quoted}.{saved_by} Each save adds one event, so it must appear once.",
                    ops,
                )
            if not ops:
                self.report_phantom(event)
                continue
            effective = [op for op in ops if op.outcome != CONFLICT]
            if not effective:
                self.report(
                    "rejected-visible",
                    f"a save to actor {self.quoted} was rejected with a version conflict, yet its event "
                    f"{event.event_id} is in the final read at version {event.version}: {self.describe_all(ops)}. "
                    f"A rejected save must leave no trace: the writer retries after a conflict, so its "
                    f"change would be applied twice.",
                    ops,
                )
            elif all(op.digest != event.digest for op in effective):
                self.report(
                    "wrong-content",
                    f"event {event.event_id} of actor {self.quoted} was read back at version {event.version} "
                    f"with different content from what was saved (stored digest {event.digest}, saved "
                    f"{' or '.join(sorted({op.digest for op in effective}))}): {self.describe_all(effective)}. "
                    f"A store must return events exactly as they were saved.",
                    effective,
                )

        at_version: dict[int, StoredEvent] | None = None
        for op in self.ok_saves:
            if (op.event_id, op.version) in stored:
                continue
            if at_version is None:  # built only when needed: a valid history never gets here
                at_version = {}
                for event in self.stream:
                    at_version.setdefault(event.version, event)
            there = at_version.get(op.version)
            instead = (
                f"The final read has event {there.event_id} at version {op.version} instead."
                if there is not None
                else f"The final read has no event at version {op.version}."
            )
            self.report(
                "lost-ack",
                f"a save to actor {self.quoted} succeeded but its event is missing from the final read of "
                f"the stream: {self.describe(op)}. {instead} A store must keep every event it acknowledged.",
                [op],
            )
        return stored

    def _saves_of(self, by_key, same_key, *events: StoredEvent) -> list[Operation]:
        found: list[Operation] = []
        for event in events:
            key = (event.event_id, event.version)
            found.extend(same_key.get(key) or ([by_key[key]] if key in by_key else []))
        return found

    def report_phantom(self, event: StoredEvent) -> None:
        same_id = self._saves_by_id().get(event.event_id, [])
        note = (
            f" (saves of event id {event.event_id} were for other versions: {self.describe_all(same_id)})"
            if same_id
            else ""
        )
        self.report(
            "phantom-event",
            f"the final read of actor {self.quoted} contains event {event.event_id} at version "
            f"{event.version}, which no recorded save wrote{note}. Every event in a stream must come "
            f"from a save.",
            same_id,
        )

    def _saves_by_id(self) -> dict[str, list[Operation]]:
        # Only phantoms need this, so it is built on the first one.
        if self._by_id is None:
            self._by_id = {}
            for op in self.saves:
                self._by_id.setdefault(op.event_id, []).append(op)
        return self._by_id

    # -- rules 6-8: answers consistent with real time ----------------------------

    def sources(self, landed: Mapping[tuple[str, int], StoredEvent]) -> dict[int, Operation]:
        """For each version, the earliest-invoked save of it that took effect.

        A save took effect when it was acknowledged, or when its event is in
        the final read (an error, a lost answer or even a conflict may hide a
        write that happened).  A version that a read or a conflict reports
        must have been written by one of these, invoked before the report.
        """
        first: dict[int, Operation] = {}
        for op in self.saves:
            if op.outcome == OK or (op.event_id, op.version) in landed:
                first.setdefault(op.version, op)
        return first

    def check_real_time(
        self, sources: Mapping[int, Operation], landed: Mapping[tuple[str, int], StoredEvent]
    ) -> None:
        """One sweep in invoke order against the answers completed before each invoke.

        Every answer pins the actor's latest version at some instant inside
        the call: an acknowledged save of v makes it v, a latest read or a
        conflict reports it.  The latest version never decreases, so anything
        invoked after an answer completed must see at least that much.

        A save that raised or never answered, but whose event is in the final
        read, took effect: it is checked like an acknowledged one (it must not
        have been accepted at or below a version already known when it was
        invoked), though, its completion being unknown, it tells nothing.
        """
        # Acknowledged saves, successful reads and conflicts: the operations that told us something.
        answered = [op for op in self.group if op.outcome == OK or op.outcome == CONFLICT]
        unanswered_landed = {
            op.index for op in self.saves
            if (op.outcome == ERROR or op.outcome == UNKNOWN) and (op.event_id, op.version) in landed
        }
        if unanswered_landed:
            # Only a save that alone wrote its (event id, version): of several attempts at one event,
            # any one may be the one that took effect.
            attempts: dict[tuple[str, int], int] = {}
            for op in self.saves:
                attempts[(op.event_id, op.version)] = attempts.get((op.event_id, op.version), 0) + 1
            unanswered_landed = {
                op.index for op in self.saves
                if op.index in unanswered_landed and attempts[(op.event_id, op.version)] == 1
            }
        checked = (
            [op for op in self.group if op.outcome == OK or op.outcome == CONFLICT or op.index in unanswered_landed]
            if unanswered_landed
            else answered
        )
        by_completion = sorted(answered, key=_by_complete)
        count = len(by_completion)
        j = 0
        next_done = by_completion[0].complete_ns if count else _INF
        saved_max: float = -_INF  # highest acknowledged save completed so far ...
        saved_by: Operation | None = None  # ... and the save that set it
        seen_max: float = -_INF  # highest version reported by a completed read or conflict ...
        seen_by: Operation | None = None
        for op in checked:
            invoked = op.invoke_ns
            while next_done < invoked:
                done = by_completion[j]
                if done.kind in _READS:
                    if done.version > seen_max:
                        seen_max, seen_by = done.version, done
                elif done.outcome == OK:
                    if done.version > saved_max:
                        saved_max, saved_by = done.version, done
                elif done.current_version > seen_max:
                    seen_max, seen_by = done.current_version, done
                j += 1
                next_done = by_completion[j].complete_ns if j < count else _INF

            if op.kind in _READS:
                value = op.version
                if value < saved_max:
                    self.report_stale_read(op, saved_by)
                elif value < seen_max:
                    self.report_backwards(op, seen_by)
                if value != 0:
                    source = sources.get(value)
                    if source is None or source.invoke_ns > op.complete_ns:
                        self.report_impossible(op, value, source)
            elif op.outcome != CONFLICT:  # a save that took effect
                value = op.version
                if value <= 0:
                    self.report_accepted_at_start(op)
                elif value < saved_max:
                    self.report_accepted_below(op, saved_by)
                elif value <= seen_max and value != saved_max:  # equal to saved_max: duplicate-winner
                    self.report_accepted_below(op, seen_by)
            else:
                value = op.current_version
                if value < op.version:
                    self.report_false_conflict(op)
                if value < saved_max:
                    self.report_stale_conflict(op, saved_by)
                elif value < seen_max:
                    self.report_stale_conflict(op, seen_by)
                if value != 0:
                    source = sources.get(value)
                    if source is None or source.invoke_ns > op.complete_ns:
                        self.report_impossible(op, value, source)

    def report_impossible(self, op: Operation, value: int, source: Operation | None) -> None:
        """``op`` reported ``value``, which no save that took effect had been invoked to write."""
        if op.kind in _READS:
            rule, said = "impossible-latest", f"a read returned latest version {value} for actor {self.quoted}"
        else:
            rule, said = "impossible-current", (
                f"a save got a version conflict saying actor {self.quoted} was at version {value}"
            )
        if source is None:
            why = (
                f"no save of version {value} to this actor was acknowledged or appears in the final read, "
                f"so the store reported a version it never held: {self.describe(op)}"
            )
            ops = [op]
        else:
            why = (
                f"the first save of version {value} that took effect was only invoked after that answer "
                f"was given: {self.describe_all([op, source])}"
            )
            ops = [op, source]
        self.report(
            rule,
            f"{said}, but {why}. A store can only report a version that a save had already written "
            f"(or 0 when there is none).",
            ops,
        )

    def _told(self, witness: Operation) -> str:
        if witness.kind in _READS:
            return f"a read returned latest version {witness.version}"
        if witness.outcome == OK:
            return f"a save of version {witness.version} succeeded"
        return f"a version conflict reported current version {witness.current_version}"

    def _witness_version(self, witness: Operation) -> int:
        return witness.current_version if witness.outcome == CONFLICT else witness.version

    def report_stale_read(self, op: Operation, witness: Operation) -> None:
        self.report(
            "stale-latest",
            f"a read of the latest version of actor {self.quoted} returned {op.version}, although "
            f"{self._told(witness)} before the read began: {self.describe_all([witness, op])}. "
            f"The latest version never goes down, so an atomic store returns at least {witness.version}.",
            [witness, op],
        )

    def report_backwards(self, op: Operation, witness: Operation) -> None:
        seen = self._witness_version(witness)
        self.report(
            "latest-went-backwards",
            f"the latest version of actor {self.quoted} went backwards from {seen} to {op.version}: "
            f"{self._told(witness)}, and a read invoked after that returned {op.version}: "
            f"{self.describe_all([witness, op])}. In an atomic store the latest version never decreases.",
            [witness, op],
        )

    def _took_effect(self, op: Operation) -> str:
        if op.outcome == OK:
            return "succeeded"
        how = "raised an error" if op.outcome == ERROR else "never answered"
        return f"took effect (its event is in the final read; the call {how})"

    def report_accepted_below(self, op: Operation, witness: Operation) -> None:
        seen = self._witness_version(witness)
        self.report(
            "accepted-below-latest",
            f"a save of version {op.version} to actor {self.quoted} {self._took_effect(op)} although the latest version "
            f"was already {seen} before it was invoked ({self._told(witness)}): "
            f"{self.describe_all([witness, op])}. An atomic store rejects a save at or below the latest "
            f"version with a version conflict.",
            [witness, op],
        )

    def report_accepted_at_start(self, op: Operation) -> None:
        # The history holds every save to the actor, so it started with none: at version 0.
        self.report(
            "accepted-below-latest",
            f"a save of version {op.version} to actor {self.quoted} {self._took_effect(op)}: {self.describe(op)}. "
            f"An actor with no events is at version 0 and a save at or below the latest version must be "
            f"rejected with a version conflict, so a version of 0 or below is never accepted.",
            [op],
        )

    def report_false_conflict(self, op: Operation) -> None:
        self.report(
            "false-conflict",
            f"a save of version {op.version} to actor {self.quoted} was rejected, but the version conflict "
            f"says the actor was at version {op.current_version}, below the attempted version: "
            f"{self.describe(op)}. A store rejects only versions at or below the latest; with latest "
            f"{op.current_version} it must accept version {op.version}.",
            [op],
        )

    def report_stale_conflict(self, op: Operation, witness: Operation) -> None:
        seen = self._witness_version(witness)
        self.report(
            "stale-conflict",
            f"a save to actor {self.quoted} got a version conflict reporting current version "
            f"{op.current_version}, although {self._told(witness)} before the save was invoked: "
            f"{self.describe_all([witness, op])}. The latest version never goes down, so an atomic store "
            f"reports at least {seen}.",
            [witness, op],
        )


# ---------------------------------------------------------------------------
# Serialisation


def history_to_json(operations: Iterable[Operation]) -> list[dict[str, Any]]:
    """The history as JSON-ready dicts (one per operation, field names as in :class:`Operation`)."""
    return [op.to_dict() for op in operations]


def history_from_json(data: Iterable[Mapping[str, Any]]) -> list[Operation]:
    if isinstance(data, (str, bytes, Mapping)):
        raise TypeError(f"a history must be a list of operation records, got {type(data).__name__}")
    return [Operation.from_dict(record) for record in data]


def to_jepsen(operations: Iterable[Operation]) -> list[dict[str, Any]]:
    """The history in the invoke/complete form of Jepsen, Elle and Porcupine.

    Each operation becomes two entries, ``{"index", "time", "process", "type",
    "f", "value"}``, listed by time:

    * ``time`` is nanoseconds since the history's first invoke; ``index`` the
      entry's position in the returned list; ``process`` the writer.
    * ``f`` is ``"append"`` for a save, ``"read-latest"`` for a latest read and
      ``"read-events"`` for a read of events (its version is the highest it returned).
    * ``value`` is ``{"actor", "version"}``, plus ``"event_id"`` for an append.
      An append's version is the attempted one; a read's is ``None`` on invoke
      and the returned version on ``ok``.
    * completion ``type``: ``ok`` -> ``"ok"``; conflict -> ``"fail"`` (the store
      definitely did not apply it; ``value`` adds ``"current_version"``);
      error -> ``"info"`` with ``"error"`` set to the detail (it may or may not
      have happened); unknown -> ``"info"`` with ``"error": "no response"``, at
      the time of the history's last entry.
    * at equal times invokes come before completions, so operations whose
      timestamps touch stay concurrent, as they are for :func:`check_history`.
    """
    ops = list(operations)
    if not ops:
        return []
    t0 = min(op.invoke_ns for op in ops)
    end = max(op.invoke_ns if op.complete_ns is None else op.complete_ns for op in ops)
    staged: list[tuple[int, int, int, dict[str, Any]]] = []
    for op in ops:
        if op.kind == SAVE:
            f = "append"
            value: dict[str, Any] = {"actor": op.actor_id, "version": op.version, "event_id": op.event_id}
        else:
            f = "read-latest" if op.kind == LATEST else "read-events"
            value = {"actor": op.actor_id, "version": None}
        staged.append((op.invoke_ns, 0, op.index, {"process": op.writer, "type": "invoke", "f": f, "value": value}))
        done = {"process": op.writer, "f": f, "value": dict(value)}
        if op.outcome == OK:
            done["type"] = "ok"
            done["value"]["version"] = op.version
        elif op.outcome == CONFLICT:
            done["type"] = "fail"
            done["value"]["current_version"] = op.current_version
        else:
            done["type"] = "info"
            done["error"] = op.detail if op.outcome == ERROR else "no response"
        # An unknown completion sorts after every real entry at the last time.
        staged.append((end, 2, op.index, done) if op.complete_ns is None else (op.complete_ns, 1, op.index, done))
    staged.sort(key=lambda item: item[:3])
    entries = []
    for position, (at, _, _, entry) in enumerate(staged):
        entries.append({"index": position, "time": at - t0, **entry})
    return entries


# ---------------------------------------------------------------------------
# Reads of events and snapshots during a run


@dataclass(frozen=True, slots=True)
class EventsRead:
    """What one ``get_events(actor_id, from_version)`` call made during a run returned.

    ``required`` is a version the reader had already seen as the actor's latest
    (0 for none): a read from at or below it must return it.
    """

    reader: str
    actor_id: str
    from_version: int
    required: int
    events: tuple[tuple[int, str], ...]  # (version, event id) in the order returned
    invoke_ns: int
    complete_ns: int
    # The events themselves, when recorded: their content is checked against the final read.
    contents: tuple[Event, ...] = field(default=(), compare=False, repr=False)


def check_event_reads(reads: Iterable[EventsRead], final_streams: Mapping[str, Sequence[StoredEvent]]) -> list[Violation]:
    """Check reads of events made during a run against the final read of each actor.

    In an atomic store a read returns, from its from_version, exactly the
    events the stream holds at one instant; and since nothing is ever added
    below the latest version, that is every event the final read holds up to
    the highest version the read returned.  So: a read from at or below a
    version the reader already saw as latest returns it; every event a read
    returned is in the final read; and the final read holds no event between
    a read's from_version and its highest version that the read did not
    return (a save that landed below a version already visible: the trap of a
    primary key on (actor, version) with ``SELECT max`` at READ COMMITTED).
    A read also returns its events in ascending order of version, none below
    its from_version, and each with the content the final read gives it (a
    store that writes an event's header and payload separately shows a torn
    event to a read between the two).
    """
    violations: list[Violation] = []
    finals: dict[str, tuple[list[tuple[int, str]], dict[tuple[int, str], StoredEvent]]] = {}
    for read in reads:
        if read.actor_id not in finals:
            stored = final_streams.get(read.actor_id, ())
            finals[read.actor_id] = ([(e.version, e.event_id) for e in stored], {(e.version, e.event_id): e for e in stored})
        stream, present = finals[read.actor_id]
        quoted = go_quote(read.actor_id)
        got = [version for version, _ in read.events]
        said = f"{read.reader} get_events({quoted}, {read.from_version}) returned versions {_span(got)}"
        if any(later <= earlier for earlier, later in zip(got, got[1:])):
            violations.append(Violation(
                "read-out-of-order", read.actor_id,
                f"{said}: not in strictly ascending order of version.", []))
        if got and min(got) < read.from_version:
            violations.append(Violation(
                "read-below-from", read.actor_id,
                f"{said}, including version {min(got)}, below the from_version asked for.", []))
        torn = next((event for event in read.contents if _differs(event, present.get((event.version, event.id)))), None)
        if torn is not None:
            violations.append(Violation(
                "read-torn", read.actor_id,
                f"{said}, in which event {torn.id} at version {torn.version} had other content than the final read "
                f"gives it ({_fields_apart(torn, present[(torn.version, torn.id)])}). An atomic store shows an event "
                f"whole or not at all.", []))
        if 0 < read.required and read.from_version <= read.required and read.required not in got:
            violations.append(Violation(
                "read-lost-latest", read.actor_id,
                f"{said}, without version {read.required}, which the same reader had already read as the latest "
                f"version. An atomic store never shows a latest version without its event.", []))
        vanished = [pair for pair in read.events if pair not in present]
        if vanished:
            version, event_id = vanished[0]
            violations.append(Violation(
                "read-vanished", read.actor_id,
                f"{said}, including event {event_id} at version {version}, which the final read of the stream does "
                f"not hold. An event a store has shown must never disappear.", []))
        if got:
            shown = set(read.events)
            top = max(got)
            missed = [(v, i) for v, i in stream if read.from_version <= v <= top and (v, i) not in shown]
            if missed:
                version, event_id = missed[0]
                violations.append(Violation(
                    "event-below-latest-appeared", read.actor_id,
                    f"{said}; the final read also holds event {event_id} at version {version}, which that read did "
                    f"not return although it showed version {top}. In an atomic store nothing is ever added below "
                    f"the latest version, so a save of {version} landed after {top} was visible (or the read "
                    f"skipped an event).", []))
    return violations


def _differs(event: Event, stored: StoredEvent | None) -> bool:
    if stored is None:
        return False  # not in the final read: "read-vanished" says so
    if stored.event is not None and event == stored.event:
        return False
    return content_digest(event) != stored.digest


def _fields_apart(event: Event, stored: StoredEvent) -> str:
    final = stored.event
    if final is None:
        return "its content digest differs"
    names = [name for name in ("event_type", "command_id", "data", "timestamp")
             if content_digest(replace(final, **{name: getattr(event, name)})) != stored.digest]
    return "; ".join(f"{name} {getattr(event, name)!r} where the final read has {getattr(final, name)!r}"[:300]
                     for name in names) or "its content digest differs"


def _span(got: Sequence[int]) -> str:
    if len(got) <= 6:
        return str(list(got))
    return f"[{got[0]}, {got[1]}, ... {got[-2]}, {got[-1]}] ({len(got)} events)"


@dataclass(frozen=True, slots=True)
class SnapshotCall:
    """A ``save_snapshot`` (kind "save") or ``get_latest_snapshot`` (kind "read") made during a run.

    ``version`` is the snapshot's version (for a read: the one returned, None for no snapshot);
    ``outcome`` is OK, ERROR or UNKNOWN (then ``complete_ns`` is None).
    """

    caller: str
    kind: str
    actor_id: str
    version: int | None
    invoke_ns: int
    complete_ns: int | None
    outcome: str


def check_snapshot_calls(calls: Sequence[SnapshotCall], final: Mapping[str, int | None]) -> list[Violation]:
    """Check concurrent snapshot saves and reads, and each actor's final latest snapshot version.

    The highest version wins: the final latest snapshot is the highest one
    saved (an acknowledged save at least, an unanswered one at most), and a
    read returns a version some save had been invoked to write, no lower than
    any save acknowledged or any read answered before it was invoked.
    """
    violations: list[Violation] = []
    by_actor: dict[str, list[SnapshotCall]] = {}
    for call in calls:
        by_actor.setdefault(call.actor_id, []).append(call)
    for actor, group in by_actor.items():
        quoted = go_quote(actor)
        saves = [c for c in group if c.kind == "save"]
        acked = max((c.version for c in saves if c.outcome == OK), default=None)
        attempted = {c.version for c in saves}
        last = final.get(actor)
        if acked is not None and (last is None or last < acked or last not in attempted):
            violations.append(Violation(
                "snapshot-not-highest", actor,
                f"concurrent snapshot saves of actor {quoted} up to version {acked} were acknowledged, but the latest "
                f"snapshot is now {'none' if last is None else f'version {last}'}. The highest version must win, "
                f"whatever order the saves arrive in.", []))
        group.sort(key=lambda c: c.invoke_ns)
        done = sorted((c for c in group if c.outcome == OK), key=lambda c: c.complete_ns)
        floor, j = None, 0
        for call in group:
            if call.kind != "read" or call.outcome != OK:
                continue
            while j < len(done) and done[j].complete_ns < call.invoke_ns:
                if done[j].version is not None and (floor is None or done[j].version > floor):
                    floor = done[j].version
                j += 1
            got = call.version
            sources = [c for c in saves if c.version == got and c.invoke_ns <= call.complete_ns]
            if got is not None and not sources:
                violations.append(Violation(
                    "snapshot-impossible", actor,
                    f"{call.caller} get_latest_snapshot({quoted}) returned version {got}, which no save had been "
                    f"invoked to write by then.", []))
            if floor is not None and (got is None or got < floor):
                violations.append(Violation(
                    "snapshot-went-backwards", actor,
                    f"{call.caller} get_latest_snapshot({quoted}) returned {'None' if got is None else f'version {got}'}, "
                    f"although version {floor} had been saved or read before the call began. The latest snapshot "
                    f"never goes down.", []))
    return violations
