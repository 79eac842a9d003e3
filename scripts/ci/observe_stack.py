"""Drive and check a running compose stack from outside, over its published NATS port.

Used by scripts/docker-ci.sh after `docker compose ... --profile demo up --wait`:

1. auth: an anonymous client and a wrong password are refused; pve1's collector may
   not publish intents or another node's samples; the observer may not publish samples.
2. scaling: as the read-only `observer` user, replay and follow `autoscale.events.>`
   until the demo scenario shows at least one scale-up and one scale-down.
3. replicas: scale the deciders 1 → 3 → 1 with compose while samples flow.
4. accounting: stop the collector, let the pipeline drain, then require that every
   intent the intents stream accepted got exactly one event, that no intent is left
   in the queue, and that no event names an intent twice.

With `--kill-intents-leader nats-1=nats,nats-2=nats-2,...` (the compose `cluster`
profile: server name = compose service), step 3 is instead: check that every stream
keeps three copies, SIGKILL the server leading the intents stream with `compose kill`,
and wait for an intent published after the kill to be applied (scaling continues on
the two servers left); the accounting of step 4 then covers the kill too.

Exit 0 when all holds; 1 with the reason otherwise. Every phase prints its timing.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from nats.errors import Error as NatsError
from nats.js.api import DeliverPolicy

from shared import subjects
from shared.codec import CodecError, decode
from shared.models import ScaleEvent
from shared.nats_settings import open_connection


class CheckFailed(Exception):
    pass


@dataclass
class Seen:
    events: list[ScaleEvent] = field(default_factory=list)
    intent_publishes: int = 0
    intent_ids: set[str] = field(default_factory=set)
    intent_seen_at: dict[str, float] = field(default_factory=dict)  # first seen (monotonic)
    samples: int = 0
    undecodable: int = 0

    @property
    def scale_ups(self) -> int:
        return sum(1 for e in self.events if e.scaled_up)

    @property
    def scale_downs(self) -> int:
        return sum(1 for e in self.events if e.scaled_down)


def log(message: str) -> None:
    print(f"observe: {message}", flush=True)


def password(user: str) -> str:
    """From the .env of scripts/gen-env.sh: `collector-pve1` -> NATS_COLLECTOR_PVE1_PASSWORD."""
    name = f"NATS_{user.upper().replace('-', '_')}_PASSWORD"
    value = os.environ.get(name)
    if not value:
        raise CheckFailed(f"{name} is not set")
    return value


async def connect(url: str, user: str | None, secret: str | None = None, **extra: Any) -> Any:
    options: dict[str, Any] = {"name": f"ci-observer-{user}", "connect_timeout": 3}
    if user is not None:
        options.update(user=user, password=secret if secret is not None else password(user))
    options.update(extra)
    return await open_connection(url, **options)


async def refused(url: str, user: str | None, secret: str | None) -> bool:
    async def quiet(_exc: Exception) -> None:
        return None

    try:
        nc = await connect(url, user, secret, allow_reconnect=False, max_reconnect_attempts=0, error_cb=quiet)
    except (NatsError, OSError, TimeoutError):
        return True
    await nc.close()
    return False


async def publish_denied(url: str, user: str, subject: str) -> bool:
    """True when the server answers a publish by `user` on `subject` with a permissions violation."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await connect(url, user, error_cb=on_error)
    try:
        await nc.publish(subject, b"ci-permission-probe")
        await nc.flush(timeout=3)
        await asyncio.sleep(0.3)
    finally:
        await nc.close()
    return any("permissions violation" in e.lower() for e in errors)


async def check_auth(url: str) -> None:
    started = time.monotonic()
    if not await refused(url, None, None):
        raise CheckFailed("NATS accepted an anonymous client: auth is not on")
    if not await refused(url, "decider", "not-the-password"):
        raise CheckFailed("NATS accepted a wrong password")
    if not await publish_denied(url, "collector-pve1", "autoscale.intents.pve1"):
        raise CheckFailed("the collector user may publish intents")
    if not await publish_denied(url, "collector-pve1", "autoscale.metrics.pve2"):
        raise CheckFailed("the collector of pve1 may publish another node's samples")
    if not await publish_denied(url, "observer", "autoscale.metrics.pve1"):
        raise CheckFailed("the observer user may publish samples")
    log(f"auth: anonymous and wrong password refused, permissions enforced ({elapsed(started)})")


def elapsed(started: float) -> str:
    return f"{time.monotonic() - started:.1f} s"


async def follow(url: str, seen: Seen) -> tuple[Any, Any]:
    """Observer replays every event since the stream began; admin watches intents and samples."""
    observer = await connect(url, "observer")

    async def on_event(msg: Any) -> None:
        try:
            event = decode(msg.data, ScaleEvent)
        except CodecError:
            seen.undecodable += 1
            return
        seen.events.append(event)
        direction = "up" if event.scaled_up else "down" if event.scaled_down else "-"
        log(f"event {event.node}/{event.vmid} {event.outcome} {event.detail} ({direction})")

    await observer.jetstream().subscribe(
        subjects.EVENTS_ALL,
        stream=subjects.EVENTS_STREAM,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
        cb=on_event,
    )
    admin = await connect(url, "admin")

    async def on_intent(msg: Any) -> None:
        seen.intent_publishes += 1
        msg_id = (msg.headers or {}).get("Nats-Msg-Id")
        if msg_id:
            seen.intent_ids.add(msg_id)
            seen.intent_seen_at.setdefault(msg_id, time.monotonic())

    async def on_sample(_msg: Any) -> None:
        seen.samples += 1

    await admin.subscribe(subjects.INTENTS_ALL, cb=on_intent)
    await admin.subscribe(subjects.METRICS_ALL, cb=on_sample)
    return observer, admin


async def wait_for(what: str, predicate: Any, timeout_s: float) -> None:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise CheckFailed(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.25)
    log(f"{what} ({elapsed(started)})")


def compose(base: list[str], *args: str) -> None:
    started = time.monotonic()
    done = subprocess.run([*base, *args], capture_output=True, text=True, timeout=180, check=False)
    if done.returncode != 0:
        raise CheckFailed(f"compose {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    log(f"compose {' '.join(args)} ({elapsed(started)})")


async def scale_deciders(base: list[str], seen: Seen, plan: list[int], hold_s: float) -> None:
    for replicas in plan:
        scale = f"decider={replicas}"
        await asyncio.to_thread(
            compose, base, "up", "-d", "--no-deps", "--no-recreate", "--scale", scale, "decider"
        )
        before = seen.samples
        await asyncio.sleep(hold_s)
        if seen.samples <= before:
            raise CheckFailed(f"no sample flowed while {replicas} decider(s) ran")
        log(f"{replicas} decider(s): {seen.samples - before} samples in {hold_s:g} s")


async def kill_intents_leader(
    base: list[str], admin: Any, seen: Seen, services: dict[str, str], timeout_s: float
) -> None:
    """Kill the server leading the intents stream; wait until an intent made after it is applied."""
    js = admin.jetstream()
    for stream in (subjects.METRICS_STREAM, subjects.INTENTS_STREAM, subjects.EVENTS_STREAM):
        info = await js.stream_info(stream)
        if info.config.num_replicas != len(services):
            raise CheckFailed(f"{stream} keeps {info.config.num_replicas} copies, not {len(services)}")
    leader = (await js.stream_info(subjects.INTENTS_STREAM)).cluster
    if leader is None or leader.leader not in services:
        raise CheckFailed(f"intents stream leader {leader} is none of {sorted(services)}")
    await asyncio.to_thread(compose, base, "kill", services[leader.leader])
    killed_at = time.monotonic()
    log(f"killed {services[leader.leader]} ({leader.leader}), leader of {subjects.INTENTS_STREAM}")

    def applied_after_kill() -> bool:
        return any(
            e.outcome == "applied" and seen.intent_seen_at.get(e.intent_id, 0.0) > killed_at
            for e in seen.events
        )

    await wait_for("an intent published after the kill applied", applied_after_kill, timeout_s)
    new_leader = (await js.stream_info(subjects.INTENTS_STREAM)).cluster
    log(
        f"scaling continued {time.monotonic() - killed_at:.1f} s after the kill; "
        f"{subjects.INTENTS_STREAM} now led by {new_leader.leader if new_leader else '?'}"
    )


async def drained(admin: Any, seen: Seen, node: str) -> tuple[int, int, int]:
    js = admin.jetstream()
    stream = await js.stream_info(subjects.INTENTS_STREAM)
    consumer = await js.consumer_info(subjects.INTENTS_STREAM, subjects.actuator_consumer(node))
    accepted = int(stream.state.last_seq)
    in_queue = int(stream.state.messages) + int(consumer.num_ack_pending) + int(consumer.num_pending)
    answered = len({e.intent_id for e in seen.events})
    return accepted, in_queue, answered


async def account(admin: Any, seen: Seen, node: str, timeout_s: float) -> None:
    started = time.monotonic()
    stable_since: float | None = None
    last: tuple[int, int, int] | None = None
    while True:
        state = await drained(admin, seen, node)
        accepted, in_queue, answered = state
        if in_queue == 0 and answered >= accepted:
            if state != last:
                stable_since = time.monotonic()
            elif stable_since is not None and time.monotonic() - stable_since >= 3:
                break
        last = state
        if time.monotonic() - started > timeout_s:
            raise CheckFailed(
                f"pipeline did not drain in {timeout_s:g} s: {accepted} intents accepted, "
                f"{in_queue} still queued or unacknowledged, {answered} answered by an event"
            )
        await asyncio.sleep(0.5)
    per_intent = collections.Counter(e.intent_id for e in seen.events)
    repeated = {i: n for i, n in per_intent.items() if n > 1}
    if repeated:
        raise CheckFailed(f"intents answered by more than one event: {repeated}")
    if answered != accepted:
        raise CheckFailed(f"{accepted} intents accepted by the stream but {answered} got an event")
    if seen.intent_ids and not set(per_intent) >= seen.intent_ids:
        missing = sorted(seen.intent_ids - set(per_intent))
        raise CheckFailed(f"intents seen on the wire without an event: {missing[:5]}")
    outcomes = collections.Counter(e.outcome for e in seen.events)
    log(
        f"accounting: {accepted} intents accepted by the stream ({seen.intent_publishes} intent "
        f"publishes seen live), {len(seen.events)} events, one per intent, outcomes {dict(outcomes)}, "
        f"queue empty ({elapsed(started)})"
    )


async def run(args: argparse.Namespace) -> None:
    total = time.monotonic()
    await check_auth(args.url)
    seen = Seen()
    observer, admin = await follow(args.url, seen)
    try:
        await wait_for(
            "a scale-up and a scale-down event",
            lambda: seen.scale_ups >= 1 and seen.scale_downs >= 1,
            args.scaling_timeout,
        )
        if args.kill_intents_leader:
            services = dict(pair.split("=", 1) for pair in args.kill_intents_leader.split(","))
            await kill_intents_leader(args.compose, admin, seen, services, args.scaling_timeout)
        else:
            await scale_deciders(args.compose, seen, [1, 3, 1], args.hold)
        await asyncio.to_thread(compose, args.compose, "stop", args.collector_service)
        await account(admin, seen, args.node, args.drain_timeout)
        if seen.undecodable:
            raise CheckFailed(f"{seen.undecodable} undecodable event(s) on the events stream")
    finally:
        await observer.close()
        await admin.close()
    log(
        f"ok: {seen.scale_ups} scale-up and {seen.scale_downs} scale-down events, "
        f"{seen.samples} samples observed ({elapsed(total)})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--url", required=True, help="published NATS URL(s), e.g. nats://127.0.0.1:4222")
    parser.add_argument(
        "--kill-intents-leader", metavar="SERVER=SERVICE,...",
        help="cluster: kill the intents stream's leader instead of scaling deciders",
    )  # fmt: skip
    parser.add_argument("--node", default="pve1", help="node of the demo scenario")
    parser.add_argument("--collector-service", default="sim-collector")
    parser.add_argument("--scaling-timeout", type=float, default=150.0)
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    parser.add_argument("--hold", type=float, default=12.0, help="seconds at each decider count")
    parser.add_argument("compose", nargs=argparse.REMAINDER, help="-- compose command prefix")
    args = parser.parse_args(argv)
    if args.compose[:1] == ["--"]:
        args.compose = args.compose[1:]
    if not args.compose:
        parser.error("give the compose command prefix after --")
    try:
        asyncio.run(run(args))
    except CheckFailed as exc:
        print(f"observe: FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
