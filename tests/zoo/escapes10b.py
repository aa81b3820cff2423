"""Stores a tenth adversarial review (b) wrote: snapshot stores, and how snapshots and events
interact on real backends, broken just outside the values, orders and reads the suite uses.

Each store is tests/zoo/base.py's CorrectStore broken in one place.  ``TRIGGERS`` maps each factory
name to a deterministic function showing the bug by direct calls (True when it shows); ``BROKEN``
names the MUST requirement each one breaks.  The real CLI certified 7 of the 8 as CONFORMANT, under
both the default and the thorough profile; only ``write_through`` was caught (by the 16 racing
snapshot writers over several handles).

The suite now flags all 8 (tests/test_zoo.py): a snapshot saved ahead of the events, or at 0 or 1
before any event, is read again once events reach it (ahead_dropped, head_pointer); the highest
snapshot is saved first and six lower ones taken after it (retention_taken_at); the boundary
snapshot versions are also taken earlier when higher (zset_taken_at); a lower 380 KB snapshot with
a state of its own follows the highest (claim_check); the snapshotted long stream is read from 1,
10 and 1,000 behind its end (cold_tier); the repeated hour's second half in Chicago, Denver, Los
Angeles, London, Adelaide, Auckland and Santiago (los_angeles).
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from aether_conformance.timestamps import utc_microseconds
from tests.zoo.base import CorrectStore, ShareState, T0, ev, factory, snap
from tests.zoo.subtle import with_nanoseconds


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# 1 ---------------------------------------------------------------------------------------------
class SnapshotAheadDroppedOnCatchUp(CorrectStore):
    """Stores that can rewind a stream (truncate to a version, then append a new branch) invalidate
    snapshots on append: an event written at version v means any snapshot at v or above was taken
    from events that are no longer the stream's, so `DELETE FROM snapshots WHERE actor_id = $1 AND
    version >= $2` runs in the append's transaction.  Without rewinds this only ever hits a snapshot
    saved ahead of the events (which the seed accepts, SS-SNAP-005): once the events catch up with
    it, the actor's highest snapshot is silently gone."""

    def append(self, event):
        super().append(event)
        rows = self.shared.snapshots.get(event.actor_id)
        if rows:
            rows[:] = [s for s in rows if s.version < event.version]


def trigger_ahead_dropped():
    s = factory(SnapshotAheadDroppedOnCatchUp)()
    s.save_event(ev("a", 1))
    s.save_snapshot(snap("a", 5))
    for v in range(2, 6):
        s.save_event(ev("a", v))
    got = s.get_latest_snapshot("a")
    return got is None or got.version != 5


# 2 ---------------------------------------------------------------------------------------------
class SnapshotRetentionByTakenAt(CorrectStore):
    """Snapshot retention counted by age: after each save, `DELETE FROM snapshots WHERE actor_id = $1
    AND taken_at < (SELECT taken_at FROM snapshots WHERE actor_id = $1 ORDER BY taken_at DESC OFFSET 4
    LIMIT 1)` keeps the five most recently *taken* (taken_at is the natural age column; a Cassandra
    table clustered by taken_at, an S3 lifecycle rule 'keep 5 newest').  The highest version, taken
    earlier than five lower ones (a rebuild, a replica catching up, a back-filled import), goes."""

    KEEP = 5

    def save_snapshot(self, snapshot):
        super().save_snapshot(snapshot)
        with self.shared.lock:
            rows = self.shared.snapshots[snapshot.actor_id]
            if len(rows) > self.KEEP:
                stamps = sorted((utc_microseconds(s.timestamp) for s in rows), reverse=True)
                cut = stamps[self.KEEP - 1]
                rows[:] = [s for s in rows if utc_microseconds(s.timestamp) >= cut]


def trigger_retention_taken_at():
    s = factory(SnapshotRetentionByTakenAt)()
    s.save_event(ev("a", 9))
    s.save_snapshot(snap("a", 9, timestamp=T0))
    for v in range(1, 6):
        s.save_snapshot(snap("a", v, timestamp=T0 + timedelta(seconds=v)))
    got = s.get_latest_snapshot("a")
    return got is None or got.version != 9


# 3 ---------------------------------------------------------------------------------------------
class ColdState(ShareState):
    def __init__(self):
        super().__init__()
        self.cold = {}  # actor -> events moved to the archive tier, in order


class ColdTierBehindSnapshot(CorrectStore):
    """Hot/cold tiering driven by snapshots (Marten-style archiving, a DynamoDB table with the tail
    exported to S3): saving a snapshot moves the actor's events more than 1,000 versions behind it
    to a cold archive.  A full replay (from_version 0 or below) stitches archive and hot table;
    a read that starts at a version is taken for a resuming reader and is served from the hot
    table alone, so get_events(actor, 1) or (actor, 10) of a long snapshotted stream starts at the
    first hot event."""

    HISTORY = 1_000

    def save_snapshot(self, snapshot):
        super().save_snapshot(snapshot)
        with self.shared.lock:
            hot = self.shared.events.get(snapshot.actor_id, [])
            moved = [e for e in hot if e.version < snapshot.version - self.HISTORY]
            if moved:
                self.shared.cold.setdefault(snapshot.actor_id, []).extend(moved)
                hot[:] = hot[len(moved):]

    def latest(self, actor_id):
        stream = self.shared.events.get(actor_id) or self.shared.cold.get(actor_id)
        return stream[-1].version if stream else 0

    def select(self, actor_id, from_version):
        hot = super().select(actor_id, from_version)
        if from_version > 0:
            return hot
        return [copy.deepcopy(e) for e in self.shared.cold.get(actor_id, [])] + hot


def trigger_cold_tier():
    s = factory(ColdTierBehindSnapshot, ColdState)()
    for v in range(1, 1051):
        s.save_event(ev("a", v))
    s.save_snapshot(snap("a", 1050))
    return [e.version for e in s.get_events("a", 1)] != list(range(1, 1051))


# 4 ---------------------------------------------------------------------------------------------
class BlobState(ShareState):
    def __init__(self):
        super().__init__()
        self.blobs = {}  # object key -> state


class ClaimCheckKeyedByActor(CorrectStore):
    """The claim-check pattern for large snapshots: a state over 256 KiB (an SQS/SNS message, a
    DynamoDB item's comfortable size) is written to S3 and the row keeps a pointer.  The object key
    is `snapshots/<actor>.json`, the actor's *current* state, not one object per version: a large
    snapshot at a lower version saved later overwrites the object the highest row points to, which
    then reads the lower one's state."""

    LIMIT = 256 * 1024

    def save_snapshot(self, snapshot):
        stored = copy.deepcopy(snapshot)
        if len(_json(snapshot.state).encode()) > self.LIMIT:
            key = f"snapshots/{snapshot.actor_id}.json"
            with self.shared.lock:
                self.shared.blobs[key] = copy.deepcopy(snapshot.state)
            stored = _Pointer(replace(stored, state={"$claim": key}), key)
        with self.shared.lock:
            self.shared.snapshots.setdefault(snapshot.actor_id, []).append(stored)

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            rows = self.shared.snapshots.get(actor_id)
            if not rows:
                return None
            top = max(rows, key=lambda s: s.version)
            if isinstance(top, _Pointer):
                return replace(top.snapshot, state=copy.deepcopy(self.shared.blobs[top.key]))
            return copy.deepcopy(top)


class _Pointer:
    def __init__(self, snapshot, key):
        self.snapshot, self.key = snapshot, key

    @property
    def version(self):
        return self.snapshot.version


def trigger_claim_check():
    s = factory(ClaimCheckKeyedByActor, BlobState)()
    s.save_event(ev("a", 2))
    high = snap("a", 2, state={"blob": "2" * 300_000})
    s.save_snapshot(high)
    s.save_snapshot(snap("a", 1, state={"blob": "1" * 300_000}))
    got = s.get_latest_snapshot("a")
    return got.version == 2 and got.state != high.state


# 5 ---------------------------------------------------------------------------------------------
class ZsetScoreTiesByTakenAtMember(CorrectStore):
    """Redis: snapshots of an actor in a sorted set scored by version, each member the text
    `<taken_at, RFC 3339 in UTC>|<snapshot JSON>` (so that members are unique and a rebuild at the
    same version is a new member), the latest read with `ZREVRANGE key 0 0`.  Scores are float64:
    versions within one float64 (2^53 and 2^53 + 1, 10^16 - 1 and 10^16, the top of int64) tie,
    and a tie goes to the greatest member - the snapshot *taken* last, not the highest version.
    The version in the member is exact, so whatever is returned reads back unchanged."""

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            rows = self.shared.snapshots.get(actor_id)
            if not rows:
                return None
            return copy.deepcopy(max(rows, key=lambda s: (float(s.version), utc_microseconds(s.timestamp))))


def trigger_zset_taken_at():
    s = factory(ZsetScoreTiesByTakenAtMember)()
    s.save_event(ev("a", 2**53 + 1))
    s.save_snapshot(snap("a", 2**53 + 1, timestamp=T0))
    s.save_snapshot(snap("a", 2**53, timestamp=T0 + timedelta(seconds=1)))
    return s.get_latest_snapshot("a").version == 2**53


# 6 ---------------------------------------------------------------------------------------------
class HeadState(ShareState):
    def __init__(self):
        super().__init__()
        self.heads = {}  # actor -> [latest event version, latest snapshot version or None]


class SnapshotPointerOnStreamHead(CorrectStore):
    """A streams table with one row per actor, created by the actor's first event, carrying the
    version of its latest snapshot (`UPDATE streams SET snapshot_version = $2 WHERE actor_id = $1
    AND (snapshot_version IS NULL OR snapshot_version < $2)`): get_latest_snapshot follows the
    pointer, and a stream row whose pointer is NULL answers None at once without touching the
    snapshots table.  An actor with no stream row yet (no event) is looked up in the snapshots
    table.  A snapshot saved before the actor's first event - at version 0, which no store may
    refuse, or an imported one ahead - updates no row, and the first event then creates the row
    with a NULL pointer: the snapshot is hidden from then on."""

    def append(self, event):
        super().append(event)
        self.shared.heads.setdefault(event.actor_id, [0, None])[0] = event.version

    def save_snapshot(self, snapshot):
        with self.shared.lock:
            self.shared.snapshots.setdefault(snapshot.actor_id, []).append(copy.deepcopy(snapshot))
            head = self.shared.heads.get(snapshot.actor_id)
            if head is not None and (head[1] is None or head[1] < snapshot.version):
                head[1] = snapshot.version

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            head = self.shared.heads.get(actor_id)
            rows = self.shared.snapshots.get(actor_id)
            if head is None:
                return copy.deepcopy(max(rows, key=lambda s: s.version)) if rows else None
            if head[1] is None:
                return None
            return copy.deepcopy(next(s for s in reversed(rows) if s.version == head[1]))


def trigger_head_pointer():
    s = factory(SnapshotPointerOnStreamHead, HeadState)()
    s.save_snapshot(snap("a", 0, state={"initial": True}))
    s.save_event(ev("a", 1))
    return s.get_latest_snapshot("a") is None


# 7 ---------------------------------------------------------------------------------------------
class HandleWriteThroughSnapshotCache(CorrectStore):
    """Each client keeps the latest snapshot it *wrote* per actor (a write-through cache: 'we
    saved it, so we know it' - Axon's and Akka's in-process snapshot caches of one application
    instance), replaced only by a higher version it saves, and answers reads from it; actors it
    never wrote are read from the table.  A handle that saved a snapshot does not see a higher
    one another handle saved afterwards."""

    def __init__(self, shared):
        super().__init__(shared)
        self.written = {}

    def save_snapshot(self, snapshot):
        super().save_snapshot(snapshot)
        cached = self.written.get(snapshot.actor_id)
        if cached is None or snapshot.version > cached.version:
            self.written[snapshot.actor_id] = copy.deepcopy(snapshot)

    def get_latest_snapshot(self, actor_id):
        cached = self.written.get(actor_id)
        if cached is not None:
            return copy.deepcopy(cached)
        return super().get_latest_snapshot(actor_id)


def trigger_write_through():
    make = factory(HandleWriteThroughSnapshotCache)
    one, two = make(), make()
    one.save_event(ev("a", 6))
    one.save_snapshot(snap("a", 5))
    two.save_snapshot(snap("a", 6))
    return one.get_latest_snapshot("a").version == 5


# 8 ---------------------------------------------------------------------------------------------
class SnapshotTakenAtLosAngelesDatetime(CorrectStore):
    """MySQL: the snapshots table (added later than the events table, which keeps UTC text) has
    `taken_at DATETIME(6)`, written in the application server's local zone (America/Los_Angeles,
    the driver's default of converting an aware time to local wall-clock time) and read back as
    local time in that zone.  A wall-clock time carries no fold: in the hour repeated when DST ends
    (01:00-02:00 twice, 08:00-10:00 UTC on 2024-11-03) the second occurrence reads back as the
    first, an hour early.  The suite's fall-back instants are New York's, Berlin's and Sydney's;
    Los Angeles repeats its hour at another instant in UTC."""

    ZONE = ZoneInfo("America/Los_Angeles")

    def save_snapshot(self, snapshot):
        wall = snapshot.timestamp.astimezone(self.ZONE).replace(tzinfo=None, fold=0)
        local = wall.replace(tzinfo=self.ZONE)
        super().save_snapshot(replace(snapshot, timestamp=with_nanoseconds(local, snapshot.timestamp)))


def trigger_los_angeles():
    s = factory(SnapshotTakenAtLosAngelesDatetime)()
    s.save_event(ev("a", 1))
    taken = datetime(2024, 11, 3, 9, 30, tzinfo=timezone.utc)  # 01:30 PST, the second 01:30
    s.save_snapshot(snap("a", 1, timestamp=taken))
    return utc_microseconds(s.get_latest_snapshot("a").timestamp) != utc_microseconds(taken)


TRIGGERS = {
    "ahead_dropped": trigger_ahead_dropped,
    "retention_taken_at": trigger_retention_taken_at,
    "cold_tier": trigger_cold_tier,
    "claim_check": trigger_claim_check,
    "zset_taken_at": trigger_zset_taken_at,
    "head_pointer": trigger_head_pointer,
    "write_through": trigger_write_through,
    "los_angeles": trigger_los_angeles,
}

ahead_dropped = factory(SnapshotAheadDroppedOnCatchUp)
retention_taken_at = factory(SnapshotRetentionByTakenAt)
cold_tier = factory(ColdTierBehindSnapshot, ColdState)
claim_check = factory(ClaimCheckKeyedByActor, BlobState)
zset_taken_at = factory(ZsetScoreTiesByTakenAtMember)
head_pointer = factory(SnapshotPointerOnStreamHead, HeadState)
write_through = factory(HandleWriteThroughSnapshotCache)
los_angeles = factory(SnapshotTakenAtLosAngelesDatetime)

BROKEN = {
    "ahead_dropped": "SS-SNAP-002",
    "retention_taken_at": "SS-SNAP-002",
    "cold_tier": "SS-SNAP-004",  # the events a snapshot archived are lost to reads (ES-READ-001)
    "claim_check": "SS-SNAP-003",
    "zset_taken_at": "SS-SNAP-002",
    "head_pointer": "SS-SNAP-002",
    "write_through": "ES-HANDLE-001",
    "los_angeles": "SS-SNAP-003",
}
