# One image for every service: `lxc-autoscale collector|decider|actuator|setup|...`.
#
# The build never touches the network: it installs the project and its pinned
# dependencies from wheels built on the host beforehand into build/docker-wheels/
# (scripts/build-image.sh does both steps). The base image is a build argument so
# machines without a registry can pass a locally imported one.
#
#   scripts/build-image.sh                       # wheels + image, tag lxc-autoscale-nats:latest
#   docker build --build-arg BASE_IMAGE=python:3.11-slim-bookworm -t lxc-autoscale-nats .
#
# No secrets are baked in: NATS credentials come from the environment at run time
# (NATS_URL, NATS_USER, NATS_PASSWORD, NATS_CREDS_FILE, ...), the configuration
# from a mounted YAML file (LXC_AUTOSCALE_CONFIG).

ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS install
COPY build/docker-wheels/ /wheels/
RUN set -eu; \
    if ! ls /wheels/lxc_autoscale_nats-*.whl >/dev/null 2>&1; then \
        echo "build/docker-wheels/ holds no lxc_autoscale_nats wheel: run scripts/build-image.sh" >&2; \
        exit 1; \
    fi; \
    python3 -m venv /opt/lxc-autoscale; \
    /opt/lxc-autoscale/bin/python -m pip install --no-index --find-links /wheels \
        --no-cache-dir --disable-pip-version-check --no-compile lxc-autoscale-nats; \
    /opt/lxc-autoscale/bin/python -m pip check; \
    /opt/lxc-autoscale/bin/python -m pip uninstall --yes --quiet pip setuptools 2>/dev/null || true; \
    /opt/lxc-autoscale/bin/python -m compileall -q /opt/lxc-autoscale/lib >/dev/null

FROM ${BASE_IMAGE}
ARG APP_UID=10001
LABEL org.opencontainers.image.title="lxc-autoscale-nats" \
      org.opencontainers.image.description="LXC AutoScale over NATS: collector, decider, actuator and tools" \
      org.opencontainers.image.licenses="MIT"

# An unprivileged user owns nothing but its state directory. The simulated node's
# root lives there too, so a named volume mounted on it inherits this ownership.
RUN set -eu; \
    groupadd --system --gid "${APP_UID}" lxcautoscale; \
    useradd --system --uid "${APP_UID}" --gid "${APP_UID}" --no-create-home \
        --home-dir /var/lib/lxc-autoscale --shell /usr/sbin/nologin lxcautoscale; \
    mkdir -p /var/lib/lxc-autoscale/simnode /etc/lxc_autoscale; \
    chown -R "${APP_UID}:${APP_UID}" /var/lib/lxc-autoscale

COPY --from=install /opt/lxc-autoscale /opt/lxc-autoscale
COPY deploy/healthcheck.py /usr/local/lib/lxc-autoscale/healthcheck.py

ENV PATH=/opt/lxc-autoscale/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LXC_AUTOSCALE_CONFIG=/etc/lxc_autoscale/lxc_autoscale.yaml \
    NATS_URL=nats://nats:4222

USER ${APP_UID}:${APP_UID}
WORKDIR /var/lib/lxc-autoscale

# Healthy = the service's NATS settings (env + config file) reach the broker and
# authenticate. Services without a broker override it in compose.
HEALTHCHECK --interval=15s --timeout=6s --start-period=20s --retries=3 \
    CMD ["python", "/usr/local/lib/lxc-autoscale/healthcheck.py"]

ENTRYPOINT ["lxc-autoscale"]
CMD ["--help"]
