"""Stores behind aether-store/1: certification time, and the adapter's request throughput.

    python bench/bench_process.py [--profile quick|default] [--runs 2] [--calls 20000]

1. Certification time of the Node.js and Go stores, as child processes, against the
   in-memory Python store in the same run (best of ``--runs`` each, the real CLI in a
   fresh process).  Target (issue 9): no more than 1.3x the in-memory store.
2. Request/response throughput to the Node.js store (the Go seed or the Python test
   server when node is absent): the adapter with 8 threads pipelining requests, and
   the adapter one call at a time, against a raw pipe round trip (write a line, read
   a line, no adapter) on the same child.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aether_conformance.process_store import StoreProcess  # noqa: E402
from tests.go_toolchain import go_binary, run_go  # noqa: E402

CLI = [sys.executable, "-m", "aether_conformance.cli", "run"]
PROCESS_FACTORY = "aether_conformance.process_store:from_environment"
TARGET_RATIO = 1.3
PIPELINE_THREADS = 8


def _certify_seconds(store: str, profile: str, env: dict[str, str], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        completed = subprocess.run(CLI + [store, "--profile", profile], cwd=ROOT, capture_output=True, text=True,
                                   env={**os.environ, **env})
        elapsed = time.perf_counter() - started
        if completed.returncode != 0:
            raise SystemExit(f"{store} {env} was not certified (exit {completed.returncode}):\n{completed.stdout[-2000:]}")
        best = min(best, elapsed)
    return best


def _process_commands(scratch: Path) -> dict[str, str]:
    commands = {}
    node = shutil.which("node")
    if node:
        commands["node"] = f"{node} {ROOT / 'reference_store' / 'node' / 'store.js'}"
    if go_binary() is not None:
        built = run_go(["build", "-o", str(scratch / "go_seed"), "."], ROOT / "reference_store" / "go_seed", scratch)
        if built.returncode == 0:
            commands["go seed"] = str(scratch / "go_seed")
    return commands


def certification(profile: str, runs: int, commands: dict[str, str]) -> None:
    print(f"certification time, profile {profile}, best of {runs}:")
    baseline = _certify_seconds("reference_store.memory:shared_store", profile, {}, runs)
    print(f"  in-memory Python store (baseline)  {baseline:7.2f} s")
    for name, command in commands.items():
        seconds = _certify_seconds(PROCESS_FACTORY, profile, {"AETHER_STORE_COMMAND": command}, runs)
        ratio = seconds / baseline
        verdict = "PASS" if ratio <= TARGET_RATIO else "MISS"
        print(f"  {name:<34} {seconds:7.2f} s  {ratio:4.2f}x  {verdict} (target <= {TARGET_RATIO}x)")


def _raw_round_trips(command: list[str], calls: int) -> float:
    """Requests written and answered one at a time straight on the pipe: the floor's cost per call."""
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0) as child:
        reader = child.stdout
        reader.readline()  # the greeting
        started = time.perf_counter()
        for number in range(1, calls + 1):
            child.stdin.write(b'{"id": %d, "method": "get_latest_version", "params": {"actorId": "a"}}\n' % number)
            json.loads(reader.readline())
        elapsed = time.perf_counter() - started
        child.stdin.close()
        child.wait(10)
    return calls / elapsed


def _adapter_calls(command: list[str], calls: int, threads: int) -> float:
    process = StoreProcess(command)
    try:
        per_thread = calls // threads

        def work() -> None:
            for _ in range(per_thread):
                process.call("get_latest_version", {"actorId": "a"})

        workers = [threading.Thread(target=work) for _ in range(threads)]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return per_thread * threads / (time.perf_counter() - started)
    finally:
        process.close()


def throughput(name: str, command: str, calls: int, rounds: int = 3) -> None:
    argv = shlex.split(command)
    best = {"raw": 0.0, "sequential": 0.0, "pipelined": 0.0}
    for _ in range(rounds):  # interleaved, best of each: a busy machine slows all three alike
        best["raw"] = max(best["raw"], _raw_round_trips(argv, calls))
        best["sequential"] = max(best["sequential"], _adapter_calls(argv, calls, 1))
        best["pipelined"] = max(best["pipelined"], _adapter_calls(argv, calls, PIPELINE_THREADS))
    raw, sequential, pipelined = best["raw"], best["sequential"], best["pipelined"]
    print(f"get_latest_version throughput to the {name} store, {calls} calls, best of {rounds}:")
    print(f"  raw pipe round trip (baseline)     {raw:9,.0f} calls/s")
    print(f"  adapter, one call at a time        {sequential:9,.0f} calls/s  {sequential / raw:4.2f}x")
    print(f"  adapter, {PIPELINE_THREADS} threads pipelining      {pipelined:9,.0f} calls/s  {pipelined / raw:4.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="quick", choices=["quick", "default", "thorough"])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--calls", type=int, default=10_000)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-process-") as scratch:
        commands = _process_commands(Path(scratch))
        if not commands:
            raise SystemExit("neither node nor a Go toolchain is available: nothing to compare")
        certification(arguments.profile, arguments.runs, commands)
        name, command = next(iter(commands.items()))
        throughput(name, command, arguments.calls)


if __name__ == "__main__":
    main()
