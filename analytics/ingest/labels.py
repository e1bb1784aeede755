"""The churn label: which columns can be one, and which value of it means churn."""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics.ingest.aliases import NEGATIVE_WORDS, POSITIVE_STEMS, POSITIVE_WORDS
from analytics.ingest.errors import LabelError
from analytics.ingest.messages import named_column
from analytics.ingest.parse import parse_numbers
from analytics.ingest.views import Dates, Numbers, Text, View, as_text


def _label_class(text: str) -> int | None:
    """1 = churned, 0 = stayed, None = cannot tell (a single value in isolation)."""
    number = parse_numbers(pd.Series([text], dtype="str"))[0]
    if not np.isnan(number):
        return {1.0: 1, 0.0: 0}.get(float(number))
    words = re.findall(r"[a-z0-9]+", text.lower())
    if any(w in NEGATIVE_WORDS or w == "0" for w in words):
        return 0
    if any(w in POSITIVE_WORDS or w == "1" or w.startswith(POSITIVE_STEMS) for w in words):
        return 1
    return None


def _label_keys(values: pd.Index) -> pd.Series:
    """One key per distinct label spelling: numbers by value, text case-folded."""
    numbers = parse_numbers(pd.Series(values, dtype="str"))
    text = pd.Series(values, dtype="str").str.casefold()
    as_number = pd.Series([f"#{x!r}" for x in numbers], dtype="str")
    return as_number.where(~np.isnan(numbers), text)


def _label_groups(view: Text) -> tuple[pd.Series, pd.Series]:
    """(key per distinct value, cell count per key)."""
    keys = _label_keys(view.values)
    counts = pd.Series(view.counts()).groupby(keys.to_numpy()).sum()
    return keys, counts


def is_binary(view: View) -> bool:
    if isinstance(view, Numbers):
        return np.unique(view.values[~view.missing]).size == 2
    if isinstance(view, Dates):
        return False
    # case variants ("Yes", "yes") merge into one key, but never twenty of them
    return 2 <= len(view.values) <= 20 and _label_groups(view)[1].size == 2


def decode_labels(view: View, mapping: Mapping[str, str]) -> np.ndarray:
    """int8 per row: 1 churned, 0 not, -1 blank."""
    text = as_text(view)
    keys, counts = _label_groups(text)
    where = named_column(C.CHURNED, mapping)
    first: dict[str, str] = {}  # one spelling per key, for messages
    for value, key in zip(text.values, keys, strict=True):
        first.setdefault(key, value)
    ranked = counts.sort_values(ascending=False, kind="stable")
    found = ", ".join(f"'{first[k]}' ({n} row{'s' if n != 1 else ''})" for k, n in ranked.items())
    if counts.size > 2:
        raise LabelError(
            f"{where} has {counts.size} distinct values, expected two (churned / not): "
            f"{found}; recode it or choose another column with --map churned=<column>"
        )
    classes = {k: _label_class(first[k]) for k in counts.index}
    known = {k: v for k, v in classes.items() if v is not None}
    if len(classes) == 2 and len(known) == 1:  # the other value is the complement
        ((k_known, v_known),) = known.items()
        classes = {k: (v_known if k == k_known else 1 - v_known) for k in classes}
    if None in classes.values() or (len(classes) == 2 and len(set(classes.values())) < 2):
        raise LabelError(
            f"cannot tell which value of {where} means churn: {found}; recode it as 1/0 or Yes/No"
        )
    per_value = np.array([classes[k] for k in keys] + [-1], dtype=np.int8)
    return per_value[text.codes]
