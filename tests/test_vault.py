"""orchestrator/vault.py decrypts what Ansible's VaultLib encrypts, byte for byte, and refuses
what VaultLib refuses (issue 21: no Ansible import before a run)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ansible.parsing.vault import VaultLib, VaultSecret
from hypothesis import given, strategies as st

from orchestrator import vault
from orchestrator.errors import BadInput
from orchestrator.redact import vault_decryptor, vault_values


def encrypt(plain: bytes, password: bytes = b"pw", vault_id: str | None = None) -> bytes:
    lib = VaultLib([(vault_id or "default", VaultSecret(password))])
    return bytes(lib.encrypt(plain, vault_id=vault_id))


@given(st.binary(max_size=300), st.binary(min_size=1, max_size=40).filter(lambda p: p.strip() == p and p))
def test_decrypts_what_ansible_encrypts(plain: bytes, password: bytes) -> None:
    assert vault.decrypt(encrypt(plain, password), password) == plain


def test_format_1_2_with_a_vault_id() -> None:
    text = encrypt("机密 secret\n".encode(), b"pw", vault_id="prod")
    assert text.startswith(b"$ANSIBLE_VAULT;1.2;AES256;prod")
    assert vault.decrypt(text, b"pw") == "机密 secret\n".encode()


def test_wrong_password_changed_byte_and_garbage_are_refused() -> None:
    text = encrypt(b"value", b"right")
    with pytest.raises(vault.VaultError, match="HMAC"):
        vault.decrypt(text, b"wrong")
    lines = text.splitlines()
    last = lines[-1]
    flipped = last[:-1] + (b"0" if last[-1:] != b"0" else b"1")
    with pytest.raises(vault.VaultError):
        vault.decrypt(b"\n".join([*lines[:-1], flipped]), b"right")
    for bad in (
        b"",
        b"plain text",
        b"$ANSIBLE_VAULT;1.0;AES\nabc",
        b"$ANSIBLE_VAULT;1.1;AES256\nzz",
        b"$ANSIBLE_VAULT;1.1;AES256\n6162",
    ):
        with pytest.raises(vault.VaultError):
            vault.decrypt(bad, b"right")


def test_a_password_script_still_works_through_ansible(tmp_path: Path) -> None:
    """An executable password file is a script Ansible runs; a plain file is read natively."""
    data = tmp_path / "vars.yml"
    data.write_bytes(encrypt(b"db_password: S3cret-Script-9\n", b"from-script"))
    script = tmp_path / "pw.sh"
    script.write_text("#!/bin/sh\necho from-script\n", encoding="utf-8")
    os.chmod(script, 0o700)
    assert "S3cret-Script-9" in vault_values([data], script)
    plain = tmp_path / "pw.txt"
    plain.write_text("  from-script \n", encoding="utf-8")  # surrounding whitespace is not the password
    assert vault_decryptor(plain, data)(data, data.read_bytes()) == b"db_password: S3cret-Script-9\n"
    plain.write_text("other\n", encoding="utf-8")
    with pytest.raises(BadInput, match="cannot decrypt vault content in .*vars.yml"):
        vault_values([data], plain)
    plain.write_text("\n", encoding="utf-8")
    with pytest.raises(BadInput, match="empty"):
        vault_values([data], plain)
