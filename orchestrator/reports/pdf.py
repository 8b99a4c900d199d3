"""A report's HTML as an A4 PDF through headless Chromium (what gets filed).

The HTML sets its own page (``@page { size: A4 }``) and page numbers (``@page`` margin
boxes with ``counter(page)``/``counter(pages)``); Chromium prints it with its own header and
footer turned off. The browser is ``$OPSCTL_CHROMIUM``, else the first of ``chromium``,
``chromium-browser``, ``google-chrome`` on the PATH; none found is a clear error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import OpsError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT_S = 120


class PdfError(OpsError):
    """No browser, or the browser did not produce the PDF."""


def browser() -> str:
    """The Chromium to print with."""
    named = os.environ.get("OPSCTL_CHROMIUM")
    if named:
        found = shutil.which(named)
        if found is None:
            raise PdfError(f"OPSCTL_CHROMIUM={named!r} is not an executable browser")
        return found
    for name in BROWSERS:
        found = shutil.which(name)
        if found is not None:
            return found
    raise PdfError(
        "PDF output needs headless Chromium: install the chromium package or set OPSCTL_CHROMIUM "
        "(or write --format html and print it from a browser)"
    )


def html_to_pdf(html: str) -> bytes:
    """The PDF of ``html`` (A4, page numbers from the page's CSS), printed by headless Chromium
    from a private temporary directory; no network is needed (reports embed every asset)."""
    exe = browser()
    with tempfile.TemporaryDirectory(prefix="opsctl-pdf-") as tmp:
        src, out = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        src.write_text(html, encoding="utf-8")
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-pdf-header-footer",
            f"--user-data-dir={Path(tmp) / 'profile'}",
            f"--print-to-pdf={out}",
            src.as_uri(),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PdfError(f"headless Chromium could not print the report: {exc}") from exc
        if not out.is_file() or out.stat().st_size == 0:
            tail = (proc.stderr or "").strip().splitlines()[-3:]
            raise PdfError(f"headless Chromium wrote no PDF (exit {proc.returncode}): {' | '.join(tail) or '-'}")
        return out.read_bytes()
