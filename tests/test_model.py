"""Event, ActorSnapshot and Timestamp: construction rules and Go's JSON form.

The literal JSON strings below are written byte for byte as Go's
``encoding/json`` writes them (struct field order, map keys sorted, no
spaces, ``time.RFC3339Nano``), so the round trip is checked against Go's
bytes, not only against a dict.
"""

from __future__ import annotations

import copy
import json
import pickle
import sys
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aether_conformance.limits import MAX_NESTING_DEPTH
from aether_conformance.model import INT64_MAX, INT64_MIN, ActorSnapshot, Event, Timestamp, json_equal
from aether_conformance.schemas import SchemaValidationError
from aether_conformance.timestamps import format_go_time, parse_go_time

UTC = timezone.utc
T0 = Timestamp.parse("2024-01-02T03:04:05.123456789Z")


def go_bytes(value: dict) -> str:
    # Go's Marshal: no whitespace, non-ASCII as UTF-8.  (Go also escapes <, >, &
    # and U+2028/U+2029; the literals below avoid them.)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def event(**changes) -> Event:
    fields = dict(id="e1", event_type="Created", actor_id="a", version=1, data=None, timestamp=T0)
    fields.update(changes)
    return Event(**fields)


def snapshot(**changes) -> ActorSnapshot:
    fields = dict(actor_id="a", version=1, state=None, timestamp=T0)
    fields.update(changes)
    return ActorSnapshot(**fields)


# --- construction ---------------------------------------------------------------------


def test_event_keyword_construction():
    e = Event(id="e1", event_type="Created", actor_id="a", version=1, data={"k": [1]}, timestamp=T0, command_id="c")
    assert (e.id, e.event_type, e.actor_id, e.version, e.data, e.timestamp, e.command_id) == (
        "e1", "Created", "a", 1, {"k": [1]}, T0, "c",
    )
    assert event().command_id == ""


def test_snapshot_keyword_construction():
    s = ActorSnapshot(actor_id="a", version=4, state={"n": 4}, timestamp=T0)
    assert (s.actor_id, s.version, s.state, s.timestamp) == ("a", 4, {"n": 4}, T0)


def test_records_are_frozen():
    with pytest.raises(AttributeError):
        event().version = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        snapshot().state = {}  # type: ignore[misc]


@pytest.mark.parametrize("version", [0, -1, INT64_MIN, INT64_MAX, 1])
def test_any_int64_version_can_be_constructed(version):
    # The suite must be able to offer 0 and negatives to a store.
    assert event(version=version).version == version
    assert snapshot(version=version).version == version


@pytest.mark.parametrize("version", [INT64_MAX + 1, INT64_MIN - 1, 2**64])
def test_version_beyond_int64_is_a_value_error(version):
    with pytest.raises(ValueError, match=r"^Event\.version: must fit in a Go int64"):
        event(version=version)
    with pytest.raises(ValueError, match=r"^ActorSnapshot\.version: must fit in a Go int64"):
        snapshot(version=version)


@pytest.mark.parametrize("version", [True, False, 1.0, "1", None])
def test_non_int_version_is_a_type_error(version):
    with pytest.raises(TypeError, match=r"^Event\.version: must be an int"):
        event(version=version)
    with pytest.raises(TypeError, match=r"^ActorSnapshot\.version: must be an int"):
        snapshot(version=version)


@pytest.mark.parametrize("field", ["id", "event_type", "actor_id", "command_id"])
@pytest.mark.parametrize("value", [1, None, b"a"])
def test_non_str_event_ids_are_type_errors(field, value):
    with pytest.raises(TypeError, match=rf"^Event\.{field}: must be a str"):
        event(**{field: value})


def test_non_str_snapshot_actor_id_is_a_type_error():
    with pytest.raises(TypeError, match=r"^ActorSnapshot\.actor_id: must be a str"):
        snapshot(actor_id=7)


@pytest.mark.parametrize("value", [[], "{}", 1])
def test_data_and_state_must_be_dict_or_none(value):
    with pytest.raises(TypeError, match=r"^Event\.data: must be a dict or None"):
        event(data=value)
    with pytest.raises(TypeError, match=r"^ActorSnapshot\.state: must be a dict or None"):
        snapshot(state=value)


def test_naive_datetime_is_a_value_error():
    with pytest.raises(ValueError, match=r"^Event\.timestamp: must be timezone-aware"):
        event(timestamp=datetime(2024, 1, 2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"^ActorSnapshot\.timestamp: must be timezone-aware"):
        snapshot(timestamp=datetime(2024, 1, 2, 3, 4, 5))


def test_timestamp_string_is_a_type_error():
    with pytest.raises(TypeError, match=r"^Event\.timestamp: must be a datetime"):
        event(timestamp="2024-01-02T03:04:05Z")


def test_plain_aware_datetime_is_accepted_and_written_as_go_does():
    e = event(timestamp=datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=UTC))
    assert e.to_dict()["timestamp"] == "2024-01-02T03:04:05.12Z"


# --- what Go's encoding/json cannot carry -------------------------------------------------

NOT_GO_JSON = [
    ({"a": [1, 2, 3, float("nan")]}, r"\['a'\]\[3\]: NaN is not valid JSON"),
    ({"a": float("inf")}, r"\['a'\]: \+Inf is not valid JSON"),
    ({"a": {"b": -float("inf")}}, r"\['a'\]\['b'\]: -Inf is not valid JSON"),
    ({"n": 10**309}, r"\['n'\]: an integer of 1027 bits is beyond float64 range"),
    ({"n": [-(10**400)]}, r"\['n'\]\[0\]: an integer of 1329 bits is beyond float64 range"),
    # Beyond Python's int-string limit (4,300 digits): the error still names the field.
    ({"n": 10**5000}, r"\['n'\]: an integer of 16610 bits is beyond float64 range"),
    ({"s": "ok \ud800"}, r"\['s'\]: lone surrogate '\\ud800' at index 3"),
    ({"l": ["x", {"k": "\udfff"}]}, r"\['l'\]\[1\]\['k'\]: lone surrogate '\\udfff' at index 0"),
    ({"k\udc80": 1}, r" key 'k\\udc80': lone surrogate '\\udc80' at index 1"),
    # Lists of one kind of scalar are checked whole, at C speed: the one bad item is still named.
    ({"a": [1.5] * 1000 + [float("-inf")]}, r"\['a'\]\[1000\]: -Inf is not valid JSON"),
    ({"a": list(range(1000)) + [10**309]}, r"\['a'\]\[1000\]: an integer of 1027 bits"),
    ({"a": ["x"] * 1000 + ["\ud800"]}, r"\['a'\]\[1000\]: lone surrogate"),
]
# pytest cannot name a parameter holding an int beyond the int-string limit.
NOT_GO_JSON_IDS = ["nan", "inf", "-inf", "int>float64", "-int>float64", "int>str-limit", "surrogate",
                   "nested-surrogate", "surrogate-key", "-inf-among-floats", "int>float64-among-ints",
                   "surrogate-among-strings"]


@pytest.mark.parametrize(("value", "message"), NOT_GO_JSON, ids=NOT_GO_JSON_IDS)
def test_data_go_cannot_carry_is_refused_at_construction_naming_the_field(value, message):
    with pytest.raises(ValueError, match=r"^Event\.data" + message):
        event(data=value)
    with pytest.raises(ValueError, match=r"^ActorSnapshot\.state" + message):
        snapshot(state=value)


@pytest.mark.parametrize(("value", "message"), NOT_GO_JSON, ids=NOT_GO_JSON_IDS)
def test_data_go_cannot_carry_is_refused_by_from_dict_naming_the_field(value, message):
    with pytest.raises(ValueError, match=r"^event\.data" + message):
        Event.from_dict(_GO_EVENT | {"data": value})
    with pytest.raises(ValueError, match=r"^actor-snapshot\.state" + message):
        ActorSnapshot.from_dict(_GO_SNAPSHOT | {"state": value})
    # Without the schema too: the constructor checks, under the model's names.
    with pytest.raises(ValueError, match=r"^Event\.data" + message):
        Event.from_dict(_GO_EVENT | {"data": value}, check_schema=False)


def test_what_python_json_reads_but_go_refuses_is_refused_by_from_dict():
    # Python's json module reads NaN, Infinity and lone surrogate escapes; Go's does not.
    text = '{"id":"e","eventType":"T","actorId":"a","version":1,"data":{"x":%s},"timestamp":"2024-01-02T03:04:05Z"}'
    for literal, rule in (("NaN", "NaN"), ("-Infinity", "-Inf"), ('"\\ud800"', "lone surrogate")):
        with pytest.raises(ValueError, match=rf"^event\.data\['x'\]: {rule}"):
            Event.from_dict(json.loads(text % literal))


@pytest.mark.parametrize("field", ["id", "event_type", "actor_id", "command_id"])
def test_lone_surrogates_in_event_strings_are_refused(field):
    with pytest.raises(ValueError, match=rf"^Event\.{field}: lone surrogate '\\udc80' at index 1"):
        event(**{field: "a\udc80"})


def test_lone_surrogates_in_wire_strings_are_refused_by_from_dict():
    with pytest.raises(ValueError, match=r"^event\.actorId: lone surrogate"):
        Event.from_dict(_GO_EVENT | {"actorId": "\ud800"})
    with pytest.raises(ValueError, match=r"^actor-snapshot\.actorId: lone surrogate"):
        ActorSnapshot.from_dict(_GO_SNAPSHOT | {"actorId": "\ud800"})
    with pytest.raises(ValueError, match=r"^ActorSnapshot\.actor_id: lone surrogate"):
        snapshot(actor_id="\ud800")


@pytest.mark.parametrize("version", [10**5000, -(10**5000)], ids=["huge", "-huge"])
def test_versions_beyond_the_int_string_limit_name_the_field(version):
    assert len(str(10**4000)) < sys.get_int_max_str_digits() < 5000  # the limit this test is about
    with pytest.raises(ValueError, match=r"^Event\.version: must fit in a Go int64, got an integer of 16610 bits"):
        event(version=version)
    with pytest.raises(ValueError, match=r"^event\.version: an integer of 16610 bits is beyond float64 range"):
        Event.from_dict(_GO_EVENT | {"version": version})
    with pytest.raises(ValueError, match=r"^actor-snapshot\.version: an integer of 16610 bits"):
        ActorSnapshot.from_dict(_GO_SNAPSHOT | {"version": version})


def test_numbers_within_float64_range_are_kept_exactly():
    # Go decodes them into float64; beyond 2^53 they compare as float64 (json_equal), but the model keeps them.
    largest = int(sys.float_info.max)
    data = {"max": largest, "min": -largest, "big": 2**53 + 1, "tiny": 5e-324, "float": sys.float_info.max}
    assert event(data=data).data == data
    assert Event.from_dict(_GO_EVENT | {"data": data}).data == data


def test_a_circular_reference_is_refused():
    looped: dict = {"x": []}
    looped["x"].append(looped)
    with pytest.raises(ValueError, match=r"^Event\.data\['x'\]\[0\]: contains itself"):
        event(data=looped)


def test_objects_that_are_not_json_are_left_to_the_store():
    # Only the JSON types are checked; a store decides what else it keeps (ES-REFUSE-001 lets it refuse).
    assert event(data={"s": {1, 2}, "t": (1, 2)}).data == {"s": {1, 2}, "t": (1, 2)}


# --- nesting up to MAX_NESTING_DEPTH ------------------------------------------------------


def nested(levels: int, leaf: object = 1) -> dict:
    """A dict nesting ``levels`` containers (itself included), alternating objects and arrays."""
    value: object = leaf
    for level in range(levels - 1):
        value = [value] if level % 2 else {"k": value}
    return {"k": value}


def test_data_nested_to_the_limit_is_carried_by_every_model_path():
    assert MAX_NESTING_DEPTH == 512
    data = nested(MAX_NESTING_DEPTH)
    e = event(data=data)
    s = snapshot(state=nested(MAX_NESTING_DEPTH))
    text = json.dumps(e.to_dict())
    back = Event.from_dict(json.loads(text))
    assert back == e and json_equal(back.data, data)
    assert ActorSnapshot.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert Event.from_dict(json.loads(text), check_schema=False) == e
    clone = copy.deepcopy(e)
    assert clone == e and clone.data is not e.data and json_equal(clone.data, data)
    assert copy.deepcopy(s) == s
    assert not json_equal(data, nested(MAX_NESTING_DEPTH, leaf=2))  # the difference at the bottom is seen
    assert not json_equal(data, nested(MAX_NESTING_DEPTH - 1))


def test_deepcopy_keeps_shared_values_shared():
    shared = [1, 2]
    clone = copy.deepcopy(event(data={"a": shared, "b": shared}))
    assert clone.data["a"] is clone.data["b"] and clone.data["a"] is not shared


@pytest.mark.parametrize("levels", [MAX_NESTING_DEPTH + 1, 5000])
def test_data_nested_beyond_the_limit_is_refused_naming_the_field_and_limit(levels):
    message = r"\['k'\](\['k'\]|\[0\]){3}\[…\d+ levels…\](\['k'\]|\[0\]){4}: nested deeper than 512 levels .*MAX_NESTING_DEPTH"
    with pytest.raises(ValueError, match=r"^Event\.data" + message):
        event(data=nested(levels))
    with pytest.raises(ValueError, match=r"^ActorSnapshot\.state" + message):
        snapshot(state=nested(levels))
    with pytest.raises(ValueError, match=r"^event\.data" + message):
        Event.from_dict(_GO_EVENT | {"data": nested(levels)})


# --- Go's JSON, byte for byte ---------------------------------------------------------

GO_EVENTS = [
    # nil map, no command id, nine fractional digits
    '{"id":"e1","eventType":"Created","actorId":"a","version":1,"data":null,'
    '"timestamp":"2024-01-02T03:04:05.123456789Z"}',
    # command id, nested data (keys sorted as Go sorts map keys), no fraction
    '{"id":"e2","eventType":"ItemAdded","actorId":"order-42","commandId":"cmd-7","version":2,'
    '"data":{"items":[{"qty":2,"sku":"A-1"}],"meta":{"n":null,"ok":true},"total":19.5},'
    '"timestamp":"2024-01-02T03:04:05Z"}',
    # empty map, +05:30 offset, trimmed fraction
    '{"id":"e3","eventType":"Noted","actorId":"a","version":3,"data":{},'
    '"timestamp":"2024-01-02T08:34:05.1+05:30"}',
    # Unicode, -08:00 offset, int64 max
    '{"id":"évènement","eventType":"Créé","actorId":"Zoë-日本語-🎉","version":9223372036854775807,'
    '"data":{"emoji":"🎉","name":"Zoë"},"timestamp":"2024-01-01T19:04:05.000000001-08:00"}',
    # empty strings Go allows, Go's zero time
    '{"id":"","eventType":"","actorId":"","version":1,"data":null,"timestamp":"0001-01-01T00:00:00Z"}',
]

GO_SNAPSHOTS = [
    '{"actorId":"a","version":3,"state":{"count":3},"timestamp":"2024-01-02T03:04:05.123456789Z"}',
    '{"actorId":"a","version":0,"state":null,"timestamp":"2024-01-02T03:04:05-08:00"}',
    '{"actorId":"Zoë","version":-9223372036854775808,"state":{"a":[1,2.5,"x"]},'
    '"timestamp":"9999-12-31T23:59:59.999999999+05:30"}',
]


@pytest.mark.parametrize("text", GO_EVENTS)
def test_event_round_trips_go_json(text):
    wire = json.loads(text)
    e = Event.from_dict(wire)
    assert e.to_dict() == wire
    assert go_bytes(e.to_dict()) == text


@pytest.mark.parametrize("text", GO_SNAPSHOTS)
def test_snapshot_round_trips_go_json(text):
    wire = json.loads(text)
    s = ActorSnapshot.from_dict(wire)
    assert s.to_dict() == wire
    assert go_bytes(s.to_dict()) == text


def test_from_dict_reads_fields_into_the_model():
    e = Event.from_dict(json.loads(GO_EVENTS[1]))
    assert (e.id, e.event_type, e.actor_id, e.command_id, e.version) == ("e2", "ItemAdded", "order-42", "cmd-7", 2)
    assert e.data == {"items": [{"qty": 2, "sku": "A-1"}], "meta": {"n": None, "ok": True}, "total": 19.5}
    assert e.timestamp == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = Event.from_dict(json.loads(GO_EVENTS[0]))
    assert first.command_id == "" and first.data is None
    assert first.timestamp.nanosecond == 789 and first.timestamp.microsecond == 123456


def test_empty_command_id_is_omitted_as_go_omits_it():
    assert "commandId" not in event(command_id="").to_dict()
    assert event(command_id="c").to_dict()["commandId"] == "c"


@pytest.mark.parametrize(
    ("text", "written"),
    [
        # Go decodes these but writes its own form: trailing zeros trimmed, Z for UTC.
        ("2024-01-02T03:04:05.500Z", "2024-01-02T03:04:05.5Z"),
        ("2024-01-02T03:04:05+00:00", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05.000000000Z", "2024-01-02T03:04:05Z"),
    ],
)
def test_non_go_spellings_are_read_and_written_in_go_form(text, written):
    wire = json.loads(GO_EVENTS[0]) | {"timestamp": text}
    assert Event.from_dict(wire).to_dict()["timestamp"] == written


# --- from_dict errors name the field --------------------------------------------------

_GO_EVENT = json.loads(GO_EVENTS[0])
_GO_SNAPSHOT = json.loads(GO_SNAPSHOTS[0])


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ({k: v for k, v in _GO_EVENT.items() if k != "actorId"}, r"^event: 'actorId' is a required property"),
        (_GO_EVENT | {"version": "1"}, r"^event\.version: .*\(rule: type\)"),
        (_GO_EVENT | {"version": 2**63}, r"^event\.version: .*\(rule: maximum\)"),
        (_GO_EVENT | {"version": 0}, r"^event\.version: .*\(rule: minimum\)"),
        (_GO_EVENT | {"commandId": ""}, r"^event\.commandId: "),
        (_GO_EVENT | {"data": [1]}, r"^event\.data: "),
        (_GO_EVENT | {"timestamp": "2024-02-30T00:00:00Z"}, r"^event\.timestamp: .*\(rule: format\)"),
        # Python's "$" lets the schema pattern accept a trailing newline; the parser must not.
        (_GO_EVENT | {"timestamp": "2024-01-02T03:04:05Z\n"}, r"^event\.timestamp: "),
        (_GO_EVENT | {"extra": 1}, r"^event: .*'extra'"),
    ],
)
def test_event_from_dict_errors_name_the_field(wire, message):
    with pytest.raises(ValueError, match=message):
        Event.from_dict(wire)


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ({k: v for k, v in _GO_SNAPSHOT.items() if k != "state"}, r"^actor-snapshot: 'state' is a required property"),
        (_GO_SNAPSHOT | {"state": "x"}, r"^actor-snapshot\.state: "),
        (_GO_SNAPSHOT | {"version": -(2**63) - 1}, r"^actor-snapshot\.version: .*\(rule: minimum\)"),
        (_GO_SNAPSHOT | {"timestamp": "2024-01-02T03:04:05Z\n"}, r"^actor-snapshot\.timestamp: "),
    ],
)
def test_snapshot_from_dict_errors_name_the_field(wire, message):
    with pytest.raises(ValueError, match=message):
        ActorSnapshot.from_dict(wire)


def test_schema_errors_are_value_errors_of_their_own_class():
    with pytest.raises(SchemaValidationError):
        Event.from_dict(_GO_EVENT | {"version": 0})


def test_version_written_as_float_is_refused_by_the_model():
    # JSON Schema counts 1.0 as an integer; Go cannot decode it into an int64.
    with pytest.raises(TypeError, match=r"^Event\.version: must be an int, got float"):
        Event.from_dict(_GO_EVENT | {"version": 1.0})


# --- Timestamp ------------------------------------------------------------------------


def test_timestamp_keeps_nanoseconds_in_equality():
    assert T0 == Timestamp.parse("2024-01-02T03:04:05.123456789Z")
    assert T0 != Timestamp.parse("2024-01-02T03:04:05.123456788Z")
    assert T0 != datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def test_timestamp_equality_is_by_instant_across_offsets():
    same = Timestamp.parse("2024-01-02T08:34:05.123456789+05:30")
    assert same == T0 and hash(same) == hash(T0)
    assert format_go_time(same) == "2024-01-02T08:34:05.123456789+05:30"  # the offset is kept


def test_timestamp_without_nanoseconds_equals_and_hashes_as_datetime():
    plain = datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    stamp = Timestamp.from_datetime(plain)
    assert stamp == plain and plain == stamp
    assert hash(stamp) == hash(plain)
    assert stamp in {plain} and plain in {stamp}


def test_timestamp_hash_distinguishes_nanoseconds_in_sets():
    stamps = {Timestamp.parse(f"2024-01-02T03:04:05.123456{ns:03d}Z") for ns in range(1000)}
    assert len(stamps) == 1000


def test_timestamp_ordering_sees_nanoseconds():
    earlier = Timestamp.parse("2024-01-02T03:04:05.123456788Z")
    assert earlier < T0 and T0 > earlier and earlier <= T0 and T0 >= earlier
    assert not (T0 < earlier) and not (T0 <= earlier)
    plain = datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert plain < T0 and T0 > plain and plain <= T0 and not (plain >= T0)
    assert sorted([T0, earlier, plain]) == [plain, earlier, T0]


def test_timestamp_ordering_with_naive_datetime_is_a_type_error():
    with pytest.raises(TypeError):
        T0 < datetime(2024, 1, 1)  # noqa: B015


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_timestamp_pickle_keeps_nanoseconds_and_offset(protocol):
    stamp = Timestamp.parse("2024-01-02T08:34:05.123456789+05:30")
    back = pickle.loads(pickle.dumps(stamp, protocol))
    assert type(back) is Timestamp and back == stamp
    assert back.nanosecond == 789 and back.utcoffset() == timedelta(hours=5, minutes=30)


def test_timestamp_copy_and_deepcopy_keep_nanoseconds():
    for clone in (copy.copy(T0), copy.deepcopy(T0)):
        assert type(clone) is Timestamp and clone.nanosecond == 789 and clone == T0


def test_event_pickle_and_deepcopy_keep_timestamp_nanoseconds():
    e = event(data={"k": [1, {"x": None}]})
    for clone in (pickle.loads(pickle.dumps(e)), copy.deepcopy(e)):
        assert clone == e and clone.timestamp.nanosecond == 789


def test_timestamp_repr_evaluates_back():
    assert eval(repr(T0), {"Timestamp": Timestamp}) == T0


@pytest.mark.parametrize(
    "text",
    ["2024-01-02T03:04:05.1234567891Z", "2024-01-02T03:04:05", "2024-01-02 03:04:05Z", "2024-02-30T00:00:00Z",
     "2024-01-02T03:04:05+24:00", "2024-01-02T23:59:60Z"],
)
def test_parse_go_time_refuses_what_go_refuses(text):
    with pytest.raises(ValueError):
        parse_go_time(text)


@pytest.mark.parametrize("nanosecond", [-1, 1000])
def test_from_datetime_nanosecond_range(nanosecond):
    with pytest.raises(ValueError, match="nanosecond must be in 0..999"):
        Timestamp.from_datetime(datetime(2024, 1, 1, tzinfo=UTC), nanosecond)


# --- json_equal -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right", "equal"),
    [
        (True, 1, False),
        (False, 0, False),
        (1, 1.0, True),
        (0, -0.0, True),
        (None, {}, False),
        (None, None, True),
        ({}, [], False),
        ("1", 1, False),
        ({"a": True}, {"a": 1}, False),
        ({"a": [1, {"b": 2}]}, {"a": [1.0, {"b": 2.0}]}, True),
        ({"a": 1}, {"a": 1, "b": None}, False),
        ([1, 2], [2, 1], False),
        ([1, 2], [1, 2, 3], False),
        ("é", "é", True),
        ("é", "e\u0301", False),  # no Unicode normalisation
        # Containers of scalars alone, compared whole when their types match item for item.
        ([True, 2], [1, 2], False),
        ([0, 2], [False, 2], False),
        ([1, 2.5, None, "x"], [1.0, 2.5, None, "x"], True),
        ({"a": 1, "b": True}, {"b": True, "a": 1}, True),
        ({"a": 1, "b": True}, {"a": True, "b": 1}, False),
        ([2**53 + 1, 3], [2**53, 3], True),
    ],
)
def test_json_equal(left, right, equal):
    assert json_equal(left, right) is equal
    assert json_equal(right, left) is equal


# --- round-trip property --------------------------------------------------------------

# What Go's encoding/json carries: no lone surrogates, no NaN or infinity, numbers within float64 range
# (ints beyond 2^53 included: they are JSON, and the model keeps them exact).
go_texts = st.text(st.characters(exclude_categories=("Cs",)))
json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**1000), 2**1000)
    | st.floats(allow_nan=False, allow_infinity=False) | go_texts
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(go_texts, inner, max_size=4),
    max_leaves=12,
)
json_objects = st.none() | st.dictionaries(go_texts, json_values, max_size=5)
# Offsets Go can write: whole minutes within +/-23:59.
offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda minutes: timezone(timedelta(minutes=minutes)))
timestamps = st.builds(
    Timestamp.from_datetime,
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets),
    st.integers(0, 999),
)
stored_events = st.builds(
    Event,
    id=go_texts,
    event_type=go_texts,
    actor_id=go_texts,
    version=st.integers(1, INT64_MAX),
    data=json_objects,
    timestamp=timestamps,
    command_id=go_texts,
)
snapshots = st.builds(
    ActorSnapshot,
    actor_id=go_texts,
    version=st.integers(INT64_MIN, INT64_MAX),
    state=json_objects,
    timestamp=timestamps,
)


@given(stored_events)
def test_event_json_round_trip_property(e):
    back = Event.from_dict(json.loads(json.dumps(e.to_dict())))
    assert back == e
    assert json_equal(back.data, e.data)
    assert back.timestamp.nanosecond == e.timestamp.nanosecond
    assert back.timestamp.utcoffset() == e.timestamp.utcoffset()


@given(snapshots)
def test_snapshot_json_round_trip_property(s):
    back = ActorSnapshot.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s
    assert back.timestamp.nanosecond == s.timestamp.nanosecond


@given(timestamps)
def test_timestamp_text_round_trip_property(stamp):
    text = format_go_time(stamp)
    assert parse_go_time(text) == stamp
    assert format_go_time(parse_go_time(text)) == text


def test_offsets_with_seconds_are_accepted_and_written_as_the_same_instant_in_utc():
    from zoneinfo import ZoneInfo

    from aether_conformance import Event

    # Go's time.Time holds the tz database's local mean time (Amsterdam before 1937: +00:19:32);
    # a store reading timestamps back in that zone returns it.  RFC 3339 offsets are whole minutes,
    # so the wire form keeps the instant (in UTC) rather than cutting the offset as Go does.
    saved = Timestamp.from_datetime(datetime(1900, 1, 1, 12, 0, 0, 123456, tzinfo=timezone.utc), 789)
    local = Timestamp.from_datetime(saved.astimezone(ZoneInfo("Europe/Amsterdam")), 789)
    assert local.utcoffset().seconds == 19 * 60 + 32
    event = Event(id="e", event_type="t", actor_id="a", version=1, data=None, timestamp=local)
    assert event.to_dict()["timestamp"] == "1900-01-01T12:00:00.123456789Z"
    assert Event.from_dict(event.to_dict()) == event and event.timestamp == saved
    assert format_go_time(local) == format_go_time(saved)


def test_json_equal_compares_numbers_as_go_float64s():
    from aether_conformance import json_equal

    # Go marshals float64 2.792247672898261e16 as 27922476728982610; Python reads that back as an int.
    assert json_equal({"n": 2.792247672898261e16}, {"n": 27922476728982610})
    assert json_equal(1.0, 1) and json_equal([0.5], [0.5])
    assert not json_equal(2.792247672898261e16, 27922476728982620)  # another float64
    assert not json_equal(1e308, 10**400)  # beyond float64: not the same number
    assert json_equal(2**53, 2**53) and not json_equal(2**53, 2**53 - 1)  # exact up to 2^53
    # Beyond, an int may come back as the float64 it rounds to (what Go and JavaScript hold) ...
    assert json_equal(2**53 + 1, 2**53) and json_equal(2**60 + 1, 2**60) and json_equal(-(2**63) - 1, -(2**63))
    assert json_equal(10**30, 1e30) and json_equal(10**30, int(1e30))
    # ... but not as another float64, as text, or beyond float64's range.
    assert not json_equal(2**60, 2**60 + 2**9) and not json_equal(2**53 + 1, "9007199254740993")
    assert not json_equal(10**400, 10**400 + 1)


class _Tagged(str):
    """A str subclass: copied as deepcopy copies it, not passed through as a plain str is."""


def test_copy_json_copies_every_container_and_keeps_shared_ones_shared():
    from aether_conformance.json_values import copy_json

    shared = [1, 2.5, "s", None, True]
    value = {"a": shared, "b": shared, "c": {"d": [shared, {"e": _Tagged("x")}]}, "f": {1, 2}}
    copied = copy_json(value)
    assert copied == value
    assert copied is not value and copied["c"] is not value["c"] and copied["f"] is not value["f"]
    assert copied["a"] is copied["b"] is copied["c"]["d"][0] and copied["a"] is not shared
    assert type(copied["c"]["d"][1]["e"]) is _Tagged and copied["c"]["d"][1]["e"] is not value["c"]["d"][1]["e"]
    circular: list = []
    circular.append(circular)
    again = copy_json(circular)
    assert again[0] is again and again is not circular
