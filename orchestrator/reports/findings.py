"""A finding's detail in the report's language, built from its structured fields at render time.

Every finding (``inspect_probe``, ``inspect_backups``, the forecasts in
:mod:`orchestrator.inspection`) carries ``check`` (its code), ``target``, ``value`` and
``threshold``, plus an English ``message`` for engineers. The English report shows the
message; the zh-CN report never does: it is written here from the code and the numbers, so
no English sentence reaches the bureau. Names a person types (paths, units, packages) are
marked as code with backticks (:func:`orchestrator.reports.render.code_spans` renders them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

SERVICE_STATES = {
    "inactive": "未运行",
    "failed": "失败",
    "activating": "启动中",
    "deactivating": "停止中",
    "reloading": "重新加载中",
    "unknown": "未知",
}


def _n(value: Any, digits: int = 1) -> str:
    if isinstance(value, bool) or value is None:
        return "-"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}"
    return str(value)


def _code(value: Any) -> str:
    text = str(value if value is not None else "-").replace("`", "'")
    return f"`{text}`"


def _units(f: Mapping[str, Any]) -> str:
    items = (f.get("params") or {}).get("units") if isinstance(f.get("params"), Mapping) else None
    return "：" + "、".join(_code(u) for u in items) if isinstance(items, list) and items else ""


def _packages(f: Mapping[str, Any]) -> str:
    items = (f.get("params") or {}).get("packages") if isinstance(f.get("params"), Mapping) else None
    return "：" + "、".join(_code(p) for p in items[:10]) if isinstance(items, list) and items else ""


def _certificate(f: Mapping[str, Any]) -> str:
    value = f.get("value")
    if not isinstance(value, (int, float)):
        return f"证书 {_code(f.get('target'))} 无法读取"
    if value < 0:
        return f"证书 {_code(f.get('target'))} 已过期 {_n(-value)} 天"
    return f"证书 {_code(f.get('target'))} 将在 {_n(value)} 天后过期（阈值 {_n(f.get('threshold'), 0)} 天）"


def _replication(f: Mapping[str, Any]) -> str:
    if f.get("value") is None:
        return f"{_code(f.get('target'))} 复制已中断"
    return f"{_code(f.get('target'))} 复制延迟 {_n(f.get('value'), 0)} 秒（阈值 {_n(f.get('threshold'), 0)} 秒）"


def _backup(f: Mapping[str, Any], verified: bool) -> str:
    what = "经恢复验证的备份" if verified else "备份"
    if f.get("value") is None:
        return f"主机 {f.get('target')} 没有{what}"
    return f"最新{what}已有 {_n(f.get('value'))} 小时（允许 {_n(f.get('threshold'), 0)} 小时）"


ZH: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "disk": lambda f: f"{_code(f.get('target'))} 已用 {_n(f.get('value'))}%（阈值 {_n(f.get('threshold'), 0)}%）",
    "inodes": lambda f: (
        f"{_code(f.get('target'))} 索引节点已用 {_n(f.get('value'))}%（阈值 {_n(f.get('threshold'), 0)}%）"
    ),
    "load": lambda f: f"5 分钟平均负载为每 CPU {_n(f.get('value'), 2)}（阈值 {_n(f.get('threshold'))}）",
    "memory": lambda f: f"内存已用 {_n(f.get('value'))}%（阈值 {_n(f.get('threshold'), 0)}%）",
    "swap": lambda f: f"交换分区已用 {_n(f.get('value'))}%（阈值 {_n(f.get('threshold'), 0)}%）",
    "systemd": lambda f: f"{_n(f.get('value'), 0)} 个系统服务单元处于失败状态{_units(f)}",
    "reboot": lambda f: "有待完成的重启（内核或库已更新）",
    "service": lambda f: (
        f"服务 {_code(f.get('target'))} 已设为开机启动但未运行（{SERVICE_STATES.get(str(f.get('value')), '未运行')}）"
    ),
    "time_sync": lambda f: "系统时钟未同步",
    "certificate": _certificate,
    "health": lambda f: (
        f"健康检查 {_code(f.get('target'))} 返回状态码 {f.get('value')}"
        if isinstance(f.get("value"), int)
        else f"健康检查 {_code(f.get('target'))} 无响应"
    ),
    "db_down": lambda f: f"数据库 {_code(f.get('target'))} 已启用但无响应",
    "db_connections": lambda f: (
        f"数据库 {_code(f.get('target'))} 连接数已用 {_n(f.get('value'))}%（阈值 {_n(f.get('threshold'), 0)}%）"
    ),
    "db_long_query": lambda f: (
        f"数据库 {_code(f.get('target'))} 有运行超过 {_n(f.get('threshold'), 0)} 秒的语句（最长 {_n(f.get('value'), 0)} 秒）"
    ),
    "db_replication": _replication,
    "updates": lambda f: f"有 {_n(f.get('value'), 0)} 个安全更新待安装{_packages(f)}",
    "log_errors": lambda f: (
        f"{_code(f.get('target'))}：{_n(f.get('value'))}% 的请求返回服务器错误（阈值 {_n(f.get('threshold'), 0)}%）"
    ),
    "backup": lambda f: _backup(f, verified=False),
    "backup_verify": lambda f: _backup(f, verified=True),
    "disk_forecast": lambda f: (
        f"按当前增长速度，{_code(f.get('target'))} 预计 {_n(f.get('value'))} 天后写满（阈值 {_n(f.get('threshold'), 0)} 天）"
    ),
    "certificate_forecast": lambda f: f"证书 {_code(f.get('target'))} 将在 {_n(f.get('value'), 0)} 天后到期",
}


def detail(finding: Mapping[str, Any], lang: str) -> str:
    """The finding's detail: the engineer's message in English; in zh, the sentence for its code
    (a code this table does not know yet: its target, value and threshold, still in Chinese)."""
    if lang != "zh":
        return str(finding.get("message") or "")
    build = ZH.get(str(finding.get("check")))
    if build is not None:
        return build(finding)
    return (
        f"检查项 {_code(finding.get('check'))}：对象 {_code(finding.get('target'))}，"
        f"数值 {_n(finding.get('value'))}，阈值 {_n(finding.get('threshold'))}"
    )
