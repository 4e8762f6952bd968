"""GET /metrics: Prometheus text format, for admins and metrics tokens (or on its own bind).

Gauges are read from the store at scrape time (StoreCollector), so every server sharing
a database agrees on them; histograms and counters are this process's
(provisioner.metrics), which Prometheus sums over the servers it scrapes.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from provisioner import metrics
from provisioner.auth.tokens import Principal, Role
from provisioner.errors import DockyardError, Forbidden
from provisioner.server.auth import caller
from provisioner.store.store import Store

log = logging.getLogger(__name__)


class StoreCollector(Collector):
    """Gauges computed from the database on every scrape."""

    def __init__(self, store: Store, node: str | None = None) -> None:
        self.store = store
        # a workspace whose backend names no node runs on this server's Docker host
        self.node = node or socket.gethostname()

    def collect(self) -> Iterator[Metric]:
        counts = self.store.gauge_counts()
        by_status = GaugeMetricFamily(
            "dockyard_tasks",
            "Tasks by status, state (active tasks: working, idle, input_required) and template",
            labels=["status", "state", "template"],
        )
        for status, state, template, n in counts["tasks"]:
            by_status.add_metric([status, state or "", template], n)
        yield by_status
        queue = GaugeMetricFamily(
            "dockyard_queue_depth",
            "Pending tasks free to start (dependencies met), by target (default: none named)",
            labels=["target"],
        )
        for target, n in counts["queue"]:
            queue.add_metric([target or "default"], n)
        yield queue
        placed = GaugeMetricFamily(
            "dockyard_workspaces",
            "Workspaces provisioning or running, by node",
            labels=["node"],
        )
        for node, n in counts["workspaces"]:
            placed.add_metric([node or self.node], n)
        yield placed
        deliveries = GaugeMetricFamily(
            "dockyard_webhook_deliveries",
            "Webhook deliveries by state; failed: given up after every retry",
            labels=["state"],
        )
        for state, n in counts["deliveries"]:
            deliveries.add_metric([state], n)
        yield deliveries
        failed = dict(counts["deliveries"]).get("failed", 0)
        yield GaugeMetricFamily(
            "dockyard_webhook_delivery_failures",
            "Webhook deliveries that failed for good (see `dockyard webhook deliveries --failed`)",
            value=failed,
        )


def metrics_registry(store: Store, node: str | None = None) -> CollectorRegistry:
    """A registry of one server: the store's gauges and this process's observations."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, node))
    for collector in metrics.OBSERVED:
        registry.register(collector)
    return registry


def metrics_reader(who: Principal = Depends(caller)) -> Principal:
    """An admin or a metrics user (whose tokens reach this route and no other)."""
    if who.role not in (Role.ADMIN, Role.METRICS):
        raise Forbidden(
            "Only an admin or a metrics user may read metrics",
            hint="an admin makes one: dockyard user create prometheus --role metrics; "
            "dockyard token create --user prometheus",
        )
    return who


def build_metrics_router(registry: CollectorRegistry) -> APIRouter:
    """GET /metrics on the API's own address (authenticated like every path)."""
    r = APIRouter()

    @r.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    async def read_metrics(_: Principal = Depends(metrics_reader)) -> Response:
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return r


def parse_bind(value: object, where: str) -> tuple[str, int]:
    """`host:port` of `metrics: {bind: ...}`; a DockyardError naming `where` if wrong."""
    text = str(value or "")
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise DockyardError(
            f"{where}: {text[:64]!r} is not host:port",
            hint="e.g. metrics: {bind: '127.0.0.1:9464'}",
        )
    if any(not (c.isalnum() or c in ".-:") for c in host):
        raise DockyardError(f"{where}: {host[:64]!r} is not a host name or address")
    return host, int(port)


class MetricsListener:
    """/metrics without a token on a separate address (config `metrics: {bind: ...}`),
    for a Prometheus that cannot send one: bind it where only Prometheus reaches."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self.registry, self.host, self.port = registry, host, port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from prometheus_client import start_http_server

        self._server, self._thread = start_http_server(
            self.port, addr=self.host, registry=self.registry
        )
        self.port = self._server.server_port
        log.info("metrics without a token at http://%s:%s/metrics", self.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
