"""Signed change records (issue 18, item 1): ssh-keygen -Y sign over each record's id, seq and
hash, verified against security/allowed_signers (+ OPSCTL_ALLOWED_SIGNERS). Real ssh-keygen keys."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers.common import allowed_signers_line, ssh_keygen
from helpers.records import commit_record, fill
from orchestrator.archive import Archive, SignaturePolicy
from orchestrator.signing import Verifier


def keypair(tmp_path: Path, name: str) -> Path:
    return ssh_keygen(tmp_path / "keys" / name, name)


def allowed(tmp_path: Path, *entries: tuple[str, Path]) -> Path:
    path = tmp_path / "allowed_signers"
    path.write_text(
        "".join(allowed_signers_line(who, key) for who, key in entries),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Any]:
    alice, mallory = keypair(tmp_path, "alice"), keypair(tmp_path, "mallory")
    return {"alice": alice, "mallory": mallory, "allowed": allowed(tmp_path, ("alice@envcredit", alice))}


def check(
    archive: Archive,
    allowed_file: Path,
    required: frozenset[str] = frozenset(),
    since: str = "2000-01-01T00:00:00Z",
    operations: frozenset[str] | None = None,
) -> Any:
    with Verifier([allowed_file]) as verifier:
        return archive.verify(SignaturePolicy(verifier, dict.fromkeys(required, since), operations))


def test_records_are_signed_by_their_maker_and_verified(
    tmp_path: Path, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = Archive(tmp_path / "archive")
    monkeypatch.setenv("OPSCTL_SIGNING_KEY", str(keys["alice"]))
    recs = fill(archive, 3)
    assert all((archive.root / r["id"] / "record.sig").read_text().startswith("-----BEGIN SSH SIGNATURE") for r in recs)
    report = check(archive, keys["allowed"], frozenset({"production"}))
    assert report.ok and report.signers == {"alice@envcredit": 3} and report.unsigned == 0
    assert archive.verify().ok  # the chain alone still verifies (no signature check asked)


def test_a_key_nobody_allowed_fails(tmp_path: Path, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    archive = Archive(tmp_path / "archive")
    monkeypatch.setenv("OPSCTL_SIGNING_KEY", str(keys["alice"]))
    fill(archive, 1)
    monkeypatch.setenv("OPSCTL_SIGNING_KEY", str(keys["mallory"]))
    forged = commit_record(archive, env="production")
    report = check(archive, keys["allowed"])
    assert not report.ok and report.first_bad_id == forged["id"]
    assert "not in the allowed signers" in report.problem


def test_a_signature_of_another_record_or_edited_fails(
    tmp_path: Path, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = Archive(tmp_path / "archive")
    monkeypatch.setenv("OPSCTL_SIGNING_KEY", str(keys["alice"]))
    recs = fill(archive, 2)
    shutil.copyfile(archive.root / recs[0]["id"] / "record.sig", archive.root / recs[1]["id"] / "record.sig")
    report = check(archive, keys["allowed"])
    assert not report.ok and report.first_bad_id == recs[1]["id"] and "does not match the record" in report.problem
    (archive.root / recs[1]["id"] / "record.sig").write_text(
        "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n"
    )
    assert not check(archive, keys["allowed"]).ok


def test_unsigned_records_fail_where_signatures_are_required(
    tmp_path: Path, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = Archive(tmp_path / "archive")
    monkeypatch.delenv("OPSCTL_SIGNING_KEY", raising=False)
    lab = commit_record(archive, env="lab")
    report = check(archive, keys["allowed"], frozenset({"production"}))
    assert report.ok and report.unsigned == 1  # the lab does not require signatures
    prod = commit_record(archive, env="production")
    report = check(archive, keys["allowed"], frozenset({"production"}))
    assert not report.ok and report.first_bad_id == prod["id"] and "is not signed" in report.problem
    assert lab["id"] != prod["id"]


def test_the_signature_removed_from_a_signed_record_fails(
    tmp_path: Path, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = Archive(tmp_path / "archive")
    monkeypatch.setenv("OPSCTL_SIGNING_KEY", str(keys["alice"]))
    rec = commit_record(archive, env="production")
    (archive.root / rec["id"] / "record.sig").unlink()
    report = check(archive, keys["allowed"], frozenset({"production"}))
    assert not report.ok and "is not signed" in report.problem


# -- through opsctl: a production-like policy with signed_records: required


def test_a_run_that_must_be_signed_needs_a_key_and_is_signed(
    opsctl_home: Path, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_run import invoke, latest

    policy = opsctl_home / "inventories" / "production" / ".opsctl.yml"
    policy.write_text(policy.read_text(encoding="utf-8") + "signed_records: required\n", encoding="utf-8")
    monkeypatch.delenv("OPSCTL_SIGNING_KEY", raising=False)
    code, _out, err = invoke("run", "ok", "--env", "production", "--reason", "check")
    assert code == 2 and "must be signed: set OPSCTL_SIGNING_KEY" in err
    assert latest(opsctl_home)["status"] == "refused"
    monkeypatch.setenv("OPSCTL_SIGNING_KEY", str(opsctl_home / "no-such-key"))
    code, _out, err = invoke("run", "ok", "--env", "production", "--reason", "check")
    assert code == 2 and "no such key file" in err

    monkeypatch.setenv("OPSCTL_SIGNING_KEY", str(keys["alice"]))
    monkeypatch.setenv("OPSCTL_ALLOWED_SIGNERS", str(keys["allowed"]))
    code, out, err = invoke("run", "ok", "--env", "production", "--reason", "check")
    assert code == 0, out + err
    rec = latest(opsctl_home)
    assert (opsctl_home / "var" / "archive" / rec["id"] / "record.sig").is_file()
    code, out, err = invoke("records", "verify")
    assert code == 0 and "signed by alice@envcredit (1)" in out and "2 unsigned" in out, out + err


def test_history_before_signing_was_required_and_register_entries_keep_verifying(
    tmp_path: Path, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An archive from before the policy (BASE_TIME 2026-11-28) and unsigned incident entries
    stay valid; a run of a catalog operation after the time must be signed."""
    archive = Archive(tmp_path / "archive")
    monkeypatch.delenv("OPSCTL_SIGNING_KEY", raising=False)
    fill(archive, 2)  # production/staging runs of 2026-11-28, unsigned
    ops = frozenset({"backup", "patch"})
    assert check(archive, keys["allowed"], frozenset({"production", "staging"}), "2026-11-29T00:00:00+08:00", ops).ok
    from datetime import datetime, timezone

    late = datetime(2026, 12, 1, 2, 0, tzinfo=timezone.utc)
    commit_record(archive, env="production", op="incident-open", when=late)  # a register entry
    assert check(archive, keys["allowed"], frozenset({"production"}), "2026-11-29T00:00:00+08:00", ops).ok
    run = commit_record(archive, env="production", op="backup", when=late)
    report = check(archive, keys["allowed"], frozenset({"production"}), "2026-11-29T00:00:00+08:00", ops)
    assert not report.ok and report.first_bad_id == run["id"] and "is not signed" in report.problem


# -- the store: each copy signed by whoever pushed it, the maker's signature carried along


def test_a_store_copy_keeps_its_makers_signature_and_is_signed_by_the_pusher(
    tmp_path: Path, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.store import FolderStore

    ci = keypair(tmp_path, "ci")
    allowed_file = allowed(tmp_path, ("alice@envcredit", keys["alice"]), ("ci@envcredit", ci))
    local = Archive(tmp_path / "local")
    monkeypatch.setenv("OPSCTL_SIGNING_KEY", str(keys["alice"]))
    recs = fill(local, 2)
    monkeypatch.setenv("OPSCTL_SIGNING_KEY", str(ci))
    store = FolderStore(tmp_path / "store")
    assert store.push(local).pushed == [r["id"] for r in recs]
    with Verifier([allowed_file]) as verifier:
        copy, report = store.verify_store(SignaturePolicy(verifier, {"production": "2000-01-01T00:00:00Z"}))
    assert report.ok, report.problem
    assert report.signers == {"ci@envcredit": 2} and report.makers == {"alice@envcredit": 2}
    first, second = (copy.root / r["id"] for r in recs)
    # The maker's signature of another record, one by a key nobody allowed, one added to a
    # record that was not pushed from anywhere: each fails.
    shutil.copyfile(second / "origin.sig", tmp_path / "saved.sig")
    shutil.copyfile(first / "origin.sig", second / "origin.sig")
    report = check(copy, allowed_file)
    assert not report.ok and report.first_bad_id == recs[1]["id"] and "the record's maker" in report.problem
    # what was counted before the failure: the first copy's maker and pusher
    assert (report.count, report.makers, report.signers) == (2, {"alice@envcredit": 1}, {"ci@envcredit": 1})
    shutil.copyfile(tmp_path / "saved.sig", second / "origin.sig")
    assert check(copy, allowed_file).ok
    mallory = subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-f", str(keys["mallory"]), "-n", "envcredit-ops-record"],
        input=f"{recs[0]['id']}\n".encode(),
        capture_output=True,
        check=True,
    ).stdout
    (first / "origin.sig").write_bytes(mallory)
    report = check(copy, allowed_file)
    assert not report.ok and report.first_bad_id == recs[0]["id"] and "not in the allowed signers" in report.problem
    shutil.copyfile(second / "origin.sig", local.root / recs[0]["id"] / "origin.sig")
    report = check(local, allowed_file)
    assert not report.ok and "not pushed from another archive" in report.problem


# -- what verify reports of the signatures, whole (the mutation run of issue 22, tests/MUTATION.md "verify")


def test_the_failing_report_counts_what_was_checked_before_it(
    tmp_path: Path, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.archive import VerifyReport

    archive = Archive(tmp_path / "archive")
    monkeypatch.delenv("OPSCTL_SIGNING_KEY", raising=False)
    commit_record(archive, env="lab")  # unsigned, allowed there
    monkeypatch.setenv("OPSCTL_SIGNING_KEY", str(keys["alice"]))
    commit_record(archive, env="production")
    assert check(archive, keys["allowed"], frozenset({"production"})) == VerifyReport(
        ok=True, count=2, signers={"alice@envcredit": 1}, unsigned=1
    )
    monkeypatch.delenv("OPSCTL_SIGNING_KEY")
    bad = commit_record(archive, env="production")
    assert check(archive, keys["allowed"], frozenset({"production"})) == VerifyReport(
        ok=False,
        count=3,
        first_bad_id=bad["id"],
        problem="record of production is not signed (its records must be): signature removed, or made without a key",
        signers={"alice@envcredit": 1},
        unsigned=1,
    )


def test_signing_is_required_from_the_run_start_on(
    tmp_path: Path, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that started before the time (and ended after it) may stay unsigned; one that started
    at the very time may not; a time the policy cannot read requires signatures (fails closed)."""
    from datetime import timedelta

    from helpers.records import BASE_TIME
    from orchestrator.records import iso

    archive = Archive(tmp_path / "archive")
    monkeypatch.delenv("OPSCTL_SIGNING_KEY", raising=False)
    rec = commit_record(archive, env="production", when=BASE_TIME)  # ends 30 s later
    assert check(archive, keys["allowed"], frozenset({"production"}), iso(BASE_TIME + timedelta(seconds=10))).ok
    report = check(archive, keys["allowed"], frozenset({"production"}), iso(BASE_TIME))
    assert not report.ok and report.first_bad_id == rec["id"]
    report = check(archive, keys["allowed"], frozenset({"production"}), "since the audit")
    assert not report.ok and report.first_bad_id == rec["id"]
    assert check(archive, keys["allowed"], frozenset({"staging"}), "since the audit").ok  # not production's policy
