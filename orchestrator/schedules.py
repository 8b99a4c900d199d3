"""Scheduled operations: systemd timers on the control host, configured in ``schedules/schedules.yml``.

Every entry becomes ``envcredit-ops-<name>.timer`` + ``.service``; the service
runs ``opsctl run <operation> --env <env> --standard-change`` when the
environment's policy lists the operation under ``standard_changes`` (its
pre-approved change id becomes the run's ticket), else ``--reason scheduled``,
which only a read-only operation may use; a changing operation that is not a
standard change is refused at install (it would be refused every night). The
service sets ``OPSCTL_LAUNCH=scheduled`` and ``OPSCTL_OPERATOR=timer:<name>``,
so the change record says launch "scheduled" and names the timer as
``operator.on_behalf_of`` (the account the service runs as is ``operator.user``).
What a controller adds for unattended runs, and never commits (``OPSCTL_VAULT_PASSWORD_FILE``,
``OPSCTL_STORE`` for the records and the host leases, ``OPSCTL_NOTIFY_URLS``), goes into
the optional ``EnvironmentFile=`` :data:`ENV_FILE` (mode 0600, owned by the service user).
Unit files carry a marker line; ``remove`` (and the clean-up of entries no
longer configured) touches only marked files.

The work is a shell script run as root either here (``--target local``) or on
an inventory host over Ansible's ``script`` module (``--target HOST``: a lab
host standing in for the control host in tests).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import paths
from .errors import BadInput, OpsError

PREFIX = "envcredit-ops-"
MARKER = "# managed by opsctl schedule (schedules/schedules.yml)"
UNIT_DIR = "/etc/systemd/system"
NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,40}")
#: Template unit that each timer's service names in OnFailure= (instance: the timer's name).
FAILURE_UNIT = f"{PREFIX}notify-failure@"
#: The controller's own settings for unattended runs (optional: the ``-`` prefix).
ENV_FILE = "/etc/envcredit-ops/opsctl.env"
CALENDAR_RE = re.compile(r"[A-Za-z0-9*:,./~ -]{1,80}")
#: The opsctl commands a timer may run besides ``opsctl run OPERATION`` (``command:`` in schedules.yml).
COMMANDS = {("incident", "check")}


class ScheduleError(OpsError):
    """Installing, listing or removing the timers failed on the target."""


@dataclass(frozen=True)
class Timer:
    name: str
    operation: str
    on_calendar: str
    env: str
    description: str
    repo: str
    user: str
    timeout_s: int
    #: The environment's policy lists the operation as a standard change: run with --standard-change.
    standard_change: bool = False
    #: Instead of an operation: an opsctl command of :data:`COMMANDS` (e.g. ``incident check``),
    #: which changes no host and is no change record of its own.
    opsctl_command: tuple[str, ...] = ()

    @property
    def unit(self) -> str:
        return f"{PREFIX}{self.name}"

    def command(self) -> list[str]:
        if self.opsctl_command:  # incidents carry their environment: no --env
            return [f"{self.repo}/.venv/bin/opsctl", *self.opsctl_command]
        authority = ["--standard-change"] if self.standard_change else ["--reason", "scheduled"]
        return [f"{self.repo}/.venv/bin/opsctl", "run", self.operation, "--env", self.env, *authority]

    @property
    def what(self) -> str:
        return "opsctl " + (" ".join(self.opsctl_command) if self.opsctl_command else f"run {self.operation}")

    def environment(self) -> dict[str, str]:
        return {"OPSCTL_LAUNCH": "scheduled", "OPSCTL_OPERATOR": f"timer:{self.name}"}

    def service_text(self) -> str:
        env = "\n".join(f"Environment={k}={v}" for k, v in self.environment().items())
        return (
            f"{MARKER}\n[Unit]\nDescription=envcredit-ops: {_unit_text(self.description)} ({self.what})\n"
            f"Wants=network-online.target\nAfter=network-online.target\n"
            f"OnFailure={FAILURE_UNIT}{self.name}.service\n\n"
            f"[Service]\nType=oneshot\nUser={self.user}\nWorkingDirectory={self.repo}\n{env}\n"
            f"EnvironmentFile=-{ENV_FILE}\n"
            # `incident check` exits 1 for a breached clock, which it has notified itself:
            # not a failure of the timer (that would send a second, misleading notice)
            f"{'SuccessExitStatus=1' + chr(10) if self.opsctl_command == ('incident', 'check') else ''}"
            f"ExecStart={shlex.join(self.command())}\nTimeoutStartSec={self.timeout_s}\n"
        )

    def failure_text(self) -> str:
        """The template unit OnFailure= starts: ``opsctl notify scheduled-failure`` (zh-CN, Apprise)."""
        cmd = [
            f"{self.repo}/.venv/bin/opsctl",
            "notify",
            "scheduled-failure",
            "--timer",
            "%i",
            "--unit",
            f"{PREFIX}%i.service",
            "--env",
            self.env,
        ]
        return (
            f"{MARKER}\n[Unit]\nDescription=envcredit-ops: tell the on-call team that timer %i failed\n\n"
            f"[Service]\nType=oneshot\nUser={self.user}\nWorkingDirectory={self.repo}\n"
            f"EnvironmentFile=-{ENV_FILE}\nExecStart={' '.join(cmd)}\nTimeoutStartSec=120\n"
        )

    def timer_text(self) -> str:
        return (
            f"{MARKER}\n[Unit]\nDescription=envcredit-ops timer: {_unit_text(self.description)}\n\n"
            f"[Timer]\nOnCalendar={self.on_calendar}\nPersistent=true\nUnit={self.unit}.service\n\n"
            f"[Install]\nWantedBy=timers.target\n"
        )


def _unit_text(text: str) -> str:
    """Text for a unit file's value: ``%`` starts a systemd specifier, so it is doubled."""
    return text.replace("%", "%%")


def config_path() -> Path:
    env = os.environ.get("OPSCTL_SCHEDULES")
    return Path(env) if env else paths.repo_root() / "schedules" / "schedules.yml"


def load(path: Path | None = None, env: str | None = None, *, check_policy: bool = True) -> list[Timer]:
    """The timers of the configuration file (``env`` overrides every entry's environment).

    ``check_policy`` False only reads the file (no environment policy or catalog is
    consulted; ``standard_change`` is then False): what a failure notice needs."""
    path = path or config_path()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise BadInput(f"cannot read the schedules {path}: {exc}") from exc
    if not isinstance(raw, Mapping) or not isinstance(raw.get("timers"), Mapping):
        raise BadInput(f"{path}: expected a mapping with `timers`")
    defaults = raw.get("defaults") or {}
    out = []
    for name, entry in raw["timers"].items():
        if not isinstance(entry, Mapping):
            raise BadInput(f"{path}: timer {name!r} must be a mapping")
        merged = {**defaults, **entry}
        if not NAME_RE.fullmatch(str(name)):
            raise BadInput(f"{path}: bad timer name {name!r} (lower case, digits, dashes)")
        command = merged.get("command")
        if command is not None:
            if not isinstance(command, list) or tuple(str(c) for c in command) not in COMMANDS:
                known = "; ".join(" ".join(c) for c in sorted(COMMANDS))
                raise BadInput(f"{path}: timer {name!r}: command must be one of: {known}")
            if merged.get("operation"):
                raise BadInput(f"{path}: timer {name!r}: give an operation or a command, not both")
        for key in ("on_calendar",) if command is not None else ("operation", "on_calendar"):
            if not merged.get(key):
                raise BadInput(f"{path}: timer {name!r} needs {key}")
        if not CALENDAR_RE.fullmatch(str(merged["on_calendar"])):
            raise BadInput(f"{path}: timer {name!r}: bad on_calendar {merged['on_calendar']!r}")
        if command is None and not NAME_RE.fullmatch(str(merged["operation"]).replace("_", "-")):
            raise BadInput(f"{path}: timer {name!r}: bad operation {merged['operation']!r}")
        timer_env = str(env or merged.get("env") or "production")
        if command is not None:
            if check_policy:
                from .operations import get_environment

                get_environment(timer_env)  # an unknown environment is refused at install
            out.append(
                Timer(
                    name=str(name),
                    operation="",
                    on_calendar=str(merged["on_calendar"]),
                    env=timer_env,
                    description=str(merged.get("description") or name).replace("\n", " "),
                    repo=str(merged.get("repo") or paths.repo_root()),
                    user=str(merged.get("user") or "root"),
                    timeout_s=int(merged.get("timeout_s") or 7200),
                    opsctl_command=tuple(str(c) for c in command),
                )
            )
            continue
        out.append(
            Timer(
                name=str(name),
                operation=str(merged["operation"]),
                on_calendar=str(merged["on_calendar"]),
                env=timer_env,
                description=str(merged.get("description") or name).replace("\n", " "),
                repo=str(merged.get("repo") or paths.repo_root()),
                user=str(merged.get("user") or "root"),
                timeout_s=int(merged.get("timeout_s") or 7200),
                standard_change=(
                    _is_standard_change(str(name), str(merged["operation"]), timer_env) if check_policy else False
                ),
            )
        )
    return out


def _is_standard_change(name: str, operation: str, env: str) -> bool:
    """Whether the timer runs as a standard change; :class:`BadInput` when it could not run at all
    (a changing operation that the environment's policy does not list needs a ticket)."""
    from .operations import get_environment, get_operation

    environment = get_environment(env)
    op = get_operation(operation)
    if operation in environment.standard_changes:
        environment.standard_change(op)  # refuses a high-risk one
        return True
    if op.read_only or not environment.requires_ticket:
        return False
    raise BadInput(
        f"timer {name!r}: operation {operation!r} changes things and is not a standard change "
        f"in {env!r}, so every run would be refused for want of a ticket: list it under "
        f"standard_changes in {environment.policy_shown()} (once approved), or run it by hand "
        "with --ticket"
    )


# -- scripts -------------------------------------------------------------------------------

_LIST_SCRIPT = f"""
export SYSTEMD_COLORS=0 SYSTEMD_PAGER= COLUMNS=200
for f in {UNIT_DIR}/{PREFIX}*.timer; do
  [ -e "$f" ] || continue
  grep -qF '{MARKER}' "$f" || continue
  u=$(basename "$f")
  printf 'TIMER\\t%s\\t%s\\t%s\\t%s\\t%s\\n' "$u" \\
    "$(systemctl show -P ActiveState "$u")" "$(systemctl show -P UnitFileState "$u")" \\
    "$(systemctl show -P NextElapseUSecRealtime "$u")" "$(grep -m1 '^OnCalendar=' "$f" | cut -d= -f2-)"
done
echo '--- list-timers'
systemctl list-timers --all --no-pager --full '{PREFIX}*' || true
"""

_REMOVE_FN = f"""
remove_unit() {{
  systemctl disable --now "$1.timer" >/dev/null 2>&1 || true
  systemctl stop "$1.service" >/dev/null 2>&1 || true
  systemctl reset-failed "$1.service" "$1.timer" >/dev/null 2>&1 || true
  rm -f "/var/lib/systemd/timers/stamp-$1.timer"
  for s in timer service; do
    f={UNIT_DIR}/$1.$s
    if [ -e "$f" ] && grep -qF '{MARKER}' "$f"; then rm -f "$f"; echo "REMOVED $1.$s"; fi
  done
}}
"""


def install_script(timers: list[Timer]) -> str:
    keep = " ".join(t.unit for t in timers)
    lines = ["set -eu", _REMOVE_FN]
    for t in timers:
        for suffix, text in (("service", t.service_text()), ("timer", t.timer_text())):
            lines.append(f"cat > {UNIT_DIR}/{t.unit}.{suffix} <<'OPSCTL_UNIT_EOF'\n{text}OPSCTL_UNIT_EOF")
            lines.append(f"chmod 0644 {UNIT_DIR}/{t.unit}.{suffix}")
    if timers:  # the OnFailure= template: one for every timer
        lines.append(
            f"cat > {UNIT_DIR}/{FAILURE_UNIT}.service <<'OPSCTL_UNIT_EOF'\n{timers[0].failure_text()}OPSCTL_UNIT_EOF"
        )
        lines.append(f"chmod 0644 {UNIT_DIR}/{FAILURE_UNIT}.service")
    lines.append(f"""for f in {UNIT_DIR}/{PREFIX}*.timer; do
  [ -e "$f" ] || continue
  u=$(basename "$f" .timer)
  case " {keep} " in *" $u "*) ;; *) grep -qF '{MARKER}' "$f" && remove_unit "$u";; esac
done""")
    lines.append("systemctl daemon-reload")
    for t in timers:
        lines.append(f"systemctl enable --now {t.unit}.timer >/dev/null 2>&1 && echo 'INSTALLED {t.unit}.timer'")
    lines.append(_LIST_SCRIPT)
    return "\n".join(lines) + "\n"


def remove_script() -> str:
    return (
        "\n".join(
            [
                "set -eu",
                _REMOVE_FN,
                f"""for f in {UNIT_DIR}/{PREFIX}*.timer {UNIT_DIR}/{PREFIX}*.service; do
  [ -e "$f" ] || continue
  grep -qF '{MARKER}' "$f" || continue
  b=$(basename "$f"); remove_unit "${{b%.*}}"
done
systemctl daemon-reload""",
                _LIST_SCRIPT,
            ]
        )
        + "\n"
    )


def list_script() -> str:
    return "set -eu\n" + _LIST_SCRIPT


# -- running them --------------------------------------------------------------------------


def run_script(script: str, target: str, env: str) -> str:
    """Run ``script`` as root on ``target`` ("local" or an inventory host of ``env``); its stdout."""
    if target == "local":
        cmd = ["bash", "-s"] if os.geteuid() == 0 else ["sudo", "-n", "bash", "-s"]
        proc = subprocess.run(cmd, input=script, capture_output=True, text=True, timeout=300, check=False)
        if proc.returncode != 0:
            raise ScheduleError(f"the schedule script failed here (rc {proc.returncode}): {proc.stderr.strip()[-500:]}")
        return proc.stdout
    return _run_remote(script, target, env)


def _run_remote(script: str, host: str, env: str) -> str:
    from .operations import get_environment

    environment = get_environment(env)
    with tempfile.NamedTemporaryFile("w", suffix=".sh", prefix="opsctl-schedule-", delete=False) as fh:
        fh.write("#!/bin/bash\n" + script)
        script_path = fh.name
    try:
        # ansible_become as an extra var: the lab inventory's `ansible_become: false` beats --become.
        cmd = [
            _ansible(),
            host,
            "-i",
            str(environment.inventory),
            "--become",
            "-e",
            "ansible_become=true",
            "-m",
            "ansible.builtin.script",
            "-a",
            script_path,
        ]
        if environment.vault_password_file is not None:
            cmd += ["--vault-password-file", str(environment.vault_password_file)]
        proc_env = dict(
            os.environ,
            ANSIBLE_STDOUT_CALLBACK="json",
            ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
            ANSIBLE_CONFIG=str(paths.repo_root() / "ansible.cfg"),
        )
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env=proc_env,
            cwd=paths.repo_root(),
            stdin=subprocess.DEVNULL,
        )
    finally:
        os.unlink(script_path)
    try:
        hosts = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]
    except (ValueError, KeyError, IndexError) as exc:
        raise ScheduleError(f"cannot reach {host} in {env}: {(proc.stderr or proc.stdout).strip()[-500:]}") from exc
    if host not in hosts or len(hosts) != 1:
        raise BadInput(f"--target {host!r} must name exactly one host of {env} (matched {', '.join(hosts) or 'none'})")
    res = hosts[host]
    if res.get("failed") or res.get("unreachable") or res.get("rc", 0) != 0:
        raise ScheduleError(
            f"the schedule script failed on {host}: {(res.get('stderr') or res.get('msg') or '').strip()[-500:]}"
        )
    return str(res.get("stdout") or "")


def _ansible() -> str:
    import sys

    candidate = Path(sys.executable).parent / "ansible"
    return str(candidate) if candidate.exists() else "ansible"


def parse_list(output: str) -> dict[str, Any]:
    """Rows of the list part of a script's output, and the raw `systemctl list-timers` text."""
    rows = []
    output = output.replace("\r", "")
    for line in output.splitlines():
        if line.startswith("TIMER\t"):
            _tag, unit, active, enabled, next_run, calendar = (line.split("\t") + [""] * 6)[:6]
            rows.append(
                {"timer": unit, "active": active, "enabled": enabled, "next": next_run or None, "on_calendar": calendar}
            )
    raw = output.split("--- list-timers", 1)[1].strip() if "--- list-timers" in output else ""
    return {
        "timers": rows,
        "list_timers": raw,
        "installed": [ln.split()[1] for ln in output.splitlines() if ln.startswith("INSTALLED ")],
        "removed": [ln.split()[1] for ln in output.splitlines() if ln.startswith("REMOVED ")],
    }


def install(target: str, env: str, timer_env: str | None = None, path: Path | None = None) -> dict[str, Any]:
    timers = load(path, timer_env)
    return parse_list(run_script(install_script(timers), target, env)) | {
        "configured": [t.unit + ".timer" for t in timers]
    }


def remove(target: str, env: str) -> dict[str, Any]:
    return parse_list(run_script(remove_script(), target, env))


def list_timers(target: str, env: str) -> dict[str, Any]:
    return parse_list(run_script(list_script(), target, env))
