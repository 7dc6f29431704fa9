"""A request counter served over HTTP, for tests that scale on ``requests_per_second``.

``Demand`` is one pod's ``http_requests_total``, growing at ``rate`` per second (set it any
time); ``serve_demand`` exposes it in the Prometheus text format from a thread, so Prometheus
or the controller's ``ScrapeSource`` can scrape it like an application pod.

With ``timestamps=True`` every sample carries the millisecond timestamp its value was computed
at (the exposition format allows it, and both scrapers honour it): the rate a scraper computes
is then exactly ``rate``, however late the scrape runs on a loaded machine. Without it, the
scraper stamps samples with its own clock and the rate it sees wobbles with scheduling.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from controller.orchestrators.local import LocalOrchestrator, LocalWorkloadSpec


def _wall_clock_ms() -> float:
    """Wall-clock seconds truncated to the millisecond a timestamped sample can carry."""
    return math.floor(time.time() * 1000) / 1000


class Demand:
    """``http_requests_total{namespace, pod}``, growing at ``rate`` per second."""

    def __init__(
        self, namespace: str = "line", pod: str = "orders-0", *, timestamps: bool = False
    ) -> None:
        self.namespace = namespace
        self.pod = pod
        self.timestamps = timestamps
        self.rate = 0.0
        self._clock: Callable[[], float] = _wall_clock_ms if timestamps else time.monotonic
        self._total = 0.0
        self._at = self._clock()
        self._lock = threading.Lock()

    def set(self, rate: float) -> None:
        with self._lock:
            self._advance()
            self.rate = rate

    def _advance(self) -> None:
        now = self._clock()
        self._total += self.rate * (now - self._at)
        self._at = now

    def exposition(self) -> bytes:
        with self._lock:
            self._advance()
            total, at = self._total, self._at
        stamp = f" {round(at * 1000)}" if self.timestamps else ""
        return (
            "# TYPE http_requests_total counter\n"
            f'http_requests_total{{namespace="{self.namespace}",pod="{self.pod}"}} '
            f"{total}{stamp}\n"
        ).encode()


@dataclass
class Exporter:
    server: ThreadingHTTPServer

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host!s}:{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_demand(demand: Demand) -> Exporter:
    """Serve ``demand``'s exposition on every path of a free loopback port."""
    return serve_exposition(demand.exposition)


def serve_exposition(exposition: Callable[[], bytes]) -> Exporter:
    """Serve what ``exposition()`` returns at each scrape, on every path of a free loopback
    port, in the Prometheus text format."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = exposition()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return Exporter(server)


def requests_policy(min_replicas: int, max_replicas: int, per_replica_rps: float) -> dict[str, Any]:
    """An HPA spec scaling on ``requests_per_second`` (the metric ``Demand`` drives) per
    replica: scale-up by up to 10 pods per 15 s, scale-down without stabilisation, so a test
    sees both within seconds."""
    return {
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "metrics": [
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": "requests_per_second"},
                    "target": {"type": "AverageValue", "averageValue": str(per_replica_rps)},
                },
            }
        ],
        "behavior": {
            "scaleUp": {"policies": [{"type": "Pods", "value": 10, "periodSeconds": 15}]},
            "scaleDown": {"stabilizationWindowSeconds": 0},
        },
    }


# A replica for LocalOrchestrator workloads: ``python -c REPLICA_SERVER PORT`` answers every GET
# with 200. The listen backlog is raised from socketserver's 5: with 5, a burst of 20 new
# connections sees about half time out connecting, and the controller rightly ejects a
# replica that is only too small a test server (a real one listens with 128+).
REPLICA_SERVER = """
import http.server, sys

http.server.ThreadingHTTPServer.request_queue_size = 128

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


@contextlib.asynccontextmanager
async def local_replicas(
    log_dir: Path, name: str, namespace: str, replicas: int = 1
) -> AsyncIterator[LocalOrchestrator]:
    """A LocalOrchestrator running ``REPLICA_SERVER`` replicas of one workload, stopped on exit."""
    local = LocalOrchestrator(probe_interval_seconds=0.1, log_dir=log_dir)
    spec = LocalWorkloadSpec(
        name,
        namespace=namespace,
        command=[sys.executable, "-c", REPLICA_SERVER, "{port}"],
        readiness_path="/",
        drain_seconds=0.2,
        stop_timeout_seconds=2.0,
    )
    try:
        result = await local.register(spec, replicas)
        assert result.ok, result.detail
        yield local
    finally:
        await local.close()
