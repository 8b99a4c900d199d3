"""Which catalog operations a change touches: changed files -> affected operations.

CI plans (check + diff) and applies exactly the operations a merge request
touches. The rules, applied to each path of ``git diff --name-only BASE...HEAD``:

``playbooks/<x>.yml``
    the operations whose playbook is ``x.yml``, and those whose playbook imports
    it (``import_playbook``);
``roles/<r>/...``
    the playbooks that use role ``r`` -- in a play's ``roles:``, through
    ``include_role``/``import_role`` in its tasks (blocks included), or through
    another role that depends on or includes ``r`` -- and so their operations.
    A role's ``README.md``, ``molecule/`` and ``tests/`` change nothing that runs;
``plugins/...`` (the collection envcredit.ops)
    as a change of the roles that use the file: ``plugins/modules/<m>.py`` the roles that
    call ``envcredit.ops.<m>``, any other plugin file (``module_utils/``, copied to the hosts
    by roles) the roles that name its path;
``inventories/<env>/...``
    every read-only operation of that environment (a changed inventory is checked
    by reading it); and, for a ``group_vars``/``host_vars`` file, the operations that
    change something whose playbook or roles use a variable the change sets (added,
    removed or changed value; compared with BASE when given, else every variable of the
    file): a merge that changes what the roles are told converges the hosts to it. Only
    when planning for ``<env>``; vault-encrypted files are read-only changes (their values
    reach the roles through variables of the plain files);
``ansible.cfg``, ``requirements.yml``, ``meta/runtime.yml``, ``collections/...``
    every read-only operation (they affect every run);
anything else (``orchestrator/``, ``tests/``, ``docs/``, CI files)
    no operation.

Size (over 400 lines): every rule that maps a changed file to operations (playbooks, roles,
plugins, inventories and their variables) in one place, so CI's planning is reviewed as one.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from .errors import BadInput
from .operations import Operation

#: Modules/keywords that pull in a role from a task list.
_ROLE_TASK_KEYS = (
    "include_role",
    "import_role",
    "ansible.builtin.include_role",
    "ansible.builtin.import_role",
    "ansible.legacy.include_role",
    "ansible.legacy.import_role",
)
_PLAYBOOK_IMPORT_KEYS = ("import_playbook", "ansible.builtin.import_playbook")
_TASK_LISTS = ("tasks", "pre_tasks", "post_tasks", "handlers")
_BLOCK_LISTS = ("block", "rescue", "always")
#: Parts of a role that do not change what a run does.
_ROLE_INERT = ("README.md", "molecule", "tests", "LICENSE", ".gitignore")
#: Repository-wide files that affect every run.
_GLOBAL_FILES = ("ansible.cfg", "requirements.yml", "collections/requirements.yml", "meta/runtime.yml")
#: This repository as a collection (galaxy.yml): how roles name its modules.
_COLLECTION = "envcredit.ops"
#: The Python package of the collection, as its modules import their module_utils.
_COLLECTION_PACKAGE = "ansible_collections." + _COLLECTION


@dataclass
class Impact:
    """One affected operation and why (the changed paths that reach it)."""

    operation: str
    read_only: bool
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"operation": self.operation, "read_only": self.read_only, "reasons": list(self.reasons)}


# -- git ---------------------------------------------------------------------------------


def changed_files(repo: Path, base: str, head: str = "HEAD") -> list[str]:
    """``git diff --name-only BASE...HEAD`` (changes on HEAD's side since the merge base)."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo), "diff", "--name-only", "--no-renames", f"{base}...{head}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise BadInput(f"cannot run git in {repo}: {exc}") from exc
    if proc.returncode != 0:
        raise BadInput(f"git diff {base}...{head} failed in {repo}: {proc.stderr.strip()}")
    return sorted({line.strip() for line in proc.stdout.splitlines() if line.strip()})


# -- parsing playbooks and roles ---------------------------------------------------------


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # unreadable content is ansible-lint's business, not the planner's


def _role_name(value: Any) -> str | None:
    """``foo``, ``ns.coll.foo``, ``path/to/foo`` -> ``foo`` (roles/<name> in this repository)."""
    if isinstance(value, Mapping):
        value = value.get("role", value.get("name"))
    if not isinstance(value, str) or not value.strip() or "{{" in value:
        return None
    return PurePosixPath(value.strip().split(".")[-1] if "/" not in value else value.strip()).name


def _roles_in_tasks(tasks: Any) -> Iterator[str]:
    if not isinstance(tasks, list):
        return
    for task in tasks:
        if not isinstance(task, Mapping):
            continue
        for key in _ROLE_TASK_KEYS:
            if key in task:
                name = _role_name(task[key])
                if name:
                    yield name
        for key in _BLOCK_LISTS:
            yield from _roles_in_tasks(task.get(key))


def playbook_roles(path: Path, _seen: set[Path] | None = None) -> set[str]:
    """The roles a playbook names directly (plays' ``roles:`` and role includes in tasks),
    following ``import_playbook`` to other playbooks."""
    seen = _seen if _seen is not None else set()
    path = path.resolve()
    if path in seen:
        return set()
    seen.add(path)
    plays = _load_yaml(path)
    found: set[str] = set()
    for play in plays if isinstance(plays, list) else []:
        if not isinstance(play, Mapping):
            continue
        for key in _PLAYBOOK_IMPORT_KEYS:
            target = play.get(key)
            if isinstance(target, str) and "{{" not in target:
                found |= playbook_roles(path.parent / target, seen)
        for role in play.get("roles") or []:
            name = _role_name(role)
            if name:
                found.add(name)
        for key in _TASK_LISTS:
            found.update(_roles_in_tasks(play.get(key)))
    return found


def playbook_imports(path: Path) -> set[str]:
    """Playbook files (relative to ``path``'s folder) that ``path`` imports."""
    plays = _load_yaml(path)
    out: set[str] = set()
    for play in plays if isinstance(plays, list) else []:
        if isinstance(play, Mapping):
            for key in _PLAYBOOK_IMPORT_KEYS:
                target = play.get(key)
                if isinstance(target, str) and "{{" not in target:
                    out.add(str(PurePosixPath(target)))
    return out


def role_dependencies(roles_dir: Path, role: str) -> set[str]:
    """Roles that ``role`` pulls in: ``meta/main.yml`` dependencies and role includes in its
    task and handler files (direct only)."""
    root = roles_dir / role
    deps: set[str] = set()
    meta = _load_yaml(root / "meta" / "main.yml")
    if isinstance(meta, Mapping):
        for dep in meta.get("dependencies") or []:
            name = _role_name(dep)
            if name:
                deps.add(name)
    for sub in ("tasks", "handlers"):
        folder = root / sub
        if folder.is_dir():
            for f in sorted(folder.rglob("*.yml")) + sorted(folder.rglob("*.yaml")):
                deps.update(_roles_in_tasks(_load_yaml(f)))
    deps.discard(role)
    return deps


def roles_closure(roles_dir: Path, roles: Iterable[str]) -> set[str]:
    """``roles`` plus everything they pull in, transitively."""
    todo = list(roles)
    done: set[str] = set()
    while todo:
        role = todo.pop()
        if role in done:
            continue
        done.add(role)
        todo.extend(role_dependencies(roles_dir, role) - done)
    return done


# -- the mapping -------------------------------------------------------------------------


def _role_of(path: PurePosixPath) -> str | None:
    """``roles/<r>/<part>/...`` -> r, unless the part is inert (README, molecule, tests)."""
    parts = path.parts
    if len(parts) < 3 or parts[0] != "roles":
        return None
    if parts[2] in _ROLE_INERT:
        return None
    return parts[1]


def _roles_using_plugin(roles_dir: Path, path: PurePosixPath) -> set[str]:
    """``plugins/modules/<m>.py`` -> the roles calling ``envcredit.ops.<m>``; another file under
    ``plugins/`` -> the roles naming its path (a role copies module_utils/ code to the hosts);
    ``plugins/module_utils/<u>.py`` also -> the roles calling a module that imports it, and the
    roles whose own plugins (filter_plugins/...) import it.
    Only the parts of a role that run are read (not README, molecule, tests)."""
    needles = {str(path)}
    if len(path.parts) == 3 and path.parts[1] == "modules" and path.suffix == ".py":
        needles.add(f"{_COLLECTION}.{path.stem}")
    found: set[str] = set()
    if not roles_dir.is_dir():
        return found
    if len(path.parts) == 3 and path.parts[1] == "module_utils" and path.suffix == ".py":
        importer = f"{_COLLECTION_PACKAGE}.plugins.module_utils.{path.stem} import"
        for module in sorted((roles_dir.parent / "plugins" / "modules").glob("*.py")):
            if importer in module.read_text(encoding="utf-8", errors="replace"):
                needles.add(f"{_COLLECTION}.{module.stem}")
        for role_dir in sorted(roles_dir.iterdir()):
            if any(
                importer in f.read_text(encoding="utf-8", errors="replace") for f in _role_files(role_dir, (".py",))
            ):
                found.add(role_dir.name)
    for role_dir in sorted(roles_dir.iterdir()):
        for f in _role_files(role_dir, (".yml", ".yaml", ".j2")):
            if any(n in f.read_text(encoding="utf-8", errors="replace") for n in needles):
                found.add(role_dir.name)
                break
    return found


def _role_files(role_dir: Path, suffixes: tuple[str, ...], parts: tuple[str, ...] | None = None) -> Iterator[Path]:
    """The files of a role that run (not README, molecule, tests), with one of ``suffixes``;
    ``parts``: only these folders of the role (tasks, defaults...)."""
    if not role_dir.is_dir():
        return
    for part in sorted(role_dir.iterdir()):
        if part.name in _ROLE_INERT or not part.is_dir() or (parts is not None and part.name not in parts):
            continue
        for f in sorted(part.rglob("*")):
            if f.is_file() and f.suffix in suffixes:
                yield f


_VARS_DIRS = ("group_vars", "host_vars")
#: Role folders whose text may use a variable.
_ROLE_CODE = ("defaults", "vars", "tasks", "handlers", "templates", "meta", "files")


def _yaml_keys(text: str | None) -> dict[str, Any] | None:
    """Top-level variables of a vars file (None: not a plain YAML mapping, e.g. vault-encrypted)."""
    if text is None:
        return {}
    if text.lstrip().startswith("$ANSIBLE_VAULT"):
        return None
    try:
        data = yaml.load(text, Loader=_VarsLoader)  # noqa: S506 - a SafeLoader that tolerates !vault tags
    except yaml.YAMLError:
        return None
    return dict(data) if isinstance(data, dict) else ({} if data is None else None)


class _VarsLoader(yaml.SafeLoader):
    """SafeLoader that reads ``!vault`` scalars as opaque text (their change still counts)."""


def _vault_scalar(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return f"!vault {node.value}"


_VarsLoader.add_constructor("!vault", _vault_scalar)


def _git_show(repo: Path, ref: str, rel: str) -> str | None:
    proc = subprocess.run(
        ["git", "-C", str(repo), "show", f"{ref}:{rel}"], capture_output=True, text=True, timeout=60, check=False
    )
    return proc.stdout if proc.returncode == 0 else None


def changed_vars(repo: Path, rel: str, base: str | None) -> set[str] | None:
    """The variables a change of the vars file ``rel`` sets: against ``base`` (merge base of
    BASE...HEAD) those added, removed or with another value; without ``base``, every variable
    of the file. None when the file is not plain YAML (vault-encrypted)."""
    path = repo / rel
    now = _yaml_keys(path.read_text(encoding="utf-8") if path.is_file() else None)
    if now is None:
        return None
    if base is None:
        return set(now)
    merge_base = (
        subprocess.run(
            ["git", "-C", str(repo), "merge-base", base, "HEAD"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout.strip()
        or base
    )
    before = _yaml_keys(_git_show(repo, merge_base, rel))
    if before is None:
        return set(now)
    return {k for k in set(now) | set(before) if now.get(k) != before.get(k)}


def _uses(text: str, names: Iterable[str]) -> list[str]:
    return sorted(n for n in names if re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", text))


def _role_text(roles_dir: Path, role: str) -> str:
    """The text of a role's code folders (:data:`_ROLE_CODE`), to look for variable names."""
    suffixes = (".yml", ".yaml", ".j2", ".py", ".cfg", ".conf", ".sh", "")
    return "\n".join(
        f.read_text(encoding="utf-8", errors="replace") for f in _role_files(roles_dir / role, suffixes, _ROLE_CODE)
    )


def affected_operations(
    files: Iterable[str],
    catalog: Mapping[str, Operation],
    repo: Path,
    env: str | None = None,
    base: str | None = None,
) -> list[Impact]:
    """The operations the changed ``files`` (paths relative to ``repo``) touch, in catalog order.

    ``env``: the environment being planned; an inventory change only counts for its own
    environment (``None``: inventory changes of every environment count). ``base``: the
    change's base (``BASE`` of ``BASE...HEAD``), to tell which variables a vars file's change sets.
    """
    playbooks_dir = repo / "playbooks"
    roles_dir = repo / "roles"
    # playbook file -> roles it uses (transitively), playbook -> playbooks importing it
    used_roles: dict[str, set[str]] = {}
    importers: dict[str, set[str]] = {}
    for op in catalog.values():
        for pb in {op.playbook}:
            pb_path = playbooks_dir / pb
            if pb not in used_roles:
                used_roles[pb] = roles_closure(roles_dir, playbook_roles(pb_path)) if pb_path.is_file() else set()
                for imported in playbook_imports(pb_path) if pb_path.is_file() else set():
                    importers.setdefault(imported, set()).add(pb)

    impacts: dict[str, Impact] = {}
    role_texts: dict[str, str] = {}

    def hit(op: Operation, reason: str) -> None:
        impact = impacts.setdefault(op.name, Impact(op.name, op.read_only))
        if reason not in impact.reasons:
            impact.reasons.append(reason)

    for raw in files:
        path = PurePosixPath(raw)
        parts = path.parts
        if not parts:
            continue
        if parts[0] == "playbooks" and len(parts) >= 2 and path.suffix in (".yml", ".yaml"):
            rel = str(PurePosixPath(*parts[1:]))
            targets = {rel} | importers.get(rel, set())
            for op in catalog.values():
                if op.playbook in targets:
                    hit(op, f"{raw}: playbook" + ("" if op.playbook == rel else f" imported by {op.playbook}"))
        elif (role := _role_of(path)) is not None:
            for op in catalog.values():
                if role in used_roles.get(op.playbook, set()):
                    hit(op, f"{raw}: role {role} used by playbooks/{op.playbook}")
        elif parts[0] == "plugins" and len(parts) >= 3:
            for role in sorted(_roles_using_plugin(roles_dir, path)):
                for op in catalog.values():
                    if role in used_roles.get(op.playbook, set()):
                        hit(op, f"{raw}: used by role {role}, used by playbooks/{op.playbook}")
        elif parts[0] == "inventories" and len(parts) >= 3:
            inv_env = parts[1]
            if env is None or inv_env == env:
                for op in catalog.values():
                    if op.read_only:
                        hit(op, f"{raw}: inventory of {inv_env} (read-only operations)")
                if parts[2] in _VARS_DIRS and path.suffix in (".yml", ".yaml", ""):
                    # ansible_* are connection settings, checked by the read-only operations
                    names = {n for n in changed_vars(repo, raw, base) or () if not n.startswith("ansible_")}
                    for op in catalog.values() if names else ():
                        if op.read_only:
                            continue
                        pb_path = playbooks_dir / op.playbook
                        pb_text = pb_path.read_text(encoding="utf-8") if pb_path.is_file() else ""
                        if used := _uses(pb_text, names or ()):
                            hit(op, f"{raw}: sets {', '.join(used)}, used by playbooks/{op.playbook}")
                            continue
                        for role in sorted(used_roles.get(op.playbook, set())):
                            if role not in role_texts:
                                role_texts[role] = _role_text(roles_dir, role)
                            if used := _uses(role_texts[role], names or ()):
                                hit(op, f"{raw}: sets {', '.join(used)}, used by role {role} (playbooks/{op.playbook})")
                                break
        elif raw in _GLOBAL_FILES or parts[0] == "collections":
            for op in catalog.values():
                if op.read_only:
                    hit(op, f"{raw}: affects every run (read-only operations)")
    order = list(catalog)
    return sorted(impacts.values(), key=lambda i: order.index(i.operation))
