"""Throughput of the in-memory reference store against two baselines, in one process.

    python bench/bench_store.py [--payload flat|nested|none]

Baselines, measured in the same run so that the ratios do not depend on the machine:

* the floor: a bare dict of lists appended to under a ``threading.Lock``, called as a
  method like ``save_event`` is; no store can beat it by much, and a store far below it
  spends its time on something other than storing;
* eventsourcing's ``POPOAggregateRecorder`` (the ``[bench]`` extra), the in-memory
  recorder of the best-known Python event sourcing library, fed prebuilt
  ``StoredEvent`` records one per ``insert_events`` call, as ``save_event`` takes one
  event per call.

Every figure is the best of five timed runs (``time.perf_counter``).  Events and
records are built before timing starts.  The exit status is 1 when a ratio misses its
target.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOAggregateRecorder

from aether_conformance import Event
from reference_store.memory import InMemoryEventStore

SAVE_EVENTS = 100_000
SAVE_ACTORS = 4
READ_STREAM = 100_000
READ_LAST = 100
REPEATS = 5
# A read takes far less than a timer tick is worth trusting, so each timed run
# repeats it until at least this long has passed.
MIN_RUN_SECONDS = 0.2

TARGETS = {
    "save vs POPO": 3.0,
    "save vs floor": 0.5,
    "read vs POPO": 100.0,
}

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)

PAYLOADS: dict[str, Callable[[int], dict | None]] = {
    # The default, and the figure the targets are for: a typical small event body of
    # flat JSON scalars, as most domain events carry.
    "flat": lambda i: {"amount": i % 1000, "currency": "EUR", "account": f"acct-{i % 97}", "approved": True},
    # Nested objects and arrays, which a store must copy all the way down.
    "nested": lambda i: {"amount": i % 1000, "lines": [{"sku": f"sku-{i % 13}", "qty": 1}], "meta": {"src": "web"}},
    # Go's nil map: nothing a caller could mutate.
    "none": lambda i: None,
}


def build_events(count: int, actors: int, payload: Callable[[int], dict | None]) -> list[Event]:
    """Round-robin over the actors, versions 1, 2, ... per actor."""
    return [
        Event(
            id=f"evt-{i}",
            event_type="Deposited",
            actor_id=f"actor-{i % actors}",
            version=i // actors + 1,
            data=payload(i),
            timestamp=T0,
        )
        for i in range(count)
    ]


def to_stored(event: Event) -> StoredEvent:
    return StoredEvent(
        originator_id=event.actor_id,
        originator_version=event.version,
        topic="bench:Deposited",
        state=json.dumps(event.data).encode(),
    )


class DictOfListsFloor:
    """The least a thread-safe append-only store can do per save."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[str, list[Event]] = {}

    def save_event(self, event: Event) -> None:
        with self._lock:
            stream = self._streams.get(event.actor_id)
            if stream is None:
                stream = self._streams[event.actor_id] = []
            stream.append(event)


def best_seconds(make_run: Callable[[], Callable[[], object]]) -> float:
    """Best of REPEATS; ``make_run`` does the untimed setup and returns the timed part."""
    best = float("inf")
    for _ in range(REPEATS):
        run = make_run()
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def save_rate(save: Callable[[object], object], fresh: Callable[[], object], items: list) -> float:
    def make_run():
        target = fresh()
        bound = save(target)

        def run():
            for item in items:
                bound(item)

        return run

    return len(items) / best_seconds(make_run)


def read_rate(read: Callable[[], object]) -> float:
    loops = 1
    while True:  # calibrate: double the loop count until one run lasts MIN_RUN_SECONDS
        start = time.perf_counter()
        for _ in range(loops):
            read()
        if time.perf_counter() - start >= MIN_RUN_SECONDS:
            break
        loops *= 2

    def make_run():
        def run():
            for _ in range(loops):
                read()

        return run

    return loops / best_seconds(make_run)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payload", choices=PAYLOADS, default="flat", help="event data shape (default: flat)")
    args = parser.parse_args()
    payload = PAYLOADS[args.payload]

    events = build_events(SAVE_EVENTS, SAVE_ACTORS, payload)
    records = [[to_stored(event)] for event in events]

    rates: dict[str, float] = {}
    rates["save: InMemoryEventStore.save_event"] = save_rate(
        lambda store: store.save_event, InMemoryEventStore, events
    )
    rates["save: floor (dict of lists + Lock)"] = save_rate(
        lambda floor: floor.save_event, DictOfListsFloor, events
    )
    rates["save: POPOAggregateRecorder.insert_events"] = save_rate(
        lambda recorder: recorder.insert_events, POPOAggregateRecorder, records
    )

    stream = build_events(READ_STREAM, 1, payload)
    store = InMemoryEventStore()
    recorder = POPOAggregateRecorder()
    for event in stream:
        store.save_event(event)
        recorder.insert_events([to_stored(event)])
    actor, first = stream[0].actor_id, READ_STREAM - READ_LAST + 1
    # Both sides must return the same events, or the comparison means nothing.
    if store.get_events(actor, first) != stream[-READ_LAST:]:
        raise SystemExit("InMemoryEventStore.get_events did not return the last events saved")
    if [r.originator_version for r in recorder.select_events(actor, gt=first - 1)] != list(
        range(first, READ_STREAM + 1)
    ):
        raise SystemExit("POPOAggregateRecorder.select_events did not return the last events saved")
    rates[f"read last {READ_LAST}: InMemoryEventStore.get_events"] = read_rate(
        lambda: store.get_events(actor, first)
    )
    rates[f"read last {READ_LAST}: POPOAggregateRecorder.select_events"] = read_rate(
        lambda: recorder.select_events(actor, gt=first - 1)
    )

    save, floor, popo_save, read, popo_read = rates.values()
    ratios = {
        "save vs POPO": save / popo_save,
        "save vs floor": save / floor,
        "read vs POPO": read / popo_read,
    }

    print(f"payload {args.payload}: {SAVE_EVENTS:,} saves over {SAVE_ACTORS} actors; reads of the last "
          f"{READ_LAST} events of a {READ_STREAM:,}-event actor; best of {REPEATS}; Python {sys.version.split()[0]}")
    print()
    print(f"{'operation':<58} {'ops/s':>14}")
    for name, rate in rates.items():
        print(f"{name:<58} {rate:>14,.0f}")
    print()
    print(f"{'ratio':<16} {'value':>10} {'target':>10}  result")
    missed = False
    for name, value in ratios.items():
        ok = value >= TARGETS[name]
        missed |= not ok
        print(f"{name:<16} {value:>9.2f}x {'>= ' + format(TARGETS[name], 'g') + 'x':>10}  {'PASS' if ok else 'MISS'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
