#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Release directory state of the envcredit application on one host."""

from __future__ import annotations

DOCUMENTATION = r"""
module: envcredit_release
short_description: Read, switch, mark and prune the releases of the envcredit application
description:
  - Works on C(root)/releases/<version>, the C(root)/current symlink and the state file
    C(root)/.releases.json (previous release, failed releases, history).
  - C(switch) replaces C(current) atomically (a new symlink renamed over the old one).
  - C(prune) keeps C(keep) good releases and never removes the current release or the previous one;
    failed releases never count as good.
  - Supports check mode.
options:
  root: {description: Application root directory., type: path, required: true}
  action:
    description: What to do.
    type: str
    choices: [info, switch, mark_failed, mark_good, prune]
    default: info
  version: {description: Release to switch to or to mark., type: str}
  previous:
    description: With C(switch), the release to remember as previous (default the release current pointed to).
    type: str
  record: {description: Change record id written to the history., type: str, default: ""}
  keep: {description: Good releases to keep with C(prune)., type: int, default: 5}
author: envcredit-ops contractor team
"""

EXAMPLES = r"""
- name: Switch to 1.2.0
  envcredit_release:
    root: /opt/envcredit
    action: switch
    version: 1.2.0
"""

RETURN = r"""
current: {description: Release current points to (null when none)., type: str, returned: always}
previous: {description: Release current pointed to before., type: str, returned: always}
releases: {description: Releases on disk, oldest first., type: list, returned: always}
failed_releases: {description: Releases that failed their health gate., type: list, returned: always}
removed: {description: Releases removed by prune., type: list, returned: always}
"""

import json
import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule


def _current(root):
    link = os.path.join(root, "current")
    if not os.path.islink(link):
        return None
    return os.path.basename(os.readlink(link).rstrip("/"))


def _releases(root):
    base = os.path.join(root, "releases")
    if not os.path.isdir(base):
        return []
    names = [n for n in os.listdir(base) if os.path.isdir(os.path.join(base, n)) and not n.startswith(".")]
    return sorted(names, key=lambda n: (os.stat(os.path.join(base, n)).st_mtime, n))


def _load(root):
    try:
        with open(os.path.join(root, ".releases.json"), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        data = {}
    data.setdefault("previous", None)
    data.setdefault("failed", [])
    data.setdefault("history", [])
    return data


def _save(root, data):
    path = os.path.join(root, ".releases.json")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            action=dict(type="str", default="info", choices=["info", "switch", "mark_failed", "mark_good", "prune"]),
            version=dict(type="str"),
            previous=dict(type="str"),
            record=dict(type="str", default=""),
            keep=dict(type="int", default=5),
        ),
        supports_check_mode=True,
    )
    p = module.params
    root, action, version = p["root"], p["action"], p["version"]
    state = _load(root)
    current = _current(root)
    changed = False
    removed = []
    if action != "info" and action != "prune" and not version:
        module.fail_json(msg=f"action {action} needs a version")

    if action == "switch":
        target = os.path.join(root, "releases", version)
        if current != version:
            if not os.path.isdir(target) and not module.check_mode:
                module.fail_json(msg=f"release {version} is not installed under {root}/releases")
            changed = True
            new_previous = p["previous"] if p["previous"] is not None else current
            if not module.check_mode:
                tmp = os.path.join(root, f".current.{os.getpid()}")
                if os.path.lexists(tmp):
                    os.unlink(tmp)
                os.symlink(os.path.join("releases", version), tmp)
                os.replace(tmp, os.path.join(root, "current"))
                state["previous"] = new_previous or None
                state["history"] = (
                    state["history"]
                    + [
                        {
                            "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            "from": current,
                            "to": version,
                            "record": p["record"],
                        }
                    ]
                )[-50:]
                _save(root, state)
            current, state["previous"] = version, (new_previous or None)
    elif action in ("mark_failed", "mark_good"):
        failed = list(state["failed"])
        if action == "mark_failed" and version not in failed:
            failed.append(version)
        if action == "mark_good" and version in failed:
            failed.remove(version)
        if failed != state["failed"]:
            changed = True
            state["failed"] = failed
            if not module.check_mode:
                _save(root, state)
    elif action == "prune":
        protected = {v for v in (current, state["previous"]) if v}
        keep_left = max(p["keep"] - len(protected), 0)
        for name in reversed(_releases(root)):  # newest first
            if name in protected:
                continue
            if name not in state["failed"] and keep_left > 0:
                keep_left -= 1
                continue
            removed.append(name)
        if removed:
            changed = True
            if not module.check_mode:
                for name in removed:
                    shutil.rmtree(os.path.join(root, "releases", name))

    module.exit_json(
        changed=changed,
        current=current,
        previous=state["previous"],
        releases=[r for r in _releases(root) if r not in removed or module.check_mode],
        failed_releases=state["failed"],
        removed=removed,
    )


if __name__ == "__main__":
    main()
