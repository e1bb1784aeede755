"""Every other column: a numeric or categorical feature, or dropped with the reason why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics.ingest.aliases import EXCLUSIVE_CANONICAL, PERSONAL, alias_rank, norm
from analytics.ingest.messages import note_coerced
from analytics.ingest.parse import parse_dates, parse_numbers
from analytics.ingest.views import Dates, Numbers, Text, View, format_number

NUMERIC_SHARE = 0.95  # a column is numeric when this share of its filled cells are numbers
ID_LIKE_LEVELS = 50  # text columns with more distinct values than this ...
ID_LIKE_RATIO = 0.5  # ... and more than this share of rows distinct identify rows
ROW_NUMBER_MIN_ROWS = 10  # below this a 1..n column may be a genuine feature


# Look-alikes of the label and of churn_date are label leaks: analytics.leaks names them, and
# the user may keep one (--keep); the other canonical look-alikes are never features.
LEAK_CANONICAL = (C.CHURNED, C.CHURN_DATE)


def shadow_reason(column: str, mapping: Mapping[str, str]) -> str | None:
    """Why a column that looks like a canonical/scored column must not be a feature."""
    key = norm(column)
    if column in C.SCORED_COLUMNS:
        return "an output of this dashboard's scoring, not an input"
    for canonical in C.CANONICAL:
        if canonical in LEAK_CANONICAL:
            continue
        if key == norm(canonical):
            taken = mapping.get(canonical)
            return f"named like {canonical}" + (f", which is taken from '{taken}'" if taken else "")
        if canonical in EXCLUSIVE_CANONICAL and key in alias_rank(canonical):
            taken = mapping.get(canonical)
            where = f"taken from '{taken}'" if taken else "not usable as such"
            return f"looks like another {canonical} column ({canonical} is {where})"
    return None


def _is_row_number(values: np.ndarray, column: str) -> bool:
    n = len(values)
    named = norm(column) in {"rownumber", "rownum", "row", "rowid", "index", "unnamed0", "sno"}
    if n < (2 if named else ROW_NUMBER_MIN_ROWS) or np.isnan(values).any():
        return False
    if named:
        # A filtered export or dropped rows leave gaps: any distinct whole numbers in file order.
        whole = np.array_equal(values, np.floor(values))
        return bool(whole and np.all(np.diff(values) > 0))
    start = values.min()
    if start not in (0.0, 1.0) or values.max() - start != n - 1:
        return False
    return bool(np.array_equal(np.sort(values), np.arange(start, start + n)))


@dataclass(frozen=True)
class Feature:
    values: pd.Series | None  # None when dropped
    kind: str  # "numeric" | "categorical" | reason it was dropped


def _numeric_feature(values: np.ndarray, column: str) -> Feature:
    filled = values[~np.isnan(values)]
    if filled.size == 0:
        return Feature(None, "empty: no values")
    if filled.size == values.size and np.unique(filled).size == 1:
        return Feature(None, f"constant: every row is {format_number(filled[0])}")
    if _is_row_number(values, column):
        return Feature(None, "row number, not a customer attribute")
    return Feature(pd.Series(values, dtype=np.float64), "numeric")


def _text_feature(
    text: Text, column: str, decimal, coercions: dict[str, int], notes: list[str]
) -> Feature:
    counts = text.counts()
    n_rows, levels = len(text.codes), len(text.values)
    if levels == 0:
        return Feature(None, "empty: no values")
    if levels == 1 and counts[0] == n_rows:
        return Feature(None, f"constant: every row is '{text.values[0]}'")
    numbers = parse_numbers(pd.Series(text.values, dtype="str"), decimal)
    ok = ~np.isnan(numbers)
    if counts[ok].sum() >= NUMERIC_SHARE * counts.sum():
        note_coerced(column, text.values[~ok], int(counts[~ok].sum()), coercions, notes)
        return _numeric_feature(np.append(numbers, np.nan)[text.codes], column)
    if norm(column) in PERSONAL:
        return Feature(None, "personal data (name / contact), not a customer attribute")
    if levels > ID_LIKE_LEVELS and levels > ID_LIKE_RATIO * n_rows:
        return Feature(None, f"identifier-like: {levels} distinct values in {n_rows} rows")
    if _looks_like_dates(text.values):
        return Feature(
            None,
            "dates are not features (map it with --map signup_date=... or --map churn_date=...)",
        )
    categories = pd.CategoricalDtype(pd.Index(text.values, dtype="str"))
    values = pd.Series(pd.Categorical.from_codes(text.codes, dtype=categories))
    return Feature(values, "categorical")


def _looks_like_dates(values: pd.Index) -> bool:
    sample = pd.Series(values[:1000], dtype="str")
    if not sample.str.contains(r"\d", regex=True).all():
        return False
    return bool((~np.isnat(parse_dates(sample)[0])).mean() >= NUMERIC_SHARE)


def as_feature(view: View, column: str, decimal, coercions, notes) -> Feature:
    if isinstance(view, Dates):
        return Feature(
            None,
            "dates are not features (map it with --map signup_date=... or --map churn_date=...)",
        )
    if isinstance(view, Numbers):
        return _numeric_feature(view.values, column)
    return _text_feature(view, column, decimal, coercions, notes)
