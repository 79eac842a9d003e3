#!/usr/bin/env bash
# Build the Debian package lxc-autoscale from the project's own wheels, as a plain
# dpkg-deb tree (docs/deployment.md says why not nfpm or dh-virtualenv):
#   /usr/share/lxc-autoscale/wheels   the project and its pinned dependencies (pip wheel)
#   /opt/lxc-autoscale                the venv, created from those wheels by postinst
#   /usr/bin/lxc-autoscale            -> /opt/lxc-autoscale/bin/lxc-autoscale
#   /lib/systemd/system/lxc-autoscale-*.service   hardened units, none started by postinst
#   /etc/lxc_autoscale/               lxc_autoscale.yaml, collector.env, actuator.env (conffiles)
#
# Environment: PYTHON (CPython 3.11, as Debian 12's; default .venv/bin/python, else python3),
#              OUT (default build/deb). Prints the path of the .deb on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c 'import sys; raise SystemExit(sys.version_info[:2] != (3, 11))'; then
  echo "build-deb: $PYTHON is not Python 3.11; Debian 12 runs 3.11, so the binary wheels must match." >&2
  exit 2
fi
OUT=${OUT:-build/deb}
SRC=packaging/deb
VERSION=$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
STAGE="$OUT/stage"
started=$(date +%s)

rm -rf "$STAGE"
mkdir -p "$STAGE/DEBIAN" "$STAGE/usr/share/lxc-autoscale/wheels" "$STAGE/usr/bin" \
  "$STAGE/lib/systemd/system" "$STAGE/etc/lxc_autoscale" "$STAGE/usr/share/doc/lxc-autoscale"
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$STAGE/usr/share/lxc-autoscale/wheels" .
ln -s /opt/lxc-autoscale/bin/lxc-autoscale "$STAGE/usr/bin/lxc-autoscale"

# A unit only for the services this version's CLI has (console and notifier may come later).
commands=$("$PYTHON" -m cli.main --help)
for unit in "$SRC"/systemd/lxc-autoscale-*.service; do
  service=$(basename "$unit" .service); service=${service#lxc-autoscale-}
  if grep -Eq "^    $service( |$)" <<<"$commands"; then
    install -m 0644 "$unit" "$STAGE/lib/systemd/system/"
  fi
done

install -m 0644 "$SRC/lxc_autoscale.yaml" "$STAGE/etc/lxc_autoscale/lxc_autoscale.yaml"
install -m 0640 "$SRC/collector.env" "$SRC/actuator.env" "$STAGE/etc/lxc_autoscale/"
install -m 0644 README.md docs/proxmox-api.md docs/deployment.md "$SRC/actuator-local-pct.conf" \
  "$STAGE/usr/share/doc/lxc-autoscale/"
(cd "$STAGE" && find etc -type f | sort | sed 's|^|/|') > "$STAGE/DEBIAN/conffiles"
install -m 0755 "$SRC/postinst" "$SRC/prerm" "$SRC/postrm" "$STAGE/DEBIAN/"
size=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@SIZE@/$size/" "$SRC/control.in" > "$STAGE/DEBIAN/control"

deb="$OUT/lxc-autoscale_${VERSION}_amd64.deb"
dpkg-deb --root-owner-group -Zgzip --build "$STAGE" "$deb" >/dev/null
echo "build-deb: $(find "$STAGE/usr/share/lxc-autoscale/wheels" -name '*.whl' | wc -l) wheels," \
  "$(find "$STAGE/lib/systemd/system" -name '*.service' | wc -l) units, $(du -h "$deb" | cut -f1)" \
  "($(( $(date +%s) - started )) s)" >&2
echo "$deb"
