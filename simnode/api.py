"""A Proxmox VE REST API double over the same simulated node as `simnode.pct`.

HTTPS on 127.0.0.1 (certificate from `simnode.tls`), API tokens and ACLs from the
node's `user.cfg`/`token.cfg` (`simnode.access`), and the endpoints the autoscaler uses,
each shaped after Proxmox's own handler (see docs/fidelity.md, "Proxmox API double"):

  GET  /api2/json/nodes/{node}/lxc/{vmid}/config      pve-container API2/LXC/Config.pm vm_config
  snapshots, clone, destroy, status/current           simnode/api_guests.py
  PUT  /api2/json/nodes/{node}/lxc/{vmid}/config      ... update_vm (synchronous, returns null)
  POST /api2/json/nodes/{node}/lxc/{vmid}/status/start|stop   API2/LXC/Status.pm: a UPID
  GET  /api2/json/nodes/{node}/tasks/{upid}/status    pve-manager API2/Tasks.pm read_task_status
  GET  /api2/json/nodes/{node}/status                 pve-manager API2/Nodes.pm (cpuinfo, memory)
  GET  /api2/json/cluster/resources?type=vm           pve-manager API2/Cluster.pm resources

Config reads and changes run the simulated pct's own code (`simnode.pct.cmd_set`,
`conffile`, `cgroup`, the per-CT flock and the fault file), so `pct` and the API see
and change one node. Replies use pve-http-server's JSON formatter: `{"data": …}`, and on
error the HTTP status with the message as reason phrase, `{"data": null, "message": …}`
plus `errors` for parameter errors. Unauthenticated calls are answered after 3 s as by
pveproxy (`auth_delay_s` shortens it for tests). A call for another node of a simulated
cluster runs on that node's root, as `proxyto => 'node'` forwards it. Every request is appended to
`<root>/var/log/pveproxy/access.log` in pveproxy's format.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from simnode import access, cgroup, conffile, locking, paths, pct, pmxcfs, pvesh, schema, storage
from simnode import api_guests as guests
from simnode.atomic import append_line, read_text
from simnode.tls import TlsFiles

API_PREFIX = "/api2/json"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
# The per-option privilege of `PVE::LXC::check_ct_modify_config_perm`.
_CPU_OPTIONS = ("cores", "cpuunits", "cpulimit")
_MEMORY_OPTIONS = ("memory", "swap")
_NETWORK_OPTIONS = ("hostname", "nameserver", "searchdomain")
# `$vm_config_perm_list` of update_vm, checked with `any => 1` before the handler runs.
# What a handler or task `die`s with: the 500 / the task's exit status carry its text.
_DIED = (pct.PctError, locking.LockTimeout, storage.StorageError, OSError)
CONFIG_PRIVILEGES = (
    "VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network", "VM.Config.Options",
)  # fmt: skip


class ApiError(Exception):
    """An error reply: HTTP status, message (the reason phrase) and parameter errors."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or {}


def _param_error(errors: dict[str, str]) -> ApiError:
    return ApiError(400, "Parameter verification failed.", errors)


@dataclass
class Task:
    upid: str
    user: str
    node: str
    pid: int
    pstart: int
    starttime: int
    kind: str
    vmid: str
    exitstatus: str | None = None  # None while running
    stop: threading.Event = field(default_factory=threading.Event)  # `DELETE …/tasks/{upid}`

    def status(self) -> dict[str, Any]:
        reply: dict[str, Any] = {
            "upid": self.upid, "node": self.node, "pid": self.pid, "pstart": self.pstart,
            "starttime": self.starttime, "type": self.kind, "id": self.vmid, "user": self.user,
            "status": "running" if self.exitstatus is None else "stopped",
        }  # fmt: skip
        if self.exitstatus is not None:
            reply["exitstatus"] = self.exitstatus
        return reply


@dataclass
class _CpuSeen:
    usage_usec: int
    at: float


@dataclass
class ApiState:
    """What the API process keeps besides the node tree: tasks and CPU readings for `cpu`."""

    tasks: dict[str, Task] = field(default_factory=dict)
    cpu_seen: dict[int, _CpuSeen] = field(default_factory=dict)
    next_pid: int = 4000
    lock: threading.Lock = field(default_factory=threading.Lock)


class ProxmoxApiDouble:
    def __init__(
        self,
        root: Path,
        tls: TlsFiles,
        *,
        task_seconds: float = 0.3,
        auth_delay_s: float = 3.0,
        port: int = 0,
    ) -> None:
        self.root = str(Path(root).resolve())
        self.tls = tls
        self.task_seconds = task_seconds
        self.auth_delay_s = auth_delay_s
        self.state = ApiState()
        self._unavailable: list[tuple[int, str]] = []
        # Containers pvestatd has no fresh figures for (simulation only): listed bare, status `unknown`.
        self.stale_vmids: set[int] = set()
        self._routes = self._route_table()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_class(self))
        self._server.daemon_threads = True  # a request stuck behind a hung change never blocks stop()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls.cert_path), str(tls.key_path))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> ProxmoxApiDouble:
        self._thread = threading.Thread(target=self._server.serve_forever, name="pve-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)

    def fail_next(self, count: int, status: int = 503, message: str = "Service Unavailable") -> None:
        """Simulation only: answer the next `count` authenticated calls with this error, as
        pveproxy does when pvedaemon is down (503) or a proxied node does not answer (595)."""
        with self.state.lock:
            self._unavailable.extend([(status, message)] * count)

    # ------------------------------------------------------------------ dispatch

    def _route_table(self) -> list[tuple[str, re.Pattern[str], Callable[..., Any]]]:
        node, ct = r"(?P<node>[^/]+)", r"^/nodes/(?P<node>[^/]+)/lxc/(?P<vmid>[^/]+)"
        return [
            ("GET", re.compile(rf"{ct}/config$"), self.get_config),
            ("PUT", re.compile(rf"{ct}/config$"), self.put_config),
            ("POST", re.compile(rf"{ct}/status/(?P<action>start|stop)$"), self.power),
            ("GET", re.compile(rf"{ct}/status/current$"), partial(guests.current_status, self)),
            ("GET", re.compile(rf"{ct}/snapshot$"), partial(guests.list_snapshots, self)),
            ("POST", re.compile(rf"{ct}/snapshot$"), partial(guests.create_snapshot, self)),
            ("DELETE", re.compile(rf"{ct}/snapshot/(?P<snapname>[^/]+)$"), partial(guests.delsnapshot, self)),
            ("POST", re.compile(rf"{ct}/clone$"), partial(guests.clone_guest, self)),
            ("DELETE", re.compile(rf"{ct}$"), partial(guests.destroy_guest, self)),
            ("GET", re.compile(rf"^/nodes/{node}/tasks/(?P<upid>[^/]+)/status$"), self.task_status),
            ("DELETE", re.compile(rf"^/nodes/{node}/tasks/(?P<upid>[^/]+)$"), self.stop_task),
            ("GET", re.compile(rf"^/nodes/{node}/status$"), self.node_status),
            ("GET", re.compile(r"^/cluster/resources$"), self.resources),
            ("GET", re.compile(r"^/cluster/nextid$"), self.nextid),
        ]

    def handle(self, method: str, path: str, params: dict[str, str], auth: str | None) -> tuple[str, Any]:
        """Authenticate, route and run one call; returns (principal, data) or raises ApiError."""
        try:
            who = access.AccessConfig.load(self.root).authenticate(auth)
        except access.AuthError as exc:
            time.sleep(self.auth_delay_s)
            raise ApiError(401, str(exc)) from None
        with self.state.lock:
            failure = self._unavailable.pop(0) if self._unavailable else None
        if failure is not None:
            raise ApiError(*failure)
        if not path.startswith(API_PREFIX + "/"):
            raise ApiError(501, f"Method '{method} {path}' not implemented")
        rel = path[len(API_PREFIX) :].rstrip("/")
        for route_method, pattern, handler in self._routes:
            match = pattern.match(rel)
            if match and route_method == method:
                try:
                    return who, handler(who, params, **match.groupdict())
                except access.PermissionDenied as exc:
                    raise ApiError(403, str(exc)) from None
                except pct.ParamError as exc:
                    raise ApiError(400, str(exc), exc.errors) from None
                except _DIED as exc:
                    raise ApiError(500, str(exc)) from None
        raise ApiError(501, f"Method '{method} {rel}' not implemented")

    # ------------------------------------------------------------------ helpers

    def access(self) -> access.AccessConfig:
        return access.AccessConfig.load(self.root)

    def node_root(self, node: str) -> str:
        """`proxyto => 'node'`: a call for another node of the cluster is run there (its
        simulated root); a node that is not a cluster member fails its host lookup."""
        if node == paths.node_name(self.root):
            return self.root
        other = pmxcfs.node_root(self.root, node) if pmxcfs.node_exists(self.root, node) else None
        if other is None:
            raise pct.PctError(
                f"hostname lookup '{node}' failed - failed to get address info for: {node}: "
                "Name or service not known"
            )
        return other

    @staticmethod
    def vmid(value: str) -> int:
        error = schema.check_vmid(value)
        if error:
            raise _param_error({"vmid": error})
        return int(value)

    @staticmethod
    def flag(params: dict[str, str], name: str) -> bool:
        value = params.get(name)
        if value is None:
            return False
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise _param_error({name: f"type check ('boolean') failed - got '{value}'"})

    # ------------------------------------------------------------------ endpoints

    def get_config(self, who: str, params: dict[str, str], node: str, vmid: str) -> dict[str, Any]:
        self.access().check(who, f"/vms/{vmid}", ("VM.Audit",))
        root = self.node_root(node)
        number = self.vmid(vmid)
        current = self.flag(params, "current")
        snapshot = params.get("snapshot")
        if snapshot and current:
            msg = "cannot use 'snapshot' parameter with 'current'"
            raise _param_error({"snapshot": msg, "current": msg})
        parsed = conffile.parse(pct._load_raw(pct.Ctx(root), number), number)
        section = parsed.main
        if snapshot:
            if snapshot not in parsed.snapshots:
                raise pct.PctError(f"snapshot '{snapshot}' does not exist")
            section = parsed.snapshots[snapshot]
        keys = dict(section.keys)
        if not current and not snapshot and parsed.pending is not None:
            # load_current_config without `current`: pending values shown as if applied
            pending = dict(parsed.pending.keys)
            for name in schema.split_list(pending.pop("delete", "")):
                keys.pop(name.lstrip("!"), None)
            keys.update(pending)
        reply: dict[str, Any] = {key: _typed(key, value) for key, value in keys.items()}
        if section.description:
            reply["description"] = section.description
        if section.lxc:
            reply["lxc"] = [[key, value] for key, value in section.lxc]
        reply["digest"] = parsed.digest
        return reply

    def put_config(self, who: str, params: dict[str, str], node: str, vmid: str) -> None:
        rights = self.access()
        path = f"/vms/{vmid}"
        if not any(rights.has(who, path, privilege) for privilege in CONFIG_PRIVILEGES):
            raise access.PermissionDenied(path, "|".join(CONFIG_PRIVILEGES))
        root = self.node_root(node)

        def check_change(changes: dict[str, str], deletes: list[str]) -> None:
            for option in sorted({*changes, *deletes}):
                rights.check(who, path, (_option_privilege(option),))

        pct.cmd_set(pct.Ctx(root, check_change=check_change), dict(params), [vmid])
        return None

    def power(self, who: str, params: dict[str, str], node: str, vmid: str, action: str) -> str:
        self.access().check(who, f"/vms/{vmid}", ("VM.PowerMgmt",))
        root = self.node_root(node)
        number = self.vmid(vmid)
        pct._load_raw(pct.Ctx(root), number)  # "Configuration file … does not exist" up front
        running = os.path.isdir(paths.cgroup_dir(root, number))
        if action == "start" and running:
            raise pct.PctError(f"CT {number} already running")
        if action == "stop" and not running:
            raise pct.PctError(f"CT {number} not running")
        command = pct.cmd_start if action == "start" else pct.cmd_stop
        options = {"skiplock": "1"} if self.flag(params, "skiplock") else {}

        def work(stop: threading.Event) -> None:
            command(pct.Ctx(root), options, [str(number)])

        return self.fork_worker(node, f"vz{action}", str(number), who, work).upid

    def fork_worker(
        self, node: str, kind: str, vmid: str, user: str, work: Callable[[threading.Event], None]
    ) -> Task:
        """`PVE::RESTEnvironment::fork_worker`: a UPID now, the work in the background; `work`
        gets the task's stop event (a stop request is SIGTERM to the worker)."""
        now = int(time.time())
        with self.state.lock:
            self.state.next_pid += 1
            pid = self.state.next_pid
        pstart = int(time.monotonic() * 100)
        upid = f"UPID:{node}:{pid:08X}:{pstart:08X}:{now:08X}:{kind}:{vmid}:{user}:"
        task = Task(upid, user, node, pid, pstart, now, kind, vmid)
        self.state.tasks[upid] = task

        def run() -> None:
            if task.stop.wait(self.task_seconds):  # a real task takes a moment
                task.exitstatus = "received interrupt"  # fork_worker's own SIGTERM handler
                return
            try:
                work(task.stop)
            except _DIED as exc:
                task.exitstatus = str(exc).strip() or "unexpected status"
            else:
                task.exitstatus = "OK"

        threading.Thread(target=run, name=f"task-{pid}", daemon=True).start()
        return task

    def task_status(self, who: str, params: dict[str, str], node: str, upid: str) -> dict[str, Any]:
        return self._task(who, node, upid, "Sys.Audit").status()

    def stop_task(self, who: str, params: dict[str, str], node: str, upid: str) -> None:
        """pve-manager API2/Tasks.pm `stop_task`: `check_worker($upid, 1)` sends the worker
        SIGTERM; the task ends as its handler makes it (a clone cleans up: "interrupted by
        signal"). Owners may stop their own tasks, others need Sys.Modify."""
        self._task(who, node, upid, "Sys.Modify").stop.set()
        return None

    def _task(self, who: str, node: str, upid: str, other_users_need: str) -> Task:
        self.node_root(node)
        task = self.state.tasks.get(upid)
        if not upid.startswith("UPID:") or upid.count(":") < 8:
            raise _param_error({"upid": "unable to parse worker upid"})
        if task is None:
            raise _param_error({"upid": "no such task"})
        if task.user != who:  # owners may always read (and stop) their tasks
            self.access().check(who, f"/nodes/{node}", (other_users_need,))
        return task

    def node_status(self, who: str, params: dict[str, str], node: str) -> dict[str, Any]:
        self.access().check(who, f"/nodes/{node}", ("Sys.Audit",))
        self.node_root(node)
        cpus = paths.host_cpu_count(self.root)
        meminfo = dict(_meminfo(self.root))
        total = meminfo.get("MemTotal", 0) * 1024
        free = meminfo.get("MemAvailable", 0) * 1024
        return {
            "cpuinfo": {"cpus": cpus, "cores": cpus, "sockets": 1, "model": "simnode virtual CPU"},
            "memory": {"total": total, "free": free, "used": total - free},
            "uptime": int(time.monotonic()),
            "pveversion": "pve-manager/8.3.0/simnode",
        }

    def nextid(self, who: str, params: dict[str, str]) -> str:
        """`GET /cluster/nextid` (`permissions => { user => 'all' }`): as `pvesh get`."""
        code, result = pvesh.nextid(self.root, params.get("vmid"))
        if code == 400:
            name, _, message = result.partition(": ")
            raise _param_error({name: message})
        if code:
            raise pct.PctError(result)
        return result

    def resources(self, who: str, params: dict[str, str]) -> list[dict[str, Any]]:
        kind = params.get("type")
        if kind is not None and kind not in ("vm", "storage", "node", "sdn"):
            enum = "vm, storage, node, sdn"
            raise _param_error({"type": f"value '{kind}' does not have a value in the enumeration '{enum}'"})
        if kind not in (None, "vm"):
            return []  # only guests are simulated
        rights = self.access()
        node = paths.node_name(self.root)
        entries = []
        for vmid in _vmids(self.root):
            if not rights.has(who, f"/vms/{vmid}", "VM.Audit"):
                continue  # filtered silently, as Cluster.pm does
            try:
                entries.append(self._vm_entry(node, vmid))
            except (OSError, pct.PctError):
                continue  # removed while listing
        return entries

    def _vm_entry(self, node: str, vmid: int) -> dict[str, Any]:
        """`PVE::API2Tools::extract_vm_stats` over what `PVE::LXC::vmstatus` reports."""
        if vmid in self.stale_vmids:  # no RRD entry: only the identity and status `unknown`
            return {"id": f"lxc/{vmid}", "vmid": vmid, "node": node, "type": "lxc", "status": "unknown"}
        keys = conffile.parse(pct._load_raw(pct.Ctx(self.root), vmid), vmid).main.keys
        host_cpus = paths.host_cpu_count(self.root)
        running = os.path.isdir(paths.cgroup_dir(self.root, vmid))
        maxcpu: float = int(keys.get("cores") or 0) or float(keys.get("cpulimit") or 0) or host_cpus
        entry: dict[str, Any] = {
            "id": f"lxc/{vmid}", "vmid": vmid, "node": node, "type": "lxc",
            "name": "".join((keys.get("hostname") or f"CT{vmid}").split()),
            "status": "running" if running else "stopped", "template": int(keys.get("template") == "1"),
            "maxcpu": maxcpu, "maxmem": int(keys.get("memory") or 512) * cgroup.MIB,
            "maxdisk": pct._rootfs_size(keys.get("rootfs", "")), "disk": 0,
            "cpu": 0, "mem": 0, "uptime": 0, "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0,
        }  # fmt: skip
        for prop in ("lock", "tags"):
            if keys.get(prop):
                entry[prop] = keys[prop]
        if running:
            entry.update(self._usage(vmid, maxcpu))
        return entry

    def _usage(self, vmid: int, maxcpu: float) -> dict[str, Any]:
        directory = paths.cgroup_dir(self.root, vmid)
        usage = cgroup.parse_kv(read_text(os.path.join(directory, "cpu.stat"))).get("usage_usec", 0)
        current = int(read_text(os.path.join(directory, "memory.current")).strip() or 0)
        stat = cgroup.parse_kv(read_text(os.path.join(directory, "memory.stat")))
        now = time.monotonic()
        with self.state.lock:
            seen = self.state.cpu_seen.get(vmid)
            self.state.cpu_seen[vmid] = _CpuSeen(usage, now)
        cpu = 0.0
        if seen is not None and now > seen.at and usage >= seen.usage_usec:
            # pvestatd: CPU time used since the last look, as a fraction of maxcpu CPUs
            cpu = (usage - seen.usage_usec) / 1e6 / (now - seen.at) / maxcpu
        return {"cpu": round(cpu, 6), "mem": max(current - stat.get("file", 0), 0)}


def _option_privilege(option: str) -> str:
    if option in _CPU_OPTIONS:
        return "VM.Config.CPU"
    if option in _MEMORY_OPTIONS:
        return "VM.Config.Memory"
    if option == "rootfs" or re.fullmatch(r"mp\d+", option):
        return "VM.Config.Disk"
    if option in _NETWORK_OPTIONS or re.fullmatch(r"net\d+", option):
        return "VM.Config.Network"
    return "VM.Config.Options"


def _typed(key: str, value: str) -> Any:
    """JSON as Proxmox's formatter emits config values: integers and numbers as numbers."""
    option = schema.conf_option(key)
    kind = option[0] if option else "string"
    try:
        if kind in ("integer", "boolean"):
            return int(value)
        if kind == "number":
            number = float(value)
            return int(number) if number.is_integer() else number
    except ValueError:
        return value
    return value


def _vmids(root: str) -> list[int]:
    directory = paths.lxc_dir(root)
    names = os.listdir(directory) if os.path.isdir(directory) else []
    return sorted(int(n[:-5]) for n in names if n.endswith(".conf") and n[:-5].isdigit())


def _meminfo(root: str) -> list[tuple[str, int]]:
    rows = []
    for line in read_text(paths.meminfo_path(root)).splitlines():
        label, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            rows.append((label, int(parts[0])))
    return rows


# ---------------------------------------------------------------------- HTTP layer


def access_log_path(root: str) -> str:
    return os.path.join(root, "var", "log", "pveproxy", "access.log")


def api_calls(root: str | os.PathLike[str]) -> list[tuple[str, str, int]]:
    """(method, path, status) of every request so far, read back from the access log."""
    try:
        text = read_text(access_log_path(os.fspath(root)))
    except FileNotFoundError:
        return []
    calls = []
    for line in text.splitlines():
        match = re.search(r'"(\w+) (\S+) HTTP/[\d.]+" (\d{3})', line)
        if match:
            calls.append((match.group(1), unquote(urlsplit(match.group(2)).path), int(match.group(3))))
    return calls


def _handler_class(api: ProxmoxApiDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes
        server_version = "pve-api-daemon/3.0"
        sys_version = ""

        def do_GET(self) -> None:
            self._serve("GET")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def _serve(self, method: str) -> None:
            url = urlsplit(self.path)
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                body = self.rfile.read(min(length, 1 << 20)).decode("utf-8", "replace")
                params.update(parse_qsl(body, keep_blank_values=True))
            who = "-"
            try:
                who, data = api.handle(method, unquote(url.path), params, self.headers.get("Authorization"))
                status, reason, document = 200, "OK", {"data": data}
            except ApiError as exc:
                status, reason = exc.status, " ".join(exc.message.split()) or HTTPStatus(exc.status).phrase
                document = {"data": None, "message": exc.message.rstrip("\n") + "\n"}
                if exc.errors:
                    document["errors"] = exc.errors
            payload = json.dumps(document).encode()
            self.send_response(status, reason)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            self._access_log(who, method, status, len(payload))

        def _access_log(self, who: str, method: str, status: int, size: int) -> None:
            stamp = time.strftime("%d/%m/%Y:%H:%M:%S +0000", time.gmtime())
            peer = self.client_address[0]
            line = f'::ffff:{peer} - {who} [{stamp}] "{method} {self.path} HTTP/1.1" {status} {size}\n'
            append_line(access_log_path(api.root), line)

        def log_message(self, format: str, *args: Any) -> None:
            return None  # the access log above replaces http.server's stderr lines

    return Handler


def main(argv: list[str] | None = None) -> int:
    """`python -m simnode.api --root DIR [--port N]`: serve until interrupted; prints port and fingerprint."""
    from simnode.tls import make_tls_files

    parser = argparse.ArgumentParser(prog="python -m simnode.api")
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    tls = make_tls_files(args.root / "etc" / "pve" / "local" / "simnode-tls", paths.node_name(str(args.root)))
    server = ProxmoxApiDouble(args.root, tls, port=args.port).start()
    print(f"port={server.port} ca={tls.ca_path} fingerprint={tls.fingerprint}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
