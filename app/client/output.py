"""What the client prints: results on stdout (ids, tables, JSON), notes on stderr.

Created objects print their id alone on stdout (``DS=$(backprop datasets upload f.csv)``
works) and a one-line description on stderr; ``--json`` prints the server's JSON instead.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# A list column: its header and how to render one item's cell.
Column = tuple[str, Callable[[Mapping[str, Any]], str]]

# Record values longer than this print summarised (the full value: --json).
RECORD_VALUE_CHARS = 100


def note(message: str) -> None:
    """A line for the person at the terminal, on stderr."""
    print(message, file=sys.stderr)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def number(value: Any) -> str:
    """A metric as 4 significant digits; ``-`` when absent."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-" if value is None else str(value)
    return f"{value:.4g}"


def when(value: Any) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM:SS``."""
    return str(value)[:19].replace("T", " ") if value else "-"


def table(items: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> None:
    """Aligned columns, one line per item, headed by the column names."""
    header = [name for name, _ in columns]
    rows = [[cell(item) for _, cell in columns] for item in items]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def page(body: Mapping[str, Any], columns: Sequence[Column], *, empty: str) -> None:
    """A page of a list (``items``, ``total``, ``limit``, ``offset``) as a table."""
    items = body["items"]
    if not items:
        note(empty if body["total"] == 0 else f"(nothing at offset {body['offset']})")
        return
    table(items, columns)
    shown_to = body["offset"] + len(items)
    if shown_to < body["total"] or body["offset"]:
        note(
            f"({body['offset'] + 1}-{shown_to} of {body['total']}; "
            f"--offset {shown_to} for the next page)"
        )


def record(value: Mapping[str, Any], indent: str = "") -> None:
    """One object as ``key: value`` lines; nested objects indented, long lists summarised."""
    width = max((len(key) for key in value), default=0)
    for key, item in value.items():
        label = f"{indent}{key + ':':<{width + 1}}"
        if isinstance(item, dict) and item and len(_compact(item)) > RECORD_VALUE_CHARS:
            print(label.rstrip())
            record(item, indent + "  ")
            continue
        text = item if isinstance(item, str) else _compact(item)
        if isinstance(item, list) and len(text) > RECORD_VALUE_CHARS:
            text = f"[{len(item)} items; --json shows them]"
        print(f"{label} {text}".rstrip())


def _compact(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return number(value)
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=False)
