"""Free TCP ports on the loopback interface, for the servers and proxies the kit starts."""

from __future__ import annotations

import socket
import threading

LOOPBACK = "127.0.0.1"

# Every port free_port has handed out in this process.
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port() -> int:
    """A port free on the loopback interface now and never handed out before by this process.  A port
    bound to 0 and released can come back from the next bind: a cluster node once got one port as
    both its client and its route port, and did not start."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port = sock.getsockname()[1]
        with _handed_out_lock:
            if port not in _handed_out:
                _handed_out.add(port)
                return port
