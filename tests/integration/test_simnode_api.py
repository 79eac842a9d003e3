"""The Proxmox API double itself: replies shaped as Proxmox's handlers shape them, one
node state shared with the simulated pct, UPID tasks that take a while."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from actuator_harness import sim_node
from pve_api import PveApi, serve_api

from services.actuator.commands import ReadConfig, Start, Stop, argv
from services.actuator.retry import classify
from shared.proxmox_api import ProxmoxApi
from simnode.tree import ContainerSpec, build_node

pytestmark = pytest.mark.integration
CONFIG = "/nodes/pve1/lxc/101/config"


@pytest.fixture
def pve(tmp_path: Path) -> Iterator[PveApi]:
    sim = build_node(
        tmp_path / "node", node_name="pve1", host_cores=16, host_memory_mb=32768,
        containers=[ContainerSpec(101, "web1", 2, 1024, snapshots=("before",)),
                    ContainerSpec(102, "held", 1, 512, running=False, lock="backup")],
    )  # fmt: skip
    with serve_api(sim, tmp_path / "tls", task_seconds=0.3) as api:
        yield api


def client(pve: PveApi, token_id: str = "autoscale@pve!actuator", secret: str | None = None) -> ProxmoxApi:
    return ProxmoxApi(pve.endpoint(token_id, secret))


def test_a_config_is_typed_json_with_its_digest_and_changes_made_by_pct_show_at_once(pve: PveApi) -> None:
    reply = client(pve).request("GET", CONFIG, {"current": "1"})
    assert reply.ok and reply.data["cores"] == 2 and reply.data["memory"] == 1024
    assert reply.data["hostname"] == "web1" and len(reply.data["digest"]) == 40
    subprocess.run([str(pve.sim.pct_path), "set", "101", "-cores", "5"], check=True, capture_output=True)
    again = client(pve).request("GET", CONFIG)
    assert again.data["cores"] == 5 and again.data["digest"] != reply.data["digest"]


async def test_pending_changes_show_without_current_and_the_executor_reads_current_values(
    pve: PveApi,
) -> None:
    conf = pve.sim.conf_path(101)
    conf.write_text(conf.read_text() + "\n[pve:pending]\ncores: 8\n")  # a change waiting for a reboot
    assert client(pve).request("GET", CONFIG).data["cores"] == 8
    assert client(pve).request("GET", CONFIG, {"current": "1"}).data["cores"] == 2
    result = await pve.executor().run(argv(ReadConfig(101), str(pve.sim.pct_path)), 5)
    assert "cores: 2\n" in result.stdout


@pytest.mark.parametrize(
    ("method", "path", "params", "status", "text"),
    [
        ("GET", CONFIG, {"current": "1", "snapshot": "before"}, 400,
         "400 Parameter verification failed.\ncurrent: cannot use 'snapshot' parameter with 'current'\n"
         "snapshot: cannot use 'snapshot' parameter with 'current'"),
        ("PUT", CONFIG, {"cores": "0"}, 400,
         "400 Parameter verification failed.\ncores: value must have a minimum value of 1"),
        ("PUT", CONFIG, {}, 500, "500 no options specified"),
        ("PUT", CONFIG, {"cores": "3", "digest": "0" * 40}, 500,
         "500 detected modified configuration - file changed by other user? Try again."),
        ("GET", "/nodes/pve1/lxc/99/config", None, 400,
         "400 Parameter verification failed.\nvmid: invalid format - value does not look like a valid VM ID"),
        ("GET", "/nodes/pve9/lxc/101/config", None, 500,
         "500 hostname lookup 'pve9' failed - failed to get address info for: pve9: "
         "Name or service not known"),
        ("GET", "/nodes/pve1/nothing", None, 501, "501 Method 'GET /nodes/pve1/nothing' not implemented"),
        ("PUT", "/nodes/pve1/lxc/102/config", {"memory": "600"}, 500, "500 CT is locked (backup)"),
    ],
    ids=["current and snapshot", "below minimum", "no options", "digest mismatch", "bad vmid",
         "other node", "no such path", "locked"],
)  # fmt: skip
def test_errors_carry_proxmoxs_status_and_text(
    pve: PveApi, method: str, path: str, params: dict[str, str] | None, status: int, text: str
) -> None:
    reply = client(pve).request(method, path, params)
    assert (reply.status, reply.error_text()) == (status, text)


def test_a_token_may_only_read_and_change_what_its_role_allows(pve: PveApi) -> None:
    auditor = pve.add_token("audit@pve!ro", ("VM.Audit",))
    reply = client(pve, "audit@pve!ro", auditor).request("PUT", CONFIG, {"cores": "3"})
    assert reply.error_text() == (
        "403 Permission check failed (/vms/101, "
        "VM.Config.Disk|VM.Config.CPU|VM.Config.Memory|VM.Config.Network|VM.Config.Options)"
    )
    nothing = pve.add_token("nobody@pve!none", None)
    listed = client(pve, "nobody@pve!none", nothing).request("GET", "/cluster/resources", {"type": "vm"})
    assert listed.ok and listed.data == []  # filtered, not refused
    assert pve.sim.read_conf(101)["cores"] == "2"


async def test_start_and_stop_return_a_upid_and_the_task_ends_ok_or_with_the_error(pve: PveApi) -> None:
    secret = pve.add_token("power@pve!groups", ("VM.Audit", "VM.PowerMgmt", "Sys.Audit"))
    executor = pve.executor(token_id="power@pve!groups", secret=secret)
    pct = str(pve.sim.pct_path)
    started = time.monotonic()
    stopped = await executor.run(argv(Stop(101), pct), 10)
    assert stopped.ok and time.monotonic() - started >= 0.3  # the task runs a while
    assert not pve.sim.is_running(101)
    again = await executor.run(argv(Stop(101), pct), 10)
    assert again.stderr == "500 CT 101 not running"
    locked = await executor.run(argv(Start(102), pct), 10)  # the lock is checked inside the task
    assert (locked.exit_code, locked.stderr) == (255, "CT is locked (backup)")
    assert classify(locked).transient and not pve.sim.is_running(102)
    assert (await executor.run(argv(Start(101), pct), 10)).ok and pve.sim.is_running(101)
    upids = [path.split("/")[6] for method, path, _ in pve.calls("GET") if "/tasks/" in path]
    assert upids and all(u.startswith("UPID:pve1:") and ":power@pve!groups:" in u for u in upids)


def test_another_users_task_needs_sys_audit(pve: PveApi) -> None:
    secret = pve.add_token("power@pve!groups", ("VM.PowerMgmt",))
    upid = client(pve, "power@pve!groups", secret).request("POST", "/nodes/pve1/lxc/101/status/stop").data
    other = pve.add_token("peek@pve!t", ("VM.Audit",))
    reply = client(pve, "peek@pve!t", other).request("GET", f"/nodes/pve1/tasks/{upid}/status")
    assert reply.error_text() == "403 Permission check failed (/nodes/pve1, Sys.Audit)"
    own = client(pve, "power@pve!groups", secret).request("GET", f"/nodes/pve1/tasks/{upid}/status")
    assert own.ok and own.data["type"] == "vzstop" and own.data["id"] == "101"


def test_the_resource_list_reports_each_container_like_cluster_resources(tmp_path: Path) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    with serve_api(sim, tmp_path / "tls") as pve:
        [entry] = client(pve).request("GET", "/cluster/resources", {"type": "vm"}).data
    assert entry["id"] == "lxc/101" and entry["type"] == "lxc" and entry["node"] == "pve1"
    assert (entry["maxcpu"], entry["maxmem"], entry["status"]) == (2, 1024 * 1024 * 1024, "running")


def test_nextid_answers_as_the_cluster_api(pve: PveApi) -> None:
    api = client(pve)
    assert api.request("GET", "/cluster/nextid").data == "100"  # a string, as Proxmox sends it
    assert api.request("GET", "/cluster/nextid", {"vmid": "150"}).data == "150"
    taken = api.request("GET", "/cluster/nextid", {"vmid": "101"})
    assert taken.error_text().startswith("400 Parameter verification failed.")
    assert taken.errors == {"vmid": "VM 101 already exists"}
