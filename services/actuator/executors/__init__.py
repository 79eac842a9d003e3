"""Ways to run a validated argument list on a Proxmox node: locally or over SSH."""

from services.actuator.executors.base import Executor
from services.actuator.executors.local import LocalExecutor

__all__ = ["Executor", "LocalExecutor"]
