"""The console's HTTP side (aiohttp): the JSON API under /api/v1/, the live page and its
server-sent events, control behind a token, and /healthz, /readyz.

JSON is written with <, > and & escaped as \\u003c, \\u003e and \\u0026: names and
reasons come from the bus, and a response read as HTML by mistake runs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from services.console import metrics as console_metrics
from services.console.cluster import Cluster, EventFilter
from services.console.control import Control, ControlError, Token
from services.console.follower import Follower
from services.console.hub import Hub
from shared import subjects
from shared.clock import Clock
from shared.validation import check_node_name, check_vmid

STATIC = Path(__file__).resolve().parent / "static"
MAX_EVENTS = 1000
KEEPALIVE_S = 15.0
MAX_CACHED_BODIES = 1024  # distinct node/vmid filters kept; cleared beyond
_HTML_UNSAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str).translate(_HTML_UNSAFE)


def reply(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, dumps=dumps)


@dataclass
class BodyCache:
    """Serialized answers of the read API, reused while the cluster has not changed and
    for at most `max_age_s` (ages and timers move with the clock). A page polled by many
    operators then costs one policy run and one serialization per change."""

    max_age_s: float = 1.0
    entries: dict[str, tuple[int, float, bytes]] = field(default_factory=dict)

    def get(self, key: str, version: int, now: float, build: Callable[[], Any]) -> web.Response:
        cached = self.entries.get(key)
        if cached is None or cached[0] != version or now - cached[1] >= self.max_age_s:
            if len(self.entries) > MAX_CACHED_BODIES:
                self.entries.clear()
            cached = self.entries[key] = (version, now, dumps(build()).encode())
        return web.Response(body=cached[2], content_type="application/json")


@dataclass
class ConsoleApp:
    cluster: Cluster
    hub: Hub
    follower: Follower
    control: Control
    token: Token
    js: Any
    clock: Clock
    bodies: BodyCache = field(default_factory=BodyCache)

    def build(self) -> web.Application:
        app = web.Application(middlewares=[_errors])
        get, post = app.router.add_get, app.router.add_post
        get("/", self.page)
        get("/static/{name}", self.static)
        get("/healthz", self.healthz)
        get("/readyz", self.readyz)
        get("/metrics", self.metrics)
        get("/api/v1", self.index)
        get("/api/v1/nodes", self.nodes)
        get("/api/v1/containers", self.containers)
        get("/api/v1/containers/{node}/{vmid}", self.container)
        get("/api/v1/events", self.events)
        get("/api/v1/pauses", self.pauses)
        get("/api/v1/dry-run", self.dry_run)
        get("/api/v1/groups", self.groups)
        get("/api/v1/health", self.health)
        get("/api/v1/stream", self.stream)
        post("/api/v1/pause", self._controlled(self.control.pause))
        post("/api/v1/resume", self._controlled(self.control.resume))
        post("/api/v1/rollback", self._controlled(self._rollback))
        post("/api/v1/dry-run", self._controlled(self._dry_run))
        return app

    # ---------------------------------------------------------------- page

    async def page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers=_PAGE_HEADERS)

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in {"console.js", "console.css"}:
            raise web.HTTPNotFound()
        return web.FileResponse(STATIC / name, headers=_PAGE_HEADERS)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=_STREAM_HEADERS)
        await response.prepare(request)
        queue = self.hub.join()
        try:
            await response.write(b"event: hello\ndata: {}\n\n")
            while True:
                try:
                    update = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                await response.write(f"event: {update.kind}\ndata: {dumps(update.data)}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.hub.leave(queue)
        return response

    # ---------------------------------------------------------------- read API

    async def index(self, request: web.Request) -> web.Response:
        return reply({
            "api": "v1",
            "control": "enabled" if self.token.enabled else "disabled: no token is configured",
            "dry_run": self.cluster.dry_run(),
            "paths": sorted({r.resource.canonical for r in request.app.router.routes() if r.resource}),
        })  # fmt: skip

    async def nodes(self, request: web.Request) -> web.Response:
        now = self.clock.now()
        build = lambda: self.cluster.nodes(now)  # noqa: E731
        return self.bodies.get("nodes", self.cluster.version, now.timestamp(), build)

    async def containers(self, request: web.Request) -> web.Response:
        query = request.query
        node = _node(query["node"]) if "node" in query else None
        vmid = _vmid(query["vmid"]) if "vmid" in query else None
        now = self.clock.now()
        return self.bodies.get(
            f"containers?{node}&{vmid}", self.cluster.version, now.timestamp(),
            lambda: self.cluster.containers(now, node=node, vmid=vmid),
        )  # fmt: skip

    async def container(self, request: web.Request) -> web.Response:
        node, vmid = _node(request.match_info["node"]), _vmid(request.match_info["vmid"])
        rows = self.cluster.containers(self.clock.now(), node=node, vmid=vmid)
        if not rows:
            raise web.HTTPNotFound(text=dumps({"error": f"no container {node}/{vmid} in the latest samples"}),
                                   content_type="application/json")  # fmt: skip
        row = rows[0]
        row["events"] = self.cluster.recent_events(EventFilter(node=node, vmid=vmid, limit=20))
        return reply(row)

    async def events(self, request: web.Request) -> web.Response:
        return reply(self.cluster.recent_events(_event_filter(request.query)))

    async def pauses(self, request: web.Request) -> web.Response:
        return reply(self.cluster.paused(self.clock.now()))

    async def groups(self, request: web.Request) -> web.Response:
        now = self.clock.now()
        build = lambda: self.cluster.groups(now)  # noqa: E731
        return self.bodies.get("groups", self.cluster.version, now.timestamp(), build)

    async def dry_run(self, request: web.Request) -> web.Response:
        return reply(self.cluster.dry_run())

    async def health(self, request: web.Request) -> web.Response:
        now = self.clock.now()
        return reply({
            "console": {"ready": self.follower.ready, "invalid_messages": self.follower.invalid},
            "nodes": {n["node"]: n["last_sample"] for n in self.cluster.nodes(now)},
            "consumers": await self._consumers(),
            "actuator_in_flight": sorted(self.cluster.in_flight),
        })  # fmt: skip

    async def healthz(self, request: web.Request) -> web.Response:
        return reply({"alive": True})

    async def metrics(self, request: web.Request) -> web.Response:
        """Prometheus text format; consumer lag and sample ages are read at each scrape."""
        now = self.clock.now()
        for row in await self._consumers():
            names = (row["stream"], row["consumer"])
            console_metrics.CONSUMER_PENDING.labels(*names).set(row["lag"])
            console_metrics.CONSUMER_ACK_PENDING.labels(*names).set(row["ack_pending"])
        for node, sample in self.cluster.samples.items():
            console_metrics.SAMPLE_AGE.labels(node).set((now - sample.taken_at).total_seconds())
        response = web.Response(body=generate_latest(REGISTRY))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def readyz(self, request: web.Request) -> web.Response:
        ready = self.follower.ready and self.js._nc.is_connected
        return reply({"ready": ready}, status=200 if ready else 503)

    async def _consumers(self) -> list[dict[str, Any]]:
        rows = []
        for stream in (subjects.METRICS_STREAM, subjects.INTENTS_STREAM, subjects.EVENTS_STREAM):
            with contextlib.suppress(Exception):
                for info in await self.js.consumers_info(stream):
                    if not info.config.durable_name:
                        continue  # ephemeral readers such as consoles
                    rows.append({
                        "stream": stream, "consumer": info.name,
                        "lag": info.num_pending, "ack_pending": info.num_ack_pending,
                        "redelivered": info.num_redelivered,
                    })  # fmt: skip
        return rows

    # ---------------------------------------------------------------- control

    def _controlled(self, action: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            name = request.path.rsplit("/", 1)[-1]
            try:
                self.token.check(request.headers.get("Authorization"))
                body = await _json_object(request)
                response = reply(await action(body))
            except ControlError as exc:
                console_metrics.CONTROL_REQUESTS.labels(name, str(exc.status)).inc()
                raise
            console_metrics.CONTROL_REQUESTS.labels(name, str(response.status)).inc()
            return response

        return handler

    async def _rollback(self, body: dict[str, Any]) -> dict[str, Any]:
        node = body.get("node")
        sample = self.cluster.samples.get(node) if isinstance(node, str) else None
        return await self.control.rollback(body, sample, self.clock.now())

    async def _dry_run(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.control.dry_run(body, self.clock.now())


_STREAM_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ControlError as exc:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        response = reply({"error": str(exc)}, status=exc.status)
        if headers:
            response.headers.update(headers)
        return response
    except ValueError as exc:
        return reply({"error": str(exc)}, status=400)


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ControlError(400, "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ControlError(400, "the body must be a JSON object")
    return body


def _node(text: str) -> str:
    return check_node_name(text)


def _vmid(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"vmid must be a number, got {text[:20]!r}")
    return check_vmid(int(text))


def _event_filter(query: Any) -> EventFilter:
    since = datetime.fromisoformat(query["since"]) if "since" in query else None
    if since is not None and since.tzinfo is None:
        raise ValueError("since needs a time zone, e.g. 2026-01-05T18:00:00+00:00")
    outcome = query.get("outcome")
    if outcome is not None and outcome not in {"applied", "skipped", "failed", "rejected"}:
        raise ValueError("outcome must be applied, skipped, failed or rejected")
    limit = int(query.get("limit", "100"))
    return EventFilter(
        node=_node(query["node"]) if "node" in query else None,
        vmid=_vmid(query["vmid"]) if "vmid" in query else None,
        outcome=outcome,
        since=since,
        limit=max(1, min(limit, MAX_EVENTS)),
    )
