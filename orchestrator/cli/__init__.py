"""``opsctl``: the command line. Commands parse, call the library, print; nothing more.

Each command group lives in a module of this package (``run``, ``records``, ``report``,
``incident`` ...), imported only when the command runs (``opsctl --help`` lists them from
:data:`COMMANDS` without importing any): a call of ``opsctl run`` does not pay for the
reports, the incident register or the AWX client. The commands share one
:class:`.context.Context` (the archive, the paths, the output helpers), reached through
:func:`.context.context_of`.
"""

from __future__ import annotations

import importlib

import click

from .. import __version__
from ..errors import OpsError

# name -> (module of this package, attribute, short help as `opsctl --help` shows it): one
# module per command group. tests/test_cli_ops.py checks the table against the commands themselves.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "alerts": (
        "alerts",
        "alerts",
        "Alertmanager webhook receiver: firing alerts open incidents, resolved ones record recovery.",
    ),
    "awx": ("awx", "awx", "Runs launched from AWX / Automation Platform: import them as change records."),
    "backups": (
        "backups",
        "backups",
        "The database backups in the store (var/backups/<env>/<host>/<id>, or $OPSCTL_BACKUPS).",
    ),
    "incident": (
        "incident",
        "incident",
        "Incidents and their SLA clocks (general: respond 24 h, resolve 5 working days; outage: respond 4 h,"
        " recover 1 working day, resolve 3 working days).",
    ),
    "logs": ("logs", "logs", "Analyse the logs collected by the `logs` operation (var/logs/<record id>/)."),
    "notify": (
        "notify",
        "notify_group",
        "Notifications through Apprise (WeCom, DingTalk, e-mail, webhooks), configured per environment.",
    ),
    "oncall": ("oncall", "oncall", "The on-call roster of the repair hotline (oncall/roster.yml)."),
    "ops": ("run", "ops_cmd", "List the operations of the catalog."),
    "records": ("records", "records", "The change records: list, show, export and verify the archive."),
    "releases": (
        "releases",
        "releases",
        "Which release runs on which host (--env ENV), or build an artifact (releases build).",
    ),
    "report": (
        "report",
        "report",
        "Reports for the client and the auditors (zh-CN and English; HTML, Markdown, JSON).",
    ),
    "request": (
        "request",
        "request",
        "The consulting register: consultations, questions from the bureau, liaison with the"
        " government-cloud operator (respond 24 h, close 5 working days; liaison has no clock).",
    ),
    "run": ("run", "run_cmd", "Run OPERATION against an environment and save the change record."),
    "schedule": (
        "schedule",
        "schedule",
        "Timers of the scheduled operations (daily inspection, nightly backup, ...), from schedules/schedules.yml.",
    ),
    "store": ("store", "store", "The shared archive store: one hash chain for every engineer and CI job."),
}


def _load(module: str, attribute: str) -> click.Command:
    command = getattr(importlib.import_module(f".{module}", __package__), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"orchestrator.cli.{module}.{attribute} is not a Click command")
    return command


class LazyGroup(click.Group):
    """A group whose commands (:data:`COMMANDS`) are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, attribute, _ = COMMANDS[cmd_name]
            self.add_command(_load(module, attribute), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """``--help``'s command list by Click's own code, with stand-ins for the commands not loaded."""
        stand_ins = {
            name: click.Command(name, help=short_help)
            for name, (_, _, short_help) in COMMANDS.items()
            if name not in self.commands
        }
        click.Group(commands={**self.commands, **stand_ins}).format_commands(ctx, formatter)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="opsctl")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Run the maintenance operations of the Environmental Credit Evaluation System
    and keep every run as a tamper-evident change record."""
    from .context import Context

    ctx.obj = Context()
    # A killed opsctl's ansible-runner folder holds its extra vars in plain text: whatever the
    # command, remove the folders of runs whose process is gone (a listing of var/run).
    from .. import workdirs

    workdirs.remove_stale()
    if ctx.invoked_subcommand not in (None, "ops"):
        from ..runner import recover_interrupted

        try:
            recover_interrupted(ctx.obj.archive)  # a killed opsctl's run becomes an 'interrupted' record
            ctx.obj.recovered = True
        except OpsError as err:
            from .context import fail

            fail(err)


def main() -> None:
    cli(prog_name="opsctl")
