"""The policy as the core reads it: the configuration plus the operator's pauses and
dry-run switch (KV bucket `autoscale_policy`), with the per-container lookups cached so
a decision costs a dictionary look-up, not a tier scan."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from services.decider.policy.pause import Pauses
from shared.config import AutoscaleConfig, Defaults, ScalingPolicy
from shared.dry_run import DryRunEntry, effective_dry_run


class PolicyView:
    def __init__(
        self, config: AutoscaleConfig, pauses: Pauses | None = None, dry_run: DryRunEntry | None = None
    ) -> None:
        self.config = config
        self.pauses = pauses or Pauses()
        self.version: str = config.policy_version
        self.defaults: Defaults = config.defaults
        self.zone = ZoneInfo(config.defaults.timezone)
        self.ignored = frozenset(config.defaults.ignore_lxc)
        self.intent_ttl_s = config.decider.intent_ttl_s
        self.stale_after_intervals = config.decider.stale_after_intervals
        self.min_stale_s = config.decider.min_stale_s
        self.max_clock_skew_s = config.decider.max_clock_skew_s
        self.host_sizes = config.decider.host_sizes
        self.dry_run_switch = dry_run
        self.dry_run, self.dry_run_source = effective_dry_run(dry_run, config.defaults.dry_run)
        self._policies: dict[int, ScalingPolicy] = {}

    def policy_for(self, vmid: int) -> ScalingPolicy:
        policy = self._policies.get(vmid)
        if policy is None:
            policy = self._policies[vmid] = self.config.policy_for(vmid)
        return policy

    def with_pauses(self, pauses: Pauses) -> PolicyView:
        """Same policy, new pauses (the cached look-ups are shared)."""
        view = PolicyView.__new__(PolicyView)
        view.__dict__.update(self.__dict__)
        view.pauses = pauses
        return view

    def with_dry_run(self, switch: DryRunEntry | None) -> PolicyView:
        """Same policy, the operator's dry-run switch set (None: the file decides)."""
        view = self.with_pauses(self.pauses)
        view.dry_run_switch = switch
        view.dry_run, view.dry_run_source = effective_dry_run(switch, self.config.defaults.dry_run)
        return view
