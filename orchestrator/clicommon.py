"""Small helpers shared by the Click commands: turning library errors into exits, tables."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, ParamSpec, TypeVar

import click

from . import paths
from .archive import Archive
from .errors import OpsError
from .redact import mask_url_credentials
from .textclean import clean_text

P = ParamSpec("P")
R = TypeVar("R")


class OpsClickError(click.ClickException):
    """A ClickException carrying the exit code of the OpsError it came from."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]


def fail(err: OpsError) -> NoReturn:
    """Raise the Click form of ``err``: ``Error: <message>`` on stderr, exit ``err.exit_code``
    (2 for BadInput/NotFound, 1 otherwise), no traceback. The password of any URL in the
    message is masked (a store URL may carry a token)."""
    raise OpsClickError(mask_url_credentials(str(err)) or type(err).__name__, exit_code=err.exit_code) from err


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Decorator for Click commands: OpsError -> :func:`fail`."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except OpsError as err:
            fail(err)

    return wrapper


def archive_of(ctx: click.Context) -> Archive:
    """The archive of this invocation: the one the root command set up, or the configured one."""
    obj = ctx.find_root().obj
    archive = getattr(obj, "archive", None) if obj is not None else None
    return archive if isinstance(archive, Archive) else Archive(paths.archive_dir())


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns two spaces apart, a header line first, no trailing blanks; cells
    printed as text without control characters (None is empty)."""
    cells = [[("" if v is None else clean_text(str(v))) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, v in enumerate(row):
            widths[i] = max(widths[i], len(v))
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for row in cells:
        lines.append("  ".join(v.ljust(widths[i]) for i, v in enumerate(row)).rstrip())
    return "\n".join(lines)
