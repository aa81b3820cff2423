"""Stores a ninth adversarial review (a) wrote where two of the suite's classes meet, or where a bug
needs state that builds up over a run: caches of actors, global save counters, paging combined
with boundary versions or gaps, colliding ids combined with command ids or conflicts.

Each store is tests/zoo/base.py's CorrectStore broken in one place.  ``TRIGGERS`` maps each factory
name to a deterministic function showing the bug by direct calls (True when it shows); ``BROKEN``
names the MUST requirement each one breaks.
"""

from __future__ import annotations

import copy
import unicodedata
from collections import OrderedDict
from dataclasses import replace

from aether_conformance import VersionConflictError
from tests.zoo.base import CorrectStore, ShareState, ev, factory, snap

INT64_MAX = 2**63 - 1


# 1 ---------------------------------------------------------------------------------------------
class CommandState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.commands: set[tuple[str, str, int]] = set()


def _ci(text: str) -> str:
    """utf8mb4_0900_ai_ci's equality, near enough: case folded, accents dropped."""
    return "".join(c for c in unicodedata.normalize("NFD", text.casefold()) if not unicodedata.combining(c))


class CommandDedupUnderCiCollation(CorrectStore):
    """MySQL: events in `events(actor_id VARCHAR(255) COLLATE utf8mb4_bin, version BIGINT, ...)`, the
    exact key the version check uses; for exactly-once command handling a save also runs `INSERT
    IGNORE INTO processed_commands(actor_id, command_id, version)` and appends the event only when
    that inserted a row ("a duplicate delivery of a command already applied: acknowledge it").
    processed_commands was created without a COLLATE clause, so it has the schema's default
    utf8mb4_0900_ai_ci: an actor whose id differs from another's only in case or accents, saving the
    same command id at the same version, is taken for a redelivery - acknowledged, never stored."""

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            if event.command_id:
                key = (_ci(event.actor_id), _ci(event.command_id), event.version)
                if key in self.shared.commands:
                    return  # INSERT IGNORE affected 0 rows: a redelivered command
                self.shared.commands.add(key)
            self.append(event)


def trigger_ci_command_dedup():
    s = factory(CommandDedupUnderCiCollation, CommandState)()
    s.save_event(ev("Cart-7", 1, command_id="cmd-add-item"))
    s.save_event(ev("cart-7", 1, command_id="cmd-add-item"))
    return s.get_events("cart-7", 0) == [] and s.get_latest_version("cart-7") == 0


# 2 ---------------------------------------------------------------------------------------------
class KeysetCursorPastInt64(CorrectStore):
    """asyncpg/psycopg: get_events pages by keyset, `WHERE actor_id = $1 AND version >= $2 ORDER BY
    version LIMIT 100`, and after a full page asks again from `last.version + 1`.  When a full page
    ends at version 2^63-1 the next cursor is 2^63, which the driver cannot encode as int8: it
    raises OverflowError ("value out of int64 range") - a read of a stream whose remaining events
    are a multiple of 100 and end at the top of int64 fails."""

    PAGE = 100

    def select(self, actor_id, from_version):
        stream = self.shared.events.get(actor_id, [])
        out, cursor = [], from_version
        while True:
            page = [e for e in stream if e.version >= cursor][: self.PAGE]
            out.extend(copy.deepcopy(e) for e in page)
            if len(page) < self.PAGE:
                return out
            cursor = page[-1].version + 1
            if cursor > INT64_MAX:
                raise OverflowError("value out of int64 range")


def trigger_keyset_overflow():
    s = factory(KeysetCursorPastInt64)()
    for v in range(INT64_MAX - 99, INT64_MAX + 1):
        s.save_event(ev("top", v))
    try:
        s.get_events("top", 0)
    except OverflowError:
        return True
    return False


# 3 ---------------------------------------------------------------------------------------------
class HeadCacheState(ShareState):
    CAPACITY = 2_048

    def __init__(self) -> None:
        super().__init__()
        self.heads: OrderedDict[str, int] = OrderedDict()


class HeadCacheReloadsFirstPage(CorrectStore):
    """A stream-head cache (an LRU of 2,048 actors, the latest version of each, written through on
    every save and filled on every read).  On a miss the head is rebuilt by the same repository call
    a read uses, which returns the first page of the stream, `ORDER BY version LIMIT 1000`, and takes
    its last version.  An actor of more than 1,000 events that falls out of the cache comes back at
    its 1,000th version: its latest goes backwards and the conflict check lets stale versions in."""

    PAGE = 1_000

    def latest(self, actor_id):
        heads = self.shared.heads
        if actor_id in heads:
            heads.move_to_end(actor_id)
            return heads[actor_id]
        page = self.shared.events.get(actor_id, [])[: self.PAGE]
        value = page[-1].version if page else 0
        self._remember(actor_id, value)
        return value

    def _remember(self, actor_id, value):
        heads = self.shared.heads
        heads[actor_id] = value
        heads.move_to_end(actor_id)
        while len(heads) > self.shared.CAPACITY:
            heads.popitem(last=False)

    def append(self, event):
        super().append(event)
        self._remember(event.actor_id, event.version)


def trigger_head_cache():
    s = factory(HeadCacheReloadsFirstPage, HeadCacheState)()
    for v in range(1, 1_002):
        s.save_event(ev("big", v))
    for n in range(2_100):
        s.get_latest_version(f"other-{n}")
    return s.get_latest_version("big") == 1_000


# 4 ---------------------------------------------------------------------------------------------
def fnv1a_32(text: str) -> int:
    h = 0x811C9DC5
    for b in text.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


class FnvState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.heads: dict[int, int] = {}


class ConflictVersionFromHashedHeads(CorrectStore):
    """Go: the version check is the database's (a unique (actor_id, version) key), and on a conflict
    the error's CurrentVersion comes from an in-process `map[uint32]int64` of stream heads keyed by
    `fnv.New32a()` of the actor id (to keep the map small), written on every save.  Two actors whose
    ids hash alike share one entry: a conflict on one reports the other's latest version."""

    def append(self, event):
        super().append(event)
        self.shared.heads[fnv1a_32(event.actor_id)] = event.version

    def conflict(self, event, latest):
        current = self.shared.heads.get(fnv1a_32(event.actor_id), latest)
        return VersionConflictError(actor_id=event.actor_id, attempted_version=event.version,
                                    current_version=current)


def trigger_fnv_heads():
    s = factory(ConflictVersionFromHashedHeads, FnvState)()
    s.save_event(ev("order-229599", 3))
    s.save_event(ev("order-432382", 7))
    try:
        s.save_event(ev("order-229599", 2))
    except VersionConflictError as error:
        return error.current_version == 7
    return False


# 5 ---------------------------------------------------------------------------------------------
class TierState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.saves = 0


class ColdTierLosesNullData(CorrectStore):
    """Hot/cold tiering: a maintenance pass every 1,000 saves (across all actors) moves the events of
    an actor beyond its newest 1,000 from the hot table to a columnar archive (Parquet), where
    `data` is a non-nullable JSON column that writes a nil map as `{}`.  Reads union both tiers.  Only
    actors of more than 1,000 events are archived, and only after the next pass, so an event with
    null data early in a long stream later reads back as `{}`."""

    HOT = 1_000
    EVERY = 1_000

    def append(self, event):
        super().append(event)
        self.shared.saves += 1
        if self.shared.saves % self.EVERY == 0:
            for stream in self.shared.events.values():
                if len(stream) > self.HOT:
                    for i in range(len(stream) - self.HOT):
                        if stream[i].data is None:
                            stream[i] = replace(stream[i], data={})


def trigger_cold_tier():
    s = factory(ColdTierLosesNullData, TierState)()
    s.save_event(ev("long", 1, data=None))
    for v in range(2, 1_003):
        s.save_event(ev("long", v))
    for n in range(1_000):
        s.save_event(ev(f"other-{n}", 1))
    return s.get_events("long", 1)[0].data == {}


# 6 ---------------------------------------------------------------------------------------------
class BucketState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.buckets: dict[str, set[int]] = {}


class BucketIndexFirstPageOnly(CorrectStore):
    """Cassandra: events in partitions of 1,000 versions, `PRIMARY KEY ((actor_id, bucket), version)`
    with bucket = version / 1000 (to keep partitions small), and a bucket index `PRIMARY KEY
    (actor_id, bucket)`.  A read lists the buckets at or above from_version's with the driver's
    default fetch size of 100 and never follows the paging state, then reads each bucket.  An actor
    whose events span more than 100 buckets (a long stream, or one with wide gaps) loses the rest."""

    WIDTH = 1_000
    FETCH = 100

    def append(self, event):
        super().append(event)
        self.shared.buckets.setdefault(event.actor_id, set()).add(event.version // self.WIDTH)

    def select(self, actor_id, from_version):
        first = from_version // self.WIDTH
        buckets = sorted(b for b in self.shared.buckets.get(actor_id, ()) if b >= first)[: self.FETCH]
        wanted = set(buckets)
        return [copy.deepcopy(e) for e in self.shared.events.get(actor_id, [])
                if e.version >= from_version and e.version // self.WIDTH in wanted]


def trigger_bucket_index():
    s = factory(BucketIndexFirstPageOnly, BucketState)()
    for k in range(1, 102):
        s.save_event(ev("wide", k * 1_000))
    return len(s.get_events("wide", 0)) == 100


make_ci_command_dedup = factory(CommandDedupUnderCiCollation, CommandState)
make_keyset_overflow = factory(KeysetCursorPastInt64)
make_head_cache = factory(HeadCacheReloadsFirstPage, HeadCacheState)
make_fnv_heads = factory(ConflictVersionFromHashedHeads, FnvState)
make_cold_tier = factory(ColdTierLosesNullData, TierState)
make_bucket_index = factory(BucketIndexFirstPageOnly, BucketState)

TRIGGERS = {
    "make_ci_command_dedup": trigger_ci_command_dedup,
    "make_keyset_overflow": trigger_keyset_overflow,
    "make_head_cache": trigger_head_cache,
    "make_fnv_heads": trigger_fnv_heads,
    "make_cold_tier": trigger_cold_tier,
    "make_bucket_index": trigger_bucket_index,
}

BROKEN = {
    "make_ci_command_dedup": "ES-SAVE-001",
    "make_keyset_overflow": "ES-READ-001",
    "make_head_cache": "ES-LATEST-002",
    "make_fnv_heads": "ES-ERR-001",
    "make_cold_tier": "ES-READ-003",
    "make_bucket_index": "ES-READ-001",
}
