"""The requirement catalog: every requirement's ID is written here and only here.

The spec (``docs/spec.md``), the suite's ``@pytest.mark.requirement`` markers
and the reports all refer to these IDs.  ``python -m
aether_conformance.requirements`` prints the Markdown block that the spec
embeds; the kit's tests check that the two agree.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import Enum

__all__ = ["SPEC_VERSION", "Level", "Requirement", "REQUIREMENTS", "CAPABILITIES", "DETECTED_CAPABILITIES", "requirement", "markdown_table"]

# The version of the specification this catalog is (semver; docs/spec.md keeps the changelog):
# major when a store that conformed may no longer conform, minor when requirements are added
# that no conforming store can fail (MAY, SHOULD, or behind a new capability), patch for wording.
SPEC_VERSION = "3.2.1"


class Level(str, Enum):
    MUST = "MUST"
    SHOULD = "SHOULD"
    MAY = "MAY"


@dataclass(frozen=True)
class Requirement:
    id: str
    level: Level
    title: str
    rule: str
    rationale: str
    # The capability a store must have (detected or declared) for this requirement to apply.
    capability: str | None = None


# What a store can be asked to do beyond the base interface.  "snapshots" is
# detected from the handle; the others are declared with --capability.
CAPABILITIES: dict[str, str] = {
    "snapshots": (
        "Detected, never declared: the handle has save_snapshot and get_latest_snapshot. "
        "Unlocks the SS-* requirements."
    ),
    "asyncio": (
        "Detected, never declared: the handle's save_event is a coroutine function (async def). "
        "Unlocks the tests that drive it as asyncio applications do: saves fanned out at once with "
        "asyncio.gather (ES-CONC-001) and saves cancelled part-way (ES-SAVE-002); those requirements "
        "apply to every store."
    ),
    "multiprocess": (
        "Declared: handles created by the factory in separate processes share one store "
        "(a database file or a server, not process memory). Unlocks ES-CONC-002."
    ),
    "faults": (
        "Declared by configuring faults (`--faults NAMES` on the CLI, `--aether-faults NAMES` in pytest): "
        "a fault provider (the NATS cluster's, or the store's own through the pytest_aether_fault_provider "
        "hook) injects the named faults while writers run. Unlocks ES-FAULT-001."
    ),
}

# Capabilities the kit learns from the handle; declaring one is a usage error.
DETECTED_CAPABILITIES = ("snapshots", "asyncio")

_M, _S, _Y = Level.MUST, Level.SHOULD, Level.MAY

REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement(
        "ES-SAVE-001", _M, "Saves above the latest version succeed",
        "save_event succeeds for any version greater than the actor's latest version, gaps included "
        "(1 on a new actor, 5 after 2), when no other writer intervenes; events sharing a command id are "
        "each stored (one command may emit several events).",
        "The Go seed checks only `version <= current`; writers that skip versions must not be refused.",
    ),
    Requirement(
        "ES-SAVE-002", _M, "Saves at or below the latest version conflict",
        "save_event raises VersionConflictError when the event's version is less than or equal to the "
        "actor's latest version; on a new actor (latest 0), versions 0 and below conflict.",
        "This is the optimistic-concurrency check: a writer that read a stale latest version must learn so. "
        "A command id makes no retry idempotent: a save of a stored version conflicts whatever its command id.",
    ),
    Requirement(
        "ES-SAVE-003", _M, "A rejected save leaves no trace",
        "After save_event raises VersionConflictError, the actor's events and latest version are "
        "exactly what they were before the call.",
        "Retry loops assume a rejected attempt changed nothing; a half-written event would be read as history.",
    ),
    Requirement(
        "ES-SAVE-004", _M, "Versions span the whole int64 range",
        "Versions up to 2^63-1 are accepted and read back exactly; the conflict check compares them "
        "as integers, without loss of precision.",
        "Go's Event.Version is an int64; a store that keeps versions as float64 or int32 corrupts them.",
    ),
    Requirement(
        "ES-ERR-001", _M, "The conflict error carries its facts",
        "The raised error is VersionConflictError (or a subclass) whose actor_id is the event's actor id, "
        "attempted_version the event's version, and current_version the actor's latest version at the "
        "moment of rejection.",
        "Clients decide how to retry from these fields; the seed's VersionConflictError has the same three.",
    ),
    Requirement(
        "ES-ERR-002", _M, "The conflict error's text is the seed's",
        'str(error) equals Go\'s `version conflict: actor "A" has version 3, cannot save version 2`, '
        "with the actor id quoted as Go's %q quotes it.",
        "Logs and cross-language tooling match on the message; Go and Python stores must write the same.",
    ),
    Requirement(
        "ES-READ-001", _M, "Reads are inclusive and ascending",
        "get_events(actor_id, from_version) returns exactly the actor's events whose version is >= "
        "from_version, in ascending version order (from_version <= 0 returns them all).",
        "Replay from a snapshot at version v reads from v+1; an exclusive or unordered read skips or "
        "misapplies an event.",
    ),
    Requirement(
        "ES-READ-002", _M, "No events is an empty list",
        "get_events returns a list, empty (never None) when no event matches, e.g. for an unknown "
        "actor or a from_version above the latest.",
        "The seed returns an empty slice; callers iterate the result without a None check.",
    ),
    Requirement(
        "ES-READ-003", _M, "Events round-trip",
        "Every event read equals the event saved: id, event_type, actor_id, command_id, version, data "
        "(deep JSON equality, null and {} distinct, nested values, Unicode) and timestamp (the same "
        "instant, to the microsecond at least).",
        "An event store is a record of fact; anything it changes is lost history.",
    ),
    Requirement(
        "ES-READ-004", _S, "Timestamps keep nanoseconds and offset",
        "Timestamps read back keep their nanoseconds and their UTC offset.",
        "Go's time.Time has nanosecond precision and a location, and the seed keeps both; Python's "
        "datetime stops at microseconds, so this is not a MUST.",
    ),
    Requirement(
        "ES-READ-005", _S, "Stored events are isolated from callers",
        "Mutating an event's data after saving it, or mutating the data of an event returned by "
        "get_events, does not change what the store returns later.",
        "The seed's in-memory store shares pointers with callers, so isolation cannot be a MUST; but "
        "aliasing bugs are a classic source of corrupted history.",
    ),
    Requirement(
        "ES-LATEST-001", _M, "An unknown actor is at version 0",
        "get_latest_version returns the int 0 for an actor with no events.",
        "Writers compute the next version as latest+1; 0 makes the first event version 1.",
    ),
    Requirement(
        "ES-LATEST-002", _M, "The latest version is the highest saved",
        "After saves, get_latest_version returns the highest version saved for the actor, gaps included.",
        "The conflict check and every writer's next version depend on it.",
    ),
    Requirement(
        "ES-ACTOR-001", _M, "Actors are independent",
        "Saves to one actor change neither another actor's events, latest version, nor conflict checks.",
        "A shared counter across actors serialises the whole store and produces spurious conflicts.",
    ),
    Requirement(
        "ES-ACTOR-002", _M, "Actor ids are exact strings",
        "Any non-empty actor id of up to 256 Unicode scalar values (whitespace, punctuation, '.', '*', "
        "'>' included) is accepted and read back exactly; ids that differ in case, Unicode "
        "normalisation, surrounding whitespace, a suffix, or characters after the 64th, 128th or 255th "
        "or after a NUL are different actors, as are ids that a sanitiser of keys, subjects or paths "
        "('.', '_', ' ', '/'), a prefix scan, an unescaped SQL LIKE pattern, a hash of a long id or a "
        "charset that cannot hold the characters would take for one another.",
        "The seed keys a Go map by the id string; stores that normalise, lowercase, trim or use ids as "
        "wildcard patterns merge or leak streams.",
    ),
    Requirement(
        "ES-ACTOR-003", _Y, "Empty or over-long actor ids may be refused",
        "A store may refuse the empty actor id, or ids over 256 characters, by raising ValueError and "
        "storing nothing; if it accepts them they behave as any other id.",
        "The seed accepts them; some backends (subject-based, key-length-limited) cannot.",
    ),
    Requirement(
        "ES-ID-001", _Y, "Reused event ids may be refused",
        "A store may refuse an event whose id it already stores by raising ValueError and storing "
        "nothing; if it accepts it, the event is stored like any other.",
        "The seed does not index event ids; deduplicating backends may use them as idempotency keys.",
    ),
    Requirement(
        "ES-ID-002", _Y, "Empty event ids may be refused",
        "A store may refuse an event whose id is the empty string by raising ValueError and storing "
        "nothing; if it accepts it, the empty id is read back exactly (never replaced by a generated id).",
        "The seed stores whatever id it is given; some backends use the event id as a key.",
    ),
    Requirement(
        "ES-LIMIT-001", _Y, "Events beyond documented limits may be refused",
        "A store may refuse an event or snapshot whose compact JSON encoding exceeds a size limit it "
        "documents (at least 512 KiB), whose id, event_type or command_id exceeds a length limit it "
        "documents (at least 1,024 characters), or whose data or state nests deeper than a limit it "
        "documents (at least 64 levels), by raising ValueError and storing nothing. Below those floors "
        "every value round-trips; truncating, nulling or dropping anything is an ES-READ-003 failure.",
        "Real backends have payload, column and nesting limits; the floors keep them above what "
        "applications commonly write (NATS's default max_payload is 1 MiB, MySQL's JSON depth is 100).",
    ),
    Requirement(
        "ES-REFUSE-001", _M, "A refusal is a ValueError that stores nothing",
        "Where a MAY requirement lets a store refuse an input (ES-ACTOR-003, ES-ID-001, ES-ID-002, "
        "ES-LIMIT-001, SS-SNAP-005), the call raises ValueError (or a subclass), and afterwards the store "
        "holds exactly what it held before: no event, no snapshot, no change of the latest version.",
        "Callers tell a refusal from a bug by its type; a refusal that stored half of the input, or "
        "stored it all and then raised, corrupts history while claiming it did not.",
    ),
    Requirement(
        "ES-HANDLE-001", _M, "Handles of one factory share one store",
        "A save acknowledged through one handle is visible to the next read, and to the next conflict "
        "check, through every other handle of the same factory.",
        "Several clients of one database are the normal deployment; a per-handle cache that hides "
        "another client's write breaks optimistic concurrency.",
    ),
    Requirement(
        "ES-CONC-001", _M, "Concurrent saves are atomic check-and-append",
        "Concurrent writers on one actor (threads, or asyncio tasks for async stores, sharing one "
        "handle or using several) observe a linearizable store: at most one winner per version, every acknowledged "
        "save read back exactly once with its content, no rejected save visible, conflict "
        "current_versions consistent with real time, latest versions never going backwards. This holds "
        "across several actors at once and with writers that skip versions, and for reads made during "
        "the writes: no read shows a latest version without its event, an event that later disappears, "
        "or misses an event below the highest version it shows (none is ever added there later).",
        "Optimistic concurrency is only as good as the atomicity of the check and the append.",
    ),
    Requirement(
        "ES-CONC-002", _M, "Concurrent saves are atomic across processes",
        "ES-CONC-001 holds when the writers are separate processes, each with its own handle.",
        "A lock or a version cache inside one process protects nothing against another process.",
        capability="multiprocess",
    ),
    Requirement(
        "ES-FAULT-001", _M, "Saves survive injected faults",
        "While the configured faults are injected on a seeded schedule (each named kind at least once, "
        "recovery awaited between faults), concurrent writers still observe ES-CONC-001: every "
        "acknowledged save is read back exactly once, no version is won twice, no rejected save appears, "
        "reads are linearizable. A call that straddles a fault may fail or time out (an unknown "
        "outcome); such a save is maybe-applied and must be read back exactly once or never. A call "
        "that fails while no fault is in place, or a store that does not serve again after the last "
        "recovery, fails the requirement. A fault provider's preconditions (for NATS: every stream "
        "replicated on every node) must hold.",
        "Replicated engines lose acknowledged writes in their clients (retries, unknown outcomes, reads "
        "from lagging replicas) more often than in their servers; only faults exercise those paths. "
        "The result is evidence (no anomaly found in N faults), not proof.",
        capability="faults",
    ),
    Requirement(
        "SS-SNAP-001", _M, "No snapshot is None",
        "get_latest_snapshot returns None for an actor that has no snapshot.",
        "The seed returns nil; callers then replay from version 1.",
        capability="snapshots",
    ),
    Requirement(
        "SS-SNAP-002", _M, "The highest snapshot version wins",
        "get_latest_snapshot returns a snapshot with the highest version saved for the actor, whatever "
        "the order in which snapshots were saved, concurrent saves included; reads made during concurrent "
        "saves never go back to a lower version.",
        "Snapshots may be written late or out of order; replay must start from the newest state.",
        capability="snapshots",
    ),
    Requirement(
        "SS-SNAP-003", _M, "Snapshots round-trip",
        "The snapshot read equals the snapshot saved: actor_id, version, state (deep JSON equality, "
        "null included) and timestamp (the same instant, to the microsecond at least).",
        "A snapshot that changes on the way through is a corrupted state.",
        capability="snapshots",
    ),
    Requirement(
        "SS-SNAP-004", _M, "Snapshots are per actor and apart from events",
        "Snapshots of one actor are invisible to another actor, and saving a snapshot changes neither "
        "events nor latest versions.",
        "A snapshot is a cache of state, not part of the event stream.",
        capability="snapshots",
    ),
    Requirement(
        "SS-SNAP-005", _Y, "Snapshots ahead of the events may be refused",
        "A store may refuse a snapshot whose version is above the actor's latest event version by "
        "raising ValueError and storing nothing; the seed accepts such snapshots.",
        "A snapshot of state that no event produced is suspicious, but the seed does not check.",
        capability="snapshots",
    ),
)

_BY_ID = {req.id: req for req in REQUIREMENTS}
assert len(_BY_ID) == len(REQUIREMENTS), "duplicate requirement id in the catalog"


def requirement(req_id: str) -> Requirement:
    try:
        return _BY_ID[req_id]
    except KeyError:
        raise KeyError(f"unknown requirement id {req_id!r}") from None


def markdown_table() -> str:
    """The requirements table that docs/spec.md embeds."""
    lines = ["| ID | Level | Requirement | Applies when |", "|---|---|---|---|"]
    for req in REQUIREMENTS:
        rule = req.rule.replace("|", "\\|")
        lines.append(f"| {req.id} | {req.level.value} | **{req.title}.** {rule} | {req.capability or 'always'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown_table())
