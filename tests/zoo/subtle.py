"""The subtle zoo: stores that are correct on everyday inputs and break one MUST just outside them.

Each specimen is modelled on a bug that real backends have (a SQL LIKE lookup,
a float64 score, a VARCHAR column, a TTL, a replica, a Postgres isolation
trap, ...) and breaks exactly one requirement, only at the values, sizes, id
shapes or interleavings where that backend breaks.  The controls are correct
stores with unusual but legal behaviour; they must be certified conformant.

``SUBTLE`` maps each factory name to the requirement its flaw breaks (None for
a control).  Everything here is deterministic in what it does: caches expire
by operation count or by a TTL far shorter than a run, replicas lag by
operation count, and race windows are widened only while other calls are in
flight, so sequential use stays fast and the bug shows whenever calls overlap.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import sqlite3
import threading
import time
import unicodedata
from bisect import insort
from collections import OrderedDict
from dataclasses import fields, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from aether_conformance import ActorSnapshot, Event, Timestamp, VersionConflictError
from aether_conformance.errors import go_quote
from aether_conformance.limits import ENCODED_SIZE_FLOOR, FIELD_LENGTH_FLOOR, NESTING_DEPTH_FLOOR

from .base import CorrectStore, ShareState, factory

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


# -- helpers shared by several specimens --------------------------------------------------

def wrap_int32(value: int) -> int:
    """What a C int32 (or a Java int) holds after the assignment of ``value``."""
    return (value - INT32_MIN) % 2**32 + INT32_MIN


def compact_json_bytes(value) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))


def nesting_depth(value) -> int:
    """Levels of objects and arrays: {} is 1, {"a": {}} is 2, a scalar is 0."""
    if isinstance(value, dict):
        return 1 + max((nesting_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((nesting_depth(v) for v in value), default=0)
    return 0


def map_strings(value, fn):
    """``value`` with every string value (not object key) passed through ``fn``."""
    if isinstance(value, dict):
        return {k: map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [map_strings(v, fn) for v in value]
    return fn(value) if isinstance(value, str) else value


def with_nanoseconds(value: datetime, original: datetime) -> Timestamp:
    return Timestamp.from_datetime(value, getattr(original, "nanosecond", 0))


def total_microseconds(stamp: datetime) -> int:
    delta = stamp - EPOCH
    return (delta.days * 86400 + delta.seconds) * 10**6 + delta.microseconds


class BusyState(ShareState):
    """Shared data plus a count of store calls in flight.

    Racy specimens spend 0.1 ms in their race window (the I/O a real backend does
    there), and widen it while another call is in flight, so sequential tests stay
    fast and any overlap hits the window.
    """

    def __init__(self) -> None:
        super().__init__()
        self.count_lock = threading.Lock()
        self.in_flight = 0
        self.operations = 0


class Counted(CorrectStore):
    """Counts calls in flight and operations; ``io()`` sleeps only while calls overlap."""

    def _call(self, method, *args):
        with self.shared.count_lock:
            self.shared.in_flight += 1
            self.shared.operations += 1
        try:
            return method(*args)
        finally:
            with self.shared.count_lock:
                self.shared.in_flight -= 1

    def io(self, seconds: float = 0.001) -> None:
        # A round trip of 0.1 ms always (it lets other threads in), longer while calls overlap.
        time.sleep(seconds if self.shared.in_flight > 1 else 0.0001)

    def save_event(self, event):
        return self._call(super().save_event, event)

    def get_events(self, actor_id, from_version):
        return self._call(super().get_events, actor_id, from_version)

    def get_latest_version(self, actor_id):
        return self._call(super().get_latest_version, actor_id)

    def save_snapshot(self, snapshot):
        return self._call(super().save_snapshot, snapshot)

    def get_latest_snapshot(self, actor_id):
        return self._call(super().get_latest_snapshot, actor_id)


class KeyedStreams(CorrectStore):
    """Events stored under ``key(actor_id)``: a lossy key makes two actors share one stream."""

    def key(self, actor_id: str) -> str:
        return actor_id

    def latest(self, actor_id):
        return super().latest(self.key(actor_id))

    def append(self, event):
        self.shared.events.setdefault(self.key(event.actor_id), []).append(copy.deepcopy(event))

    def select(self, actor_id, from_version):
        return super().select(self.key(actor_id), from_version)


class KeyedSnapshots(CorrectStore):
    """Snapshots stored under ``snapshot_key(actor_id)``."""

    def snapshot_key(self, actor_id: str) -> str:
        return actor_id

    def save_snapshot(self, snapshot):
        with self.shared.lock:
            self.shared.snapshots.setdefault(self.snapshot_key(snapshot.actor_id), []).append(copy.deepcopy(snapshot))

    def get_latest_snapshot(self, actor_id):
        return super().get_latest_snapshot(self.snapshot_key(actor_id))


class QuotedConflict(VersionConflictError):
    """A conflict whose text is produced by a port of Go's %q with one class of characters wrong."""

    @staticmethod
    def quote_char(char: str) -> str | None:
        """The port's rendering of ``char``, or None where it agrees with Go."""
        return None

    @property
    def message(self) -> str:
        quoted = "".join(self.quote_char(c) or go_quote(c)[1:-1] for c in self.actor_id)
        return (f'version conflict: actor "{quoted}" has version {self.current_version}, '
                f"cannot save version {self.attempted_version}")


def quoting_store(error_class: type[QuotedConflict]) -> type[CorrectStore]:
    class Store(CorrectStore):
        def conflict(self, event, latest):
            return error_class(actor_id=event.actor_id, attempted_version=event.version, current_version=latest)

    Store.__doc__ = error_class.__doc__
    Store.__name__ = Store.__qualname__ = error_class.__name__ + "Store"
    return Store


# == SQL LIKE lookups ======================================================================

@functools.lru_cache(maxsize=4096)
def like_pattern(text: str) -> re.Pattern:
    """Postgres LIKE (case-sensitive): `_` is any one character, `%` any run of them."""
    return re.compile("".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in text), re.DOTALL)


def like_keys(table: dict, actor_id: str) -> list[str]:
    if "_" not in actor_id and "%" not in actor_id:
        return [actor_id] if actor_id in table else []  # without wildcards LIKE is equality
    pattern = like_pattern(actor_id)
    return [key for key in table if pattern.fullmatch(key)]


class LikeWildcardReads(CorrectStore):
    """`SELECT ... WHERE actor_id LIKE $1 ORDER BY version` with the id unescaped: reading
    `order_1` also returns the events of `orderA1` (ORMs that build `contains`/`startswith`
    lookups with LIKE, and hand-written queries that used LIKE to be 'flexible')."""

    def select(self, actor_id, from_version):
        found = [e for key in like_keys(self.shared.events, actor_id) for e in self.shared.events[key]
                 if e.version >= from_version]
        return [copy.deepcopy(e) for e in sorted(found, key=lambda e: e.version)]


class LikeWildcardLatest(CorrectStore):
    """`SELECT max(version) FROM events WHERE actor_id LIKE $1`: the latest version (and so the
    conflict check) of `a%` is the highest over every actor starting with `a`."""

    def latest(self, actor_id):
        return max((self.shared.events[k][-1].version for k in like_keys(self.shared.events, actor_id)), default=0)


class LikeWildcardSnapshots(CorrectStore):
    """Snapshots looked up with `WHERE actor_id LIKE $1 ORDER BY version DESC LIMIT 1`: the
    snapshot of `a_b` may be the one of `axb`."""

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            found = [s for k in like_keys(self.shared.snapshots, actor_id) for s in self.shared.snapshots[k]]
            return copy.deepcopy(max(found, key=lambda s: s.version)) if found else None


# == Redis sorted sets: float64 scores ========================================================

class ZsetFloatScoreReads(CorrectStore):
    """Events in a Redis sorted set scored by version (ZADD stream <version> <event json>),
    read with ZRANGEBYSCORE from_version +inf: scores are float64, so above 2^53 a from_version
    also matches its float neighbours and equal scores come back in member (id) order.
    The latest version is a separate integer key, so saves and conflicts are exact."""

    def select(self, actor_id, from_version):
        found = [e for e in self.shared.events.get(actor_id, []) if float(e.version) >= float(from_version)]
        return [copy.deepcopy(e) for e in sorted(found, key=lambda e: (float(e.version), e.id))]


class ZsetFloatScoreLatest(CorrectStore):
    """The latest version read back as the top score of a sorted set (ZREVRANGE ... WITHSCORES):
    a float64, so 2^53+1 reads as 2^53, and the conflict check built on it lets a retry of
    2^53+1 in.  Events themselves are stored as exact JSON members."""

    def latest(self, actor_id):
        stream = self.shared.events.get(actor_id)
        return int(float(stream[-1].version)) if stream else 0


class ZsetFloatScoreSnapshots(CorrectStore):
    """Snapshots in a sorted set scored by version; the latest is the member with the top
    score, and equal float scores keep the member added first: a snapshot at 2^53+1 saved
    after one at 2^53 never wins."""

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            snapshots = self.shared.snapshots.get(actor_id)
            return copy.deepcopy(max(snapshots, key=lambda s: float(s.version))) if snapshots else None


# == string-ordered keys (zero-padded to 10 digits) =========================================

def padded(version: int) -> str:
    return f"{version:010d}"


class PaddedKeyReads(CorrectStore):
    """A key-value store with keys `actor/<version padded to 10 digits>` read by a range scan
    from `actor/<from_version>`: once versions pass 9,999,999,999 the keys have 11 digits and
    sort before the 10-digit ones, so reads lose or misorder them.  The latest version is a
    separate integer counter."""

    def select(self, actor_id, from_version):
        start = padded(from_version)
        found = [e for e in self.shared.events.get(actor_id, []) if padded(e.version) >= start]
        return [copy.deepcopy(e) for e in sorted(found, key=lambda e: padded(e.version))]


class PaddedKeyLatest(CorrectStore):
    """get_latest_version answers with the last key of a scan over `actor/<10-digit version>`
    keys (a reverse scan, LIMIT 1): 10,000,000,000 sorts before 9,999,999,999.  Saves check
    against the integer counter, so only the reported latest is wrong."""

    def get_latest_version(self, actor_id):
        with self.shared.lock:
            stream = self.shared.events.get(actor_id)
            return max(stream, key=lambda e: padded(e.version)).version if stream else 0


class PaddedKeySnapshots(CorrectStore):
    """Snapshots keyed `actor/<10-digit version>`, the latest being the last key: a snapshot
    at 10^10 loses to one at 9,999,999,999."""

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            snapshots = self.shared.snapshots.get(actor_id)
            return copy.deepcopy(max(snapshots, key=lambda s: padded(s.version))) if snapshots else None


# == int32 columns ==========================================================================

class Int32FromVersion(CorrectStore):
    """The from_version parameter bound as a 32-bit INT (MySQL in non-strict mode clamps it to
    2,147,483,647): a read from a version above 2^31 also returns the events below it."""

    def select(self, actor_id, from_version):
        return super().select(actor_id, min(max(from_version, INT32_MIN), INT32_MAX))


class Int32SnapshotOrder(CorrectStore):
    """Snapshot versions kept exactly, but the index that picks the latest one is on an INT
    (int32) column: a snapshot at 2^31 wraps to -2^31 and loses to one at 5."""

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            snapshots = self.shared.snapshots.get(actor_id)
            return copy.deepcopy(max(snapshots, key=lambda s: wrap_int32(s.version))) if snapshots else None


class Int32ConflictCurrentVersion(CorrectStore):
    """The conflict check is right, but the error's current_version comes from an int32 field
    of the driver's error struct: above 2^31 it wraps."""

    def conflict(self, event, latest):
        return super().conflict(event, wrap_int32(latest))


# == result windows and pagination ==========================================================

class SearchWindow10000(CorrectStore):
    """Events read from a search index (Elasticsearch/OpenSearch): a query returns at most
    index.max_result_window = 10,000 hits, silently."""

    def select(self, actor_id, from_version):
        return super().select(actor_id, from_version)[:10_000]


class Window65536(CorrectStore):
    """Reads capped at 65,536 rows (a uint16 row counter in the wire protocol)."""

    def select(self, actor_id, from_version):
        return super().select(actor_id, from_version)[:65_536]


class Page1000RepeatsBoundary(CorrectStore):
    """Reads paged 1,000 at a time with `WHERE version >= :cursor`, the next cursor being the
    last version of the page instead of one past it: the event at each page boundary is
    returned twice."""

    def select(self, actor_id, from_version):
        rows, result, start = super().select(actor_id, from_version), [], 0
        while True:
            page = rows[start:start + 1000]
            result.extend(copy.deepcopy(page))
            if len(page) < 1000:
                return result
            start += 999


class Page100SkipsBoundary(CorrectStore):
    """Reads paged 100 at a time with OFFSET, advancing the offset by page size + 1: one event
    is lost after every full page."""

    def select(self, actor_id, from_version):
        rows, result, start = super().select(actor_id, from_version), [], 0
        while True:
            page = rows[start:start + 100]
            result.extend(page)
            if len(page) < 100:
                return result
            start += 101


class LatestFromFirstPage(CorrectStore):
    """The latest version computed in the application over the first page of 100 rows of the
    stream (LIMIT 100 without ORDER BY version DESC): right until an actor has 100 events."""

    def latest(self, actor_id):
        stream = self.shared.events.get(actor_id, [])
        return max((e.version for e in stream[:100]), default=0)


# == VARCHAR truncation =====================================================================

class Varchar64EventType(CorrectStore):
    """event_type in a VARCHAR(64) column of a non-strict MySQL: longer types are cut."""

    def append(self, event):
        super().append(replace(event, event_type=event.event_type[:64]))


class Varchar255CommandId(CorrectStore):
    """command_id in a VARCHAR(255) column that truncates silently."""

    def append(self, event):
        super().append(replace(event, command_id=event.command_id[:255]))


class Varchar255BytesEventId(CorrectStore):
    """The event id in a 255-*byte* column (VARBINARY(255), or a char limit counted in UTF-8
    bytes): ASCII ids up to 255 characters survive, a 100-character id in CJK or emoji does
    not."""

    def append(self, event):
        cut = event.id.encode("utf-8", "surrogatepass")[:255].decode("utf-8", "ignore")
        super().append(replace(event, id=cut))


class RefusesOverLongIds(CorrectStore):
    """Refuses actor ids over 256 characters with ValueError, as ES-ACTOR-003 allows, so that
    a lossy key below that length is the specimen's only flaw."""

    def save_event(self, event):
        if len(event.actor_id) > 256:
            raise ValueError(f"actor_id: over 256 characters ({len(event.actor_id)})")
        super().save_event(event)

    def save_snapshot(self, snapshot):
        if len(snapshot.actor_id) > 256:
            raise ValueError(f"actor_id: over 256 characters ({len(snapshot.actor_id)})")
        super().save_snapshot(snapshot)


class ActorKey128Chars(RefusesOverLongIds, KeyedStreams):
    """Streams keyed by the first 128 characters of the actor id (an indexed prefix, or a
    key-value store's key length limit): ids sharing a 128-character prefix share a stream.
    Ids over 256 characters are refused, as allowed."""

    def key(self, actor_id):
        return actor_id[:128]


class ActorKey255Bytes(RefusesOverLongIds, KeyedStreams):
    """Streams keyed by the first 255 UTF-8 bytes of the actor id (a VARBINARY(255) key): two
    256-character ASCII ids that differ in the last character, or long non-ASCII ids, collide.
    Ids over 256 characters are refused, as allowed."""

    def key(self, actor_id):
        return actor_id.encode("utf-8", "surrogatepass")[:255].decode("utf-8", "ignore")


class SnapshotKey64Chars(RefusesOverLongIds, KeyedSnapshots):
    """Snapshots in a table whose actor column is VARCHAR(64): actors sharing a 64-character
    prefix share their snapshots (events use a wider column and are right)."""

    def snapshot_key(self, actor_id):
        return actor_id[:64]


# == TEXT 64 KiB and nesting limits =========================================================

class Text64KiBData(CorrectStore):
    """Event data in a MySQL TEXT column (65,535 bytes) without strict mode: longer JSON is
    cut, no longer parses, and the driver hands back NULL."""

    def append(self, event):
        if event.data is not None and compact_json_bytes(event.data) > 65_535:
            event = replace(event, data=None)
        super().append(event)


class Text64KiBState(CorrectStore):
    """Snapshot state in a TEXT column (65,535 bytes) that truncates: a bigger state reads
    back as null."""

    def save_snapshot(self, snapshot):
        if snapshot.state is not None and compact_json_bytes(snapshot.state) > 65_535:
            snapshot = replace(snapshot, state=None)
        super().save_snapshot(snapshot)


class Depth48NullsData(CorrectStore):
    """A JSON library with a nesting limit of 48 that returns null instead of raising (the
    event is stored with data NULL), below the 64 levels every store must carry."""

    def append(self, event):
        if nesting_depth(event.data) > 48:
            event = replace(event, data=None)
        super().append(event)


class Depth32NullsState(CorrectStore):
    """Snapshot state encoded by a serialiser whose depth limit of 32 yields null."""

    def save_snapshot(self, snapshot):
        if nesting_depth(snapshot.state) > 32:
            snapshot = replace(snapshot, state=None)
        super().save_snapshot(snapshot)


# == TTL caches and eviction ================================================================

class TtlState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.counters: dict[str, tuple[int, float]] = {}
        self.recent: OrderedDict[str, None] = OrderedDict()
        self.read_cache: dict[tuple[str, int], list[Event]] = {}


class TtlLatestCounter(CorrectStore):
    """Redis: events in a list without expiry, the latest version in a counter key written with
    `SET latest:<actor> <v> EX 1`.  When the counter expires, GET returns nil, read as 0:
    the latest version drops to 0 one second after an actor's last save, and version 1 is
    accepted again."""

    TTL_SECONDS = 1.0

    def latest(self, actor_id):
        version, expires = self.shared.counters.get(actor_id, (0, 0.0))
        return version if time.monotonic() < expires else 0

    def append(self, event):
        super().append(event)
        self.shared.counters[event.actor_id] = (event.version, time.monotonic() + self.TTL_SECONDS)


class TtlLatestCounter8s(TtlLatestCounter):
    """The same counter written with `EX 8`: a run quicker than 8 s never sees it expire, unless
    the revisit waits for the profile's revisit age (10 s in default)."""

    TTL_SECONDS = 8.0


class LruEvictsStreams(CorrectStore):
    """A cache server used as the store (Redis with maxmemory-policy allkeys-lru): only the 300
    most recently used actors are kept; older streams are evicted, events and latest version."""

    CAPACITY = 300

    def touch(self, actor_id):
        recent = self.shared.recent
        recent[actor_id] = None
        recent.move_to_end(actor_id)
        while len(recent) > self.CAPACITY:
            evicted, _ = recent.popitem(last=False)
            self.shared.events.pop(evicted, None)

    def latest(self, actor_id):
        self.touch(actor_id)
        return super().latest(actor_id)

    def select(self, actor_id, from_version):
        self.touch(actor_id)
        return super().select(actor_id, from_version)


class CacheInvalidatesOneKey(CorrectStore):
    """A read-through cache of get_events keyed (actor, from_version); a save invalidates only
    the key (actor, 0), so a tail read made before the save keeps its old answer."""

    def select(self, actor_id, from_version):
        key = (actor_id, from_version)
        if key not in self.shared.read_cache:
            self.shared.read_cache[key] = super().select(actor_id, from_version)
        return copy.deepcopy(self.shared.read_cache[key])

    def append(self, event):
        super().append(event)
        self.shared.read_cache.pop((event.actor_id, 0), None)


# == normalisation, case, whitespace ========================================================

class NfcActorIds(KeyedStreams):
    """Actor ids NFC-normalised before use as a key (macOS file names, a Postgres ICU
    normaliser, a `normalize()` in the key builder): `é` and `e\u0301` share a stream."""

    def key(self, actor_id):
        return unicodedata.normalize("NFC", actor_id)


class NfkcActorIds(KeyedStreams):
    """Actor ids NFKC-normalised (a 'security' normaliser, or an identifier rule): fullwidth
    `Ａ`, `ﬁ`, superscripts and U+212B all fold onto other ids."""

    def key(self, actor_id):
        return unicodedata.normalize("NFKC", actor_id)


class AccentInsensitiveIds(KeyedStreams):
    """An accent-insensitive, case-sensitive collation on the actor column (ICU `ks-level1`
    with case level on): `café` and `cafe` are one actor."""

    def key(self, actor_id):
        decomposed = unicodedata.normalize("NFD", actor_id)
        return "".join(c for c in decomposed if not unicodedata.combining(c))


class NfcEventTypes(CorrectStore):
    """Event types pass through a normalising analyser (NFC) on the way in."""

    def append(self, event):
        super().append(replace(event, event_type=unicodedata.normalize("NFC", event.event_type)))


class NfcDataStrings(CorrectStore):
    """String values inside data are NFC-normalised by the document database's text pipeline."""

    def append(self, event):
        super().append(replace(event, data=map_strings(event.data, lambda s: unicodedata.normalize("NFC", s))))


class PadSpaceActorIds(KeyedStreams):
    """A PAD SPACE collation (MySQL before 8.0's NO PAD, SQL Server): `'a' = 'a   '`, so ids
    differing only in trailing spaces are one actor.  Tabs and leading spaces are kept."""

    def key(self, actor_id):
        return actor_id.rstrip(" ")


class CharColumnCommandId(CorrectStore):
    """command_id in a CHAR(n) column: MySQL strips trailing spaces on retrieval."""

    def append(self, event):
        super().append(replace(event, command_id=event.command_id.rstrip(" ")))


# == sanitised keys, prefix scans, wildcards, NUL ===========================================

class SlashSanitisedIds(KeyedStreams):
    """One file per actor, named after the id with `/` replaced by `_`: `a/b` and `a_b` share a
    file."""

    def key(self, actor_id):
        return actor_id.replace("/", "_")


class EmptyTokenSanitised(KeyedStreams):
    """A NATS subject built from the id split on `.`, each empty token replaced by `_` (an
    empty token is not a valid subject): `a..b` and `a._.b` are one subject."""

    def key(self, actor_id):
        return ".".join(token or "_" for token in actor_id.split("."))


class DelimiterPrefixScan(CorrectStore):
    """Events under keys `<actor>/<version>`, read with a prefix scan of `<actor>/`: the scan for
    `x` also returns the events of `x/y`.  Latest versions are kept per exact id."""

    def select(self, actor_id, from_version):
        prefix = actor_id + "/"
        keys = [actor_id] + [k for k in self.shared.events if "/" in k and k.startswith(prefix)]
        found = [e for k in keys for e in self.shared.events.get(k, []) if e.version >= from_version]
        return [copy.deepcopy(e) for e in sorted(found, key=lambda e: e.version)]


def subject_matches(pattern: list[str], subject: list[str]) -> bool:
    for index, token in enumerate(pattern):
        if token == ">" and index == len(pattern) - 1:
            return len(subject) > index
        if index >= len(subject) or (token != "*" and token != subject[index]):
            return False
    return len(pattern) == len(subject)


class WildcardSubjectSnapshots(CorrectStore):
    """Snapshots on NATS subjects `snap.<actor>`, fetched with the actor id as a subject filter:
    an id with a `*` or `>` token matches other actors' snapshots."""

    def get_latest_snapshot(self, actor_id):
        tokens = actor_id.split(".")
        if "*" not in tokens and ">" not in tokens:
            return super().get_latest_snapshot(actor_id)
        with self.shared.lock:
            found = [s for k, stream in self.shared.snapshots.items()
                     if subject_matches(tokens, k.split(".")) for s in stream]
            return copy.deepcopy(max(found, key=lambda s: s.version)) if found else None


class NulTruncatedActorIds(KeyedStreams):
    """The key passes through a C API that takes NUL-terminated strings: `a\\0b` is `a`."""

    def key(self, actor_id):
        return actor_id.split("\0", 1)[0]


class NulTruncatedDataStrings(CorrectStore):
    """String values in data go through a C extension as NUL-terminated strings."""

    def append(self, event):
        super().append(replace(event, data=map_strings(event.data, lambda s: s.split("\0", 1)[0])))


# == concurrency ============================================================================

class RewriteState(BusyState):
    def __init__(self) -> None:
        super().__init__()
        self.actor_locks: dict[str, threading.Lock] = {}
        self.table_lock = threading.Lock()
        self.cache: dict[str, list[int]] = {}
        self.counters: dict[str, int] = {}
        self.replica: dict[str, list[Event]] = {}
        self.pending: list[tuple[int, Event]] = []

    def actor_lock(self, actor_id: str) -> threading.Lock:
        with self.lock:
            return self.actor_locks.setdefault(actor_id, threading.Lock())


class PerActorLockGlobalRewrite(Counted):
    """A JSON-file store: each save holds its actor's lock, then rewrites the whole file from
    the copy it read.  Two saves to different actors at once: the later rewrite drops the
    other's event, an acknowledged save that vanishes."""

    def check_and_append(self, event):
        with self.shared.actor_lock(event.actor_id):
            before = self.shared.events
            stream = before.get(event.actor_id, [])
            latest = stream[-1].version if stream else 0
            if event.version <= latest:
                raise self.conflict(event, latest)
            rewritten = {**before, event.actor_id: [*stream, copy.deepcopy(event)]}
            self.io()  # serialising and writing the file
            self.shared.events = rewritten

    def select(self, actor_id, from_version):
        return [copy.deepcopy(e) for e in self.shared.events.get(actor_id, []) if e.version >= from_version]


class LockTimeoutAsConflict(Counted):
    """Per-actor row locks, plus a table lock for the index update taken with a 1 ms lock wait
    timeout; a timed-out wait (MySQL 1205, Postgres lock_timeout) is reported as a version
    conflict.  Only saves to *different* actors at once contend for it."""

    def check_and_append(self, event):
        with self.shared.actor_lock(event.actor_id):
            latest = self.latest(event.actor_id)
            if event.version <= latest:
                raise self.conflict(event, latest)
            if not self.shared.table_lock.acquire(timeout=0.001):
                raise self.conflict(event, latest)
            try:
                self.io(0.003)  # updating the index
                with self.shared.lock:
                    self.append(event)
            finally:
                self.shared.table_lock.release()


class PostgresGapTrap(Counted):
    """Postgres at READ COMMITTED: `SELECT max(version)`, compare, then INSERT guarded only by a
    UNIQUE (actor_id, version) constraint.  Two writers of the same version: one gets the
    unique violation (reported as a conflict), so same-version races look atomic.  Writers of
    different versions (6 and 7 after 5) both pass the check; 7 commits, then 6 is inserted
    below it, so a reader saw ...5, 7 and later ...5, 6, 7."""

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
        if event.version <= latest:
            raise self.conflict(event, latest)
        self.io()  # the round trip between SELECT and INSERT
        with self.shared.lock:
            stream = self.shared.events.setdefault(event.actor_id, [])
            if any(e.version == event.version for e in stream):
                raise self.conflict(event, stream[-1].version)
            insort(stream, copy.deepcopy(event), key=lambda e: e.version)


class StaleReadThroughLatest(Counted):
    """A read-through cache of the latest version (memcached without leases): a reader that
    missed reads the database, is delayed, then SETs what it read, over the fresher state a
    writer's invalidation left.  Cached values serve 3 reads, so the stale value does not last;
    but while it does, latest versions go backwards for readers racing with writers."""

    HITS_PER_FILL = 3

    def get_latest_version(self, actor_id):
        return self._call(self._cached_latest, actor_id)

    def _cached_latest(self, actor_id):
        with self.shared.lock:
            entry = self.shared.cache.get(actor_id)
            if entry is not None and entry[1] < self.HITS_PER_FILL:
                entry[1] += 1
                return entry[0]
            value = self.latest(actor_id)
        self.io()  # the cache server round trip
        with self.shared.lock:
            self.shared.cache[actor_id] = [value, 1]
        return value

    def append(self, event):
        super().append(event)
        self.shared.cache.pop(event.actor_id, None)


class CounterBeforeEvent(Counted):
    """Two Redis writes without MULTI: `SET latest <v>` then `RPUSH events <json>`.  Writers
    are serialised (a Lua-free lock), but readers take no lock: between the two writes a
    reader sees latest v and a stream without event v."""

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.shared.counters.get(event.actor_id, 0)
            if event.version <= latest:
                raise self.conflict(event, latest)
            self.shared.counters[event.actor_id] = event.version
            self.io(0.0005)
            self.append(event)

    def get_latest_version(self, actor_id):
        return self._call(lambda: self.shared.counters.get(actor_id, 0))

    def get_events(self, actor_id, from_version):
        return self._call(lambda: [copy.deepcopy(e) for e in list(self.shared.events.get(actor_id, []))
                                   if e.version >= from_version])


class ReplicaLagsUnderLoad(Counted):
    """Reads of events go to an asynchronous replica, latest versions and saves to the primary.
    The replica applies a write 5 operations later, or at once when the store is idle: a
    sequential client never sees the lag, a reader racing with writers sees latest v while
    the events it reads stop before v."""

    LAG_OPERATIONS = 5

    def append(self, event):
        super().append(event)
        self.shared.pending.append((self.shared.operations, copy.deepcopy(event)))

    def _replicate(self):
        idle = self.shared.in_flight <= 1
        pending = self.shared.pending
        while pending and (idle or self.shared.operations - pending[0][0] >= self.LAG_OPERATIONS):
            event = pending.pop(0)[1]
            self.shared.replica.setdefault(event.actor_id, []).append(event)

    def select(self, actor_id, from_version):
        self._replicate()
        return [copy.deepcopy(e) for e in self.shared.replica.get(actor_id, []) if e.version >= from_version]


class ReplicaLagsForOtherHandles(CorrectStore):
    """Each handle is a session pinned to the primary for what it wrote itself (read-your-
    writes); other handles read from a replica that applies writes 3 operations late.
    Conflict checks run on the primary."""

    LAG_OPERATIONS = 3

    def __init__(self, shared):
        super().__init__(shared)
        self.written: set[int] = set()

    def tick(self) -> int:
        self.shared.operations += 1
        return self.shared.operations

    def save_event(self, event):
        with self.shared.lock:
            now = self.tick()
            latest = self.latest(event.actor_id)
            if event.version <= latest:
                raise self.conflict(event, latest)
            self.append(event)
            stored = self.shared.events[event.actor_id][-1]
            self.shared.pending.append((now, stored))
            del self.shared.pending[:-64]  # older writes are long replicated
            self.written.add(id(stored))

    def _visible(self, actor_id):
        now = self.tick()
        lagging = {id(e) for op, e in self.shared.pending if now - op <= self.LAG_OPERATIONS} - self.written
        return [e for e in self.shared.events.get(actor_id, []) if id(e) not in lagging]

    def get_events(self, actor_id, from_version):
        with self.shared.lock:
            return [copy.deepcopy(e) for e in self._visible(actor_id) if e.version >= from_version]

    def get_latest_version(self, actor_id):
        with self.shared.lock:
            visible = self._visible(actor_id)
            return visible[-1].version if visible else 0


class PoolState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.handles = 0
        self.slot_caches: dict[int, dict[str, int]] = {}
        self.subscribed: set[int] = set()


class PoolSlotStaleCache(CorrectStore):
    """Handles take one of 4 connection-pool slots in turn, each with a cache of latest versions
    kept fresh by invalidation messages.  A handle that is closed or garbage-collected
    unsubscribes its slot but leaves the slot's cache behind: the next handle in that slot
    answers from a cache that missed every save in between."""

    SLOTS = 4

    def __init__(self, shared):
        super().__init__(shared)
        with shared.lock:
            self.slot = shared.handles % self.SLOTS
            shared.handles += 1
            self.cache = shared.slot_caches.setdefault(self.slot, {})
            shared.subscribed.add(self.slot)

    def __del__(self):
        self.shared.subscribed.discard(self.slot)

    def append(self, event):
        super().append(event)
        for slot in list(self.shared.subscribed):
            self.shared.slot_caches[slot][event.actor_id] = event.version

    def get_latest_version(self, actor_id):
        with self.shared.lock:
            if actor_id not in self.cache:
                self.cache[actor_id] = self.latest(actor_id)
            return self.cache[actor_id]


class SnapshotRacyUpsert(Counted):
    """One row per actor for its latest snapshot, written by read-compare-write outside a
    transaction: `SELECT version`, compare, `UPSERT`.  Two snapshot writers at once: the lower
    one can overwrite the higher."""

    def save_snapshot(self, snapshot):
        return self._call(self._upsert, snapshot)

    def _upsert(self, snapshot):
        with self.shared.lock:
            current = self.shared.snapshots.get(snapshot.actor_id)
        if current and current[0].version >= snapshot.version:
            return
        self.io()
        with self.shared.lock:
            self.shared.snapshots[snapshot.actor_id] = [copy.deepcopy(snapshot)]


# == timestamps =============================================================================

class TimestampColumn(CorrectStore):
    """Events whose timestamp passes through ``store_time`` on the way in (the column's type)."""

    def store_time(self, stamp: datetime) -> datetime:
        return stamp

    def append(self, event):
        try:
            stored = with_nanoseconds(self.store_time(event.timestamp), event.timestamp)
        except OverflowError:  # beyond what datetime holds: the column keeps it as it is
            stored = event.timestamp
        super().append(replace(event, timestamp=stored))


class DstLocalWallTime(TimestampColumn):
    """Timestamps stored as a zone-less DATETIME in the server's local time
    (America/New_York) and read back in that zone: the repeated hour after DST ends
    (01:00-02:00 twice) always reads as its first occurrence, an hour early."""

    ZONE = ZoneInfo("America/New_York")

    def store_time(self, stamp):
        wall = stamp.astimezone(self.ZONE).replace(tzinfo=None, fold=0)
        return wall.replace(tzinfo=self.ZONE).astimezone(stamp.tzinfo)


class Pre1970FractionSign(TimestampColumn):
    """Timestamps split into (seconds, microseconds) with C's truncating division and the
    remainder's sign dropped: before 1970, a fractional instant moves by twice its fraction
    (1969-12-31T23:59:59.5Z reads as 1970-01-01T00:00:00.5Z)."""

    def store_time(self, stamp):
        total = total_microseconds(stamp)
        seconds = abs(total) // 10**6 * (1 if total >= 0 else -1)
        fraction = abs(total) % 10**6
        return (EPOCH + timedelta(seconds=seconds, microseconds=fraction)).astimezone(stamp.tzinfo)


class Int32EpochSeconds(TimestampColumn):
    """Timestamps as 32-bit Unix seconds (MySQL TIMESTAMP, time_t on old platforms): after
    2038-01-19T03:14:07Z, and before 1901-12-13, they wrap."""

    def store_time(self, stamp):
        seconds, micros = divmod(total_microseconds(stamp), 10**6)
        return (EPOCH + timedelta(seconds=wrap_int32(seconds), microseconds=micros)).astimezone(stamp.tzinfo)


class JulianLeapYears(TimestampColumn):
    """Days since the epoch computed by hand with `year % 4 == 0` as the leap-year rule ('good
    until 2100') and decoded by the platform's correct calendar: 1900 and 2100 are taken as
    leap years, so dates after 2100-02-28 move a day forward and dates before 1900-03-01 a
    day back."""

    MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

    def store_time(self, stamp):
        utc = stamp.astimezone(timezone.utc)
        year = utc.year

        def leaps(first, last):  # multiples of 4 in [first, last)
            return (last - 1) // 4 - (first - 1) // 4

        if year >= 1970:
            days = 365 * (year - 1970) + leaps(1970, year)
        else:
            days = -(365 * (1970 - year) + leaps(year, 1970))
        month_days = list(self.MONTH_DAYS)
        if year % 4 == 0:
            month_days[1] = 29
        days += sum(month_days[:utc.month - 1]) + utc.day - 1
        clock = timedelta(hours=utc.hour, minutes=utc.minute, seconds=utc.second, microseconds=utc.microsecond)
        return (datetime.combine(date(1970, 1, 1) + timedelta(days=days), datetime.min.time(), timezone.utc)
                + clock).astimezone(stamp.tzinfo)


class OffsetRoundedToHalfHour(TimestampColumn):
    """The UTC offset stored in half-hour units beside the local wall time (some wire formats
    and a common `SMALLINT tz_half_hours` column): +05:45 (Nepal) becomes +06:00 and the
    instant moves 15 minutes."""

    def store_time(self, stamp):
        minutes = stamp.utcoffset() // timedelta(minutes=1)
        rounded = round(minutes / 30) * 30
        return stamp.replace(tzinfo=timezone(timedelta(minutes=rounded)))


class NegativeZeroHourOffset(TimestampColumn):
    """The offset parsed as `int(hours)` and `int(minutes)` with the sign taken from the hours:
    `-00:30` has hours 0, so it becomes +00:30 and the instant moves an hour."""

    def store_time(self, stamp):
        minutes = stamp.utcoffset() // timedelta(minutes=1)
        if -60 < minutes < 0:
            return stamp.replace(tzinfo=timezone(timedelta(minutes=-minutes)))
        return stamp


# == command ids and retries ================================================================

class DedupesByCommandId(CorrectStore):
    """An 'exactly once' feature: a save whose command id the actor already has is dropped
    silently, as a duplicate delivery, although its version is new."""

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if event.version <= latest:
                raise self.conflict(event, latest)
            if event.command_id and any(e.command_id == event.command_id for e in self.shared.events.get(event.actor_id, [])):
                return
            self.append(event)


class RetryWithSameCommandIdSucceeds(CorrectStore):
    """A conflicting save whose command id equals the stored event's at that version is taken
    for an idempotent retry and acknowledged instead of raising."""

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if event.version <= latest:
                stored = [e for e in self.shared.events.get(event.actor_id, []) if e.version == event.version]
                if event.command_id and stored and stored[0].command_id == event.command_id:
                    return
                raise self.conflict(event, latest)
            self.append(event)


class RetryOfIdenticalEventSucceeds(CorrectStore):
    """A conflicting save of exactly the stored event (same id, type, data, timestamp) is
    acknowledged as an idempotent retry (an INSERT ... ON CONFLICT DO NOTHING that compares
    the row)."""

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if event.version <= latest:
                stored = [e for e in self.shared.events.get(event.actor_id, []) if e.version == event.version]
                if stored and stored[0] == event:
                    return
                raise self.conflict(event, latest)
            self.append(event)


# == the conflict error at large versions and in its text ===================================

class LuaFloatCurrentVersion(CorrectStore):
    """The check runs in a Redis Lua script (Lua 5.1 numbers are doubles), which returns the
    current version as a number: above 2^53 the error's current_version is rounded."""

    def conflict(self, event, latest):
        return super().conflict(event, int(float(latest)))


def js_number_text(value: int) -> str:
    """How JavaScript prints a Number holding ``value``: shortest round-trip digits, zero-padded."""
    return str(int(Decimal(repr(float(value)))))


class JsNumberText(VersionConflictError):
    """A Node.js backend formats its message from Numbers, while the fields are BigInts: above
    2^53 the text shows rounded versions (9223372036854775807 as 9223372036854776000)."""

    @property
    def message(self):
        return (f"version conflict: actor {go_quote(self.actor_id)} has version {js_number_text(self.current_version)}, "
                f"cannot save version {js_number_text(self.attempted_version)}")


class C1ControlsRaw(QuotedConflict):
    """A %q port that escapes only C0 controls and DEL as non-printable: C1 controls (U+0080-U+009F) are written raw."""

    @staticmethod
    def quote_char(char):
        return char if 0x80 <= ord(char) <= 0x9F else None


class FormatCharsRaw(QuotedConflict):
    """A %q port that escapes controls and separators but not format characters (Cf): U+200D,
    U+FEFF and the soft hyphen are written raw."""

    @staticmethod
    def quote_char(char):
        return char if unicodedata.category(char) == "Cf" else None


class GraphicSpacesRaw(QuotedConflict):
    """A %q port built on IsGraphic instead of IsPrint (strconv.QuoteToGraphic): non-ASCII spaces
    (U+00A0, U+2007, U+3000) are written raw."""

    @staticmethod
    def quote_char(char):
        return char if unicodedata.category(char) == "Zs" else None


class PrivateUseRaw(QuotedConflict):
    """A %q port whose 'not printable' test forgets private-use characters (Co): U+E000 is raw."""

    @staticmethod
    def quote_char(char):
        return char if unicodedata.category(char) == "Co" else None


class AstralAsSurrogatePairs(QuotedConflict):
    """A %q port written in JavaScript: non-printable characters beyond U+FFFF are escaped as
    UTF-16 surrogate pairs (`\\udb80\\udc00`) instead of Go's `\\U000f0000`."""

    @staticmethod
    def quote_char(char):
        code = ord(char)
        if code <= 0xFFFF or char.isprintable():
            return None
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


class Latin1AsByteEscapes(QuotedConflict):
    """A %q port that treats runes below U+0100 as bytes: C1 controls, U+00A0 and the soft
    hyphen come out as `\\x85`, `\\xa0`, `\\xad` where Go writes `\\u0085`."""

    @staticmethod
    def quote_char(char):
        code = ord(char)
        return f"\\x{code:02x}" if 0x80 <= code <= 0xFF and not char.isprintable() else None


# == ids that do not look like the kit's ====================================================

class CompactIdOffByOne(CorrectStore):
    """A fast path for compact ids (ULIDs, hex UUIDs: 20+ letters and digits, no separator),
    stored in a binary column whose conflict check compares with < instead of <=."""

    COMPACT = re.compile(r"[0-9A-Za-z]{20,}")

    def is_conflict(self, event, latest):
        if self.COMPACT.fullmatch(event.actor_id):
            return event.version < latest
        return event.version <= latest


# == red team: just outside the suite's fixed cases ========================================

def wrap_int64(value: int) -> int:
    """What a Go, Java or C int64 holds after the assignment of ``value``."""
    return (value + 2**63) % 2**64 - 2**63


def java_hash_code(text: str) -> int:
    """Java's String.hashCode (UTF-16 code units, int32 arithmetic)."""
    h = 0
    units = text.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(units), 2):
        h = wrap_int32(31 * h + int.from_bytes(units[i:i + 2], "big"))
    return h


class Utf8mb3SnapshotActor(CorrectStore):
    """Snapshots in a MySQL table whose actor column is utf8mb3 (3-byte UTF-8) without strict
    mode: characters beyond the BMP (emoji) are stored as '?' in the key and in the row's
    actor_id, which the snapshot read returns.  Events use a utf8mb4 table and are right."""

    @staticmethod
    def column(actor_id: str) -> str:
        return "".join("?" if ord(c) > 0xFFFF else c for c in actor_id)

    def save_snapshot(self, snapshot):
        stored = replace(snapshot, actor_id=self.column(snapshot.actor_id))
        with self.shared.lock:
            self.shared.snapshots.setdefault(stored.actor_id, []).append(copy.deepcopy(stored))

    def get_latest_snapshot(self, actor_id):
        return super().get_latest_snapshot(self.column(actor_id))


class JavaHashCodeActorKeys(KeyedStreams):
    """Streams in a map keyed by the actor id's String.hashCode() (a JVM cache that trusts the
    hash as a key): ids with equal hashes, such as any two that end in "Aa" and "BB" after a
    common prefix, share one stream."""

    def key(self, actor_id):
        return str(java_hash_code(actor_id))


class Crc32SnapshotKeys(KeyedSnapshots):
    """Snapshots under an integer key computed as CRC-32 of the actor id (a surrogate key to keep
    the snapshot table's index small): ids with equal CRCs, such as a common prefix followed by
    "plumless" and "buckeroo", share their snapshots."""

    def snapshot_key(self, actor_id):
        import zlib
        return str(zlib.crc32(actor_id.encode("utf-8", "surrogatepass")))


class DynamoPage1MiB(CorrectStore):
    """A DynamoDB Query returns at most 1 MB of items per page; the store never follows
    LastEvaluatedKey, so a read whose events exceed 1 MiB stops short."""

    PAGE_BYTES = 1_048_576

    def select(self, actor_id, from_version):
        page, total = [], 0
        for event in super().select(actor_id, from_version):
            total += compact_json_bytes(event.to_dict())
            if total > self.PAGE_BYTES:
                break
            page.append(event)
        return page


class SnapshotRetention8(CorrectStore):
    """Snapshots on a JetStream subject with max_msgs_per_subject=8: only the last 8 saved are
    kept, and the read takes the highest of those, so a high snapshot followed by 8 lower
    ones (a slow writer catching up) is gone."""

    def save_snapshot(self, snapshot):
        with self.shared.lock:
            kept = self.shared.snapshots.setdefault(snapshot.actor_id, [])
            kept.append(copy.deepcopy(snapshot))
            del kept[:-8]


class FirstSaveRaceOverwrites(Counted):
    """The stream document is created on the first save with an unconditional put (DynamoDB
    PutItem without attribute_not_exists): appends to an existing stream are atomic, but two
    writers racing on a new actor both create it and the later put erases the earlier event."""

    def save_event(self, event):
        return self._call(self._save, event)

    def _save(self, event):
        with self.shared.lock:
            exists = event.actor_id in self.shared.events
        if exists:
            return CorrectStore.save_event(self, event)
        if event.version <= 0:
            raise self.conflict(event, 0)
        self.io()  # the round trip between the existence check and the put
        with self.shared.lock:
            self.shared.events[event.actor_id] = [copy.deepcopy(event)]


class PhpEmptyObjectState(CorrectStore):
    """Snapshot state passes through PHP's json_decode($s, true) / json_encode: a nested empty
    object comes back as an empty array (the top-level state is rebuilt as an object)."""

    @staticmethod
    def php(value, top=True):
        if isinstance(value, dict):
            if not value and not top:
                return []
            return {k: PhpEmptyObjectState.php(v, False) for k, v in value.items()}
        if isinstance(value, list):
            return [PhpEmptyObjectState.php(v, False) for v in value]
        return value

    def save_snapshot(self, snapshot):
        super().save_snapshot(replace(snapshot, state=self.php(snapshot.state)))


class MongoDottedKeysData(CorrectStore):
    """Event data written with $set and one dotted path per top-level key ({"data.a.b": 1}):
    a key containing '.' becomes a path, so {"a.b": 1} reads back as {"a": {"b": 1}}."""

    @staticmethod
    def expand(data):
        if not isinstance(data, dict):
            return data
        out: dict = {}
        for key, value in data.items():
            parts = key.split(".") if "." in key and all(key.split(".")) else [key]
            node = out
            for part in parts[:-1]:
                node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else node
            node[parts[-1]] = value
        return out

    def append(self, event):
        super().append(replace(event, data=self.expand(event.data)))


class CouchUnderscoreKeysDropped(CorrectStore):
    """Event data stored as the body of a CouchDB document: top-level fields starting with '_'
    are reserved there, and the store strips them rather than fail."""

    def append(self, event):
        data = event.data if not isinstance(event.data, dict) else {
            k: v for k, v in event.data.items() if not k.startswith("_")}
        super().append(replace(event, data=data))


class DollarKeysEscapedState(CorrectStore):
    """Snapshot state in MongoDB, whose older servers refuse field names starting with '$': the
    store escapes a leading '$' as U+FF04 (full-width dollar) and never unescapes it."""

    @staticmethod
    def escape(value):
        if isinstance(value, dict):
            return {("\uff04" + k[1:] if k.startswith("$") else k): DollarKeysEscapedState.escape(v)
                    for k, v in value.items()}
        if isinstance(value, list):
            return [DollarKeysEscapedState.escape(v) for v in value]
        return value

    def save_snapshot(self, snapshot):
        super().save_snapshot(replace(snapshot, state=self.escape(snapshot.state)))


class EmptyKeyDropped(CorrectStore):
    """Event data indexed into a search engine that cannot map an empty field name: members
    with the key "" are dropped, at any depth."""

    @staticmethod
    def drop(value):
        if isinstance(value, dict):
            return {k: EmptyKeyDropped.drop(v) for k, v in value.items() if k != ""}
        if isinstance(value, list):
            return [EmptyKeyDropped.drop(v) for v in value]
        return value

    def append(self, event):
        super().append(replace(event, data=self.drop(event.data)))


class Text255Conflict(VersionConflictError):
    """The conflict text comes back from a database error whose message field is VARCHAR(255)
    (a SIGNAL MESSAGE_TEXT, a last_error column): longer texts are cut."""

    @property
    def message(self):
        return super().message[:255]


class UnsignedVersionText(VersionConflictError):
    """A Rust/C port formats the versions in the message as u64: a negative attempted version
    prints as 18446744073709551612 (the fields are right)."""

    @property
    def message(self):
        return (f"version conflict: actor {go_quote(self.actor_id)} has version {self.current_version % 2**64}, "
                f"cannot save version {self.attempted_version % 2**64}")


class SingleQuoteEscaped(QuotedConflict):
    """A %q port written from a C string-literal escaper: it escapes the single quote as \\'
    (Go's %q leaves ' alone in strings; only rune literals escape it)."""

    @staticmethod
    def quote_char(char):
        return "\\'" if char == "'" else None


class NewActorText(VersionConflictError):
    """A friendlier message for conflicts on an actor with no events yet (the fields are right)."""

    @property
    def message(self):
        if self.current_version == 0:
            return f"version conflict: actor {go_quote(self.actor_id)} has no events, cannot save version {self.attempted_version}"
        return super().message


class SubtractionCompareOverflow(CorrectStore):
    """The check is written `if event.Version - current <= 0` in int64 arithmetic: when the
    difference overflows (a very negative version against a positive latest), it wraps to a
    positive number and the save is accepted."""

    def is_conflict(self, event, latest):
        return wrap_int64(event.version - latest) <= 0


class StripsInvisibleIdChars(KeyedStreams):
    """Actor keys are 'sanitised' of invisible characters (format characters such as U+200B,
    U+200D, U+00AD, U+FEFF, as anti-spoofing filters do): 'a\\u200bb' and 'ab' share a stream."""

    def key(self, actor_id):
        return "".join(c for c in actor_id if unicodedata.category(c) != "Cf")


class TrailingCrStripped(KeyedStreams):
    """Actor ids cross a CRLF line protocol that reads each line with rstrip('\\r\\n'): an id
    ending in '\\r' loses it and shares a stream with the id without it."""

    def key(self, actor_id):
        return actor_id.rstrip("\r")


def sqlite_numeric(text: str) -> str:
    """What a column of NUMERIC affinity in SQLite gives back for ``text`` (as text)."""
    if text.strip() != text or not text:
        return text
    try:
        number = int(text, 10) if re.fullmatch(r"[+-]?[0-9]+", text) else None
    except ValueError:
        number = None
    if number is not None:
        return str(number) if -(2**63) <= number < 2**63 else repr(float(number))
    if re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", text):
        value = float(text)
        return str(int(value)) if value.is_integer() and abs(value) < 2**63 else repr(value)
    return text


class NumericAffinityActorIds(KeyedStreams):
    """The actor column is declared NUMERIC in SQLite: an id that looks like a number is stored
    as one, so '007' and '7' share a stream, and rows read back carry the number's text."""

    def key(self, actor_id):
        return sqlite_numeric(actor_id)

    def append(self, event):
        super().append(replace(event, actor_id=self.key(event.actor_id)))


class NumericAffinityEventIds(CorrectStore):
    """The event id column has NUMERIC affinity (SQLite, declared `id NUMERIC`): numeric-looking
    ids come back as numbers' text ('0042' as '42', '1e3' as '1000')."""

    def append(self, event):
        super().append(replace(event, id=sqlite_numeric(event.id)))


def canonical_uuid(text: str) -> str:
    """A UUID column or Guid type: any accepted spelling comes back lower-case with dashes."""
    import uuid as uuid_module
    try:
        return str(uuid_module.UUID(text))
    except ValueError:
        return text


class UuidEventIdsCanonicalised(CorrectStore):
    """Event ids that parse as UUIDs are stored in a uuid column (Marten, EventStoreDB): upper
    case, braced or dashless spellings come back in the canonical lower-case form."""

    def append(self, event):
        super().append(replace(event, id=canonical_uuid(event.id)))


class UuidActorIdsCanonicalised(KeyedStreams):
    """Actor ids that parse as UUIDs are keyed (and returned) in canonical form, as a Guid-typed
    stream id does: 'ABC...-...' and 'abc...-...' are one actor."""

    def key(self, actor_id):
        return canonical_uuid(actor_id)

    def append(self, event):
        super().append(replace(event, actor_id=self.key(event.actor_id)))


class DropsNullMembersData(CorrectStore):
    """Data serialised with Json.NET's NullValueHandling.Ignore: object members whose value is
    null are left out (nulls inside arrays, and a null data, are kept)."""

    @staticmethod
    def drop(value):
        if isinstance(value, dict):
            return {k: DropsNullMembersData.drop(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [DropsNullMembersData.drop(v) for v in value]
        return value

    def append(self, event):
        data = None if event.data is None else self.drop(event.data)
        super().append(replace(event, data=data))


class EmptyListNullState(CorrectStore):
    """Snapshot state decoded into Go structs with slice fields and re-encoded: an empty array
    nested in the state becomes null (a nil slice), at any depth below the top."""

    @staticmethod
    def nil(value):
        if isinstance(value, dict):
            return {k: (None if v == [] else EmptyListNullState.nil(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [EmptyListNullState.nil(v) for v in value]
        return value

    def save_snapshot(self, snapshot):
        super().save_snapshot(replace(snapshot, state=self.nil(snapshot.state)))


class SnapshotAheadBumpsLatest(CorrectStore):
    """One `actors` row holds the version used for optimistic concurrency, and save_snapshot
    updates it with GREATEST(version, snapshot.version): a snapshot above the latest event
    raises the actor's latest version (and so blocks the next event)."""

    def latest(self, actor_id):
        events = super().latest(actor_id)
        snapshots = self.shared.snapshots.get(actor_id, [])
        return max([events] + [s.version for s in snapshots])


class SnapshotCompactsLongStreams(CorrectStore):
    """Saving a snapshot of an actor with 100 events or more truncates its stream before the
    snapshot's version (a 'truncate before' retention option), keeping the latest version."""

    def save_snapshot(self, snapshot):
        super().save_snapshot(snapshot)
        with self.shared.lock:
            stream = self.shared.events.get(snapshot.actor_id, [])
            if len(stream) >= 100:
                self.shared.events[snapshot.actor_id] = [e for e in stream if e.version >= snapshot.version]


class SnapshotOnlyActorEventsNone(CorrectStore):
    """The actor document is created by whichever write comes first; one created by a
    snapshot has no event list, and get_events returns its (missing) list as None."""

    def save_snapshot(self, snapshot):
        super().save_snapshot(snapshot)
        with self.shared.lock:
            self.shared.__dict__.setdefault("snapshot_only", set())
            if snapshot.actor_id not in self.shared.events:
                self.shared.snapshot_only.add(snapshot.actor_id)

    def append(self, event):
        getattr(self.shared, "snapshot_only", set()).discard(event.actor_id)
        super().append(event)

    def get_events(self, actor_id, from_version):
        with self.shared.lock:
            if actor_id in getattr(self.shared, "snapshot_only", set()):
                return None
            return self.select(actor_id, from_version)


class SnapshotVersionZeroIsNone(CorrectStore):
    """The latest snapshot is looked up as `SELECT COALESCE(max(version), 0)` and 0 is taken to
    mean 'no snapshot': a snapshot at version 0 (the initial state) reads back as None."""

    def get_latest_snapshot(self, actor_id):
        found = super().get_latest_snapshot(actor_id)
        return None if found is None or found.version == 0 else found


class UpsertConflictOverwritesPayload(CorrectStore):
    """MySQL `INSERT ... ON DUPLICATE KEY UPDATE type=VALUES(type), data=VALUES(data),
    ts=VALUES(ts)` on (actor, version), in autocommit, with 'rows affected = 2' read as a
    conflict: a retried save at a stored version is refused, but has already rewritten that
    event's type, data and timestamp (its id, a separate unique key, stays)."""

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                stream = self.shared.events.get(event.actor_id, [])
                for index, stored in enumerate(stream):
                    if stored.version == event.version:
                        stream[index] = replace(stored, event_type=event.event_type, data=copy.deepcopy(event.data),
                                                timestamp=event.timestamp)
                raise self.conflict(event, latest)
            self.append(event)


class SnapshotUpsertKeepsLastTimestamp(CorrectStore):
    """One snapshot row per actor, upserted with `version = GREATEST(version, EXCLUDED.version),
    state = CASE WHEN EXCLUDED.version >= version THEN EXCLUDED.state ELSE state END,
    taken_at = EXCLUDED.taken_at`: the timestamp always comes from the last save."""

    def save_snapshot(self, snapshot):
        with self.shared.lock:
            rows = self.shared.snapshots.setdefault(snapshot.actor_id, [])
            if rows and rows[0].version > snapshot.version:
                rows[0] = replace(rows[0], timestamp=snapshot.timestamp)
            else:
                rows[:] = [copy.deepcopy(snapshot)]


class EventTypeLookupCi(CorrectStore):
    """Event types normalised into an `event_types` table whose name column has a case-insensitive,
    accent-sensitive collation (utf8mb4_0900_as_ci): the first spelling saved is the one every
    later event of an 'equal' type reads back."""

    def append(self, event):
        names = self.shared.__dict__.setdefault("event_type_names", {})
        super().append(replace(event, event_type=names.setdefault(event.event_type.casefold(), event.event_type)))


class CaseInsensitiveDataKeys(CorrectStore):
    """Top-level data members land in a case-insensitive dictionary (.NET's
    Dictionary<string, object>(StringComparer.OrdinalIgnoreCase)): of keys differing only in
    case, the last one saved keeps its value under the first one's spelling."""

    def append(self, event):
        if isinstance(event.data, dict):
            merged: dict = {}
            spelling: dict[str, str] = {}
            for key, value in event.data.items():
                merged[spelling.setdefault(key.lower(), key)] = value
            event = replace(event, data=merged)
        super().append(event)


class AvroIntState(CorrectStore):
    """Snapshot state encoded with an Avro schema inferred from small states, integers as 'int':
    an integer beyond 32 bits is wrapped (the event data uses another codec and is right)."""

    @staticmethod
    def wrap(value):
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return wrap_int32(value)
        if isinstance(value, dict):
            return {k: AvroIntState.wrap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [AvroIntState.wrap(v) for v in value]
        return value

    def save_snapshot(self, snapshot):
        super().save_snapshot(replace(snapshot, state=self.wrap(snapshot.state)))


class OverflowHandlesPrivate(CorrectStore):
    """A pool of 8 connections to one SQLite database opened as 'file::memory:?cache=shared';
    handles beyond the 8th get an overflow connection opened as plain ':memory:', a database
    of its own."""

    def __init__(self, shared):
        with shared.lock:
            count = shared.__dict__.setdefault("handles", [0])
            count[0] += 1
            private = count[0] > 8
        super().__init__(ShareState() if private else shared)


# == controls: correct stores with unusual but legal behaviour ==============================

class RefusesEmptyAndLongActorIds(CorrectStore):
    """Control: refuses the empty actor id and ids over 256 characters with ValueError (ES-ACTOR-003)."""

    @staticmethod
    def check(actor_id):
        if actor_id == "" or len(actor_id) > 256:
            raise ValueError(f"actor_id: must be 1 to 256 characters, got {len(actor_id)}")

    def save_event(self, event):
        self.check(event.actor_id)
        super().save_event(event)

    def save_snapshot(self, snapshot):
        self.check(snapshot.actor_id)
        super().save_snapshot(snapshot)


class RefusesBeyondFloorLimits(CorrectStore):
    """Control: documents its limits at exactly the floors of aether_conformance.limits (compact
    JSON size, field length, nesting depth) and refuses anything beyond with ValueError,
    storing nothing (ES-LIMIT-001).  The conflict check comes first."""

    @staticmethod
    def check(record, nested):
        if compact_json_bytes(record.to_dict()) > ENCODED_SIZE_FLOOR:
            raise ValueError(f"record: compact JSON encoding over {ENCODED_SIZE_FLOOR} bytes")
        # One level more than the floor, whichever way the top-level object is counted.
        if nesting_depth(nested) > NESTING_DEPTH_FLOOR + 1:
            raise ValueError(f"data/state: nested deeper than {NESTING_DEPTH_FLOOR} levels")

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            for name in ("id", "event_type", "command_id"):
                if len(getattr(event, name)) > FIELD_LENGTH_FLOOR:
                    raise ValueError(f"{name}: longer than {FIELD_LENGTH_FLOOR} characters")
            self.check(event, event.data)
            self.append(event)

    def save_snapshot(self, snapshot):
        self.check(snapshot, snapshot.state)
        super().save_snapshot(snapshot)


class EqualStr(str):
    """A str subclass, as ORMs and C extensions return (equal to the plain str)."""


class ReturnsStrSubclasses(CorrectStore):
    """Control: returns the string fields of events and snapshots as a str subclass."""

    def select(self, actor_id, from_version):
        return [replace(e, id=EqualStr(e.id), event_type=EqualStr(e.event_type), actor_id=EqualStr(e.actor_id),
                        command_id=EqualStr(e.command_id)) for e in super().select(actor_id, from_version)]

    def get_latest_snapshot(self, actor_id):
        found = super().get_latest_snapshot(actor_id)
        return None if found is None else replace(found, actor_id=EqualStr(found.actor_id))


class ReturnsStrSubclassesInData(CorrectStore):
    """Control: string values inside data and state come back as a str subclass (a JSON decoder
    with its own string type)."""

    def select(self, actor_id, from_version):
        return [replace(e, data=map_strings(e.data, EqualStr)) for e in super().select(actor_id, from_version)]

    def get_latest_snapshot(self, actor_id):
        found = super().get_latest_snapshot(actor_id)
        return None if found is None else replace(found, state=map_strings(found.state, EqualStr))


def returns_awaitable(method):
    """Wraps a sync method so that it returns a coroutine, without being `async def` itself
    (what a decorator for tracing or retries commonly does)."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        async def run():
            return method(*args, **kwargs)

        return run()

    return wrapper


class AwaitableMethods:
    """Control: every method returns an awaitable but none is `async def` (decorated methods)."""

    def __init__(self, shared: ShareState) -> None:
        self.inner = CorrectStore(shared)

    @returns_awaitable
    def save_event(self, event):
        return self.inner.save_event(event)

    @returns_awaitable
    def get_events(self, actor_id, from_version):
        return self.inner.get_events(actor_id, from_version)

    @returns_awaitable
    def get_latest_version(self, actor_id):
        return self.inner.get_latest_version(actor_id)

    @returns_awaitable
    def save_snapshot(self, snapshot):
        return self.inner.save_snapshot(snapshot)

    @returns_awaitable
    def get_latest_snapshot(self, actor_id):
        return self.inner.get_latest_snapshot(actor_id)


def as_float64(value):
    # Through JSON, as Go decodes it: the C codec takes data as deep as the model carries (512
    # levels), where a recursive Python walk would run out of stack.
    return json.loads(json.dumps(value, ensure_ascii=False), parse_int=float)


class GoFloat64Numbers(CorrectStore):
    """Control: every number in data and state comes back as a float (3 as 3.0), as Go's
    map[string]interface{} holds them."""

    def select(self, actor_id, from_version):
        return [replace(e, data=as_float64(e.data)) for e in super().select(actor_id, from_version)]

    def get_latest_snapshot(self, actor_id):
        found = super().get_latest_snapshot(actor_id)
        return None if found is None else replace(found, state=as_float64(found.state))


class DeepcopiesData(CorrectStore):
    """Control: keeps each event's fields in a plain dict and copies the data in and out with
    copy.deepcopy (two frames a level), as a Python port of the Go in-memory store would."""

    def append(self, event):
        record = {f.name: getattr(event, f.name) for f in fields(event)}
        self.shared.events.setdefault(event.actor_id, []).append(dict(record, data=copy.deepcopy(event.data)))

    def select(self, actor_id, from_version):
        return [Event(**dict(record, data=copy.deepcopy(record["data"])))
                for record in self.shared.events.get(actor_id, []) if record["version"] >= from_version]

    def latest(self, actor_id):
        stream = self.shared.events.get(actor_id)
        return stream[-1]["version"] if stream else 0


class UtcNormalisedTimestamps(TimestampColumn):
    """Control: timestamps come back in UTC (a timestamptz column), nanoseconds kept: only the
    SHOULD ES-READ-004 (keep the offset) is given up."""

    def store_time(self, stamp):
        return stamp.astimezone(timezone.utc)


class ReadsAsGenerator(CorrectStore):
    """Control: get_events answers with a generator over the events it selected (a cursor read
    lazily), never a list."""

    def get_events(self, actor_id, from_version):
        with self.shared.lock:
            selected = self.select(actor_id, from_version)
        return (event for event in selected)


class NamedZoneTimestamps(TimestampColumn):
    """Control: timestamps come back in a named zone (a timestamptz read with the session's TimeZone
    set to Europe/Amsterdam, as psycopg returns it), nanoseconds kept.  Before 1937 that zone's
    offset has seconds (+00:19:32, local mean time); the instant is intact, so only the SHOULD
    ES-READ-004 (keep the offset) is given up."""

    ZONE = ZoneInfo("Europe/Amsterdam")

    def store_time(self, stamp):
        return stamp.astimezone(self.ZONE)


class RefusesSnapshotsAhead(CorrectStore):
    """Control: refuses a snapshot above the actor's latest event version with ValueError (SS-SNAP-005)."""

    def save_snapshot(self, snapshot):
        with self.shared.lock:
            latest = self.latest(snapshot.actor_id)
            if snapshot.version > latest:
                raise ValueError(f"snapshot.version: {snapshot.version} is above the latest event version {latest}")
            self.shared.snapshots.setdefault(snapshot.actor_id, []).append(copy.deepcopy(snapshot))


class SlowButCorrect(CorrectStore):
    """Control: correct, with 0.3 ms of simulated I/O inside every call."""

    def check_and_append(self, event):
        with self.shared.lock:
            time.sleep(0.0003)
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            self.append(event)

    def select(self, actor_id, from_version):
        time.sleep(0.0003)
        return super().select(actor_id, from_version)

    def latest(self, actor_id):
        time.sleep(0.0003)
        return super().latest(actor_id)


class SnapshotTiesKeepLast(CorrectStore):
    """Control: of two snapshots at the same highest version, returns the one saved last (the
    spec leaves the choice open)."""

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            snapshots = self.shared.snapshots.get(actor_id)
            if not snapshots:
                return None
            top = max(s.version for s in snapshots)
            return copy.deepcopy([s for s in snapshots if s.version == top][-1])


class EventIdState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.event_ids: set[str] = set()


class RefusesReusedAndEmptyEventIds(CorrectStore):
    """Control: event ids are a unique key across the store; the empty id and a reused id are
    refused with ValueError (ES-ID-001, ES-ID-002), after the conflict check."""

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            ids = self.shared.event_ids
            if event.id == "":
                raise ValueError("id: the empty event id is refused")
            if event.id in ids:
                raise ValueError(f"id: event id {event.id!r} is already stored")
            ids.add(event.id)
            self.append(event)


class SQLiteBlobSchema:
    """Control: a real SQLite file with an unusual schema.  Actor ids are BLOBs of their UTF-8
    bytes, versions are TEXT keys (offset by 2^63 and zero-padded to 20 digits, so text order
    is numeric order over all of int64), events are Go JSON documents, and the latest version
    lives in a separate `heads` table updated in the same BEGIN IMMEDIATE transaction."""

    SCHEMA = """
        CREATE TABLE IF NOT EXISTS heads (actor BLOB PRIMARY KEY, version TEXT NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS log (actor BLOB, seq TEXT, body TEXT NOT NULL, PRIMARY KEY (actor, seq)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS snaps (actor BLOB, seq TEXT, body TEXT NOT NULL, PRIMARY KEY (actor, seq)) WITHOUT ROWID;
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.local = threading.local()
        with self._connection() as connection:
            connection.executescript(self.SCHEMA)

    @classmethod
    def from_environment(cls) -> SQLiteBlobSchema:
        return cls(os.environ["ZOO_SQLITE_PATH"])

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            self.local.connection = connection
        return connection

    @staticmethod
    def _actor(actor_id: str) -> bytes:
        return actor_id.encode("utf-8", "surrogatepass")

    @staticmethod
    def _seq(version: int) -> str:
        return f"{version + 2**63:020d}"

    @staticmethod
    def _body(record) -> str:
        return json.dumps(record.to_dict(), separators=(",", ":"))

    def save_event(self, event: Event) -> None:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            row = connection.execute("SELECT version FROM heads WHERE actor = ?", (self._actor(event.actor_id),)).fetchone()
            latest = int(row[0]) if row else 0
            if event.version <= latest:
                raise VersionConflictError(actor_id=event.actor_id, attempted_version=event.version,
                                           current_version=latest)
            connection.execute("INSERT INTO log VALUES (?, ?, ?)",
                               (self._actor(event.actor_id), self._seq(event.version), self._body(event)))
            connection.execute("INSERT OR REPLACE INTO heads VALUES (?, ?)",
                               (self._actor(event.actor_id), str(event.version)))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        if from_version > 2**63 - 1:
            return []
        rows = self._connection().execute(
            "SELECT body FROM log WHERE actor = ? AND seq >= ? ORDER BY seq",
            (self._actor(actor_id), self._seq(max(from_version, -(2**63)))),
        ).fetchall()
        return [Event.from_dict(json.loads(body), check_schema=False) for (body,) in rows]

    def get_latest_version(self, actor_id: str) -> int:
        row = self._connection().execute("SELECT version FROM heads WHERE actor = ?", (self._actor(actor_id),)).fetchone()
        return int(row[0]) if row else 0

    def save_snapshot(self, snapshot: ActorSnapshot) -> None:
        self._connection().execute("INSERT OR REPLACE INTO snaps VALUES (?, ?, ?)",
                                   (self._actor(snapshot.actor_id), self._seq(snapshot.version), self._body(snapshot)))

    def get_latest_snapshot(self, actor_id: str) -> ActorSnapshot | None:
        row = self._connection().execute(
            "SELECT body FROM snaps WHERE actor = ? ORDER BY seq DESC LIMIT 1", (self._actor(actor_id),)).fetchone()
        return None if row is None else ActorSnapshot.from_dict(json.loads(row[0]))


# == factories ==============================================================================

_STORES: dict[str, tuple[type, type[ShareState]]] = {
    # SQL LIKE
    "like_wildcard_reads": (LikeWildcardReads, ShareState),
    "like_wildcard_latest": (LikeWildcardLatest, ShareState),
    "like_wildcard_snapshots": (LikeWildcardSnapshots, ShareState),
    # float64 scores
    "zset_float_score_reads": (ZsetFloatScoreReads, ShareState),
    "zset_float_score_latest": (ZsetFloatScoreLatest, ShareState),
    "zset_float_score_snapshots": (ZsetFloatScoreSnapshots, ShareState),
    # string-ordered keys
    "padded_key_reads": (PaddedKeyReads, ShareState),
    "padded_key_latest": (PaddedKeyLatest, ShareState),
    "padded_key_snapshots": (PaddedKeySnapshots, ShareState),
    # int32
    "int32_from_version": (Int32FromVersion, ShareState),
    "int32_snapshot_order": (Int32SnapshotOrder, ShareState),
    "int32_conflict_current_version": (Int32ConflictCurrentVersion, ShareState),
    # windows and pagination
    "search_window_10000": (SearchWindow10000, ShareState),
    "window_65536": (Window65536, ShareState),
    "page_1000_repeats_boundary": (Page1000RepeatsBoundary, ShareState),
    "page_100_skips_boundary": (Page100SkipsBoundary, ShareState),
    "latest_from_first_page": (LatestFromFirstPage, ShareState),
    # VARCHAR
    "varchar64_event_type": (Varchar64EventType, ShareState),
    "varchar255_command_id": (Varchar255CommandId, ShareState),
    "varchar255_bytes_event_id": (Varchar255BytesEventId, ShareState),
    "actor_key_128_chars": (ActorKey128Chars, ShareState),
    "actor_key_255_bytes": (ActorKey255Bytes, ShareState),
    "snapshot_key_64_chars": (SnapshotKey64Chars, ShareState),
    # TEXT and depth
    "text_64kib_data": (Text64KiBData, ShareState),
    "text_64kib_state": (Text64KiBState, ShareState),
    "depth_48_nulls_data": (Depth48NullsData, ShareState),
    "depth_32_nulls_state": (Depth32NullsState, ShareState),
    # TTL and caches
    "ttl_latest_counter": (TtlLatestCounter, TtlState),
    "ttl_latest_counter_8s": (TtlLatestCounter8s, TtlState),
    "lru_evicts_streams": (LruEvictsStreams, TtlState),
    "cache_invalidates_one_key": (CacheInvalidatesOneKey, TtlState),
    # normalisation and whitespace
    "nfc_actor_ids": (NfcActorIds, ShareState),
    "nfkc_actor_ids": (NfkcActorIds, ShareState),
    "accent_insensitive_ids": (AccentInsensitiveIds, ShareState),
    "nfc_event_types": (NfcEventTypes, ShareState),
    "nfc_data_strings": (NfcDataStrings, ShareState),
    "pad_space_actor_ids": (PadSpaceActorIds, ShareState),
    "char_column_command_id": (CharColumnCommandId, ShareState),
    # sanitised keys, prefixes, wildcards, NUL
    "slash_sanitised_ids": (SlashSanitisedIds, ShareState),
    "empty_token_sanitised": (EmptyTokenSanitised, ShareState),
    "delimiter_prefix_scan": (DelimiterPrefixScan, ShareState),
    "wildcard_subject_snapshots": (WildcardSubjectSnapshots, ShareState),
    "nul_truncated_actor_ids": (NulTruncatedActorIds, ShareState),
    "nul_truncated_data_strings": (NulTruncatedDataStrings, ShareState),
    # concurrency
    "per_actor_lock_global_rewrite": (PerActorLockGlobalRewrite, RewriteState),
    "lock_timeout_as_conflict": (LockTimeoutAsConflict, RewriteState),
    "postgres_gap_trap": (PostgresGapTrap, RewriteState),
    "stale_read_through_latest": (StaleReadThroughLatest, RewriteState),
    "counter_before_event": (CounterBeforeEvent, RewriteState),
    "replica_lags_under_load": (ReplicaLagsUnderLoad, RewriteState),
    "replica_lags_for_other_handles": (ReplicaLagsForOtherHandles, RewriteState),
    "pool_slot_stale_cache": (PoolSlotStaleCache, PoolState),
    "snapshot_racy_upsert": (SnapshotRacyUpsert, RewriteState),
    # timestamps
    "dst_local_wall_time": (DstLocalWallTime, ShareState),
    "pre_1970_fraction_sign": (Pre1970FractionSign, ShareState),
    "int32_epoch_seconds": (Int32EpochSeconds, ShareState),
    "julian_leap_years": (JulianLeapYears, ShareState),
    "offset_rounded_to_half_hour": (OffsetRoundedToHalfHour, ShareState),
    "negative_zero_hour_offset": (NegativeZeroHourOffset, ShareState),
    # command ids and retries
    "dedupes_by_command_id": (DedupesByCommandId, ShareState),
    "retry_with_same_command_id_succeeds": (RetryWithSameCommandIdSucceeds, ShareState),
    "retry_of_identical_event_succeeds": (RetryOfIdenticalEventSucceeds, ShareState),
    # the conflict error
    "lua_float_current_version": (LuaFloatCurrentVersion, ShareState),
    "js_number_error_text": (quoting_store(JsNumberText), ShareState),  # type: ignore[arg-type]
    "quote_c1_controls_raw": (quoting_store(C1ControlsRaw), ShareState),
    "quote_format_chars_raw": (quoting_store(FormatCharsRaw), ShareState),
    "quote_graphic_spaces_raw": (quoting_store(GraphicSpacesRaw), ShareState),
    "quote_private_use_raw": (quoting_store(PrivateUseRaw), ShareState),
    "quote_astral_as_surrogate_pairs": (quoting_store(AstralAsSurrogatePairs), ShareState),
    "quote_latin1_as_byte_escapes": (quoting_store(Latin1AsByteEscapes), ShareState),
    # id shapes
    "compact_id_off_by_one": (CompactIdOffByOne, ShareState),
    # red team: just outside the suite's fixed cases
    "utf8mb3_snapshot_actor": (Utf8mb3SnapshotActor, ShareState),
    "java_hashcode_actor_keys": (JavaHashCodeActorKeys, ShareState),
    "crc32_snapshot_keys": (Crc32SnapshotKeys, ShareState),
    "dynamo_page_1mib": (DynamoPage1MiB, ShareState),
    "snapshot_retention_8": (SnapshotRetention8, ShareState),
    "first_save_race_overwrites": (FirstSaveRaceOverwrites, RewriteState),
    "php_empty_object_state": (PhpEmptyObjectState, ShareState),
    "mongo_dotted_keys_data": (MongoDottedKeysData, ShareState),
    "couch_underscore_keys_dropped": (CouchUnderscoreKeysDropped, ShareState),
    "dollar_keys_escaped_state": (DollarKeysEscapedState, ShareState),
    "empty_key_dropped": (EmptyKeyDropped, ShareState),
    "error_text_255": (quoting_store(Text255Conflict), ShareState),  # type: ignore[arg-type]
    "unsigned_version_text": (quoting_store(UnsignedVersionText), ShareState),  # type: ignore[arg-type]
    "quote_single_quote_escaped": (quoting_store(SingleQuoteEscaped), ShareState),
    "new_actor_error_text": (quoting_store(NewActorText), ShareState),  # type: ignore[arg-type]
    "subtraction_compare_overflow": (SubtractionCompareOverflow, ShareState),
    "strips_invisible_id_chars": (StripsInvisibleIdChars, ShareState),
    "trailing_cr_stripped": (TrailingCrStripped, ShareState),
    "numeric_affinity_actor_ids": (NumericAffinityActorIds, ShareState),
    "numeric_affinity_event_ids": (NumericAffinityEventIds, ShareState),
    "uuid_event_ids_canonicalised": (UuidEventIdsCanonicalised, ShareState),
    "uuid_actor_ids_canonicalised": (UuidActorIdsCanonicalised, ShareState),
    "drops_null_members_data": (DropsNullMembersData, ShareState),
    "empty_list_null_state": (EmptyListNullState, ShareState),
    "snapshot_ahead_bumps_latest": (SnapshotAheadBumpsLatest, ShareState),
    "snapshot_compacts_long_streams": (SnapshotCompactsLongStreams, ShareState),
    "snapshot_only_actor_events_none": (SnapshotOnlyActorEventsNone, ShareState),
    "snapshot_version_zero_is_none": (SnapshotVersionZeroIsNone, ShareState),
    "upsert_conflict_overwrites_payload": (UpsertConflictOverwritesPayload, ShareState),
    "snapshot_upsert_keeps_last_timestamp": (SnapshotUpsertKeepsLastTimestamp, ShareState),
    "event_type_lookup_ci": (EventTypeLookupCi, ShareState),
    "case_insensitive_data_keys": (CaseInsensitiveDataKeys, ShareState),
    "avro_int_state": (AvroIntState, ShareState),
    "overflow_handles_private": (OverflowHandlesPrivate, ShareState),
    # controls
    "reads_as_generator": (ReadsAsGenerator, ShareState),
    "named_zone_timestamps": (NamedZoneTimestamps, ShareState),
    "refuses_empty_and_long_actor_ids": (RefusesEmptyAndLongActorIds, ShareState),
    "refuses_beyond_floor_limits": (RefusesBeyondFloorLimits, ShareState),
    "returns_str_subclasses": (ReturnsStrSubclasses, ShareState),
    "returns_str_subclasses_in_data": (ReturnsStrSubclassesInData, ShareState),
    "awaitable_methods": (AwaitableMethods, ShareState),
    "go_float64_numbers": (GoFloat64Numbers, ShareState),
    "deepcopies_data": (DeepcopiesData, ShareState),
    "utc_normalised_timestamps": (UtcNormalisedTimestamps, ShareState),
    "refuses_snapshots_ahead": (RefusesSnapshotsAhead, ShareState),
    "slow_but_correct": (SlowButCorrect, ShareState),
    "snapshot_ties_keep_last": (SnapshotTiesKeepLast, ShareState),
    "refuses_reused_and_empty_event_ids": (RefusesReusedAndEmptyEventIds, EventIdState),
}

for _name, (_store, _state) in _STORES.items():
    globals()[_name] = factory(_store, _state)


def sqlite_blob_schema() -> SQLiteBlobSchema:
    return SQLiteBlobSchema.from_environment()


# factory name -> the requirement its flaw breaks (None: a control that must be certified conformant)
SUBTLE: dict[str, str | None] = {
    "like_wildcard_reads": "ES-ACTOR-002",
    "like_wildcard_latest": "ES-ACTOR-002",
    "like_wildcard_snapshots": "SS-SNAP-004",
    "zset_float_score_reads": "ES-READ-001",
    "zset_float_score_latest": "ES-SAVE-004",
    "zset_float_score_snapshots": "SS-SNAP-002",
    "padded_key_reads": "ES-READ-001",
    "padded_key_latest": "ES-LATEST-002",
    "padded_key_snapshots": "SS-SNAP-002",
    "int32_from_version": "ES-READ-001",
    "int32_snapshot_order": "SS-SNAP-002",
    "int32_conflict_current_version": "ES-ERR-001",
    "search_window_10000": "ES-READ-001",
    "window_65536": "ES-READ-001",
    "page_1000_repeats_boundary": "ES-READ-001",
    "page_100_skips_boundary": "ES-READ-001",
    "latest_from_first_page": "ES-LATEST-002",
    "varchar64_event_type": "ES-READ-003",
    "varchar255_command_id": "ES-READ-003",
    "varchar255_bytes_event_id": "ES-READ-003",
    "actor_key_128_chars": "ES-ACTOR-002",
    "actor_key_255_bytes": "ES-ACTOR-002",
    "snapshot_key_64_chars": "SS-SNAP-004",
    "text_64kib_data": "ES-READ-003",
    "text_64kib_state": "SS-SNAP-003",
    "depth_48_nulls_data": "ES-READ-003",
    "depth_32_nulls_state": "SS-SNAP-003",
    "ttl_latest_counter": "ES-LATEST-002",
    "ttl_latest_counter_8s": "ES-LATEST-002",
    "lru_evicts_streams": "ES-LATEST-002",  # a revisited actor is at 0 (and reads empty)
    "cache_invalidates_one_key": "ES-READ-001",
    "nfc_actor_ids": "ES-ACTOR-002",
    "nfkc_actor_ids": "ES-ACTOR-002",
    "accent_insensitive_ids": "ES-ACTOR-002",
    "nfc_event_types": "ES-READ-003",
    "nfc_data_strings": "ES-READ-003",
    "pad_space_actor_ids": "ES-ACTOR-002",
    "char_column_command_id": "ES-READ-003",
    "slash_sanitised_ids": "ES-ACTOR-002",
    "empty_token_sanitised": "ES-ACTOR-002",
    "delimiter_prefix_scan": "ES-ACTOR-002",
    "wildcard_subject_snapshots": "SS-SNAP-004",
    "nul_truncated_actor_ids": "ES-ACTOR-002",
    "nul_truncated_data_strings": "ES-READ-003",
    "per_actor_lock_global_rewrite": "ES-CONC-001",
    "lock_timeout_as_conflict": "ES-CONC-001",
    "postgres_gap_trap": "ES-CONC-001",
    "stale_read_through_latest": "ES-CONC-001",
    "counter_before_event": "ES-CONC-001",
    "replica_lags_under_load": "ES-CONC-001",
    "replica_lags_for_other_handles": "ES-HANDLE-001",
    "pool_slot_stale_cache": "ES-HANDLE-001",
    "snapshot_racy_upsert": "SS-SNAP-002",
    "dst_local_wall_time": "ES-READ-003",
    "pre_1970_fraction_sign": "ES-READ-003",
    "int32_epoch_seconds": "ES-READ-003",
    "julian_leap_years": "ES-READ-003",
    "offset_rounded_to_half_hour": "ES-READ-003",
    "negative_zero_hour_offset": "ES-READ-003",
    "dedupes_by_command_id": "ES-SAVE-001",
    "retry_with_same_command_id_succeeds": "ES-SAVE-002",
    "retry_of_identical_event_succeeds": "ES-SAVE-002",
    "lua_float_current_version": "ES-ERR-001",
    "js_number_error_text": "ES-ERR-002",
    "quote_c1_controls_raw": "ES-ERR-002",
    "quote_format_chars_raw": "ES-ERR-002",
    "quote_graphic_spaces_raw": "ES-ERR-002",
    "quote_private_use_raw": "ES-ERR-002",
    "quote_astral_as_surrogate_pairs": "ES-ERR-002",
    "quote_latin1_as_byte_escapes": "ES-ERR-002",
    "compact_id_off_by_one": "ES-SAVE-002",
    # red team: just outside the suite's fixed cases
    "utf8mb3_snapshot_actor": "SS-SNAP-003",
    "java_hashcode_actor_keys": "ES-ACTOR-002",
    "crc32_snapshot_keys": "SS-SNAP-004",
    "dynamo_page_1mib": "ES-READ-001",
    "snapshot_retention_8": "SS-SNAP-002",
    "first_save_race_overwrites": "ES-CONC-001",
    "php_empty_object_state": "SS-SNAP-003",
    "mongo_dotted_keys_data": "ES-READ-003",
    "couch_underscore_keys_dropped": "ES-READ-003",
    "dollar_keys_escaped_state": "SS-SNAP-003",
    "empty_key_dropped": "ES-READ-003",
    "error_text_255": "ES-ERR-002",
    "unsigned_version_text": "ES-ERR-002",
    "quote_single_quote_escaped": "ES-ERR-002",
    "new_actor_error_text": "ES-ERR-002",
    "subtraction_compare_overflow": "ES-SAVE-002",
    "strips_invisible_id_chars": "ES-ACTOR-002",
    "trailing_cr_stripped": "ES-ACTOR-002",
    "numeric_affinity_actor_ids": "ES-ACTOR-002",
    "numeric_affinity_event_ids": "ES-READ-003",
    "uuid_event_ids_canonicalised": "ES-READ-003",
    "uuid_actor_ids_canonicalised": "ES-ACTOR-002",
    "drops_null_members_data": "ES-READ-003",
    "empty_list_null_state": "SS-SNAP-003",
    "snapshot_ahead_bumps_latest": "SS-SNAP-004",
    "snapshot_compacts_long_streams": "SS-SNAP-004",
    "snapshot_only_actor_events_none": "ES-READ-002",
    "snapshot_version_zero_is_none": "SS-SNAP-002",
    "upsert_conflict_overwrites_payload": "ES-SAVE-003",
    "snapshot_upsert_keeps_last_timestamp": "SS-SNAP-003",
    "event_type_lookup_ci": "ES-READ-003",
    "case_insensitive_data_keys": "ES-READ-003",
    "avro_int_state": "SS-SNAP-003",
    "overflow_handles_private": "ES-HANDLE-001",
    # controls
    "reads_as_generator": None,
    "named_zone_timestamps": None,
    "refuses_empty_and_long_actor_ids": None,
    "refuses_beyond_floor_limits": None,
    "returns_str_subclasses": None,
    "returns_str_subclasses_in_data": None,
    "deepcopies_data": None,
    "awaitable_methods": None,
    "go_float64_numbers": None,
    "utc_normalised_timestamps": None,
    "refuses_snapshots_ahead": None,
    "slow_but_correct": None,
    "snapshot_ties_keep_last": None,
    "refuses_reused_and_empty_event_ids": None,
    # needs $ZOO_SQLITE_PATH (see tests/test_zoo.py)
    "sqlite_blob_schema": None,
}
