"""Secrets never reach a record: key detection, text masking, vault values."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ansible.parsing.vault import VaultLib, VaultSecret

from orchestrator.errors import BadInput
from orchestrator.redact import MASK, Redactor, looks_secret, vault_values


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("db_password", True),
        ("DB_PASSWORD", True),
        ("dbPassword", True),
        ("postgres.passwd", True),
        ("ansible_become_pass", True),
        ("mysql_root_pwd", True),
        ("passphrase", True),
        ("api_key", True),
        ("private_key", True),
        ("ssh-key", True),
        ("aws_secret_access_key", True),
        ("client_secret", True),
        ("token", True),
        ("vault_token", True),
        ("refresh_tokens", True),
        ("credentials", True),
        ("smtp_credential", True),
        ("vault", True),
        ("apikey", True),
        ("keyboard", False),
        ("monkey", False),
        ("keyboard_layout", False),
        ("tokenizer", False),
        ("passive", False),
        ("bypass_cache", False),
        ("key", False),  # dict2items loop items are {key, value}
        ("hostname", False),
        ("username", False),
        ("app_version", False),
        ("db_port", False),
        ("", False),
    ],
)
def test_key_detection(key: str, secret: bool) -> None:
    assert looks_secret(key) is secret


def test_redact_vars_nested() -> None:
    r = Redactor()
    masked, keys = r.redact_vars(
        {
            "app_version": "2.3.1",
            "db": {"host": "db1", "password": "S3cr3t-pw!", "users": [{"name": "ro", "api_key": "ak-123456"}]},
            "api_token": {"value": "tok-abcdef", "scope": "all"},
            "note": "contains S3cr3t-pw! inline",
        }
    )
    assert masked["app_version"] == "2.3.1"
    assert masked["db"]["host"] == "db1"
    assert masked["db"]["password"] == MASK
    assert masked["db"]["users"][0] == {"name": "ro", "api_key": MASK}
    assert masked["api_token"] == MASK
    assert sorted(keys) == ["api_token", "db.password", "db.users[0].api_key"]
    # the masked values are now known and masked in free text
    assert r.redact_text("login with S3cr3t-pw! and ak-123456, tok-abcdef") == f"login with {MASK} and {MASK}, {MASK}"
    assert r.report()["keys"] == ["api_token", "db.password", "db.users[0].api_key"]
    assert r.report()["min_length"] == 4


def test_redact_text_longest_first_and_min_length() -> None:
    r = Redactor(["abcd", "abcdefgh", "xyz", ""])
    assert r.redact_text("abcdefgh abcd xyz") == f"{MASK} {MASK} xyz"
    assert r.report()["values_masked"] == 2
    r.add_values(["xyz1"])  # the pattern is rebuilt lazily
    assert r.redact_text("xyz1") == MASK
    assert r.redact_text("") == ""


def test_redact_text_special_characters() -> None:
    r = Redactor(["p@ss.w*rd(1)", "a|b|c|d"])
    assert r.redact_text("x p@ss.w*rd(1) y a|b|c|d z pXss") == f"x {MASK} y {MASK} z pXss"


def test_redact_obj_events() -> None:
    r = Redactor(["hunter2-long"])
    event = {
        "stdout": "ok: [db1] => hunter2-long",
        "event_data": {
            "res": {
                "invocation": {"module_args": {"login_password": "other-secret", "name": "app"}},
                "msg": "used other-secret",
                "results": [{"item": "hunter2-long"}],
                "changed": True,
            }
        },
    }
    out = r.redact_obj(event)
    assert out["stdout"] == f"ok: [db1] => {MASK}"
    assert out["event_data"]["res"]["invocation"]["module_args"] == {"login_password": MASK, "name": "app"}
    assert out["event_data"]["res"]["msg"] == f"used {MASK}"  # learnt from the sibling key
    assert out["event_data"]["res"]["results"] == [{"item": MASK}]
    assert out["event_data"]["res"]["changed"] is True
    assert "hunter2-long" not in repr(out) and "other-secret" not in repr(out)


def test_redact_obj_keeps_types_and_odd_values() -> None:
    class Text(str):
        pass

    r = Redactor(["hunter2-long"])
    out = r.redact_obj({
        "count": 3, "ratio": 0.5, "flag": False, "none": None,
        "tuple": ("a hunter2-long", 1), "sub": Text("x hunter2-long"),
        "hunter2-long": "the key itself is text",  # keys are masked too
        "api_token": True, "password": None, "db_pass": MASK,  # bool/None/mask under a secret key stay
        7: {"nested_secret": {"a": "Nested-Secret-1", "b": ["Nested-Secret-2"]}, "note": "Nested-Secret-2 seen"},
    })
    assert out["count"] == 3 and out["ratio"] == 0.5 and out["flag"] is False and out["none"] is None
    assert out["tuple"] == [f"a {MASK}", 1]
    assert out["sub"] == f"x {MASK}"
    assert out[MASK] == "the key itself is text"
    assert out["api_token"] is True and out["password"] is None and out["db_pass"] == MASK
    assert out[7] == {"nested_secret": MASK, "note": f"{MASK} seen"}  # learnt from the sibling first
    assert r.redact_text("later Nested-Secret-1") == f"later {MASK}"


def test_redact_obj_on_many_events_is_fast() -> None:
    r = Redactor(["Vaulted-Secret-7f3a9b2e"])
    event = {"event": "runner_on_ok", "stdout": "ok: [node1]", "event_data": {
        "host": "node1", "task": "Probe", "res": {
            "changed": False, "stdout": "5.10.0", "stdout_lines": ["5.10.0"], "rc": 0,
            "invocation": {"module_args": {f"arg_{i}": f"value {i}" for i in range(30)}}}}}
    start = time.perf_counter()
    for _ in range(2000):
        r.redact_obj(event)
    # about 0.15 s on 2 busy cores (0.26 s before the per-key cache and the exact-type checks)
    assert time.perf_counter() - start < 2.0


def test_redact_text_is_fast() -> None:
    r = Redactor([f"secret-value-{i:05d}" for i in range(2000)])
    text = ("ordinary output line with nothing secret in it\n" * 20000) + "secret-value-01999\n"
    start = time.perf_counter()
    out = r.redact_text(text)
    assert time.perf_counter() - start < 2.0
    assert out.endswith(f"{MASK}\n")


# -- vault ---------------------------------------------------------------------------------

PASSWORD = "vault-pass-for-tests"


def _vault() -> VaultLib:
    return VaultLib(secrets=[("default", VaultSecret(PASSWORD.encode()))])


@pytest.fixture()
def inventory(tmp_path: Path) -> Path:
    inv = tmp_path / "inventories" / "staging"
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "host_vars").mkdir()
    (inv / "hosts.yml").write_text("all:\n  hosts:\n    db1: {}\n")
    vault = _vault()
    # a fully encrypted vars file
    plain = "db_admin_password: Full-File-Secret-1\napp:\n  smtp_pass: Mail-Secret-22\n  port: 25\n"
    (inv / "group_vars" / "all" / "vault.yml").write_bytes(vault.encrypt(plain))
    # an inline !vault value
    cipher = vault.encrypt("Inline-Secret-333").decode()
    indented = "\n".join("    " + line for line in cipher.splitlines())
    (inv / "host_vars" / "db1.yml").write_text(f"db_user: app\ndb_password: !vault |\n{indented}\nother: !unsafe '{{{{x}}}}'\n")
    (tmp_path / "vault-pass").write_text(PASSWORD + "\n")
    return inv


def test_vault_values(inventory: Path) -> None:
    values = vault_values([inventory], inventory.parent.parent / "vault-pass")
    assert {"Full-File-Secret-1", "Mail-Secret-22", "Inline-Secret-333"} <= values
    assert "app" not in values
    r = Redactor(values)
    assert r.redact_text("pw Inline-Secret-333 / Full-File-Secret-1") == f"pw {MASK} / {MASK}"


def test_vault_values_without_password_file(inventory: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no vault password file"):
        vault_values([inventory], None)
    with pytest.raises(BadInput, match="does not exist"):
        vault_values([inventory], tmp_path / "missing")


def test_vault_values_wrong_password(inventory: Path, tmp_path: Path) -> None:
    (tmp_path / "wrong").write_text("not-the-password\n")
    with pytest.raises(BadInput, match="cannot decrypt"):
        vault_values([inventory], tmp_path / "wrong")


def test_vault_values_plain_inventory(tmp_path: Path) -> None:
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("x: 1\n")
    assert vault_values([tmp_path], None) == set()
