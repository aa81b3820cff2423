"""How long certification takes, how much load it applies, and how fast it flags a broken store.

    python bench/bench_suite.py [--profiles quick default] [--skip-zoo] [--skip-output]

Every figure comes from the real CLI in a fresh process, as a user runs it.
The baseline, measured in the same run, is the suite's fixed cost: starting
pytest and collecting the suite (``--collect-only``) against the same store.
Targets (issue 3): the default profile on the in-memory store in <= 15 s with
>= 5,000 contended writes and >= 200 state-machine examples; a median of
<= 3 s to flag a zoo store with ``-x``.  Issue 11: a single-bug store prints at most 60 lines
by default and fails one requirement (each textbook zoo store, run in full, quick profile).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.zoo.specimens import SPECIMENS, run_options  # noqa: E402

CLI = [sys.executable, "-m", "aether_conformance.cli", "run"]


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})})
    return time.perf_counter() - started, completed.returncode


def collect_only_baseline() -> float:
    command = [sys.executable, "-m", "pytest", "--pyargs", "aether_conformance.suite", "--collect-only", "-q",
               "--aether-store", "reference_store.memory:shared_store", "-p", "no:cacheprovider", "-c", os.devnull,
               "--rootdir", str(ROOT)]
    return min(timed(command)[0] for _ in range(3))


def certify(profile: str, scratch: Path) -> tuple[float, dict]:
    report = scratch / f"{profile}.json"
    seconds, code = timed(CLI + ["reference_store.memory:shared_store", "--profile", profile, "--json-report", str(report)])
    assert code == 0, f"the reference store failed certification (exit {code})"
    return seconds, json.loads(report.read_text())


def flag_time(name: str, scratch: Path) -> tuple[float, bool]:
    report = scratch / f"zoo-{name}.json"
    extra, env = run_options(name, scratch)
    seconds, _ = timed(CLI + [f"tests.zoo.specimens:{name}", "--profile", "quick", "--json-report", str(report),
                              *extra, "--", "-x"], env)
    data = json.loads(report.read_text())
    flagged = any(r["outcome"] == "failed" for r in data["requirements"])
    return seconds, flagged


def output_size(name: str, scratch: Path) -> tuple[int, list[str]]:
    """Lines a user sees from a full run (no -x) on a zoo store, and the requirements it failed."""
    report = scratch / f"out-{name}.json"
    extra, env = run_options(name, scratch)
    completed = subprocess.run(CLI + [f"tests.zoo.specimens:{name}", "--profile", "quick", "--json-report", str(report),
                                      "--artifacts", str(scratch / f"artifacts-{name}"), *extra],
                               cwd=ROOT, capture_output=True, text=True, env={**os.environ, **env})
    lines = len((completed.stdout + completed.stderr).splitlines())
    failed = [r["id"] for r in json.loads(report.read_text())["requirements"] if r["outcome"] == "failed"]
    return lines, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", nargs="+", default=["quick", "default"])
    parser.add_argument("--skip-zoo", action="store_true")
    parser.add_argument("--skip-output", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        baseline = collect_only_baseline()
        print(f"baseline: start pytest and collect the suite        {baseline:6.2f} s")
        print()
        print(f"{'profile':<9} {'seconds':>8} {'x baseline':>11} {'contended writes':>17} {'state-machine examples':>23}")
        misses = 0
        for profile in args.profiles:
            seconds, report = certify(profile, scratch)
            stats = report["statistics"]
            print(f"{profile:<9} {seconds:8.2f} {seconds / baseline:10.1f}x {stats.get('save_attempts', 0):17,} "
                  f"{stats.get('state_machine_examples', 0):23,}")
            if profile == "default":
                ok = seconds <= 15 and stats["save_attempts"] >= 5000 and stats["state_machine_examples"] >= 200
                misses += not ok
                print(f"          target <= 15 s, >= 5,000 writes, >= 200 examples: {'PASS' if ok else 'MISS'}")
        if not args.skip_zoo:
            print()
            times = []
            for name, broken in sorted(SPECIMENS.items()):
                if broken is None:
                    continue
                seconds, flagged = flag_time(name, scratch)
                times.append(seconds)
                print(f"  flag {name:<36} {seconds:6.2f} s  {'flagged' if flagged else 'NOT FLAGGED'}")
                misses += not flagged
            median = statistics.median(times)
            print(f"zoo (-x, quick): median {median:.2f} s ({median / baseline:.1f}x baseline), max {max(times):.2f} s "
                  f"over {len(times)} stores; target median <= 3 s: {'PASS' if median <= 3 else 'MISS'}")
            misses += median > 3
        if not args.skip_output:
            print()
            sizes, exact = [], 0
            for name, broken in sorted(SPECIMENS.items()):
                if broken is None:
                    continue
                lines, failed = output_size(name, scratch)
                sizes.append(lines)
                exact += failed == [broken]
                print(f"  output {name:<34} {lines:4d} lines  failed {', '.join(failed) or 'nothing'}"
                      f"{'' if failed == [broken] else f'  (breaks {broken})'}")
            print(f"single-bug output (full quick run): {exact} of {len(sizes)} stores fail exactly their requirement; "
                  f"lines: median {statistics.median(sizes):.0f}, max {max(sizes)}; "
                  f"target <= 60 lines: {sum(n <= 60 for n in sizes)} of {len(sizes)}")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
