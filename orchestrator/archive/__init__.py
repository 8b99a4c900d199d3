"""The change-record archive: one folder per record, chained by hashes, indexed.

Layout under the archive root::

    <id>/record.json      the record (canonical JSON, see :func:`canonical_json`)
    <id>/stdout.txt       the run's full stdout (redacted)
    <id>/events.jsonl     the ansible-runner events, one JSON object a line (redacted)
    <id>/record.sig       its signature, when signed (:mod:`orchestrator.signing`)
    .pending/<id>/        a run in progress (pending.json + the two streams)
    HEAD                  {"seq", "id", "hash"} of the newest record
    index.sqlite          a query index, rebuildable from the folders at any time
    .lock                 flock serialising commits

The package's modules:

* :mod:`.files`: the canonical form, the hashes, atomic writes;
* :mod:`.chain`: :class:`Archive`: appending (begin, commit, HEAD) and reading records;
* :mod:`.index`: the SQLite index, built from the records and checked against them;
* :mod:`.verify`: verification of the chain, the index and the signatures;
* :mod:`.recovery`: interrupted runs (processes checked and stopped), called once per
  command by the runner layer (:func:`orchestrator.runner.recover_interrupted`).

Exports (CSV, JSON, HTML) are a report: :mod:`orchestrator.reports.export`.
"""

from __future__ import annotations

from .chain import Archive, PendingRun
from .files import ARTIFACTS, DIR_MODE, FILE_MODE, atomic_write, canonical_json, record_bytes, record_hash
from .index import INDEX_NAME, INDEX_VERSION
from .verify import SignaturePolicy, VerifyReport

__all__ = [
    "ARTIFACTS",
    "DIR_MODE",
    "FILE_MODE",
    "INDEX_NAME",
    "INDEX_VERSION",
    "Archive",
    "PendingRun",
    "SignaturePolicy",
    "VerifyReport",
    "atomic_write",
    "canonical_json",
    "record_bytes",
    "record_hash",
]
