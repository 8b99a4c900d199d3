#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Read-only scan of a host's pending package updates (apt or dnf)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: os_patch_scan
short_description: List pending package updates, held packages and whether a reboot is pending
description:
  - Reads the package manager's current view (it does not refresh the lists; the role does that first).
  - For apt it uses python3-apt; for dnf/yum it runs C(dnf check-update) and C(dnf updateinfo).
  - Changes nothing; supports check mode.
options:
  backend:
    description: Package manager to ask.
    type: str
    choices: [apt, dnf]
    required: true
  exclude:
    description: Package names or shell patterns that are never to be upgraded (reported as excluded).
    type: list
    elements: str
    default: []
  report_packages:
    description: Names whose installed versions are returned in C(installed) (before/after comparisons).
    type: list
    elements: str
    default: []
  reboot_flag_file:
    description: File whose presence means a reboot is pending (Debian family).
    type: str
    default: ""
  reboot_check_command:
    description: Command that exits 1 when a reboot is needed (RedHat family, needs-restarting -r).
    type: list
    elements: str
    default: []
author: envcredit-ops contractor team
"""

RETURN = r"""
updates:
  description: Pending updates (held and excluded ones included, flagged).
  type: list
  returned: always
held:
  description: Held packages (apt-mark hold / dnf versionlock) with their installed and candidate versions.
  type: list
  returned: always
reboot_required:
  description: true, false, or null when unknown.
  type: raw
  returned: always
last_patch:
  description: Time of the last package install/upgrade (ISO 8601) or null.
  type: str
  returned: always
installed:
  description: Installed version of each name of report_packages (null when not installed).
  type: dict
  returned: always
"""

import datetime
import fnmatch
import glob
import os
import re

from ansible.module_utils.basic import AnsibleModule


def _excluded(name, patterns):
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="seconds")


def scan_apt(module, exclude, names):
    try:
        import apt
        import apt_pkg
    except ImportError:
        module.fail_json(msg="python3-apt is required on the host for the apt backend")
    cache = apt.Cache()
    updates, held = [], []
    for pkg in cache:
        if not pkg.is_installed:
            continue
        is_held = pkg._pkg.selected_state == apt_pkg.SELSTATE_HOLD
        cand = pkg.candidate
        current = pkg.installed.version
        newer = cand is not None and apt_pkg.version_compare(cand.version, current) > 0
        if is_held:
            held.append({"name": pkg.name, "version": current, "candidate": cand.version if newer else None})
        if not newer:
            continue
        origins = [{"origin": o.origin, "label": o.label, "archive": o.archive, "site": o.site} for o in cand.origins]
        security = any(
            "security" in (o["label"] or "").lower() or "security" in (o["archive"] or "").lower() for o in origins
        )
        updates.append(
            {
                "name": pkg.name,
                "current": current,
                "candidate": cand.version,
                "security": security,
                "held": is_held,
                "excluded": _excluded(pkg.name, exclude),
                "source": ", ".join(sorted({o["archive"] or o["label"] or "" for o in origins})),
            }
        )
    installed = {}
    for name in names:
        installed[name] = cache[name].installed.version if name in cache and cache[name].is_installed else None
    last = None
    logs = [p for p in glob.glob("/var/log/dpkg.log*") if not p.endswith(".gz")]
    stamps = []
    for path in logs:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    parts = line.split()
                    if len(parts) >= 3 and parts[2] in ("upgrade", "install"):
                        stamps.append(parts[0] + "T" + parts[1])
        except OSError:
            pass
    if stamps:
        # dpkg.log is in the host's local time: state its offset so reports can convert it
        last = datetime.datetime.fromisoformat(max(stamps)).astimezone().isoformat(timespec="seconds")
    return updates, held, installed, last


_NEVRA = re.compile(r"^(?P<name>.+)\.(?P<arch>[^.]+)$")


def _rpm_versions(module, names):
    out = {}
    for name in names:
        rc, stdout, _ = module.run_command(["rpm", "-q", "--qf", "%{EPOCHNUM}:%{VERSION}-%{RELEASE}\n", name])
        out[name] = stdout.strip().splitlines()[-1] if rc == 0 and stdout.strip() else None
    return out


def scan_dnf(module, exclude, names):
    dnf = module.get_bin_path("dnf") or module.get_bin_path("yum", required=True)
    rc, stdout, stderr = module.run_command([dnf, "-q", "-C", "check-update"])
    if rc not in (0, 100):
        module.fail_json(msg="dnf check-update failed", rc=rc, stderr=stderr)
    candidates = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) != 3 or line.startswith(" ") or parts[0].startswith("Obsoleting"):
            continue
        m = _NEVRA.match(parts[0])
        if m:
            candidates[m.group("name")] = (parts[1], parts[2])
    rc, stdout, _ = module.run_command([dnf, "-q", "-C", "updateinfo", "list", "--security", "--updates"])
    secure = set()
    for line in stdout.splitlines() if rc == 0 else []:
        parts = line.split()
        if len(parts) >= 3:
            nevra = parts[-1]
            name = re.sub(r"-[^-]+-[^-]+$", "", nevra)
            secure.add(name)
    locked = set()
    rc, stdout, _ = module.run_command([dnf, "-q", "versionlock", "list"])
    for line in stdout.splitlines() if rc == 0 else []:
        entry = re.sub(r"^\d+:", "", line.strip())
        if entry:
            locked.add(re.sub(r"-[^-]+-[^-]+$", "", entry))
    current = _rpm_versions(module, sorted(set(candidates) | locked))
    updates = [
        {
            "name": n,
            "current": current.get(n),
            "candidate": v,
            "security": n in secure,
            "held": n in locked,
            "excluded": _excluded(n, exclude),
            "source": repo,
        }
        for n, (v, repo) in sorted(candidates.items())
    ]
    held = [{"name": n, "version": current.get(n), "candidate": candidates.get(n, (None,))[0]} for n in sorted(locked)]
    installed = _rpm_versions(module, names)
    last = None
    rc, stdout, _ = module.run_command(["rpm", "-qa", "--qf", "%{INSTALLTIME}\n"])
    if rc == 0 and stdout.split():
        last = _iso(max(int(x) for x in stdout.split()))
    return updates, held, installed, last


def reboot_state(module, flag_file, check_command):
    if flag_file:
        return os.path.exists(flag_file)
    if check_command and module.get_bin_path(check_command[0]):
        rc, _, _ = module.run_command(check_command)
        return rc == 1
    return None


def main():
    module = AnsibleModule(
        argument_spec={
            "backend": {"type": "str", "choices": ["apt", "dnf"], "required": True},
            "exclude": {"type": "list", "elements": "str", "default": []},
            "report_packages": {"type": "list", "elements": "str", "default": []},
            "reboot_flag_file": {"type": "str", "default": ""},
            "reboot_check_command": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["backend"] == "apt":
        updates, held, installed, last = scan_apt(module, p["exclude"], p["report_packages"])
    else:
        updates, held, installed, last = scan_dnf(module, p["exclude"], p["report_packages"])
    updates.sort(key=lambda u: u["name"])
    module.exit_json(
        changed=False,
        updates=updates,
        held=held,
        installed=installed,
        reboot_required=reboot_state(module, p["reboot_flag_file"], p["reboot_check_command"]),
        last_patch=last,
    )


if __name__ == "__main__":
    main()
