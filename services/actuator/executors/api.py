"""Run the actuator's pct operations through the Proxmox REST API with an API token.

The executor keeps the `Executor` interface: it receives the same validated argument
tuples as the local and SSH executors and runs the call each stands for
(`api_calls.api_call`: resizes, power, status, the group commands, the cross-node pvesh
forms, `/cluster/nextid`), plus the host probe:

  cat /proc/meminfo …/cpu/online (HOST_PROBE) GET /nodes/{node}/status

and reports like pct: stdout in `pct config`'s `key: value` form (`pct status`'s
`status: …` line, pvesh's value or JSON), a task's UPID waited on until it stops
(`GET /nodes/{node of the UPID}/tasks/{upid}/status`), failures as exit code 255 with
Proxmox's message (`500 CT is locked (backup)`, `403 Permission check failed (/vms/101,
VM.Config.Memory)`, `400 Parameter verification failed.` + one line per parameter, a
failed task's exit status), so `retry.classify` treats both paths alike. Anything else
is refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from services.actuator.commands import HOST_PROBE
from services.actuator.executors.api_calls import Unsupported, api_call, upid_node
from services.actuator.result import CommandResult
from shared.proxmox_api import ApiReply, ApiTimeout, ApiTlsRefused, ApiUnreachable, ProxmoxApi
from shared.validation import check_node_name

log = logging.getLogger(__name__)

FAILED_EXIT = 255  # what pct exits with on any error
TASK_POLL_S = 0.25
# How long a task that ran past the time limit may take to stop (within COMMAND_OVERRUN_S).
STOP_WAIT_S = 2.0


class ApiExecutor:
    def __init__(self, api: ProxmoxApi, node: str, *, task_poll_s: float = TASK_POLL_S) -> None:
        self._api = api
        self._node = check_node_name(node)
        self._task_poll_s = task_poll_s
        endpoint = api.endpoint
        if endpoint.insecure:
            log.warning(
                "proxmox_api.verify_ssl is false: the API's TLS certificate is NOT checked and the "
                "token can be stolen by a man in the middle; set proxmox_api.ca_file or "
                "proxmox_api.fingerprint instead",
                extra={"event": "api_insecure_tls", "host": endpoint.host},
            )
        log.info("API executor ready", extra={"event": "api_executor", "endpoint": endpoint.describe()})

    async def run(self, argv: tuple[str, ...], timeout_s: float) -> CommandResult:
        return await asyncio.to_thread(self._run_blocking, argv, timeout_s)

    async def close(self) -> None:
        return None  # one connection per request: nothing held open

    # ---------------------------------------------------------------- worker thread

    def _run_blocking(self, argv: tuple[str, ...], timeout_s: float) -> CommandResult:
        started = time.monotonic()
        deadline = started + timeout_s
        try:
            result = self._dispatch(argv, deadline)
        except Unsupported as exc:
            result = CommandResult(None, setup_error=str(exc), setup_code="unsupported-operation")
        except ApiTlsRefused as exc:
            result = CommandResult(None, setup_error=str(exc), setup_code="tls-refused")
        except ApiTimeout:
            result = CommandResult(None, timed_out=True)
        except ApiUnreachable as exc:
            result = CommandResult(None, connection_error=str(exc))
        return _with_duration(result, time.monotonic() - started)

    def _dispatch(self, argv: tuple[str, ...], deadline: float) -> CommandResult:
        if argv == HOST_PROBE:
            return self._host_probe(deadline)
        call = api_call(argv, self._node)
        reply = self._call(call.method, call.path, call.params or None, deadline)
        if not reply.ok:
            return _result(reply, "")
        match call.reply:
            case "task" if isinstance(reply.data, str):
                return self._wait_task(reply.data, deadline)
            case "config":
                return _result(reply, render_config(reply.data))
            case "status":
                state = reply.data.get("status") if isinstance(reply.data, dict) else None
                return _result(reply, f"status: {state}\n")
            case "value":
                return _result(reply, f"{reply.data}\n")
            case "json":
                return _result(reply, json.dumps(reply.data) + "\n")
        return _result(reply, "")

    def _call(self, method: str, path: str, params: dict[str, str] | None, deadline: float) -> ApiReply:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ApiTimeout("time limit reached")
        return self._api.request(method, path, params, timeout_s=left)

    def _wait_task(self, upid: str, deadline: float) -> CommandResult:
        """Poll the task until it stops; its exit status is `OK` or the error text."""
        while True:
            reply = self._call("GET", f"/nodes/{upid_node(upid)}/tasks/{upid}/status", None, deadline)
            if not reply.ok:
                return _result(reply, "")
            status = reply.data if isinstance(reply.data, dict) else {}
            if status.get("status") == "stopped":
                exit_status = str(status.get("exitstatus", "unknown task status"))
                if exit_status == "OK":
                    return CommandResult(0, stdout="")
                return CommandResult(FAILED_EXIT, stderr=exit_status)
            if time.monotonic() + self._task_poll_s >= deadline:
                self._stop_task(upid)
                raise ApiTimeout(f"task {upid} still running at the time limit")
            time.sleep(self._task_poll_s)

    def _stop_task(self, upid: str) -> None:
        """`DELETE …/tasks/{upid}`: Proxmox sends the worker SIGTERM, so a clone cleans up
        after itself (source unlocked, its new config removed) instead of finishing after we
        gave up on it, as a timed-out pct is killed. Waits up to STOP_WAIT_S for the end."""
        task = f"/nodes/{upid_node(upid)}/tasks/{upid}"
        ends = time.monotonic() + STOP_WAIT_S
        try:
            self._api.request("DELETE", task, timeout_s=STOP_WAIT_S)
            while (left := ends - time.monotonic()) > 0:
                reply = self._api.request("GET", f"{task}/status", timeout_s=left)
                if not reply.ok or (isinstance(reply.data, dict) and reply.data.get("status") == "stopped"):
                    return
                time.sleep(min(self._task_poll_s, max(left, 0.0)))
        except (ApiTimeout, ApiUnreachable, ApiTlsRefused) as exc:
            log.warning("could not stop a task that ran past its time limit",
                        extra={"event": "api_task_not_stopped", "upid": upid, "error": str(exc)})  # fmt: skip

    def _host_probe(self, deadline: float) -> CommandResult:
        reply = self._call("GET", f"/nodes/{self._node}/status", None, deadline)
        if not reply.ok:
            return _result(reply, "")
        data = reply.data if isinstance(reply.data, dict) else {}
        cpus = (data.get("cpuinfo") or {}).get("cpus")
        total = (data.get("memory") or {}).get("total")
        if not isinstance(cpus, int) or not isinstance(total, int) or cpus < 1:
            return CommandResult(FAILED_EXIT, stderr="node status has no cpuinfo.cpus or memory.total")
        # The same text HOST_PROBE prints, so parse_host_probe reads both paths.
        online = "0" if cpus == 1 else f"0-{cpus - 1}"
        return CommandResult(0, stdout=f"MemTotal: {total // 1024} kB\n{online}\n")


def render_config(data: Any) -> str:
    """`pct config` output from the API's JSON: keys sorted, digest left out, lxc keys last."""
    if not isinstance(data, dict):
        return ""
    lines = []
    for key in sorted(data):
        value = data[key]
        if key in ("digest", "lxc") or isinstance(value, (dict, list)):
            continue
        text = str(value) if not isinstance(value, bool) else str(int(value))
        lines.append(f"{key}: {text.replace(chr(10), '%0A').replace(chr(13), '%0D')}\n")
    for pair in data.get("lxc") or []:
        if isinstance(pair, list) and len(pair) == 2:
            lines.append(f"{pair[0]}: {pair[1]}\n")
    return "".join(lines)


def _result(reply: ApiReply, stdout: str) -> CommandResult:
    if reply.ok:
        return CommandResult(0, stdout=stdout, http_status=reply.status)
    return CommandResult(FAILED_EXIT, stderr=reply.error_text(), http_status=reply.status)


def _with_duration(result: CommandResult, duration_s: float) -> CommandResult:
    from dataclasses import replace

    return replace(result, duration_s=duration_s)
