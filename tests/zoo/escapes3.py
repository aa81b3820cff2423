"""Stores a third adversarial review wrote, each breaking one MUST just outside what the suite probed.

Each store is tests/zoo/base.py's CorrectStore broken in one place, modelled on a real backend's
behaviour: value shapes the suite never built (YAML's Norway booleans, MongoDB extended JSON, long
data keys), id shapes it never paired (whole ids a hash or a path normaliser confuses), call
orders it never made (a conflicted event retried with its id, a snapshot far behind its events).
Of 34, the suite at spec 3.1.0 certified 31 (and caught two more only by hypothesis's draws).
``TRIGGERS`` maps each factory name to a deterministic function that shows the bug by direct
calls (tests/test_zoo_escape_triggers.py); ``BROKEN`` names the requirement each one breaks, which
the real CLI must report failed (tests/test_zoo.py).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
import unicodedata
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import PurePosixPath

from aether_conformance import VersionConflictError
from tests.zoo.base import CorrectStore, ShareState, ev, factory, snap, walk
from tests.zoo.subtle import KeyedStreams

class DataCodec(CorrectStore):
    """Event data passes through ``encode`` on the way in and ``decode`` on the way out (a column,
    a serialiser, a transport); the rest of the store is correct."""

    def encode(self, data):
        return data

    def decode(self, data):
        return data

    def append(self, event):
        super().append(replace(event, data=self.encode(copy.deepcopy(event.data))))

    def select(self, actor_id, from_version):
        return [replace(e, data=self.decode(e.data)) for e in super().select(actor_id, from_version)]


# == value shapes ===========================================================================================

YAML11_BOOLS = {**{w: True for w in ("yes", "Yes", "YES", "on", "On", "ON", "y", "Y")},
                **{w: False for w in ("no", "No", "NO", "off", "Off", "OFF", "n", "N")}}


class YamlNorwayBooleans(DataCodec):
    """One YAML document per actor, written by a YAML 1.2 emitter (ruamel.yaml, Go's yaml.v3 in
    1.2 mode) that quotes only what is not a string in YAML 1.2, and read by a YAML 1.1 loader
    (PyYAML with the timestamp resolver removed, as is commonly done to avoid datetime objects).
    The 'Norway problem': plain scalars yes/no/on/off/y/n are booleans in YAML 1.1, so the string
    value "NO" (a country code) or "on" reads back as a bool.  Breaks ES-READ-003."""

    def decode(self, data):
        return walk(data, lambda v: YAML11_BOOLS.get(v, v) if isinstance(v, str) else v)


class EavKeyVarchar64(DataCodec):
    """Event data shredded into an entity-attribute-value table (event_id, path, key VARCHAR(64),
    value JSON) in MySQL without strict mode: an object key longer than 64 characters is cut at 64
    with a warning.  The suite's data keys are all short (hypothesis draws keys of up to 10
    characters).  Breaks ES-READ-003."""

    def encode(self, data):
        return walk(data, key=lambda k: k[:64])


class MongoExtendedJsonDecoded(DataCodec):
    """Events kept as JSON text and read back with the MongoDB Java driver's Document.parse (or
    pymongo's bson.json_util.loads), which reads Extended JSON: an object that is exactly
    {"$numberLong": "5"}, {"$numberInt": ..}, {"$numberDouble": ..} or {"$date": ..} is a typed
    value, not an object.  The suite's '$' keys ($type, $ref) are not wrappers.  Breaks ES-READ-003."""

    @staticmethod
    def unwrap(value):
        if isinstance(value, dict):
            value = {k: MongoExtendedJsonDecoded.unwrap(v) for k, v in value.items()}
            if len(value) == 1:
                (k, v), = value.items()
                if k in ("$numberLong", "$numberInt") and isinstance(v, str) and re.fullmatch(r"-?\d+", v):
                    return int(v)
                if k == "$numberDouble" and isinstance(v, str):
                    try:
                        return float(v)
                    except ValueError:
                        return value
                if k == "$date" and isinstance(v, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)", v):
                    return datetime.fromisoformat(v.replace("Z", "+00:00")).astimezone(timezone.utc).strftime(
                        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            return value
        if isinstance(value, list):
            return [MongoExtendedJsonDecoded.unwrap(v) for v in value]
        return value

    def decode(self, data):
        return self.unwrap(data)


class XmlLineEndingsNormalised(DataCodec):
    """Event data serialised as XML (Axon Framework's XStream serializer, a SOAP layer) with CR
    written raw: every XML parser normalises line ends (XML 1.0 section 2.11), so "\\r\\n" and a lone
    "\\r" inside a string value read back as "\\n".  The suite's data strings hold NUL, controls,
    U+2028 and NEL but never a carriage return.  Breaks ES-READ-003."""

    def decode(self, data):
        return walk(data, lambda v: v.replace("\r\n", "\n").replace("\r", "\n") if isinstance(v, str) else v)


NEWTONSOFT_DATE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,7})?(Z|[+-]\d\d:\d\d)$")


class NewtonsoftDateStrings(DataCodec):
    """A .NET service reads event data with Json.NET into JObject/Dictionary<string, object> with
    the default DateParseHandling.DateTime: an ISO-8601 string becomes a DateTime, and is written
    back as "yyyy-MM-ddTHH:mm:ss.FFFFFFFK": trailing fractional zeros trimmed, and an offset other
    than Z converted to the server's local zone (UTC here).  "2024-01-02T03:04:05Z", the one date
    string the suite saves, survives unchanged; "2024-01-02T03:04:05.500Z" reads back as ".5Z" and
    "2024-01-02T03:04:05+02:00" as "2024-01-02T01:04:05Z".  Breaks ES-READ-003."""

    @staticmethod
    def reformat(value):
        if not isinstance(value, str):
            return value
        match = NEWTONSOFT_DATE.match(value)
        if not match:
            return value
        base, fraction, zone = match.groups()
        moment = datetime.fromisoformat(base).replace(tzinfo=timezone.utc if zone == "Z" else
                                                      datetime.fromisoformat("2000-01-01T00:00:00" + zone).tzinfo)
        utc = moment.astimezone(timezone.utc)
        digits = (fraction or ".")[1:].ljust(7, "0").rstrip("0")
        return utc.strftime("%Y-%m-%dT%H:%M:%S") + (f".{digits}" if digits else "") + "Z"

    def decode(self, data):
        return walk(data, self.reformat)


class DynamoEmptyStringsNull(DataCodec):
    """DynamoDB before 2020 refused empty string attribute values, so the mapper (and many still
    in use) writes "" inside a map as NULL; it reads back as null.  Breaks ES-READ-003."""

    def encode(self, data):
        return walk(data, lambda v: None if v == "" else v)


class NulEscapeNotInjective(DataCodec):
    """Postgres jsonb cannot hold \\u0000, so the store escapes NUL in string values as the
    six-character text '\\u0000' and unescapes it on the way out.  The escape is not injective: a
    value that already holds the text '\\u0000' (a JSON fragment, a log line) reads back with a NUL
    in its place.  The suite's values hold real NULs, never that text.  Breaks ES-READ-003."""

    ESCAPE = "\\u0000"

    def encode(self, data):
        return walk(data, lambda v: v.replace("\x00", self.ESCAPE) if isinstance(v, str) else v,
                    key=lambda k: k.replace("\x00", self.ESCAPE))

    def decode(self, data):
        return walk(data, lambda v: v.replace(self.ESCAPE, "\x00") if isinstance(v, str) else v,
                    key=lambda k: k.replace(self.ESCAPE, "\x00"))


FIREBASE_FORBIDDEN = {".": "%2E", "$": "%24", "#": "%23", "[": "%5B", "]": "%5D", "/": "%2F"}


class FirebaseKeyEscapeNotInjective(DataCodec):
    """Event data in the Firebase Realtime Database, whose keys may not contain . $ # [ ] /: the
    store percent-encodes those six characters in keys and decodes every %XX on the way out, but
    does not escape '%' itself.  'a.b' and '$type' survive (the suite's special keys); a key that
    already holds '%2E' (a URL-encoded path segment) reads back as '.'.  Breaks ES-READ-003."""

    def encode(self, data):
        return walk(data, key=lambda k: "".join(FIREBASE_FORBIDDEN.get(c, c) for c in k))

    def decode(self, data):
        return walk(data, key=lambda k: re.sub(r"%(2E|24|23|5B|5D|2F)", lambda m: bytes.fromhex(m[1]).decode(), k,
                                               flags=re.I))


class UtcNormalisedOverflow(CorrectStore):
    """A Python store that normalises every timestamp to UTC with ts.astimezone(timezone.utc)
    before writing it (a timestamptz-like column).  Go's time.Time has years 0 and 10000;
    Python's datetime does not: an instant in the first hour of year 1 with a positive offset
    (0001-01-01T00:30:00+01:00, Go's zero time seen from Paris) or the last hours of 9999 with a
    negative one raises OverflowError.  The suite's earliest instants are 0001-01-01T00:00:00Z
    and 0001-01-02, and hypothesis keeps a day's margin.  Breaks ES-READ-004 (the save of such an event fails; a
    store may normalise to UTC, so the MUST ES-READ-003 is not broken)."""

    def append(self, event):
        super().append(replace(event, timestamp=event.timestamp.astimezone(timezone.utc)))

    def check_and_append(self, event):
        event.timestamp.astimezone(timezone.utc)  # the conversion fails before anything is written
        super().check_and_append(event)


# == event ids, command ids =================================================================================

class EventIdState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, tuple[str, int]] = {}


class CaseInsensitiveEventIdIndex(CorrectStore):
    """MySQL 8 with the default utf8mb4_0900_ai_ci collation on `event_id VARCHAR(255) UNIQUE`:
    the unique index compares ids case- and accent-insensitively, so 'Evt-A1' is a duplicate of
    'evt-a1'.  The store reports the duplicate-key error as an ES-ID-001 refusal (ValueError,
    nothing stored), but the id it refuses is not one it stores.  The suite's ids are fresh
    UUIDs (upper-cased in one case, never both spellings).  Breaks ES-SAVE-001."""

    @staticmethod
    def fold(text):
        return "".join(c for c in unicodedata.normalize("NFD", text.casefold()) if not unicodedata.combining(c))

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            if self.fold(event.id) in self.shared.ids:
                raise ValueError(f"Duplicate entry {event.id!r} for key 'events.event_id'")
            self.shared.ids[self.fold(event.id)] = (event.actor_id, event.version)
            self.append(event)


class EventIdCharColumn(CorrectStore):
    """Event ids in a MySQL CHAR(64) column (sized for ids that were hex digests): MySQL strips
    trailing spaces from CHAR values on retrieval (PAD_CHAR_TO_FULL_LENGTH off).  The suite's ids
    end with a UUID, never with a space.  Breaks ES-READ-003."""

    def select(self, actor_id, from_version):
        return [replace(e, id=e.id.rstrip(" ")) for e in super().select(actor_id, from_version)]


class BlankEventIdsReplaced(CorrectStore):
    """A .NET store (Marten style) that assigns an id when the caller gave none, tested with
    string.IsNullOrWhiteSpace: the empty id is refused (ES-ID-002 allows it), but an id of spaces
    is replaced by a new Guid.  The suite offers the empty id and never a blank one.
    Breaks ES-READ-003."""

    def save_event(self, event):
        if event.id == "":
            raise ValueError("event id must not be empty")
        if event.id.strip() == "":
            event = replace(event, id=str(uuid.uuid4()))
        return super().save_event(event)


class BlankCommandIdDropped(CorrectStore):
    """A Java mapper writes the command id column with StringUtils.isBlank(cmd) ? null : cmd, and
    reads NULL back as "" (Go's omitempty): a command id of spaces or a tab is lost.  The suite's
    command ids are "", "cmd-42", long ones and ' padded '.  Breaks ES-READ-003."""

    def append(self, event):
        super().append(replace(event, command_id="" if event.command_id.strip() == "" else event.command_id))


# == actor ids ==============================================================================================

class BlankActorIdsRefused(CorrectStore):
    """Validation with .NET's string.IsNullOrWhiteSpace (or Commons' StringUtils.isBlank) refuses
    the empty actor id, as ES-ACTOR-003 allows, and with it every id of whitespace only (' ',
    '\\t', '\\u3000').  Those are non-empty ids every store must accept; the suite has whitespace
    inside and around ids, never an id of whitespace alone.  Breaks ES-ACTOR-002."""

    def check(self, actor_id):
        if actor_id.strip() == "":
            raise ValueError("actor id must not be blank")

    def save_event(self, event):
        self.check(event.actor_id)
        return super().save_event(event)

    def save_snapshot(self, snapshot):
        self.check(snapshot.actor_id)
        return super().save_snapshot(snapshot)


UNRESERVED = re.compile(r"%([0-9A-Fa-f]{2})")


def rfc3986_normalise(text: str) -> str:
    def one(match):
        char = chr(int(match[1], 16))
        return char if char.isascii() and (char.isalnum() or char in "-._~") else "%" + match[1].upper()
    return UNRESERVED.sub(one, text)


class Rfc3986NormalisedIds(KeyedStreams):
    """Streams behind an HTTP gateway (Envoy/Istio normalize_path, an API gateway's URI
    normalisation) that applies RFC 3986 section 6.2.2: percent-encoded unreserved characters are
    decoded ('%41' is 'A', '%7E' is '~') and the hex digits of the rest upper-cased ('%2f' is
    '%2F').  The id is escaped by the client, so '%' itself arrives as '%25'... except that the
    client, like Go's url.PathEscape, leaves ids with a valid escape alone.  'x%41' and 'xA' share
    a stream, as do 'a%2fb' and 'a%2Fb'; the suite pairs only '%2F' with '/'.  Breaks ES-ACTOR-002."""

    def key(self, actor_id):
        return rfc3986_normalise(actor_id)


class UnicodeDigitActorIds(KeyedStreams):
    """A Python store with a fast path for numeric ids: `if actor_id.isdecimal() and actor_id[0] != "0"`
    the id is kept in a BIGINT column as int(actor_id).  str.isdecimal and int() accept every
    Unicode decimal digit, so '١٢٣' (Arabic-Indic), '１２３' (full-width) and '123' are one actor.
    The suite's numeric ids are ASCII (leading zeros, decimals, exponents).  Breaks ES-ACTOR-002."""

    def key(self, actor_id):
        if actor_id.isdecimal() and actor_id[0] != "0" and len(actor_id) <= 18:
            return str(int(actor_id))
        return actor_id


JS_PROTOTYPE = {"constructor", "toString", "toLocaleString", "valueOf", "hasOwnProperty", "isPrototypeOf",
                "propertyIsEnumerable", "__defineGetter__", "__defineSetter__", "__lookupGetter__",
                "__lookupSetter__", "__proto__"}


class ObjectPrototypeActorIds(CorrectStore):
    """A Node.js backend keeps its stream index in a plain object: `const s = index[actorId] ??=
    []`.  For an id that names a member of Object.prototype ('constructor', 'toString',
    'hasOwnProperty', '__proto__', ...) the lookup finds the inherited function, and `s.push`
    throws TypeError.  The suite's ids never name one (it tests '__proto__' as a data key only).
    Breaks ES-ACTOR-002."""

    def check_and_append(self, event):
        if event.actor_id in JS_PROTOTYPE:
            raise TypeError("s.push is not a function")
        super().check_and_append(event)


class PathlibNormalisedIds(KeyedStreams):
    """One directory per actor, `root / actor_id`, with '/' in an id making subdirectories (an S3
    or MinIO prefix per actor, mirrored on disk): pathlib normalises the path, so 'a//b' and 'a/b',
    'a/./b' and 'a/b', 'a/' and 'a' are one directory.  The suite's ids hold single slashes only.
    Breaks ES-ACTOR-002."""

    def key(self, actor_id):
        return str(PurePosixPath(actor_id)) if actor_id not in ("", ".") else actor_id


class Base64IdsCaseInsensitiveFs(KeyedStreams):
    """One file per actor named base64url(id) (so that any id is a valid file name), on a
    case-insensitive file system (macOS APFS default, Windows NTFS): ids whose encodings differ
    only in letter case share a file: 'aaa' is YWFh and 'aaG' is YWFH.  The suite's pairs never
    line up that way.  Breaks ES-ACTOR-002."""

    def key(self, actor_id):
        return base64.urlsafe_b64encode(actor_id.encode()).decode().lower()


class Sha1PrefixActorKeys(KeyedStreams):
    """Streams in a key-value store under the first 8 hex digits of SHA-1(actor id) (a 'short hash'
    that keeps keys small, as git abbreviates commits), without the id itself in the key: 32 bits,
    so two ids in 65,000 collide ('order-57680' and 'order-98687' do).  The suite keys each run's
    ids afresh, a few thousand of them, and pairs only CRC-32 and hashCode collisions.
    Breaks ES-ACTOR-002."""

    def key(self, actor_id):
        return hashlib.sha1(actor_id.encode()).hexdigest()[:8]


# == snapshots and call orders ==============================================================================

class TruncateBeforeOnAppend(CorrectStore):
    """Saving a snapshot sets the stream's truncate-before point (EventStoreDB $tb metadata, or an
    `archive_before` column), and a trigger on the events table applies it at the next append:
    events at or below the latest snapshot's version are deleted then.  Every read made right after
    a snapshot, before any further event, still sees them all; the suite saves an event after a
    snapshot only in checks that read nothing afterwards.  Breaks SS-SNAP-004."""

    def append(self, event):
        snapshots = self.shared.snapshots.get(event.actor_id)
        if snapshots:
            cut = max(s.version for s in snapshots)
            stream = self.shared.events.get(event.actor_id, [])
            kept = [e for e in stream if e.version > cut]
            if kept or not stream:
                self.shared.events[event.actor_id] = kept
            else:  # keep the last event, so the latest version survives
                self.shared.events[event.actor_id] = stream[-1:]
        super().append(event)


class AkkaSnapshotRetention(CorrectStore):
    """Snapshot retention in the style of Akka Persistence's RetentionCriteria.snapshotEvery(500,
    keepNSnapshots = 2), with the cut computed from the sequence number of the event just
    persisted instead of the snapshot just saved: each event save deletes snapshots at or below
    event.version - 1,000, the newest included.  A snapshot stays readable until its actor's
    stream runs 1,000 versions past it; the suite's snapshots are read within a few versions of
    their actor's latest event.  Breaks SS-SNAP-002."""

    def append(self, event):
        super().append(event)
        snapshots = self.shared.snapshots.get(event.actor_id)
        if snapshots:
            self.shared.snapshots[event.actor_id] = [s for s in snapshots if s.version > event.version - 1000]


class SnapshotCacheInvalidatedByEvents(CorrectStore):
    """Each client caches latest snapshots (filled by reads, non-null only), invalidated by the
    server's change notifications: a LISTEN/NOTIFY trigger on the events table announces every
    event save to every client, but the snapshots table has no trigger.  A snapshot saved through
    another handle is missed by a handle that read an older one, unless an event of the actor was
    saved in between, as the suite's handle test does.  Breaks ES-HANDLE-001."""

    def __init__(self, shared):
        super().__init__(shared)
        self.cache = {}
        with shared.lock:
            shared.__dict__.setdefault("listeners", []).append(self.cache)

    def append(self, event):
        super().append(event)
        for cache in self.shared.listeners:  # NOTIFY events_changed, '<actor>'
            cache.pop(event.actor_id, None)

    def save_snapshot(self, snapshot):
        super().save_snapshot(snapshot)
        with self.shared.lock:
            self.cache.pop(snapshot.actor_id, None)

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            if actor_id in self.cache:
                return copy.deepcopy(self.cache[actor_id])
        found = super().get_latest_snapshot(actor_id)
        with self.shared.lock:
            if found is not None:
                self.cache[actor_id] = copy.deepcopy(found)
        return found


# == registry ===============================================================================================

yaml_norway_booleans = factory(YamlNorwayBooleans)
eav_key_varchar64 = factory(EavKeyVarchar64)
mongo_extended_json_decoded = factory(MongoExtendedJsonDecoded)
xml_line_endings_normalised = factory(XmlLineEndingsNormalised)
newtonsoft_date_strings = factory(NewtonsoftDateStrings)
dynamo_empty_strings_null = factory(DynamoEmptyStringsNull)
nul_escape_not_injective = factory(NulEscapeNotInjective)
firebase_key_escape_not_injective = factory(FirebaseKeyEscapeNotInjective)
utc_normalised_overflow = factory(UtcNormalisedOverflow)
case_insensitive_event_id_index = factory(CaseInsensitiveEventIdIndex, EventIdState)
event_id_char_column = factory(EventIdCharColumn)
blank_event_ids_replaced = factory(BlankEventIdsReplaced)
blank_command_id_dropped = factory(BlankCommandIdDropped)
blank_actor_ids_refused = factory(BlankActorIdsRefused)
rfc3986_normalised_ids = factory(Rfc3986NormalisedIds)
unicode_digit_actor_ids = factory(UnicodeDigitActorIds)
object_prototype_actor_ids = factory(ObjectPrototypeActorIds)
pathlib_normalised_ids = factory(PathlibNormalisedIds)
base64_ids_case_insensitive_fs = factory(Base64IdsCaseInsensitiveFs)
sha1_prefix_actor_keys = factory(Sha1PrefixActorKeys)
truncate_before_on_append = factory(TruncateBeforeOnAppend)
akka_snapshot_retention = factory(AkkaSnapshotRetention)
snapshot_cache_invalidated_by_events = factory(SnapshotCacheInvalidatedByEvents)


# == triggers ===============================================================================================

def _data_changes(make, data) -> bool:
    store = make()
    actor = f"t-{uuid.uuid4().hex}"
    store.save_event(ev(actor, 1, data=data))
    return store.get_events(actor, 0)[0].data != data


def _two_ids_share(make, left, right) -> bool:
    store = make()
    store.save_event(ev(left, 1))
    return store.get_latest_version(right) == 1


def _trigger_utc_overflow() -> bool:
    stamp = datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    try:
        utc_normalised_overflow().save_event(ev("a", 1, timestamp=stamp))
    except OverflowError:
        return True
    return False


def _trigger_case_insensitive_ids() -> bool:
    store = case_insensitive_event_id_index()
    store.save_event(ev("a", 1, id="evt-a1"))
    try:
        store.save_event(ev("b", 1, id="EVT-A1"))
    except ValueError:
        return store.get_latest_version("b") == 0
    return False


def _trigger_field(make, **fields) -> bool:
    store = make()
    saved = ev("a", 1, **fields)
    store.save_event(saved)
    got = store.get_events("a", 0)[0]
    return any(getattr(got, name) != value for name, value in fields.items())


def _trigger_blank_actor() -> bool:
    try:
        blank_actor_ids_refused().save_event(ev(" ", 1))
    except ValueError:
        return True
    return False


def _trigger_prototype() -> bool:
    try:
        object_prototype_actor_ids().save_event(ev("constructor", 1))
    except TypeError:
        return True
    return False


def _trigger_truncate_before() -> bool:
    store = truncate_before_on_append()
    for version in (1, 2, 3):
        store.save_event(ev("a", version))
    store.save_snapshot(snap("a", 2))
    store.save_event(ev("a", 4))
    return [e.version for e in store.get_events("a", 0)] != [1, 2, 3, 4]


def _trigger_akka() -> bool:
    store = akka_snapshot_retention()
    store.save_event(ev("a", 1))
    store.save_snapshot(snap("a", 1))
    store.save_event(ev("a", 1001))
    return store.get_latest_snapshot("a") is None


def _trigger_snapshot_cache() -> bool:
    make = snapshot_cache_invalidated_by_events
    one, two = make(), make()
    one.save_event(ev("a", 2))
    one.save_snapshot(snap("a", 1))
    assert two.get_latest_snapshot("a").version == 1
    one.save_snapshot(snap("a", 2))
    return two.get_latest_snapshot("a").version != 2


TRIGGERS = {
    "yaml_norway_booleans": lambda: _data_changes(yaml_norway_booleans, {"country": "NO", "light": "on"}),
    "eav_key_varchar64": lambda: _data_changes(eav_key_varchar64, {"k" * 65: 1}),
    "mongo_extended_json_decoded": lambda: _data_changes(mongo_extended_json_decoded, {"n": {"$numberLong": "5"}}),
    "xml_line_endings_normalised": lambda: _data_changes(xml_line_endings_normalised, {"text": "line1\r\nline2"}),
    "newtonsoft_date_strings": lambda: _data_changes(newtonsoft_date_strings, {"at": "2024-01-02T03:04:05+02:00"}),
    "dynamo_empty_strings_null": lambda: _data_changes(dynamo_empty_strings_null, {"middle_name": ""}),
    "nul_escape_not_injective": lambda: _data_changes(nul_escape_not_injective, {"log": "bad byte \\u0000 seen"}),
    "firebase_key_escape_not_injective": lambda: _data_changes(firebase_key_escape_not_injective, {"a%2Eb": 1}),
    "utc_normalised_overflow": _trigger_utc_overflow,
    "case_insensitive_event_id_index": _trigger_case_insensitive_ids,
    "event_id_char_column": lambda: _trigger_field(event_id_char_column, id="evt-1 "),
    "blank_event_ids_replaced": lambda: _trigger_field(blank_event_ids_replaced, id="   "),
    "blank_command_id_dropped": lambda: _trigger_field(blank_command_id_dropped, command_id=" "),
    "blank_actor_ids_refused": _trigger_blank_actor,
    "rfc3986_normalised_ids": lambda: _two_ids_share(rfc3986_normalised_ids, "x%41", "xA"),
    "unicode_digit_actor_ids": lambda: _two_ids_share(unicode_digit_actor_ids, "\u0661\u0662\u0663", "123"),
    "object_prototype_actor_ids": _trigger_prototype,
    "pathlib_normalised_ids": lambda: _two_ids_share(pathlib_normalised_ids, "tenant//order", "tenant/order"),
    "base64_ids_case_insensitive_fs": lambda: _two_ids_share(base64_ids_case_insensitive_fs, "aaa", "aaG"),
    "sha1_prefix_actor_keys": lambda: _two_ids_share(sha1_prefix_actor_keys, "order-57680", "order-98687"),
    "truncate_before_on_append": _trigger_truncate_before,
    "akka_snapshot_retention": _trigger_akka,
    "snapshot_cache_invalidated_by_events": _trigger_snapshot_cache,
}

BROKEN = {
    "yaml_norway_booleans": "ES-READ-003",
    "eav_key_varchar64": "ES-READ-003",
    "mongo_extended_json_decoded": "ES-READ-003",
    "xml_line_endings_normalised": "ES-READ-003",
    "newtonsoft_date_strings": "ES-READ-003",
    "dynamo_empty_strings_null": "ES-READ-003",
    "nul_escape_not_injective": "ES-READ-003",
    "firebase_key_escape_not_injective": "ES-READ-003",
    "utc_normalised_overflow": "ES-READ-004",
    "case_insensitive_event_id_index": "ES-SAVE-001",
    "event_id_char_column": "ES-READ-003",
    "blank_event_ids_replaced": "ES-READ-003",
    "blank_command_id_dropped": "ES-READ-003",
    "blank_actor_ids_refused": "ES-ACTOR-002",
    "rfc3986_normalised_ids": "ES-ACTOR-002",
    "unicode_digit_actor_ids": "ES-ACTOR-002",
    "object_prototype_actor_ids": "ES-ACTOR-002",
    "pathlib_normalised_ids": "ES-ACTOR-002",
    "base64_ids_case_insensitive_fs": "ES-ACTOR-002",
    "sha1_prefix_actor_keys": "ES-ACTOR-002",
    "truncate_before_on_append": "SS-SNAP-004",
    "akka_snapshot_retention": "SS-SNAP-002",
    "snapshot_cache_invalidated_by_events": "ES-HANDLE-001",
}


# == round 3, second batch ==================================================================================

class SpringDataClassKey(DataCodec):
    """Event data as a Map<String, Object> in MongoDB through Spring Data's MappingMongoConverter:
    a '_class' member of any embedded document is taken as the type alias of that document and
    consumed when it is read back (the converter writes its own '_class' the same way).  The
    suite's reserved keys are '$type', '$ref', '_id' and '_rev', never '_class'.  Breaks ES-READ-003."""

    def decode(self, data):
        def strip(value):
            if isinstance(value, dict):
                return {k: strip(v) for k, v in value.items() if k != "_class"}
            if isinstance(value, list):
                return [strip(v) for v in value]
            return value
        return strip(data)


GROUP_CONCAT_MAX_LEN = 32 * 1024 * 1024


class GroupConcat32MiB(CorrectStore):
    """MySQL: a stream is read with one `SELECT GROUP_CONCAT(payload ORDER BY version SEPARATOR
    '\\n')`, with group_concat_max_len raised from its default of 1,024 bytes to 32 MiB (the usual
    fix once reads came back cut): the result is silently truncated at 32 MiB, and the store drops
    the event whose JSON the cut left unparseable and everything after it.  The suite's biggest
    actor holds 17 MiB.  Breaks ES-READ-001."""

    def select(self, actor_id, from_version):
        import json
        total, kept = 0, []
        for event in super().select(actor_id, from_version):
            total += len(json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False).encode()) + 1
            if total > GROUP_CONCAT_MAX_LEN:
                break
            kept.append(event)
        return kept


def redis_glob(pattern: str) -> re.Pattern:
    """Redis's stringmatchlen: '*', '?', '[...]' ('^' negates) and '\\' escaping the next character."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1])); i += 2; continue
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:end]
                neg = body.startswith("^")
                body = body[1:] if neg else body
                out.append("[" + ("^" if neg else "") + "".join(re.escape(ch) for ch in body) + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.S)


class RedisGlobCacheInvalidation(CorrectStore):
    """A read-through cache of get_events in Redis under `events:<actor>:<from_version>`; a save
    invalidates the actor's entries with `SCAN MATCH events:<actor>:*` and DEL, the id put into the
    pattern unescaped.  '*' and '?' in an id still match themselves, but '[...]' is a character class
    and '\\' escapes the next character, so for an id like 'order[1]' or 'a\\b' the pattern misses
    the actor's own keys and reads it has made before keep their old answer.  The suite's ids with
    a backslash are never read twice from the same version around a save; none has a '['.
    Breaks ES-ACTOR-002 (reads of such ids go stale)."""

    def get_events(self, actor_id, from_version):
        key = f"events:{actor_id}:{from_version}"
        with self.shared.lock:
            cache = self.shared.__dict__.setdefault("cache", {})
            if key not in cache:
                cache[key] = self.select(actor_id, from_version)
            return copy.deepcopy(cache[key])

    def append(self, event):
        super().append(event)
        cache = self.shared.__dict__.setdefault("cache", {})
        pattern = redis_glob(f"events:{event.actor_id}:*")
        for key in [k for k in cache if pattern.fullmatch(k)]:
            del cache[key]


class S3DelimiterEventIds(CorrectStore):
    """One S3 object per event at `events/<actor>/<event id>`, the stream read by ListObjectsV2 with
    Prefix='events/<actor>/' and Delimiter='/' (a 'folder' listing), then a GET of each object, sorted
    by the version inside.  An event whose id contains '/' is listed as a CommonPrefix, not as an
    object, and is missing from every read; the latest version (a counter object) and the conflict
    check are right.  The suite's event ids are UUID-based, never with a '/'.  Breaks ES-READ-003 (an event id that is not kept)."""

    def select(self, actor_id, from_version):
        return [e for e in super().select(actor_id, from_version) if "/" not in e.id]


spring_data_class_key = factory(SpringDataClassKey)
group_concat_32mib = factory(GroupConcat32MiB)
redis_glob_cache_invalidation = factory(RedisGlobCacheInvalidation)
s3_delimiter_event_ids = factory(S3DelimiterEventIds)


def _trigger_group_concat() -> bool:
    store = group_concat_32mib()
    blob = {"blob": "x" * 480_000}
    for version in range(1, 72):
        store.save_event(ev("big", version, data=blob))
    return len(store.get_events("big", 0)) != 71


def _trigger_redis_glob() -> bool:
    store = redis_glob_cache_invalidation()
    store.save_event(ev("order[1]", 1))
    store.get_events("order[1]", 0)
    store.save_event(ev("order[1]", 2))
    return [e.version for e in store.get_events("order[1]", 0)] != [1, 2]


def _trigger_s3_delimiter() -> bool:
    store = s3_delimiter_event_ids()
    store.save_event(ev("a", 1, id="orders/2024/evt-1"))
    return store.get_events("a", 0) == [] and store.get_latest_version("a") == 1


TRIGGERS.update({
    "spring_data_class_key": lambda: _data_changes(spring_data_class_key, {"item": {"_class": "Book", "t": "x"}}),
    "group_concat_32mib": _trigger_group_concat,
    "redis_glob_cache_invalidation": _trigger_redis_glob,
    "s3_delimiter_event_ids": _trigger_s3_delimiter,
})
BROKEN.update({
    "spring_data_class_key": "ES-READ-003",
    "group_concat_32mib": "ES-READ-001",
    "redis_glob_cache_invalidation": "ES-ACTOR-002",
    "s3_delimiter_event_ids": "ES-READ-003",
})


class FnmatchCacheInvalidation(RedisGlobCacheInvalidation):
    """The same read-through cache of get_events, kept in process (a cachetools/dict cache in a
    Python service) and invalidated with fnmatch.fnmatchcase(key, f"events:{actor}:*"), the id put
    into the pattern unescaped.  fnmatch has no backslash escape, so 'a\\b' invalidates fine; but
    '[...]' is a character class: for 'order[1]' the pattern misses the actor's own keys, and a
    read it made before a save keeps its old answer.  The suite's ids never contain '['.
    Breaks ES-ACTOR-002 (reads of such ids go stale)."""

    def append(self, event):
        import fnmatch
        CorrectStore.append(self, event)
        cache = self.shared.__dict__.setdefault("cache", {})
        pattern = f"events:{event.actor_id}:*"
        for key in [k for k in cache if fnmatch.fnmatchcase(k, pattern)]:
            del cache[key]


fnmatch_cache_invalidation = factory(FnmatchCacheInvalidation)


def _trigger_fnmatch() -> bool:
    store = fnmatch_cache_invalidation()
    store.save_event(ev("order[1]", 1))
    store.get_events("order[1]", 0)
    store.save_event(ev("order[1]", 2))
    return [e.version for e in store.get_events("order[1]", 0)] != [1, 2]


TRIGGERS["fnmatch_cache_invalidation"] = _trigger_fnmatch
BROKEN["fnmatch_cache_invalidation"] = "ES-ACTOR-002"


# == round 3, third batch ===================================================================================

class LeakedIdOnConflict(CorrectStore):
    """Event ids are deduplicated (ES-ID-001 allows refusing a reused id) by a separate unique table
    written first, outside the events transaction: `INSERT INTO event_ids` (autocommit), then the
    guarded `INSERT INTO events ... WHERE version > latest`.  A save that conflicts leaves its id in
    event_ids, so the writer that retries the same event at the next version, as the spec's writer
    loop does when it keeps its event's id, is refused as a 'reused id' that the store never stored.
    A conflict still takes precedence over the id check, as the spec requires.  The suite gives every
    attempt a fresh id.  Breaks ES-SAVE-003 (and ES-SAVE-001)."""

    def check_and_append(self, event):
        with self.shared.lock:
            # INSERT INTO event_ids ... ON CONFLICT DO NOTHING, autocommitted: was it new?
            duplicate = event.id in self.shared.ids
            self.shared.ids[event.id] = None
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):  # a conflict takes precedence over the id check
                raise self.conflict(event, latest)
            if duplicate:
                raise ValueError(f"event id {event.id!r} is already stored")
            self.append(event)


class Uint32EventKeys(CorrectStore):
    """Events in a key-value store under `<actor>/<version as 8 hex digits>`, a key format made for
    uint32 sequence numbers (log segment names) and kept when versions became int64 (JavaScript's
    `version >>> 0`, Go's uint32(v)).  Versions and the latest are kept exactly elsewhere, so every
    conflict is right; but a version equal to an earlier one modulo 2^32 (1 and 2^32 + 1) overwrites
    that event.  The suite's int64 runs never hold two such versions in one actor.
    Breaks ES-SAVE-004 (versions are not kept exactly)."""

    def append(self, event):
        stream = self.shared.events.setdefault(event.actor_id, [])
        slot = event.version & 0xFFFFFFFF
        stream[:] = [e for e in stream if e.version & 0xFFFFFFFF != slot]
        stream.append(copy.deepcopy(event))
        # kept in save order (the latest is the last saved): the slot map does not reorder

    def select(self, actor_id, from_version):
        return sorted(super().select(actor_id, from_version), key=lambda e: e.version)


class ColdArchiveStitching(CorrectStore):
    """Saving a snapshot copies the actor's events up to its version into cold storage (an S3
    archive, a partition moved to cheaper disks), and reads stitch the archive (events up to the
    snapshot's version) to the hot table (events above it).  After a snapshot ahead of the events
    (accepted, as the seed does), the events later saved at or below its version go to the hot
    table and are never read: they are below the cut.  The suite saves such events, but reads
    nothing afterwards.  Breaks SS-SNAP-004 (ES-READ-001)."""

    def save_snapshot(self, snapshot):
        super().save_snapshot(snapshot)
        with self.shared.lock:
            archive = self.shared.__dict__.setdefault("archive", {})
            cut = max(s.version for s in self.shared.snapshots[snapshot.actor_id])
            archive[snapshot.actor_id] = (cut, [copy.deepcopy(e) for e in self.shared.events.get(snapshot.actor_id, [])
                                                if e.version <= cut])

    def select(self, actor_id, from_version):
        archive = self.shared.__dict__.setdefault("archive", {})
        if actor_id not in archive:
            return super().select(actor_id, from_version)
        cut, cold = archive[actor_id]
        hot = [e for e in super().select(actor_id, from_version) if e.version > cut]
        return [copy.deepcopy(e) for e in cold if e.version >= from_version] + hot


class LodashLengthKey(DataCodec):
    """A Node.js backend copies event data with a recursive helper built on lodash's _.forEach
    (or underscore's _.each), which treats any object whose 'length' member is a valid array length
    as array-like and iterates indexes 0..length-1 instead of its keys: {"length": 2, "a": 1} is
    copied as {} (JSON.stringify drops the undefined members), {"length": 1, "0": "x"} as {"0": "x"}.
    The suite's data never has a 'length' key.  Breaks ES-READ-003."""

    @staticmethod
    def copy_like_lodash(value):
        if isinstance(value, dict):
            length = value.get("length")
            if isinstance(length, (int, float)) and not isinstance(length, bool) and float(length).is_integer() \
                    and 0 <= length <= 2**53 - 1:
                return {str(i): LodashLengthKey.copy_like_lodash(value[str(i)])
                        for i in range(min(int(length), 100_000)) if str(i) in value}
            return {k: LodashLengthKey.copy_like_lodash(v) for k, v in value.items()}
        if isinstance(value, list):
            return [LodashLengthKey.copy_like_lodash(v) for v in value]
        return value

    def encode(self, data):
        return self.copy_like_lodash(data)


leaked_id_on_conflict = factory(LeakedIdOnConflict, EventIdState)
uint32_event_keys = factory(Uint32EventKeys)
cold_archive_stitching = factory(ColdArchiveStitching)
lodash_length_key = factory(LodashLengthKey)


def _trigger_leaked_id() -> bool:
    store = leaked_id_on_conflict()
    store.save_event(ev("a", 1))
    retry = ev("a", 1, id="client-generated-42")
    try:
        store.save_event(retry)
    except VersionConflictError:
        pass
    try:
        store.save_event(replace(retry, version=2))  # re-decided at the next version, same id
    except ValueError:
        return store.get_latest_version("a") == 1
    return False


def _trigger_uint32() -> bool:
    store = uint32_event_keys()
    store.save_event(ev("a", 1))
    store.save_event(ev("a", 2**32 + 1))
    return [e.version for e in store.get_events("a", 0)] != [1, 2**32 + 1]


def _trigger_cold_archive() -> bool:
    store = cold_archive_stitching()
    store.save_event(ev("a", 1))
    store.save_snapshot(snap("a", 5))
    store.save_event(ev("a", 2))
    return [e.version for e in store.get_events("a", 0)] != [1, 2]


TRIGGERS.update({
    "leaked_id_on_conflict": _trigger_leaked_id,
    "uint32_event_keys": _trigger_uint32,
    "cold_archive_stitching": _trigger_cold_archive,
    "lodash_length_key": lambda: _data_changes(lodash_length_key, {"line": {"length": 3, "unit": "m"}}),
})
BROKEN.update({
    "leaked_id_on_conflict": "ES-SAVE-003",
    "uint32_event_keys": "ES-SAVE-004",
    "cold_archive_stitching": "SS-SNAP-004",
    "lodash_length_key": "ES-READ-003",
})


def go_sprintf(fmt: str, *args: int) -> str:
    """Go's fmt.Sprintf for int64 arguments: %d formats one; any other verb is a bad verb
    ('%!x(int64=3)'), a verb without an argument '%!d(MISSING)', unused arguments '%!(EXTRA ...)'."""
    out, i, used = [], 0, 0
    while i < len(fmt):
        if fmt[i] != "%":
            out.append(fmt[i]); i += 1; continue
        j = i + 1
        while j < len(fmt) and fmt[j] in "+-# 0123456789.":
            j += 1
        if j >= len(fmt):
            out.append("%!(NOVERB)"); break
        verb = fmt[j]
        if verb == "%":
            out.append("%")
        elif used >= len(args):
            out.append(f"%!{verb}(MISSING)")
        else:
            arg = args[used]; used += 1
            out.append(str(arg) if verb in "dv" else f"%!{verb}(int64={arg})")
        i = j + 1
    if used < len(args):
        out.append("%!(EXTRA " + ", ".join(f"int64={a}" for a in args[used:]) + ")")
    return "".join(out)


class SprintfConflict(VersionConflictError):
    """The message built Go-style as fmt.Sprintf("version conflict: actor " + strconv.Quote(id) +
    " has version %d, cannot save version %d", current, attempted): the quoted id is part of the
    format string (go vet's 'non-constant format string')."""

    def __str__(self) -> str:
        from aether_conformance.errors import go_quote
        return go_sprintf("version conflict: actor " + go_quote(self.actor_id) + " has version %d, cannot save version %d",
                          self.current_version, self.attempted_version)


class GoSprintfConflictText(CorrectStore):
    """A Go store builds the conflict text by concatenating the quoted actor id into the format
    string of fmt.Sprintf.  For an id with a '%' in it ('order%', 'y=%20', '100%done') Go reads the
    id's '%' as a verb: the text becomes 'actor "100%!d(int64=3)one" has version %!d(int64=2)...'.
    The fields are right; the suite's ids with '%' are checked for their fields only, and the ids
    whose text it checks never hold a '%'.  Breaks ES-ERR-002."""

    def conflict(self, event, latest):
        return SprintfConflict(actor_id=event.actor_id, attempted_version=event.version, current_version=latest)


go_sprintf_conflict_text = factory(GoSprintfConflictText)


def _trigger_sprintf() -> bool:
    from aether_conformance.errors import go_quote
    store = go_sprintf_conflict_text()
    actor = "100%done"
    store.save_event(ev(actor, 1))
    try:
        store.save_event(ev(actor, 1))
    except VersionConflictError as error:
        return str(error) != f"version conflict: actor {go_quote(actor)} has version 1, cannot save version 1"
    return False


TRIGGERS["go_sprintf_conflict_text"] = _trigger_sprintf
BROKEN["go_sprintf_conflict_text"] = "ES-ERR-002"


class StaleSnapshotSkipped(CorrectStore):
    """A persistence plugin's 'outdated snapshot' guard: a snapshot more than 500 events behind the
    actor's journal (counted in stored events, not versions) is skipped silently as not worth
    keeping, since replaying from it would cost 500 events anyway.  The save returns normally, and
    get_latest_snapshot returns an older snapshot or None.  The suite's only snapshot that far behind
    (at 200 of a 1,050-event stream) is never read back.  Breaks SS-SNAP-002."""

    def save_snapshot(self, snapshot):
        with self.shared.lock:
            behind = sum(1 for e in self.shared.events.get(snapshot.actor_id, []) if e.version > snapshot.version)
        if behind > 500:
            return
        super().save_snapshot(snapshot)


stale_snapshot_skipped = factory(StaleSnapshotSkipped)


def _trigger_stale_snapshot() -> bool:
    store = stale_snapshot_skipped()
    for version in range(1, 602):
        store.save_event(ev("a", version))
    store.save_snapshot(snap("a", 100))
    return store.get_latest_snapshot("a") is None


TRIGGERS["stale_snapshot_skipped"] = _trigger_stale_snapshot
BROKEN["stale_snapshot_skipped"] = "SS-SNAP-002"
