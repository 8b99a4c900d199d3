"""The run's target hosts (orchestrator/targets.py): resolved by Ansible's inventory code, kept
in a cache keyed by everything the answer depends on (issue 21: a fixed 0.4 s of every run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import targets
from orchestrator.errors import BadInput
from orchestrator.operations import get_environment, get_operation, load_catalog


def resolve(limit: str | None = None) -> list[str]:
    return targets.resolve_targets(get_operation("ok", load_catalog()), get_environment("test"), limit)


def cache_files(home: Path) -> list[Path]:
    return sorted((home / "var" / "cache" / "targets").glob("*.json"))


def no_ansible(*_args: object) -> list[str]:
    raise AssertionError("resolved again instead of using the cache")


def test_the_answer_is_cached_and_reused(opsctl_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve() == ["node1", "node2"]
    assert resolve("node2") == ["node2"]
    assert len(cache_files(opsctl_home)) == 2  # one per limit
    monkeypatch.setattr(targets, "_resolve", no_ansible)
    assert resolve() == ["node1", "node2"] and resolve("node2") == ["node2"]


def test_any_change_to_the_inventory_or_the_playbook_resolves_again(
    opsctl_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolve() == ["node1", "node2"]
    hosts = opsctl_home / "inventories" / "test" / "hosts.yml"
    hosts.write_text(hosts.read_text(encoding="utf-8").replace("node2: {}", "node2: {}\n        node3: {}"))
    assert resolve() == ["node1", "node2", "node3"]
    vars_file = opsctl_home / "inventories" / "test" / "group_vars" / "extra.yml"
    vars_file.write_text("x: 1\n", encoding="utf-8")
    calls: list[str | None] = []
    real = targets._resolve
    monkeypatch.setattr(targets, "_resolve", lambda op, env, limit: calls.append(limit) or real(op, env, limit))
    assert resolve() == ["node1", "node2", "node3"] and calls == [None]  # a new file: a new key
    playbook = opsctl_home / "playbooks" / "ok.yml"
    playbook.write_text(playbook.read_text(encoding="utf-8").replace("hosts: all", "hosts: node1"), encoding="utf-8")
    assert resolve() == ["node1"] and calls == [None, None]


def test_computed_inventories_and_file_limits_are_never_cached(
    opsctl_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = opsctl_home / "inventories" / "test" / "more.yml"
    plugin.write_text("plugin: ansible.builtin.constructed\ngroups: {}\n", encoding="utf-8")
    assert resolve() == ["node1", "node2"]
    assert cache_files(opsctl_home) == []
    plugin.unlink()
    retry = opsctl_home / "retry.txt"
    retry.write_text("node1\n", encoding="utf-8")
    assert resolve(f"@{retry}") == ["node1"]
    assert cache_files(opsctl_home) == []


def test_a_corrupt_cache_entry_is_resolved_again(opsctl_home: Path) -> None:
    assert resolve() == ["node1", "node2"]
    (entry,) = cache_files(opsctl_home)
    entry.write_text("[]", encoding="utf-8")
    assert resolve() == ["node1", "node2"]
    entry.write_text("{not json", encoding="utf-8")
    assert resolve() == ["node1", "node2"]


def test_no_matching_host_is_bad_input_and_not_cached(opsctl_home: Path) -> None:
    with pytest.raises(BadInput, match="no host of environment 'test' matches limit 'nosuch'"):
        resolve("nosuch")
    assert cache_files(opsctl_home) == []
