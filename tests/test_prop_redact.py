"""Properties of the redaction (orchestrator/redact.py), on generated nested extra vars.

What the module promises, and so what is tested:

* ``redact_vars``: the value under a secret-looking key is masked whatever it is, at any depth,
  also inside text holding JSON; every secret value (of at least ``MIN_LENGTH`` characters) and
  every URL password is learnt first, so it is masked wherever else it appears in the vars;
* ``redact_obj`` (event data): the value under a secret-looking key is masked, and strings go
  through ``redact_text`` (the values learnt so far, and the password of every URL).

Not promised, so not tested: a secret shorter than ``MIN_LENGTH`` found outside its key; a
secret that ``redact_obj`` meets in a string *before* the secret key that reveals it (in the
run, ``redact_vars`` has learnt the extra vars before any event is redacted).

The generated secrets are drawn from an alphabet that neither the keys, the mask, nor the
harmless values use, so a secret found in the output can only be a leak.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.redact import MIN_LENGTH, Redactor, looks_secret

# Secrets: upper case, digits, a little punctuation and non-ASCII text; at least one upper-case
# letter or non-ASCII character so that no number or key can contain one. None of the JSON
# escapes, URL delimiters or "*".
SECRET_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789!#$%&()+-=~^.;|密码秘钥"
secrets = st.text(SECRET_ALPHABET, min_size=MIN_LENGTH, max_size=24).filter(
    lambda s: any(c.isupper() or not c.isascii() for c in s)
)

# (No all-capitals key: the keys are kept in the output, and "PASS" could be a secret.)
SECRET_KEYS = [
    "password",
    "db_password",
    "dbPassword",
    "api_key",
    "apiKey",
    "ssh-key",
    "db.passwd",
    "private_key",
    "client_secret",
    "vault_token",
    "token",
    "credentials",
    "passphrase",
    "mysql_root_pwd",
    "rootpass",
    "database_url",
    "pg_dsn",
    "vault",
    "awsSecretAccessKey",
]
assert all(looks_secret(k) for k in SECRET_KEYS)
secret_keys = st.sampled_from(SECRET_KEYS)
# Harmless keys and values: lower case only, and never a secret-looking name.
plain_keys = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12).filter(lambda k: not looks_secret(k))
plain_text = st.text("abcdefghijklmnopqrstuvwxyz _-:/", max_size=20)
plain_leaves = st.one_of(
    plain_text,
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
)


@st.composite
def urls_with_password(draw: st.DrawFn, password: str) -> str:
    """Free text holding ``scheme://user:PASSWORD@host/path``."""
    scheme = draw(st.sampled_from(["https", "http", "postgresql", "mysql+pymysql", "redis", "amqp"]))
    user = draw(st.text("abcdefghijklmnopqrstuvwxyz._", min_size=0, max_size=8))
    host = draw(st.sampled_from(["db1", "10.0.0.5:5432", "example.org", "[::1]"]))
    path = draw(st.sampled_from(["", "/", "/envcredit", "/x?sslmode=require"]))
    before = draw(st.sampled_from(["", "url ", "connect to "]))
    after = draw(st.sampled_from(["", " failed", "\n"]))
    return f"{before}{scheme}://{user}:{password}@{host}{path}{after}"


def _secret_value(draw: st.DrawFn, secret: str) -> Any:
    """What sits under a secret key: the secret itself, or a structure holding it."""
    kind = draw(st.sampled_from(["plain", "padded", "list", "dict", "json"]))
    if kind == "plain":
        return secret
    if kind == "padded":
        return f"  {secret}\n"
    if kind == "list":
        return [draw(plain_leaves), secret]
    if kind == "dict":
        key = draw(plain_keys)
        return {key: secret, f"{key}_note": draw(plain_leaves)}
    return json.dumps({"value": secret})


@st.composite
def extra_vars(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """Nested extra vars and the secrets hidden in them (under secret keys, in URLs, in JSON or
    YAML text, and repeated in harmless places)."""
    planted: list[str] = []

    def new_secret() -> str:
        # distinct, and none inside another: each one is checked on its own
        secret = draw(secrets.filter(lambda c: not any(c in p or p in c for p in planted)))
        planted.append(secret)
        return secret

    def tree(
        depth: int, choices: tuple[str, ...] = ("leaf", "secret", "url", "echo", "dict", "list", "json", "yaml")
    ) -> Any:
        kind = draw(st.sampled_from(choices if depth < 4 else ["leaf", "secret", "url", "echo"]))
        if kind == "leaf":
            return draw(plain_leaves)
        if kind == "secret":
            secret = new_secret()
            return {draw(secret_keys): _secret_value(draw, secret)}
        if kind == "url":
            secret = new_secret()
            return draw(urls_with_password(secret))
        if kind == "echo":  # a secret planted elsewhere, repeated in free text (masked as a value)
            secret = new_secret()
            return {draw(secret_keys): secret, draw(plain_keys): f"the password is {secret}, really"}
        if kind == "dict":
            return {key: tree(depth + 1) for key in draw(st.lists(plain_keys, min_size=1, max_size=3, unique=True))}
        if kind == "list":
            return [tree(depth + 1) for _ in range(draw(st.integers(1, 3)))]
        inner = {draw(plain_keys): tree(depth + 1), draw(secret_keys): _secret_value(draw, new_secret())}
        return json.dumps(inner) if kind == "json" else yaml.safe_dump(inner, default_flow_style=True)

    # (distinct keys: a key drawn twice would drop a planted secret from the vars)
    top = {key: tree(1) for key in draw(st.lists(plain_keys, max_size=3, unique=True))}
    # at least one secret, somewhere among the others
    top[draw(plain_keys.filter(lambda k: k not in top))] = tree(1, ("secret", "url", "echo", "json", "yaml"))
    return top, planted


def serialisations(value: Any) -> list[str]:
    """The ways a record is written or shown: JSON (raw UTF-8 and ASCII-escaped), YAML, repr."""
    return [
        json.dumps(value, ensure_ascii=False),
        json.dumps(value),
        yaml.safe_dump(value, allow_unicode=True),
        repr(value),
    ]


def assert_no_leak(output: Any, planted: list[str]) -> None:
    for text in serialisations(output):
        for secret in planted:
            escaped = json.dumps(secret)[1:-1]  # its \\uXXXX form in ASCII JSON
            assert secret not in text and escaped not in text, (secret, text)


@settings(max_examples=300)
@given(extra_vars())
def test_redact_vars_never_lets_a_secret_through(case: tuple[dict[str, Any], list[str]]) -> None:
    variables, planted = case
    assert planted
    redactor = Redactor()
    masked, paths = redactor.redact_vars(variables)
    assert_no_leak(masked, planted)
    assert_no_leak(paths, planted)
    assert_no_leak(redactor.report(), planted)
    # and what it learnt keeps them out of free text and event data met afterwards
    text = " ".join(planted)
    assert_no_leak(redactor.redact_text(text), planted)
    assert_no_leak(redactor.redact_obj({"event_data": {"res": {"stdout": text, "cmd": [text]}}}), planted)


@settings(max_examples=300)
@given(extra_vars())
def test_redact_obj_never_lets_a_secret_under_a_key_or_in_a_url_through(case: tuple[dict[str, Any], list[str]]) -> None:
    """Event data with the same shapes, redacted by a fresh redactor that knows no value yet:
    secrets under secret keys and URL passwords are masked where they are; a secret repeated
    in free text is masked when the secret key is a sibling ("echo": collected first)."""
    variables, planted = case
    assert_no_leak(Redactor().redact_obj(variables), [s for s in planted if not _only_in_json_text(variables, s)])


def _only_in_json_text(value: Any, secret: str) -> bool:
    """True if ``secret`` shows in ``value`` only inside JSON/YAML text: redact_obj treats such
    text as a string and does not parse it (only redact_vars promises that)."""

    def outside(v: Any) -> bool:
        if isinstance(v, dict):
            return any(outside(x) for x in v.values())
        if isinstance(v, list):
            return any(outside(x) for x in v)
        if isinstance(v, str):
            return secret in v and not v.lstrip().startswith(("{", "["))
        return False

    return not outside(value)
