"""The console's loop: connect, follow the bus, serve HTTP until stopped.

It creates nothing on the broker (only ordered, ephemeral consumers) and keeps no state
of its own, so replicas can be added at will. Until the streams and buckets exist it
retries, and /readyz answers 503.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from services.console.cluster import Cluster
from services.console.control import Control, Token
from services.console.follower import Follower
from services.console.hub import Hub
from services.console.web import ConsoleApp
from shared.clock import Clock, SystemClock
from shared.config import AutoscaleConfig
from shared.explanation import Explain, ExplainGroups
from shared.nats_settings import connect
from shared.startup import StoppedWaiting
from shared.validation import sanitize

log = logging.getLogger(__name__)
RETRY_S = 2.0
CONSOLE_TOKEN_VARIABLE = "LXC_AUTOSCALE_CONSOLE_TOKEN"  # noqa: S105 - a variable's name, not a secret


def console_token(config: AutoscaleConfig) -> Token:
    secret = config.console.token
    return Token(secret.get_secret_value() if secret is not None else None)


class ConsoleService:
    def __init__(
        self,
        config: AutoscaleConfig,
        explain: Explain,
        *,
        explain_groups: ExplainGroups | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.cluster = Cluster(
            explain, events_kept=config.console.events_kept, dry_run_configured=config.defaults.dry_run,
            groups_configured=dict(config.groups), explain_groups=explain_groups,
        )  # fmt: skip
        self.hub = Hub()
        self._clock = clock or SystemClock()
        self.url: str | None = None
        self.nc: Any = None

    async def run(self, stop: asyncio.Event, started: asyncio.Event | None = None) -> None:
        try:
            self.nc = await connect(self.config.nats, service="console", stop=stop)
        except StoppedWaiting:
            return
        js = self.nc.jetstream()
        follower = Follower(js, self.cluster, self.hub)
        app = ConsoleApp(
            cluster=self.cluster, hub=self.hub, follower=follower, control=Control(js),
            token=console_token(self.config), js=js, clock=self._clock,
        ).build()  # fmt: skip
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        settings = self.config.console
        site = web.TCPSite(runner, settings.listen, settings.port)
        await site.start()
        port = runner.addresses[0][1]
        self.url = f"http://{settings.listen}:{port}/"
        log.info("console serving on %s", self.url, extra={"event": "console_listening"})
        try:
            await self._follow(follower, stop)
            if started is not None:
                started.set()
            await stop.wait()
        finally:
            await follower.stop()
            await runner.cleanup()
            await self.nc.close()

    async def _follow(self, follower: Follower, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await follower.start(self.config.console.events_kept)
                return
            except Exception as exc:  # streams or buckets not provisioned yet, or the broker is away
                await follower.stop()
                log.warning("cannot follow the bus yet (%s); retrying", sanitize(exc, 300),
                            extra={"event": "console_waiting"})  # fmt: skip
                await asyncio.sleep(RETRY_S)
