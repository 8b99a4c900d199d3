"""The consulting register (咨询服务): consultations, questions from the bureau and liaison
with the government-cloud operator, kept as records in the change-record archive.

The same record model as the incident register (:mod:`orchestrator.incidents`): every action
(open, note, close) is one record in the hash-chained archive, so the register is append-only
and covered by ``opsctl records verify``. Such a record is an ordinary change record (no hosts,
status ``successful``, rc 0) with

* ``operation``: ``request-open``, ``request-note`` or ``request-close``;
* ``request``: the request id (``REQ-20261128-001``);
* ``request_event``: the action's payload (times in Asia/Shanghai with offset).

The register's state is the fold over those records in chain order.

Kinds and their clocks. The contract states response times for faults; a consultation and a
question from the bureau are held to the general fault's: **respond within 24 hours** (a note
marked as the reply to the requester, or the closing answer) and **close within 5 working
days** (the working-day calendar of :mod:`orchestrator.workdays`, the same rule as an incident's
resolution). Liaison with the government-cloud operator is work the contractor asks of someone
else: it is registered and reported, with no clock.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import paths
from .archive import Archive
from .errors import BadInput, NotFound
from .incidents import FUTURE_SKEW_S, ClockState, Target, TimelineEntry, deadlines_for, evaluate_clocks, stamp
from .lock import flock_file
from .records import commit_event_record
from .textclean import clean_optional, clean_text
from .workdays import Calendar, CalendarWarning, default_calendar, isoformat, local, now, parse_time

KINDS = ("consultation", "bureau-question", "cloud-liaison")
ACTIONS = ("open", "note", "close")
OPERATIONS = {action: f"request-{action}" for action in ACTIONS}
OPERATION_ACTIONS = {op: action for action, op in OPERATIONS.items()}
REQUEST_ID_RE = re.compile(r"REQ-[0-9]{8}-[0-9]{3,}", re.ASCII)
#: The clocks of each kind (see the module's docstring).
TARGETS: dict[str, tuple[Target, ...]] = {
    "consultation": (Target("respond", hours=24), Target("close", working_days=5)),
    "bureau-question": (Target("respond", hours=24), Target("close", working_days=5)),
    "cloud-liaison": (),
}


def validate_request_id(value: object) -> str:
    if not isinstance(value, str) or REQUEST_ID_RE.fullmatch(value) is None:
        raise BadInput(f"invalid request id {str(value)[:60]!r}: expected the form REQ-20261128-001")
    return value


def _check_kind(kind: str) -> str:
    if kind not in TARGETS:
        raise BadInput(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    return kind


def _with_by(text: str, by: object) -> str:
    return f"{text} — {by}" if by else text


@dataclass
class Request:
    id: str
    kind: str
    subject: str
    environment: str
    reported_at: dt.datetime
    opened_at: dt.datetime
    opened_record: str
    requester: str | None = None
    replied_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    answer: str | None = None
    events: list[TimelineEntry] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    deadlines: dict[str, dt.datetime] = field(default_factory=dict)
    calendar_warnings: tuple[CalendarWarning, ...] = ()

    @property
    def state(self) -> str:
        if self.closed_at is not None:
            return "closed"
        return "answered" if self.replied_at is not None else "open"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    def milestone(self, clock: str) -> dt.datetime | None:
        if clock == "respond":
            done = [t for t in (self.replied_at, self.closed_at) if t is not None]
            return min(done) if done else None
        return self.closed_at

    def clocks(self, at: dt.datetime | None = None, margin_hours: float = 0) -> list[ClockState]:
        return evaluate_clocks(TARGETS[self.kind], self.deadlines, self.milestone, at, margin_hours)

    def as_dict(self, at: dt.datetime | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "subject": self.subject,
            "requester": self.requester,
            "environment": self.environment,
            "reported_at": isoformat(self.reported_at),
            "opened_at": isoformat(self.opened_at),
            "replied_at": isoformat(self.replied_at) if self.replied_at else None,
            "closed_at": isoformat(self.closed_at) if self.closed_at else None,
            "answer": self.answer,
            "deadlines": {k: isoformat(v) for k, v in self.deadlines.items()},
            "clocks": [c.as_dict() for c in self.clocks(at)],
            "calendar_warnings": [str(w) for w in self.calendar_warnings],
            "records": list(self.records),
        }


class RequestRegister:
    """Open, annotate and close requests; read them back as the fold over the archive's records."""

    def __init__(self, archive: Archive | None = None, calendar: Calendar | None = None) -> None:
        self.archive = archive if archive is not None else Archive(paths.archive_dir())
        self.calendar = calendar or default_calendar()

    # -- reading -----------------------------------------------------------------

    def load(self) -> dict[str, Request]:
        """Every request, by id, folded from the archive in chain order."""
        rows: list[dict[str, Any]] = []
        for op in OPERATIONS.values():
            rows.extend(self.archive.list(op=op))
        rows.sort(key=lambda r: int(r["seq"]))
        requests: dict[str, Request] = {}
        for row in rows:
            if row.get("status") == "successful":  # a refused or interrupted action never happened
                self._apply(requests, self.archive.get(str(row["id"])))
        return requests

    def _apply(self, requests: dict[str, Request], rec: Mapping[str, Any]) -> None:
        action = OPERATION_ACTIONS.get(str(rec.get("operation")))
        payload = rec.get("request_event")
        req_id = rec.get("request")
        if action is None or not isinstance(payload, Mapping) or not isinstance(req_id, str):
            return
        record_id = str(rec.get("id"))
        try:
            at = parse_time(str(payload.get("at")))
        except BadInput:
            return
        by = payload.get("by")
        if action == "open":
            kind = str(payload.get("kind"))
            if req_id in requests or kind not in TARGETS:
                return
            try:
                reported = parse_time(str(payload.get("reported_at")))
            except BadInput:
                return
            deadlines, warnings = deadlines_for(TARGETS[kind], reported, self.calendar)
            requests[req_id] = Request(
                id=req_id,
                kind=kind,
                subject=str(payload.get("subject") or ""),
                environment=str(rec.get("environment") or ""),
                reported_at=reported,
                opened_at=at,
                opened_record=record_id,
                requester=payload.get("requester"),
                events=[
                    TimelineEntry(reported, "reported", str(payload.get("subject") or "")),
                    TimelineEntry(at, "opened", kind, record_id),
                ],
                records=[record_id],
                deadlines=deadlines,
                calendar_warnings=warnings,
            )
            return
        req = requests.get(req_id)
        if req is None:
            return
        req.records.append(record_id)
        text = str(payload.get("text") or "")
        if action == "note":
            reply = bool(payload.get("reply"))
            if reply and req.replied_at is None:
                req.replied_at = at
            req.events.append(TimelineEntry(at, "reply" if reply else "note", _with_by(text, by), record_id))
        elif action == "close" and req.closed_at is None:
            req.closed_at, req.answer = at, text
            req.events.append(TimelineEntry(at, "closed", _with_by(text, by), record_id))

    def get(self, request_id: str) -> Request:
        validate_request_id(request_id)
        req = self.load().get(request_id)
        if req is None:
            raise NotFound(f"no request {request_id} in the archive {self.archive.root}")
        return req

    # -- writing -----------------------------------------------------------------

    def _write(
        self, request_id: str, action: str, environment: str, payload: dict[str, Any], text: str
    ) -> dict[str, Any]:
        return commit_event_record(
            self.archive,
            operation=OPERATIONS[action],
            environment=environment,
            text=text,
            fields={"request": request_id, "request_event": payload},
            reason=str(payload.get("subject") or payload.get("text") or "") or None,
        )

    def _lock(self) -> Any:
        root = self.archive.root
        try:
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInput(f"cannot create the archive at {root}: {exc}") from exc
        return flock_file(root / ".requests.lock")

    @staticmethod
    def _check_time(at: dt.datetime, what: str, not_before: dt.datetime | None = None) -> dt.datetime:
        at = local(at)
        if at > now() + dt.timedelta(seconds=FUTURE_SKEW_S):
            raise BadInput(f"{what} {isoformat(at)} is in the future")
        if not_before is not None and at < not_before:
            raise BadInput(f"{what} {isoformat(at)} is before the request was made ({isoformat(not_before)})")
        return at

    def open(
        self,
        kind: str,
        subject: str,
        reported_at: dt.datetime | None = None,
        requester: str | None = None,
        environment: str = "production",
    ) -> tuple[Request, dict[str, Any]]:
        """Register a request; returns it and the committed record."""
        _check_kind(kind)
        subject = clean_text(subject or "", multiline=True)
        if not subject:
            raise BadInput("a request needs a subject (--subject TEXT)")
        if not environment or not re.fullmatch(r"[A-Za-z0-9_.-]+", environment):
            raise BadInput(f"invalid environment {environment!r}")
        opened = now()
        reported = self._check_time(reported_at or opened, "the request time")
        deadlines, warnings = deadlines_for(TARGETS[kind], reported, self.calendar)
        with self._lock():
            requests = self.load()
            prefix = f"REQ-{opened:%Y%m%d}-"
            taken = [int(i[len(prefix) :]) for i in requests if i.startswith(prefix)]
            req_id = f"{prefix}{(max(taken) + 1) if taken else 1:03d}"
            payload: dict[str, Any] = {
                "action": "open",
                "at": stamp(opened),
                "kind": kind,
                "subject": subject,
                "requester": clean_optional(requester) or None,
                "reported_at": stamp(reported),
                "targets": [t.as_dict() for t in TARGETS[kind]],
                "deadlines": {k: isoformat(v) for k, v in deadlines.items()},
                "calendar_warnings": [str(w) for w in warnings],
            }
            text = f"request {req_id} opened ({kind}): {subject}\n" + "".join(
                f"  {k} by {isoformat(v)}\n" for k, v in deadlines.items()
            )
            record = self._write(req_id, "open", environment, payload, text)
            self._apply(requests, record)
            return requests[req_id], record

    def _update(
        self, request_id: str, action: str, text: str, at: dt.datetime | None, by: str | None, reply: bool = False
    ) -> tuple[Request, dict[str, Any]]:
        validate_request_id(request_id)
        with self._lock():
            requests = self.load()
            req = requests.get(request_id)
            if req is None:
                raise NotFound(f"no request {request_id} in the archive {self.archive.root}")
            if req.closed_at is not None:
                raise BadInput(f"{request_id} was closed at {isoformat(req.closed_at)}; open a new request")
            moment = self._check_time(local(at) if at is not None else now(), f"the {action} time", req.reported_at)
            payload: dict[str, Any] = {"action": action, "at": stamp(moment), "text": text}
            if by:
                payload["by"] = by
            if action == "note":
                payload["reply"] = reply
            out = f"request {request_id}: {action}{' (reply)' if reply else ''} at {isoformat(moment)}\n  {text}"
            record = self._write(request_id, action, req.environment, payload, out)
            self._apply(requests, record)
            return requests[request_id], record

    def note(
        self, request_id: str, text: str, at: dt.datetime | None = None, by: str | None = None, reply: bool = False
    ) -> tuple[Request, dict[str, Any]]:
        """A note on the request's timeline; ``reply``: the answer given to the requester (stops
        the response clock)."""
        text = clean_text(text or "", multiline=True)
        if not text:
            raise BadInput("a note needs text")
        return self._update(request_id, "note", text, at, clean_optional(by) or None, reply)

    def close(
        self, request_id: str, answer: str, at: dt.datetime | None = None, by: str | None = None
    ) -> tuple[Request, dict[str, Any]]:
        """Close a request with the answer or outcome (stops every clock)."""
        answer = clean_text(answer or "", multiline=True)
        if not answer:
            raise BadInput("closing a request needs the answer or outcome (--answer TEXT)")
        return self._update(request_id, "close", answer, at, clean_optional(by) or None)


def requests_in_period(
    archive: Archive, start: dt.datetime, end: dt.datetime, as_of: dt.datetime | None = None
) -> dict[str, Any]:
    """The requests of a period [start, end) for a report: those made in it, plus those made
    before and still open at its start. Clocks are evaluated at ``min(end, as_of or now)``;
    ``records`` lists the ids of every register record the figures were built from."""
    start, end = local(start), local(end)
    moment = min(end, local(as_of) if as_of is not None else now())
    items = [
        r
        for r in RequestRegister(archive).load().values()
        if r.reported_at < end and (r.closed_at is None or r.closed_at >= start)
    ]
    items.sort(key=lambda r: (r.reported_at, r.id))
    by_kind = {k: {"count": 0, "closed": 0} for k in KINDS}
    met = evaluated = 0
    breaches: list[dict[str, Any]] = []
    for r in items:
        by_kind[r.kind]["count"] += 1
        closed = r.closed_at is not None and r.closed_at < end
        by_kind[r.kind]["closed"] += closed
        for c in r.clocks(moment):
            if c.status in ("met", "late", "breached"):
                evaluated += 1
                met += c.status == "met"
                if c.status != "met":
                    breaches.append({"id": r.id, "clock": c.clock, "status": c.status, "due": isoformat(c.due)})
    return {
        "from": isoformat(start),
        "to": isoformat(end),
        "as_of": isoformat(moment),
        "total": len(items),
        "opened": sum(1 for r in items if r.reported_at >= start),
        "closed": sum(v["closed"] for v in by_kind.values()),
        "open_at_end": sum(1 for r in items if r.closed_at is None or r.closed_at >= end),
        "by_kind": by_kind,
        "clocks_met": met,
        "clocks_evaluated": evaluated,
        "compliance_pct": round(100.0 * met / evaluated, 1) if evaluated else None,
        "breaches": breaches,
        "items": [r.as_dict(moment) for r in items],
        "records": [rid for r in items for rid in r.records],
    }
