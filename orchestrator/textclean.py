"""Free text an operator types (ticket, reason, incident id, notes) made safe to store and print.

A change record is printed on terminals and read by auditors: a ticket carrying an
ANSI escape could repaint the line it is shown on, a ``\\r`` could hide what came
before it. :func:`clean_text` removes

* ANSI/VT escape sequences (CSI ``ESC [ ... final``, OSC ``ESC ] ... BEL|ST``, two-byte
  ``ESC x``, and the 8-bit CSI ``\\x9b``) as a whole, not only their ESC byte;
* every other C0 control (``\\x00``-``\\x1f``), DEL and C1 control (``\\x80``-``\\x9f``):
  line breaks and tabs become a space (kept as line breaks with ``multiline=True``);
* the Unicode bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069),
  which reorder what a reader sees;

and strips the ends. No control character is kept, whatever the field.
"""

from __future__ import annotations

import re

_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erase line
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window title, hyperlinks
    r"|\x1b[ -/]*[0-~]"  # other ESC sequences (two or three bytes)
)
_LINE_BREAKS = re.compile(r"\r\n|[\r\n\v\f\x85\u2028\u2029]")
_BREAKS = re.compile(r"\r\n|[\r\n\t\v\f\x85\u2028\u2029]")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _scrub(line: str) -> str:
    """One line without escape sequences and control characters; breaks and tabs become spaces."""
    return _CONTROLS.sub("", _BREAKS.sub(" ", _ESCAPES.sub("", line)))


def clean_text(value: str, *, multiline: bool = False) -> str:
    """``value`` without escape sequences and control characters (see the module), ends stripped."""
    if multiline:
        lines = _LINE_BREAKS.split(_ESCAPES.sub("", value))
        return "\n".join(_scrub(line).rstrip() for line in lines).strip()
    return _scrub(value).strip()


def clean_optional(value: str | None, *, multiline: bool = False) -> str | None:
    """:func:`clean_text` of ``value``; ``None`` stays ``None`` (a blank result is kept as ``""``,
    so callers can refuse it)."""
    return None if value is None else clean_text(value, multiline=multiline)


def clean_lines(text: str) -> str:
    """Every line of ``text`` scrubbed, indentation and line breaks kept (for printing a report)."""
    return "\n".join(_scrub(line).rstrip() for line in _LINE_BREAKS.split(_ESCAPES.sub("", text)))


def has_controls(value: str) -> bool:
    """True when ``value`` holds an escape sequence or a control character."""
    return bool(_ESCAPES.search(value) or _CONTROLS.search(value))
