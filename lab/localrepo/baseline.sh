#!/bin/sh
# Run on a lab host as root by prepare.yml: unpack the local repository, name it
# in an apt source, read its lists only, and put the envcredit packages at the
# patching baseline (1.0, envcredit-held held). Idempotent; prints CHANGED
# when it changed anything.
#   baseline.sh REPO_TARBALL REPO_DIR
set -eu
tarball=$1 dir=$2
list=/etc/apt/sources.list.d/envcredit.list
changed=""
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

sum="$(sha256sum "$tarball" | cut -d' ' -f1)"
if [ "$(cat "$dir/.tarball-sha256" 2>/dev/null || true)" != "$sum" ]; then
    rm -rf "$dir" && mkdir -p "$dir" && tar -xf "$tarball" -C "$dir" --no-same-owner
    echo "$sum" > "$dir/.tarball-sha256"
    changed=1
fi

want="# The lab's local repository (lab/localrepo); no internet needed.
deb [trusted=yes] file:$dir bookworm-envcredit main
deb [trusted=yes] file:$dir bookworm-envcredit-security main"
if [ "$(cat "$list" 2>/dev/null || true)" != "$want" ]; then
    printf '%s\n' "$want" > "$list"
    chmod 0644 "$list"
    changed=1
fi

apt-get update -qq -o Dir::Etc::sourcelist="$list" -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0

have="$(dpkg-query -W -f '${Package}=${Version}:${db:Status-Abbrev}\n' envcredit-agent envcredit-kernel-stub envcredit-held 2>/dev/null | tr -d ' ' | sort | tr '\n' ' ' || true)"
if [ "$have" != "envcredit-agent=1.0:ii envcredit-held=1.0:hi envcredit-kernel-stub=1.0:ii " ]; then
    apt-get install -y -qq --allow-downgrades --allow-change-held-packages \
        envcredit-agent=1.0 envcredit-kernel-stub=1.0 envcredit-held=1.0 >/dev/null
    apt-mark hold envcredit-held >/dev/null
    changed=1
fi

# Drop the reboot flag only when envcredit-kernel-stub alone raised it.
pkgs=/var/run/reboot-required.pkgs
if [ -e /var/run/reboot-required ] && { [ ! -s "$pkgs" ] || ! grep -qvx envcredit-kernel-stub "$pkgs"; }; then
    rm -f /var/run/reboot-required "$pkgs"
    changed=1
fi
[ -z "$changed" ] || echo CHANGED
