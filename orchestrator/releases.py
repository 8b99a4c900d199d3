"""Application releases: building the artifact, and which version runs where.

A release is ``envcredit-<version>.tar.gz`` (holding ``envcredit-<version>/``:
the files of ``app/`` plus a ``VERSION`` file) and ``envcredit-<version>.tar.gz.sha256``
(``<hex>  <file name>``, the format ``sha256sum -c`` reads). The build is
reproducible: sorted names, fixed owner and times.

Which version runs on which host comes from the change records: the newest
record of an operation tagged ``release`` in the catalog (``site-app``, ``deploy``, ``rollback``)
that reported the host under its ``deploy`` output wins.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import paths
from .archive import Archive
from .errors import BadInput
from .operations import tagged

VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$")
_SKIP = {"__pycache__", ".pytest_cache"}


def releases_dir() -> Path:
    return paths.data_dir() / "releases"


def artifact_name(version: str) -> str:
    return f"envcredit-{version}.tar.gz"


def check_version(version: str) -> str:
    if not VERSION_RE.match(version):
        raise BadInput(f"bad release version {version!r}: letters, digits, '.', '_', '+', '-' (at most 64)")
    return version


def _files(src: Path) -> list[Path]:
    out: list[Path] = []
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src)
        if any(part in _SKIP or part.startswith(".") for part in rel.parts) or p.suffix == ".pyc":
            continue
        if p.is_file():
            out.append(p)
    return out


@dataclass(frozen=True)
class BuiltRelease:
    version: str
    tarball: Path
    sha256: str

    def as_dict(self) -> dict[str, str]:
        return {"version": self.version, "tarball": str(self.tarball), "sha256": self.sha256}


def build_release(version: str, src: Path | None = None, out_dir: Path | None = None) -> BuiltRelease:
    """Build ``envcredit-<version>.tar.gz`` and its ``.sha256`` from ``src`` (default ``app/``)."""
    check_version(version)
    src = (src or paths.repo_root() / "app").resolve()
    if not (src / "envcredit_app.py").is_file():
        raise BadInput(f"{src} is not the application source (no envcredit_app.py)")
    out_dir = out_dir or releases_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    top = f"envcredit-{version}"
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:

            def add(name: str, data: bytes, mode: int) -> None:
                info = tarfile.TarInfo(f"{top}/{name}")
                info.size, info.mode, info.mtime = len(data), mode, 0
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                tar.addfile(info, io.BytesIO(data))

            add("VERSION", f"{version}\n".encode(), 0o644)
            for f in _files(src):
                rel = f.relative_to(src).as_posix()
                if rel == "VERSION":
                    continue
                add(rel, f.read_bytes(), 0o755 if f.name == "envcredit_app.py" else 0o644)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    tarball = out_dir / artifact_name(version)
    tmp = tarball.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(tarball)
    (out_dir / (artifact_name(version) + ".sha256")).write_text(f"{digest}  {tarball.name}\n", encoding="utf-8")
    return BuiltRelease(version, tarball, digest)


def available(out_dir: Path | None = None) -> list[dict[str, Any]]:
    """Artifacts on the controller, with whether their checksum file matches."""
    out_dir = out_dir or releases_dir()
    rows: list[dict[str, Any]] = []
    for tarball in sorted(out_dir.glob("envcredit-*.tar.gz")):
        version = tarball.name[len("envcredit-") : -len(".tar.gz")]
        sumfile = tarball.with_name(tarball.name + ".sha256")
        expected = sumfile.read_text(encoding="utf-8").split()[0] if sumfile.is_file() else None
        actual = hashlib.sha256(tarball.read_bytes()).hexdigest()
        rows.append({"version": version, "tarball": str(tarball), "sha256": actual, "verified": expected == actual})
    return rows


def running_versions(env: str, archive: Archive | None = None) -> dict[str, dict[str, Any]]:
    """Per host: the version running, the previous one, state, and the record that said so."""
    archive = archive or Archive(paths.archive_dir())
    hosts: dict[str, dict[str, Any]] = {}
    deploying = tagged("release")
    for row in archive.list(env=env):
        if row.get("operation") not in deploying:
            continue
        record = archive.get(row["id"])
        deploy = (record.get("outputs") or {}).get("deploy") or {}
        if not isinstance(deploy, dict):
            continue
        for host, info in deploy.items():
            if host in hosts or not isinstance(info, dict) or not info.get("running"):
                continue
            hosts[host] = {
                "running": info.get("running"),
                "previous": info.get("previous"),
                "state": info.get("state"),
                "record": record.get("id"),
                "operation": record.get("operation"),
                "status": record.get("status"),
                "at": record.get("ended") or record.get("started"),
            }
    return dict(sorted(hosts.items()))
