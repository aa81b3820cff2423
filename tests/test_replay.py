"""Reproduction scripts: the calls of a failed test, replayed and checked against the specification."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone

from aether_conformance import ActorSnapshot, Event
from aether_conformance.driver import CallLog
from aether_conformance.limits import MAX_NESTING_DEPTH
from aether_conformance.replay import write_reproduction
from tests.test_zoo import ROOT

STAMP = datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)


def _event(version: int, data=None) -> Event:
    return Event(id=f"e{version}", event_type="T", actor_id="a\u00e9 \"q\"", version=version, data=data, timestamp=STAMP)


def _calls() -> list[dict]:
    log = CallLog()
    log.record(0, "save_event", (_event(1, {"n": 1.5, "null": None, "t": True}),))
    log.record(1, "save_event", (_event(2),))
    log.record(0, "get_latest_version", ("a\u00e9 \"q\"",))
    log.record(0, "save_event", (_event(2),))  # at the latest: must conflict
    log.record(1, "get_events", ("a\u00e9 \"q\"", 2))
    log.record(0, "save_snapshot", (ActorSnapshot(actor_id="a\u00e9 \"q\"", version=2, state=None, timestamp=STAMP),))
    log.record(1, "get_latest_snapshot", ("a\u00e9 \"q\"",))
    return log.calls


def _run(script, store_module: str) -> subprocess.CompletedProcess:
    text = script.read_text().replace('STORE = "placeholder:make"', f"STORE = {store_module!r}").replace(
        "STORE = 'placeholder:make'", f"STORE = {store_module!r}")
    script.write_text(text)
    return subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_the_script_reproduces_the_bug_and_passes_on_a_correct_store(tmp_path):
    broken = write_reproduction(tmp_path / "broken", "suite/test_save.py::test_x[1]", "ES-SAVE-002", "placeholder:make",
                                "ES-SAVE-002: saved version 2 ...", _calls(), 5.0)
    completed = _run(broken, "tests.zoo.specimens:off_by_one")
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "step 4" in completed.stdout and "expected: VersionConflictError(current version 2)" in completed.stdout
    fixed = write_reproduction(tmp_path / "fixed", "suite/test_save.py::test_x[1]", "ES-SAVE-002", "placeholder:make",
                               "ES-SAVE-002: ...", _calls(), 5.0)
    completed = _run(fixed, "tests.zoo.specimens:correct")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "NOT REPRODUCED: all 7 calls" in completed.stdout


def test_a_store_that_changes_data_on_the_way_is_caught_by_the_replay(tmp_path):
    script = write_reproduction(tmp_path, "t", "ES-READ-003", "placeholder:make", "ES-READ-003: ...", _calls(), 5.0)
    completed = _run(script, "tests.zoo.specimens:null_data_becomes_empty")
    assert completed.returncode == 1 and "get_events" in completed.stdout, completed.stdout + completed.stderr


def test_data_nested_as_deep_as_the_model_carries_is_replayed(tmp_path):
    # Python's parser takes 200 nested brackets and pprint recurses two frames a level: a literal
    # of 512-level data would stop the run (RecursionError in the report hook) or the script.
    deep: object = "bottom"
    for _ in range(MAX_NESTING_DEPTH):
        deep = {"d": deep}
    log = CallLog()
    log.record(0, "save_event", (_event(1, deep),))
    log.record(0, "get_events", ("a\u00e9 \"q\"", 1))
    script = write_reproduction(tmp_path, "t", "ES-REFUSE-001", "placeholder:make", "ES-REFUSE-001: ...", log.calls, 5.0)
    completed = _run(script, "tests.zoo.specimens:correct")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "NOT REPRODUCED: all 2 calls" in completed.stdout


def test_a_state_machine_failure_replays_the_failing_example_alone(tmp_path):
    # The state machine runs dozens of examples before the failing one is shrunk and run last:
    # the reproduction holds that example's calls, not every example's.
    artifacts = tmp_path / "artifacts"
    completed = subprocess.run(
        [sys.executable, "-m", "aether_conformance.cli", "run", "tests.zoo.specimens:off_by_one", "--profile", "quick",
         "--artifacts", str(artifacts), "--", "-k", "test_store_behaves_like_the_model"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert completed.returncode == 1, completed.stdout[-3000:] + completed.stderr[-3000:]
    (script,) = (artifacts / "reproductions").glob("*.py")
    calls = script.read_text().count("'method':")
    # The actors the run plants first (about 20 calls: the store must hold them for the replay), then
    # one example: at most 20 steps (quick), each a save, a read or a conflict check of a few calls.
    assert 0 < calls <= 100, f"{calls} calls in {script}"
    replayed = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert replayed.returncode == 1 and "REPRODUCED" in replayed.stdout, replayed.stdout + replayed.stderr
