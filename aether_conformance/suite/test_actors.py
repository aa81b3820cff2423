"""ES-ACTOR-001 and ES-ACTOR-002: actors are independent exact strings."""

from __future__ import annotations

import pytest

from ..errors import VersionConflictError
from .support import (blame, diff_event, diff_snapshot, exact_id, highest_stored_version, new_event, new_snapshot, q,
                      read_back, save_all_ok, save_conflict, save_ok, versions, violated)


@pytest.mark.requirement("ES-ACTOR-001")
def test_actors_do_not_share_versions(store, fresh_actor):
    first, second = fresh_actor("first"), fresh_actor("second")
    for version in (1, 2, 3, 4, 5):
        save_ok("ES-ACTOR-001", store, new_event(first, version))
    save_ok("ES-ACTOR-001", store, new_event(second, 1), context=f" (actor {q(first)} is at version 5)")
    save_ok("ES-ACTOR-001", store, new_event(second, 2))
    save_conflict("ES-ACTOR-001", store, new_event(second, 2), latest=2)
    for actor, expected in ((first, [1, 2, 3, 4, 5]), (second, [1, 2])):
        got = versions(store.get_events(actor, 0))
        latest = store.get_latest_version(actor)
        if got != expected or latest != expected[-1]:
            violated(
                "ES-ACTOR-001",
                f"saved versions 1-5 to {q(first)} and 1-2 to {q(second)}; {q(actor)} has versions {got} "
                f"and latest {latest}; expected {expected} and {expected[-1]}",
            )


@pytest.mark.requirement("ES-ACTOR-001")
def test_a_conflict_on_one_actor_does_not_touch_another(store, fresh_actor):
    first, second = fresh_actor("first"), fresh_actor("second")
    save_ok("ES-ACTOR-001", store, new_event(first, 1))
    save_ok("ES-ACTOR-001", store, new_event(second, 1))
    error = save_conflict("ES-ACTOR-001", store, new_event(first, 1), latest=1)
    if error.actor_id != first:
        violated("ES-ACTOR-001", f"a conflict on {q(first)} named actor {q(error.actor_id)}")
    if store.get_latest_version(second) != 1:
        violated("ES-ACTOR-001", f"a rejected save to {q(first)} changed the latest version of {q(second)}")


# Pairs of ids built to collide under lossy keyings are in test_boundaries.py
# (aether_conformance.boundaries.COLLIDING_ACTOR_IDS).


EXACT_IDS = {
    "spaces": "order 17 for  Zoë",
    "dots": "com.example.orders.17",
    "wildcards": "*.>.*",
    "only-star": "*",
    "only-gt": ">",
    "slashes-and-colons": "tenant/7:order#3?x=1&y=%20",
    "quotes": "it's \"quoted\" \\ back",
    "control": "tab\tnewline\ncr\rnul\x00",
    "emoji": "🦀🎉👩‍👩‍👧",
    "cjk": "订单-注文-주문",
    "rtl": "طلب-הזמנה",
    # Glob and regular-expression syntax: a cache invalidated by an unescaped pattern built from
    # the id (Redis SCAN MATCH, fnmatch, a regex) keeps serving the reads it cached.
    "glob": "order[1]?*{a,b}",
    # First characters other layers give a meaning: '$' (EventStoreDB's system streams), '}'
    # (a Redis Cluster hash tag left empty), '/' (an absolute path that os.path.join keeps).
    "dollar-first": "$orders-",
    "brace-first": "}tag{",
    "absolute-path": "/etc/aether/streams/",
    "regex": "a.b+c(d)|e$^",
    "max-length": "x" * 256,
    "max-length-wide": "🦀" * 256,
}


@pytest.mark.requirement("ES-ACTOR-002")
@pytest.mark.parametrize("kind", sorted(EXACT_IDS))
def test_any_id_is_accepted_and_kept_exactly(store, fresh_actor, kind):
    actor = exact_id(EXACT_IDS[kind], fresh_actor(""))
    event = new_event(actor, 1)
    save_ok("ES-ACTOR-002", store, event, context=f" (an id with {kind})")
    got = read_back(store, actor, 0, [1], context=f" (an id with {kind})")
    problems = diff_event(event, got[0])
    if any(problem.startswith("actor_id:") for problem in problems):
        violated("ES-ACTOR-002", f"saved one event to actor {q(actor)} ({kind}); get_events returned it with actor id "
                                 f"{q(got[0].actor_id)}")
    if problems:  # the id survived, something else did not
        violated("ES-READ-003", f"the event saved to actor {q(actor)} ({kind}) came back changed: " + "; ".join(problems))
    if store.get_latest_version(actor) != 1:
        violated("ES-ACTOR-002", f"saved version 1 to actor {q(actor)} ({kind}); latest is not 1")
    save_conflict("ES-ACTOR-002", store, new_event(actor, 1), latest=1)
    # Read, write, read: what was read first must not be served again.
    save_ok("ES-ACTOR-002", store, new_event(actor, 2), context=f" (an id with {kind}, after reading version 1)")
    read_back(store, actor, 0, [1, 2], context=f" (an id with {kind}, read, then version 2 saved)")
    if store.get_latest_version(actor) != 2:
        violated("ES-ACTOR-002", f"read actor {q(actor)} ({kind}) at version 1, then saved version 2; latest is not 2")


# Whole ids (no token can be added: the layer that breaks them looks at the whole id) that are
# ordinary ids to a conforming store: names a file system reserves (a file or directory per actor
# opens a device, or '.' and '..'), names of JavaScript's Object.prototype (a plain object used as
# an index), and blank ids (a validator that takes blank for empty; only the empty id may be refused).
WHOLE_IDS = {
    "CON": "a Windows device name", "nul": "a Windows device name", "AUX": "a Windows device name",
    "PRN": "a Windows device name", "COM3": "a Windows device name", "LPT1": "a Windows device name",
    "nul.orders": "a Windows device name with an extension", "con.txt": "a Windows device name with an extension",
    ".": "a directory name", "..": "a directory name", "~": "a home directory",
    "constructor": "an Object.prototype member", "__proto__": "an Object.prototype member",
    "toString": "an Object.prototype member", "hasOwnProperty": "an Object.prototype member",
    " ": "a blank id", "\t": "a blank id", "\u3000": "a blank id (an ideographic space)",
}


def _write_above_what_is_stored(store, actor: str, why: str):
    """Save one event to ``actor``, above whatever earlier runs left there (no token can make it
    fresh); a conflict means another run got there first, so try again above that."""
    for _ in range(5):
        event = new_event(actor, highest_stored_version(store, actor) + 1)
        try:
            store.save_event(event)
            return event
        except VersionConflictError:
            continue
    violated("ES-ACTOR-002", f"five saves to actor {q(actor)} ({why}), each above the highest version its events "
                             "showed, all conflicted")


@pytest.mark.requirement("ES-ACTOR-002")
@pytest.mark.parametrize("name", list(WHOLE_IDS))
def test_whole_ids_other_layers_reserve_are_ordinary_ids(store, name):
    why = WHOLE_IDS[name]
    event = _write_above_what_is_stored(store, name, why)
    latest = store.get_latest_version(name)
    got = store.get_events(name, event.version)
    if latest < event.version or not got or got[0].id != event.id or got[0].actor_id != name:
        violated("ES-ACTOR-002", f"saved version {event.version} to actor {q(name)} ({why}); latest is then {latest} "
                                 f"and get_events({q(name)}, {event.version}) returned "
                                 f"{[(e.id, e.actor_id, e.version) for e in got]}")


@pytest.mark.requirement("SS-SNAP-003")
@pytest.mark.parametrize("name", list(WHOLE_IDS))
def test_whole_ids_other_layers_reserve_keep_their_snapshots(snapshot_store, name):
    why = WHOLE_IDS[name]
    event = _write_above_what_is_stored(snapshot_store, name, why)
    snapshot = new_snapshot(name, event.version, state={"whole id": name})
    with blame("SS-SNAP-003"):
        snapshot_store.save_snapshot(snapshot)
        got = snapshot_store.get_latest_snapshot(name)
    if got is None or diff_snapshot(snapshot, got):
        violated("SS-SNAP-003", f"saved a snapshot at version {event.version} of {q(name)} ({why}); get_latest_snapshot "
                                f"returned {'None' if got is None else f'version {got.version} of {q(got.actor_id)}'}")


# Whole ids that a layer looking at the whole id takes for one another: Python's int() reads
# Arabic-Indic digits, base64 names differ only in case on a case-insensitive file system, and a
# key of 32 bits of a hash (hex prefixes of SHA-1, MD5 and SHA-256, CRC-32, FNV-1a, murmur2) joins pairs
# that collide (found by a birthday search over order-N; tests/test_boundaries.py checks each collision).
WHOLE_ID_PAIRS = {
    "unicode-digits": ("\u0661\u0662\u0663", "123", "int() of the id as a numeric fast path"),
    "base64-case": ("aaa", "aaG", "base64 file names (YWFh, YWFH) on a case-insensitive file system"),
    "sha1-prefix-32": ("order-57680", "order-98687", "a key of the first 8 hex digits of SHA-1"),
    "md5-prefix-32": ("order-44598", "order-61101", "a key of the first 8 hex digits of MD5"),
    "sha256-prefix-32": ("order-19537", "order-32133", "a key of the first 8 hex digits of SHA-256"),
    "fnv1a-32": ("order-229599", "order-432382", "a key of the 32-bit FNV-1a hash"),
    "murmur2-32": ("order-80130", "order-137953", "a key of Kafka's murmur2 hash (its default partitioner's)"),
    # 68 characters, one prefix of 54: names over 63 characters cut the Kubernetes/Helm way, to the
    # first 54, '-' and the first 8 hex digits of the whole name's SHA-256.
    "name-cut-to-63": ("tenant-eu-west-1.orders.customer-account-2024-tenant-e-line-00010985",
                       "tenant-eu-west-1.orders.customer-account-2024-tenant-e-line-00142543",
                       "names over 63 characters cut to their first 54, '-' and 8 hex digits of SHA-256"),
}


@pytest.mark.requirement("ES-ACTOR-002", "ES-ERR-001")
@pytest.mark.parametrize("kind", sorted(WHOLE_ID_PAIRS))
def test_whole_ids_a_layer_confuses_stay_apart(store, kind):
    left, right, why = WHOLE_ID_PAIRS[kind]
    written = {actor: _write_above_what_is_stored(store, actor, why) for actor in (left, right)}
    if written[right].version == written[left].version:  # at other versions, so a mixed-up latest shows
        written[right] = _write_above_what_is_stored(store, right, why)
    for actor, other in ((left, right), (right, left)):
        got = store.get_events(actor, 0)
        strays = [(e.id, e.actor_id, e.version) for e in got if e.actor_id != actor or e.id == written[other].id]
        if strays or written[actor].id not in {e.id for e in got}:
            violated("ES-ACTOR-002", f"saved v{written[actor].version} to {q(actor)} and v{written[other].version} to "
                                     f"{q(other)} ({kind}: {why}); get_events({q(actor)}, 0) returned "
                                     f"{'events of ' + q(other) + ': ' + str(strays) if strays else 'without its own event'}")
        latest = store.get_latest_version(actor)
        if latest < written[actor].version:
            violated("ES-ACTOR-002", f"saved v{written[actor].version} to {q(actor)} ({kind}: {why}); latest is {latest}")
    # The conflict's current version too: a map of latest versions under the same lossy key gives
    # one actor's conflicts the other's version, however right the check itself is.
    for actor in (left, right):
        version = max(e.version for e in store.get_events(actor, 0))
        error = save_conflict("ES-ACTOR-002", store, new_event(actor, version), latest=version)
        if (error.actor_id, error.current_version) != (actor, version):
            violated("ES-ERR-001", f"saving version {version} again to {q(actor)} (its latest; {kind}: {why}) raised "
                                   f"a conflict naming actor {q(error.actor_id)} at version {error.current_version}")


@pytest.mark.presupposes("ES-ACTOR-002")  # the same ids, kept apart for events first
@pytest.mark.requirement("SS-SNAP-004")
@pytest.mark.parametrize("kind", sorted(WHOLE_ID_PAIRS))
def test_whole_ids_a_layer_confuses_keep_their_own_snapshots(snapshot_store, kind):
    left, right, why = WHOLE_ID_PAIRS[kind]
    saved = {}
    for actor in (left, right):
        event = _write_above_what_is_stored(snapshot_store, actor, why)
        saved[actor] = new_snapshot(actor, event.version, state={"owner": actor, "of": event.id})
        snapshot_store.save_snapshot(saved[actor])
    for actor, other in ((left, right), (right, left)):
        got = snapshot_store.get_latest_snapshot(actor)
        if got is None or diff_snapshot(saved[actor], got):
            shown = "None" if got is None else f"version {got.version} of {q(got.actor_id)} with state {got.state}"
            violated("SS-SNAP-004", f"saved a snapshot of {q(actor)} at version {saved[actor].version}, then one of "
                                    f"{q(other)} ({kind}: {why}); get_latest_snapshot({q(actor)}) returned {shown}")


@pytest.mark.requirement("ES-READ-001", "ES-HANDLE-001")
def test_an_actor_of_a_thousand_events_is_read_whole_beside_actors_below_it(store, other_store, fresh_actor):
    # Keys <actor>/<version> listed by prefix with '/' as the delimiter (S3's ListObjectsV2): the
    # folders of actors whose ids continue the id with '/' count towards a page of 1,000 keys, and a
    # loop that stops at the first page with fewer than 1,000 objects misses the rest.
    actor = fresh_actor()
    below = [f"{actor}{tail}" for tail in ("/-eu", "/.old", "/ a", "/0", "/~")]
    for other in below:
        save_ok("ES-READ-001", store, new_event(other, 1))
    count = 1_100
    save_all_ok("ES-READ-001", store, [new_event(actor, version) for version in range(1, count + 1)])
    # The tail first: a cache of long streams filled by whatever the first read returned serves a
    # later read of everything from it.
    for start in (900, 1, 0):
        got = versions(store.get_events(actor, start))
        if got != list(range(max(start, 1), count + 1)):
            violated("ES-READ-001", f"{q(actor)} holds versions 1 to {count:,}, and actors {', '.join(q(b) for b in below)} "
                                    f"one event each; get_events from {start} returned {len(got):,} events "
                                    f"({got[:3]}...{got[-3:]})")
    # One more through another handle: a handle that caches the long streams it read, and updates
    # them with its own saves only, misses it.
    save_ok("ES-HANDLE-001", other_store, new_event(actor, count + 1))
    got = versions(store.get_events(actor, 0))
    if got != list(range(1, count + 2)):
        violated("ES-HANDLE-001", f"{store.name} read {q(actor)}'s {count:,} events; {other_store.name} then saved version "
                                  f"{count + 1}, and {store.name} read {len(got):,} events ({got[:3]}...{got[-3:]})")
