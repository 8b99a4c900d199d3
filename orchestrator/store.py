"""The shared archive store: one hash chain that several engineers and CI append to.

Every writer (an engineer's machine, a CI job) records its runs in its own local
archive first (``var/archive``: fast, works offline, flock-serialised on that
machine). ``opsctl store push`` then appends the records the store does not hold
yet to the **store's single chain**:

* the local chain is verified first: an edited local record is never re-sealed
  into the store (that would launder the edit);
* each record is appended with ``seq``/``prev_hash`` re-derived from the store's
  HEAD at append time and a fresh ``hash``; its content is unchanged except for
  ``origin`` = ``{archive, seq, hash}`` of the local record it copies, so an
  auditor can match the two. Records already published are never re-chained:
  appending only ever adds after the store's HEAD;
* a record id already in the store is skipped, so pushing is idempotent.

Two kinds of store (``--store SPEC`` or ``$OPSCTL_STORE``):

``dir:/path``
    another archive directory (e.g. a shared mount); writers serialise on its
    ``.lock`` flock like local runs do.
anything else (``ssh://...``, ``git@host:repo.git``, ``file://...``, a path to a bare repository)
    a git repository holding the archive layout (record folders + ``HEAD``) on
    branch ``$OPSCTL_STORE_BRANCH`` (default ``records``). The writer keeps a
    working clone under ``var/store/`` (flock'ed per machine), resets it to the
    remote branch, appends, commits, and pushes; a rejected push (another writer
    won the race: non-fast-forward or a held ref lock) means: fetch, reset, append
    again on top of the new HEAD, push again. Only a fast-forward is ever pushed,
    so nothing published is rewritten and no writer's record is lost. Auditors
    ``git clone`` the repository and run ``OPSCTL_ARCHIVE=<clone> opsctl records verify``.

Size (over 400 lines): the replay onto the store's chain, the divergence check, and the git
store's fetch/fast-forward/push loop are one set of invariants (nothing published is ever
rewritten or lost), reviewed together.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import paths
from .archive import ARTIFACTS, Archive, atomic_write, record_bytes
from .errors import ArchiveError, BadInput
from .lock import flock_file
from .records import login_user, on_behalf_of
from .redact import mask_url_credentials
from .signing import ORIGIN_SIG_FILE, SIG_FILE, signing_key

DEFAULT_BRANCH = "records"
STORE_GITIGNORE = (
    "# opsctl archive store: only record folders and HEAD are shared\n.pending/\n.lock\nindex.sqlite\n.index.*\n"
)
_CHAIN_FIELDS = ("seq", "prev_hash", "artifacts", "hash")
#: In a writer's working clone: the store's branch as this machine last saw it (only moves forward).
SEEN_REF = "refs/opsctl/seen"


@dataclass
class PushResult:
    store: str
    pushed: list[str] = field(default_factory=list)
    skipped: int = 0
    attempts: int = 0
    head: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "pushed": list(self.pushed),
            "skipped": self.skipped,
            "attempts": self.attempts,
            "head": self.head,
        }


class Store(Protocol):
    description: str

    def push(self, local: Archive) -> PushResult: ...

    def verify_store(self, signatures: Any = None) -> tuple[Archive, Any]: ...


# -- replaying records onto another chain ------------------------------------------------


def _origin_label(local: Archive) -> str:
    return f"{socket.gethostname()}:{local.root}"


def _local_records_in_order(local: Archive) -> list[dict[str, Any]]:
    records = [local.get(rid) for rid in local.record_ids()]
    return sorted(records, key=lambda r: int(r.get("seq") or 0))


def divergence(local: Archive, target: Archive) -> list[str]:
    """How the local archive differs from what it pushed to the store (empty: a prefix of
    or equal to it). Every store record copied from this archive (``origin.archive``) must
    still be here, with the same seq and hash: a local record rewritten, removed or
    re-chained after it was pushed, or a local archive emptied and started again, shows."""
    label = _origin_label(local)
    problems: list[str] = []
    local_ids = set(local.record_ids())
    for rid in target.record_ids():
        try:
            origin = target.get(rid).get("origin") or {}
        except ArchiveError:
            continue  # the store's own verification reports it
        if origin.get("archive") != label:
            continue
        if rid not in local_ids:
            problems.append(
                f"record {rid} (local seq {origin.get('seq')}) is in the store but gone from the "
                f"local archive: removed after it was pushed"
            )
            continue
        mine = local.get(rid)
        if mine.get("hash") != origin.get("hash") or mine.get("seq") != origin.get("seq"):
            problems.append(
                f"record {rid} differs from the copy in the store (local seq {mine.get('seq')} "
                f"hash {str(mine.get('hash'))[:12]}, pushed as seq {origin.get('seq')} hash "
                f"{str(origin.get('hash'))[:12]}): rewritten or re-chained after it was pushed"
            )
    return problems


def append_missing(local: Archive, target: Archive) -> tuple[list[str], int]:
    """Append the records of ``local`` that ``target`` lacks, in local chain order.

    Returns (ids appended, number already present). The caller holds whatever lock
    makes ``target`` single-writer for the duration (the archive's own flock covers
    each commit).
    """
    report = local.verify()
    if not report.ok:
        raise ArchiveError(
            f"the local archive {local.root} fails verification "
            f"({report.first_bad_id}: {report.problem}); refusing to push it"
        )
    diverged = divergence(local, target)
    if diverged:
        more = f" (and {len(diverged) - 1} more)" if len(diverged) > 1 else ""
        raise ArchiveError(
            f"the local archive {local.root} diverges from the store: {diverged[0]}{more}; refusing to push it"
        )
    present = set(target.record_ids())
    appended: list[str] = []
    skipped = 0
    origin = _origin_label(local)
    for rec in _local_records_in_order(local):
        rid = str(rec["id"])
        if rid in present:
            skipped += 1
            continue
        body = {k: v for k, v in rec.items() if k not in _CHAIN_FIELDS}
        body.setdefault("origin", {"archive": origin, "seq": rec.get("seq"), "hash": rec.get("hash")})
        pending = target.begin(rid, {"id": rid, "started": rec.get("started"), "replicated": True})
        pending.close()
        for art in ARTIFACTS:
            src = local.root / rid / art
            if src.is_file():
                shutil.copyfile(src, pending.path / art)
                os.chmod(pending.path / art, 0o600)
        # The maker's signature travels with the copy (over the origin's seq and hash, which
        # the copy's body holds); the copy itself is signed by whoever pushes it.
        made = local.root / rid / (ORIGIN_SIG_FILE if "origin" in rec else SIG_FILE)
        if made.is_file():
            shutil.copyfile(made, pending.path / ORIGIN_SIG_FILE)
            os.chmod(pending.path / ORIGIN_SIG_FILE, 0o600)
        # If this process dies now, recovery commits this very record (not an 'interrupted' one).
        atomic_write(pending.path / "record.json", record_bytes(body))
        target.commit(pending, body)
        appended.append(rid)
    return appended, skipped


# -- folder store ------------------------------------------------------------------------


class FolderStore:
    """Another archive directory (a shared mount) as the store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"dir:{root}"

    def push(self, local: Archive) -> PushResult:
        target = Archive(self.root)
        pushed, skipped = append_missing(local, target)
        return PushResult(self.description, pushed, skipped, 1, target.head())

    def verify_store(self, signatures: Any = None) -> tuple[Archive, Any]:
        target = Archive(self.root)
        return target, target.verify(signatures)


# -- git store ---------------------------------------------------------------------------


def _git(cwd: Path, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ArchiveError(_safe(f"git {' '.join(args)} failed: {exc}")) from exc
    if check and proc.returncode != 0:
        raise ArchiveError(_safe(f"git {' '.join(args)} failed in {cwd}: {(proc.stderr or proc.stdout).strip()}"))
    return proc


def _safe(message: str) -> str:
    """A message without the password of any URL in it (a store URL may carry a token:
    ``https://user:token@host/x`` is shown as ``https://user:********@host/x``)."""
    return mask_url_credentials(message)


class GitStore:
    """A git repository (usually bare, on a server) holding the archive layout on one branch."""

    MAX_ATTEMPTS = 20

    def __init__(self, url: str, branch: str | None = None, workdir: Path | None = None) -> None:
        self.url = url
        self.branch = branch or os.environ.get("OPSCTL_STORE_BRANCH") or DEFAULT_BRANCH
        digest = hashlib.sha256(f"{url}#{self.branch}".encode()).hexdigest()[:16]
        self.workdir = workdir or (paths.var_dir() / "store" / digest)
        self.description = _safe(f"{url}#{self.branch}")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.workdir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with flock_file(Path(str(self.workdir) + ".lock")):
            yield

    def _identity(self) -> list[str]:
        name = _git(self.workdir, "config", "user.name", check=False).stdout.strip()
        email = _git(self.workdir, "config", "user.email", check=False).stdout.strip()
        if not name:
            behalf, _ = on_behalf_of()  # the login, as in the records; a claimed name beside it
            name = f"{login_user()} (for {behalf})" if behalf else login_user()
        if not email:
            email = f"{login_user()}@{socket.gethostname()}"
        return ["-c", f"user.name={name}", "-c", f"user.email={email}"]

    def _sync(self) -> None:
        """Make the working clone exactly the remote branch (or an empty store)."""
        if not (self.workdir / ".git").is_dir():
            self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
            _git(self.workdir, "init", "-q")
            _git(self.workdir, "remote", "add", "origin", self.url)
        else:
            _git(self.workdir, "remote", "set-url", "origin", self.url)
        seen = _git(self.workdir, "rev-parse", "-q", "--verify", SEEN_REF, check=False).stdout.strip()
        fetch = _git(
            self.workdir,
            "fetch",
            "-q",
            "--prune",
            "origin",
            f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}",
            check=False,
        )
        remote_ref = f"refs/remotes/origin/{self.branch}"
        if fetch.returncode != 0 and "couldn't find remote ref" in fetch.stderr.lower():
            _git(self.workdir, "update-ref", "-d", remote_ref, check=False)  # no such branch (now)
        now = _git(self.workdir, "rev-parse", "-q", "--verify", remote_ref, check=False).stdout.strip()
        has_remote = bool(now)
        if fetch.returncode != 0 and has_remote:
            raise ArchiveError(f"cannot fetch the store {self.description}: {_safe(fetch.stderr.strip())}")
        self._check_fast_forward(seen, now)
        if now:
            _git(self.workdir, "update-ref", SEEN_REF, now)
        if fetch.returncode != 0 and "couldn't find remote ref" not in fetch.stderr.lower():
            # An unreachable store is an error; an empty repository (no branch yet) is not.
            ls = _git(self.workdir, "ls-remote", "origin", check=False)
            if ls.returncode != 0:
                raise ArchiveError(f"cannot reach the store {self.description}: {_safe(ls.stderr.strip())}")
        if has_remote:
            _git(self.workdir, "checkout", "-q", "-B", self.branch, remote_ref)
            _git(self.workdir, "reset", "-q", "--hard", remote_ref)
        else:
            # An empty store: start the branch afresh (no leftovers of a push that was rejected).
            _git(self.workdir, "symbolic-ref", "HEAD", f"refs/heads/{self.branch}")
            _git(self.workdir, "update-ref", "-d", f"refs/heads/{self.branch}", check=False)
            _git(self.workdir, "read-tree", "--empty")
        _git(self.workdir, "clean", "-qffdx")
        gitignore = self.workdir / ".gitignore"
        if not gitignore.is_file():
            gitignore.write_text(STORE_GITIGNORE, encoding="utf-8")

    def _check_fast_forward(self, seen: str, now: str) -> None:
        """The store's branch only ever grows: the commit this machine saw last must still be
        in its history. A branch reset, rewritten or deleted on the server (by anyone with
        write access there) is refused, and the last commit seen is kept for the auditors."""
        if not seen or seen == now:
            return
        grown = bool(now) and _git(self.workdir, "merge-base", "--is-ancestor", seen, now, check=False).returncode == 0
        if not grown:
            raise ArchiveError(
                f"the history of the store {self.description} was rewritten: this machine last saw commit "
                f"{seen[:12]}, which is no longer in branch {self.branch!r} "
                f"({'now ' + now[:12] if now else 'the branch is gone'}); refusing to use it "
                f"(the commit seen stays as {SEEN_REF} in {self.workdir}, for the investigation)"
            )

    def _signing(self) -> tuple[list[str], list[str]]:
        """How store commits are signed: with the writer's record key (``OPSCTL_SIGNING_KEY``,
        SSH format) when there is one; ``OPSCTL_STORE_SIGN=1`` signs with git's configured key."""
        key = signing_key()
        if key is not None:
            return ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}"], ["-S"]
        return [], (["-S"] if os.environ.get("OPSCTL_STORE_SIGN") == "1" else [])

    def push(self, local: Archive) -> PushResult:
        result = PushResult(self.description)
        with self._locked():
            for attempt in range(1, self.MAX_ATTEMPTS + 1):
                result.attempts = attempt
                self._sync()
                target = Archive(self.workdir)
                report = target.verify()
                if not report.ok:
                    raise ArchiveError(
                        f"the store {self.description} fails verification "
                        f"({report.first_bad_id}: {report.problem}); not appending to it"
                    )
                pushed, skipped = append_missing(local, target)
                result.pushed, result.skipped, result.head = pushed, skipped, target.head()
                if not pushed:
                    return result
                _git(self.workdir, "add", "-A")
                head = target.head() or {}
                first = target.get(pushed[0])["seq"]
                msg = (
                    f"records seq {first}..{head.get('seq')}: {len(pushed)} record(s) from {_origin_label(local)}"
                    if len(pushed) > 1
                    else f"record seq {first} {pushed[0]} from {_origin_label(local)}"
                )
                config, sign = self._signing()
                _git(self.workdir, *self._identity(), *config, "commit", "-q", *sign, "-m", msg)
                proc = _git(self.workdir, "push", "-q", "origin", f"HEAD:refs/heads/{self.branch}", check=False)
                if proc.returncode == 0:
                    _git(self.workdir, "update-ref", SEEN_REF, "HEAD")  # what we published: the floor
                    return result
                # Another writer got there first (non-fast-forward, or its ref lock): start again
                # from the store's new HEAD. Nothing was published, so nothing is re-chained.
                time.sleep(random.uniform(0.05, 0.3) * min(attempt, 5))
            raise ArchiveError(
                f"could not push to the store {self.description} after {self.MAX_ATTEMPTS} attempts: "
                f"{_safe(proc.stderr.strip())}"
            )

    def verify_store(self, signatures: Any = None) -> tuple[Archive, Any]:
        """Fetch and verify the store's chain (and, with ``signatures``, every signature:
        the pusher's on each copy, the maker's carried in ``origin.sig``)."""
        with self._locked():
            self._sync()
            target = Archive(self.workdir)
            return target, target.verify(signatures)


def open_store(spec: str | None = None) -> Store:
    """The store named by ``spec`` or ``$OPSCTL_STORE``: ``dir:/path`` or a git URL/path."""
    spec = spec or os.environ.get("OPSCTL_STORE")
    if not spec:
        raise BadInput(
            "no archive store configured: pass --store or set OPSCTL_STORE "
            "(a git URL, or dir:/path for a shared folder)"
        )
    if spec.startswith("dir:"):
        return FolderStore(Path(spec[4:]).expanduser().resolve())
    if "://" not in spec and ":" not in spec.split("/")[0] and Path(spec).expanduser().exists():
        spec = str(Path(spec).expanduser().resolve())  # a local bare repository path
    return GitStore(spec)


def pending_count(store_archive: Archive, local: Archive) -> int:
    """How many local records the store does not hold."""
    present = set(store_archive.record_ids())
    return sum(1 for rid in local.record_ids() if rid not in present)


def dump(result: PushResult) -> str:
    return json.dumps(result.to_dict(), indent=2, ensure_ascii=False)
