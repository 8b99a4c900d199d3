"""The incident register: SLA clocks kept as records in the change-record archive.

Every incident action (open, ack, note, recovered, resolve) is one record in the
same hash-chained archive as the change records, so incidents are append-only
and covered by ``opsctl records verify``. Such a record is an ordinary change
record (no hosts, no changes, status ``successful``, rc 0) with

* ``operation``: ``incident-open``, ``incident-ack``, ``incident-note``,
  ``incident-recovered`` or ``incident-resolve``;
* ``incident``: the incident id (``INC-20261128-001``), the same field that
  ``opsctl run ... --incident ID`` fills, so the index links runs and events;
* ``incident_event``: the action's payload (times in Asia/Shanghai with offset).

The register's state is the fold over those records in chain order. Deadlines
are computed from the report time and the severity on the working-day calendar
(:mod:`orchestrator.workdays`) each time, so a year's schedule added later
corrects them; the deadlines known when the incident was opened stay in the
open record as evidence.

Service levels (the contract):

* ``general`` fault: respond within 24 h, resolve within 5 working days;
* ``outage`` (the system cannot run): respond within 4 h, emergency recovery
  within 1 working day, resolve within 3 working days.

A clock's milestone: *respond* is the acknowledgement (or, without one, the
first recovery or resolution); *recover* is the ``recovered`` action (or, without
one, the resolution); *resolve* is the resolution.

Size (over 400 lines): the register's state machine (open, ack, note, recovered, resolve),
its SLA clocks and their rendering to records belong together; the clocks use
orchestrator.workdays.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import paths
from .archive import Archive
from .errors import BadInput, NotFound
from .lock import flock_file
from .records import commit_event_record
from .textclean import clean_optional, clean_text
from .workdays import Calendar, CalendarWarning, add_hours, default_calendar, isoformat, local, now, parse_time

SEVERITIES = ("general", "outage")
ACTIONS = ("open", "ack", "note", "recovered", "resolve")
OPERATIONS = {action: f"incident-{action}" for action in ACTIONS}
OPERATION_ACTIONS = {op: action for action, op in OPERATIONS.items()}
INCIDENT_ID_RE = re.compile(r"INC-[0-9]{8}-[0-9]{3,}", re.ASCII)
#: How far in the future an operator's time may be (clock skew), in seconds.
FUTURE_SKEW_S = 300
DEFAULT_MARGIN_HOURS = 2.0
CLOCKS = ("respond", "recover", "resolve")
# Clock statuses. met: done in time; late: done after the deadline; breached: not done and
# past the deadline; due-soon: not done, within the warning margin; running: not done, not due.


@dataclass(frozen=True)
class Target:
    clock: str
    hours: float | None = None
    working_days: int | None = None

    def describe(self) -> str:
        if self.hours is not None:
            return f"{self.hours:g} h"
        return f"{self.working_days} working day{'s' if self.working_days != 1 else ''}"

    def as_dict(self) -> dict[str, Any]:
        return {"clock": self.clock, "hours": self.hours, "working_days": self.working_days}


TARGETS: dict[str, tuple[Target, ...]] = {
    "general": (Target("respond", hours=24), Target("resolve", working_days=5)),
    "outage": (Target("respond", hours=4), Target("recover", working_days=1), Target("resolve", working_days=3)),
}


def default_margin() -> float:
    """The warning margin in hours: ``OPSCTL_SLA_MARGIN_HOURS`` or 2."""
    raw = os.environ.get("OPSCTL_SLA_MARGIN_HOURS")
    if not raw:
        return DEFAULT_MARGIN_HOURS
    try:
        value = float(raw)
    except ValueError:
        raise BadInput(f"OPSCTL_SLA_MARGIN_HOURS must be a number of hours, not {raw!r}") from None
    if value < 0:
        raise BadInput("OPSCTL_SLA_MARGIN_HOURS must not be negative")
    return value


def _by(name: str | None) -> str | None:
    """Who did an incident action, as typed (control characters removed); blank is nobody."""
    return clean_optional(name) or None


def validate_incident_id(value: object) -> str:
    if not isinstance(value, str) or INCIDENT_ID_RE.fullmatch(value) is None:
        raise BadInput(f"invalid incident id {str(value)[:60]!r}: expected the form INC-20261128-001")
    return value


def stamp(moment: dt.datetime) -> str:
    """A stored event time: ISO 8601 in Asia/Shanghai with offset, to the millisecond (orders the timeline)."""
    return local(moment).isoformat(timespec="milliseconds")


def compute_deadlines(
    severity: str, reported_at: dt.datetime, calendar: Calendar | None = None
) -> tuple[dict[str, dt.datetime], tuple[CalendarWarning, ...]]:
    """The SLA deadlines of an incident reported at ``reported_at``."""
    if severity not in TARGETS:
        raise BadInput(f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    return deadlines_for(TARGETS[severity], reported_at, calendar)


def deadlines_for(
    targets: Sequence[Target], reported_at: dt.datetime, calendar: Calendar | None = None
) -> tuple[dict[str, dt.datetime], tuple[CalendarWarning, ...]]:
    """The deadline of each target clock for something reported at ``reported_at`` (clock hours,
    or working days on the calendar); shared by the incident and the request registers."""
    cal = calendar or default_calendar()
    out: dict[str, dt.datetime] = {}
    warnings: list[CalendarWarning] = []
    for target in targets:
        if target.hours is not None:
            out[target.clock] = add_hours(reported_at, target.hours)
        else:
            assert target.working_days is not None
            deadline = cal.add_working_days(reported_at, target.working_days)
            out[target.clock] = deadline.at
            warnings.extend(w for w in deadline.warnings if w not in warnings)
    return out, tuple(warnings)


# -- the derived state -----------------------------------------------------------------------


@dataclass(frozen=True)
class ClockState:
    clock: str
    target: Target
    due: dt.datetime
    done_at: dt.datetime | None
    status: str

    @property
    def late_by(self) -> dt.timedelta | None:
        """How far past the deadline the milestone came (or ``now`` is, for a breached clock)."""
        return None if self.status in ("met", "running", "due-soon") else self._late

    _late: dt.timedelta | None = None

    def as_dict(self) -> dict[str, Any]:
        late = self.late_by
        return {
            "clock": self.clock,
            "target": self.target.describe(),
            "due": isoformat(self.due),
            "done_at": isoformat(self.done_at) if self.done_at else None,
            "status": self.status,
            "late_hours": round(late.total_seconds() / 3600, 2) if late is not None else None,
        }


def evaluate_clocks(
    targets: Sequence[Target],
    deadlines: Mapping[str, dt.datetime],
    milestone: Callable[[str], dt.datetime | None],
    at: dt.datetime | None = None,
    margin_hours: float = DEFAULT_MARGIN_HOURS,
) -> list[ClockState]:
    """Each target clock's state at ``at`` (default now): its deadline against the time its
    milestone was reached (``milestone(clock)``, None while not reached)."""
    moment = local(at) if at is not None else now()
    margin = dt.timedelta(hours=margin_hours)
    out: list[ClockState] = []
    for target in targets:
        due = deadlines[target.clock]
        done = milestone(target.clock)
        if done is not None:
            status = "met" if done <= due else "late"
            late = done - due if done > due else None
        elif moment > due:
            status, late = "breached", moment - due
        elif moment >= due - margin:
            status, late = "due-soon", None
        else:
            status, late = "running", None
        out.append(ClockState(target.clock, target, due, done, status, late))
    return out


@dataclass
class TimelineEntry:
    at: dt.datetime
    kind: str  # opened, acknowledged, note, run, recovered, resolved
    text: str
    record_id: str | None = None
    status: str | None = None  # for runs: the run's status

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": isoformat(self.at),
            "kind": self.kind,
            "text": self.text,
            "record_id": self.record_id,
            "status": self.status,
        }


@dataclass
class Incident:
    id: str
    severity: str
    summary: str
    environment: str
    reported_at: dt.datetime
    opened_at: dt.datetime
    opened_record: str
    reporter: str | None = None
    acknowledged_at: dt.datetime | None = None
    acknowledged_by: str | None = None
    recovered_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    cause: str | None = None
    events: list[TimelineEntry] = field(default_factory=list)
    deadlines_at_open: dict[str, str] = field(default_factory=dict)
    on_call_at_open: dict[str, Any] | None = None
    deadlines: dict[str, dt.datetime] = field(default_factory=dict)
    calendar_warnings: tuple[CalendarWarning, ...] = ()
    #: The Alertmanager alert that opened it (``alert`` of the open record: fingerprint, name, labels).
    alert: dict[str, Any] | None = None
    #: The digest of the alert as last recorded, and when it was last recorded (open or alert note).
    alert_digest: str | None = None
    alert_seen_at: dt.datetime | None = None
    alert_resolved_at: dt.datetime | None = None
    #: Notifications sent (or tried) about it: the ``notice`` of its note records, in chain order.
    notices: list[dict[str, Any]] = field(default_factory=list)

    @property
    def alert_fingerprint(self) -> str | None:
        fp = (self.alert or {}).get("fingerprint")
        return fp if isinstance(fp, str) else None

    def notified(self, kind: str, clock: str | None = None, level: int | None = None) -> bool:
        """True if a notice of ``kind`` (for ``clock``, at ``level`` % or above) was delivered."""
        for n in self.notices:
            if n.get("kind") != kind or not n.get("ok"):
                continue
            if clock is not None and n.get("clock") != clock:
                continue
            if level is not None and int(n.get("level") or 0) < level:
                continue
            return True
        return False

    @property
    def state(self) -> str:
        if self.resolved_at is not None:
            return "resolved"
        if self.recovered_at is not None:
            return "recovered"
        if self.acknowledged_at is not None:
            return "acknowledged"
        return "open"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    def milestone(self, clock: str) -> dt.datetime | None:
        if clock == "respond":
            if self.acknowledged_at is not None:
                return self.acknowledged_at
            done = [t for t in (self.recovered_at, self.resolved_at) if t is not None]
            return min(done) if done else None
        if clock == "recover":
            return self.recovered_at or self.resolved_at
        return self.resolved_at

    def clocks(self, at: dt.datetime | None = None, margin_hours: float = DEFAULT_MARGIN_HOURS) -> list[ClockState]:
        return evaluate_clocks(TARGETS[self.severity], self.deadlines, self.milestone, at, margin_hours)

    def breaching(self, at: dt.datetime | None = None, margin_hours: float = DEFAULT_MARGIN_HOURS) -> bool:
        return any(c.status in ("breached", "due-soon") for c in self.clocks(at, margin_hours))

    def breached(self, at: dt.datetime | None = None) -> bool:
        return any(c.status == "breached" for c in self.clocks(at, 0))

    def as_dict(self, at: dt.datetime | None = None, margin_hours: float = DEFAULT_MARGIN_HOURS) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity,
            "state": self.state,
            "summary": self.summary,
            "environment": self.environment,
            "reporter": self.reporter,
            "reported_at": isoformat(self.reported_at),
            "opened_at": isoformat(self.opened_at),
            "opened_record": self.opened_record,
            "acknowledged_at": isoformat(self.acknowledged_at) if self.acknowledged_at else None,
            "acknowledged_by": self.acknowledged_by,
            "recovered_at": isoformat(self.recovered_at) if self.recovered_at else None,
            "resolved_at": isoformat(self.resolved_at) if self.resolved_at else None,
            "cause": self.cause,
            "deadlines": {k: isoformat(v) for k, v in self.deadlines.items()},
            "deadlines_at_open": dict(self.deadlines_at_open),
            "clocks": [c.as_dict() for c in self.clocks(at, margin_hours)],
            "calendar_warnings": [str(w) for w in self.calendar_warnings],
            "on_call_at_open": self.on_call_at_open,
        }


# -- the register ------------------------------------------------------------------------------


def _event_time(payload: Mapping[str, Any], key: str = "at") -> dt.datetime:
    value = payload.get(key)
    if not isinstance(value, str):
        raise BadInput(f"incident event without {key!r}")
    return parse_time(value)


class IncidentRegister:
    """Open and update incidents; read them back as the fold over the archive's records."""

    def __init__(self, archive: Archive | None = None, calendar: Calendar | None = None) -> None:
        self.archive = archive if archive is not None else Archive(paths.archive_dir())
        self.calendar = calendar or default_calendar()
        self._held = threading.local()

    # -- reading -----------------------------------------------------------------

    def _event_records(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for op in OPERATIONS.values():
            rows.extend(self.archive.list(op=op))
        rows.sort(key=lambda r: int(r["seq"]))
        out: list[dict[str, Any]] = []
        for row in rows:
            if row.get("status") != "successful":
                continue  # an interrupted or refused incident action never happened
            rec = self.archive.get(row["id"])
            if isinstance(rec.get("incident_event"), Mapping):
                out.append(rec)
        return out

    def load(self) -> dict[str, Incident]:
        """Every incident, by id, folded from the archive in chain order."""
        incidents: dict[str, Incident] = {}
        for rec in self._event_records():
            self._apply(incidents, rec)
        return incidents

    def _apply(self, incidents: dict[str, Incident], rec: Mapping[str, Any]) -> None:
        action = OPERATION_ACTIONS.get(str(rec.get("operation")))
        payload: Mapping[str, Any] = rec["incident_event"]
        inc_id = rec.get("incident")
        if action is None or not isinstance(inc_id, str):
            return
        record_id = str(rec.get("id"))
        try:
            at = _event_time(payload)
        except BadInput:
            return
        if action == "open":
            if inc_id in incidents:
                return
            severity = str(payload.get("severity"))
            if severity not in TARGETS:
                return
            reported = _event_time(payload, "reported_at")
            deadlines, warnings = compute_deadlines(severity, reported, self.calendar)
            inc = Incident(
                id=inc_id,
                severity=severity,
                summary=str(payload.get("summary") or ""),
                environment=str(rec.get("environment") or ""),
                reported_at=reported,
                opened_at=at,
                opened_record=record_id,
                reporter=payload.get("reporter"),
                deadlines_at_open=dict(payload.get("deadlines") or {}),
                on_call_at_open=payload.get("on_call"),
                deadlines=deadlines,
                calendar_warnings=warnings,
            )
            alert = payload.get("alert")
            if isinstance(alert, Mapping):
                inc.alert = dict(alert)
                inc.alert_digest = str(alert.get("digest") or "") or None
                inc.alert_seen_at = at
            who = f" by {inc.reporter}" if inc.reporter else ""
            inc.events.append(TimelineEntry(reported, "reported", f"{severity}: {inc.summary}{who}"))
            inc.events.append(TimelineEntry(at, "opened", f"opened in the register ({severity})", record_id))
            incidents[inc_id] = inc
            return
        found = incidents.get(inc_id)
        if found is None:
            return
        inc = found
        by = payload.get("by")
        suffix = f" by {by}" if by else ""
        if action == "ack":
            if inc.acknowledged_at is None:
                inc.acknowledged_at, inc.acknowledged_by = at, by
            inc.events.append(TimelineEntry(at, "acknowledged", f"acknowledged{suffix}", record_id))
        elif action == "note":
            inc.events.append(TimelineEntry(at, "note", f"{payload.get('text') or ''}{suffix}", record_id))
            notice = payload.get("notice")
            if isinstance(notice, Mapping):
                inc.notices.append({**notice, "at": payload.get("at"), "record_id": record_id})
        elif action == "recovered":
            if inc.recovered_at is None:
                inc.recovered_at = at
            text = "emergency recovery achieved" + (f": {payload['text']}" if payload.get("text") else "")
            inc.events.append(TimelineEntry(at, "recovered", text + suffix, record_id))
        elif action == "resolve":
            if inc.resolved_at is None:
                inc.resolved_at, inc.cause = at, payload.get("cause")
            inc.events.append(
                TimelineEntry(at, "resolved", f"resolved: {payload.get('cause') or ''}{suffix}", record_id)
            )
        if action in ("note", "recovered"):
            alert = payload.get("alert")
            if isinstance(alert, Mapping):
                if alert.get("digest"):
                    inc.alert_digest = str(alert["digest"])
                inc.alert_seen_at = at
                if alert.get("status") == "resolved" and inc.alert_resolved_at is None:
                    inc.alert_resolved_at = at
                elif alert.get("status") == "firing":
                    inc.alert_resolved_at = None

    def get(self, incident_id: str) -> Incident:
        validate_incident_id(incident_id)
        inc = self.load().get(incident_id)
        if inc is None:
            raise NotFound(f"no incident {incident_id} in the archive {self.archive.root}")
        return inc

    def linked_runs(self, incident_id: str) -> list[dict[str, Any]]:
        """Index rows of the runs made with ``--incident ID`` (not the incident's own records), oldest first."""
        rows = [
            r
            for r in self.archive.list(incident=incident_id)
            if not str(r.get("operation") or "").startswith("incident-")
        ]
        return sorted(rows, key=lambda r: int(r["seq"]))

    def timeline(self, incident: Incident) -> list[TimelineEntry]:
        """Opened, acknowledged, notes, linked runs, recovered, resolved: in time order."""
        entries = list(incident.events)
        for row in self.linked_runs(incident.id):
            started = parse_time(row["started"]) if row.get("started") else incident.opened_at
            check = " (check)" if row.get("check_mode") else ""
            entries.append(
                TimelineEntry(
                    started,
                    "run",
                    f"run {row.get('operation')}{check} on {row.get('environment')}: {row.get('status')} (rc {row.get('rc')})",
                    row.get("id"),
                    row.get("status"),
                )
            )
        order = {"reported": 0, "opened": 1}
        return sorted(entries, key=lambda e: (e.at, order.get(e.kind, 2)))

    # -- writing -----------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise incident writers (id allocation and validation against the current state).

        Re-entrant within a thread, so :meth:`locked` can hold it across a lookup and a write."""
        depth = getattr(self._held, "depth", 0)
        if depth:
            self._held.depth = depth + 1
            try:
                yield
            finally:
                self._held.depth = depth
            return
        root = self.archive.root
        try:
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInput(f"cannot create the archive at {root}: {exc}") from exc
        with flock_file(root / ".incidents.lock"):
            self._held.depth = 1
            try:
                yield
            finally:
                self._held.depth = 0

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold the register's lock across a lookup and the writes that depend on it."""
        return self._locked()

    def find_by_fingerprint(self, fingerprint: str, incidents: Mapping[str, Incident] | None = None) -> Incident | None:
        """The open (unresolved) incident opened by the alert with this Alertmanager fingerprint."""
        found = [
            i
            for i in (incidents if incidents is not None else self.load()).values()
            if i.is_open and i.alert_fingerprint == fingerprint
        ]
        return max(found, key=lambda i: i.opened_at) if found else None

    def _write(
        self, incident_id: str, action: str, environment: str, payload: dict[str, Any], reason: str | None, text: str
    ) -> dict[str, Any]:
        return commit_event_record(
            self.archive,
            operation=OPERATIONS[action],
            environment=environment,
            text=text,
            fields={"incident_event": payload},
            reason=reason,
            incident=incident_id,
        )

    @staticmethod
    def _check_time(
        at: dt.datetime, what: str, not_before: dt.datetime | None = None, not_before_what: str = "the report"
    ) -> dt.datetime:
        at = local(at)
        if at > now() + dt.timedelta(seconds=FUTURE_SKEW_S):
            raise BadInput(f"{what} {isoformat(at)} is in the future")
        if not_before is not None and at < not_before:
            raise BadInput(f"{what} {isoformat(at)} is before {not_before_what} ({isoformat(not_before)})")
        return at

    def _next_id(self, incidents: Mapping[str, Incident], day: dt.date) -> str:
        prefix = f"INC-{day:%Y%m%d}-"
        taken = [int(i[len(prefix) :]) for i in incidents if i.startswith(prefix)]
        return f"{prefix}{(max(taken) + 1) if taken else 1:03d}"

    def open(
        self,
        severity: str,
        summary: str,
        reported_at: dt.datetime | None = None,
        reporter: str | None = None,
        environment: str = "production",
        on_call: Mapping[str, Any] | None = None,
        alert: Mapping[str, Any] | None = None,
    ) -> tuple[Incident, dict[str, Any]]:
        """Open an incident; returns it and the committed record. ``alert``: the Alertmanager alert
        that opened it (kept in the open record; :meth:`find_by_fingerprint` finds it by that)."""
        if severity not in TARGETS:
            raise BadInput(f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")
        summary = clean_text(summary or "")
        reporter = clean_optional(reporter) or None
        if not summary:
            raise BadInput("an incident needs a summary")
        if not environment or not re.fullmatch(r"[A-Za-z0-9_.-]+", environment):
            raise BadInput(f"invalid environment {environment!r}")
        opened = now()
        reported = self._check_time(reported_at or opened, "the report time")
        deadlines, warnings = compute_deadlines(severity, reported, self.calendar)
        with self._locked():
            incidents = self.load()
            inc_id = self._next_id(incidents, opened.date())
            payload: dict[str, Any] = {
                "action": "open",
                "at": stamp(opened),
                "severity": severity,
                "summary": summary,
                "reporter": reporter or None,
                "reported_at": stamp(reported),
                "targets": [t.as_dict() for t in TARGETS[severity]],
                "deadlines": {k: isoformat(v) for k, v in deadlines.items()},
                "calendar_warnings": [str(w) for w in warnings],
                "on_call": dict(on_call) if on_call else None,
            }
            if alert is not None:
                payload["alert"] = dict(alert)
            text = f"incident {inc_id} opened ({severity}): {summary}\n" + "".join(
                f"  {k} by {isoformat(v)}\n" for k, v in deadlines.items()
            )
            record = self._write(inc_id, "open", environment, payload, summary, text)
            self._apply(incidents, record)
            return incidents[inc_id], record

    def _update(
        self, incident_id: str, action: str, at: dt.datetime | None, fields: dict[str, Any], reason: str | None
    ) -> tuple[Incident, dict[str, Any]]:
        validate_incident_id(incident_id)
        with self._locked():
            incidents = self.load()
            inc = incidents.get(incident_id)
            if inc is None:
                raise NotFound(f"no incident {incident_id} in the archive {self.archive.root}")
            moment = local(at) if at is not None else now()
            if action == "ack":
                if inc.resolved_at is not None:
                    raise BadInput(
                        f"{incident_id} is already resolved ({isoformat(inc.resolved_at)}); nothing to acknowledge"
                    )
                if inc.acknowledged_at is not None:
                    raise BadInput(f"{incident_id} was already acknowledged at {isoformat(inc.acknowledged_at)}")
                self._check_time(moment, "the acknowledgement time", inc.reported_at)
            elif action == "recovered":
                if inc.severity != "outage":
                    raise BadInput(
                        f"{incident_id} is a {inc.severity} fault: emergency recovery applies to outages only "
                        "(use `resolve`, or `note`)"
                    )
                if inc.resolved_at is not None:
                    raise BadInput(f"{incident_id} is already resolved ({isoformat(inc.resolved_at)})")
                if inc.recovered_at is not None:
                    raise BadInput(f"{incident_id} was already marked recovered at {isoformat(inc.recovered_at)}")
                self._check_time(moment, "the recovery time", inc.reported_at)
            elif action == "resolve":
                if inc.resolved_at is not None:
                    raise BadInput(f"{incident_id} is already resolved ({isoformat(inc.resolved_at)})")
                if not str(fields.get("cause") or "").strip():
                    raise BadInput("resolving needs a cause (--cause TEXT)")
                floor, floor_what = inc.reported_at, "the report"
                if inc.recovered_at is not None and inc.recovered_at > floor:
                    floor, floor_what = inc.recovered_at, "the recovery"
                self._check_time(moment, "the resolution time", floor, floor_what)
            elif action == "note":
                if not str(fields.get("text") or "").strip():
                    raise BadInput("a note needs text")
                self._check_time(moment, "the note time", inc.reported_at)
            payload = {"action": action, "at": stamp(moment), **{k: v for k, v in fields.items() if v is not None}}
            text = f"incident {incident_id}: {action} at {isoformat(moment)}"
            for key in ("cause", "text", "by"):
                if fields.get(key):
                    text += f"\n  {key}: {fields[key]}"
            record = self._write(incident_id, action, inc.environment, payload, reason, text)
            self._apply(incidents, record)
            return incidents[incident_id], record

    def ack(
        self, incident_id: str, at: dt.datetime | None = None, by: str | None = None
    ) -> tuple[Incident, dict[str, Any]]:
        return self._update(incident_id, "ack", at, {"by": _by(by)}, None)

    def recovered(
        self, incident_id: str, at: dt.datetime | None = None, text: str | None = None, by: str | None = None
    ) -> tuple[Incident, dict[str, Any]]:
        text = clean_optional(text, multiline=True) or None
        return self._update(incident_id, "recovered", at, {"text": text, "by": _by(by)}, text)

    def resolve(
        self, incident_id: str, cause: str, at: dt.datetime | None = None, by: str | None = None
    ) -> tuple[Incident, dict[str, Any]]:
        cause = clean_text(cause or "", multiline=True)
        return self._update(incident_id, "resolve", at, {"cause": cause, "by": _by(by)}, cause)

    def note(
        self,
        incident_id: str,
        text: str,
        at: dt.datetime | None = None,
        by: str | None = None,
        alert: Mapping[str, Any] | None = None,
        notice: Mapping[str, Any] | None = None,
    ) -> tuple[Incident, dict[str, Any]]:
        """A note; ``alert`` (an alert's repeat or recovery) and ``notice`` (a notification sent or
        tried: kind, clock, level, channels, ok, error) go into its payload for the fold."""
        text = clean_text(text or "", multiline=True)
        fields: dict[str, Any] = {"text": text, "by": _by(by)}
        if alert is not None:
            fields["alert"] = dict(alert)
        if notice is not None:
            fields["notice"] = dict(notice)
        return self._update(incident_id, "note", at, fields, text)

    def recovered_by_alert(
        self, incident_id: str, at: dt.datetime, text: str, alert: Mapping[str, Any]
    ) -> tuple[Incident, dict[str, Any]]:
        """``recovered`` recorded for a resolved alert (its ``endsAt``), with the alert in the payload."""
        return self._update(
            incident_id, "recovered", at, {"text": text, "by": "alertmanager", "alert": dict(alert)}, text
        )


def digest_of_alert(alert: Mapping[str, Any]) -> str:
    """What makes an alert repeat a change: its status, start, labels and annotations."""
    keys = ("status", "starts_at", "labels", "annotations")
    body = json.dumps({k: alert.get(k) for k in keys}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]
