"""The pytest plugin: which store to certify, fixtures for the suite, per-requirement reporting.

Registered as a ``pytest11`` entry point, so it is loaded in every pytest
run; it stays inert unless the suite's tests (those marked
``@pytest.mark.requirement``) are collected.

Options (each has an ini key; a command-line option beats the ini key)::

    --aether-store MODULE:ATTR      aether_store
    --aether-capability NAME        aether_capabilities   (repeatable / one per line)
    --aether-profile NAME           aether_profile        (quick, default, thorough)
    --aether-timeout SECONDS        aether_timeout        (per store call)
    --aether-json-report PATH
    --aether-faults NAMES           (comma-separated; declares capability "faults")
    --aether-fault-seed N
    --aether-artifacts DIR          (histories of failed concurrency tests and other details)

Crash containment: a store that kills its process takes the pytest process
with it.  Under pytest-xdist (the CLI always runs the suite on at least one
xdist worker) the controller survives: the test that was running is reported
failed, for its requirements, with the worker's exit code or signal, and the
rest of the run goes on.  Whatever happens, the report says whether the run
was *complete*: every collected conformance test ran and nothing interrupted
it.  An incomplete run is never conformant.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import random
import signal
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import driver as driver_module
from .driver import DrivenHandle, StoreDriver, StoreLoadError, StoreMisbehaviour, ensure_import_path, load_factory
from .faults import FAULT_RUN_KEY
from .profiles import PROFILES, Profile
from .report import (
    IN_PROGRESS,
    RUNNING_FILE,
    CaseOutcome,
    RequirementOutcome,
    build_report,
    capability_skip_reason,
    cited_ids,
    summarise,
    verdict,
    write_json_report,
)
from .replay import write_reproduction
from .requirements import CAPABILITIES, DETECTED_CAPABILITIES, requirement

REQUIREMENTS_KEY = "aether_requirements"
PRESUPPOSES_KEY = "aether_presupposes"
MESSAGES_KEY = "aether_messages"
STATISTICS_KEY = "aether_statistics"  # tests record the load they put on the store under this key


@dataclass
class ConformanceRun:
    """What this pytest session certifies, and what it has learnt so far."""

    store: str | None
    store_source: str
    capabilities: frozenset[str]
    profile: Profile
    timeout: float
    json_report: str | None
    # Faults to inject in test_faults (ES-FAULT-001), and the seed of their schedule.
    faults: tuple[str, ...] = ()
    fault_seed: int | None = None
    artifacts: str | None = None
    outcomes: list[CaseOutcome] = field(default_factory=list)
    # Every conformance test collected (before -k, --deselect, --lf): node id -> requirement IDs.
    expected: dict[str, list[str]] | None = None
    expected_sent: bool = False
    implementation: dict[str, str] = field(default_factory=dict)
    # Capabilities learnt from the handle rather than from requirements' outcomes ("asyncio").
    detected: frozenset[str] = frozenset()
    statistics: dict[str, int] = field(default_factory=dict)
    # What each fault test injected and settled (faults.FAULT_RUN_KEY), for the report's "faults".
    fault_runs: list[dict[str, Any]] = field(default_factory=list)
    requirement_outcomes: list[RequirementOutcome] | None = None
    report: dict[str, Any] | None = None
    # Suite modules that failed to collect: their tests are in no count, so the run cannot be complete.
    collection_errors: list[str] = field(default_factory=list)


run_key = pytest.StashKey[ConformanceRun]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("aether-conformance", "aether event store conformance")
    group.addoption("--aether-store", metavar="MODULE:ATTR", help="zero-argument factory of the store under test")
    group.addoption(
        "--aether-capability", action="append", default=None, metavar="NAME",
        help=f"declare a store capability (repeatable): "
             f"{', '.join(n for n in CAPABILITIES if n not in DETECTED_CAPABILITIES)}",
    )
    group.addoption("--aether-profile", choices=sorted(PROFILES), help="how hard to push (default: default)")
    group.addoption("--aether-timeout", type=float, metavar="SECONDS", help="per store call (default: 10)")
    group.addoption("--aether-json-report", metavar="PATH", help="write the per-requirement JSON report here")
    group.addoption("--aether-faults", metavar="NAMES",
                    help="inject these faults (comma-separated, e.g. kill,pause,partition) from the fault provider; "
                         "declares capability faults")
    group.addoption("--aether-fault-seed", type=int, metavar="N", help="seed of the fault schedule (default: random)")
    group.addoption("--aether-artifacts", metavar="DIR", help="keep failure details (histories) in this directory")
    parser.addini("aether_store", "zero-argument factory of the store under test (MODULE:ATTR)")
    parser.addini("aether_capabilities", "declared store capabilities", type="args", default=[])
    parser.addini("aether_profile", "conformance profile: quick, default or thorough", default="default")
    parser.addini("aether_timeout", "per store call timeout in seconds", default="10")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from .faults import FaultHookSpecs

    pluginmanager.add_hookspecs(FaultHookSpecs)


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") and os.environ.pop("AETHER_CONFORMANCE_SAFEPATH", None):
        os.environ.pop("PYTHONSAFEPATH", None)  # set by the CLI for starting xdist workers only
    config.addinivalue_line(
        "markers", "requirement(*ids): the catalog requirement(s) this conformance test checks"
    )
    config.addinivalue_line(
        "markers", "presupposes(*ids): requirements this test's verdict rests on; when the store's own tests "
                   "of one failed, this test's failure is reported as blocked by it"
    )
    store, source = config.getoption("aether_store"), "--aether-store"
    if not store:
        store = config.getini("aether_store") or None
        source = f"ini key aether_store in {config.inipath}" if store else "not configured"
    capabilities = config.getoption("aether_capability")
    if capabilities is None:
        capabilities = config.getini("aether_capabilities")
    unknown = sorted(set(capabilities) - set(CAPABILITIES))
    if unknown:
        raise pytest.UsageError(
            f"unknown capability {', '.join(unknown)}; known: {', '.join(CAPABILITIES)}"
        )
    for detected in DETECTED_CAPABILITIES:
        if detected in capabilities:
            raise pytest.UsageError(f"capability {detected!r} is detected from the store handle, not declared")
    faults = _fault_names(config.getoption("aether_faults"))
    if "faults" in capabilities and not faults:
        raise pytest.UsageError("capability 'faults' is declared by --aether-faults NAMES, not on its own")
    if faults:
        capabilities = [*capabilities, "faults"]
    profile_name = config.getoption("aether_profile") or config.getini("aether_profile")
    if profile_name not in PROFILES:
        raise pytest.UsageError(f"unknown profile {profile_name!r}; known: {', '.join(PROFILES)}")
    timeout = config.getoption("aether_timeout") or _float(config.getini("aether_timeout"))
    if not math.isfinite(timeout) or timeout <= 0:
        raise pytest.UsageError(f"aether-conformance: the per-call timeout must be a finite number of seconds above 0, "
                                f"got {timeout!r}")
    if store:
        # As the CLI does (and `python -m pytest` would): the store's package may sit, uninstalled,
        # in the directory pytest was started from.
        ensure_import_path(str(config.invocation_params.dir))
    run = ConformanceRun(
        store=store,
        store_source=source,
        capabilities=frozenset(capabilities),
        profile=PROFILES[profile_name],
        timeout=timeout,
        json_report=config.getoption("aether_json_report"),
        faults=faults,
        fault_seed=config.getoption("aether_fault_seed"),
        artifacts=config.getoption("aether_artifacts"),
    )
    config.stash[run_key] = run
    config.pluginmanager.register(
        ConformanceReporter(run, on_worker=hasattr(config, "workerinput")), "aether-conformance-reporter"
    )


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise pytest.UsageError(f"aether-conformance: aether_timeout must be a number of seconds, got {text!r}") from None


def _fault_names(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    from .faults import parse_fault_names

    try:
        return parse_fault_names(text)
    except ValueError as error:
        raise pytest.UsageError(f"--aether-{error}") from None


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    run = config.stash[run_key]
    if run.store is None:
        return None
    return [
        f"aether-conformance: store {run.store} (from {run.store_source}); profile {run.profile.name}; "
        f"declared capabilities: {', '.join(sorted(run.capabilities)) or 'none'}; call timeout {run.timeout:g}s"
    ]


def _requirement_ids(item: pytest.Item) -> list[str]:
    return [req_id for mark in item.iter_markers("requirement") for req_id in mark.args]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run = config.stash[run_key]
    conformance_items = [item for item in items if _requirement_ids(item)]
    if not conformance_items:
        return
    if run.store is None:
        raise pytest.UsageError(
            "aether-conformance: no store to certify; pass --aether-store MODULE:ATTR or set the "
            "aether_store ini key"
        )
    try:
        load_factory(run.store)  # a configuration problem is one line, not one error per test
    except StoreLoadError as error:
        raise pytest.UsageError(
            f"aether-conformance: {error} (the store's package must be installed, or importable from "
            f"the directory pytest runs in, {config.invocation_params.dir})"
        ) from None
    items.sort(key=lambda item: _suite_rank(item) if _requirement_ids(item) else -1)  # stable
    for item in conformance_items:
        ids = _requirement_ids(item)
        presupposed = [req_id for mark in item.iter_markers("presupposes") for req_id in mark.args]
        for req_id in ids + presupposed:
            requirement(req_id)  # an unknown id is a bug in the suite: fail collection loudly
        item.user_properties.append((REQUIREMENTS_KEY, ids))
        if presupposed:
            item.user_properties.append((PRESUPPOSES_KEY, presupposed))
        declared = [requirement(i).capability for i in ids if requirement(i).capability not in (None, "snapshots")]
        missing = sorted({cap for cap in declared if cap not in run.capabilities})
        if missing:
            item.add_marker(pytest.mark.skip(reason=capability_skip_reason(missing[0], declared=True)))


# Focused example tests first, property and concurrency tests last: with -x the run stops at
# the most specific message, and cheap checks report before expensive ones.
SUITE_ORDER = ("test_save", "test_errors", "test_read", "test_actors", "test_boundaries", "test_refusals",
               "test_handles", "test_snapshots", "test_streams", "test_concurrency", "test_properties", "test_faults",
               # Last: actors written when the session began, checked again after everything else ran.
               "test_revisit")

def _suite_rank(item: pytest.Item) -> int:
    module = getattr(item, "module", None)
    name = module.__name__.rpartition(".")[2] if module is not None else ""
    return SUITE_ORDER.index(name) if name in SUITE_ORDER else len(SUITE_ORDER)



@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    # Every store call of a conformance test is logged, setup included, for its reproduction script.
    driver_module.running_requirements = tuple(_requirement_ids(item))
    driver_module.call_log = driver_module.CallLog() if driver_module.running_requirements else None
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        return (yield)
    except StoreMisbehaviour as error:
        # Name the requirement(s) the test was checking when the store misbehaved.
        ids = _requirement_ids(item)
        if ids and not cited_ids(str(error)):
            error.args = (f"{', '.join(ids)}: {error}",)
        raise


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    # A conformance test's body runs on a test thread, where its sync store calls are made directly
    # (each still timed) rather than each handed to a worker thread: see driver.run_test_body.
    if not _requirement_ids(pyfuncitem):
        return None
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    driver_module.run_test_body(lambda: pyfuncitem.obj(**arguments))
    return True


EXPECTED_KEY = "aether_expected"  # the first report of each session carries what it collected


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report = yield
    ids = _requirement_ids(item)
    if report.failed and call.excinfo is not None and ids:
        messages = [m.encode("utf-8", "backslashreplace").decode("utf-8") for m in _leaf_messages(call.excinfo.value, ids)]
        report.user_properties.append((MESSAGES_KEY, messages))
        if not _encodable(str(report.longrepr)):
            report.longrepr = "\n".join(messages)  # what xdist and JUnit can carry
        # A store that can show what crossed its wire (a process store) explains the failure with it.
        transcript = getattr(getattr(getattr(item, "funcargs", {}).get("store"), "raw", None), "transcript", None)
        if callable(transcript):
            report.sections.append(("aether-store/1 transcript (last lines; → to the store, ← from it)", transcript()))
    run = item.config.stash[run_key]
    if report.failed and ids and run.artifacts and driver_module.call_log is not None:
        _attach_reproduction(item, report, run, ids)
    if ids and run.expected and not run.expected_sent:
        # Under xdist only the workers collect, and a worker the store kills never finishes:
        # the controller learns what the run should cover from the first report it gets.
        report.user_properties.append((EXPECTED_KEY, run.expected))
        run.expected_sent = True
    return report


REPRODUCTION_KEY = "aether_reproduction"
# Races are not replayed one call at a time: their histories (and a re-run) reproduce them.
_NOT_REPLAYABLE = ("ES-CONC-001", "ES-CONC-002")


def _attach_reproduction(item: pytest.Item, report: pytest.TestReport, run: ConformanceRun, ids: list[str]) -> None:
    calls = driver_module.call_log.calls if driver_module.call_log is not None else []
    messages = dict(report.user_properties).get(MESSAGES_KEY) or [f"{item.nodeid} failed"]
    cited = cited_ids(messages[0]) or ids
    if not calls or set(cited) & set(_NOT_REPLAYABLE) or dict(report.user_properties).get(REPRODUCTION_KEY):
        return
    path = write_reproduction(run.artifacts, item.nodeid, cited[0], run.store or "", messages[0], list(calls), run.timeout)
    report.user_properties.append((REPRODUCTION_KEY, str(path)))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _leaf_messages(error: BaseException, ids: list[str]) -> list[str]:
    """One message per failure; hypothesis reports several distinct bugs as an exception group."""
    if isinstance(error, BaseExceptionGroup):
        return [message for sub in error.exceptions for message in _leaf_messages(sub, ids)]
    text = str(error).strip()
    if isinstance(error, AssertionError) or text.startswith("aether-conformance: "):
        return [text or type(error).__name__]
    # Not a verdict the suite reached, but an exception its checking code ran into, because the
    # store's answers were not what the check could examine (a missing event, a None).  Say so,
    # under the requirement being checked, instead of handing over a bare IndexError.
    where = ""
    if error.__traceback__ is not None:
        frame = error.__traceback__
        while frame.tb_next is not None:
            frame = frame.tb_next
        where = f" at {os.path.basename(frame.tb_frame.f_code.co_filename)}:{frame.tb_lineno}"
    return [f"{', '.join(ids)}: the check could not be completed: the store's answers led the test to "
            f"{type(error).__name__}: {text}{where} (if the store answered correctly, this is a bug in the kit)"]


def _requirements_of(nodeid: str) -> list[str]:
    """The requirement IDs of a suite test, from its node id alone (the xdist controller collects nothing)."""
    path, _, name = nodeid.partition("::")
    module = os.path.basename(path).removesuffix(".py")
    try:
        function = getattr(importlib.import_module(f"aether_conformance.suite.{module}"), name.partition("[")[0])
    except (ImportError, AttributeError, ValueError):
        return []
    return [req_id for mark in getattr(function, "pytestmark", []) if mark.name == "requirement" for req_id in mark.args]


def _death(worker: Any) -> str:
    """How an xdist worker's process ended: its exit code, or the signal that killed it."""
    popen = getattr(getattr(getattr(worker, "gateway", None), "_io", None), "popen", None)
    code = None
    if popen is not None:
        try:
            code = popen.wait(timeout=10)
        except Exception:  # still running or not ours to wait for: report what is known
            code = popen.returncode
    if code is None:
        return "the process ended without reporting (exit status unknown)"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the process was killed by {name}" + (" (out of memory?)" if -code == signal.SIGKILL else "")
    return f"the process exited with code {code}"


class ConformanceReporter:
    """Collects per-test outcomes by requirement and writes the verdict (on the xdist controller)."""

    def __init__(self, run: ConformanceRun, on_worker: bool) -> None:
        self.run = run
        self.on_worker = on_worker  # an xdist worker: it forwards reports, the controller decides

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> Iterator[None]:
        # Outermost, so it sees every test before -k, --deselect or --lf filter them: the run is
        # complete only if all of these ran.
        expected = {item.nodeid: _requirement_ids(item) for item in items if _requirement_ids(item)}
        if expected:
            self.run.expected = expected
        return (yield)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        # xdist hands the controller its workers' failed collections here too.
        if report.failed:
            last = str(report.longrepr).strip().splitlines()[-1:] or ["(no detail)"]
            where = report.nodeid or str(getattr(report, "fspath", "") or "the suite")
            self.run.collection_errors.append(f"{where}: {last[0][:300]}")

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched: Any) -> None:
        """xdist: the worker running ``crashitem`` died; the store took the process down with it."""
        ids = (self.run.expected or {}).get(crashitem) or _requirements_of(crashitem)
        if not ids:
            return
        message = (f"{', '.join(ids)}: the store ended the test process while {crashitem.rpartition('::')[2]} "
                   f"was running: {_death(getattr(report, 'node', None))}; a store must never exit, crash or "
                   "kill its caller")
        report.longrepr = message
        report.user_properties = [(REQUIREMENTS_KEY, ids), (MESSAGES_KEY, [message])]

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist: a worker finished; it sends what the store said it is."""
        output = getattr(node, "workeroutput", None) or {}
        if output.get("aether_implementation") and not self.run.implementation:
            self.run.implementation = output["aether_implementation"]
        self.run.detected |= frozenset(output.get("aether_detected", ()))

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        run = self.run
        if run.json_report and run.store and not self.on_worker:
            # Until the run ends, the report on disk says it is incomplete: a run that dies
            # half-way leaves that behind, never a stale verdict from an earlier run.
            write_json_report(self._report(incomplete_reason=IN_PROGRESS), run.json_report)

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        ids = (self.run.expected or {}).get(nodeid)
        if ids and self.run.artifacts and not self.on_worker:
            path = Path(self.run.artifacts) / RUNNING_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"nodeid": nodeid, "requirements": ids}), encoding="utf-8")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        if EXPECTED_KEY in properties and not self.on_worker:
            self.run.expected = {**(self.run.expected or {}), **properties[EXPECTED_KEY]}
            # consumed here; JUnit and other reporters need not carry it
            report.user_properties = [p for p in report.user_properties if p[0] != EXPECTED_KEY]
        ids = properties.get(REQUIREMENTS_KEY)
        if not ids:
            return
        if report.when == "call":
            for name, count in properties.get(STATISTICS_KEY, {}).items():
                self.run.statistics[name] = self.run.statistics.get(name, 0) + count
            if FAULT_RUN_KEY in properties:
                self.run.fault_runs.append(properties[FAULT_RUN_KEY])
        if report.failed:
            outcome = "failed"
        elif report.skipped:
            outcome = "skipped"
        elif report.when == "call":
            outcome = "passed"
        else:
            return
        messages = list(properties.get(MESSAGES_KEY, []))
        if report.skipped and isinstance(report.longrepr, tuple):
            messages = [report.longrepr[2].removeprefix("Skipped: ")]
        self.run.outcomes.append(CaseOutcome(nodeid=report.nodeid, requirements=ids, outcome=outcome, messages=messages,
                                             reproduction=properties.get(REPRODUCTION_KEY),
                                             presupposes=properties.get(PRESUPPOSES_KEY, [])))

    def _report(self, incomplete_reason: str | None = None) -> dict[str, Any]:
        run = self.run
        run.requirement_outcomes = summarise(run.outcomes, run.expected)
        ran = {outcome.nodeid for outcome in run.outcomes}
        return build_report(
            run.store or "", run.profile.name, run.capabilities | run.detected, run.requirement_outcomes, run.statistics,
            expected_tests=len(run.expected) if run.expected is not None else None,
            tests_ran=len(ran & set(run.expected or ())), incomplete_reason=incomplete_reason,
            implementation=run.implementation, fault_runs=run.fault_runs,
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        run = self.run
        if run.artifacts and not self.on_worker:
            (Path(run.artifacts) / RUNNING_FILE).unlink(missing_ok=True)
        if self.on_worker:
            # xdist workers send their reports to the controller, which decides; it also needs
            # what the store said it is.
            session.config.workeroutput["aether_implementation"] = run.implementation
            session.config.workeroutput["aether_detected"] = sorted(run.detected)
            return
        if not run.outcomes:
            if run.store is not None and exitstatus == pytest.ExitCode.OK:
                # A configured store with no conformance test run proves nothing: fail loudly.
                session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED
            return
        failures = sum(outcome.outcome == "failed" for outcome in run.outcomes)
        stopped_by_maxfail = 0 < (session.config.option.maxfail or 0) <= failures  # -x: a partial run, not an interrupt
        interrupted = {
            pytest.ExitCode.INTERRUPTED: None if stopped_by_maxfail else "the run was interrupted before it finished",
            pytest.ExitCode.INTERNAL_ERROR: "pytest stopped with an internal error",
        }.get(exitstatus)
        if interrupted is None and run.collection_errors:
            interrupted = (f"{len(run.collection_errors)} suite module(s) could not be collected, so their tests are "
                           f"in no count; first: {run.collection_errors[0]}")
        run.report = self._report(incomplete_reason=interrupted)
        if run.json_report:
            write_json_report(run.report, run.json_report)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        run = self.run
        if run.report is None:
            if run.store is not None:
                terminalreporter.section("aether-conformance")
                terminalreporter.write_line(
                    f"no conformance test ran against {run.store} (the suite is collected with "
                    "`--pyargs aether_conformance.suite`)", red=True,
                )
                for error in run.collection_errors:
                    terminalreporter.write_line(f"could not collect {error}", red=True)
            return
        terminalreporter.section("aether-conformance")
        blocked: dict[str, list[str]] = {}  # root(s) -> the requirements they block, one line each
        for outcome in run.requirement_outcomes or ():
            if outcome.outcome == "blocked":
                blocked.setdefault(", ".join(outcome.blocked_by), []).append(
                    f"{outcome.requirement.id} ({outcome.requirement.level.value})")
            if outcome.outcome == "failed":
                first = outcome.messages[0].splitlines()[0] if outcome.messages else ""
                if len(first) > 400:
                    first = first[:397] + "..."
                terminalreporter.write_line(
                    f"FAILED {outcome.requirement.id} ({outcome.requirement.level.value}) {first}", red=True
                )
                if outcome.reproduction:
                    terminalreporter.write_line(f"    reproduce: python {outcome.reproduction}")
                if outcome.failed_test:
                    name = outcome.failed_test.rpartition("::")[2].partition("[")[0]
                    terminalreporter.write_line(f"    re-run:    aether-conformance run {run.store} -- -k {name}")
        for roots, requirements in blocked.items():
            terminalreporter.write_line(f"BLOCKED by {roots}: {', '.join(requirements)}", yellow=True)
        report = run.report
        counts = report["summary"]
        state = verdict(report)
        terminalreporter.write_line(
            f"{run.store}: {state}: requirements passed {counts['passed']}, failed {counts['failed']}, "
            f"blocked {counts['blocked']}, skipped {counts['skipped']}; MUST {report['mustPassed']}/"
            f"{report['mustApplicable']}" + (f"; JSON report: {run.json_report}" if run.json_report else ""),
            green=state == "CONFORMANT", red=state != "CONFORMANT",
        )
        if not report["complete"]:
            terminalreporter.write_line(f"incomplete: {report['incompleteReason']}", red=True)


# -- fixtures used by the suite -------------------------------------------------------------


@pytest.fixture(scope="session")
def aether_run(pytestconfig: pytest.Config) -> ConformanceRun:
    return pytestconfig.stash[run_key]


@pytest.fixture(scope="session")
def aether_profile(aether_run: ConformanceRun) -> Profile:
    return aether_run.profile


@pytest.fixture(scope="session")
def aether_driver(aether_run: ConformanceRun) -> Iterator[StoreDriver]:
    try:
        driver = StoreDriver(aether_run.store or "", timeout=aether_run.timeout)
    except StoreLoadError as error:
        pytest.fail(f"aether-conformance: {error}", pytrace=False)
    yield driver
    driver.close()


@pytest.fixture(scope="session")
def store(aether_driver: StoreDriver, aether_run: ConformanceRun) -> DrivenHandle:
    """The primary handle of the store under test."""
    try:
        handle = aether_driver.new_handle()
        aether_run.implementation = aether_driver.implementation
        if aether_driver.is_async:
            aether_run.detected |= {"asyncio"}
        return handle
    except StoreLoadError as error:
        # Every test that needs the store then errors with this one clear line.
        pytest.fail(f"aether-conformance: {error}", pytrace=False)


@pytest.fixture(scope="session")
def other_store(aether_driver: StoreDriver, store: DrivenHandle) -> DrivenHandle:
    """A second handle from the same factory: it must see everything the first one sees."""
    return aether_driver.new_handle()


@pytest.fixture(scope="session")
def snapshot_store(store: DrivenHandle) -> DrivenHandle:
    if not store.driver.has_snapshots:
        pytest.skip(capability_skip_reason("snapshots", declared=False))
    return store


@pytest.fixture(scope="session")
def async_store(store: DrivenHandle) -> DrivenHandle:
    """The store, when its save_event is ``async def``: what only asyncio callers can do to it."""
    if not store.driver.is_async:
        pytest.skip(capability_skip_reason("asyncio", declared=False))
    return store


@pytest.fixture(scope="session")
def revisit_plants(store: DrivenHandle, other_store: DrivenHandle, worker_id_prefix: str) -> Any:
    """Actors written as the session's first conformance test starts, checked again by the last one.

    ``fresh_actor`` requests this fixture, so (nearly) every conformance test does: in each
    session, xdist workers included, the actors are written before anything else runs.  Before
    them, the second handle asks for a snapshot, as a client that starts before any snapshot
    exists does: a handle that remembers the store had none (a lazily created table it probed
    once) misses every later one, which the handle tests then see.
    """
    from .suite.support import plant_revisit_actors

    # These calls are no test's own (a thousand of them), so the reproduction of the test whose
    # setup runs them leaves them out.
    log, driver_module.call_log = driver_module.call_log, None
    try:
        if store.driver.has_snapshots:
            try:
                other_store.get_latest_snapshot(_ActorIds(worker_id_prefix)("probe"))
            except StoreMisbehaviour:
                pass  # what the store does wrong here, the snapshot tests see again and report
        return plant_revisit_actors(store, _ActorIds(worker_id_prefix))
    finally:
        driver_module.call_log = log


@pytest.fixture(scope="session")
def fresh_actor(worker_id_prefix: str, revisit_plants: Any) -> Any:
    """Return a function giving actor ids never used before, so no test needs a reset.

    Ids come in random shapes and lengths (alphabets, separators, case, non-ASCII
    decorations, the label at either end or left out), drawn anew every run, so a
    store cannot recognise the kit's ids and treat them differently from its users'.
    Each id holds at least 64 random bits, so runs sharing a long-lived store never
    collide.  Ids stay under 100 characters; ``label`` only makes messages readable.
    """
    return _ActorIds(worker_id_prefix)


class _ActorIds:
    _ALPHABETS = ("0123456789abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
                  "0123456789ABCDEFGHJKMNPQRSTVWXYZabcdefghjkmnpqrstvwxyz", "0123456789")
    _SEPARATORS = ("-", "_", ".", ":", "/", " ", "|", "#", "")
    _DECORATIONS = ("order", "Cart", "USER", "acct", "tenant7", "com.example", "Zoë", "注文", "α", "🦀", "v2", "x")

    def __init__(self, worker_id_prefix: str) -> None:
        # Seeded from the per-run, per-worker prefix: shapes differ between runs and workers.
        self._rng = random.Random(f"{worker_id_prefix}-{uuid.uuid4().hex}")
        self._lock = threading.Lock()

    def __call__(self, label: str = "actor") -> str:
        with self._lock:
            rng = self._rng
            alphabet = rng.choice(self._ALPHABETS)
            # >= 64 random bits whatever the alphabet (log2(10) * 20 > 66).
            length = {10: 20, 32: 13, 36: 13, 54: 12}[len(alphabet)] + rng.randrange(0, 12)
            core = "".join(rng.choice(alphabet) for _ in range(length))
            sep = rng.choice(self._SEPARATORS)
            parts = [core]
            for _ in range(rng.randrange(0, 3)):
                parts.insert(rng.randrange(0, len(parts) + 1), rng.choice(self._DECORATIONS))
            if label and rng.random() < 0.7:
                parts.insert(0 if rng.random() < 0.5 else len(parts), label)
            return sep.join(parts)


@pytest.fixture(scope="session")
def worker_id_prefix() -> str:
    # Unique per run and per xdist worker: tests can share a long-lived server.
    return f"{uuid.uuid4().hex[:10]}{os.environ.get('PYTEST_XDIST_WORKER', '')}"


@pytest.fixture(scope="session")
def aether_nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real nats-server with JetStream on 127.0.0.1 and a free port, for the session (per xdist worker).

    Needs the ``[jetstream]`` extra; the server is stopped by PID at the end.
    """
    from .nats_server import NatsServer

    with NatsServer(store_dir=tmp_path_factory.mktemp("jetstream")) as server:
        yield server


@pytest.fixture(scope="session")
def aether_nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A 3-node JetStream cluster on 127.0.0.1 with proxied routes, for the session (per xdist worker).

    See :class:`aether_conformance.nats_cluster.NatsCluster` for its faults; every node is stopped by PID.
    """
    from .nats_cluster import NatsCluster

    with NatsCluster(3, base_dir=tmp_path_factory.mktemp("jetstream-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def aether_faults(pytestconfig: pytest.Config, aether_run: ConformanceRun) -> Any:
    """The configured faults: their provider (from the pytest_aether_fault_provider hook), names and seed."""
    from .faults import FaultSetup

    if not aether_run.faults:
        pytest.skip(capability_skip_reason("faults", declared=True))
    provider = pytestconfig.hook.pytest_aether_fault_provider(config=pytestconfig)
    if provider is None:
        pytest.fail(
            f"aether-conformance: faults {', '.join(aether_run.faults)} were asked for but no plugin provides "
            "faults: start a NATS cluster with --nats-cluster N, or load the store's fault plugin "
            "(one implementing pytest_aether_fault_provider) with -p; pytest-xdist workers (-n) do not see a "
            "provider handed to the controlling process, such as the CLI's cluster: run faults without -n",
            pytrace=False,
        )
    return FaultSetup(provider=provider, names=aether_run.faults, seed=aether_run.fault_seed)


@pytest.fixture(scope="session")
def aether_postgres_server() -> Iterator[Any]:
    """A real PostgreSQL on 127.0.0.1 and a free port, in a temporary cluster, for the session (per xdist worker).

    Needs PostgreSQL on PATH or the ``[postgres]`` extra; stopped by PID and removed at the end.
    """
    from .postgres_server import PostgresServer

    with PostgresServer() as server:
        yield server
