"""A verdict you can trust: the installed CLI never says CONFORMANT unless every applicable MUST ran
and passed, whatever the store or the run does; it leaves no process and no scratch file behind.

Each test runs the real CLI in a fresh process against a small hostile store from
``tests/hostile_stores.py`` and checks the exit code, the message and the report.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from aether_conformance.schemas import validate
from tests.test_zoo import ROOT


def _cli(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aether_conformance.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def _report(artifacts: Path) -> dict:
    report = json.loads((artifacts / "report.json").read_text(encoding="utf-8"))
    validate("report", report)
    return report


def _outcome(report: dict, req_id: str) -> dict:
    return next(r for r in report["requirements"] if r["id"] == req_id)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead; only a running process counts.
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"


# The tests that save INT64_MIN to a new actor, where the hostile stores strike: ES-SAVE-002's.
CONFLICT_TESTS = ["--", "-k", "test_versions_at_or_below_latest_conflict or test_first_event_at_version_1"]


@pytest.mark.parametrize(
    "how, expected, where",
    [("exit0", "exited with code 0", "worker"), ("exit3", "exited with code 3", "worker"),
     ("sigkill", "killed by SIGKILL", "worker"), ("segfault", "killed by SIGSEGV", "worker"),
     # -p no:xdist (as a fault run) puts the suite in the CLI's process: its supervisor outlives it.
     ("exit0", "exited with code 0", "cli"), ("sigkill", "killed by SIGKILL", "cli")],
)
def test_a_store_that_kills_its_process_fails_the_requirement_being_tested(tmp_path, how, expected, where):
    artifacts = tmp_path / "artifacts"
    completed = _cli("run", "tests.hostile_stores:process_killer", "--profile", "quick", "--artifacts", str(artifacts),
                     *CONFLICT_TESTS, *(["-p", "no:xdist"] if where == "cli" else []), env={"HOSTILE_HOW": how})
    report = _report(artifacts)
    entry = _outcome(report, "ES-SAVE-002")
    assert completed.returncode == 1, completed.stdout[-3000:] + completed.stderr
    assert entry["outcome"] == "failed" and any(expected in m for m in entry["messages"]), entry
    assert not report["conformant"] and _outcome(report, "ES-SAVE-001")["outcome"] != "failed"
    assert json.loads((artifacts / "badge.json").read_text())["color"] != "brightgreen"
    assert not (artifacts / "running.json").exists()


def test_a_partial_run_is_never_conformant(tmp_path):
    artifacts = tmp_path / "artifacts"
    completed = _cli("run", "reference_store.memory:shared_store", "--profile", "quick", "--artifacts", str(artifacts),
                     "--", "-k", "inclusive")
    report = _report(artifacts)
    assert completed.returncode == 2, completed.stdout[-3000:] + completed.stderr
    assert not report["complete"] and not report["conformant"]
    assert report["tests"]["notRun"] > 0 and report["tests"]["ran"] + report["tests"]["notRun"] == report["tests"]["expected"]
    assert f"{report['tests']['notRun']} of {report['tests']['expected']} conformance tests did not run" in completed.stderr
    assert "incomplete" in json.loads((artifacts / "badge.json").read_text())["message"]


def test_stopping_at_the_first_failure_reports_the_failure_and_the_gap(tmp_path):
    artifacts = tmp_path / "artifacts"
    completed = _cli("run", "tests.zoo.specimens:off_by_one", "--profile", "quick", "--artifacts", str(artifacts),
                     "--", "-x")
    report = _report(artifacts)
    assert completed.returncode == 1 and not report["complete"] and report["tests"]["notRun"] > 0
    assert _outcome(report, "ES-SAVE-002")["outcome"] == "failed"


@pytest.mark.parametrize("sig, where", [(signal.SIGTERM, "worker"), (signal.SIGINT, "worker"),
                                        # Ctrl-C at a terminal: to the whole group of a supervised run
                                        (signal.SIGINT, "cli")])
def test_an_interrupted_run_is_incomplete_and_stops_everything_it_started(tmp_path, sig, where):
    artifacts, pids = tmp_path / "artifacts", tmp_path / "pids"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "aether_conformance.cli", "run", "tests.hostile_stores:slow_with_grandchild",
         "--profile", "quick", "--artifacts", str(artifacts), *(["--", "-p", "no:xdist"] if where == "cli" else [])],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HOSTILE_PIDS": str(pids), "TMPDIR": str(scratch)},
    )
    deadline = time.monotonic() + 300
    # One line from the CLI's preflight handle, one from the suite's first handle: the suite is running.
    while not (pids.exists() and len(pids.read_text().splitlines()) >= 2) and time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.2)
    time.sleep(1)  # well inside the run: the store answers one call every 0.3 s
    if where == "cli":
        os.killpg(process.pid, sig)
    else:
        process.send_signal(sig)
    output, _ = process.communicate(timeout=120)
    report = _report(artifacts)
    assert process.returncode == 2, output[-3000:]
    assert not report["complete"] and not report["conformant"] and "interrupted" in report["incompleteReason"]
    assert json.loads((artifacts / "badge.json").read_text())["color"] != "brightgreen"
    leftovers = [int(pid) for pid in pids.read_text().split() if _alive(int(pid))]
    assert not leftovers, f"processes the store started outlived the run: {leftovers}"
    assert not list(scratch.iterdir()), f"scratch files left behind: {list(scratch.iterdir())}"


def test_a_cli_killed_outright_leaves_no_scratch_directory(tmp_path):
    # SIGKILL (the OOM killer, a CI job cancelled hard) gives the CLI no chance to clean up: its
    # watchdog, a child in a session of its own, removes the run's scratch directory.
    pids, scratch = tmp_path / "pids", tmp_path / "tmp"
    scratch.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "aether_conformance.cli", "run", "tests.hostile_stores:slow_with_grandchild",
         "--profile", "quick", "--artifacts", str(tmp_path / "artifacts")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HOSTILE_PIDS": str(pids), "TMPDIR": str(scratch)},
    )
    try:
        deadline = time.monotonic() + 300
        while not (pids.exists() and len(pids.read_text().splitlines()) >= 2) and time.monotonic() < deadline:
            assert process.poll() is None
            time.sleep(0.2)
        assert list(scratch.iterdir()), "the run made no scratch directory"
        process.kill()
        process.wait(60)
        deadline = time.monotonic() + 60
        while list(scratch.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not list(scratch.iterdir()), f"scratch files left behind: {list(scratch.iterdir())}"
    finally:
        process.kill()
        # The store's sidecars (in sessions of their own) are past any CLI's reach after SIGKILL.
        for pid in pids.read_text().split() if pids.exists() else ():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


@pytest.mark.parametrize(
    "args, message",
    [(["--timeout", "0"], "--timeout must be a finite number of seconds above 0"),
     (["--timeout", "-1"], "above 0"), (["--timeout", "nan"], "above 0"), (["--timeout", "inf"], "above 0"),
     (["--json-report", "{tmp}"], "is a directory"),
     (["--badge", "{tmp}/file.txt/badge.json"], "is not a directory"),
     (["--junitxml", "/proc/no/such/junit.xml"], "not"),
     (["--artifacts", "{tmp}/file.txt"], "not a directory")],
)
def test_bad_arguments_are_one_line_and_exit_2_before_the_run(tmp_path, args, message):
    (tmp_path / "file.txt").write_text("x")
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    completed = _cli("run", "reference_store.memory:shared_store", *args)
    lines = completed.stderr.strip().splitlines()
    assert completed.returncode == 2 and len(lines) == 1 and message in lines[0], completed.stderr
    assert "Traceback" not in completed.stdout + completed.stderr


def test_a_sync_factory_that_hangs_is_one_line_and_exit_2():
    completed = _cli("run", "tests.hostile_stores:hanging_factory", "--timeout", "1")
    lines = completed.stderr.strip().splitlines()
    assert completed.returncode == 2 and len(lines) == 1 and "did not return within 1s" in lines[0], completed.stderr


# Store modules whose import or factory does to its process what no caller survives in-process.
_LOADING_ATTACKS = {
    "import_sys_exit": "import sys\nsys.exit(0)\n",
    "import_os_exit": "import os\nos._exit(0)\n",
    "factory_os_exit": "import os\ndef make():\n    os._exit(0)\n",
    "factory_segfault": "import ctypes\ndef make():\n    ctypes.string_at(0)\n",
}


@pytest.mark.parametrize("attack, message", [
    ("import_sys_exit", "raised SystemExit: 0"), ("import_os_exit", "exited with code 0"),
    ("factory_os_exit", "exited with code 0"), ("factory_segfault", "killed by SIGSEGV"),
])
def test_a_store_that_ends_its_process_while_loading_is_one_line_and_exit_2(tmp_path, attack, message):
    # Loaded in the CLI's own process, each of these ended the CLI with no report (the exits with status 0).
    (tmp_path / f"{attack}.py").write_text(_LOADING_ATTACKS[attack] + "def make():\n    pass\n" * attack.startswith("import"))
    completed = _cli("run", f"{attack}:make", "--artifacts", str(tmp_path / "artifacts"), cwd=tmp_path, timeout=120)
    lines = completed.stderr.strip().splitlines()
    assert completed.returncode == 2 and len(lines) == 1 and message in lines[0], completed.stderr


def test_nats_server_without_a_binary_is_one_line_and_exit_2(tmp_path):
    # A virtual environment without nats-server, seeing the kit's packages: no binary anywhere.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    site = sysconfig.get_path("purelib")
    completed = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "python"), "-m", "aether_conformance.cli", "run",
         "reference_store.memory:shared_store", "--nats-server"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{ROOT}{os.pathsep}{site}", "HOME": str(tmp_path)},
    )
    lines = completed.stderr.strip().splitlines()
    assert completed.returncode == 2 and len(lines) == 1 and "nats-server binary not found" in lines[0], completed.stderr


def test_the_current_directory_cannot_replace_the_kits_dependencies(tmp_path):
    (tmp_path / "pytest.py").write_text("raise SystemExit('this pytest.py must never be imported')\n")
    (tmp_path / "hypothesis").mkdir()
    (tmp_path / "hypothesis" / "__init__.py").write_text("raise SystemExit('nor this hypothesis')\n")
    (tmp_path / "mystore.py").write_text("from reference_store.memory import shared_store as make\n")
    completed = _cli("run", "mystore:make", "--profile", "quick", "--artifacts", str(tmp_path / "a"), cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr
    assert _report(tmp_path / "a")["conformant"]


def test_error_text_with_lone_surrogates_still_gives_a_valid_report(tmp_path):
    artifacts = tmp_path / "artifacts"
    completed = _cli("run", "tests.hostile_stores:surrogate_errors", "--profile", "quick", "--artifacts", str(artifacts),
                     *CONFLICT_TESTS)
    report = _report(artifacts)  # valid JSON, valid against the schema
    assert completed.returncode == 1
    assert any("\\udc80" in m for m in _outcome(report, "ES-SAVE-002")["messages"])


def test_a_result_that_blocks_when_read_cannot_hang_the_run(tmp_path):
    artifacts = tmp_path / "artifacts"
    completed = _cli("run", "tests.hostile_stores:lazy_rows", "--profile", "quick", "--timeout", "1",
                     "--artifacts", str(artifacts), "--", "-k", "test_reads_are_inclusive_and_ascending")
    report = _report(artifacts)
    assert completed.returncode == 1
    messages = _outcome(report, "ES-READ-001")["messages"]
    assert any("per-call timeout" in m or "treated as hung" in m for m in messages), messages


CHURN_TEST = ["--", "-k", "test_handles_created_and_dropped_during_writes"]


def test_a_handle_whose_finaliser_blocks_fails_the_handle_rule_and_the_run_ends(tmp_path):
    artifacts = tmp_path / "artifacts"
    completed = _cli("run", "tests.hostile_stores:blocking_finaliser", "--profile", "quick", "--timeout", "1",
                     "--artifacts", str(artifacts), *CHURN_TEST)
    report = _report(artifacts)
    assert completed.returncode == 1, completed.stdout[-3000:]
    messages = _outcome(report, "ES-HANDLE-001")["messages"]
    assert any("garbage collection did not finish" in m for m in messages), messages


def test_handles_that_never_answer_cost_the_churn_test_one_timeout(tmp_path):
    # Each handle the churn test makes has a driver of its own, whose first hung call waits out the
    # whole timeout: after one, the churn stops (it made 17 of them, 17 timeouts, before).  The other
    # hung call is the check after the churn, with a handle of its own.
    calls = tmp_path / "calls"
    completed = _cli("run", "tests.hostile_stores:silent_new_handles", "--profile", "quick", "--timeout", "1",
                     "--artifacts", str(tmp_path / "artifacts"), *CHURN_TEST, env={"HOSTILE_CALLS": str(calls)})
    assert completed.returncode == 1, completed.stdout[-3000:]
    assert "did not return within 1s" in completed.stdout
    assert calls.read_text().splitlines() == ["silent", "silent"]


def test_called_in_process_the_cli_stops_only_what_its_run_started(monkeypatch):
    # A test session (or any program) that calls cli.main() keeps its own servers: only processes
    # started during the run are the run's to stop.
    from aether_conformance import cli

    before = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    started: list[subprocess.Popen] = []

    def certify_starting_a_child(args, *outputs):
        started.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]))
        return 0

    monkeypatch.setattr(cli, "_certify", certify_starting_a_child)
    try:
        assert cli.main(["run", "reference_store.memory:shared_store"]) == 0
        assert _alive(before.pid), "the CLI stopped a process that was running before its run"
        assert started and started[0].wait(30) is not None
    finally:
        before.kill()
        before.wait()


def test_a_second_signal_as_the_suite_ends_keeps_what_the_suite_found(monkeypatch, tmp_path):
    # A CI runner that cancels a job signals the CLI and its process group alike: the first signal
    # stops pytest, the second can land after the suite wrote its report.  That report, failures
    # included, must survive, marked interrupted, not be replaced by an empty one.
    from aether_conformance import cli
    from aether_conformance.report import CaseOutcome, build_report, summarise, write_json_report

    artifacts = tmp_path / "artifacts"

    def suite_then_second_signal(args, artifacts_dir, extra_outputs):
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        args.suite_started = True
        failed = CaseOutcome(nodeid="suite/test_save.py::test_x", requirements=["ES-SAVE-002"], outcome="failed",
                             messages=["ES-SAVE-002: saved version 3 over 3; expected VersionConflictError"])
        write_json_report(build_report(args.store, args.profile, frozenset(), summarise([failed]), expected_tests=2,
                                       tests_ran=1), artifacts_dir / "report.json")
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_certify", suite_then_second_signal)
    monkeypatch.setattr(cli, "check_store", lambda spec, timeout: None)
    assert cli.main(["run", "reference_store.memory:shared_store", "--artifacts", str(artifacts)]) == 2
    report = _report(artifacts)
    assert not report["complete"] and not report["conformant"] and "interrupted" in report["incompleteReason"]
    assert _outcome(report, "ES-SAVE-002")["outcome"] == "failed" and report["tests"]["ran"] == 1


def test_a_store_that_kills_every_worker_at_once_is_still_not_conformant(tmp_path):
    # No worker lives to say what it collected, so no test counts as run; the deaths are failures found.
    (tmp_path / "dies_at_once.py").write_text(
        "import os\nfrom tests.zoo.base import CorrectStore, ShareState\n"
        "class DiesAtOnce(CorrectStore):\n    def save_event(self, event):\n        os._exit(3)\n"
        "def make():\n    return DiesAtOnce(ShareState())\n")
    artifacts = tmp_path / "artifacts"
    completed = _cli("run", "dies_at_once:make", "--profile", "quick", "--artifacts", str(artifacts),
                     "--", "-k", "test_first_event_at_version_1_is_accepted", "--max-worker-restart", "0",
                     cwd=tmp_path, timeout=300)
    report = _report(artifacts)
    assert completed.returncode == 1, completed.stdout[-3000:] + completed.stderr
    assert not report["conformant"] and any("exited with code 3" in m for m in _outcome(report, "ES-SAVE-001")["messages"])


def test_a_test_that_fails_on_one_of_the_requirements_it_cites_blocks_the_others_it_alone_covers():
    """A MAY's test (ES-ID-002) also cites the MUST an accepting store breaks (ES-READ-003): the
    failure is the MUST's; the MAY is blocked by it, neither failed nor 'no test ran'."""
    from aether_conformance.report import CaseOutcome, summarise

    may_test = CaseOutcome(nodeid="suite/test_refusals.py::test_empty_id", requirements=["ES-ID-002", "ES-READ-003"],
                           outcome="failed", messages=["ES-READ-003: accepted, but reads back changed"])
    round_trip = CaseOutcome(nodeid="suite/test_read.py::test_round_trip", requirements=["ES-READ-003"],
                             outcome="passed", messages=[])
    outcomes = {r.requirement.id: r for r in summarise([may_test, round_trip])}
    assert outcomes["ES-READ-003"].outcome == "failed"
    assert outcomes["ES-ID-002"].outcome == "blocked" and outcomes["ES-ID-002"].blocked_by == ["ES-READ-003"]
    assert not outcomes["ES-ID-002"].messages


def _failed(nodeid: str, requirements: list[str], message: str, presupposes: tuple[str, ...] = ()):
    from aether_conformance.report import CaseOutcome

    return CaseOutcome(nodeid=nodeid, requirements=requirements, outcome="failed", messages=[message],
                       presupposes=list(presupposes))


def test_a_failed_test_is_blocked_by_a_failed_requirement_it_presupposes():
    """A store that accepts an equal version also lets two racing writers both win: the race is the
    same bug, so the report fails ES-SAVE-002 alone and ES-CONC-001 is blocked by it, whatever
    order the outcomes arrive in (xdist sends them as workers finish)."""
    from aether_conformance.report import summarise

    sequential = _failed("suite/test_save.py::test_equal", ["ES-SAVE-002"], "ES-SAVE-002: accepted version 3 at latest 3")
    race = _failed("suite/test_concurrency.py::test_race", ["ES-CONC-001"], "ES-CONC-001: two writers won version 4",
                   presupposes=("ES-SAVE-001", "ES-SAVE-002"))
    snapshots = _failed("suite/test_concurrency.py::test_snapshots", ["SS-SNAP-002", "ES-CONC-001"],
                        "SS-SNAP-002: snapshot 7 lost to 5", presupposes=("ES-SAVE-002", "ES-CONC-001"))
    for order in ([sequential, race, snapshots], [snapshots, race, sequential]):
        outcomes = {r.requirement.id: r for r in summarise(order)}
        assert outcomes["ES-SAVE-002"].outcome == "failed"
        assert outcomes["ES-CONC-001"].outcome == "blocked" and outcomes["ES-CONC-001"].blocked_by == ["ES-SAVE-002"]
        assert outcomes["SS-SNAP-002"].outcome == "blocked"
        assert not outcomes["ES-CONC-001"].messages


def test_a_failed_test_whose_presuppositions_held_is_charged_and_blocks_the_tests_that_wait_on_it():
    """Only a racy store: the race is ES-CONC-001's, and the concurrent snapshot test, which
    presupposes ES-CONC-001, is blocked by it rather than failing SS-SNAP-002 too."""
    from aether_conformance.report import CaseOutcome, summarise

    passed = CaseOutcome(nodeid="suite/test_save.py::test_equal", requirements=["ES-SAVE-002"], outcome="passed",
                         messages=[])
    race = _failed("suite/test_concurrency.py::test_race", ["ES-CONC-001"], "ES-CONC-001: two writers won version 4",
                   presupposes=("ES-SAVE-002",))
    snapshots = _failed("suite/test_concurrency.py::test_snapshots", ["SS-SNAP-002"], "SS-SNAP-002: snapshot 7 lost",
                        presupposes=("ES-SAVE-002", "ES-CONC-001"))
    for order in ([snapshots, race, passed], [passed, race, snapshots]):
        outcomes = {r.requirement.id: r for r in summarise(order)}
        assert outcomes["ES-SAVE-002"].outcome == "passed"
        assert outcomes["ES-CONC-001"].outcome == "failed"
        assert outcomes["ES-CONC-001"].messages == ["ES-CONC-001: two writers won version 4"]
        assert outcomes["SS-SNAP-002"].outcome == "blocked" and outcomes["SS-SNAP-002"].blocked_by == ["ES-CONC-001"]


def test_a_test_module_that_cannot_be_collected_makes_the_run_incomplete(tmp_path):
    # xdist hands the controller its workers' collection errors, which no test count shows: a suite
    # module that does not import (here one more module beside the suite) must not leave a verdict.
    broken = tmp_path / "test_does_not_import.py"
    broken.write_text("def test_x(:\n    pass\n")
    artifacts = tmp_path / "artifacts"
    completed = _cli("run", "reference_store.memory:shared_store", "--profile", "quick", "--artifacts", str(artifacts),
                     "--", str(broken), "-k", "test_first_event_at_version_1 or test_x")
    assert completed.returncode == 2, completed.stdout[-3000:] + completed.stderr
    report = _report(artifacts)
    assert not report["complete"] and not report["conformant"]
    assert "could not be collected" in report["incompleteReason"] and "SyntaxError" in report["incompleteReason"]
