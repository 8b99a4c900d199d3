"""Export and import on the lab, for real, on both engines (lab-db1 PostgreSQL, lab-db2 MariaDB).

Imports go into scratch tables this module creates and drops (names carry the
process id), so the seeded tables are never written; exports only read. Each
test uses its own archive; export files land in a temporary directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from datetime import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from helpers.common import REPO, all_text_under, run_opsctl
from helpers.lab import DBTOOL, on_host, seed_with_repository_dbtool, stdout_of, vault_value

sys.path.insert(0, str(REPO / "roles" / "db_transfer" / "files"))
sys.path.insert(0, str(REPO / "plugins" / "module_utils"))  # envcredit_dbcommon, the tools' shared code
import envcredit_transfer as transfer  # noqa: E402  (the role's own parser reads the exported files)

pytestmark = pytest.mark.lab

ENGINE = {"lab-db1": "postgresql", "lab-db2": "mariadb"}
RUN_AS = {"lab-db1": "postgres", "lab-db2": "root"}
SCRATCH = f"xfer_test_{os.getpid()}"


def sql(host: str, statement: str) -> str:
    """Run one statement in envcredit; its output (one value per line, tab-separated)."""
    argv = (
        ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", "envcredit", "-c", statement]
        if ENGINE[host] == "postgresql"
        else ["mariadb", "-NB", "envcredit", "-e", statement]
    )
    return stdout_of(on_host(host, argv, RUN_AS[host]))


SEEDED = ("enterprises", "indicators", "behaviour_events", "ratings", "publications")


def checksums(host: str, tables: tuple[str, ...] = ()) -> dict[str, str]:
    """Per-table data checksums of envcredit: the seeded tables and ``tables`` (other tables of
    the lab's database belong to other tests and engineers)."""
    out = stdout_of(
        on_host(
            host, ["/usr/bin/python3", DBTOOL, "checksum", f"--engine={ENGINE[host]}", "--db=envcredit"], RUN_AS[host]
        )
    )
    sums: dict[str, str] = json.loads(out)["tables"]
    return {t: v for t, v in sums.items() if t in SEEDED + tables}


def opsctl(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    proc = run_opsctl("run", *args, "--env", "lab", "--json", timeout=600, env=env)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def create_scratch(host: str, table: str) -> None:
    if ENGINE[host] == "postgresql":
        sql(
            host,
            f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, code VARCHAR(10) NOT NULL UNIQUE, "
            "name VARCHAR(100) NOT NULL, score NUMERIC(5,2), day DATE, note TEXT)",
        )
    else:
        sql(
            host,
            f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, code VARCHAR(10) NOT NULL UNIQUE, "
            "name VARCHAR(100) NOT NULL, score DECIMAL(5,2), day DATE, note TEXT) "
            "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
        )


def drop_scratch(host: str, table: str) -> None:
    sql(host, f"DROP TABLE IF EXISTS {table}")


@pytest.fixture(scope="module")
def tools(lab_ready: list[str]) -> None:
    """The seeded database (seed changes nothing when it is there) and the checksum tool
    (role db_backup) on the database hosts, the repository's version."""
    seed_with_repository_dbtool()


@pytest.fixture
def exports() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="envcredit-test-exports-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def scratch(tools: None, lab_archive: Path) -> Iterator[str]:
    """An empty scratch table on both engines, dropped afterwards."""
    table = f"{SCRATCH}_good"
    for host in ENGINE:
        drop_scratch(host, table)
        create_scratch(host, table)
    yield table
    for host in ENGINE:
        drop_scratch(host, table)


@pytest.fixture(scope="module")
def bad_target(tools: None, lab_ready: list[str]) -> Iterator[str]:
    """A scratch table holding one row (id 1, code E001), for the refused imports."""
    table = f"{SCRATCH}_bad"
    for host in ENGINE:
        drop_scratch(host, table)
        create_scratch(host, table)
        sql(
            host,
            f"INSERT INTO {table} (id, code, name, score, day, note) "
            "VALUES (1, 'E001', '韶关市第一企业', 90.50, '2026-01-05', NULL)",
        )
    yield table
    for host in ENGINE:
        drop_scratch(host, table)


def read_csv(path: Path) -> list[list[str | None]]:
    return [fields for _, fields in transfer.parse_csv(path.read_bytes().decode("utf-8"))]


def lines(out: str) -> list[str]:
    """The lines of a command's stdout."""
    return out.splitlines()


def test_export_tables_and_query_both_engines(tools: None, lab_archive: Path, exports: Path) -> None:
    where = "district LIKE '%区'"  # a Chinese literal in the query; the districts ending in 区
    query = f"SELECT id, name, district, legal_rep FROM enterprises WHERE {where} ORDER BY id"
    rc, rec = opsctl(
        "export",
        "-e",
        "db_export_tables=enterprises,ratings",
        "-e",
        f"db_export_query={query}",
        "-e",
        "db_export_name=districts",
        "-e",
        f"db_transfer_export_dir={exports}",
    )
    assert rc == 0, rec.get("failures")
    for host in ENGINE:
        out = rec["outputs"]["export"][host]
        folder = Path(out["dir"])
        assert folder == exports / host / rec["id"]
        files = {f["name"]: f for f in out["files"]}
        assert set(files) == {"enterprises.csv", "ratings.csv", "districts.csv"}
        expected = {
            "enterprises.csv": int(sql(host, "SELECT count(*) FROM enterprises")),
            "ratings.csv": int(sql(host, "SELECT count(*) FROM ratings")),
            "districts.csv": int(sql(host, f"SELECT count(*) FROM enterprises WHERE {where}")),
        }
        assert expected["districts.csv"] > 0
        for name, meta in files.items():
            path = folder / name
            assert meta["rows"] == expected[name], (host, name)
            assert hashlib.sha256(path.read_bytes()).hexdigest() == meta["sha256"]
            assert path.stat().st_size == meta["bytes"]
            assert path.stat().st_mode & 0o077 == 0
            assert len(read_csv(path)) - 1 == meta["rows"]
        ent = read_csv(folder / "enterprises.csv")
        assert ent[0][:3] == ["id", "credit_code", "name"]
        assert [r[2] for r in ent[1:]] == lines(sql(host, "SELECT name FROM enterprises ORDER BY id"))
        rows = read_csv(folder / "districts.csv")
        assert rows[0] == ["id", "name", "district", "legal_rep"]
        # Chinese text survives: the exported values are the database's, character for character.
        assert [r[2] for r in rows[1:]] == lines(
            sql(host, f"SELECT district FROM enterprises WHERE {where} ORDER BY id")
        )
        assert all((r[2] or "").endswith("区") for r in rows[1:])


@pytest.mark.parametrize(
    "query",
    [
        "UPDATE enterprises SET name = 'X' WHERE id = 1",
        "SELECT 1; UPDATE enterprises SET name = 'X' WHERE id = 1",
        "WITH d AS (DELETE FROM ratings WHERE id = 1 RETURNING id) SELECT * FROM d",
    ],
)
def test_export_query_cannot_write(tools: None, lab_archive: Path, exports: Path, query: str) -> None:
    before = {h: checksums(h) for h in ENGINE}
    rc, rec = opsctl("export", "-e", f"db_export_query={query}", "-e", f"db_transfer_export_dir={exports}")
    assert rc != 0
    failed = {f["host"]: f["msg"] for f in rec["failures"]}
    assert set(failed) == set(ENGINE), failed
    for host in ENGINE:
        assert checksums(host) == before[host]
    assert not list(exports.rglob("*.csv"))


# What an operator's query must not do, each tried on the engine it targets. The export account
# is the first line (the server refuses), the tool's statement checks the second.
ESCAPES = [
    (
        "lab-db1",
        "SELECT set_config('role','postgres',true) AS r, "
        "query_to_xml('select pg_read_file(''/etc/hostname'') AS f',false,false,'') AS x",
        "permission denied to set role",
    ),
    ("lab-db1", "SELECT pg_read_file('/etc/hostname') AS f", "permission denied for function pg_read_file"),
    ("lab-db1", "SELECT name FROM pg_ls_dir('.') AS name", "permission denied for function pg_ls_dir"),
    ("lab-db1", "SELECT pg_reload_conf() AS r", "permission denied for function pg_reload_conf"),
    ("lab-db1", "SELECT nextval('enterprises_id_seq') AS n", "permission denied for sequence|read-only transaction"),
    ("lab-db1", "DROP TABLE ratings", "refused by the database"),
    ("lab-db2", "SELECT name INTO/**/OUTFILE '/tmp/envcredit-escape.csv' FROM enterprises", "server files"),
    ("lab-db2", "SELECT LOAD_FILE/**/('/etc/hostname') AS f", "server files"),
    ("lab-db2", "DROP TABLE ratings", "refused by the database"),
]


@pytest.mark.parametrize(("host", "query", "reason"), ESCAPES, ids=[f"{h}-{i}" for i, (h, _, _) in enumerate(ESCAPES)])
def test_export_query_cannot_escape_its_account(
    tools: None, lab_archive: Path, exports: Path, host: str, query: str, reason: str
) -> None:
    before = checksums(host)
    rc, rec = opsctl(
        "export", "--limit", host, "-e", f"db_export_query={query}", "-e", f"db_transfer_export_dir={exports}"
    )
    assert rc == 1 and rec["status"] == "failed"
    (failure,) = [f for f in rec["failures"] if not f["ignored"]]
    assert failure["host"] == host and re.search(reason, failure["msg"]), failure
    assert checksums(host) == before
    assert not list(exports.rglob("*.csv"))
    if ENGINE[host] == "mariadb":
        assert on_host(host, ["test", "-e", "/tmp/envcredit-escape.csv"]).returncode != 0


def test_export_account_has_select_only(tools: None, lab_archive: Path, exports: Path) -> None:
    """After an export: the account exists with SELECT and nothing else, on both engines."""
    rc, rec = opsctl("export", "-e", "db_export_tables=ratings", "-e", f"db_transfer_export_dir={exports}")
    assert rc == 0, rec.get("failures")
    pg = sql(
        "lab-db1",
        "SELECT r.rolsuper, r.rolcreaterole, (SELECT count(*) FROM pg_auth_members m"
        " WHERE m.member = r.oid), has_table_privilege(r.oid, 'ratings', 'SELECT'),"
        " has_table_privilege(r.oid, 'ratings', 'INSERT')"
        " FROM pg_roles r WHERE r.rolname = 'envcredit_export'",
    )
    assert pg.split("|") == ["f", "f", "0", "t", "f"]
    grants = lines(sql("lab-db2", "SHOW GRANTS FOR 'envcredit_export'@'localhost'"))
    assert len(grants) == 2 and "FILE" not in " ".join(grants)
    assert grants[1] == "GRANT SELECT ON `envcredit`.* TO `envcredit_export`@`localhost`"
    # the password never reached the record (module arguments, stdout, events)
    password = vault_value("vault_lab_db_export_password")
    folder = lab_archive / rec["id"]
    for f in folder.iterdir():
        assert password not in f.read_text(encoding="utf-8", errors="replace"), f.name


GOOD = (
    "id,code,name,score,day,note\n"
    "1,E001,韶关市浈江区绿源环保科技有限公司,98.50,2026-03-01,\n"
    '2,E002,"乳源瑶族自治县东阳光化成箔有限公司, 第二分厂",75.00,2026-03-02,""\n'
    '3,E003,"名称含""引号""",,,"第一行\n第二行"\n'
    "4,E004,Ascii Name Ltd,0.25,2024-02-29,普通备注\n"
)


def test_import_good_csv_both_engines(scratch: str, exports: Path, tmp_path: Path, lab_archive: Path) -> None:
    src = tmp_path / "good.csv"
    src.write_text(GOOD, encoding="utf-8")
    rc, rec = opsctl("import", "--yes", "-e", f"db_import_file={src}", "-e", f"db_import_table={scratch}")
    assert rc == 0, rec.get("failures")
    for host in ENGINE:
        out = rec["outputs"]["import"][host]
        assert out["already_imported"] is False
        res = out["result"]
        assert res["rows"] == res["imported"] == 4 and res["validated"] is True
        assert res["file_sha256"] == hashlib.sha256(GOOD.encode()).hexdigest()
        assert res["table_backup"].startswith("/var/backups/envcredit-tables/envcredit.")
        assert f"-{rec['id']}" in res["table_backup"]
        on_host(host, ["test", "-s", res["table_backup"]]).check_returncode()
        assert sql(host, f"SELECT count(*) FROM {scratch} WHERE note IS NULL") == "1"
        assert sql(host, f"SELECT count(*) FROM {scratch} WHERE note = ''") == "1"
        assert sql(host, f"SELECT count(*) FROM {scratch} WHERE score IS NULL AND day IS NULL") == "1"
        assert sql(host, f"SELECT name FROM {scratch} WHERE id = 1") == "韶关市浈江区绿源环保科技有限公司"
    # The rows went in as the import account, whose grant on the table ended with the import:
    # a login with no privileges left, not a superuser, member of no role.
    pg = sql(
        "lab-db1",
        "SELECT r.rolsuper, (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid),"
        f" has_table_privilege(r.oid, '{scratch}', 'SELECT'),"
        f" has_table_privilege(r.oid, '{scratch}', 'INSERT'),"
        " has_table_privilege(r.oid, 'ratings', 'SELECT')"
        " FROM pg_roles r WHERE r.rolname = 'envcredit_import'",
    )
    assert pg.split("|") == ["f", "0", "f", "f", "f"]
    grants = lines(sql("lab-db2", "SHOW GRANTS FOR 'envcredit_import'@'localhost'"))
    assert len(grants) == 1 and grants[0].startswith("GRANT USAGE ON *.* TO `envcredit_import`@`localhost`"), grants
    assert vault_value("vault_lab_db_import_password") not in all_text_under(lab_archive / rec["id"])
    # Round trip: the export of the table is the imported file, byte for byte (NULL vs "" kept).
    rc, rec = opsctl("export", "-e", f"db_export_tables={scratch}", "-e", f"db_transfer_export_dir={exports}")
    assert rc == 0, rec.get("failures")
    for host in ENGINE:
        out = rec["outputs"]["export"][host]
        assert (Path(out["dir"]) / f"{scratch}.csv").read_text(encoding="utf-8") == GOOD
    # The same file again: recognised as imported already, nothing changes.
    before = {h: checksums(h, (scratch,)) for h in ENGINE}
    rc, rec = opsctl("import", "--yes", "-e", f"db_import_file={src}", "-e", f"db_import_table={scratch}")
    assert rc == 0, rec.get("failures")
    assert all(rec["outputs"]["import"][h]["already_imported"] for h in ENGINE)
    assert rec["changes"] == []
    assert {h: checksums(h, (scratch,)) for h in ENGINE} == before

    # The Excel workbook of the same table (issue 20): typed cells from the real engines, text
    # kept as text, NULL and "" both an empty cell (the one thing a workbook cannot tell apart).
    rc, rec = opsctl(
        "export",
        "-e",
        f"db_export_tables={scratch}",
        "-e",
        "db_export_format=xlsx",
        "-e",
        f"db_transfer_export_dir={exports}",
    )
    assert rc == 0, rec.get("failures")
    for host in ENGINE:
        sheet = openpyxl.load_workbook(Path(rec["outputs"]["export"][host]["dir"]) / f"{scratch}.xlsx").active
        assert sheet is not None and sheet.title == scratch and sheet.freeze_panes == "A2"
        rows = [list(r) for r in sheet.iter_rows(values_only=True)]
        assert rows[0] == ["id", "code", "name", "score", "day", "note"]
        assert rows[1][:4] == [1, "E001", "韶关市浈江区绿源环保科技有限公司", 98.5], host
        assert rows[1][4] == datetime(2026, 3, 1) and rows[1][5] is None and rows[2][5] is None
        assert rows[3][5] == "第一行\n第二行" and rows[4][4] == datetime(2024, 2, 29)

    # A GBK file from Excel on Chinese Windows, as an upsert by the unique code: one row
    # updated in place, one added, the others untouched.
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("id,code,name,score\n4,E004,韶关市曲江区更名企业,66.60\n5,E005,南雄市新企业,12.00\n".encode("gbk"))
    rc, rec = opsctl(
        "import", "--yes", "-e", f"db_import_file={gbk}", "-e", f"db_import_table={scratch}",
        "-e", "db_import_encoding=gbk", "-e", "db_import_mode=upsert", "-e", "db_import_key=code",
    )  # fmt: skip
    assert rc == 0, rec.get("failures")
    for host in ENGINE:
        assert lines(sql(host, f"SELECT name FROM {scratch} WHERE id >= 3 ORDER BY id")) == [
            '名称含"引号"',
            "韶关市曲江区更名企业",
            "南雄市新企业",
        ], host
        assert lines(sql(host, f"SELECT score FROM {scratch} WHERE id >= 4 ORDER BY id")) == ["66.60", "12.00"], host
        assert sql(host, f"SELECT count(*) FROM {scratch}") == "5"


# The kinds that depend on the live database (its columns, types, NOT NULL flags and existing
# keys as each engine reports them) and the encoding of a real file. The file-only checks
# (unknown column, a number that is not one, field count, duplicate key inside the file,
# quoting) are the same code without a database: tests/test_db_transfer_tool.py.
BAD = {
    "missing column": ("id,code\n5,E005\n", 1, "missing column(s) name"),
    "bad type": (
        "id,code,name,score,day\n5,E005,某企业,80,2026-03-01\n6,E006,某企业,80,昨天\n",
        3,
        "column 'day': '昨天' is not a date",
    ),
    "null in not null": ("id,code,name\n5,E005,\n", 2, "column 'name': NULL"),
    "duplicate key in table": ("id,code,name\n5,E005,甲\n6,E001,乙\n", 3, "refused by the database"),
}


@pytest.mark.parametrize("kind", [*BAD, "broken encoding"])
def test_malformed_csv_refused_table_unchanged(bad_target: str, lab_archive: Path, tmp_path: Path, kind: str) -> None:
    src = tmp_path / "bad.csv"
    if kind == "broken encoding":
        data = "id,code,name\n5,E005,甲\n".encode() + "6,E006,韶关".encode("gbk") + b"\n"
        line, reason = 3, "not valid UTF-8"
    else:
        text, line, reason = BAD[kind]
        data = text.encode()
    src.write_bytes(data)
    before = {h: checksums(h, (bad_target,)) for h in ENGINE}
    rc, rec = opsctl("import", "--yes", "-e", f"db_import_file={src}", "-e", f"db_import_table={bad_target}")
    assert rc != 0
    failed = {f["host"]: f["msg"] for f in rec["failures"]}
    assert set(failed) == set(ENGINE), failed
    for host, msg in failed.items():
        assert f"line {line}: " in msg and reason in msg, (host, msg)
        assert "Back up the table" not in " ".join(c["task"] for c in rec["changes"])
        assert checksums(host, (bad_target,)) == before[host]
        assert bad_target in before[host]
        assert sql(host, f"SELECT count(*) FROM {bad_target}") == "1"
