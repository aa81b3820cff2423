"""The zoo: broken stores, each breaking one requirement the way real stores do.

``SPECIMENS`` maps each factory name to the requirement its flaw breaks; the
kit's tests run the suite against every one and require that requirement to
be reported failed.  ``correct`` is the control: it must pass.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from aether_conformance import ActorSnapshot, Event, VersionConflictError

from .base import CorrectStore, ShareState, factory
from .nonatomic_sqlite import NonAtomicSQLiteStore


class OffByOne(CorrectStore):
    """Compares with < instead of <=: a second writer of the same version wins too."""

    def is_conflict(self, event, latest):
        return event.version < latest


class UniquenessOnly(CorrectStore):
    """Treats the check as a unique key on (actor, version): stale versions that are free get in."""

    def is_conflict(self, event, latest):
        return any(e.version == event.version for e in self.shared.events.get(event.actor_id, []))


class ExclusiveReads(CorrectStore):
    """Reads events strictly after from_version (the off-by-one of replay code)."""

    def select(self, actor_id, from_version):
        return [copy.deepcopy(e) for e in self.shared.events.get(actor_id, []) if e.version > from_version]


class NoneForUnknownActor(CorrectStore):
    """Returns None where the seed returns 0 for an actor it has never seen."""

    def latest(self, actor_id):
        stream = self.shared.events.get(actor_id)
        return stream[-1].version if stream else None

    def is_conflict(self, event, latest):
        return event.version <= (latest or 0)

    def conflict(self, event, latest):
        return super().conflict(event, latest or 0)


class NoneForNoEvents(CorrectStore):
    """Returns None instead of an empty list."""

    def select(self, actor_id, from_version):
        return super().select(actor_id, from_version) or None


class SwappedErrorFields(CorrectStore):
    """Builds the conflict error with attempted and current versions swapped."""

    def conflict(self, event, latest):
        return VersionConflictError(actor_id=event.actor_id, attempted_version=latest, current_version=event.version)


class PythonQuotedError(VersionConflictError):
    def __str__(self):
        return (f"version conflict: actor {self.actor_id!r} has version {self.current_version}, "
                f"cannot save version {self.attempted_version}")


class PythonQuotedErrorText(CorrectStore):
    """Ports the Go message with Python's repr quoting instead of Go's %q."""

    def conflict(self, event, latest):
        return PythonQuotedError(actor_id=event.actor_id, attempted_version=event.version, current_version=latest)


class ValueErrorOnConflict(CorrectStore):
    """Raises a generic ValueError for conflicts: clients cannot catch VersionConflictError."""

    def conflict(self, event, latest):
        return ValueError(f"version {event.version} is not above {latest}")


class WritesThenRaises(CorrectStore):
    """Appends first and validates after, leaving the rejected event in the stream."""

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            self.append(event)
            if event.version <= latest:
                raise self.conflict(event, latest)


class SharedCounter(CorrectStore):
    """Keeps one version counter for the whole store instead of one per actor."""

    def latest(self, actor_id):
        versions = [stream[-1].version for stream in self.shared.events.values() if stream]
        return max(versions, default=0)


class UnorderedReads(CorrectStore):
    """Returns events in storage-hash order, not by version."""

    def select(self, actor_id, from_version):
        return sorted(super().select(actor_id, from_version), key=lambda e: hash(e.id))


class StaleHandleCache(CorrectStore):
    """Caches each actor's latest version per handle and trusts the cache (the seed's JetStream idea)."""

    def __init__(self, shared):
        super().__init__(shared)
        self.cache: dict[str, int] = {}

    def latest(self, actor_id):
        if actor_id not in self.cache:
            self.cache[actor_id] = super().latest(actor_id)
        return self.cache[actor_id]

    def append(self, event):
        super().append(event)
        self.cache[event.actor_id] = event.version


class CheckThenWriteRace(CorrectStore):
    """Checks, does 1 ms of I/O, then writes, with no lock held across the two."""

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
        if event.version <= latest:
            raise self.conflict(event, latest)
        time.sleep(0.001)
        with self.shared.lock:
            self.append(event)


class NarrowCheckThenWriteRace(CheckThenWriteRace):
    """The same race with a 50 µs gap: a fast local store, not a network round trip."""

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
        if event.version <= latest:
            raise self.conflict(event, latest)
        time.sleep(0.00005)
        with self.shared.lock:
            self.append(event)


class LockPerHandle(CorrectStore):
    """Guards shared data with a lock that belongs to the handle, not to the data."""

    def __init__(self, shared):
        super().__init__(shared)
        self.own_lock = threading.Lock()

    def check_and_append(self, event):
        with self.own_lock:
            latest = self.latest(event.actor_id)
            if event.version <= latest:
                raise self.conflict(event, latest)
            time.sleep(0.001)  # the write's I/O
            self.append(event)


class FloatVersions(CorrectStore):
    """Keeps versions as float64 (a JSON-number store): 2^53+1 becomes 2^53."""

    def append(self, event):
        super().append(replace(event, version=int(float(event.version))))


class MillisecondTimestamps(CorrectStore):
    """Stores timestamps with millisecond precision, as many databases do by default."""

    def append(self, event):
        stamp = event.timestamp
        truncated = datetime(stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second,
                             stamp.microsecond // 1000 * 1000, tzinfo=stamp.tzinfo)
        super().append(replace(event, timestamp=truncated))


class NullDataBecomesEmpty(CorrectStore):
    """Turns a nil map into an empty object on the way in."""

    def append(self, event):
        super().append(replace(event, data=event.data or {}))


class CaseInsensitiveIds(CorrectStore):
    """Keys streams by the lower-cased id (a case-insensitive collation)."""

    def latest(self, actor_id):
        return super().latest(actor_id.lower())

    def append(self, event):
        self.shared.events.setdefault(event.actor_id.lower(), []).append(copy.deepcopy(event))

    def select(self, actor_id, from_version):
        return super().select(actor_id.lower(), from_version)


class SnapshotLastWritten(CorrectStore):
    """Returns the snapshot written last rather than the one with the highest version."""

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            snapshots = self.shared.snapshots.get(actor_id)
            return copy.deepcopy(snapshots[-1]) if snapshots else None


class HangsOnUnknownActor(CorrectStore):
    """Blocks forever reading an actor that has no stream (waits for a stream that never comes)."""

    def get_events(self, actor_id, from_version):
        if actor_id not in self.shared.events:
            threading.Event().wait()
        return super().get_events(actor_id, from_version)



class NoGaps(CorrectStore):
    """Demands exactly latest+1, refusing gaps the seed accepts."""

    def is_conflict(self, event, latest):
        return event.version != latest + 1


class MicrosecondUTCTimestamps(CorrectStore):
    """Keeps timestamps as UTC datetimes: the instant survives, nanoseconds and offset do not."""

    def append(self, event):
        stamp = event.timestamp.astimezone(timezone.utc)
        plain = datetime(stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second,
                         stamp.microsecond, tzinfo=timezone.utc)
        super().append(replace(event, timestamp=plain))


class SharesCallersData(CorrectStore):
    """Stores and returns the caller's objects themselves, as the Go seed does with pointers.

    This is the seed's own behaviour, so it must stay conformant: only the SHOULD ES-READ-005 fails.
    """

    def append(self, event):
        self.shared.events.setdefault(event.actor_id, []).append(event)

    def select(self, actor_id, from_version):
        return [e for e in self.shared.events.get(actor_id, []) if e.version >= from_version]


class SharesReadEvents(CorrectStore):
    """Copies events on the way in but hands out the events it keeps on reads: a caller that
    changes what it read changes the store (only the SHOULD ES-READ-005 fails)."""

    def select(self, actor_id, from_version):
        return [e for e in self.shared.events.get(actor_id, []) if e.version >= from_version]


class LatestIsEventCount(CorrectStore):
    """Answers get_latest_version with the number of events, which is wrong once versions have gaps."""

    def get_latest_version(self, actor_id):
        with self.shared.lock:
            return len(self.shared.events.get(actor_id, []))


class KeyErrorForEmptyId(CorrectStore):
    """Refuses the empty actor id, but with a KeyError instead of a ValueError."""

    def save_event(self, event):
        if event.actor_id == "":
            raise KeyError("actor_id")
        super().save_event(event)


class StoresThenRefusesReusedId(CorrectStore):
    """Refuses a reused event id only after storing the event."""

    def check_and_append(self, event):
        with self.shared.lock:
            reused = any(e.id == event.id for e in self.shared.events.get(event.actor_id, []))
        super().check_and_append(event)
        if reused:
            raise ValueError(f"event id {event.id!r} already used")


class ReplacesEmptyEventId(CorrectStore):
    """Accepts the empty event id but stores a generated one in its place (an auto-id column)."""

    def append(self, event):
        super().append(replace(event, id=event.id or f"generated-{event.actor_id}-{event.version}"))


class TruncatesFieldsAt2048(CorrectStore):
    """Keeps ids, event types and command ids in VARCHAR(2048) columns: above the floor, but silently cut."""

    def append(self, event):
        super().append(replace(event, id=event.id[:2048], event_type=event.event_type[:2048],
                               command_id=event.command_id[:2048]))


class HidesSnapshotsAhead(CorrectStore):
    """Accepts snapshots above the latest event, then never returns them."""

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            latest = self.latest(actor_id)
            snapshots = [s for s in self.shared.snapshots.get(actor_id, []) if s.version <= latest]
            return copy.deepcopy(max(snapshots, key=lambda s: s.version)) if snapshots else None


class EmptyActorAlwaysAtZero(CorrectStore):
    """Accepts the empty actor id but reports its latest version as 0 (a falsy-key shortcut)."""

    def get_latest_version(self, actor_id):
        return super().get_latest_version(actor_id) if actor_id else 0


class UpsertsByEventId(CorrectStore):
    """Accepts a reused event id by overwriting the earlier event (an upsert keyed by event id)."""

    def append(self, event):
        stream = self.shared.events.setdefault(event.actor_id, [])
        stream[:] = [e for e in stream if e.id != event.id]
        super().append(event)


class EmptySnapshotForUnknown(CorrectStore):
    """Returns a version-0 snapshot instead of None when there is none."""

    def get_latest_snapshot(self, actor_id):
        found = super().get_latest_snapshot(actor_id)
        return found or ActorSnapshot(actor_id=actor_id, version=0, state={}, timestamp=datetime.now(timezone.utc))


class SnapshotNullStateBecomesEmpty(CorrectStore):
    """Turns a snapshot's nil state into an empty object."""

    def save_snapshot(self, snapshot):
        super().save_snapshot(replace(snapshot, state=snapshot.state or {}))


class SnapshotsNotPerActor(CorrectStore):
    """Keeps one snapshot slot for the whole store."""

    def save_snapshot(self, snapshot):
        super().save_snapshot(replace(snapshot, actor_id="*"))

    def get_latest_snapshot(self, actor_id):
        found = super().get_latest_snapshot("*")
        return None if found is None else replace(found, actor_id=actor_id)


class RuntimeErrorForSnapshotAhead(CorrectStore):
    """Refuses snapshots ahead of the events, but with a RuntimeError instead of a ValueError."""

    def save_snapshot(self, snapshot):
        if snapshot.version > self.get_latest_version(snapshot.actor_id):
            raise RuntimeError("snapshot is ahead of the events")
        super().save_snapshot(snapshot)

class AsyncCheckThenWriteRace:
    """An asyncio store that awaits I/O between its check and its write."""

    def __init__(self, shared: ShareState) -> None:
        self.shared = shared

    async def save_event(self, event: Event) -> None:
        stream = self.shared.events.setdefault(event.actor_id, [])
        latest = stream[-1].version if stream else 0
        if event.version <= latest:
            raise VersionConflictError(actor_id=event.actor_id, attempted_version=event.version, current_version=latest)
        await asyncio.sleep(0.001)
        stream.append(copy.deepcopy(event))

    async def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        return [copy.deepcopy(e) for e in self.shared.events.get(actor_id, []) if e.version >= from_version]

    async def get_latest_version(self, actor_id: str) -> int:
        stream = self.shared.events.get(actor_id)
        return stream[-1].version if stream else 0


class AsyncCorrect(AsyncCheckThenWriteRace):
    """The async control: no await between check and write, so asyncio makes it atomic."""

    async def save_event(self, event: Event) -> None:
        stream = self.shared.events.setdefault(event.actor_id, [])
        latest = stream[-1].version if stream else 0
        if event.version <= latest:
            raise VersionConflictError(actor_id=event.actor_id, attempted_version=event.version, current_version=latest)
        stream.append(copy.deepcopy(event))


def _async_factory(cls):
    shared = ShareState()

    async def make():
        return cls(shared)

    return make


correct = factory(CorrectStore)
async_correct = _async_factory(AsyncCorrect)
off_by_one = factory(OffByOne)
uniqueness_only = factory(UniquenessOnly)
exclusive_reads = factory(ExclusiveReads)
none_for_unknown_actor = factory(NoneForUnknownActor)
none_for_no_events = factory(NoneForNoEvents)
swapped_error_fields = factory(SwappedErrorFields)
python_quoted_error_text = factory(PythonQuotedErrorText)
value_error_on_conflict = factory(ValueErrorOnConflict)
writes_then_raises = factory(WritesThenRaises)
shared_counter = factory(SharedCounter)
unordered_reads = factory(UnorderedReads)
stale_handle_cache = factory(StaleHandleCache)
check_then_write_race = factory(CheckThenWriteRace)
narrow_check_then_write_race = factory(NarrowCheckThenWriteRace)
lock_per_handle = factory(LockPerHandle)
float_versions = factory(FloatVersions)
millisecond_timestamps = factory(MillisecondTimestamps)
null_data_becomes_empty = factory(NullDataBecomesEmpty)
case_insensitive_ids = factory(CaseInsensitiveIds)
snapshot_last_written = factory(SnapshotLastWritten)
hangs_on_unknown_actor = factory(HangsOnUnknownActor)
async_check_then_write_race = _async_factory(AsyncCheckThenWriteRace)
no_gaps = factory(NoGaps)
microsecond_utc_timestamps = factory(MicrosecondUTCTimestamps)
shares_callers_data = factory(SharesCallersData)
shares_read_events = factory(SharesReadEvents)
latest_is_event_count = factory(LatestIsEventCount)
key_error_for_empty_id = factory(KeyErrorForEmptyId)
stores_then_refuses_reused_id = factory(StoresThenRefusesReusedId)
empty_snapshot_for_unknown = factory(EmptySnapshotForUnknown)
snapshot_null_state_becomes_empty = factory(SnapshotNullStateBecomesEmpty)
snapshots_not_per_actor = factory(SnapshotsNotPerActor)
runtime_error_for_snapshot_ahead = factory(RuntimeErrorForSnapshotAhead)
replaces_empty_event_id = factory(ReplacesEmptyEventId)
empty_actor_always_at_zero = factory(EmptyActorAlwaysAtZero)
upserts_by_event_id = factory(UpsertsByEventId)
truncates_fields_at_2048 = factory(TruncatesFieldsAt2048)
hides_snapshots_ahead = factory(HidesSnapshotsAhead)


def nonatomic_sqlite() -> NonAtomicSQLiteStore:
    return NonAtomicSQLiteStore.from_environment()

# factory name -> the requirement its flaw breaks (None: a control that must conform)
SPECIMENS: dict[str, str | None] = {
    "correct": None,
    "async_correct": None,
    "off_by_one": "ES-SAVE-002",
    "uniqueness_only": "ES-SAVE-002",
    "exclusive_reads": "ES-READ-001",
    "none_for_unknown_actor": "ES-LATEST-001",
    "none_for_no_events": "ES-READ-002",
    "swapped_error_fields": "ES-ERR-001",
    "python_quoted_error_text": "ES-ERR-002",
    "value_error_on_conflict": "ES-SAVE-002",
    "writes_then_raises": "ES-SAVE-003",
    "shared_counter": "ES-ACTOR-001",
    "unordered_reads": "ES-READ-001",
    "stale_handle_cache": "ES-HANDLE-001",
    "check_then_write_race": "ES-CONC-001",
    "narrow_check_then_write_race": "ES-CONC-001",
    "lock_per_handle": "ES-CONC-001",
    "float_versions": "ES-SAVE-004",
    "millisecond_timestamps": "ES-READ-003",
    "null_data_becomes_empty": "ES-READ-003",
    "case_insensitive_ids": "ES-ACTOR-002",
    "snapshot_last_written": "SS-SNAP-002",
    "hangs_on_unknown_actor": "ES-READ-002",
    "async_check_then_write_race": "ES-CONC-001",
    "no_gaps": "ES-SAVE-001",
    "microsecond_utc_timestamps": "ES-READ-004",
    "shares_callers_data": "ES-READ-005",
    "shares_read_events": "ES-READ-005",
    "latest_is_event_count": "ES-LATEST-002",
    "key_error_for_empty_id": "ES-REFUSE-001",
    "stores_then_refuses_reused_id": "ES-REFUSE-001",
    "replaces_empty_event_id": "ES-READ-003",
    "empty_actor_always_at_zero": "ES-LATEST-002",
    "upserts_by_event_id": "ES-READ-003",
    "truncates_fields_at_2048": "ES-READ-003",
    "hides_snapshots_ahead": "SS-SNAP-002",
    "empty_snapshot_for_unknown": "SS-SNAP-001",
    "snapshot_null_state_becomes_empty": "SS-SNAP-003",
    "snapshots_not_per_actor": "SS-SNAP-004",
    "runtime_error_for_snapshot_ahead": "ES-REFUSE-001",
    # needs --capability multiprocess and $AETHER_SQLITE_PATH (run_options)
    "nonatomic_sqlite": "ES-CONC-002",
}


def run_options(name: str, scratch: Path) -> tuple[list[str], dict[str, str]]:
    """The CLI arguments and environment a specimen is certified with (its database file in ``scratch``)."""
    if name == "nonatomic_sqlite":
        return ["--capability", "multiprocess"], {"AETHER_SQLITE_PATH": str(scratch / f"{name}.sqlite3")}
    if name == "hangs_on_unknown_actor":
        return ["--timeout", "1"], {}  # every hang waits out the timeout
    return [], {}
