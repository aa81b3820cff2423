"""The CLI's first handle, made in a child process before the suite starts.

Loading a store runs the store's code: its import or its factory may end the process
(``os._exit(0)``, ``sys.exit()`` at import, a segfault), start a thread that never ends,
install signal handlers or close the standard streams.  In the CLI's own process the first
would end the run with exit status 0 and no report, the second hang it at exit, the others
take its signals and its output.  In a child they cost one line of usage error (exit 2).

    python -m aether_conformance.preflight MODULE:ATTR TIMEOUT FD SYS_PATH_JSON
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys

from .driver import StoreDriver, StoreLoadError

__all__ = ["IMPORT_GRACE", "check_store"]

# Importing the store's module has no per-call timeout of its own; this bounds a hung import.
IMPORT_GRACE = 60.0
_MAX_MESSAGE = 4000
# Says that PYTHONSAFEPATH was set by check_store, not by the user.
_SAFEPATH_MARK = "AETHER_CONFORMANCE_PREFLIGHT_SAFEPATH"


def check_store(spec: str, timeout: float) -> None:
    """Import ``spec``, make one handle and close it, in a child process; StoreLoadError if that fails."""
    read_fd, write_fd = os.pipe()
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "aether_conformance.preflight", spec, repr(timeout), str(write_fd),
             json.dumps(sys.path)],
            stdin=subprocess.DEVNULL, pass_fds=(write_fd,), start_new_session=True,
            # The working directory must not shadow the kit's dependencies (the child gets the CLI's
            # sys.path); the child drops the setting again once started (see _main).
            env={**os.environ, "PYTHONSAFEPATH": "1", _SAFEPATH_MARK: "1"},
        )
    finally:
        os.close(write_fd)
    # A handle is made (the factory, perhaps awaited) and closed: three calls under the timeout.
    limit = IMPORT_GRACE + 3 * timeout
    try:
        try:
            status = child.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            raise StoreLoadError(f"loading {spec} and making one handle did not finish within {limit:g}s "
                                 f"({IMPORT_GRACE:g}s for the import and --timeout {timeout:g}s per call)") from None
        finally:
            _kill_group(child)
        outcome = _read_outcome(read_fd)
    finally:
        os.close(read_fd)
    if outcome is None:
        raise StoreLoadError(f"loading {spec} and making one handle ended the process that did it: "
                             f"{_ending(status)}; a store must never exit, crash or kill its caller")
    if "error" in outcome:
        raise StoreLoadError(outcome["error"])


def _kill_group(child: subprocess.Popen) -> None:
    # Whatever the store started in the child's session goes with it.
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    child.wait()


def _read_outcome(fd: int) -> dict | None:
    """The child's one JSON line, if it wrote one (a grandchild may hold the pipe open: no waiting for EOF)."""
    data = b""
    while select.select([fd], [], [], 0)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    try:
        outcome = json.loads(data.split(b"\n")[0])
    except ValueError:
        return None
    return outcome if isinstance(outcome, dict) else None


def _ending(status: int) -> str:
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exited with code {status}"


def _main(spec: str, timeout: str, fd: str, path: str) -> None:
    sys.path[:] = json.loads(path)
    if os.environ.pop(_SAFEPATH_MARK, None):
        # It guarded this process's start only: the store's own child processes (a process store's
        # `python -m mystore`) run as they would anywhere, the working directory importable.
        os.environ.pop("PYTHONSAFEPATH", None)
    try:
        driver = StoreDriver(spec, timeout=float(timeout))
        driver.new_handle()
        driver.close()
        outcome: dict[str, str] = {}
    except StoreLoadError as error:
        outcome = {"error": str(error)[:_MAX_MESSAGE]}
    except BaseException as error:  # SystemExit or KeyboardInterrupt raised by the import
        outcome = {"error": f"loading {spec} raised {type(error).__name__}: {error}"[:_MAX_MESSAGE]}
    os.write(int(fd), json.dumps(outcome).encode("ascii") + b"\n")
    for stream in (sys.stdout, sys.stderr):  # what the store printed, as it would have appeared
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)  # not waiting for whatever threads the store left running


if __name__ == "__main__":
    _main(*sys.argv[1:])
