#!/usr/bin/env bash
# The lab: systemd containers under rootful podman that stand in for the
# system's servers. Reached over SSH on 127.0.0.1 only.
#
#   lab/lab.sh up [SCALE]     start (or repair) the lab; SCALE fleet hosts (default 0)
#   lab/lab.sh down           remove containers, network and var/lab (the image stays)
#   lab/lab.sh reset [SCALE]  down, then up
#   lab/lab.sh status         one line per host
#   lab/lab.sh recreate HOST  HOST destroyed and made again from the image, empty
#                             (OS and packages only: no data, no role applied)
#
#   lab/lab.sh check         the self-check alone (names, tier ports)
#
# SCALE may also come from the environment (SCALE=3 lab/lab.sh up).
# LAB_TIMEOUT (seconds, default 120) bounds the wait for each host.
set -euo pipefail

# shellcheck source=lab/common.sh
. "$(dirname "$0")/common.sh"

LAB_TIMEOUT="${LAB_TIMEOUT:-120}"
FLEET_FILE="$REPO_ROOT/inventories/lab/fleet.yml"
FLEET_BASE_PORT=2300         # lab-fleetN listens on 127.0.0.1:(2300+N)
SPEC_VERSION=3               # bump when the container options below change

# The lab network has a fixed subnet and every host a fixed address, and each
# container carries an /etc/hosts entry (--add-host) for every fixed host: the
# hosts find each other by name whatever podman's network backend is (CNI
# without the dnsname plugin resolves nothing, netavark+aardvark does).
LAB_SUBNET_PREFIX="10.89.77"
LAB_SUBNET="$LAB_SUBNET_PREFIX.0/24"
LAB_GATEWAY="$LAB_SUBNET_PREFIX.1"
FLEET_BASE_IP=100            # lab-fleetN has address .(100+N)

# name  ssh-port  address  extra publish (comma list, or -)  services to enable (comma list or -)
# Only the services of the host's role are enabled: the image has every
# package but starts none of nginx, PostgreSQL or MariaDB by itself (nor the
# monitoring services: the role monitoring enables them, lab.sh does not).
FIXED_HOSTS=(
    "lab-web1 2221 11 127.0.0.1:8080:80 nginx"
    "lab-app1 2222 12 - -"
    "lab-app2 2223 13 - -"
    "lab-db1  2224 14 - postgresql"
    "lab-db2  2225 15 - mariadb"
    "lab-mon1 2226 16 127.0.0.1:9090:9090,127.0.0.1:9093:9093 prometheus,prometheus-alertmanager,prometheus-blackbox-exporter"
    # the backup host: pgBackRest repository, MariaDB backups (roles db_backup, db_restore); sshd only
    "lab-backup1 2227 17 - -"
)

# Small tmpfs "data disks" tests may fill (name  mount point  size): the monitoring role's
# disk-full forecast is tested on a real file system filling up (tests/test_monitoring_lab.py).
FILL_MOUNTS=(
    "lab-app1 /srv/lab-fill 32m"
    # a full backup host (tests/test_db_mariadb_archive_lab.py): the archive receiver on a full disk
    "lab-backup1 /srv/lab-fill 32m"
)

# Disk-backed file systems of their own (name  mount point  size): a sparse ext4 image on a
# loop device of this machine, bind-mounted into the host. The pgBackRest repository sits on
# one, as on a dedicated backup volume, so a test can fill it for real (a full repository:
# tests/test_db_pitr_lab.py) without filling this machine's disk; fallocate's ballast takes
# no blocks of the sparse image. Made empty with the host (create, recreate), removed by `down`.
# One lab per machine and network namespace (its ports and names are fixed; lab/lab2.sh runs a
# second one in a namespace of its own, with LAB_VOLUME_DIR set), so the images live outside any clone.
VOLUME_DIR="${LAB_VOLUME_DIR:-/var/lib/envcredit-lab/volumes}"
VOLUMES=(
    "lab-backup1 /var/lib/pgbackrest 8G"
)

# Services that must not run on a host unless its role names them above.
ROLE_SERVICES="nginx postgresql mariadb prometheus prometheus-alertmanager prometheus-blackbox-exporter"

# What each tier must reach once the tier behind it is installed (its service
# active and listening beyond loopback on the port):
# from-host  to-host  port  service on to-host
TIER_PATHS=(
    "lab-web1 lab-app1 8000 envcredit"
    "lab-web1 lab-app2 8000 envcredit"
    "lab-app1 lab-db1 5432 postgresql"
    "lab-app2 lab-db1 5432 postgresql"
    "lab-app1 lab-db2 3306 mariadb"
    "lab-app2 lab-db2 3306 mariadb"
    # the monitoring host scrapes the exporters (role monitoring)
    "lab-mon1 lab-web1 9100 prometheus-node-exporter"
    "lab-mon1 lab-db1 9187 prometheus-postgres-exporter"
    "lab-mon1 lab-db2 9104 prometheus-mysqld-exporter"
)

usage() { sed -n '2,16s/^# \{0,1\}//p' "$0" >&2; exit 2; }

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
    for dir in "${ANSIBLE_SSH_CONTROL_PATH_DIR:-$HOME/.ansible/cp}"; do   # ansible.cfg's control_path_dir
        [ -d "$dir" ] || continue
        ssh -o ControlPath="$dir/%C" -p "$port" -O exit ops@127.0.0.1 >/dev/null 2>&1 || true
    done
}

desired_hosts() {   # prints: name port ip publish services group
    local scale=$1 spec name port ip pub svc i
    for spec in "${FIXED_HOSTS[@]}"; do
        read -r name port ip pub svc <<<"$spec"
        printf '%s %s %s %s %s core\n' "$name" "$port" "$LAB_SUBNET_PREFIX.$ip" "$pub" "$svc"
    done
    for ((i = 1; i <= scale; i++)); do
        printf 'lab-fleet%d %d %s - - fleet\n' "$i" $((FLEET_BASE_PORT + i)) "$LAB_SUBNET_PREFIX.$((FLEET_BASE_IP + i))"
    done
}

fixed_names() { printf '%s\n' "${FIXED_HOSTS[@]}" | awk '{print $1}'; }

# --add-host NAME:IP for every fixed host (fleet hosts are reached by no one).
host_entries() {
    local spec name port ip rest
    for spec in "${FIXED_HOSTS[@]}"; do
        read -r name port ip rest <<<"$spec"
        printf -- '--add-host\n%s:%s\n' "$name" "$LAB_SUBNET_PREFIX.$ip"
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

# The network's options as a label: a network made by anything else (an older
# lab.sh, by hand, with another subnet) is removed, with the containers on it,
# and made again, so the lab never depends on what a machine happens to have.
network_spec() { printf 'subnet=%s gateway=%s v1' "$LAB_SUBNET" "$LAB_GATEWAY" | sha256sum | cut -c1-12; }

ensure_network() {
    local want have c
    want="$(network_spec)"
    if podman network exists "$LAB_NETWORK"; then
        have="$(podman network inspect -f "{{index .Labels \"$LAB_LABEL.netspec\"}}" "$LAB_NETWORK" 2>/dev/null || true)"
        [ "$have" = "$want" ] && return 0
        log "network $LAB_NETWORK: options differ (${have:-not made by lab.sh}), recreating it and its containers"
        for c in $(podman ps -a --filter "network=$LAB_NETWORK" --format '{{.Names}}'); do
            close_masters "$(podman inspect -f "{{index .Config.Labels \"$LAB_LABEL.port\"}}" "$c" 2>/dev/null || echo 0)"
            forget_facts "$c"
            podman rm -f -t 5 "$c" >/dev/null
        done
        podman network rm -f "$LAB_NETWORK" >/dev/null
    fi
    log "creating podman network $LAB_NETWORK ($LAB_SUBNET)"
    podman network create --subnet "$LAB_SUBNET" --gateway "$LAB_GATEWAY" \
        --label "$LAB_LABEL=1" --label "$LAB_LABEL.netspec=$want" "$LAB_NETWORK" >/dev/null \
        || die "could not create the podman network $LAB_NETWORK ($LAB_SUBNET); another network may use that subnet: podman network ls"
}

# Start one host, keeping it when it runs with the wanted configuration.
ensure_host() {
    local image=$1 name=$2 port=$3 ip=$4 pub=$5 group=$6
    local -a hosts_args
    mapfile -t hosts_args < <(host_entries)
    local -a args=(
        --name "$name" --hostname "$name"
        --systemd=always --restart=always
        --network "$LAB_NETWORK" --ip "$ip"
        "${hosts_args[@]}"
        -p "127.0.0.1:$port:22"
        -v "$LAB_SSH_KEY.pub:/home/ops/.ssh/authorized_keys:ro"
        # nftables (the baseline's host firewall) needs it; the network namespace is the container's own
        --cap-add NET_ADMIN
    )
    local p fm_name fm_dir fm_size
    for p in "${FILL_MOUNTS[@]}"; do
        read -r fm_name fm_dir fm_size <<<"$p"
        [ "$fm_name" = "$name" ] && args+=(--mount "type=tmpfs,destination=$fm_dir,tmpfs-size=$fm_size,tmpfs-mode=1777")
    done
    local -a vols=()
    for p in "${VOLUMES[@]}"; do
        read -r fm_name fm_dir fm_size <<<"$p"
        [ "$fm_name" = "$name" ] || continue
        vols+=("$fm_dir $fm_size")
        args+=(-v "$(volume_mount "$name" "$fm_dir"):$fm_dir")
    done
    if [ "$pub" != "-" ]; then
        for p in ${pub//,/ }; do args+=(-p "$p"); done
    fi
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
        else
            # kept: its volumes mounted again (they do not outlive a reboot of the machine)
            for p in "${vols[@]}"; do ensure_volume keep "$name" $p; done
            if [ "$state" = "running" ]; then
                log "$name: running, kept"
            else
                log "$name: $state, starting"
                close_masters "$port"
                podman start "$name" >/dev/null
            fi
            return 0
        fi
    fi
    for p in "${vols[@]}"; do ensure_volume fresh "$name" $p; done
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

# Stop and disable the role services this host has no role for (the image
# carries every package; a host runs only what its role names).
only_role_services() {
    local name=$1 svcs=$2 svc stop=""
    for svc in $ROLE_SERVICES; do
        [[ ",$svcs," == *",$svc,"* ]] || stop="$stop $svc"
    done
    [ -n "$stop" ] || return 0
    # one exec per host: prints the services it had to stop
    local stopped
    stopped="$(podman exec "$name" sh -c '
        for s in "$@"; do
            for u in "$s.socket" "$s.service"; do   # a socket unit would start the service on demand
                systemctl -q cat "$u" >/dev/null 2>&1 || continue
                if systemctl -q is-enabled "$u" 2>/dev/null || systemctl -q is-active "$u" 2>/dev/null; then
                    systemctl disable --now -q "$u" >/dev/null 2>&1 && printf "%s " "$u"
                fi
            done
        done' sh $stop)" || die "$name: could not stop the services it has no role for:$stop"
    [ -z "$stopped" ] || log "$name: stopped and disabled $stopped(not this host's role)"
}

# Each tier reaches the next by name: every fixed host resolves every other to
# its lab address, and once a tier is installed (its service active), the tier
# in front reaches its port. Fails naming the host and what is missing.
self_check() {
    local spec name port ip rest from to svc out problems=()
    local -A addr=()
    for spec in "${FIXED_HOSTS[@]}"; do
        read -r name port ip rest <<<"$spec"
        addr[$name]="$LAB_SUBNET_PREFIX.$ip"
    done
    local names
    names="$(fixed_names | tr '\n' ' ')"
    for from in $names; do
        # one exec per host: "name address" for each name, "name -" when it does not resolve
        out="$(podman exec "$from" sh -c 'for n in "$@"; do a=$(getent ahostsv4 "$n" | awk "NR==1{print \$1}"); echo "$n ${a:--}"; done' sh $names 2>&1)" \
            || { problems+=("$from: getent failed: $out"); continue; }
        while read -r to ip; do
            if [ "$ip" = "-" ]; then
                problems+=("$from cannot resolve $to (no /etc/hosts entry and no DNS on network $LAB_NETWORK)")
            elif [ "$ip" != "${addr[$to]}" ]; then
                problems+=("$from resolves $to to $ip, not its lab address ${addr[$to]}")
            fi
        done <<<"$out"
    done
    local checked=0 skipped=0
    for spec in "${TIER_PATHS[@]}"; do
        read -r from to port svc <<<"$spec"
        # installed = the service is active and listens beyond loopback on the port
        if ! podman exec "$to" sh -c 'systemctl -q is-active "$1" && ss -Hltn "( sport = :$2 )" | awk "{print \$4}" | grep -qvE "^(127\.|\[::1\]|\[::ffff:127\.)"' sh "$svc" "$port" 2>/dev/null; then
            skipped=$((skipped + 1))   # that tier is not installed (for the network) yet
            continue
        fi
        checked=$((checked + 1))
        podman exec "$from" timeout 5 bash -c "exec 3<>/dev/tcp/$to/$port" 2>/dev/null \
            || problems+=("$from cannot connect to $to:$port ($svc is active on $to)")
    done
    if [ "${#problems[@]}" -gt 0 ]; then
        printf '[lab] self-check FAILED:\n' >&2
        printf '[lab]   %s\n' "${problems[@]}" >&2
        die "the lab's hosts cannot reach each other; see lab/README.md (Names and addresses)"
    fi
    log "self-check: names resolve between all $(fixed_names | wc -l) hosts; $checked tier connections ok, $skipped not installed yet"
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

volume_mount() {   # NAME DIR: where the host's file system for DIR is mounted on this machine
    printf '%s/%s%s' "$VOLUME_DIR" "$1" "${2//\//_}"
}

# ensure_volume fresh|keep NAME DIR SIZE: the file system mounted (fresh: made empty first,
# for a host being created; keep: the existing one mounted again, e.g. after this machine
# restarted, and made only when missing).
ensure_volume() {
    local how=$1 name=$2 dir=$3 size=$4 mnt img
    mnt="$(volume_mount "$name" "$dir")"
    img="$mnt.img"
    install -d -m 0700 "$VOLUME_DIR"
    if [ "$how" = fresh ] || [ ! -s "$img" ]; then
        release_volume "$mnt"
        log "$name: a $size file system of its own for $dir ($img)"
        truncate -s "$size" "$img"
        mkfs.ext4 -q -F -m 0 "$img" >/dev/null
    fi
    if ! mountpoint -q "$mnt"; then
        install -d -m 0755 "$mnt"
        # discard: what the host deletes is given back to the sparse image
        mount -o loop,discard "$img" "$mnt"
        rmdir "$mnt/lost+found" 2>/dev/null || true
    fi
}

release_volume() {   # MNT: unmounted (its loop device goes with it) and its image removed
    local mnt=$1
    if mountpoint -q "$mnt"; then umount "$mnt"; fi
    rm -f "$mnt.img"
    [ ! -d "$mnt" ] || rmdir "$mnt"
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

    local name port ip pub svc group
    for h in "${hosts[@]}"; do
        read -r name port ip pub svc group <<<"$h"
        ensure_host "$image" "$name" "$port" "$ip" "$pub" "$group"
    done

    local keys_tmp
    keys_tmp="$(mktemp "$LAB_VAR/known_hosts.XXXXXX")"
    for h in "${hosts[@]}"; do
        read -r name port ip pub svc group <<<"$h"
        wait_systemd "$name"
        only_role_services "$name" "$svc"
        enable_services "$name" "$svc"
        scan_host "$name" "$port" >>"$keys_tmp"
    done
    chmod 0644 "$keys_tmp"
    mv -f "$keys_tmp" "$LAB_KNOWN_HOSTS"

    for h in "${hosts[@]}"; do
        read -r name port ip pub svc group <<<"$h"
        check_login "$name" "$port"
    done
    self_check
    # Alertmanager on lab-mon1 posts to the controller's receiver (a supervised process).
    "$LAB_DIR/alerts-receiver.sh" start
    write_fleet_inventory "$scale"
    prune_old_images "$image"
    log "lab up: ${#hosts[@]} hosts (SCALE=$scale) ready in $((SECONDS - start))s; image $image"
    log "known_hosts: $LAB_KNOWN_HOSTS; key: $LAB_SSH_KEY; inventory: inventories/lab"
}

cmd_down() {
    "$LAB_DIR/alerts-receiver.sh" stop || true
    local name port
    for name in $(lab_containers); do
        port="$(podman inspect -f "{{index .Config.Labels \"$LAB_LABEL.port\"}}" "$name" 2>/dev/null || echo 0)"
        close_masters "$port"
        log "$name: removing"
        podman rm -f -t 5 "$name" >/dev/null
        forget_facts "$name"
    done
    local p v_name v_dir v_size
    for p in "${VOLUMES[@]}"; do
        read -r v_name v_dir v_size <<<"$p"
        release_volume "$(volume_mount "$v_name" "$v_dir")"
    done
    if podman network exists "$LAB_NETWORK"; then
        log "removing podman network $LAB_NETWORK"
        podman network rm -f "$LAB_NETWORK" >/dev/null
    fi
    rm -rf "$LAB_VAR"
    rm -f "$FLEET_FILE"
    log "lab down (image kept: $(lab_image_tag))"
}

# A host destroyed and made again from nothing: its container (data, keys, what any
# role did) removed, then `up` at the current scale creates it afresh from the image.
cmd_recreate() {
    local name=${1:-} port scale
    [ -n "$name" ] || die "recreate: which host? (lab/lab.sh recreate lab-db1)"
    fixed_names | grep -qxF "$name" || die "recreate: $name is not a fixed lab host ($(fixed_names | tr '\n' ' '))"
    if podman container exists "$name"; then
        port="$(podman inspect -f "{{index .Config.Labels \"$LAB_LABEL.port\"}}" "$name" 2>/dev/null || echo 0)"
        close_masters "$port"
        log "$name: destroying (container, its data and SSH host keys)"
        podman rm -f -t 5 "$name" >/dev/null
    fi
    forget_facts "$name"
    scale="$(lab_containers | grep -c '^lab-fleet' || true)"
    cmd_up "$scale"
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
    if [ -z "${__LAB_LOCKED:-}" ] && [[ "$cmd" =~ ^(up|down|reset|recreate)$ ]]; then
        mkdir -p "$REPO_ROOT/var"
        __LAB_LOCKED=1 exec flock -o "$REPO_ROOT/var/.lab.lock" "$0" "$cmd" "$@"
    fi
    case "$cmd" in
        up) cmd_up "$@" ;;
        down) cmd_down ;;
        reset) cmd_down; cmd_up "$@" ;;
        status) cmd_status ;;
        recreate) cmd_recreate "$@" ;;
        check) self_check ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
