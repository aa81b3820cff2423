"""Direct unit tests of the SQLite reference store (reference_store/sqlite.py).

Every test uses its own database file under ``tmp_path``.  Concurrency is
exercised for real: threads on separate handles (and on one handle), processes
started with the ``spawn`` context, and a writer killed with SIGKILL.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aether_conformance import ActorSnapshot, Event, Timestamp, VersionConflictError, json_equal
from aether_conformance.limits import MAX_NESTING_DEPTH
from aether_conformance.model import INT64_MAX, INT64_MIN
from aether_conformance.timestamps import format_go_time
from reference_store.sqlite import PATH_ENV, SQLiteEventStore, UnsafeDatabasePathError, default_path, shared_store

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
# Long enough for a slow shared machine; only ever reached when something hangs.
LIVENESS_TIMEOUT = 120


def event(actor: str, version: int, data: dict | None = None, *, event_id: str | None = None) -> Event:
    return Event(
        id=event_id if event_id is not None else f"{actor}-{version}",
        event_type="Deposited",
        actor_id=actor,
        version=version,
        data={"amount": version} if data is None else data,
        timestamp=T0,
    )


def snapshot(actor: str, version: int, state: dict | None) -> ActorSnapshot:
    return ActorSnapshot(actor_id=actor, version=version, state=state, timestamp=T0)


def versions(store: SQLiteEventStore, actor: str, from_version: int = 0) -> list[int]:
    return [e.version for e in store.get_events(actor, from_version)]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "events.sqlite3"


@pytest.fixture
def store(db_path: Path):
    with SQLiteEventStore(db_path) as handle:
        yield handle


def raw_rows(db_path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# --- saving and conflicts ------------------------------------------------------------------


def test_unknown_actor_is_at_version_zero_with_no_events(store):
    assert store.get_latest_version("nobody") == 0
    assert store.get_events("nobody", 0) == []
    assert store.get_events("nobody", 1) == []


def test_saves_above_latest_succeed_with_gaps(store):
    store.save_event(event("a", 1))
    store.save_event(event("a", 2))
    store.save_event(event("a", 5))
    assert store.get_latest_version("a") == 5
    assert versions(store, "a") == [1, 2, 5]


@pytest.mark.parametrize("attempted", [0, -1, INT64_MIN])
def test_versions_at_or_below_zero_conflict_on_a_new_actor(store, attempted):
    with pytest.raises(VersionConflictError) as caught:
        store.save_event(event("new", attempted))
    assert (caught.value.actor_id, caught.value.attempted_version, caught.value.current_version) == (
        "new",
        attempted,
        0,
    )
    assert store.get_events("new", INT64_MIN) == []
    assert store.get_latest_version("new") == 0


@pytest.mark.parametrize("attempted", [5, 4, 1])
def test_versions_at_or_below_latest_conflict_and_leave_no_trace(store, attempted):
    store.save_event(event("a", 2))
    store.save_event(event("a", 5))
    before = store.get_events("a", 0)
    with pytest.raises(VersionConflictError) as caught:
        store.save_event(event("a", attempted, {"rejected": True}, event_id="rejected"))
    assert caught.value.current_version == 5
    assert caught.value.attempted_version == attempted
    assert str(caught.value) == f'version conflict: actor "a" has version 5, cannot save version {attempted}'
    assert store.get_events("a", 0) == before
    assert store.get_latest_version("a") == 5


def test_int64_extremes_are_stored_and_compared_exactly(store, db_path):
    store.save_event(event("big", INT64_MAX - 1))
    store.save_event(event("big", INT64_MAX))
    assert store.get_latest_version("big") == INT64_MAX
    assert versions(store, "big", INT64_MAX) == [INT64_MAX]
    with pytest.raises(VersionConflictError) as caught:
        store.save_event(event("big", INT64_MAX))
    assert caught.value.current_version == INT64_MAX
    # Stored as SQLite integers, not text or real, so ordering and MAX are numeric.
    assert raw_rows(db_path, "SELECT DISTINCT typeof(version) FROM events") == [("integer",)]


def test_actors_are_independent(store):
    store.save_event(event("a", 3))
    store.save_event(event("b", 1))
    assert store.get_latest_version("a") == 3
    assert store.get_latest_version("b") == 1
    assert versions(store, "b") == [1]


def test_a_duplicate_that_slips_past_the_check_becomes_a_conflict(db_path):
    """The primary key is the second line of defence: fake a check that lost a race."""

    class BlindCheck(SQLiteEventStore):
        def _latest_for_check(self, conn, actor_id):
            return 0

    with SQLiteEventStore(db_path) as honest:
        for version in (1, 2, 3):
            honest.save_event(event("a", version))
        with BlindCheck(db_path) as blind:
            with pytest.raises(VersionConflictError) as caught:
                blind.save_event(event("a", 2, {"intruder": True}, event_id="intruder"))
        assert (caught.value.attempted_version, caught.value.current_version) == (2, 3)
        assert [e.id for e in honest.get_events("a", 0)] == ["a-1", "a-2", "a-3"]


# --- reading ---------------------------------------------------------------------------------


def test_get_events_is_inclusive_and_ascending(store):
    for version in (1, 2, 4, 7):
        store.save_event(event("a", version))
    assert versions(store, "a", 2) == [2, 4, 7]
    assert versions(store, "a", 3) == [4, 7]
    assert versions(store, "a", 7) == [7]
    assert versions(store, "a", -5) == [1, 2, 4, 7]
    assert store.get_events("a", 8) == []


def test_from_version_outside_int64_is_answered_not_overflowed(store):
    store.save_event(event("a", 1))
    assert versions(store, "a", -(2**70)) == [1]
    assert store.get_events("a", 2**70) == []


@pytest.mark.parametrize("bad", [1.0, "1", None, True])
def test_from_version_must_be_an_int(store, bad):
    with pytest.raises(TypeError, match="from_version"):
        store.get_events("a", bad)


def test_actor_id_must_be_a_str_on_reads(store):
    with pytest.raises(TypeError, match="actor_id"):
        store.get_latest_version(b"a")
    with pytest.raises(TypeError, match="actor_id"):
        store.get_events(1, 0)


# --- round-trips -----------------------------------------------------------------------------


ROUND_TRIP_DATA = [
    None,
    {},
    {"nested": {"list": [1, 2.5, "x", None, True, False, {"deep": []}]}},
    {"floats": [0.1, -0.0, 1e308, 5e-324, 1.0, 123456789.123456789], "ints": [0, -1, 2**53 + 1, 2**70]},
    {"unicode": "héllo wörld 🚀 \u0000 \u2028 \ud7ff \U0010ffff", "日本": "東京", "": "empty key"},
]


@pytest.mark.parametrize("data", ROUND_TRIP_DATA, ids=["null", "empty", "nested", "numbers", "unicode"])
def test_data_round_trips_exactly(store, data):
    store.save_event(Event(id="e", event_type="T", actor_id="a", version=1, data=data, timestamp=T0))
    [read] = store.get_events("a", 0)
    assert json_equal(read.data, data)
    # json_equal treats 1 and 1.0 alike; the store keeps them apart too.
    assert read.data == data and repr(read.data) == repr(data)


def test_null_and_empty_data_are_distinct_in_the_file(store, db_path):
    store.save_event(Event(id="e", event_type="T", actor_id="a", version=1, data=None, timestamp=T0))
    store.save_event(event("a", 2, {}))
    assert raw_rows(db_path, "SELECT data FROM events ORDER BY version") == [("null",), ("{}",)]
    assert [e.data for e in store.get_events("a", 0)] == [None, {}]


def test_every_field_round_trips_with_nanoseconds_and_offset(store):
    stamp = Timestamp.parse("2023-11-05T01:30:00.123456789-07:00")
    saved = Event(
        id="évt-1", event_type="Ordered\tType", actor_id="a", version=9,
        data={"k": "v"}, timestamp=stamp, command_id="cmd-42",
    )
    store.save_event(saved)
    [read] = store.get_events("a", 0)
    assert read == saved
    assert read.timestamp.nanosecond == 789
    assert read.timestamp.utcoffset() == timedelta(hours=-7)
    assert format_go_time(read.timestamp) == "2023-11-05T01:30:00.123456789-07:00"


def test_plain_datetimes_keep_their_microseconds(store):
    stamp = datetime(2020, 2, 29, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=5, minutes=45)))
    store.save_event(Event(id="e", event_type="T", actor_id="a", version=1, data={}, timestamp=stamp))
    [read] = store.get_events("a", 0)
    assert read.timestamp == stamp and read.timestamp.utcoffset() == stamp.utcoffset()


def test_stored_events_do_not_alias_caller_data(store):
    data = {"items": [1]}
    store.save_event(event("a", 1, data))
    data["items"].append(2)
    store.get_events("a", 0)[0].data["items"].append(3)
    assert store.get_events("a", 0)[0].data == {"items": [1]}


ACTOR_IDS = [
    "a\x00b", "a", "a\x00", "\x00", " a", "a ", "A", "a.b", "a.*", "a.>", "tab\tnew\nline",
    "caf\u00e9", "cafe\u0301", "🚀" * 256, "",
]


def test_actor_ids_are_exact_strings(store):
    """NUL, whitespace, case, normalisation, prefixes: every id is its own actor."""
    for index, actor in enumerate(ACTOR_IDS, start=1):
        store.save_event(event(actor, index))
    for index, actor in enumerate(ACTOR_IDS, start=1):
        assert store.get_latest_version(actor) == index, repr(actor)
        [read] = store.get_events(actor, 0)
        assert read.actor_id == actor and read.version == index


def test_sqlite_keeps_embedded_nul_in_text(store, db_path):
    """TEXT with an embedded NUL is stored whole and compared byte for byte in SQLite itself."""
    store.save_event(event("a\x00b", 1))
    store.save_event(event("a", 2))
    assert raw_rows(db_path, "SELECT hex(actor_id), typeof(actor_id) FROM events WHERE version = 1") == [
        ("610062", "text")
    ]
    assert raw_rows(db_path, "SELECT version FROM events WHERE actor_id = ?", ("a\x00b",)) == [(1,)]
    assert raw_rows(db_path, "SELECT version FROM events WHERE actor_id = ?", ("a",)) == [(2,)]


# --- refusing bad input ----------------------------------------------------------------------


def cyclic() -> dict:
    data: dict = {"x": []}
    data["x"].append(data)
    return data


def nested(levels: int, leaf: object = 1) -> dict:
    """A dict nesting ``levels`` containers (itself included), alternating objects and arrays."""
    value: object = leaf
    for level in range(levels - 1):
        value = [value] if level % 2 else {"k": value}
    return {"k": value}


@pytest.mark.parametrize(
    "data, field, rule",
    [
        ({"tags": {1, 2}}, "Event.data['v']['tags']", "set is not a JSON value"),
        ({"v": float("nan")}, "Event.data['v']['v']", "NaN"),
        ({"v": [float("inf")]}, "Event.data['v']['v'][0]", "infinities"),
        ({"v": (1, 2)}, "Event.data['v']['v']", "tuple is not a JSON value"),
        ({1: "x"}, "Event.data['v']", "keys must be str"),
        ({"v": b"bytes"}, "Event.data['v']['v']", "bytes is not a JSON value"),
        ({"v": "lone \ud800"}, "Event.data['v']['v']", "lone surrogate"),
        ({"\udfff": 1}, "Event.data['v'] key", "lone surrogate"),
        (cyclic(), "Event.data['v']['x'][0]", "circular"),
        ({"v": 10**400}, "Event.data['v']['v']", "beyond float64 range"),
        # SQLite once acknowledged data nested ~985 levels that raised RecursionError when read back.
        (nested(985), "Event.data['v']['k']", "nested deeper than 512 levels"),
    ],
    ids=["set", "nan", "inf", "tuple", "int-key", "bytes", "surrogate", "surrogate-key", "cycle", "huge-int",
         "985-levels"],
)
def test_data_that_cannot_round_trip_is_refused(store, data, field, rule):
    """Checked on save: the caller may have changed the data since the model checked it."""
    store.save_event(event("a", 1))
    changed = event("a", 2, {"v": None})
    changed.data["v"] = data
    with pytest.raises(ValueError) as caught:
        store.save_event(changed)
    assert str(caught.value).startswith(field) and rule in str(caught.value)
    assert versions(store, "a") == [1]
    state: dict = {"v": None}
    changed_snapshot = snapshot("a", 2, state)
    state["v"] = data
    with pytest.raises(ValueError, match=r"^ActorSnapshot\.state\['v'\]"):
        store.save_snapshot(changed_snapshot)
    assert store.get_latest_snapshot("a") is None


def test_data_nested_to_the_kit_limit_round_trips(db_path):
    data = nested(MAX_NESTING_DEPTH)
    with SQLiteEventStore(db_path) as handle:
        handle.save_event(event("deep", 1, data))
        handle.save_snapshot(snapshot("deep", 1, nested(MAX_NESTING_DEPTH)))
    with SQLiteEventStore(db_path) as reopened:  # read from the file, not from anything cached
        [read] = reopened.get_events("deep", 0)
        assert json_equal(read.data, data)
        assert json_equal(reopened.get_latest_snapshot("deep").state, data)


def test_lone_surrogates_in_ids_are_refused(store):
    with pytest.raises(ValueError, match=r"Event\.actor_id: .*lone surrogate"):
        store.save_event(event("a\udc80", 1, event_id="e"))
    with pytest.raises(ValueError, match=r"Event\.id: .*lone surrogate"):
        store.save_event(event("a", 1, event_id="\ud83d"))
    assert store.get_latest_version("a") == 0


@pytest.mark.parametrize("bad", [None, {"version": 1}, snapshot("a", 1, {})])
def test_save_event_requires_an_event(store, bad):
    with pytest.raises(TypeError, match="expects an Event"):
        store.save_event(bad)


def test_memory_path_is_refused(tmp_path):
    with pytest.raises(ValueError, match="path: must name a database file"):
        SQLiteEventStore(":memory:")


# --- snapshots -------------------------------------------------------------------------------


def test_no_snapshot_is_none(store):
    assert store.get_latest_snapshot("a") is None


def test_highest_snapshot_wins_whatever_the_order(store):
    for version in (3, 7, 5):
        store.save_snapshot(snapshot("a", version, {"v": version}))
    best = store.get_latest_snapshot("a")
    assert (best.version, best.state) == (7, {"v": 7})


def test_first_snapshot_saved_wins_a_tie(store):
    store.save_snapshot(snapshot("a", 4, {"first": True}))
    store.save_snapshot(snapshot("a", 4, {"first": False}))
    assert store.get_latest_snapshot("a").state == {"first": True}


def test_snapshots_round_trip_and_stay_apart_from_events(store):
    stamp = Timestamp.parse("2024-02-29T10:00:00.000000001+14:00")
    saved = ActorSnapshot(actor_id="a\x00", version=INT64_MAX, state=None, timestamp=stamp)
    store.save_snapshot(saved)
    read = store.get_latest_snapshot("a\x00")
    assert read == saved and read.state is None and read.timestamp.nanosecond == 1
    assert store.get_latest_snapshot("a") is None
    assert store.get_latest_version("a\x00") == 0 and store.get_events("a\x00", 0) == []


def test_bad_snapshots_are_refused(store):
    with pytest.raises(TypeError, match="expects an ActorSnapshot"):
        store.save_snapshot(event("a", 1))
    with pytest.raises(ValueError, match=r"ActorSnapshot\.state\['s'\]"):
        store.save_snapshot(snapshot("a", 1, {"s": {1}}))
    assert store.get_latest_snapshot("a") is None


# --- handles, the factory and durability -----------------------------------------------------


def test_handles_on_one_file_share_one_store(db_path):
    with SQLiteEventStore(db_path) as first, SQLiteEventStore(db_path) as second:
        first.save_event(event("a", 1))
        assert second.get_latest_version("a") == 1
        with pytest.raises(VersionConflictError):
            second.save_event(event("a", 1))
        second.save_snapshot(snapshot("a", 1, {}))
        assert first.get_latest_snapshot("a") is not None


def test_saves_survive_closing_and_reopening(db_path):
    with SQLiteEventStore(db_path) as handle:
        handle.save_event(event("a", 1))
    with SQLiteEventStore(db_path) as reopened:
        assert versions(reopened, "a") == [1]


def test_a_closed_handle_refuses_calls(db_path):
    handle = SQLiteEventStore(db_path)
    handle.close()
    with pytest.raises(RuntimeError, match="is closed"):
        handle.get_latest_version("a")


def test_the_file_is_in_wal_mode(store, db_path):
    assert raw_rows(db_path, "PRAGMA journal_mode") == [("wal",)]


def test_factory_returns_a_new_handle_on_the_env_path(monkeypatch, db_path):
    monkeypatch.setenv(PATH_ENV, str(db_path))
    first, second = shared_store(), shared_store()
    try:
        assert first is not second
        assert first.path == second.path == str(db_path)
        first.save_event(event("a", 1))
        assert second.get_latest_version("a") == 1
    finally:
        first.close()
        second.close()


def test_factory_default_path_is_a_private_directory_of_the_user(monkeypatch, tmp_path):
    monkeypatch.delenv(PATH_ENV, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the temp dir, for this test
    private = tmp_path / f"aether-conformance-{os.geteuid()}"
    with shared_store() as handle:
        assert handle.path == default_path() == str(private / "store.sqlite3")
        handle.save_event(event("a", 1))
    info = private.lstat()
    assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.geteuid()
    with shared_store() as again:  # the directory is reused, and so is the store
        assert again.get_latest_version("a") == 1


# --- another local user: the path must lead to nothing they control ------------------------------

# Acting as a second user needs root (the tests' own user here) and util-linux's setpriv.
needs_second_user = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="acting as a second local user needs root and setpriv",
)
NOBODY = 65534


def as_nobody(cwd: Path, *command: str) -> None:
    """Run ``command`` as user nobody in ``cwd``, which Popen enters before setpriv drops root.

    So nobody needs no way into the test's private tmp_path: only write access to ``cwd`` itself.
    """
    subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command],
        cwd=cwd, check=True, timeout=LIVENESS_TIMEOUT, capture_output=True,
    )


@pytest.fixture
def shared_tmp(tmp_path: Path) -> Path:
    """A directory like /tmp: owned by root, world-writable, sticky."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    return shared


def refused(path: Path, problem: str, rule: str):
    """pytest.raises for an UnsafeDatabasePathError naming ``path``, the problem and the rule."""
    return pytest.raises(UnsafeDatabasePathError, match=rf"^{re.escape(str(path))}: {problem} \(rule: {rule}")


@needs_second_user
def test_a_default_directory_made_first_by_another_user_is_refused(monkeypatch, shared_tmp):
    monkeypatch.delenv(PATH_ENV, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(shared_tmp))
    as_nobody(shared_tmp, "mkdir", "-m", "0777", "aether-conformance-0")
    planted = shared_tmp / "aether-conformance-0"
    assert planted.stat().st_uid == NOBODY
    with refused(planted, r"refusing a default directory owned by uid 65534", "the default directory must be"):
        shared_store()
    assert list(planted.iterdir()) == []


@needs_second_user
def test_a_default_directory_planted_as_a_symlink_by_another_user_is_refused(monkeypatch, shared_tmp):
    monkeypatch.delenv(PATH_ENV, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(shared_tmp))
    as_nobody(shared_tmp, "mkdir", "-m", "0700", "theirs")
    as_nobody(shared_tmp, "ln", "-s", "theirs", "aether-conformance-0")
    with refused(shared_tmp / "aether-conformance-0",
                 r"refusing a default directory that is not a directory \(a symlink or a file\)",
                 "the default directory must be"):
        shared_store()
    assert list((shared_tmp / "theirs").iterdir()) == []


@needs_second_user
def test_a_symlink_planted_by_another_user_is_not_followed(tmp_path, shared_tmp):
    # Nobody links a name the victim will use to the victim's own database: the store must not follow.
    victim = tmp_path / "private" / "victim.sqlite3"
    victim.parent.mkdir(mode=0o700)
    with SQLiteEventStore(victim) as mine:
        mine.save_event(event("a", 1))
    as_nobody(shared_tmp, "ln", "-s", str(victim), "events.sqlite3")
    with refused(shared_tmp / "events.sqlite3", r"refusing to follow a symlink owned by uid 65534",
                 "a symlink on the way to the database must be owned by you or root"):
        SQLiteEventStore(shared_tmp / "events.sqlite3")


def test_a_database_in_a_directory_others_may_write_is_refused(shared_tmp):
    # Even with nothing planted yet: another user could plant the -wal and -shm files at any time.
    with refused(shared_tmp, r"refusing a directory writable by group or others \(mode 0o1777\)",
                 "the directory holding the database and its -wal/-shm files must be owned by you or root"):
        SQLiteEventStore(shared_tmp / "events.sqlite3")
    assert list(shared_tmp.iterdir()) == []


@needs_second_user
@pytest.mark.parametrize("name", ["events.sqlite3", "events.sqlite3-wal", "events.sqlite3-shm"])
def test_a_file_made_first_by_another_user_is_refused(tmp_path, name):
    # The directory was open to others for a while (and then closed): what they made there stays theirs.
    directory = tmp_path / "was-open"
    directory.mkdir()
    directory.chmod(0o777)
    as_nobody(directory, "touch", name)
    directory.chmod(0o700)
    with refused(directory / name, r"refusing a file owned by uid 65534",
                 "the database and its -wal/-shm/-journal files must be regular files of yours"):
        SQLiteEventStore(directory / "events.sqlite3")


@needs_second_user
def test_a_directory_above_owned_by_another_user_is_refused(tmp_path, shared_tmp):
    # Whoever owns a directory above can rename the private one away and put their own in its place.
    as_nobody(shared_tmp, "mkdir", "-m", "0755", "theirs")
    mine = shared_tmp / "theirs" / "mine"
    mine.mkdir(mode=0o700)  # root may write into nobody's directory
    with refused(shared_tmp / "theirs", r"refusing a directory owned by uid 65534",
                 "every directory above the database must be owned by you or root"):
        SQLiteEventStore(mine / "events.sqlite3")


def test_symlinks_and_files_of_your_own_are_followed(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    with SQLiteEventStore(tmp_path / "link" / "events.sqlite3") as handle:
        handle.save_event(event("a", 1))
    assert (real / "events.sqlite3").is_file()


def test_a_database_file_others_may_write_is_refused(db_path):
    SQLiteEventStore(db_path).close()
    db_path.chmod(0o666)
    with refused(db_path, r"refusing a file writable by group or others \(mode 0o666\)",
                 "the database and its -wal/-shm/-journal files"):
        SQLiteEventStore(db_path)


# --- locking -----------------------------------------------------------------------------------


def test_a_writer_waits_for_the_lock_instead_of_failing(store, db_path):
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    outcome: list[object] = []

    def write() -> None:
        try:
            store.save_event(event("a", 1))
            outcome.append("saved")
        except Exception as error:  # reported below
            outcome.append(error)

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(0.3)
    assert outcome == []  # still queued behind the lock, not failed
    blocker.execute("COMMIT")
    blocker.close()
    writer.join(LIVENESS_TIMEOUT)
    assert outcome == ["saved"]


def test_a_lock_held_past_the_timeout_fails_the_save_and_stores_nothing(db_path):
    with SQLiteEventStore(db_path, busy_timeout=0.2) as impatient:
        blocker = sqlite3.connect(db_path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                impatient.save_event(event("a", 1))
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert impatient.get_latest_version("a") == 0


def test_threads_of_one_handle_do_not_share_a_connection(db_path):
    """A reader is not stuck behind another thread's open write transaction on the same handle."""
    inside = threading.Event()
    release = threading.Event()

    class PausingStore(SQLiteEventStore):
        def _latest_for_check(self, conn, actor_id):
            latest = super()._latest_for_check(conn, actor_id)
            inside.set()
            assert release.wait(LIVENESS_TIMEOUT)
            return latest

    with PausingStore(db_path) as handle:
        writer = threading.Thread(target=handle.save_event, args=(event("a", 1),))
        writer.start()
        assert inside.wait(LIVENESS_TIMEOUT)
        seen: list[int] = []
        reader = threading.Thread(target=lambda: seen.append(handle.get_latest_version("a")))
        reader.start()
        reader.join(LIVENESS_TIMEOUT)
        assert seen == [0]  # read beside the open transaction, which it cannot see
        release.set()
        writer.join(LIVENESS_TIMEOUT)
        assert handle.get_latest_version("a") == 1


# --- concurrent writers --------------------------------------------------------------------


def write_until(store: SQLiteEventStore, actor: str, writer: str, wins: int) -> tuple[list[tuple], list[tuple]]:
    """Read latest, save latest+1, retry on conflict; returns (wins, conflicts)."""
    won: list[tuple] = []
    conflicts: list[tuple] = []
    while len(won) < wins:
        attempted = store.get_latest_version(actor) + 1
        event_id = f"{writer}-{uuid.uuid4()}"
        try:
            store.save_event(event(actor, attempted, {"writer": writer}, event_id=event_id))
        except VersionConflictError as error:
            conflicts.append((error.attempted_version, error.current_version))
        else:
            won.append((event_id, attempted, writer))
    return won, conflicts


def check_stream(store: SQLiteEventStore, actor: str, won: list[tuple], conflicts: list[tuple]) -> None:
    stream = store.get_events(actor, 0)
    assert [e.version for e in stream] == list(range(1, len(won) + 1))
    assert Counter(e.id for e in stream) == Counter(event_id for event_id, _, _ in won)
    assert {e.id: (e.version, e.data["writer"]) for e in stream} == {
        event_id: (version, writer) for event_id, version, writer in won
    }
    for attempted, current in conflicts:
        assert attempted <= current <= len(won)


@pytest.mark.parametrize("shared_handle", [False, True], ids=["handle-per-thread", "one-handle"])
def test_threads_append_atomically(db_path, shared_handle):
    threads, wins_each = 8, 15
    handles = [SQLiteEventStore(db_path)] * threads if shared_handle else [SQLiteEventStore(db_path) for _ in range(threads)]
    start = threading.Barrier(threads)
    results: list[tuple[list, list]] = []
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            start.wait()
            results.append(write_until(handles[index], "hot", f"t{index}", wins_each))
        except BaseException as error:  # reported below
            errors.append(error)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(LIVENESS_TIMEOUT)
    assert errors == []
    won = [w for result in results for w in result[0]]
    conflicts = [c for result in results for c in result[1]]
    check_stream(handles[0], "hot", won, conflicts)
    for handle in set(handles):
        handle.close()


def process_writer(writer: str, wins: int, start, results) -> None:
    """Runs in a spawned process: its own handle from the factory, on $AETHER_SQLITE_PATH."""
    with shared_store() as handle:
        start.wait()
        results.put(write_until(handle, "hot", writer, wins))


def test_processes_append_atomically(monkeypatch, db_path):
    """Three spawned processes on a file none of them has seen: first use and appends race."""
    monkeypatch.setenv(PATH_ENV, str(db_path))
    context = multiprocessing.get_context("spawn")
    processes, wins_each = 3, 15
    start = context.Barrier(processes)
    results = context.Queue()
    workers = [
        context.Process(target=process_writer, args=(f"p{i}", wins_each, start, results)) for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    collected = [results.get(timeout=LIVENESS_TIMEOUT) for _ in workers]
    for worker in workers:
        worker.join(LIVENESS_TIMEOUT)
        assert worker.exitcode == 0
    won = [w for result in collected for w in result[0]]
    conflicts = [c for result in collected for c in result[1]]
    assert len(won) == processes * wins_each
    with SQLiteEventStore(db_path) as reader:
        check_stream(reader, "hot", won, conflicts)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_a_forked_child_opens_its_own_connection(store):
    store.save_event(event("a", 1))  # the parent's connection now exists and would be inherited
    child = multiprocessing.get_context("fork").Process(target=store.save_event, args=(event("a", 2),))
    child.start()
    child.join(LIVENESS_TIMEOUT)
    assert child.exitcode == 0
    assert versions(store, "a") == [1, 2]


# --- crash safety --------------------------------------------------------------------------

CRASH_WRITER = """
import sys, uuid
from datetime import datetime, timezone
from aether_conformance import Event
from reference_store.sqlite import SQLiteEventStore

store = SQLiteEventStore(sys.argv[1])
acks = open(sys.argv[2], "a", encoding="utf-8")
padding = "x" * 4000  # several pages per event, so a kill often lands inside a write
while True:
    version = store.get_latest_version("crash") + 1
    event_id = str(uuid.uuid4())
    store.save_event(Event(id=event_id, event_type="T", actor_id="crash", version=version,
                           data={"pad": padding}, timestamp=datetime.now(timezone.utc)))
    acks.write(event_id + "\\n")
    acks.flush()  # in the OS's hands now: SIGKILL cannot lose it
"""


def count_lines(path: Path) -> int:
    return path.read_text(encoding="utf-8").count("\n") if path.exists() else 0


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_acknowledged_saves_survive_sigkill(db_path, tmp_path):
    acks_path = tmp_path / "acks.txt"
    for round_number in range(3):
        wanted = count_lines(acks_path) + 20
        writer = subprocess.Popen([sys.executable, "-c", CRASH_WRITER, str(db_path), str(acks_path)])
        deadline = time.monotonic() + LIVENESS_TIMEOUT
        while count_lines(acks_path) < wanted and writer.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert writer.poll() is None, f"writer exited early in round {round_number}"
        writer.send_signal(signal.SIGKILL)
        writer.wait(LIVENESS_TIMEOUT)

        assert raw_rows(db_path, "PRAGMA integrity_check") == [("ok",)]
        acked = acks_path.read_text(encoding="utf-8").split()
        with SQLiteEventStore(db_path) as reopened:
            stream = reopened.get_events("crash", 0)
            stored = Counter(e.id for e in stream)
            assert all(stored[event_id] == 1 for event_id in acked)
            assert [e.version for e in stream] == list(range(1, len(stream) + 1))
            # At most one save can be committed yet not acknowledged when the kill lands.
            assert len(acked) <= len(stream) <= len(acked) + 1
            # Count a save committed but not acknowledged as acknowledged, so the bound stays exact next round.
            if len(stream) > len(acked):
                acks_path.write_text("".join(e.id + "\n" for e in stream), encoding="utf-8")

    with SQLiteEventStore(db_path) as survivor:
        latest = survivor.get_latest_version("crash")
        survivor.save_event(event("crash", latest + 1))
        assert survivor.get_latest_version("crash") == latest + 1
