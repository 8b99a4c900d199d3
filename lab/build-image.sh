#!/usr/bin/env bash
# Build the lab's Debian 12 (bookworm) systemd image with debootstrap and
# import it into rootful podman. No registry is needed.
#
#   lab/build-image.sh              build if missing, print the tag on stdout
#   lab/build-image.sh --print-tag  only print the tag (no build)
#   lab/build-image.sh --force      rebuild even if the tag exists
#
# The tag is localhost/envcredit-lab:bookworm-<10 hex of sha256 of this
# script + lab/image-packages.txt>, so it changes whenever the build inputs
# change. Everything the project's roles install is baked in here (see
# lab/image-packages.txt), so tests never need the internet.
# Messages go to stderr; stdout carries only the tag.
set -euo pipefail

# shellcheck source=lab/common.sh
. "$(dirname "$0")/common.sh"

MIRROR="http://deb.debian.org/debian"
SUITE="bookworm"

force=0
case "${1:-}" in
    --print-tag) lab_image_tag; exit 0 ;;
    --force) force=1 ;;
    "") ;;
    *) die "usage: $0 [--print-tag|--force]" ;;
esac

[ "$(id -u)" -eq 0 ] || die "must run as root (rootful podman, debootstrap)"
for tool in podman debootstrap chroot sha256sum tar flock; do
    command -v "$tool" >/dev/null || die "missing tool: $tool (apt-get install -y podman runc debootstrap)"
done

TAG="$(lab_image_tag)"

# One build at a time (lab.sh and molecule-all.sh may both ask for the image).
# flock -o: the lock is held by flock itself, never inherited by podman.
if [ -z "${__LAB_IMAGE_LOCKED:-}" ]; then
    mkdir -p "$REPO_ROOT/var"
    __LAB_IMAGE_LOCKED=1 exec flock -o "$REPO_ROOT/var/.lab-image.lock" "$0" "$@"
fi

if [ "$force" -eq 0 ] && podman image exists "$TAG"; then
    log "image $TAG exists, nothing to build"
    echo "$TAG"
    exit 0
fi

WORK="$(mktemp -d /var/tmp/envcredit-lab-build.XXXXXX)"
ROOTFS="$WORK/rootfs"

cleanup() {
    local rc=$?
    # Unmount in reverse order; lazy unmount as a last resort so rm never
    # walks into the host's /proc or /dev.
    for m in dev/shm dev/pts sys proc; do
        if mountpoint -q "$ROOTFS/$m" 2>/dev/null; then
            umount "$ROOTFS/$m" 2>/dev/null || umount -l "$ROOTFS/$m" || true
        fi
    done
    if ! grep -q " $WORK/" /proc/mounts; then
        rm -rf "$WORK"
    else
        log "WARNING: mounts left under $WORK, not removing it"
    fi
    [ "$rc" -eq 0 ] || log "build FAILED (rc=$rc)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_root() { chroot "$ROOTFS" /usr/bin/env -i \
    PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "$@"; }

start=$(date +%s)
log "building $TAG in $WORK"

# --- 1. minimal Debian ------------------------------------------------------
log "debootstrap --variant=minbase $SUITE ($MIRROR)"
debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }

# --- 2. chroot set-up: no service may start during the build -----------------
printf '#!/bin/sh\n# lab image build: never start services in the chroot\nexit 101\n' \
    >"$ROOTFS/usr/sbin/policy-rc.d"
chmod 0755 "$ROOTFS/usr/sbin/policy-rc.d"
mount -t proc proc "$ROOTFS/proc"
mount -t sysfs sysfs "$ROOTFS/sys"
mkdir -p "$ROOTFS/dev/pts" "$ROOTFS/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$ROOTFS/dev/pts"
mount -t tmpfs -o size=64m tmpfs "$ROOTFS/dev/shm"
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"

cat >"$ROOTFS/etc/apt/apt.conf.d/90envcredit-lab" <<'EOF'
// lab image: small and quiet
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF

# Time zone and locales are answered before the packages ask.
ln -sf /usr/share/zoneinfo/Asia/Shanghai "$ROOTFS/etc/localtime"
echo "Asia/Shanghai" >"$ROOTFS/etc/timezone"
in_root debconf-set-selections <<'EOF'
tzdata tzdata/Areas select Asia
tzdata tzdata/Zones/Asia select Shanghai
locales locales/locales_to_be_generated multiselect en_US.UTF-8 UTF-8, zh_CN.UTF-8 UTF-8
locales locales/default_environment_locale select en_US.UTF-8
EOF

# --- 3. packages ----------------------------------------------------------------
mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$LAB_PACKAGES_FILE")
log "installing ${#packages[@]} packages"
in_root apt-get update -qq
in_root apt-get install -y -qq -o Dpkg::Options::=--force-confdef \
    -o Dpkg::Options::=--force-confold "${packages[@]}" >"$WORK/apt.log" 2>&1 \
    || { tail -n 40 "$WORK/apt.log" >&2; die "apt-get install failed"; }

# --- 4. locales and time zone -------------------------------------------------
cat >"$ROOTFS/etc/locale.gen" <<'EOF'
en_US.UTF-8 UTF-8
zh_CN.UTF-8 UTF-8
EOF
in_root locale-gen >/dev/null
echo 'LANG=en_US.UTF-8' >"$ROOTFS/etc/default/locale"
ln -sf /usr/share/zoneinfo/Asia/Shanghai "$ROOTFS/etc/localtime"
echo "Asia/Shanghai" >"$ROOTFS/etc/timezone"

# --- 5. the ops user: passwordless sudo, key login only ----------------------
in_root useradd --create-home --uid 1000 --user-group --shell /bin/bash \
    --groups adm,systemd-journal ops
in_root usermod -p '*' ops          # no password, but not "locked" for sshd
install -d -m 0700 -o 1000 -g 1000 "$ROOTFS/home/ops/.ssh"
printf 'ops ALL=(ALL:ALL) NOPASSWD: ALL\n' >"$ROOTFS/etc/sudoers.d/ops"
chmod 0440 "$ROOTFS/etc/sudoers.d/ops"
in_root visudo -cf /etc/sudoers.d/ops >/dev/null || die "sudoers drop-in invalid"

# --- 6. sshd: keys only, no root, fresh host keys per container -------------
cat >"$ROOTFS/etc/ssh/sshd_config.d/10-envcredit-lab.conf" <<'EOF'
# envcredit lab hosts: key-based login for the ops user only.
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UseDNS no
EOF
rm -f "$ROOTFS"/etc/ssh/ssh_host_*
mkdir -p "$ROOTFS/etc/systemd/system/ssh.service.d"
cat >"$ROOTFS/etc/systemd/system/ssh.service.d/10-hostkeys.conf" <<'EOF'
# Host keys are not baked into the image: every container makes its own
# on first start, before the config test that needs them.
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
EOF
in_root /usr/sbin/sshd -t -f /etc/ssh/sshd_config -h /dev/null 2>/dev/null || true

# --- 7. systemd: services the lab enables per host, units that misbehave -----
# mariadb.socket too: with it, any client connecting to the socket starts MariaDB.
in_root systemctl disable nginx.service postgresql.service mariadb.service mariadb.socket \
    auditd.service nftables.service >/dev/null 2>&1
# The monitoring packages enable their services: the role monitoring enables on
# each host only its part (node exporter everywhere, the server on the
# monitoring host, a database exporter beside its database).
in_root systemctl disable prometheus.service prometheus-alertmanager.service \
    prometheus-blackbox-exporter.service prometheus-node-exporter.service \
    prometheus-postgres-exporter.service prometheus-mysqld-exporter.service >/dev/null 2>&1
in_root systemctl enable ssh.service cron.service >/dev/null 2>&1
# - gettys and udev have no terminals/devices in a container;
# - kernel/pseudo filesystems cannot be mounted/remounted by the container;
# - apt's daily timers would fetch from the internet and hold the dpkg lock
#   while roles run (patching is an explicit operation in this project).
in_root systemctl mask \
    getty.target console-getty.service getty@tty1.service \
    systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
    systemd-udev-trigger.service systemd-udev-settle.service \
    sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
    sys-fs-fuse-connections.mount dev-hugepages.mount dev-mqueue.mount \
    proc-sys-fs-binfmt_misc.automount systemd-remount-fs.service \
    systemd-journald-audit.socket systemd-firstboot.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
    >/dev/null 2>&1
in_root systemctl set-default multi-user.target >/dev/null 2>&1

# --- 8. clean up ----------------------------------------------------------------
in_root apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
    "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* "$ROOTFS"/tmp/* "$ROOTFS"/root/.bash_history
rm -f "$ROOTFS/usr/sbin/policy-rc.d"
: >"$ROOTFS/etc/machine-id"
rm -f "$ROOTFS/var/lib/dbus/machine-id"
: >"$ROOTFS/etc/resolv.conf"

for m in dev/shm dev/pts sys proc; do umount "$ROOTFS/$m"; done

# --- 9. import ------------------------------------------------------------------
log "importing into podman as $TAG"
tar --numeric-owner -C "$ROOTFS" -c . | podman import \
    --change 'CMD ["/sbin/init"]' \
    --change 'STOPSIGNAL SIGRTMIN+3' \
    --change "LABEL $LAB_LABEL.image=$TAG" \
    --message "envcredit lab image ($SUITE, debootstrap minbase)" \
    - "$TAG" >/dev/null 2>"$WORK/import.log" \
    || { cat "$WORK/import.log" >&2; die "podman import failed"; }

# Older lab images that no container uses are dropped (best effort).
for old in $(podman images --format '{{.Repository}}:{{.Tag}}' | grep -F "$LAB_IMAGE_REPO:" | grep -vxF "$TAG" || true); do
    if podman rmi "$old" >/dev/null 2>&1; then log "removed old image $old"; fi
done

log "built $TAG in $(( $(date +%s) - start ))s"
echo "$TAG"
