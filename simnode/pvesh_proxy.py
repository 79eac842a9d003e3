"""`pvesh` on one node calling a method of another node: pve-manager PVE/CLI/pvesh.pm.

`check_proxyto`: a method with `proxyto => 'node'` (every `/nodes/<node>/lxc/…` method)
whose node is neither `localhost` nor this node is proxied, unless `--noproxy` was given
(then `proxy loop detected - aborting`). The node's address is its entry in the cluster's
nodelist (pve-cluster Cluster.pm `remote_node_ip`), else a host lookup, which fails for a
node the cluster does not know (pve-common Network.pm `get_ip_from_hostname`).

`proxy_handler` runs `pvesh --noproxy <cmd> <path> --output-format json --<key> <value>…`
on that node over SSH, through `run_command` with `errmsg => "proxy handler failed"`
(pve-common Cmd.pm `run`): stdout lines are joined without their newlines and decoded as
JSON (kept as text when they are not JSON); stderr lines are passed on as they come, but
on a non-zero exit the last one becomes the error, `proxy handler failed: <that line>`
(`exit code N` when there was none). The caller prints the result in its own format.

Stdlib only besides simnode's stdlib-only modules: pvesh imports this on every spawn.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from simnode import paths, pmxcfs
from simnode.pctbase import PctError


def target(root: str, node: str, noproxy: bool) -> str | None:
    """The node a call must be proxied to, or None to run it here (`check_proxyto`)."""
    if node in ("localhost", paths.node_name(root)):
        return None
    if noproxy:
        raise PctError("proxy loop detected - aborting")
    if not pmxcfs.node_exists(root, node):
        raise PctError(
            f"hostname lookup '{node}' failed - failed to get address info for: {node}: "
            "Name or service not known"
        )
    return node


def proxy(root: str, node: str, cmd: str, path: str, params: list[tuple[str, str]]) -> Any:
    """Run the call on `node` as its own pvesh; its decoded result, or PctError."""
    remote = pmxcfs.node_root(root, node)
    if remote is None:  # **[simulation only]** a cluster member whose tree is not built: down
        raise PctError(f"proxy handler failed: ssh: connect to host {node} port 22: No route to host")
    args = [token for key, value in params for token in (f"--{key}", value)]
    argv = [paths.pvesh_wrapper_path(remote), "--noproxy", cmd, path, "--output-format", "json", *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    lines = done.stderr.splitlines()
    last = lines.pop() if lines else ""
    _pass_on(lines)
    if done.returncode != 0:
        raise PctError(f"proxy handler failed: {last if _truthy(last) else f'exit code {done.returncode}'}")
    _pass_on([last])
    joined = "".join(done.stdout.splitlines())
    try:
        return json.loads(joined)
    except ValueError:
        return joined  # "do not error, '' (null) is valid too"


def _pass_on(lines: list[str]) -> None:
    """The `errmsg` wrapper holds each line back until the next one comes and prints it
    only if it is true in Perl: an empty line (or "0") is dropped."""
    for line in lines:
        if _truthy(line):
            sys.stderr.write(f"{line}\n")


def _truthy(line: str) -> bool:
    return line not in ("", "0")
