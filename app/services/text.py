"""Rules for the one-line text a user names things with (datasets, networks, sweeps, keys)."""

from __future__ import annotations

import re

# NUL, tab, newline and the other C0 controls, and DEL: a name is one line of text, and
# PostgreSQL's text columns refuse NUL.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def has_control_character(text: str) -> bool:
    return CONTROL.search(text) is not None
