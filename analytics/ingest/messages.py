"""Pieces of the one-line messages: lists, did-you-mean, row references, column names."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

import numpy as np

EXAMPLES = 5  # how many ids / rows / values a message shows


def listing(items: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def suggest(name: str, choices: Sequence[str]) -> str:
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.5)
    return f"; did you mean '{lowered[close[0]]}'?" if close else ""


def rows_text(positions: np.ndarray, first_line: int | None) -> str:
    """'lines 5, 9' (file lines, when the reader knows them) or 'rows 4, 8' (1-based)."""
    shown = [int(p) for p in positions[:EXAMPLES]]
    more = ", ..." if len(positions) > EXAMPLES else ""
    if first_line is not None:
        return "lines " + ", ".join(str(p + first_line) for p in shown) + more
    return "rows " + ", ".join(str(p + 1) for p in shown) + more


def named_column(canonical: str, mapping: Mapping[str, str]) -> str:
    source = mapping.get(canonical)
    return f"{canonical} (column '{source}')" if source and source != canonical else canonical


def note_coerced(name, examples, n: int, coercions: dict[str, int], notes: list[str]) -> None:
    if n:
        coercions[name] = coercions.get(name, 0) + n
        shown = listing([repr(v) for v in examples], 3)
        notes.append(f"{name}: {n} cells that are not numbers became missing (e.g. {shown})")
