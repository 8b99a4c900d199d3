#!/usr/bin/env python3
"""The time table of `make test`: what each part took, the slowest ten, the total.

    python3 ci/test_times.py [TIMES_DIR] [OUT_JSON]

Reads what the run left in TIMES_DIR (default var/test-times.d):

- ``part-<name>.json``  from ci/timed.sh: one part of the run (setup, lab, lanes);
                        a name with a dot (``lanes.lab``) is a piece of the part before
                        the dot, shown under it and not added to the total;
- ``pytest*.xml``       pytest's JUnit reports (one per lane): the time of each test file (setup,
                        calls and teardown of its tests, so a session fixture's cost
                        lands on the first file that used it);
- ``molecule.json``     from lab/molecule-all.sh: the time of each scenario.

Prints the table and writes it as JSON to OUT_JSON (default var/test-times.json).
Standard library only: it runs with the system's python3 even when the venv failed.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

#: The budget `make test` is held to on a quiet 2-core machine (tests/README.md).
BUDGET_S = 40 * 60


def _module_of(classname: str) -> str:
    """``tests.lab.test_lab_hosts.TestX`` -> ``tests/lab/test_lab_hosts.py``."""
    parts = classname.split(".")
    for i, part in enumerate(parts):
        if part.startswith("test_") or part == "conftest":
            path = "/".join(parts[: i + 1]) + ".py"
            return path if path.startswith("tests/") else "tests/" + path
    return classname or "?"


def pytest_files(xml_path: Path) -> list[dict[str, Any]]:
    if not xml_path.is_file():
        return []
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError:
        return []
    files: dict[str, dict[str, Any]] = {}
    for case in root.iter("testcase"):
        name = _module_of(case.get("classname", ""))
        entry = files.setdefault(name, {"seconds": 0.0, "tests": 0, "failed": 0, "skipped": 0})
        entry["seconds"] += float(case.get("time") or 0)
        entry["tests"] += 1
        if case.find("failure") is not None or case.find("error") is not None:
            entry["failed"] += 1
        elif case.find("skipped") is not None:
            entry["skipped"] += 1
    return [
        {"kind": "pytest", "name": n, **{k: (round(v, 1) if k == "seconds" else v) for k, v in e.items()}}
        for n, e in sorted(files.items())
    ]


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


#: The parts of `make test` in the order they run (anything else after them, by name).
ORDER = ["setup", "lab", "lanes"]


def _part_key(part: dict[str, Any]) -> tuple[int, str, int, str]:
    name = str(part.get("part", ""))
    parent = name.split(".", 1)[0]
    return (ORDER.index(parent) if parent in ORDER else len(ORDER), parent, int("." in name), name)


def collect(times_dir: Path) -> dict[str, Any]:
    parts = sorted((p for p in (_load(f) for f in times_dir.glob("part-*.json")) if isinstance(p, dict)), key=_part_key)
    items: list[dict[str, Any]] = []
    for xml_path in sorted(times_dir.glob("pytest*.xml")):
        items += pytest_files(xml_path)
    molecule = _load(times_dir / "molecule.json")
    if isinstance(molecule, list):
        items += [{"kind": "molecule", **m} for m in molecule if isinstance(m, dict)]
    total = round(sum(float(p.get("seconds", 0)) for p in parts if "." not in str(p.get("part", ""))), 1)
    return {
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "budget_s": BUDGET_S,
        "total_s": total,
        "parts": parts,
        "items": items,
        "slowest": sorted(items, key=lambda i: -float(i.get("seconds", 0)))[:10],
    }


def _mmss(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 60:d}m{s % 60:02d}s"


def render(table: dict[str, Any]) -> str:
    lines = ["", "make test: wall time per part"]
    for p in table["parts"]:
        rc = "" if p.get("rc", 0) == 0 else f"  (FAILED, rc {p.get('rc')})"
        name = str(p.get("part", "?"))
        label = f"  - {name.split('.', 1)[1]}" if "." in name else name  # a piece of the part above
        lines.append(f"  {label:<28} {_mmss(float(p.get('seconds', 0))):>8}{rc}")
    for kind in ("pytest", "molecule"):
        rows = [i for i in table["items"] if i["kind"] == kind]
        if not rows:
            continue
        lines.append(
            f"  {kind} ({len(rows)} {'files' if kind == 'pytest' else 'scenarios'},"
            f" {_mmss(sum(float(r['seconds']) for r in rows))} in all):"
        )
        for r in rows:
            extra = f"  {r['tests']} tests" if kind == "pytest" else f"  {r.get('result', '')}"
            if r.get("failed"):
                extra += f", {r['failed']} failed"
            lines.append(f"    {r['name']:<42} {_mmss(float(r['seconds'])):>8}{extra}")
    lines.append("  slowest ten:")
    for r in table["slowest"]:
        lines.append(f"    {r['kind']:<9} {r['name']:<42} {_mmss(float(r['seconds'])):>8}")
    over = table["total_s"] > table["budget_s"]
    lines.append(
        f"  TOTAL {_mmss(table['total_s'])} (budget {_mmss(table['budget_s'])} on a quiet 2-core machine"
        f"{'; OVER BUDGET' if over else ''})"
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    times_dir = Path(argv[1]) if len(argv) > 1 else Path("var/test-times.d")
    out = Path(argv[2]) if len(argv) > 2 else Path("var/test-times.json")
    table = collect(times_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(table, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out)
    print(render(table))
    print(f"  (written to {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
