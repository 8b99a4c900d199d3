"""Notifications to people (the on-call engineer, the team's groups) through Apprise.

Configured per environment in ``inventories/<env>/.opsctl.yml``::

    notify:
      urls_file: /etc/envcredit/notify.urls   # one Apprise URL a line; outside git, mode 0600;
                                              # may be ansible-vault encrypted (the env's vault key)
      urls_env: OPSCTL_NOTIFY_URLS            # the environment variable read as well (default)
      urls:                                   # only URLs without secrets, or with ${VAR} placeholders
        - "json://alerts-relay.internal:8080/opsctl"
        - "wecombot://${WECOM_BOT_KEY}"
      timeout_s: 15                           # the longest a notification may take (default 15)

URLs are Apprise's: ``wecombot://KEY`` (WeCom group bot), ``dingtalk://TOKEN/``
(DingTalk), ``mailto://user:pass@host?to=...`` (e-mail), ``json://host:port/path``
(a generic webhook). A URL's token never reaches stdout, a log or a record:
channels are described as ``scheme://********`` and every part of a URL is
masked in error texts (:class:`~orchestrator.redact.Redactor`).

Messages are zh-CN; times are Beijing time with the offset (``2026-11-29 16:35
北京时间（+08:00）``). A delivery failure never stops the caller: :func:`send`
returns what happened and the caller records it.

Size (over 400 lines): where the notification URLs come from (file, environment, vault),
sending through Apprise with a time limit, and the message texts in two languages.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BadInput, OpsError
from .redact import MASK, Redactor
from .workdays import isoformat, local

DEFAULT_URLS_ENV = "OPSCTL_NOTIFY_URLS"
DEFAULT_TIMEOUT_S = 15.0
_PLACEHOLDER_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,30})://")

SEVERITY_ZH = {"outage": "系统中断（紧急故障）", "general": "一般故障"}
CLOCK_ZH = {"respond": "响应", "recover": "应急恢复", "resolve": "故障解决"}
ENV_ZH = {"production": "生产环境", "staging": "预发布环境", "lab": "实验环境", "test": "测试环境"}
STATE_ZH = {"open": "待响应", "acknowledged": "已响应", "recovered": "已恢复", "resolved": "已解决"}


def log(message: str) -> None:
    """One line to stderr (the journal, under systemd)."""
    sys.stderr.write(f"opsctl notify: {message}\n")
    sys.stderr.flush()


def describe(url: str) -> str:
    """A channel as it may be shown: its scheme only."""
    m = _SCHEME_RE.match(url.strip())
    return f"{m.group(1).lower()}://{MASK}" if m else MASK


def secret_parts(url: str) -> set[str]:
    """Every part of a URL that may be a secret (masked wherever it shows up in a text)."""
    parts = {url, url.strip()}
    try:
        parsed = urllib.parse.urlsplit(url.strip())
    except ValueError:
        return parts
    rest = url.strip().split("://", 1)[-1]
    parts.update({rest, parsed.netloc, parsed.path.strip("/"), parsed.query})
    for value in (parsed.username, parsed.password, parsed.hostname):
        if value:
            parts.add(value)
            parts.add(urllib.parse.unquote(value))
    for segment in parsed.path.split("/"):
        if segment:
            parts.add(segment)
            parts.add(urllib.parse.unquote(segment))
    for _, value in urllib.parse.parse_qsl(parsed.query, keep_blank_values=False):
        parts.add(value)
    return {p for p in parts if len(p) >= 6}


@dataclass
class NotifyConfig:
    """The resolved channels of one environment (``urls`` are secret: never print them)."""

    env: str
    urls: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def configured(self) -> bool:
        return bool(self.urls)

    @property
    def channels(self) -> list[str]:
        return [describe(u) for u in self.urls]

    def redactor(self) -> Redactor:
        return Redactor(p for u in self.urls for p in secret_parts(u))


def _expand(url: str, where: str, problems: list[str]) -> str | None:
    missing = [name for name in _PLACEHOLDER_RE.findall(url) if not os.environ.get(name)]
    if missing:
        problems.append(f"{where}: environment variable {', '.join(missing)} is not set; that URL is skipped")
        return None
    return _PLACEHOLDER_RE.sub(lambda m: os.environ[m.group(1)], url)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def _read_urls_file(path: Path, vault_password_file: Path | None, problems: list[str]) -> list[str]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        problems.append(f"the notification URL file {path} does not exist; nothing is sent through it")
        return []
    except OSError as exc:
        problems.append(f"cannot read the notification URL file {path}: {exc.strerror or exc}")
        return []
    if data.lstrip().startswith(b"$ANSIBLE_VAULT"):
        from .redact import vault_decryptor

        try:
            data = vault_decryptor(vault_password_file, path)(path, data.strip())
        except BadInput as exc:
            problems.append(f"cannot decrypt the notification URL file {path}: {type(exc).__name__}")
            return []
    return _lines(data.decode("utf-8", "replace"))


def load_config(env: str) -> NotifyConfig:
    """The channels of ``env``: ``notify:`` of its ``.opsctl.yml`` plus the environment variable."""
    from .operations import get_environment

    cfg = NotifyConfig(env=env)
    settings: Mapping[str, Any] = {}
    inventory: Path | None = None
    vault: Path | None = None
    try:
        environment = get_environment(env)
        inventory, vault = environment.inventory, environment.vault_password_file
        raw = environment.settings.get("notify") or {}
        if not isinstance(raw, Mapping):
            raise BadInput(f"inventories/{env}/.opsctl.yml: 'notify' must be a mapping (urls, urls_file, urls_env)")
        settings = raw
    except OpsError as err:
        cfg.problems.append(str(err))
    for i, url in enumerate(settings.get("urls") or []):
        expanded = _expand(str(url), f"notify.urls[{i}]", cfg.problems)
        if expanded:
            cfg.urls.append(expanded)
            cfg.sources.append(f"notify.urls[{i}]")
    if settings.get("urls_file"):
        path = Path(os.path.expanduser(str(settings["urls_file"])))
        if not path.is_absolute() and inventory is not None:
            path = inventory / path
        found = _read_urls_file(path, vault, cfg.problems)
        cfg.urls.extend(found)
        cfg.sources.extend([str(path)] * len(found))
    var = str(settings.get("urls_env") or DEFAULT_URLS_ENV)
    from_env = os.environ.get(var, "").split()
    cfg.urls.extend(from_env)
    cfg.sources.extend([f"${var}"] * len(from_env))
    if settings.get("timeout_s") is not None:
        try:
            cfg.timeout_s = max(1.0, float(settings["timeout_s"]))
        except (TypeError, ValueError):
            cfg.problems.append("notify.timeout_s must be a number of seconds")
    unique: dict[str, str] = {}
    for url, source in zip(cfg.urls, cfg.sources):
        unique.setdefault(url, source)
    cfg.urls, cfg.sources = list(unique), list(unique.values())
    return cfg


@dataclass
class Delivery:
    """What happened to one message: per channel ``scheme://********`` and ok or the (masked) reason."""

    title: str
    channels: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    sent: int = 0

    @property
    def attempted(self) -> bool:
        return bool(self.channels)

    @property
    def ok(self) -> bool:
        return self.attempted and not self.errors

    def as_notice(self, kind: str, **extra: Any) -> dict[str, Any]:
        return {
            "kind": kind,
            "channels": list(self.channels),
            "ok": self.ok,
            "sent": self.sent,
            "error": "; ".join(self.errors) or None,
            **extra,
        }

    def summary(self) -> str:
        if not self.attempted:
            return "no channel configured"
        if self.ok:
            return f"sent to {', '.join(self.channels)}"
        return f"FAILED ({self.sent}/{len(self.channels)} sent): {'; '.join(self.errors)}"


def _quiet_apprise() -> None:
    """Apprise's own log lines may carry URLs: keep them out of stderr (we log a masked line)."""
    lg = logging.getLogger("apprise")
    if not any(isinstance(h, logging.NullHandler) for h in lg.handlers):
        lg.addHandler(logging.NullHandler())
    lg.propagate = False


def send(cfg: NotifyConfig, title: str, body: str) -> Delivery:
    """Send one message to every channel of ``cfg``; never raises for a delivery problem."""
    delivery = Delivery(title=title)
    if not cfg.urls:
        return delivery
    try:
        import apprise
    except ImportError:  # pragma: no cover - a venv without requirements.txt
        delivery.channels = cfg.channels
        delivery.errors.append("the apprise package is not installed (make venv)")
        return delivery
    _quiet_apprise()
    redactor = cfg.redactor()
    for url in cfg.urls:
        channel = describe(url)
        delivery.channels.append(channel)
        try:
            obj = apprise.Apprise()
            if not obj.add(url):
                delivery.errors.append(f"{channel}: not a usable Apprise URL")
                continue
            result = obj.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT, timeout=cfg.timeout_s)
            if result:
                delivery.sent += 1
                continue
            reasons = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR", "CRITICAL")]
            reason = reasons[-1] if reasons else f"status {getattr(result.status, 'name', result.status)}"
            delivery.errors.append(f"{channel}: {redactor.redact_text(reason)[:300]}")
        except Exception as exc:  # noqa: BLE001 - a plugin's crash is a failed delivery, not ours
            delivery.errors.append(f"{channel}: {type(exc).__name__}: {redactor.redact_text(str(exc))[:300]}")
    return delivery


# -- messages (zh-CN) ----------------------------------------------------------------------------


def fmt_time(moment: Any) -> str:
    """``2026-11-29 16:35 北京时间（+08:00）``."""
    t = local(moment)
    return f"{t:%Y-%m-%d %H:%M} 北京时间（{isoformat(t)[-6:]}）"


def env_zh(env: str) -> str:
    return f"{ENV_ZH[env]}（{env}）" if env in ENV_ZH else env


def _person(p: Mapping[str, Any] | None) -> str:
    if not p:
        return "（未排班）"
    return f"{p.get('name')}，电话 {p.get('phone')}"


def on_call_lines(on_call: Mapping[str, Any] | None, problem: str | None = None) -> list[str]:
    if on_call is None:
        return [f"值班人员：无法读取值班表（{problem or '未知原因'}），请拨打报修热线并按升级顺序联系"]
    lines = [f"值班人员：{_person(on_call.get('primary'))}"]
    if on_call.get("backup"):
        lines.append(f"备班人员：{_person(on_call.get('backup'))}")
    escalation = [
        e
        for e in on_call.get("escalation") or []
        if e.get("key") not in {(on_call.get("primary") or {}).get("key"), (on_call.get("backup") or {}).get("key")}
    ]
    if escalation:
        lines.append("升级联系：" + "；".join(_person(e) for e in escalation))
    lines.append(f"报修热线：{on_call.get('hotline')}")
    return lines


def opened_message(
    inc: Any,
    record_id: str,
    on_call: Mapping[str, Any] | None,
    roster_problem: str | None = None,
    source: str | None = None,
) -> tuple[str, str]:
    """(title, body) of a new incident: severity, title, on call with phone, deadlines, record id."""
    sev = SEVERITY_ZH.get(inc.severity, inc.severity)
    title = f"【新故障】{inc.id} {sev}"
    lines = [
        f"故障编号：{inc.id}",
        f"故障级别：{sev}",
        f"故障标题：{inc.summary}",
        f"所属环境：{env_zh(inc.environment)}",
        f"报告时间：{fmt_time(inc.reported_at)}",
    ]
    if source:
        lines.append(f"故障来源：{source}")
    lines += on_call_lines(on_call, roster_problem)
    lines.append("处理时限：")
    for clock, due in inc.deadlines.items():
        lines.append(f"  {CLOCK_ZH.get(clock, clock)}：{fmt_time(due)} 之前")
    lines.append(f"变更记录：{record_id}")
    lines.append(f"请尽快响应：opsctl incident ack {inc.id} --by <姓名>")
    return title, "\n".join(lines)


def recovered_message(inc: Any, record_id: str, at: Any, alertname: str, recovered: bool) -> tuple[str, str]:
    title = f"【告警恢复】{inc.id}"
    lines = [
        f"故障编号：{inc.id}",
        f"故障标题：{inc.summary}",
        f"告警名称：{alertname}",
        f"告警恢复时间：{fmt_time(at)}",
        ("已记录应急恢复时间（系统中断类故障）。" if recovered else "已记录告警恢复（一般故障无应急恢复时限）。"),
        f"请查明原因后结案：opsctl incident resolve {inc.id} --cause <原因及处理>",
        f"变更记录：{record_id}",
    ]
    return title, "\n".join(lines)


def clock_message(
    inc: Any, clock: Any, level: int, on_call: Mapping[str, Any] | None, roster_problem: str | None = None
) -> tuple[str, str]:
    """An SLA warning: ``level`` 50 or 80 (% of the clock used) or 100 (breached)."""
    name = CLOCK_ZH.get(clock.clock, clock.clock)
    if level >= 100:
        title = f"【SLA 超时】{inc.id} {name}时限已过"
        head = f"{name}时限已过（{fmt_time(clock.due)}），请立即处理并向项目经理报告。"
    else:
        title = f"【SLA 预警】{inc.id} {name}时限已用 {level}%"
        head = f"{name}时限已用去 {level}%，截止时间 {fmt_time(clock.due)}。"
    lines = [
        head,
        f"故障编号：{inc.id}",
        f"故障级别：{SEVERITY_ZH.get(inc.severity, inc.severity)}",
        f"故障标题：{inc.summary}",
        f"当前状态：{STATE_ZH.get(inc.state, inc.state)}",
        f"报告时间：{fmt_time(inc.reported_at)}",
        *on_call_lines(on_call, roster_problem),
        f"立案记录：{inc.opened_record}",
    ]
    return title, "\n".join(lines)


def alert_message(alert: Mapping[str, Any], env: str, reason: str) -> tuple[str, str]:
    """An alert that opens no incident (no or unknown ``incident_severity``): notified only."""
    labels: Mapping[str, Any] = alert.get("labels") or {}
    annotations: Mapping[str, Any] = alert.get("annotations") or {}
    firing = alert.get("status") == "firing"
    name = str(labels.get("alertname") or "")
    title = f"【{'告警' if firing else '告警恢复'}】{name}"
    lines = [
        f"告警名称：{name}",
        f"告警状态：{'触发中' if firing else '已恢复'}",
        f"所属环境：{env_zh(env)}",
    ]
    if labels.get("instance"):
        lines.append(f"实例：{labels['instance']}")
    if labels.get("severity"):
        lines.append(f"告警级别：{labels['severity']}")
    text = annotations.get("summary") or annotations.get("description")
    if text:
        lines.append(f"摘要：{text}")
    lines.append(f"开始时间：{fmt_time(alert['starts_at_dt'])}")
    if not firing and alert.get("ends_at_dt") is not None:
        lines.append(f"恢复时间：{fmt_time(alert['ends_at_dt'])}")
    lines.append(f"说明：{reason}")
    lines.append(f"告警指纹：{alert.get('fingerprint')}")
    return title, "\n".join(lines)


def scheduled_failure_message(
    timer: str, unit: str, operation: str | None, env: str | None, newest: Mapping[str, Any] | None, at: Any
) -> tuple[str, str]:
    title = f"【定时任务失败】{timer}"
    lines = [
        f"定时任务：{timer}",
        f"systemd 单元：{unit}",
        f"运维操作：{_op_zh(operation) if operation else '（未在 schedules/schedules.yml 中找到该定时任务）'}",
    ]
    if env:
        lines.append(f"所属环境：{env_zh(env)}")
    lines.append(f"失败通知时间：{fmt_time(at)}")
    if newest is not None:
        started = _parse(newest.get("started"))
        when = fmt_time(started) if started is not None else "未知"
        status = RUN_STATUS_ZH.get(str(newest.get("status")), str(newest.get("status")))
        lines.append(f"该操作最新变更记录：{newest.get('id')}（状态：{status}，开始于 {when}）")
    else:
        lines.append("该操作最新变更记录：无（任务可能在写入记录之前就已失败）")
    lines.append(f"请查看日志：journalctl -u {unit}；记录详情：opsctl records show <记录编号>")
    return title, "\n".join(lines)


#: A run's status as the zh-CN messages and reports name it.
RUN_STATUS_ZH = {
    "successful": "成功",
    "failed": "失败",
    "canceled": "已取消",
    "interrupted": "已中断",
    "timeout": "超时",
    "running": "运行中",
}


def _op_zh(name: str) -> str:
    """``日常巡检（inspect）``: the operation's zh title with the name an engineer types."""
    from .operations import title

    zh = title(name, "zh")
    return f"{zh}（{name}）" if zh != name else name


def _parse(text: Any) -> Any:
    from .workdays import parse_time

    if not isinstance(text, str):
        return None
    try:
        return parse_time(text)
    except OpsError:
        return None


def channels_text(channels: Sequence[str] | Iterable[str]) -> str:
    return ", ".join(channels) or "-"
