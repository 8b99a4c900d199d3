"""The baseline's evaluation reads `sshd -T` whole: list keys such as AllowGroups come one line per
value ("allowgroups ops", "allowgroups pgbackrest"), so SSH-03 must see every group (the lab's
backup host failed SSH-03 when only the first line was read)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from helpers.common import REPO, load_source


def load() -> ModuleType:
    return load_source(REPO / "plugins" / "modules" / "baseline_evaluate.py", "baseline_evaluate")


SSHD_T = "port 22\nallowgroups ops\nallowgroups pgbackrest\nallowusers a\nallowusers b\npermitrootlogin no\nport 2222\n"


def test_list_keys_of_sshd_t_are_joined_and_the_others_keep_their_first_value(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = load()
    monkeypatch.setattr(mod, "run", lambda argv: (0, SSHD_T, ""))
    expect: dict[str, Any] = {"ssh": {"binary": "/usr/sbin/sshd"}}
    conf = mod.Evaluator(expect, container=True).sshd()
    assert conf["allowgroups"] == "ops pgbackrest" and conf["allowusers"] == "a b"
    assert conf["port"] == "22" and conf["permitrootlogin"] == "no"
