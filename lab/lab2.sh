#!/usr/bin/env bash
# A second lab beside the first, for `make test`'s second lab lane (tests/README.md).
#
# The same seven hosts with the same names, addresses and ports as the first lab, in a
# network namespace of their own (their own 127.0.0.1, bridge, port forwarding and DNS-free
# /etc/hosts names) and a podman container store of their own (their own container names;
# the image is read from the first lab's store, never built here). Everything on the
# controller side runs from a copy of this checkout, var/lab2/repo (its own var/: lab key,
# known_hosts, records, backup store, alerts receiver; its own HOME for ansible's SSH
# masters), so nothing done to the second lab reaches the first one or this checkout's var/.
# Every test and script runs there unchanged: the lab's names and ports are the same.
#
#   lab/lab2.sh run CMD [ARG...]   the copy refreshed from this checkout (uncommitted changes
#                                  included), then CMD run in it, in the second lab's
#                                  namespace and store (e.g. `make lab`, pytest, lab/lab.sh status)
#   lab/lab2.sh down               the second lab removed: containers, network, store, namespace
#
# The first lab's image must exist (`make image`). Root only (rootful podman, `ip netns`).
set -euo pipefail

# shellcheck source=lab/common.sh
. "$(dirname "$0")/common.sh"

LAB2_NAME="envcredit-lab2"
LAB2_VAR="$REPO_ROOT/var/lab2"
LAB2_COPY="$LAB2_VAR/repo"
LAB2_STORE="/var/lib/$LAB2_NAME"    # container store, CNI network files, podman's volumes
LAB2_RUN="/run/$LAB2_NAME"          # the store's run state, podman's temporary files
LAB2_NETNS="$LAB2_NAME"

# The store: the second lab's containers, layers and state; images also from the first
# lab's (read-only), so the image is built and kept once.
write_storage_conf() {
    local graphroot
    graphroot="$(podman info --format '{{.Store.GraphRoot}}')"
    cat >"$LAB2_VAR/storage.conf" <<EOF
# Written by lab/lab2.sh: the second lab's container store.
[storage]
driver = "overlay"
graphroot = "$LAB2_STORE/storage"
runroot = "$LAB2_RUN/storage"

[storage.options]
additionalimagestores = ["$graphroot"]
EOF
}

# The copy's lab/containers.conf: this checkout's settings (runtime, ulimits) plus the
# second lab's own podman state and network definitions.
write_containers_conf() {   # DEST
    awk -v run="$LAB2_RUN" -v store="$LAB2_STORE" '
        { print }
        /^\[engine\]/ { print "tmp_dir = \"" run "/libpod\"" }
        END { print ""; print "[network]"; print "network_config_dir = \"" store "/networks\"" }
    ' "$LAB_DIR/containers.conf" >"$1"
}

refresh_copy() {
    mkdir -p "$LAB2_COPY" "$LAB2_VAR/home" "$LAB2_STORE/networks" "$LAB2_RUN"
    # var/ is the copy's own (kept: the second lab's key and state); the venv is this one's.
    rsync -a --delete --exclude=/var/ --exclude=/.venv --exclude=__pycache__/ --exclude=.pytest_cache/ \
        --exclude=.mypy_cache/ --exclude=.ruff_cache/ --exclude=.hypothesis/ "$REPO_ROOT/" "$LAB2_COPY/"
    ln -sfn "$REPO_ROOT/.venv" "$LAB2_COPY/.venv"
    write_storage_conf
    write_containers_conf "$LAB2_COPY/lab/containers.conf"
}

ensure_netns() {
    if [ ! -e "/run/netns/$LAB2_NETNS" ]; then
        log "creating network namespace $LAB2_NETNS (the second lab's 127.0.0.1)"
        ip netns add "$LAB2_NETNS"
    fi
    ip -n "$LAB2_NETNS" link set lo up
}

# CMD in the copy, in the namespace (nsenter: only the network changes; `ip netns exec`
# would also remount /sys, taking podman's cgroup file system away), with the second
# lab's store. Variables a make in this checkout exported with this checkout's paths go:
# the copy's Makefile sets its own.
in_lab2() {
    cd "$LAB2_COPY"
    exec nsenter --net="/run/netns/$LAB2_NETNS" \
        env -u OPSCTL_ALLOWED_SIGNERS -u ANSIBLE_CONFIG -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
        CONTAINERS_CONF="$LAB2_COPY/lab/containers.conf" \
        CONTAINERS_STORAGE_CONF="$LAB2_VAR/storage.conf" \
        LAB_NETWORK="$LAB2_NAME" \
        LAB_VOLUME_DIR="$LAB2_STORE/volumes" \
        HOME="$LAB2_VAR/home" \
        PYTHONPATH="$LAB2_COPY${PYTHONPATH:+:$PYTHONPATH}" \
        OPSCTL_LAB2=1 \
        "$@"
}

cmd_run() {
    [ "$#" -gt 0 ] || die "run: which command? (lab/lab2.sh run make lab)"
    [ -z "${OPSCTL_LAB2:-}" ] || die "run: already in the second lab"
    podman image exists "$(lab_image_tag)" || die "the lab image $(lab_image_tag) is not built: make image"
    mkdir -p "$LAB2_VAR"
    # One refresh at a time (two lanes may start it together).
    exec 9>"$LAB2_VAR/.refresh.lock"
    flock 9
    refresh_copy
    ensure_netns
    flock -u 9
    in_lab2 "$@"
}

# Podman on the second lab's store, in its namespace when there is one: also from a checkout
# that has no copy (the names are the machine's: another checkout may have started it).
lab2_podman() {
    local -a ns=()
    [ -e "/run/netns/$LAB2_NETNS" ] && ns=(nsenter --net="/run/netns/$LAB2_NETNS")
    "${ns[@]}" env CONTAINERS_CONF="$LAB2_VAR/containers.conf" CONTAINERS_STORAGE_CONF="$LAB2_VAR/storage.conf" podman "$@"
}

cmd_down() {
    if [ -e "/run/netns/$LAB2_NETNS" ] && [ -x "$LAB2_COPY/lab/lab.sh" ]; then
        (in_lab2 lab/lab.sh down) || log "the second lab's lab.sh down failed; removing its containers directly"
    fi
    if [ -d "$LAB2_STORE/storage" ]; then
        mkdir -p "$LAB2_VAR"
        write_storage_conf
        write_containers_conf "$LAB2_VAR/containers.conf"
        local c
        for c in $(lab2_podman ps -aq 2>/dev/null); do
            log "second lab: removing container $c"
            lab2_podman rm -f -t 5 "$c" >/dev/null || die "could not remove the second lab's container $c"
        done
        lab2_podman network rm -f "$LAB2_NAME" >/dev/null 2>&1 || true
    fi
    # CNI's address leases are the machine's, by network name: none of the second lab's may
    # outlive its containers (its fixed addresses would be "already allocated" next time)
    rm -rf "/var/lib/cni/networks/$LAB2_NAME"
    local mnt
    for mnt in $(awk -v v="$LAB2_STORE/volumes/" 'index($2, v) == 1 { print $2 }' /proc/mounts); do
        umount "$mnt"
    done
    if [ -e "/run/netns/$LAB2_NETNS" ]; then
        # what still runs there (the copy's alerts receiver, ssh masters) goes with it
        local pids
        pids="$(ip netns pids "$LAB2_NETNS" 2>/dev/null | tr '\n' ' ')"
        [ -z "${pids// /}" ] || kill $pids 2>/dev/null || true
        log "removing network namespace $LAB2_NETNS"
        ip netns del "$LAB2_NETNS"
    fi
    # Nothing of the store is in use once its containers are gone; a container file system
    # still mounted there keeps it: never rm -rf into one.
    if mountpoint -q "$LAB2_STORE/storage/overlay" 2>/dev/null; then umount "$LAB2_STORE/storage/overlay" || true; fi
    if awk -v s="$LAB2_STORE/" -v r="$LAB2_RUN/" 'index($2, s) == 1 || index($2, r) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
        die "file systems under $LAB2_STORE or $LAB2_RUN are still mounted (a container of the second lab left running?); nothing removed"
    fi
    rm -rf "$LAB2_STORE" "$LAB2_RUN" "$LAB2_VAR"
    log "second lab down"
}

main() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (rootful podman, network namespaces)"
    local cmd=${1:-}
    shift || true
    case "$cmd" in
        run) cmd_run "$@" ;;
        down) cmd_down ;;
        *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
}

main "$@"
