"""Per-requirement verdicts and the reports made from them: JSON, Markdown, badge.

A requirement fails when any test citing it fails (a test that checks several
requirements names the broken one first in its message); it passes when at
least one test of it passed and none failed; otherwise it is skipped, with the
reason.  A store is conformant when every MUST requirement passed, except
those whose capability the store does not have.
"""

from __future__ import annotations

import json
import platform
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from .requirements import REQUIREMENTS, SPEC_VERSION, Level, Requirement

# What the report on disk says until the run ends: a run that dies half-way leaves it behind.
IN_PROGRESS = "the run is in progress or died before finishing"
# In the artifacts directory while a test runs: its node id and requirements, so that whoever
# outlives a process the store ended (the CLI's supervisor) can say which test it was.
RUNNING_FILE = "running.json"

__all__ = [
    "CaseOutcome",
    "RequirementOutcome",
    "summarise",
    "build_report",
    "write_json_report",
    "markdown_summary",
    "badge",
]

_STARTED = time.time()
CAPABILITY_SKIP = "capability '"


def capability_skip_reason(capability: str, *, declared: bool) -> str:
    """The skip reason of a test whose capability is missing; a requirement skipped for it is not applicable."""
    how = f"declare it with --capability {capability}" if declared else "detected from the store handle"
    return f"{CAPABILITY_SKIP}{capability}' not available ({how})"


_ID_PREFIX = re.compile(r"^((?:(?:ES|SS)-[A-Z]+-\d{3})(?:, (?:ES|SS)-[A-Z]+-\d{3})*): ")


def cited_ids(message: str) -> list[str]:
    """The requirement IDs a failure message starts with (``ES-SAVE-002: ...``)."""
    prefix = _ID_PREFIX.match(message)
    return prefix.group(1).split(", ") if prefix else []


@dataclass(frozen=True)
class CaseOutcome:
    """One conformance test's outcome; for a skip, ``messages`` holds the reason."""

    nodeid: str
    requirements: list[str]
    outcome: str  # passed | failed | skipped
    messages: list[str]
    reproduction: str | None = None  # the script that replays a failed test's store calls
    # Requirements the test's verdict rests on (its ``presupposes`` mark): a concurrency test's
    # history means nothing once sequential saves are known broken.
    presupposes: list[str] = field(default_factory=list)

    @property
    def skipped_for_capability(self) -> bool:
        return self.outcome == "skipped" and bool(self.messages) and self.messages[0].startswith(CAPABILITY_SKIP)


@dataclass
class RequirementOutcome:
    requirement: Requirement
    outcome: str = "skipped"  # passed | failed | blocked | skipped
    reason: str | None = None
    tests: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    blocked_by: list[str] = field(default_factory=list)
    not_run: int = 0
    reproduction: str | None = None
    failed_test: str | None = None  # the first test that found it broken

    @property
    def not_applicable(self) -> bool:
        return self.outcome == "skipped" and (self.reason or "").startswith(CAPABILITY_SKIP)


def summarise(outcomes: list[CaseOutcome], expected: dict[str, list[str]] | None = None) -> list[RequirementOutcome]:
    """Per requirement, the verdict of its tests.

    A failure message names the requirement it is about (``ES-SAVE-002: ...``).  A test of R
    whose failure names another requirement B did not get as far as checking R: R is *blocked
    by* B, and the failure counts against B.  A requirement passes only when every one of its
    tests ran and passed, or was skipped because the store lacks a capability; a test skipped
    for any other reason fails it, and one that did not run at all (``expected`` but without an
    outcome: deselected, stopped by -x, lost with a crashed worker) leaves it unverified.  A failed
    test that presupposes requirements (its ``presupposes`` mark) is blocked by those of them whose
    own tests failed: a race cannot be told from a broken sequential rule, so only the rule counts.
    """
    results = {req.id: RequirementOutcome(req) for req in REQUIREMENTS}
    own: dict[str, list[str]] = {req_id: [] for req_id in results}
    passed: dict[str, int] = dict.fromkeys(results, 0)
    capability_skips: dict[str, str] = {}
    # Requirements a failed test cites besides the ones its failure names: R -> those named.
    failed_beside: dict[str, list[str]] = {req_id: [] for req_id in results}
    # (test, message, the requirement it names): failures of a precondition of another requirement
    preconditions: list[tuple[CaseOutcome, str, list[str]]] = []
    seen = set()

    def charge(test: CaseOutcome) -> None:
        for message in test.messages or [f"{test.nodeid} failed"]:
            cited = [req_id for req_id in cited_ids(message) if req_id in results]
            about = [req_id for req_id in cited if req_id in test.requirements]
            if about or not cited:
                for req_id in about or test.requirements:
                    own[req_id].append(message)
                    _first_failure(results[req_id], test)
                for req_id in test.requirements:
                    failed_beside[req_id].extend(b for b in about if b != req_id and b not in failed_beside[req_id])
            else:
                preconditions.append((test, message, cited))

    def block(test: CaseOutcome, roots: list[str]) -> None:
        for req_id in test.requirements:
            results[req_id].blocked_by.extend(b for b in roots if b not in results[req_id].blocked_by)

    def settle_preconditions() -> None:
        # A test of R that stopped on a precondition naming B (a save R needed was refused, say) is
        # blocked by B when B's own tests found B broken: one bug, one failed requirement.  When B's
        # own tests all passed, the failure is particular to what R's test did, so it is R's.
        while preconditions:
            test, message, cited = preconditions.pop(0)
            roots = [req_id for req_id in cited if own[req_id]]
            if roots:
                for req_id in roots:
                    if message not in own[req_id]:
                        own[req_id].append(message)
                        _first_failure(results[req_id], test)
                block(test, roots)
            else:
                for req_id in test.requirements:
                    # Named first, so that the message says which requirement it counts against.
                    own[req_id].append(f"{req_id}: {message}")
                    _first_failure(results[req_id], test)

    # Failed tests that presuppose other requirements are judged once those are: blocked by any
    # that failed, charged as usual when all held.
    presupposing: list[CaseOutcome] = []
    for test in outcomes:
        seen.add(test.nodeid)
        for req_id in test.requirements:
            if test.nodeid not in results[req_id].tests:
                results[req_id].tests.append(test.nodeid)
        if test.outcome == "passed":
            for req_id in test.requirements:
                passed[req_id] += 1
        elif test.skipped_for_capability:
            for req_id in test.requirements:
                capability_skips.setdefault(req_id, test.messages[0])
        elif test.outcome == "skipped":
            reason = test.messages[0] if test.messages else "no reason given"
            for req_id in test.requirements:
                own[req_id].append(f"{req_id}: {test.nodeid} was skipped ({reason}); only a missing capability "
                                   "may keep a conformance test from running")
        elif test.presupposes:
            presupposing.append(test)
        else:
            charge(test)
    settle_preconditions()
    while presupposing:
        blocked = [(test, roots) for test in presupposing
                   if (roots := [req_id for req_id in test.presupposes if own[req_id]])]
        if blocked:
            for test, roots in blocked:
                block(test, roots)
                presupposing.remove(test)
            continue
        # None is blocked yet: charge the tests that presuppose nothing another waiting test checks
        # (the concurrent snapshot test waits for the concurrency tests of saves), then look again.
        ready = [test for test in presupposing
                 if not any(set(test.presupposes) & set(other.requirements) for other in presupposing if other is not test)]
        for test in ready or list(presupposing):
            charge(test)
            presupposing.remove(test)
        settle_preconditions()
    for test_id, req_ids in (expected or {}).items():
        if test_id not in seen:
            for req_id in req_ids:
                results[req_id].not_run += 1
    for req_id, result in results.items():
        if own[req_id]:
            result.outcome, result.messages = "failed", list(dict.fromkeys(own[req_id]))
        elif result.blocked_by:
            result.outcome = "blocked"
            result.reason = f"blocked by {', '.join(result.blocked_by)}: its tests stopped when the store broke that first"
        elif result.not_run:
            result.reason = f"{result.not_run} of its tests did not run (a partial run)"
        elif passed[req_id]:
            result.outcome = "passed"
        elif req_id in capability_skips:
            result.reason = capability_skips[req_id]
        elif failed_beside[req_id]:
            # Its only tests failed on another requirement they cite (a MAY's test on the MUST an
            # accepting store broke): not verified, and not a failure of its own.
            result.outcome, result.blocked_by = "blocked", failed_beside[req_id]
            result.reason = (f"blocked by {', '.join(result.blocked_by)}: its tests failed on that "
                             "requirement before they could show this one")
        else:
            result.reason = "no test of this requirement ran (deselected or not collected)"
    return list(results.values())


def _first_failure(result: RequirementOutcome, test: CaseOutcome) -> None:
    if result.failed_test is None:
        result.failed_test, result.reproduction = test.nodeid, test.reproduction
    elif result.reproduction is None and test.reproduction:
        result.reproduction = test.reproduction


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def build_report(
    store: str,
    profile: str,
    capabilities: frozenset[str],
    results: list[RequirementOutcome],
    statistics: dict[str, int] | None = None,
    *,
    expected_tests: int | None = None,
    tests_ran: int = 0,
    incomplete_reason: str | None = None,
    implementation: dict[str, str] | None = None,
    fault_runs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON report.  A run is complete when every collected conformance test ran and nothing
    interrupted it; it is conformant only when it is complete and every applicable MUST passed.
    ``fault_runs`` (what each fault test injected and settled) appear as ``faults`` when given."""
    if incomplete_reason is None:
        if expected_tests is None:
            incomplete_reason = "the run did not say which tests it collected"
        elif tests_ran < expected_tests:
            incomplete_reason = (f"{expected_tests - tests_ran} of {expected_tests} conformance tests did not run "
                                 "(deselected with -k or --deselect, stopped by -x, or lost with a crashed worker)")
    must = [r for r in results if r.requirement.level is Level.MUST]
    unchecked = [r.requirement.id for r in must if r.outcome == "skipped" and not r.not_applicable]
    if incomplete_reason is None and unchecked:
        incomplete_reason = (f"{len(unchecked)} MUST requirement(s) were not checked: {', '.join(unchecked)} "
                             "(collect the whole suite: --pyargs aether_conformance.suite)")
    complete = incomplete_reason is None
    conformant = complete and all(r.outcome == "passed" or r.not_applicable for r in must)
    # "snapshots" is detected, not declared: it was there if its requirements were not skipped for it.
    detected = {
        r.requirement.capability for r in results
        if r.requirement.capability and r.requirement.capability not in capabilities and not r.not_applicable
        and r.outcome != "skipped"
    }
    report = {
        "schemaVersion": 2,
        "specVersion": SPEC_VERSION,
        "store": store,
        "implementation": dict(implementation or {}),
        "conformant": conformant,
        "complete": complete,
        "incompleteReason": incomplete_reason,
        "tests": {"expected": expected_tests or 0, "ran": tests_ran,
                  "notRun": max(0, (expected_tests or 0) - tests_ran)},
        "profile": profile,
        "capabilities": sorted(capabilities | detected),
        "summary": {k: sum(r.outcome == k for r in results) for k in ("passed", "failed", "blocked", "skipped")},
        "mustApplicable": sum(not r.not_applicable for r in must),
        "mustPassed": sum(r.outcome == "passed" for r in must),
        "statistics": dict(sorted((statistics or {}).items())),
        "requirements": [
            {
                "id": r.requirement.id,
                "level": r.requirement.level.value,
                "title": r.requirement.title,
                "outcome": r.outcome,
                "reason": r.reason,
                "blockedBy": r.blocked_by,
                "failedTest": r.failed_test,
                "reproduction": r.reproduction,
                "tests": r.tests,
                "messages": r.messages,
            }
            for r in results
        ],
        "environment": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "aether_conformance": _version("aether-conformance"),
            "pytest": _version("pytest"),
            "hypothesis": _version("hypothesis"),
        },
        "started": datetime.fromtimestamp(_STARTED, timezone.utc).isoformat().replace("+00:00", "Z"),
        "duration_s": round(time.time() - _STARTED, 3),
    }
    if fault_runs:
        report["faults"] = list(fault_runs)
    return report


def _json_safe(value: Any) -> Any:
    """The value with every string made encodable as UTF-8: a store's error text may carry lone surrogates."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_json_safe(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def write_json_report(report: dict[str, Any], path: str | Path) -> None:
    from .schemas import validate

    report = _json_safe(report)
    validate("report", report)  # the report's own schema is its contract with CI tooling
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


_MARK = {"passed": "✅ passed", "failed": "❌ FAILED", "blocked": "⛔ blocked", "skipped": "➖ skipped"}


def verdict(report: dict[str, Any]) -> str:
    if not report["complete"]:
        return "INCOMPLETE"
    return "CONFORMANT" if report["conformant"] else "NOT CONFORMANT"


def markdown_summary(report: dict[str, Any], *, compact: bool = False) -> str:
    """The table a person reads first: one row per requirement, then the verdict.

    ``compact`` leaves out the rows of passed requirements (the terminal's default view)."""
    state = {"CONFORMANT": "**conformant**", "NOT CONFORMANT": "**NOT conformant**",
             "INCOMPLETE": "**not certified: the run was incomplete**"}[verdict(report)]
    lines = [f"## aether-conformance: `{report['store']}` is {state}", ""]
    if not report["complete"]:
        lines += [f"> {report['incompleteReason']}", ""]
    lines += ["| Requirement | Level | Outcome | Detail |", "|---|---|---|---|"]
    shown = [req for req in report["requirements"] if not (compact and req["outcome"] == "passed")]
    for req in shown:
        if req["outcome"] == "failed":
            detail = req["messages"][0].splitlines()[0] if req["messages"] else ""
        elif req["outcome"] in ("skipped", "blocked"):
            detail = req["reason"] or ""
        else:
            detail = f"{len(req['tests'])} test(s)"
        detail = detail.replace("|", "\\|")
        if len(detail) > 160:
            detail = detail[:157] + "..."
        lines.append(f"| {req['id']} {req['title']} | {req['level']} | {_MARK[req['outcome']]} | {detail} |")
    if len(shown) < len(report["requirements"]):
        lines.append(f"| … {len(report['requirements']) - len(shown)} more passed | | ✅ passed | "
                     "(the whole table: summary.md in the artifacts) |")
    s, load = report["summary"], report.get("statistics", {})
    lines += ["", f"passed {s['passed']}, failed {s['failed']}, blocked {s['blocked']}, skipped {s['skipped']}; "
                  f"MUST {report['mustPassed']}/{report['mustApplicable']} "
                  f"(spec {report['specVersion']}, profile {report['profile']}, "
                  f"capabilities: {', '.join(report['capabilities']) or 'none'}; "
                  f"load: {load.get('save_attempts', 0):,} contended writes, "
                  f"{load.get('state_machine_examples', 0):,} state-machine examples)"]
    return "\n".join(lines) + "\n"


def badge(report: dict[str, Any]) -> dict[str, Any]:
    """A shields.io endpoint badge (https://shields.io/badges/endpoint-badge); counts applicable MUSTs."""
    counts = f"{report['mustPassed']}/{report['mustApplicable']} MUST, spec {report['specVersion']}"
    message, color = {
        "CONFORMANT": (f"conformant ({counts})", "brightgreen"),
        "NOT CONFORMANT": (f"not conformant ({counts})", "red"),
        "INCOMPLETE": ("incomplete run, not certified", "lightgrey"),
    }[verdict(report)]
    return {"schemaVersion": 1, "label": "aether conformance", "message": message, "color": color}


def annotate_junit(path: str | Path, report: dict[str, Any]) -> None:
    """Put the verdict in the JUnit file CI dashboards show: each test case is named with the
    requirement IDs it checks, and the test suite carries the store, the spec version and the verdict."""
    import xml.etree.ElementTree as ElementTree

    tree = ElementTree.parse(path)
    for suite in tree.getroot().iter("testsuite"):
        properties = suite.find("properties")
        if properties is None:
            properties = ElementTree.Element("properties")
            suite.insert(0, properties)
        for name, value in (("aether.store", report["store"]), ("aether.spec_version", report["specVersion"]),
                            ("aether.verdict", verdict(report)), ("aether.complete", str(report["complete"]).lower())):
            ElementTree.SubElement(properties, "property", name=name, value=value)
        for case in suite.iter("testcase"):
            ids = [p.get("value", "") for p in case.iter("property") if p.get("name") == "aether_requirements"]
            cited = re.findall(r"(?:ES|SS)-[A-Z]+-\d{3}", ids[0]) if ids else []
            if cited and not case.get("name", "").startswith(cited[0]):
                case.set("name", f"{', '.join(cited)} {case.get('name')}")
    tree.write(path, encoding="utf-8", xml_declaration=True)
