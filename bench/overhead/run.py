#!/usr/bin/env python3
"""Overhead of `opsctl run` (ansible-runner + recording) against bare `ansible-playbook`.

Runs the same playbook on the same hosts three ways, rotating the order every round so
that drift on the machine hits all of them equally:

* bare:   `ansible-playbook` (default callback, output to /dev/null);
* runner: `ansible_runner.run()` in a fresh Python process with the settings opsctl uses
          (event_handler, quiet, fact_cache, cancel_callback, orchestrator.runner's
          RUNNER_SETTINGS and PTY_CLOSE_DELAY) and an event handler that does nothing;
* opsctl: `opsctl run OP` (ansible-runner + redaction, change record, archive).

and prints the median wall time (and CPU time: user + system of the command and all its
children, much less disturbed by other work on the machine) of each and the medians of
the per-round ratios
runner/bare (ansible-runner's own cost) and opsctl/bare (the whole cost; the step from
runner to opsctl is opsctl's part). Goal: opsctl/bare <= 1.05. This is a benchmark, not
a test: it never fails on a time.

    .venv/bin/python bench/overhead/run.py --local 20 [--rounds 7]     # no lab needed
    .venv/bin/python bench/overhead/run.py [--rounds 5] [--op inspect] [--env lab] [--limit PATTERN]

`--local N` builds a throw-away opsctl home in a temporary directory (catalog, inventory
of N hosts with ansible_connection=local and a vault-encrypted group_vars file, a
playbook of 10 ordinary tasks per host) and measures there; nothing of the repository
or the lab is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

VAULT_PASSWORD = "bench-vault-pass-5e2a"  # throw-away, only for the temporary home

LOCAL_CATALOG = """\
operations:
  bench:
    playbook: bench.yml
    description: Ten ordinary tasks per host (overhead benchmark)
    risk: low
    read_only: true
    outputs: [bench]
"""

# ~10 tasks per host of the kinds the real roles use: probes, facts, files written from a
# template and from content, a stat, an assertion, a loop, and set_stats for the outputs.
LOCAL_PLAYBOOK = """\
- name: Overhead benchmark
  hosts: all
  gather_facts: false
  tasks:
    - name: Probe the kernel
      ansible.builtin.command: uname -r
      register: bench_kernel
      changed_when: false
    - name: Probe the load
      ansible.builtin.command: cat /proc/loadavg
      register: bench_load
      changed_when: false
    - name: Derive facts
      ansible.builtin.set_fact:
        bench_summary:
          kernel: "{{ bench_kernel.stdout }}"
          load1: "{{ bench_load.stdout.split()[0] | float }}"
          host: "{{ inventory_hostname }}"
    - name: Create the host's directory
      ansible.builtin.file:
        path: "{{ bench_out }}/{{ inventory_hostname }}"
        state: directory
        mode: "0700"
    - name: Write the report from a template
      ansible.builtin.template:
        src: report.j2
        dest: "{{ bench_out }}/{{ inventory_hostname }}/report.txt"
        mode: "0600"
    - name: Write the marker file
      ansible.builtin.copy:
        content: "kernel {{ bench_kernel.stdout }}\\n"
        dest: "{{ bench_out }}/{{ inventory_hostname }}/marker.txt"
        mode: "0600"
    - name: Stat the report
      ansible.builtin.stat:
        path: "{{ bench_out }}/{{ inventory_hostname }}/report.txt"
      register: bench_stat
    - name: Check the report
      ansible.builtin.assert:
        that:
          - bench_stat.stat.exists
          - bench_summary.kernel | length > 0
        quiet: true
    - name: Note a few settings
      ansible.builtin.set_fact:
        bench_items: "{{ bench_items | default([]) + [item] }}"
      loop: [alpha, beta, gamma]
    - name: Report the outputs
      ansible.builtin.set_stats:
        data:
          bench: "{{ {inventory_hostname: bench_summary} }}"
        per_host: false
        aggregate: true
"""

LOCAL_TEMPLATE = """\
host {{ inventory_hostname }}
kernel {{ bench_summary.kernel }}
load {{ bench_summary.load1 }}
{% for i in range(20) %}line {{ i }} of the report
{% endfor %}
"""

# The settings of the repository's ansible.cfg that matter off the lab (no SSH here).
LOCAL_CFG = """\
[defaults]
forks = 20
timeout = 15
interpreter_python = auto_silent
retry_files_enabled = false
gathering = smart
fact_caching = jsonfile
fact_caching_connection = var/facts
fact_caching_timeout = 7200
callback_result_format = yaml
show_custom_stats = false
"""

OPSCTL_OP = "bench"
OPSCTL_ENV = "bench"


def build_local_home(root: Path, hosts: int) -> Path:
    """A self-contained opsctl home (the shape of build_home in tests/helpers/home.py)."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    (root / "playbooks" / "templates").mkdir(parents=True)
    (root / "playbooks" / "bench.yml").write_text(LOCAL_PLAYBOOK, encoding="utf-8")
    (root / "playbooks" / "templates" / "report.j2").write_text(LOCAL_TEMPLATE, encoding="utf-8")
    (root / "catalog.yml").write_text(LOCAL_CATALOG, encoding="utf-8")
    inv = root / "inventories" / OPSCTL_ENV
    (inv / "group_vars" / "all").mkdir(parents=True)
    names = "".join(f"        bench{i:02d}: {{}}\n" for i in range(1, hosts + 1))
    (inv / "hosts.yml").write_text(
        textwrap.dedent(f"""\
        all:
          vars:
            ansible_connection: local
            ansible_python_interpreter: {sys.executable}
          children:
            app:
              hosts:
        """)
        + names,
        encoding="utf-8",
    )
    (inv / "group_vars" / "all" / "main.yml").write_text(f"bench_out: {root / 'out'}\n", encoding="utf-8")
    vault = VaultLib([("default", VaultSecret(VAULT_PASSWORD.encode()))])
    (inv / "group_vars" / "all" / "vault.yml").write_bytes(
        vault.encrypt(b"vault_bench_secret: Bench-Vaulted-Secret-93c1\n")
    )
    (inv / ".opsctl.yml").write_text("vault_password_file: ../../vault-password\n", encoding="utf-8")
    (root / "vault-password").write_text(VAULT_PASSWORD + "\n", encoding="utf-8")
    (root / "out").mkdir()
    (root / "ansible.cfg").write_text(LOCAL_CFG, encoding="utf-8")
    return root


def runner_only(spec: dict[str, Any]) -> int:
    """The `runner` variant: ansible_runner.run() as opsctl calls it, minus the recording."""
    import shutil

    import ansible_runner
    from pexpect import pty_spawn

    # As orchestrator/runner.py's _shorten_pty_close_delay() does.
    spawn_cls: Any = pty_spawn.spawn
    original = spawn_cls._spawnpty

    def spawnpty(self: Any, args: Any, **kwargs: Any) -> Any:
        proc = original(self, args, **kwargs)
        proc.delayafterclose = min(proc.delayafterclose, spec["pty_close_delay"])
        return proc

    if spec.get("pty_close_delay") is not None:
        spawn_cls._spawnpty = spawnpty
    workdir = tempfile.mkdtemp(prefix="bench-runner-", dir=spec["workdir_root"])
    cmdline = f"--vault-password-file {spec['vault']}" if spec.get("vault") else None

    def on_event(_event: dict[str, Any]) -> bool:
        return False

    try:
        r = ansible_runner.run(
            private_data_dir=workdir,
            ident="run",
            playbook=spec["playbook"],
            inventory=spec["inventory"],
            limit=spec.get("limit"),
            extravars={"opsctl_record_id": "bench", "opsctl_env": spec["env"]},
            cmdline=cmdline,
            envvars={
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_FORCE_COLOR": "0",
                "ANSIBLE_CONFIG": spec["cfg"],
                "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
            },
            quiet=True,
            event_handler=on_event,
            cancel_callback=lambda: False,
            fact_cache=spec["fact_cache"],
            settings=spec["settings"],
            project_dir=spec["project"],
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if r.status == "successful" else 1


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall time and CPU time (user + system, the command and all its descendants)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--local",
        type=int,
        metavar="N",
        default=0,
        help="measure on a throw-away home of N local-connection hosts (no lab)",
    )
    ap.add_argument("--op", default="inspect")
    ap.add_argument("--env", default="lab")
    ap.add_argument("--limit", default=None)
    ap.add_argument("--no-runner", action="store_true", help="skip the bare ansible-runner variant")
    ap.add_argument(
        "--baseline",
        metavar="DIR",
        help="also run opsctl with PYTHONPATH=DIR (a directory holding another version of "
        "the orchestrator package, e.g. from `git archive`), to measure a change",
    )
    ap.add_argument("--runner-child", help=argparse.SUPPRESS)  # internal: JSON spec of runner_only()
    args = ap.parse_args()
    if args.runner_child:
        sys.exit(runner_only(json.loads(args.runner_child)))

    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp_name:
        tmp = Path(tmp_name)
        if args.local:
            home = build_local_home(tmp / "home", args.local)
            op_name, env_name = OPSCTL_OP, OPSCTL_ENV
        else:
            home = REPO
            op_name, env_name = args.op, args.env
        env = dict(
            os.environ,
            OPSCTL_ARCHIVE=str(tmp / "archive"),
            OPSCTL_LOCKS=str(tmp / "locks"),
            ANSIBLE_CONFIG=str(home / "ansible.cfg"),
            PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        env.pop("OPSCTL_VAULT_PASSWORD_FILE", None)
        if args.local:
            env.update(OPSCTL_HOME=str(home), OPSCTL_CATALOG=str(home / "catalog.yml"))
        os.environ.update(env)  # the catalog and environment lookups below use the same home
        sys.path.append(str(REPO))  # appended: PYTHONPATH can point at another checkout to compare
        from orchestrator import runner as opsctl_runner
        from orchestrator.operations import get_environment, get_operation

        # The runner variant copies opsctl's ansible-runner settings (these defaults: before
        # they were named in orchestrator/runner.py).
        runner_settings = getattr(
            opsctl_runner, "RUNNER_SETTINGS", {"pexpect_timeout": 1, "suppress_ansible_output": True}
        )
        pty_close_delay = getattr(opsctl_runner, "PTY_CLOSE_DELAY", None)

        playbook = get_operation(op_name).playbook_path()
        inventory = home / "inventories" / env_name
        vault = get_environment(env_name).vault_password_file
        vault_opt = ["--vault-password-file", str(vault)] if vault else []
        limit = ["--limit", args.limit] if args.limit else []
        variants: dict[str, list[str]] = {
            "ansible-playbook": [
                str(BIN / "ansible-playbook"),
                "-i",
                str(inventory),
                *vault_opt,
                str(playbook),
                *limit,
            ],
        }
        if not args.no_runner:
            (tmp / "runner").mkdir()
            spec = {
                "playbook": str(playbook),
                "inventory": str(inventory),
                "vault": str(vault) if vault else None,
                "limit": args.limit,
                "env": env_name,
                "cfg": str(home / "ansible.cfg"),
                "fact_cache": str(home / "var" / "facts"),
                "project": str(home),
                "workdir_root": str(tmp / "runner"),
                "settings": runner_settings,
                "pty_close_delay": pty_close_delay,
            }
            variants["ansible-runner"] = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--runner-child",
                json.dumps(spec),
            ]
        variants["opsctl run"] = [
            str(BIN / "opsctl"),
            "run",
            op_name,
            "--env",
            env_name,
            "--reason",
            "benchmark",
            *limit,
        ]
        envs = {name: env for name in variants}
        if args.baseline:  # the same opsctl command on another checkout's orchestrator package
            variants["opsctl baseline"] = variants["opsctl run"]
            envs["opsctl baseline"] = dict(env, PYTHONPATH=str(Path(args.baseline).resolve()))
        names = list(variants)
        for name in names:  # one warm-up of each (fact cache, page cache, SSH control masters)
            timed(variants[name], envs[name], home)
        times: dict[str, list[float]] = {name: [] for name in names}
        cpus: dict[str, list[float]] = {name: [] for name in names}
        for i in range(args.rounds):
            k = i % len(names)
            for name in names[k:] + names[:k]:
                wall, cpu = timed(variants[name], envs[name], home)
                times[name].append(wall)
                cpus[name].append(cpu)

    where = f"{args.local} local hosts (throw-away home)" if args.local else f"{env_name}"
    print(f"operation {op_name} on {where}, {args.rounds} rounds, order rotated, {os.cpu_count()} cores")
    for what, data in (("wall", times), ("cpu", cpus)):
        print(
            f" {what} time (cpu: user + system of the command and its children)" if what == "cpu" else f" {what} time"
        )
        for name in names:
            print(
                f"  {name:<17} median {statistics.median(data[name]):6.2f} s   "
                f"runs: {', '.join(f'{t:.2f}' for t in data[name])}"
            )
        bare = data["ansible-playbook"]
        for name in names[1:]:
            ratios = [t / b for t, b in zip(data[name], bare, strict=True)]
            label = {"ansible-runner": "runner/bare", "opsctl run": "opsctl/bare"}.get(name, "baseline/bare")
            goal = "   goal <= 1.05" if name == "opsctl run" and what == "wall" else ""
            print(
                f"  ratio {label:<12} median {statistics.median(ratios):.3f} "
                f"(per round: {', '.join(f'{r:.3f}' for r in ratios)}){goal}"
            )
        if "ansible-runner" in data:
            step = [o - r for o, r in zip(data["opsctl run"], data["ansible-runner"], strict=True)]
            print(f"  opsctl - runner   median {statistics.median(step):+.2f} s (opsctl's own part)")
        if "opsctl baseline" in data:
            step = [o - b for o, b in zip(data["opsctl run"], data["opsctl baseline"], strict=True)]
            print(
                f"  opsctl - baseline median {statistics.median(step):+.2f} s (this checkout against {args.baseline})"
            )


if __name__ == "__main__":
    main()
