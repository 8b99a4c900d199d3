"""The catalog is the single source of operation facts: tags instead of names in the code,
generated docs and make rules that match it, every operation complete (playbook, make
target, doc rows)."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from pathlib import Path

import pytest

from orchestrator import docsgen
from orchestrator.errors import BadInput
from orchestrator.operations import TAGS, load_catalog, tagged, tagged_one

REPO = Path(__file__).resolve().parent.parent
CATALOG = REPO / "orchestrator" / "catalog.yml"


def _make(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def test_generated_docs_and_make_rules_match_the_catalog() -> None:
    differ = docsgen.stale(REPO)
    assert not differ, (
        f"{', '.join(differ)} differ from the operations catalog "
        "(orchestrator/catalog.yml, catalog.d/): run `make docs` and commit the result"
    )


def test_a_catalog_change_shows_as_stale_docs() -> None:
    catalog = load_catalog(CATALOG)
    catalog["ping"] = dataclasses.replace(catalog["ping"], description="Something else")
    catalog["new-op"] = dataclasses.replace(catalog["ping"], name="new-op", playbook="new-op.yml")
    assert set(docsgen.stale(REPO, catalog)) == {"README.md", "docs/awx.md", "docs/ci.md", "mk/operations.mk"}
    text = docsgen.generate(REPO, catalog)["README.md"]
    assert "| `new-op` | 连通性检查 | `playbooks/new-op.yml` |" in text
    assert "Besides `run`, `opsctl` has:" in text  # the hand-written text stays


def test_generated_section_without_markers_is_an_error() -> None:
    with pytest.raises(BadInput, match="markers"):
        docsgen.fill("no markers here\n", "operations", "| x |", "README.md")


def _rule_targets() -> dict[str, list[str]]:
    """Target name -> the hand-written makefiles with a rule for it (mk/operations.mk aside)."""
    out: dict[str, list[str]] = {}
    for path in [REPO / "Makefile", *sorted((REPO / "mk").glob("*.mk"))]:
        if path.name == Path(docsgen.MAKEFILE).name:
            continue
        for m in re.finditer(r"^([a-zA-Z0-9_-]+):", path.read_text(encoding="utf-8"), re.M):
            out.setdefault(m.group(1), []).append(path.name)
    return out


def test_every_operation_has_its_playbook_make_target_and_doc_rows() -> None:
    catalog = load_catalog(CATALOG)
    rules = _rule_targets()
    plain = [name for name, op in catalog.items() if op.make_target == "plain"]
    docs = {rel: (REPO / rel).read_text(encoding="utf-8") for rel in docsgen.SECTIONS}
    for name, op in catalog.items():
        assert (REPO / "playbooks" / op.playbook).is_file(), f"{name}: playbook playbooks/{op.playbook} is missing"
        if op.make_target == "custom":
            assert rules.get(name), f"{name}: make_target custom, but no rule `{name}:` in the Makefile or mk/*.mk"
        else:
            assert name not in rules, (
                f"{name}: make_target plain (mk/operations.mk), but {rules.get(name)} "
                "also define it: set make_target: custom or remove the rule"
            )
        for rel, text in docs.items():
            assert f"\n| `{name}` |" in text, f"{name}: no row in {rel} (make docs)"
    # `make OP` runs the operation with the usual options; `make help` lists them all.
    dry = _make("-n", *plain, "ENV=lab", "LIMIT=h1", "TICKET=CHG-1")
    for name in plain:
        assert f"opsctl run {name} --env lab --limit 'h1' --ticket 'CHG-1'" in dry, dry
    listed = set(re.findall(r"^  make (\S+)", _make("help"), re.M))
    assert set(catalog) <= listed, f"make help does not list {sorted(set(catalog) - listed)}"


def test_code_finds_operations_by_tag() -> None:
    catalog = load_catalog(CATALOG)
    assert tagged_one("patch-scan", catalog) == "patch-scan"
    assert tagged_one("baseline-check", catalog) == "baseline-check"
    assert tagged_one("inspection", catalog) == "inspect"
    assert set(tagged("release", catalog)) == {"site-app", "deploy", "rollback"}
    for tag in TAGS:
        assert tagged(tag, catalog), f"no operation of the catalog is tagged {tag!r}"
    with pytest.raises(BadInput, match="exactly one operation 'release'"):
        tagged_one("release", catalog)
    with pytest.raises(ValueError, match="unknown operation tag"):
        tagged("no-such-tag", catalog)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("tags: [no-such-tag]", "unknown tags"),
        ("tags: patch-scan", "tags must be a list"),
        ("tags: [Patch Scan]", "tags must be a list"),
        ("make_target: weird", "make_target must be one of"),
    ],
)
def test_loader_refuses_bad_tags_and_make_targets(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "catalog.yml"
    path.write_text(f"operations:\n  scan:\n    playbook: scan.yml\n    {entry}\n", encoding="utf-8")
    with pytest.raises(BadInput, match=message):
        load_catalog(path)


def test_every_operation_has_a_chinese_title() -> None:
    """zh-CN reports and messages name operations by ``title_zh`` (issue 20), never by the English name."""
    from orchestrator.operations import load_catalog, title

    catalog = load_catalog()
    missing = [name for name, op in catalog.items() if not op.title_zh]
    assert not missing, f"operations without title_zh: {missing}"
    assert title("inspect", "zh", catalog) == "日常巡检" and title("inspect", "en", catalog) == "inspect"
    assert title("no-such-op", "zh", catalog) == "no-such-op"
