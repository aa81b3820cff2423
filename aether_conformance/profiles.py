"""How hard a conformance run pushes: hypothesis examples and concurrent-writer load."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Profile", "PROFILES"]


@dataclass(frozen=True)
class Profile:
    name: str
    # Examples of the rule-based state machine, and steps in each.
    state_machine_examples: int
    state_machine_steps: int
    # Concurrent writers per concurrency test, and the barrier-synchronised rounds
    # in which all of them try to append to the same actor at once.
    writers: int
    rounds: int
    # ES-CONC-002: writer processes, and writer threads in each.
    processes: int
    threads_per_process: int
    process_rounds: int
    # Events in the long stream of one actor: past the read windows real backends page by
    # (100, 1,000, 2,048 and SQL Server's 2,100 parameters, a segment of 4,096, a MongoDB bucket of
    # 5,000, 10,000 and, in thorough, 65,536).
    long_stream_events: int
    # Mebibytes of events in one actor (events of 480 KB): past MongoDB's 16 MiB document, a 32 MiB
    # GROUP_CONCAT and a 64 MiB max_allowed_packet, as far as the profile goes.
    large_actor_mebibytes: int
    # Other actors the end-of-run revisit touches before it checks the actors written first, each
    # with an event of a type of its own: past the actor caches real backends keep (an LRU of 1,000
    # or 10,000 actors) and, in thorough, past 65,536 actors and types (16-bit stream numbers and
    # type codes; the long stream's types add 100,050 more).
    touched_actors: int
    # Handles made one after another, each used and closed before the next: past a client id of one
    # byte (256 handles) and, from default on, a primary's 512 sessions.
    handles: int
    # Seconds the revisit waits for, counted from the planting, when the run was quicker: a cache
    # or key with a time-to-live below this is caught however fast the store and the machine are.
    revisit_age_seconds: float
    # Seconds hypothesis may spend shrinking a failure (its own default is 300): every shrink step
    # replays store calls, so a broken store would otherwise take minutes to report, and a
    # partly shrunk example still reproduces the failure.
    shrink_seconds: int


PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile("quick", 40, 20, writers=4, rounds=60, processes=2, threads_per_process=2, process_rounds=40,
                long_stream_events=2_150, large_actor_mebibytes=17, touched_actors=1_050, handles=300, revisit_age_seconds=2,
                shrink_seconds=15),
        Profile("default", 200, 25, writers=8, rounds=350, processes=3, threads_per_process=3, process_rounds=120,
                long_stream_events=10_050, large_actor_mebibytes=33, touched_actors=10_050, handles=600, revisit_age_seconds=10,
                shrink_seconds=30),
        Profile("thorough", 1000, 40, writers=16, rounds=1500, processes=4, threads_per_process=4, process_rounds=500,
                long_stream_events=100_050, large_actor_mebibytes=65, touched_actors=66_000, handles=1_100, revisit_age_seconds=60,
                shrink_seconds=120),
    )
}
