"""The operations catalog: name, playbook, description, risk and required inputs.

Size (over 400 lines): the catalog's operations and the environments' policies are one
model read together (an operation's risk, standard change and ticket rules depend on the
environment), with their loaders and validation; split, each half would import the other.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import yaml

from . import paths
from .errors import BadInput, NotFound, OpsError

RISKS = ("low", "medium", "high")
POLICY_FILE = ".opsctl.yml"

#: The roles an operation can play for the rest of opsctl (``tags:`` in the catalog). Code
#: finds the operations by these tags, never by name: renaming an operation is a change to
#: the catalog only. A tag not listed here is refused by the loader.
TAGS: dict[str, str] = {
    "inspection": "the daily inspection: per-host results under outputs.inspect (reports, trends, forecasts)",
    "patch-scan": "the pending-updates scan the patch compliance report reads (outputs.patch_scan)",
    "patch": "installs updates (the monthly report's patches applied, outputs.patch)",
    "baseline-check": "the security baseline check the baseline report reads (outputs.baseline)",
    "backup": "takes backups (the monthly report's backups, outputs.backup)",
    "backup-verify": "verifies backups (the monthly report's verifications)",
    "release": "reports under outputs.deploy which release runs on which host (opsctl releases)",
    "deploy": "a deploy in the monthly report",
    "rollback": "a rollback in the monthly report",
}

#: How ``make <operation>`` is provided: ``plain`` by the generated rule of mk/operations.mk
#: (``opsctl run OP $(RUN_OPTS)``), ``custom`` by a hand-written rule in mk/<area>.mk that
#: maps make variables to inputs.
MAKE_TARGETS = ("plain", "custom")
TAG_RE = re.compile(r"^[a-z][a-z0-9-]*$")


#: Names no operation accepts with -e: Ansible's own connection and behaviour variables,
#: and role internals (``__role_x``), whatever the catalog says.
RESERVED_VAR_RE = re.compile(r"^(ansible_|_)", re.ASCII)


@dataclass(frozen=True)
class Input:
    """One ``-e`` key an operation accepts (``name`` may be a glob such as ``db_backup_keep_*``)."""

    name: str
    secret: bool = False
    #: In an environment that requires tickets, this input needs --ticket even on a read-only
    #: operation (an operator's own query, say).
    needs_ticket: bool = False
    description: str = ""

    def matches(self, key: str) -> bool:
        return fnmatch.fnmatchcase(key, self.name)


@dataclass(frozen=True)
class Operation:
    name: str
    playbook: str
    description: str
    risk: str = "low"
    read_only: bool = False
    high_risk_in: tuple[str, ...] = ()
    #: -e keys the operation needs; ``a|b`` is met by either (restore: ``backup_id|target_time``).
    requires: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    #: Run only when someone asks for it (patching, recovery, restores...): CI never runs it
    #: because a merge touched its playbook or roles, only when named (OPS=...).
    on_demand: bool = False
    #: The -e keys the operation accepts (besides ``requires``); anything else is refused.
    inputs: tuple[Input, ...] = ()
    #: What the operation is for the rest of opsctl (keys of :data:`TAGS`).
    tags: tuple[str, ...] = ()
    #: ``plain`` or ``custom`` (:data:`MAKE_TARGETS`).
    make_target: str = "plain"
    #: The operation's name in zh-CN reports and messages (日常巡检); :func:`title` falls back to the name.
    title_zh: str = ""

    def input_for(self, key: str) -> Input | None:
        """The declared input ``key`` falls under, or None (refused)."""
        if RESERVED_VAR_RE.match(key):
            return None
        found = next((i for i in self.inputs if i.matches(key)), None)
        if found is None and key in self.required_keys():
            return Input(name=key)
        return found

    def required_keys(self) -> list[str]:
        """Every key named in ``requires``, alternatives included."""
        return [key for req in self.requires for key in req.split("|")]

    def missing(self, given: Mapping[str, object]) -> list[str]:
        """The requirements ``given`` does not meet, each as ``-e a=...`` (``-e a=... or -e b=...``)."""
        return [
            " or ".join(f"-e {key}=..." for key in req.split("|"))
            for req in self.requires
            if all(given.get(key) in ("", None) for key in req.split("|"))
        ]

    def accepted(self) -> list[str]:
        return sorted({*self.required_keys(), *(i.name for i in self.inputs)})

    def playbook_path(self) -> Path:
        return paths.playbooks_dir() / self.playbook

    def risk_in(self, env: str) -> str:
        """The effective risk level of this operation in ``env``."""
        return "high" if env in self.high_risk_in else self.risk

    def requirements(self) -> list[str]:
        """Human-readable list of what the operation needs besides --env."""
        reqs = self.missing({})
        reqs.append("--reason or --ticket in production" if self.read_only else "--ticket in production")
        return reqs


#: What a standard change id looks like unless the policy sets ``standard_change_pattern``.
DEFAULT_STANDARD_CHANGE_PATTERN = r"^STD-[A-Z0-9]+(-[A-Z0-9]+)*$"


@dataclass(frozen=True)
class Environment:
    """An inventory under ``inventories/<name>`` plus its optional ``.opsctl.yml`` policy
    (a dot file, so Ansible never reads it as an inventory source).

    ``ticket_pattern``: what a ``--ticket`` must match (any non-blank ticket when unset).
    ``standard_changes``: pre-approved standard changes, operation -> change id; such an
    operation runs with ``--standard-change`` instead of a ticket (timers use it).
    """

    name: str
    inventory: Path
    requires_ticket: bool
    vault_password_file: Path | None
    settings: dict[str, Any] = field(default_factory=dict)
    ticket_pattern: re.Pattern[str] | None = None
    standard_changes: dict[str, str] = field(default_factory=dict)

    @property
    def policy_file(self) -> Path:
        return self.inventory / POLICY_FILE

    def policy_shown(self) -> str:
        """The policy file as a reader finds it: relative to the repository when inside it."""
        try:
            return str(self.policy_file.resolve().relative_to(paths.repo_root().resolve()))
        except ValueError:
            return str(self.policy_file)

    def check_ticket(self, ticket: str) -> str:
        """``ticket`` (already cleaned of control characters) if it is a ticket of this
        environment, else :class:`BadInput` saying what is expected."""
        if not ticket:
            raise BadInput(
                "--ticket is blank: give the change ticket id"
                + (f" ({self.ticket_pattern.pattern})" if self.ticket_pattern else "")
            )
        if self.ticket_pattern is not None and not self.ticket_pattern.fullmatch(ticket):
            raise BadInput(
                f"--ticket {ticket!r} does not match the ticket pattern of {self.name!r}: "
                f"{self.ticket_pattern.pattern} (ticket_pattern in {self.policy_shown()})"
            )
        return ticket

    def standard_change(self, op: Operation) -> str:
        """The pre-approved change id of ``op`` here, else :class:`BadInput` naming the policy."""
        change = self.standard_changes.get(op.name)
        if change is None:
            listed = ", ".join(sorted(self.standard_changes)) or "none"
            raise BadInput(
                f"operation {op.name!r} is not a standard change in {self.name!r} "
                f"(standard_changes in {self.policy_shown()} lists: {listed}): "
                "run it with --ticket, or have it approved as a standard change and listed there"
            )
        if op.risk_in(self.name) == "high":
            raise BadInput(
                f"operation {op.name!r} is high risk in {self.name!r} and cannot run as a standard "
                f"change (remove it from standard_changes in {self.policy_shown()}): run it with --ticket"
            )
        return change


#: libyaml's safe loader when PyYAML was built with it (Debian's and the wheels are): the
#: catalog and the policies are read on every command, 5-10x faster than the pure-Python one.
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` through libyaml when available (same result, same YAMLError)."""
    return yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a safe loader


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: what is wrong and where."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def catalog_path() -> Path:
    env = os.environ.get("OPSCTL_CATALOG")
    return Path(env) if env else Path(__file__).with_name("catalog.yml")


def _parse_inputs(name: str, raw: Any) -> tuple[Input, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise BadInput(f"catalog entry {name!r}: inputs must be a list")
    out = []
    for item in raw:
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise BadInput(f"catalog entry {name!r}: an input must be a name or a mapping with a name")
        if RESERVED_VAR_RE.match(item["name"]):
            raise BadInput(f"catalog entry {name!r}: input {item['name']!r} is reserved (ansible_*, _*)")
        unknown = set(item) - {"name", "secret", "needs_ticket", "description"}
        if unknown:
            raise BadInput(f"catalog entry {name!r}: input {item['name']!r} has unknown keys {sorted(unknown)}")
        out.append(
            Input(
                name=item["name"],
                secret=bool(item.get("secret", False)),
                needs_ticket=bool(item.get("needs_ticket", False)),
                description=str(item.get("description", "")),
            )
        )
    return tuple(out)


def _parse_operation(name: str, raw: Any) -> Operation:
    if not isinstance(raw, dict) or "playbook" not in raw:
        raise BadInput(f"catalog entry {name!r} must be a mapping with a playbook")
    risk = str(raw.get("risk", "low"))
    if risk not in RISKS:
        raise BadInput(f"catalog entry {name!r}: risk must be one of {', '.join(RISKS)}")
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and TAG_RE.match(t) for t in tags):
        raise BadInput(f"catalog entry {name!r}: tags must be a list of names (lower case, digits, '-')")
    unknown_tags = sorted(set(tags) - set(TAGS))
    if unknown_tags:
        raise BadInput(f"catalog entry {name!r}: unknown tags {unknown_tags} (known: {', '.join(sorted(TAGS))})")
    make_target = str(raw.get("make_target", "plain"))
    if make_target not in MAKE_TARGETS:
        raise BadInput(f"catalog entry {name!r}: make_target must be one of {', '.join(MAKE_TARGETS)}")
    return Operation(
        name=name,
        playbook=str(raw["playbook"]),
        description=str(raw.get("description", "")),
        risk=risk,
        read_only=bool(raw.get("read_only", False)),
        high_risk_in=tuple(str(e) for e in raw.get("high_risk_in", ())),
        requires=tuple(str(v) for v in raw.get("requires", ())),
        outputs=tuple(str(v) for v in raw.get("outputs", ())),
        on_demand=bool(raw.get("on_demand", False)),
        inputs=_parse_inputs(name, raw.get("inputs")),
        tags=tuple(dict.fromkeys(tags)),
        make_target=make_target,
        title_zh=str(raw.get("title_zh") or ""),
    )


def _load_file(path: Path) -> dict[str, Operation]:
    try:
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise BadInput(f"cannot read the operations catalog {path}: {exc}") from exc
    ops = data.get("operations") if isinstance(data, dict) else None
    if not isinstance(ops, dict):
        raise BadInput(f"{path}: expected a top-level 'operations' mapping")
    return {str(name): _parse_operation(str(name), raw) for name, raw in ops.items()}


def load_catalog(path: Path | None = None) -> dict[str, Operation]:
    """The catalog: ``catalog.yml`` plus every ``catalog.d/*.yml`` beside it (one file per
    area of duty). An operation defined twice is an error, not a silent override."""
    path = path or catalog_path()
    catalog = _load_file(path)
    extra_dir = path.parent / "catalog.d"
    for extra in sorted(extra_dir.glob("*.yml")) if extra_dir.is_dir() else []:
        for name, op in _load_file(extra).items():
            if name in catalog:
                raise BadInput(f"operation {name!r} is defined twice (again in {extra})")
            catalog[name] = op
    return catalog


def get_operation(name: str, catalog: dict[str, Operation] | None = None) -> Operation:
    catalog = catalog if catalog is not None else load_catalog()
    try:
        return catalog[name]
    except KeyError:
        known = ", ".join(sorted(catalog)) or "none"
        raise NotFound(f"unknown operation {name!r} (known: {known})") from None


def tagged(tag: str, catalog: dict[str, Operation] | None = None) -> tuple[str, ...]:
    """The names of the operations tagged ``tag``, in catalog order (none: empty)."""
    if tag not in TAGS:
        raise ValueError(f"unknown operation tag {tag!r}")
    catalog = catalog if catalog is not None else load_catalog()
    return tuple(name for name, op in catalog.items() if tag in op.tags)


def tagged_one(tag: str, catalog: dict[str, Operation] | None = None) -> str:
    """The name of the one operation tagged ``tag``; none or several is a catalog error."""
    names = tagged(tag, catalog)
    if len(names) != 1:
        raise BadInput(
            f"the operations catalog must tag exactly one operation {tag!r} "
            f"({TAGS[tag]}); it tags {', '.join(names) or 'none'}"
        )
    return names[0]


def list_environments() -> list[str]:
    root = paths.inventories_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def get_environment(name: str) -> Environment:
    """Resolve ``--env NAME`` to its inventory and policy; unknown names are bad input."""
    known = list_environments()
    if name not in known:
        raise NotFound(f"unknown environment {name!r} (known: {', '.join(known) or 'none'})")
    inv = paths.inventories_dir() / name
    policy_file = inv / POLICY_FILE
    settings = _load_policy(policy_file)
    requires_ticket = bool(settings.get("requires_ticket", name == "production"))
    vault: Path | None = None
    env_vault = os.environ.get("OPSCTL_VAULT_PASSWORD_FILE")
    if env_vault:
        vault = Path(env_vault).resolve()
    elif settings.get("vault_password_file"):
        vault = (inv / str(settings["vault_password_file"])).resolve()
    if vault is not None and not vault.is_file():
        raise BadInput(f"vault password file {vault} for environment {name!r} does not exist")
    return Environment(
        name=name,
        inventory=inv,
        requires_ticket=requires_ticket,
        vault_password_file=vault,
        settings=settings,
        ticket_pattern=_pattern(settings, "ticket_pattern", None, policy_file),
        standard_changes=_standard_changes(settings, policy_file),
    )


def _load_policy(policy_file: Path) -> dict[str, Any]:
    if not policy_file.is_file():
        return {}
    try:
        loaded = load_yaml(policy_file.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the policy {policy_file}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise BadInput(f"{policy_file}: not valid YAML: {yaml_problem(exc)}") from exc
    if not isinstance(loaded, dict):
        raise BadInput(f"{policy_file}: expected a mapping")
    return loaded


def _pattern(settings: dict[str, Any], key: str, default: str | None, policy_file: Path) -> re.Pattern[str] | None:
    raw = settings.get(key, default)
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw:
        raise BadInput(f"{policy_file}: {key} must be a regular expression")
    try:
        return re.compile(raw)
    except re.error as exc:
        raise BadInput(f"{policy_file}: {key} {raw!r} is not a valid regular expression: {exc}") from exc


def _standard_changes(settings: dict[str, Any], policy_file: Path) -> dict[str, str]:
    """``standard_changes`` of a policy: operation -> change id, each id matching
    ``standard_change_pattern`` (default :data:`DEFAULT_STANDARD_CHANGE_PATTERN`)."""
    raw = settings.get("standard_changes") or {}
    if not isinstance(raw, dict):
        raise BadInput(f"{policy_file}: standard_changes must be a mapping of operation -> change id")
    pattern = _pattern(settings, "standard_change_pattern", DEFAULT_STANDARD_CHANGE_PATTERN, policy_file)
    changes: dict[str, str] = {}
    for op, change in raw.items():
        if not isinstance(change, str) or (pattern is not None and not pattern.fullmatch(change)):
            shown = pattern.pattern if pattern is not None else "a string"
            raise BadInput(f"{policy_file}: standard change {change!r} of {op!r} must match {shown}")
        changes[str(op)] = change
    return changes


def title(name: str, lang: str, catalog: Mapping[str, Operation] | None = None) -> str:
    """What a person reads for operation ``name``: its ``title_zh`` in zh (the name itself when the
    catalog has none or cannot be read), the name in English."""
    if lang != "zh":
        return name
    try:
        op = (catalog if catalog is not None else load_catalog()).get(name)
    except OpsError:
        return name
    return op.title_zh if op is not None and op.title_zh else name
