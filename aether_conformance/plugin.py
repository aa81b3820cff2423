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
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from .driver import DrivenHandle, StoreDriver, StoreLoadError, StoreMisbehaviour
from .profiles import PROFILES, Profile
from .report import (
    CaseOutcome,
    RequirementOutcome,
    build_report,
    capability_skip_reason,
    cited_ids,
    summarise,
    write_json_report,
)
from .requirements import CAPABILITIES, requirement

REQUIREMENTS_KEY = "aether_requirements"
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
    outcomes: list[CaseOutcome] = field(default_factory=list)
    statistics: dict[str, int] = field(default_factory=dict)
    requirement_outcomes: list[RequirementOutcome] | None = None
    report: dict[str, Any] | None = None


run_key = pytest.StashKey[ConformanceRun]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("aether-conformance", "aether event store conformance")
    group.addoption("--aether-store", metavar="MODULE:ATTR", help="zero-argument factory of the store under test")
    group.addoption(
        "--aether-capability", action="append", default=None, metavar="NAME",
        help=f"declare a store capability (repeatable): {', '.join(n for n in CAPABILITIES if n != 'snapshots')}",
    )
    group.addoption("--aether-profile", choices=sorted(PROFILES), help="how hard to push (default: default)")
    group.addoption("--aether-timeout", type=float, metavar="SECONDS", help="per store call (default: 10)")
    group.addoption("--aether-json-report", metavar="PATH", help="write the per-requirement JSON report here")
    parser.addini("aether_store", "zero-argument factory of the store under test (MODULE:ATTR)")
    parser.addini("aether_capabilities", "declared store capabilities", type="args", default=[])
    parser.addini("aether_profile", "conformance profile: quick, default or thorough", default="default")
    parser.addini("aether_timeout", "per store call timeout in seconds", default="10")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requirement(*ids): the catalog requirement(s) this conformance test checks"
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
    if "snapshots" in capabilities:
        raise pytest.UsageError("capability 'snapshots' is detected from the store handle, not declared")
    profile_name = config.getoption("aether_profile") or config.getini("aether_profile")
    if profile_name not in PROFILES:
        raise pytest.UsageError(f"unknown profile {profile_name!r}; known: {', '.join(PROFILES)}")
    timeout = config.getoption("aether_timeout") or float(config.getini("aether_timeout"))
    run = ConformanceRun(
        store=store,
        store_source=source,
        capabilities=frozenset(capabilities),
        profile=PROFILES[profile_name],
        timeout=timeout,
        json_report=config.getoption("aether_json_report"),
    )
    config.stash[run_key] = run
    config.pluginmanager.register(ConformanceReporter(run), "aether-conformance-reporter")


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
    items.sort(key=lambda item: _suite_rank(item) if _requirement_ids(item) else -1)  # stable
    for item in conformance_items:
        ids = _requirement_ids(item)
        for req_id in ids:
            requirement(req_id)  # an unknown id is a bug in the suite: fail collection loudly
        item.user_properties.append((REQUIREMENTS_KEY, ids))
        declared = [requirement(i).capability for i in ids if requirement(i).capability not in (None, "snapshots")]
        missing = sorted({cap for cap in declared if cap not in run.capabilities})
        if missing:
            item.add_marker(pytest.mark.skip(reason=capability_skip_reason(missing[0], declared=True)))


# Focused example tests first, property and concurrency tests last: with -x the run stops at
# the most specific message, and cheap checks report before expensive ones.
SUITE_ORDER = ("test_save", "test_errors", "test_read", "test_actors", "test_refusals", "test_handles", "test_snapshots",
               "test_concurrency", "test_properties")


def _suite_rank(item: pytest.Item) -> int:
    module = getattr(item, "module", None)
    name = module.__name__.rpartition(".")[2] if module is not None else ""
    return SUITE_ORDER.index(name) if name in SUITE_ORDER else len(SUITE_ORDER)



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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report = yield
    if report.failed and call.excinfo is not None and _requirement_ids(item):
        report.user_properties.append((MESSAGES_KEY, _leaf_messages(call.excinfo.value)))
    return report


def _leaf_messages(error: BaseException) -> list[str]:
    """One message per failure; hypothesis reports several distinct bugs as an exception group."""
    if isinstance(error, BaseExceptionGroup):
        return [message for sub in error.exceptions for message in _leaf_messages(sub)]
    return [str(error).strip() or type(error).__name__]


class ConformanceReporter:
    """Collects per-test outcomes by requirement and writes the verdict (on the xdist controller)."""

    def __init__(self, run: ConformanceRun) -> None:
        self.run = run

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        ids = properties.get(REQUIREMENTS_KEY)
        if not ids:
            return
        if report.when == "call":
            for name, count in properties.get(STATISTICS_KEY, {}).items():
                self.run.statistics[name] = self.run.statistics.get(name, 0) + count
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
        self.run.outcomes.append(CaseOutcome(nodeid=report.nodeid, requirements=ids, outcome=outcome, messages=messages))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        run = self.run
        if hasattr(session.config, "workerinput"):
            return  # xdist workers send their reports to the controller, which decides
        if not run.outcomes:
            if run.store is not None and exitstatus == pytest.ExitCode.OK:
                # A configured store with no conformance test run proves nothing: fail loudly.
                session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED
            return
        run.requirement_outcomes = summarise(run.outcomes)
        run.report = build_report(
            run.store or "", run.profile.name, run.capabilities, run.requirement_outcomes, run.statistics
        )
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
            return
        terminalreporter.section("aether-conformance")
        for outcome in run.requirement_outcomes or ():
            if outcome.outcome == "failed":
                first = outcome.messages[0].splitlines()[0] if outcome.messages else ""
                terminalreporter.write_line(
                    f"FAILED {outcome.requirement.id} ({outcome.requirement.level.value}) {first}", red=True
                )
        counts = run.report["summary"]
        verdict = "CONFORMANT" if run.report["conformant"] else "NOT CONFORMANT"
        terminalreporter.write_line(
            f"{run.store}: {verdict}: requirements passed {counts['passed']}, failed {counts['failed']}, "
            f"skipped {counts['skipped']}" + (f"; JSON report: {run.json_report}" if run.json_report else ""),
            green=run.report["conformant"], red=not run.report["conformant"],
        )


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
def store(aether_driver: StoreDriver) -> DrivenHandle:
    """The primary handle of the store under test."""
    try:
        return aether_driver.new_handle()
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
def fresh_actor(worker_id_prefix: str) -> Any:
    """Return a function giving actor ids never used before, so no test needs a reset."""
    counter = iter(range(1, 1 << 62))
    return lambda label="actor": f"{label}-{worker_id_prefix}-{next(counter)}"


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
def aether_postgres_server() -> Iterator[Any]:
    """A real PostgreSQL on 127.0.0.1 and a free port, in a temporary cluster, for the session (per xdist worker).

    Needs PostgreSQL on PATH or the ``[postgres]`` extra; stopped by PID and removed at the end.
    """
    from .postgres_server import PostgresServer

    with PostgresServer() as server:
        yield server
