"""Signed change records: ``ssh-keygen -Y sign`` over each record's id, seq and hash.

Whoever makes a record signs it with a key they already have: ``OPSCTL_SIGNING_KEY`` names an
SSH private key, or a public key whose private half is in ``ssh-agent`` (a hardware key
works). The signature is ``record.sig`` in the record's folder, made when the record is
filed; it covers ``envcredit-ops record <id> seq <seq> hash <hash>``, so with the chain it
covers the whole record and its stdout and events.

``opsctl records verify`` checks every signature against the allowed signers: the file
``security/allowed_signers`` of the repository (people and machines are added by merge
request, docs/signing.md), plus ``OPSCTL_ALLOWED_SIGNERS`` (a file of this machine, e.g. the
lab's key). A signature that does not verify, or by a key nobody allowed, fails
verification; so does an unsigned record of an environment whose policy says
``signed_records: required`` (staging and production). Timers and CI sign with their own
keys, named in ``allowed_signers`` like a person.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from . import paths
from .errors import BadInput, OpsError

NAMESPACE = "envcredit-ops-record"
SIG_FILE = "record.sig"
#: In a store copy: the signature its maker made in the archive it was pushed from.
ORIGIN_SIG_FILE = "origin.sig"
KEY_ENV = "OPSCTL_SIGNING_KEY"
EXTRA_SIGNERS_ENV = "OPSCTL_ALLOWED_SIGNERS"


class SigningError(OpsError):
    """The record could not be signed (no usable key)."""


def message(record_id: str, seq: object, digest: object) -> bytes:
    return f"envcredit-ops record {record_id} seq {seq} hash {digest}\n".encode("ascii", "replace")


def signing_key() -> Path | None:
    value = os.environ.get(KEY_ENV, "").strip()
    return Path(value).expanduser() if value else None


def _run(argv: list[str], data: bytes, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(argv, input=data, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SigningError(f"{argv[0]} failed: {exc}") from exc


def sign(data: bytes, key: Path) -> bytes:
    """An SSH signature (armored) of ``data`` with ``key`` in :data:`NAMESPACE`."""
    if not key.exists():
        raise SigningError(f"{KEY_ENV}={key}: no such key file")
    proc = _run(["ssh-keygen", "-q", "-Y", "sign", "-f", str(key), "-n", NAMESPACE], data)
    if proc.returncode != 0 or b"BEGIN SSH SIGNATURE" not in proc.stdout:
        why = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SigningError(f"cannot sign with {key}: {why[-1] if why else 'ssh-keygen failed'}")
    return proc.stdout


def check_key(key: Path | None = None) -> Path:
    """The configured key, after signing a test message with it (so a run that must be
    signed is refused before it starts, not left unsigned at the end)."""
    key = key or signing_key()
    if key is None:
        raise BadInput(
            f"this environment's records must be signed: set {KEY_ENV} to your SSH key "
            "(a private key, or the public key of one in ssh-agent; docs/signing.md)"
        )
    try:
        sign(b"envcredit-ops signing check\n", key)
    except SigningError as err:
        raise BadInput(str(err)) from err
    return key


def allowed_signers_files() -> list[Path]:
    files = [paths.repo_root() / "security" / "allowed_signers"]
    extra = os.environ.get(EXTRA_SIGNERS_ENV, "").strip()
    if extra:
        files += [Path(p).expanduser() for p in extra.split(os.pathsep) if p]
    return [f for f in files if f.is_file()]


class Verifier:
    """Checks record signatures against the allowed signers (one merged file per verifier)."""

    def __init__(self, files: Iterable[Path] | None = None) -> None:
        chosen = list(files) if files is not None else allowed_signers_files()
        text = "".join(f.read_text(encoding="utf-8") + "\n" for f in chosen)
        fd, name = tempfile.mkstemp(prefix="opsctl-allowed-signers.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        self.path = Path(name)
        self.sources = [str(f) for f in chosen]

    def close(self) -> None:
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def signer(self, signature: Path, data: bytes) -> tuple[str | None, str]:
        """(principal, "") when ``signature`` is a good signature of ``data`` by an allowed
        signer; (None, why) otherwise."""
        found = _run(["ssh-keygen", "-Y", "find-principals", "-s", str(signature), "-f", str(self.path)], b"")
        principals = found.stdout.decode("utf-8", "replace").split()
        if found.returncode != 0 or not principals:
            return None, "signed by a key that is not in the allowed signers"
        for principal in principals:
            proc = _run(
                [
                    "ssh-keygen",
                    "-Y",
                    "verify",
                    "-f",
                    str(self.path),
                    "-I",
                    principal,
                    "-n",
                    NAMESPACE,
                    "-s",
                    str(signature),
                ],
                data,
            )
            if proc.returncode == 0:
                return principal, ""
        return None, "the signature does not match the record (edited, or signed for another record)"
