"""What the documentation and the Makefile say about the operations, generated from the catalog.

``make docs`` (``python -m orchestrator.docsgen``) rewrites, from ``orchestrator/catalog.yml``
and ``orchestrator/catalog.d/``:

* the operations table of ``README.md``, the job templates of ``docs/awx.md`` and the
  operations table of ``docs/ci.md``: each between the markers
  ``<!-- BEGIN generated: NAME (make docs) -->`` and ``<!-- END generated: NAME -->``,
  the hand-written text around them stays as it is;
* ``mk/operations.mk``: ``make OP`` for every operation whose ``make_target`` is ``plain``.

``--check`` writes nothing and exits 1 naming the files that differ (the unit tests do the same).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import yaml

from . import paths
from .errors import BadInput
from .operations import Operation, load_catalog

MAKEFILE = "mk/operations.mk"
SCHEDULES = "schedules/schedules.yml"


def _begin(name: str) -> str:
    return f"<!-- BEGIN generated: {name} (make docs) -->"


def _end(name: str) -> str:
    return f"<!-- END generated: {name} -->"


def _cell(text: str) -> str:
    """``text`` as one Markdown table cell: one line, pipes escaped, no HTML tags."""
    return " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;")


def risk_text(op: Operation) -> str:
    """``medium (high in production), read-only`` and the like."""
    text = op.risk
    higher = [env for env in op.high_risk_in if op.risk != "high"]
    if higher:
        text += f" (high in {', '.join(higher)})"
    if op.read_only:
        text += ", read-only"
    return text


def scheduled(repo: Path) -> dict[str, list[str]]:
    """Operation -> the descriptions of the timers (``schedules/schedules.yml``) that run it."""
    path = repo / SCHEDULES
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    timers = data.get("timers") if isinstance(data, dict) else None
    out: dict[str, list[str]] = {}
    for name, timer in (timers or {}).items():
        if isinstance(timer, dict) and timer.get("operation"):
            out.setdefault(str(timer["operation"]), []).append(str(timer.get("description") or name))
    return out


def readme_table(catalog: Mapping[str, Operation], repo: Path) -> str:
    rows = ["| operation | 中文名称 | playbook | what it does | risk |", "| --- | --- | --- | --- | --- |"]
    for name, op in catalog.items():
        rows.append(
            f"| `{name}` | {_cell(op.title_zh) or '-'} | `playbooks/{op.playbook}` | {_cell(op.description)} | {risk_text(op)} |"
        )
    return "\n".join(rows)


def awx_table(catalog: Mapping[str, Operation], repo: Path) -> str:
    timers = scheduled(repo)
    rows = ["| job template | playbook | job type / notes |", "| --- | --- | --- |"]
    for name, op in catalog.items():
        notes = ["run"]
        if op.read_only:
            notes.append("read-only")
        notes += [f"schedule: {_cell(t).lower()}" for t in timers.get(name, [])]
        notes += [f"survey {' or '.join(f'`{k}`' for k in v.split('|'))} (required)" for v in op.requires]
        if op.risk_in("production") == "high":
            notes.append("approval node in production")
        rows.append(f"| `{name}` | `playbooks/{op.playbook}` | {'; '.join(notes)} |")
    return "\n".join(rows)


def ci_table(catalog: Mapping[str, Operation], repo: Path) -> str:
    rows = ["| operation | read-only | on demand | requires |", "| --- | --- | --- | --- |"]
    for name, op in catalog.items():
        requires = ", ".join(" or ".join(f"`{k}`" for k in v.split("|")) for v in op.requires)
        rows.append(f"| `{name}` | {'yes' if op.read_only else ''} | {'yes' if op.on_demand else ''} | {requires} |")
    return "\n".join(rows)


#: file -> generated section name -> what goes between its markers.
SECTIONS: dict[str, dict[str, Callable[[Mapping[str, Operation], Path], str]]] = {
    "README.md": {"operations": readme_table},
    "docs/awx.md": {"awx-job-templates": awx_table},
    "docs/ci.md": {"ci-operations": ci_table},
}


def make_rules(catalog: Mapping[str, Operation]) -> str:
    plain = [name for name, op in catalog.items() if op.make_target == "plain"]
    lines = [
        "# GENERATED from the operations catalog by `make docs` (orchestrator/docsgen.py): do not edit.",
        "# `make OP` for every operation whose make_target is plain (the default): opsctl run OP with",
        "# ENV, LIMIT, TICKET, REASON and ARGS (RUN_OPTS in the Makefile). Operations with",
        "# make_target: custom have their own rule in mk/<area>.mk.",
        f"PLAIN_OPS := {' '.join(plain)}",
        "",
        ".PHONY: $(PLAIN_OPS)",
        "",
        "$(PLAIN_OPS): venv",
        "\t$(OPSCTL) run $@ $(RUN_OPTS)",
        "",
        "# for `make help`",
    ]
    lines += [f"{name}: ## {' '.join(catalog[name].description.split())}" for name in plain]
    return "\n".join(lines) + "\n"


def fill(text: str, name: str, body: str, where: str) -> str:
    """``text`` with the section ``name`` replaced by ``body``; missing markers are an error."""
    pattern = re.compile(re.escape(_begin(name)) + r"\n.*?" + re.escape(_end(name)), re.DOTALL)
    if len(pattern.findall(text)) != 1:
        raise BadInput(f"{where}: expected one pair of markers {_begin(name)!r} ... {_end(name)!r}")
    return pattern.sub(lambda _: f"{_begin(name)}\n{body}\n{_end(name)}", text)


def generate(repo: Path, catalog: Mapping[str, Operation] | None = None) -> dict[str, str]:
    """Relative path -> its content as generated from the catalog."""
    catalog = catalog if catalog is not None else load_catalog(repo / "orchestrator" / "catalog.yml")
    out: dict[str, str] = {}
    for rel, sections in SECTIONS.items():
        text = (repo / rel).read_text(encoding="utf-8")
        for name, render in sections.items():
            text = fill(text, name, render(catalog, repo), rel)
        out[rel] = text
    out[MAKEFILE] = make_rules(catalog)
    return out


def stale(repo: Path, catalog: Mapping[str, Operation] | None = None) -> list[str]:
    """The generated files whose committed content differs from the catalog's."""
    out = []
    for rel, text in generate(repo, catalog).items():
        path = repo / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            out.append(rel)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.docsgen", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a file differs")
    parser.add_argument("--repo", type=Path, default=None, help="the checkout (default: this one)")
    args = parser.parse_args(argv)
    repo: Path = args.repo or paths.repo_root()
    try:
        if args.check:
            differ = stale(repo)
            for rel in differ:
                print(f"{rel}: differs from the operations catalog; run `make docs`", file=sys.stderr)
            return 1 if differ else 0
        for rel, text in generate(repo).items():
            path = repo / rel
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
                print(f"wrote {rel}")
    except BadInput as exc:
        print(f"make docs: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
