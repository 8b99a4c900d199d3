#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Read-only daily inspection of a Linux host (part of the inspect role)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: inspect_probe
short_description: Read-only daily inspection of a Linux host, with findings and actions
description:
  - Reads uptime, load averages, memory and swap, usage (bytes and inodes) of
    every real mount, failed systemd units and whether a reboot is pending.
  - Reads the state of the services it is told about (absent ones are
    reported as not installed), time synchronisation, expiry of the TLS
    certificates nginx serves (and of extra certificate files), health
    endpoints, PostgreSQL and MariaDB (connections against the limit, size per
    database, long-running queries, replication lag) read-only through their
    local clients, pending security updates from the package lists present on
    the host, and the error rate of the last 24 hours of access logs.
  - Compares them with the thresholds given and returns findings with a
    severity and a recommended action.
  - Never changes anything; always returns C(changed=false); runs the same in
    check mode. Checks whose subject is absent are reported as not applicable.
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
  services:
    type: list
    elements: str
    default: []
    description: systemd services to report; an enabled service that is not active is a critical finding.
  time_sync_severity:
    type: str
    default: warning
    choices: [info, warning, critical]
    description: Severity of a finding about an unsynchronised clock (not applicable in a container).
  nginx_conf: {type: str, default: '', description: Main nginx configuration; its ssl_certificate files are checked.}
  cert_paths: {type: list, elements: str, default: [], description: Extra certificate files (PEM) to check.}
  cert_warn_days: {type: int, default: 30, description: Days left from which a certificate is a warning.}
  cert_crit_days: {type: int, default: 7, description: Days left from which a certificate is critical.}
  health_urls:
    type: list
    elements: dict
    default: []
    description: Health endpoints, each {name, url, unit}; checked only when the systemd unit exists.
  health_timeout: {type: float, default: 5, description: Seconds to wait for a health endpoint.}
  postgresql: {type: bool, default: true, description: Read PostgreSQL (psql as postgres) when it is running.}
  mariadb: {type: bool, default: true, description: Read MariaDB (mariadb client as root, unix socket) when it is running.}
  db_conn_warn_pct: {type: float, default: 80, description: Connections in percent of the limit for a warning.}
  db_conn_crit_pct: {type: float, default: 95, description: Connections in percent of the limit for a critical finding.}
  db_long_query_s: {type: int, default: 300, description: A statement running longer than this many seconds is long-running.}
  db_repl_lag_warn_s: {type: int, default: 60, description: Replication lag (seconds) for a warning.}
  db_repl_lag_crit_s: {type: int, default: 600, description: Replication lag (seconds) for a critical finding.}
  updates_backend:
    type: str
    default: none
    choices: [apt, dnf, none]
    description: How to count pending security updates (from the package lists present on the host).
  updates_severity:
    type: str
    default: warning
    choices: [info, warning, critical]
    description: Severity of a finding about pending security updates.
  logs:
    type: list
    elements: dict
    default: []
    description: Access logs, each {name, path, format} with format nginx (combined) or json (ts, status).
  log_window_h: {type: int, default: 24, description: Hours of log lines counted.}
  log_min_requests: {type: int, default: 20, description: Fewer requests than this give no error-rate finding.}
  log_error_warn_pct: {type: float, default: 5, description: Share of 5xx answers (percent) for a warning.}
  log_error_crit_pct: {type: float, default: 20, description: Share of 5xx answers (percent) for a critical finding.}
  log_max_bytes: {type: int, default: 67108864, description: At most this many bytes are read from the end of a log.}
author: envcredit-ops
"""

EXAMPLES = r"""
- name: Probe the host
  inspect_probe:
    disk_warn_pct: 80
    disk_crit_pct: 90
    services: [nginx, envcredit, postgresql, mariadb]
  register: probe
"""

RETURN = r"""
metrics:
  description: >-
    uptime_s, cpus, load, memory, swap, mounts, failed_units, reboot_required,
    services, time_sync, certificates, health, databases, updates, logs.
  returned: always
  type: dict
findings:
  description: List of {check, severity, target, value, threshold, message, action}.
  returned: always
  type: list
"""

import calendar
import glob
import json
import os
import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

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


# -- services, time, certificates, health ------------------------------------------------


def _run(module, argv, **kwargs):
    """(rc, out, err) of argv; (127, '', reason) when the program is missing."""
    if module.get_bin_path(argv[0]) is None and not os.path.isabs(argv[0]):
        return 127, "", "%s not found" % argv[0]
    return module.run_command(argv, **kwargs)


def unit_state(module, name):
    rc, out, _err = _run(
        module,
        [
            "systemctl",
            "show",
            "--no-pager",
            "-p",
            "LoadState",
            "-p",
            "ActiveState",
            "-p",
            "SubState",
            "-p",
            "UnitFileState",
            name,
        ],
    )
    props = {}
    if rc == 0:
        for line in out.splitlines():
            key, _, value = line.partition("=")
            props[key] = value
    load = props.get("LoadState", "")
    if load != "loaded":
        return {"name": name, "present": False, "active": None, "enabled": None, "state": "not-installed"}
    enabled = props.get("UnitFileState", "") in ("enabled", "enabled-runtime", "static", "alias")
    return {
        "name": name,
        "present": True,
        "active": props.get("ActiveState") == "active",
        "enabled": enabled,
        "state": "%s/%s" % (props.get("ActiveState", "?"), props.get("SubState", "?")),
    }


def in_container(module):
    if os.path.exists("/run/.containerenv") or os.path.exists("/.dockerenv"):
        return True
    rc, _out, _err = _run(module, ["systemd-detect-virt", "--container", "--quiet"])
    return rc == 0


def time_sync(module):
    container = in_container(module)
    rc, out, _err = _run(module, ["timedatectl", "show", "-p", "NTPSynchronized", "-p", "NTP"])
    props = dict(line.partition("=")[::2] for line in out.splitlines()) if rc == 0 else {}
    synced = props.get("NTPSynchronized")
    result = {
        "container": container,
        "ntp_enabled": None if "NTP" not in props else props["NTP"] == "yes",
        "synchronized": None if synced is None else synced == "yes",
    }
    # A container keeps the machine's clock: synchronising it is the machine's duty.
    result["status"] = (
        "not_applicable"
        if container
        else "unknown"
        if synced is None
        else "ok"
        if result["synchronized"]
        else "not_synchronized"
    )
    return result


_INCLUDE = re.compile(r"^\s*include\s+([^;]+);", re.M)
_SSL_CERT = re.compile(r"^\s*ssl_certificate\s+([^;]+);", re.M)
_COMMENT = re.compile(r"#.*$", re.M)


def nginx_certificates(conf):
    """ssl_certificate files of an nginx configuration, following includes."""
    if not conf or not os.path.isfile(conf):
        return []
    base = os.path.dirname(conf)
    seen, found, todo = set(), [], [conf]
    while todo:
        path = todo.pop(0)
        if path in seen or len(seen) > 500:
            continue
        seen.add(path)
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = _COMMENT.sub("", handle.read())
        except OSError:
            continue
        for inc in _INCLUDE.findall(text):
            pattern = inc.strip().strip("'\"")
            if not os.path.isabs(pattern):
                pattern = os.path.join(base, pattern)
            todo.extend(sorted(glob.glob(pattern)))
        for cert in _SSL_CERT.findall(text):
            cert = cert.strip().strip("'\"")
            if "$" not in cert and cert not in found:
                found.append(cert)
    return found


_MONTHS = {m: i for i, m in enumerate(calendar.month_abbr) if m}


def _parse_not_after(text):
    # "Nov 28 12:00:00 2026 GMT" (openssl and Python use the same form)
    parts = text.split()
    month, day, hms, year = _MONTHS[parts[0]], int(parts[1]), parts[2], int(parts[3])
    hour, minute, second = (int(x) for x in hms.split(":"))
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


def certificate(module, path, source):
    entry = {"path": path, "source": source, "present": os.path.isfile(path)}
    if not entry["present"]:
        entry["error"] = "file not found"
        return entry
    rc, out, err = _run(module, ["openssl", "x509", "-noout", "-enddate", "-subject", "-in", path])
    try:
        if rc == 0:
            fields = dict(line.partition("=")[::2] for line in out.splitlines())
            not_after = _parse_not_after(fields["notAfter"])
            subject = fields.get("subject", "").strip()
        else:
            import ssl  # fallback without the openssl tool

            decoded = ssl._ssl._test_decode_cert(path)  # pylint: disable=protected-access
            not_after = _parse_not_after(decoded["notAfter"])
            subject = str(decoded.get("subject", ""))
    except (KeyError, ValueError, IndexError, OSError, AttributeError) as exc:
        entry["error"] = "cannot read the certificate: %s" % (err.strip() or exc)
        return entry
    entry.update(
        {
            "subject": subject[:200],
            "not_after": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(not_after)),
            "days_left": round((not_after - time.time()) / 86400.0, 1),
        }
    )
    return entry


def health(module, checks, timeout):
    out = []
    for check in checks:
        name, url, unit = check.get("name") or check.get("url"), check.get("url", ""), check.get("unit")
        entry = {"name": name, "url": url, "unit": unit}
        if unit and not unit_state(module, unit)["present"]:
            entry["status"] = "not_applicable"
            out.append(entry)
            continue
        started = time.time()
        try:
            resp = open_url(url, timeout=timeout, validate_certs=False, follow_redirects="none")
            entry["http_status"] = resp.getcode()
        except Exception as exc:  # HTTPError carries the code; anything else is an error
            code = getattr(exc, "code", None)
            entry["http_status"] = code if isinstance(code, int) else None
            if not isinstance(code, int):
                entry["error"] = str(getattr(exc, "reason", exc))[:200]
        entry["elapsed_ms"] = int((time.time() - started) * 1000)
        entry["status"] = "ok" if entry.get("http_status") and entry["http_status"] < 400 else "failed"
        out.append(entry)
    return out


# -- databases ---------------------------------------------------------------------------

_SEP = "\x1f"


def _enabled(module, unit):
    state = unit_state(module, unit)
    return bool(state["present"] and state["enabled"])


def _as_user(user, argv):
    # The probe runs as root (become); the database clients then use local peer/socket auth.
    if os.geteuid() == 0:
        return ["runuser", "-u", user, "--"] + argv
    return ["sudo", "-n", "-u", user, "--"] + argv


def _rows(out):
    return [line.split(_SEP) for line in out.splitlines() if line.strip()]


def postgresql(module, long_s):
    psql = module.get_bin_path("psql")
    installed = psql is not None and (os.path.isdir("/var/lib/postgresql") or os.path.isdir("/var/lib/pgsql"))
    db = {"engine": "postgresql", "installed": installed}
    if not installed:
        db["status"] = "not_applicable"
        return db
    enabled = _enabled(module, "postgresql")

    def query(sql):
        return module.run_command(
            _as_user(
                "postgres",
                [psql, "-X", "-A", "-t", "-q", "-F", _SEP, "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c", sql],
            ),
            cwd="/",
        )

    rc, out, err = query(
        "SELECT current_setting('max_connections')::int,"
        " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),"
        " pg_is_in_recovery(),"
        " COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), -1)::int,"
        " current_setting('server_version')"
    )
    if rc != 0:
        db["status"] = "down" if enabled else "not_applicable"
        db["error"] = (err or out).strip()[-300:]
        return db
    row = _rows(out)[0]
    db.update(
        {
            "status": "ok",
            "max_connections": int(row[0]),
            "connections": int(row[1]),
            "version": row[4],
            "role": "replica" if row[2] == "t" else "primary",
        }
    )
    db["connections_pct"] = _pct(db["connections"], db["max_connections"])
    _rc, out, _err = query(
        "SELECT datname, pg_database_size(datname) FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1"
    )
    db["databases"] = [{"name": r[0], "size_bytes": int(r[1])} for r in _rows(out)]
    _rc, out, _err = query(
        "SELECT pid, EXTRACT(EPOCH FROM now() - query_start)::int, usename, datname FROM pg_stat_activity"
        " WHERE state <> 'idle' AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        " AND query_start < now() - make_interval(secs => %d) ORDER BY 2 DESC LIMIT 20" % long_s
    )
    db["long_queries"] = [{"pid": int(r[0]), "seconds": int(r[1]), "user": r[2], "database": r[3]} for r in _rows(out)]
    replication = []
    if db["role"] == "replica":
        replication.append({"name": "replay", "lag_s": int(row[3]) if int(row[3]) >= 0 else None, "state": "replica"})
    _rc, out, _err = query(
        "SELECT application_name, COALESCE(client_addr::text, 'local'), state,"
        " COALESCE(EXTRACT(EPOCH FROM replay_lag), 0)::int FROM pg_stat_replication"
    )
    replication += [{"name": "%s@%s" % (r[0], r[1]), "state": r[2], "lag_s": int(r[3])} for r in _rows(out)]
    db["replication"] = replication
    return db


def mariadb(module, long_s):
    client = module.get_bin_path("mariadb") or module.get_bin_path("mysql")
    installed = client is not None and os.path.isdir("/var/lib/mysql")
    db = {"engine": "mariadb", "installed": installed}
    if not installed:
        db["status"] = "not_applicable"
        return db
    enabled = _enabled(module, "mariadb") or _enabled(module, "mysql")
    units = [unit_state(module, u) for u in ("mariadb", "mysql")]
    if not any(u["active"] for u in units):
        # A read-only probe never starts a server: connecting to the socket of a
        # socket-activated MariaDB (mariadb.socket) would.
        db["status"] = "down" if enabled else "not_applicable"
        if enabled:
            db["error"] = "mariadb.service is enabled but not running"
        return db

    def query(sql, headers=False):
        argv = [client, "--no-defaults", "--protocol=socket", "-u", "root", "-B", "-e", sql]
        if not headers:
            argv.insert(-2, "-N")
        if os.geteuid() != 0:
            argv = ["sudo", "-n", "--"] + argv
        rc, out, err = module.run_command(argv, cwd="/")
        return rc, out.replace("\t", _SEP), err

    rc, out, err = query(
        "SELECT @@max_connections, (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS"
        " WHERE VARIABLE_NAME = 'THREADS_CONNECTED'), @@version"
    )
    if rc != 0:
        db["status"] = "down" if enabled else "not_applicable"
        db["error"] = (err or out).strip()[-300:]
        return db
    row = _rows(out)[0]
    db.update({"status": "ok", "max_connections": int(row[0]), "connections": int(row[1]), "version": row[2]})
    db["connections_pct"] = _pct(db["connections"], db["max_connections"])
    _rc, out, _err = query(
        "SELECT s.schema_name, COALESCE(SUM(t.data_length + t.index_length), 0)"
        " FROM information_schema.schemata s LEFT JOIN information_schema.tables t"
        " ON t.table_schema = s.schema_name WHERE s.schema_name NOT IN"
        " ('information_schema', 'performance_schema', 'sys', 'mysql') GROUP BY s.schema_name ORDER BY 1"
    )
    db["databases"] = [{"name": r[0], "size_bytes": int(r[1])} for r in _rows(out)]
    _rc, out, _err = query(
        "SELECT id, time, user, COALESCE(db, '') FROM information_schema.processlist"
        " WHERE command NOT IN ('Sleep', 'Daemon', 'Binlog Dump', 'Slave_IO', 'Slave_SQL')"
        " AND id <> CONNECTION_ID() AND time >= %d ORDER BY time DESC LIMIT 20" % long_s
    )
    db["long_queries"] = [{"pid": int(r[0]), "seconds": int(r[1]), "user": r[2], "database": r[3]} for r in _rows(out)]
    _rc, out, _err = query("SHOW ALL SLAVES STATUS", headers=True)
    rows = _rows(out)
    replication = []
    for values in rows[1:]:
        rec = dict(zip(rows[0], values))
        lag = rec.get("Seconds_Behind_Master")
        replication.append(
            {
                "name": rec.get("Connection_name") or rec.get("Master_Host", "default"),
                "state": "io:%s sql:%s" % (rec.get("Slave_IO_Running"), rec.get("Slave_SQL_Running")),
                "lag_s": int(lag) if lag and lag.isdigit() else None,
            }
        )
    db["replication"] = replication
    return db


# -- updates and logs --------------------------------------------------------------------

_APT_INST = re.compile(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) ([^\[)]*)")


def pending_updates(module, backend):
    if backend == "apt":
        lists = glob.glob("/var/lib/apt/lists/*_Packages") + glob.glob("/var/lib/apt/lists/*_Packages.*")
        if not lists:
            return {"status": "not_applicable", "reason": "no package lists on the host"}
        rc, out, err = _run(
            module,
            ["apt-get", "-s", "-q", "-o", "Debug::NoLocking=1", "dist-upgrade"],
            environ_update={"LANG": "C", "LC_ALL": "C"},
        )
        if rc != 0:
            return {"status": "unknown", "error": (err or out).strip()[-300:]}
        pending, security = [], []
        for line in out.splitlines():
            m = _APT_INST.match(line)
            if m:
                pending.append(m.group(1))
                if "security" in m.group(3).lower():
                    security.append(m.group(1))
        return {
            "status": "ok",
            "pending": len(pending),
            "security": len(security),
            "security_packages": sorted(security)[:50],
        }
    if backend == "dnf":
        rc, out, err = _run(module, ["dnf", "-q", "--cacheonly", "updateinfo", "list", "--security"])
        if rc != 0:
            return {"status": "not_applicable", "reason": (err or out).strip()[-200:]}
        pkgs = sorted({line.split()[-1] for line in out.splitlines() if len(line.split()) >= 3})
        return {"status": "ok", "pending": None, "security": len(pkgs), "security_packages": pkgs[:50]}
    return {"status": "not_applicable", "reason": "no package manager configured"}


_NGINX_LINE = re.compile(r'\[(\d{2})/(\w{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})\] "[^"]*" (\d{3}) ')


def _nginx_entry(line):
    m = _NGINX_LINE.search(line)
    if not m:
        return None
    day, mon, year, hh, mm, ss, sign, oh, om, status = m.groups()
    stamp = calendar.timegm((int(year), _MONTHS.get(mon, 1), int(day), int(hh), int(mm), int(ss), 0, 0, 0))
    offset = (int(oh) * 3600 + int(om) * 60) * (1 if sign == "+" else -1)
    return stamp - offset, int(status)


def _json_entry(line):
    import datetime

    try:
        rec = json.loads(line)
        moment = datetime.datetime.fromisoformat(str(rec["ts"]).replace("Z", "+00:00"))
        return moment.timestamp(), int(rec["status"])
    except (ValueError, KeyError, TypeError):
        return None


def log_error_rate(logs, window_h, max_bytes):
    out = []
    since = time.time() - window_h * 3600
    for log in logs:
        path, fmt = log.get("path", ""), log.get("format", "nginx")
        entry = {"name": log.get("name") or path, "path": path, "format": fmt}
        if not os.path.isfile(path):
            entry["status"] = "not_applicable"
            out.append(entry)
            continue
        parse = _json_entry if fmt == "json" else _nginx_entry
        total = errors = 0
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size > max_bytes:
                    handle.seek(size - max_bytes)
                    handle.readline()
                for raw in handle:
                    parsed = parse(raw.decode("utf-8", "replace"))
                    if parsed is None or parsed[0] < since:
                        continue
                    total += 1
                    errors += parsed[1] >= 500
        except OSError as exc:
            entry.update({"status": "unknown", "error": str(exc)})
            out.append(entry)
            continue
        entry.update({"status": "ok", "requests": total, "errors_5xx": errors, "error_pct": _pct(errors, total)})
        out.append(entry)
    return out


# -- findings ----------------------------------------------------------------------------

ACTIONS = {
    "disk": "Free space (old logs, dumps, packages) or grow the filesystem before it fills up.",
    "inodes": "Remove many small files (sessions, caches, mail queue) or rebuild with more inodes.",
    "load": "Find the busy processes (top, pidstat); check for runaway jobs or add capacity.",
    "memory": "Find the largest processes; restart a leaking service in a window or add memory.",
    "swap": "Check which processes are swapped out; reduce memory pressure.",
    "systemd": "Read the unit's journal (journalctl -u UNIT), fix the cause, then systemctl reset-failed.",
    "reboot": "Plan a reboot in the next maintenance window (opsctl run patch).",
    "service": "Start the service (systemctl start) and read its journal; open an incident if users are affected.",
    "time_sync": "Enable and check time synchronisation (timedatectl, chrony or systemd-timesyncd).",
    "certificate": "Renew the certificate and reload nginx before it expires.",
    "health": "Check the application service and its database; follow the outage runbook if it stays down.",
    "db_down": "Start the database service and read its log; follow the outage runbook.",
    "db_connections": "Check for connection leaks in the application; raise the limit only after review.",
    "db_long_query": "Review the long-running statements; cancel them if they block others.",
    "db_replication": "Check the replica's IO/SQL threads and the network; resynchronise if needed.",
    "updates": "Apply the security updates in the next window (opsctl run patch).",
    "log_errors": "Read the error log for the failing requests; open an incident if users are affected.",
}


def _finding(findings, check, severity, target, value, threshold, message, params=None):
    """One finding: its code (check), target, value and threshold are what reports render in
    their own language; params holds further structured details; message is the English text."""
    item = {
        "check": check,
        "severity": severity,
        "target": target,
        "value": value,
        "threshold": threshold,
        "message": message,
        "action": ACTIONS.get(check, ""),
    }
    if params:
        item["params"] = params
    findings.append(item)


def _level(value, warn, crit):
    if value >= crit:
        return "critical", crit
    if value >= warn:
        return "warning", warn
    return None, None


def _evaluate_system(params, metrics, findings):
    for mount in metrics["mounts"]:
        sev, thr = _level(mount["used_pct"], params["disk_warn_pct"], params["disk_crit_pct"])
        if sev:
            _finding(
                findings,
                "disk",
                sev,
                mount["mount"],
                mount["used_pct"],
                thr,
                "%s is %.1f%% full (threshold %s%%)" % (mount["mount"], mount["used_pct"], thr),
            )
        sev, thr = _level(mount["inodes_used_pct"], params["inode_warn_pct"], params["inode_crit_pct"])
        if sev:
            _finding(
                findings,
                "inodes",
                sev,
                mount["mount"],
                mount["inodes_used_pct"],
                thr,
                "%s uses %.1f%% of its inodes (threshold %s%%)" % (mount["mount"], mount["inodes_used_pct"], thr),
            )
    per_cpu = metrics["load"]["per_cpu_5m"]
    sev, thr = _level(per_cpu, params["load_warn_per_cpu"], params["load_crit_per_cpu"])
    if sev:
        _finding(
            findings,
            "load",
            sev,
            "load5",
            per_cpu,
            thr,
            "5-minute load is %.2f per CPU (threshold %s)" % (per_cpu, thr),
        )
    mem = metrics["memory"]["used_pct"]
    sev, thr = _level(mem, params["mem_warn_pct"], params["mem_crit_pct"])
    if sev:
        _finding(findings, "memory", sev, "memory", mem, thr, "memory is %.1f%% used (threshold %s%%)" % (mem, thr))
    swap = metrics["swap"]
    if swap["total_bytes"] and swap["used_pct"] >= params["swap_warn_pct"]:
        _finding(
            findings,
            "swap",
            "warning",
            "swap",
            swap["used_pct"],
            params["swap_warn_pct"],
            "swap is %.1f%% used (threshold %s%%)" % (swap["used_pct"], params["swap_warn_pct"]),
        )
    units = metrics["failed_units"]
    if units:
        _finding(
            findings,
            "systemd",
            params["failed_units_severity"],
            "failed_units",
            len(units),
            0,
            "%d failed systemd unit(s): %s" % (len(units), ", ".join(units)),
            {"units": list(units)},
        )
    if metrics["reboot_required"]:
        _finding(
            findings,
            "reboot",
            params["reboot_severity"],
            "reboot",
            True,
            False,
            "a reboot is pending (updated kernel or libraries)",
        )


def _evaluate_services(params, metrics, findings):
    for svc in metrics["services"]:
        if svc["present"] and svc["enabled"] and not svc["active"]:
            _finding(
                findings,
                "service",
                "critical",
                svc["name"],
                svc["state"],
                "active",
                "service %s is enabled but not running (%s)" % (svc["name"], svc["state"]),
            )
    ts = metrics["time_sync"]
    if ts["status"] == "not_synchronized":
        _finding(
            findings,
            "time_sync",
            params["time_sync_severity"],
            "clock",
            False,
            True,
            "the system clock is not synchronised (NTP %s)" % ("on" if ts["ntp_enabled"] else "off"),
        )
    for cert in metrics["certificates"]:
        if "days_left" not in cert:
            _finding(
                findings,
                "certificate",
                "warning",
                cert["path"],
                None,
                None,
                "certificate %s cannot be read: %s" % (cert["path"], cert.get("error")),
            )
            continue
        days = cert["days_left"]
        sev = (
            "critical" if days <= params["cert_crit_days"] else "warning" if days <= params["cert_warn_days"] else None
        )
        if sev:
            thr = params["cert_crit_days"] if sev == "critical" else params["cert_warn_days"]
            what = "expired %.1f day(s) ago" % -days if days < 0 else "expires in %.1f day(s)" % days
            _finding(
                findings,
                "certificate",
                sev,
                cert["path"],
                days,
                thr,
                "certificate %s %s (%s)" % (cert["path"], what, cert["not_after"]),
            )
    for check in metrics["health"]:
        if check["status"] == "failed":
            _finding(
                findings,
                "health",
                "critical",
                check["name"],
                check.get("http_status"),
                "< 400",
                "health endpoint %s answers %s" % (check["url"], check.get("http_status") or check.get("error")),
            )


def _evaluate_databases(params, metrics, findings):
    for db in metrics["databases"]:
        engine = db["engine"]
        if db["status"] == "down":
            _finding(
                findings,
                "db_down",
                "critical",
                engine,
                None,
                None,
                "%s is enabled but does not answer: %s" % (engine, db.get("error", "")),
            )
            continue
        if db["status"] != "ok":
            continue
        sev, thr = _level(db["connections_pct"], params["db_conn_warn_pct"], params["db_conn_crit_pct"])
        if sev:
            _finding(
                findings,
                "db_connections",
                sev,
                engine,
                db["connections_pct"],
                thr,
                "%s uses %d of %d connections (%.1f%%)"
                % (engine, db["connections"], db["max_connections"], db["connections_pct"]),
            )
        if db["long_queries"]:
            longest = db["long_queries"][0]["seconds"]
            _finding(
                findings,
                "db_long_query",
                "warning",
                engine,
                longest,
                params["db_long_query_s"],
                "%s has %d statement(s) running longer than %d s (longest %d s)"
                % (engine, len(db["long_queries"]), params["db_long_query_s"], longest),
            )
        for rep in db["replication"]:
            lag = rep["lag_s"]
            if lag is None:
                _finding(
                    findings,
                    "db_replication",
                    "critical",
                    "%s:%s" % (engine, rep["name"]),
                    None,
                    None,
                    "%s replication %s is broken (%s)" % (engine, rep["name"], rep["state"]),
                )
                continue
            sev, thr = _level(lag, params["db_repl_lag_warn_s"], params["db_repl_lag_crit_s"])
            if sev:
                _finding(
                    findings,
                    "db_replication",
                    sev,
                    "%s:%s" % (engine, rep["name"]),
                    lag,
                    thr,
                    "%s replication %s lags %d s" % (engine, rep["name"], lag),
                )


def _evaluate_other(params, metrics, findings):
    upd = metrics["updates"]
    if upd["status"] == "ok" and upd["security"]:
        _finding(
            findings,
            "updates",
            params["updates_severity"],
            "packages",
            upd["security"],
            0,
            "%d security update(s) pending: %s" % (upd["security"], ", ".join(upd["security_packages"][:10])),
            {"packages": list(upd["security_packages"][:10])},
        )
    for log in metrics["logs"]:
        if log["status"] != "ok" or log["requests"] < params["log_min_requests"]:
            continue
        sev, thr = _level(log["error_pct"], params["log_error_warn_pct"], params["log_error_crit_pct"])
        if sev:
            _finding(
                findings,
                "log_errors",
                sev,
                log["name"],
                log["error_pct"],
                thr,
                "%s: %d of %d requests failed with 5xx in the last %d h (%.1f%%)"
                % (log["name"], log["errors_5xx"], log["requests"], params["log_window_h"], log["error_pct"]),
            )


def evaluate(params, metrics):
    findings = []
    _evaluate_system(params, metrics, findings)
    _evaluate_services(params, metrics, findings)
    _evaluate_databases(params, metrics, findings)
    _evaluate_other(params, metrics, findings)
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
            "services": {"type": "list", "elements": "str", "default": []},
            "time_sync_severity": {"type": "str", "default": "warning", "choices": severities},
            "nginx_conf": {"type": "str", "default": ""},
            "cert_paths": {"type": "list", "elements": "str", "default": []},
            "cert_warn_days": {"type": "int", "default": 30},
            "cert_crit_days": {"type": "int", "default": 7},
            "health_urls": {"type": "list", "elements": "dict", "default": []},
            "health_timeout": {"type": "float", "default": 5},
            "postgresql": {"type": "bool", "default": True},
            "mariadb": {"type": "bool", "default": True},
            "db_conn_warn_pct": {"type": "float", "default": 80},
            "db_conn_crit_pct": {"type": "float", "default": 95},
            "db_long_query_s": {"type": "int", "default": 300},
            "db_repl_lag_warn_s": {"type": "int", "default": 60},
            "db_repl_lag_crit_s": {"type": "int", "default": 600},
            "updates_backend": {"type": "str", "default": "none", "choices": ["apt", "dnf", "none"]},
            "updates_severity": {"type": "str", "default": "warning", "choices": severities},
            "logs": {"type": "list", "elements": "dict", "default": []},
            "log_window_h": {"type": "int", "default": 24},
            "log_min_requests": {"type": "int", "default": 20},
            "log_error_warn_pct": {"type": "float", "default": 5},
            "log_error_crit_pct": {"type": "float", "default": 20},
            "log_max_bytes": {"type": "int", "default": 67108864},
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
    certs = [certificate(module, path, "nginx") for path in nginx_certificates(params["nginx_conf"])]
    certs += [
        certificate(module, path, "configured")
        for path in params["cert_paths"]
        if path not in {c["path"] for c in certs}
    ]
    databases = []
    if params["postgresql"]:
        databases.append(postgresql(module, params["db_long_query_s"]))
    if params["mariadb"]:
        databases.append(mariadb(module, params["db_long_query_s"]))
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
        "services": [unit_state(module, name) for name in params["services"]],
        "time_sync": time_sync(module),
        "certificates": certs,
        "health": health(module, params["health_urls"], params["health_timeout"]),
        "databases": databases,
        "updates": pending_updates(module, params["updates_backend"]),
        "logs": log_error_rate(params["logs"], params["log_window_h"], params["log_max_bytes"]),
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
