"""The running policy: the configuration file (reloaded when its mtime changes) plus
the operator's pauses and dry-run switch from the KV bucket `autoscale_policy`
(followed by a watcher).

A file that fails validation on reload is reported and the previous policy stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from nats.js.kv import KeyValue
from pydantic import ValidationError

from services.decider.kv_watch import stop_following
from services.decider.policy import PauseEntry, PolicyView
from services.decider.policy.pause import PAUSE_KEY_PREFIX, pauses_from
from shared.config import AutoscaleConfig, ConfigError, load_config
from shared.dry_run import DRY_RUN_KEY, UNREADABLE, read_dry_run
from shared.validation import sanitize

log = logging.getLogger(__name__)


class PolicySource:
    def __init__(self, config: AutoscaleConfig, path: Path | None) -> None:
        self._path = path
        self._mtime = _mtime(path)
        self._pauses: dict[str, PauseEntry] = {}
        self.view = PolicyView(config)
        self._watch_task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None

    async def start(self, kv: KeyValue) -> None:
        await self.stop()
        self._watcher = await kv.watchall()
        self._watch_task = asyncio.create_task(self._follow(self._watcher))

    async def stop(self) -> None:
        await stop_following(self._watch_task, self._watcher)
        self._watch_task = self._watcher = None

    def reload_if_changed(self) -> bool:
        """Called periodically; returns True when a new policy took effect."""
        mtime = _mtime(self._path)
        if self._path is None or mtime == self._mtime:
            return False
        self._mtime = mtime
        try:
            config = load_config(self._path)
        except ConfigError as exc:
            log.error("configuration reload refused, keeping policy %s: %s", self.view.version, exc,
                      extra={"event": "policy_reload_failed"})  # fmt: skip
            return False
        previous = self.view.version
        self.view = PolicyView(config, self.view.pauses, self.view.dry_run_switch)
        log.info("policy reloaded: %s -> %s", previous, self.view.version,
                 extra={"event": "policy_reloaded", "policy_version": self.view.version})  # fmt: skip
        return True

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            async for entry in watcher:
                if entry is not None:
                    self._apply(entry.key, entry.value, entry.operation)

    def _apply(self, key: str, value: bytes | None, operation: str | None) -> None:
        deleted = operation in {"DEL", "PURGE"} or not value
        if key == DRY_RUN_KEY:
            self._apply_dry_run(None if deleted else value)
        elif key.startswith(PAUSE_KEY_PREFIX):
            self._apply_pause(key, None if deleted else value)

    def _apply_dry_run(self, value: bytes | None) -> None:
        switch = read_dry_run(value)
        if switch is UNREADABLE:
            log.warning("unreadable dry-run switch: dry-run on until it is fixed",
                        extra={"event": "dry_run_invalid"})  # fmt: skip
        self.view = self.view.with_dry_run(switch)
        log.info("dry-run now %s (%s)", "on" if self.view.dry_run else "off", self.view.dry_run_source,
                 extra={"event": "dry_run_changed", "dry_run": self.view.dry_run})  # fmt: skip

    def _apply_pause(self, key: str, value: bytes | None) -> None:
        if value is None:
            self._pauses.pop(key, None)
        else:
            try:
                self._pauses[key] = PauseEntry.model_validate_json(value)
            except ValidationError as exc:
                log.warning("ignoring invalid pause %s: %s", sanitize(key), sanitize(exc, 300),
                            extra={"event": "pause_invalid"})  # fmt: skip
                return
        self.view = self.view.with_pauses(pauses_from(self._pauses))
        log.info("pauses now %s", sorted(self._pauses), extra={"event": "pauses_changed"})


def _mtime(path: Path | None) -> float | None:
    if path is None:
        return None
    try:
        return path.stat().st_mtime
    except OSError:
        return None
