#!/usr/bin/env bash
# Build the lxc-autoscale image with no network access inside the build:
#   1. on the host, `pip wheel` the project and its pinned dependencies into
#      build/docker-wheels/ (PyPI or the local pip cache is used here, not in Docker);
#   2. `docker build`, which installs with `pip install --no-index --find-links`.
#
# Environment:
#   IMAGE       tag to build            (default lxc-autoscale-nats:latest)
#   BASE_IMAGE  base image with python3.11 and its venv module
#               (default python:3.11-slim-bookworm)
#   PYTHON      interpreter that builds the wheels; must be CPython 3.11 like the
#               image's (default .venv/bin/python, else python3)
#   DOCKER      docker client          (default docker)
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-lxc-autoscale-nats:latest}
BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim-bookworm}
DOCKER=${DOCKER:-docker}
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
WHEELS=build/docker-wheels

# Binary wheels (pydantic-core, msgpack, cryptography, ...) must match the image's Python.
if ! "$PYTHON" -c 'import sys; raise SystemExit(sys.version_info[:2] != (3, 11))'; then
  echo "build-image: $PYTHON is not Python 3.11; the image runs 3.11, so its wheels must too." >&2
  echo "             Set PYTHON to a 3.11 interpreter." >&2
  exit 2
fi

started=$(date +%s)
rm -rf "$WHEELS"
mkdir -p "$WHEELS"
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$WHEELS" .
echo "build-image: $(find "$WHEELS" -name '*.whl' | wc -l) wheels in $WHEELS ($(( $(date +%s) - started )) s)"

# The classic builder needs no buildx plugin and pulls nothing when BASE_IMAGE is local.
DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0} "$DOCKER" build --quiet \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" --tag "$IMAGE" . >/dev/null
echo "build-image: built $IMAGE from $BASE_IMAGE ($(( $(date +%s) - started )) s total)"
