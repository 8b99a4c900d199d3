"""Secrets never reach a record: key detection, text masking, vault values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible.parsing.vault import VaultLib, VaultSecret

from orchestrator.errors import BadInput
from orchestrator.redact import (
    MASK,
    Redactor,
    _str_looks_secret,
    looks_secret,
    mask_url_credentials,
    parse_structured,
    vault_values,
)


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
        ("dbpass", True),
        ("DBPASS", True),
        ("db_pw", True),
        ("pw", True),
        ("rootpass", True),
        ("privatekey", True),
        ("privateKey", True),
        ("database_url", True),
        ("databaseUrl", True),
        ("db_url", True),
        ("dsn", True),
        ("dsns", True),
        ("pg_dsn", True),
        ("DSN", True),
        ("keyboard", False),
        ("monkey", False),
        ("keyboard_layout", False),
        ("tokenizer", False),
        ("passive", False),
        ("bypass_cache", False),
        ("compass", False),
        ("pwm_mode", False),
        ("dns_servers", False),
        ("url", False),
        ("app_url", False),
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
    out = r.redact_obj(
        {
            "count": 3,
            "ratio": 0.5,
            "flag": False,
            "none": None,
            "tuple": ("a hunter2-long", 1),
            "sub": Text("x hunter2-long"),
            "hunter2-long": "the key itself is text",  # keys are masked too
            "api_token": True,
            "password": None,
            "db_pass": MASK,  # bool/None/mask under a secret key stay
            7: {"nested_secret": {"a": "Nested-Secret-1", "b": ["Nested-Secret-2"]}, "note": "Nested-Secret-2 seen"},
        }
    )
    assert out["count"] == 3 and out["ratio"] == 0.5 and out["flag"] is False and out["none"] is None
    assert out["tuple"] == [f"a {MASK}", 1]
    assert out["sub"] == f"x {MASK}"
    assert out[MASK] == "the key itself is text"
    assert out["api_token"] is True and out["password"] is None and out["db_pass"] == MASK
    assert out[7] == {"nested_secret": MASK, "note": f"{MASK} seen"}  # learnt from the sibling first
    assert r.redact_text("later Nested-Secret-1") == f"later {MASK}"


def test_looks_secret_is_computed_once_per_key() -> None:
    """Event data repeats the same keys thousands of times: each name is classified once."""
    r = Redactor(["Vaulted-Secret-7f3a9b2e"])
    args = {f"arg_{i}": f"value {i}" for i in range(30)}
    event = {
        "event": "runner_on_ok",
        "stdout": "ok: [node1]",
        "event_data": {
            "host": "node1",
            "task": "Probe",
            "res": {"changed": False, "stdout": "5.10.0", "rc": 0, "invocation": {"module_args": args}},
        },
    }
    _str_looks_secret.cache_clear()
    first = r.redact_obj(event)
    misses = _str_looks_secret.cache_info().misses
    assert misses >= len(args)
    for _ in range(50):
        assert r.redact_obj(event) == first
    info = _str_looks_secret.cache_info()
    assert info.misses == misses  # no key classified twice
    assert info.hits >= 50 * len(args)


def test_value_pattern_is_compiled_once_per_value_set() -> None:
    r = Redactor([f"secret-value-{i:05d}" for i in range(2000)])
    text = ("ordinary output line with nothing secret in it\n" * 200) + "secret-value-01999\n"
    assert r.redact_text(text).endswith(f"{MASK}\n")
    pattern = r._pattern
    assert pattern is not None
    for _ in range(20):
        r.redact_text(text)
    r.add_values(["secret-value-00007", "abc"])  # known, and too short: nothing new
    r.redact_text(text)
    assert r._pattern is pattern
    r.add_values(["another-secret"])  # a new value: rebuilt once, lazily
    assert r.redact_text("x another-secret secret-value-00003") == f"x {MASK} {MASK}"
    assert r._pattern is not pattern


# -- structured extra vars, short values, URLs ----------------------------------------------


def test_json_and_yaml_extra_vars_are_masked_by_key_at_any_depth() -> None:
    r = Redactor()
    masked, keys = r.redact_vars(
        {
            "x": '{"password":"P3q"}',
            "dsns": '["postgres://u:PW@h/db"]',
            "cfg": "{db: {host: db1, users: [{name: ro, pw: ab}]}, port: 5432}",
            "deep": '[{"a": {"b": [{"api_key": "ak-long-value"}]}}]',
            "plain_list": '["a", "b"]',
            "not_json": "{not: [closed",
        }
    )
    assert json.loads(masked["x"]) == {"password": MASK}
    assert masked["dsns"] == MASK
    assert json.loads(masked["cfg"]) == {"db": {"host": "db1", "users": [{"name": "ro", "pw": MASK}]}, "port": 5432}
    assert json.loads(masked["deep"]) == [{"a": {"b": [{"api_key": MASK}]}}]
    assert masked["plain_list"] == '["a", "b"]'  # nothing to mask: the text is kept as given
    assert masked["not_json"] == "{not: [closed"
    assert sorted(keys) == ["cfg.db.users[0].pw", "deep[0].a.b[0].api_key", "dsns", "x.password"]
    assert sorted(r.report()["keys"]) == sorted(keys)
    # the values inside the list under `dsns` are learnt one by one, not only as the JSON text
    assert r.redact_text("connecting to postgres://u:PW@h/db") == f"connecting to {MASK}"
    assert r.redact_text("key ak-long-value") == f"key {MASK}"


def test_short_values_under_secret_keys_are_masked() -> None:
    r = Redactor()
    masked, keys = r.redact_vars(
        {
            "pw": "ab",
            "db": {"dbpass": "x"},
            "pin": 7,
            "token": "",
            "x": '{"password":"P3q"}',
            "privatekey": "Long-Key-Material",
        }
    )
    assert masked["pw"] == masked["db"]["dbpass"] == masked["token"] == masked["privatekey"] == MASK
    assert json.loads(masked["x"]) == {"password": MASK}
    assert "P3q" not in json.dumps(masked) and '"ab"' not in json.dumps(masked)
    assert sorted(keys) == ["db.dbpass", "privatekey", "pw", "token", "x.password"]
    # free text keeps a length floor (else every "ab" of the output would go) ...
    assert r.redact_text("ab P3q Long-Key-Material") == f"ab P3q {MASK}"
    # ... but a short value directly under a secret key is masked in event data too
    assert r.redact_obj({"login_password": "P3q", "pw": 7}) == {"login_password": MASK, "pw": MASK}


def test_secrets_are_learnt_before_masking_whatever_the_key_order() -> None:
    r = Redactor()
    masked, _ = r.redact_vars({"note": "uses Later-Secret-1", "zz": {"db_password": "Later-Secret-1"}})
    assert masked["note"] == f"uses {MASK}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:token@host/x", f"https://user:{MASK}@host/x"),
        (
            "git clone https://oauth2:glpat-XYZ@gitlab.example/g/r.git",
            f"git clone https://oauth2:{MASK}@gitlab.example/g/r.git",
        ),
        (
            "dsn=postgres://app:p@ss@db1:5432/envcredit?sslmode=require",
            f"dsn=postgres://app:{MASK}@db1:5432/envcredit?sslmode=require",
        ),
        ("redis://:only-password@cache:6379/0", f"redis://:{MASK}@cache:6379/0"),
        ("smtp://ops@example.com:mail-pw@smtp.example.com", f"smtp://ops@example.com:{MASK}@smtp.example.com"),
        ("'mysql://root:pw@db2/x', 'https://h/y'", f"'mysql://root:{MASK}@db2/x', 'https://h/y'"),
        ("http://host:8080/path@x and ssh://git@host/repo", "http://host:8080/path@x and ssh://git@host/repo"),
        ("user:pass@host without a scheme", "user:pass@host without a scheme"),
        (f"https://user:{MASK}@host/x", f"https://user:{MASK}@host/x"),
    ],
)
def test_url_credentials_are_masked(text: str, expected: str) -> None:
    assert mask_url_credentials(text) == expected


def test_url_credentials_are_masked_anywhere() -> None:
    r = Redactor()
    masked, _ = r.redact_vars({"targets": '["postgres://u:Url-Pass-9@h/db", "b"]', "repo": "https://u:tk@h/r.git"})
    assert json.loads(masked["targets"]) == [f"postgres://u:{MASK}@h/db", "b"]
    assert masked["repo"] == f"https://u:{MASK}@h/r.git"
    # a URL password (long enough) is learnt, so it is masked where it shows up alone too
    assert r.redact_text("auth failed for Url-Pass-9") == f"auth failed for {MASK}"
    event = {
        "stdout": "fatal: unable to access 'https://bot:Other-Token@git.example/x/'",
        "res": {"msg": ["mysql://root:rt@db2/x"]},
    }
    out = r.redact_obj(event)
    assert out["stdout"] == f"fatal: unable to access 'https://bot:{MASK}@git.example/x/'"
    assert out["res"]["msg"] == [f"mysql://root:{MASK}@db2/x"]
    before = r.values_masked
    assert r.redact_text(out["stdout"]) == out["stdout"]  # already masked: not counted again
    assert r.values_masked == before


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ("[x, {y: 2}]", ["x", {"y": 2}]),
        ("  {a: b}  ", {"a": "b"}),
        ("plain text", None),
        ("{unclosed", None),
        ("42", None),
        ("", None),
    ],
)
def test_parse_structured(text: str, expected: object) -> None:
    assert parse_structured(text) == expected


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
    (inv / "host_vars" / "db1.yml").write_text(
        f"db_user: app\ndb_password: !vault |\n{indented}\nother: !unsafe '{{{{x}}}}'\n"
    )
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


def test_passwd_entry_fields_are_not_secrets() -> None:
    """pw_name is a user name (pwd.struct_passwd): masking it masked every 'root' in a path."""
    from orchestrator.redact import looks_secret

    assert not any(looks_secret(k) for k in ("pw_name", "pw_dir", "pw_shell", "pw_uid", "pw_gid", "pw_gecos"))
    assert looks_secret("pw") and looks_secret("db_pw") and looks_secret("pw_hash") is not None


def test_secrets_inside_plain_lists_are_masked() -> None:
    """Lists given as lists (``-e @vars.yml``, a JSON ``-e``), not as text: every item is
    masked by key, by URL and by value, and the values are learnt for the free text."""
    r = Redactor()
    masked, keys = r.redact_vars(
        {
            "dsns": ["postgres://u:Dsn-PW-0@h/db"],  # a secret key: the whole list
            "urls": ["postgres://u:List-PW-1@h/db", "mysql://r:List-PW-2@h2/db"],
            "targets": [{"host": "db1", "password": "Item-Secret-3"}, ("db2", {"token": "Item-Secret-4"})],
            "tokens": ["Under-Secret-Key-5", "Under-Secret-Key-6"],
            "hosts": ["db1", "db2"],
        }
    )
    assert masked["dsns"] == MASK
    assert masked["urls"] == [f"postgres://u:{MASK}@h/db", f"mysql://r:{MASK}@h2/db"]
    assert masked["targets"] == [{"host": "db1", "password": MASK}, ["db2", {"token": MASK}]]
    assert masked["tokens"] == MASK
    assert masked["hosts"] == ["db1", "db2"]
    assert sorted(keys) == ["dsns", "targets[0].password", "targets[1][1].token", "tokens"]
    text = r.redact_text(
        "Dsn-PW-0 List-PW-1 List-PW-2 Item-Secret-3 Item-Secret-4 Under-Secret-Key-5 Under-Secret-Key-6"
    )
    assert text == " ".join([MASK] * 7)
    # the same lists inside event data
    assert r.redact_obj({"res": ["ok", ["Item-Secret-4", "postgres://x:Other-PW@h"]]}) == {
        "res": ["ok", [MASK, f"postgres://x:{MASK}@h"]]
    }


def test_vault_values_exactly_in_lists_tags_and_whole_files(tmp_path: Path) -> None:
    """Every vault value and nothing else: inline ones inside lists and mappings next to other
    tags, whole encrypted files (YAML or plain text), files named directly; hidden files and
    folders and other suffixes are not read."""
    vault = _vault()

    def inline(text: str, indent: str) -> str:
        return "\n".join(indent + line for line in vault.encrypt(text).decode().splitlines())

    inv = tmp_path / "inv"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "group_vars" / "db.yml").write_text(
        "users:\n"
        "  - name: ro\n"
        f"    pw: !vault |\n{inline('List-Vault-1', '      ')}\n"
        "  - !vault |\n" + inline("List-Vault-2", "      ") + "\n"
        "tags: !unsafe [a, b]\n"
        "opts: !unsafe {k: v}\n"
        "note: !custom text\n"
    )
    (inv / "group_vars" / "plain.yaml").write_bytes(vault.encrypt("just one secret line\n"))
    (inv / ".hidden").mkdir()
    (inv / ".hidden" / "x.yml").write_bytes(vault.encrypt("Hidden-Dir-Secret"))
    (inv / "group_vars" / ".x.yml").write_bytes(vault.encrypt("Hidden-File-Secret"))
    (inv / "group_vars" / "notes.txt").write_bytes(vault.encrypt("Txt-Secret"))
    direct = tmp_path / "extra.cfg"
    direct.write_bytes(vault.encrypt("a: Direct-Secret\n"))
    (tmp_path / "vault-pass").write_text(PASSWORD + "\n")
    values = vault_values([inv, direct, tmp_path / "missing"], tmp_path / "vault-pass")
    assert values == {"List-Vault-1", "List-Vault-2", "just one secret line", "Direct-Secret"}


def test_vault_values_bad_yaml_with_a_vault_tag_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("a: !vault |\n  x\n b: [\n")
    with pytest.raises(BadInput, match=f"^cannot parse {bad} while looking for vault values: "):
        vault_values([bad], None)
    with pytest.raises(BadInput) as err:
        vault_values([tmp_path / "missing-dir", tmp_path], None)
    assert "cannot parse" in str(err.value)


def test_values_of_every_type_are_learnt_as_text_and_counted() -> None:
    """Numbers, bytes (invalid UTF-8 included), booleans and None under secret keys; values that
    are only asterisks are no secrets; the count of masked values adds URL passwords."""
    r = Redactor([12345678, "********", "  Spaced-Secret-1  "])  # type: ignore[list-item]
    assert r.values == frozenset({"12345678", "  Spaced-Secret-1  ", "Spaced-Secret-1"})
    r.redact_vars(
        {"db": {"db_password": 987654321, "key_bytes": b"Bytes-Secret-\xff\xfe", "flag_token": True, "pw": None}}
    )
    assert {"987654321", "Bytes-Secret-\ufffd\ufffd"} <= r.values
    assert not ({"True", "None", "False"} & r.values)
    r.values_masked = 0
    assert r.redact_text("12345678 and postgres://u:Url-PW-9@h/db") == f"{MASK} and postgres://u:{MASK}@h/db"
    assert r.values_masked == 2
    assert r.redact_text("nothing here") == "nothing here" and r.values_masked == 2
    no_values = Redactor()
    assert no_values.redact_text("at postgres://u:Url-PW-9@h") == f"at postgres://u:{MASK}@h"
    assert no_values.values_masked == 1


def test_masked_structured_text_keeps_its_characters_and_other_types() -> None:
    r = Redactor()
    masked, _ = r.redact_vars({"cfg": '{"名称": "环境", "password": "P-1", "n": 1.5, "when": "2026-12-01"}'})
    assert masked["cfg"] == f'{{"名称": "环境", "password": "{MASK}", "n": 1.5, "when": "2026-12-01"}}'
    dated, _ = r.redact_vars({"cfg": "{when: 2026-12-01, password: x}"})  # YAML gives a date: written as text
    assert json.loads(dated["cfg"]) == {"when": "2026-12-01", "password": MASK}


def test_parse_structured_only_mappings_and_lists() -> None:
    assert parse_structured("  [1, 2]") == [1, 2]
    assert parse_structured("XX{[XX") is None and parse_structured("X") is None
    assert parse_structured("[") is None
    assert parse_structured('{"a": 1}') == {"a": 1}


def test_redact_obj_on_a_mapping_type_and_values_already_masked() -> None:
    from collections import OrderedDict

    r = Redactor()
    event = OrderedDict([("password", "Ordered-Secret-1"), ("msg", "Ordered-Secret-1 seen")])
    assert r.redact_obj(event) == {"password": MASK, "msg": f"{MASK} seen"}
    r2 = Redactor()
    assert r2.redact_obj({"token": MASK, "note": "x"}) == {"token": MASK, "note": "x"}
    assert r2.values == frozenset()  # the mask itself is never learnt as a secret
    r3 = Redactor(["Later-Secret-1"])
    assert r3.redact_text("Later-Secret-1") == MASK
    r3.add_values(["Later-Secret-22"])
    assert r3.redact_text("Later-Secret-22 Later-Secret-1") == f"{MASK} {MASK}"


# -- vault: messages whole, odd files, a password script (issue 22, second mutation run) ----------


def test_vault_errors_are_named_whole(tmp_path: Path) -> None:
    secret_file = tmp_path / "vault.yml"
    secret_file.write_bytes(_vault().encrypt("pw: Whole-Message-1\n"))
    with pytest.raises(BadInput) as err:
        vault_values([secret_file], None)
    assert str(err.value) == (
        f"{secret_file} holds vault-encrypted data but no vault password file was given; "
        "set --vault-password-file (or ANSIBLE_VAULT_PASSWORD_FILE) so its values can be redacted"
    )
    empty = tmp_path / "empty-pass"
    empty.write_text("\n")
    with pytest.raises(BadInput) as err:
        vault_values([secret_file], empty)
    assert str(err.value) == f"cannot read vault password file {empty}: it is empty"
    # A password file that cannot be read (root reads a file of mode 000; Linux's /proc/self/mem
    # is a regular file whose read at offset 0 fails with EIO).
    with pytest.raises(BadInput) as err:
        vault_values([secret_file], Path("/proc/self/mem"))
    assert str(err.value) == "cannot read vault password file /proc/self/mem: Input/output error"
    wrong = tmp_path / "wrong-pass"
    wrong.write_text("not-the-password\n")
    with pytest.raises(BadInput) as err:
        vault_values([secret_file], wrong)
    assert str(err.value).startswith(f"cannot decrypt vault content in {secret_file} with {wrong}: Decryption failed (")


def test_vault_files_with_odd_bytes_blanks_or_plain_text(tmp_path: Path) -> None:
    vault = _vault()
    inv = tmp_path / "inv"
    inv.mkdir()
    (inv / "a.yml").symlink_to(tmp_path / "nowhere.yml")  # unreadable: skipped, the rest still read
    (inv / "b.yml").write_bytes(b"\n\n" + vault.encrypt("Leading-Blank-Lines-1"))  # whole file after blanks
    (inv / "c.yml").write_bytes(vault.encrypt(b"pw: Bad-\xff-Byte-2\n"))  # plaintext not UTF-8
    (inv / "d.yml").write_bytes(vault.encrypt("first line\n  second line\n"))  # text, not YAML's folding
    cipher = vault.encrypt("key: Inline-Yaml-3").decode()  # an inline value is one value, YAML or not
    indented = "\n".join("    " + line for line in cipher.splitlines())
    (inv / "e.yml").write_text(f"x: !vault |\n{indented}\n")
    (tmp_path / "vault-pass").write_text(PASSWORD + "\n")
    assert vault_values([tmp_path / "missing", inv], tmp_path / "vault-pass") == {
        "Leading-Blank-Lines-1",
        "Bad-\ufffd-Byte-2",
        "first line\n  second line",
        "key: Inline-Yaml-3",
    }


def test_a_vault_file_with_non_ascii_bytes_is_a_decryption_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_bytes(_vault().encrypt("Never-Read-4").replace(b"\n", "\né".encode(), 1))
    (tmp_path / "vault-pass").write_text(PASSWORD + "\n")
    with pytest.raises(BadInput, match=f"^cannot decrypt vault content in {broken} with "):
        vault_values([broken], tmp_path / "vault-pass")


def test_a_password_script_goes_through_ansible_with_its_errors_named(tmp_path: Path) -> None:
    secret_file = tmp_path / "vault.yml"
    secret_file.write_bytes(_vault().encrypt("pw: Script-Secret-5\n"))
    script = tmp_path / "pw.sh"
    script.write_text(f"#!/bin/sh\necho {PASSWORD}\n")
    script.chmod(0o700)
    assert vault_values([secret_file], script) == {"Script-Secret-5"}
    script.write_text("#!/bin/sh\necho not-the-password\n")
    with pytest.raises(BadInput) as err:
        vault_values([secret_file], script)
    assert str(err.value).startswith(f"cannot decrypt vault content in {secret_file} with {script}: ")
    script.write_text("#!/bin/sh\nexit 3\n")
    with pytest.raises(BadInput) as err:
        vault_values([secret_file], script)
    assert str(err.value).startswith(f"cannot read vault password file {script}: ")


def test_a_value_of_only_asterisks_is_no_secret_but_other_letters_are() -> None:
    r = Redactor(["********", "XXXXXXXX", "*XX*XX**"])
    assert r.redact_text("a ******** b XXXXXXXX c *XX*XX**") == f"a ******** b {MASK} c {MASK}"
