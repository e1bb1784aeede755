"""Plain data out of pandas and numpy: what every service returns, JSON-ready as it is.

The API writes these values as they are and the dashboard draws its figures from them, so both
show the same numbers for the same filters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime

import numpy as np
import pandas as pd


def plain(value):
    """JSON-ready: numpy scalars to Python, NaN/inf/NaT to None, dates to ISO text."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    return str(value)


def records(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> list[dict]:
    """Rows as dicts of plain values (NaN -> None), only `columns` (those present) if given."""
    if columns is not None:
        frame = frame[[c for c in dict.fromkeys(columns) if c in frame.columns]]
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    for row in rows:
        for key, val in row.items():
            if isinstance(val, np.generic):
                val = val.item()
            if isinstance(val, float) and not math.isfinite(val):
                val = None
            elif isinstance(val, datetime | date | pd.Timestamp):
                val = val.isoformat()
            row[key] = val
    return rows


def month_text(values) -> list[str]:
    """Month starts as 'YYYY-MM', the API's month format."""
    return [pd.Timestamp(v).strftime("%Y-%m") for v in values]
