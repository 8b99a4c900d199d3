"""The shared archive store: real git, a temporary bare repository, two writer processes at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.archive import Archive
from orchestrator.cli import cli
from orchestrator.errors import ArchiveError
from orchestrator.store import FolderStore, GitStore, _git, open_store

from helpers.common import ssh_keygen
from helpers.records import commit_record, fill

TESTS = Path(__file__).resolve().parent

# One writer: records runs in its own local archive and pushes after each one, like a CI job
# or an engineer's machine. Runs as a separate process (the race is between processes).
WRITER = textwrap.dedent("""\
    import sys
    from datetime import timedelta
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from helpers.records import BASE_TIME, commit_record
    from orchestrator.archive import Archive
    from orchestrator.store import FolderStore, GitStore
    local = Archive(Path(sys.argv[3]))
    spec, name, n = sys.argv[2], sys.argv[4], int(sys.argv[5])
    store = FolderStore(Path(spec[4:])) if spec.startswith("dir:") else GitStore(spec, workdir=Path(sys.argv[3] + "-clone"))
    attempts = 0
    for i in range(n):
        commit_record(local, op="backup", env=name, hosts=[f"{name}-h{i}"], when=BASE_TIME + timedelta(minutes=i))
        attempts += store.push(local).attempts
    print(attempts)
""")


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def run_writers(tmp_path: Path, spec: str, n: int) -> tuple[list[Archive], list[int]]:
    procs = []
    for name in ("alice", "ci"):
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(TESTS), spec, str(tmp_path / f"local-{name}"), name, str(n)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=tmp_path,
                env=dict(os.environ, OPSCTL_HOME=str(tmp_path)),
            )
        )
    attempts = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        attempts.append(int(out.strip()))
    return [Archive(tmp_path / f"local-{n_}") for n_ in ("alice", "ci")], attempts


def check_store(store_root: Path, locals_: list[Archive], n: int) -> None:
    store = Archive(store_root)
    report = store.verify()
    assert report.ok, report
    assert report.count == 2 * n
    wanted = {rid for a in locals_ for rid in a.record_ids()}
    assert set(store.record_ids()) == wanted  # no record lost, none duplicated
    for a in locals_:
        for rid in a.record_ids():
            local_rec, stored = a.get(rid), store.get(rid)
            assert stored["origin"]["hash"] == local_rec["hash"]
            assert stored["origin"]["seq"] == local_rec["seq"]
            same = {k: v for k, v in local_rec.items() if k not in ("seq", "prev_hash", "hash", "origin")}
            assert {k: v for k, v in stored.items() if k in same} == same
            assert (store_root / rid / "stdout.txt").read_bytes() == (a.root / rid / "stdout.txt").read_bytes()


def test_two_writers_push_to_one_git_store(tmp_path: Path) -> None:
    bare = tmp_path / "store.git"
    git("init", "-q", "--bare", str(bare))
    n = 6
    locals_, attempts = run_writers(tmp_path, str(bare), n)
    clone = tmp_path / "auditor"
    git("clone", "-q", "--branch", "records", str(bare), str(clone))
    check_store(clone, locals_, n)
    # store seq order is append order; each commit only fast-forwards: a linear history
    log = git("log", "--format=%s", cwd=clone).splitlines()
    assert len(log) >= 2 and all(line.startswith("record") for line in log)
    assert git("rev-list", "--merges", "--count", "HEAD", "--", cwd=clone).strip() == "0"
    print("push attempts per writer:", attempts)
    assert sum(attempts) >= 2 * n
    # the auditor's way: opsctl records verify on the fresh clone
    res = CliRunner().invoke(cli, ["records", "verify"], env={"OPSCTL_ARCHIVE": str(clone)})
    assert res.exit_code == 0, res.output
    assert f"OK: {2 * n} records" in res.output


def test_two_writers_on_a_shared_folder(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    n = 5
    locals_, _ = run_writers(tmp_path, f"dir:{shared}", n)
    check_store(shared, locals_, n)


def test_push_is_idempotent_and_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bare = tmp_path / "store.git"
    git("init", "-q", "--bare", str(bare))
    local = Archive(tmp_path / "local")
    fill(local, 3)
    monkeypatch.setenv("OPSCTL_HOME", str(tmp_path))
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(local.root))
    monkeypatch.setenv("OPSCTL_STORE", str(bare))
    runner = CliRunner()
    res = runner.invoke(cli, ["store", "push", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert len(out["pushed"]) == 3 and out["head"]["seq"] == 3
    res = runner.invoke(cli, ["store", "push"])
    assert res.exit_code == 0 and "pushed 0 record(s)" in res.output and "3 already there" in res.output
    commit_record(local, op="patch")
    res = runner.invoke(cli, ["store", "verify"])
    assert res.exit_code == 0 and "OK: 3 records" in res.output and "1 local record(s) not pushed" in res.output
    res = runner.invoke(cli, ["store", "push"])
    assert "pushed 1 record(s)" in res.output
    assert isinstance(open_store(), GitStore)
    assert isinstance(open_store(f"dir:{tmp_path / 'x'}"), FolderStore)


def test_push_refuses_tampered_local_and_broken_store(tmp_path: Path) -> None:
    bare = tmp_path / "store.git"
    git("init", "-q", "--bare", str(bare))
    local = Archive(tmp_path / "local")
    recs = fill(local, 2)
    store = GitStore(str(bare), workdir=tmp_path / "clone")
    assert len(store.push(local).pushed) == 2
    # an edited local record is never re-sealed into the store
    path = local.root / recs[0]["id"] / "record.json"
    os.chmod(path, 0o600)
    path.write_bytes(path.read_bytes().replace(b'"status":"successful"', b'"status":"failed"'))
    with pytest.raises(ArchiveError, match="local archive"):
        store.push(local)
    # a store whose history was rewritten by hand is not extended
    other = tmp_path / "other"
    git("clone", "-q", "--branch", "records", str(bare), str(other))
    rec = other / recs[1]["id"] / "record.json"
    rec.write_bytes(rec.read_bytes().replace(b'"rc":0', b'"rc":1'))
    git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qam", "edit", cwd=other)
    git("push", "-q", "origin", "records", cwd=other)
    good = Archive(tmp_path / "good")
    fill(good, 1)
    with pytest.raises(ArchiveError, match="fails verification"):
        store.push(good)


def test_no_store_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSCTL_STORE", raising=False)
    monkeypatch.setenv("OPSCTL_HOME", str(tmp_path))  # not the checkout's var/
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(tmp_path / "archive"))
    res = CliRunner().invoke(cli, ["store", "push"])
    assert res.exit_code == 2 and "no archive store configured" in res.output


def test_unreachable_store_is_an_error(tmp_path: Path) -> None:
    local = Archive(tmp_path / "local")
    fill(local, 1)
    store = GitStore(str(tmp_path / "missing.git"), workdir=tmp_path / "clone")
    with pytest.raises(ArchiveError, match="cannot reach the store"):
        store.push(local)


TOKEN = "S3cret-Store-Token"
TOKEN_URL = f"http://ops:{TOKEN}@127.0.0.1:9/envcredit/records.git"  # port 9: nothing listens
MASKED_URL = "http://ops:********@127.0.0.1:9/envcredit/records.git"


def test_store_url_credentials_are_masked_in_messages(tmp_path: Path) -> None:
    local = Archive(tmp_path / "local")
    fill(local, 1)
    store = GitStore(TOKEN_URL, workdir=tmp_path / "clone")
    assert store.url == TOKEN_URL  # git itself gets the credentials ...
    assert store.description == MASKED_URL + "#records"  # ... messages never do
    with pytest.raises(ArchiveError) as caught:
        store.push(local)
    assert MASKED_URL in str(caught.value) and TOKEN not in str(caught.value)
    with pytest.raises(ArchiveError) as caught:  # a failing git command names its arguments
        _git(tmp_path, "ls-remote", TOKEN_URL)
    assert f"git ls-remote {MASKED_URL} failed" in str(caught.value) and TOKEN not in str(caught.value)


@pytest.mark.parametrize("command", ["push", "verify"])
def test_store_cli_masks_url_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    monkeypatch.setenv("OPSCTL_HOME", str(tmp_path))
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(tmp_path / "local"))
    fill(Archive(tmp_path / "local"), 1)
    res = CliRunner().invoke(cli, ["store", command, "--store", TOKEN_URL])
    assert res.exit_code == 1
    assert res.output.startswith("Error: ") and MASKED_URL in res.output
    assert TOKEN not in res.output and "Traceback" not in res.output


# -- the store as the anchor (issue 18): an attacker with the archive folder, detected --------


def _anchored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Archive, list[dict[str, object]], Path]:
    bare = tmp_path / "store.git"
    git("init", "-q", "--bare", str(bare))
    local = Archive(tmp_path / "local")
    recs = fill(local, 4)
    monkeypatch.setenv("OPSCTL_HOME", str(tmp_path))
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(local.root))
    monkeypatch.setenv("OPSCTL_STORE", str(bare))
    res = CliRunner().invoke(cli, ["store", "push"])
    assert res.exit_code == 0, res.output
    return local, recs, bare


def _rechain(archive: Archive, keep: list[dict[str, object]], edit: dict[str, dict[str, object]] | None = None) -> None:
    """The attacker's tool: rewrite the records kept so their chain and HEAD are whole again."""
    import shutil

    from orchestrator.archive import atomic_write, record_bytes, record_hash

    keep_ids = {str(r["id"]) for r in keep}
    for rid in archive.record_ids():
        if rid not in keep_ids:
            shutil.rmtree(archive.root / rid)
    prev = None
    rec: dict[str, object] = {}
    for i, old in enumerate(keep, start=1):
        rec = archive.get(str(old["id"]))
        rec.update((edit or {}).get(str(rec["id"]), {}))
        rec["seq"], rec["prev_hash"] = i, prev
        rec["hash"] = record_hash(rec)
        path = archive.root / str(rec["id"]) / "record.json"
        os.chmod(path, 0o600)
        path.write_bytes(record_bytes(rec))
        prev = rec["hash"]
    head = {"seq": len(keep), "id": rec.get("id"), "hash": prev} if keep else None
    if head:
        atomic_write(archive.root / "HEAD", (json.dumps(head) + "\n").encode())
    else:
        (archive.root / "HEAD").unlink(missing_ok=True)
    archive.index_path.unlink(missing_ok=True)


@pytest.mark.parametrize(
    "attack", ["delete the newest", "rechain from the middle", "empty everything", "insert a forged production restore"]
)
def test_a_rewritten_archive_that_verifies_alone_is_caught_by_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, attack: str
) -> None:
    import shutil

    local, recs, bare = _anchored(tmp_path, monkeypatch)
    keep = {
        "delete the newest": recs[:-1],
        "rechain from the middle": [recs[0], recs[2], recs[3]],
        "empty everything": [],
        "insert a forged production restore": recs,
    }[attack]
    if attack.startswith("insert"):
        elsewhere = Archive(tmp_path / "forger")
        forged = commit_record(elsewhere, op="restore", env="production", ticket="CHG-1")
        shutil.copytree(elsewhere.root / forged["id"], local.root / forged["id"])
        keep = [recs[0], forged, *recs[1:]]
    _rechain(local, keep)
    assert local.verify().ok  # alone, the archive cannot tell
    runner = CliRunner()
    res = runner.invoke(cli, ["records", "verify", "--against-store"])
    assert res.exit_code == 1 and "DIVERGED: record" in res.stderr, res.output
    res = runner.invoke(cli, ["store", "verify"])
    assert res.exit_code == 1 and "DIVERGED" in res.stderr and "no longer matches what it pushed" in res.stderr
    res = runner.invoke(cli, ["store", "push"])
    assert res.exit_code != 0 and "diverges from the store" in res.stderr
    assert "Traceback" not in res.output


def test_a_local_record_rewritten_after_the_push_is_never_already_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local, recs, _bare = _anchored(tmp_path, monkeypatch)
    # a run re-sealed with another ticket and status, the chain after it re-hashed: whole, alone
    _rechain(local, recs, edit={str(recs[1]["id"]): {"status": "successful", "rc": 0, "ticket": "CHG-999"}})
    assert local.verify().ok and local.get(str(recs[1]["id"]))["ticket"] == "CHG-999"
    res = CliRunner().invoke(cli, ["store", "push"])
    assert res.exit_code != 0 and "diverges from the store" in res.stderr


def test_an_honest_archive_matches_what_it_pushed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local, _recs, _bare = _anchored(tmp_path, monkeypatch)
    commit_record(local, op="patch")  # a newer record, not pushed yet: still a prefix
    res = CliRunner().invoke(cli, ["records", "verify", "--against-store"])
    assert res.exit_code == 0 and "OK: 5 records, chain intact; matches what it pushed" in res.output


def test_a_store_history_rewritten_on_the_server_is_refused(tmp_path: Path) -> None:
    """The store's branch only grows (issue 18, item 2): a writer that saw commit X refuses a
    store whose branch no longer contains X (reset back, or emptied and refilled), even when
    the rewritten store verifies alone. Records are re-chained by nobody."""
    bare = tmp_path / "store.git"
    git("init", "-q", "--bare", str(bare))
    local = Archive(tmp_path / "local")
    store = GitStore(str(bare), workdir=tmp_path / "clone")
    for _ in range(2):  # two pushes: two commits
        commit_record(local)
        assert len(store.push(local).pushed) == 1
    seen = git("rev-parse", "records", cwd=bare).strip()
    # someone with write access on the server drops the newest commit (a valid, shorter chain)
    first = git("rev-list", "--max-parents=0", "records", cwd=bare).strip()
    git("update-ref", "refs/heads/records", first, cwd=bare)
    with pytest.raises(ArchiveError, match="history of the store .* was rewritten") as err:
        store.verify_store()
    assert seen[:12] in str(err.value)
    with pytest.raises(ArchiveError, match="was rewritten"):
        store.push(local)
    # the branch deleted: the same
    git("update-ref", "-d", "refs/heads/records", cwd=bare)
    with pytest.raises(ArchiveError, match="branch is gone"):
        store.verify_store()
    # a writer that never saw the store cannot know: it starts from what is there
    fresh = GitStore(str(bare), workdir=tmp_path / "fresh")
    assert fresh.verify_store()[1].ok


def test_store_commits_are_signed_with_the_writers_record_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = ssh_keygen(tmp_path / "ci-key", "ci")
    monkeypatch.setenv("OPSCTL_SIGNING_KEY", str(key))
    bare = tmp_path / "store.git"
    git("init", "-q", "--bare", str(bare))
    local = Archive(tmp_path / "local")
    fill(local, 1)
    GitStore(str(bare), workdir=tmp_path / "clone").push(local)
    allowed = tmp_path / "allowed"
    allowed.write_text(f"ci@envcredit {key.with_suffix('.pub').read_text()}", encoding="utf-8")
    shown = git("-c", f"gpg.ssh.allowedSignersFile={allowed}", "log", "-1", "--format=%G? %GS", "records", cwd=bare)
    assert shown.strip() == "G ci@envcredit", shown
