"""Run the actuator's pct operations through the Proxmox REST API with an API token.

The executor keeps the `Executor` interface: it receives the same validated argument
tuples as the local and SSH executors and maps each one onto its API call:

  pct config <vmid> [--current]             GET  /nodes/{node}/lxc/{vmid}/config?current=1
  pct set <vmid> -cores N -memory M          PUT  /nodes/{node}/lxc/{vmid}/config
  pct start|stop <vmid>                      POST /nodes/{node}/lxc/{vmid}/status/start|stop,
                                             then GET /nodes/{node}/tasks/{upid}/status until done
  cat /proc/meminfo …/cpu/online (HOST_PROBE) GET /nodes/{node}/status

and reports like pct: stdout in `pct config`'s `key: value` form, failures as exit code
255 with Proxmox's message (`500 CT is locked (backup)`, `403 Permission check failed
(/vms/101, VM.Config.Memory)`, `400 Parameter verification failed.` + one line per
parameter), so `retry.classify` treats both paths alike. Anything else is refused.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from services.actuator.commands import HOST_PROBE
from services.actuator.result import CommandResult
from shared.proxmox_api import ApiReply, ApiTimeout, ApiTlsRefused, ApiUnreachable, ProxmoxApi
from shared.validation import check_node_name

log = logging.getLogger(__name__)

FAILED_EXIT = 255  # what pct exits with on any error
TASK_POLL_S = 0.25
_VMID = re.compile(r"^[1-9][0-9]{2,8}$")
# `pct set` flags the actuator may send, and the API parameter each becomes.
_SET_FLAGS = {"-cores": "cores", "-memory": "memory"}


class _Unsupported(ValueError):
    pass


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
        except _Unsupported as exc:
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
        if len(argv) < 3 or not _VMID.fullmatch(argv[2]):
            raise _Unsupported(f"the API executor cannot run {_show(argv)}")
        sub, vmid, rest = argv[1], argv[2], argv[3:]
        base = f"/nodes/{self._node}/lxc/{vmid}"
        if sub == "config" and rest in ((), ("--current",)):
            # Always the current values: the actuator judges what the container runs with,
            # as the config file reader's main section (pending changes are not applied yet).
            reply = self._call("GET", f"{base}/config", {"current": "1"}, deadline)
            return _result(reply, render_config(reply.data) if reply.ok else "")
        if sub == "set" and rest:
            reply = self._call("PUT", f"{base}/config", _set_params(rest, argv), deadline)
            return _result(reply, "")
        if sub in ("start", "stop") and not rest:
            reply = self._call("POST", f"{base}/status/{sub}", None, deadline)
            if not reply.ok or not isinstance(reply.data, str):
                return _result(reply, "")
            return self._wait_task(reply.data, deadline)
        raise _Unsupported(f"the API executor cannot run {_show(argv)}")

    def _call(self, method: str, path: str, params: dict[str, str] | None, deadline: float) -> ApiReply:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ApiTimeout("time limit reached")
        return self._api.request(method, path, params, timeout_s=left)

    def _wait_task(self, upid: str, deadline: float) -> CommandResult:
        """Poll the task until it stops; its exit status is `OK` or the error text."""
        while True:
            reply = self._call("GET", f"/nodes/{self._node}/tasks/{upid}/status", None, deadline)
            if not reply.ok:
                return _result(reply, "")
            status = reply.data if isinstance(reply.data, dict) else {}
            if status.get("status") == "stopped":
                exit_status = str(status.get("exitstatus", "unknown task status"))
                if exit_status == "OK":
                    return CommandResult(0, stdout="")
                return CommandResult(FAILED_EXIT, stderr=exit_status)
            if time.monotonic() + self._task_poll_s >= deadline:
                raise ApiTimeout(f"task {upid} still running at the time limit")
            time.sleep(self._task_poll_s)

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


def _set_params(rest: tuple[str, ...], argv: tuple[str, ...]) -> dict[str, str]:
    if len(rest) % 2:
        raise _Unsupported(f"the API executor cannot run {_show(argv)}")
    params = {}
    for flag, value in zip(rest[::2], rest[1::2], strict=True):
        name = _SET_FLAGS.get(flag)
        if name is None or not value.isdigit():
            raise _Unsupported(f"the API executor cannot run {_show(argv)}")
        params[name] = value
    return params


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


def _show(argv: tuple[str, ...]) -> str:
    return " ".join(argv[1:3]) if len(argv) > 1 else "an empty command"
