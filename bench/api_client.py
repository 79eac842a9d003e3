"""Proxmox API client cost: this project's stdlib client against proxmoxer, on the API double.

Run: .venv/bin/python bench/api_client.py [--calls N]
Prints the median time of `GET /nodes/pve1/lxc/101/config` and of a resize
(`PUT …/config`) over N calls each, and the import time of each client. proxmoxer is
measured only when importable (it is not a dependency: `pip install --target DIR
proxmoxer` and set PYTHONPATH=DIR to compare).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from shared.proxmox_api import ApiEndpoint, ProxmoxApi
from simnode import access
from simnode.api import ProxmoxApiDouble
from simnode.tls import make_tls_files
from simnode.tree import ContainerSpec, build_node

TOKEN = "bench@pve!actuator"


def median_ms(call: Callable[[], object], count: int) -> float:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def import_ms(module: str, preloaded: str = "ssl") -> float:
    """Import time of `module` on top of what a service has loaded anyway (`preloaded`)."""
    timed = f"t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    code = f"import {preloaded}, time; {timed}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    return float(done.stdout.strip()) * 1000 if done.returncode == 0 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "node"
        build_node(root, node_name="pve1", host_cores=16, host_memory_mb=32768,
                   containers=[ContainerSpec(101, "web", 2, 1024)])  # fmt: skip
        tls = make_tls_files(Path(tmp) / "tls")
        secret = access.add_token(root, TOKEN, ("VM.Audit", "VM.Config.CPU", "VM.Config.Memory"))
        double = ProxmoxApiDouble(root, tls).start()
        try:
            endpoint = ApiEndpoint("127.0.0.1", TOKEN, SecretStr(secret), double.port, ca_file=tls.ca_path)
            ours = ProxmoxApi(endpoint)
            path = "/nodes/pve1/lxc/101/config"
            get_ms = median_ms(lambda: ours.request("GET", path), args.calls)
            put_ms = median_ms(lambda: ours.request("PUT", path, {"cores": "2"}), args.calls)
            imported = import_ms("shared.proxmox_api", "shared.config")
            print(f"stdlib client: import {imported:.0f} ms, "
                  f"GET config {get_ms:.2f} ms, PUT config {put_ms:.2f} ms")  # fmt: skip
            try:
                from proxmoxer import ProxmoxAPI  # type: ignore[import-not-found]
            except ImportError:
                print("proxmoxer: not importable, skipped")
                return
            user, token = TOKEN.split("!")
            prox = ProxmoxAPI("127.0.0.1", port=double.port, user=user, token_name=token,
                              token_value=secret, verify_ssl=str(tls.ca_path))  # fmt: skip
            config = prox.nodes("pve1").lxc(101).config
            get_ms = median_ms(config.get, args.calls)
            put_ms = median_ms(lambda: config.put(cores=2), args.calls)
            version = sys.modules["proxmoxer"].__version__
            imported = import_ms("proxmoxer.core")
            print(f"proxmoxer {version}: import {imported:.0f} ms (with requests), "
                  f"GET config {get_ms:.2f} ms, PUT config {put_ms:.2f} ms")  # fmt: skip
        finally:
            double.stop()


if __name__ == "__main__":
    main()
