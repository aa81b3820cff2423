"""How fast check_history verifies a large valid history.

    python bench/bench_history.py [--ops N] [--actors A] [--shuffle] [--seed S]

Builds a valid history of about N operations (default 1,000,000) spread over
A actors (default 50): rounds of 1-4 writers that each read the latest
version, then race to save the next one; one wins, the others get a conflict.
About 1% of winners time out after their write landed and about 1% of losers
never answer.  Rounds of different actors overlap in time, and operations are
indexed in invoke order, as the recorder would.  ``--shuffle`` hands them to
the checker in random order instead (the worst case for its sort).

Prints the checker's time and throughput, and its ratio to a baseline taken
in the same process: one ``sorted()`` of the same operations by invoke time,
the least any real-time check must do.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from operator import attrgetter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aether_conformance.history import (  # noqa: E402
    CONFLICT,
    ERROR,
    LATEST,
    OK,
    SAVE,
    UNKNOWN,
    Operation,
    StoredEvent,
    check_history,
)

US = 1_000  # nanoseconds per microsecond


def build_history(total_ops: int, actors: int, seed: int) -> tuple[list[Operation], dict[str, list[StoredEvent]]]:
    rng = random.Random(seed)
    rows: list[tuple] = []  # (invoke, writer, kind, actor, complete, outcome, version, event_id, current, detail)
    streams: dict[str, list[StoredEvent]] = {}
    per_actor = total_ops // actors
    for a in range(actors):
        actor = f"actor-{a}"
        stream = streams[actor] = []
        latest = 0
        now = a * 137  # offsets make the actors' rounds interleave in time
        made = 0
        while made < per_actor:
            racers = min(rng.randint(1, 4), max(1, (per_actor - made) // 2))
            writers = rng.sample(range(16), racers)
            # Every racer reads the latest version; the reads overlap each other.
            for i, w in enumerate(writers):
                start = now + i * 100 + rng.randrange(100)
                rows.append((start, f"thread-{w}", LATEST, actor, start + US + rng.randrange(500), OK,
                             latest, None, None, ""))
            # Then all save latest+1 at once.  The first racer's save takes
            # effect first; the others, overlapping it, are rejected after it.
            version = latest + 1
            base = now + 2 * US
            for i, w in enumerate(writers):
                start = base + i * 100 + rng.randrange(100)
                event_id = f"{actor}-v{version}-w{w}"
                end = base + 3 * US + i * 100 + rng.randrange(100)
                if i == 0:
                    timed_out = rng.random() < 0.01  # landed, but the writer saw a timeout
                    rows.append((start, f"thread-{w}", SAVE, actor, end, ERROR if timed_out else OK,
                                 version, event_id, None, "TimeoutError: no answer in 5s" if timed_out else ""))
                    stream.append(StoredEvent(version, event_id, f"sha:{event_id}"))
                elif rng.random() < 0.01:  # rejected, but the answer never arrived
                    rows.append((start, f"thread-{w}", SAVE, actor, None, UNKNOWN, version, event_id, None, ""))
                else:
                    rows.append((start, f"thread-{w}", SAVE, actor, end, CONFLICT, version, event_id, version, ""))
            made += 2 * racers
            latest = version
            now = base + 4 * US + racers * 100 + rng.randrange(2 * US)
    rows.sort(key=lambda row: row[0])
    ops = [
        Operation(index=i, writer=writer, kind=kind, actor_id=actor, invoke_ns=invoke, complete_ns=complete,
                  outcome=outcome, version=version, event_id=event_id,
                  digest=None if event_id is None else f"sha:{event_id}", current_version=current, detail=detail)
        for i, (invoke, writer, kind, actor, complete, outcome, version, event_id, current, detail) in enumerate(rows)
    ]
    return ops, streams


def best_of(repeats: int, run) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=1_000_000, help="operations in the history (default 1,000,000)")
    parser.add_argument("--actors", type=int, default=50, help="actors the writers race on (default 50)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each timing; the best counts (default 3)")
    parser.add_argument("--shuffle", action="store_true", help="hand the operations over in random order")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    started = time.perf_counter()
    ops, streams = build_history(args.ops, args.actors, args.seed)
    if args.shuffle:
        random.Random(args.seed).shuffle(ops)
    built = time.perf_counter() - started
    counts = {outcome: 0 for outcome in (OK, CONFLICT, ERROR, UNKNOWN)}
    for op in ops:
        counts[op.outcome] += 1
    print(f"history: {len(ops):,} operations on {len(streams)} actors "
          f"({', '.join(f'{n:,} {k}' for k, n in counts.items())}), "
          f"{sum(map(len, streams.values())):,} stored events, {'shuffled' if args.shuffle else 'in invoke order'}; "
          f"built in {built:.1f} s")

    baseline, _ = best_of(args.repeat, lambda: sorted(ops, key=attrgetter("invoke_ns")))
    checked, result = best_of(args.repeat, lambda: check_history(ops, streams))
    if not result.ok:
        print(f"BUG: the checker rejected a valid history: {result.explain()}", file=sys.stderr)
        return 1
    print(f"baseline sorted() by invoke_ns: {baseline:.3f} s")
    print(f"check_history: {checked:.3f} s, {len(ops) / checked:,.0f} ops/s, "
          f"{checked / baseline:.1f}x the baseline (best of {args.repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
