#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Collect a diagnostic bundle on the host and derive findings by rules."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: os_diagnose_collect
short_description: Collect a diagnostic bundle (tarball) and findings by rules
description:
  - Runs read-only commands (each with a timeout), writes their output into a gzip tarball at
    I(bundle), and evaluates rules (disk and inodes, failed units, OOM kills, clock sync, load,
    low memory, memory-hungry processes, journal errors) into findings with severity and action.
  - Writes only the tarball (and a temporary directory it removes); the caller fetches and deletes it.
options:
  bundle:
    description: Path of the tarball to write on the host.
    type: path
    required: true
  paths:
    description: Directories under which the biggest subdirectories are listed.
    type: list
    elements: path
    default: []
  top:
    description: How many directories and processes to list.
    type: int
    default: 10
  journal_since:
    description: Start of the journal window (journalctl --since).
    type: str
    default: 24 hours ago
  thresholds:
    description: Rule thresholds (see the role's defaults).
    type: dict
    required: true
  ignore_fstypes:
    description: Filesystem types not evaluated.
    type: list
    elements: str
    default: []
  ignore_paths:
    description: Mount points ignored with everything below them.
    type: list
    elements: str
    default: []
  command_timeout:
    description: Seconds each command may run.
    type: int
    default: 30
author: envcredit-ops contractor team
"""

RETURN = r"""
findings:
  description: List of {rule, severity, target, message, action}.
  type: list
  returned: always
metrics:
  description: Numbers the rules were evaluated on.
  type: dict
  returned: always
files:
  description: Names of the files inside the tarball.
  type: list
  returned: always
"""

import json
import os
import shutil
import subprocess
import tarfile
import tempfile

from ansible.module_utils.basic import AnsibleModule

SEVERITY_ORDER = {"info": 1, "warning": 2, "critical": 3}


def run(argv, timeout, env=None):
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=dict(os.environ, LC_ALL="C", **(env or {})),
        )
        return proc.returncode, proc.stdout, proc.stderr
    except FileNotFoundError:
        return 127, "", "%s: not installed" % argv[0]
    except subprocess.TimeoutExpired:
        return 124, "", "%s: timed out after %ss" % (argv[0], timeout)


def meminfo():
    out = {}
    with open("/proc/meminfo") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            out[key] = int(rest.split()[0]) * 1024
    return out


def mounts(ignore_fstypes, ignore_paths):
    seen, out = set(), []
    with open("/proc/self/mounts") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) < 3:
                continue
            mnt = parts[1].replace("\\040", " ")
            fstype = parts[2]
            if fstype in ignore_fstypes or mnt in seen:
                continue
            if any(mnt == p or mnt.startswith(p.rstrip("/") + "/") for p in ignore_paths):
                continue
            if not os.path.isdir(mnt):  # file bind mounts (/etc/hosts ...)
                continue
            try:
                st = os.statvfs(mnt)
            except OSError:
                continue
            if st.f_blocks == 0:
                continue
            seen.add(mnt)
            used = st.f_blocks - st.f_bfree
            usable = used + st.f_bavail
            pct = round(100.0 * used / usable, 1) if usable else 0.0
            ipct = round(100.0 * (st.f_files - st.f_ffree) / st.f_files, 1) if st.f_files else 0.0
            out.append(
                {
                    "mount": mnt,
                    "fstype": fstype,
                    "size_bytes": st.f_blocks * st.f_frsize,
                    "avail_bytes": st.f_bavail * st.f_frsize,
                    "used_pct": pct,
                    "inodes_used_pct": ipct,
                }
            )
    return out


def level(value, warn, crit):
    if value >= crit:
        return "critical"
    if value >= warn:
        return "warning"
    return None


def main():
    module = AnsibleModule(
        argument_spec={
            "bundle": {"type": "path", "required": True},
            "paths": {"type": "list", "elements": "path", "default": []},
            "top": {"type": "int", "default": 10},
            "journal_since": {"type": "str", "default": "24 hours ago"},
            "thresholds": {"type": "dict", "required": True},
            "ignore_fstypes": {"type": "list", "elements": "str", "default": []},
            "ignore_paths": {"type": "list", "elements": "str", "default": []},
            "command_timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    p = module.params
    th = p["thresholds"]
    t = p["command_timeout"]
    top = p["top"]
    findings = []

    def find(rule, severity, target, message, action):
        findings.append({"rule": rule, "severity": severity, "target": target, "message": message, "action": action})

    work = tempfile.mkdtemp(prefix="envcredit-diag-")
    files = {}

    def save(name, text):
        files[name] = text if text.endswith("\n") or not text else text + "\n"

    def cmd(name, argv, env=None):
        rc, out, err = run(argv, t, env)
        save(name, "$ %s\n%s%s" % (" ".join(argv), out, ("\n# stderr (rc %s):\n%s" % (rc, err)) if rc or err else ""))
        return rc, out

    try:
        cpus = len(os.sched_getaffinity(0))
        with open("/proc/loadavg") as fh:
            load = [float(x) for x in fh.read().split()[:3]]
        with open("/proc/uptime") as fh:
            uptime_s = int(float(fh.read().split()[0]))
        cmd("uptime.txt", ["uptime"])
        mem = meminfo()
        cmd("memory.txt", ["free", "-m"])
        total = mem.get("MemTotal", 0)
        avail = mem.get("MemAvailable", 0)
        avail_pct = round(100.0 * avail / total, 1) if total else 100.0
        swap_total = mem.get("SwapTotal", 0)
        swap_pct = round(100.0 * (swap_total - mem.get("SwapFree", 0)) / swap_total, 1) if swap_total else 0.0
        mnts = mounts(p["ignore_fstypes"], p["ignore_paths"])
        cmd("disk.txt", ["df", "-hT"])
        cmd("inodes.txt", ["df", "-i"])
        du_lines = []
        for path in p["paths"]:
            if os.path.isdir(path):
                rc, out, _ = run(["du", "-x", "-m", "--max-depth=2", path], t)
                rows = sorted(
                    (line.split("\t", 1) for line in out.splitlines() if "\t" in line), key=lambda r: -int(r[0])
                )[:top]
                du_lines += ["%s MiB\t%s" % (r[0], r[1]) for r in rows]
        save("biggest-dirs.txt", "\n".join(du_lines))
        cmd("top-cpu.txt", ["ps", "-eo", "pid,user,pcpu,pmem,rss,etime,comm,args", "--sort=-pcpu"])
        rc, psmem = cmd("top-mem.txt", ["ps", "-eo", "pid,user,pmem,rss,comm", "--sort=-rss", "--no-headers"])
        procs = []
        for line in psmem.splitlines()[:top]:
            parts = line.split(None, 4)
            if len(parts) == 5:
                rss = int(parts[3]) * 1024
                procs.append(
                    {
                        "pid": int(parts[0]),
                        "user": parts[1],
                        "comm": parts[4],
                        "rss_bytes": rss,
                        "mem_pct": round(100.0 * rss / total, 1) if total else 0.0,
                    }
                )
        rc, failed = cmd(
            "failed-units.txt", ["systemctl", "list-units", "--failed", "--plain", "--no-legend", "--no-pager"]
        )
        failed_units = [line.split()[0] for line in failed.splitlines() if line.strip()]
        rc, jerr = cmd(
            "journal-errors.txt",
            ["journalctl", "-p", "err", "--since", p["journal_since"], "--no-pager", "-q", "-o", "short-iso"],
        )
        journal_errors = [line for line in jerr.splitlines() if line.strip()]
        rc_k, kern = cmd("kernel.txt", ["journalctl", "-k", "-b", "--no-pager", "-q", "-o", "short-iso"])
        rc_d, dmesg = cmd("dmesg.txt", ["dmesg", "-T"])
        kernel_readable = bool(kern.strip()) or rc_d == 0
        ooms = [
            line
            for line in (kern + dmesg).splitlines()
            if "Out of memory" in line or "oom-kill" in line or "Killed process" in line
        ]
        cmd("ports.txt", ["ss", "-ltnup"])
        rc, tds = cmd("timesync.txt", ["timedatectl", "show"])
        cmd(
            "timesync-services.txt",
            [
                "systemctl",
                "status",
                "--no-pager",
                "--lines=5",
                "systemd-timesyncd.service",
                "chrony.service",
                "chronyd.service",
            ],
        )
        cmd("chrony.txt", ["chronyc", "-n", "tracking"])
        synced = "NTPSynchronized=yes" in tds if rc == 0 else None
        rc, virt, _ = run(["systemd-detect-virt", "--container"], t)
        container = virt.strip() if rc == 0 and virt.strip() not in ("", "none") else None
        save("mounts.txt", open("/proc/self/mounts").read())
        cmd("findmnt.txt", ["findmnt", "-D"])
        cmd("logins.txt", ["last", "-n", "30", "-F"])
        cmd("lastb.txt", ["lastb", "-n", "30", "-F"])

        # ---- rules
        for m in mnts:
            sev = level(m["used_pct"], th["disk_warn_pct"], th["disk_crit_pct"])
            if sev:
                find(
                    "disk",
                    sev,
                    m["mount"],
                    "%s is %.1f%% full (%d MiB free)" % (m["mount"], m["used_pct"], m["avail_bytes"] // 1048576),
                    "free space on %s: remove or archive old files (see biggest-dirs.txt), or grow it" % m["mount"],
                )
            sev = level(m["inodes_used_pct"], th["inode_warn_pct"], th["inode_crit_pct"])
            if sev:
                find(
                    "inodes",
                    sev,
                    m["mount"],
                    "%s uses %.1f%% of its inodes" % (m["mount"], m["inodes_used_pct"]),
                    "find directories with many small files on %s (sessions, caches) and clean them" % m["mount"],
                )
        if failed_units:
            find(
                "failed_units",
                "critical",
                ",".join(failed_units),
                "failed systemd units: %s" % ", ".join(failed_units),
                "read `journalctl -u UNIT`, fix the cause, restart the unit, then `systemctl reset-failed`",
            )
        if ooms:
            find(
                "oom",
                "critical",
                "kernel",
                "%d OOM kill message(s) in the kernel log" % len(ooms),
                "find the process that grew (top-mem.txt), limit it or add memory/swap",
            )
        elif not kernel_readable:
            find(
                "oom",
                "info",
                "kernel",
                "kernel messages not readable here (container or dmesg_restrict)",
                "check OOM kills on the hypervisor / container host",
            )
        if synced is False:
            if container:
                find(
                    "time_sync",
                    "info",
                    "clock",
                    "clock sync not managed inside this %s container" % container,
                    "the container uses the host's clock: check time sync on the container host",
                )
            else:
                find(
                    "time_sync",
                    "warning",
                    "clock",
                    "the clock is not synchronised (NTPSynchronized=no)",
                    "check chrony/systemd-timesyncd and the NTP servers of the government cloud",
                )
        per_cpu = load[1] / cpus if cpus else load[1]
        sev = level(per_cpu, th["load_warn_per_cpu"], th["load_crit_per_cpu"])
        if sev:
            find(
                "load",
                sev,
                "cpu",
                "5-minute load %.2f on %d CPU(s)" % (load[1], cpus),
                "see top-cpu.txt for the busiest processes; check for runaway jobs or I/O waits",
            )
        if avail_pct <= th["mem_avail_crit_pct"]:
            sev = "critical"
        elif avail_pct <= th["mem_avail_warn_pct"]:
            sev = "warning"
        else:
            sev = None
        if sev:
            find(
                "memory",
                sev,
                "memory",
                "only %.1f%% of memory available" % avail_pct,
                "see top-mem.txt; restart or limit the biggest consumer, add memory",
            )
        if swap_total and swap_pct >= th["swap_warn_pct"]:
            find("swap", "warning", "swap", "swap %.1f%% used" % swap_pct, "memory pressure: see top-mem.txt")
        for proc in procs:
            if proc["mem_pct"] >= th["proc_mem_warn_pct"]:
                find(
                    "process_memory",
                    "warning",
                    "%s[%d]" % (proc["comm"].split()[0], proc["pid"]),
                    "process %s (pid %d, %s) uses %.1f%% of memory (%d MiB)"
                    % (proc["comm"][:60], proc["pid"], proc["user"], proc["mem_pct"], proc["rss_bytes"] // 1048576),
                    "check whether it leaks; restart it or cap it (systemd MemoryMax=)",
                )
        if len(journal_errors) >= th["journal_errors_warn"]:
            find(
                "journal_errors",
                "warning",
                "journal",
                "%d error messages in the journal since %s" % (len(journal_errors), p["journal_since"]),
                "read journal-errors.txt",
            )
        elif journal_errors:
            find(
                "journal_errors",
                "info",
                "journal",
                "%d error messages in the journal since %s" % (len(journal_errors), p["journal_since"]),
                "read journal-errors.txt",
            )
        findings.sort(key=lambda f: (-SEVERITY_ORDER[f["severity"]], f["rule"], f["target"]))
        metrics = {
            "uptime_s": uptime_s,
            "cpus": cpus,
            "load": load,
            "mem_total_bytes": total,
            "mem_available_pct": avail_pct,
            "swap_used_pct": swap_pct,
            "mounts": mnts,
            "top_processes": procs[:5],
            "failed_units": failed_units,
            "oom_kills": len(ooms),
            "journal_errors": len(journal_errors),
            "clock_synchronised": synced,
            "container": container,
        }
        save("findings.json", json.dumps(findings, indent=2))
        save("metrics.json", json.dumps(metrics, indent=2))
        bundle = p["bundle"]
        os.makedirs(os.path.dirname(bundle), exist_ok=True)
        top_dir = os.path.basename(bundle).split(".tar")[0]
        for name, text in files.items():
            with open(os.path.join(work, name), "w") as fh:
                fh.write(text)
        tmp = bundle + ".part"
        with tarfile.open(tmp, "w:gz") as tar:
            for name in sorted(files):
                tar.add(os.path.join(work, name), arcname="%s/%s" % (top_dir, name))
        os.chmod(tmp, 0o600)
        os.replace(tmp, bundle)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    module.exit_json(changed=False, findings=findings, metrics=metrics, files=sorted(files))


if __name__ == "__main__":
    main()
