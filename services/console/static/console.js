// The console page: fetches the JSON API, then follows /api/v1/stream (server-sent
// events). Everything from the bus is put into the page with textContent, never as HTML.
"use strict";

const api = (path) => fetch(path, { headers: { Accept: "application/json" } }).then((r) => {
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
});

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function bar(pct, lower, upper, missing) {
  if (pct === null || pct === undefined) {
    return el("span", { class: "missing" }, `missing (${missing || "no reading"})`);
  }
  const level = pct > upper ? "high" : pct < lower ? "low" : "";
  const box = el("div", { class: `bar ${level}`, title: `${pct.toFixed(1)}% (thresholds ${lower}–${upper}%)` });
  const fill = el("div", { class: "fill" });
  fill.style.width = `${Math.min(pct, 100)}%`;
  const low = el("div", { class: "mark" });
  low.style.left = `${lower}%`;
  const high = el("div", { class: "mark" });
  high.style.left = `${upper}%`;
  box.append(fill, low, high, el("span", { class: "label" }, `${pct.toFixed(1)}%`));
  return box;
}

// Proxmox's own figure (use over cores, as its GUI shows it), beside ours in the CPU cell.
function proxmoxCpu(c) {
  const pct = c.usage.cpu_pct_proxmox;
  return el("div", { class: "reason", title: "CPU as Proxmox shows it: use over the configured cores" },
    pct === null || pct === undefined ? "Proxmox: -" : `Proxmox: ${pct.toFixed(1)}%`);
}

function size(s) {
  return `${s.cores} cores, ${s.memory_mb} MB`;
}

function badges(c) {
  const out = el("span", {});
  if (c.pause) out.append(el("span", { class: "badge paused", title: c.pause.reason || "" }, `paused (${c.pause.scope}: ${c.pause.mode})`));
  if (c.pending) out.append(el("span", { class: "badge pending" }, c.pending.dry_run ? "pending (dry run)" : "pending"));
  if (c.in_flight) out.append(el("span", { class: "badge pending" }, "applying"));
  const timers = (c.timers || {});
  for (const resource of ["cpu", "memory"]) {
    const t = timers[resource] || {};
    const cooling = Math.max(t.cooldown_up_left_s || 0, t.cooldown_down_left_s || 0);
    if (cooling) out.append(el("span", { class: "badge cooldown" }, `${resource} cooldown ${Math.round(cooling)}s`));
    if (t.scale_up_sustain_left_s) out.append(el("span", { class: "badge cooldown" }, `${resource} high, acting in ≤${Math.round(t.scale_up_sustain_left_s)}s`));
    if (t.stabilization_left_s) out.append(el("span", { class: "badge cooldown" }, `${resource} stabilizing ${Math.round(t.stabilization_left_s)}s`));
    if (t.boost_left_s) out.append(el("span", { class: "badge" }, `${resource} boosted`));
  }
  if (timers.warmup_left_s) out.append(el("span", { class: "badge cooldown" }, `warming up ${Math.round(timers.warmup_left_s)}s`));
  if (c.status !== "running") out.append(el("span", { class: "badge" }, c.status));
  return out;
}

function containerRow(c) {
  const t = c.thresholds || {};
  const d = c.decision || { verdict: "unknown", reason: "" };
  const target = d.target ? ` → ${size(d.target)}` : "";
  return el("tr", { "data-key": `${c.node}/${c.vmid}` },
    el("td", {}, `${c.node}/${c.vmid}`),
    el("td", {}, c.hostname || ""),
    el("td", {}, c.tier || "DEFAULT"),
    el("td", {}, bar(c.usage.cpu_pct, t.cpu_lower_threshold, t.cpu_upper_threshold, (c.missing || {}).cpu),
      proxmoxCpu(c)),
    el("td", {}, bar(c.usage.memory_pct, t.memory_lower_threshold, t.memory_upper_threshold, (c.missing || {}).memory)),
    el("td", {}, size(c.size) + target),
    el("td", {}, el("div", { class: "verdict" }, d.verdict), el("div", { class: "reason" }, d.reason)),
    el("td", {}, badges(c)));
}

function pauseBadge(p) {
  const until = p.until ? ` until ${p.until.replace("T", " ").slice(0, 16)}` : "";
  return el("span", { class: "badge paused", title: p.reason || "" }, `paused (${p.mode})${until}`);
}

function nodeCard(n, pauses) {
  const age = n.last_sample.age_s;
  const mine = pauses.filter((p) => p.active && p.scope === "node" && p.node === n.node);
  return el("div", { class: "card", "data-node": n.node },
    el("strong", {}, n.node), " ",
    el("span", { class: `badge ${n.last_sample.stale ? "off" : "on"}` }, n.last_sample.stale ? "stale" : "live"),
    ...mine.map(pauseBadge),
    el("div", {}, `${n.running}/${n.containers} containers running`),
    el("div", {}, `host ${n.host.cores} cores, ${n.host.memory_mb} MB; allocated ${n.host.allocated_cores_running} cores, ${n.host.allocated_memory_mb_running} MB`),
    el("div", { class: "reason" }, `last sample ${age}s ago (every ${n.last_sample.interval_s}s)`));
}

function pct(value) {
  return value === null || value === undefined ? "-" : `${value.toFixed(1)}%`;
}

function groupCard(g) {
  const pendingAction = g.action && g.action.state === "pending";
  const action = pendingAction
    ? el("span", { class: `badge ${g.action.expired ? "" : "pending"}`, title: `intent ${g.action.intent_id}` },
      `${g.action.action} of ${g.action.vmid} on ${g.action.node}${g.action.expired ? " (expired)" : " in flight"}`)
    : null;
  const members = el("ul", { class: "members" }, ...g.members.map((m) => el("li", { "data-vmid": String(m.vmid) },
    `${m.node || "?"}/${m.vmid} ${m.hostname || ""} ${m.status} (${m.kind}${m.ready ? ", ready" : ""})`
      + (m.status === "running" ? ` cpu ${pct(m.cpu_pct)}, memory ${pct(m.memory_pct)}` : ""))));
  return el("div", { class: "card", "data-group": g.group },
    el("strong", {}, g.group), " ", action,
    el("div", {}, `${g.running} running, ${g.ready} ready (min ${g.min_instances}, max ${g.max_instances})`),
    el("div", { class: "verdict" }, g.decision.action ? `${g.decision.action} of ${g.decision.vmid}` : "no action"),
    el("div", { class: "reason" }, g.decision.reason),
    members);
}

function eventItem(e) {
  const change = e.before && e.after ? ` ${size(e.before)} → ${size(e.after)}` : "";
  const why = e.reason ? ` — ${e.reason.summary}` : (e.message ? ` — ${e.message}` : "");
  return el("li", { class: e.outcome, "data-event": e.event_id },
    `${e.occurred_at.replace("T", " ").slice(0, 19)} ${e.node}/${e.vmid} ${e.outcome} (${e.detail})${change}${why}`);
}

function showMode(dryRun, pauses) {
  const mode = document.getElementById("mode");
  const everything = pauses.filter((p) => p.active && p.scope === "global");
  const why = dryRun.switch && dryRun.switch.reason ? `: ${dryRun.switch.reason}` : "";
  mode.replaceChildren(
    el("span", { class: `badge ${dryRun.enabled ? "dry" : ""}`, title: `set by the ${dryRun.source}${why}` },
      dryRun.enabled ? "DRY RUN: nothing is applied" : "acting (dry-run off)"),
    ...everything.map((p) => pauseBadge({ ...p, mode: `everything: ${p.mode}` })));
}

async function refresh() {
  const [nodes, containers, pauses, dryRun, groups] = await Promise.all([
    api("/api/v1/nodes"), api("/api/v1/containers"), api("/api/v1/pauses"), api("/api/v1/dry-run"),
    api("/api/v1/groups")]);
  document.getElementById("groups-section").hidden = groups.length === 0;
  document.getElementById("groups").replaceChildren(...groups.map(groupCard));
  showMode(dryRun, pauses);
  document.getElementById("nodes").replaceChildren(...nodes.map((n) => nodeCard(n, pauses)));
  document.querySelector("#containers tbody").replaceChildren(...containers.map(containerRow));
  document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

let pending = null;
function refreshSoon() {
  if (pending) return;
  pending = setTimeout(() => { pending = null; refresh().catch(showError); }, 300);
}

function showError(err) {
  const live = document.getElementById("live");
  live.className = "badge off";
  live.textContent = String(err.message || err);
}

function addEvent(e) {
  const list = document.getElementById("events");
  if (list.querySelector(`[data-event="${CSS.escape(e.event_id)}"]`)) return;
  list.prepend(eventItem(e));
  while (list.children.length > 100) list.lastChild.remove();
}

async function start() {
  await refresh();
  const events = await api("/api/v1/events?limit=50");
  document.getElementById("events").replaceChildren(...events.map(eventItem));
  const stream = new EventSource("/api/v1/stream");
  const live = document.getElementById("live");
  stream.addEventListener("hello", () => { live.className = "badge on"; live.textContent = "live"; });
  stream.addEventListener("changed", refreshSoon);
  stream.addEventListener("event", (m) => addEvent(JSON.parse(m.data)));
  stream.onerror = () => { live.className = "badge off"; live.textContent = "reconnecting…"; };
}

document.addEventListener("DOMContentLoaded", () => { start().catch(showError); });
