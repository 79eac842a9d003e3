"""What the decider remembers about one container between samples.

Stored as JSON in the KV bucket `autoscale_state` under `<node>.<vmid>`. The model is
shaped so that a sample needing nothing changes nothing: counters reset only when
they were set, the stabilization window is kept only while a scale-down is pending,
and the sample position (`boot_id`, `seq`) is stamped only on writes that happen anyway.
Times are seconds since the epoch of the sample clock (`NodeSample.taken_at`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.models import ScaleIntent

STATE_VERSION: Literal[1] = 1


class _StateModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WindowEntry(_StateModel):
    """One scale-down recommendation kept for the stabilization window."""

    at: float
    value: int


class BoostRecord(_StateModel):
    original: int
    boosted: int
    at: float


class ResourceState(_StateModel):
    """Memory for one resource (cores or memory) of one container."""

    last_up_at: float | None = None
    last_down_at: float | None = None
    # Start of the current run of below-current recommendations (None: no run).
    down_since: float | None = None
    # Monotonic max-queue of recent recommendations: values strictly decrease from the
    # head, so the head is the highest recommendation still inside the window.
    window: tuple[WindowEntry, ...] = ()
    # Start of the time the usage has been above the upper threshold without saturating
    # (the start of the interval of the first such sample); None when it is not above.
    up_since: float | None = None
    # Memory only: the highest `memory_used_mb` of the samples of the current scale-down
    # run (a max-queue like `window`), so a cut never goes below what was used recently.
    peaks: tuple[WindowEntry, ...] = ()
    saturated: int = Field(0, ge=0)
    boost: BoostRecord | None = None

    @property
    def last_change_at(self) -> float | None:
        times = [t for t in (self.last_up_at, self.last_down_at) if t is not None]
        return max(times) if times else None


class PendingIntent(_StateModel):
    """The last intent decided for the container, kept so that a redelivered sample
    re-emits exactly the same intent and so that no new one is stacked on top of it
    while the actuator has not yet applied it (`until`, sample clock)."""

    intent: ScaleIntent
    until: float


class ContainerState(_StateModel):
    state_version: Literal[1] = STATE_VERSION
    boot_id: str | None = None  # the sample that last changed this state
    seq: int | None = None
    at: float | None = None  # and its taken_at (sample clock)
    cpu: ResourceState = ResourceState()
    memory: ResourceState = ResourceState()
    pending: PendingIntent | None = None

    @property
    def last_resize_at(self) -> float | None:
        times = [t for t in (self.cpu.last_change_at, self.memory.last_change_at) if t is not None]
        return max(times) if times else None


EMPTY_STATE = ContainerState()


def encode_state(state: ContainerState) -> bytes:
    return state.model_dump_json(exclude_defaults=True).encode()


def decode_state(data: bytes) -> ContainerState:
    return ContainerState.model_validate_json(data)
