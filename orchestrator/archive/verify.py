"""Verification of the archive: every record folder on its own (id, own hash, artifact
hashes), the chain (seq sequence, prev_hash links, HEAD), the index against the records,
and optionally every record's signature. The first bad record (in seq order) is named.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ArchiveError, OpsError
from ..records import RECORD_ID_RE, parse_iso
from . import index
from .files import ARTIFACTS, record_hash, sha256_of

if TYPE_CHECKING:
    from .chain import Archive


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    count: int
    first_bad_id: str | None = None
    problem: str = ""
    #: With signatures checked: records per signer, and records without a signature.
    signers: dict[str, int] = field(default_factory=dict)
    unsigned: int = 0
    #: In a store: the makers' signatures carried over from the archives the records were
    #: pushed from (``origin.sig``), per maker.
    makers: dict[str, int] = field(default_factory=dict)


@dataclass
class SignaturePolicy:
    """What ``verify`` checks of the signatures: against whom, and which environments'
    records must be signed."""

    verifier: Any  # signing.Verifier
    #: environment -> the time from which its runs must be signed (policy ``signed_records_since``):
    #: an archive's history from before signing was required keeps verifying.
    required_envs: Mapping[str, str] = field(default_factory=dict)
    #: The operations whose runs must be signed there (the catalog's: ``opsctl run`` refuses to
    #: start them without a key); None: every record. Register entries (incidents, notes) are
    #: checked when signed.
    operations: frozenset[str] | None = None


@dataclass
class _Entry:
    name: str
    id: str | None = None
    seq: int | None = None
    hash: str | None = None
    prev_hash: str | None = None
    problem: str | None = None
    #: What the index must hold for this record (derived from it).
    index_row: tuple[Any, ...] | None = None
    hosts: tuple[str, ...] = ()
    #: A store copy: (seq, hash) of the record in the archive it was pushed from.
    origin: tuple[object, object] | None = None


def _check_folder(root: Path, name: str) -> _Entry:
    """Check one record folder on its own: id, own hash, artifact hashes."""
    entry = _Entry(name=name)
    folder = root / name
    if RECORD_ID_RE.fullmatch(name) is None:
        entry.problem = f"folder {name!r} is not a record id (inserted or renamed folder)"
    try:
        with open(folder / "record.json", "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        entry.problem = entry.problem or f"record.json unreadable: {exc.strerror or exc}"
        return entry
    try:
        rec = json.loads(raw)
        if not isinstance(rec, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        entry.problem = entry.problem or f"record.json is not valid JSON ({exc}): edited"
        return entry
    seq = rec.get("seq")
    entry.seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
    entry.id = rec.get("id") if isinstance(rec.get("id"), str) else None
    stored = rec.get("hash")
    entry.hash = stored if isinstance(stored, str) else None
    prev = rec.get("prev_hash")
    entry.prev_hash = prev if isinstance(prev, str) else None
    if entry.problem:
        return entry
    if prev is not None and not isinstance(prev, str):
        # a record links to a hash (text) or, the first one, to nothing (null): any other value
        # was not written by commit(), whatever the record's own hash says
        entry.problem = f"record's prev_hash is {type(prev).__name__}, not a hash or null: edited"
        return entry
    if entry.seq is None:
        entry.problem = "record has no integer seq: edited"
    elif entry.id != name:
        entry.problem = f"folder {name} holds record {entry.id!r} (seq {entry.seq}): folders renamed or swapped"
    elif entry.hash is None:
        entry.problem = "record has no hash: edited"
    elif not _hash_ok(raw, rec, entry.hash):
        entry.problem = "record hash mismatch: record.json was edited"
    else:
        artifacts = rec.get("artifacts")
        if not isinstance(artifacts, dict):
            entry.problem = "record has no artifact hashes: edited"
        else:
            for art in ARTIFACTS:
                actual = sha256_of(folder / art)
                if actual is None:
                    entry.problem = f"{art} is missing: removed"
                    break
                if actual != artifacts.get(art):
                    entry.problem = f"{art} hash mismatch: {art} was edited"
                    break
            else:
                extra = sorted(set(os.listdir(folder)) - _FOLDER_FILES)
                if extra:
                    entry.problem = f"unexpected file(s) in the record folder: {', '.join(extra)}: added"
    if entry.problem is None:
        entry.index_row = index.index_row(rec)
        entry.hosts = tuple(index.hosts_of(rec))
        origin = rec.get("origin")
        if isinstance(origin, dict):
            entry.origin = (origin.get("seq"), origin.get("hash"))
    return entry


#: Every file a record folder holds; anything else was put there afterwards.
_FOLDER_FILES = frozenset({"record.json", "record.sig", "origin.sig", *ARTIFACTS})


def _hash_ok(raw: bytes, rec: Mapping[str, Any], stored: str) -> bool:
    # Fast path: record.json as written by commit() is canonical_json(record) + "\n", so
    # the hashed bytes are the file minus its '"hash":"<hex>",' member. If that fails
    # (e.g. the file was reformatted), fall back to re-serialising the parsed record.
    body = raw[:-1] if raw.endswith(b"\n") else raw
    member = b'"hash":"' + stored.encode("ascii", "replace") + b'",'
    if body.count(member) == 1 and hashlib.sha256(body.replace(member, b"", 1)).hexdigest() == stored:
        return True
    try:
        return record_hash(rec) == stored
    except ValueError:
        return False


def verify(archive: Archive, signatures: SignaturePolicy | None = None) -> VerifyReport:
    """Check the whole chain; report the first bad record (in seq order). With
    ``signatures``, also every record's signature (:mod:`orchestrator.signing`)."""
    if not archive.root.is_dir():
        return VerifyReport(ok=True, count=0)
    try:
        head = archive.head()
    except ArchiveError as exc:
        return VerifyReport(ok=False, count=0, first_bad_id=None, problem=str(exc))
    names: list[str] = []
    with os.scandir(archive.root) as it:
        for dirent in it:
            if dirent.name.startswith("."):
                continue
            if dirent.is_dir(follow_symlinks=False) or (dirent.is_symlink() and RECORD_ID_RE.fullmatch(dirent.name)):
                names.append(dirent.name)
    entries = [_check_folder(archive.root, name) for name in names]
    count = len(entries)

    def bad(entry_id: str | None, problem: str) -> VerifyReport:
        return VerifyReport(ok=False, count=count, first_bad_id=entry_id, problem=problem)

    unplaced = sorted((e for e in entries if e.seq is None), key=lambda e: e.name)
    if unplaced:
        return bad(unplaced[0].name, unplaced[0].problem or "record has no seq")
    by_seq: dict[int, list[_Entry]] = {}
    for e in entries:
        assert e.seq is not None
        by_seq.setdefault(e.seq, []).append(e)
    seqs = sorted(by_seq)
    expected, prev_hash, prev_id = 1, None, None
    for i, seq in enumerate(seqs):
        group = by_seq[seq]
        if len(group) > 1:
            if i + 1 < len(seqs):
                wanted = {e.prev_hash for e in by_seq[seqs[i + 1]]}
            else:
                wanted = {head["hash"]} if head else set()
            genuine = [e for e in group if e.problem is None and e.hash in wanted and e.prev_hash == prev_hash]
            keep = genuine[0] if genuine else None
            forged = sorted((e for e in group if e is not keep), key=lambda e: (e.problem is None, e.name))
            ids = ", ".join(sorted(e.name for e in group))
            return bad(
                forged[0].name,
                f"seq {seq} is claimed by {len(group)} records ({ids}); "
                f"{forged[0].name} is not part of the chain: inserted record"
                + (f" ({forged[0].problem})" if forged[0].problem else ""),
            )
        entry = group[0]
        if entry.problem:
            return bad(entry.name, entry.problem)
        if seq != expected:
            if seq < expected:
                return bad(entry.name, f"seq {seq} is out of range (the first record has seq 1): edited")
            missing = f"seq {expected}" if seq == expected + 1 else f"seqs {expected}..{seq - 1}"
            return bad(
                entry.name, f"seq jumps from {expected - 1} to {seq}: record(s) with {missing} missing (removed)"
            )
        if entry.prev_hash != prev_hash:
            before = f"record {prev_id}" if prev_id else "nothing (first record)"
            return bad(
                entry.name,
                f"prev_hash does not match the hash of {before}: "
                "a record before it was edited and re-hashed, replaced or reordered",
            )
        expected, prev_hash, prev_id = seq + 1, entry.hash, entry.name
    if not seqs:
        if head is not None:
            return bad(head.get("id"), f"HEAD names seq {head['seq']} but the archive holds no records: removed")
        return VerifyReport(ok=True, count=0)
    last = by_seq[seqs[-1]][0]
    if head is None:
        return bad(last.name, "HEAD is missing: cannot tell whether the newest records were removed")
    if head["seq"] > seqs[-1]:
        pend = archive.pending_root / str(head.get("id")) / "record.json"
        note = " (its commit was interrupted; run `opsctl records recover`)" if pend.exists() else ""
        return bad(
            head.get("id"),
            f"HEAD names seq {head['seq']} ({head.get('id')}) but the newest record is seq {seqs[-1]}: "
            f"newest record(s) removed{note}",
        )
    if head["seq"] < seqs[-1]:
        beyond = by_seq[head["seq"] + 1][0] if head["seq"] + 1 in by_seq else last
        return bad(beyond.name, f"record {beyond.name} (seq {beyond.seq}) is beyond HEAD (seq {head['seq']}): inserted")
    if head["hash"] != last.hash or head.get("id") != last.name:
        return bad(last.name, "the newest record does not match HEAD: edited and re-hashed, or replaced")
    problem = index.differs(archive, entries)
    if problem:
        return bad(problem[0], problem[1])
    if signatures is not None:
        return _verify_signatures(archive, sorted(entries, key=lambda e: e.seq or 0), signatures)
    return VerifyReport(ok=True, count=count)


def _must_be_signed(row: tuple[Any, ...], policy: SignaturePolicy) -> bool:
    operation, env, status, started = row[2], row[3], row[4], row[8]
    since = policy.required_envs.get(env)
    if since is None or status == "refused":
        return False
    if policy.operations is not None and operation not in policy.operations:
        return False
    try:
        return bool(started) and parse_iso(str(started)) >= parse_iso(since)
    except OpsError:
        return True


def _verify_signatures(archive: Archive, entries: Sequence[_Entry], policy: SignaturePolicy) -> VerifyReport:
    from .. import signing

    signers: dict[str, int] = {}
    makers: dict[str, int] = {}
    unsigned = 0

    def broken(e: _Entry, problem: str) -> VerifyReport:
        return VerifyReport(
            ok=False,
            count=len(entries),
            first_bad_id=e.name,
            problem=problem,
            signers=signers,
            unsigned=unsigned,
            makers=makers,
        )

    for e in entries:
        assert e.index_row is not None
        env = e.index_row[3]
        folder = archive.root / e.name
        # A store copy carries its maker's signature (over the record as the maker's archive
        # chained it: id, origin seq, origin hash, all inside this record's hash).
        made = folder / signing.ORIGIN_SIG_FILE
        if made.is_file():
            if e.origin is None:
                return broken(
                    e, f"{signing.ORIGIN_SIG_FILE} in a record that was not pushed from another archive: added"
                )
            maker, why = policy.verifier.signer(made, signing.message(e.name, *e.origin))
            if maker is None:
                return broken(e, f"bad signature of the record's maker ({signing.ORIGIN_SIG_FILE}): {why}")
            makers[maker] = makers.get(maker, 0) + 1
        sig = folder / signing.SIG_FILE
        if not sig.is_file():
            # A refusal is filed even when the key is missing (that is often why it was
            # refused); it changed nothing, and re-sealing one would break every later
            # record's signature, so it may stay unsigned.
            if _must_be_signed(e.index_row, policy):
                return broken(
                    e, f"record of {env} is not signed (its records must be): signature removed, or made without a key"
                )
            unsigned += 1
            continue
        who, why = policy.verifier.signer(sig, signing.message(e.name, e.seq, e.hash))
        if who is None:
            return broken(e, f"bad signature: {why}")
        signers[who] = signers.get(who, 0) + 1
    return VerifyReport(ok=True, count=len(entries), signers=signers, unsigned=unsigned, makers=makers)
