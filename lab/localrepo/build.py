#!/usr/bin/env python3
"""Build the lab's local apt repository with dpkg-deb (no internet, no dpkg-dev needed).

    lab/localrepo/build.py [OUT]      (default: var/localrepo under the repository)

Packages (Architecture: all), each installing /usr/share/envcredit/<name>.version:

* envcredit-agent        1.0 in suite bookworm-envcredit; 1.1 in bookworm-envcredit-security
                         (a security update: Label/Suite say "security")
* envcredit-kernel-stub  1.0 and 1.1 in bookworm-envcredit; 1.1's postinst writes
                         /var/run/reboot-required (like a kernel update)
* envcredit-held         1.0 and 1.1 in bookworm-envcredit; the lab holds it at 1.0

The Packages and Release indexes are written here in Python (dpkg-scanpackages and
apt-ftparchive are not needed). The output is deterministic: rebuilding an unchanged
repository leaves every file byte-for-byte the same (SOURCE_DATE_EPOCH, fixed mtimes),
so copying it to the hosts again changes nothing. Also writes ``<OUT>.tar`` (one file to
copy to the hosts). Prints "changed" or "unchanged".
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

EPOCH = 1767225600  # 2026-01-01T00:00:00Z: fixed timestamps for reproducible .debs
ARCHES = ("amd64", "arm64")
SUITES = {
    "bookworm-envcredit": {"Origin": "envcredit", "Label": "envcredit"},
    "bookworm-envcredit-security": {"Origin": "envcredit", "Label": "envcredit-security"},
}
REBOOT_POSTINST = """#!/bin/sh
set -e
# Like a kernel update: the new code runs only after a reboot.
if [ "$1" = configure ]; then
    touch /var/run/reboot-required
    grep -qx envcredit-kernel-stub /var/run/reboot-required.pkgs 2>/dev/null \\
        || echo envcredit-kernel-stub >> /var/run/reboot-required.pkgs
fi
exit 0
"""
# (package, version, suite, description, postinst or None)
PACKAGES = [
    ("envcredit-agent", "1.0", "bookworm-envcredit", "Environmental credit monitoring agent", None),
    (
        "envcredit-agent",
        "1.1",
        "bookworm-envcredit-security",
        "Environmental credit monitoring agent (security fix)",
        None,
    ),
    ("envcredit-kernel-stub", "1.0", "bookworm-envcredit", "Stand-in for a kernel package", None),
    (
        "envcredit-kernel-stub",
        "1.1",
        "bookworm-envcredit",
        "Stand-in for a kernel package (needs a reboot)",
        REBOOT_POSTINST,
    ),
    ("envcredit-held", "1.0", "bookworm-envcredit", "A package the operators hold at its version", None),
    ("envcredit-held", "1.1", "bookworm-envcredit", "A package the operators hold at its version", None),
]


def build_deb(work: Path, pool: Path, name: str, version: str, desc: str, postinst: str | None) -> Path:
    root = work / f"{name}_{version}"
    (root / "DEBIAN").mkdir(parents=True)
    share = root / "usr" / "share" / "envcredit"
    share.mkdir(parents=True)
    (share / f"{name}.version").write_text(f"{version}\n", encoding="utf-8")
    control = (
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        f"Maintainer: envcredit-ops contractor team <ops@example.invalid>\n"
        f"Section: admin\nPriority: optional\nDescription: {desc}\n"
        f" Built by lab/localrepo/build.py for the lab's patching tests.\n"
    )
    (root / "DEBIAN" / "control").write_text(control, encoding="utf-8")
    if postinst:
        (root / "DEBIAN" / "postinst").write_text(postinst, encoding="utf-8")
        (root / "DEBIAN" / "postinst").chmod(0o755)
    for path in [root, *root.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
        elif path.name != "postinst":
            path.chmod(0o644)
        os.utime(path, (EPOCH, EPOCH))
    deb = pool / f"{name}_{version}_all.deb"
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(EPOCH))
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return deb


def stanza(deb: Path, rel: str) -> str:
    control = subprocess.run(["dpkg-deb", "-f", str(deb)], check=True, capture_output=True, text=True).stdout.rstrip(
        "\n"
    )
    data = deb.read_bytes()
    return (
        f"{control}\nFilename: {rel}\nSize: {len(data)}\n"
        f"MD5sum: {hashlib.md5(data).hexdigest()}\nSHA256: {hashlib.sha256(data).hexdigest()}\n"
    )


def write_suite(dist: Path, suite: str, meta: dict[str, str], stanzas: list[str]) -> None:
    files: dict[str, bytes] = {}
    text = "\n".join(stanzas).encode()
    for arch in ARCHES:
        files[f"main/binary-{arch}/Packages"] = text
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=EPOCH) as gz:
            gz.write(text)
        files[f"main/binary-{arch}/Packages.gz"] = buf.getvalue()
    for rel, data in files.items():
        (dist / rel).parent.mkdir(parents=True, exist_ok=True)
        (dist / rel).write_bytes(data)
    lines = [
        f"Origin: {meta['Origin']}",
        f"Label: {meta['Label']}",
        f"Suite: {suite}",
        f"Codename: {suite}",
        "Date: Thu, 01 Jan 2026 00:00:00 UTC",
        f"Architectures: {' '.join(ARCHES)}",
        "Components: main",
        "Description: envcredit lab repository",
        "MD5Sum:",
    ]
    lines += [f" {hashlib.md5(d).hexdigest()} {len(d):>8} {r}" for r, d in sorted(files.items())]
    lines.append("SHA256:")
    lines += [f" {hashlib.sha256(d).hexdigest()} {len(d):>8} {r}" for r, d in sorted(files.items())]
    (dist / "Release").write_text("\n".join(lines) + "\n", encoding="utf-8")


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    if root.is_dir():
        for p in sorted(root.rglob("*")):
            if p.is_file():
                h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def build(out: Path) -> bool:
    before = tree_digest(out)
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / "repo"
        pool = stage / "pool" / "main"
        pool.mkdir(parents=True)
        by_suite: dict[str, list[str]] = {s: [] for s in SUITES}
        for name, version, suite, desc, postinst in PACKAGES:
            deb = build_deb(Path(tmp) / "src", pool, name, version, desc, postinst)
            by_suite[suite].append(stanza(deb, f"pool/main/{deb.name}"))
        for suite, meta in SUITES.items():
            write_suite(stage / "dists" / suite, suite, meta, by_suite[suite])
        for p in [stage, *stage.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        if tree_digest(stage) != before:
            if out.exists():
                shutil.rmtree(out)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(stage, out)
            return True
    return False


def write_tarball(out: Path) -> bool:
    """``<out>.tar`` beside the tree (fixed owner and times: byte-identical when the tree is)."""
    tar_path = out.parent / (out.name + ".tar")
    tmp = tar_path.with_suffix(".tar.part")
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        for p in sorted(out.rglob("*")):
            info = tar.gettarinfo(str(p), arcname=str(p.relative_to(out)))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = EPOCH
            if p.is_file():
                with p.open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    if tar_path.exists() and tar_path.read_bytes() == tmp.read_bytes():
        tmp.unlink()
        return False
    tmp.replace(tar_path)
    return True


def main() -> int:
    repo_root = Path(__file__).resolve().parents[2]
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else repo_root / "var" / "localrepo"
    changed = build(out.resolve())
    changed = write_tarball(out.resolve()) or changed
    print("changed" if changed else "unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
