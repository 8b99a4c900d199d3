#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Read-only health probe of a Linux host (part of the inspect role)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: inspect_probe
short_description: Read-only health metrics of a Linux host, with findings
description:
  - Reads uptime, load averages, memory and swap, usage (bytes and inodes) of
    every real mount, failed systemd units and whether a reboot is pending.
  - Compares them with the thresholds given and returns a list of findings
    with a severity.
  - Never changes anything; always returns C(changed=false); runs the same in
    check mode.
options:
  disk_warn_pct: {type: float, default: 80, description: Used space percentage for a warning.}
  disk_crit_pct: {type: float, default: 90, description: Used space percentage for a critical finding.}
  inode_warn_pct: {type: float, default: 80, description: Used inodes percentage for a warning.}
  inode_crit_pct: {type: float, default: 90, description: Used inodes percentage for a critical finding.}
  load_warn_per_cpu: {type: float, default: 1.0, description: 5-minute load per CPU for a warning.}
  load_crit_per_cpu: {type: float, default: 2.0, description: 5-minute load per CPU for a critical finding.}
  mem_warn_pct: {type: float, default: 90, description: Memory used (not available) percentage for a warning.}
  mem_crit_pct: {type: float, default: 95, description: Memory used percentage for a critical finding.}
  swap_warn_pct: {type: float, default: 50, description: Swap used percentage for a warning.}
  failed_units_severity:
    type: str
    default: critical
    choices: [info, warning, critical]
    description: Severity of a finding about failed systemd units.
  reboot_severity:
    type: str
    default: warning
    choices: [info, warning, critical]
    description: Severity of a finding about a pending reboot.
  ignore_fstypes: {type: list, elements: str, default: [], description: Filesystem types that are never reported.}
  ignore_paths:
    type: list
    elements: str
    default: []
    description: Mount points ignored together with everything below them.
  reboot_flag_file: {type: str, default: '', description: File whose presence means a reboot is pending (Debian family).}
  reboot_check_command:
    type: list
    elements: str
    default: []
    description: Command whose exit code 1 means a reboot is pending (RedHat family, needs-restarting -r).
author: envcredit-ops
"""

EXAMPLES = r"""
- name: Probe the host
  inspect_probe:
    disk_warn_pct: 80
    disk_crit_pct: 90
  register: probe
"""

RETURN = r"""
metrics:
  description: uptime_s, cpus, load, memory, swap, mounts, failed_units, reboot_required.
  returned: always
  type: dict
findings:
  description: List of {check, severity, target, value, threshold, message}.
  returned: always
  type: list
"""

import os

from ansible.module_utils.basic import AnsibleModule

SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}


def _pct(part, whole):
    return round(100.0 * part / whole, 1) if whole else 0.0


def read_uptime():
    with open("/proc/uptime", encoding="ascii") as handle:
        return int(float(handle.read().split()[0]))


def read_meminfo():
    info = {}
    with open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            fields = rest.split()
            if fields:
                info[key] = int(fields[0]) * 1024  # kB -> bytes
    total = info.get("MemTotal", 0)
    available = info.get("MemAvailable", info.get("MemFree", 0))
    swap_total = info.get("SwapTotal", 0)
    swap_free = info.get("SwapFree", 0)
    memory = {
        "total_bytes": total,
        "available_bytes": available,
        "used_bytes": total - available,
        "used_pct": _pct(total - available, total),
    }
    swap = {
        "total_bytes": swap_total,
        "used_bytes": swap_total - swap_free,
        "used_pct": _pct(swap_total - swap_free, swap_total),
    }
    return memory, swap


def _unescape(path):
    # /proc/self/mounts escapes space, tab, newline and backslash as octal.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        path = path.replace(code, char)
    return path


def _ignored(target, ignore_paths):
    for prefix in ignore_paths:
        prefix = prefix.rstrip("/") or "/"
        if target == prefix or target.startswith(prefix + "/"):
            return True
    return False


def read_mounts(ignore_fstypes, ignore_paths):
    mounts = {}
    with open("/proc/self/mounts", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) < 4:
                continue
            source, target, fstype, options = fields[0], _unescape(fields[1]), fields[2], fields[3]
            if fstype in ignore_fstypes or _ignored(target, ignore_paths):
                continue
            # Bind-mounted files (container /etc/hosts, keys) are not filesystems.
            if not os.path.isdir(target):
                continue
            try:
                st = os.statvfs(target)
            except OSError:
                continue
            if st.f_blocks == 0:
                continue
            size = st.f_blocks * st.f_frsize
            free_root = st.f_bfree * st.f_frsize
            avail = st.f_bavail * st.f_frsize
            used = size - free_root
            # Like df: percentage of what non-root users can use.
            usable = used + avail
            mounts[target] = {
                "mount": target,
                "device": source,
                "fstype": fstype,
                "readonly": "ro" in options.split(","),
                "size_bytes": size,
                "used_bytes": used,
                "avail_bytes": avail,
                "used_pct": _pct(used, usable),
                "inodes_total": st.f_files,
                "inodes_used": st.f_files - st.f_ffree,
                "inodes_used_pct": _pct(st.f_files - st.f_ffree, st.f_files),
            }
    return sorted(mounts.values(), key=lambda m: m["mount"])


def failed_units(module):
    systemctl = module.get_bin_path("systemctl")
    if systemctl is None:
        return None
    rc, out, _err = module.run_command(
        [systemctl, "list-units", "--state=failed", "--no-legend", "--plain", "--no-pager", "--all"]
    )
    if rc != 0:
        return None
    return sorted(line.split()[0] for line in out.splitlines() if line.strip())


def reboot_required(module):
    flag = module.params["reboot_flag_file"]
    if flag:
        return os.path.exists(flag)
    cmd = module.params["reboot_check_command"]
    if cmd and module.get_bin_path(cmd[0]) is not None:
        rc, _out, _err = module.run_command(cmd)
        if rc in (0, 1):
            return rc == 1
    return None


def _finding(findings, check, severity, target, value, threshold, message):
    findings.append(
        {
            "check": check,
            "severity": severity,
            "target": target,
            "value": value,
            "threshold": threshold,
            "message": message,
        }
    )


def _level(value, warn, crit):
    if value >= crit:
        return "critical", crit
    if value >= warn:
        return "warning", warn
    return None, None


def evaluate(params, metrics):
    findings = []
    for mount in metrics["mounts"]:
        sev, thr = _level(mount["used_pct"], params["disk_warn_pct"], params["disk_crit_pct"])
        if sev:
            _finding(findings, "disk", sev, mount["mount"], mount["used_pct"], thr,
                     "%s is %.1f%% full (threshold %s%%)" % (mount["mount"], mount["used_pct"], thr))
        sev, thr = _level(mount["inodes_used_pct"], params["inode_warn_pct"], params["inode_crit_pct"])
        if sev:
            _finding(findings, "inodes", sev, mount["mount"], mount["inodes_used_pct"], thr,
                     "%s uses %.1f%% of its inodes (threshold %s%%)"
                     % (mount["mount"], mount["inodes_used_pct"], thr))
    per_cpu = metrics["load"]["per_cpu_5m"]
    sev, thr = _level(per_cpu, params["load_warn_per_cpu"], params["load_crit_per_cpu"])
    if sev:
        _finding(findings, "load", sev, "load5", per_cpu, thr,
                 "5-minute load is %.2f per CPU (threshold %s)" % (per_cpu, thr))
    mem = metrics["memory"]["used_pct"]
    sev, thr = _level(mem, params["mem_warn_pct"], params["mem_crit_pct"])
    if sev:
        _finding(findings, "memory", sev, "memory", mem, thr,
                 "memory is %.1f%% used (threshold %s%%)" % (mem, thr))
    swap = metrics["swap"]
    if swap["total_bytes"] and swap["used_pct"] >= params["swap_warn_pct"]:
        _finding(findings, "swap", "warning", "swap", swap["used_pct"], params["swap_warn_pct"],
                 "swap is %.1f%% used (threshold %s%%)" % (swap["used_pct"], params["swap_warn_pct"]))
    units = metrics["failed_units"]
    if units:
        _finding(findings, "systemd", params["failed_units_severity"], "failed_units", len(units), 0,
                 "%d failed systemd unit(s): %s" % (len(units), ", ".join(units)))
    if metrics["reboot_required"]:
        _finding(findings, "reboot", params["reboot_severity"], "reboot", True, False,
                 "a reboot is pending (updated kernel or libraries)")
    findings.sort(key=lambda f: (-SEVERITY_ORDER[f["severity"]], f["check"], str(f["target"])))
    return findings


def main():
    severities = list(SEVERITY_ORDER)
    module = AnsibleModule(
        argument_spec={
            "disk_warn_pct": {"type": "float", "default": 80},
            "disk_crit_pct": {"type": "float", "default": 90},
            "inode_warn_pct": {"type": "float", "default": 80},
            "inode_crit_pct": {"type": "float", "default": 90},
            "load_warn_per_cpu": {"type": "float", "default": 1.0},
            "load_crit_per_cpu": {"type": "float", "default": 2.0},
            "mem_warn_pct": {"type": "float", "default": 90},
            "mem_crit_pct": {"type": "float", "default": 95},
            "swap_warn_pct": {"type": "float", "default": 50},
            "failed_units_severity": {"type": "str", "default": "critical", "choices": severities},
            "reboot_severity": {"type": "str", "default": "warning", "choices": severities},
            "ignore_fstypes": {"type": "list", "elements": "str", "default": []},
            "ignore_paths": {"type": "list", "elements": "str", "default": []},
            "reboot_flag_file": {"type": "str", "default": ""},
            "reboot_check_command": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    load1, load5, load15 = os.getloadavg()
    memory, swap = read_memory_safe(module)
    metrics = {
        "uptime_s": read_uptime(),
        "cpus": cpus,
        "load": {
            "1m": round(load1, 2),
            "5m": round(load5, 2),
            "15m": round(load15, 2),
            "per_cpu_5m": round(load5 / cpus, 2),
        },
        "memory": memory,
        "swap": swap,
        "mounts": read_mounts(set(params["ignore_fstypes"]), params["ignore_paths"]),
        "failed_units": failed_units(module),
        "reboot_required": reboot_required(module),
    }
    findings = evaluate(params, metrics)
    module.exit_json(changed=False, metrics=metrics, findings=findings)


def read_memory_safe(module):
    try:
        return read_meminfo()
    except OSError as exc:
        module.fail_json(msg="cannot read /proc/meminfo: %s" % exc)
        raise  # unreachable; keeps linters quiet


if __name__ == "__main__":
    main()
