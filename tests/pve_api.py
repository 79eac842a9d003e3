"""Test support: the simulated node served by the Proxmox API double, with API tokens."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from services.actuator.executors.api import ApiExecutor
from shared.proxmox_api import ApiEndpoint, ProxmoxApi
from simnode import access
from simnode.api import ProxmoxApiDouble, api_calls
from simnode.tls import TlsFiles, make_tls_files
from simnode.tree import SimNode

ACTUATOR_TOKEN = "autoscale@pve!actuator"
# The minimal role docs/proxmox-api.md documents for resizing (Sys.Audit: host size probe).
ACTUATOR_PRIVILEGES = ("VM.Audit", "VM.Config.CPU", "VM.Config.Memory", "Sys.Audit")
GROUP_TOKEN = "groups@pve!actuator"
# What a token needs for group actions too (docs/proxmox-api.md, "The minimal role").
GROUP_PRIVILEGES = (
    *ACTUATOR_PRIVILEGES, "VM.PowerMgmt", "VM.Snapshot", "VM.Clone", "VM.Allocate", "VM.Config.Options",
    "VM.Config.Network", "Datastore.AllocateSpace",
)  # fmt: skip


@dataclass
class PveApi:
    sim: SimNode
    double: ProxmoxApiDouble
    tls: TlsFiles
    secret: str  # of ACTUATOR_TOKEN

    def endpoint(
        self, token_id: str = ACTUATOR_TOKEN, secret: str | None = None, **tls: object
    ) -> ApiEndpoint:
        options: dict[str, object] = {"ca_file": self.tls.ca_path}
        options.update(tls)
        return ApiEndpoint(
            host="127.0.0.1", port=self.double.port, token_id=token_id,
            secret=SecretStr(secret if secret is not None else self.secret), **options,  # type: ignore[arg-type]
        )  # fmt: skip

    def executor(self, **kwargs: object) -> ApiExecutor:
        return ApiExecutor(ProxmoxApi(self.endpoint(**kwargs)), self.sim.node_name, task_poll_s=0.05)

    def group_executor(self, privileges: tuple[str, ...] = GROUP_PRIVILEGES) -> ApiExecutor:
        """An executor whose token holds `privileges` (all that group actions need by default)."""
        return self.executor(token_id=GROUP_TOKEN, secret=self.add_token(GROUP_TOKEN, privileges))

    def add_token(self, token_id: str, privileges: tuple[str, ...] | None) -> str:
        return access.add_token(self.sim.root, token_id, privileges)

    def calls(self, method: str | None = None) -> list[tuple[str, str, int]]:
        return [c for c in api_calls(self.sim.root) if method is None or c[0] == method]


@contextmanager
def serve_api(sim: SimNode, tls_dir: Path, *, task_seconds: float = 0.2) -> Iterator[PveApi]:
    tls = make_tls_files(tls_dir, sim.node_name)
    secret = access.add_token(sim.root, ACTUATOR_TOKEN, ACTUATOR_PRIVILEGES)
    double = ProxmoxApiDouble(sim.root, tls, task_seconds=task_seconds, auth_delay_s=0.05).start()
    try:
        yield PveApi(sim, double, tls, secret)
    finally:
        double.stop()
