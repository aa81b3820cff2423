"""The fault schedule and the generic fault hook (aether_conformance/faults.py).

The hook is exercised end to end with a real fault of a real backend: the
SQLite reference store, whose database file a fault plugin (this module,
loaded with ``-p tests.test_faults``) locks exclusively for the hold.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time

import pytest

from aether_conformance.faults import (
    FaultKind,
    FaultRunError,
    draw_schedule,
    parse_fault_names,
    run_schedule,
)
from aether_conformance.schemas import validate
from tests.test_zoo import certify

# -- the schedule ------------------------------------------------------------------------------


def test_a_schedule_holds_every_kind_once_and_is_fixed_by_its_seed():
    kinds = ("kill", "pause", "partition")
    first = draw_schedule(kinds, seed=11)
    assert sorted(item.kind for item in first) == sorted(kinds)
    assert first == draw_schedule(kinds, seed=11)
    orders = {tuple(item.kind for item in draw_schedule(kinds, seed)) for seed in range(40)}
    assert len(orders) > 1  # the seed decides the order
    assert all(item.hold > 0 and item.gap > 0 for item in first)


@pytest.mark.parametrize("text, rule", [
    ("", "comma-separated list"), ("kill,,pause", "comma-separated list"), ("kill,kill", "must not repeat"),
])
def test_bad_fault_lists_are_refused_naming_the_rule(text, rule):
    with pytest.raises(ValueError, match=f"faults: .*{rule}"):
        parse_fault_names(text)


class Toggle:
    """A fault that flips a flag: what was injected, recovered, and in which order."""

    def __init__(self, name: str, fail_recovery: bool = False) -> None:
        self.name, self.fail_recovery = name, fail_recovery
        self.active = False
        self.log: list[str] = []

    def kind(self) -> FaultKind:
        return FaultKind(self.name, self.inject, self.recover)

    def inject(self) -> str:
        assert not self.active
        self.active = True
        self.log.append("inject")
        return f"{self.name}-target"

    def recover(self) -> None:
        self.log.append("recover")
        if self.fail_recovery:
            raise RuntimeError(f"{self.name}-target did not come back (see its log)")
        self.active = False


def test_the_runner_injects_one_fault_at_a_time_and_records_each():
    toggles = [Toggle("a"), Toggle("b")]
    schedule = draw_schedule(["a", "b"], seed=3)
    abort = threading.Event()
    abort.set()  # no holds or gaps: the order is what matters here
    run = run_schedule({t.name: t.kind() for t in toggles}, schedule, seed=3, abort=abort)
    assert run.error is None and run.done.is_set()
    assert [r.kind for r in run.records] == [item.kind for item in schedule]
    for record in run.records:
        assert record.target == f"{record.kind}-target"
        assert record.end is not None and record.end >= record.start and record.recovery_seconds >= 0
        assert record.start_ns <= record.end_ns
    assert all(t.log == ["inject", "recover"] and not t.active for t in toggles)
    assert run.records[1].start_ns >= run.records[0].end_ns  # recovery awaited between faults


def test_a_failed_recovery_stops_the_schedule_and_names_the_target():
    stuck, later = Toggle("stuck", fail_recovery=True), Toggle("later")
    abort = threading.Event()
    abort.set()
    schedule = list(draw_schedule(["stuck", "later"], seed=0))
    schedule.sort(key=lambda item: item.kind != "stuck")
    run = run_schedule({"stuck": stuck.kind(), "later": later.kind()}, schedule, seed=0, abort=abort)
    assert run.error and "stuck on stuck-target did not recover" in run.error and "see its log" in run.error
    assert later.log == []  # nothing injected after a fault that did not heal


def test_an_unknown_kind_is_refused_before_anything_is_injected():
    toggle = Toggle("kill")
    with pytest.raises(FaultRunError, match="offers kill; unknown: partition"):
        run_schedule({"kill": toggle.kind()}, draw_schedule(["partition"], 0), seed=0)
    assert toggle.log == []


# -- the hook, end to end ----------------------------------------------------------------------
# Loaded into the certification run with `-p tests.test_faults`: the plugin side of the hook.


class SqliteLockFaults:
    """One fault for the SQLite store: another connection holds the database's write lock."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.connection: sqlite3.Connection | None = None

    def fault_kinds(self):
        return [FaultKind("lock", self.lock, self.unlock)]

    def lock(self) -> str:
        self.connection = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.connection.execute("BEGIN IMMEDIATE")  # the write lock: every writer queues behind it
        return os.path.basename(self.path)

    def unlock(self) -> None:
        assert self.connection is not None
        self.connection.execute("ROLLBACK")
        self.connection.close()
        self.connection = None

    def preconditions(self) -> list[str]:
        return [] if os.path.exists(self.path) else [f"database {self.path} does not exist"]

    def environment(self) -> dict:
        return {"backend": "sqlite", "version": sqlite3.sqlite_version}


def pytest_aether_fault_provider(config):
    path = os.environ.get("AETHER_SQLITE_PATH")
    return SqliteLockFaults(path) if path else None


def test_a_third_party_backend_plugs_its_own_faults_in_through_the_hook(tmp_path):
    path = tmp_path / "events.sqlite3"
    fault_report = tmp_path / "faults.json"
    started = time.monotonic()
    code, report, output = certify(
        "reference_store.sqlite:shared_store", tmp_path, "--faults", "lock", "--fault-seed", "5",
        "--fault-report", str(fault_report), "--", "-p", "tests.test_faults", "-k", "test_faults",
        env={"AETHER_SQLITE_PATH": str(path)},
    )
    entry = next(r for r in report["requirements"] if r["id"] == "ES-FAULT-001")
    assert entry["outcome"] == "passed", output[-3000:]
    assert "faults" in report["capabilities"]
    assert "Faults: no anomaly found in 1 faults (schedule seed 5; backend sqlite" in output
    runs = json.loads(fault_report.read_text())
    validate("report", report)
    assert report["faults"] == runs  # the report carries them too
    (run,) = runs
    assert run["seed"] == 5 and [f["kind"] for f in run["faults"]] == ["lock"]
    assert run["faults"][0]["target"] == "events.sqlite3" and run["faults"][0]["end"] is not None
    assert run["operations"]["acknowledged_saves"] > 0
    assert time.monotonic() - started < 600  # bounds a hang only


def test_faults_without_a_provider_fail_the_requirement_with_what_to_do(tmp_path):
    code, report, output = certify("reference_store.memory:shared_store", tmp_path, "--faults", "kill",
                                   "--", "-k", "test_faults")
    entry = next(r for r in report["requirements"] if r["id"] == "ES-FAULT-001")
    assert entry["outcome"] == "failed" and code == 1
    assert "no plugin provides faults" in entry["messages"][0] and "--nats-cluster" in entry["messages"][0]


def test_without_faults_the_requirement_is_skipped_as_not_declared(tmp_path):
    code, report, output = certify("reference_store.memory:shared_store", tmp_path, "--", "-k", "test_faults")
    entry = next(r for r in report["requirements"] if r["id"] == "ES-FAULT-001")
    assert entry["outcome"] == "skipped", entry
    assert "faults" not in report
