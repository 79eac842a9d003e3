#!/usr/bin/env bash
# The package tier: build the .deb, install it into a clean Debian 12 root (a chroot
# made by debootstrap from Debian's packages; the root file system is cached as a tar
# in $LXC_AUTOSCALE_DEB_CACHE) and check what an operator relies on:
#   - the units pass `systemd-analyze verify`;
#   - /usr/bin/lxc-autoscale --help runs from the venv postinst built;
#   - postinst started nothing and created the dedicated user in group www-data, who can
#     run the venv and finds the shipped configuration valid;
#   - a second install keeps an edited /etc/lxc_autoscale/lxc_autoscale.yaml (and an
#     enabled unit stays enabled);
#   - purge removes the venv, the command, the configuration and the enable links.
# Needs root (chroot). Without root it says so and exits 0, unless CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${LXC_AUTOSCALE_DEB_CACHE:-/var/cache/lxc-autoscale-deb}
ROOTFS_TAR="$CACHE/bookworm-minbase-systemd.tar"
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
started=$(date +%s)
say() { echo "deb-ci: $* ($(( $(date +%s) - started )) s)"; }
fail() { echo "deb-ci: FAILED: $*" >&2; exit 1; }

if [[ $(id -u) != 0 ]]; then
  [[ "${CI:-}" == true ]] && fail "needs root for chroot"
  echo "deb-ci: skipped, needs root for chroot"; exit 0
fi
for tool in debootstrap dpkg-deb systemd-analyze; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (.ci/run installs it)"
done

WORK=$(mktemp -d /tmp/lxc-autoscale-deb.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ROOT="$WORK/root"

deb=$(OUT="$WORK/out" bash scripts/build-deb.sh 2>"$WORK/build.log" | tail -1) \
  || { cat "$WORK/build.log" >&2; fail "build-deb"; }
say "built $(basename "$deb")"

mkdir -p "$CACHE"
if [[ ! -s "$ROOTFS_TAR" ]]; then
  say "debootstrap bookworm (not cached yet)"
  debootstrap --variant=minbase --include=python3,python3-venv,adduser,systemd bookworm "$WORK/rootfs" "$MIRROR" \
    >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log" >&2; fail "debootstrap"; }
  rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
  tar -C "$WORK/rootfs" --numeric-owner -cf "$ROOTFS_TAR.tmp" .
  mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  rm -rf "$WORK/rootfs"
fi
mkdir "$ROOT"
tar -C "$ROOT" --numeric-owner -xf "$ROOTFS_TAR"
cp "$deb" "$ROOT/tmp/"
pkg="/tmp/$(basename "$deb")"
say "clean Debian 12 root ready"

# A clean environment: nothing of the host's pip or Python settings leaks into the root.
in_root() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 chroot "$ROOT" "$@"; }

in_root dpkg -i "$pkg" >"$WORK/install1.log" 2>&1 || { cat "$WORK/install1.log" >&2; fail "first install"; }
grep -q "nothing started" "$WORK/install1.log" || fail "postinst did not say that it started nothing"
say "installed"

help=$(in_root /usr/bin/lxc-autoscale --help) || fail "lxc-autoscale --help from /usr/bin"
grep -q "collector" <<<"$help" || fail "lxc-autoscale --help does not list the collector"
in_root id -nG lxc-autoscale | grep -qw www-data || fail "user lxc-autoscale is not in group www-data"
# The shipped configuration is valid, and the service user can run the venv and read it.
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 chroot --userspec=lxc-autoscale:lxc-autoscale "$ROOT" \
  /usr/bin/lxc-autoscale config check --strict /etc/lxc_autoscale/lxc_autoscale.yaml >"$WORK/check.log" 2>&1 \
  || { cat "$WORK/check.log" >&2; fail "lxc-autoscale config check as user lxc-autoscale"; }
[[ $(in_root stat -c '%a %U:%G' /etc/lxc_autoscale/actuator.env) == "640 root:lxc-autoscale" ]] \
  || fail "actuator.env is not root:lxc-autoscale 0640"
units=("$ROOT"/lib/systemd/system/lxc-autoscale-*.service)
systemd-analyze verify --root="$ROOT" "${units[@]/#$ROOT/}" >"$WORK/verify.log" 2>&1 \
  || { cat "$WORK/verify.log" >&2; fail "systemd-analyze verify"; }
for unit in "${units[@]}"; do
  for key in ProtectSystem=strict NoNewPrivileges=yes; do
    grep -qx "$key" "$unit" || fail "$(basename "$unit") lacks $key"
  done
done
grep -qx "ReadOnlyPaths=-/etc/pve" "$ROOT/lib/systemd/system/lxc-autoscale-collector.service" \
  || fail "the collector unit does not make /etc/pve read-only"
say "verified ${#units[@]} units, --help, user and file modes"

# The operator enables a unit (systemctl works offline on a root): purge must not leave the link.
in_root systemctl enable lxc-autoscale-collector.service >/dev/null 2>&1 || fail "systemctl enable the collector"
wants="$ROOT/etc/systemd/system/multi-user.target.wants/lxc-autoscale-collector.service"
[[ -L "$wants" ]] || fail "enabling the collector made no multi-user.target.wants link"
echo "# edited by the operator" >>"$ROOT/etc/lxc_autoscale/lxc_autoscale.yaml"
in_root dpkg -i "$pkg" >"$WORK/install2.log" 2>&1 || { cat "$WORK/install2.log" >&2; fail "second install"; }
grep -q "edited by the operator" "$ROOT/etc/lxc_autoscale/lxc_autoscale.yaml" \
  || fail "the second install replaced the edited configuration"
in_root /usr/bin/lxc-autoscale --help >/dev/null || fail "lxc-autoscale --help after the second install"
[[ -L "$wants" ]] || fail "the second install disabled the collector"
say "second install kept the edited configuration"

in_root dpkg --purge lxc-autoscale >"$WORK/purge.log" 2>&1 || { cat "$WORK/purge.log" >&2; fail "purge"; }
for gone in /opt/lxc-autoscale /usr/bin/lxc-autoscale /etc/lxc_autoscale /lib/systemd/system/lxc-autoscale-collector.service; do
  [[ ! -e "$ROOT$gone" && ! -L "$ROOT$gone" ]] || fail "$gone is still there after purge"
done
[[ ! -L "$wants" ]] || fail "purge left the enabled collector's link behind"
say "purge removed the venv, the command and the configuration; all checks passed"
