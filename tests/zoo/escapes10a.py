"""Stores a tenth adversarial review (a) wrote: bugs a store shows only for data shapes and counts a
default run never produces (payloads whose CRC-32 collide, a bool where an equal int was stored
before, more than 32,767 distinct event types or 65,535 actors in one store, consecutive large
payloads read from the middle, YAML-ambiguous object keys).

Each store is tests/zoo/base.py's CorrectStore broken in one place.  ``TRIGGERS`` maps each factory
name to a deterministic function showing the bug by direct calls (True when it shows); ``BROKEN``
names the MUST requirement each one breaks.  The real CLI (default profile, -x) certified 6 of the 7
(all but snapshot_crc, which the suite's CRC-32-twin actor ids catch under SS-SNAP-004);
stream_uint16 is certified by thorough too.

The suite now flags all 7 (tests/test_zoo.py): data and snapshot states that are CRC-32 or
String.hashCode twins, or equal to others only as Python values (True == 1), on actors of their
own (crc_dedupe, bool_interned, snapshot_crc); YAML words as object keys (yaml_keys); the data of
every event of the large actor in each read (delta_chain).  In thorough only: the long stream's
events each have a type of their own (type_int16), and the revisit touches 66,000 actors
(stream_uint16).
"""

from __future__ import annotations

import copy
import json
import zlib

from tests.zoo.base import CorrectStore, ShareState, ev, factory, snap


def _canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


def crc_twins() -> tuple[dict, dict]:
    """Two data objects whose canonical JSON has one CRC-32 (found by a birthday search)."""
    a, b = ({"n": n, "m": n * 7919 % 1000003} for n in (39212, 49489))
    assert zlib.crc32(_canonical(a)) == zlib.crc32(_canonical(b)) and a != b
    return a, b


# 1 ---------------------------------------------------------------------------------------------
class BlobState(ShareState):
    def __init__(self):
        super().__init__()
        self.blobs = {}  # crc32 of canonical payload -> payload


class PayloadsDedupedByCrc32(CorrectStore):
    """Content-addressed payload storage: each event row holds the CRC-32C/CRC-32 of its data's
    canonical JSON (the checksum object stores and GCS already compute), and the payload is kept
    once per checksum in a blob table (`INSERT ... ON CONFLICT (crc) DO NOTHING`).  Identical
    payloads (the suite's {"version": v, ...} on thousands of actors) share one blob correctly; two
    different payloads whose checksums collide share one too, and the second reads back as the
    first.  About 17,500 distinct payloads in a default run: a collision is rare by chance."""

    def append(self, event):
        key = zlib.crc32(_canonical(event.data))
        self.shared.blobs.setdefault(key, copy.deepcopy(event.data))
        stored = copy.deepcopy(event)
        object.__setattr__(stored, "data", {"\x00blob": key})
        self.shared.events.setdefault(event.actor_id, []).append(stored)

    def select(self, actor_id, from_version):
        out = []
        for e in self.shared.events.get(actor_id, []):
            if e.version >= from_version:
                e = copy.deepcopy(e)
                object.__setattr__(e, "data", copy.deepcopy(self.shared.blobs[e.data["\x00blob"]]))
                out.append(e)
        return out


def trigger_crc_dedupe():
    s = factory(PayloadsDedupedByCrc32, BlobState)()
    a, b = crc_twins()
    s.save_event(ev("x", 1, data=a))
    s.save_event(ev("y", 1, data=b))
    return s.get_events("y", 0)[0].data != b


# 2 ---------------------------------------------------------------------------------------------
def _freeze(value):
    if isinstance(value, dict):
        return frozenset((k, _freeze(v)) for k, v in value.items())
    if isinstance(value, list):
        return ("__list__", tuple(_freeze(v) for v in value))
    return value


class InternState(ShareState):
    def __init__(self):
        super().__init__()
        self.interned = {}  # frozen payload -> the one payload object kept


class PayloadsInternedByPythonEquality(CorrectStore):
    """An in-process store (or a Python cache in front of one) that interns payloads to save
    memory: a dict keyed by a hashable frozen form of the data (frozenset of items, tuples for
    lists), `interned.setdefault(freeze(data), data)`.  Python's equality says `True == 1`,
    `False == 0 == 0.0`, and `hash(True) == hash(1)`, so `{"ok": true}` saved after `{"ok": 1}`
    is interned as the earlier object and reads back as `{"ok": 1}` - which JSON (and Go)
    distinguish."""

    def append(self, event):
        stored = copy.deepcopy(event)
        data = copy.deepcopy(event.data)
        object.__setattr__(stored, "data", self.shared.interned.setdefault(_freeze(data), data))
        self.shared.events.setdefault(event.actor_id, []).append(stored)


def trigger_bool_interned():
    s = factory(PayloadsInternedByPythonEquality, InternState)()
    s.save_event(ev("x", 1, data={"ok": 1}))
    s.save_event(ev("y", 1, data={"ok": True}))
    return s.get_events("y", 0)[0].data["ok"] is not True


# 3 ---------------------------------------------------------------------------------------------
class TypeTableState(ShareState):
    def __init__(self):
        super().__init__()
        self.types: list[str] = []
        self.codes: dict[str, int] = {}


def _int16(n: int) -> int:
    return (n + 32768) % 65536 - 32768  # numpy's astype(int16): wraps silently


class EventTypesDictionaryInt16(CorrectStore):
    """Event types dictionary-encoded, as columnar segments do (Arrow/Parquet dictionary arrays,
    a pandas Categorical): a table of distinct types and, per event, its code in an int16 column
    (`np.asarray(codes).astype(np.int16)`, which wraps without error).  The 32,769th distinct type
    gets code -32768, and the lookup `types[code]` (negative indexes count from the end) answers
    another type.  A default run saves about 500 distinct types; the suite's 300-type test is
    aimed at TINYINT."""

    def append(self, event):
        code = self.shared.codes.get(event.event_type)
        if code is None:
            code = self.shared.codes[event.event_type] = len(self.shared.types)
            self.shared.types.append(event.event_type)
        stored = copy.deepcopy(event)
        object.__setattr__(stored, "event_type", str(_int16(code)))
        self.shared.events.setdefault(event.actor_id, []).append(stored)

    def select(self, actor_id, from_version):
        out = []
        for e in self.shared.events.get(actor_id, []):
            if e.version >= from_version:
                e = copy.deepcopy(e)
                object.__setattr__(e, "event_type", self.shared.types[int(e.event_type)])
                out.append(e)
        return out


def trigger_type_int16():
    s = factory(EventTypesDictionaryInt16, TypeTableState)()
    for n in range(32_768):
        s.save_event(ev("bulk", n + 1, event_type=f"T{n}"))
    s.save_event(ev("y", 1, event_type="Fresh"))
    return s.get_events("y", 0)[0].event_type != "Fresh"


# 4 ---------------------------------------------------------------------------------------------
class StreamNumberState(ShareState):
    def __init__(self):
        super().__init__()
        self.numbers: dict[str, int] = {}  # actor id -> stream number (as written: 16 bits)


class StreamNumbersUint16(CorrectStore):
    """A compact log: a stream table maps each actor id to a stream number given out in order of
    creation, and each record's header packs that number in an unsigned 16-bit field
    (`struct.pack('<H', n & 0xFFFF)`).  The 65,537th actor's records carry the first actor's number:
    both read one stream and share one latest version.  A default run creates about 12,000
    actors, thorough about 25,000."""

    def _number(self, actor_id):
        number = self.shared.numbers.get(actor_id)
        if number is None:
            number = self.shared.numbers[actor_id] = len(self.shared.numbers) & 0xFFFF
        return number

    def latest(self, actor_id):
        stream = self.shared.events.get(self._number(actor_id))
        return stream[-1].version if stream else 0

    def append(self, event):
        self.shared.events.setdefault(self._number(event.actor_id), []).append(copy.deepcopy(event))

    def select(self, actor_id, from_version):
        return [copy.deepcopy(e) for e in self.shared.events.get(self._number(actor_id), []) if e.version >= from_version]


def trigger_stream_uint16():
    s = factory(StreamNumbersUint16, StreamNumberState)()
    s.save_event(ev("first", 5))
    for n in range(65_535):
        s.get_latest_version(f"a{n}")
    return s.get_latest_version("newcomer") != 0


# 5 ---------------------------------------------------------------------------------------------
DITTO_MIN_BYTES = 4096
DITTO = {"\x00ditto": True}


class DittoState(ShareState):
    pass


class LargePayloadsDeltaChained(CorrectStore):
    """Delta-encoded streams (as append-only logs that compress against the previous record do): a
    payload of 4 KiB or more that equals the previous event's payload is stored as a "same as
    before" marker.  The reader resolves markers against the last payload it has decoded in this
    read, starting from an empty base: a read whose first event is such a repeat (from_version in
    the middle of a run of equal large payloads) returns `{}` for it.  The suite's large actor
    saves equal payloads and reads from 2, but compares versions only."""

    def append(self, event):
        stream = self.shared.events.setdefault(event.actor_id, [])
        stored = copy.deepcopy(event)
        if stream and len(_canonical(event.data)) >= DITTO_MIN_BYTES:
            previous = next((e.data for e in reversed(stream) if e.data != DITTO), None)
            if _canonical(previous) == _canonical(event.data):
                object.__setattr__(stored, "data", DITTO)
        stream.append(stored)

    def select(self, actor_id, from_version):
        out, base = [], {}
        for e in self.shared.events.get(actor_id, []):
            if e.version >= from_version:
                e = copy.deepcopy(e)
                if e.data == DITTO:
                    object.__setattr__(e, "data", copy.deepcopy(base))
                else:
                    base = e.data
                out.append(e)
        return out


def trigger_delta_chain():
    s = factory(LargePayloadsDeltaChained, DittoState)()
    blob = {"x": "y" * 5000}
    s.save_event(ev("a", 1, data=blob))
    s.save_event(ev("a", 2, data=blob))
    return s.get_events("a", 2)[0].data != blob


# 6 ---------------------------------------------------------------------------------------------
class SnapshotBlobState(ShareState):
    def __init__(self):
        super().__init__()
        self.blobs = {}


class SnapshotStatesDedupedByCrc32(CorrectStore):
    """Snapshot states kept content-addressed by the CRC-32 of their canonical JSON (one blob per
    checksum, `ON CONFLICT DO NOTHING`): many actors' snapshots share a state, which saves space,
    until two different states collide and the later snapshot reads back the earlier state."""

    def save_snapshot(self, snapshot):
        with self.shared.lock:
            key = zlib.crc32(_canonical(snapshot.state))
            self.shared.blobs.setdefault(key, copy.deepcopy(snapshot.state))
            stored = copy.deepcopy(snapshot)
            object.__setattr__(stored, "state", {"\x00blob": key})
            self.shared.snapshots.setdefault(snapshot.actor_id, []).append(stored)

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            rows = self.shared.snapshots.get(actor_id)
            if not rows:
                return None
            best = copy.deepcopy(max(rows, key=lambda s: s.version))
            object.__setattr__(best, "state", copy.deepcopy(self.shared.blobs[best.state["\x00blob"]]))
            return best


def trigger_snapshot_crc():
    s = factory(SnapshotStatesDedupedByCrc32, SnapshotBlobState)()
    a, b = crc_twins()
    s.save_event(ev("x", 1))
    s.save_event(ev("y", 1))
    s.save_snapshot(snap("x", 1, state=a))
    s.save_snapshot(snap("y", 1, state=b))
    return s.get_latest_snapshot("y").state != b


# 7 ---------------------------------------------------------------------------------------------
_YAML11_BOOL = {w: "true" for w in ("yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON")}
_YAML11_BOOL.update({w: "false" for w in ("no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF")})
_YAML11_NULL = {"~", "null", "Null", "NULL"}


def _yaml_key(key: str) -> str:
    """A plain (unquoted) YAML 1.1 mapping key as PyYAML resolves it, then written back as JSON."""
    if key in _YAML11_BOOL:
        return _YAML11_BOOL[key]
    if key in _YAML11_NULL:
        return "null"
    return key


def _rekey(value):
    if isinstance(value, dict):
        return {_yaml_key(k): _rekey(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rekey(v) for v in value]
    return value


class YamlPlainKeys(CorrectStore):
    """Events kept as YAML documents by an emitter that quotes ambiguous *values* (after the Norway
    problem was fixed for them) but writes mapping keys plain: on reading, YAML 1.1 resolves the
    keys `on`, `off`, `yes`, `no`, `true`, `null`, `~` (any case form) to booleans and null, which
    the JSON layer writes back as "true", "false" and "null".  `{"on": 1, "off": 0}` comes back
    as `{"true": 1, "false": 0}`."""

    def select(self, actor_id, from_version):
        out = []
        for e in super().select(actor_id, from_version):
            object.__setattr__(e, "data", _rekey(e.data))
            out.append(e)
        return out


def trigger_yaml_keys():
    s = factory(YamlPlainKeys)()
    data = {"on": 1, "off": 0}
    s.save_event(ev("a", 1, data=data))
    return s.get_events("a", 0)[0].data != data


TRIGGERS = {
    "crc_dedupe": trigger_crc_dedupe,
    "bool_interned": trigger_bool_interned,
    "type_int16": trigger_type_int16,
    "stream_uint16": trigger_stream_uint16,
    "delta_chain": trigger_delta_chain,
    "snapshot_crc": trigger_snapshot_crc,
    "yaml_keys": trigger_yaml_keys,
}

crc_dedupe = factory(PayloadsDedupedByCrc32, BlobState)
bool_interned = factory(PayloadsInternedByPythonEquality, InternState)
type_int16 = factory(EventTypesDictionaryInt16, TypeTableState)
stream_uint16 = factory(StreamNumbersUint16, StreamNumberState)
delta_chain = factory(LargePayloadsDeltaChained, DittoState)
snapshot_crc = factory(SnapshotStatesDedupedByCrc32, SnapshotBlobState)
yaml_keys = factory(YamlPlainKeys)

BROKEN = {
    "crc_dedupe": "ES-READ-003",
    "bool_interned": "ES-READ-003",
    "type_int16": "ES-READ-003",
    # Actors share a stream (ES-ACTOR-001); the suite sees it first as a new actor's version 1
    # refused with another actor's latest version (ES-SAVE-001).
    "stream_uint16": "ES-SAVE-001",
    "delta_chain": "ES-READ-003",
    "snapshot_crc": "SS-SNAP-003",
    "yaml_keys": "ES-READ-003",
}
