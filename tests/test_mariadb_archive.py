"""The MariaDB archiving tool's parts that need no database (roles/db_backup/files/
envcredit_mariadb_archive.py); the lab test runs it against real MariaDB and a real backup host."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "roles" / "db_backup" / "files"))

import envcredit_mariadb_archive as tool  # noqa: E402

# What mariadb-backup 10.11 prints at the end of a backup.
STDERR = (
    "[00] 2026-11-30 10:20:01 Backup created in directory '/tmp/envcredit-mbk-x/'\n"
    "[00] 2026-11-30 10:20:01 MySQL binlog position: filename 'mariadb-bin.000002', position '1174', "
    "GTID of the last change '0-1-7'\n"
    "[00] 2026-11-30 10:20:01 completed OK!\n"
)


def test_the_binlog_position_is_read_from_mariadb_backup() -> None:
    found = tool.POSITION.search(STDERR)
    assert found is not None
    assert (found.group(1), int(found.group(2)), found.group(3)) == ("mariadb-bin.000002", 1174, "0-1-7")
    bare = tool.POSITION.search("MySQL binlog position: filename 'b.000009', position '4'")
    assert bare is not None and bare.group(3) is None


def test_a_configuration_that_lacks_keys_is_bad_input(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"target": "dbarchive@b", "key": "/k"}), encoding="utf-8")
    with pytest.raises(tool.ArchiveError) as caught:
        tool.load_config(cfg)
    assert caught.value.code == 2
    assert "known_hosts, recipient, defaults_file, state" in str(caught.value)
    with pytest.raises(tool.ArchiveError) as unreadable:
        tool.load_config(tmp_path / "absent.json")
    assert unreadable.value.code == 2


@pytest.mark.parametrize(
    ("rc", "code", "words"),
    [(4, 4, "backup host: "), (255, 3, "unreachable"), (3, 3, "refused"), (1, 3, "refused")],
)
def test_the_receivers_answers_become_clear_errors(rc: int, code: int, words: str) -> None:
    err = tool.remote_error(b"warning: something\nenvcredit-archive: the backup host's disk is full\n", rc)
    assert err.code == code and words in str(err)
    assert str(err).endswith("envcredit-archive: the backup host's disk is full")


@pytest.mark.parametrize("bad", ["", "../x", "a b", "-rf", "x;rm"])
def test_a_bad_backup_id_is_refused_before_anything_runs(bad: str) -> None:
    with pytest.raises(tool.ArchiveError) as caught:
        tool.cmd_base({}, bad)
    assert caught.value.code == 2


def test_the_ssh_call_pins_the_host_key_and_never_asks() -> None:
    cfg = {"key": "/etc/k", "known_hosts": "/etc/kh", "target": "dbarchive@lab-backup1", "port": 22}
    argv = tool.ssh_argv(cfg, "list base")
    assert argv[-2:] == ["dbarchive@lab-backup1", "list base"]
    for option in ("BatchMode=yes", "StrictHostKeyChecking=yes", "UserKnownHostsFile=/etc/kh"):
        assert option in argv
