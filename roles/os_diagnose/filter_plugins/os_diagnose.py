"""Filters of the os_diagnose role."""

from __future__ import annotations


def os_diagnose_line(finding):
    """One printable line of a finding: SEVERITY rule target: message -> action."""
    return "%-8s %s %s: %s -> %s" % (
        finding["severity"].upper(),
        finding["rule"],
        finding["target"],
        finding["message"],
        finding["action"],
    )


class FilterModule:
    def filters(self):
        return {"os_diagnose_line": os_diagnose_line}
