"""Stores that escaped the suite: each breaks one MUST of docs/spec.md just outside what it probed.

Written by an adversarial review of the suite (2026-11-28): of 25 single-bug stores, each
modelled on a bug a real backend (or its client) has and correct everywhere else, the
default profile certified 23.  A review of hostile stores added a 26th (``drops_empty_in_place``:
the kit handed the store the very event a test compared with).  The suite now has a
deterministic test for each class, and tests/test_zoo.py runs every store here through the
real CLI.  ``ESCAPES`` maps each factory name to the requirement the suite reports it under;
``NOT_CAUGHT`` lists the two that no run of reasonable length can catch, and why.
tests/test_zoo_escape_triggers.py calls each store's trigger directly, so each is known to be
broken independently of the suite.

They reuse the zoo's CorrectStore (tests/zoo/base.py), which each overrides in one place.
"""

from __future__ import annotations

import copy
import json
import re
import struct
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from aether_conformance import Event, Timestamp
from aether_conformance.timestamps import format_go_time

from tests.zoo.base import CorrectStore, ShareState, events_only, factory, walk
from tests.zoo.subtle import (
    BusyState, Counted, KeyedStreams, QuotedConflict, RefusesOverLongIds, quoting_store, with_nanoseconds,
)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
JS_SAFE = 2**53 - 1


# == actor ids =============================================================================

class Utf16KeySlice256(RefusesOverLongIds, KeyedStreams):
    """A validating front end refuses ids over 256 characters (code points, with ValueError, as
    ES-ACTOR-003 allows); behind it a Node.js key builder takes `actorId.slice(0, 256)` "to be
    safe".  JavaScript counts UTF-16 code units, so an id of astral characters (emoji) is cut
    after 128 of them, and two such ids that differ only after the 128th character share a
    stream.  The event payload keeps the full id.  No snapshots."""

    def key(self, actor_id):
        units = actor_id.encode("utf-16-le", "surrogatepass")[: 2 * 256]
        return units.decode("utf-16-le", "surrogatepass")


class LongIdsShortenedByCrc32(KeyedStreams):
    """Ids over 200 characters do not fit the 200-character key column, so they are shortened to
    their first 192 characters, '#' and the CRC-32 of the whole id (the 'hash the tail' trick),
    without keeping the full id for an equality check.  Two ids over 200 characters that share
    192 characters and have equal CRCs (a common prefix, then "plumless" / "buckeroo") share a
    stream."""

    def key(self, actor_id):
        if len(actor_id) <= 200:
            return actor_id
        return f"{actor_id[:192]}#{zlib.crc32(actor_id.encode('utf-8')):08x}"


class AstralCharsAsQuestionMarks(KeyedStreams):
    """MySQL: the events table is utf8mb4, but the lookups go through a connection whose charset
    is utf8 (utf8mb3), so a 4-byte character in a bound actor id arrives as '?' (the classic
    'emoji become ????').  The payload blob keeps the id exactly, so each id reads back as itself,
    but "acct-🦀", "acct-🎉" and "acct-?" are one stream."""

    def key(self, actor_id):
        return "".join("?" if ord(c) > 0xFFFF else c for c in actor_id)


class WindowsDeviceNames(KeyedStreams):
    """One file per actor, named after the id (escaped exactly), on Windows or an SMB share:
    a base name equal, in any case, to a DOS device (CON, PRN, AUX, NUL, COM1-9, LPT1-9), with or
    without an extension, opens the device, not a file.  Appends to "COM3" or "nul.orders" are
    acknowledged and vanish; reading the file gives nothing."""

    DEVICES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}

    def is_device(self, actor_id):
        return actor_id.split(".", 1)[0].rstrip(" ").lower() in self.DEVICES

    def append(self, event):
        if not self.is_device(event.actor_id):
            super().append(event)


class XmlAttributeWhitespace(KeyedStreams):
    """The stream index is an XML file with each actor id in an attribute, written by a hand-rolled
    writer that escapes & < > " but not tab, CR and LF; XML attribute-value normalisation turns
    each of them into a space when the index is parsed.  "a\tb", "a\nb", "a\rb" and "a b" are one
    stream (the payload keeps the id)."""

    def key(self, actor_id):
        return actor_id.replace("\t", " ").replace("\n", " ").replace("\r", " ")


class PlusDecodedAsSpace(KeyedStreams):
    """A Go client builds `/streams/<url.PathEscape(id)>` (which leaves '+' raw: it is legal in a
    path segment); the Java server decodes the segment with URLDecoder.decode, which is for form
    data and turns '+' into a space.  "a+b" and "a b" are one stream (the payload keeps the id)."""

    def key(self, actor_id):
        return actor_id.replace("+", " ")


class BackslashIsSlash(KeyedStreams):
    """One file per actor under a case-sensitive NTFS directory, '/' in an id kept as a
    subdirectory: the Win32 file APIs take '\\' as a path separator too, so "a\\b" and "a/b" are
    one file."""

    def key(self, actor_id):
        return actor_id.replace("\\", "/")


class ActorPassivationLosesVersion(CorrectStore):
    """An actor framework (Akka/Orleans style) keeps the 10,000 most recently used actors in memory
    with their latest version; an evicted actor is passivated and, when next used, recovered from
    its latest *snapshot* only, without replaying the journal's events after it.  With no
    snapshot its latest version comes back as 0: version 1 is accepted again.  The journal keeps
    every event, so reads are right; only latest versions and the conflict check go wrong."""

    CAPACITY = 10_000

    def __init__(self, shared):
        super().__init__(shared)
        if not hasattr(shared, "active"):
            shared.active = OrderedDict()  # actor id -> latest version, most recently used last

    def latest(self, actor_id):
        active = self.shared.active
        if actor_id in active:
            active.move_to_end(actor_id)
            return active[actor_id]
        snapshots = self.shared.snapshots.get(actor_id)
        journal = self.shared.events.get(actor_id)
        # First activation ever: nothing to recover.  Reactivation: the snapshot, not the journal.
        version = max(s.version for s in snapshots) if snapshots else 0
        active[actor_id] = version if journal else 0
        while len(active) > self.CAPACITY:
            active.popitem(last=False)
        return active[actor_id]

    def append(self, event):
        super().append(event)
        self.latest(event.actor_id)  # activates (and evicts) as any use does
        self.shared.active[event.actor_id] = event.version


# == event ids =============================================================================

class EventIdState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.event_ids: set[str] = set()


class CrossActorReusedIdDropped(CorrectStore):
    """Postgres: event ids are the primary key of the events table, inserted with
    `ON CONFLICT (id) DO NOTHING` (meant to make retries idempotent) and the row count never
    checked.  A guard refuses, with ValueError, an empty id and an id the same actor already
    holds (as ES-ID-001 and ES-ID-002 allow); an id another actor holds passes the guard, and the
    insert silently does nothing: the save is acknowledged and the event is not stored."""

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if event.version <= latest:  # a conflict takes precedence over any id check (spec, section 8)
                raise self.conflict(event, latest)
            if event.id == "":
                raise ValueError("Event.id: the empty event id is not accepted (primary key)")
            if any(e.id == event.id for e in self.shared.events.get(event.actor_id, [])):
                raise ValueError(f"Event.id: {event.id!r} is already stored for this actor")
            if event.id in self.shared.event_ids:
                return  # ON CONFLICT (id) DO NOTHING: 0 rows inserted, reported as success
            self.shared.event_ids.add(event.id)
            self.append(event)


# == data and state values =================================================================

class BsonInt64Overflow(CorrectStore):
    """MongoDB via PyMongo: BSON integers are int32 or int64, and the encoder raises
    OverflowError("MongoDB can only handle up to 8-byte ints") for a Python int beyond int64.
    Go's seed stores such a number (as a float64); this store refuses the whole save."""

    def append(self, event):
        def check(value):
            if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
                raise OverflowError("MongoDB can only handle up to 8-byte ints")
            return value

        walk(event.data, check)
        super().append(event)


class UnsafeIntegersAsStrings(CorrectStore):
    """A Node.js backend parses stored JSON with a reviver that keeps integers beyond
    Number.MAX_SAFE_INTEGER as their source text, to avoid losing digits: {"n": 9007199254740993}
    reads back as {"n": "9007199254740993"}, a string where the seed returns a number."""

    def select(self, actor_id, from_version):
        def text_if_unsafe(value):
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > JS_SAFE:
                return str(value)
            return value

        return [replace(e, data=walk(e.data, text_if_unsafe)) for e in super().select(actor_id, from_version)]


class ProtoKeyDropped(CorrectStore):
    """A Node.js backend copies event data into a fresh object with `out[key] = value`: assigning
    the key "__proto__" sets the object's prototype instead of an own property, so a member named
    "__proto__" (at any depth) is gone when the data is serialised again."""

    @classmethod
    def js_copy(cls, value):
        if isinstance(value, dict):
            return {k: cls.js_copy(v) for k, v in value.items() if k != "__proto__"}
        if isinstance(value, list):
            return [cls.js_copy(v) for v in value]
        return value

    def append(self, event):
        super().append(replace(event, data=self.js_copy(event.data)))


class JsonLinesSplitlines(CorrectStore):
    """One JSON-lines file per actor, written with json.dumps(ensure_ascii=False) and read back
    with `text.splitlines()`, skipping lines that do not parse (a torn last line after a crash).
    str.splitlines() also splits at U+0085, U+2028 and U+2029, which ensure_ascii=False leaves raw
    in strings: an event whose id, type, command id or data holds one is skipped on every read,
    and the latest version (the last line that parses) goes back."""

    def __init__(self, shared):
        super().__init__(shared)
        if not hasattr(shared, "files"):
            shared.files = {}  # actor id -> the records its file's lines parse to

    def latest(self, actor_id):
        records = self.shared.files.get(actor_id)
        return records[-1]["version"] if records else 0

    def append(self, event):
        record = {"id": event.id, "eventType": event.event_type, "commandId": event.command_id,
                  "version": event.version, "data": event.data, "timestamp": format_go_time(event.timestamp)}
        line = json.dumps(record, ensure_ascii=False) + "\n"
        # Appending a line that ends in "\n" adds exactly its own splitlines() to the file's, so
        # each line is split and parsed once, here, as every later read of the file would.
        records = self.shared.files.setdefault(event.actor_id, [])
        for fragment in line.splitlines():
            try:
                records.append(json.loads(fragment))
            except ValueError:
                continue  # a torn line: skipped by every read

    def select(self, actor_id, from_version):
        return [Event(id=r["id"], event_type=r["eventType"], actor_id=actor_id, version=r["version"],
                      data=copy.deepcopy(r["data"]), timestamp=Timestamp.parse(r["timestamp"]),
                      command_id=r["commandId"])
                for r in self.shared.files.get(actor_id, []) if r["version"] >= from_version]


class JsDateReviver(CorrectStore):
    """A Node.js backend parses stored events with a JSON.parse reviver that turns ISO-8601
    date-time strings into Date objects (a common 'dates come back as dates' helper), and
    JSON.stringify writes them back with toISOString(): in UTC, with milliseconds.  A data string
    "2024-01-02T03:04:05+01:00" reads back as "2024-01-02T02:04:05.000Z"."""

    ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})")

    @classmethod
    def revive(cls, value):
        if not isinstance(value, str) or not cls.ISO.fullmatch(value):
            return value
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value  # Invalid Date stays a string
        utc = when.astimezone(timezone.utc)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"

    def select(self, actor_id, from_version):
        return [replace(e, data=walk(e.data, self.revive)) for e in super().select(actor_id, from_version)]


class PhpSequentialKeysBecomeList(CorrectStore):
    """Event data passes through PHP's json_decode($s, true) and json_encode: an object whose keys
    are exactly "0", "1", ... "n-1", in order, becomes a PHP list and is written back as a JSON
    array: {"0": "a", "1": "b"} reads back as ["a", "b"].  (Empty objects are kept: the store
    decodes {} specially.)"""

    @classmethod
    def php(cls, value):
        if isinstance(value, dict):
            out = {k: cls.php(v) for k, v in value.items()}
            if out and list(out) == [str(i) for i in range(len(out))]:
                return list(out.values())
            return out
        if isinstance(value, list):
            return [cls.php(v) for v in value]
        return value

    def append(self, event):
        data = event.data
        if isinstance(data, dict):  # the top level stays an object (it is decoded into a class)
            data = {k: self.php(v) for k, v in data.items()}
        super().append(replace(event, data=data))


class NulInKeysRefused(CorrectStore):
    """Postgres jsonb cannot hold \\u0000: the store escapes NUL in string values (as a
    correct store must), but forgets object keys, so data with a NUL in a key fails with
    "unsupported Unicode escape sequence" (a DataError, not a refusal)."""

    class DataError(Exception):
        pass

    def append(self, event):
        def keys(value):
            if isinstance(value, dict):
                for k, v in value.items():
                    if "\0" in k:
                        raise self.DataError("unsupported Unicode escape sequence: \\u0000 cannot be converted to text")
                    keys(v)
            elif isinstance(value, list):
                for v in value:
                    keys(v)

        keys(event.data)
        super().append(event)


# == timestamps ============================================================================

class OffsetCutToMinutes(CorrectStore):
    """Timestamps stored as RFC 3339 text by a hand-written formatter that writes the UTC offset as
    ±HH:MM from the offset's whole minutes (what Go's own time.Format does).  A local-mean-time
    offset with seconds (Amsterdam before 1937, +00:19:32) is cut to +00:19 with the wall time
    kept: the instant moves by 32 seconds.  The model and the spec carry such offsets."""

    def append(self, event):
        stamp = event.timestamp
        offset = stamp.utcoffset()
        if offset % timedelta(minutes=1):
            sign = -1 if offset < timedelta(0) else 1
            cut = timezone(sign * timedelta(minutes=abs(offset) // timedelta(minutes=1)))
            stamp = with_nanoseconds(stamp.replace(tzinfo=cut), stamp)
        super().append(replace(event, timestamp=stamp))


class SaveCount(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.saves = 0


class SessionZoneLostAfterRecycle(CorrectStore):
    """MySQL DATETIME (no zone): the pool's init command `SET time_zone = '+00:00'` runs on its
    first connection only; the connection is recycled after 30,000 statements (a max-queries or
    max-lifetime setting) and later sessions use the server's zone, America/New_York.  Events
    saved from then on are written as UTC wall time and read back as New York time: 4 or 5 hours
    late."""

    RECYCLE_AFTER = 30_000
    SERVER_ZONE = ZoneInfo("America/New_York")

    def check_and_append(self, event):
        with self.shared.lock:
            self.shared.saves += 1
            if self.shared.saves > self.RECYCLE_AFTER:
                wall = event.timestamp.astimezone(timezone.utc).replace(tzinfo=None)
                try:
                    shifted = wall.replace(tzinfo=self.SERVER_ZONE).astimezone(event.timestamp.tzinfo)
                    event = replace(event, timestamp=with_nanoseconds(shifted, event.timestamp))
                except OverflowError:
                    pass
        super().check_and_append(event)


# == snapshots =============================================================================

class SignedBigEndianSnapshotKeys(CorrectStore):
    """Snapshots in an ordered key-value store (RocksDB, FoundationDB, Bigtable) under
    `actor/<version as 8 big-endian two's-complement bytes>`, the latest being the last key of a
    range scan.  Without flipping the sign bit, a negative version's key (0xFF...) sorts after
    every positive one: a snapshot at version -1, which the seed stores and ranks lowest, becomes
    the latest."""

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            snapshots = self.shared.snapshots.get(actor_id)
            if not snapshots:
                return None
            return copy.deepcopy(max(snapshots, key=lambda s: struct.pack(">q", s.version)))


class HandleSnapshotCache(CorrectStore):
    """Each client keeps a local cache of latest snapshots (a Spring @Cacheable with
    unless="#result == null", one cache per client), filled by reads and evicted by the client's
    own save_snapshot.  A snapshot saved through another handle is not seen by a handle that has
    already read an older one.  Events and latest versions are never cached."""

    def __init__(self, shared):
        super().__init__(shared)
        self.cache = {}
        self.cache_lock = threading.Lock()

    def save_snapshot(self, snapshot):
        with self.cache_lock:
            super().save_snapshot(snapshot)
            self.cache.pop(snapshot.actor_id, None)

    def get_latest_snapshot(self, actor_id):
        with self.cache_lock:
            if actor_id in self.cache:
                return copy.deepcopy(self.cache[actor_id])
            found = super().get_latest_snapshot(actor_id)
            if found is not None:
                self.cache[actor_id] = copy.deepcopy(found)
            return found


class SnapshotArchivesBeyond1000(CorrectStore):
    """Saving a snapshot archives the actor's events so that at most 1,000 of them remain at or
    below the snapshot's version (a 'keep 1,000 events of history behind a snapshot' policy, like
    EventStoreDB's $maxCount applied on snapshot).  Streams up to 1,000 events are never touched."""

    KEEP = 1_000

    def save_snapshot(self, snapshot):
        super().save_snapshot(snapshot)
        with self.shared.lock:
            stream = self.shared.events.get(snapshot.actor_id, [])
            covered = sum(1 for e in stream if e.version <= snapshot.version)
            if covered > self.KEEP:
                del stream[: covered - self.KEEP]


class SnapshotTtl120s(CorrectStore):
    """Snapshots in Redis as a cache: `SET snapshot:<actor> <json> EX 120`.  Two minutes after its
    last snapshot an actor has none (get_latest_snapshot returns None); events are kept."""

    TTL_SECONDS = 120.0

    def __init__(self, shared):
        super().__init__(shared)
        if not hasattr(shared, "saved_at"):
            shared.saved_at = {}

    def save_snapshot(self, snapshot):
        super().save_snapshot(snapshot)
        with self.shared.lock:
            self.shared.saved_at[snapshot.actor_id] = time.monotonic()

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            saved_at = self.shared.saved_at.get(actor_id)
        if saved_at is not None and time.monotonic() - saved_at > self.TTL_SECONDS:
            return None
        return super().get_latest_snapshot(actor_id)


# == conflict text =========================================================================

class ReplacementCharEscaped(QuotedConflict):
    """A port of Go's strconv.Quote that decodes each rune and escapes it when
    `r == utf8.RuneError`, forgetting Go's `width == 1` test that tells an invalid byte from a
    genuine U+FFFD: a real U+FFFD in the id is written as \\ufffd, where Go writes it raw."""

    @staticmethod
    def quote_char(char):
        return "\\ufffd" if char == "\ufffd" else None


# == size and concurrency ==================================================================

class ActorDocument16MiB(CorrectStore):
    """MongoDB, one document per actor with its events embedded in an array ($push): a document
    cannot exceed 16 MiB, so once an actor's events total 16 MiB every further save fails with
    DocumentTooLarge, however small the event.  Each event is far below the 512 KiB floor."""

    LIMIT = 16 * 1024 * 1024

    class DocumentTooLarge(Exception):
        pass

    def __init__(self, shared):
        super().__init__(shared)
        if not hasattr(shared, "sizes"):
            shared.sizes = {}

    @staticmethod
    def size(event):
        return 128 + len(json.dumps(event.data, ensure_ascii=False).encode()) + sum(
            len(s.encode()) for s in (event.id, event.event_type, event.actor_id, event.command_id))

    def append(self, event):
        total = self.shared.sizes.get(event.actor_id, 0) + self.size(event)
        if total > self.LIMIT:
            raise self.DocumentTooLarge(f"BSON document too large ({total} bytes) - the connected server supports "
                                        f"BSON document sizes up to {self.LIMIT} bytes.")
        self.shared.sizes[event.actor_id] = total
        super().append(event)


class TornPayloadReads(Counted):
    """Cassandra: each event is written as a header row (actor, version, id, type, ...) and a
    payload row in a second table, without a batch; the save returns once both are written, and
    the header row alone decides versions and conflicts.  A read that runs between the two writes
    returns the event with data null.  Sequential use never sees it."""

    def __init__(self, shared):
        super().__init__(shared)
        if not hasattr(shared, "pending"):
            shared.pending = set()

    def save_event(self, event):
        return self._call(self._save, event)

    def _save(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if event.version <= latest:
                raise self.conflict(event, latest)
            self.append(event)
            self.shared.pending.add((event.actor_id, event.version))
        self.io(0.002)  # the payload row's round trip
        with self.shared.lock:
            self.shared.pending.discard((event.actor_id, event.version))

    def select(self, actor_id, from_version):
        return [replace(e, data=None) if (actor_id, e.version) in self.shared.pending else e
                for e in super().select(actor_id, from_version)]


class DropsEmptyInPlace(CorrectStore):
    """An omitempty encoder that drops empty lists and objects from data and state by rewriting the
    caller's own dict before storing it.  Found by the review of hostile stores: the kit handed the
    store the very event a test then compared the read with, so the change was invisible."""

    @staticmethod
    def drop_empty(value):
        if isinstance(value, dict):
            for key in [k for k, v in value.items() if v in ([], {})]:
                del value[key]
            for member in value.values():
                DropsEmptyInPlace.drop_empty(member)
        elif isinstance(value, list):
            for member in value:
                DropsEmptyInPlace.drop_empty(member)

    def save_event(self, event):
        self.drop_empty(event.data)
        return super().save_event(event)

    def save_snapshot(self, snapshot):
        self.drop_empty(snapshot.state)
        return super().save_snapshot(snapshot)


# == registry ==============================================================================

utf16_key_slice_256 = events_only(Utf16KeySlice256)
long_ids_shortened_by_crc32 = factory(LongIdsShortenedByCrc32)
astral_chars_as_question_marks = factory(AstralCharsAsQuestionMarks)
windows_device_names = factory(WindowsDeviceNames)
actor_passivation_loses_version = events_only(ActorPassivationLosesVersion)
cross_actor_reused_id_dropped = factory(CrossActorReusedIdDropped, EventIdState)
bson_int64_overflow = factory(BsonInt64Overflow)
unsafe_integers_as_strings = factory(UnsafeIntegersAsStrings)
proto_key_dropped = factory(ProtoKeyDropped)
json_lines_splitlines = factory(JsonLinesSplitlines)
offset_cut_to_minutes = factory(OffsetCutToMinutes)
session_zone_lost_after_recycle = factory(SessionZoneLostAfterRecycle, SaveCount)
signed_big_endian_snapshot_keys = factory(SignedBigEndianSnapshotKeys)
handle_snapshot_cache = factory(HandleSnapshotCache)
snapshot_archives_beyond_1000 = factory(SnapshotArchivesBeyond1000)
replacement_char_escaped = factory(quoting_store(ReplacementCharEscaped))
actor_document_16mib = factory(ActorDocument16MiB)
torn_payload_reads = factory(TornPayloadReads, BusyState)
drops_empty_in_place = factory(DropsEmptyInPlace)
xml_attribute_whitespace = factory(XmlAttributeWhitespace)
plus_decoded_as_space = factory(PlusDecodedAsSpace)
backslash_is_slash = factory(BackslashIsSlash)
js_date_reviver = factory(JsDateReviver)
php_sequential_keys_become_list = factory(PhpSequentialKeysBecomeList)
nul_in_keys_refused = factory(NulInKeysRefused)
snapshot_ttl_120s = factory(SnapshotTtl120s)

# factory name -> (the requirement the suite reports, a deterministic trigger)
TRIGGERS: dict[str, tuple[str, str]] = {
    "utf16_key_slice_256": ("ES-ACTOR-002", "save v1 to '🦀'*200+'a'; latest of '🦀'*200+'b' is 1"),
    "long_ids_shortened_by_crc32": ("ES-ACTOR-002", "save v1 to 'p'*200+'plumless'; latest of 'p'*200+'buckeroo' is 1"),
    "astral_chars_as_question_marks": ("ES-ACTOR-002", "save v1 to 'acct-🦀'; latest of 'acct-🎉' is 1"),
    "windows_device_names": ("ES-ACTOR-002", "save v1 to 'COM3' (or 'nul.orders'): acknowledged, latest 0, no events"),
    "actor_passivation_loses_version": ("ES-LATEST-002", "save v1-3 to A; get_latest_version of 10,000 fresh ids; latest(A) is 0"),
    "cross_actor_reused_id_dropped": ("ES-READ-003", "save id 'E' v1 to A, then id 'E' v1 to B: acknowledged, B has no events"),
    "bson_int64_overflow": ("ES-READ-003", "save data {'n': 2**63} -> OverflowError"),
    "unsafe_integers_as_strings": ("ES-READ-003", "save data {'n': 2**53+1}; reads back {'n': '9007199254740993'}"),
    "proto_key_dropped": ("ES-READ-003", "save data {'__proto__': {'x': 1}, 'a': 1}; reads back {'a': 1}"),
    "json_lines_splitlines": ("ES-READ-003", "save data {'s': 'a\\u2028b'} (or \\x85): the event is never read back"),
    "offset_cut_to_minutes": ("ES-READ-003", "save timestamp 1900-01-01T00:00:00+00:19:32; reads back 32 s later"),
    "session_zone_lost_after_recycle": ("ES-READ-003", "after 30,000 saves, every saved timestamp reads back 4-5 h late"),
    "signed_big_endian_snapshot_keys": ("SS-SNAP-002", "snapshots at 3 then -1; get_latest_snapshot returns -1"),
    "handle_snapshot_cache": ("ES-HANDLE-001", "h1 snapshot v1; h2 reads v1; h1 snapshot v2; h2 reads v1"),
    "snapshot_archives_beyond_1000": ("SS-SNAP-004", "1,001 events, snapshot at 1,001; get_events(0) starts at 2"),
    "replacement_char_escaped": ("ES-ERR-002", "conflict on actor 'a\\ufffdb': text has \\\\ufffd instead of the raw character"),
    "actor_document_16mib": ("ES-READ-001", "42 events of 400 KB to one actor: the 42nd save raises DocumentTooLarge"),
    "torn_payload_reads": ("ES-CONC-001", "a get_events during a save returns that event with data None"),
    "drops_empty_in_place": ("ES-READ-003", "save data {'a': [], 'b': 1}: the caller's own dict becomes {'b': 1}"),
    "xml_attribute_whitespace": ("ES-ACTOR-002", "save v1 to 'a\\tb'; latest of 'a b' is 1"),
    "plus_decoded_as_space": ("ES-ACTOR-002", "save v1 to 'a+b'; latest of 'a b' is 1"),
    "backslash_is_slash": ("ES-ACTOR-002", "save v1 to 'a\\\\b'; latest of 'a/b' is 1"),
    "js_date_reviver": ("ES-READ-003", "save data {'at': '2024-01-02T03:04:05Z'}; reads back '2024-01-02T03:04:05.000Z'"),
    "php_sequential_keys_become_list": ("ES-READ-003", "save data {'m': {'0': 'a', '1': 'b'}}; reads back {'m': ['a', 'b']}"),
    "nul_in_keys_refused": ("ES-READ-003", "save data {'a\\x00b': 1} -> DataError"),
    "snapshot_ttl_120s": ("SS-SNAP-002", "save a snapshot, wait 120 s: get_latest_snapshot returns None"),
}


# Broken beyond what one run can see: 30,000 saves (the thorough profile makes them, and catches it)
# and two minutes of wall-clock time.
NOT_CAUGHT = {
    "session_zone_lost_after_recycle": "needs 30,000 saves before it misbehaves; the thorough profile catches it",
    "snapshot_ttl_120s": "needs a snapshot to be 120 s old; a run revisits its first actors after far less",
}

ESCAPES: dict[str, str] = {name: req for name, (req, _) in TRIGGERS.items() if name not in NOT_CAUGHT}
