"""``opsctl alerts serve|handle``: Alertmanager's webhook receiver (see :mod:`orchestrator.alerts`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .alerts import MAX_BODY, BadPayload, Processor, log, make_server, parse_payload, read_token
from .clicommon import archive_of, handle_errors
from .errors import BadInput
from .incidents import IncidentRegister


def _check_env(env: str) -> None:
    """The receiver's environment must be an inventory (its notify channels live there)."""
    from .operations import get_environment

    get_environment(env)


@click.group("alerts")
def alerts() -> None:
    """Alertmanager webhook receiver: firing alerts open incidents, resolved ones record recovery."""


@alerts.command("serve")
@click.option("--listen", default="127.0.0.1:9095", show_default=True, help="HOST:PORT to bind ([::1]:PORT for IPv6).")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path),
              help="File holding the shared bearer token (default: $OPSCTL_ALERTS_TOKEN).")
@click.option("--env", "env", default="production", show_default=True,
              help="The environment the alerts are about (incidents, notification channels).")
@click.option("--max-body", type=click.IntRange(min=1024), default=MAX_BODY, show_default=True,
              help="Largest accepted body in bytes (larger: 413).")
@click.option("--no-notify", is_flag=True, help="Record only; send no notification.")
@click.pass_context
@handle_errors
def serve_cmd(ctx: click.Context, listen: str, token_file: Path | None, env: str, max_body: int,
              no_notify: bool) -> None:
    """Run the receiver until stopped (SIGTERM/Ctrl-C). One line per request goes to stderr."""
    token = read_token(token_file)
    _check_env(env)
    processor = Processor(IncidentRegister(archive_of(ctx)), env, do_notify=not no_notify)
    server = make_server(listen, processor, token, max_body)
    log(f"listening on {listen.rsplit(':', 1)[0]}:{server.server_address[1]} for {env} "
        "(POST /alerts, bearer token required)")
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
    outcome = Processor(IncidentRegister(archive_of(ctx)), env, do_notify=not no_notify).process(payload)
    click.echo(json.dumps(outcome.as_dict(), ensure_ascii=False, indent=2))
