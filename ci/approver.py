#!/usr/bin/env python3
"""Print who approved this CI job's production apply; exit 1 when nobody did.

    ci/approver.py [--env production]

The apply job's environment (`production`) is the gate, configured on the CI server:

* GitLab: a protected environment with "Allowed to deploy" and "Required approvals"
  (Settings > CI/CD > Protected environments). The job is manual: GitLab blocks it until the
  approvals are given and runs it as the user who started it (``GITLAB_USER_LOGIN``), whom
  the protected environment limits to its deployers. With ``OPSCTL_GITLAB_TOKEN`` (a project
  access token with ``read_api``) the deployment's approvals are read from the API and named
  instead: ``GET /projects/:id/deployments?environment=ENV`` (the deployment of this job).
* GitHub: the environment has required reviewers; the approvals of this run come from
  ``GET /repos/{repo}/actions/runs/{run_id}/approvals`` with ``GITHUB_TOKEN`` (the job needs
  ``permissions: actions: read``).

The names go to ``OPSCTL_APPROVED_BY``; `opsctl` puts them in the record (``approval``) and a
production policy with ``ci_approval: required`` refuses a CI apply without them.
Exit status: 0 with the names on stdout, 1 when there is no approval, 2 when the API failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any


class ApiError(Exception):
    pass


def _get(url: str, headers: Mapping[str, str]) -> Any:
    req = urllib.request.Request(url, headers={"Accept": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - the CI server's own API
            return json.loads(resp.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ApiError(f"{url.split('?')[0]}: {exc}") from exc


def github_approvers(env: Mapping[str, str], environment: str) -> list[str]:
    """Logins that approved this run's deployment to ``environment``."""
    api = env.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    url = f"{api}/repos/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}/approvals"
    token = env.get("GITHUB_TOKEN", "")
    data = _get(url, {"Authorization": f"Bearer {token}"} if token else {})
    names: list[str] = []
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, dict) or item.get("state") != "approved":
            continue
        envs = {e.get("name") for e in item.get("environments") or [] if isinstance(e, dict)}
        login = (item.get("user") or {}).get("login")
        if environment in envs and isinstance(login, str) and login not in names:
            names.append(login)
    return names


def gitlab_approvers(env: Mapping[str, str], environment: str) -> list[str]:
    """Usernames that approved this job's deployment (API), else the user who started the
    manual job in the protected environment; none when the job was not started by hand."""
    token = env.get("OPSCTL_GITLAB_TOKEN", "")
    if token:
        api = env["CI_API_V4_URL"].rstrip("/")
        url = (
            f"{api}/projects/{env['CI_PROJECT_ID']}/deployments?environment={environment}"
            "&order_by=id&sort=desc&per_page=50"
        )
        for dep in _get(url, {"PRIVATE-TOKEN": token}) or []:
            if isinstance(dep, dict) and str((dep.get("deployable") or {}).get("id")) == env.get("CI_JOB_ID"):
                names = [
                    a["user"]["username"]
                    for a in dep.get("approvals") or []
                    if isinstance(a, dict)
                    and a.get("status") == "approved"
                    and isinstance((a.get("user") or {}).get("username"), str)
                ]
                if names:
                    return list(dict.fromkeys(names))
    if env.get("CI_JOB_MANUAL") == "true" and env.get("GITLAB_USER_LOGIN"):
        return [env["GITLAB_USER_LOGIN"]]
    return []


def approvers(env: Mapping[str, str], environment: str) -> list[str]:
    if env.get("GITHUB_ACTIONS") == "true":
        return github_approvers(env, environment)
    if env.get("GITLAB_CI") == "true":
        return gitlab_approvers(env, environment)
    return []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="production", help="the CI environment whose approval is asked for")
    args = ap.parse_args(argv)
    try:
        names = approvers(os.environ, args.env)
    except (ApiError, KeyError) as exc:
        print(f"ci/approver.py: cannot read the approvals of {args.env!r}: {exc}", file=sys.stderr)
        return 2
    if not names:
        print(
            f"ci/approver.py: no approval of environment {args.env!r} for this job "
            "(GitLab: a manual job in the protected environment; GitHub: required reviewers)",
            file=sys.stderr,
        )
        return 1
    print(", ".join(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
