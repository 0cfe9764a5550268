"""A plain round-robin HTTP forwarder for the replica tests and the concurrency benchmark.

It stands where nginx would in a deployment (``docs/deployment.md``): each request it receives goes
to the next upstream server in turn, whole (method, path and query, body, the headers that matter:
``Authorization``, ``Content-Type``, ``Cookie``), and the upstream's answer comes back as it was.
An upstream that cannot be reached (a replica being killed or restarting) is answered with 502 by
the forwarder itself, as nginx does, and the client's retry goes to the next upstream.

Every exchange is recorded as a ``Hop`` (upstream index, method, path, status, seconds, and whether
the status came from the upstream or from the forwarder), so a test can say "no upstream ever
answered >= 500" and a benchmark can report batch latencies.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

_FORWARDED_REQUEST = ("authorization", "content-type", "cookie", "user-agent")
_FORWARDED_ANSWER = ("content-type", "set-cookie", "retry-after", "cache-control", "content-disposition",
                     "x-content-type-options", "content-security-policy")


@dataclass(frozen=True)
class Hop:
    upstream: int
    method: str
    path: str
    status: int
    seconds: float
    from_upstream: bool  # False: the forwarder answered (the upstream could not be reached)


class RoundRobinProxy:
    """Forward each request to the next of ``upstreams`` (base URLs) in turn; ``url`` is where to point clients."""

    def __init__(self, upstreams: list[str]) -> None:
        self.upstreams = list(upstreams)
        self.hops: list[Hop] = []
        self._turn = itertools.count()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:  # quiet
                pass

            def _forward(self) -> None:
                proxy.forward(self)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.request_queue_size = 512
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> RoundRobinProxy:
        self._thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def forward(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else None
        with self._lock:
            i = next(self._turn) % len(self.upstreams)
        headers = {k: v for k, v in h.headers.items() if k.lower() in _FORWARDED_REQUEST}
        t0 = time.monotonic()
        try:
            # A new connection per request (requests.request: a fresh session, no cookie kept): a kept-alive
            # one could have been closed by the upstream's idle timeout and read as "unreachable".
            resp = requests.request(h.command, self.upstreams[i] + h.path, data=body, headers=headers,
                                    timeout=(5, 300), allow_redirects=False)
            status, content, from_upstream = resp.status_code, resp.content, True
            answer = [(k, v) for k, v in resp.headers.items() if k.lower() in _FORWARDED_ANSWER]
        except requests.RequestException as exc:
            status, from_upstream = 502, False
            content = b'{"error": {"code": "bad_gateway", "message": "upstream unreachable: %s"}}' % (
                type(exc).__name__.encode())
            answer = [("Content-Type", "application/json")]
        with self._lock:
            self.hops.append(Hop(i, h.command, h.path.split("?", 1)[0], status, time.monotonic() - t0, from_upstream))
        h.send_response(status)
        for k, v in answer:
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(content)))
        h.end_headers()
        h.wfile.write(content)

    def upstream_errors(self) -> list[Hop]:
        """Every answer >= 500 an upstream server gave (the forwarder's own 502s are not among them)."""
        with self._lock:
            return [x for x in self.hops if x.from_upstream and x.status >= 500]
