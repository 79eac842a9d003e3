"""Prometheus metrics and health endpoints, served by every service on `--metrics-port`.

  /metrics  prometheus-client's text format from the default registry, so the
            process_* and python_* families come with each service's own
  /healthz  200 while the process answers
  /readyz   200 when every readiness check the service declared passes (connected to
            NATS, what `setup` made is there, the consumer is bound), else 503 naming
            the failing checks

The endpoints run in a small thread of their own, so the composition root (cli/main.py)
starts them for any service without touching its event loop; services only mark their
checks (`READINESS.mark`) where the state changes and count their metrics.

Metric names follow Prometheus' conventions (`_total` counters, `_seconds`, base
units). Labels stay bounded: `node` yes; `vmid` only in families an operator turns on
(`--metrics-per-container`), since a cluster may hold thousands of containers.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger(__name__)


class Readiness:
    """The process's readiness checks: declared by the service, marked as things happen."""

    def __init__(self) -> None:
        self._checks: dict[str, bool] = {}
        self._lock = threading.Lock()

    def expect(self, names: Iterable[str]) -> None:
        with self._lock:
            for name in names:
                self._checks.setdefault(name, False)

    def mark(self, name: str, ok: bool) -> None:
        with self._lock:
            if name in self._checks:
                self._checks[name] = ok

    def snapshot(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._checks)

    def ready(self) -> bool:
        checks = self.snapshot()
        return bool(checks) and all(checks.values())


READINESS = Readiness()
NATS_CONNECTED = "nats_connected"
PROVISIONING_VERIFIED = "provisioning_verified"
CONSUMER_BOUND = "consumer_bound"
FOLLOWING = "following_the_bus"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._send(200, b'{"alive": true}', "application/json")
        elif path == "/readyz":
            checks = READINESS.snapshot()
            ready = bool(checks) and all(checks.values())
            body = json.dumps({"ready": ready, "checks": checks}).encode()
            self._send(200 if ready else 503, body, "application/json")
        else:
            self._send(404, b'{"error": "not found"}', "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return  # scrapes every few seconds would drown the service's own log


def start_health_server(host: str, port: int) -> ThreadingHTTPServer:
    """Serve the endpoints from a daemon thread; returns the server (its port is bound)."""
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    log.info("metrics and health on http://%s:%d/metrics", host, server.server_port,
             extra={"event": "metrics_listening"})  # fmt: skip
    return server
