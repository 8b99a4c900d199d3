"""The project's own exceptions. Library code raises these; the CLI maps them to exit codes."""

from __future__ import annotations


class OpsError(Exception):
    """Base class of every error the orchestrator raises on purpose."""

    exit_code = 1


class BadInput(OpsError):
    """The caller asked for something invalid (unknown operation, environment, bad -e, ...)."""

    exit_code = 2


class NotFound(BadInput):
    """A named thing (record id, operation, environment) does not exist."""


class LockHeld(OpsError):
    """Another run holds the lock on an overlapping set of hosts."""

    exit_code = 1


class UnsafeDirectory(OpsError):
    """A directory opsctl keeps private things in (ssh control sockets) could be changed by
    another user: owned by someone else, or group/world writable."""

    exit_code = 1


class ArchiveError(OpsError):
    """The archive is unreadable or inconsistent."""

    exit_code = 1
