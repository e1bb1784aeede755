"""Sort, filter and page a customer list on the server, so only one page reaches the client.

The conditions are plain tuples; the dashboard translates AG Grid's sort and filter models into
them and the API its query parameters, so both page the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analytics import budget

TEXT_OPS = {"contains", "notContains", "equals", "notEqual", "startsWith", "endsWith"}
NUMBER_OPS = {
    "equals",
    "notEqual",
    "lessThan",
    "lessThanOrEqual",
    "greaterThan",
    "greaterThanOrEqual",
    "inRange",
}
BLANK_OPS = {"blank", "notBlank"}


class PagingError(ValueError):
    """A sort or filter names an unknown column or operation."""


@dataclass(frozen=True)
class Condition:
    column: str
    op: str
    value: object = None
    value_to: object = None  # upper bound for inRange


def _condition_mask(frame: pd.DataFrame, cond: Condition) -> np.ndarray:
    if cond.column not in frame.columns:
        raise PagingError(f"unknown column {cond.column!r}")
    series = frame[cond.column]
    if cond.op in BLANK_OPS:
        blank = series.isna().to_numpy()
        return blank if cond.op == "blank" else ~blank
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        if cond.op not in NUMBER_OPS:
            raise PagingError(f"{cond.column}: {cond.op!r} does not apply to numbers")
        try:
            x = float(cond.value)
            hi = float(cond.value_to) if cond.op == "inRange" else None
        except (TypeError, ValueError):
            raise PagingError(f"{cond.column}: expected a number, got {cond.value!r}") from None
        v = series.to_numpy(dtype=float, na_value=np.nan)
        ops = {
            "equals": v == x,
            "notEqual": v != x,
            "lessThan": v < x,
            "lessThanOrEqual": v <= x,
            "greaterThan": v > x,
            "greaterThanOrEqual": v >= x,
        }
        return (v >= x) & (v <= hi) if cond.op == "inRange" else ops[cond.op]
    if cond.op not in TEXT_OPS:
        raise PagingError(f"{cond.column}: {cond.op!r} does not apply to text")
    text = series.astype("string").str.casefold()
    needle = str(cond.value if cond.value is not None else "").casefold()
    result = {
        "contains": lambda: text.str.contains(needle, regex=False),
        "notContains": lambda: ~text.str.contains(needle, regex=False),
        "equals": lambda: text == needle,
        "notEqual": lambda: text != needle,
        "startsWith": lambda: text.str.startswith(needle),
        "endsWith": lambda: text.str.endswith(needle),
    }[cond.op]()
    return result.to_numpy(dtype=bool, na_value=cond.op in {"notContains", "notEqual"})


def select(
    frame: pd.DataFrame,
    *,
    conditions: Sequence[Condition | tuple[Condition, ...]] = (),
    sort: Sequence[tuple[str, bool]] = (),
) -> pd.DataFrame:
    """Rows matching every condition (a tuple of conditions matches when any of them does),
    sorted by (column, ascending) pairs, stable."""
    keep = np.ones(len(frame), dtype=bool)
    for cond in conditions:
        budget.check()  # the number of conditions is the client's
        if isinstance(cond, tuple):
            either = np.zeros(len(frame), dtype=bool)
            for alternative in cond:
                budget.check()
                either |= _condition_mask(frame, alternative)
            keep &= either
        else:
            keep &= _condition_mask(frame, cond)
    out = frame[keep] if not keep.all() else frame
    if sort:
        for column, _ in sort:
            if column not in frame.columns:
                raise PagingError(f"cannot sort by unknown column {column!r}")
        out = out.sort_values(
            [c for c, _ in sort],
            ascending=[a for _, a in sort],
            kind="stable",
            na_position="last",
        )
    return out


def page(frame: pd.DataFrame, start: int, end: int) -> tuple[pd.DataFrame, int]:
    """Rows [start, end) and the total count."""
    start = max(0, int(start))
    end = max(start, int(end))
    return frame.iloc[start:end], len(frame)


def _from_item(column: str, item: dict) -> Condition:
    return Condition(column, item.get("type", "contains"), item.get("filter"), item.get("filterTo"))


def from_ag_grid(sort_model, filter_model) -> tuple[list[tuple[str, bool]], list]:
    """AG Grid's sortModel / filterModel (infinite row model) -> sort pairs and conditions.

    A combined filter ({"operator": "AND"|"OR", "conditions": [...]}) becomes several
    conditions (AND) or one tuple of alternatives (OR).
    """
    sort = [(s["colId"], s.get("sort") != "desc") for s in sort_model or [] if "colId" in s]
    conditions: list = []
    for column, model in (filter_model or {}).items():
        if not isinstance(model, dict):
            raise PagingError(f"{column}: malformed filter")
        parts = model.get("conditions")
        if not parts:
            conditions.append(_from_item(column, model))
        elif model.get("operator", "AND") == "OR":
            conditions.append(tuple(_from_item(column, item) for item in parts))
        else:
            conditions.extend(_from_item(column, item) for item in parts)
    return sort, conditions
