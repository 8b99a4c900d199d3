#!/usr/bin/env bash
# The lab: systemd containers under rootful podman that stand in for the
# system's servers. Reached over SSH on 127.0.0.1 only.
#
#   lab/lab.sh up [SCALE]     start (or repair) the lab; SCALE fleet hosts (default 0)
#   lab/lab.sh down           remove containers, network and var/lab (the image stays)
#   lab/lab.sh reset [SCALE]  down, then up
#   lab/lab.sh status         one line per host
#
# SCALE may also come from the environment (SCALE=3 lab/lab.sh up).
# LAB_TIMEOUT (seconds, default 120) bounds the wait for each host.
set -euo pipefail

# shellcheck source=lab/common.sh
. "$(dirname "$0")/common.sh"

LAB_TIMEOUT="${LAB_TIMEOUT:-120}"
FLEET_FILE="$REPO_ROOT/inventories/lab/fleet.yml"
FLEET_BASE_PORT=2300         # lab-fleetN listens on 127.0.0.1:(2300+N)
SPEC_VERSION=2               # bump when the container options below change

# name  ssh-port  extra publish (or -)  services to enable (comma list or -)
FIXED_HOSTS=(
    "lab-web1 2221 127.0.0.1:8080:80 nginx"
    "lab-app1 2222 - -"
    "lab-app2 2223 - -"
    "lab-db1  2224 - postgresql"
    "lab-db2  2225 - mariadb"
)

usage() { sed -n '2,12s/^# \{0,1\}//p' "$0" >&2; exit 2; }

ssh_base() {   # ssh options shared by every check the lab makes
    printf '%s\n' -i "$LAB_SSH_KEY" -o BatchMode=yes -o ConnectTimeout=5 \
        -o ControlMaster=no -o ControlPath=none -o LogLevel=ERROR
}

# Cached facts of a host that is recreated or removed are stale.
forget_facts() {
    rm -f "$REPO_ROOT"/var/facts/*"$1"
}

# Close ansible's ControlPersist masters for a port (their peer is going away).
close_masters() {
    local port=$1 dir
    for dir in /tmp/envcredit-cp; do
        [ -d "$dir" ] || continue
        ssh -o ControlPath="$dir/%C" -p "$port" -O exit ops@127.0.0.1 >/dev/null 2>&1 || true
    done
}

desired_hosts() {   # prints: name port publish services group
    local scale=$1 spec name port pub svc i
    for spec in "${FIXED_HOSTS[@]}"; do
        read -r name port pub svc <<<"$spec"
        printf '%s %s %s %s core\n' "$name" "$port" "$pub" "$svc"
    done
    for ((i = 1; i <= scale; i++)); do
        printf 'lab-fleet%d %d - - fleet\n' "$i" $((FLEET_BASE_PORT + i))
    done
}

lab_containers() {   # every container this lab made (by label)
    podman ps -a --filter "label=$LAB_LABEL=1" --format '{{.Names}}'
}

ensure_key() {
    if [ ! -s "$LAB_SSH_KEY" ] || [ ! -s "$LAB_SSH_KEY.pub" ]; then
        log "generating the lab SSH key $LAB_SSH_KEY"
        install -d -m 0700 "$LAB_VAR" "$(dirname "$LAB_SSH_KEY")"
        rm -f "$LAB_SSH_KEY" "$LAB_SSH_KEY.pub"
        ssh-keygen -q -t ed25519 -N '' -C "envcredit-lab" -f "$LAB_SSH_KEY"
    fi
    chmod 0600 "$LAB_SSH_KEY"
    chmod 0644 "$LAB_SSH_KEY.pub"
}

ensure_network() {
    if ! podman network exists "$LAB_NETWORK"; then
        log "creating podman network $LAB_NETWORK"
        podman network create "$LAB_NETWORK" >/dev/null
    fi
}

# Start one host, keeping it when it runs with the wanted configuration.
ensure_host() {
    local image=$1 name=$2 port=$3 pub=$4 group=$5
    local -a args=(
        --name "$name" --hostname "$name"
        --systemd=always --restart=always
        --network "$LAB_NETWORK"
        -p "127.0.0.1:$port:22"
        -v "$LAB_SSH_KEY.pub:/home/ops/.ssh/authorized_keys:ro"
        # nftables (the baseline's host firewall) needs it; the network namespace is the container's own
        --cap-add NET_ADMIN
    )
    [ "$pub" = "-" ] || args+=(-p "$pub")
    local cfg
    cfg="$(printf '%s\n' "$SPEC_VERSION" "$image" "${args[@]}" "$(cat "$LAB_SSH_KEY.pub")" \
        | sha256sum | cut -c1-12)"

    if podman container exists "$name"; then
        local have state
        have="$(podman inspect -f "{{index .Config.Labels \"$LAB_LABEL.config\"}}" "$name" 2>/dev/null || true)"
        state="$(podman inspect -f '{{.State.Status}}' "$name")"
        if [ "$have" != "$cfg" ]; then
            log "$name: configuration or image changed, recreating"
            close_masters "$port"
            forget_facts "$name"
            podman rm -f -t 5 "$name" >/dev/null
        elif [ "$state" = "running" ]; then
            log "$name: running, kept"
            return 0
        else
            log "$name: $state, starting"
            close_masters "$port"
            podman start "$name" >/dev/null
            return 0
        fi
    fi
    log "$name: creating (ssh on 127.0.0.1:$port)"
    podman run -d "${args[@]}" \
        --label "$LAB_LABEL=1" --label "$LAB_LABEL.group=$group" \
        --label "$LAB_LABEL.config=$cfg" --label "$LAB_LABEL.port=$port" \
        "$image" /sbin/init >/dev/null
}

wait_systemd() {
    local name=$1 deadline=$((SECONDS + LAB_TIMEOUT)) state=""
    while :; do
        state="$(podman exec "$name" systemctl is-system-running 2>/dev/null || true)"
        case "$state" in
            running | degraded) break ;;
        esac
        [ "$SECONDS" -lt "$deadline" ] \
            || die "$name: systemd not up after ${LAB_TIMEOUT}s (state '${state:-none}'); see: podman logs $name"
        sleep 1
    done
    [ "$state" = "running" ] || log "$name: systemd is $state: $(podman exec "$name" systemctl --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')"
}

enable_services() {
    local name=$1 svcs=$2 svc
    [ "$svcs" = "-" ] && return 0
    for svc in ${svcs//,/ }; do
        if podman exec "$name" systemctl -q is-enabled "$svc" 2>/dev/null \
            && podman exec "$name" systemctl -q is-active "$svc" 2>/dev/null; then
            continue
        fi
        log "$name: enabling and starting $svc"
        podman exec "$name" systemctl enable --now -q "$svc" >/dev/null 2>&1 \
            || die "$name: could not start $svc; see: podman exec $name journalctl -u $svc"
    done
}

# Wait until sshd answers on the port and return its host keys.
scan_host() {
    local name=$1 port=$2 deadline=$((SECONDS + LAB_TIMEOUT)) keys=""
    while :; do
        keys="$(ssh-keyscan -T 3 -p "$port" -t ed25519,ecdsa,rsa 127.0.0.1 2>/dev/null || true)"
        [ -n "$keys" ] && break
        [ "$SECONDS" -lt "$deadline" ] \
            || die "$name: sshd not answering on 127.0.0.1:$port after ${LAB_TIMEOUT}s"
        sleep 1
    done
    printf '%s\n' "$keys"
}

check_login() {
    local name=$1 port=$2 deadline=$((SECONDS + 30))
    local -a opts
    mapfile -t opts < <(ssh_base)
    until ssh "${opts[@]}" -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$LAB_KNOWN_HOSTS" \
        -p "$port" ops@127.0.0.1 true 2>"$LAB_VAR/ssh-$name.err"; do
        [ "$SECONDS" -lt "$deadline" ] \
            || die "$name: ssh ops@127.0.0.1 -p $port fails: $(cat "$LAB_VAR/ssh-$name.err")"
        sleep 1
    done
    rm -f "$LAB_VAR/ssh-$name.err"
}

write_fleet_inventory() {
    local scale=$1 i tmp
    tmp="$(mktemp "$FLEET_FILE.XXXXXX")"
    {
        echo "---"
        echo "# Generated by 'lab/lab.sh up $scale' -- do not edit (git-ignored)."
        echo "# The fleet: lightweight hosts for scale tests; only sshd matters."
        echo "fleet:"
        if [ "$scale" -eq 0 ]; then
            echo "  hosts: {}"
        else
            echo "  hosts:"
            for ((i = 1; i <= scale; i++)); do
                echo "    lab-fleet$i:"
                echo "      ansible_host: 127.0.0.1"
                echo "      ansible_port: $((FLEET_BASE_PORT + i))"
            done
        fi
    } >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$FLEET_FILE"
}

# Lab images of older build inputs that no container uses any more.
prune_old_images() {
    local keep=$1 old
    for old in $(podman images --format '{{.Repository}}:{{.Tag}}' | grep -F "$LAB_IMAGE_REPO:" | grep -vxF "$keep" || true); do
        if podman rmi "$old" >/dev/null 2>&1; then log "removed unused old image $old"; fi
    done
}

cmd_up() {
    local scale=${1:-${SCALE:-0}}
    [[ "$scale" =~ ^[0-9]+$ ]] || die "SCALE must be a number, got '$scale'"
    [ "$scale" -le 99 ] || die "SCALE above 99 is not supported (ports 2301..2399)"
    local start=$SECONDS image
    image="$("$LAB_DIR/build-image.sh")"
    ensure_key
    ensure_network

    local -a hosts=()
    mapfile -t hosts < <(desired_hosts "$scale")

    # Hosts this lab made that are not wanted now (e.g. fleet beyond SCALE).
    local have wanted h
    wanted=" $(printf '%s\n' "${hosts[@]}" | awk '{print $1}' | tr '\n' ' ') "
    for have in $(lab_containers); do
        if [[ "$wanted" != *" $have "* ]]; then
            log "$have: not part of this lab (SCALE=$scale), removing"
            close_masters "$(podman inspect -f "{{index .Config.Labels \"$LAB_LABEL.port\"}}" "$have" 2>/dev/null || echo 0)"
            podman rm -f -t 5 "$have" >/dev/null
            forget_facts "$have"
        fi
    done

    local name port pub svc group
    for h in "${hosts[@]}"; do
        read -r name port pub svc group <<<"$h"
        ensure_host "$image" "$name" "$port" "$pub" "$group"
    done

    local keys_tmp
    keys_tmp="$(mktemp "$LAB_VAR/known_hosts.XXXXXX")"
    for h in "${hosts[@]}"; do
        read -r name port pub svc group <<<"$h"
        wait_systemd "$name"
        enable_services "$name" "$svc"
        scan_host "$name" "$port" >>"$keys_tmp"
    done
    chmod 0644 "$keys_tmp"
    mv -f "$keys_tmp" "$LAB_KNOWN_HOSTS"

    for h in "${hosts[@]}"; do
        read -r name port pub svc group <<<"$h"
        check_login "$name" "$port"
    done
    write_fleet_inventory "$scale"
    prune_old_images "$image"
    log "lab up: ${#hosts[@]} hosts (SCALE=$scale) ready in $((SECONDS - start))s; image $image"
    log "known_hosts: $LAB_KNOWN_HOSTS; key: $LAB_SSH_KEY; inventory: inventories/lab"
}

cmd_down() {
    local name port
    for name in $(lab_containers); do
        port="$(podman inspect -f "{{index .Config.Labels \"$LAB_LABEL.port\"}}" "$name" 2>/dev/null || echo 0)"
        close_masters "$port"
        log "$name: removing"
        podman rm -f -t 5 "$name" >/dev/null
        forget_facts "$name"
    done
    if podman network exists "$LAB_NETWORK"; then
        log "removing podman network $LAB_NETWORK"
        podman network rm -f "$LAB_NETWORK" >/dev/null
    fi
    rm -rf "$LAB_VAR"
    rm -f "$FLEET_FILE"
    log "lab down (image kept: $(lab_image_tag))"
}

cmd_status() {
    local image names name state sysd port ssh_ok img group
    image="$(lab_image_tag)"
    names="$( (printf '%s\n' "${FIXED_HOSTS[@]}" | awk '{print $1}'; lab_containers) | awk '!seen[$0]++')"
    local -a opts
    mapfile -t opts < <(ssh_base)
    printf '%-11s %-8s %-9s %-7s %-16s %-4s %s\n' HOST GROUP STATE SYSTEMD SSH LOGIN IMAGE
    for name in $names; do
        if ! podman container exists "$name"; then
            printf '%-11s %-8s %-9s %-7s %-16s %-4s %s\n' "$name" - absent - - - -
            continue
        fi
        state="$(podman inspect -f '{{.State.Status}}' "$name")"
        group="$(podman inspect -f "{{index .Config.Labels \"$LAB_LABEL.group\"}}" "$name")"
        port="$(podman inspect -f "{{index .Config.Labels \"$LAB_LABEL.port\"}}" "$name")"
        img="$(podman inspect -f '{{.ImageName}}' "$name")"
        [ "$img" = "$image" ] && img="current" || img="OLD $img"
        sysd=- ssh_ok=-
        if [ "$state" = running ]; then
            sysd="$(podman exec "$name" systemctl is-system-running 2>/dev/null || true)"
            if [ -s "$LAB_KNOWN_HOSTS" ] && ssh "${opts[@]}" -o StrictHostKeyChecking=yes \
                -o UserKnownHostsFile="$LAB_KNOWN_HOSTS" -p "$port" ops@127.0.0.1 true 2>/dev/null; then
                ssh_ok=ok
            else
                ssh_ok=FAIL
            fi
        fi
        printf '%-11s %-8s %-9s %-7s %-16s %-4s %s\n' "$name" "${group:--}" "$state" "${sysd:-?}" \
            "127.0.0.1:${port:-?}" "$ssh_ok" "$img"
    done
}

main() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (rootful podman)"
    local cmd=${1:-}
    [ -n "$cmd" ] || usage
    shift
    # One lifecycle change at a time. flock -o: the lock stays with flock
    # itself and is not inherited by podman's long-lived conmon processes.
    if [ -z "${__LAB_LOCKED:-}" ] && [[ "$cmd" =~ ^(up|down|reset)$ ]]; then
        mkdir -p "$REPO_ROOT/var"
        __LAB_LOCKED=1 exec flock -o "$REPO_ROOT/var/.lab.lock" "$0" "$cmd" "$@"
    fi
    case "$cmd" in
        up) cmd_up "$@" ;;
        down) cmd_down ;;
        reset) cmd_down; cmd_up "$@" ;;
        status) cmd_status ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
