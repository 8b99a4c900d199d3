#!/usr/bin/env bash
# The lab's Alertmanager webhook receiver: `opsctl alerts serve` on the controller,
# a supervised background process (the control machine of the lab has no systemd;
# in production it is a systemd service, `opsctl alerts unit`, see docs/alerting.md). lab/lab.sh up starts it (and restarts it when it died),
# lab/lab.sh down stops it.
#
#   lab/alerts-receiver.sh start|stop|status     (start restarts a running one)
#
# It listens on the lab network's gateway (the address Alertmanager on lab-mon1
# posts to, inventories/lab/group_vars/all/monitoring.yml), checks the lab
# vault's bearer token, records incidents in the controller's archive (the one
# `opsctl incident list` reads) and notifies through the lab policy's channels.
set -euo pipefail

# shellcheck source=lab/common.sh
. "$(dirname "$0")/common.sh"

LISTEN="${LAB_ALERTS_LISTEN:-10.89.77.1:9095}"
PIDFILE="$LAB_VAR/alerts-receiver.pid"
LOGFILE="$LAB_VAR/alerts-receiver.log"
TOKEN_FILE="$LAB_VAR/alerts.token"
OPSCTL="$REPO_ROOT/.venv/bin/opsctl"

running() {
    [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null \
        && grep -q "alerts" "/proc/$(cat "$PIDFILE")/cmdline" 2>/dev/null
}

write_token() {
    # The token Alertmanager sends (lab vault, committed key): copied for the receiver, mode 0600.
    local tmp
    tmp="$(mktemp "$LAB_VAR/alerts.token.XXXXXX")"
    "$REPO_ROOT/.venv/bin/ansible-vault" view --vault-password-file "$LAB_DIR/lab-only-vault-password" \
        "$REPO_ROOT/inventories/lab/group_vars/monitoring/vault.yml" \
        | sed -n 's/^vault_lab_alerts_webhook_token: *//p' | tr -d "\"'" >"$tmp"
    [ -s "$tmp" ] || { rm -f "$tmp"; die "no vault_lab_alerts_webhook_token in the lab vault"; }
    chmod 0600 "$tmp"
    mv -f "$tmp" "$TOKEN_FILE"
}

# The lab's port is fixed: a receiver another checkout started (its `make lab`, a CI
# clone) would take this checkout's alerts into its own archive. Stop it.
stop_foreign() {
    local port=${LISTEN##*:} pid
    for pid in $(ss -ltnpH "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
        if grep -q "alerts" "/proc/$pid/cmdline" 2>/dev/null; then
            log "alerts receiver: stopping the one of another checkout on port $port" \
                "(pid $pid, $(readlink "/proc/$pid/cwd" 2>/dev/null || echo '?'))"
            kill -TERM "$pid" 2>/dev/null || true
        else
            die "port $port is taken by another program (pid $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null))"
        fi
    done
    local deadline=$((SECONDS + 10))
    while ss -ltnH "sport = :$port" 2>/dev/null | grep -q .; do
        [ "$SECONDS" -lt "$deadline" ] || die "port $port still taken after stopping its receiver"
        sleep 0.2
    done
}

cmd_start() {
    [ -x "$OPSCTL" ] || die "opsctl is not installed ($OPSCTL): make venv"
    install -d -m 0700 "$LAB_VAR"
    # Restarted on every start: a receiver left from an earlier `up` runs the code of then.
    cmd_stop
    stop_foreign
    write_token
    local offset
    offset=$(($(stat -c %s "$LOGFILE" 2>/dev/null || echo 0) + 1))  # only this start's lines count
    # setsid: the receiver outlives `make lab`; its own process group for stop.
    (cd "$REPO_ROOT" && exec setsid "$OPSCTL" alerts serve --env lab --listen "$LISTEN" \
        --token-file "$TOKEN_FILE" </dev/null >>"$LOGFILE" 2>&1) &
    echo $! >"$PIDFILE"
    local deadline=$((SECONDS + 20))
    until tail -c "+$offset" "$LOGFILE" 2>/dev/null | grep -q "listening on" && running; do
        running || die "alerts receiver did not start: $(tail -c "+$offset" "$LOGFILE" 2>/dev/null | tail -n 5)"
        [ "$SECONDS" -lt "$deadline" ] || die "alerts receiver not listening after 20 s: $(tail -n 5 "$LOGFILE")"
        sleep 0.3
    done
    log "alerts receiver: started (pid $(cat "$PIDFILE")) on $LISTEN; log $LOGFILE"
}

cmd_stop() {
    if running; then
        kill -TERM "$(cat "$PIDFILE")" 2>/dev/null || true
        log "alerts receiver: stopped"
    fi
    rm -f "$PIDFILE"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) if running; then echo "running (pid $(cat "$PIDFILE")) on $LISTEN"; else echo "not running"; exit 3; fi ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
