"""``opsctl alerts serve|handle``: Alertmanager's webhook receiver (see :mod:`orchestrator.alerts`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..alerts import MAX_BODY, BadPayload, Processor, log, make_server, parse_payload, read_token
from ..errors import BadInput
from ..incidents import IncidentRegister
from .context import context_of, handle_errors


def _check_env(env: str) -> None:
    """The receiver's environment must be an inventory (its notify channels live there)."""
    from ..operations import get_environment

    get_environment(env)


@click.group("alerts")
def alerts() -> None:
    """Alertmanager webhook receiver: firing alerts open incidents, resolved ones record recovery."""


@alerts.command("serve")
@click.option("--listen", default="127.0.0.1:9095", show_default=True, help="HOST:PORT to bind ([::1]:PORT for IPv6).")
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the shared bearer token (default: $OPSCTL_ALERTS_TOKEN).",
)
@click.option(
    "--env",
    "env",
    default="production",
    show_default=True,
    help="The environment the alerts are about (incidents, notification channels).",
)
@click.option(
    "--max-body",
    type=click.IntRange(min=1024),
    default=MAX_BODY,
    show_default=True,
    help="Largest accepted body in bytes (larger: 413).",
)
@click.option("--no-notify", is_flag=True, help="Record only; send no notification.")
@click.pass_context
@handle_errors
def serve_cmd(
    ctx: click.Context, listen: str, token_file: Path | None, env: str, max_body: int, no_notify: bool
) -> None:
    """Run the receiver until stopped (SIGTERM/Ctrl-C). One line per request goes to stderr."""
    token = read_token(token_file)
    _check_env(env)
    processor = Processor(IncidentRegister(context_of(ctx).archive), env, do_notify=not no_notify)
    server = make_server(listen, processor, token, max_body)
    log(
        f"listening on {listen.rsplit(':', 1)[0]}:{server.server_address[1]} for {env} "
        "(POST /alerts, bearer token required)"
    )
    import signal

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        log("stopping")
    finally:
        server.server_close()


@alerts.command("handle")
@click.argument("payload_file", metavar="FILE", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--env", "env", default="production", show_default=True)
@click.option("--no-notify", is_flag=True, help="Record only; send no notification.")
@click.pass_context
@handle_errors
def handle_cmd(ctx: click.Context, payload_file: str, env: str, no_notify: bool) -> None:
    """Process one webhook payload from FILE (- for stdin) as the receiver would; prints the outcome as JSON."""
    _check_env(env)
    with click.open_file(payload_file, "rb") as fh:
        body = fh.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise BadInput(f"{payload_file} is larger than {MAX_BODY} bytes")
    try:
        payload = parse_payload(body)
    except BadPayload as err:
        raise BadInput(f"{payload_file}: {err}") from err
    outcome = Processor(IncidentRegister(context_of(ctx).archive), env, do_notify=not no_notify).process(payload)
    click.echo(json.dumps(outcome.as_dict(), ensure_ascii=False, indent=2))


@alerts.command("unit")
@click.option(
    "--listen",
    required=True,
    help="HOST:PORT the receiver binds (the control host's address on the "
    "monitoring network; never 0.0.0.0 in production).",
)
@click.option(
    "--token-file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the shared bearer token (mode 0600).",
)
@click.option("--env", "env", default="production", show_default=True, help="The environment the alerts are about.")
@click.option("--user", default="root", show_default=True, help="Account the service runs as (owns the archive).")
@handle_errors
def unit_cmd(listen: str, token_file: Path, env: str, user: str) -> None:
    """Print the systemd unit that runs the receiver on the control host (the same conventions as
    the timers' units: this checkout, /etc/envcredit-ops/opsctl.env), to install as
    /etc/systemd/system/envcredit-ops-alerts.service."""
    import shlex

    from .. import paths
    from ..alerts import parse_listen
    from ..schedules import ENV_FILE, MARKER

    parse_listen(listen)
    _check_env(env)
    if not user.replace("-", "").replace("_", "").isalnum():
        raise BadInput(f"not an account name: {user!r}")
    repo = paths.repo_root()
    cmd = [
        f"{repo}/.venv/bin/opsctl",
        "alerts",
        "serve",
        "--env",
        env,
        "--listen",
        listen,
        "--token-file",
        str(token_file),
    ]
    click.echo(f"""{MARKER.replace("schedule (schedules/schedules.yml)", "alerts unit")}
[Unit]
Description=envcredit-ops: Alertmanager webhook receiver (opsctl alerts serve)
Wants=network-online.target
After=network-online.target

[Service]
Type=exec
User={user}
WorkingDirectory={repo}
Environment=OPSCTL_OPERATOR=alertmanager
EnvironmentFile=-{ENV_FILE}
ExecStart={shlex.join(cmd)}
Restart=on-failure
RestartSec=5
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=full

[Install]
WantedBy=multi-user.target""")
