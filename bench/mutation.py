"""Mutation testing of a reference store, with the conformance CLI as the test command.

    python bench/mutation.py [memory|sqlite] [--profile quick] [--timeout 900] [--session FILE]

cosmic-ray (the ``[mutation]`` extra) lists the mutants of the store's module and
writes each one into the file in place (restoring it afterwards); for each mutant
this script runs the CLI as a user does, one mutant at a time, in a fresh working
directory (so hypothesis's example database carries nothing from one mutant to
the next):

    python -m aether_conformance.cli run STORE --profile quick --artifacts DIR -- -x

and reads the exit code and ``DIR/report.json``:

- exit 0 (the run was complete and conformant): the mutant **survived**;
- a failed or blocked requirement in the report: **killed** by that requirement
  (``-x`` stops at the first failing test: exit 1 for a MUST, 2 for a SHOULD, since
  the run is then incomplete and nothing failed that conformance needs);
- no report, or no test ran (the store could not be imported or made): **killed at start**;
- any other non-zero exit: **killed, run incomplete**, with the report's reason;
- still running after ``--timeout`` seconds: **timeout**.  A mutant that hangs a
  store call is failed by the kit's per-call timeout; this one only bounds a runaway.

Mutants inside annotations are not run when the module has ``from __future__ import
annotations``: those annotations are strings that nothing evaluates, so the mutant is
the same program (e.g. ``bytes | None`` made ``bytes - None``).  They are listed as
equivalent.  A mutant that is not valid Python (cosmic-ray turns the bare ``*`` before
keyword-only parameters into ``+``) is listed as invalid and not run either.

The file is restored after every mutant, and checked byte for byte at the end.  Run it
in a checkout nobody else is using: the mutated file is on disk while a mutant runs.
``--session FILE`` keeps cosmic-ray's session database, and a second run with the same
file resumes where the first stopped.  Exit status 1 when a mutant survived.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cosmic_ray.commands import init as init_session
from cosmic_ray.mutating import use_mutation
from cosmic_ray.plugins import get_operator
from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import MutationSpec, TestOutcome, WorkerOutcome, WorkItem, WorkResult

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    module: str  # relative to ROOT
    store: str
    cli_args: tuple[str, ...] = ()


TARGETS = {
    "memory": Target("reference_store/memory.py", "reference_store.memory:shared_store"),
    "sqlite": Target("reference_store/sqlite.py", "reference_store.sqlite:shared_store",
                     ("--capability", "multiprocess")),
}

SURVIVED, KILLED, KILLED_AT_START, KILLED_INCOMPLETE, TIMEOUT, EQUIVALENT, INVALID = (
    "survived", "killed", "killed at start", "killed, run incomplete", "timeout", "equivalent", "invalid")
ANNOTATION_REASON = "inside an annotation, which `from __future__ import annotations` leaves unevaluated"


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) of every annotation as (line, character column), when none is ever evaluated."""
    tree = ast.parse(source)
    postponed = any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
                    and any(alias.name == "annotations" for alias in node.names) for node in tree.body)
    if not postponed:
        return []
    lines = source.splitlines()

    def column(line: int, byte_offset: int) -> int:  # ast counts UTF-8 bytes, cosmic-ray characters
        return len(lines[line - 1].encode()[:byte_offset].decode())

    spans = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            annotations = [node.returns]
        elif isinstance(node, ast.arg):
            annotations = [node.annotation]
        elif isinstance(node, ast.AnnAssign):
            annotations = [node.annotation]
        else:
            continue
        spans += [((a.lineno, column(a.lineno, a.col_offset)), (a.end_lineno, column(a.end_lineno, a.end_col_offset)))
                  for a in annotations if a is not None]
    return spans


def in_annotation(mutation: MutationSpec, spans) -> bool:
    start, end = tuple(mutation.start_pos), tuple(mutation.end_pos)
    return any(low <= start and end <= high for low, high in spans)


def run_cli(target: Target, profile: str, timeout: float) -> tuple[str, str, float]:
    """Certify the store as it is on disk now: (outcome, detail, seconds)."""
    with tempfile.TemporaryDirectory(prefix="aether-mutant-") as work:
        artifacts = Path(work) / "artifacts"
        # TMPDIR too: a mutant that ignores $AETHER_SQLITE_PATH writes its default file in here.
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": work,
               "AETHER_SQLITE_PATH": str(Path(work) / "store.sqlite3")}
        command = [sys.executable, "-m", "aether_conformance.cli", "run", target.store, "--profile", profile,
                   *target.cli_args, "--artifacts", str(artifacts), "--", "-x"]
        started = time.monotonic()
        # Its own session, so a runaway is stopped with everything it started.
        process = subprocess.Popen(command, cwd=work, env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop(process)
            return TIMEOUT, f"still running after {timeout:g} s", time.monotonic() - started
        except BaseException:  # Ctrl-C or SIGTERM of this script: the run goes too
            stop(process)
            raise
        seconds = time.monotonic() - started
        text = output.decode("utf-8", "backslashreplace")
        report_path = artifacts / "report.json"
        report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.exists() else None
    code = process.returncode
    last_line = text.strip().splitlines()[-1] if text.strip() else ""
    if report is None or not report["tests"]["ran"]:
        if code == 0:
            raise SystemExit(f"exit 0 without a report of tests that ran: {last_line}")
        return KILLED_AT_START, f"exit {code}: {last_line}", seconds
    broken = [f"{r['id']} ({r['level']}) {r['outcome']}" for r in report["requirements"]
              if r["outcome"] in ("failed", "blocked")]
    if code == 0:
        if broken or not report["complete"] or not report["conformant"]:
            raise SystemExit(f"exit 0 but the report says otherwise: {broken}, {report['incompleteReason']}")
        return SURVIVED, "", seconds
    if broken:
        return KILLED, f"exit {code}: " + ", ".join(broken), seconds
    return KILLED_INCOMPLETE, f"exit {code}: {report['incompleteReason']}", seconds


def stop(process: subprocess.Popen) -> None:
    """SIGTERM first: the CLI then stops every process it started and writes its report."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


def diff(original: str, mutated: str, path: str) -> str:
    return "".join(difflib.unified_diff(original.splitlines(True), mutated.splitlines(True),
                                        f"a/{path}", f"b/{path}", n=1))


def describe(item: WorkItem) -> str:
    mutation = item.mutations[0]
    line, col = mutation.start_pos
    return f"{mutation.module_path}:{line}:{col} {mutation.operator_name} #{mutation.occurrence}"


def position(item: WorkItem) -> tuple:
    mutation = item.mutations[0]
    return tuple(mutation.start_pos), mutation.operator_name, mutation.occurrence


def prepare(db: WorkDB, target: Target, source: str) -> None:
    """A new session: every mutant of the module, the annotation ones recorded as equivalent."""
    if db.num_work_items:
        return
    init_session([Path(target.module)], db, {})
    spans = annotation_spans(source)
    equivalent = [item.job_id for item in db.work_items if in_annotation(item.mutations[0], spans)]
    if equivalent:
        db.set_multiple_results(equivalent, WorkResult(
            worker_outcome=WorkerOutcome.SKIPPED,  # not run, as cosmic-ray's own filters record it
            output=json.dumps({"outcome": EQUIVALENT, "detail": ANNOTATION_REASON})))


def test_mutant(item: WorkItem, target: Target, profile: str, timeout: float) -> WorkResult:
    mutation = item.mutations[0]
    operator = get_operator(mutation.operator_name)(**mutation.operator_args)
    with use_mutation(Path(mutation.module_path), operator, mutation.occurrence) as (original, mutated):
        if mutated is None:
            return WorkResult(worker_outcome=WorkerOutcome.NO_TEST)
        try:
            compile(mutated, mutation.module_path, "exec")
        except SyntaxError as error:
            # cosmic-ray also mutates the bare `*` of keyword-only parameters as if it were a product.
            return WorkResult(worker_outcome=WorkerOutcome.NORMAL, test_outcome=TestOutcome.INCOMPETENT,
                              output=json.dumps({"outcome": INVALID, "detail": f"not Python: {error}"}),
                              diff=diff(original, mutated, mutation.module_path))
        outcome, detail, seconds = run_cli(target, profile, timeout)
    return WorkResult(
        worker_outcome=WorkerOutcome.NORMAL,
        test_outcome=TestOutcome.SURVIVED if outcome == SURVIVED else TestOutcome.KILLED,
        output=json.dumps({"outcome": outcome, "detail": detail, "seconds": round(seconds, 1)}),
        diff=diff(original, mutated, mutation.module_path))


def check_store_resolves_to(target: Target) -> None:
    """The CLI must import the file being mutated, not an installed copy of it."""
    module = target.store.split(":")[0]
    with tempfile.TemporaryDirectory(prefix="aether-mutant-") as work:
        found = subprocess.run(
            [sys.executable, "-c", f"import {module}; print({module}.__file__)"], cwd=work, check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True).stdout.strip()
    if Path(found).resolve() != (ROOT / target.module).resolve():
        raise SystemExit(f"{module} imports from {found}, not {ROOT / target.module}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", default="memory", choices=sorted(TARGETS))
    parser.add_argument("--profile", default="quick", choices=("quick", "default", "thorough"))
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per mutant run (default 900)")
    parser.add_argument("--session", type=Path, help="keep cosmic-ray's session here (resumes an earlier run)")
    args = parser.parse_args()
    target = TARGETS[args.target]
    os.chdir(ROOT)  # cosmic-ray's module paths are relative to the checkout
    module = Path(target.module)
    source_bytes = module.read_bytes()
    check_store_resolves_to(target)
    # SIGTERM unwinds like Ctrl-C, through cosmic-ray's restore of the mutated file.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    started = time.monotonic()
    outcome, detail, seconds = run_cli(target, args.profile, args.timeout)
    if outcome != SURVIVED:
        raise SystemExit(f"the unmutated store does not pass: {outcome}, {detail}")
    print(f"baseline: {target.store} passes unmutated ({seconds:.1f} s)", flush=True)

    with tempfile.TemporaryDirectory(prefix="aether-mutation-") as scratch:
        session = args.session or Path(scratch) / "session.sqlite"
        try:
            with use_db(str(session)) as db:
                prepare(db, target, source_bytes.decode())
                pending = sorted(db.pending_work_items, key=position)
                total = db.num_work_items
                for done, item in enumerate(pending, start=total - len(pending) + 1):
                    result = test_mutant(item, target, args.profile, args.timeout)
                    db.set_result(item.job_id, result)
                    info = json.loads(result.output) if result.output else {"outcome": result.worker_outcome}
                    print(f"[{done}/{total}] {info['outcome']:<23} {info.get('seconds', 0):6.1f} s  "
                          f"{describe(item)}  {info.get('detail', '')}", flush=True)
                results = sorted(db.completed_work_items, key=lambda pair: position(pair[0]))
        finally:
            if module.read_bytes() != source_bytes:
                module.write_bytes(source_bytes)
                raise SystemExit(f"{module} was left mutated; restored")
    return summarize(results, time.monotonic() - started)


def summarize(results: list[tuple[WorkItem, WorkResult]], seconds: float) -> int:
    outcomes = [(item, result, json.loads(result.output) if result.output else {"outcome": "no mutation"})
                for item, result in results]
    counts: dict[str, int] = {}
    for _, _, info in outcomes:
        counts[info["outcome"]] = counts.get(info["outcome"], 0) + 1
    equivalent, invalid = counts.get(EQUIVALENT, 0), counts.get(INVALID, 0)
    killed = sum(counts.get(key, 0) for key in (KILLED, KILLED_AT_START, KILLED_INCOMPLETE, TIMEOUT))
    survived = counts.get(SURVIVED, 0)
    print(f"\nmutants: {len(outcomes)} ({equivalent} equivalent by construction: {ANNOTATION_REASON}; "
          f"{invalid} not valid Python, not run)")
    print(f"run: {killed + survived}; killed: {killed} (by a test {counts.get(KILLED, 0)}, at start "
          f"{counts.get(KILLED_AT_START, 0)}, run incomplete {counts.get(KILLED_INCOMPLETE, 0)}, "
          f"timeouts {counts.get(TIMEOUT, 0)}); survived: {survived}")
    if killed + survived:
        print(f"score: {killed}/{killed + survived} = {killed / (killed + survived):.1%} of the mutants run")
    print(f"wall time: {seconds / 60:.1f} min")
    for item, result, info in outcomes:
        if info["outcome"] in (SURVIVED, KILLED_INCOMPLETE, TIMEOUT):
            print(f"\n{info['outcome'].upper()}: {describe(item)} {info.get('detail', '')}\n{result.diff}", end="")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
