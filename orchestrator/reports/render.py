"""Rendering of the project's reports (SLA, and later inspection, monthly, patches).

One helper for every report:

* templates in ``orchestrator/reports/templates/``: ``<name>.html.j2`` (extends
  ``base.html.j2``: printable CSS inline, no external assets) and
  ``<name>.md.j2``; JSON is the report's data as is, no template;
* Jinja2 with autoescape for HTML templates (Markdown templates escape table
  cells with the ``md`` filter instead), ``StrictUndefined`` so a missing
  string or field fails loudly;
* a strings table per report, ``<name>.strings.yml``, one entry per key with
  its ``zh`` and ``en`` text side by side, merged over ``base.strings.yml``;
  every key must have both languages;
* :func:`write_output` writes atomically (0600) or returns the text for stdout;
* :func:`format_for`: the one rule for a command's format when ``--format`` is not given
  (the ``--out`` file's suffix, if the command has that format; else the command's default);
* :func:`to_csv` with :func:`csv_cell`, the one guard against spreadsheet formulas.

A report module builds a JSON-ready dict and calls
``render_report("sla", fmt, lang, data)``.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import yaml
from markupsafe import Markup

from ..errors import BadInput, OpsError
from ..workdays import TZ

LANGS = ("zh", "en")
FORMATS = ("html", "md", "json")
HTML_LANG = {"zh": "zh-CN", "en": "en"}


class ReportError(OpsError):
    """A template or strings table is broken."""


def _templates() -> Any:
    return resources.files("orchestrator.reports").joinpath("templates")


@lru_cache(maxsize=32)
def _strings_file(name: str) -> dict[str, dict[str, str]]:
    node = _templates().joinpath(f"{name}.strings.yml")
    if not node.is_file():
        return {}
    try:
        data = yaml.safe_load(node.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ReportError(f"{name}.strings.yml is not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ReportError(f"{name}.strings.yml must map keys to {{zh, en}}")
    out: dict[str, dict[str, str]] = {}
    for key, texts in data.items():
        if not isinstance(texts, Mapping) or any(not isinstance(texts.get(lang), str) for lang in LANGS):
            raise ReportError(f"{name}.strings.yml: {key!r} needs a text for each of {', '.join(LANGS)}")
        out[str(key)] = {lang: str(texts[lang]) for lang in LANGS}
    return out


def strings(name: str, lang: str) -> dict[str, str]:
    """The strings of report ``name`` in ``lang`` (the base table, overridden by the report's)."""
    check_lang(lang)
    merged = {**_strings_file("base"), **_strings_file(name)}
    return {key: texts[lang] for key, texts in merged.items()}


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise BadInput(f"language must be one of {', '.join(LANGS)}, not {lang!r}")
    return lang


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise BadInput(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return fmt


# -- filters ---------------------------------------------------------------------------------


def md_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell (and not interpreted as HTML)."""
    text = "" if value is None else str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
    return text.replace("<", "&lt;").replace(">", "&gt;")


#: How a time shown to a person is marked as Beijing time, per language.
ZONE_MARK = {"zh": "北京时间", "en": "(UTC+8)"}


def when(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An ISO 8601 time (string or datetime) as Beijing wall time, e.g. ``2026-10-10 19:30``.

    Records keep UTC (``...Z``), so an aware time is converted, whatever its offset, and a
    time without an offset (older records, a controller's naive clock) is read as UTC.
    The zone marker is added by :func:`when_marked` (the templates' ``when`` filter).
    """
    if value is None or value == "":
        return "-"
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    except ValueError:
        return str(value)
    if not isinstance(moment, dt.datetime):
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(TZ).strftime(fmt)


def when_marked(value: Any, lang: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """:func:`when` with the zone marked: ``2026-11-29 10:15 北京时间`` / ``2026-11-29 10:15 (UTC+8)``."""
    text = when(value, fmt)
    return text if text == "-" else f"{text} {ZONE_MARK[check_lang(lang)]}"


@jinja2.pass_context
def _when_filter(ctx: Any, value: Any, fmt: str = "%Y-%m-%d %H:%M", zone: bool = True) -> str:
    """The templates' ``when``: Beijing time, marked in the report's language unless ``zone=false``
    (a column whose header already names the zone)."""
    return when_marked(value, str(ctx.get("lang") or "zh"), fmt) if zone else when(value, fmt)


_CODE_SPAN = re.compile(r"`([^`]*)`")


def _code_html(text: str) -> str:
    """``text`` escaped, its `backticked` parts in ``<code>``."""
    parts = _CODE_SPAN.split(text)
    return "".join(html.escape(p) if i % 2 == 0 else f"<code>{html.escape(p)}</code>" for i, p in enumerate(parts))


@jinja2.pass_context
def code_spans(ctx: Any, value: Any) -> Any:
    """Text whose `backticked` parts are names a person types (paths, units, commands): in an
    HTML report escaped and wrapped in ``<code>``, in Markdown kept as code spans."""
    text = "" if value is None else str(value)
    if not ctx.eval_ctx.autoescape:
        return text
    return Markup(_code_html(text))


def evidence(value: Any) -> str:
    """Evidence as read on the host (setting = value), each item a code span for :func:`code_spans`:
    the same in every language, since it is what the host's files and commands say."""
    if isinstance(value, Mapping):
        items = [
            f"{k} = {json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v}" for k, v in value.items()
        ]
    elif isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    else:
        items = [] if value in (None, "") else [str(value)]
    spans = ["`" + i.replace("`", "'") + "`" for i in items if i]
    return "；".join(spans)


@jinja2.pass_context
def finding_detail(ctx: Any, finding: Mapping[str, Any]) -> str:
    """A finding's detail in the report's language (:func:`orchestrator.reports.findings.detail`)."""
    from .findings import detail

    return detail(finding, str(ctx.get("lang") or "zh"))


def number(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}"
    return str(value)


@jinja2.pass_context
def op_title(ctx: Any, name: Any) -> str:
    """An operation's name for the reader: its ``title_zh`` in zh reports, the name in English."""
    from ..operations import title

    return title(str(name), str(ctx.get("lang") or "zh"))


@jinja2.pass_context
def env_name(ctx: Any, env: Any) -> str:
    """An environment for the reader: 生产环境 in zh reports (its own name when it has no zh name)."""
    from ..notify import ENV_ZH

    text = "" if env is None else str(env)
    return ENV_ZH.get(text, text) if str(ctx.get("lang") or "zh") == "zh" else text


def pretty(value: Any) -> str:
    """Indented JSON (sorted keys) of any value."""
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("orchestrator.reports", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "htm", "html.j2"), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = md_cell
    env.filters["when"] = _when_filter
    env.filters["num"] = number
    env.filters["pretty"] = pretty
    env.filters["code"] = code_spans
    env.filters["evidence"] = evidence
    env.filters["finding"] = finding_detail
    env.filters["op_title"] = op_title
    env.filters["env"] = env_name
    return env


def render_report(name: str, fmt: str, lang: str, data: Mapping[str, Any]) -> str:
    """Render report ``name``'s data as ``fmt`` (html, md, json) in ``lang`` (zh, en)."""
    check_format(fmt)
    check_lang(lang)
    if fmt == "json":
        return json.dumps({"report": name, "lang": lang, **data}, ensure_ascii=False, indent=2, sort_keys=False) + "\n"
    try:
        template = environment().get_template(f"{name}.{fmt}.j2")
        text = template.render(data=data, t=strings(name, lang), lang=lang, html_lang=HTML_LANG[lang])
    except jinja2.TemplateError as exc:
        raise ReportError(f"cannot render the {name} report ({fmt}, {lang}): {exc}") from exc
    provenance = data.get("provenance")
    return _with_provenance(text, fmt, lang, provenance) if isinstance(provenance, Mapping) else text


#: Where a report keeps the archive HEAD and the records it was built from, for
#: ``opsctl records verify-export`` (HTML: a JSON script element; Markdown: an HTML comment).
PROVENANCE_ID = "envcredit-report"


def _with_provenance(text: str, fmt: str, lang: str, provenance: Mapping[str, Any]) -> str:
    """The report with its provenance: a line a reader sees (HEAD seq and hash, number of
    records) and the machine-readable claims, so a printed or filed copy can be checked later."""
    head = provenance.get("head") or {}
    line = strings("base", lang)["provenance"].format(
        seq=head.get("seq", 0), hash=head.get("hash") or "-", n=len(provenance.get("records") or [])
    )
    claims = (
        json.dumps(
            {"head": head, "records": provenance.get("records") or []}, ensure_ascii=False, separators=(",", ":")
        )
        .replace("</", "<\\/")
        .replace("--", "-\\u002d")
    )
    if fmt == "html":
        block = (
            f'<p class="note provenance">{_code_html(line)}</p>\n'
            f'<script type="application/json" id="{PROVENANCE_ID}">{claims}</script>\n'
        )
        return text.replace("</body>", block + "</body>", 1) if "</body>" in text else text + block
    return f"{text.rstrip()}\n\n{line}\n\n<!-- {PROVENANCE_ID} {claims} -->\n"


def write_output(text: str, out: Path | None) -> None:
    """Write a rendered report to ``out`` atomically (mode 0600); nothing for ``None``."""
    if out is None:
        return
    write_bytes(text.encode("utf-8"), out)


def write_bytes(data: bytes, out: Path) -> None:
    """Write a report's bytes (a PDF, encoded text) to ``out`` atomically (mode 0600)."""
    from ..archive import atomic_write

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, data)
    except OSError as exc:
        raise OpsError(f"cannot write {out}: {exc}") from exc


def format_for(out: Path | None, fmt: str | None, formats: Sequence[str] = FORMATS, default: str = "md") -> str:
    """The format asked for; else the one the ``--out`` file's suffix names (``.htm`` is
    html), if it is one of ``formats``; else ``default``. Every command that infers its
    format from ``--out`` uses this rule; its help says the default."""
    if fmt:
        if fmt not in formats:
            raise BadInput(f"format must be one of {', '.join(formats)}, not {fmt!r}")
        return fmt
    suffix = out.suffix.lower().lstrip(".") if out is not None else ""
    suffix = {"htm": "html"}.get(suffix, suffix)
    return suffix if suffix in formats else default


#: A text cell beginning with one of these is a formula to a spreadsheet (CSV injection).
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell that no spreadsheet runs: text beginning with = + - @, a tab or a carriage
    return gets a leading ``'``; None is empty; anything else is kept."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_STARTS):
        return "'" + value
    return value


#: The provenance of a report's CSV row (its record in the chain, and the chain's HEAD when the
#: report was made), read back by ``opsctl records verify-export``.
PROVENANCE_COLUMNS = ("record_seq", "record_hash", "archive_head_seq", "archive_head_hash")


def provenance_cells(data: Mapping[str, Any], record_id: str) -> list[Any]:
    """The :data:`PROVENANCE_COLUMNS` of a row built from record ``record_id``."""
    prov = data.get("provenance") or {}
    head = prov.get("head") or {}
    found = next((r for r in prov.get("records") or [] if r and r[0] == record_id), None)
    seq, digest = (found[1], found[2]) if found else ("", "")
    return [seq, digest, head.get("seq", ""), head.get("hash", "")]


def to_csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV text (``\\n`` line ends): the header, then every row with each cell through :func:`csv_cell`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
    return buf.getvalue()
