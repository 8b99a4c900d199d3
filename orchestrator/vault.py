"""Decryption of Ansible Vault data (format 1.1 and 1.2, AES256) without importing Ansible.

opsctl decrypts the inventory's vault values before every run, to mask them in the record.
Importing Ansible's vault code pulls in most of ansible-core (about 0.3 s on a 2-core
controller, before the playbook even starts); the format itself is small and documented
(https://docs.ansible.com/ansible/latest/vault_guide/vault_using_encrypted_content.html#ansible-vault-payload-format-1-1-1-2):

    $ANSIBLE_VAULT;1.1;AES256            (1.2: a fourth field, the vault id)
    hex( hex(salt) "\\n" hex(hmac) "\\n" hex(ciphertext) )   in lines of 80

    key1 | key2 | iv = PBKDF2-HMAC-SHA256(password, salt, 10000 rounds, 80 bytes)
    hmac  = HMAC-SHA256(key2, ciphertext), checked in constant time
    plain = PKCS#7-unpad( AES-256-CTR(key1, iv).decrypt(ciphertext) )

built here from the ``cryptography`` primitives Ansible itself uses. The tests decrypt what
Ansible's ``VaultLib`` encrypts, byte for byte, and refuse what it refuses (wrong password,
a changed byte). A password *script* (an executable password file) still goes through
Ansible (:func:`orchestrator.redact.vault_values`).
"""

from __future__ import annotations

import binascii
import hmac

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

HEADER = b"$ANSIBLE_VAULT"
_ITERATIONS = 10000


class VaultError(ValueError):
    """Not vault data this module reads, or the password does not open it."""


def decrypt(vaulttext: bytes, password: bytes) -> bytes:
    """The plaintext of one vault envelope (a whole encrypted file or one ``!vault`` value)."""
    lines = vaulttext.strip().splitlines()
    if not lines:
        raise VaultError("empty vault data")
    header = lines[0].strip().split(b";")
    if header[0] != HEADER or len(header) < 3:
        raise VaultError("not Ansible Vault data (no $ANSIBLE_VAULT header)")
    if header[1] not in (b"1.1", b"1.2") or header[2].strip() != b"AES256":
        raise VaultError(f"unsupported vault format {b';'.join(header[1:3]).decode('ascii', 'replace')}")
    try:
        body = binascii.unhexlify(b"".join(line.strip() for line in lines[1:]))
        salt_hex, mac_hex, cipher_hex = body.split(b"\n", 2)
        salt = binascii.unhexlify(salt_hex)
        mac = binascii.unhexlify(mac_hex)
        ciphertext = binascii.unhexlify(cipher_hex)
    except (binascii.Error, ValueError) as exc:
        raise VaultError("malformed vault data") from exc
    derived = PBKDF2HMAC(algorithm=hashes.SHA256(), length=80, salt=salt, iterations=_ITERATIONS).derive(password)
    key1, key2, iv = derived[:32], derived[32:64], derived[64:80]
    expected = hmac.new(key2, ciphertext, "sha256").digest()
    if not hmac.compare_digest(expected, mac):
        raise VaultError("HMAC verification failed: wrong vault password, or the data was changed")
    decryptor = Cipher(algorithms.AES(key1), modes.CTR(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    try:
        unpadder = padding.PKCS7(algorithms.AES.block_size).unpadder()
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise VaultError("bad padding after decryption") from exc


def read_password_file(path: str) -> bytes:
    """The password in a (non-executable) vault password file, as Ansible reads it: the file's
    bytes without surrounding whitespace."""
    with open(path, "rb") as fh:
        return fh.read().strip()
