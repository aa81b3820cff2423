"""The public hypothesis strategies generate values that are valid on the wire."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aether_conformance import ActorSnapshot, Event
from aether_conformance import strategies as aether_st
from aether_conformance.schemas import validate


@settings(max_examples=300)
@given(aether_st.events())
def test_events_are_schema_valid_and_round_trip(event):
    wire = event.to_dict()
    validate("event", wire)
    assert Event.from_dict(wire) == event


@settings(max_examples=200)
@given(aether_st.snapshots(version=aether_st.versions()))
def test_snapshots_are_schema_valid_and_round_trip(snapshot):
    wire = snapshot.to_dict()
    validate("actor-snapshot", wire)
    assert ActorSnapshot.from_dict(wire) == snapshot


@given(aether_st.actor_ids())
def test_actor_ids_are_what_every_store_must_accept(actor_id):
    assert 1 <= len(actor_id) <= 256
    actor_id.encode("utf-8")  # no lone surrogates: Go strings are UTF-8


@given(aether_st.json_objects())
def test_json_objects_survive_go_float64_numbers(value):
    import json

    text = json.dumps(value, allow_nan=False)  # Go cannot encode NaN or infinity either
    numbers = []

    def collect(item):
        if isinstance(item, dict):
            for child in item.values():
                collect(child)
        elif isinstance(item, list):
            for child in item:
                collect(child)
        elif isinstance(item, int) and not isinstance(item, bool):
            numbers.append(item)

    collect(json.loads(text))
    assert all(abs(n) <= 2**53 - 1 for n in numbers)


@given(st.data())
def test_strategies_accept_fixed_parts(data):
    event = data.draw(aether_st.events(actor_id=st.just("fixed"), version=st.just(7)))
    assert (event.actor_id, event.version) == ("fixed", 7)
