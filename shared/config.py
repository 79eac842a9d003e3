"""The configuration model: the original LXC AutoScale YAML, plus the new keys.

`load_config(path)` reads `/etc/lxc_autoscale/lxc_autoscale.yaml`-style files:
`DEFAULT`, `TIER_<name>` (with `lxc_containers`), `HORIZONTAL_SCALING_GROUP_<n>`,
`${VAR}` / `${VAR:-default}` expansion and the `LXC_AUTOSCALE_*` overrides.
New sections `NATS`, `COLLECTOR`, `DECIDER`, `ACTUATOR`, `NOTIFIER`, `CONSOLE` hold what the
services add.
Every problem names the file and the key; all problems are reported at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyAddress,
    IPvAnyInterface,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.nats_settings import NatsSettings
from shared.validation import GROUP_NAME_PATTERN, HostName, NodeName

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """Every problem found in one configuration file."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} configuration problem(s):\n{lines}")


class _Section(BaseModel):
    # Unknown keys are collected as warnings by the loader, so models ignore them here.
    model_config = ConfigDict(extra="ignore", validate_default=True)


# ------------------------------------------------------------------ scaling policy


class ScalingPolicy(_Section):
    """Every knob that DEFAULT sets and a TIER_<name> may override."""

    cpu_upper_threshold: float = Field(80, ge=0, le=100)
    cpu_lower_threshold: float = Field(20, ge=0, le=100)
    memory_upper_threshold: float = Field(80, ge=0, le=100)
    memory_lower_threshold: float = Field(20, ge=0, le=100)
    min_cores: int = Field(1, ge=1, le=8192)
    max_cores: int = Field(4, ge=1, le=8192)
    min_memory: int = Field(512, ge=16)
    max_memory: int | None = Field(None, ge=16)  # new: the original ignored it
    core_min_increment: int = Field(1, ge=1)
    core_max_increment: int = Field(2, ge=1)
    memory_min_increment: int = Field(256, ge=1)
    min_decrease_chunk: int = Field(128, ge=1)
    cpu_scale_divisor: float = Field(2.0, gt=0)
    memory_scale_factor: float = Field(1.5, gt=0)
    scaling_mode: Literal["threshold", "boost"] = "threshold"
    boost_factor: float = Field(1.5, gt=1)
    boost_fallback_factor: float = Field(1.25, gt=1)
    boost_duration: float = Field(120, gt=0)
    saturation_threshold: float = Field(0.95, gt=0, le=1)
    consecutive_samples: int = Field(3, ge=1)
    cpu_pinning: str | None = None
    # New damping knobs (HPA/VPA-style); the defaults keep the original's steps.
    cooldown_up_s: float = Field(0, ge=0)
    cooldown_down_s: float = Field(0, ge=0)
    scale_down_stabilization_s: float = Field(300, ge=0, le=3600)
    # Above the upper threshold but not saturated: grow only after this long (measured time).
    scale_up_sustain_s: float = Field(10, ge=0, le=3600)
    tolerance: float = Field(0.0, ge=0, lt=1)
    warmup_s: float = Field(0, ge=0)
    pause: Literal["none", "all", "scale-down", "scale-up"] = "none"

    @model_validator(mode="after")
    def _bounds_are_ordered(self) -> ScalingPolicy:
        problems = []
        if self.cpu_lower_threshold >= self.cpu_upper_threshold:
            problems.append("cpu_lower_threshold must be below cpu_upper_threshold")
        if self.memory_lower_threshold >= self.memory_upper_threshold:
            problems.append("memory_lower_threshold must be below memory_upper_threshold")
        if self.min_cores > self.max_cores:
            problems.append("min_cores must not exceed max_cores")
        if self.max_memory is not None and self.min_memory > self.max_memory:
            problems.append("min_memory must not exceed max_memory")
        if self.core_min_increment > self.core_max_increment:
            problems.append("core_min_increment must not exceed core_max_increment")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ProxmoxApiSettings(_Section):
    """`DEFAULT.proxmox_api`: the original's keys (host, user, token_name, token_value,
    verify_ssl) plus what a verified, least-privilege connection needs."""

    enabled: bool = False  # the original's switch; here ACTUATOR.executor / COLLECTOR.source decide
    host: HostName | None = None  # default: ACTUATOR.node_hosts[node], else 127.0.0.1 (this node)
    port: int = Field(8006, ge=1, le=65535)
    user: str | None = Field(None, pattern=r"^[^\s:!@]+@[A-Za-z][A-Za-z0-9._-]*$")
    token_name: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9._-]{1,63}$")
    token_value: SecretStr | None = None  # or LXC_AUTOSCALE_PROXMOX_API_TOKEN_VALUE
    token_value_file: Path | None = None
    verify_ssl: bool = True  # false: no TLS verification at all, warned about at every start
    ca_file: Path | None = None  # default when present: /etc/pve/pve-root-ca.pem
    fingerprint: str | None = Field(None, pattern=r"^(?:[0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$")
    timeout: float = Field(10, gt=0, le=300)  # per API call of the collector


class Defaults(ScalingPolicy):
    """The `DEFAULT` section: the policy knobs plus node-wide settings."""

    poll_interval: float = Field(300, gt=0)
    energy_mode: bool = False
    behaviour: Literal["normal", "conservative", "aggressive"] = "normal"
    timezone: str = "UTC"
    reserve_cpu_percent: float = Field(10, ge=0, lt=100)
    reserve_memory_mb: int = Field(2048, ge=0)
    off_peak_start: int = Field(22, ge=0, le=23)
    off_peak_end: int = Field(6, ge=0, le=23)
    memory_exclude_cache: bool = True
    ignore_lxc: list[int] = Field(default_factory=list)
    dry_run: bool = False
    overcommit_ratio: float = Field(1.0, ge=1.0, le=10.0)
    # Kept for compatibility with the original file; unused or superseded here.
    log_file: str = "/var/log/lxc_autoscale.log"
    lock_file: str = "/var/lock/lxc_autoscale.lock"
    backup_dir: str = "/var/lib/lxc_autoscale/backups"
    timeout_extended: float = Field(60, gt=0)
    backend: Literal["cli", "api"] = "cli"
    proxmox_api: ProxmoxApiSettings = Field(default_factory=ProxmoxApiSettings)
    # Remote execution (the original's keys).
    use_remote_proxmox: bool = False
    proxmox_host: HostName | None = None
    ssh_port: int = Field(22, ge=1, le=65535)
    ssh_user: str | None = None
    ssh_password: SecretStr | None = None
    ssh_key_path: Path | None = None
    ssh_host_key_policy: Literal["reject", "system", "auto"] = "reject"
    ssh_known_hosts_path: Path | None = None
    # Notifications (consumed by a subscriber of the events stream).
    smtp_server: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str | None = None
    smtp_to: list[str] | None = None
    gotify_url: str | None = None
    gotify_token: SecretStr | None = None
    uptime_kuma_webhook_url: SecretStr | None = None
    # New: how to reach the SMTP server, and a generic JSON webhook (docs/notifier.md).
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_ca_file: Path | None = None  # trust this CA (e.g. a home lab's own) instead of the system's
    webhook_url: SecretStr | None = None
    webhook_secret: SecretStr | None = None  # HMAC-SHA256 key for the signature header

    @model_validator(mode="after")
    def _timezone_exists(self) -> Defaults:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"timezone {self.timezone!r} is not a known IANA zone") from exc
        if self.use_remote_proxmox and not self.proxmox_host:
            raise ValueError("use_remote_proxmox is true but proxmox_host is not set")
        return self


class Tier(ScalingPolicy):
    lxc_containers: list[int] = Field(default_factory=list)


CtId = Annotated[int, Field(ge=100, le=999_999_999)]


class HorizontalGroup(_Section):
    """A `HORIZONTAL_SCALING_GROUP_<name>` section: the original's keys as they are, plus
    the new ones of docs/horizontal.md."""

    lxc_containers: list[CtId] = Field(default_factory=list)  # members listed by hand
    base_snapshot_name: str  # despite its name (the original's), the source container's CTID
    min_instances: int | None = Field(None, ge=1)
    min_containers: int | None = Field(None, ge=1)  # the original's deprecated alias
    max_instances: int = Field(5, ge=1)
    starting_clone_id: int = Field(200, ge=100, le=999_999_999)
    clone_network_type: Literal["dhcp", "static"] = "dhcp"
    static_ip_range: list[IPvAnyInterface] = Field(default_factory=list)
    horiz_cpu_upper_threshold: float = Field(80, ge=0, le=100)
    horiz_cpu_lower_threshold: float = Field(20, ge=0, le=100)
    horiz_memory_upper_threshold: float = Field(80, ge=0, le=100)
    horiz_memory_lower_threshold: float = Field(20, ge=0, le=100)
    scale_out_grace_period: float = Field(300, ge=0)
    scale_in_grace_period: float = Field(600, ge=0)
    # New keys.
    scale_in_policy: Literal["stop", "destroy"] = "stop"
    allow_destroy: bool = False  # `destroy` needs this too: a second, deliberate yes
    clone_mode: Literal["linked", "full"] | None = None  # None: Proxmox's (full unless a template)
    target_storage: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
    bridge: str = Field("vmbr0", pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$")  # a Linux interface name
    gateway: IPvAnyAddress | None = None
    ready_after_s: float = Field(60, ge=0, le=86_400)  # a clone joins the averages after this
    placement: Literal["same-node", "least-loaded"] = "same-node"
    dry_run: bool = False
    clone_timeout_s: float | None = Field(None, gt=0, le=86_400)  # None: DEFAULT.timeout_extended
    action_timeout_s: float = Field(900, gt=0, le=86_400)  # a lock whose outcome never shows

    @model_validator(mode="before")
    @classmethod
    def _as_the_original_reads_them(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("base_snapshot_name"), int):
            data = {**data, "base_snapshot_name": str(data["base_snapshot_name"])}  # YAML `101`
        # As the original (#73): an entry without /prefix is a /24.
        if isinstance(data, dict) and isinstance(data.get("static_ip_range"), list):
            data = {**data, "static_ip_range": [
                f"{ip}/24" if isinstance(ip, str) and "/" not in ip and ":" not in ip else ip
                for ip in data["static_ip_range"]
            ]}  # fmt: skip
        return data

    @field_validator("base_snapshot_name")
    @classmethod
    def _source_is_a_ctid(cls, value: str) -> str:
        if not value.isdigit() or not 100 <= int(value) <= 999_999_999:
            raise ValueError(f"the source container's CTID (100-999999999) is needed, got {value[:40]!r}")
        return value

    @field_validator("static_ip_range")
    @classmethod
    def _ipv4_pool(cls, value: list[IPv4Interface | IPv6Interface]) -> list[IPv4Interface | IPv6Interface]:
        ipv6 = [str(entry) for entry in value if entry.version == 6]
        if ipv6:
            raise ValueError(f"IPv6 is not supported ({', '.join(ipv6[:3])}): a clone's net0 gets an IPv4 "
                             "ip=<address>/<prefix> only")  # fmt: skip
        return value

    @field_validator("gateway")
    @classmethod
    def _ipv4_gateway(cls, value: IPv4Address | IPv6Address | None) -> IPv4Address | IPv6Address | None:
        if value is not None and value.version == 6:
            raise ValueError(f"IPv6 is not supported ({value}): a clone's net0 gets an IPv4 gw= only")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> HorizontalGroup:
        problems = []
        alias = self.min_containers
        if None not in (self.min_instances, alias) and self.min_instances != alias:
            problems.append("min_instances and its alias min_containers disagree; set one")
        if self.min_size > self.max_instances:
            problems.append(f"min_instances {self.min_size} exceeds max_instances {self.max_instances}")
        if self.horiz_cpu_lower_threshold >= self.horiz_cpu_upper_threshold:
            problems.append("horiz_cpu_lower_threshold must be below horiz_cpu_upper_threshold")
        if self.horiz_memory_lower_threshold >= self.horiz_memory_upper_threshold:
            problems.append("horiz_memory_lower_threshold must be below horiz_memory_upper_threshold")
        if self.scale_in_policy == "destroy" and not self.allow_destroy:
            problems.append(
                "scale_in_policy: destroy also needs allow_destroy: true (destroy deletes the "
                "clone and its disks; the default `stop` keeps them)"
            )
        if self.clone_mode == "linked" and self.target_storage is not None:
            problems.append("target_storage needs clone_mode: full (Proxmox refuses it for linked clones)")
        if self.clone_network_type == "static" and not self.static_ip_range:
            problems.append("clone_network_type: static needs static_ip_range")
        if self.source_vmid in self.lxc_containers:
            problems.append(f"lxc_containers lists the source {self.source_vmid}; it is a member already")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def source_vmid(self) -> int:
        return int(self.base_snapshot_name)

    @property
    def min_size(self) -> int:
        """`min_instances`, or its alias, else 1 (as the original resolves it)."""
        return self.min_instances or self.min_containers or 1

    def clone_timeout(self, defaults: Defaults) -> float:
        return self.clone_timeout_s if self.clone_timeout_s is not None else defaults.timeout_extended

    def is_dry_run(self, defaults: Defaults) -> bool:
        return self.dry_run or defaults.dry_run


# ------------------------------------------------------------------ service sections


class CollectorSettings(_Section):
    node: NodeName | None = None  # default: the host name
    interval_s: float = Field(10, gt=0, le=3600)
    source: Literal["auto", "cgroup", "pvesh", "sim", "api"] = "auto"
    root: Path = Path("/")


class HostSize(_Section):
    cores: int = Field(ge=1, le=8192)
    memory_mb: int = Field(ge=16)


class DeciderSettings(_Section):
    intent_ttl_s: float = Field(120, gt=0)
    stale_after_intervals: float = Field(3, gt=0)
    # A sample is never stale sooner than this: longer than the consumer's ack wait, so a
    # sample redelivered after a replica died is still decided at short intervals.
    min_stale_s: float = Field(30, gt=0)
    # A sample dated further ahead of the decider's clock than this is refused.
    max_clock_skew_s: float = Field(60, ge=0)
    batch: int = Field(16, ge=1, le=256)
    # The size of each node for admission; a sample's own totals are used only for a
    # node not listed here (a collector credential could claim any size).
    host_sizes: dict[NodeName, HostSize] = Field(default_factory=dict)


class ActuatorSettings(_Section):
    node: NodeName | None = None
    # How commands reach Proxmox. Unset: `ssh` when DEFAULT.use_remote_proxmox is true,
    # `api` when DEFAULT.backend is `api`, else `local` (root pct on this host).
    executor: Literal["local", "ssh", "api"] | None = None
    pct_path: str = "/usr/sbin/pct"
    pvesh_path: str = "/usr/bin/pvesh"  # group scale-outs ask `pvesh get /cluster/nextid`
    # Precondition and read-back: `file` reads <root>/etc/pve/lxc/<vmid>.conf (locally, or
    # through SFTP over SSH) so that an intent runs one pct; `pct` runs `pct config`.
    read_config: Literal["file", "pct"] = "file"
    root: str = Field("/", pattern=r"^/")  # the node's root (a simulated node's directory in tests)
    command_timeout_s: float = Field(30, gt=0)
    max_attempts: int = Field(4, ge=1, le=20)
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(10, gt=0)
    node_hosts: dict[NodeName, HostName] = Field(default_factory=dict)
    # The host's size, for validating targets; read from the node when not set.
    host_cores: int | None = Field(None, ge=1, le=8192)
    host_memory_mb: int | None = Field(None, ge=16)


NotifyOutcome = Literal["applied", "skipped", "failed", "rejected"]
NotifyDirection = Literal["scale-up", "scale-down", "resize", "no-change", "scale-out", "scale-in"]


class NotifierSettings(_Section):
    """What the notifier sends and how hard it tries; the channels' own keys live in DEFAULT."""

    outcomes: list[NotifyOutcome] = Field(
        default_factory=lambda: list[NotifyOutcome](["applied", "failed", "rejected"])
    )
    # Applies to applied events only: failed and rejected ones always go out when selected.
    directions: list[NotifyDirection] = Field(
        default_factory=lambda: list[NotifyDirection](
            ["scale-up", "scale-down", "resize", "scale-out", "scale-in"]
        )
    )
    digest_interval_s: float = Field(0, ge=0, le=86_400)  # 0: one message per event
    digest_max_events: int = Field(500, ge=1, le=10_000)
    max_event_age_s: float = Field(86_400, gt=0)  # older events are recorded as skipped, not sent
    timeout_s: float = Field(10, gt=0, le=300)
    max_attempts: int = Field(4, ge=1, le=20)
    backoff_initial_s: float = Field(1, gt=0)
    backoff_max_s: float = Field(30, gt=0)
    breaker_failures: int = Field(3, ge=1, le=100)
    breaker_reset_s: float = Field(60, gt=0)
    # Empty: any address, private and loopback included (home labs). Otherwise every
    # address an endpoint resolves to must fall in one of these networks.
    allowed_networks: list[IPvAnyNetwork] = Field(default_factory=list)
    webhook_signature_header: str = Field("X-Autoscale-Signature", pattern=r"^[A-Za-z0-9-]{1,64}$")


class ConsoleSettings(_Section):
    listen: str = "127.0.0.1"  # loopback unless deliberately exposed
    port: int = Field(8089, ge=0, le=65535)
    token: SecretStr | None = None  # control is closed without it (env LXC_AUTOSCALE_CONSOLE_TOKEN)
    events_kept: int = Field(500, ge=10, le=100_000)


class AutoscaleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = "<defaults>"
    defaults: Defaults = Field(default_factory=Defaults)
    tiers: dict[str, Tier] = Field(default_factory=dict)
    groups: dict[str, HorizontalGroup] = Field(default_factory=dict)
    nats: NatsSettings = Field(default_factory=NatsSettings)
    collector: CollectorSettings = Field(default_factory=CollectorSettings)
    decider: DeciderSettings = Field(default_factory=DeciderSettings)
    actuator: ActuatorSettings = Field(default_factory=ActuatorSettings)
    notifier: NotifierSettings = Field(default_factory=NotifierSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    warnings: list[str] = Field(default_factory=list)

    def tier_name_of(self, vmid: int) -> str | None:
        """The tier a container belongs to; the last tier in the file wins, as in the original."""
        found = None
        for name, tier in self.tiers.items():
            if vmid in tier.lxc_containers:
                found = name
        return found

    def policy_for(self, vmid: int) -> ScalingPolicy:
        name = self.tier_name_of(vmid)
        return self.tiers[name] if name is not None else self.defaults

    def is_ignored(self, vmid: int) -> bool:
        return vmid in self.defaults.ignore_lxc

    @property
    def policy_version(self) -> str:
        """A short digest of what shapes decisions (and nothing else); intents name it.

        Connection, SSH, notification and bookkeeping settings are left out, so rotating
        a password or changing a mail server is not a new policy."""
        content = {
            "defaults": self.defaults.model_dump(mode="json", include=set(DECISION_KEYS)),
            "tiers": {k: v.model_dump(mode="json") for k, v in self.tiers.items()},
            "decider": self.decider.model_dump(mode="json", include=set(DECIDER_DECISION_KEYS)),
        }
        if self.groups:  # only then: a file without groups keeps its version
            content["groups"] = {k: v.model_dump(mode="json") for k, v in self.groups.items()}
        digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode())
        return digest.hexdigest()[:12]


# The DEFAULT keys the decider reads: every policy knob plus the node-wide ones.
DECISION_KEYS = frozenset(ScalingPolicy.model_fields) | {
    "energy_mode",
    "behaviour",
    "timezone",
    "reserve_cpu_percent",
    "reserve_memory_mb",
    "off_peak_start",
    "off_peak_end",
    "ignore_lxc",
    "dry_run",
    "overcommit_ratio",
}
DECIDER_DECISION_KEYS = frozenset(
    {"intent_ttl_s", "stale_after_intervals", "min_stale_s", "max_clock_skew_s", "host_sizes"}
)


# ------------------------------------------------------------------ loading

_SECTION_MODELS: dict[str, type[_Section]] = {
    "NATS": _Section,  # validated by NatsSettings below
    "COLLECTOR": CollectorSettings,
    "DECIDER": DeciderSettings,
    "ACTUATOR": ActuatorSettings,
    "NOTIFIER": NotifierSettings,
    "CONSOLE": ConsoleSettings,
}
# The original's four secret overrides, kept verbatim.
_LEGACY_ENV = {
    "LXC_AUTOSCALE_SSH_PASSWORD": "ssh_password",
    "LXC_AUTOSCALE_SMTP_PASSWORD": "smtp_password",
    "LXC_AUTOSCALE_GOTIFY_TOKEN": "gotify_token",
    "LXC_AUTOSCALE_UPTIME_KUMA_WEBHOOK": "uptime_kuma_webhook_url",
}
API_TOKEN_ENV = "LXC_AUTOSCALE_PROXMOX_API_TOKEN_VALUE"  # noqa: S105 - a variable name, not a secret
_POLICY_KEYS = set(ScalingPolicy.model_fields)


@dataclass
class _Loader:
    path: str
    env: Mapping[str, str]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def expand(self, value: Any, where: str) -> Any:
        if isinstance(value, str):
            return _ENV_PATTERN.sub(lambda m: self._lookup(m, where), value)
        if isinstance(value, dict):
            return {k: self.expand(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.expand(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value

    def _lookup(self, match: re.Match[str], where: str) -> str:
        name, default = match.group(1), match.group(2)
        if name in self.env:
            return self.env[name]
        if default is not None:
            return default
        self.warnings.append(f"{self.path}: {where}: ${{{name}}} is not set; kept literally")
        return match.group(0)

    def section(self, model: type[BaseModel], raw: Any, key: str) -> Any:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.problems.append(f"{self.path}: {key}: expected a mapping, got {type(raw).__name__}")
            return None
        known = set(model.model_fields)
        for unknown in sorted(set(raw) - known):
            self.warnings.append(f"{self.path}: {key}.{unknown}: unknown key, ignored")
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                self.problems.append(f"{self.path}: {key}{'.' + loc if loc else ''}: {err['msg']}")
            return None


def _env_overrides(defaults: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    result = dict(defaults)
    for variable, key in _LEGACY_ENV.items():
        if env.get(variable):
            result[key] = env[variable]
    for name, info in Defaults.model_fields.items():
        variable = f"LXC_AUTOSCALE_{name.upper()}"
        if variable in env and variable not in _LEGACY_ENV:
            # A secret is taken verbatim: "0123" must not turn into the number 123.
            secret = SecretStr in typing.get_args(info.annotation)
            result[name] = env[variable] if secret else yaml.safe_load(env[variable])
    if env.get(API_TOKEN_ENV):  # the token secret, kept out of the file
        section = result.get("proxmox_api")
        known = section if isinstance(section, dict) else {}
        result["proxmox_api"] = {**known, "token_value": env[API_TOKEN_ENV]}
    return result


def parse_config(
    document: Any, *, path: str = "<config>", env: Mapping[str, str] | None = None
) -> AutoscaleConfig:
    """Validate an already-parsed YAML document; raises ConfigError with every problem."""
    loader = _Loader(path=path, env=os.environ if env is None else env)
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(path, ["the top level must be a mapping of sections"])
    document = loader.expand(document, "")
    raw_defaults = document.get("DEFAULT") or {}
    if not isinstance(raw_defaults, dict):
        raise ConfigError(path, ["DEFAULT: expected a mapping"])
    raw_defaults = _env_overrides(raw_defaults, loader.env)
    defaults = loader.section(Defaults, raw_defaults, "DEFAULT")

    tiers, groups, services = _sections(loader, document, raw_defaults)
    services["nats"] = _nats_settings(loader, services.get("nats"))
    _check_tier_membership(loader, tiers)
    _check_group_membership(loader, groups)
    _check_group_pools(loader, groups)
    if loader.problems:
        raise ConfigError(path, loader.problems)
    return AutoscaleConfig(
        source=path,
        defaults=defaults,
        tiers=tiers,
        groups=groups,
        warnings=loader.warnings,
        **{k: v for k, v in services.items() if v is not None},
    )


def _sections(
    loader: _Loader, document: dict[str, Any], raw_defaults: dict[str, Any]
) -> tuple[dict[str, Tier], dict[str, HorizontalGroup], dict[str, Any]]:
    tiers: dict[str, Tier] = {}
    groups: dict[str, HorizontalGroup] = {}
    services: dict[str, Any] = {}
    for key, raw in document.items():
        if key == "DEFAULT":
            continue
        if key.startswith("TIER_"):
            # A tier inherits every policy key the DEFAULT section sets, as in the original.
            inherited = {k: v for k, v in raw_defaults.items() if k in _POLICY_KEYS}
            merged = {**inherited, **raw} if isinstance(raw, dict) else raw
            tier = loader.section(Tier, merged, key)
            if tier is not None:
                tiers[key[len("TIER_") :]] = tier
        elif key.startswith("HORIZONTAL_SCALING_GROUP_"):
            name = _group_name(loader, key, groups)
            group = loader.section(HorizontalGroup, raw, key)
            if group is not None and name is not None:
                groups[name] = group
        elif key == "NATS":
            services["nats"] = loader.section(NatsSettings, raw, "NATS")
        elif key in _SECTION_MODELS:
            services[key.lower()] = loader.section(_SECTION_MODELS[key], raw, key)
        else:
            loader.warnings.append(f"{loader.path}: {key}: unknown section, ignored")
    return tiers, groups, services


def _group_name(loader: _Loader, key: str, groups: dict[str, HorizontalGroup]) -> str | None:
    """The group's name: the section's suffix in lower case (it becomes a Proxmox tag)."""
    name = key[len("HORIZONTAL_SCALING_GROUP_") :].lower()
    if not GROUP_NAME_PATTERN.fullmatch(name):
        loader.problems.append(
            f"{loader.path}: {key}: the group name {name!r} must be 1-40 letters, digits, '-' or '_' "
            "(it becomes the Proxmox tag autoscale-group-<name>)"
        )
        return None
    if name in groups:
        loader.problems.append(f"{loader.path}: {key}: another section already names group {name!r}")
        return None
    return name


def _nats_settings(loader: _Loader, from_file: NatsSettings | None) -> NatsSettings | None:
    """The NATS section with the NATS_* environment variables over it."""
    try:
        return NatsSettings.from_env(from_file, loader.env)
    except ValidationError as exc:
        for err in exc.errors():
            loader.problems.append(f"NATS_* environment: {'.'.join(map(str, err['loc']))}: {err['msg']}")
        return None


def _check_tier_membership(loader: _Loader, tiers: dict[str, Tier]) -> None:
    seen: dict[int, str] = {}
    for name, tier in tiers.items():
        for vmid in tier.lxc_containers:
            if vmid in seen:
                loader.warnings.append(
                    f"{loader.path}: TIER_{name}.lxc_containers: {vmid} is also in "
                    f"TIER_{seen[vmid]}; the later tier wins"
                )
            seen[vmid] = name


def _check_group_membership(loader: _Loader, groups: dict[str, HorizontalGroup]) -> None:
    """A container belongs to one group at most: two groups would fight over it."""
    seen: dict[int, str] = {}
    for name, group in groups.items():
        for vmid in (group.source_vmid, *group.lxc_containers):
            if vmid in seen:
                loader.problems.append(
                    f"{loader.path}: HORIZONTAL_SCALING_GROUP_{name}: container {vmid} is also in "
                    f"group {seen[vmid]!r}; a container belongs to one group"
                )
            seen[vmid] = name


def _check_group_pools(loader: _Loader, groups: dict[str, HorizontalGroup]) -> None:
    """An address belongs to one group's pool: addresses are reserved per group
    (`ips.<group>.<ip>`), so two groups sharing one could both hand it out at once."""
    seen: dict[IPv4Address | IPv6Address, str] = {}
    for name, group in groups.items():
        for entry in group.static_ip_range:
            other = seen.setdefault(entry.ip, name)
            if other != name:
                loader.problems.append(
                    f"{loader.path}: HORIZONTAL_SCALING_GROUP_{name}.static_ip_range: {entry.ip} is also in "
                    f"HORIZONTAL_SCALING_GROUP_{other}.static_ip_range; give each group its own addresses"
                )


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> AutoscaleConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from exc
    return parse_config(document, path=str(path), env=env)
