"""Stores a seventh adversarial review (a) wrote, modelled on documented behaviour of SQL and document
databases (MySQL/MariaDB and SQL Server collations, SQL Server DATETIMEOFFSET, DynamoDB item limits):
bugs just outside the values, sizes and ids the suite already uses.

Each store is tests/zoo/base.py's CorrectStore broken in one place.  ``TRIGGERS`` maps each factory
name to a deterministic function showing the bug by direct calls (True when it shows); ``BROKEN``
names the MUST requirement each one breaks.  The real CLI (default profile, 3.2.1) certified all 14;
thorough certified those it finished (all but make_command_ids_ci, which its hypothesis caught by
chance: a command id 'Å' beside the fixed U+212B case, which lower() folds together).  The suite
now flags 13 in the quick profile (event ids, types and command ids in pairs a collation takes for
one another; keys a collation confuses in snapshot state; snapshots at offsets with seconds;
integers of 39 digits; an event of 4.5 MiB of varied text; actor ids continued by '#', ':' and
'|'); ``NOT_CAUGHT`` lists the one no run reaches.
"""

from __future__ import annotations

import bisect
import copy
import json
import unicodedata
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from aether_conformance import Timestamp
from tests.zoo.base import CorrectStore, ShareState, ev, factory, snap


def _refused(call) -> bool:
    try:
        call()
    except ValueError:
        return True
    return False


# 1 ---------------------------------------------------------------------------------------------
class IdIndexState(ShareState):
    def __init__(self):
        super().__init__()
        self.ids = {}  # collation key of an event id -> the id stored


class UniqueEventIdIndex(CorrectStore):
    """An event table with `UNIQUE (event_id)`, its duplicate-key error mapped to the ValueError
    ES-ID-001 allows.  The index compares ids under a collation; ``key`` is what it compares."""

    @staticmethod
    def key(event_id: str) -> str:
        return event_id

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            key = self.key(event.id)
            if key in self.shared.ids:
                raise ValueError(f"Duplicate entry {event.id!r} for key 'events.event_id' "
                                 f"(stored as {self.shared.ids[key]!r})")
            self.shared.ids[key] = event.id
            self.append(event)


class EventIdUniquePadSpace(UniqueEventIdIndex):
    """MySQL: `event_id VARCHAR(1024) COLLATE utf8mb4_bin UNIQUE`.  utf8mb4_bin (like every MySQL
    collation before the 8.0 `_0900_` ones, and every SQL Server collation) is PAD SPACE: trailing
    spaces are ignored in comparisons, so `'evt-1' = 'evt-1  '` and the unique index refuses the
    second as a duplicate of the first, although it is case- and accent-sensitive.  A new event id
    refused: ES-ID-001 allows refusing only an id already stored."""

    @staticmethod
    def key(event_id):
        return event_id.rstrip(" ")


def trigger_pad_space_id():
    s = factory(EventIdUniquePadSpace, IdIndexState)()
    s.save_event(ev("a", 1, id="evt-1"))
    return _refused(lambda: s.save_event(ev("a", 2, id="evt-1 ")))


# 2 ---------------------------------------------------------------------------------------------
class EventIdUniqueCanonicalEquivalence(UniqueEventIdIndex):
    """SQL Server `Latin1_General_100_CS_AS` / MySQL `utf8mb4_0900_as_cs`: case- and accent-sensitive
    collations built on the Unicode Collation Algorithm give canonically equivalent strings the same
    weights, so the precomposed `'café'` (U+00E9) equals the decomposed `'cafe\\u0301'` that macOS
    file names and some keyboards produce.  A unique index on event_id refuses the NFD spelling of an
    NFC id as a duplicate: a new id refused."""

    @staticmethod
    def key(event_id):
        return unicodedata.normalize("NFD", event_id)


def trigger_canonical_id():
    s = factory(EventIdUniqueCanonicalEquivalence, IdIndexState)()
    s.save_event(ev("a", 1, id="evt-caf\u00e9"))
    return _refused(lambda: s.save_event(ev("a", 2, id="evt-cafe\u0301")))


# 3 ---------------------------------------------------------------------------------------------
def _zero_weight(char: str) -> bool:
    return char == "\x00" or unicodedata.category(char) == "Cf"


class EventIdUniqueIgnorableCharacters(UniqueEventIdIndex):
    """SQL Server Windows collations (`Latin1_General_CS_AS`, the default of many installations) give
    NUL and format characters (soft hyphen, zero-width space and joiners, word joiner, BOM) no weight
    at all: `N'evt-1' + NCHAR(0) = N'evt-1'` and `N'ab' = N'a' + NCHAR(0x00AD) + N'b'` are true.  A
    unique index on event_id refuses an id that differs from a stored one only by such characters."""

    @staticmethod
    def key(event_id):
        return "".join(c for c in event_id if not _zero_weight(c))


def trigger_ignorable_id():
    s = factory(EventIdUniqueIgnorableCharacters, IdIndexState)()
    s.save_event(ev("a", 1, id="evt-ab"))
    return _refused(lambda: s.save_event(ev("a", 2, id="evt-a\u00adb")))


# 4 ---------------------------------------------------------------------------------------------
class InternState(ShareState):
    def __init__(self):
        super().__init__()
        self.names = {}  # collation key -> the spelling stored first


class EventTypesInternedPadSpace(CorrectStore):
    """MySQL: event types normalised into `event_types(id INT AUTO_INCREMENT, name VARCHAR(255)
    COLLATE utf8mb4_bin UNIQUE)`, written with `INSERT IGNORE` and looked up with `WHERE name = ?`;
    events keep the id and are read through a join.  utf8mb4_bin is PAD SPACE, so 'Shipped' and
    'Shipped ' (and '', ' ', '  ') are one row: a type saved with trailing spaces comes back as the
    spelling saved first, by this run or any earlier one."""

    def append(self, event):
        name = self.shared.names.setdefault(event.event_type.rstrip(" "), event.event_type)
        super().append(replace(event, event_type=name))


def trigger_interned_type():
    s = factory(EventTypesInternedPadSpace, InternState)()
    s.save_event(ev("a", 1, event_type="Shipped"))
    s.save_event(ev("a", 2, event_type="Shipped "))
    return s.get_events("a", 2)[0].event_type != "Shipped "


# 5 ---------------------------------------------------------------------------------------------
def _ai_ci(text: str) -> str:
    """utf8mb4_0900_ai_ci's equality, near enough: case folded, accents (combining marks) dropped."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class CommandIdsInternedCaseInsensitive(CorrectStore):
    """PostgreSQL: command ids kept in `commands(id bigserial, command_id citext UNIQUE)` (for the
    causation queries, and so that 'Order-7' and 'order-7' typed by different clients count as one
    command), the event row holding the `commands.id` it got from `INSERT ... ON CONFLICT
    (command_id) DO UPDATE SET command_id = commands.command_id RETURNING id`.  citext compares by
    lower(): command ids differing only in case are one row, and every event after the first reads
    back with the first one's spelling.  Accents, normalisation forms and widths stay apart."""

    def append(self, event):
        if event.command_id:
            name = self.shared.names.setdefault(event.command_id.lower(), event.command_id)
            event = replace(event, command_id=name)
        super().append(event)


def trigger_command_ids_ci():
    s = factory(CommandIdsInternedCaseInsensitive, InternState)()
    s.save_event(ev("a", 1, command_id="Order-7"))
    s.save_event(ev("b", 1, command_id="order-7"))
    return s.get_events("b", 0)[0].command_id != "order-7"


# 6 ---------------------------------------------------------------------------------------------
CHUNK_BYTES = 380_000  # DynamoDB items are at most 400 KB, key and attribute names included


class DynamoChunksOrderedAsText(CorrectStore):
    """DynamoDB: an event whose JSON exceeds one 400 KB item is split into items of 380,000 bytes
    with sort keys `EVT#<version, 20 digits>#<chunk number>`, read back with a Query that returns
    them in sort-key order - byte order of the text, where chunk 10 comes between 1 and 2.  Events of
    up to ten chunks (3.8 MB) read back whole; a larger one is reassembled out of order (and then
    decoded leniently as UTF-8, keeping what parses)."""

    def append(self, event):
        raw = json.dumps(event.data, ensure_ascii=False, separators=(",", ":")).encode()
        chunks = [raw[i:i + CHUNK_BYTES] for i in range(0, len(raw), CHUNK_BYTES)] or [b""]
        order = sorted(range(len(chunks)), key=str)
        joined = b"".join(chunks[i] for i in order)
        if order != sorted(order):
            try:
                data = json.loads(joined.decode("utf-8", "replace"))
            except ValueError:
                data = {"$corrupt": len(joined)}
            event = replace(event, data=data)
        super().append(event)


def trigger_chunks():
    s = factory(DynamoChunksOrderedAsText)()
    blob = "".join(chr(ord("a") + i % 26) for i in range(11 * CHUNK_BYTES))
    s.save_event(ev("a", 1, data={"blob": blob}))
    return s.get_events("a", 0)[0].data != {"blob": blob}


# 7 ---------------------------------------------------------------------------------------------
def _offset_in_minutes(stamp: datetime) -> datetime:
    """The wall clock kept, the offset cut to whole minutes (DATETIMEOFFSET holds no seconds)."""
    offset = stamp.utcoffset()
    minutes = int(offset.total_seconds() / 60)  # towards zero, as the driver's hour/minute fields do
    cut = stamp.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    nanos = stamp.nanosecond if isinstance(stamp, Timestamp) else 0
    return Timestamp.from_datetime(cut, nanosecond=nanos)


class SnapshotTakenAtDatetimeoffset(CorrectStore):
    """SQL Server: snapshots in a table with `taken_at DATETIMEOFFSET(7)` (events are JSON documents
    with their timestamp as UTC text).  DATETIMEOFFSET's offset is whole minutes, and the driver fills
    its timezone_hour/timezone_minute fields from the Python offset, keeping the wall clock: a
    snapshot taken at a local-mean-time offset (Amsterdam before 1937 is +00:19:32) comes back 32
    seconds off."""

    def save_snapshot(self, snapshot):
        super().save_snapshot(replace(snapshot, timestamp=_offset_in_minutes(snapshot.timestamp)))


def trigger_datetimeoffset():
    s = factory(SnapshotTakenAtDatetimeoffset)()
    s.save_event(ev("a", 1))
    stamp = datetime(1900, 1, 1, tzinfo=timezone(timedelta(minutes=19, seconds=32)))
    s.save_snapshot(snap("a", 1, timestamp=stamp))
    return s.get_latest_snapshot("a").timestamp != stamp


# 8 ---------------------------------------------------------------------------------------------
class SnapshotStateEavCaseInsensitive(CorrectStore):
    """MySQL 8: snapshot state flattened into `snapshot_members(actor_id, version, name VARCHAR(255),
    value JSON, PRIMARY KEY (actor_id, version, name))` (so that reports can query one member),
    written with `INSERT ... ON DUPLICATE KEY UPDATE value = VALUES(value)` under the default
    collation utf8mb4_0900_ai_ci.  Top-level members whose names differ only in case or accents
    ('Id' and 'id', 'qty' and 'QTY') are one row: the state reads back with one of them, holding the
    value written last, under the name written first."""

    def save_snapshot(self, snapshot):
        state = snapshot.state
        if isinstance(state, dict):
            merged, names = {}, {}
            for name, value in state.items():
                first = names.setdefault(_ai_ci(name), name)
                merged[first] = value
            snapshot = replace(snapshot, state=merged)
        super().save_snapshot(snapshot)


def trigger_eav_state():
    s = factory(SnapshotStateEavCaseInsensitive)()
    s.save_event(ev("a", 1))
    state = {"Id": "A-1", "id": 7}
    s.save_snapshot(snap("a", 1, state=state))
    return s.get_latest_snapshot("a").state != state


# 9 ---------------------------------------------------------------------------------------------
class _InexactDecimal128(ArithmeticError):
    """decimal.Inexact as bson.Decimal128 raises it (its context traps Inexact)."""


def _significant_digits(value: int) -> int:
    return len(str(abs(value)).rstrip("0")) or 1


def _to_bson(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        # `Decimal128(str(value))`: 34 significant digits, more raise decimal.Inexact
        if _significant_digits(value) > 34:
            raise _InexactDecimal128(f"[<class 'decimal.Inexact'>] converting {value} to Decimal128")
        return value
    if isinstance(value, dict):
        return {k: _to_bson(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_bson(v) for v in value]
    return value


class MongoBigIntsAsDecimal128(CorrectStore):
    """MongoDB (pymongo): BSON integers are at most 64 bits and pymongo raises OverflowError beyond
    them, so the store's TypeEncoder turns such ints into `bson.Decimal128(str(value))` (and back to
    int on the way out): 2**63, -(2**63)-1 and 10**30 round-trip exactly.  Decimal128 holds 34
    significant digits and its context traps Inexact: an integer with 35 or more (2**128, a
    SHA-256 read as a number) makes save_event raise decimal.Inexact - an ArithmeticError, not a
    ValueError - for an event well under every floor."""

    def append(self, event):
        _to_bson(event.data)
        super().append(event)


def trigger_decimal128():
    s = factory(MongoBigIntsAsDecimal128)()
    try:
        s.save_event(ev("a", 1, data={"n": 2**128}))
    except ArithmeticError:
        return True
    return False


# 10 --------------------------------------------------------------------------------------------
MAX_ALLOWED_PACKET = 4 * 1024 * 1024  # MySQL 5.7's default (8.0 has 64 MiB)


class _PacketTooLarge(Exception):
    """pymysql.err.OperationalError (1153), which is no ValueError."""


class MySql57MaxAllowedPacket(CorrectStore):
    """MySQL 5.7: `max_allowed_packet` defaults to 4 MiB, and the INSERT carrying an event is one
    packet: its data, escaped (every quote, backslash and NUL doubled), plus the other columns and
    the statement.  An event whose statement exceeds it fails with OperationalError 1153 "Got a
    packet bigger than 'max_allowed_packet' bytes" - not the ValueError of a documented limit (the
    store documents none and accepts 3 MiB)."""

    def append(self, event):
        text = json.dumps(event.data, ensure_ascii=False, separators=(",", ":"))
        escaped = len(text.encode()) + sum(text.count(c) for c in "'\\\x00\"")
        fields = sum(len(f.encode()) for f in (event.id, event.event_type, event.actor_id, event.command_id))
        if escaped + fields + 200 > MAX_ALLOWED_PACKET:
            raise _PacketTooLarge("(1153, \"Got a packet bigger than 'max_allowed_packet' bytes\")")
        super().append(event)


def trigger_packet():
    s = factory(MySql57MaxAllowedPacket)()
    try:
        s.save_event(ev("a", 1, data={"blob": "x" * (4 * 1024 * 1024)}))
    except ValueError:
        return False
    except Exception:
        return True
    return False


# 11 --------------------------------------------------------------------------------------------
BLOCKING_SORT_BYTES = 100 * 1024 * 1024  # internalQueryMaxBlockingSortMemoryUsageBytes (MongoDB 4.4+)


class _SortMemoryExceeded(Exception):
    """pymongo.errors.OperationFailure, code 292 (QueryExceededMemoryLimitNoDiskUseAllowed)."""


class MongoBlockingSortWithoutIndex(CorrectStore):
    """MongoDB: events one document each, with an index on actorId only (the unique index on
    (actorId, version) was never created, the conflict check running in a transaction instead);
    get_events is `find({actorId, version: {$gte}}).sort({version: 1})`, a blocking in-memory
    SORT stage.  It may hold 100 MB (MongoDB 4.4+; 32 MB before); beyond that the query fails with
    "Sort exceeded memory limit of 104857600 bytes" - a read of an actor of more than 100 MB of
    events (from the versions where its documents start exceeding it) raises."""

    def select(self, actor_id, from_version):
        rows = [e for e in self.shared.events.get(actor_id, []) if e.version >= from_version]
        held = 0
        for e in rows:
            held += len(json.dumps(e.data, separators=(",", ":")).encode()) + 200
            if held > BLOCKING_SORT_BYTES:
                raise _SortMemoryExceeded("Executor error during find command :: caused by :: Sort exceeded "
                                          "memory limit of 104857600 bytes, but did not opt in to external sorting.")
        return super().select(actor_id, from_version)


def trigger_blocking_sort():
    s = factory(MongoBlockingSortWithoutIndex)()
    blob = "x" * 480_000
    for v in range(1, 221):
        s.save_event(ev("a", v, data={"blob": blob}))
    try:
        s.get_events("a", 0)
    except _SortMemoryExceeded:
        return True
    return False


# 12 --------------------------------------------------------------------------------------------
def _width_and_kana_folded(text: str) -> str:
    out = []
    for c in text:
        code = ord(c)
        if 0xFF01 <= code <= 0xFF5E:  # full-width ASCII
            c = chr(code - 0xFEE0)
        elif code == 0x3000:  # ideographic space
            c = " "
        elif 0xFF61 <= code <= 0xFF9F:  # half-width katakana
            c = unicodedata.normalize("NFKC", c)
        if 0x3041 <= ord(c[0]) <= 0x3096 and len(c) == 1:  # hiragana -> katakana
            c = chr(ord(c) + 0x60)
        out.append(c)
    return "".join(out)


class EventIdUniqueWidthAndKanaInsensitive(UniqueEventIdIndex):
    """SQL Server: `event_id NVARCHAR(1024) COLLATE Latin1_General_100_CS_AS UNIQUE`.  CS_AS is case-
    and accent-sensitive, but a collation without `_WS` and `_KS` is width- and kana-insensitive:
    `N'evt-ＡＢＣ' = N'evt-ABC'` and `N'evt-あ' = N'evt-ア'`.  The unique index refuses a new id that
    differs from a stored one only in width or kana type."""

    @staticmethod
    def key(event_id):
        return _width_and_kana_folded(event_id)


def trigger_width_kana_id():
    s = factory(EventIdUniqueWidthAndKanaInsensitive, IdIndexState)()
    s.save_event(ev("a", 1, id="evt-ABC"))
    return _refused(lambda: s.save_event(ev("a", 2, id="evt-\uff21\uff22\uff23")))


# 13 --------------------------------------------------------------------------------------------
class EventIdUniqueAccentInsensitive(UniqueEventIdIndex):
    """MariaDB 11: `event_id VARCHAR(1024) COLLATE utf8mb4_uca1400_ai_cs UNIQUE` (case-sensitive,
    chosen so that ids differing in case stay apart, with the server's accent-insensitive default
    kept).  'evt-café' and 'evt-cafe' are one key: the unique index refuses a new id that differs
    from a stored one only in accents."""

    @staticmethod
    def key(event_id):
        return "".join(c for c in unicodedata.normalize("NFD", event_id) if not unicodedata.combining(c))


def trigger_accent_id():
    s = factory(EventIdUniqueAccentInsensitive, IdIndexState)()
    s.save_event(ev("a", 1, id="evt-caf\u00e9"))
    return _refused(lambda: s.save_event(ev("a", 2, id="evt-cafe")))


# 14 --------------------------------------------------------------------------------------------
class SingleTableState(ShareState):
    def __init__(self):
        super().__init__()
        self.items = {}  # sort key -> event (one partition: the tenant's)
        self.keys = []  # the sort keys, in order


class DynamoSingleTableBeginsWith(CorrectStore):
    """DynamoDB single-table design: a tenant's events in one partition, `PK = "TENANT#t"`, `SK =
    "EVT#<actor>#<version, 20 digits>"`; get_events is a Query with `begins_with(SK, "EVT#<actor>#")`
    (then `SK >= "EVT#<actor>#<from>"`) and get_latest_version the same Query with
    `ScanIndexForward=False, Limit=1`, the version read from the key's last 20 digits.  The '#' inside
    an actor id is not escaped: the prefix of actor 'x' is also the prefix of actor 'x#y', whose
    events it reads as its own and whose highest version it takes for its latest."""

    @staticmethod
    def _sk(actor_id, version):
        return f"EVT#{actor_id}#{max(version, 0):020d}"

    def _range(self, actor_id, from_version):
        prefix, keys = f"EVT#{actor_id}#", self.shared.keys
        index = bisect.bisect_left(keys, self._sk(actor_id, from_version))
        rows = []
        while index < len(keys) and keys[index].startswith(prefix):
            rows.append(self.shared.items[keys[index]])
            index += 1
        return rows

    def latest(self, actor_id):
        prefix, keys = f"EVT#{actor_id}#", self.shared.keys
        index = bisect.bisect_left(keys, prefix + "\U0010ffff") - 1
        return int(keys[index][-20:]) if index >= 0 and keys[index].startswith(prefix) else 0

    def append(self, event):
        key = self._sk(event.actor_id, event.version)
        self.shared.items[key] = copy.deepcopy(event)
        bisect.insort(self.shared.keys, key)

    def select(self, actor_id, from_version):
        return [copy.deepcopy(e) for e in self._range(actor_id, from_version)]


def trigger_begins_with():
    s = factory(DynamoSingleTableBeginsWith, SingleTableState)()
    s.save_event(ev("x#y", 5))
    return s.get_latest_version("x") == 5


make_pad_space_id = factory(EventIdUniquePadSpace, IdIndexState)
make_canonical_id = factory(EventIdUniqueCanonicalEquivalence, IdIndexState)
make_ignorable_id = factory(EventIdUniqueIgnorableCharacters, IdIndexState)
make_interned_type = factory(EventTypesInternedPadSpace, InternState)
make_command_ids_ci = factory(CommandIdsInternedCaseInsensitive, InternState)
make_chunks = factory(DynamoChunksOrderedAsText)
make_datetimeoffset = factory(SnapshotTakenAtDatetimeoffset)
make_eav_state = factory(SnapshotStateEavCaseInsensitive)
make_decimal128 = factory(MongoBigIntsAsDecimal128)
make_packet = factory(MySql57MaxAllowedPacket)
make_blocking_sort = factory(MongoBlockingSortWithoutIndex)
make_width_kana_id = factory(EventIdUniqueWidthAndKanaInsensitive, IdIndexState)
make_accent_id = factory(EventIdUniqueAccentInsensitive, IdIndexState)
make_begins_with = factory(DynamoSingleTableBeginsWith, SingleTableState)

TRIGGERS = {
    "make_pad_space_id": trigger_pad_space_id,
    "make_canonical_id": trigger_canonical_id,
    "make_ignorable_id": trigger_ignorable_id,
    "make_interned_type": trigger_interned_type,
    "make_command_ids_ci": trigger_command_ids_ci,
    "make_chunks": trigger_chunks,
    "make_datetimeoffset": trigger_datetimeoffset,
    "make_eav_state": trigger_eav_state,
    "make_decimal128": trigger_decimal128,
    "make_packet": trigger_packet,
    "make_blocking_sort": trigger_blocking_sort,
    "make_width_kana_id": trigger_width_kana_id,
    "make_accent_id": trigger_accent_id,
    "make_begins_with": trigger_begins_with,
}

BROKEN = {
    "make_pad_space_id": "ES-SAVE-001",
    "make_canonical_id": "ES-SAVE-001",
    "make_ignorable_id": "ES-SAVE-001",
    "make_interned_type": "ES-READ-003",
    "make_command_ids_ci": "ES-READ-003",
    "make_chunks": "ES-READ-003",
    "make_datetimeoffset": "SS-SNAP-003",
    "make_eav_state": "SS-SNAP-003",
    "make_decimal128": "ES-READ-003",  # the round-trip test's save fails
    "make_packet": "ES-REFUSE-001",
    "make_blocking_sort": "ES-READ-001",
    "make_width_kana_id": "ES-SAVE-001",
    "make_accent_id": "ES-SAVE-001",
    "make_begins_with": "ES-ACTOR-002",
}

# Needs one actor of more than 100 MB read from version 0; the thorough profile's largest is 65 MiB.
NOT_CAUGHT = {"make_blocking_sort": "ES-READ-001"}
