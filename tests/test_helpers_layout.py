"""Test helpers live in tests/helpers/ and are imported from there, never from a conftest."""

from __future__ import annotations

import re

from helpers.common import REPO

TESTS = REPO / "tests"


def test_tests_import_helpers_not_conftest() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for path in sorted(TESTS.rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.match(r"\s*(from|import)\s+(conftest\w*|os_lab_helpers)\b", line)
    ]
    assert not offenders, f"import test helpers from tests/helpers/ (helpers.common, helpers.lab...): {offenders}"


def test_each_helper_is_defined_once() -> None:
    helpers = {
        m.group(1)
        for path in (TESTS / "helpers").glob("*.py")
        for m in re.finditer(r"^def (\w+)\(", path.read_text(encoding="utf-8"), re.M)
    }
    again = [
        f"{path.relative_to(REPO)}: {m.group(1)}"
        for path in sorted(TESTS.glob("*.py"))
        for m in re.finditer(r"^def (\w+)\(", path.read_text(encoding="utf-8"), re.M)
        if m.group(1) in helpers
    ]
    assert not again, f"defined again outside tests/helpers/ (import it instead): {again}"
