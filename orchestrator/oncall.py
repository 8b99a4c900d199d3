"""The on-call roster: who answers the repair hotline when, and whom to escalate to.

The roster is ``oncall/roster.yml`` in the repository (``OPSCTL_ROSTER``
overrides the path)::

    hotline: "0751-555-0100"
    people:
      chen: {name: 陈一 (Chen Yi), phone: "+86 751 555 0101", role: operations engineer}
    rotation:                      # weekly (or N-day) rotation of the primary
      start: 2026-11-02T09:00      # Asia/Shanghai when no offset is given
      length_days: 7
      order: [chen, lin, zhou]     # the next in order is the backup
    overrides:                     # explicit shifts win over the rotation
      - {from: 2026-12-31T18:00, to: 2027-01-04T09:00, primary: zhou, backup: chen, note: New Year}
    escalation: [wang, zhao]       # after primary and backup, in this order

Times are Asia/Shanghai. Library code raises :class:`RosterError`; the CLI prints.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import paths
from .errors import OpsError
from .workdays import TZ, local


class RosterError(OpsError):
    """The roster file is missing or malformed."""

    exit_code = 2


@dataclass(frozen=True)
class Person:
    key: str
    name: str
    phone: str
    role: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"key": self.key, "name": self.name, "phone": self.phone, "role": self.role}


@dataclass(frozen=True)
class Shift:
    start: dt.datetime
    end: dt.datetime
    primary: Person
    backup: Person | None
    note: str = ""
    override: bool = False

    def covers(self, moment: dt.datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True)
class OnCall:
    """Who to call at one moment: the shift and the whole escalation order."""

    at: dt.datetime
    shift: Shift | None
    escalation: tuple[Person, ...]
    hotline: str

    def as_dict(self) -> dict[str, Any]:
        from .workdays import isoformat

        return {
            "at": isoformat(self.at),
            "hotline": self.hotline,
            "primary": self.shift.primary.as_dict() if self.shift else None,
            "backup": self.shift.backup.as_dict() if self.shift and self.shift.backup else None,
            "shift_from": isoformat(self.shift.start) if self.shift else None,
            "shift_to": isoformat(self.shift.end) if self.shift else None,
            "note": self.shift.note if self.shift else "",
            "escalation": [{"level": i + 1, **p.as_dict()} for i, p in enumerate(self.escalation)],
        }


def roster_path() -> Path:
    env = os.environ.get("OPSCTL_ROSTER")
    return Path(env) if env else paths.repo_root() / "oncall" / "roster.yml"


def _time(value: Any, where: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return local(value)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(0, 0), tzinfo=TZ)
    if isinstance(value, str):
        try:
            return local(dt.datetime.fromisoformat(value.strip()))
        except ValueError:
            pass
    raise RosterError(f"{where}: {value!r} is not a time (YYYY-MM-DDTHH:MM, Asia/Shanghai)")


@dataclass
class Roster:
    path: Path
    hotline: str
    people: dict[str, Person]
    rotation_start: dt.datetime | None = None
    rotation_days: int = 7
    rotation_order: tuple[str, ...] = ()
    overrides: list[Shift] = field(default_factory=list)
    escalation: tuple[str, ...] = ()

    # -- loading -------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | None = None) -> Roster:
        path = Path(path) if path is not None else roster_path()
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RosterError(f"no on-call roster at {path} (see oncall/roster.yml in the repository)") from None
        except (OSError, yaml.YAMLError) as exc:
            raise RosterError(f"cannot read the on-call roster {path}: {exc}") from exc
        if not isinstance(data, Mapping):
            raise RosterError(f"{path}: the roster must be a mapping")
        hotline = data.get("hotline")
        if not isinstance(hotline, (str, int)) or not str(hotline).strip():
            raise RosterError(f"{path}: 'hotline' (the repair hotline number) is required")
        raw_people = data.get("people")
        if not isinstance(raw_people, Mapping) or not raw_people:
            raise RosterError(f"{path}: 'people' must map a short key to {{name, phone, role}}")
        people: dict[str, Person] = {}
        for key, body in raw_people.items():
            if not isinstance(body, Mapping) or not body.get("name") or not body.get("phone"):
                raise RosterError(f"{path}: person {key!r} needs a name and a phone")
            people[str(key)] = Person(str(key), str(body["name"]), str(body["phone"]), str(body.get("role") or ""))

        def person(key: Any, where: str) -> Person:
            if str(key) not in people:
                raise RosterError(f"{path}: {where} names {key!r}, who is not under 'people'")
            return people[str(key)]

        roster = cls(path=path, hotline=str(hotline).strip(), people=people)
        rotation = data.get("rotation")
        if rotation is not None:
            if not isinstance(rotation, Mapping):
                raise RosterError(f"{path}: 'rotation' must be a mapping (start, length_days, order)")
            roster.rotation_start = _time(rotation.get("start"), f"{path}: rotation.start")
            length = rotation.get("length_days", 7)
            if not isinstance(length, int) or isinstance(length, bool) or length < 1:
                raise RosterError(f"{path}: rotation.length_days must be a positive integer")
            roster.rotation_days = length
            order = rotation.get("order")
            if not isinstance(order, list) or not order:
                raise RosterError(f"{path}: rotation.order must list at least one person")
            roster.rotation_order = tuple(person(k, "rotation.order").key for k in order)
        for i, item in enumerate(data.get("overrides") or []):
            where = f"overrides[{i}]"
            if not isinstance(item, Mapping):
                raise RosterError(f"{path}: {where} must be a mapping (from, to, primary, backup)")
            start = _time(item.get("from"), f"{path}: {where}.from")
            end = _time(item.get("to"), f"{path}: {where}.to")
            if end <= start:
                raise RosterError(f"{path}: {where} ends before it starts")
            roster.overrides.append(
                Shift(
                    start,
                    end,
                    person(item.get("primary"), f"{where}.primary"),
                    person(item["backup"], f"{where}.backup") if item.get("backup") else None,
                    str(item.get("note") or ""),
                    override=True,
                )
            )
        escalation = data.get("escalation") or []
        if not isinstance(escalation, list):
            raise RosterError(f"{path}: 'escalation' must list people in the order to call them")
        roster.escalation = tuple(person(k, "escalation").key for k in escalation)
        if roster.rotation_start is None and not roster.overrides:
            raise RosterError(f"{path}: the roster has neither a rotation nor any shifts")
        return roster

    # -- queries -------------------------------------------------------------------

    def _rotation_shift(self, moment: dt.datetime) -> Shift | None:
        if self.rotation_start is None or not self.rotation_order or moment < self.rotation_start:
            return None
        length = dt.timedelta(days=self.rotation_days)
        index = int((moment - self.rotation_start) // length)
        start = self.rotation_start + index * length
        order = self.rotation_order
        primary = self.people[order[index % len(order)]]
        backup = self.people[order[(index + 1) % len(order)]] if len(order) > 1 else None
        return Shift(local(start), local(start + length), primary, backup)

    def shift_at(self, moment: dt.datetime) -> Shift | None:
        """The shift on duty at ``moment`` (an override wins over the rotation)."""
        moment = local(moment)
        for shift in self.overrides:
            if shift.covers(moment):
                return shift
        base = self._rotation_shift(moment)
        if base is None:
            return None
        # Cut the rotation shift where an override starts or ends, so shifts never overlap.
        start, end = base.start, base.end
        for o in self.overrides:
            if o.start > moment:
                end = min(end, o.start)
            if o.end <= moment:
                start = max(start, o.end)
        return Shift(start, end, base.primary, base.backup, base.note)

    def on_call(self, moment: dt.datetime | None = None) -> OnCall:
        """Who answers at ``moment`` (default now) and the escalation order after them."""
        from .workdays import now

        moment = local(moment) if moment is not None else now()
        shift = self.shift_at(moment)
        order: list[Person] = []
        if shift is not None:
            order.append(shift.primary)
            if shift.backup is not None:
                order.append(shift.backup)
        for key in self.escalation:
            if self.people[key] not in order:
                order.append(self.people[key])
        return OnCall(at=moment, shift=shift, escalation=tuple(order), hotline=self.hotline)

    def shifts(self, start: dt.datetime, end: dt.datetime) -> list[Shift]:
        """The shifts overlapping [start, end), in time order, with gaps left out."""
        start, end = local(start), local(end)
        out: list[Shift] = []
        moment = start
        guard = 0
        while moment < end and guard < 10000:
            guard += 1
            shift = self.shift_at(moment)
            if shift is None:
                nxt = [o.start for o in self.overrides if o.start > moment]
                if self.rotation_start is not None and self.rotation_start > moment:
                    nxt.append(self.rotation_start)
                if not nxt:
                    break
                moment = min(nxt)
                continue
            out.append(shift)
            moment = shift.end
        return out


def week_bounds(moment: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """Monday 00:00 to the next Monday 00:00 (Asia/Shanghai) of the week holding ``moment``."""
    day = local(moment).date()
    monday = day - dt.timedelta(days=day.weekday())
    start = dt.datetime.combine(monday, dt.time(0, 0), tzinfo=TZ)
    return start, start + dt.timedelta(days=7)
