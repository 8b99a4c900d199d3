"""What the commands share: the :class:`Context` of an invocation (the archive, the paths,
the output helpers), turning library errors into exits, tables."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import click

from .. import paths
from ..archive import Archive
from ..errors import OpsError
from ..redact import mask_url_credentials
from ..textclean import clean_text

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


class Context:
    """State shared by the commands of one invocation (Click's ``examples/repo`` pattern): the
    root command sets it as ``ctx.obj``; every command reaches it with :func:`context_of`."""

    def __init__(self, archive: Archive | None = None) -> None:
        self._archive = archive
        #: Interrupted runs recovered (and stale runner folders removed) for this command.
        self.recovered = False

    @staticmethod
    def var_dir() -> Path:
        """The controller's state directory (:func:`orchestrator.paths.var_dir`)."""
        return paths.var_dir()

    @staticmethod
    def data_dir() -> Path:
        """What runs leave on the controller (:func:`orchestrator.paths.data_dir`)."""
        return paths.data_dir()

    @property
    def archive(self) -> Archive:
        """The change-record archive (:func:`orchestrator.paths.archive_dir`), opened on first use."""
        if self._archive is None:
            self._archive = Archive(paths.archive_dir())
        return self._archive

    @staticmethod
    def format_for(out: Path | None, fmt: str | None, formats: Sequence[str], default: str) -> str:
        """The output format: ``--format``, else ``--out``'s suffix, else ``default``
        (:func:`orchestrator.reports.render.format_for`, the one rule)."""
        from ..reports.render import format_for

        return format_for(out, fmt, formats, default)

    @staticmethod
    def emit(text: str, out: Path | None, what: str) -> None:
        """A rendered report to stdout, or written to ``out`` (atomically) and said so."""
        if out is None:
            click.echo(text, nl=False)
            return
        from ..reports.render import write_output

        write_output(text, out)
        click.echo(f"wrote {what} to {out}")


def context_of(ctx: click.Context) -> Context:
    """The :class:`Context` of this invocation: the root command's, or a new one set up on
    the root (a command group invoked on its own, as tests do)."""
    root = ctx.find_root()
    if not isinstance(root.obj, Context):
        root.obj = Context()
    return root.obj


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
