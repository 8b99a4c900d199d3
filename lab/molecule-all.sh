#!/usr/bin/env bash
# Run `molecule test` for every scenario, one after the other:
#   roles/*/molecule/*/molecule.yml   (each role's scenarios)
#   molecule/*/molecule.yml           (scenarios that span roles and hosts)
#
#   lab/molecule-all.sh                 everything
#   lab/molecule-all.sh inspect db_backup   only these roles (or molecule/ scenario names)
#
# Builds the lab image when missing and exports MOLECULE_LAB_IMAGE and
# CONTAINERS_CONF for the shared base config (.config/molecule/config.yml).
# Exit code: 0 when every scenario passed, 1 otherwise; a summary at the end.
# With TEST_TIMES_DIR set (make test), the time of each scenario goes to
# $TEST_TIMES_DIR/molecule.json for the run's time table (ci/test_times.py).
set -euo pipefail

# shellcheck source=lab/common.sh
. "$(dirname "$0")/common.sh"

export PATH="$REPO_ROOT/.venv/bin:$PATH"
command -v molecule >/dev/null || die "molecule not found (expected in $REPO_ROOT/.venv/bin)"

MOLECULE_LAB_IMAGE="$("$LAB_DIR/build-image.sh")"
export MOLECULE_LAB_IMAGE

# The instances are reached over SSH through `podman exec ... sshd -i`
# (.config/molecule/config.yml): a throw-away key, made once.
MOLECULE_SSH_KEY="$REPO_ROOT/var/molecule/ssh/id_ed25519"
if [ ! -s "$MOLECULE_SSH_KEY" ] || [ ! -s "$MOLECULE_SSH_KEY.pub" ]; then
    install -d -m 0700 "$(dirname "$MOLECULE_SSH_KEY")"
    rm -f "$MOLECULE_SSH_KEY" "$MOLECULE_SSH_KEY.pub"
    ssh-keygen -q -t ed25519 -N '' -C "envcredit-molecule" -f "$MOLECULE_SSH_KEY"
fi
MOLECULE_SSH_PROXY="$REPO_ROOT/molecule/resources/podman-sshd"
export MOLECULE_SSH_KEY MOLECULE_SSH_PROXY
export MOLECULE_NO_LOG="${MOLECULE_NO_LOG:-false}"
export ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-0}"

wanted=("$@")
want() {   # no filter, or the name is in the filter
    [ "${#wanted[@]}" -eq 0 ] && return 0
    local w
    for w in "${wanted[@]}"; do [ "$w" = "$1" ] && return 0; done
    return 1
}

# (project dir, scenario, label) triples
runs=()
shopt -s nullglob
for f in "$REPO_ROOT"/roles/*/molecule/*/molecule.yml; do
    scen_dir="$(dirname "$f")"
    role_dir="$(dirname "$(dirname "$scen_dir")")"
    role="$(basename "$role_dir")"
    want "$role" || continue
    runs+=("$role_dir|$(basename "$scen_dir")|role $role")
done
for f in "$REPO_ROOT"/molecule/*/molecule.yml; do
    scen="$(basename "$(dirname "$f")")"
    want "$scen" || continue
    runs+=("$REPO_ROOT|$scen|scenario $scen")
done
[ "${#runs[@]}" -gt 0 ] || die "no molecule scenario matches: ${wanted[*]:-(all)}"

log "image $MOLECULE_LAB_IMAGE; ${#runs[@]} scenario(s)"
results=()
times=()
failed=0
total_start=$SECONDS
for r in "${runs[@]}"; do
    IFS='|' read -r dir scen label <<<"$r"
    name="$(basename "$dir")"
    [ "$dir" = "$REPO_ROOT" ] && name="$scen"
    # One instance name per scenario, so a leftover never meets another role.
    export MOLECULE_INSTANCE="molecule-${name//_/-}-$scen"
    log "=== $label: molecule test -s $scen"
    start=$SECONDS
    if (cd "$dir" && molecule test -s "$scen"); then
        results+=("PASS  $label/$scen  $((SECONDS - start))s")
        times+=("{\"name\": \"$label/$scen\", \"seconds\": $((SECONDS - start)), \"result\": \"passed\"}")
    else
        results+=("FAIL  $label/$scen  $((SECONDS - start))s")
        times+=("{\"name\": \"$label/$scen\", \"seconds\": $((SECONDS - start)), \"result\": \"FAILED\", \"failed\": 1}")
        failed=$((failed + 1))
        # never leave an instance behind
        (cd "$dir" && molecule destroy -s "$scen" >/dev/null 2>&1) || true
    fi
done

if [ -n "${TEST_TIMES_DIR:-}" ]; then
    mkdir -p "$TEST_TIMES_DIR"
    { echo "["; (IFS=,; printf '%s\n' "${times[*]}"); echo "]"; } >"$TEST_TIMES_DIR/molecule.json"
fi

echo
echo "molecule summary ($((SECONDS - total_start))s):"
printf '  %s\n' "${results[@]}"
if [ "$failed" -gt 0 ]; then
    echo "$failed of ${#runs[@]} scenario(s) FAILED"
    exit 1
fi
echo "all ${#runs[@]} scenario(s) passed"
