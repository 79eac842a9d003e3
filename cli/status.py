"""`lxc-autoscale status`: containers, sizes, usage and what the policy would do now,
like `kubectl get hpa`; `--vmid` explains one container like `kubectl describe`.

Reads the bus directly (the same follower and `explain` as the console), so it needs
no console running.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from typing import Any

from services.console.cluster import Cluster, EventFilter
from services.console.follower import Follower
from services.console.hub import Hub
from services.decider.explain import make_explainer
from services.decider.explain_groups import make_group_explainer
from shared import subjects
from shared.arguments import node_argument, vmid_argument
from shared.clock import SystemClock
from shared.config import AutoscaleConfig
from shared.nats_settings import TOOL_CONNECT_WAIT_S, connect
from shared.service_config import add_common_arguments, start_service
from shared.validation import sanitize

REPLAY_WAIT_S = 5.0
# CPU: our figure (use over what the container can run on now); PVE: Proxmox's, as its GUI shows it.
COLUMNS = ("NODE/VMID", "NAME", "TIER", "CPU", "PVE", "MEM", "SIZE", "TARGET", "DECISION", "REASON")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--node", type=node_argument, help="only this node")
    parser.add_argument("--vmid", type=vmid_argument, help="explain this container in detail")
    parser.add_argument("--json", action="store_true", help="print JSON (the console API's shape)")


def run(args: argparse.Namespace) -> int:
    config = start_service("status", args)
    view = asyncio.run(_read(config, args.node, args.vmid))
    rows, events = view.rows, view.events
    if args.vmid is not None and not rows:
        print(f"lxc-autoscale status: no container {args.vmid} in the latest samples", file=sys.stderr)
        return 1
    if args.json:
        document: Any = rows if args.vmid is None else {**rows[0], "events": events}
        print(json.dumps(document, indent=2, default=str))
    elif args.vmid is not None:
        print(describe(rows[0], events))
        print(summary(view.dry_run, view.pauses, args.node))
    else:
        print(table(rows))
        print("\n" + summary(view.dry_run, view.pauses, args.node))
        for group in view.groups:
            print(group_line(group))
    return 0


@dataclass(frozen=True)
class StatusView:
    rows: list[dict[str, Any]]
    events: list[dict[str, Any]]
    dry_run: dict[str, Any]
    pauses: list[dict[str, Any]]
    groups: list[dict[str, Any]]


async def _read(config: AutoscaleConfig, node: str | None, vmid: int | None) -> StatusView:
    nc = await connect(config.nats, service="status", give_up_after_s=TOOL_CONNECT_WAIT_S)
    try:
        js = nc.jetstream()
        cluster = Cluster(
            explain=make_explainer(config), events_kept=config.console.events_kept,
            dry_run_configured=config.defaults.dry_run, groups_configured=dict(config.groups),
            explain_groups=make_group_explainer(config),
        )  # fmt: skip
        follower = Follower(js, cluster, Hub())
        await follower.start(config.console.events_kept)
        await _wait_for_replay(js, cluster, follower)
        await follower.stop()
    finally:
        await nc.close()
    now = SystemClock().now()
    rows = cluster.containers(now, node=node, vmid=vmid)
    events = cluster.recent_events(EventFilter(node=node, vmid=vmid, limit=10)) if vmid else []
    return StatusView(rows, events, cluster.dry_run(), cluster.paused(now), cluster.groups(now))


async def _wait_for_replay(js: Any, cluster: Cluster, follower: Follower) -> None:
    """Until the last sample of every node and the stored events have arrived."""
    info = await js.stream_info(subjects.METRICS_STREAM, subjects_filter=subjects.METRICS_ALL)
    nodes = len(info.state.subjects or {})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REPLAY_WAIT_S
    while loop.time() < deadline and (
        len(cluster.samples) < nodes or follower.events_seen < follower.events_replayed
    ):
        await asyncio.sleep(0.05)


def _pct(value: float | None, missing: str | None) -> str:
    return f"{value:.0f}%" if value is not None else f"? ({missing or 'missing'})"


def _proxmox_pct(usage: dict[str, Any]) -> str:
    value = usage.get("cpu_pct_proxmox")
    return "-" if value is None else f"{value:.0f}%"


def _size(size: dict[str, Any] | None) -> str:
    return f"{size['cores']}c/{size['memory_mb']}M" if size else "-"


def table(rows: list[dict[str, Any]]) -> str:
    lines = [COLUMNS]
    for row in rows:
        decision = row.get("decision") or {}
        badges = [b for b, on in (("paused", row.get("pause")), ("pending", row.get("pending"))) if on]
        lines.append((
            f"{row['node']}/{row['vmid']}",
            sanitize(row.get("hostname") or "", 30),
            row.get("tier") or "DEFAULT",
            _pct(row["usage"]["cpu_pct"], row["missing"].get("cpu")),
            _proxmox_pct(row["usage"]),
            _pct(row["usage"]["memory_pct"], row["missing"].get("memory")),
            _size(row["size"]),
            _size(decision.get("target")),
            decision.get("verdict", "?") + (f" [{','.join(badges)}]" if badges else ""),
            sanitize(decision.get("reason", ""), 200),
        ))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[-1]
        for line in lines
    )


def summary(dry_run: dict[str, Any], pauses: list[dict[str, Any]], node: str | None) -> str:
    """Dry-run and the pauses wider than one container (global, node) in force."""
    switch = dry_run.get("switch") or {}
    why = f": {sanitize(switch['reason'], 200)}" if switch.get("reason") else ""
    lines = [f"Dry-run:     {'on' if dry_run['enabled'] else 'off'} ({dry_run['source']}{why})"]
    for pause in pauses:
        elsewhere = node is not None and pause["node"] not in {None, node}
        if not pause["active"] or pause["scope"] == "container" or elsewhere:
            continue
        where = "everything" if pause["scope"] == "global" else f"node {pause['node']}"
        until = f" until {pause['until']}" if pause.get("until") else ""
        reason = f": {sanitize(pause['reason'], 200)}" if pause.get("reason") else ""
        lines.append(f"Paused:      {where} ({pause['mode']}){until}{reason}")
    return "\n".join(lines)


def group_line(group: dict[str, Any]) -> str:
    """One horizontal group: members running against its bounds, the averages the deciders
    compare, and what they would decide now."""
    limits = f"min {group['min_instances']}, max {group['max_instances']}"
    usage = f"cpu {_pct(group['cpu_pct'], None)}, memory {_pct(group['memory_pct'], None)}"
    members = f"{group['running']}/{len(group['members'])} running"
    line = f"Group:       {group['group']}: {members} ({limits}), {usage}: "
    return line + sanitize(group["decision"]["reason"], 300)


def describe(row: dict[str, Any], events: list[dict[str, Any]]) -> str:
    decision = row.get("decision") or {}
    timers = row.get("timers") or {}
    lines = [
        f"Container:   {row['node']}/{row['vmid']} ({sanitize(row.get('hostname') or '-', 80)})",
        f"Status:      {row['status']}" + (f" (locked: {sanitize(row['lock'], 40)})" if row["lock"] else ""),
        f"Tier:        {row.get('tier') or 'DEFAULT'}",
        f"Size:        {_size(row['size'])}   cpulimit: {row.get('cpulimit') or '-'}",
        f"Usage:       cpu {_pct(row['usage']['cpu_pct'], row['missing'].get('cpu'))} "
        f"(Proxmox shows {_proxmox_pct(row['usage'])}), "
        f"memory {_pct(row['usage']['memory_pct'], row['missing'].get('memory'))}",
        f"Thresholds:  {json.dumps(row.get('thresholds') or {})}",
        f"Sample:      taken {row['sample']['taken_at']} ({row['sample']['age_s']}s ago)",
        f"Decision:    {decision.get('verdict', '?')} → {_size(decision.get('target'))}",
        f"Reason:      {sanitize(decision.get('reason', ''), 500)}",
    ]
    pending = row.get("pending")
    lines.append(f"Pending:     intent {pending['intent_id'][:12]}… → {_size(pending['target'])}" if pending
                 else "Pending:     none")  # fmt: skip
    pause = row.get("pause")
    lines.append(
        f"Pause:       {pause['mode']} ({pause['scope']}) until {pause.get('until') or 'resumed'}: "
        f"{sanitize(pause.get('reason') or '', 200)}"
        if pause
        else "Pause:       none"
    )
    lines.append(f"Timers:      {json.dumps(timers)}")
    lines.append("Events:")
    for event in events or [{"none": True}]:
        if "none" in event:
            lines.append("  (none recorded)")
            continue
        reason = (event.get("reason") or {}).get("summary") or event.get("message") or ""
        lines.append(f"  {event['occurred_at'][:19]}  {event['outcome']:<8} {event['detail']:<16} "
                     f"{sanitize(reason, 200)}")  # fmt: skip
    return "\n".join(lines)
