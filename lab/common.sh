# shellcheck shell=bash
# Shared settings for the lab scripts. Source it; do not execute it.
#   . "$(dirname "$0")/common.sh"

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$LAB_DIR/.." && pwd)"
export LAB_DIR REPO_ROOT

# Every podman call in this project goes through this file.
export CONTAINERS_CONF="$LAB_DIR/containers.conf"

LAB_IMAGE_REPO="localhost/envcredit-lab"
LAB_PACKAGES_FILE="$LAB_DIR/image-packages.txt"
LAB_NETWORK="${LAB_NETWORK:-envcredit-lab}"   # lab/lab2.sh: the second lab's
LAB_VAR="$REPO_ROOT/var/lab"
LAB_SSH_KEY="$LAB_VAR/ssh/id_ed25519"
LAB_KNOWN_HOSTS="$LAB_VAR/known_hosts"
LAB_LABEL="io.envcredit.lab"

log()  { printf '[lab] %s\n' "$*" >&2; }
die()  { printf '[lab] ERROR: %s\n' "$*" >&2; exit 1; }

# The image tag changes whenever the build inputs change:
# first 10 hex digits of sha256(build-image.sh + package list).
lab_image_tag() {
    local sum
    sum="$(cat "$LAB_DIR/build-image.sh" "$LAB_PACKAGES_FILE" | sha256sum | cut -c1-10)"
    printf '%s:bookworm-%s\n' "$LAB_IMAGE_REPO" "$sum"
}
