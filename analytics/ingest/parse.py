"""Numbers and dates from text, vectorised over a column's distinct values."""

from __future__ import annotations

import numpy as np
import pandas as pd

_DATE_FORMATS = (
    "ISO8601",
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%d.%m.%Y",
    "%d-%m-%Y",
    "%m-%d-%Y",
    "%Y/%m/%d",
    "%Y%m%d",
    "%m/%d/%y",
    "%d/%m/%y",
    "%d.%m.%y",
    "%b %d, %Y",
    "%d %b %Y",
    "%B %d, %Y",
    "%d %B %Y",
)
_EARLIEST = np.datetime64("1900-01-01")
_LATEST = np.datetime64("2200-01-01")


def parse_numbers(texts: pd.Series, decimal: str | None = None) -> np.ndarray:
    """Numbers from text, NaN where a cell is not one.

    Accepts currency signs, spaces, thousands separators ("1,234.50") and a decimal comma
    ("29,85", "1.234,50"). decimal="," (a ';'-delimited file) makes "1,234" mean 1.234.
    """
    cleaned = texts.astype("str").str.replace(r"[\s\u00a0$€£]", "", regex=True)
    out = pd.to_numeric(cleaned, errors="coerce").to_numpy(np.float64, na_value=np.nan, copy=True)
    has_comma = cleaned.str.contains(",", regex=False, na=False).to_numpy(dtype=bool)
    retry = np.isnan(out) & has_comma
    if retry.any():
        sub = cleaned[retry]
        grouped = sub.str.fullmatch(r"[-+]?\d{1,3}(,\d{3})+(\.\d+)?", na=False)
        grouped_comma = grouped.to_numpy(dtype=bool) & (decimal != ",")
        european = sub.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
        fixed = sub.str.replace(",", "", regex=False).where(grouped_comma, european)
        out[retry] = pd.to_numeric(fixed, errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    out[np.isinf(out)] = np.nan
    return out


def parse_dates(texts: pd.Series) -> tuple[np.ndarray, str]:
    """datetime64[ns] from text in the format that parses the most values (NaT otherwise).

    Returns the values and the format used. Ties go to the earlier format in _DATE_FORMATS
    (ISO first, then month-first like pandas).
    """
    texts = texts.astype("str")
    best, best_fmt, best_ok = None, _DATE_FORMATS[0], -1
    for fmt in _DATE_FORMATS:
        parsed = pd.to_datetime(texts, format=fmt, errors="coerce", utc=True)
        ok = int(parsed.notna().sum())
        if ok > best_ok:
            best, best_fmt, best_ok = parsed, fmt, ok
        if ok == len(texts):
            break
    assert best is not None
    values = best.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]", copy=True)
    values[(values < _EARLIEST) | (values >= _LATEST)] = np.datetime64("NaT")
    return values, best_fmt
