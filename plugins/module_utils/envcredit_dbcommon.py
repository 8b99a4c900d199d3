"""What the database tools share: envcredit_dbtool.py (roles db_backup, db_restore) and
envcredit_transfer.py (role db_transfer).

Not an Ansible module_utils import: the roles copy this file next to the tools on the database
host (``<lib_dir>/envcredit_dbcommon.py``), and the tools import it from their own directory.
Python 3 standard library only; psycopg2 / pymysql are imported when a connection is made.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path
from typing import Any

MY_SOCKET = os.environ.get("ENVCREDIT_MY_SOCKET", "/run/mysqld/mysqld.sock")


class Fail(Exception):
    """An error the tool reports as ``<tool>: <message>`` on stderr, exit status 1."""


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Engine:
    """A database engine: its name, identifier quoting and connection (each tool adds its own
    operations in a subclass)."""

    name = ""

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def quote(self, ident: str) -> str:
        raise NotImplementedError


class Postgres(Engine):
    name = "postgresql"

    def connect(self, db: str, **kwargs: Any) -> Any:  # type: ignore[override]
        """psycopg2 connection to ``db``; without ``kwargs``, the local socket as the OS user
        (peer authentication)."""
        import psycopg2  # type: ignore[import-untyped]

        return psycopg2.connect(dbname=db, **kwargs)

    def quote(self, ident: str) -> str:
        return '"' + ident.replace('"', '""') + '"'


class MariaDB(Engine):
    name = "mariadb"

    def connect(self, db: str, user: str = "root", **kwargs: Any) -> Any:  # type: ignore[override]
        """pymysql connection over the unix socket (``db`` empty: no default database)."""
        import pymysql  # type: ignore[import-untyped]

        return pymysql.connect(unix_socket=MY_SOCKET, user=user, database=db or None, charset="utf8mb4", **kwargs)

    def quote(self, ident: str) -> str:
        return "`" + ident.replace("`", "``") + "`"
