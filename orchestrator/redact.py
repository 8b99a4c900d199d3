"""Keeping secrets out of change records, stdout included.

Two sources of secrets are known before a run starts:

* variables whose *name* looks secret (``db_password``, ``api_key``,
  ``vault_token``, ``dsn`` ...): their values are masked where they appear as
  variables, whatever their length, and remembered as secret values. Extra
  vars whose value is JSON or YAML text (``-e 'x={"password": "..."}'``) are
  parsed and masked by key at any depth;
* vault-encrypted values of the inventory (``!vault`` scalars and fully
  encrypted ``group_vars``/``host_vars`` files): :func:`vault_values`
  decrypts them so their plaintext can be masked wherever it shows up.

:class:`Redactor` then replaces every known secret value (of at least
``MIN_LENGTH`` characters: shorter ones would mask every "a" of the output) in
free text with ``MASK``, and the password of every URL with credentials
(``scheme://user:password@host``) wherever it appears.

Size (over 400 lines): every rule of what counts as a secret (names, URLs, structured
values, vault plaintext) is kept together, so the rules are reviewed as one.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import BadInput

MASK = "********"
MIN_LENGTH = 4

#: Word parts that make a variable name secret wherever they appear in it.
#: Matched against the *normalised* key (lower case, camelCase split with "_").
SECRET_KEY_RE = re.compile(
    r"""
    (?:password|passwd|passphrase|secret|credential)         # anywhere in the name
    |
    (?:^|[_.\-\s])                                            # or as a whole word part
    (?:token|key|apikey|privkey|privatekey|sshkey|pwd|pw|pass|vault|dsn
       |(?:db|root|admin|user|login)(?:pass|pwd|pw))s?
    (?=$|[_.\-\s])
    |
    (?:^|[_.\-\s])(?:database|db)[_.\-\s]?ur[li]s?(?=$|[_.\-\s])  # connection URLs carry passwords
    """,
    re.VERBOSE,
)

#: Bare names that match the pattern but are not secrets: loops over dicts give
#: items ``{"key": ..., "value": ...}``, and ``key`` of authorized_key is public.
_NOT_SECRET = frozenset(
    {
        "key",
        "keys",
        # the fields of a passwd entry (Python's pwd module, getent): names, not passwords
        "pw_name",
        "pw_uid",
        "pw_gid",
        "pw_gecos",
        "pw_dir",
        "pw_shell",
    }
)

_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

#: The password of a URL with credentials: ``scheme://user:PASSWORD@host``. The user part may
#: hold "@" (an e-mail address); the password runs to the last "@" before the path. A password
#: that is already the mask does not match (it is not counted again).
_URL_CREDENTIALS_RE = re.compile(
    r"""(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s/:"'<>`]*:)"""
    r"""(?!""" + re.escape(MASK) + r"""@)(?P<password>[^\s/"'<>`]+)(?=@)"""
)

#: Values that hold no text: returned as they are by :meth:`Redactor.redact_obj`.
_PLAIN_LEAVES = frozenset({int, float, bool, type(None)})


def looks_secret(key: object) -> bool:
    """True if a variable (or dict key) name looks like it holds a secret.

    ``api_key``, ``ssh-key``, ``db.password``, ``dbPassword``, ``VAULT_TOKEN`` are
    secret; ``keyboard``, ``monkey``, ``tokenizer``, ``passive`` are not.
    """
    if not isinstance(key, str) or not key:
        return False
    return _str_looks_secret(key)


@functools.lru_cache(maxsize=8192)
def _str_looks_secret(key: str) -> bool:
    # Cached: event data repeats the same few hundred keys thousands of times per run.
    norm = _CAMEL_RE.sub("_", key).lower()
    if norm in _NOT_SECRET:
        return False
    return SECRET_KEY_RE.search(norm) is not None


def _scalar_leaves(value: Any) -> Iterator[str]:
    """Every scalar leaf of a nested structure, as text (booleans and None skipped)."""
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _scalar_leaves(v)
    elif isinstance(value, (list, tuple, set)):
        for v in value:
            yield from _scalar_leaves(v)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, (str, int, float)):
        yield str(value)
    elif isinstance(value, bytes):
        yield value.decode("utf-8", "replace")


def _url_subn(text: str) -> tuple[str, int]:
    if "://" not in text:  # the cheap test first: this runs on every string of every event
        return text, 0
    return _URL_CREDENTIALS_RE.subn(r"\g<head>" + MASK, text)


def mask_url_credentials(text: str) -> str:
    """``text`` with the password of every URL with credentials masked:
    ``https://user:token@host/x`` -> ``https://user:********@host/x``."""
    return _url_subn(text)[0]


def url_passwords(text: str) -> list[str]:
    """The passwords of the URLs with credentials in ``text``."""
    if "://" not in text:
        return []
    return [m.group("password") for m in _URL_CREDENTIALS_RE.finditer(text)]


def parse_structured(text: str) -> dict[str, Any] | list[Any] | None:
    """The mapping or list a JSON or YAML text holds (``{"password": "x"}``, ``[a, b]``), else None."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        try:
            value = yaml.safe_load(stripped)
        except yaml.YAMLError:
            return None
    return value if isinstance(value, (dict, list)) else None


class Redactor:
    """Masks secret values in variables, free text and nested event data."""

    def __init__(self, secret_values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._dirty = False
        self._keys: set[str] = set()
        self.values_masked = 0
        self.add_values(secret_values)

    # -- the value set -------------------------------------------------------------

    def add_values(self, values: Iterable[str]) -> None:
        """Remember more secret values (shorter than ``MIN_LENGTH`` ones are ignored)."""
        for value in values:
            if not isinstance(value, str):
                value = str(value)
            for candidate in {value, value.strip()}:
                if len(candidate) >= MIN_LENGTH and candidate.strip("*") and candidate not in self._values:
                    self._values.add(candidate)
                    self._dirty = True

    @property
    def values(self) -> frozenset[str]:
        return frozenset(self._values)

    def _compiled(self) -> re.Pattern[str] | None:
        if self._dirty or (self._pattern is None and self._values):
            ordered = sorted(self._values, key=lambda v: (-len(v), v))
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None
            self._dirty = False
        return self._pattern

    # -- masking -------------------------------------------------------------------

    def redact_text(self, text: str) -> str:
        """Replace every known secret value in ``text`` with ``MASK`` (longest first), and the
        password of every URL with credentials."""
        if not text:
            return text
        pattern = self._compiled()
        count = 0
        if pattern is not None:
            text, count = pattern.subn(MASK, text)
        text, urls = _url_subn(text)
        self.values_masked += count + urls
        return text

    def redact_vars(self, variables: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Mask the values of secret-looking keys, recursively.

        A value under a secret key is replaced by ``MASK`` whatever its length or type.
        Text values holding JSON or YAML (``-e 'x={"password": "P3q"}'``) are parsed and
        masked the same way at any depth; when that masks something the record keeps them
        as JSON text. Returns the masked copy and the dotted paths of the masked keys
        (``["db.password", "api_key", "x.password"]``). All secret values (and URL
        passwords) are learnt before anything is masked, so they are masked in the text of
        every variable whatever the order of the keys, and in free text (stdout, messages).
        """
        self._learn(variables)
        out, masked = self._mask_mapping(variables, "")
        self._keys.update(masked)
        return out, masked

    def _learn(self, value: Any, secret: bool = False) -> None:
        """Remember the leaves under secret keys and the passwords of URLs, at any depth."""
        if isinstance(value, Mapping):
            for key, item in value.items():
                self._learn(item, secret or looks_secret(key))
        elif isinstance(value, (list, tuple)):
            for item in value:
                self._learn(item, secret)
        elif isinstance(value, str):
            parsed = parse_structured(value)
            if parsed is not None:
                self._learn(parsed, secret)
            if secret:
                self.add_values([value])
            self.add_values(url_passwords(value))
        elif secret:
            self.add_values(_scalar_leaves(value))

    def _mask_mapping(self, variables: Mapping[str, Any], prefix: str) -> tuple[dict[str, Any], list[str]]:
        out: dict[str, Any] = {}
        masked: list[str] = []
        for key, value in variables.items():
            path = f"{prefix}{key}"
            if looks_secret(key):
                out[key] = MASK
                masked.append(path)
            else:
                out[key], sub = self._mask_value(value, path)
                masked.extend(sub)
        return out, masked

    def _mask_value(self, value: Any, path: str) -> tuple[Any, list[str]]:
        if isinstance(value, Mapping):
            return self._mask_mapping(value, f"{path}.")
        if isinstance(value, (list, tuple)):
            items: list[Any] = []
            masked: list[str] = []
            for i, item in enumerate(value):
                red, sub = self._mask_value(item, f"{path}[{i}]")
                items.append(red)
                masked.extend(sub)
            return items, masked
        if isinstance(value, str):
            parsed = parse_structured(value)
            if parsed is not None:
                red, masked = self._mask_value(parsed, path)
                if red != parsed:
                    return json.dumps(red, ensure_ascii=False, default=str), masked
        return self.redact_obj(value), []

    def redact_obj(self, obj: Any) -> Any:
        """Redact a nested structure: strings through :meth:`redact_text`, and the
        whole value under a secret-looking key replaced by ``MASK``."""
        # Exact-type checks first: event data is JSON (str, dict, list, numbers), and the
        # ABC checks below cost several times more per value.
        kind = type(obj)
        if kind is str:
            return self.redact_text(obj)
        if kind in _PLAIN_LEAVES:
            return obj
        if kind is dict or isinstance(obj, Mapping):
            # Collect values under secret keys first so that sibling text is masked too.
            secret = [k for k in obj if looks_secret(k)]
            for k in secret:
                v = obj[k]
                if v is not None and v != MASK:
                    self.add_values(_scalar_leaves(v))
            result: dict[Any, Any] = {}
            for k, v in obj.items():
                key = self.redact_text(k) if isinstance(k, str) else k
                if secret and k in secret and v is not None and not isinstance(v, bool):
                    result[key] = MASK
                else:
                    result[key] = self.redact_obj(v)
            return result
        if kind is list or isinstance(obj, (list, tuple)):
            return [self.redact_obj(v) for v in obj]
        if isinstance(obj, str):  # a str subclass
            return self.redact_text(obj)
        return obj

    def report(self) -> dict[str, Any]:
        """What was masked, for the record's ``redaction`` field (never the values)."""
        return {"keys": sorted(self._keys), "values_masked": self.values_masked, "min_length": MIN_LENGTH}


# -- vault ---------------------------------------------------------------------------

_VAULT_HEADER = b"$ANSIBLE_VAULT"
_YAML_SUFFIXES = {".yml", ".yaml", ".json", ""}


class _VaultCipher:
    __slots__ = ("ciphertext",)

    def __init__(self, ciphertext: str) -> None:
        self.ciphertext = ciphertext


class _VaultAwareLoader(yaml.SafeLoader):
    """Safe YAML loader that keeps ``!vault`` scalars as :class:`_VaultCipher` and
    tolerates ansible's other tags."""


def _construct_vault(loader: yaml.SafeLoader, node: yaml.Node) -> _VaultCipher:
    return _VaultCipher(str(loader.construct_scalar(node)))  # type: ignore[arg-type,unused-ignore]


def _construct_plain(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    return None


_VaultAwareLoader.add_constructor("!vault", _construct_vault)
_VaultAwareLoader.add_constructor("!unsafe", _construct_plain)
_VaultAwareLoader.add_constructor(None, _construct_plain)


def _candidate_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        path = Path(path)
        if path.is_file():
            yield path
        elif path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    candidate = Path(dirpath) / name
                    if not name.startswith(".") and candidate.suffix in _YAML_SUFFIXES:
                        yield candidate


def _leaves_with_ciphers(value: Any) -> Iterator[Any]:
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _leaves_with_ciphers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves_with_ciphers(v)
    else:
        yield value


def vault_values(paths: Iterable[Path], vault_password_file: Path | None) -> set[str]:
    """The plaintext of every vault-encrypted value in the given inventory files.

    ``paths`` are files or directories (an inventory directory, its
    ``group_vars``/``host_vars``); directories are walked for YAML files. Both
    inline ``!vault`` scalars and fully encrypted files are decrypted; for the
    latter every scalar leaf of the decrypted YAML is returned.

    Raises :class:`BadInput` if encrypted content is found but no (readable)
    password file is given, or the password does not decrypt it.
    """
    found: list[tuple[Path, str, bool]] = []  # (file, vaulttext, whole_file)
    for file in _candidate_files(paths):
        try:
            data = file.read_bytes()
        except OSError:
            continue
        if data.lstrip().startswith(_VAULT_HEADER):
            found.append((file, data.decode("ascii", "replace"), True))
        elif b"!vault" in data:
            try:
                doc = yaml.load(data, Loader=_VaultAwareLoader)  # noqa: S506 - safe loader subclass
            except yaml.YAMLError as exc:
                raise BadInput(f"cannot parse {file} while looking for vault values: {exc}") from exc
            for leaf in _leaves_with_ciphers(doc):
                if isinstance(leaf, _VaultCipher):
                    found.append((file, leaf.ciphertext, False))
    if not found:
        return set()

    decrypt = vault_decryptor(vault_password_file, found[0][0])
    values: set[str] = set()
    for file, vaulttext, whole in found:
        plaintext = decrypt(file, vaulttext.strip().encode("ascii", "replace"))
        text = plaintext.decode("utf-8", "replace")
        if whole:
            try:
                doc = yaml.load(text, Loader=_VaultAwareLoader)  # noqa: S506
            except yaml.YAMLError:
                doc = text
            values.update(_scalar_leaves(doc) if isinstance(doc, (dict, list)) else [text.strip()])
        else:
            values.add(text)
    return {v for v in values if v}


def vault_decryptor(password_file: Path | None, first_encrypted: Path) -> Callable[[Path, bytes], bytes]:
    """A function (file, vaulttext) -> plaintext with the password of ``password_file``.

    A plain password file is read and the data decrypted by :mod:`orchestrator.vault` (no
    Ansible import: a fixed 0.3 s of every run); a password script (executable) goes through
    Ansible's vault code, which runs it."""
    if password_file is None:
        raise BadInput(
            f"{first_encrypted} holds vault-encrypted data but no vault password file was given; "
            "set --vault-password-file (or ANSIBLE_VAULT_PASSWORD_FILE) so its values can be redacted"
        )
    if not Path(password_file).is_file():
        raise BadInput(f"vault password file {password_file} does not exist or is not a file")
    if not os.access(password_file, os.X_OK):
        from . import vault

        try:
            password = vault.read_password_file(str(password_file))
        except OSError as exc:
            raise BadInput(f"cannot read vault password file {password_file}: {exc.strerror or exc}") from exc
        if not password:
            raise BadInput(f"cannot read vault password file {password_file}: it is empty")

        def native(file: Path, vaulttext: bytes) -> bytes:
            try:
                return vault.decrypt(vaulttext, password)
            except vault.VaultError as exc:
                raise BadInput(
                    f"cannot decrypt vault content in {file} with {password_file}: Decryption failed ({exc})"
                ) from exc

        return native
    from ansible.errors import AnsibleError
    from ansible.parsing.dataloader import DataLoader
    from ansible.parsing.vault import VaultLib, get_file_vault_secret

    try:
        secret = get_file_vault_secret(filename=str(password_file), vault_id="default", loader=DataLoader())
        secret.load()
    except AnsibleError as exc:
        raise BadInput(f"cannot read vault password file {password_file}: {exc}") from exc
    lib = VaultLib(secrets=[("default", secret)])

    def through_ansible(file: Path, vaulttext: bytes) -> bytes:
        try:
            return bytes(lib.decrypt(vaulttext))
        except AnsibleError as exc:
            raise BadInput(f"cannot decrypt vault content in {file} with {password_file}: {exc}") from exc

    return through_ansible
