"""The suite against the zoo: every broken store is flagged for the requirement it breaks.

Each specimen is certified the way a user would do it — the real CLI in a
fresh process — and the JSON report must show its requirement failed, with
a message that starts with that requirement's ID.  The controls must pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aether_conformance.requirements import REQUIREMENTS, Level
from aether_conformance.schemas import validate
from tests.zoo.specimens import SPECIMENS
from tests.zoo.subtle import SUBTLE

ROOT = Path(__file__).resolve().parent.parent


def certify(store: str, tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[int, dict, str]:
    report_path = tmp_path / "report.json"
    command = [sys.executable, "-m", "aether_conformance.cli", "run", store, "--profile", "quick",
               "--json-report", str(report_path), "--artifacts", str(tmp_path / "artifacts"), *extra]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                               env={**os.environ, **(env or {})})
    output = completed.stdout + completed.stderr
    assert report_path.exists(), f"no report written; output:\n{output[-3000:]}"
    return completed.returncode, json.loads(report_path.read_text()), output


def _options(name: str, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    if name == "nonatomic_sqlite":
        return ["--capability", "multiprocess"], {"AETHER_SQLITE_PATH": str(tmp_path / "naive.sqlite3")}
    if name == "hangs_on_unknown_actor":
        return ["--timeout", "1"], {}
    return [], {}


def assert_verdict(name: str, broken: str | None, code: int, report: dict, output: str,
                   control_may_miss_should: bool = False) -> None:
    """The report names the specimen's requirement failed (a control: conformant, nothing failed,
    or with ``control_may_miss_should`` nothing but SHOULDs)."""
    validate("report", report)
    outcomes = {r["id"]: r for r in report["requirements"]}
    if broken is None:
        tolerated = {"SHOULD"} if control_may_miss_should else set()
        failed = [r["id"] for r in report["requirements"] if r["outcome"] == "failed" and r["level"] not in tolerated]
        assert code == 0 and report["conformant"] and not failed, f"control store failed {failed}:\n{output[-3000:]}"
        return
    entry = outcomes[broken]
    must = next(r for r in REQUIREMENTS if r.id == broken).level is Level.MUST
    if entry["outcome"] == "blocked" and must:
        # Its tests stopped on a broken precondition (a shared version counter refuses first saves,
        # ES-SAVE-001): the report names that root, which must itself be a failed MUST.
        roots = [outcomes[root] for root in entry["blockedBy"]]
        assert roots and all(r["outcome"] == "failed" and r["level"] == "MUST" for r in roots), entry
    else:
        assert entry["outcome"] == "failed", f"{name} breaks {broken} but the suite reported {entry}:\n{output[-3000:]}"
        # Each message starts with the requirement ID it counts against.
        assert entry["messages"] and all(broken in m.split(": ")[0].split(", ") for m in entry["messages"]), entry["messages"]
    assert code == (1 if must else 0) and report["conformant"] is not must
    assert f"| {broken} " in output  # the Markdown table names it


@pytest.mark.parametrize("name", sorted(SPECIMENS))
def test_specimen_is_flagged_for_its_requirement(name, tmp_path):
    extra, env = _options(name, tmp_path)
    code, report, output = certify(f"tests.zoo.specimens:{name}", tmp_path, *extra, env=env)
    assert_verdict(name, SPECIMENS[name], code, report, output)


# Specimens that need a NATS cluster and injected faults live beside their tests.
CLUSTER_SPECIMENS = {"any_replica_store": "ES-FAULT-001", "unreplicated_store": "ES-FAULT-001"}  # tests/test_faults_cluster.py


def test_every_requirement_has_a_specimen_that_breaks_it():
    from tests.zoo import cluster_specimens

    assert all(callable(getattr(cluster_specimens, name)) for name in CLUSTER_SPECIMENS)
    broken = (set(SPECIMENS.values()) | set(CLUSTER_SPECIMENS.values())) - {None}
    assert not {r.id for r in REQUIREMENTS} - broken, "requirements no zoo specimen breaks"


# Subtle specimens the suite did not flag for their requirement when last measured, with the input
# that would.  Once the suite catches one, its entry goes.
SUBTLE_NOT_CAUGHT: dict[str, str] = {
    "actor_key_128_chars":
        "needs: two ids of at most 256 characters sharing a 128-character prefix",
    "actor_key_255_bytes":
        "needs: two 256-character ids differing only in the last character (or non-ASCII ids over 255 bytes)",
    "char_column_command_id":
        "needs: a command_id with a trailing space round-trips",
    "compact_id_off_by_one":
        "needs: an equal-version retry on a 26-character ULID-like id (letters and digits only)",
    "counter_before_event":
        "needs: readers during writes: a read of latest v followed by get_events must include v",
    "dedupes_by_command_id":
        "needs: two events with the same command id at versions 1 and 2: both stored",
    "delimiter_prefix_scan":
        "needs: 'x' vs 'x/y': events of x/y must not appear in reads of x",
    "depth_32_nulls_state":
        "needs: state nested 33 to 64 levels",
    "depth_48_nulls_data":
        "needs: data nested 49 to 64 levels",
    "dst_local_wall_time":
        "needs: timestamp 2024-11-03T06:30:00Z (01:30 EST, the repeated hour in New York)",
    "empty_token_sanitised":
        "needs: 'a..b' vs 'a._.b' (and '' vs '_')",
    "go_float64_numbers":
        "kit defect: the concurrency checker compares content by a json.dumps digest, so 3.0 for 3 fails ES-CONC-001",
    "int32_conflict_current_version":
        "needs: save 2^31 (or 2^32), then a conflict: current_version must be 2^31",
    "int32_from_version":
        "needs: two events above 2^31 (e.g. 2^53, 2^53+1), get_events from the second must not return the first",
    "int32_snapshot_order":
        "needs: snapshots at 5 and 2^31: the latest must be 2^31",
    "js_number_error_text":
        "needs: the conflict text at versions above 2^53 (e.g. 2^63-1)",
    "latest_from_first_page":
        "flagged only as ES-CONC-001; needs: an actor with more than 100 events: latest, and a conflict at the latest",
    "like_wildcard_latest":
        "needs: save v5 to 'abc', then get_latest_version('a%') must be 0 and v1 to 'a%' must succeed",
    "like_wildcard_reads":
        "needs: save to 'orderA1', then get_events('order_1') must be empty (LIKE wildcards _ and % in ids)",
    "like_wildcard_snapshots":
        "needs: snapshot of 'axb', then get_latest_snapshot('a_b') must be None",
    "lock_timeout_as_conflict":
        "needs: concurrent saves to different actors: no conflict with attempted_version above current_version",
    "lru_evicts_streams":
        "needs: revisit an actor after more than 300 other actors were used",
    "lua_float_current_version":
        "needs: a conflict when the latest is 2^53+1: current_version exact",
    "negative_zero_hour_offset":
        "needs: offset -00:30",
    "nfc_data_strings":
        "needs: a data string in NFD round-trips",
    "nfc_event_types":
        "needs: an event_type in NFD round-trips",
    "nul_truncated_actor_ids":
        "needs: 'a\\0b' vs 'a\\0c'",
    "padded_key_latest":
        "needs: stream 9,999,999,999 then 10,000,000,000: latest must be 10^10",
    "padded_key_reads":
        "needs: stream 9,999,999,999 then 10,000,000,000: read all and from 10^10",
    "padded_key_snapshots":
        "needs: snapshots at 9,999,999,999 and 10,000,000,000: the latest must be 10^10",
    "page_1000_repeats_boundary":
        "needs: an actor with 1,000 or more events, read from 0 (no duplicates)",
    "page_100_skips_boundary":
        "flagged only as ES-CONC-001, ES-READ-003; needs: an actor with more than 100 events, read from 0",
    "per_actor_lock_global_rewrite":
        "needs: concurrent writers on several actors at once, every acknowledged event read back",
    "pool_slot_stale_cache":
        "needs: create and drop (gc) handles during the run; a new handle must see saves made while it did not exist",
    "postgres_gap_trap":
        "needs: concurrent writers skipping versions (6 and 7 after 5) with readers: every read a prefix of the final stream",
    "quote_astral_as_surrogate_pairs":
        "needs: ES-ERR-002 with an id holding U+F0000 or U+E0001",
    "quote_c1_controls_raw":
        "needs: ES-ERR-002 with an id holding U+0085",
    "quote_format_chars_raw":
        "needs: ES-ERR-002 with ids holding U+200D, U+FEFF, U+00AD",
    "quote_private_use_raw":
        "needs: ES-ERR-002 with an id holding U+E000",
    "replica_lags_under_load":
        "needs: readers during writes: latest v then get_events must include v; final reads right after the run",
    "retry_with_same_command_id_succeeds":
        "needs: a retried save of a stored version carrying a command id must conflict",
    "search_window_10000":
        "needs: an actor with more than 10,000 events, read from 0",
    "slash_sanitised_ids":
        "needs: 'a/b' vs 'a_b'",
    "snapshot_key_64_chars":
        "needs: snapshots of two ids sharing a 64-character prefix",
    "snapshot_racy_upsert":
        "needs: concurrent snapshot writers on one actor: the highest version must win",
    "text_64kib_data":
        "flagged only as ES-LIMIT-001; needs: event data over 64 KiB encoded (up to the 512 KiB floor)",
    "text_64kib_state":
        "needs: snapshot state over 64 KiB encoded",
    "varchar255_bytes_event_id":
        "flagged only as ES-LIMIT-001; needs: event id of at most 1,024 characters but over 255 UTF-8 bytes (e.g. 200 x 'é')",
    "varchar255_command_id":
        "flagged only as ES-LIMIT-001; needs: command_id of 256 to 1,024 characters round-trip",
    "varchar64_event_type":
        "flagged only as ES-LIMIT-001; needs: event_type of 65 to 1,024 characters round-trip",
    "wildcard_subject_snapshots":
        "needs: snapshot of 'x.y', then get_latest_snapshot('x.*') / ('x.>') must be None",
    "window_65536":
        "needs: an actor with more than 65,536 events, read from 0 (thorough profile)",
    "zset_float_score_reads":
        "needs: stream [2^53, 2^53+1], get_events(from=2^53+1) must return only 2^53+1",
    "zset_float_score_snapshots":
        "needs: snapshots at 2^53 then 2^53+1: the latest must be 2^53+1",
}


# Read windows beyond the quick profile's long stream (1,050 events): the default profile's stream
# (10,050) passes a 10,000-result window, the thorough one's (100,050) a 65,536-row one.  Only the
# long-stream test runs, at the profile that reaches the window (a partial run: never conformant).
SUBTLE_RUN_OPTIONS: dict[str, tuple[str, ...]] = {
    "search_window_10000": ("--profile", "default", "--", "-k", "test_a_long_stream_is_read_whole_from_anywhere"),
    "window_65536": ("--profile", "thorough", "--", "-k", "test_a_long_stream_is_read_whole_from_anywhere"),
}


def _subtle_params() -> list:
    # Not strict: the suite's coverage of these classes landed after this list was measured, and a
    # specimen it now catches must not turn the build red; one it catches is taken off the list
    # and is then a plain test that fails if the suite stops catching it.
    return [pytest.param(name, marks=pytest.mark.xfail(strict=False, reason=SUBTLE_NOT_CAUGHT[name]))
            if name in SUBTLE_NOT_CAUGHT else name for name in sorted(SUBTLE)]


@pytest.mark.parametrize("name", _subtle_params())
def test_subtle_specimen_is_flagged_for_its_requirement(name, tmp_path):
    """The subtle zoo (tests/zoo/subtle.py): one MUST broken just outside everyday inputs, or a control."""
    extra, env = list(SUBTLE_RUN_OPTIONS.get(name, ())), {}
    if name == "sqlite_blob_schema":
        extra, env = ["--capability", "multiprocess"], {"ZOO_SQLITE_PATH": str(tmp_path / "zoo.sqlite3")}
    code, report, output = certify(f"tests.zoo.subtle:{name}", tmp_path, *extra, env=env)
    # Controls give up nothing but SHOULDs (a timestamptz column loses the offset, ES-READ-004).
    assert_verdict(name, SUBTLE[name], code, report, output, control_may_miss_should=True)
