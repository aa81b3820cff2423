"""Start a throwaway clustered ``nats-server`` with JetStream, and hurt it on purpose.

:class:`NatsCluster` runs N nodes (default 3) on 127.0.0.1, each with free
client, route and monitoring ports, JetStream on file storage in a private
directory, and a full mesh of routes.  It then injects the faults a kit can
inject without root:

* :meth:`NatsCluster.kill` (SIGKILL) and :meth:`NatsCluster.restart` on the
  same ports and store directory;
* :meth:`NatsCluster.pause` (SIGSTOP) and :meth:`NatsCluster.resume`
  (SIGCONT);
* :meth:`NatsCluster.partition` and :meth:`NatsCluster.heal` of one node's
  routes.  Every route connection goes through a userspace TCP proxy the
  launcher owns, one per ordered pair of nodes; a partition closes the
  proxies' connections to and from the node and refuses new ones.  Nodes
  advertise a route address that refuses connections, so gossip cannot teach
  a node a way around the proxies.

Readiness is ``/healthz`` on every node (which answers 200 only once the node
has a JetStream meta leader and its streams are current) plus a full mesh of
routes in ``/routez``.  A node that does not come back within the timeout is
a :class:`NatsClusterError` naming the node and its log, never a hang.
Every process is stopped by PID and every directory removed on every exit
path: ``close()``, the ``with`` block, an ``atexit`` hook for the rest, and
a watchdog process for deaths no Python code sees (SIGKILL, SIGTERM): it
holds the node PIDs and, when its pipe from the launcher closes without a
goodbye, kills them and removes the directories.

``python -m aether_conformance.nats_cluster`` starts one, prints
``NATS_URL=nats://...,nats://...`` and runs until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .nats_server import HOST, NatsServerError, _healthy, find_nats_server
from .ports import free_port
from .watchdog import Watchdog

__all__ = ["NatsCluster", "NatsClusterError", "ClusterNode", "ClusterFaults", "ClusterFaultPlugin", "nats_server_version"]


class NatsClusterError(NatsServerError):
    """A node did not start, did not come back, or the cluster did not settle in time."""


def nats_server_version(binary: str | None = None) -> str:
    """``nats-server --version`` without its prefix, e.g. ``v2.15.1``."""
    result = subprocess.run(
        [binary or find_nats_server(), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    return (result.stdout or result.stderr).strip().removeprefix("nats-server:").strip()


def _monitor(port: int, path: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=2.0) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


# -- the route proxies --------------------------------------------------------------------


class _ProxyHub:
    """Userspace TCP proxies on one event loop thread; each carries the routes of one ordered node pair.

    A blocked link refuses new connections and has its open ones aborted, as a
    network partition would: neither side gets a clean close.
    """

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="aether-route-proxies", daemon=True)
        self._thread.start()
        self._servers: list[asyncio.Server] = []
        self._blocked: set[tuple[int, int]] = set()
        self._open: dict[tuple[int, int], set[asyncio.Transport]] = {}

    def _call(self, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            result = fn()
            return await result if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)

    def add(self, link: tuple[int, int], target_port: int) -> int:
        """Start the proxy of ``link`` towards ``target_port``; the port it listens on."""

        async def start() -> int:
            self._open[link] = set()
            server = await asyncio.start_server(
                lambda reader, writer: self._relay(link, target_port, reader, writer), HOST, 0
            )
            self._servers.append(server)
            return server.sockets[0].getsockname()[1]

        return self._call(start)

    async def _relay(self, link: tuple[int, int], target_port: int, reader: Any, writer: Any) -> None:
        if link in self._blocked:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, target_port)
        except OSError:
            writer.transport.abort()
            return
        if link in self._blocked:  # blocked while we were connecting
            writer.transport.abort()
            up_writer.transport.abort()
            return
        ends = {writer.transport, up_writer.transport}
        self._open[link] |= ends
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            self._open[link] -= ends
            for transport in ends:
                transport.abort()

    @staticmethod
    async def _pump(reader: Any, writer: Any) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            # A route is one conversation: when either side goes, both go.
            writer.transport.abort()

    def block(self, links: set[tuple[int, int]]) -> None:
        def apply() -> None:
            self._blocked |= links
            for link in links:
                for transport in list(self._open.get(link, ())):
                    transport.abort()

        self._call(apply)

    def unblock(self, links: set[tuple[int, int]]) -> None:
        self._call(lambda: self._blocked.difference_update(links))

    def close(self) -> None:
        if self._loop.is_closed():
            return

        async def shutdown() -> None:
            for server in self._servers:
                server.close()
            for transports in self._open.values():
                for transport in list(transports):
                    transport.abort()
            # Aborted transports end their relays; wait for them so none is destroyed pending.
            relays = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            if relays:
                await asyncio.wait(relays, timeout=5)

        try:
            self._call(shutdown)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():
                self._loop.close()


# -- one node -----------------------------------------------------------------------------


class ClusterNode:
    """One nats-server process of a :class:`NatsCluster`; its ports and directories never change."""

    def __init__(self, index: int, run_dir: Path, binary: str, watchdog: Watchdog) -> None:
        self.index = index
        self._watchdog = watchdog
        self.name = f"n{index}"
        self.binary = binary
        self.port = free_port()
        self.monitor_port = free_port()
        self.route_port = free_port()
        self.store_dir = run_dir / f"{self.name}-store"
        self.store_dir.mkdir()
        self.config_path = run_dir / f"{self.name}.conf"
        self.log_path = run_dir / f"{self.name}.log"
        self.paused = False
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def spawn(self) -> None:
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for the caller must not reach the nodes
            )
        self._watchdog.watch_process(self._process.pid)
        self.paused = False

    def exit_code(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def signal(self, signum: int) -> None:
        if not self.running:
            raise NatsClusterError(f"node {self.name} is not running (log: {self.log_path})")
        assert self._process is not None
        self._process.send_signal(signum)

    def wait_stopped(self) -> None:
        """Block until a SIGSTOP has stopped every thread of the node: delivery is asynchronous."""
        assert self._process is not None
        # SIGSTOP cannot be caught, so the node either stops or dies: this cannot hang.
        # WNOWAIT leaves the state for Popen to collect.
        info = os.waitid(os.P_PID, self._process.pid, os.WSTOPPED | os.WEXITED | os.WNOWAIT)
        if info.si_code != os.CLD_STOPPED:
            raise NatsClusterError(f"node {self.name} died instead of stopping (log: {self.log_path})")

    def kill(self) -> None:
        process, self._process = self._process, None
        self.paused = False
        if process is None:
            return
        if process.poll() is None:
            process.kill()  # SIGKILL also ends a stopped process
        process.wait()
        self._watchdog.forget(process.pid)

    def stop(self, timeout: float = 10.0) -> None:
        process = self._process
        if process is None:
            return
        if self.paused and process.poll() is None:
            process.send_signal(signal.SIGCONT)
            self.paused = False
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def healthy(self) -> bool:
        return self.running and not self.paused and _healthy(self.monitor_port)

    def monitor(self, path: str) -> dict[str, Any] | None:
        return None if not self.running or self.paused else _monitor(self.monitor_port, path)

    def route_peers(self) -> set[str]:
        """Names of the nodes this node has at least one route to (pooled routes counted once)."""
        routez = self.monitor("/routez")
        if routez is None:
            return set()
        return {route.get("remote_name") or route.get("remote_id", "?") for route in routez.get("routes") or ()}

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __repr__(self) -> str:
        state = "paused" if self.paused else f"pid {self.pid}" if self.running else "stopped"
        return f"ClusterNode({self.name}, {self.url}, {state})"


# -- the cluster --------------------------------------------------------------------------

# Strong references: a cluster nobody holds any more must still be stopped at exit.
_LIVE: set[NatsCluster] = set()


@atexit.register
def _close_all() -> None:
    # Whatever was not closed (an exception past a caller without `with`): no node outlives us.
    for cluster in list(_LIVE):
        cluster.close()


class NatsCluster:
    """N JetStream nodes with a full mesh of proxied routes, bound to 127.0.0.1.

    ``sync_always`` sets JetStream's ``sync_interval: always`` (fsync every
    write); the default keeps the server's own interval, as most deployments do.
    Its directories live under a fresh temporary directory (or ``base_dir``),
    removed by :meth:`close`.
    """

    def __init__(
        self,
        size: int = 3,
        *,
        base_dir: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        startup_timeout: float = 60.0,
        sync_always: bool = False,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 2:
            # A lone clustered JetStream node refuses to start; NatsServer is the one-server case.
            raise ValueError(f"size: must be a number of nodes of at least 2 (use NatsServer for one), got {size!r}")
        self.size = size
        self.binary = binary or find_nats_server()
        self.startup_timeout = startup_timeout
        self.sync_always = sync_always
        self.name = f"aether-{uuid.uuid4().hex[:8]}"
        self._base = Path(tempfile.mkdtemp(prefix="aether-nats-cluster-", dir=base_dir))
        self._watchdog = Watchdog()
        self._watchdog.remove_on_death(self._base)
        self.nodes = [ClusterNode(i, self._base, self.binary, self._watchdog) for i in range(size)]
        self._partitioned: set[int] = set()
        self._proxies = _ProxyHub()
        # A bound socket that never listens: connections to it are refused.  Nodes advertise it
        # as their route address, so gossip never leads a node around the proxies.
        self._refuser = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._closed = False
        _LIVE.add(self)
        try:
            self._refuser.bind((HOST, 0))
            self._proxy_ports = {
                (a.index, b.index): self._proxies.add((a.index, b.index), b.route_port)
                for a in self.nodes for b in self.nodes if a is not b
            }
            for node in self.nodes:
                self._write_config(node)
        except BaseException:
            self.close()
            raise

    # -- configuration ------------------------------------------------------------------
    @property
    def sync_setting(self) -> str:
        return "always" if self.sync_always else "server default (sync_interval 2m)"

    def _write_config(self, node: ClusterNode) -> None:
        routes = [f"nats-route://{HOST}:{self._proxy_ports[(node.index, peer.index)]}"
                  for peer in self.nodes if peer is not node]
        jetstream = [f"store_dir: {json.dumps(str(node.store_dir))}"]
        if self.sync_always:
            jetstream.append("sync_interval: always")
        lines = [
            f"server_name: {node.name}",
            f"listen: {json.dumps(f'{HOST}:{node.port}')}",
            f"http: {json.dumps(f'{HOST}:{node.monitor_port}')}",
            # A paused peer's connections are dropped after ~3 missed pings rather than 2 minutes.
            'ping_interval: "2s"',
            "ping_max: 3",
            f"jetstream {{ {'; '.join(jetstream)} }}",
            "cluster {",
            f"  name: {self.name}",
            f"  listen: {json.dumps(f'{HOST}:{node.route_port}')}",
            f"  advertise: {json.dumps(f'{HOST}:{self._refuser.getsockname()[1]}')}",
            "  no_advertise: true",
            f"  routes: {json.dumps(routes)}",
            "}",
        ]
        node.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    # -- addresses ------------------------------------------------------------------------
    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated (what ``AETHER_NATS_URL`` carries)."""
        return ",".join(self.urls)

    def node(self, which: str | int | ClusterNode) -> ClusterNode:
        if isinstance(which, ClusterNode):
            return which
        for node in self.nodes:
            if which in (node.name, node.index):
                return node
        raise KeyError(f"no node {which!r} in this cluster; nodes: {', '.join(n.name for n in self.nodes)}")

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> NatsCluster:
        """Start every node and wait until the cluster is healthy."""
        if self._closed:
            raise NatsClusterError("this NatsCluster is closed")
        for node in self.nodes:
            if not node.running:
                node.spawn()
        self.wait_healthy(self.startup_timeout)
        return self

    def wait_healthy(self, timeout: float | None = None) -> float:
        """Wait until every node is up, healthy and routed to every other; the seconds it took."""
        timeout = self.startup_timeout if timeout is None else timeout
        started = time.monotonic()
        deadline = started + timeout
        while True:
            problems = self._problems()
            if not problems:
                return time.monotonic() - started
            dead = [node for node in self.nodes if node.exit_code() is not None]
            if dead or time.monotonic() >= deadline:
                node = dead[0] if dead else self.node(problems[0][0])
                why = (f"exited with code {node.exit_code()}" if dead
                       else f"not ready after {timeout:g}s: {problems[0][1]}")
                raise NatsClusterError(
                    f"cluster node {node.name} ({node.url}) {why}; log {node.log_path}:\n{node.log_tail()}"
                )
            time.sleep(0.1)

    def _problems(self) -> list[tuple[str, str]]:
        problems = []
        for node in self.nodes:
            if not node.running:
                problems.append((node.name, "not running"))
            elif node.paused:
                problems.append((node.name, "paused"))
            elif not _healthy(node.monitor_port):
                problems.append((node.name, "/healthz does not answer 200"))
        if problems:
            return problems
        wanted = {node.name for node in self.nodes}
        for node in self.nodes:
            missing = wanted - {node.name} - node.route_peers()
            if missing:
                problems.append((node.name, f"no route to {', '.join(sorted(missing))}"))
        if problems:
            return problems
        leaders = {self.meta_leader_seen_by(node) for node in self.nodes}
        if len(leaders) != 1 or None in leaders:
            return [(self.nodes[0].name, f"nodes disagree on the meta leader: {sorted(map(str, leaders))}")]
        # Until the meta leader counts every peer online and current, creating a replicated
        # stream fails with "no suitable peers for placement".
        (leader,) = leaders
        meta = (self.node(leader).monitor("/jsz") or {}).get("meta_cluster") or {}
        current = {peer.get("name") for peer in meta.get("replicas") or ()
                   if peer.get("current") and not peer.get("offline")}
        lagging = {node.name for node in self.nodes} - {leader} - current
        if lagging:
            problems.append((sorted(lagging)[0], f"the meta leader {leader} does not count "
                                                 f"{', '.join(sorted(lagging))} as current"))
        return problems

    def close(self) -> None:
        """Stop every node by PID and remove every directory; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            for node in self.nodes:
                node.stop()
        finally:
            self._proxies.close()
            self._refuser.close()
            shutil.rmtree(self._base, ignore_errors=True)
            self._watchdog.close()
            _LIVE.discard(self)

    def __enter__(self) -> NatsCluster:
        try:
            return self.start()
        except BaseException:
            self.close()  # __exit__ does not run when __enter__ raises
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- faults ---------------------------------------------------------------------------
    def kill(self, which: str | int | ClusterNode) -> ClusterNode:
        """SIGKILL the node: no flush, no goodbye to its peers."""
        node = self.node(which)
        node.kill()
        return node

    def restart(self, which: str | int | ClusterNode, timeout: float | None = None) -> ClusterNode:
        """Start a killed node again on the same ports and store directory; wait until it is healthy."""
        node = self.node(which)
        if node.running:
            node.stop()
        node.spawn()
        self._wait_node(node, self.startup_timeout if timeout is None else timeout)
        return node

    def pause(self, which: str | int | ClusterNode) -> ClusterNode:
        """SIGSTOP the node: its sockets stay open but it answers nothing."""
        node = self.node(which)
        node.signal(signal.SIGSTOP)
        node.wait_stopped()
        node.paused = True
        return node

    def resume(self, which: str | int | ClusterNode) -> ClusterNode:
        node = self.node(which)
        node.signal(signal.SIGCONT)
        node.paused = False
        return node

    def partition(self, which: str | int | ClusterNode) -> ClusterNode:
        """Cut every route to and from the node; it keeps serving its clients, alone."""
        node = self.node(which)
        self._partitioned.add(node.index)
        self._proxies.block(self._links_of(node.index))
        return node

    def heal(self, which: str | int | ClusterNode | None = None) -> None:
        """Restore the routes of the node (all nodes when None)."""
        healed = set(self._partitioned) if which is None else {self.node(which).index}
        self._partitioned -= healed
        links = {link for index in healed for link in self._links_of(index)}
        # A link stays cut while either of its ends is still partitioned.
        self._proxies.unblock({(a, b) for a, b in links if a not in self._partitioned and b not in self._partitioned})

    def _links_of(self, index: int) -> set[tuple[int, int]]:
        return {link for link in self._proxy_ports if index in link}

    def _wait_node(self, node: ClusterNode, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not node.healthy():
            if node.exit_code() is not None:
                raise NatsClusterError(
                    f"cluster node {node.name} ({node.url}) exited with code {node.exit_code()}; "
                    f"log {node.log_path}:\n{node.log_tail()}"
                )
            if time.monotonic() >= deadline:
                raise NatsClusterError(
                    f"cluster node {node.name} ({node.url}) did not become healthy within {timeout:g}s; "
                    f"log {node.log_path}:\n{node.log_tail()}"
                )
            time.sleep(0.1)

    # -- the cluster's own view of itself ---------------------------------------------------
    def meta_leader_seen_by(self, which: str | int | ClusterNode) -> str | None:
        jsz = self.node(which).monitor("/jsz")
        return None if jsz is None else (jsz.get("meta_cluster") or {}).get("leader") or None

    def meta_leader(self) -> str | None:
        """The JetStream meta leader as the reachable nodes report it (None if none is known)."""
        for node in self.nodes:
            leader = self.meta_leader_seen_by(node)
            if leader:
                return leader
        return None

    def streams(self) -> dict[str, dict[str, Any]]:
        """Every stream any reachable node hosts: name -> {"leader", "replicas", "configured", "messages"}.

        ``configured`` is the replica count the stream was created with; ``replicas`` the peers
        placed, which can exceed it for a while when a peer moves.  A stream's leader is taken
        from a node that leads it when one says so, since a follower's view lags an election.
        """
        found: dict[str, dict[str, Any]] = {}
        for node in self.nodes:
            jsz = node.monitor("/jsz?accounts=true&streams=true&config=true")
            for account in (jsz or {}).get("account_details") or ():
                for stream in account.get("stream_detail") or ():
                    cluster = stream.get("cluster") or {}
                    entry = found.setdefault(stream["name"],
                                             {"leader": None, "replicas": 0, "configured": 0, "messages": 0})
                    entry["replicas"] = max(entry["replicas"], len(cluster.get("replicas") or ()) + 1)
                    entry["configured"] = max(entry["configured"], (stream.get("config") or {}).get("num_replicas", 1))
                    entry["messages"] = max(entry["messages"], (stream.get("state") or {}).get("messages", 0))
                    if cluster.get("leader") == node.name or entry["leader"] is None:
                        entry["leader"] = cluster.get("leader") or entry["leader"]
        return found

    def stream_leader(self, stream: str) -> str | None:
        return self.streams().get(stream, {}).get("leader")

    def busiest_stream_leader(self) -> str | None:
        """The leader of the stream holding the most messages (the one under load), else the meta leader."""
        streams = [s for s in self.streams().values() if s["leader"]]
        if streams:
            return max(streams, key=lambda s: s["messages"])["leader"]
        return self.meta_leader()

    def __repr__(self) -> str:
        return f"NatsCluster({self.name}, {', '.join(map(repr, self.nodes))})"


# -- the cluster as a fault provider ----------------------------------------------------------


class ClusterFaults:
    """The cluster's faults for :mod:`aether_conformance.faults`: each hits the busiest stream's leader.

    ``kill`` is SIGKILL then a restart on the same ports and directory;
    ``pause`` is SIGSTOP then SIGCONT; ``partition`` cuts the node's routes
    then heals them.  Each recovery returns once the whole cluster is healthy
    again, or raises :class:`NatsClusterError` naming the node and its log
    after ``recovery_timeout`` seconds.
    """

    def __init__(self, cluster: NatsCluster, recovery_timeout: float = 90.0) -> None:
        self.cluster = cluster
        self.recovery_timeout = recovery_timeout
        self._hit: ClusterNode | None = None

    def fault_kinds(self) -> list[Any]:
        from .faults import FaultKind

        cluster = self.cluster
        return [
            FaultKind("kill", lambda: self._inject(cluster.kill),
                      lambda: self._recover(lambda node: cluster.restart(node, timeout=self.recovery_timeout))),
            FaultKind("pause", lambda: self._inject(cluster.pause), lambda: self._recover(cluster.resume)),
            FaultKind("partition", lambda: self._inject(cluster.partition, split_clients=True),
                      lambda: self._recover(cluster.heal)),
        ]

    def _inject(self, fault: Callable[[ClusterNode], Any], split_clients: bool = False) -> str:
        """Hit the busiest stream's leader; a partition hits a follower with clients on both sides.

        A partitioned follower keeps serving its own clients from its own (now stale) replica
        (direct gets, within about a second of the cut), while the majority keeps its leader and
        goes on saving at once: that is the moment a store reading from any replica is caught,
        whatever the hold.  Cutting off the leader instead would leave the majority without a
        leader until an election (seconds), which a short hold may never reach.  So the
        partition picks the follower with the fewest clients but some, which leaves the most
        handles saving on the majority side; the leader only when no follower has clients.
        """
        streams = {name: s for name, s in self.cluster.streams().items() if s["leader"]}
        if streams:
            name, busiest = max(streams.items(), key=lambda item: item[1]["messages"])
            leader, role = self.cluster.node(busiest["leader"]), f"leader of stream {name}"
        else:
            found = self.cluster.meta_leader()
            leader = self.cluster.node(found) if found else self.cluster.nodes[0]
            role = "meta leader" if found else "no leader known"
        node = leader
        if split_clients:
            clients = {n.name: (n.monitor("/connz") or {}).get("num_connections", 0) for n in self.cluster.nodes}
            total = sum(clients.values())
            split = [n for n in self.cluster.nodes if 0 < clients[n.name] < total]
            followers = sorted((n for n in split if n is not leader), key=lambda n: (clients[n.name], n.index))
            if followers:
                node = followers[0]
                role = f"follower, {clients[node.name]} of {total} clients; the {role} is {leader.name}"
            elif split:
                role += f", {clients[node.name]} of {total} clients"
        fault(node)
        self._hit = node
        return f"{node.name} ({role})"

    def _recover(self, recovery: Callable[[ClusterNode], Any]) -> None:
        node, self._hit = self._hit, None
        assert node is not None, "recover called without an injected fault"
        recovery(node)
        self.cluster.wait_healthy(self.recovery_timeout)

    def preconditions(self) -> list[str]:
        size = self.cluster.size
        return [
            f"stream {name} has {info['configured']} replica(s) on a {size}-node cluster: one node's fault can lose "
            f"acknowledged saves or stop the store; create it with {size} replicas (AETHER_NATS_REPLICAS={size})"
            for name, info in sorted(self.cluster.streams().items()) if info["configured"] < size
        ]

    def environment(self) -> dict[str, Any]:
        return {
            "backend": "nats-server",
            "version": nats_server_version(self.cluster.binary),
            "nodes": self.cluster.size,
            "sync": self.cluster.sync_setting,
        }


class ClusterFaultPlugin:
    """A pytest plugin object answering ``pytest_aether_fault_provider`` with a cluster's faults."""

    def __init__(self, cluster: NatsCluster) -> None:
        self.provider = ClusterFaults(cluster)

    def pytest_aether_fault_provider(self, config: Any) -> ClusterFaults:
        return self.provider


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aether_conformance.nats_cluster",
        description="Run a local JetStream cluster (127.0.0.1 only, proxied routes) until interrupted.",
    )
    parser.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    parser.add_argument("--sync-always", action="store_true", help="fsync every JetStream write")
    args = parser.parse_args(argv)

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(0)

    try:
        cluster = NatsCluster(args.nodes, sync_always=args.sync_always)
    except (NatsServerError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, terminate)
    try:
        cluster.start()
        print(f"NATS_URL={cluster.url}", flush=True)
        for node in cluster.nodes:
            print(f"{node.name}: {node.url} pid {node.pid} monitor http://{HOST}:{node.monitor_port} "
                  f"log {node.log_path}", file=sys.stderr, flush=True)
        print("Ctrl-C to stop", file=sys.stderr, flush=True)
        while all(node.running for node in cluster.nodes):
            time.sleep(0.5)
        dead = next(node for node in cluster.nodes if not node.running)
        print(f"node {dead.name} exited with code {dead.exit_code()}:\n{dead.log_tail()}", file=sys.stderr)
        return 1
    except NatsServerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())
