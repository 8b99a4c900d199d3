"""Property of the hash-chained archive: any single-byte change to any file of any record folder
(record.json, stdout.txt, events.jsonl) is detected by ``Archive.verify()``.

The one change ``verify`` accepts by design (tests/test_archive.py,
test_edit_reformatted_but_identical_is_ok) is a record.json rewritten to the same record: one
byte can do that only where the file's canonical JSON stays the same once parsed (its trailing
newline turned into other JSON whitespace, say). Such a change must be accepted, any other
refused, and the record it is in named as the first bad one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.records import fill
from orchestrator.archive import Archive, canonical_json

RECORDS = 4
FILES = ("record.json", "stdout.txt", "events.jsonl")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """A small archive, built once through the real begin/commit path; each example works on a copy."""
    root = tmp_path_factory.mktemp("chain") / "archive"
    archive = Archive(root)
    recs = fill(archive, RECORDS)
    archive.list()  # builds the index, as a used archive has one
    assert archive.verify().ok and archive.verify().count == RECORDS
    return root, recs


def _same_record(before: bytes, after: bytes) -> bool:
    """True if ``after`` parses to the record ``before`` holds (the canonical JSON is equal)."""
    try:
        return canonical_json(json.loads(after)) == canonical_json(json.loads(before))
    except ValueError:  # not JSON, not UTF-8, NaN...
        return False


@settings(max_examples=300)
@given(
    record=st.integers(0, RECORDS - 1),
    name=st.sampled_from(FILES),
    where=st.floats(0, 1, exclude_max=True),
    xor=st.integers(1, 255),
)
def test_any_single_byte_change_is_detected(
    built: tuple[Path, list[dict[str, Any]]],
    tmp_path_factory: pytest.TempPathFactory,
    record: int,
    name: str,
    where: float,
    xor: int,
) -> None:
    source, recs = built
    root = tmp_path_factory.mktemp("flip") / "archive"
    shutil.copytree(source, root)
    try:
        rid = recs[record]["id"]
        path = root / rid / name
        data = bytearray(path.read_bytes())
        assert data, path
        offset = int(where * len(data))
        before = bytes(data)
        data[offset] ^= xor  # a different byte (xor with 1..255), anywhere in the file
        path.write_bytes(bytes(data))
        report = Archive(root).verify()
        if name == "record.json" and _same_record(before, bytes(data)):
            assert report.ok, (rid, name, offset, report)  # reformatted, the same record
        else:
            assert not report.ok, (rid, name, offset, before[offset], data[offset])
            assert report.first_bad_id == rid, (report.first_bad_id, rid, report.problem)
    finally:
        shutil.rmtree(root.parent)


@settings(max_examples=40)
@given(record=st.integers(0, RECORDS - 1), xor=st.integers(1, 255))
def test_a_change_of_the_trailing_newline_of_record_json(
    built: tuple[Path, list[dict[str, Any]]], tmp_path_factory: pytest.TempPathFactory, record: int, xor: int
) -> None:
    """The one place where a byte of record.json may change the bytes and not the record: other
    JSON whitespace is accepted (the same record), anything else refused."""
    source, recs = built
    root = tmp_path_factory.mktemp("nl") / "archive"
    shutil.copytree(source, root)
    try:
        rid = recs[record]["id"]
        path = root / rid / "record.json"
        data = bytearray(path.read_bytes())
        assert data[-1:] == b"\n"
        data[-1] ^= xor
        path.write_bytes(bytes(data))
        report = Archive(root).verify()
        assert report.ok == (bytes(data[-1:]) in (b" ", b"\t", b"\r")), (data[-1], report)
    finally:
        shutil.rmtree(root.parent)
