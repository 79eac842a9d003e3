"""Assemble the actuator from configuration: executor, retry policy, host limits, handler."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from nats.js.api import ConsumerConfig

from services.actuator.applier import Applier, ApplierSettings, Fence
from services.actuator.commands import HOST_PROBE, HostLimits, check_pct_path, parse_host_probe
from services.actuator.config_reader import ConfigFiles, ConfigReader, LocalFiles
from services.actuator.executors.base import Executor
from services.actuator.executors.local import LocalExecutor
from services.actuator.group_applier import GroupApplier, GroupSettings
from services.actuator.group_store import GroupStore
from services.actuator.handler import IntentHandler
from services.actuator.leadership import Leadership
from services.actuator.node_reader import NodeReader
from services.actuator.precondition import SizeBounds
from services.actuator.publisher import EventPublisher
from services.actuator.pvesh_reader import PveshNodeReader
from services.actuator.retry import ConsumerTiming, RetryPolicy, classify, consumer_timing
from services.actuator.service import ActuatorService, consumer_config
from services.actuator.store import ActuatorStore
from shared import subjects
from shared.clock import Clock, SystemClock
from shared.config import ActuatorSettings, AutoscaleConfig
from shared.provisioning import verify

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The actuator cannot start as configured; the text says what to fix."""


def retry_policy(settings: ActuatorSettings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        initial_backoff_s=settings.backoff_initial_s,
        max_backoff_s=settings.backoff_max_s,
        # Jitter in proportion to the first wait keeps retries of many containers apart.
        jitter_s=settings.backoff_initial_s,
        command_timeout_s=settings.command_timeout_s,
    )


def executor_kind(config: AutoscaleConfig) -> str:
    """ACTUATOR.executor, or what the original's keys imply when it is not set."""
    if config.actuator.executor is not None:
        return config.actuator.executor
    if config.defaults.use_remote_proxmox:
        return "ssh"
    return "api" if config.defaults.backend == "api" else "local"


def build_executor(config: AutoscaleConfig, node: str) -> Executor:
    defaults = config.defaults
    kind = executor_kind(config)
    if kind == "local":
        return LocalExecutor()
    if kind == "api":
        from services.actuator.executors.api import ApiExecutor
        from shared.proxmox_api import ProxmoxApi, endpoint_from_settings

        try:
            endpoint = endpoint_from_settings(defaults.proxmox_api, config.actuator.node_hosts.get(node))
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        return ApiExecutor(ProxmoxApi(endpoint), node)
    from services.actuator.executors.ssh import SshExecutor, SshTarget  # paramiko only when needed

    host = config.actuator.node_hosts.get(node) or defaults.proxmox_host
    if host is None:
        raise StartupError(
            f"no SSH host for node {node}: set ACTUATOR.node_hosts.{node} or DEFAULT.proxmox_host"
        )
    target = SshTarget(
        host=host,
        port=defaults.ssh_port,
        user=defaults.ssh_user or "root",
        password=defaults.ssh_password,
        key_path=defaults.ssh_key_path,
        host_key_policy=defaults.ssh_host_key_policy,
        known_hosts_path=defaults.ssh_known_hosts_path,
    )
    return SshExecutor(target)


async def probe_host(executor: Executor, timeout_s: float) -> HostLimits:
    result = await executor.run(HOST_PROBE, timeout_s)
    if not result.ok:
        raise StartupError(
            f"cannot read the host's cores and memory ({classify(result).message}); "
            "pass --host-cores and --host-memory-mb"
        )
    return parse_host_probe(result.stdout)


def tier_bounds(config: AutoscaleConfig) -> Callable[[int], SizeBounds]:
    """The bounds of each container's tier (DEFAULT when it has none), from the actuator's config."""

    def bounds(vmid: int) -> SizeBounds:
        policy = config.policy_for(vmid)
        return SizeBounds(policy.min_cores, policy.max_cores, policy.min_memory, policy.max_memory)

    return bounds


def node_consumer(settings: ActuatorSettings, node: str, max_in_flight: int = 8) -> ConsumerConfig:
    """The durable consumer of `node`'s intents: `setup` creates it, the actuator checks it."""
    return consumer_config(node, consumer_timing(retry_policy(settings)), max_in_flight)


def config_reader(node: str, settings: ActuatorSettings, executor: Executor) -> ConfigReader:
    """Files where the executor can read them (this host, or SFTP over SSH); else `pct config`
    (`read_config: pct`, or the API executor, which asks the API for the config)."""
    files = config_files(settings, executor) if settings.read_config == "file" else None
    return ConfigReader(
        node=node, executor=executor, pct_path=check_pct_path(settings.pct_path), files=files,
        root=settings.root,
    )  # fmt: skip


def config_files(settings: ActuatorSettings, executor: Executor) -> ConfigFiles | None:
    """Where the executor can read the node's files: this host, or SFTP over SSH."""
    if isinstance(executor, LocalExecutor):
        return LocalFiles()
    if hasattr(executor, "read_file"):
        return cast(ConfigFiles, executor)
    return None


async def group_applier(
    js: Any,
    *,
    node: str,
    settings: ActuatorSettings,
    executor: Executor,
    config: AutoscaleConfig,
    policy: RetryPolicy,
    clock: Clock,
    fence: Fence,
    lease_s: float,
) -> GroupApplier:
    """Group actions read configs of every node as files where the executor can (this host,
    SFTP); the API executor asks the API instead (`pvesh get` forms it maps to GET calls)."""
    files = config_files(settings, executor)
    pct, pvesh = check_pct_path(settings.pct_path), settings.pvesh_path
    reader: NodeReader
    if files is None:
        reader = PveshNodeReader(executor=executor, pct_path=pct, pvesh_path=pvesh, policy=policy)
    else:
        reader = NodeReader(
            executor=executor, files=files, root=settings.root, pct_path=pct, pvesh_path=pvesh, policy=policy
        )
    group_settings = GroupSettings(
        node=node, pct_path=pct, policy=policy, groups=config.groups, defaults=config.defaults,
        other_nodes=tuple(sorted(set(settings.node_hosts) - {node})), lease_s=lease_s,
        pvesh_path=settings.pvesh_path,
    )  # fmt: skip
    return GroupApplier(
        settings=group_settings, executor=executor, reader=reader, store=await GroupStore.open(js),
        publisher=EventPublisher(js), clock=clock, fence=fence,
    )  # fmt: skip


@dataclass
class Actuator:
    service: ActuatorService
    handler: IntentHandler
    executor: Executor
    timing: ConsumerTiming


async def build_actuator(
    *,
    nc: Any,
    node: str,
    settings: ActuatorSettings,
    executor: Executor,
    limits: HostLimits,
    tiers: AutoscaleConfig | None = None,
    clock: Clock | None = None,
    max_in_flight: int = 8,
) -> Actuator:
    """Check that what the actuator needs is provisioned (by setup) and wire its parts together."""
    js = nc.jetstream()
    policy = retry_policy(settings)
    timing = consumer_timing(policy)
    await verify(
        js, service=f"actuator for node {node}",
        streams=[subjects.INTENTS_STREAM, subjects.EVENTS_STREAM],
        consumers=[(subjects.INTENTS_STREAM, consumer_config(node, timing, max_in_flight))],
        buckets=[subjects.ACTUATOR_BUCKET, subjects.BACKUP_BUCKET, subjects.GROUPS_BUCKET],
    )  # fmt: skip
    clock = clock or SystemClock()
    leadership = Leadership(
        kv=await js.key_value(subjects.ACTUATOR_BUCKET), node=node, ttl_s=timing.lease_ttl_s,
        renew_every_s=timing.progress_every_s, clock=clock,
    )  # fmt: skip
    applier_settings = ApplierSettings(
        node=node, limits=limits, pct_path=check_pct_path(settings.pct_path), policy=policy,
        bounds=tier_bounds(tiers or AutoscaleConfig()),
    )  # fmt: skip
    applier = Applier(
        settings=applier_settings, executor=executor, store=await ActuatorStore.open(js),
        publisher=EventPublisher(js), clock=clock, fence=leadership,
        reader=config_reader(node, settings, executor),
    )  # fmt: skip
    groups = await group_applier(
        js, node=node, settings=settings, executor=executor, config=tiers or AutoscaleConfig(),
        policy=policy, clock=clock, fence=leadership, lease_s=timing.lease_ttl_s,
    )  # fmt: skip
    handler = IntentHandler(
        applier=applier, progress_every_s=timing.progress_every_s, now=clock.now, groups=groups
    )
    service = ActuatorService(
        js=js, handler=handler, node=node, leadership=leadership, max_in_flight=max_in_flight
    )
    log.info(
        "actuator configured",
        extra={"event": "actuator_configured", "node": node, "host_cores": limits.cores,
               "host_memory_mb": limits.memory_mb, "ack_wait_s": timing.ack_wait_s,
               "max_deliver": timing.max_deliver, "max_attempts": policy.max_attempts,
               "lease_ttl_s": timing.lease_ttl_s},
    )  # fmt: skip
    return Actuator(service=service, handler=handler, executor=executor, timing=timing)
